"""Applying a plan: batches of pairs, batched writes per side, one commit path.

Contract:
- :func:`apply_plan` executes a :class:`sync.actions.Plan` over a session and
  a store, in batches of ``[sync] batch_size`` pairs, each batch written,
  committed and read back before the next starts. Per batch: its creates go
  in bulk per target side, preceded by their intents (one committed
  transaction per batch and side, :meth:`StateStore.record_intents`; ServiceNow's
  creates first, then Jira's); then every update and mark of the batch goes in
  ONE ``write_many`` per side (an update and a mark of one record are one write;
  the update checked against the version it was planned on, the mark against the
  version the pair's earlier write on that record left, or as planned), sent when
  the last create's connector tells the copies' ids (``create``'s ``created``),
  while its own steps after the creates (Jira's transitions, remote links) run:
  a pair told created whose steps then fail fails, its writes done, and the next
  run adopts its copy by intent and marker. Then the commits of the pairs
  whose writes succeeded; then the batch's comments in ONE ``add_comments``
  per side, each copy committed with its id pair, and only then are the
  comment sources' versions confirmed. Every state-store write of a pair goes
  through :meth:`_Applying.commit` (one pair, one transaction) or
  :meth:`_Applying.commit_together`: the pairs of a batch that are ready at
  the same point, in ONE transaction that leaves each pair committed as its
  own commit would. Nothing of a pair is committed before its writes
  succeeded, so a crash before that transaction ends loses only commits the
  next run redoes (intents, adoption), as a crash between a pair's write and
  its commit does. When the store refuses the batch as one (a link gone or
  claimed by another writer meanwhile, a comment paired already), nothing of
  it is committed and its pairs are committed one by one: a pair whose commit
  fails is queued alone.
- Then the batch's read-back actions (the settle step): the pairs it wrote
  are read once more, one ``get_many`` per side for the batch (both sides'
  sent together; the comments each record had when read before go along, so
  ServiceNow's journal is read only where a comment can have come since), and decided
  again (:func:`sync.planner.plan_settle`); what that finds is written and
  committed through the same path, with the written sides' final versions.
- A failed item fails only its pair (any ConnectorError but a fatal one, a
  precondition, a mapping ValueError, a link conflict): that pair goes to the
  retry queue and the run goes on; a :class:`connectors.base.FatalError`
  aborts the run.
- Until the settle step has read what the tools made of a pair's writes, the
  written sides' versions stay unknown in the store, so a run that dies in
  between leaves the next run to look at the pair again.
- Each pair's writes are logged at INFO (``-v``), one line per write (create,
  adopt, update, mark, comment) with the link's ids on both sides, the side,
  the action, the outcome (ok, failed) and the duration since the pair's batch
  began writing it (:meth:`_Applying.log`); every item entering the retry queue
  is one more line (action ``queue``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import (
    CommentResult,
    ConnectorError,
    FatalError,
    NewComment,
    NewRecord,
    PreconditionFailed,
    RecordWrite,
    SyncError,
    WriteResult,
    results_so_far,
)
from sync.actions import AddComment, AddNote, PairPlan, Plan, ReportProblem, side_title
from sync.engine_core import RunSummary, _one_line, tool_clock_name
from sync.link_view import (
    LinkSide,
    LinkView,
    add_comment_link,
    conflict_note,
    save_link,
    save_links,
)
from sync.planner import Batch, plan_settle
from sync.rules import RuleFiring
from sync.session import Session
from sync.state import CommentLink, LinkSave, PairsTx, StateStore

logger = logging.getLogger(__name__)


@dataclass
class RunHooks:
    """What a run lets the applier call: crash points (tests), progress, the lock's beat."""

    step: Callable[[str], None] = lambda name: None
    progress: Callable[[int, int], None] | None = None
    beat: Callable[[], None] = lambda: None


