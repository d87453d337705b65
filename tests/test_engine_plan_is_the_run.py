"""The plan is the run: every remote write a run makes is an action its plan listed.

For random edits on both sandboxes (hypothesis), a run's writes are recorded at
the connectors' write methods and compared with the plan ``plan`` prints:
- before the read-back step, the writes are exactly the plan's creates,
  updates, marks and comment copies (one each, on the record the plan names);
- the read-back step writes only to pairs whose plan shows a read-back action;
- every update and mark carries a version check.
"""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sync_helpers import jira_issue, sn_incident

import sync.applier as applier
from sync.actions import Plan

WRITES = ("create", "update", "mark_foreign_id", "add_comment", "write_many", "add_comments")
STORES = itertools.count(1)


class Recorder:
    """Wraps a connector's write methods; remembers (phase, op, side, record, version).

    The batch methods count as the writes they carry: a ``write_many`` item is an
    update when it has fields and a mark when it has a foreign id (both: both,
    the mark checked through the update's version); an ``add_comments`` item is
    a comment copy. A write method built on another (the per-record fallback of
    a batch, ServiceNow's mark being an update) is one write: only the outermost
    call of a connector counts. A ``create`` is built on none of them, and the writes
    made inside it (the batch's writes, which the applier makes while Jira's create
    runs its transitions) are writes of their own.
    """

    def __init__(self) -> None:
        self.phase = "apply"
        self.depth: Counter[str] = Counter()   # per side: calls in progress
        self.calls: list[tuple[str, str, str, str, str | None]] = []

    def _record(self, op: str, side: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if op == "create":
            for new in args[0]:
                self.calls.append((self.phase, op, side, new.foreign_id, None))
        elif op == "write_many":
            for write in args[0]:
                if write.fields:
                    self.calls.append((self.phase, "update", side, write.record_id,
                                       write.expected_version))
                if write.foreign_id is not None:
                    self.calls.append((self.phase, "mark_foreign_id", side, write.record_id,
                                       write.expected_version))
        elif op == "add_comments":
            for item in args[0]:
                self.calls.append((self.phase, "add_comment", side, item.record_id, None))
        else:
            self.calls.append((self.phase, op, side, args[0], kwargs.get("expected_version")))

    def wrap(self, connector: Any) -> None:
        side = str(connector.side)
        for op in WRITES:
            original = getattr(connector, op)

            def recorded(*args: Any, _op: str = op, _original: Any = original,
                         **kwargs: Any) -> Any:
                if not self.depth[side]:
                    self._record(_op, side, args, kwargs)
                nests = _op != "create"
                self.depth[side] += nests
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.depth[side] -= nests

            setattr(connector, op, recorded)


def planned_writes(plan: Plan) -> Counter[tuple[str, str, str]]:
    """(op, side, record) of every write the plan lists, ids as the run filled them in."""
    wanted: Counter[tuple[str, str, str]] = Counter()
    for pair in plan.pairs:
        if pair.create is not None:
            wanted[("create", pair.create.target_side, pair.create.source_id)] += 1
        for update in pair.updates:
            wanted[("update", update.side, update.record_id)] += 1
        for mark in pair.marks:
            wanted[("mark_foreign_id", mark.side, mark.record_id)] += 1
        for comment in pair.comments:
            if comment.existing_id is None:
                wanted[("add_comment", comment.target_side,
                        pair.ids[comment.target_side] or "")] += 1
    return wanted


EDITS = st.lists(st.sampled_from([
    "new servicenow", "new jira", "servicenow title", "servicenow impact",
    "servicenow comment", "servicenow resolve", "jira title", "jira comment", "jira urgency",
    "both titles",
]), min_size=1, max_size=5)


def edit(sandboxes: Any, kind: str, n: int, world: dict[str, list[str]]) -> None:
    servicenow, jira = sandboxes
    sys_ids = world["servicenow"]
    keys = world["jira"]
    if kind == "new servicenow" or (kind.startswith("servicenow") and not sys_ids):
        sys_ids.append(sn_incident(servicenow, f"Printer {n} offline")["sys_id"])
    elif kind == "new jira" or (kind.startswith("jira") and not keys):
        keys.append(jira_issue(jira, f"Badge reader {n} broken"))
    elif kind == "servicenow title":
        servicenow.update("incident", sys_ids[n % len(sys_ids)],
                          {"short_description": f"Edited in ServiceNow {n}"})
    elif kind == "servicenow impact":
        servicenow.update("incident", sys_ids[n % len(sys_ids)], {"impact": str(1 + n % 3)})
    elif kind == "servicenow comment":
        servicenow.update("incident", sys_ids[n % len(sys_ids)],
                          {"work_notes": f"Checked the cabling ({n})"})
    elif kind == "servicenow resolve":
        servicenow.update("incident", sys_ids[n % len(sys_ids)],
                          {"state": "6", "close_code": "Solution provided",
                           "close_notes": f"Replaced the toner ({n})"})
    elif kind == "jira title":
        jira.edit_issue(keys[n % len(keys)], {"summary": f"Edited in Jira {n}"})
    elif kind == "jira comment":
        jira.add_comment(keys[n % len(keys)], f"Rebooted it ({n})", internal=n % 2 == 0)
    elif kind == "jira urgency":
        jira.edit_issue(keys[n % len(keys)],
                        {"customfield_10005": {"value": ["High", "Medium", "Low"][n % 3]}})
    elif kind == "both titles" and sys_ids and keys:
        servicenow.update("incident", sys_ids[0], {"short_description": f"SN wins? {n}"})
        jira.edit_issue(keys[0], {"summary": f"Jira wins? {n}"})


@pytest.mark.slow
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(rounds=st.lists(EDITS, min_size=1, max_size=3))
def test_the_writes_of_a_run_are_the_actions_of_its_plan(
    sandboxes: Any, sync_config: Any, make_engine: Any, rounds: list[list[str]],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    # One world per example: a fresh state store; the sandboxes' records accumulate.
    config = sync_config(state_url=f"sqlite:///{tmp_path}/state-{next(STORES)}.db")
    world: dict[str, list[str]] = {"servicenow": [], "jira": []}
    n = 0
    for round_edits in rounds:
        for kind in round_edits:
            n += 1
            edit(sandboxes, kind, n, world)
        engine = make_engine(config)
        engine.open()
        recorder = Recorder()
        for connector in engine.connectors.values():
            recorder.wrap(connector)
        settle = applier.plan_settle

        def settling(*args: Any, _recorder: Recorder = recorder, _settle: Any = settle,
                     **kwargs: Any) -> Any:
            _recorder.phase = "read-back"
            return _settle(*args, **kwargs)

        monkeypatch.setattr(applier, "plan_settle", settling)
        plan = engine.build_plan()
        assert recorder.calls == []          # planning writes nothing
        summary = engine.apply(plan)

        applied = Counter((op, side, record) for phase, op, side, record, _ in recorder.calls
                          if phase == "apply")
        listed = planned_writes(plan)
        assert applied <= listed, (applied, listed, plan.describe())
        if summary.failed == 0:
            assert applied == listed, plan.describe()
        read_back = {(side, pair.ids[side]) for pair in plan.pairs
                     if pair.read_back is not None for side in pair.ids}
        for phase, op, side, record, _ in recorder.calls:
            if phase == "read-back":
                assert (side, record) in read_back, (op, side, record, plan.describe())
        for _, op, side, record, version in recorder.calls:
            if op in ("update", "mark_foreign_id"):
                assert version is not None, (op, side, record)
        monkeypatch.setattr(applier, "plan_settle", settle)
