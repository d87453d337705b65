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
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table
from rich.text import Text

from mappings.model import Incident
from sync.output import render_table_text

FORMATS = ("table", "json", "csv", "html")


@dataclass(frozen=True)
class FieldDifference:
    field: str
    servicenow: Any
    jira: Any


@dataclass
class PairAudit:
    servicenow_id: str
    jira_key: str
    servicenow_display: str = ""
    jira_display: str = ""
    differences: list[FieldDifference] = field(default_factory=list)
    missing: str | None = None  # "servicenow" / "jira" when a linked record is gone
    title: str = ""             # for people reading the report
    status: str = ""            # neutral status, "a / b" when the sides disagree

    @property
    def in_step(self) -> bool:
        return not self.differences and self.missing is None


@dataclass(frozen=True)
class Orphan:
    side: str
    id: str
    display: str
    title: str


@dataclass(frozen=True)
class OpenConflict:
    servicenow_id: str
    jira_key: str
    field: str
    base: Any
    servicenow: Any
    jira: Any
    resolution: str


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
) -> list[FieldDifference]:
    """Fields (neutral names) whose values differ between the two sides."""
    if servicenow is None or jira is None:
        return []
    differences = []
    for name in fields:
        if name in ("updated_at", "comments"):
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
            base = {"servicenow": pair.servicenow_display or pair.servicenow_id,
                    "jira": pair.jira_display or pair.jira_key}
            if pair.missing:
                rows.append({**base, "kind": "missing", "field": "",
                             "servicenow_value": "", "jira_value": "",
                             "detail": f"linked record gone on {pair.missing}"})
            for diff in pair.differences:
                rows.append({**base, "kind": "differs", "field": diff.field,
                             "servicenow_value": _text(diff.servicenow),
                             "jira_value": _text(diff.jira), "detail": ""})
            if pair.in_step:
                rows.append({**base, "kind": "in_step", "field": "", "servicenow_value": "",
                             "jira_value": "", "detail": ""})
        for orphan in self.orphans:
            rows.append({"servicenow": orphan.display if orphan.side == "servicenow" else "",
                         "jira": orphan.display if orphan.side == "jira" else "",
                         "kind": "orphan", "field": "", "servicenow_value": "",
                         "jira_value": "", "detail": orphan.title})
        for conflict in self.conflicts:
            rows.append({"servicenow": conflict.servicenow_id, "jira": conflict.jira_key,
                         "kind": "conflict", "field": conflict.field,
                         "servicenow_value": _text(conflict.servicenow),
                         "jira_value": _text(conflict.jira),
                         "detail": f"base {_text(conflict.base)}; {conflict.resolution}"})
        return rows

    # ------------------------------------------------------------------ renderers

    def render(self, fmt: str) -> str:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r} (choose {', '.join(FORMATS)})")
        return getattr(self, f"_render_{fmt}")()

    def _render_json(self) -> str:
        return json.dumps(
            {"counts": self.counts(), "pairs": [asdict(p) for p in self.pairs],
             "orphans": [asdict(o) for o in self.orphans],
             "conflicts": [asdict(c) for c in self.conflicts]},
            indent=2, default=str, ensure_ascii=False,
        )

    def _render_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return buffer.getvalue()

    def _render_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
        body = "".join(
            "<tr class=\"{}\">{}</tr>".format(
                html.escape(row["kind"]),
                "".join(f"<td>{html.escape(row[c])}</td>" for c in _COLUMNS),
            )
            for row in self.rows()
        )
        summary = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.counts().items())
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>incident-sync audit"
            "</title><style>body{font-family:sans-serif}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px}.differs,.conflict{background:#fff3cd}"
            ".orphan,.missing{background:#f8d7da}</style></head><body>"
            f"<h1>incident-sync audit</h1><p>{html.escape(summary)}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            "</body></html>\n"
        )

    def table(self) -> Table:
        """The findings as a rich table (values literal, never markup)."""
        table = Table(title="incident-sync audit", show_lines=False)
        for column in _COLUMNS:
            table.add_column(column.replace("_", " "), overflow="fold")
        for row in self.rows():
            table.add_row(*(Text(row[c]) for c in _COLUMNS))
        return table

    def summary(self) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.counts().items())

    def _render_table(self) -> str:
        # At the table's natural width: a file or a pipe has no screen to fit.
        return render_table_text(self.table()) + self.summary() + "\n"


_COLUMNS: Sequence[str] = (
    "servicenow", "jira", "kind", "field", "servicenow_value", "jira_value", "detail",
)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
