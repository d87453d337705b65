"""A copy the sync made but did not finish never undoes a person's work on the original.

Contract: through the real engine, connectors and both sandboxes, a ServiceNow
incident that people moved to In Progress or On Hold (with its hold reason)
gets a Jira copy; the copy is created in Jira's initial status and then moved
by transitions. When that move does not happen (the transition fails with a
500 and the item waits in the retry queue, or the run is interrupted by Ctrl-C
between the create and the transition), the later runs adopt the copy and
push the original's status to it; the original keeps its status and hold
reason, no conflict is recorded and the pair ends in step. A person's own
edit of the copy after the create still counts, and wins where the original
was not edited since. Likewise for a linked pair: a multi-step transition the
sync got half done is its own work, not a person's move, and never wins a
conflict against the person's change it was carrying.

The SIGINT case with a real ``incident-sync run`` child is in
``test_engine_sigint.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import (
    EDITOR,
    EDITOR_EMAIL,
    ON_HOLD_AWAITING_CALLER,
    jira_status,
    seed_worked_incidents,
)

from connectors.jira import JiraConnector
from connectors.sandbox.http import Request, Response
from sync.state import StateStore


def copies(servicenow: Any, config: Path) -> dict[str, str]:
    """sys_id -> Jira key, from the state store."""
    with StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False) as store:
        return {link.id_on("servicenow"): link.id_on("jira") for link in store.all_links()}


def open_conflicts(config: Path) -> list[Any]:
    with StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False) as store:
        return store.open_conflicts()


JIRA_STATUS_OF = {"2": "Work in progress", "3": "Pending"}


def check_originals_kept(servicenow: Any, jira: Any, config: Path,
                         states: dict[str, str]) -> None:
    linked = copies(servicenow, config)
    assert sorted(linked) == sorted(states)
    for sys_id, state in states.items():
        row = servicenow.get("incident", sys_id)
        assert row is not None
        assert row["state"] == state, (row["number"], row["state"])
        if state == "3":
            assert row["hold_reason"] == ON_HOLD_AWAITING_CALLER
        assert jira_status(jira, linked[sys_id]) == JIRA_STATUS_OF[state]


def test_a_copy_whose_transition_failed_gets_the_original_status_on_the_retry(
    sandboxes: Any, sync_config: Any, make_engine: Any, failing_transitions: list[int]
) -> None:
    """User report: 'Jira transition OPS-57 to Work in progress: HTTP 500', and after
    the runs converged the original was New again and the copy Open."""
    servicenow, jira = sandboxes
    states = seed_worked_incidents(servicenow)
    config = sync_config()

    first = make_engine(config).run()
    assert first.failed == 3 and all("HTTP 500" in f for f in first.failures), first.failures
    assert [jira_status(jira, key) for key in jira.issue_keys()] == ["Open"] * 3
    failing_transitions[0] = 0
    runs = [make_engine(config).run() for _ in range(2)]

    assert [r.failed for r in runs] == [0, 0], runs[0].failures + runs[1].failures
    assert runs[0].adopted == 3 and runs[0].conflicts == 0
    check_originals_kept(servicenow, jira, config, states)
    assert open_conflicts(config) == []


def test_ctrl_c_between_a_copy_create_and_its_transition_leaves_the_original_as_it_was(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """User report: Ctrl-C 12 s into a run, and the rerun moved 17 incidents back to New."""
    servicenow, jira = sandboxes
    states = seed_worked_incidents(servicenow)
    config = sync_config()
    move = JiraConnector._move

    def interrupted(self: JiraConnector, *args: Any, **kwargs: Any) -> bool:
        raise KeyboardInterrupt   # the user's Ctrl-C, right after the bulk create

    monkeypatch.setattr(JiraConnector, "_move", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_engine(config).run()
    monkeypatch.setattr(JiraConnector, "_move", move)
    assert [jira_status(jira, key) for key in jira.issue_keys()] == ["Open"] * 3

    runs = [make_engine(config).run() for _ in range(2)]

    assert [r.failed for r in runs] == [0, 0], runs[0].failures + runs[1].failures
    assert runs[0].conflicts == 0
    check_originals_kept(servicenow, jira, config, states)
    assert open_conflicts(config) == []


def test_a_person_s_move_of_an_unfinished_copy_wins_over_the_untouched_original(
    sandboxes: Any, sync_config: Any, make_engine: Any, failing_transitions: list[int]
) -> None:
    servicenow, jira = sandboxes
    row = servicenow.insert("incident", {"short_description": "Wifi down on floor 2",
                                         "impact": "2", "urgency": "2"}, as_user=EDITOR)
    servicenow.update("incident", row["sys_id"], {"state": "2"}, as_user=EDITOR)
    config = sync_config()
    assert make_engine(config).run().failed == 1
    failing_transitions[0] = 0
    (key,) = jira.issue_keys()
    # An agent takes the copy from Open straight to Pending; nobody touches the original.
    jira.transition_issue(key, "Pending", as_user=EDITOR_EMAIL)

    runs = [make_engine(config).run() for _ in range(2)]

    assert [r.failed for r in runs] == [0, 0], runs[0].failures + runs[1].failures
    assert runs[0].conflicts == 0
    assert jira_status(jira, key) == "Pending"
    assert servicenow.get("incident", row["sys_id"])["state"] == "3"


def test_an_unfinished_copy_edited_by_the_integration_user_alone_never_overrides(
    sandboxes: Any, sync_config: Any, make_engine: Any, failing_transitions: list[int]
) -> None:
    """The sync's own writes after the create (here a summary edit as the integration
    user, as a half-done run would leave) are not a person's edit: the original wins."""
    servicenow, jira = sandboxes
    row = servicenow.insert("incident", {"short_description": "SQL job failing nightly",
                                         "impact": "2", "urgency": "2"}, as_user=EDITOR)
    servicenow.update("incident", row["sys_id"], {"state": "2"}, as_user=EDITOR)
    config = sync_config()
    assert make_engine(config).run().failed == 1
    failing_transitions[0] = 0
    (key,) = jira.issue_keys()
    jira.edit_issue(key, {"summary": "Half-written by the sync"})   # the integration user

    runs = [make_engine(config).run() for _ in range(2)]

    assert [r.failed for r in runs] == [0, 0], runs[0].failures + runs[1].failures
    fields = jira.issue(key)["fields"]
    assert (fields["summary"], fields["status"]["name"]) == (
        "SQL job failing nightly", "Work in progress")
    assert servicenow.get("incident", row["sys_id"])["short_description"] == (
        "SQL job failing nightly")


