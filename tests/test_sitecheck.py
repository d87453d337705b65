"""The profile-vs-site checker (pure) and the site metadata the sandboxes serve for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from jira import JIRA

from connectors.base import SiteField
from connectors.jira_fields import allowed_labels, field_type, site_fields
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.servicenow import ServiceNowSandbox
from mappings.profile import MappingError, load_profile
from sync.sitecheck import FieldFinding, effective_profile, find_field, verify_side

USER, PASSWORD = "admin", "sandbox"

JIRA_SITE = [
    SiteField("summary", "Summary", "string", on_create=True, on_edit=True),
    SiteField("description", "Description", "string", on_create=True, on_edit=True),
    # Set through transitions: the connector does not claim a screen either way.
    SiteField("status", "Status", "status"),
    SiteField("resolution", "Resolution", "resolution"),
    SiteField("issuetype", "Issue Type", "issuetype", allowed=("Incident",), on_create=True,
              on_edit=False, note="not on the edit screen of OPS / Incident"),
    SiteField("customfield_10231", "Sub-category", "string (textfield)", custom=True,
              on_create=True, on_edit=True),
    SiteField("customfield_10005", "Urgency", "option (select)", custom=True,
              allowed=("Critical", "High", "Medium", "Low"), on_create=True, on_edit=True),
]


def profile_of(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return load_profile(str(path))


def test_a_field_name_the_site_lacks_names_the_closest_it_has(tmp_path: Path) -> None:
    profile = profile_of(tmp_path, '[fields.subcategory]\njira = "Subcategory"\n'
                                   'servicenow = "subcategory"\n')

    (finding,) = verify_side(profile, "jira", JIRA_SITE)

    assert finding.detail == ("Subcategory: not on this site; similar: "
                              "Sub-category (customfield_10231)")
    assert finding.key == "fields.subcategory.jira" and not finding.skipped
    assert finding.line("p.toml") == ("p.toml: fields.subcategory.jira: Jira field "
                                      "'Subcategory': not on this site; similar: "
                                      "Sub-category (customfield_10231)")


def test_names_match_in_any_case_and_ids_match_exactly() -> None:
    assert find_field("jira", "urgency", JIRA_SITE) is JIRA_SITE[6]
    assert find_field("jira", "customfield_10231", JIRA_SITE) is JIRA_SITE[5]
    # ServiceNow profiles name columns, never labels: "caller" is not caller_id.
    columns = [SiteField("caller_id", "Caller", "reference -> sys_user")]
    assert find_field("servicenow", "caller", columns) is None
    assert find_field("servicenow", "caller_id", columns) is columns[0]


def test_an_option_the_select_lacks_fails_even_behind_a_wildcard(tmp_path: Path) -> None:
    profile = profile_of(tmp_path, '[fields.custom.sev]\njira = "Urgency"\n'
                                   'to_jira = { "high" = "High", "*" = "Medium-ish" }\n')

    (finding,) = verify_side(profile, "jira", JIRA_SITE)

    assert "does not offer 'Medium-ish'" in finding.problem
    assert finding.similar == ("'Medium'",)


def test_a_field_missing_from_the_edit_screen_cannot_be_written(tmp_path: Path) -> None:
    profile = profile_of(tmp_path, '[fields.custom.kind]\njira = "issuetype"\n'
                                   'to_jira = { "*" = "Incident" }\n')

    (finding,) = verify_side(profile, "jira", JIRA_SITE)

    assert finding.problem == ("not on the edit screen of OPS / Incident, so it cannot be "
                               "changed")


def test_rows_that_only_read_or_go_through_transitions_need_no_screen(tmp_path: Path) -> None:
    profile = profile_of(tmp_path, (
        '[fields.status]\njira = "status"\nto_jira = { "*" = "Open" }\n\n'
        '[fields.resolution_code]\njira = { field = "resolution", transform = "name_object" }\n'
        '\n[fields.custom.kind]\njira = "Issue Type"\ndirection = "none"\n'))

    assert verify_side(profile, "jira", JIRA_SITE) == []


def test_an_optional_row_is_skipped_and_dropped_from_the_profile(tmp_path: Path) -> None:
    profile = profile_of(tmp_path, '[fields.title]\njira = "summary"\n\n'
                                   '[fields.subcategory]\njira = "Subcategoryy"\n'
                                   'optional = true\n')

    findings = verify_side(profile, "jira", JIRA_SITE)

    assert [f.skipped for f in findings] == [True]
    assert findings[0].detail.endswith("; optional row skipped")
    assert effective_profile(profile, findings).neutral_fields() == ["title"]


def test_optional_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"fields\.subcategory\.optional"):
        profile_of(tmp_path, '[fields.subcategory]\njira = "Sub"\noptional = "yes"\n')


def test_servicenow_read_only_columns_and_choice_values(tmp_path: Path) -> None:
    columns = [
        SiteField("number", "Number", "string", on_create=False, on_edit=False,
                  note="a read-only column of incident"),
        SiteField("hold_reason", "On hold reason", "integer", allowed=("1", "3", "4", "5"),
                  on_create=True, on_edit=True),
    ]
    profile = profile_of(tmp_path, (
        '[fields.custom.num]\nservicenow = "number"\n\n'
        '[fields.custom.hold]\nservicenow = "hold_reason"\nrequired_for = ["on_hold"]\n'
        'fallback = "2"\n\n[fields.custom.ro]\nservicenow = "number"\ndirection = "none"\n'))

    findings = verify_side(profile, "servicenow", columns)

    assert [(f.neutral, f.problem) for f in findings] == [
        ("custom.num", "a read-only column of incident, so it cannot be set"),
        ("custom.hold", "does not offer '2' (offers: '1', '3', '4', '5')"),
    ]


def test_an_unreadable_field_list_claims_nothing(tmp_path: Path) -> None:
    profile = profile_of(tmp_path, '[fields.subcategory]\njira = "Nope"\n')
    assert verify_side(profile, "jira", []) == []


def test_finding_keys_name_the_profile_row() -> None:
    finding = FieldFinding("servicenow", "custom.severity", "u_sev", "not on this site")
    assert finding.key == "fields.custom.severity.servicenow"


# --------------------------------------------------------------------------- Jira metadata


def test_jira_field_types_and_allowed_values_read_as_people_know_them() -> None:
    assert field_type({"type": "array", "items": "component", "system": "components"}) == \
        "array<component>"
    assert field_type({"type": "option", "custom": "com.atlassian.jira.plugin.system."
                       "customfieldtypes:select"}) == "option (select)"
    assert allowed_labels([{"value": "High"}, {"name": "Done"},
                           {"value": "Old", "disabled": True}]) == ("High", "Done")
    assert allowed_labels(None) is None


def test_a_site_without_screens_leaves_settability_unknown() -> None:
    (only,) = site_fields([{"id": "summary", "name": "Summary", "schema": {"type": "string"}}],
                          None, None)
    assert only.on_create is None and only.on_edit is None and only.note == ""


def test_screens_say_where_a_field_is_missing_and_leave_transition_fields_alone() -> None:
    listed = [{"id": i, "name": i.title()} for i in ("summary", "creator", "status",
                                                      "resolution")]
    fields = {f.id: f for f in site_fields(listed, [{"fieldId": "summary"}],
                                           {"summary": {}}, where="OPS / Incident")}

    assert fields["summary"].on_create is True and fields["summary"].note == ""
    assert fields["creator"].note == ("on neither the create nor the edit screen of "
                                      "OPS / Incident")
    assert fields["status"].on_create is None and fields["resolution"].on_edit is None


@pytest.mark.parametrize("mode", ["cloud", "datacenter"])
def test_the_jira_sandbox_serves_editmeta_to_the_jira_library(mode: str) -> None:
    with JiraSandbox(mode=mode, username=USER, password=PASSWORD) as sandbox:
        key = sandbox.create_issue({"summary": "Fan noise"})
        auth: dict[str, Any] = ({"basic_auth": (USER, PASSWORD)} if mode == "cloud"
                                else {"token_auth": PASSWORD})
        client = JIRA(server=sandbox.url, max_retries=0, **auth)

        meta = client.editmeta(key)["fields"]

        assert meta["summary"]["operations"] == ["set"]
        assert "project" not in meta and "issuetype" not in meta
        urgency = next(v for v in meta.values() if v["name"] == "Urgency")
        assert [o["value"] for o in urgency["allowedValues"]][:1] == ["Critical"]


# --------------------------------------------------------------------------- ServiceNow


def test_the_servicenow_dictionary_is_read_only_and_splits_task_from_incident() -> None:
    with ServiceNowSandbox(username=USER, password=PASSWORD) as sandbox:
        def get(table: str, query: str) -> list[dict[str, Any]]:
            response = requests.get(f"{sandbox.url}/api/now/table/{table}",
                                    params={"sysparm_query": query}, auth=(USER, PASSWORD),
                                    headers={"Accept": "application/json"}, timeout=10)
            assert response.status_code == 200, response.text
            return list(response.json()["result"])

        state = get("sys_dictionary", "element=state")
        caller = get("sys_dictionary", "element=caller_id")
        incident = get("sys_db_object", "name=incident")
        refused = requests.post(f"{sandbox.url}/api/now/table/sys_dictionary",
                                json={"name": "incident", "element": "u_x"},
                                auth=(USER, PASSWORD), timeout=10,
                                headers={"Accept": "application/json"})

    assert [(r["name"], r["internal_type"], r["choice"]) for r in state] == [
        ("task", "integer", "3")]
    assert [(r["name"], r["column_label"], r["reference"]) for r in caller] == [
        ("incident", "Caller", "sys_user")]
    assert len(incident) == 1 and incident[0]["super_class"]
    assert refused.status_code == 403


def test_a_user_who_may_not_read_the_dictionary_gets_a_records_columns() -> None:
    from connectors.base import AuthError
    from connectors.servicenow import ServiceNowConnector

    with ServiceNowSandbox(username=USER, password=PASSWORD, seed_incidents=1) as sandbox:
        connector = ServiceNowConnector(sandbox.url, USER, PASSWORD)
        real_list = connector._list

        def acl(table: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            # The instance's answer to an itil user reading system tables (403).
            if table in ("sys_dictionary", "sys_db_object"):
                raise AuthError(f"ACL: no read access to {table}", side="servicenow")
            return real_list(table, *args, **kwargs)

        connector._list = acl  # type: ignore[method-assign]
        connector.open()
        fields = {f.id: f for f in connector.site_fields()}
        connector.close()

    # Inherited columns are there (from the record), typed unknown.
    assert fields["short_description"].type == "unknown"
    assert fields["caller_id"].name == "caller_id"
    assert fields["state"].allowed is None  # not known to be a choice without the dictionary


@pytest.mark.parametrize("mode", ["cloud", "datacenter"])
def test_the_edit_screen_is_read_from_an_open_issue_never_a_done_one(mode: str) -> None:
    from connectors.jira import JiraConnector

    with JiraSandbox(mode=mode, username=USER, password=PASSWORD) as sandbox:
        done = sandbox.create_issue({"summary": "Old outage"})
        sandbox.transition_issue(done, "Resolved")
        connector = JiraConnector(sandbox.url, email=USER if mode == "cloud" else None,
                                  token=PASSWORD, project="OPS", issue_type="Incident")
        connector.open()
        only_done = {f.id: f for f in connector.site_fields()}
        sandbox.create_issue({"summary": "New outage"})
        with_open = {f.id: f for f in connector.site_fields()}
        connector.close()
        asked = [e.path for e in sandbox.log.entries if e.path.endswith("/editmeta")]

    assert only_done["summary"].on_edit is None
    assert with_open["summary"].on_edit is True
    assert asked == [f"/rest/api/{'3' if mode == 'cloud' else '2'}/issue/OPS-2/editmeta"]
