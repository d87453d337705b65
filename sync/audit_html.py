"""The audit report as one self-contained HTML page.

Contract:
- :func:`render_html` returns one HTML5 document that needs nothing else: the
  style and the script are inline, the drift chart is inline SVG, no font,
  image, stylesheet or script is fetched from anywhere. Its Content Security
  Policy says so to the browser too (``default-src 'none'``, the inline style
  and script allowed by their SHA-256), so a page edited to load something
  fails loudly instead of phoning out.
- The page states what it is of (the report's facts: made, both instances and
  their scopes, the mapping profile and its hash, the tool's version), then
  one summary card per count, a per-field drift chart, and the findings table
  with links to both records in their tools. The script makes the table
  sortable (click a column heading; again to reverse) and filterable (free
  text and kind); ``#q=TEXT&kind=KIND&sort=COLUMN`` in the address presets
  the filter and the order (``sort=-field``: descending; columns by their
  JSON/CSV names), so a view can be shared as a link. Without script the
  whole table still shows.
- Every value is HTML-escaped; only ``http(s)`` record URLs become links.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from sync.output import url_key, value_key


class AuditReport(Protocol):
    """What the page reads of a :class:`sync.audit_report.AuditReport` (a protocol, so
    this module does not import the one that renders through it)."""

    made_at: datetime | None

    def about(self) -> Iterable[tuple[str, str, str]]: ...

    def counts(self) -> dict[str, int]: ...

    def drift_by_field(self) -> Any: ...

    def rows(self) -> Iterable[dict[str, str]]: ...

# (count key, label, tone): tone colours a card when its count is not zero.
_CARDS = (
    ("linked", "linked pairs", "neutral"),
    ("in_step", "in step", "good"),
    ("differing", "differing", "warn"),
    ("orphans", "orphans", "bad"),
    ("open_conflicts", "open conflicts", "warn"),
)
_KINDS = ("differs", "missing", "orphan", "conflict", "in_step")
_HEADINGS = (
    ("servicenow", "ServiceNow"), ("jira", "Jira"), ("kind", "kind"), ("field", "field"),
    *((value_key(side), f"{title} value") for side, title in (("servicenow", "ServiceNow"),
                                                               ("jira", "Jira"))),
    ("detail", "detail"),
)

_STYLE = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--good:#1a7f37;--warn:#9a6700;
--bad:#cf222e;--bar:#bf8700}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
margin:0 auto;padding:24px;max-width:1400px;line-height:1.4}
h1{margin:0 0 8px;font-size:1.6em}h2{font-size:1.15em;margin:28px 0 10px}
dl.about{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0;
color:var(--muted);font-size:.92em}
dl.about dt{font-weight:600}dl.about dd{margin:0;overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:20px}
.card{border:1px solid var(--line);border-radius:8px;padding:12px 18px;min-width:150px;
border-top:4px solid var(--line)}
.card .n{display:block;font-size:2em;font-weight:700}
.card .label{color:var(--muted)}
.card.good{border-top-color:var(--good)}.card.good .n{color:var(--good)}
.card.warn{border-top-color:var(--warn)}.card.warn .n{color:var(--warn)}
.card.bad{border-top-color:var(--bad)}.card.bad .n{color:var(--bad)}
svg.chart text{font-size:13px;fill:var(--fg)}svg.chart rect{fill:var(--bar)}
.none{color:var(--muted)}
.controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin-bottom:10px}
.controls input{min-width:260px;padding:5px 8px}.controls select{padding:5px}
#shown{color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:#f6f8fa;position:sticky;top:0}
th button{all:unset;cursor:pointer;font-weight:600}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
tr.differs td,tr.conflict td{background:#fff8c5}
tr.orphan td,tr.missing td{background:#ffebe9}
"""

