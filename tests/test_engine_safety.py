"""Engine safety over both sandboxes: failures and the retry queue, orphans, scope changes,
safety valves, crash-safe creates and updates, and plans that write nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from db_helpers import dump
from sync_helpers import (
    jira_fields,
    jira_issue,
    linked_pair,
    links,
    sn_incident,
    store_of,
    store_url,
    sync,
    writes,
)

from sync.engine import SimulatedCrash

# The engine scenarios that use a store run on SQLite and on PostgreSQL (conftest).
pytestmark = pytest.mark.usefixtures("state_url")


def deletes(server: Any) -> int:
    return server.log.count(method="DELETE")


# --------------------------------------------------------------------------- failures


# The category goes to Jira components with the jsm-extended profile: one the project
# has no component for is refused by Jira every time (a stock site takes any category,
# as a label).
@pytest.mark.parametrize("jira_fields", ["extended"], indirect=True)
def test_a_record_that_keeps_failing_is_parked_after_max_attempts(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, _ = sandboxes
    config, sys_id, _ = linked_pair(sandboxes, sync_config, make_engine, max_attempts=2,
                                    mapping="jsm-extended")
    # A category Jira has no component for: the edit is refused every time.
    servicenow.update("incident", sys_id, {"category": "facilities"})
    outcomes = [sync(make_engine, config) for _ in range(3)]
    assert [o.failed for o in outcomes[:2]] == [1, 1]
    assert outcomes[1].parked == 1
    # Parked: not retried any more, and the run is clean again.
    assert (outcomes[2].failed, outcomes[2].exit_code) == (0, 0)
    with store_of(config) as store:
        (item,) = store.retry_items(parked=True)
    assert (item.record_id, item.attempts) == (sys_id, 2)
    assert "facilities" in item.last_error or "component" in item.last_error.lower()


# --------------------------------------------------------------------------- orphans, scope


def test_a_record_leaving_the_scope_is_not_deleted(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine,
                                      title="Disk almost full")
    scoped = sync_config(query="category=network", name="scoped.toml")
    servicenow.update("incident", sys_id, {"category": "hardware"})   # leaves the scope
    jira.edit_issue(key, {"summary": "Disk almost full (ordered a new one)"})
    servicenow.log.clear()
    jira.log.clear()

    summary = sync(make_engine, scoped)

    assert summary.failed == 0 and summary.created == 0, summary.failures
    assert servicenow.get("incident", sys_id) is not None
    assert key in jira.issue_keys()
    # Still linked, so still in step: the pair is fetched by id, not by scope.
    assert servicenow.get("incident", sys_id)["short_description"].endswith("a new one)")
    assert "category-hardware" in jira_fields(jira, key)["labels"]
    assert deletes(servicenow) == deletes(jira) == 0
    assert len(links(config)) == 1


# The safety valve (a side whose linked records all vanish) and a failed pull keeping the
# watermarks are engine logic: test_engine_memory.py. Over HTTP, what the connectors add
# (a deleted record missing from get_many, a read retried then failing) is the connector
# contract's and the connector tests'.


# --------------------------------------------------------------------------- duplicates


def test_an_unlinked_record_carrying_the_other_s_id_is_adopted_not_duplicated(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    key = jira_issue(jira, "Linked by hand")
    sn = sn_incident(servicenow, "Linked by hand", correlation_id=key,
                     correlation_display="JIRA")
    config = sync_config()
    summary = sync(make_engine, config)
    assert (summary.created, summary.adopted, summary.failed) == (0, 1, 0), summary.failures
    (link,) = links(config)
    assert (link.id_on("servicenow"), link.id_on("jira")) == (sn["sys_id"], key)
    assert jira.issue_keys() == [key] and len(servicenow.rows("incident")) == 1


# --------------------------------------------------------------------------- crash safety


# Every step is covered over the in-memory tools (test_engine_memory); over HTTP
# the step between the remote create and its commit, where the vendor's answer matters.
@pytest.mark.parametrize("step", ["create:after-remote"])
def test_a_crash_at_any_step_of_a_create_leaves_one_record_and_one_link(
    sandboxes: Any, sync_config: Any, make_engine: Any, step: str
) -> None:
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "Crash-tested incident")
    config = sync_config()
    with pytest.raises(SimulatedCrash):
        sync(make_engine, config, crash_at=step)

    rerun = sync(make_engine, config)

    assert rerun.failed == 0, rerun.failures
    assert len(jira.issue_keys()) == 1
    (link,) = links(config)
    assert link.id_on("servicenow") == sn["sys_id"] and link.id_on("jira") == jira.issue_keys()[0]
    assert servicenow.get("incident", sn["sys_id"])["correlation_id"] == link.id_on("jira")
    with store_of(config) as store:
        assert store.pending_intents() == []
    assert sync(make_engine, config).created == 0


# Every step runs over the in-memory tools (test_engine_memory); over HTTP the step
# right after the vendor accepted the write.
@pytest.mark.parametrize("step", ["update:after-write"])
def test_a_crash_at_any_step_of_an_update_converges_on_the_rerun(
    sandboxes: Any, sync_config: Any, make_engine: Any, step: str
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    servicenow.update("incident", sys_id, {"short_description": "Edited before the crash",
                                           "comments": "A comment to copy"})
    with pytest.raises(SimulatedCrash):
        sync(make_engine, config, crash_at=step)

    rerun = sync(make_engine, config)

    assert rerun.failed == 0 and rerun.created == 0, rerun.failures
    assert jira_fields(jira, key)["summary"] == "Edited before the crash"
    assert len(jira.issue_keys()) == 1 and len(links(config)) == 1
    copies = [c for c in jira_fields(jira, key)["comment"]["comments"]
              if "A comment to copy" in str(c["body"])]
    assert len(copies) == 1
    jira.log.clear()
    servicenow.log.clear()
    sync(make_engine, config)
    assert writes(servicenow) == [] and writes(jira) == []


# --------------------------------------------------------------------------- plan


def _dump(config: Path) -> dict[str, list[tuple[Any, ...]]]:
    return dump(store_url(config))


def test_plan_writes_nothing_to_either_tool_or_the_state_store(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    sn_incident(servicenow, "Not synced yet")
    jira_issue(jira, "Also new")
    servicenow.update("incident", sys_id, {"short_description": "Edited",
                                           "work_notes": "internal note"})
    jira.transition_issue(key, "Work in progress")
    state = config
    before = _dump(state)
    servicenow.log.clear()
    jira.log.clear()

    plan = make_engine(config, create_store=False).build_plan()

    counts = plan.counts()
    assert (counts["creates"], counts["updates"], counts["comments"]) == (2, 2, 1)
    lines = "\n".join(plan.describe())
    assert "title: 'VPN down' -> 'Edited'" in lines
    assert "status: 'new' -> 'in_progress' (status transition)" in lines
    assert "copy internal comment to Jira: 'internal note'" in lines
    assert writes(servicenow) == [] and writes(jira) == []
    assert _dump(state) == before


def test_plan_before_the_first_run_creates_no_state_store(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    sn_incident(servicenow, "Fresh")
    config = sync_config()
    plan = make_engine(config, create_store=False).build_plan()
    assert plan.counts()["creates"] == 1
    url = store_url(config)
    if url.startswith("sqlite:///"):
        assert not Path(url.removeprefix("sqlite:///")).exists()
    else:
        assert dump(url) == {}  # not one table
    assert writes(servicenow) == [] and writes(jira) == []


def test_a_crash_between_copying_a_comment_and_recording_it_neither_duplicates_nor_echoes(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    servicenow.update("incident", sys_id, {"work_notes": "Router replaced"})
    jira.add_comment(key, "Caller says it works now")
    with pytest.raises(SimulatedCrash):
        sync(make_engine, config, crash_at="comment:after-write")

    plan = make_engine(config).build_plan()
    assert "recognise the copy of a" in "\n".join(plan.describe())
    rerun = sync(make_engine, config)

    assert rerun.failed == 0, rerun.failures
    jira_bodies = [str(c["body"]) for c in jira_fields(jira, key)["comment"]["comments"]]
    sn_values = [row["value"] for row in servicenow.journal(sys_id)]
    assert sum("Router replaced" in b for b in jira_bodies) == 1
    assert sum("Caller says it works now" in v for v in sn_values) == 1
    assert len(jira_bodies) == len(sn_values) == 2
    assert sync(make_engine, config).comments == 0


@pytest.mark.parametrize("jira_fields", ["extended"], indirect=True)
def test_a_queued_record_that_vanished_is_parked_not_asked_for_forever(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, _ = sandboxes
    sn = sn_incident(servicenow, "Will be deleted", category="facilities")
    config = sync_config(max_attempts=2, mapping="jsm-extended")
    assert sync(make_engine, config).failed == 1          # no Jira component: refused
    servicenow.delete("incident", sn["sys_id"])
    outcome = sync(make_engine, config)
    assert outcome.failed == 1 and outcome.parked == 1
    assert "no longer exists" in outcome.failures[0]
    assert sync(make_engine, config).failed == 0


def test_a_long_run_keeps_its_lock_alive(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: Any
) -> None:
    from sync_helpers import sn_incident

    import sync.engine_core as core

    for n in range(3):
        sn_incident(sandboxes[0], f"Incident {n}")
    engine = make_engine(sync_config())
    beats: list[str] = []
    monkeypatch.setattr(core, "HEARTBEAT_SECONDS", 0.0)
    monkeypatch.setattr(engine.store, "heartbeat",
                        lambda owner, ttl=900.0: beats.append(owner))
    assert engine.run().created == 3
    assert beats and set(beats) == {engine.owner}


def test_a_copy_adopted_after_a_crash_never_cuts_the_original_title(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    long_title = ("Badge readers offline in every building of the campus " * 5)[:230]
    key = jira_issue(jira, long_title)          # ServiceNow will keep only 160 characters
    config = sync_config()
    with pytest.raises(SimulatedCrash):
        sync(make_engine, config, crash_at="create:after-remote")

    rerun = sync(make_engine, config)

    assert (rerun.created, rerun.adopted, rerun.failed) == (0, 1, 0), rerun.failures
    assert jira_fields(jira, key)["summary"] == long_title     # the full title is kept
    (row,) = servicenow.rows("incident")
    assert row["correlation_id"] == key and row["short_description"] == long_title[:160]
    assert sync(make_engine, config).updated == 0


def test_a_copy_an_agent_moved_on_before_its_adoption_keeps_the_agent_s_change(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "Wifi down on floor 2")
    config = sync_config()
    with pytest.raises(SimulatedCrash):
        sync(make_engine, config, crash_at="create:after-remote")
    (key,) = jira.issue_keys()
    # An agent (a person, not the integration user) picks the copy up.
    jira.transition_issue(key, "Pending", as_user="alice.smith@example.com")

    rerun = sync(make_engine, config)

    assert (rerun.adopted, rerun.failed) == (1, 0), rerun.failures
    record = servicenow.get("incident", sn["sys_id"])
    assert record["state"] == "3" and record["correlation_id"] == key
    assert jira_fields(jira, key)["status"]["name"] == "Pending"
    jira.log.clear()
    servicenow.log.clear()
    assert sync(make_engine, config).failed == 0
    assert writes(servicenow) == [] and writes(jira) == []


def test_an_original_moved_on_before_its_copy_is_adopted_keeps_its_move(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    key = jira_issue(jira, "Payroll export times out")
    config = sync_config()
    with pytest.raises(SimulatedCrash):
        sync(make_engine, config, crash_at="create:after-remote")
    jira.transition_issue(key, "Work in progress")    # the original moves on meanwhile

    rerun = sync(make_engine, config)

    assert (rerun.adopted, rerun.failed) == (1, 0), rerun.failures
    (row,) = servicenow.rows("incident")
    assert row["state"] == "2"
    assert jira_fields(jira, key)["status"]["name"] == "Work in progress"
    with store_of(config) as store:
        # The create is their common past: only the original moved since (the copy's
        # tool says nobody but the integration user touched it), so no conflict.
        assert store.conflicts() == []
