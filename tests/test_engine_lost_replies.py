"""A write whose reply was lost never overrides a person's later edit of that field.

Contract: through the real engine, connectors and both sandboxes, a field write
the tool carried out but whose reply never came back (a proxy answered 504)
leaves the pair in the retry queue with its old snapshot. When a person then
sets the field back to the value it had at the last sync (unassigns the record
the sync had just assigned), the next run does not take that side as
unchanged: the tool's history shows a person's edit after the last committed
sync, so the person's edit counts, both ways, and the newest person's edit of
the field wins (a recorded conflict). Fields nobody touched after the lost
write keep their usual outcome. The same holds where the lost write was an
adoption of a copy an interrupted create left unlinked, and where a person
emptied a field of the original before its copy was adopted.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_engine_state_machine import LostReplies, pair_incidents

from connectors.sandbox.jira_site import account_id_for
from sync.engine import SimulatedCrash
from sync.state import StateStore

EDITOR = "elif.yilmaz"               # a person on both tools (not the integration user)
EDITOR_EMAIL = f"{EDITOR}@example.com"
AGENT = "alice.smith"
AGENT_EMAIL = f"{AGENT}@example.com"


def jira_assignee(jira: Any, agent: str | None) -> dict[str, str] | None:
    if agent is None:
        return None
    return {"accountId": account_id_for(f"{agent}@example.com")} if jira.cloud else {"name": agent}


def linked_pair(servicenow: Any, jira: Any, config: Any, make_engine: Any) -> tuple[str, str]:
    """An unassigned ServiceNow incident and its Jira copy, in step."""
    row = servicenow.insert("incident", {"short_description": "Laptop will not boot",
                                         "impact": "2", "urgency": "2"}, as_user=EDITOR)
    assert make_engine(config).run().failed == 0
    (key,) = jira.issue_keys()
    return row["sys_id"], key


def retry_ids(config: Any) -> set[str]:
    with StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False) as store:
        return {item.record_id for item in store.retry_items()}


def test_unassign_after_a_lost_reply_to_our_assign_is_not_undone(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """Found by the machine: Jira's assignee reached ServiceNow, the reply was lost, a
    person then unassigned the ServiceNow record, and the next run assigned it again
    (ServiceNow's empty assignee equals the old base: an ABA through the lost reply)."""
    servicenow, jira = sandboxes
    config = sync_config()
    sys_id, key = linked_pair(servicenow, jira, config, make_engine)
    jira.edit_issue(key, {"assignee": jira_assignee(jira, AGENT)}, as_user=EDITOR_EMAIL)
    lost = LostReplies(servicenow)
    lost.set(1.0, 0, path=r"/api/now/table/incident/")   # ServiceNow writes; we never hear
    assert make_engine(config).run().failed == 1
    lost.set(0.0, 0)
    assert servicenow.get("incident", sys_id)["assigned_to"], "the lost write landed"
    assert retry_ids(config)
    servicenow.update("incident", sys_id, {"assigned_to": ""}, as_user=EDITOR)

    for _ in range(2):
        summary = make_engine(config).run()
        assert summary.failed == 0, summary.failures

    incidents = pair_incidents(make_engine(config), sys_id, key)
    assert incidents["servicenow"].assignee is None
    assert incidents["jira"].assignee is None   # the newest person's edit travelled
    assert not retry_ids(config)


def test_other_fields_after_a_lost_reply_still_travel(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """The same lost write, but the person on ServiceNow edits another field: the Jira
    assignee stays on ServiceNow, and the ServiceNow edit reaches Jira."""
    servicenow, jira = sandboxes
    config = sync_config()
    sys_id, key = linked_pair(servicenow, jira, config, make_engine)
    jira.edit_issue(key, {"assignee": jira_assignee(jira, AGENT)}, as_user=EDITOR_EMAIL)
    lost = LostReplies(servicenow)
    lost.set(1.0, 0, path=r"/api/now/table/incident/")
    assert make_engine(config).run().failed == 1
    lost.set(0.0, 0)
    servicenow.update("incident", sys_id, {"short_description": "Laptop boots to a black screen"},
                      as_user=EDITOR)

    for _ in range(2):
        summary = make_engine(config).run()
        assert summary.failed == 0, summary.failures

    incidents = pair_incidents(make_engine(config), sys_id, key)
    for incident in incidents.values():
        assert (incident.assignee, incident.title) == (
            AGENT_EMAIL, "Laptop boots to a black screen")
    assert not retry_ids(config)


def test_reassign_in_jira_after_a_lost_reply_reaches_servicenow(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """The mirror: ServiceNow's assignee reached Jira with its reply lost, then a person
    unassigned the Jira issue; the unassign stands and travels to ServiceNow."""
    servicenow, jira = sandboxes
    config = sync_config()
    sys_id, key = linked_pair(servicenow, jira, config, make_engine)
    servicenow.update("incident", sys_id, {"assigned_to": servicenow.user_sys_id(AGENT)},
                      as_user=EDITOR)
    lost = LostReplies(jira)
    lost.set(1.0, 0, path=rf"/issue/{key}$")   # Jira edits the issue; we never hear
    assert make_engine(config).run().failed == 1
    lost.set(0.0, 0)
    assert jira.issue(key)["fields"]["assignee"], "the lost write landed"
    jira.edit_issue(key, {"assignee": None}, as_user=EDITOR_EMAIL)

    for _ in range(2):
        summary = make_engine(config).run()
        assert summary.failed == 0, summary.failures

    incidents = pair_incidents(make_engine(config), sys_id, key)
    assert incidents["servicenow"].assignee is None
    assert incidents["jira"].assignee is None


def test_unassign_after_a_lost_reply_to_an_adoption_is_not_undone(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """The issue's own example: a crash left a copy unlinked (its create intent
    pending); a person assigned the copy, the adoption's write of that assignee to
    ServiceNow lost its reply, and a person unassigned ServiceNow. Both people
    changed the field since the create: the later edit (ServiceNow's) wins."""
    servicenow, jira = sandboxes
    config = sync_config()
    row = servicenow.insert("incident", {"short_description": "Laptop will not boot",
                                         "impact": "2", "urgency": "2"}, as_user=EDITOR)
    sys_id = row["sys_id"]
    with pytest.raises(SimulatedCrash):   # the copy exists, unlinked
        make_engine(config, crash_at="create:after-remote").run()
    (key,) = jira.issue_keys()
    jira.edit_issue(key, {"assignee": jira_assignee(jira, AGENT)}, as_user=EDITOR_EMAIL)
    lost = LostReplies(servicenow)
    lost.set(1.0, 0, path=r"/api/now/table/incident/")
    assert make_engine(config).run().failed == 1
    lost.set(0.0, 0)
    assert servicenow.get("incident", sys_id)["assigned_to"], "the lost write landed"
    servicenow.update("incident", sys_id, {"assigned_to": ""}, as_user=EDITOR)

    for _ in range(2):
        summary = make_engine(config).run()
        assert summary.failed == 0, summary.failures

    incidents = pair_incidents(make_engine(config), sys_id, key)
    assert incidents["servicenow"].assignee is None
    assert incidents["jira"].assignee is None


def test_description_emptied_on_the_original_after_an_interrupted_create_reaches_the_copy(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """Found by the machine (same family, no lost reply needed): the copy holds the
    description the create wrote; a person empties it on the original before the
    copy is adopted. The emptying is the person's, not a tool dropping a value."""
    servicenow, jira = sandboxes
    config = sync_config()
    row = servicenow.insert("incident", {"short_description": "Laptop will not boot",
                                         "description": "Users report the problem since 08:00.",
                                         "impact": "2", "urgency": "2"}, as_user=EDITOR)
    sys_id = row["sys_id"]
    with pytest.raises(SimulatedCrash):   # the copy exists, unlinked
        make_engine(config, crash_at="create:after-remote").run()
    (key,) = jira.issue_keys()
    servicenow.update("incident", sys_id, {"description": ""}, as_user=EDITOR)

    for _ in range(2):
        summary = make_engine(config).run()
        assert summary.failed == 0, summary.failures

    incidents = pair_incidents(make_engine(config), sys_id, key)
    assert incidents["servicenow"].description in (None, "")
    assert incidents["jira"].description in (None, "")
