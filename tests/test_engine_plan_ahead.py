"""A run plans batch k+1 on a background thread while it writes batch k, and that
changes nothing but when the planning happens.

Over two in-memory tools (and the HTTP sandboxes for the command line): the next
batch's records are read back from the spool and planned while the current
batch's first write is in flight; a seeded scenario of two runs (creates both
ways, comments, rules, edits on both sides of one field, a rejected write) ends
with the same state-store rows, the same records on both tools and the same
summaries as the sequential path; an error planning batch k+1 ends the run with
the exit code and line the sequential path gives; a run stopped during a write
(Ctrl-C, a simulated crash, a fatal error) leaves no planning thread running and
its spool closed.
"""

from __future__ import annotations

import gc
import random
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import TickingClock
from typer.testing import CliRunner

import sync.factory
import sync.planner as planner
from connectors.base import (
    NewRecord,
    RemoteRecord,
    Unreachable,
    ValidationFailed,
    WriteResult,
    group_ref,
    user_ref,
)
from sync.cli.main import app
from sync.engine import SimulatedCrash
from sync.errors import EXIT_INTERNAL
from sync.spool import RecordSpool, SpoolError
from sync.state import StateStore

REPO = Path(__file__).resolve().parent.parent
GRACE = "grace.okafor@example.com"
THREAD = "incident-sync-plan-ahead"
# Long enough never to be reached when the planning runs ahead as it should; a
# sequential run, which cannot, fails the assertion after it instead of hanging.
PATIENCE = 10.0


def sn_incident(memory: Any, title: str, **values: Any) -> str:
    row = {"short_description": title, "description": f"{title}: details",
           "impact": "2", "urgency": "2", "category": "network", "subcategory": "VPN",
           "caller_id": user_ref(GRACE), "assignment_group": group_ref("Network"), **values}
    return str(memory.servicenow.put(row))


def jira_issue(memory: Any, title: str, **fields: Any) -> str:
    values = {"summary": title, "description": f"{title}: details",
              "customfield_10004": {"value": "Moderate / Limited"},
              "customfield_10005": {"value": "Medium"}, **fields}
    return str(memory.jira.put(values))


def engine(memory: Any, *, plan_ahead: bool, crash_at: str | None = None,
           **sync_keys: Any) -> Any:
    made = memory.engine(crash_at=crash_at, **sync_keys)
    made.session.options = replace(made.options, plan_ahead=plan_ahead)
    return made


def planners() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD]


class Spools:
    """Every spool a run makes, and how many batches' records it read back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[RecordSpool] = []
        self.loads = 0
        self.loaded = threading.Condition()
        init, load = RecordSpool.__init__, RecordSpool.load

        def watched_init(spool: RecordSpool) -> None:
            init(spool)
            self.made.append(spool)

        def watched_load(spool: RecordSpool, pulled: Any) -> dict[int, RemoteRecord]:
            found = load(spool, pulled)
            with self.loaded:
                self.loads += 1
                self.loaded.notify_all()
            return found

        monkeypatch.setattr(RecordSpool, "__init__", watched_init)
        monkeypatch.setattr(RecordSpool, "load", watched_load)

    def wait_for_loads(self, count: int) -> bool:
        with self.loaded:
            return self.loaded.wait_for(lambda: self.loads >= count, timeout=PATIENCE)


class Planned:
    """How many creates were planned (:func:`sync.decide.decide_create` calls)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch,
                 each: Callable[[int], None] | None = None) -> None:
        self.count = 0
        self.changed = threading.Condition()
        decide = planner.decide_create

        def counting(*args: Any, **kwargs: Any) -> Any:
            with self.changed:
                self.count += 1
                number = self.count
                self.changed.notify_all()
            if each is not None:
                each(number)
            return decide(*args, **kwargs)

        monkeypatch.setattr(planner, "decide_create", counting)

    def wait_for(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.count >= count, timeout=PATIENCE)


