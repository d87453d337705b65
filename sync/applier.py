"""Applying a plan: each action performs its write, and the pair commits through one path.

Contract:
- :func:`apply_plan` executes a :class:`sync.actions.Plan` over a session and
  a store. Creates go in bulk per target side, each preceded by a committed
  intent. Per pair, in the plan's order: the updates (each checked against
  the version it was planned on), the marks (each checked against the version
  the pair's previous write on that record left), the pair's commit, then the
  comments, each committed with its id pair, and only then are the comment
  sources' versions confirmed. Every state-store write of a pair goes through
  :meth:`_Applying.commit`.
- :func:`apply_settle` executes the plan's read-back actions: the pairs a run
  wrote are read once more and decided again (:func:`sync.planner.plan_settle`);
  what that finds is written and committed through the same path, with the
  written sides' final versions.
- A pair that fails (any ConnectorError but a fatal one, a precondition, a
  mapping ValueError, a link conflict) goes to the retry queue and the run
  goes on; a :class:`connectors.base.FatalError` aborts the run.
- Until the settle step has read what the tools made of a pair's writes, the
  written sides' versions stay unknown in the store, so a run that dies in
  between leaves the next run to look at the pair again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import (
    ConnectorError,
    FatalError,
    NewRecord,
    PreconditionFailed,
    SyncError,
)
from sync.actions import AddComment, AddNote, PairPlan, Plan, ReportProblem, side_title
from sync.engine_core import RunSummary, _one_line
from sync.link_view import LinkSide, LinkView, add_comment_link, record_conflict, save_link
from sync.planner import plan_settle
from sync.rules import RuleFiring
from sync.session import Session
from sync.state import PairTx, StateStore

logger = logging.getLogger(__name__)


@dataclass
class RunHooks:
    """What a run lets the applier call: crash points (tests), progress, the lock's beat."""

    step: Callable[[str], None] = lambda name: None
    progress: Callable[[int, int], None] | None = None
    beat: Callable[[], None] = lambda: None


@dataclass
class Applied:
    """What applying a plan did: the summary so far and the pairs the settle step reads."""

    summary: RunSummary
    written: list[PairPlan] = field(default_factory=list)


def apply_plan(session: Session, store: StateStore, plan: Plan,
               hooks: RunHooks | None = None) -> Applied:
    """Execute ``plan`` (not yet its read-backs); commit per pair; failures are queued."""
    applying = _Applying(session, store, RunSummary(), hooks or RunHooks())
    return Applied(applying.summary, applying.apply(plan))


def apply_settle(session: Session, store: StateStore, applied: Applied,
                 hooks: RunHooks | None = None) -> None:
    """The plan's read-back actions: decide the written pairs again and write what is news."""
    _Applying(session, store, applied.summary, hooks or RunHooks()).settle(applied.written)


def advance_watermarks(store: StateStore, plan: Plan) -> None:
    """Watermarks move last, and only when both pulls completed."""
    if not plan.pull_errors:
        for side, value in plan.watermarks.items():
            store.set_watermark(side, value)


