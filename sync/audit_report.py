"""The auditor's report: what differs between linked records, orphans, open conflicts.

Contract:
- :func:`compare_pair` is pure: two neutral incidents (either may be missing) in,
  one :class:`PairAudit` out, listing every compared field whose values differ.
  Volatile stamps (``updated_at``) and fields a side does not carry are not
  differences; comments are compared by how many public and internal ones each
  side holds, since a copy carries an attribution line its original lacks.
- :class:`AuditReport` renders as ``table`` (rich), ``json``, ``csv`` or ``html``;
  every renderer shows the same rows, values escaped for its format and whole
  (an auditor needs the full value; no renderer cuts one). :meth:`render`
  only returns text: it prints nothing.
- Every rendering states what the report is of (:class:`ReportContext`): when
  it was made, both instance URLs, the ServiceNow table and encoded query, the
  Jira project and JQL, the mapping profile with its SHA-256, and the tool's
  version; ``table`` as lines above the findings, ``json`` as a ``report``
  object, ``csv`` as leading rows of kind ``report`` (same columns, so any CSV
  reader still reads the file), ``html`` as the page header. URLs never carry
  credentials (settings refuse them; :func:`public_url` strips them anyway).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.table import Table
from rich.text import Text

from mappings.model import Incident
from sync.output import RECORD_ID_KEYS, display_key, render_table_text, url_key, value_key

FORMATS = ("table", "json", "csv", "html")
# The report's two columns, in order.
REPORT_SIDES = ("servicenow", "jira")


@dataclass(frozen=True)
class FieldDifference:
    field: str
    servicenow: Any
    jira: Any


@dataclass(frozen=True)
class AuditedRecord:
    """One side of an audited pair: the record's id, its name for people, where to open it."""

    id: str
    display: str = ""
    url: str = ""               # "" when the record is gone


@dataclass
class PairAudit:
    sides: dict[str, AuditedRecord]    # side -> that side's record (REPORT_SIDES order)
    differences: list[FieldDifference] = field(default_factory=list)
    missing: str | None = None  # "servicenow" / "jira" when a linked record is gone
    title: str = ""             # for people reading the report
    status: str = ""            # neutral status, "a / b" when the sides disagree

    @property
    def in_step(self) -> bool:
        return not self.differences and self.missing is None

    def name_on(self, side: str) -> str:
        """How people name the record on ``side``: its display, else its id."""
        return self.sides[side].display or self.sides[side].id

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {RECORD_ID_KEYS[side]: self.sides[side].id
                                    for side in REPORT_SIDES}
        document.update({display_key(side): self.sides[side].display for side in REPORT_SIDES})
        document.update({"differences": [asdict(d) for d in self.differences],
                         "missing": self.missing, "title": self.title, "status": self.status})
        document.update({url_key(side): self.sides[side].url for side in REPORT_SIDES})
        return document


@dataclass(frozen=True)
class Orphan:
    side: str
    id: str
    display: str
    title: str
    url: str = ""


@dataclass(frozen=True)
class OpenConflict:
    names: dict[str, str]       # side -> how people name the linked record there
    field: str
    base: Any
    values: dict[str, Any]      # side -> the value it holds
    resolution: str
    urls: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {RECORD_ID_KEYS[side]: self.names[side]
                                    for side in REPORT_SIDES}
        document.update({"field": self.field, "base": self.base})
        document.update({side: self.values[side] for side in REPORT_SIDES})
        document["resolution"] = self.resolution
        document.update({url_key(side): self.urls.get(side, "") for side in REPORT_SIDES})
        return document


