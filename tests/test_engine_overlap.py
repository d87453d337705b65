"""A batch's ServiceNow writes overlap Jira's per-issue steps of its creates, safely.

Contract: through the real engine, connectors and both sandboxes (the memory tools
where a fault is easier to place there), an initial ServiceNow -> Jira sync of
incidents people already worked on (their copies must be moved by transitions)
writes each original's back-link (its ``correlation_id``) while the copies'
transitions are still in flight, not after them. A pair is committed only when
all its writes succeeded: a transition that fails after the back-link was written
fails the pair (retry queue, no link, intent pending), and the next run adopts
the copy (intent and marker), retries the transition, keeps a person's edit of
the copy, and duplicates nothing. A crash (or a fatal error) between the back-link
write and the end of the transitions is finished the same way by the next run.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import (
    EDITOR_EMAIL,
    jira_status,
    memory_incident,
    seed_worked_incidents,
    store_of,
    sync,
    transitions_wait_for,
    writes,
)

from connectors.base import RecordWrite, Unreachable, WriteResult
from connectors.servicenow import ServiceNowConnector
from sync.engine import SimulatedCrash

JIRA_STATUS_OF = {"2": "Work in progress", "3": "Pending"}


def back_links(servicenow: Any, states: dict[str, str]) -> dict[str, str]:
    """sys_id -> the Jira key its correlation_id carries."""
    return {sys_id: servicenow.get("incident", sys_id)["correlation_id"] for sys_id in states}


def check_converged(servicenow: Any, jira: Any, config: Path, states: dict[str, str]) -> None:
    """One copy per original, linked, back-linked, in the original's status; nothing owed;
    one more run writes nothing."""
    keys = jira.issue_keys()
    assert len(keys) == len(states)
    with store_of(config) as store:
        linked = {link.id_on("servicenow"): link.id_on("jira") for link in store.all_links()}
        assert store.pending_intents() == [] and store.retry_items() == []
        assert store.open_conflicts() == []
    assert sorted(linked) == sorted(states) and sorted(linked.values()) == sorted(keys)
    assert back_links(servicenow, states) == linked
    for sys_id, state in states.items():
        assert servicenow.get("incident", sys_id)["state"] == state
        assert jira_status(jira, linked[sys_id]) == JIRA_STATUS_OF[state]


def test_the_back_links_are_written_while_the_copies_transitions_are_in_flight(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicenow, jira = sandboxes
    states = seed_worked_incidents(servicenow)
    linked = threading.Event()
    write_many = ServiceNowConnector.write_many

    def writing(self: ServiceNowConnector, batch: list[RecordWrite]) -> list[WriteResult]:
        results = write_many(self, batch)
        if any(write.foreign_id for write in batch):
            linked.set()
        return results

    # Each copy's transitions wait for the back-links: written only after them (the
    # order before), they would time out and leave every copy Open.
    waited = transitions_wait_for(linked, monkeypatch)
    monkeypatch.setattr(ServiceNowConnector, "write_many", writing)
    config = sync_config()

    summary = sync(make_engine, config)

    assert (summary.created, summary.failed) == (3, 0), summary.failures
    assert waited == [True] * 3
    check_converged(servicenow, jira, config, states)


def test_a_transition_failing_after_the_back_link_fails_the_pair_and_the_next_run_adopts(
    sandboxes: Any, sync_config: Any, make_engine: Any, failing_transitions: list[int]
) -> None:
    servicenow, jira = sandboxes
    states = seed_worked_incidents(servicenow)
    config = sync_config()

    first = sync(make_engine, config)

    assert (first.created, first.failed) == (0, 3), first.failures
    assert all("HTTP 500" in failure for failure in first.failures), first.failures
    keys = jira.issue_keys()
    assert len(keys) == 3 and [jira_status(jira, key) for key in keys] == ["Open"] * 3
    # The back-links went while the transitions were failing: written, not committed.
    assert sorted(back_links(servicenow, states).values()) == sorted(keys)
    with store_of(config) as store:
        assert store.all_links() == []
        assert len(store.pending_intents()) == 3
        assert sorted(item.record_id for item in store.retry_items()) == sorted(states)
    # An agent (a person) retitles one copy before the retry; its original stays as is.
    sys_id, key = next(iter(back_links(servicenow, states).items()))
    jira.edit_issue(key, {"summary": "VPN drops: ISP ticket 4711"}, as_user=EDITOR_EMAIL)
    failing_transitions[0] = 0

    runs = [sync(make_engine, config) for _ in range(2)]

    assert [r.failed for r in runs] == [0, 0], runs[0].failures + runs[1].failures
    assert (runs[0].created, runs[0].adopted, runs[0].conflicts) == (0, 3, 0)
    check_converged(servicenow, jira, config, states)
    # The person's title is kept on the copy and carried to the original.
    assert jira.issue(key)["fields"]["summary"] == "VPN drops: ISP ticket 4711"
    assert servicenow.get("incident", sys_id)["short_description"] == (
        "VPN drops: ISP ticket 4711")
    jira.log.clear()
    servicenow.log.clear()
    assert sync(make_engine, config).failed == 0
    assert writes(servicenow) == [] and writes(jira) == []


# update:after-write: the back-links written, the copies' transitions still in flight;
# create:after-steps: the transitions ended too, nothing committed yet.
@pytest.mark.parametrize("step", ["update:after-write", "create:after-steps"])
def test_a_crash_between_the_back_links_and_the_end_of_the_transitions_converges(
    sandboxes: Any, sync_config: Any, make_engine: Any, step: str
) -> None:
    servicenow, jira = sandboxes
    states = seed_worked_incidents(servicenow)
    config = sync_config()
    with pytest.raises(SimulatedCrash):
        sync(make_engine, config, crash_at=step)
    keys = jira.issue_keys()
    assert len(keys) == 3
    assert sorted(back_links(servicenow, states).values()) == sorted(keys)

    rerun = sync(make_engine, config)

    assert (rerun.failed, rerun.created, rerun.conflicts) == (0, 0, 0), rerun.failures
    check_converged(servicenow, jira, config, states)
    jira.log.clear()
    servicenow.log.clear()
    assert sync(make_engine, config).failed == 0
    assert writes(servicenow) == [] and writes(jira) == []


def test_a_fatal_error_writing_the_back_links_aborts_the_run_and_the_rerun_converges(
    memory: Any,
) -> None:
    sys_ids = [memory_incident(memory, f"Core switch {n} down") for n in range(2)]
    memory.servicenow.fail_next("mark_foreign_id",
                                Unreachable("ServiceNow went away", side="servicenow"))
    with pytest.raises(Unreachable):
        memory.run()
    assert len(memory.jira.records) == 2 and memory.links() == []

    rerun = memory.run()

    assert (rerun.failed, rerun.created, rerun.adopted) == (0, 0, 2), rerun.failures
    assert len(memory.jira.records) == 2
    linked = {link.id_on("servicenow"): link.id_on("jira") for link in memory.links()}
    assert sorted(linked) == sorted(sys_ids)
    assert all(memory.servicenow.get(s)["correlation_id"] == linked[s] for s in sys_ids)
    assert memory.run().created == 0