def on_create(memory: Any, hook: Callable[[int], None]) -> None:
    """Call ``hook(n)`` as the n-th create call on Jira begins (batch n's write)."""
    create = memory.jira.create
    calls = [0]

    def creating(records: Sequence[NewRecord]) -> list[WriteResult]:
        calls[0] += 1
        hook(calls[0])
        return create(records)

    memory.jira.create = creating


# --------------------------------------------------------------------------- overlap


@pytest.mark.parametrize("plan_ahead", [True, False])
def test_the_next_batch_is_read_back_and_planned_while_the_first_one_is_written(
    memory: Any, monkeypatch: pytest.MonkeyPatch, plan_ahead: bool,
) -> None:
    for n in range(12):
        sn_incident(memory, f"Switch {n} flapping")
    spools = Spools(monkeypatch)
    planned = Planned(monkeypatch)
    seen: dict[int, tuple[bool, bool, int]] = {}

    def first_write_in_flight(call: int) -> None:
        if call == 1:
            # Batch 1's write is on its way: has batch 2 been read back and planned?
            # (Waited for: the planning thread gets its turn while this one waits.)
            read = spools.wait_for_loads(2) if plan_ahead else spools.loads >= 2
            mapped = planned.wait_for(8) if plan_ahead else planned.count >= 8
            seen[call] = (read, mapped, planned.count)

    on_create(memory, first_write_in_flight)

    summary = engine(memory, plan_ahead=plan_ahead, batch_size=4).run()

    assert summary.created == 12 and summary.failed == 0, summary.failures
    if plan_ahead:
        # Both done before the write came back; never a third batch ahead.
        assert seen[1] == (True, True, 8)
    else:
        assert seen[1] == (False, False, 4)
    assert spools.loads == 3
    assert not planners()
    (spool,) = spools.made
    assert spool.closed


