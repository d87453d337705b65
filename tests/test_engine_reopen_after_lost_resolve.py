"""A person's reopen after a lost reply to our resolve is not undone by that resolve.

Contract: through the real engine, connectors and both sandboxes, a person
resolves a linked ServiceNow incident; the run carries the resolve to Jira
(the issue enters Resolved) but the transition's reply is lost, so the pair
waits in the retry queue with its old snapshot (both In Progress). A person
then reopens the ServiceNow incident (In Progress; ServiceNow keeps the close
code). The next runs do not take ServiceNow's status as unchanged: its history
shows a person's edit after the last committed sync, the newest person's edit
of the status wins, and both tools end In Progress.

This is the soak's lost edit (issue #10): there the soak's "persons" edit
through the sandboxes' helpers as the integration user itself, whose edits a
tool's history cannot tell from the sync's own writes; such an edit cannot win
an ABA through a lost reply, and the soak must act as a person.
"""

from __future__ import annotations

from typing import Any

from test_engine_lost_replies import linked_pair, retry_ids
from test_engine_state_machine import LostReplies, pair_incidents

EDITOR = "elif.yilmaz"               # a person on both tools (not the integration user)


def test_reopen_after_a_lost_reply_to_our_resolve_is_not_undone(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config = sync_config()
    sys_id, key = linked_pair(servicenow, jira, config, make_engine)
    servicenow.update("incident", sys_id, {"state": "2"}, as_user=EDITOR)
    assert make_engine(config).run().failed == 0
    assert jira.issue(key)["fields"]["status"]["name"] == "Work in progress"

    servicenow.update("incident", sys_id, {
        "state": "6", "close_code": "Resolved by caller",
        "close_notes": "Caller confirms it works"}, as_user=EDITOR)
    lost = LostReplies(jira)
    lost.set(1.0, 0, path=r"/transitions$")   # Jira moves the issue; we never hear
    assert make_engine(config).run().failed == 1
    lost.set(0.0, 0)
    assert jira.issue(key)["fields"]["status"]["name"] == "Resolved", "the lost move landed"
    assert retry_ids(config)
    servicenow.update("incident", sys_id, {"state": "2"}, as_user=EDITOR)   # reopened

    for _ in range(2):
        summary = make_engine(config).run()
        assert summary.failed == 0, summary.failures

    incidents = pair_incidents(make_engine(config), sys_id, key)
    assert servicenow.get("incident", sys_id)["state"] == "2"
    assert incidents["servicenow"].status == incidents["jira"].status
    assert jira.issue(key)["fields"]["status"]["name"] == "Work in progress"
    assert not retry_ids(config)
