"""Engine scenarios over two in-memory tools: the sync's own behaviour, in milliseconds.

The real engine, built by :func:`sync.factory.build_engine` with the default
mapping and a real state store, drives two :class:`connectors.memory.MemoryConnector`
(the ``memory`` fixture). What these scenarios check is the engine's logic:
echo suppression, conflict policies, the retry queue, orphans, the safety
valve, duplicate claims, crash-safe creates, read-only plans. Behaviour that
depends on a vendor (workflows, business rules, rich text, HTTP faults) stays
in the scenario modules over the HTTP sandboxes, which keep one variant of
each behaviour class here too.
"""

from __future__ import annotations

from typing import Any

import pytest
from sync_helpers import memory_incident

from connectors.base import (
    RetriableError,
    ValidationFailed,
)
from sync.engine import SimulatedCrash
from sync.errors import SafetyValve
from sync.state import StateStore

GRACE = "grace.okafor@example.com"


def jira_issue(memory: Any, title: str, **fields: Any) -> str:
    values = {"summary": title, "description": f"{title}: details",
              "customfield_10004": {"value": "Moderate / Limited"},
              "customfield_10005": {"value": "Medium"}, **fields}
    return str(memory.jira.put(values))


def writes(memory: Any) -> dict[str, int]:
    """Writes each tool received since the journals were last cleared."""
    kinds = ("create", "update", "add_comment")
    return {side: sum(1 for op in tool.journal if op in kinds)
            for side, tool in (("servicenow", memory.servicenow), ("jira", memory.jira))}


def clear_journals(memory: Any) -> None:
    memory.servicenow.journal.clear()
    memory.jira.journal.clear()


def store(memory: Any) -> StateStore:
    return StateStore(f"sqlite:///{memory.tmp_path / 'state.db'}", create=False)


def linked_pair(memory: Any, title: str = "VPN down", **sync_keys: Any) -> tuple[str, str]:
    sys_id = memory_incident(memory, title)
    first = memory.run(**sync_keys)
    assert first.created == 1 and first.failed == 0, first.failures
    (link,) = memory.links()
    return sys_id, link.id_on("jira")


# --------------------------------------------------------------------------- echo


def test_initial_sync_links_each_side_s_records_and_a_second_run_writes_nothing(
    memory: Any,
) -> None:
    sys_id = memory_incident(memory, "Outlook crashes on attachments", impact="1", urgency="1")
    key = jira_issue(memory, "SQL job failing nightly")
    memory.jira.comment(key, "Checked the logs", "internal")

    first = memory.run()

    assert (first.created, first.failed, first.orphaned) == (2, 0, 0), first.failures
    linked = {link.id_on("servicenow"): link.id_on("jira") for link in memory.links()}
    copy = memory.jira.get(linked[sys_id])
    assert copy["summary"] == "Outlook crashes on attachments"
    assert copy["customfield_10004"] == {"value": "Extensive / Widespread"}
    assert memory.servicenow.get(sys_id)["correlation_id"] == linked[sys_id]
    (back,) = [r for r in memory.servicenow.records.values() if r.id != sys_id]
    assert back.fields["short_description"] == "SQL job failing nightly"
    assert [c.body for c in back.comments if "Checked the logs" in str(c.body)]
    clear_journals(memory)

    second = memory.run()

    assert (second.created, second.updated, second.comments, second.failed) == (0, 0, 0, 0)
    assert writes(memory) == {"servicenow": 0, "jira": 0}


def test_one_way_direction_creates_and_updates_only_towards_the_target(memory: Any) -> None:
    sys_id = memory_incident(memory, "Only goes to Jira")
    jira_issue(memory, "Stays in Jira")

    first = memory.run(direction="servicenow-to-jira")
    assert (first.created, first.failed) == (1, 0), first.failures
    assert len(memory.servicenow.records) == 1 and len(memory.jira.records) == 2

    (link,) = memory.links()
    memory.jira.edit(link.id_on("jira"), {"summary": "Edited in Jira"})
    memory.jira.comment(link.id_on("jira"), "Jira-only note")
    memory.servicenow.comment(sys_id, "From ServiceNow")
    second = memory.run(direction="servicenow-to-jira")
    assert (second.updated, second.comments, second.failed) == (0, 1, 0), second.failures
    assert memory.servicenow.get(sys_id)["short_description"] == "Only goes to Jira"
    assert [c.body for c in memory.servicenow.records[sys_id].comments] == ["From ServiceNow"]


# --------------------------------------------------------------------------- conflicts


