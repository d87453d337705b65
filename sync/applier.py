"""Applying a plan: creates, field writes, link commits, comments, the retry queue.

Contract:
- :meth:`Applier.apply` executes a :class:`sync.actions.Plan`. Creates go in
  bulk per target side, each preceded by a committed intent; the source then
  gets the new record's id. Each pair commits in one state-store transaction
  after its writes succeed (per-side snapshots, seen versions, conflicts,
  retry queue, intent); comments follow, each committed with its id pair,
  and only then are the comment sources' versions confirmed.
- A pair that fails (any ConnectorError but a fatal one, a precondition, a
  mapping ValueError, a link conflict) goes to the retry queue and the run
  goes on; a :class:`connectors.base.FatalError` aborts the run.
- Pairs we wrote are read back once and merged again (vendor-computed values
  travel in the same run). Watermarks advance last, and only when both pulls
  completed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from connectors.base import (
    ConnectorError,
    FatalError,
    NewRecord,
    PreconditionFailed,
    RemoteRecord,
    SyncError,
)
from sync.actions import PairPlan, Plan, side_title
from sync.engine_core import (
    BACKLINK_FIELDS,
    RunSummary,
    _comment_key,
    _id_key,
    _one_line,
    projection,
)
from sync.planner import Planner, is_empty
from sync.state import Link, PairTx

logger = logging.getLogger(__name__)

class Applier(Planner):
    """The writing half of the engine (it plans again to settle what it wrote)."""

    # True while the settle pass writes: its commits are final, nothing settles them.
    _settling = False

    def apply(self, plan: Plan) -> RunSummary:
        """Execute ``plan``; commit per pair; failures go to the retry queue."""
        began = time.monotonic()
        summary = RunSummary()
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
            self._fail(summary, problem.side, problem.record_id, problem.display, problem.error)
        for orphan in plan.orphans:
            summary.orphaned += 1
            summary.orphans.append(f"{side_title(orphan.side)} {orphan.display}: {orphan.reason}")

        creates: dict[str, list[PairPlan]] = {}
        for pair in plan.pairs:
            if pair.create is not None:
                creates.setdefault(pair.create.target_side, []).append(pair)
        written: list[PairPlan] = []
        for target, batch in creates.items():
            written.extend(self._apply_creates(target, batch, summary))
            done += len(batch)
            self._tick(done, total)
        for pair in plan.pairs:
            if pair.create is not None:
                continue
            if self._apply_pair(pair, summary) and (pair.updates or pair.comments):
                written.append(pair)
            done += 1
            self._tick(done, total)
        self._settle(written, summary)

        if not plan.pull_errors:
            for side, value in plan.watermarks.items():
                self.store.set_watermark(side, value)
        summary.elapsed = time.monotonic() - began
        return summary

    def _tick(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)
        self.beat()

    def _warn(self, summary: RunSummary, side: str, display: str,
              warnings: list[str]) -> None:
        """What a tool did not take as written (an unknown user left empty...): reported."""
        summary.warnings.extend(f"{side_title(side)} {display}: {w}" for w in warnings)

    def _fail(self, summary: RunSummary, side: str, record_id: str, display: str,
              error: str) -> None:
        item = self.store.record_failure(
            side, record_id, error, now=self.clock(),
            base_seconds=self.options.retry_base_seconds,
            max_attempts=self.options.max_attempts,
        )
        summary.failed += 1
        state = "parked" if item.parked else f"attempt {item.attempts}"
        if item.parked:
            summary.parked += 1
        summary.failures.append(f"{side_title(side)} {display or record_id} ({state}): {error}")

    def _apply_creates(
        self, target: str, batch: list[PairPlan], summary: RunSummary
    ) -> list[PairPlan]:
        """Create the batch on ``target`` (intents first); return the pairs that committed."""
        connector = self.connectors[target]
        made: list[PairPlan] = []
        for pair in batch:
            assert pair.create is not None
            self._step("create:before-intent")
            if pair.intent_id is None:
                pair.intent_id = self.store.record_intent(
                    pair.create.source_side, pair.create.source_id, target)
            self._step("create:after-intent")
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
                self._fail(summary, pair.create.source_side, pair.create.source_id,
                           pair.create.source_display, _one_line(error))
            return made
        self._step("create:after-remote")
        for pair, result in zip(batch, results, strict=True):
            assert pair.create is not None
            source = pair.create.source_side
            self._warn(summary, target, result.display or result.id or
                       f"copy of {pair.create.source_display}", result.warnings)
            if not result.ok or not result.id:
                self._fail(summary, source, pair.create.source_id, pair.create.source_display,
                           _one_line(result.error or "create returned no id"))
                continue
            pair.ids[target] = result.id
            pair.displays[target] = result.display or result.id
            for comment in pair.comments:
                comment.target_display = pair.displays[target]
            source_record = pair.records[source]
            versions = {target: result.version,
                        source: source_record.version if source_record is not None else None}
            pair.backlink = (source, result.id)
            if self._finish_pair(pair, summary, versions):
                summary.created += 1
                made.append(pair)
                self._step("create:after-commit")
        return made

    def _settle(self, pairs: list[PairPlan], summary: RunSummary) -> None:
        """Merge the pairs we wrote once more, against what the tools actually hold.

        A tool may store our write differently (ServiceNow cuts a title at 160
        characters): for the fields we wrote a value to, what it holds now
        becomes that side's snapshot, so the cut never travels back over the
        full value, and a value it dropped (a user it does not know) never
        clears the original. A value it filled in where we wrote none (Jira's
        default reporter) is a change like any other and travels.
        A tool may also compute other values from our write (ServiceNow derives
        priority from impact x urgency), which our write's version stamp would
        hide from the next run: those are changes, and travel now. The final
        version stamps are committed too (adding a comment moves them). One
        batched read per side, one pass only: it cannot loop. If the read
        fails, the pairs' seen versions are forgotten, so the next run looks
        at them again.
        """
        if not pairs:
            return
        wanted = {side: [p.ids[side] or "" for p in pairs] for side in self.sides}
        try:
            fetched = {side: self.connectors[side].get_many(ids, self.vendor_fields[side])
                       for side, ids in wanted.items()}
        except FatalError:
            raise
        except ConnectorError as error:
            logger.warning("settling written pairs postponed to the next run: %s", error)
            self._forget_versions(pairs)
            return
        a = self.sides[0]
        links = self.store.links_by(a, wanted[a])
        follow_up = Plan(started=self.clock())
        for pair in pairs:
            link = links.get(pair.ids[a] or "")
            got = {side: fetched[side].get(pair.ids[side] or "") for side in self.sides}
            present = {side: rec for side, rec in got.items() if rec is not None}
            if link is None or len(present) < 2:
                continue
            self._guarded(follow_up, present, lambda pair=pair, link=link, got=present: (
                self._plan_linked(follow_up, self._rebased(link, pair, got), got,
                                  {side: set() for side in self.sides})))
        for problem in follow_up.problems:
            self._fail(summary, problem.side, problem.record_id, problem.display, problem.error)
        self._settling = True
        try:
            for pair in follow_up.pairs:
                link = links.get(pair.ids[a] or "")
                if link is None:
                    continue
                moved = any((pair.records[side].version if pair.records[side] else None)
                            != link.version_on(side) for side in self.sides)
                rebased = any(pair.snapshots[side] != link.snapshot_on(side)
                              for side in self.sides)
                if pair.updates or pair.conflicts or moved or rebased:
                    self._apply_pair(pair, summary)
        finally:
            self._settling = False

    def _forget_versions(self, pairs: list[PairPlan]) -> None:
        """Make the next run look at these pairs again, snapshots kept.

        Without the settle read, what a tool derived from our write (ServiceNow's
        priority) hides behind the version stamp we committed; an unknown seen
        version counts as moved, so the next run maps and merges the pair.
        """
        for pair in pairs:
            with self.store.pair() as tx:
                self._save_link(tx, pair, {side: None for side in self.sides})

    def _rebased(self, link: Link, pair: PairPlan, got: Mapping[str, RemoteRecord]) -> Link:
        """``link`` with each side's snapshot taking what the side holds for fields we wrote."""
        written: dict[str, set[str]] = {side: set() for side in self.sides}
        if pair.create is not None:
            target = pair.create.target_side
            written[target].update(f for f in self.merged_fields if self.travels(f, target))
        for update in pair.updates:
            written[update.side].update(change.field for change in update.changes)
        changes: dict[str, Any] = {}
        for side, fields in written.items():
            if not fields:
                continue
            held = projection(self.incident(got[side]), self.merged_fields)
            snapshot = dict(link.snapshot_on(side) or {})
            # A value we wrote is the tool's to reshape or even drop (an unknown
            # user left empty): absorbed, never sent back to wipe the original.
            # One it filled in where we wrote none (Jira's default reporter) is
            # news for the other side.
            snapshot.update({f: held[f] for f in fields if not is_empty(snapshot.get(f))})
            # A value our write made the tool drop (Jira clears the resolution of an
            # issue our transition reopened) is the tool's habit, not a person's
            # edit: absorbed too, once the tool's history says the drop was ours.
            dropped = [f for f in self.merged_fields if f not in fields
                       and not is_empty(snapshot.get(f)) and is_empty(held[f])]
            if dropped:
                snapshot.update({f: held[f] for f in self._dropped_by_us(got[side], dropped)})
            changes[f"snapshot_{side}"] = snapshot
        return replace(link, **changes) if changes else link

    def _dropped_by_us(self, record: RemoteRecord, names: list[str]) -> list[str]:
        """Those of ``names`` whose last change on ``record`` the integration user made."""
        try:
            last = self._last_changed_by_us(record)
        except FatalError:
            raise
        except ConnectorError as error:
            logger.warning("history of %s unread, its dropped values travel: %s",
                           record.display, error)
            return []
        return [name for name in names if last.get(name)]

    def _apply_pair(self, pair: PairPlan, summary: RunSummary) -> bool:
        """Writes and commit of one existing pair; True when it committed."""
        versions = {side: (rec.version if rec is not None else None)
                    for side, rec in pair.records.items()}
        committed = self._finish_pair(pair, summary, versions)
        if committed and pair.adopt:
            summary.adopted += 1
        return committed

    def _finish_pair(
        self, pair: PairPlan, summary: RunSummary, versions: dict[str, str | None],
    ) -> bool:
        """Field writes, the link commit, then comments. True when the pair committed.

        While comments are still to be copied, the link is committed with the
        comments' source versions unknown, so a crash before they are all
        copied makes the next run look at the pair again instead of skipping it.
        """
        backlink = pair.backlink
        origin = next(s for s in self.sides if pair.records.get(s) is not None)
        origin_record = pair.records[origin]
        assert origin_record is not None
        try:
            updated = 0
            for update in pair.updates:
                self._step("update:before-write")
                fields = dict(update.fields)
                if backlink is not None and update.side == backlink[0]:
                    fields.update(self._backlink_fields(update.side, backlink[1], pair))
                result = self.connectors[update.side].update(
                    update.record_id, fields, expected_version=update.expected_version)
                if not result.ok:
                    raise result.error or ConnectorError("update failed", side=update.side)
                versions[update.side] = result.version or versions.get(update.side)
                self._warn(summary, update.side, update.display, result.warnings)
                updated += 1
                self._step("update:after-write")
            if backlink is not None and not any(u.side == backlink[0] for u in pair.updates):
                source_record = pair.records[backlink[0]]
                assert source_record is not None
                fields = self._backlink_fields(backlink[0], backlink[1], pair)
                if fields:
                    result = self.connectors[backlink[0]].update(source_record.id, fields)
                    if not result.ok:
                        raise result.error or ConnectorError("update failed", side=backlink[0])
                    versions[backlink[0]] = result.version or versions.get(backlink[0])
            pending = {c.source_side for c in pair.comments}
            if not self._settling:
                # Until the settle pass has read what the tools made of our writes
                # (ServiceNow derives priority), the written sides' versions stay
                # unknown: a run dying before it leaves the next run to look again.
                pending |= {u.side for u in pair.updates}
                if pair.create is not None:
                    pending.add(pair.create.target_side)
                if backlink is not None:
                    pending.add(backlink[0])
            link = self._commit(pair, {side: None if side in pending else version
                                       for side, version in versions.items()})
        except FatalError:
            raise
        except (ConnectorError, PreconditionFailed, SyncError, ValueError) as error:
            self._fail(summary, origin, origin_record.id, origin_record.display,
                       _one_line(error))
            return False
        summary.updated += updated
        summary.conflicts += len(pair.conflicts)
        self._step("update:after-commit")
        if pair.comments and self._copy_comments(pair, link, summary):
            with self.store.pair() as tx:
                self._save_link(tx, pair, versions)
        return True

    def _backlink_fields(self, side: str, foreign_id: str, pair: PairPlan) -> dict[str, Any]:
        """Vendor fields that make a source record carry the id of the copy we made of it."""
        make = BACKLINK_FIELDS.get(side)
        return dict(make(foreign_id)) if make is not None else {}

    def _save_link(self, tx: PairTx, pair: PairPlan, versions: Mapping[str, str | None]) -> Link:
        a, b = self.sides
        return tx.save_link(
            **{
                f"{_id_key(a)}": pair.ids[a] or "", f"{_id_key(b)}": pair.ids[b] or "",
                f"{a}_display": pair.displays[a], f"{b}_display": pair.displays[b],
                f"snapshot_{a}": pair.snapshots[a], f"snapshot_{b}": pair.snapshots[b],
                f"version_{a}": versions.get(a), f"version_{b}": versions.get(b),
            },
            hash=pair.hash,
        )

    def _commit(self, pair: PairPlan, versions: Mapping[str, str | None]) -> Link:
        ids = {side: pair.ids[side] or "" for side in self.sides}
        with self.store.pair() as tx:
            link = self._save_link(tx, pair, versions)
            at = self.clock()
            conflicted = set()
            for item in pair.conflicts:
                c = item.conflict
                conflicted.add(c.field)
                tx.record_conflict(
                    link.id, c.field, base=dict(c.base),
                    **{f"{side}_value": c.values[side] for side in self.sides},
                    resolution=c.resolution, policy=c.policy, at=at,
                )
            for update in pair.updates:
                for change in update.changes:
                    if change.field not in conflicted:
                        tx.close_conflicts(link.id, change.field)
            for settled in pair.settled:  # both sides agree now: closed, and recorded
                c = settled.conflict
                tx.record_conflict(
                    link.id, c.field, base=dict(c.base),
                    **{f"{side}_value": c.values[side] for side in self.sides},
                    resolution=c.resolution, policy=c.policy, at=at, open=False,
                )
            if pair.intent_id is not None:
                tx.complete_intent(pair.intent_id)
            for side in self.sides:
                if ids[side]:
                    tx.clear_retry(side, ids[side])
        return link

    def _copy_comments(self, pair: PairPlan, link: Link, summary: RunSummary) -> bool:
        """Copy the pair's comments, each committed with its id pair; True if all made it."""
        complete = True
        for comment in pair.comments:
            target = comment.target_side
            target_id = pair.ids[target]
            assert target_id is not None
            try:
                made_id = comment.existing_id
                if made_id is None:
                    made_id = self.connectors[target].add_comment(
                        target_id, comment.body, comment.visibility).id
                    self._step("comment:after-write")
                ids = {comment.source_side: comment.source_comment_id, target: made_id}
                with self.store.pair() as tx:
                    tx.add_comment_link(
                        link.id, **{f"{_comment_key(s)}": ids[s] for s in self.sides},
                        origin=comment.source_side, visibility=comment.visibility,
                    )
            except FatalError:
                raise
            except (ConnectorError, SyncError, ValueError) as error:
                self._fail(summary, target, target_id, pair.displays[target],
                           f"copying comment {comment.source_comment_id}: {_one_line(error)}")
                complete = False
                continue
            if comment.existing_id is None:
                summary.comments += 1
        return complete
