"""The applier writes a batch of pairs with one batched call per side.

Over two in-memory tools (the ``memory`` fixture): a batch of pairs costs one
``write_many`` per side for all its updates and back-links (an update and a
back-link of one record being one write), one ``add_comments`` per side for all
its comments, and one read-back ``get_many`` per side; a failed item fails only
its own pair; a fatal error stops the run.
"""

from __future__ import annotations

from datetime import timedelta
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
    keys = {link.id_on("servicenow"): link.id_on("jira") for link in memory.links()}
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
    keys = {link.id_on("servicenow"): link.id_on("jira") for link in memory.links()}
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


# --------------------------------------------------------------------------- idle is idle


def count_pulled(memory: Any) -> dict[str, list[str]]:
    """Record the ids each tool's pull hands out, per side, from now on."""
    seen: dict[str, list[str]] = {"servicenow": [], "jira": []}
    for side, tool in (("servicenow", memory.servicenow), ("jira", memory.jira)):
        original = tool.pull

        def pull(since: Any, fields: Any, _original: Any = original,
                 _into: list[str] = seen[side]) -> Any:
            for record in _original(since, fields):
                _into.append(record.id)
                yield record

        tool.pull = pull
    return seen


def test_idle_runs_read_nothing_once_the_echoes_of_our_writes_are_behind_them(
        memory: Any) -> None:
    sys_ids = [sn_incident(memory, f"Switch {n} flapping") for n in range(3)]
    assert memory.run().created == 3
    pulled = count_pulled(memory)

    memory.clock.advance(minutes=10)
    memory.run()   # sees the echoes of the first run's writes, recognised as such
    assert sorted(pulled["servicenow"]) == sorted(sys_ids) and len(pulled["jira"]) == 3
    for side in pulled:
        pulled[side].clear()
    for _ in range(2):
        memory.clock.advance(minutes=10)
        idle = memory.run()
        assert idle.updated == 0 and idle.failed == 0
        assert pulled == {"servicenow": [], "jira": []}

    memory.servicenow.edit(sys_ids[1], {"short_description": "Switch 1 replaced"})
    memory.run()
    key = {link.id_on("servicenow"): link.id_on("jira") for link in memory.links()}[sys_ids[1]]
    assert memory.jira.get(key)["summary"] == "Switch 1 replaced"


def test_a_person_s_edit_in_the_same_second_as_our_echo_is_seen_by_the_next_run(
        memory: Any) -> None:
    first, second = (sn_incident(memory, f"Printer {n} jammed") for n in range(2))
    assert memory.run().created == 2
    keys = {link.id_on("servicenow"): link.id_on("jira") for link in memory.links()}
    memory.clock.advance(minutes=10)
    memory.run()
    # From here on the tools' clocks stand still: every stamp falls in one second,
    # as writes made within one second do on a tool with second resolution.
    memory.clock.step = timedelta(0)
    memory.clock.advance(minutes=10)
    memory.servicenow.edit(first, {"short_description": "Printer 0 jammed again"})
    memory.run()    # writes the echo to Jira in this second, and reads it back
    echo = memory.run()    # recognises its echo: nothing to do
    assert echo.updated == 0
    # A person edits, in the very second of our echo, after that run read the tool.
    memory.jira.edit(keys[second], {"summary": "Printer 1 fixed"})

    seen = memory.run()

    assert seen.updated == 1, seen.failures
    assert memory.servicenow.get(second)["short_description"] == "Printer 1 fixed"


# --------------------------------------------------------------------------- site metadata


def site_checked_engine(memory: Any, **sync_keys: Any) -> Any:
    from sync.factory import build_engine, open_store
    from sync.settings import load_settings

    settings = load_settings(memory.config(**sync_keys))
    engine = build_engine(settings, open_store(settings), clock=memory.clock, site_check=True,
                          connectors=(memory.servicenow, memory.jira))
    memory.made.append(engine)
    return engine


def site_reads(memory: Any) -> dict[str, int]:
    return {"servicenow": memory.servicenow.calls["site_fields"],
            "jira": memory.jira.calls["site_fields"]}


def test_a_run_reuses_the_site_fields_it_kept_until_the_ttl_runs_out(memory: Any) -> None:
    sn_incident(memory, "Laptop will not boot")
    site_checked_engine(memory).run()
    assert site_reads(memory) == {"servicenow": 1, "jira": 1}

    memory.clock.advance(minutes=10)
    site_checked_engine(memory).run()
    assert site_reads(memory) == {"servicenow": 1, "jira": 1}

    memory.clock.advance(hours=2)     # past the default hour
    site_checked_engine(memory).run()
    assert site_reads(memory) == {"servicenow": 2, "jira": 2}

    site_checked_engine(memory, metadata_ttl=0).run()
    assert site_reads(memory) == {"servicenow": 3, "jira": 3}


def test_a_plan_reads_the_site_fields_afresh_and_keeps_nothing(memory: Any) -> None:
    from sync.planner import build_plan

    sn_incident(memory, "Monitor flickers")
    engine = site_checked_engine(memory)
    build_plan(engine.session, engine.store)
    assert site_reads(memory) == {"servicenow": 1, "jira": 1}
    site_checked_engine(memory).run()   # nothing was kept: the run reads them again
    assert site_reads(memory) == {"servicenow": 2, "jira": 2}


# --------------------------------------------------------------------------- streaming


def test_a_run_plans_each_batch_of_pairs_only_when_it_comes_to_write_it(
        memory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sync.planner as planner

    for n in range(7):
        sn_incident(memory, f"Disk {n} full")
    planned = [0]
    decide = planner.decide_create

    def counting(*args: Any, **kwargs: Any) -> Any:
        planned[0] += 1
        return decide(*args, **kwargs)

    monkeypatch.setattr(planner, "decide_create", counting)
    planned_at_create: list[int] = []
    create = memory.jira.create

    def creating(records: Any, **told: Any) -> Any:
        planned_at_create.append(planned[0])
        return create(records, **told)

    memory.jira.create = creating

    summary = memory.run(batch_size=3)

    assert summary.created == 7 and summary.failed == 0, summary.failures
    assert planned_at_create == [3, 6, 7]


def test_an_update_and_a_back_link_of_one_record_are_one_write(memory: Any) -> None:
    # A copy made by an earlier, interrupted run: it carries the original's id,
    # the original lacks the copy's, and a person has since retitled the copy.
    sys_id = sn_incident(memory, "Wi-Fi drops in room 4")
    memory.jira.put({"summary": "Wi-Fi drops in room 4 and 5", "description": "x",
                     "customfield_10004": {"value": "Moderate / Limited"},
                     "customfield_10005": {"value": "Medium"}}, foreign_id=sys_id)
    recorded: list[RecordWrite] = []
    original = memory.servicenow.write_many

    def recording(writes: list[RecordWrite]) -> Any:
        recorded.extend(writes)
        return original(writes)

    memory.servicenow.write_many = recording

    summary = memory.run()

    assert summary.adopted == 1 and summary.failed == 0, summary.failures
    ours = [w for w in recorded if w.record_id == sys_id]
    assert len(ours) == 1, recorded
    (write,) = ours
    assert write.foreign_id and write.fields.get("short_description") == (
        "Wi-Fi drops in room 4 and 5")
    # The per-record fallback applies it as the update, then the back-link checked
    # against the version the update left: both landed.
    assert memory.servicenow.get(sys_id)["correlation_id"]