def test_planning_ahead_holds_two_batches_of_records_at_most(
    memory: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(60):
        sn_incident(memory, f"Monitor {n} blank")
    loaded: list[weakref.ref[RemoteRecord]] = []
    load = RecordSpool.load

    def watched_load(spool: RecordSpool, pulled: Any) -> dict[int, RemoteRecord]:
        found = load(spool, pulled)
        loaded.extend(weakref.ref(record) for record in found.values())
        return found

    monkeypatch.setattr(RecordSpool, "load", watched_load)
    alive: list[int] = []

    def count_alive(call: int) -> None:
        gc.collect()
        alive.append(sum(1 for ref in loaded if ref() is not None))

    on_create(memory, count_alive)

    summary = engine(memory, plan_ahead=True, batch_size=10).run()

    assert summary.created == 60 and summary.failed == 0, summary.failures
    assert len(alive) == 6 and len(loaded) == 60
    # The batch being written and the one planned meanwhile: never a third one.
    assert all(count <= 20 for count in alive), alive
    gc.collect()
    assert not any(ref() is not None for ref in loaded)


# --------------------------------------------------------------------------- same results


def seeded_world(memory: Any, seed: int) -> Callable[[], None]:
    """Records on both tools from ``seed``; returns the people's edits between runs."""
    rng = random.Random(seed)
    sn_ids = [sn_incident(memory, f"Router {n} drops packets",
                          impact=str(rng.choice((1, 2, 3))), urgency=str(rng.choice((1, 2, 3))))
              for n in range(23)]
    jira_keys = [jira_issue(memory, f"Badge reader {n} offline") for n in range(9)]
    for sys_id in rng.sample(sn_ids, 8):
        memory.servicenow.comment(sys_id, f"Called the site about {sys_id[-4:]}",
                                  rng.choice(("public", "internal")))
    for key in rng.sample(jira_keys, 4):
        memory.jira.comment(key, f"Spare reader ordered for {key}", "public")
    # A value the Jira side refuses: that pair fails and waits in the retry queue.
    memory.jira.reject(lambda fields: "Router 7 " in str(fields.get("summary")),
                       ValidationFailed("summary refused (injected)", side="jira"))

    def people_edit() -> None:
        memory.clock.advance(minutes=30)
        links = memory.links()
        for link in rng.sample(links, 12):
            sys_id, key = link.id_on("servicenow"), link.id_on("jira")
            what = rng.choice(("sn", "jira", "both", "comment"))
            if what in ("sn", "both"):
                memory.servicenow.edit(sys_id, {"description": f"SN edit of {sys_id[-4:]}"})
            if what in ("jira", "both"):
                memory.jira.edit(key, {"description": f"Jira edit of {key}"})
            if what == "comment":
                memory.jira.comment(key, f"Any news on {key}?", "public")
        memory.clock.advance(minutes=30)

    return people_edit


def store_rows(memory: Any) -> dict[str, Any]:
    with StateStore(f"sqlite:///{memory.tmp_path / 'state.db'}", create=False) as store:
        links = store.all_links()
        return {
            "links": links,
            "comments": store.comment_links_of([link.id for link in links]),
            "conflicts": store.conflicts(),
            "retry": store.retry_items(),
            # (their time is the store's own clock: the wall clock here)
            "intents": [(i.id, i.source_side, i.source_id, i.target_side)
                        for i in store.pending_intents()],
            "firings": store.rule_firings([link.id for link in links]),
            "watermarks": {side: store.watermark(side) for side in ("servicenow", "jira")},
            "runs": [(run.outcome, run.counts) for run in store.runs()],
        }


def tools(memory: Any) -> dict[str, Any]:
    return {side: {record_id: (record.version, record.fields, record.comments,
                               record.foreign_id, record.updated, record.edits)
                   for record_id, record in tool.records.items()}
            for side, tool in (("servicenow", memory.servicenow), ("jira", memory.jira))}


def world_after_two_runs(tmp_path: Path, plan_ahead: bool) -> tuple[Any, ...]:
    from conftest import MemoryWorld

    # One instant for every read (advanced by hand between the runs): which thread
    # reads the clock first must not show in any stamp.
    clock = TickingClock(step=timedelta(0))
    folder = tmp_path / ("ahead" if plan_ahead else "sequential")
    folder.mkdir()
    memory = MemoryWorld(folder, clock)
    try:
        people_edit = seeded_world(memory, seed=1207)
        rules = str(REPO / "rules.example.toml")
        first = engine(memory, plan_ahead=plan_ahead, batch_size=3, conflict="manual",
                       rules=rules).run()
        people_edit()
        second = engine(memory, plan_ahead=plan_ahead, batch_size=3, conflict="manual",
                        rules=rules).run()
        summaries = [(s.counts(), sorted(s.failures), sorted(s.warnings))
                     for s in (first, second)]
        return summaries, store_rows(memory), tools(memory)
    finally:
        memory.close()


def test_planning_ahead_ends_with_the_rows_records_and_summaries_of_the_sequential_path(
    tmp_path: Path,
) -> None:
    ahead = world_after_two_runs(tmp_path, plan_ahead=True)
    sequential = world_after_two_runs(tmp_path, plan_ahead=False)

    summaries, rows, _ = sequential
    # The scenario does what it is for: several batches, each kind of work.
    first, second = (counts for counts, _, _ in summaries)
    assert first["created"] >= 30 and first["comments"] >= 12 and first["failed"] >= 1
    assert second["updated"] >= 3 and second["conflicts"] >= 1
    assert rows["retry"] and rows["conflicts"] and rows["comments"] and rows["firings"]
    assert ahead[0] == sequential[0]
    assert ahead[1] == sequential[1]
    assert ahead[2] == sequential[2]


# --------------------------------------------------------------------------- errors


runner = CliRunner()


class Injected(Exception):
    """An unforeseen exception (a bug) while planning a batch."""


@pytest.mark.parametrize("plan_ahead", [True, False])
@pytest.mark.parametrize(("error", "code"), [
    (SpoolError("cannot read the run's record spool in /tmp: disk I/O error (injected)"), 1),
    (Unreachable("ServiceNow is unreachable (injected)", side="servicenow"), 3),
    (Injected("planning went wrong (injected)"), EXIT_INTERNAL),
])
def test_an_error_planning_the_next_batch_ends_the_run_as_the_sequential_path_does(
    sandboxes: Any, sync_config: Any, monkeypatch: pytest.MonkeyPatch,
    error: Exception, code: int, plan_ahead: bool,
) -> None:
    from sync_helpers import sn_incident as sandbox_incident

    servicenow, jira = sandboxes
    for n in range(7):
        sandbox_incident(servicenow, f"Scanner {n} jammed")
    spools = Spools(monkeypatch)
    load = RecordSpool.load

    def failing_second_load(spool: RecordSpool, pulled: Any) -> dict[int, RemoteRecord]:
        if spools.loads == 1:   # batch 2's records (planned ahead: while batch 1 is written)
            spools.loads += 1
            raise error
        return load(spool, pulled)

    monkeypatch.setattr(RecordSpool, "load", failing_second_load)
    make_options = sync.factory.engine_options
    monkeypatch.setattr(sync.factory, "engine_options",
                        lambda settings: replace(make_options(settings), plan_ahead=plan_ahead))
    config = sync_config(batch_size=3)

    result = runner.invoke(app, ["run", "--config", str(config)])

    # The same exit code and one line, whichever thread planned the batch.
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if "injected" in line]
    assert str(error) in line
    assert not planners()
    (spool,) = spools.made
    assert spool.closed
    # Batch 1 was written, committed and settled before batch 2 was taken.
    assert len(jira.issue_keys()) == 3
    with StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False) as store:
        assert len(store.all_links()) == 3
        (run,) = store.runs()
        assert run.outcome == "error"
        # A bug's text is not kept in the store, as on the sequential path.
        assert run.error == (None if isinstance(error, Injected) else str(error))


