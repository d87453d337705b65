"""Engine scenarios over both sandboxes, through the real connectors and the default mapping."""

from __future__ import annotations

from typing import Any

import pytest
from sync_helpers import (
    ALICE,
    BOB,
    jira_fields,
    jira_issue,
    linked_pair,
    links,
    only_link,
    sn_incident,
    sync,
    writes,
)

from connectors.sandbox.jira_site import account_id_for

# --------------------------------------------------------------------------- initial sync


# These scenarios are about the vendors (fields, workflows, rich text, users) and run on
# SQLite. The store's own behaviour is tested on SQLite and PostgreSQL in test_state*.py,
# the engine's crash safety on both in test_engine_safety.py and test_engine_sigkill.py;
# two scenarios here (creates with back-links; comment copies known by their ids) also run
# end to end on both databases (state_url, conftest).


@pytest.mark.usefixtures("state_url")
def test_initial_sync_creates_each_side_s_incidents_on_the_other(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "VPN drops every 5 minutes", impact="1", urgency="1")
    key = jira_issue(jira, "Printer on floor 3 jammed",
                     assignee={"accountId": account_id_for(ALICE)})
    config = sync_config()

    summary = sync(make_engine, config)

    assert (summary.created, summary.failed, summary.orphaned) == (2, 0, 0), summary.failures
    assert len(servicenow.rows("incident")) == 2
    assert len(jira.issue_keys()) == 2
    linked = {link.id_on("servicenow"): link.id_on("jira") for link in links(config)}
    assert sn["sys_id"] in linked and key in linked.values()
    copy = jira_fields(jira, linked[sn["sys_id"]])
    assert copy["summary"] == "VPN drops every 5 minutes"
    assert copy["priority"]["name"] == "Highest"
    assert f"snow-{sn['sys_id']}" in copy["labels"]
    # Both carry each other's id.
    assert servicenow.get("incident", sn["sys_id"])["correlation_id"] == linked[sn["sys_id"]]
    (back,) = [r for r in servicenow.rows("incident") if r["sys_id"] != sn["sys_id"]]
    assert back["short_description"] == "Printer on floor 3 jammed"
    assert back["correlation_id"] == key
    assert back["assigned_to"] == servicenow.user_sys_id("alice.smith")


# --------------------------------------------------------------------------- updates