@pytest.mark.parametrize(
    ("policy", "winner"),
    [("newest", "jira"), ("servicenow", "servicenow"), ("jira", "jira"), ("manual", None)],
)
def test_conflicting_edits_are_settled_by_the_policy_and_recorded(
    memory: Any, policy: str, winner: str | None
) -> None:
    sys_id, key = linked_pair(memory, conflict=policy)
    memory.servicenow.edit(sys_id, {"short_description": "Title from ServiceNow"})
    memory.jira.edit(key, {"summary": "Title from Jira"})   # later: Jira is newest

    plan = memory.engine(conflict=policy).build_plan()
    assert "conflict on title" in "\n".join(plan.describe())
    summary = memory.run(conflict=policy)

    assert summary.conflicts == 1 and summary.failed == 0, summary.failures
    sn_title = memory.servicenow.get(sys_id)["short_description"]
    jira_title = memory.jira.get(key)["summary"]
    if winner is None:
        assert (sn_title, jira_title) == ("Title from ServiceNow", "Title from Jira")
    else:
        expected = f"Title from {'ServiceNow' if winner == 'servicenow' else 'Jira'}"
        assert sn_title == jira_title == expected
    with store(memory) as state:
        (conflict,) = state.conflicts()
    assert conflict.field == "title"
    assert conflict.value_on("servicenow") == "Title from ServiceNow"
    assert conflict.value_on("jira") == "Title from Jira"
    assert conflict.base == {"servicenow": "VPN down", "jira": "VPN down"}
    assert conflict.resolution == (winner or "manual")
    assert conflict.open is (winner is None)
    # Settled (or left for a person): the next run writes nothing and records nothing new.
    clear_journals(memory)
    again = memory.run(conflict=policy)
    assert (again.updated, again.conflicts) == (0, 0)
    assert writes(memory) == {"servicenow": 0, "jira": 0}


def test_a_manual_conflict_stays_open_until_one_side_settles_it(memory: Any) -> None:
    sys_id, key = linked_pair(memory, conflict="manual")
    memory.servicenow.edit(sys_id, {"short_description": "Ours"})
    memory.jira.edit(key, {"summary": "Theirs"})
    assert memory.run(conflict="manual").conflicts == 1
    with store(memory) as state:
        assert [c.field for c in state.open_conflicts()] == ["title"]

    # A person decides in ServiceNow; the value travels and the conflict closes.
    memory.servicenow.edit(sys_id, {"short_description": "Agreed title"})
    summary = memory.run(conflict="manual")

    assert (summary.updated, summary.conflicts) == (1, 0)
    assert memory.jira.get(key)["summary"] == "Agreed title"
    with store(memory) as state:
        assert state.open_conflicts() == []


# --------------------------------------------------------------------------- failures


def test_a_failing_record_waits_in_the_retry_queue_while_the_rest_syncs(memory: Any) -> None:
    first = memory_incident(memory, "Printer jammed")
    second = memory_incident(memory, "Scanner offline")
    assert memory.run().created == 2
    keys = {link.id_on("servicenow"): link.id_on("jira") for link in memory.links()}
    memory.servicenow.edit(first, {"short_description": "Printer on fire"})
    memory.servicenow.edit(second, {"short_description": "Scanner back"})
    memory.jira.reject(lambda fields: fields.get("summary") == "Printer on fire",
                       ValidationFailed("summary: refused (injected)", side="jira"))

    summary = memory.run()

    assert (summary.updated, summary.failed, summary.exit_code) == (1, 1, 1)
    assert memory.jira.get(keys[second])["summary"] == "Scanner back"
    assert memory.jira.get(keys[first])["summary"] == "Printer jammed"
    with store(memory) as state:
        (item,) = state.retry_items()
    assert (item.side, item.record_id, item.attempts, item.parked) == (
        "servicenow", first, 1, False)

    memory.jira.clear_faults()
    later = memory.run()
    assert (later.updated, later.failed, later.exit_code) == (1, 0, 0), later.failures
    assert memory.jira.get(keys[first])["summary"] == "Printer on fire"
    with store(memory) as state:
        assert state.retry_items() == []


def test_a_record_that_keeps_failing_is_parked_after_max_attempts(memory: Any) -> None:
    sys_id, _ = linked_pair(memory, max_attempts=2)
    memory.servicenow.edit(sys_id, {"short_description": "Refused every time"})
    memory.jira.reject(lambda fields: fields.get("summary") == "Refused every time",
                       ValidationFailed("summary: refused (injected)", side="jira"))
    outcomes = [memory.run(max_attempts=2) for _ in range(3)]
    assert [o.failed for o in outcomes[:2]] == [1, 1]
    assert outcomes[1].parked == 1
    assert (outcomes[2].failed, outcomes[2].exit_code) == (0, 0)
    with store(memory) as state:
        (item,) = state.retry_items(parked=True)
    assert (item.record_id, item.attempts) == (sys_id, 2)
    assert "refused (injected)" in item.last_error


def test_a_failed_pull_leads_to_no_creates_and_keeps_the_watermarks(memory: Any) -> None:
    linked_pair(memory)
    with store(memory) as state:
        marks = {side: state.watermark(side) for side in ("servicenow", "jira")}
    memory_incident(memory, "Created while Jira is down")
    memory.jira.fail_next("pull", RetriableError("jira search: 503 (injected)", side="jira"))

    summary = memory.run()

    assert (summary.pull_failures, summary.exit_code, summary.created) == (1, 1, 0)
    assert any("pull from Jira" in f for f in summary.failures)
    with store(memory) as state:
        assert {side: state.watermark(side) for side in marks} == marks
    assert memory.run().created == 1


# --------------------------------------------------------------------------- orphans, valve


