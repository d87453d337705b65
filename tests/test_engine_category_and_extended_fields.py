"""Where ServiceNow's category, subcategory, group, escalation and close notes go.

On a stock JSM site (the default profile) the category and subcategory travel in
``category-`` / ``subcategory-`` labels beside the user's own labels, and the group,
escalation and close notes stay ServiceNow-side. On a site an admin prepared
(``incident-sync sandbox --jira-fields extended``, the ``jsm-extended`` profile) they
travel in components and admin-made fields, both ways."""

from __future__ import annotations

from typing import Any

import pytest
from sync_helpers import jira_fields, linked_pair, sn_incident, sync, writes


@pytest.mark.parametrize("jira_mode", ["cloud", "datacenter"], indirect=True)
def test_category_and_subcategory_travel_as_labels_on_a_stock_site(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "Billing DB slow", category="database",
                     subcategory="MS SQL Server")
    config = sync_config()
    first = sync(make_engine, config)
    assert (first.created, first.failed) == (1, 0), first.failures
    key = jira.issue_keys()[0]
    labels = jira_fields(jira, key)["labels"]
    assert {"category-database", "subcategory-MS%20SQL%20Server"} <= set(labels)
    assert jira_fields(jira, key)["components"] == []
    # A Jira agent recategorizes and adds a label of their own.
    jira.edit_issue(key, {"labels": [label for label in labels if not label.startswith(
        "category-")] + ["category-network", "vip"]})
    second = sync(make_engine, config)
    assert (second.updated, second.failed) == (1, 0), second.failures
    record = servicenow.get("incident", sn["sys_id"])
    assert (record["category"], record["subcategory"]) == ("network", "MS SQL Server")
    # ServiceNow changes the subcategory: the Jira labels change, the others stay.
    servicenow.update("incident", sn["sys_id"], {"subcategory": "Oracle"})
    assert sync(make_engine, config).failed == 0
    after = set(jira_fields(jira, key)["labels"])
    assert {"category-network", "subcategory-Oracle", "vip"} <= after
    assert not any(label.startswith("subcategory-MS") for label in after)
    assert any(label.startswith("snow-") for label in after)  # the link marker survives
    servicenow.log.clear()
    jira.log.clear()
    assert sync(make_engine, config).updated == 0
    assert writes(servicenow) == [] and writes(jira) == []


def test_group_and_escalation_stay_on_servicenow_on_a_stock_site(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, _ = linked_pair(sandboxes, sync_config, make_engine)
    jira.log.clear()
    servicenow.update("incident", sys_id, {"assignment_group": servicenow.group_sys_id(
        "Database"), "escalation": "2"})
    summary = sync(make_engine, config)
    assert summary.failed == 0, summary.failures
    assert writes(jira) == []  # nothing on Jira holds them
    record = servicenow.get("incident", sys_id)
    assert record["escalation"] == "2"
    assert record["assignment_group"] == servicenow.group_sys_id("Database")


@pytest.mark.parametrize("jira_fields", ["extended"], indirect=True)
@pytest.mark.parametrize("jira_mode", ["cloud", "datacenter"], indirect=True)
def test_the_extended_profile_round_trips_admin_made_fields_and_components(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "Wifi down on floor 3", category="network",
                     subcategory="Wireless", escalation="1")
    config = sync_config(mapping="jsm-extended")
    first = sync(make_engine, config)
    assert (first.created, first.failed) == (1, 0), first.failures
    key = jira.issue_keys()[0]
    fields = jira_fields(jira, key)
    assert [c["name"] for c in fields["components"]] == ["Network"]
    assert fields["customfield_10006"] == "Network"      # Assignment group
    assert fields["customfield_10007"] == "Wireless"     # Subcategory
    assert fields["customfield_10009"]["value"] == "Moderate"  # Escalation
    assert not any(label.startswith("category-") for label in fields["labels"])
    # Jira moves it all, then resolves with its own notes.
    jira.edit_issue(key, {"components": [{"name": "Hardware"}],
                          "customfield_10006": "Hardware", "customfield_10007": "Access point",
                          "customfield_10009": {"value": "High"},
                          "customfield_10008": "Replaced the access point."})
    jira.transition_issue(key, "Resolved", resolution="Fixed")
    second = sync(make_engine, config)
    assert second.failed == 0, second.failures
    record = servicenow.get("incident", sn["sys_id"])
    assert (record["category"], record["subcategory"]) == ("hardware", "Access point")
    assert record["assignment_group"] == servicenow.group_sys_id("Hardware")
    assert record["escalation"] == "2"
    assert record["state"] == "6"
    assert record["close_notes"] == "Replaced the access point."
    servicenow.log.clear()
    jira.log.clear()
    assert sync(make_engine, config).updated == 0
    assert writes(servicenow) == [] and writes(jira) == []


@pytest.mark.parametrize("jira_fields", ["extended"], indirect=True)
def test_servicenow_close_notes_invented_on_resolve_reach_the_extended_jira_field(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine,
                                      mapping="jsm-extended")
    jira.transition_issue(key, "Resolved", resolution="Duplicate")
    summary = sync(make_engine, config)
    assert (summary.updated, summary.failed) == (2, 0), summary.failures
    assert servicenow.get("incident", sys_id)["close_notes"] == f"Resolved in Jira {key}"
    # The notes ServiceNow required were invented: Jira gets the same text, so
    # the tools agree even after a reopen (ServiceNow keeps close notes).
    assert jira_fields(jira, key)["customfield_10008"] == f"Resolved in Jira {key}"