def test_title_edited_in_servicenow_reaches_jira(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    servicenow.update("incident", sys_id, {"short_description": "VPN down for all of Lagos",
                                           "impact": "1"})
    summary = sync(make_engine, config)
    assert (summary.updated, summary.failed, summary.conflicts) == (1, 0, 0)
    fields = jira_fields(jira, key)
    assert fields["summary"] == "VPN down for all of Lagos"
    assert fields["customfield_10004"]["value"] == "Extensive / Widespread"
    assert fields["priority"]["name"] == "High"   # ServiceNow recomputed 2 from 1 x 2


@pytest.mark.parametrize("jira_mode", ["cloud", "datacenter"], indirect=True)
def test_fields_edited_in_jira_reach_servicenow(
    sandboxes: Any, sync_config: Any, make_engine: Any, jira_mode: str
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    bob = {"accountId": account_id_for(BOB)} if jira_mode == "cloud" else {"name": "bob.jones"}
    jira.edit_issue(key, {"summary": "VPN down: gateway replaced",
                          "assignee": bob,
                          "customfield_10005": {"value": "High"}})
    summary = sync(make_engine, config)
    # ServiceNow, then Jira again: ServiceNow derived a new priority from the urgency.
    assert (summary.updated, summary.failed) == (2, 0), summary.failures
    record = servicenow.get("incident", sys_id)
    assert record["short_description"] == "VPN down: gateway replaced"
    assert record["assigned_to"] == servicenow.user_sys_id("bob.jones")
    assert record["urgency"] == "1"
    assert jira_fields(jira, key)["priority"]["name"] == "High"
    servicenow.log.clear()
    jira.log.clear()
    assert sync(make_engine, config).updated == 0
    assert writes(servicenow) == [] and writes(jira) == []


# --------------------------------------------------------------------------- conflicts


# --------------------------------------------------------------------------- status


# On Cloud: the connector's path finding through the workflow is tested on both
# flavours in test_connector_jira.py (test_resolve_finds_a_path_through_work_in_progress).
def test_resolving_in_servicenow_walks_the_jira_workflow(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    assert jira_fields(jira, key)["status"]["name"] == "Open"
    # Open -> Resolved has no direct transition: the connector goes through Work in progress.
    servicenow.update("incident", sys_id, {"state": "6", "close_code": "Duplicate",
                                           "close_notes": "Same as INC0009999"})
    summary = sync(make_engine, config)
    assert (summary.updated, summary.failed) == (1, 0), summary.failures
    fields = jira_fields(jira, key)
    assert fields["status"]["name"] == "Resolved"
    assert fields["resolution"]["name"] == "Duplicate"
    jira.log.clear()
    assert sync(make_engine, config).updated == 0
    assert writes(jira) == []


def test_jira_status_change_sets_the_servicenow_state(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    jira.transition_issue(key, "Pending")
    summary = sync(make_engine, config)
    assert (summary.updated, summary.failed) == (1, 0), summary.failures
    record = servicenow.get("incident", sys_id)
    assert record["state"] == "3" and record["hold_reason"] == "1"


def test_resolving_in_jira_resolves_servicenow_with_close_code_and_notes(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    jira.transition_issue(key, "Resolved", resolution="Duplicate")
    summary = sync(make_engine, config)
    assert (summary.updated, summary.failed) == (1, 0), summary.failures
    record = servicenow.get("incident", sys_id)
    assert record["state"] == "6"
    assert record["close_code"] == "Duplicate"
    assert record["close_notes"] == f"Resolved in Jira {key}"
    # A stock Jira site has no notes field: the notes stay ServiceNow-side.
    assert "customfield_10008" not in jira_fields(jira, key)
    servicenow.log.clear()
    jira.log.clear()
    assert sync(make_engine, config).updated == 0
    assert writes(servicenow) == [] and writes(jira) == []


# --------------------------------------------------------------------------- comments


# On Cloud: comment visibility on Data Center is the connector contract's
# (TestJiraDataCenterContract) and test_data_center_round_trip_with_wiki_text_and_no_echo's.
@pytest.mark.usefixtures("state_url")
def test_comments_and_work_notes_cross_once_with_their_visibility(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    servicenow.update("incident", sys_id, {"comments": "Please restart the client"})
    servicenow.update("incident", sys_id, {"work_notes": "Gateway logs show drops"})
    jira.add_comment(key, "Caller confirms it works", author_email=ALICE)
    jira.add_comment(key, "Escalated to vendor", internal=True, author_email=BOB)

    summary = sync(make_engine, config)
    assert (summary.comments, summary.failed) == (4, 0), summary.failures

    copies = {c["body"].split("\n\n", 1)[1]: c["jsdPublic"]
              for c in jira_fields(jira, key)["comment"]["comments"] if "\n\n" in c["body"]}
    assert copies == {"Please restart the client": True, "Gateway logs show drops": False}
    journal = {row["value"].split("\n\n", 1)[-1]: row["element"]
               for row in servicenow.journal(sys_id)}
    assert journal["Caller confirms it works"] == "comments"
    assert journal["Escalated to vendor"] == "work_notes"
    (copied,) = [r["value"] for r in servicenow.journal(sys_id) if "Escalated" in r["value"]]
    assert copied.startswith(f"[Jira {key}] {BOB}")

    # No echo, no duplicates: copies are known by their ids. The final version
    # stamps were committed, so the pair is skipped without even being mapped.
    stamped = only_link(config).updated_at
    for _ in range(2):
        assert sync(make_engine, config).comments == 0
    assert only_link(config).updated_at == stamped
    assert len(servicenow.journal(sys_id)) == 4
    assert len(jira_fields(jira, key)["comment"]["comments"]) == 4


# --------------------------------------------------------------------------- flavors, direction


@pytest.mark.parametrize("jira_mode", ["datacenter"], indirect=True)
def test_data_center_round_trip_with_wiki_text_and_no_echo(
    sandboxes: Any, sync_config: Any, make_engine: Any, jira_mode: str
) -> None:
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "Report *slow* [again]",
                     description="Steps:\n* open the report\n* wait {forever}")
    key = jira_issue(jira, "Badge reader broken")
    jira.add_comment(key, "Replaced the cable", internal=True)
    config = sync_config()

    first = sync(make_engine, config)

    assert (first.created, first.comments, first.failed) == (2, 1, 0), first.failures
    link = {lk.id_on("servicenow"): lk.id_on("jira") for lk in links(config)}[sn["sys_id"]]
    engine = make_engine(config)
    engine.open()
    copy = engine.connectors["jira"].get_many([link], engine.vendor_fields["jira"])[link]
    assert engine.incident(copy).description == "Steps:\n* open the report\n* wait {forever}"
    assert engine.incident(copy).title == "Report *slow* [again]"
    (back,) = [r for r in servicenow.rows("incident") if r["correlation_id"] == key]
    assert [j["value"].split("\n\n", 1)[1] for j in servicenow.journal(back["sys_id"])] == [
        "Replaced the cable"]
    servicenow.log.clear()
    jira.log.clear()
    second = sync(make_engine, config)
    assert (second.created, second.updated, second.comments) == (0, 0, 0)
    assert writes(servicenow) == [] and writes(jira) == []


def test_a_title_one_tool_cuts_is_never_cut_on_the_other(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    # Jira takes 255 characters; ServiceNow keeps 160 of a short_description.
    long_title = ("Outage: " + "very long description of the problem " * 6)[:230]
    key = jira_issue(jira, long_title)
    config = sync_config()
    first = sync(make_engine, config)
    assert (first.created, first.failed) == (1, 0), first.failures
    sys_id = only_link(config).id_on("servicenow")
    assert servicenow.get("incident", sys_id)["short_description"] == long_title[:160]
    assert jira_fields(jira, key)["summary"] == long_title

    jira.edit_issue(key, {"description": "New details from the Jira side"})
    servicenow.update("incident", sys_id, {"urgency": "1"})
    summary = sync(make_engine, config)

    assert summary.failed == 0, summary.failures
    record = servicenow.get("incident", sys_id)
    assert record["description"] == "New details from the Jira side"
    assert record["short_description"] == long_title[:160]
    assert jira_fields(jira, key)["summary"] == long_title     # never replaced by the cut
    servicenow.log.clear()
    jira.log.clear()
    assert sync(make_engine, config).updated == 0
    assert writes(servicenow) == [] and writes(jira) == []


def test_a_person_the_other_tool_does_not_know_is_never_wiped_from_the_original(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    contractor = servicenow.insert("sys_user", {"user_name": "zoe.extern", "name": "Zoe Extern",
                                                "email": "zoe.extern@contractor.example"})
    sn = sn_incident(servicenow, "Laptop swap", assigned_to=contractor["sys_id"])
    config = sync_config()

    summary = sync(make_engine, config)

    assert summary.failed == 0, summary.failures
    assert any("zoe.extern@contractor.example" in w for w in summary.warnings)
    key = only_link(config).id_on("jira")
    assert jira_fields(jira, key)["assignee"] is None          # unknown in Jira: left empty
    assert servicenow.get("incident", sn["sys_id"])["assigned_to"] == contractor["sys_id"]
    jira.edit_issue(key, {"summary": "Laptop swap (new model)"})
    assert sync(make_engine, config).failed == 0
    record = servicenow.get("incident", sn["sys_id"])
    assert record["short_description"] == "Laptop swap (new model)"
    assert record["assigned_to"] == contractor["sys_id"]