def test_a_deleted_record_is_reported_and_never_deleted_on_the_other_side(memory: Any) -> None:
    sys_id, key = linked_pair(memory)
    memory.servicenow.delete(sys_id)
    memory.jira.edit(key, {"summary": "Still happening"})

    summary = memory.run()

    assert (summary.orphaned, summary.created, summary.failed) == (1, 0, 0)
    assert "INC0010001" in summary.orphans[0]
    assert key in memory.jira.records and memory.servicenow.records == {}
    assert len(memory.links()) == 1


def test_a_side_whose_linked_records_all_vanish_stops_the_run_before_any_write(
    memory: Any,
) -> None:
    ids = [memory_incident(memory, f"Incident {n}") for n in range(3)]
    assert memory.run().created == 3
    for key in list(memory.jira.records):
        memory.jira.delete(key)      # e.g. the integration user lost the project
    for sys_id in ids:
        memory.servicenow.edit(sys_id, {"short_description": "changed"})
    clear_journals(memory)

    with pytest.raises(SafetyValve, match="refusing to act"):
        memory.run()
    assert writes(memory) == {"servicenow": 0, "jira": 0}
    assert len(memory.links()) == 3


# --------------------------------------------------------------------------- duplicates


def test_two_records_claiming_one_counterpart_are_an_error_for_them_not_a_crash(
    memory: Any,
) -> None:
    key = jira_issue(memory, "Shared by two")
    for title in ("Claimant A", "Claimant B"):
        memory_incident(memory, title, correlation_id=key)

    summary = memory.run(direction="servicenow-to-jira")

    assert summary.failed == 2 and summary.created == 0
    assert all("two records claim one link" in f for f in summary.failures)
    assert memory.links() == []
    assert list(memory.jira.records) == [key]


# --------------------------------------------------------------------------- crash safety


@pytest.mark.parametrize("step", ["create:before-intent", "create:after-intent",
                                  "create:after-remote", "create:after-steps",
                                  "create:after-commit"])
def test_a_crash_at_any_step_of_a_create_leaves_one_record_and_one_link(
    memory: Any, step: str
) -> None:
    sys_id = memory_incident(memory, "Crash-tested incident")
    with pytest.raises(SimulatedCrash):
        memory.engine(crash_at=step).run()

    rerun = memory.run()

    assert rerun.failed == 0, rerun.failures
    assert len(memory.jira.records) == 1
    (link,) = memory.links()
    assert link.id_on("servicenow") == sys_id and link.id_on("jira") == next(
        iter(memory.jira.records)
    )
    assert memory.servicenow.get(sys_id)["correlation_id"] == link.id_on("jira")
    with store(memory) as state:
        assert state.pending_intents() == []
    assert memory.run().created == 0


@pytest.mark.parametrize("step", ["update:before-write", "update:after-write",
                                  "update:after-commit"])
def test_a_crash_at_any_step_of_an_update_converges_on_the_rerun(memory: Any, step: str) -> None:
    sys_id, key = linked_pair(memory)
    memory.servicenow.edit(sys_id, {"short_description": "Edited before the crash"})
    memory.servicenow.comment(sys_id, "A comment to copy")
    with pytest.raises(SimulatedCrash):
        memory.engine(crash_at=step).run()

    rerun = memory.run()

    assert rerun.failed == 0 and rerun.created == 0, rerun.failures
    assert memory.jira.get(key)["summary"] == "Edited before the crash"
    assert len(memory.jira.records) == 1 and len(memory.links()) == 1
    copies = [c for c in memory.jira.records[key].comments if "A comment to copy" in str(c.body)]
    assert len(copies) == 1
    clear_journals(memory)
    memory.run()
    assert writes(memory) == {"servicenow": 0, "jira": 0}


def test_a_create_whose_reply_was_lost_is_adopted_on_the_rerun_not_duplicated(
    memory: Any,
) -> None:
    sys_id = memory_incident(memory, "Created, reply lost")
    # Every attempt of the run applies and loses its reply (the connector's retries too).
    memory.jira.lose_reply("create", times=10)
    first = memory.run()
    assert first.failed >= 1 and first.created == 0
    memory.jira.clear_faults()

    rerun = memory.run()

    assert rerun.failed == 0, rerun.failures
    (link,) = memory.links()
    assert link.id_on("servicenow") == sys_id
    assert len([r for r in memory.jira.records.values() if r.foreign_id == sys_id]) == 1
    assert memory.run().created == 0


# --------------------------------------------------------------------------- plan


def test_plan_before_the_first_run_creates_no_state_store(memory: Any) -> None:
    from sync.factory import build_engine, open_store
    from sync.settings import load_settings

    memory_incident(memory, "Fresh")
    settings = load_settings(memory.config())
    scratch = open_store(settings, create=False)
    engine = build_engine(settings, scratch, connectors=(memory.servicenow, memory.jira))
    try:
        plan = engine.build_plan()
    finally:
        engine.close()
        scratch.close()
    assert plan.counts()["creates"] == 1
    assert not (memory.tmp_path / "state.db").exists()
    assert writes(memory) == {"servicenow": 0, "jira": 0}