def apply_plan(session: Session, store: StateStore, plan: Plan,
               hooks: RunHooks | None = None,
               batches: Iterable[Batch] | None = None) -> RunSummary:
    """Execute ``plan`` batch by batch: writes, commits, comments, then the batch's
    read-backs (the settle step); failures are queued.

    ``batches``: the pairs as :func:`sync.planner.stream_plan` plans them (then
    ``plan`` holds none); without, ``plan``'s pairs in slices of the batch size.
    """
    applying = _Applying(session, store, RunSummary(), hooks or RunHooks())
    applying.apply(plan, batches)
    return applying.summary


def advance_watermarks(store: StateStore, plan: Plan, session: Session | None = None) -> None:
    """Watermarks move last, and only when both pulls completed.

    With ``session``, also keep the bound of each tool's clock its read-backs
    saw, which lets the next run's watermark pass the echoes of this run's writes.
    """
    if session is not None:
        for side, (stamp, ours) in session.tool_clock.items():
            store.keep_value(tool_clock_name(side, session.info.get(side)),
                             f"{stamp.isoformat()}|{ours.isoformat()}", at=ours)
    if not plan.pull_errors:
        for side, value in plan.watermarks.items():
            store.set_watermark(side, value)


@dataclass
class _Commit:
    """One pair's commit among a batch's (:meth:`_Applying.commit_together`): what
    :meth:`_Applying.commit` takes, its comment pairs as a list."""

    pair: PairPlan
    versions: Mapping[str, str | None]
    outcome: bool = False
    comments: list[tuple[AddComment, str]] = field(default_factory=list)


@dataclass
class _Ready:
    """A pair whose creates are done: its record versions so far, and whether it is new."""

    pair: PairPlan
    versions: dict[str, str | None]
    created: bool = False
    error: str | None = None                  # the first of its writes that failed
    written: bool = False                     # its updates and marks went (or were tried)
    view: LinkView | None = None              # the link as the pair's commit left it
    began: float = field(default_factory=time.monotonic)  # its first write's start