# --------------------------------------------------------------------------- stopping


@pytest.fixture
def many(memory: Any) -> Iterator[Any]:
    for n in range(40):
        sn_incident(memory, f"Laptop {n} will not boot")
    yield memory


def test_ctrl_c_during_a_write_stops_the_planning_between_two_pairs(
    many: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = threading.Event()

    def slow_second_batch(number: int) -> None:
        if number > 20:
            stop.wait(0.2)   # batch 2's pairs take a while to plan

    planned = Planned(monkeypatch, slow_second_batch)
    spools = Spools(monkeypatch)

    def interrupted(call: int) -> None:
        assert planned.wait_for(22)   # batch 2's planning is under way
        raise KeyboardInterrupt

    on_create(many, interrupted)

    with pytest.raises(KeyboardInterrupt):
        engine(many, plan_ahead=True, batch_size=20).run()

    # Stopped between two pairs, not at the end of its batch.
    assert planned.count < 40
    assert not planners()
    (spool,) = spools.made
    assert spool.closed
    with StateStore(f"sqlite:///{many.tmp_path / 'state.db'}", create=False) as store:
        (run,) = store.runs()
        assert run.outcome == "interrupted"
        assert store.lock_holder() is None


@pytest.mark.parametrize("stop", ["crash", "fatal"])
def test_a_run_stopped_during_a_write_leaves_no_thread_and_no_spool(
    many: Any, monkeypatch: pytest.MonkeyPatch, stop: str,
) -> None:
    spools = Spools(monkeypatch)
    planned = Planned(monkeypatch)

    def wait_for_the_planning(call: int) -> None:
        if call > 1:
            return   # the rerun
        assert planned.wait_for(21)   # the next batch is being planned meanwhile
        if stop == "fatal":
            raise Unreachable("Jira is unreachable (injected)", side="jira")

    on_create(many, wait_for_the_planning)
    expected = SimulatedCrash if stop == "crash" else Unreachable

    with pytest.raises(expected):
        engine(many, plan_ahead=True, batch_size=20,
               crash_at="create:after-remote" if stop == "crash" else None).run()

    assert not planners()
    (spool,) = spools.made
    assert spool.closed
    # The rerun converges: one copy per incident, nothing planned twice.
    summary = engine(many, plan_ahead=True, batch_size=20).run()
    assert summary.failed == 0, summary.failures
    assert len(many.jira.records) == 40 and len(many.links()) == 40


def test_plan_ahead_is_a_sync_setting_off_by_default(memory: Any) -> None:
    assert memory.engine().options.plan_ahead is False
    assert memory.engine(plan_ahead=True).options.plan_ahead is True