def public_url(url: str) -> str:
    """``url`` without user info: a report is shared, credentials never travel in one."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class ReportContext:
    """What a report is of, so an auditor can tell two reports apart and reproduce one."""

    servicenow_url: str
    servicenow_table: str
    servicenow_query: str
    jira_url: str
    jira_project: str
    jira_issue_type: str
    jira_jql: str
    mapping: str            # the profile's name
    mapping_source: str     # profiles/default.toml, or the user's file
    mapping_sha256: str     # of the effective profile (after ``extends``)
    tool_version: str
    # Optional rows the connected sites cannot hold: not compared in this report.
    skipped_rows: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "servicenow": {"url": public_url(self.servicenow_url),
                           "table": self.servicenow_table, "query": self.servicenow_query},
            "jira": {"url": public_url(self.jira_url), "project": self.jira_project,
                     "issue_type": self.jira_issue_type, "jql": self.jira_jql},
            "mapping": {"name": self.mapping, "source": self.mapping_source,
                        "sha256": self.mapping_sha256, "skipped_rows": list(self.skipped_rows)},
            "tool_version": self.tool_version,
        }


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False) if text else "(none)"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _comparable(value: Any) -> Any:
    if hasattr(value, "value"):  # enums compare by their stored value
        return value.value
    if isinstance(value, list):
        return sorted(map(str, value))
    return value


def compare_pair(
    servicenow: Incident | None,
    jira: Incident | None,
    fields: Iterable[str],
    agreeing: Collection[str] = (),
) -> list[FieldDifference]:
    """Fields (neutral names) whose values differ between the two sides.

    ``agreeing`` names fields whose values differ only as a lossy mapping makes
    them (each side's value written across would leave the other as it is).
    """
    if servicenow is None or jira is None:
        return []
    differences = []
    for name in fields:
        if name in ("updated_at", "comments") or name in agreeing:
            continue
        left = _comparable(_neutral_value(servicenow, name))
        right = _comparable(_neutral_value(jira, name))
        if left != right:
            differences.append(FieldDifference(name, left, right))
    left_counts, right_counts = _comment_counts(servicenow), _comment_counts(jira)
    if left_counts != right_counts:
        differences.append(FieldDifference("comments", left_counts, right_counts))
    return differences


def _neutral_value(incident: Incident, name: str) -> Any:
    if name.startswith("custom."):
        return incident.custom.get(name.removeprefix("custom."))
    return getattr(incident, name)


def _comment_counts(incident: Incident) -> dict[str, int]:
    # Comments are a union across sides, and a copy carries an attribution line its
    # original lacks, so bodies cannot be compared one to one: once in step, each
    # side holds the same number of public and of internal comments.
    counts = {"public": 0, "internal": 0}
    for comment in incident.comments:
        counts[comment.visibility.value] += 1
    return counts


@dataclass
class AuditReport:
    pairs: list[PairAudit] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    conflicts: list[OpenConflict] = field(default_factory=list)
    made_at: datetime | None = None           # when the reads began (UTC)
    context: ReportContext | None = None

    def about(self) -> list[tuple[str, str, str]]:
        """``(key, label, text)`` for each fact stating what this report is of."""
        facts: list[tuple[str, str, str]] = []
        if self.made_at is not None:
            facts.append(("made_at", "made", _stamp(self.made_at)))
        c = self.context
        if c is None:
            return facts
        facts += [
            ("servicenow", "ServiceNow", f"{public_url(c.servicenow_url)} table "
             f"{c.servicenow_table}, query {_quoted(c.servicenow_query)}"),
            ("jira", "Jira", f"{public_url(c.jira_url)} project {c.jira_project}, issue type "
             f"{c.jira_issue_type}, JQL {_quoted(c.jira_jql)}"),
            ("mapping", "mapping", f"{c.mapping} ({c.mapping_source}) sha256 "
             f"{c.mapping_sha256}"),
        ]
        if c.skipped_rows:
            facts.append(("skipped_rows", "skipped rows",
                          ", ".join(c.skipped_rows) + " (optional; not on the site)"))
        facts.append(("tool_version", "tool", f"incident-sync {c.tool_version}"))
        return facts

    def drift_by_field(self) -> dict[str, int]:
        """How many linked pairs differ in each field, most first (the HTML chart)."""
        counts: dict[str, int] = {}
        for pair in self.pairs:
            for diff in pair.differences:
                counts[diff.field] = counts.get(diff.field, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    @property
    def clean(self) -> bool:
        return all(p.in_step for p in self.pairs) and not self.orphans and not self.conflicts

    def counts(self) -> dict[str, int]:
        return {
            "linked": len(self.pairs),
            "in_step": sum(1 for p in self.pairs if p.in_step),
            "differing": sum(1 for p in self.pairs if not p.in_step),
            "orphans": len(self.orphans),
            "open_conflicts": len(self.conflicts),
        }

    # ------------------------------------------------------------------ rows

    def rows(self) -> list[dict[str, str]]:
        """One flat row per finding: the shape csv and html share."""
        rows: list[dict[str, str]] = []
        for pair in self.pairs:
            base = {side: pair.name_on(side) for side in REPORT_SIDES}
            base.update({url_key(side): pair.sides[side].url for side in REPORT_SIDES})
            if pair.missing:
                rows.append({**base, "kind": "missing", "field": "", **_no_values(),
                             "detail": f"linked record gone on {pair.missing}"})
            for diff in pair.differences:
                rows.append({**base, "kind": "differs", "field": diff.field,
                             **{value_key(side): _text(getattr(diff, side))
                                for side in REPORT_SIDES}, "detail": ""})
            if pair.in_step:
                rows.append({**base, "kind": "in_step", "field": "", **_no_values(),
                             "detail": ""})
        for orphan in self.orphans:
            rows.append({**{side: orphan.display if orphan.side == side else ""
                            for side in REPORT_SIDES},
                         "kind": "orphan", "field": "", **_no_values(), "detail": orphan.title,
                         **{url_key(side): orphan.url if orphan.side == side else ""
                            for side in REPORT_SIDES}})
        for conflict in self.conflicts:
            base = _text(conflict.base) or "(empty)"
            rows.append({**{side: conflict.names[side] for side in REPORT_SIDES},
                         "kind": "conflict", "field": conflict.field,
                         **{value_key(side): _text(conflict.values[side])
                            for side in REPORT_SIDES},
                         "detail": f"base {base}; {conflict.resolution}",
                         **{url_key(side): conflict.urls.get(side, "")
                            for side in REPORT_SIDES}})
        return rows

    # ------------------------------------------------------------------ renderers

    def render(self, fmt: str) -> str:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
        return getattr(self, f"_render_{fmt}")()

    def _render_json(self) -> str:
        return json.dumps(
            {"report": self._about_json(), "counts": self.counts(),
             "pairs": [p.to_json() for p in self.pairs],
             "orphans": [asdict(o) for o in self.orphans],
             "conflicts": [c.to_json() for c in self.conflicts]},
            indent=2, default=str, ensure_ascii=False,
        )

    def _about_json(self) -> dict[str, Any]:
        about: dict[str, Any] = {"made_at": _stamp(self.made_at) if self.made_at else None}
        if self.context is not None:
            about.update(self.context.to_json())
        return about

    def _render_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        # What the report is of, as rows a spreadsheet filter on ``kind`` sets apart.
        blank = dict.fromkeys(_COLUMNS, "")
        writer.writerows({**blank, "kind": "report", "field": key, "detail": text}
                         for key, _label, text in self.about())
        writer.writerows(self.rows())
        return buffer.getvalue()

    def _render_html(self) -> str:
        from sync.audit_html import render_html

        return render_html(self)

    def table(self) -> Table:
        """The findings as a rich table (values literal, never markup)."""
        table = Table(title="incident-sync audit", show_lines=False)
        # Links are for the HTML page and the machine formats; a terminal row stays readable.
        for column in TABLE_COLUMNS:
            table.add_column(column.replace("_", " "), overflow="fold")
        for row in self.rows():
            table.add_row(*(Text(row[c]) for c in TABLE_COLUMNS))
        return table

    def header(self) -> str:
        """The facts stating what the report is of, one ``label: text`` line each."""
        return "".join(f"{label}: {text}\n" for _key, label, text in self.about())

    def summary(self) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.counts().items())

    def _render_table(self) -> str:
        # At the table's natural width: a file or a pipe has no screen to fit.
        return self.header() + render_table_text(self.table()) + self.summary() + "\n"


TABLE_COLUMNS: Sequence[str] = (
    *REPORT_SIDES, "kind", "field", *(value_key(side) for side in REPORT_SIDES), "detail",
)
_COLUMNS: Sequence[str] = (*TABLE_COLUMNS, *(url_key(side) for side in REPORT_SIDES))


def _no_values() -> dict[str, str]:
    return {value_key(side): "" for side in REPORT_SIDES}


def _text(value: Any) -> str:
    return "" if value is None else str(value)
