"""The applier writes a batch of pairs with one batched call per side.

Over two in-memory tools (the ``memory`` fixture): a batch of pairs costs one
``write_many`` per side for all its updates and back-links (an update and a
back-link of one record being one write), one ``add_comments`` per side for all
its comments, and one read-back ``get_many`` per side; a failed item fails only
its own pair; a fatal error stops the run.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import RecordWrite, Unreachable, ValidationFailed, user_ref
from sync.state import StateStore

GRACE = "grace.okafor@example.com"


def sn_incident(memory: Any, title: str) -> str:
    row = {"short_description": title, "description": f"{title}: details",
           "impact": "2", "urgency": "2", "category": "network", "subcategory": "VPN",
           "caller_id": user_ref(GRACE)}
    return str(memory.servicenow.put(row))


def reset_counts(memory: Any) -> None:
    for tool in (memory.servicenow, memory.jira):
        tool.journal.clear()
        tool.calls.clear()
        tool.batches.clear()
        tool.batch_sizes.clear()


def test_a_batch_of_creates_marks_every_original_with_one_batched_write(memory: Any) -> None:
    sys_ids = [sn_incident(memory, f"Printer {n} offline") for n in range(7)]
    recorded: list[list[RecordWrite]] = []
    original = memory.servicenow.write_many

    def recording(writes: list[RecordWrite]) -> Any:
        recorded.append(list(writes))
        return original(writes)

    memory.servicenow.write_many = recording

    summary = memory.run(batch_size=3)

    assert summary.created == 7 and summary.failed == 0, summary.failures
    # 7 pairs in batches of 3: three batched back-link writes, one per batch.
    assert [len(batch) for batch in recorded] == [3, 3, 1]
    assert all(w.foreign_id and w.expected_version for batch in recorded for w in batch)
    assert {w.record_id for batch in recorded for w in batch} == set(sys_ids)
    # Read-backs: one get_many per side per batch, never one per pair.
    assert memory.servicenow.calls["get_many"] == 3
    assert memory.jira.calls["get_many"] == 3
    for sys_id in sys_ids:
        assert memory.servicenow.get(sys_id)["correlation_id"]


def test_updates_and_comments_of_many_pairs_go_as_one_batch_per_side(memory: Any) -> None:
    sys_ids = [sn_incident(memory, f"VPN {n} down") for n in range(5)]
    assert memory.run().created == 5
    keys = {link.servicenow_id: link.jira_key for link in memory.links()}
    for n, sys_id in enumerate(sys_ids):
        memory.servicenow.edit(sys_id, {"short_description": f"VPN {n} down again"})
        memory.servicenow.comment(sys_id, f"Rebooted the concentrator ({n})")
        memory.jira.comment(keys[sys_id], f"Seen from Jira ({n})")
    reset_counts(memory)

    summary = memory.run()

    assert summary.failed == 0, summary.failures
    assert summary.updated == 5 and summary.comments == 10
    assert memory.jira.batches == {"write_many": 1, "add_comments": 1}
    assert memory.servicenow.batches == {"add_comments": 1}
    assert ("write_many", 5) in memory.jira.batch_sizes
    assert ("add_comments", 5) in memory.jira.batch_sizes
    assert ("add_comments", 5) in memory.servicenow.batch_sizes
    for n, sys_id in enumerate(sys_ids):
        assert memory.jira.get(keys[sys_id])["summary"] == f"VPN {n} down again"
    reset_counts(memory)
    again = memory.run()
    assert again.updated == 0 and again.comments == 0
    assert memory.jira.calls["update"] == 0 and memory.servicenow.calls["update"] == 0


def test_a_rejected_item_fails_only_its_pair_and_the_batch_goes_on(memory: Any) -> None:
    sys_ids = [sn_incident(memory, f"Badge reader {n}") for n in range(4)]
    assert memory.run().created == 4
    keys = {link.servicenow_id: link.jira_key for link in memory.links()}
    for n, sys_id in enumerate(sys_ids):
        memory.servicenow.edit(sys_id, {"short_description": f"Badge reader {n}, floor 2"})
    memory.jira.reject(lambda fields: fields.get("summary") == "Badge reader 2, floor 2",
                       ValidationFailed("summary refused", side="jira"))

    summary = memory.run()

    assert summary.failed == 1 and summary.updated == 3, summary.failures
    assert "Badge reader 2, floor 2" not in str(memory.jira.get(keys[sys_ids[2]]))
    for n in (0, 1, 3):
        assert memory.jira.get(keys[sys_ids[n]])["summary"] == f"Badge reader {n}, floor 2"
    with StateStore(f"sqlite:///{memory.tmp_path / 'state.db'}", create=False) as store:
        assert [(i.side, i.record_id) for i in store.retry_items()] == [
            ("servicenow", sys_ids[2])]
    memory.jira.clear_faults()
    rerun = memory.run()   # retry_base_seconds is 0 here: the item is due at once
    assert rerun.failed == 0, rerun.failures
    assert memory.jira.get(keys[sys_ids[2]])["summary"] == "Badge reader 2, floor 2"


def test_a_fatal_error_in_a_batched_write_stops_the_run(memory: Any) -> None:
    sys_ids = [sn_incident(memory, f"Router {n}") for n in range(3)]
    assert memory.run().created == 3
    for sys_id in sys_ids:
        memory.servicenow.edit(sys_id, {"short_description": "Router replaced"})
    memory.jira.fail_next("update", Unreachable("Jira went away", side="jira"))

    with pytest.raises(Unreachable):
        memory.run()

    memory.jira.clear_faults()
    rerun = memory.run()
    assert rerun.failed == 0 and rerun.updated == 3, rerun.failures