def test_a_half_done_transition_of_a_linked_copy_never_undoes_the_original_s_move(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Open -> Resolved takes two transitions in Jira; the run that failed after the
    first left the copy in Work in progress, newer than the person's resolve: a
    conflict the copy used to win ('newest'), reopening the original."""
    servicenow, jira = sandboxes
    row = servicenow.insert("incident", {"short_description": "Outlook crashes on attachments",
                                         "impact": "2", "urgency": "2"}, as_user=EDITOR)
    config = sync_config()
    assert make_engine(config).run().failed == 0
    (key,) = jira.issue_keys()
    servicenow.update("incident", row["sys_id"], {
        "state": "6", "close_code": "Solution provided", "close_notes": "Patched"},
        as_user=EDITOR)
    serve: Callable[[Request], Response] = jira.handle

    def resolving_fails(request: Request) -> Response:
        # The step into Resolved carries the resolution; the step before it goes through.
        if request.path.endswith("/transitions") and "fields" in (request.json() or {}):
            return jira.error_response(500, "Internal Server Error")
        return serve(request)

    monkeypatch.setattr(jira, "handle", resolving_fails)
    assert make_engine(config).run().failed == 1
    assert jira_status(jira, key) == "Work in progress"
    monkeypatch.setattr(jira, "handle", serve)

    runs = [make_engine(config).run() for _ in range(2)]

    assert [r.failed for r in runs] == [0, 0], runs[0].failures + runs[1].failures
    assert runs[0].conflicts == 0
    assert servicenow.get("incident", row["sys_id"])["state"] == "6"
    assert jira_status(jira, key) == "Resolved"