class _Applying:
    """One pass of writes: the session, the store, and the summary being counted."""

    def __init__(self, session: Session, store: StateStore, summary: RunSummary,
                 hooks: RunHooks) -> None:
        self.session = session
        self.store = store
        self.summary = summary
        self.hooks = hooks
        self.sides = session.sides
        # The settle step's commits are final: nothing reads those pairs back again.
        self.final = False

    # ------------------------------------------------------------------ the pass

    def apply(self, plan: Plan) -> list[PairPlan]:
        summary = self.summary
        total = len(plan.pairs)
        done = 0
        for side, error in plan.pull_errors.items():
            summary.failed += 1
            summary.failures.append(f"pull from {side_title(side)}: {error}")
        failed: set[tuple[str, str]] = set()
        for problem in plan.problems:
            if (str(problem.side), problem.record_id) in failed:
                continue  # one attempt per record and run, however many reasons
            failed.add((str(problem.side), problem.record_id))
            self.fail(problem.side, problem.record_id, problem.display, problem.error)
        for orphan in plan.orphans:
            summary.orphaned += 1
            summary.orphans.append(f"{side_title(orphan.side)} {orphan.display}: {orphan.reason}")

        creates: dict[str, list[PairPlan]] = {}
        for pair in plan.pairs:
            if pair.create is not None:
                creates.setdefault(pair.create.target_side, []).append(pair)
        written: list[PairPlan] = []
        for target, batch in creates.items():
            written.extend(self._apply_creates(target, batch))
            done += len(batch)
            self._tick(done, total)
        for pair in plan.pairs:
            if pair.create is not None:
                continue
            if self.apply_pair(pair) and pair.read_back is not None:
                written.append(pair)
            done += 1
            self._tick(done, total)
        return written

    def settle(self, written: list[PairPlan]) -> None:
        if not written:
            return
        problems: list[ReportProblem] = []
        follow_up = plan_settle(self.session, self.store, written, problems)
        if follow_up is None:
            # Without the read, what a tool derived from our write (ServiceNow's
            # priority) hides behind the version stamp we would commit; unknown
            # seen versions count as moved, so the next run merges these pairs.
            for pair in written:
                self.commit(pair, {side: None for side in self.sides})
            return
        for problem in problems:
            self.fail(problem.side, problem.record_id, problem.display, problem.error)
        self.final = True
        for pair in follow_up:
            self.apply_pair(pair)

    def _tick(self, done: int, total: int) -> None:
        if self.hooks.progress is not None:
            self.hooks.progress(done, total)
        self.hooks.beat()

    def warn(self, side: str, display: str, warnings: list[str]) -> None:
        """What a tool did not take as written (an unknown user left empty...): reported."""
        self.summary.warnings.extend(f"{side_title(side)} {display}: {w}" for w in warnings)

    def fail(self, side: str, record_id: str, display: str, error: str) -> None:
        options = self.session.options
        item = self.store.record_failure(
            side, record_id, error, now=self.session.clock(),
            base_seconds=options.retry_base_seconds, max_attempts=options.max_attempts,
        )
        self.summary.failed += 1
        state = "parked" if item.parked else f"attempt {item.attempts}"
        if item.parked:
            self.summary.parked += 1
        self.summary.failures.append(
            f"{side_title(side)} {display or record_id} ({state}): {error}")

    # ------------------------------------------------------------------ creates

    def _apply_creates(self, target: str, batch: list[PairPlan]) -> list[PairPlan]:
        """Create the batch on ``target`` (intents first); return the pairs that committed."""
        step = self.hooks.step
        connector = self.session.connectors[target]
        made: list[PairPlan] = []
        for pair in batch:
            assert pair.create is not None
            step("create:before-intent")
            if pair.intent_id is None:
                pair.intent_id = self.store.record_intent(
                    pair.create.source_side, pair.create.source_id, target)
            step("create:after-intent")
        news = []
        for pair in batch:
            assert pair.create is not None
            source_record = pair.records[pair.create.source_side]
            news.append(NewRecord(
                fields=pair.create.fields, foreign_id=pair.create.source_id,
                foreign_url=source_record.url if source_record is not None else "",
                foreign_display=pair.create.source_display,
            ))
        try:
            results = connector.create(news)
        except FatalError:
            raise
        except ConnectorError as error:
            for pair in batch:
                assert pair.create is not None
                self.fail(pair.create.source_side, pair.create.source_id,
                          pair.create.source_display, _one_line(error))
            return made
        step("create:after-remote")
        for pair, result in zip(batch, results, strict=True):
            assert pair.create is not None
            source = pair.create.source_side
            self.warn(target, result.display or result.id or
                      f"copy of {pair.create.source_display}", result.warnings)
            if not result.ok or not result.id:
                self.fail(source, pair.create.source_id, pair.create.source_display,
                          _one_line(result.error or "create returned no id"))
                continue
            pair.ids[target] = result.id
            pair.displays[target] = result.display or result.id
            for comment in pair.comments:
                comment.target_display = pair.displays[target]
            for mark in pair.marks:
                if mark.foreign_id is None:
                    mark.foreign_id = result.id
                    mark.foreign_display = pair.displays[target]
            source_record = pair.records[source]
            versions = {target: result.version,
                        source: source_record.version if source_record is not None else None}
            if self._finish_pair(pair, versions):
                self.summary.created += 1
                made.append(pair)
                step("create:after-commit")
        return made

    # ------------------------------------------------------------------ pairs

    def apply_pair(self, pair: PairPlan) -> bool:
        """Writes and commit of one existing pair; True when it committed."""
        versions = {side: (rec.version if rec is not None else None)
                    for side, rec in pair.records.items()}
        committed = self._finish_pair(pair, versions)
        if committed and pair.adopt:
            self.summary.adopted += 1
        return committed

    def _finish_pair(self, pair: PairPlan, versions: dict[str, str | None]) -> bool:
        """Field writes, marks, the link commit, then comments. True when the pair committed.

        While comments are still to be copied, the link is committed with the
        comments' source versions unknown, so a crash before they are all
        copied makes the next run look at the pair again instead of skipping it.
        """
        step = self.hooks.step
        connectors = self.session.connectors
        origin = next(s for s in self.sides if pair.records.get(s) is not None)
        origin_record = pair.records[origin]
        assert origin_record is not None
        try:
            updated = 0
            for update in pair.updates:
                step("update:before-write")
                result = connectors[update.side].update(
                    update.record_id, update.fields, expected_version=update.expected_version)
                if not result.ok:
                    raise result.error or ConnectorError("update failed", side=update.side)
                versions[update.side] = result.version or versions.get(update.side)
                self.warn(update.side, update.display, result.warnings)
                updated += 1
                step("update:after-write")
            for mark in pair.marks:
                assert mark.foreign_id is not None  # filled in by the create
                result = connectors[mark.side].mark_foreign_id(
                    mark.record_id, mark.foreign_id,
                    expected_version=versions.get(mark.side) or mark.expected_version)
                if not result.ok:
                    raise result.error or ConnectorError("marking failed", side=mark.side)
                versions[mark.side] = result.version or versions.get(mark.side)
            # A note moves its record's version too: unknown until read again.
            pending = {c.source_side for c in pair.comments} | {n.side for n in pair.notes}
            if not self.final:
                # Until the settle step has read what the tools made of our writes
                # (ServiceNow derives priority), the written sides' versions stay
                # unknown: a run dying before it leaves the next run to look again.
                pending |= {u.side for u in pair.updates} | {m.side for m in pair.marks}
                if pair.create is not None:
                    pending.add(pair.create.target_side)
            view = self.commit(pair, {side: None if side in pending else version
                                      for side, version in versions.items()}, outcome=True)
        except FatalError:
            raise
        except (ConnectorError, PreconditionFailed, SyncError, ValueError) as error:
            self.fail(origin, origin_record.id, origin_record.display, _one_line(error))
            return False
        self.summary.updated += updated
        self.summary.conflicts += len(pair.conflicts)
        self.summary.rule_firings += len(pair.firings) - len(pair.notes)
        step("update:after-commit")
        if pair.notes:
            self._write_notes(pair, view)   # a note that failed stays owed: next run
        if pair.comments and self._copy_comments(pair, view):
            self.commit(pair, versions)
        return True

    def commit(self, pair: PairPlan, versions: Mapping[str, str | None], *,
               outcome: bool = False,
               comment: tuple[AddComment, str] | None = None,
               note: AddNote | None = None) -> LinkView:
        """The one way a pair reaches the state store: one transaction.

        Always the link (ids, displays, snapshots, the seen ``versions``); with
        ``outcome`` also its conflicts (recorded, closed, settled), its create
        intent and its retry items; with ``comment`` (the action and the id of
        the copy) the comment pair.
        """
        with self.store.pair() as tx:
            view = save_link(tx, {side: LinkSide(
                id=pair.ids[side] or "", display=pair.displays[side],
                snapshot=pair.snapshots[side], version=versions.get(side),
            ) for side in self.sides}, hash=pair.hash, at=self.session.clock())
            if note is not None:
                tx.record_rule_firings(view.id, [_firing_row(note.firing)],
                                       at=self.session.clock())
            if comment is not None:
                action, made_id = comment
                add_comment_link(tx, view.id, {action.source_side: action.source_comment_id,
                                               action.target_side: made_id},
                                 origin=action.source_side, visibility=action.visibility)
            if outcome:
                at = self.session.clock()
                conflicted = set()
                for item in pair.conflicts:
                    conflicted.add(item.conflict.field)
                    record_conflict(tx, view.id, item.conflict, at=at)
                for update in pair.updates:
                    for change in update.changes:
                        if change.field not in conflicted:
                            tx.close_conflicts(view.id, change.field)
                for settled in pair.settled:  # both sides agree now: closed, and recorded
                    record_conflict(tx, view.id, settled.conflict, at=at, open=False)
                self._commit_rules(tx, view.id, pair, at)
                if pair.intent_id is not None:
                    tx.complete_intent(pair.intent_id)
                for side in self.sides:
                    if pair.ids[side]:
                        tx.clear_retry(side, pair.ids[side] or "")
        return view

    # ---- rules: notes written once, firings and the next due time kept per link

    def _write_notes(self, pair: PairPlan, view: LinkView) -> bool:
        """The rules' new internal notes, after the pair's commit, each recorded in its
        own commit once it is on the record: a failed write leaves the note owed (the
        next run writes it), a written one is never written again. True if all made it."""
        complete = True
        for note in pair.notes:
            record_id = pair.ids[note.side]
            assert record_id is not None  # a copy is created before its pair's notes
            try:
                if not note.existing:
                    self.session.connectors[note.side].add_comment(record_id, note.body,
                                                                   "internal")
                versions = {side: view.side(side).version for side in self.sides}
                self.commit(pair, versions, note=note)
            except FatalError:
                raise
            except (ConnectorError, SyncError, ValueError) as error:
                self.fail(note.side, record_id, pair.displays[note.side],
                          f"adding the note of rule {note.firing.rule!r}: {_one_line(error)}")
                complete = False
                continue
            self.summary.rule_firings += 1
        return complete

    def _commit_rules(self, tx: PairTx, link_id: int, pair: PairPlan, at: datetime) -> None:
        """Record the pair's rule firings (a note's with the note, see _write_notes) and
        when its rules are next due by time alone, in the pair's commit."""
        noted = {note.note_id for note in pair.notes}
        tx.record_rule_firings(link_id, [_firing_row(f) for f in pair.firings
                                         if f.note_id is None or f.note_id not in noted],
                               at=at)
        if self.session.rules:
            tx.set_rules_due(link_id, pair.rules_due_at)

    def _copy_comments(self, pair: PairPlan, view: LinkView) -> bool:
        """Copy the pair's comments, each committed with its id pair; True if all made it."""
        complete = True
        for comment in pair.comments:
            target = comment.target_side
            target_id = pair.ids[target]
            assert target_id is not None
            try:
                made_id = comment.existing_id
                if made_id is None:
                    made_id = self.session.connectors[target].add_comment(
                        target_id, comment.body, comment.visibility).id
                    self.hooks.step("comment:after-write")
                self._commit_comment(pair, view, comment, made_id)
            except FatalError:
                raise
            except (ConnectorError, SyncError, ValueError) as error:
                self.fail(target, target_id, pair.displays[target],
                          f"copying comment {comment.source_comment_id}: {_one_line(error)}")
                complete = False
                continue
            if comment.existing_id is None:
                self.summary.comments += 1
        return complete

    def _commit_comment(self, pair: PairPlan, view: LinkView, comment: AddComment,
                        made_id: str) -> None:
        """One comment pair, committed with the link as the pair's commit left it."""
        versions = {side: view.side(side).version for side in self.sides}
        self.commit(pair, versions, comment=(comment, made_id))


def _firing_row(firing: RuleFiring) -> dict[str, Any]:
    return {**firing.to_json(), "note_id": firing.note_id}