# Sorting and filtering only: the page is complete without it.
_SCRIPT = """
(function () {
  "use strict";
  var table = document.getElementById("findings");
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var text = document.getElementById("filter");
  var kind = document.getElementById("kind");
  var shown = document.getElementById("shown");

  function apply() {
    var needle = text.value.trim().toLowerCase();
    var want = kind.value;
    var visible = 0;
    rows.forEach(function (row) {
      var ok = (!want || row.className === want) &&
        (!needle || row.textContent.toLowerCase().indexOf(needle) !== -1);
      row.hidden = !ok;
      if (ok) { visible += 1; }
    });
    shown.textContent = "showing " + visible + " of " + rows.length + " findings";
  }

  function sortBy(th) {
    var column = th.cellIndex;
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) {
      cell.setAttribute("aria-sort", "none");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    rows.sort(function (a, b) {
      var x = a.cells[column].textContent, y = b.cells[column].textContent;
      var order = x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"});
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.querySelector("button").addEventListener("click", function () { sortBy(th); });
  });
  var preset = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  if (preset.has("q")) { text.value = preset.get("q"); }
  if (preset.has("kind")) { kind.value = preset.get("kind"); }
  if (preset.has("sort")) {
    var key = preset.get("sort"), descending = key.charAt(0) === "-";
    var th = table.querySelector("th[data-key='" + key.replace(/^-/, "") + "']");
    if (th) {
      sortBy(th);
      if (descending) { sortBy(th); }
    }
  }
  text.addEventListener("input", apply);
  kind.addEventListener("change", apply);
  apply();
  document.documentElement.setAttribute("data-ready", "1");
}());
"""


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _link(text: str, url: str) -> str:
    if url.startswith(("https://", "http://")):
        return (f'<a href="{html.escape(url)}" target="_blank" rel="noopener noreferrer">'
                f"{html.escape(text)}</a>")
    return html.escape(text)


def _about(report: AuditReport) -> str:
    items = "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>"
                    for _key, label, text in report.about())
    return f'<dl class="about">{items}</dl>' if items else ""


def _cards(report: AuditReport) -> str:
    counts = report.counts()
    cards = []
    for key, label, tone in _CARDS:
        value = counts[key]
        cls = tone if value and tone != "neutral" else "neutral"
        if key == "in_step" and value != counts["linked"]:
            cls = "neutral"  # green only when every pair is in step
        cards.append(f'<div class="card {cls}" id="card-{key}"><span class="n">{value}</span>'
                     f'<span class="label">{html.escape(label)}</span></div>')
    return f'<section class="cards" aria-label="counts">{"".join(cards)}</section>'


def _chart(report: AuditReport) -> str:
    """Horizontal bars: how many linked pairs differ in each field."""
    drift = report.drift_by_field()
    if not drift:
        return '<p class="none">No field differs between linked records.</p>'
    label_w, bar_w, row_h, pad = 170, 420, 26, 6
    width, height = label_w + bar_w + 60, row_h * len(drift) + pad
    most = max(drift.values())
    parts = [f'<svg class="chart" role="img" aria-label="linked pairs differing per field" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for index, (name, count) in enumerate(drift.items()):
        y = index * row_h + pad
        length = max(2, round(bar_w * count / most))
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{html.escape(name)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{length}" height="{row_h - 8}" rx="3">'
            f"<title>{html.escape(name)}: {count}</title></rect>"
            f'<text x="{label_w + length + 6}" y="{y + 15}">{count}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(report: AuditReport) -> str:
    head = "".join(f'<th scope="col" data-key="{key}" aria-sort="none"><button type="button">'
                   f"{html.escape(title)}</button></th>" for key, title in _HEADINGS)
    body = []
    for row in report.rows():
        cells = [_link(row[side], row[url_key(side)]) for side in ("servicenow", "jira")]
        cells += [html.escape(row[key]) for key, _title in _HEADINGS[2:]]
        body.append(f'<tr class="{html.escape(row["kind"])}">'
                    + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    options = "".join(f'<option value="{k}">{k.replace("_", " ")}</option>' for k in _KINDS)
    return (
        '<div class="controls"><input type="search" id="filter" placeholder="filter findings"'
        ' aria-label="filter findings"><select id="kind" aria-label="kind">'
        f'<option value="">every kind</option>{options}</select><span id="shown"></span></div>'
        f'<table id="findings"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>'
    )


def render_html(report: AuditReport) -> str:
    """The whole page (see the module contract)."""
    csp = (f"default-src 'none'; style-src {_csp_hash(_STYLE)}; "
           f"script-src {_csp_hash(_SCRIPT)}; base-uri 'none'; form-action 'none'")
    made = report.about()[0][2] if report.made_at is not None else ""
    title = "incident-sync audit" + (f" {made}" if made else "")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>incident-sync audit</h1>{_about(report)}</header>"
        f"<main>{_cards(report)}"
        f"<h2>Drift by field</h2>{_chart(report)}"
        f"<h2>Findings</h2>{_table(report)}</main>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
