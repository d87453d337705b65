"""The audit report: which differences count, and four renderings of the same findings."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mappings.model import Comment, Incident, Status, Visibility
from sync.audit_report import (
    AuditedRecord,
    AuditReport,
    OpenConflict,
    Orphan,
    PairAudit,
    ReportContext,
    compare_pair,
    public_url,
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


def sides(sys_id: str, key: str, number: str = "", key_display: str = "",
          sn_url: str = "", jira_url: str = "") -> dict[str, AuditedRecord]:
    return {"servicenow": AuditedRecord(sys_id, number, sn_url),
            "jira": AuditedRecord(key, key_display, jira_url)}


def report() -> AuditReport:
    return AuditReport(
        pairs=[
            PairAudit(sides("a" * 32, "OPS-1", "INC0010001", "OPS-1")),
            PairAudit(sides("b" * 32, "OPS-2", "INC0010002", "OPS-2"),
                      differences=compare_pair(Incident(title="<b>x</b>, \"q\""),
                                               Incident(title="y"), ["title"])),
            PairAudit(sides("c" * 32, "OPS-3", "INC0010003", "OPS-3"), missing="jira"),
        ],
        orphans=[Orphan("jira", "OPS-9", "OPS-9", "Printer on fire")],
        conflicts=[OpenConflict({"servicenow": "b" * 32, "jira": "OPS-2"}, "urgency", 2,
                                {"servicenow": 1, "jira": 3}, "manual: left as is")],
    )


def test_counts_and_cleanliness() -> None:
    assert report().counts() == {
        "linked": 3, "in_step": 1, "differing": 2, "orphans": 1, "open_conflicts": 1
    }
    assert not report().clean
    assert AuditReport(pairs=[PairAudit(sides("a", "OPS-1"))]).clean


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


CONTEXT = ReportContext(
    servicenow_url="https://dev1.service-now.com", servicenow_table="incident",
    servicenow_query="active=true^priority<=2", jira_url="https://example.atlassian.net",
    jira_project="OPS", jira_issue_type="Incident", jira_jql="labels = vip",
    mapping="default", mapping_source="profiles/default.toml", mapping_sha256="ab" * 32,
    tool_version="9.9.9", skipped_rows=("subcategory",),
)


def stated() -> AuditReport:
    made = report()
    made.made_at = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)
    made.context = CONTEXT
    return made


FACTS = ("2026-05-04T03:02:01Z", "https://dev1.service-now.com", "active=true^priority<=2",
         "https://example.atlassian.net", "OPS", "labels = vip", "profiles/default.toml",
         "ab" * 32, "9.9.9", "subcategory")


@pytest.mark.parametrize("fmt", ["table", "csv", "html"])
def test_every_format_states_when_where_which_mapping_and_which_version(fmt: str) -> None:
    text = stated().render(fmt)
    for fact in FACTS:
        assert fact.replace("<", "&lt;") in text if fmt == "html" else fact in text, fact


def test_json_states_what_the_report_is_of() -> None:
    about = json.loads(stated().render("json"))["report"]
    assert about["made_at"] == "2026-05-04T03:02:01Z"
    assert about["servicenow"] == {"url": "https://dev1.service-now.com", "table": "incident",
                                   "query": "active=true^priority<=2"}
    assert about["jira"] == {"url": "https://example.atlassian.net", "project": "OPS",
                             "issue_type": "Incident", "jql": "labels = vip"}
    assert about["mapping"] == {"name": "default", "source": "profiles/default.toml",
                                "sha256": "ab" * 32, "skipped_rows": ["subcategory"]}
    assert about["tool_version"] == "9.9.9"


def test_csv_states_the_facts_as_report_rows_before_the_findings() -> None:
    rows = list(csv.DictReader(io.StringIO(stated().render("csv"))))
    facts = {r["field"]: r["detail"] for r in rows if r["kind"] == "report"}
    assert facts["made_at"] == "2026-05-04T03:02:01Z"
    assert facts["tool_version"] == "incident-sync 9.9.9"
    kinds = [r["kind"] for r in rows]
    assert kinds[len(facts):] == ["in_step", "differs", "missing", "orphan", "conflict"]


def test_credentials_in_a_url_never_reach_the_report() -> None:
    assert public_url("https://bob:hunter2@dev1.service-now.com:8443/x") == (
        "https://dev1.service-now.com:8443/x")
    leaky = replace(CONTEXT, jira_url="https://bob:hunter2@example.atlassian.net")
    made = AuditReport(context=leaky)
    for fmt in ("table", "json", "csv", "html"):
        assert "hunter2" not in made.render(fmt)


def test_html_links_only_web_addresses_and_draws_the_drift_per_field() -> None:
    made = AuditReport(pairs=[
        PairAudit(sides("a" * 32, "OPS-1", "INC1", "OPS-1", "javascript:alert(1)",
                        "https://example.atlassian.net/browse/OPS-1"),
                  differences=compare_pair(Incident(title="a", urgency=1),
                                           Incident(title="b", urgency=2), ["title", "urgency"])),
        PairAudit(sides("b" * 32, "OPS-2", "INC2", "OPS-2"),
                  differences=compare_pair(Incident(title="c"), Incident(title="d"), ["title"])),
    ])
    page = made.render("html")
    assert "javascript:" not in page
    assert '<a href="https://example.atlassian.net/browse/OPS-1"' in page
    assert made.drift_by_field() == {"title": 2, "urgency": 1}
    assert "<title>title: 2</title>" in page and "<title>urgency: 1</title>" in page


def test_html_of_a_clean_report_says_nothing_drifts() -> None:
    page = AuditReport(pairs=[PairAudit(sides("a", "OPS-1"))]).render("html")
    assert "No field differs between linked records." in page
    assert 'class="card good" id="card-in_step"' in page  # green: every pair in step
