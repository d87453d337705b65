"""The sync engine: pull, pair, merge, rules, diff -> a Plan; then apply it and commit per pair.

Contract:
- :meth:`Engine.build_plan` reads both tools and the state store and returns a
  :class:`sync.actions.Plan`. It writes nothing anywhere: not to either tool,
  not to the state store (so ``plan`` is safe on a production config).
- :meth:`Engine.apply` executes a plan. Each pair commits in one store
  transaction after its writes succeed (new per-side snapshots, seen
  versions, conflicts; then its comment links). A pair that fails goes to the
  retry queue and the run goes on; a :class:`connectors.base.FatalError`
  aborts the run. Watermarks advance only after every pair was handled and
  only when both pulls completed.
- :meth:`Engine.run` = lock the store, open the tools, plan, apply, record the
  run, release the lock; it returns a :class:`RunSummary` whose
  ``exit_code`` is 0 when all went well, 1 when something failed.
- Snapshots are per side: the neutral projection of that side as of the last
  sync, i.e. our write as that side reads it back, or the side's own value.
  A record whose version equals the link's seen version is skipped without
  being mapped; "changed" means the version moved AND the projection differs.
- Creates are crash-safe: the intent is committed before the remote create,
  the new record carries the source's id, the source then gets the new id,
  and unlinked records are first looked up on the other side and adopted.
- The engine speaks of two sides symmetrically; vendor knowledge lives in the
  connectors and the mapping profile.

Layout: :mod:`sync.engine_core` (options, projections, shared helpers) <-
:mod:`sync.planner` (the read-only half) <- :mod:`sync.applier` (the writing
half) <- this module, which adds :meth:`Engine.run`.
"""

from __future__ import annotations

import logging
import time

from sync.actions import side_title
from sync.applier import Applier
from sync.engine_core import (
    BACKLINK_FIELDS,
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

logger = logging.getLogger(__name__)

__all__ = [
    "BACKLINK_FIELDS",
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


class Engine(Applier):
    """Two connectors, a mapping profile and a state store, synced (docs/architecture.md)."""

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

    def run(self, command: str = "run") -> RunSummary:
        """Lock, plan, apply, record the run; always release the lock."""
        self._lock()
        self._locked = True
        began = self._last_beat = time.monotonic()
        run_id = self.store.start_run(command, self.clock())
        summary = RunSummary()
        outcome, error_text = "error", None
        try:
            plan = self.build_plan()
            summary = self.apply(plan)
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
                self.store.finish_run(run_id, finished=self.clock(), counts=summary.counts(),
                                      outcome=outcome, error=error_text)
            finally:
                self._locked = False
                self.store.release_lock(self.owner)
