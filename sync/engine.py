"""The sync engine: one run = lock -> plan -> apply -> settle -> record.

Contract:
- :class:`Engine` composes a :class:`sync.session.Session` (connectors,
  profile, per-side mapping context), a state store and the run's controls
  (lock owner, progress, crash steps for tests). It inherits nothing: the
  planner (:mod:`sync.planner`) and the applier (:mod:`sync.applier`) are
  functions over (session, store, ...), and the field decisions are
  :mod:`sync.decide`'s pure functions.
- :meth:`Engine.build_plan` reads both tools and the state store and returns a
  :class:`sync.actions.Plan`. It writes nothing anywhere: not to either tool,
  not to the state store (so ``plan`` is safe on a production config); it may
  read the site fields a run kept in the store (``[sync] metadata_ttl``). Every
  remote write a run can make is an action of that plan.
- :meth:`Engine.apply` executes a plan in batches of pairs (``[sync]
  batch_size``): each batch's writes (batched per side), commits and
  read-back actions (the settle step), then the watermarks, which advance only
  when both pulls completed. A pair that fails goes to the retry queue and the run goes on; a
  :class:`connectors.base.FatalError` aborts the run.
- :meth:`Engine.run` = lock the store, plan, apply, settle, record the run,
  release the lock; it plans the pairs a batch at a time as it applies them
  (:func:`sync.planner.stream_plan`), the same decisions ``build_plan``
  makes (with ``plan_ahead``, the next batch on a background thread while the
  current one is written; every write and commit stays on the run's thread,
  and stopping the run stops that thread before the spool goes); it returns
  a :class:`RunSummary` whose ``exit_code`` is 0 when all went well, 1 when
  something failed.
- During :meth:`Engine.run` every log line carries the run's id (the store's
  run row) and connection (:func:`sync.logs.bound`), and every HTTP request is
  counted (:func:`connectors.http_log.counting`); the run's row records those
  counts and the retry queue's unsynced-change times with its item counts
  (:mod:`sync.metrics`), whatever the run's outcome.
- Snapshots are per side: the neutral projection of that side as of the last
  sync, i.e. our write as that side reads it back, or the side's own value.
  A record whose version equals the link's seen version is skipped without
  being mapped; "changed" means the version moved AND the projection differs.
- Creates are crash-safe: the intent is committed before the remote create,
  the new record carries the source's id, the source then gets the new id
  (a connector's ``mark_foreign_id``), and unlinked records are first looked
  up on the other side and adopted.
- The engine speaks of two sides symmetrically; vendor knowledge lives in the
  connectors and the mapping profile, store column names in
  :mod:`sync.link_view`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Any

import sync.engine_core as core
from connectors import http_log
from connectors.base import Connector, RemoteRecord, ServerInfo
from mappings.mapper import MappingContext
from mappings.model import Incident
from mappings.profile import Profile
from sync import logs, metrics
from sync.actions import Plan, side_title
from sync.applier import RunHooks, advance_watermarks, apply_plan
from sync.engine_core import (
    CONFLICT_POLICIES,
    CRASH_STEPS,
    DIRECTIONS,
    EngineOptions,
    RunSummary,
    SimulatedCrash,
    _one_line,
    default_owner,
    owner_is_dead,
    projection,
    with_values,
)
from sync.errors import LockHeld, SyncError
from sync.planner import BatchStream, build_plan, stream_plan
from sync.rules import Rule
from sync.session import Session
from sync.state import StateStore

logger = logging.getLogger(__name__)

__all__ = [
    "CONFLICT_POLICIES",
    "CRASH_STEPS",
    "DIRECTIONS",
    "Engine",
    "EngineOptions",
    "RunSummary",
    "SimulatedCrash",
    "default_owner",
    "projection",
    "side_title",
    "with_values",
]


class Engine:
    """A session, a state store and one run's controls (docs/architecture.md)."""

    def __init__(
        self,
        connectors: Sequence[Connector],
        profile: Profile,
        store: StateStore,
        options: EngineOptions | None = None,
        *,
        rules: Sequence[Rule] = (),
        clock: Callable[[], datetime] | None = None,
        owner: str | None = None,
        crash_at: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        if crash_at is not None and crash_at not in CRASH_STEPS:
            raise ValueError(f"crash_at must be one of {', '.join(CRASH_STEPS)}")
        self.session = Session(connectors, profile, options, rules=rules, clock=clock)
        self.store = store
        self.owner = owner or default_owner()
        self.crash_at = crash_at
        self.progress = progress
        self._locked = False
        self._last_beat = 0.0
        self._streaming = False                       # build_plan called by run
        self._batches: BatchStream | None = None      # the pairs run is to plan

    # ------------------------------------------------------------------ the session's parts

    @property
    def connectors(self) -> dict[str, Connector]:
        return self.session.connectors

    @property
    def sides(self) -> tuple[str, str]:
        return self.session.sides

    @property
    def profile(self) -> Profile:
        return self.session.profile

    @property
    def options(self) -> EngineOptions:
        return self.session.options

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.session.clock

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.session.rules

    @rules.setter
    def rules(self, rules: Sequence[Rule]) -> None:
        self.session.rules = tuple(rules)

    @property
    def info(self) -> dict[str, ServerInfo]:
        return self.session.info

    @property
    def ctx(self) -> dict[str, MappingContext]:
        return self.session.ctx

    @property
    def vendor_fields(self) -> dict[str, list[str]]:
        return self.session.vendor_fields

    @property
    def merged_fields(self) -> list[str]:
        return self.session.fields.merged_fields

    def open(self) -> None:
        self.session.open(self.store, keep=True)

    def close(self) -> None:
        self.session.close()

    def incident(self, record: RemoteRecord) -> Incident:
        return self.session.incident(record)

    def readback(self, side: str, incident: Incident, displays: Any = None) -> dict[str, Any]:
        return self.session.fields.readback(side, incident, displays)

    # ------------------------------------------------------------------ a run

    def build_plan(self) -> Plan:
        """Everything a run would do, computed with reads only.

        Within :meth:`run`, the pulls, pairing and lookups are done here and the
        pairs are left to be planned a batch at a time as the run applies them
        (:func:`sync.planner.stream_plan`): the plan returned then holds no pairs.
        """
        if self._streaming:
            plan, self._batches = stream_plan(self.session, self.store,
                                              self.options.batch_size, beat=self.beat,
                                              ahead=self.options.plan_ahead)
            return plan
        return build_plan(self.session, self.store, beat=self.beat)

    def apply(self, plan: Plan) -> RunSummary:
        """Execute ``plan``: its pairs, its read-backs (the settle step), the watermarks."""
        began = time.monotonic()
        try:
            summary = self._apply(plan)
            advance_watermarks(self.store, plan, self.session)
        finally:
            self.session.forget()   # nothing the plan and its writes mapped outlives them
        summary.elapsed = time.monotonic() - began
        return summary

    def run(self, command: str = "run") -> RunSummary:
        """Lock, plan, apply, settle, record the run; always release the lock."""
        self._lock()
        began = self._last_beat = time.monotonic()
        started = self.clock()
        run_id = self.store.start_run(command, started)
        # Every line logged in the run carries its id; every request it makes is counted.
        observing = ExitStack()
        observing.enter_context(logs.bound(run_id=run_id, connection=self.store.connection))
        tally = observing.enter_context(http_log.counting())
        logger.info("run %s started (%s)", run_id, command, extra=logs.event(action="run"))
        summary = RunSummary()
        outcome, error_text = "error", None
        plan: Plan | None = None
        batches: BatchStream | None = None
        try:
            # A run (not a plan) keeps the site fields it had to read afresh.
            self.session.open(self.store, keep=True)
            # Pairs are planned a batch at a time as they are applied: the run
            # never holds the whole scope's planned pairs.
            self._streaming = True
            try:
                plan = self.build_plan()
            finally:
                self._streaming = False
            batches, self._batches = self._batches, None
            summary = apply_plan(self.session, self.store, plan, self._hooks(), batches)
            advance_watermarks(self.store, plan, self.session)
            self._count_failures(summary, len(plan.pull_errors))
            summary.elapsed = time.monotonic() - began  # pulls included, not just writes
            outcome = summary.outcome
            return summary
        except SimulatedCrash:
            outcome, error_text = "crashed", "simulated crash"
            raise
        except KeyboardInterrupt:
            outcome, error_text = "interrupted", "interrupted (Ctrl-C)"
            raise
        except SyncError as error:
            error_text = _one_line(error)
            raise
        finally:
            try:
                figures = self._figures(summary, run_id, started, tally)
                self.store.finish_run(run_id, finished=self.clock(),
                                      counts={**summary.counts(), **figures},
                                      outcome=outcome, error=error_text)
                logger.info("run %s finished: %s, %s", run_id, outcome, summary.line(),
                            extra=logs.event(action="run", outcome=outcome,
                                             duration_ms=round(
                                                 (time.monotonic() - began) * 1000, 1),
                                             counts=summary.counts(), error=error_text))
            finally:
                self._locked = False
                if batches is not None:
                    batches.close()   # a run stopped early: its pulled records' spool goes
                self.session.forget()   # nothing the run mapped outlives it
                try:
                    self.store.release_lock(self.owner)
                finally:
                    observing.close()

    def _figures(self, summary: RunSummary, run_id: int, started: datetime,
                 tally: http_log.RequestTally) -> dict[str, int]:
        """What monitoring reads of this run (:mod:`sync.metrics`); never fails the run."""
        try:
            unsynced = metrics.unsynced_since(self.store, summary.read_times, run_id, started)
        except Exception as error:
            # Monitoring must never cost the run its record (finish_run comes next):
            # the store failing, or a bug here, is a warning and empty figures.
            logger.warning("run %s: unsynced changes not recorded: %s: %s", run_id,
                           type(error).__name__, error)
            unsynced = {}
        return metrics.run_figures(tally.counts(), unsynced)

    def _hooks(self) -> RunHooks:
        return RunHooks(step=self._step, progress=self.progress, beat=self.beat)

    def _apply(self, plan: Plan) -> RunSummary:
        """The plan's pairs, batch by batch, each batch read back (settled) in turn."""
        return apply_plan(self.session, self.store, plan, self._hooks())

    def _step(self, name: str) -> None:
        if self.crash_at == name:
            raise SimulatedCrash(name)

    def beat(self) -> None:
        """Keep the run lock alive during a long run (at most one write a minute)."""
        now = time.monotonic()
        if self._locked and now - self._last_beat >= core.HEARTBEAT_SECONDS:
            self._last_beat = now
            self.store.heartbeat(self.owner, ttl=self.options.lock_ttl)

    def _lock(self) -> None:
        """Take the run lock; a lock left by a dead process on this host is taken over.

        A killed run (SIGKILL, OOM, a reboot) cannot release its lock. Its expiry
        covers other hosts; on this host we can tell at once that the holder is
        gone, so a cron or systemd rerun is not locked out until the expiry.
        """
        options = self.options
        try:
            self.store.acquire_lock(self.owner, timeout=options.lock_timeout,
                                    ttl=options.lock_ttl)
        except LockHeld:
            holder = self.store.lock_holder()
            if holder is None or not owner_is_dead(holder[0]):
                raise
            logger.warning("taking over the run lock of %s: that process no longer exists",
                           holder[0])
            self.store.release_lock(holder[0])
            self.store.acquire_lock(self.owner, timeout=0.0, ttl=options.lock_ttl)
        self._locked = True

    def _count_failures(self, summary: RunSummary, pull_failures: int) -> None:
        """``failed`` = what the retry queue holds for people to look at after this run.

        That is every item waiting for its next attempt (tried in this run or not
        yet due) plus those this run parked; items parked by earlier runs are
        listed by ``status`` and do not fail every later run. A pull that failed
        is no item: it is counted apart, and fails the run all the same.
        """
        waiting = len(self.store.retry_items(parked=False))
        summary.failed = waiting + summary.parked
        summary.pull_failures = pull_failures
