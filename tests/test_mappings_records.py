"""The shipped profiles against raw records shaped exactly as the vendors return them
(ServiceNow Table API records and Jira v2/v3 issue JSON), and the writes they produce.
The Jira record fixtures come from a site an admin extended (Assignment group,
Subcategory, Resolution notes, Escalation, components): ``jsm-extended`` reads them;
``default`` reads a stock site's issues, category and subcategory in labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mappings.adf import validate_adf
from mappings.mapper import MappingContext, RecordError, to_fields, to_incident
from mappings.model import Escalation, Impact, Incident, Priority, Status, Urgency
from mappings.profile import load_profile

RECORDS = Path(__file__).parent / "data" / "records"
SITE_FIELDS = {
    "Impact": "customfield_10004", "Urgency": "customfield_10005",
    "Assignment group": "customfield_10006", "Subcategory": "customfield_10007",
    "Resolution notes": "customfield_10008", "Escalation": "customfield_10009",
}
PROFILE = load_profile("default")
EXTENDED = load_profile("jsm-extended")
ADF = MappingContext(text_format="adf", field_ids=SITE_FIELDS)
WIKI = MappingContext(text_format="wiki", field_ids=SITE_FIELDS)


def _servicenow(name: str) -> dict[str, Any]:
    result = json.loads((RECORDS / name).read_text(encoding="utf-8"))["result"]
    return result[0] if isinstance(result, list) else result


def _jira(name: str) -> dict[str, Any]:
    return json.loads((RECORDS / name).read_text(encoding="utf-8"))["fields"]


def test_servicenow_docs_record_with_reference_objects() -> None:
    incident = to_incident("servicenow", _servicenow("servicenow_docs_get.json"), PROFILE)
    assert incident.title == "Can't access SFA software"
    assert incident.description == ""
    assert incident.status is Status.NEW
    assert (incident.impact, incident.urgency) == (Impact.HIGH, Urgency.LOW)
    assert incident.priority is Priority.MODERATE
    assert incident.category == "software"
    assert incident.subcategory is None
    assert incident.escalation is Escalation.NORMAL
    assert incident.opened_at == datetime(2015, 11, 2, 22, 4, 15, tzinfo=UTC)
    assert incident.updated_at == datetime(2015, 11, 1, 22, 37, 27, tzinfo=UTC)
    assert incident.resolved_at is None
    # No dot-walks were fetched: people stay unknown rather than becoming sys_ids.
    assert incident.caller is None and incident.assignment_group is None
    assert incident.custom == {}


def test_servicenow_post_response_with_empty_reference() -> None:
    incident = to_incident("servicenow", _servicenow("servicenow_docs_post.json"), PROFILE)
    assert incident.title == "Unable to connect to office wifi"
    assert incident.category == "inquiry"
    assert incident.priority is Priority.MODERATE
    assert incident.caller is None
    assert incident.resolution_code is None and incident.resolution_notes is None


def test_servicenow_pull_with_bare_ids_and_dot_walks() -> None:
    incident = to_incident("servicenow", _servicenow("servicenow_pull_resolved.json"), PROFILE)
    assert incident.status is Status.RESOLVED
    assert incident.caller == "ines.moreau@example.com"  # emails are compared lower-case
    assert incident.assignee == "chen.wei@example.com"
    assert incident.assignment_group == "Network"
    assert incident.resolution_code == "Workaround provided"
    assert incident.resolution_notes.startswith("Pinned the client")
    assert incident.escalation is Escalation.MODERATE
    assert "Kraków" in incident.description
    assert incident.resolved_at == datetime(2026, 1, 5, 16, 42, 9, tzinfo=UTC)


def test_servicenow_display_value_all_prefers_value() -> None:
    incident = to_incident("servicenow", _servicenow("servicenow_display_all.json"), PROFILE)
    assert incident.status is Status.IN_PROGRESS
    assert incident.priority is Priority.PLANNING
    assert incident.category == "hardware" and incident.subcategory == "monitor"
    assert incident.assignee == "david.loo@example.com"
    assert incident.caller == "hiro.tanaka@example.com"
    assert incident.assignment_group == "Hardware"
    # The value is UTC; the display value is in the user's time zone.
    assert incident.opened_at == datetime(2026, 1, 4, 10, 0, tzinfo=UTC)
    assert incident.resolution_code is None


def test_jira_v2_issue_reads_wiki_markup_and_drops_marker_labels() -> None:
    incident = to_incident("jira", _jira("jira_v2_issue.json"), EXTENDED, WIKI)
    assert incident.title == "VPN drops every 15 minutes"
    assert incident.description == (
        "Since this morning the **VPN client** disconnects every 15 minutes.\n"
        "See [runbook](https://wiki.example.com/vpn) and ask @5b10ac8d82e05b22cc7d4ef5.\n"
        "- Kraków office\n- Lyon office"
    )
    assert incident.status is Status.IN_PROGRESS
    assert incident.impact is Impact.MEDIUM and incident.urgency is Urgency.HIGH
    assert incident.priority is Priority.HIGH
    assert incident.category == "network" and incident.subcategory == "VPN"
    assert incident.assignment_group == "Network"
    assert incident.assignee == "chen.wei@example.com"
    assert incident.caller == "ines.moreau@example.com"
    assert incident.resolution_code is None
    assert incident.escalation is Escalation.MODERATE
    assert incident.labels == ["remote-work"]
    assert incident.updated_at == datetime(2026, 1, 5, 9, 12, 44, 318000, tzinfo=UTC)


def test_jira_v3_issue_reads_adf_and_lossy_jsm_values() -> None:
    incident = to_incident("jira", _jira("jira_v3_issue.json"), EXTENDED, ADF)
    assert incident.status is Status.RESOLVED
    # JSM's fourth impact and urgency fold into ServiceNow's High.
    assert incident.impact is Impact.HIGH and incident.urgency is Urgency.HIGH
    assert incident.resolution_code == "Solution provided"  # Jira "Done"
    assert incident.resolution_notes == "Added a datafile; alert threshold lowered to 85%."
    assert incident.escalation is Escalation.HIGH
    assert incident.category == "database"
    assert "@Dana Kowalski 🔥" in incident.description
    assert "```sql\nALTER TABLESPACE" in incident.description
    assert incident.resolved_at == datetime(2026, 1, 6, 8, 30, tzinfo=UTC)


def test_stock_jira_issue_reads_category_and_subcategory_from_labels() -> None:
    fields = _jira("jira_v2_issue.json")
    fields["labels"] = ["remote-work", "snow-46d44a23a9fe19810012d100cca80666",
                        "category-network", "subcategory-MS%20SQL%20Server"]
    incident = to_incident("jira", fields, PROFILE, WIKI)
    assert incident.category == "network" and incident.subcategory == "MS SQL Server"
    assert incident.labels == ["remote-work"]
    # The fields only an admin-extended site has are not read by the default profile.
    assert incident.assignment_group is None and incident.resolution_notes is None
    assert incident.escalation is Escalation.NORMAL


def test_jira_data_center_issue_with_nulls_and_name_users() -> None:
    incident = to_incident("jira", _jira("jira_dc_issue.json"), PROFILE, WIKI)
    assert incident.status is Status.ON_HOLD
    assert incident.assignee is None
    assert incident.caller == "grace.okafor@example.com"
    assert incident.category is None and incident.subcategory is None
    assert incident.impact is Impact.LOW and incident.priority is Priority.PLANNING
    assert incident.description == (
        "### Symptoms\nJobs stay in the queue; the spooler shows *paused*.\n"
        "```\nnet stop spooler\n```"
    )


def test_unmapped_jira_status_without_default_is_a_record_error() -> None:
    fields = _jira("jira_dc_issue.json") | {"status": {"name": "Awaiting approval"}}
    with pytest.raises(RecordError, match=r"jira field status: 'Awaiting approval' has no"
                                          r" mapping in fields\.status\.from_jira"):
        to_incident("jira", fields, PROFILE, WIKI)


def test_bad_date_is_a_record_error_naming_the_field() -> None:
    fields = _servicenow("servicenow_docs_post.json") | {"opened_at": "22/01/2016"}
    with pytest.raises(RecordError, match=r"servicenow field opened_at: not a servicenow"):
        to_incident("servicenow", fields, PROFILE)


def test_resolving_on_servicenow_always_writes_close_code_and_notes() -> None:
    incident = Incident(title="Printer jam", status=Status.RESOLVED)
    ctx = MappingContext(origin="Jira OPS-31")
    written = to_fields("servicenow", incident, PROFILE, ctx, only=["status"])
    assert written.fields == {
        "state": "6", "close_code": "Solution provided", "close_notes": "Resolved in Jira OPS-31",
    }
    assert len(written.losses) == 2 and all("fallback" in loss for loss in written.losses)


def test_resolving_with_own_notes_keeps_them() -> None:
    incident = Incident(status=Status.CLOSED, resolution_code="Resolved by caller",
                        resolution_notes="Caller rebooted the router.")
    written = to_fields("servicenow", incident, PROFILE, only=["status"])
    assert written.fields["close_code"] == "Resolved by caller"
    assert written.fields["close_notes"] == "Caller rebooted the router."
    assert written.losses == []


def test_open_status_write_carries_nothing_else() -> None:
    written = to_fields("servicenow", Incident(status=Status.IN_PROGRESS), PROFILE,
                        only=["status"])
    assert written.fields == {"state": "2"}


def test_on_hold_writes_a_hold_reason() -> None:
    written = to_fields("servicenow", Incident(status=Status.ON_HOLD), PROFILE, only=["status"])
    assert written.fields == {"state": "3", "hold_reason": "1"}


def test_servicenow_write_uses_references_and_never_priority() -> None:
    incident = Incident(title="VPN down", impact=2, urgency=1, caller="ines.moreau@example.com",
                        assignment_group="Network", category="network", priority=2,
                        labels=["vpn"])
    fields = to_fields("servicenow", incident, PROFILE).fields
    assert fields["caller_id"] == {"$user": "ines.moreau@example.com"}
    assert fields["assigned_to"] == {"$user": None}
    assert fields["assignment_group"] == {"$group": "Network"}
    assert (fields["impact"], fields["urgency"], fields["state"]) == ("2", "1", "1")
    assert "priority" not in fields and "labels" not in fields and "opened_at" not in fields
    assert all(isinstance(v, str | dict) for v in fields.values())


def test_jira_write_on_cloud_uses_adf_select_options_and_names() -> None:
    incident = Incident(title="VPN down", description="Users in *Lyon* affected",
                        status=Status.RESOLVED, impact=3, urgency=2, priority=4,
                        category="network", resolution_code="Workaround provided",
                        resolution_notes="Gateway restarted", escalation=3,
                        assignee="chen.wei@example.com", labels=["vpn", "snow-123"])
    written = to_fields("jira", incident, EXTENDED, ADF)
    fields = written.fields
    validate_adf(fields["description"])
    validate_adf(fields["customfield_10008"])
    assert fields["status"] == "Resolved"
    assert fields["customfield_10004"] == {"value": "Minor / Localized"}
    assert fields["customfield_10005"] == {"value": "Medium"}
    assert fields["customfield_10009"] == {"value": "Overdue"}
    assert fields["priority"] == {"name": "Low"}
    assert fields["components"] == [{"name": "Network"}]
    assert fields["resolution"] == {"name": "Done"}
    assert fields["assignee"] == {"$user": "chen.wei@example.com"}
    assert fields["labels"] == ["vpn"]
    assert "created" not in fields and "updated" not in fields
    assert any("'Workaround provided' is written to jira as 'Done'" in loss
               for loss in written.losses)
    assert any("snow-123" in loss for loss in written.losses)


def test_jira_write_on_a_stock_site_keeps_category_in_labels_and_notes_on_servicenow(
) -> None:
    incident = Incident(title="DB slow", status=Status.RESOLVED, category="database",
                        subcategory="MS SQL Server", resolution_notes="Index rebuilt",
                        escalation=3, assignment_group="Database",
                        labels=["vip", "snow-123", "category-x"])
    written = to_fields("jira", incident, PROFILE, ADF)
    assert written.fields["labels"] == ["category-database", "subcategory-MS%20SQL%20Server",
                                        "vip"]
    assert not {"components", "customfield_10006", "customfield_10007", "customfield_10008",
                "customfield_10009"} & set(written.fields)
    assert any("category-x" in loss and "snow-123" in loss for loss in written.losses)
    # A write of one label row carries the others' labels: labels are one Jira field.
    only = to_fields("jira", incident, PROFILE, ADF, only=["category"])
    assert only.fields == {"labels": written.fields["labels"]}
    back = to_incident("jira", written.fields, PROFILE, ADF)
    assert (back.category, back.subcategory, back.labels) == (
        "database", "MS SQL Server", ["vip"])


def test_jira_write_on_data_center_escapes_wiki_specials() -> None:
    incident = Incident(description="Run *all* checks [now] on host_1")
    fields = to_fields("jira", incident, PROFILE, WIKI, only=["description"]).fields
    assert fields == {"description": "Run _all_ checks \\[now\\] on host\\_1"}


def test_unset_priority_is_written_from_the_matrix_and_reported() -> None:
    written = to_fields("jira", Incident(impact=1, urgency=1), PROFILE, ADF, only=["priority"])
    assert written.fields == {"priority": {"name": "Highest"}}
    assert written.losses == ["priority: unset; wrote the impact x urgency value 1"]


def test_long_multiline_title_is_cut_for_jira_and_reported() -> None:
    incident = Incident(title="Outage\n" + "x" * 300)
    written = to_fields("jira", incident, PROFILE, ADF, only=["title"])
    summary = written.fields["summary"]
    assert len(summary) == 255 and summary.endswith("…") and "\n" not in summary
    assert len(written.losses) == 2
    again = to_fields("jira", to_incident("jira", written.fields, PROFILE, ADF), PROFILE, ADF,
                      only=["title"])
    assert again.fields == written.fields and again.losses == []


def test_unknown_category_is_written_as_is_and_reported() -> None:
    written = to_fields("jira", Incident(category="facilities"), EXTENDED, ADF,
                        only=["category"])
    assert written.fields == {"components": [{"name": "facilities"}]}
    assert written.losses == ["category: no to_jira mapping for 'facilities'; written as is"]


def test_any_category_fits_a_label_on_a_stock_site() -> None:
    written = to_fields("jira", Incident(category="facilities"), PROFILE, ADF,
                        only=["category"])
    assert written.fields == {"labels": ["category-facilities"]}
    assert written.losses == []


def test_same_incident_gives_the_same_fields_and_losses() -> None:
    incident = to_incident("jira", _jira("jira_v3_issue.json"), PROFILE, ADF)
    first = to_fields("servicenow", incident, PROFILE, ADF)
    second = to_fields("servicenow", incident.model_copy(deep=True), PROFILE, ADF)
    assert first == second


def test_default_applies_only_to_values_a_map_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text(
        'extends = "jsm-extended"\n[fields.category]\ndefault = "inquiry"\n',
        encoding="utf-8")
    profile = load_profile(str(path))
    # ServiceNow has no category map: its values are taken as they are.
    assert to_incident("servicenow", {"category": "facilities"}, profile).category == (
        "facilities")
    # On Jira an unknown component falls back to the default; a known one maps.
    assert to_incident("jira", {"components": [{"name": "Facilities"}]}, profile,
                       ADF).category == "inquiry"
    assert to_incident("jira", {"components": [{"name": "Database"}]}, profile,
                       ADF).category == "database"


def test_empty_title_gets_a_placeholder_jira_accepts() -> None:
    written = to_fields("jira", Incident(title="  "), PROFILE, ADF, only=["title"])
    assert written.fields == {"summary": "(no title)"}
    assert written.losses == ["title: empty; wrote the fallback '(no title)' to jira"]
    # Only a resolve drags the close code along; the title is not dragged by status.
    assert to_fields("jira", Incident(), PROFILE, ADF, only=["status"]).fields == {
        "status": "Open"}


def test_jira_user_with_hidden_email_is_a_record_error_not_nobody() -> None:
    fields = _jira("jira_v2_issue.json")
    fields["assignee"] = {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Chen Wei"}
    with pytest.raises(RecordError, match="jira field assignee: user 'Chen Wei' shows no email"):
        to_incident("jira", fields, PROFILE, WIKI)