class _Applying:
    """One pass of writes: the session, the store, and the summary being counted."""

    def __init__(self, session: Session, store: StateStore, summary: RunSummary,
                 hooks: RunHooks) -> None:
        self.session = session
        self.store = store
        self.summary = summary
        self.hooks = hooks
        self.sides = session.sides
        self.failed: set[tuple[str, str]] = set()   # records whose problems were queued

    # ------------------------------------------------------------------ the pass

    def apply(self, plan: Plan, batches: Iterable[Batch] | None = None) -> None:
        summary = self.summary
        for side, error in plan.pull_errors.items():
            summary.failed += 1
            summary.failures.append(f"pull from {side_title(side)}: {error}")
        self._problems(plan.problems)
        for orphan in plan.orphans:
            summary.orphaned += 1
            summary.orphans.append(f"{side_title(orphan.side)} {orphan.display}: {orphan.reason}")

        size = self.session.options.batch_size
        if batches is None:
            pairs = plan.pairs
            batches = (Batch(pairs[start:start + size], [],
                             remaining=max(len(pairs) - start - size, 0))
                       for start in range(0, len(pairs), size))
        done = 0
        for batch in batches:
            # Each batch is written, committed and read back before the next one
            # starts: only one batch of written pairs is ever held for the settle.
            self._problems(batch.problems)
            self.settle(self.apply_batch(batch.pairs))
            done += len(batch.pairs)
            self._tick(done, done + batch.remaining)

    def _problems(self, problems: Iterable[ReportProblem]) -> None:
        """Records that cannot be synced this run: queued, one attempt per record and run,
        however many reasons."""
        for problem in problems:
            if (str(problem.side), problem.record_id) in self.failed:
                continue
            self.failed.add((str(problem.side), problem.record_id))
            self.fail(problem.side, problem.record_id, problem.display, problem.error)

    def apply_batch(self, batch: Sequence[PairPlan]) -> list[PairPlan]:
        """Creates, then one batched write per side, the commits, the comments.

        The batch's writes (every update and mark, one ``write_many`` per side) go
        while the last create's connector runs its own steps after its creates
        (Jira's transitions): told the copies' ids, the applier writes them then.

        Returns the committed pairs that have a read-back action.
        """
        ready: list[_Ready] = []
        creates: dict[str, list[PairPlan]] = {}
        for pair in batch:
            if pair.create is not None:
                creates.setdefault(pair.create.target_side, []).append(pair)
        # Creates on the sides in their order (ServiceNow's, then Jira's): the last
        # group's connector is told the batch's writes to overlap its own steps, and
        # only Jira's creates have steps after them to overlap.
        order = {side: number for number, side in enumerate(self.sides)}
        targets = sorted(creates, key=lambda side: order.get(side, len(order)))
        others: list[_Ready] | None = None

        def unmade() -> list[_Ready]:
            """The pairs without a create, as ready as they get: made when first asked
            for, as their writes start (their log lines' durations count from then)."""
            nonlocal others
            if others is None:
                others = [_Ready(pair, {side: (rec.version if rec is not None else None)
                                        for side, rec in pair.records.items()})
                          for pair in batch if pair.create is None]
            return others

        for number, target in enumerate(targets):
            def write_batch(made: list[_Ready]) -> None:
                # Every write of the batch, in the order of the pairs' commits.
                self._write_fields([*ready, *made, *unmade()], final=False)

            ready.extend(self._apply_creates(
                target, creates[target], write_batch if number == len(targets) - 1 else None))
        ready.extend(unmade())
        committed = self._finish_pairs(ready, final=False)
        return [item.pair for item in committed
                if item.created or item.pair.read_back is not None]

    def settle(self, written: list[PairPlan]) -> None:
        """The batch's read-back actions: one read per side, then what that finds."""
        if not written:
            return
        problems: list[ReportProblem] = []
        follow_up = plan_settle(self.session, self.store, written, problems)
        if follow_up is None:
            # Without the read, what a tool derived from our write (ServiceNow's
            # priority) hides behind the version stamp we would commit; unknown
            # seen versions count as moved, so the next run merges these pairs.
            unknown = {side: None for side in self.sides}
            if self.commit_together([_Commit(pair, unknown) for pair in written]) is None:
                for pair in written:
                    self.commit(pair, unknown)
            return
        for problem in problems:
            self.fail(problem.side, problem.record_id, problem.display, problem.error)
        # The settle step's commits are final: nothing reads those pairs back again.
        self._finish_pairs([_Ready(pair, {side: (rec.version if rec is not None else None)
                                          for side, rec in pair.records.items()})
                            for pair in follow_up], final=True)

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
        # Every item that enters the retry queue, a planning problem included.
        logger.info("queued %s %s (%s): %s", side_title(side), display or record_id, state,
                    error, extra={"event": {
                        "record": {side: record_id}, "side": side, "action": "queue",
                        "outcome": "parked" if item.parked else "waiting", "error": error}})

    def log(self, pair: PairPlan, outcome: str, began: float, error: str | None = None, *,
            writes: list[tuple[str | None, str]] | None = None) -> None:
        """One INFO line per write of ``pair`` (``writes``: by default all but comments).

        A pair that failed is one line: its writes are one unit, and which of
        them failed is in the error."""
        if not logger.isEnabledFor(logging.INFO):
            return
        if writes is None:
            writes = [(pair.create.target_side, "create")] if pair.create else []
            writes += [(None, "adopt")] if pair.adopt else []
            writes += [(u.side, "update") for u in pair.updates]
            writes += [(m.side, "mark") for m in pair.marks]
            if outcome == "ok" and not writes:
                return  # a commit with nothing written (the settle step found no news)
            if outcome != "ok":
                writes = writes[:1] or [(None, "commit")]
        link = {side: pair.ids.get(side) for side in self.sides}
        names = " <-> ".join(pair.displays.get(side) or pair.ids.get(side) or "(new)"
                             for side in self.sides)
        duration_ms = round((time.monotonic() - began) * 1000, 1)
        for side, action in writes:
            where = f" on {side_title(side)}" if side else ""
            logger.info("%s%s of %s: %s%s", action, where, names, outcome,
                        f" ({error})" if error else "",
                        extra={"event": {"link": link, "side": side, "action": action,
                                         "outcome": outcome, "duration_ms": duration_ms,
                                         **({"error": error} if error else {})}})

    def _remember_read(self, pair: PairPlan) -> None:
        """When the pair's records last changed as read: the age of what stays unsynced."""
        times = [record.updated for record in pair.records.values() if record is not None]
        if times:
            for side, record_id in pair.ids.items():
                if record_id:
                    self.summary.read_times[(side, record_id)] = max(times)

    def _fail_pair(self, pair: PairPlan, error: str) -> None:
        """A pair's failure is queued under the record the pair started from."""
        self._remember_read(pair)
        origin = next(s for s in self.sides if pair.records.get(s) is not None)
        record = pair.records[origin]
        assert record is not None
        self.fail(origin, record.id, record.display, error)

    # ------------------------------------------------------------------ creates

    def _apply_creates(self, target: str, batch: list[PairPlan],
                       write: Callable[[list[_Ready]], None] | None = None) -> list[_Ready]:
        """Create the batch on ``target`` (intents first); the pairs whose copy was made.

        ``write``: called with the pairs whose copy the connector told made (ids known)
        while its own steps after the creates still run (Jira's transitions); a pair
        told made whose steps then failed fails (``_Ready.error``), its writes done:
        the next run adopts its copy by intent and marker, as after a crash there.
        """
        step = self.hooks.step
        connector = self.session.connectors[target]
        made: dict[int, _Ready] = {}
        told: list[WriteResult] | None = None
        step("create:before-intent")
        # The batch's intents in one transaction, all committed before any create.
        unnoted = [pair for pair in batch if pair.intent_id is None]
        noted = self.store.record_intents([(pair.create.source_side, pair.create.source_id,
                                            target) for pair in unnoted if pair.create])
        for pair, intent_id in zip(unnoted, noted, strict=True):
            pair.intent_id = intent_id
        step("create:after-intent")
        news = []
        for pair in batch:
            assert pair.create is not None
            source_record = pair.records[pair.create.source_side]
            news.append(NewRecord(
                fields=pair.create.fields, foreign_id=pair.create.source_id,
                foreign_url=source_record.url if source_record is not None else "",
                foreign_display=pair.create.source_display,
                # Every created pair is read back (the settle step) before its copy's
                # version is committed; until then it stays unknown in the store
                # (_outcome_versions). A version read right after the create would
                # only be read again: Jira's bulk create answers none, so it skips it.
                version_wanted=False,
            ))
        began = time.monotonic()

        def created(results: list[WriteResult]) -> None:
            """The creates answered: the copies' ids into their pairs, then the writes."""
            nonlocal told
            told = results
            step("create:after-remote")
            for index, (pair, result) in enumerate(zip(batch, results, strict=True)):
                assert pair.create is not None
                self.warn(target, result.display or result.id or
                          f"copy of {pair.create.source_display}", result.warnings)
                if not result.ok or not result.id:
                    continue
                source = pair.create.source_side
                pair.ids[target] = result.id
                pair.displays[target] = result.display or result.id
                for comment in pair.comments:
                    comment.target_display = pair.displays[target]
                for mark in pair.marks:
                    if mark.foreign_id is None:
                        mark.foreign_id = result.id
                        mark.foreign_display = pair.displays[target]
                source_record = pair.records[source]
                made[index] = _Ready(pair, {
                    target: result.version,
                    source: source_record.version if source_record is not None else None,
                }, created=True, began=began)
            if write is not None:
                write(list(made.values()))

        try:
            results = connector.create(news, created=created)
        except FatalError:
            raise
        except ConnectorError as error:
            # Every pair of the batch fails, those told made too (their writes done).
            for pair in batch:
                assert pair.create is not None
                self._remember_read(pair)
                self.log(pair, "failed", began, _one_line(error))
                self.fail(pair.create.source_side, pair.create.source_id,
                          pair.create.source_display, _one_line(error))
            return []
        if told is None:
            created(results_so_far(results))   # a connector that never told: told now
        assert told is not None
        # The connector's steps after its creates ended; the batch's writes are done.
        step("create:after-steps")
        ready: list[_Ready] = []
        for index, (pair, result) in enumerate(zip(batch, results, strict=True)):
            assert pair.create is not None
            was = told[index]
            # Only what came after the copies were told (a step's warning) is new here.
            self.warn(target, result.display or result.id or
                      f"copy of {pair.create.source_display}",
                      result.warnings[len(was.warnings):])
            item = made.get(index)
            if item is None:
                self._remember_read(pair)
                reason = _one_line(was.error or result.error or "create returned no id")
                self.log(pair, "failed", began, reason)
                self.fail(pair.create.source_side, pair.create.source_id,
                          pair.create.source_display, reason)
                continue
            if not result.ok and item.error is None:
                item.error = _one_line(result.error or "create failed")
            if item.versions.get(target) is None:
                item.versions[target] = result.version
            ready.append(item)
        return ready

    # ------------------------------------------------------------------ pairs

    def _finish_pairs(self, ready: list[_Ready], *, final: bool) -> list[_Ready]:
        """Field writes and marks (one ``write_many`` per side), the pairs' commits (one
        transaction for those whose writes succeeded), then the comments (one
        ``add_comments`` per side) and their commits.

        Returns the pairs that committed. ``final``: the settle step's pairs, whose
        written sides' versions are known (nothing reads them back again).
        """
        self._write_fields(ready, final=final)
        commits = {id(item): _Commit(item.pair, self._outcome_versions(item, final=final),
                                     outcome=True)
                   for item in ready if item.error is None}
        together = self.commit_together(list(commits.values()))
        views = None if together is None else dict(zip(commits, together, strict=True))
        committed: list[_Ready] = []
        for item in ready:
            if item.error is not None:
                self.log(item.pair, "failed", item.began, item.error)
                self._fail_pair(item.pair, item.error)
                continue
            if views is not None:
                view: LinkView | None = views[id(item)]
            else:   # refused as one: each pair's own commit, a failed one queued alone
                view = self._commit_outcome(item, commits[id(item)].versions)
            if view is None:
                continue
            self._committed(item, view)
            committed.append(item)
        self._copy_comments(committed)
        return committed

    def _write_fields(self, ready: list[_Ready], *, final: bool) -> None:
        """Every update and mark of these pairs, one ``write_many`` per side.

        An update and a mark of one record are one :class:`RecordWrite` (the mark
        checked against the version the update leaves, as the connector applies
        them in that order); a mark alone is checked against the version planned.
        A failed item fails its pair only (``_Ready.error``). Unless ``final`` (the
        settle step's writes, whose versions are committed), the writes ask for no
        version: the settle step reads every written record back, and until then the
        written sides' versions stay unknown in the store (:meth:`_outcome_versions`).
        Pairs written before (:meth:`apply_batch`, during the creates) are not
        written again.
        """
        step = self.hooks.step
        writes: dict[str, list[tuple[_Ready, RecordWrite, str]]] = {s: [] for s in self.sides}
        for item in ready:
            if item.written:
                continue   # written while its batch's creates ran their steps
            item.written = True
            pair = item.pair
            per_record: dict[tuple[str, str], dict[str, Any]] = {}
            for update in pair.updates:
                entry = per_record.setdefault((update.side, update.record_id), {
                    "fields": {}, "foreign_id": None, "display": update.display,
                    "expected": update.expected_version})
                entry["fields"].update(update.fields)
            for mark in pair.marks:
                assert mark.foreign_id is not None  # filled in by the create
                entry = per_record.setdefault((mark.side, mark.record_id), {
                    "fields": {}, "foreign_id": None, "display": mark.display,
                    "expected": item.versions.get(mark.side) or mark.expected_version})
                entry["foreign_id"] = mark.foreign_id
            for (side, record_id), entry in per_record.items():
                writes[side].append((item, RecordWrite(
                    record_id=record_id, fields=entry["fields"],
                    foreign_id=entry["foreign_id"], expected_version=entry["expected"],
                    version_wanted=final,
                ), entry["display"]))
        if not any(writes.values()):
            return
        step("update:before-write")
        for side, items in writes.items():
            if not items:
                continue
            try:
                results = self.session.connectors[side].write_many(
                    [write for _, write, _ in items])
            except FatalError:
                raise
            except (ConnectorError, PreconditionFailed) as error:
                # The batch as a whole failed: every item of it did.
                results = [WriteResult(id=write.record_id, error=error)
                           for _, write, _ in items]
            for (item, _, display), result in zip(items, results, strict=True):
                if not result.ok:
                    if item.error is None:
                        item.error = _one_line(result.error or ConnectorError(
                            "write failed", side=side))
                    continue
                item.versions[side] = result.version or item.versions.get(side)
                self.warn(side, display, result.warnings)
        step("update:after-write")

    def _outcome_versions(self, item: _Ready, *, final: bool) -> dict[str, str | None]:
        """The seen versions a pair's commit after its writes keeps.

        While comments are still to be copied, the link is committed with the
        comments' source versions unknown, so a crash before they are all
        copied makes the next run look at the pair again instead of skipping it.
        """
        pair = item.pair
        # A note moves its record's version too: unknown until read again.
        pending = {c.source_side for c in pair.comments} | {n.side for n in pair.notes}
        if not final:
            # Until the settle step has read what the tools made of our writes
            # (ServiceNow derives priority), the written sides' versions stay
            # unknown: a run dying before it leaves the next run to look again.
            pending |= {u.side for u in pair.updates} | {m.side for m in pair.marks}
            if pair.create is not None:
                pending.add(pair.create.target_side)
        return {side: None if side in pending else version
                for side, version in item.versions.items()}

    def _commit_outcome(self, item: _Ready,
                        versions: Mapping[str, str | None]) -> LinkView | None:
        """A pair's own commit after its writes; None (and queued) when it failed."""
        pair = item.pair
        try:
            return self.commit(pair, versions, outcome=True)
        except FatalError:
            raise
        except (ConnectorError, PreconditionFailed, SyncError, ValueError) as error:
            self.log(pair, "failed", item.began, _one_line(error))
            self._fail_pair(pair, _one_line(error))
            return None

    def _committed(self, item: _Ready, view: LinkView) -> None:
        """What follows a pair's commit after its writes: its log line, its counts, the
        crash points after it, then its rules' notes."""
        pair = item.pair
        self.log(pair, "ok", item.began)
        self.summary.updated += len(pair.updates)
        self.summary.conflicts += len(pair.conflicts)
        self.summary.rule_firings += len(pair.firings) - len(pair.notes)
        self.hooks.step("update:after-commit")
        if item.created:
            self.summary.created += 1
            self.hooks.step("create:after-commit")
        elif pair.adopt:
            self.summary.adopted += 1
        item.view = view
        if pair.notes:
            self._write_notes(pair, view)   # a note that failed stays owed: next run

    def commit_together(self, commits: Sequence[_Commit]) -> list[LinkView] | None:
        """Several pairs' commits in ONE transaction, each writing what :meth:`commit`
        writes for it; their views in order. None when the store refuses them as one
        (a link gone or claimed meanwhile, a comment paired already, a database
        error): nothing of them is committed, and the caller commits them one by
        one, so a bad pair fails alone."""
        if not commits:
            return []
        clock = self.session.clock
        saves: list[LinkSave] = []
        stamps: list[datetime | None] = []
        for commit in commits:
            pair = commit.pair
            # The clock read as a pair's own commit reads it: the link, then the outcome.
            saves.append(LinkSave(sides=self._link_sides(pair, commit.versions),
                                  hash=pair.hash, at=clock(), link=pair.link,
                                  new=pair.link is None))
            stamps.append(clock() if commit.outcome else None)
        try:
            with self.store.pairs() as tx:
                views = save_links(tx, saves)
                comments: list[CommentLink] = []
                for commit, view in zip(commits, views, strict=True):
                    comments.extend(CommentLink(
                        link_id=view.id, ids={action.source_side: action.source_comment_id,
                                              action.target_side: made_id},
                        origin=action.source_side, visibility=action.visibility)
                        for action, made_id in commit.comments)
                tx.add_comment_links(comments)
                outcomes = [(commit.pair, view.id, at)
                            for commit, view, at in zip(commits, views, stamps, strict=True)
                            if at is not None]
                if outcomes:
                    self._commit_outcomes(tx, outcomes)
        except (SyncError, ValueError) as error:
            logger.debug("committing %d pairs one by one: %s", len(commits), _one_line(error))
            return None
        for commit, view in zip(commits, views, strict=True):
            commit.pair.link = view.link   # the pair's next commit updates this link by id
        return views

    def _commit_outcomes(self, tx: PairsTx,
                         outcomes: Sequence[tuple[PairPlan, int, datetime]]) -> None:
        """The ``outcome`` part of a commit, for one pair (:meth:`commit`) or several
        (:meth:`commit_together`): conflicts, rules, intents, retry items."""
        for pair, link_id, at in outcomes:
            # In a pair's order: its conflicts, the closes its updates make, the settled.
            conflicted = {item.conflict.field for item in pair.conflicts}
            tx.record_conflicts(conflict_note(link_id, item.conflict, at=at)
                                for item in pair.conflicts)
            tx.close_conflicts((link_id, change.field) for update in pair.updates
                               for change in update.changes if change.field not in conflicted)
            tx.record_conflicts(conflict_note(link_id, settled.conflict, at=at, open=False)
                                for settled in pair.settled)
        tx.record_rule_firings((link_id, self._unnoted_firings(pair), at)
                               for pair, link_id, at in outcomes)
        if self.session.rules:
            tx.set_rules_due((link_id, pair.rules_due_at) for pair, link_id, _ in outcomes)
        tx.complete_intents(pair.intent_id for pair, _, _ in outcomes
                            if pair.intent_id is not None)
        tx.clear_retries((side, pair.ids[side] or "") for pair, _, _ in outcomes
                         for side in self.sides if pair.ids[side])

    def _link_sides(self, pair: PairPlan,
                    versions: Mapping[str, str | None]) -> dict[str, LinkSide]:
        return {side: LinkSide(id=pair.ids[side] or "", display=pair.displays[side],
                               snapshot=pair.snapshots[side], version=versions.get(side))
                for side in self.sides}

    def commit(self, pair: PairPlan, versions: Mapping[str, str | None], *,
               outcome: bool = False,
               comment: tuple[AddComment, str] | None = None,
               note: AddNote | None = None) -> LinkView:
        """One pair's own commit: one transaction (:meth:`commit_together` writes the
        same for several pairs in one).

        Always the link (ids, displays, snapshots, the seen ``versions``); with
        ``outcome`` also its conflicts (recorded, closed, settled), its create
        intent and its retry items; with ``comment`` (the action and the id of
        the copy) the comment pair.
        """
        with self.store.pair() as tx:
            view = save_link(tx, self._link_sides(pair, versions), hash=pair.hash,
                             at=self.session.clock(), link=pair.link, new=pair.link is None)
            if note is not None:
                tx.record_rule_firings(view.id, [_firing_row(note.firing)],
                                       at=self.session.clock())
            if comment is not None:
                action, made_id = comment
                add_comment_link(tx, view.id, {action.source_side: action.source_comment_id,
                                               action.target_side: made_id},
                                 origin=action.source_side, visibility=action.visibility)
            if outcome:
                self._commit_outcomes(PairsTx.within(tx), [(pair, view.id,
                                                            self.session.clock())])
        pair.link = view.link   # the pair's next commit updates this link by id
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

    @staticmethod
    def _unnoted_firings(pair: PairPlan) -> list[dict[str, Any]]:
        """The rows of the pair's firings but those of its new notes (see _write_notes)."""
        noted = {note.note_id for note in pair.notes}
        return [_firing_row(f) for f in pair.firings
                if f.note_id is None or f.note_id not in noted]

    def _copy_comments(self, committed: list[_Ready]) -> None:
        """The committed pairs' comments: one ``add_comments`` per side, then the copies
        committed with their id pairs, in one transaction for all the pairs (a pair
        whose copies all made it with its comments' source versions known)."""
        new: dict[str, list[tuple[AddComment, NewComment]]] = {s: [] for s in self.sides}
        for item in committed:
            for comment in item.pair.comments:
                if comment.existing_id is None:
                    target_id = item.pair.ids[comment.target_side]
                    assert target_id is not None
                    new[comment.target_side].append((comment, NewComment(
                        record_id=target_id, body=comment.body,
                        visibility=comment.visibility)))
        made: dict[int, CommentResult] = {}
        began = time.monotonic()  # the batch's comments go out together
        for side, items in new.items():
            if not items:
                continue
            try:
                results = self.session.connectors[side].add_comments(
                    [request for _, request in items])
            except FatalError:
                raise
            except ConnectorError as error:
                results = [CommentResult(error=error) for _ in items]
            for (comment, _), result in zip(items, results, strict=True):
                made[id(comment)] = result
        if any(new.values()):
            self.hooks.step("comment:after-write")
        # Per pair, each comment's copy (its id) or why there is none; the pairs whose
        # copies were made are committed together: each with its comment pairs, and
        # with its comments' source versions known when all of them made it.
        copies: list[tuple[_Ready, list[tuple[AddComment, str | None, Exception | None]]]] = []
        commits: list[_Commit] = []
        for item in committed:
            pair = item.pair
            if not pair.comments:
                continue
            assert item.view is not None
            outcomes: list[tuple[AddComment, str | None, Exception | None]] = []
            for comment in pair.comments:
                made_id, error = comment.existing_id, None
                if made_id is None:
                    result = made[id(comment)]
                    if result.error is not None:
                        error = result.error
                    elif result.comment is None:
                        error = ConnectorError("no comment came back", side=comment.target_side)
                    else:
                        made_id = result.comment.id
                outcomes.append((comment, made_id, error))
            copies.append((item, outcomes))
            made_ids = [(comment, made_id) for comment, made_id, error in outcomes
                        if error is None and made_id is not None]
            if made_ids:
                view = item.view
                complete = len(made_ids) == len(outcomes)
                commits.append(_Commit(pair, item.versions if complete else {
                    side: view.side(side).version for side in self.sides}, comments=made_ids))
        if self.commit_together(commits) is None:
            for item, outcomes in copies:   # refused as one: each comment's own commit
                self._commit_comments(item, outcomes, began)
            return
        for item, outcomes in copies:
            for comment, _, error in outcomes:
                if error is not None:
                    self._comment_failed(item.pair, comment, error, began)
                elif comment.existing_id is None:
                    self.log(item.pair, "ok", began, writes=[(comment.target_side, "comment")])
                    self.summary.comments += 1

    def _commit_comments(self, item: _Ready,
                         outcomes: list[tuple[AddComment, str | None, Exception | None]],
                         began: float) -> None:
        """A pair's comments committed one by one, each with its comment pair; a pair
        whose copies all made it commits again with its comments' source versions known."""
        pair = item.pair
        assert item.view is not None
        complete = True
        for comment, made_id, failure in outcomes:
            try:
                if failure is not None:
                    raise failure
                assert made_id is not None
                self._commit_comment(pair, item.view, comment, made_id)
            except FatalError:
                raise
            except (ConnectorError, SyncError, ValueError) as error:
                self._comment_failed(pair, comment, error, began)
                complete = False
                continue
            if comment.existing_id is None:
                self.log(pair, "ok", began, writes=[(comment.target_side, "comment")])
                self.summary.comments += 1
        if complete:
            self.commit(pair, item.versions)

    def _comment_failed(self, pair: PairPlan, comment: AddComment, error: Exception,
                        began: float) -> None:
        target = comment.target_side
        self.log(pair, "failed", began, _one_line(error), writes=[(target, "comment")])
        self._remember_read(pair)
        self.fail(target, pair.ids[target] or "", pair.displays[target],
                  f"copying comment {comment.source_comment_id}: {_one_line(error)}")

    def _commit_comment(self, pair: PairPlan, view: LinkView, comment: AddComment,
                        made_id: str) -> None:
        """One comment pair, committed with the link as the pair's commit left it."""
        versions = {side: view.side(side).version for side in self.sides}
        self.commit(pair, versions, comment=(comment, made_id))


def _firing_row(firing: RuleFiring) -> dict[str, Any]:
    return {**firing.to_json(), "note_id": firing.note_id}
