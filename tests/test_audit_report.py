"""The audit report: which differences count, and four renderings of the same findings."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings.model import Comment, Incident, Status, Visibility
from sync.audit_report import (
    AuditReport,
    OpenConflict,
    Orphan,
    PairAudit,
    compare_pair,
)

FIELDS = ["title", "status", "impact", "urgency", "assignee", "labels", "updated_at", "comments"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def comment(cid: str, body: str, visibility: Visibility) -> Comment:
    return Comment(id=cid, body=body, created=T0, visibility=visibility)


def test_identical_incidents_have_no_differences_whatever_their_stamps() -> None:
    left = Incident(title="VPN drops", updated_at=T0)
    right = Incident(title="VPN drops", updated_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert compare_pair(left, right, FIELDS) == []


def test_each_differing_field_is_listed_with_both_values() -> None:
    left = Incident(title="VPN drops", status=Status.IN_PROGRESS)
    right = Incident(title="VPN drops!", status=Status.RESOLVED)
    diffs = {d.field: (d.servicenow, d.jira) for d in compare_pair(left, right, FIELDS)}
    assert diffs == {"title": ("VPN drops", "VPN drops!"), "status": ("in_progress", "resolved")}


def test_label_order_is_not_a_difference() -> None:
    assert compare_pair(Incident(labels=["a", "b"]), Incident(labels=["b", "a"]), FIELDS) == []


def test_comment_copies_with_attribution_match_their_originals() -> None:
    left = Incident(comments=[comment("servicenow:1", "Rebooted", Visibility.INTERNAL)])
    right = Incident(
        comments=[comment("jira:9", "[ServiceNow INC1 · bob]\nRebooted", Visibility.INTERNAL)]
    )
    assert compare_pair(left, right, FIELDS) == []


def test_a_comment_missing_on_one_side_or_of_other_visibility_differs() -> None:
    left = Incident(comments=[comment("servicenow:1", "x", Visibility.INTERNAL)])
    right = Incident(comments=[comment("jira:1", "x", Visibility.PUBLIC)])
    [diff] = compare_pair(left, right, FIELDS)
    assert diff.field == "comments"


@given(st.text(max_size=40), st.text(max_size=40))
def test_title_differs_exactly_when_the_texts_differ(a: str, b: str) -> None:
    diffs = compare_pair(Incident(title=a), Incident(title=b), ["title"])
    assert bool(diffs) == (a != b)


def report() -> AuditReport:
    return AuditReport(
        pairs=[
            PairAudit("a" * 32, "OPS-1", "INC0010001", "OPS-1"),
            PairAudit("b" * 32, "OPS-2", "INC0010002", "OPS-2",
                      differences=compare_pair(Incident(title="<b>x</b>, \"q\""),
                                               Incident(title="y"), ["title"])),
            PairAudit("c" * 32, "OPS-3", "INC0010003", "OPS-3", missing="jira"),
        ],
        orphans=[Orphan("jira", "OPS-9", "OPS-9", "Printer on fire")],
        conflicts=[OpenConflict("b" * 32, "OPS-2", "urgency", 2, 1, 3, "manual: left as is")],
    )


def test_counts_and_cleanliness() -> None:
    assert report().counts() == {
        "linked": 3, "in_step": 1, "differing": 2, "orphans": 1, "open_conflicts": 1
    }
    assert not report().clean
    assert AuditReport(pairs=[PairAudit("a", "OPS-1")]).clean


def test_json_rendering_parses_and_keeps_every_finding() -> None:
    data = json.loads(report().render("json"))
    assert data["counts"]["differing"] == 2
    assert data["pairs"][1]["differences"][0]["servicenow"] == "<b>x</b>, \"q\""
    assert data["orphans"][0]["display"] == "OPS-9"
    assert data["conflicts"][0]["field"] == "urgency"


def test_csv_rendering_quotes_values() -> None:
    rows = list(csv.DictReader(io.StringIO(report().render("csv"))))
    kinds = [r["kind"] for r in rows]
    assert kinds == ["in_step", "differs", "missing", "orphan", "conflict"]
    assert rows[1]["servicenow_value"] == "<b>x</b>, \"q\""


def test_html_rendering_escapes_values() -> None:
    page = report().render("html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_table_rendering_names_every_kind() -> None:
    text = report().render("table")
    for word in ("INC0010002", "differs", "orphan", "conflict", "Printer on fire"):
        assert word in text


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        report().render("xml")
