"""Planning: pull, pair, decide and diff, turned into a Plan without writing anything.

Contract:
- :func:`build_plan` pulls each side since its watermark (plus due retry
  items, pending create intents and links with a conflict to decide again),
  pairs records through the link table, fetches missing counterparts in
  batches and plans each changed pair. Field decisions are
  :mod:`sync.decide`'s; this module reads what they need (histories only for
  pairs where both sides changed a field, or a copy we made) and turns them
  into actions.
- Unlinked records are adopted when either side carries the other's id
  (found directly or with ``find_by_foreign_id``), else planned as creates
  where the direction allows. Two records claiming one counterpart are a
  problem for those records, not a crash. A record left without the other's
  id (a create's original, an adoption after a crash) gets a
  :class:`sync.actions.MarkForeignId`.
- Comments the other side lacks become copies (:func:`sync.merge.comments_to_copy`);
  a copy an interrupted run already made is recognised by its exact text and
  linked, not copied again.
- :func:`stream_plan` is the same planning for a run: after the pulls and
  the pairing, pairs are planned a batch at a time as the run takes them, so
  only one batch of planned pairs is held. Pulled and fetched records are kept
  on disk (:class:`sync.spool.RecordSpool`) until their pair is planned: in
  memory a pass holds per record only what pairing reads (id, display,
  version, foreign id) and per queued pair its kind and those records, never
  a record's fields or comments. The spool is removed when the planning ends,
  on an error or an interrupt too.
- :func:`plan_settle` plans the settle step of a run: the pairs a run wrote,
  read back once and decided again against what the tools hold.
- A pull that fails stops all creates and keeps the watermarks; a side that
  returns nothing where links say records exist stops the run
  (:class:`sync.errors.SafetyValve`).
- Reads only: connectors' read methods and the state store's queries.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Protocol

from connectors.base import (
    ConnectorError,
    Edit,
    FatalError,
    KnownComments,
    RecordHistory,
    RemoteComment,
    RemoteRecord,
    SyncError,
)
from connectors.retry import run_chunks
from mappings.mapper import comment_from_remote, comment_to_remote
from mappings.model import Comment
from sync.actions import (
    AddComment,
    AddNote,
    AdoptRecord,
    CreateRecord,
    FieldChange,
    MarkForeignId,
    PairPlan,
    Plan,
    ReadBack,
    RecordConflict,
    ReportOrphan,
    ReportProblem,
    SettleConflict,
    UpdateFields,
    side_title,
)
from sync.decide import (
    PairDecision,
    SideWrite,
    adoption_base,
    changed_back_suspects,
    decide_create,
    decide_pair,
    filled_on_copy,
    rebase_changed_back,
    rebase_written,
)
from sync.engine_core import (
    VANISHED_BATCH,
    _one_line,
    snapshot_hash,
    tool_clock_name,
)
from sync.errors import SafetyValve
from sync.link_view import LinkView
from sync.merge import comments_to_copy
from sync.rules import RuleFiring, note_head
from sync.session import Session
from sync.spool import PulledRecord, RecordSpool
from sync.state import CommentLink, StateStore

logger = logging.getLogger(__name__)


class _Named(Protocol):
    """What a problem report names of a record (a pulled one or one read in full)."""

    @property
    def side(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def display(self) -> str: ...


# A pair queued for planning: its kind ("linked", "create" or "adopt"), its records as
# pulled (the linked pair's in its order; the create's original; the adopting record,
# then its counterpart), and what the kind needs besides (the link's view and whether
# its last write is in doubt; the create intent's id; the reason and pending intents).
_Queued = tuple[str, tuple[PulledRecord, ...], Any]

# How far behind a tool's clock, as bounded by our own, a watermark stays: what a
# tool may take to show a write in its searches (a commit, an index). Jira's
# connector also searches back its overlap minutes from the watermark.
TOOL_CLOCK_MARGIN = timedelta(seconds=5)
# A (tool stamp, our time) pair older than this bounds nothing any more: two
# clocks drift apart by up to a few seconds a day without time synchronisation.
TOOL_CLOCK_MAX_AGE = timedelta(hours=6)


@dataclass(frozen=True)
class PeopleEdits:
    """A record's creation time, the neutral fields people changed on it, and when
    each was last changed by a person."""

    created: datetime
    fields: set[str]
    last: dict[str, datetime]


def build_plan(session: Session, store: StateStore,
               beat: Callable[[], None] | None = None, *, keep_metadata: bool = False) -> Plan:
    """Everything a run would do, computed with reads only.

    ``beat`` is called while a long pull goes on (a run keeps its lock alive).
    ``keep_metadata``: a run's session stores the site fields it read afresh.
    """
    session.open(store, keep=keep_metadata)
    session.forget()   # a new plan maps every record afresh
    planning = _Planning(session, store, Plan(started=session.clock()), beat)
    try:
        planning.build()
        return planning.drain()
    finally:
        planning.close()


@dataclass
class Batch:
    """Some pairs of a streamed plan, the problems their planning found, and how many
    pairs are still to plan after them (at most)."""

    pairs: list[PairPlan]
    problems: list[ReportProblem]
    remaining: int


class BatchStream(Iterator[Batch]):
    """A run's batches as :func:`stream_plan` plans them; :meth:`close` ends the
    planning early (the run failed or was interrupted) and removes its spool."""

    def __init__(self, planning: _Planning, size: int) -> None:
        self._planning = planning
        self._batches = planning.batches(size)

    def __next__(self) -> Batch:
        return next(self._batches)

    def close(self) -> None:
        self._batches.close()
        self._planning.close()   # a generator never started skips its own cleanup


def stream_plan(session: Session, store: StateStore, size: int,
                beat: Callable[[], None] | None = None) -> tuple[Plan, BatchStream]:
    """A run's plan, its pairs planned ``size`` at a time as the batches are taken.

    The same pulls, pairing and decisions as :func:`build_plan` (whose plan is
    these batches' pairs together): the returned plan holds what the pulls found
    and no pairs; each batch's pairs are planned when it is taken, so reads of
    histories or conflicts see the store as the earlier batches left it, which
    touches none of the later pairs. Until then the pulled records wait in the
    planning's spool (:mod:`sync.spool`), removed when the last batch is taken
    or the stream is closed (the caller closes it when it stops early).
    """
    session.open(store)
    session.forget()   # a new run maps every record afresh
    planning = _Planning(session, store, Plan(started=session.clock()), beat)
    try:
        plan = planning.build()
    except BaseException:
        planning.close()
        raise
    return plan, BatchStream(planning, size)


def plan_settle(session: Session, store: StateStore, written: Sequence[PairPlan],
                problems: list[ReportProblem]) -> list[PairPlan] | None:
    """The settle step: the pairs a run wrote, read back and decided again.

    A tool may store our write differently (ServiceNow cuts a title at 160
    characters): for the fields we wrote a value to, what it holds now
    becomes that side's snapshot, so the cut never travels back over the
    full value, and a value it dropped (a user it does not know) never
    clears the original. A value it filled in where we wrote none (Jira's
    default reporter) is a change like any other and travels. A tool may
    also compute other values from our write (ServiceNow derives priority
    from impact x urgency): those are changes, and travel now. One batched
    read per side, one pass only: it cannot loop. Returns None when the read
    failed (the caller forgets the pairs' versions so the next run looks
    again); otherwise the follow-up pairs, each with its commit and any write.
    """
    planning = _Planning(session, store, Plan(started=session.clock()), None)
    follow_up = planning.settle(written)
    problems.extend(planning.plan.problems)
    return follow_up


@dataclass
class _SideRebase:
    """What a settle read shows of the fields a run wrote on one side
    (:meth:`_Planning._rebase_of`): the snapshot taking what the side holds, what we
    wrote and what it holds, and the written fields read back otherwise (reshaped) or
    emptied where we wrote none (dropped)."""

    snapshot: dict[str, Any]
    ours: Mapping[str, Any]
    held: Mapping[str, Any]
    reshaped: list[str]
    dropped: list[str]

    @property
    def doubtful(self) -> bool:
        """Whether only the record's history can tell whose value this side holds."""
        return bool(self.reshaped or self.dropped)


MISSING = object()   # no history read ahead for a record


class _Planning:
    """One planning pass: the session and store read, and the plan being built."""

    def __init__(self, session: Session, store: StateStore, plan: Plan,
                 beat: Callable[[], None] | None) -> None:
        self.session = session
        self.fields = session.fields
        self.store = store
        self.plan = plan
        self.sides = session.sides
        self.beat = beat or (lambda: None)
        # Pairs still to plan, in plan order (:data:`_Queued`): planned on demand, so
        # a run holds one batch of planned pairs at a time, and until then only
        # what pairing needs of their records (the rest waits in the spool).
        self.pending: deque[_Queued] = deque()
        self._spool: RecordSpool | None = None
        # Records read back from the spool for the pairs about to be planned, by row.
        self.loaded: dict[int, RemoteRecord] = {}
        # Rule firings recorded per link, read once per batch of pairs (_read_firings).
        self.recorded: dict[int, list[RuleFiring]] = {}
        # The comment pairs of the links a settle step plans (every one of them, [] for
        # none), read once for its batch (no write comes between that read and the
        # planning); other links ask the store.
        self.comment_pairs: dict[int, list[CommentLink]] = {}
        # Histories a settle step read ahead for its batch, by (side, record id): the
        # record's history, None when the tool no longer has the record, or the error
        # the read met (:meth:`_read_histories`). A settle step's pass is its own, so
        # this holds one batch's at most.
        self.histories: dict[tuple[str, str], RecordHistory | ConnectorError | None] = {}

    def other(self, side: str) -> str:
        return self.session.other(side)

    @property
    def spool(self) -> RecordSpool:
        """Where this pass keeps the records it read until their pair is planned
        (made on first use: a settle step never needs one)."""
        if self._spool is None:
            self._spool = RecordSpool()
        return self._spool

    def close(self) -> None:
        """Remove the spool and drop whatever is still queued: the pass is over."""
        self.pending.clear()
        self.loaded.clear()
        if self._spool is not None:
            self._spool.close()

    # ------------------------------------------------------------------ the pass

    def build(self) -> Plan:
        plan = self.plan
        records: dict[str, dict[str, PulledRecord]] = {side: {} for side in self.sides}
        forced: dict[str, set[str]] = {side: set() for side in self.sides}

        waiting = self._waiting(plan.started)
        for side in self.sides:
            self._pull(side, records[side], waiting[side])
        self._add_retries_and_intents(records, forced, waiting)

        links = {side: self.store.links_by(side, records[side]) for side in self.sides}
        pairs: dict[int, dict[str, PulledRecord]] = {}
        by_link: dict[int, LinkView] = {}
        unlinked: dict[str, list[PulledRecord]] = {side: [] for side in self.sides}
        for side in self.sides:
            for record_id, record in records[side].items():
                link = links[side].get(record_id)
                if link is None:
                    unlinked[side].append(record)
                    continue
                by_link[link.id] = LinkView(link)
                pairs.setdefault(link.id, {})[side] = record

        active = {
            link_id: got for link_id, got in pairs.items()
            if any(record.version != by_link[link_id].side(side).version
                   or record.id in forced[side] for side, record in got.items())
            # A pair waiting in the retry queue is left alone until it is due,
            # even when its other record moved (perhaps by our own failed write).
            and not any(by_link[link_id].side(side).id in waiting[side]
                        and by_link[link_id].side(side).id not in forced[side]
                        for side in self.sides)
        }
        self._fetch_counterparts(active, by_link)
        self._read_firings(active)
        # Records whose last write may have landed without its commit: a failed
        # attempt (a lost reply is one) or a pending create intent.
        unfinished = ({(item.side, item.record_id) for item in self.store.retry_items()}
                      | {(intent.source_side, intent.source_id)
                         for intent in self.store.pending_intents()})
        for link_id, got in active.items():
            view = by_link[link_id]
            if len(got) < 2:
                continue  # orphaned or failed: reported by _fetch_counterparts
            doubt = any((side, view.side(side).id) in unfinished for side in self.sides)
            self.pending.append(("linked", tuple(got.values()), (view, doubt)))

        if plan.pull_errors:
            # A side we could not read may hold the counterparts of these
            # records: creating now could duplicate them (STYLE habit 8).
            return plan
        self._plan_unlinked(unlinked, records)
        return plan

    def _waiting(self, now: datetime) -> dict[str, set[str]]:
        """Per side, the ids in the retry queue whose next attempt has not come yet.

        Parked items are not among them: they come back when a person changes
        the record (an edit after the watermark), which is how one is fixed.
        ``retry_now`` (``run --retry-now``) makes every item due at once.
        """
        waiting: dict[str, set[str]] = {side: set() for side in self.sides}
        if self.session.options.retry_now:
            return waiting
        for item in self.store.retry_items(parked=False):
            if item.side in waiting and item.next_attempt > now:
                waiting[item.side].add(item.record_id)
        return waiting

    def _pull(self, side: str, into: dict[str, PulledRecord], waiting: set[str]) -> None:
        plan = self.plan
        connector = self.session.connectors[side]
        since = self.store.watermark(side)
        # Read before the pull: the tool's clock is at least this when it starts.
        floor = self._tool_clock_floor(side, plan.started)
        # Parked items come back when they change, not because an inclusive
        # watermark re-reads them; waiting items only when they are due.
        parked = {item.record_id for item in self.store.retry_items(parked=True)
                  if item.side == side}
        newest: datetime | None = None
        try:
            for record in connector.pull(since, self.session.vendor_fields[side]):
                self.beat()  # a first pull of a big scope can outlast the lock's ttl
                if newest is None or record.updated > newest:
                    newest = record.updated
                if record.id in waiting:
                    continue
                if record.id in parked and since is not None and record.updated <= since:
                    continue
                into[record.id] = self.spool.put(record)
        except FatalError:
            raise
        except ConnectorError as error:
            plan.pull_errors[side] = str(error)
            into.clear()
            return
        plan.pulled[side] = len(into)
        if since is None and not into and self.store.all_links():
            raise SafetyValve(
                f"{side_title(side)} returned no records at all although the state store "
                f"links some of its records; refusing to act (check the scope query and the "
                f"integration user's permissions)"
            )
        mark = min(plan.started, newest) if newest is not None else None
        if floor is not None:
            # Past every record the pull could see, echoes of our own writes
            # included (so an idle run re-reads nothing), but never into the
            # second the pull started in: a person's edit in that second, after
            # the pull read it, carries that second's stamp (second resolution).
            passed = (floor - TOOL_CLOCK_MARGIN).replace(microsecond=0)
            if (mark is None or passed > mark) and (since is None or passed > since):
                mark = passed
        if mark is not None:
            plan.watermarks[side] = mark

    def _tool_clock_floor(self, side: str, now: datetime) -> datetime | None:
        """A lower bound of ``side``'s clock when ours says ``now``, or None.

        From the pair (tool stamp, our time) a run's read-back kept: clocks run
        at the same rate, so the tool's clock has moved at least as far as ours
        since. Only our clock's rate is trusted, never its offset from the
        tool's; a pair older than :data:`TOOL_CLOCK_MAX_AGE` (drift) or from our
        clock's future (it was set back) is not used.
        """
        kept = self.store.cached_value(tool_clock_name(side, self.session.info.get(side)))
        if kept is None:
            return None
        try:
            stamp_text, ours_text = kept[0].split("|", 1)
            stamp = datetime.fromisoformat(stamp_text)
            ours = datetime.fromisoformat(ours_text)
        except ValueError:
            return None
        elapsed = now - ours
        if stamp.tzinfo is None or ours.tzinfo is None or not (
                timedelta(0) <= elapsed <= TOOL_CLOCK_MAX_AGE):
            return None
        return stamp + elapsed

    def _add_retries_and_intents(
        self, records: dict[str, dict[str, PulledRecord]],
        forced: dict[str, set[str]], waiting: Mapping[str, set[str]],
    ) -> None:
        plan, options = self.plan, self.session.options
        wanted: dict[str, set[str]] = {side: set() for side in self.sides}
        retries: dict[str, set[str]] = {side: set() for side in self.sides}
        for side in self.sides:
            due = ([i for i in self.store.retry_items() if i.side == side]
                   if options.retry_now else self.store.due_retries(side, plan.started))
            for item in due:
                wanted[side].add(item.record_id)
                retries[side].add(item.record_id)
                forced[side].add(item.record_id)
        for view in [*self._links_to_settle(), *self._links_due()]:
            # Decided again on this run: a person chose a side, or the policy may
            # settle what ``manual`` left open, or the rules' verdict changes by time
            # alone (an SLA target passed): both records fetched, even unchanged.
            ids = {side: view.side(side).id for side in self.sides}
            if any(ids[side] in waiting.get(side, set()) for side in self.sides):
                continue
            for side in self.sides:
                wanted[side].add(ids[side])
                forced[side].add(ids[side])
        # A create that failed (not one a crash cut short) waits its turn too, and a
        # parked one waits for a person (or --retry-now), like any queued item.
        held = {(side, item_id) for side, ids in waiting.items() for item_id in ids}
        if not options.retry_now:
            held |= {(i.side, i.record_id) for i in self.store.retry_items(parked=True)}
        for intent in self.store.pending_intents():
            if intent.source_side in wanted and (intent.source_side,
                                                 intent.source_id) not in held:
                wanted[intent.source_side].add(intent.source_id)
                forced[intent.source_side].add(intent.source_id)
        for side in self.sides:
            missing = sorted(wanted[side] - set(records[side]))
            if not missing or side in plan.pull_errors:
                continue
            try:
                found = self.session.connectors[side].get_many(
                    missing, self.session.vendor_fields[side])
            except FatalError:
                raise
            except ConnectorError as error:
                plan.pull_errors[side] = f"fetching retry items: {error}"
                continue
            records[side].update({record_id: self.spool.put(record)
                                  for record_id, record in found.items()})
            for record_id in sorted(retries[side] & set(missing) - set(found)):
                # Counted as a failed attempt, so a vanished item ends up parked
                # instead of being asked for on every run.
                plan.problems.append(ReportProblem(
                    side, record_id, record_id,
                    "waiting for a retry, but no longer exists or is out of reach"))

    def _links_to_settle(self) -> list[LinkView]:
        """Links with an open conflict this run can decide without news from the tools."""
        policy = self.session.options.conflict
        link_ids = {c.link_id for c in self.store.open_conflicts()
                    if policy != "manual" or c.resolution in self.sides}
        found = (self.store.link_by_id(link_id) for link_id in sorted(link_ids))
        return [LinkView(link) for link in found if link is not None]

    def _links_due(self) -> list[LinkView]:
        """Links whose rules change their verdict by time alone by now (an SLA target or
        an age threshold passed), found in the store: no record is pulled to find them."""
        if not self.session.rules:
            return []
        return [LinkView(link) for link in self.store.rules_due(self.plan.started)]

    def _read_firings(self, link_ids: Collection[int]) -> None:
        """The recorded rule firings of a batch of links, in one read (not one per link)."""
        if not self.session.rules or not link_ids:
            return
        for link_id, rows in self.store.rule_firings(link_ids).items():
            self.recorded[link_id] = [RuleFiring(r.rule, r.field, r.old, r.new, r.note_id)
                                      for r in rows]

    def _fetch_counterparts(
        self, active: dict[int, dict[str, PulledRecord]], by_link: dict[int, LinkView]
    ) -> None:
        """Fetch, in batches, the other side of every active pair we did not pull."""
        plan = self.plan
        wanted: dict[str, dict[str, int]] = {side: {} for side in self.sides}
        for link_id, got in active.items():
            for side in self.sides:
                if side not in got:
                    wanted[side][by_link[link_id].side(side).id] = link_id
        for side, ids in wanted.items():
            if not ids:
                continue
            try:
                found = self.session.connectors[side].get_many(
                    sorted(ids), self.session.vendor_fields[side])
            except FatalError:
                raise
            except ConnectorError as error:
                for record_id, link_id in ids.items():
                    present = active[link_id][self.other(side)]
                    plan.problems.append(ReportProblem(
                        present.side, present.id, present.display,
                        f"cannot read {side_title(side)} {record_id}: {error}"))
                continue
            if len(ids) >= VANISHED_BATCH and not found:
                raise SafetyValve(
                    f"{side_title(side)} returned none of the {len(ids)} linked records asked "
                    f"for; refusing to act (check the scope and the integration user's access)"
                )
            for record_id, link_id in ids.items():
                if record_id in found:
                    active[link_id][side] = self.spool.put(found[record_id])
                    continue
                view = by_link[link_id]
                plan.orphans.append(ReportOrphan(
                    side, record_id, view.side(side).display,
                    f"linked to {side_title(self.other(side))} "
                    f"{view.side(self.other(side)).display} but gone or out of scope; "
                    "nothing is deleted"))

    @staticmethod
    def _claims(entry: _Queued) -> tuple[PulledRecord, ...]:
        """The records a queued pair stands for (an adoption: the adopting record alone)."""
        kind, records, _ = entry
        return records[:1] if kind == "adopt" else records

    def _cancel(self, side: str, record_id: str) -> None:
        """Drop the queued (or planned) pair of one record: a rival claims its counterpart."""
        key = (side, record_id)
        self.pending = deque(entry for entry in self.pending
                             if key not in {(str(r.side), r.id) for r in self._claims(entry)})
        self.plan.pairs = [p for p in self.plan.pairs if p.ids.get(side) != record_id]

    def _plan_next(self, ahead: int) -> None:
        """Plan the first queued pair. Its records come back from the spool with those of
        the ``ahead`` pairs queued after it (one read for a batch), and are dropped here
        once planned: the pair's plan holds them until its batch is written."""
        entry = self.pending.popleft()
        kind, pulled, extra = entry
        if any(p.row not in self.loaded for p in pulled):
            wanted = [p for queued in (entry, *islice(self.pending, ahead))
                      for p in queued[1] if p.row not in self.loaded]
            self.loaded.update(self.spool.load(wanted))
        records = [self.loaded.pop(p.row) for p in pulled]
        work: Callable[[], Any]
        if kind == "linked":
            view, doubt = extra
            got = {str(p.side): record for p, record in zip(pulled, records, strict=True)}
            work = lambda: self._plan_linked(view, got, unfinished=doubt)  # noqa: E731
        elif kind == "create":
            work = lambda: self._plan_create(records[0], str(pulled[0].side), extra)  # noqa: E731
        else:
            reason, intents = extra
            work = lambda: self._plan_adopt(records[0], records[1], reason, intents)  # noqa: E731
        self._guarded(pulled[0], work)

    def drain(self) -> Plan:
        """Plan every queued pair: the whole plan, as ``plan`` prints it."""
        while self.pending:
            self._plan_next(self.session.options.batch_size - 1)
        return self.plan

    def batches(self, size: int) -> Iterator[Batch]:
        """The queued pairs planned ``size`` at a time, with the problems found on the way.

        The plan keeps what the pulls found (errors, problems, orphans,
        watermarks); each batch's pairs are handed out and forgotten here. The
        spool is removed when the last batch is taken or the iterator is closed
        (a run that stops early closes it).
        """
        plan = self.plan
        reported = len(plan.problems)
        try:
            while self.pending or plan.pairs:
                # Taken again only once the run wrote, committed and settled the last
                # batch: what was mapped for it is of no further use (a record read
                # again is a new version, mapped anew), so the memo holds one batch.
                self.session.forget()
                while self.pending and len(plan.pairs) < size:
                    self._plan_next(size - len(plan.pairs) - 1)
                pairs, plan.pairs = plan.pairs, []
                problems = plan.problems[reported:]
                reported = len(plan.problems)
                yield Batch(pairs, problems, remaining=len(self.pending))
        finally:
            self.close()

    def _guarded(self, who: _Named, work: Callable[[], Any]) -> None:
        """Run one pair's planning; a mapping error becomes a problem for that pair only
        (reported on ``who``, its first record)."""
        try:
            work()
        except (ValueError, SyncError) as error:
            if isinstance(error, FatalError | SafetyValve):
                raise
            self.plan.problems.append(ReportProblem(
                str(who.side), who.id, who.display, _one_line(error)))

    # ------------------------------------------------------------------ linked pairs

    def _new_pair(self, got: Mapping[str, RemoteRecord]) -> PairPlan:
        return PairPlan(
            ids={side: got[side].id for side in self.sides},
            displays={side: got[side].display for side in self.sides},
            records=dict(got),
        )

    def _plan_linked(self, view: LinkView, got: Mapping[str, RemoteRecord], *,
                     unfinished: bool = False) -> PairPlan:
        """Plan one linked pair; ``unfinished``: its last attempt failed (or a create
        intent is pending), so a write of that attempt may have landed uncommitted."""
        pair = self._new_pair(got)
        pair.link = view.link
        bases = {side: view.side(side).snapshot for side in self.sides}
        base = bases if all(b is not None for b in bases.values()) else None
        pending = {c.field: c for c in self.store.open_conflicts_of(view.id)}
        newest_of: dict[str, str] = {}
        if unfinished and base is not None:
            base, newest_of = self._changed_back_by_people(got, pair.displays, base,
                                                           view.committed_at)
        self._plan_merge(pair, base, pending, link_id=view.id, newest_of=newest_of)
        self.plan.pairs.append(pair)
        return pair

    def _plan_merge(
        self, pair: PairPlan, base: Mapping[str, Mapping[str, Any] | None] | None,
        pending: Mapping[str, Any], *, link_id: int | None,
        newest_of: Mapping[str, str] | None = None,
    ) -> None:
        """Decide a pair (:func:`sync.decide.decide_pair`) and turn it into actions."""
        records = {side: rec for side, rec in pair.records.items() if rec is not None}
        incidents = {side: self.fields.incident(records[side]) for side in self.sides}

        def decide(last_by_us: Mapping[str, Mapping[str, bool]] | None) -> PairDecision:
            return decide_pair(
                self.fields, incidents,
                updated={side: records[side].updated for side in self.sides},
                displays=pair.displays, base=base, pending=pending,
                rules=self.session.rules, last_by_us=last_by_us, now=self.session.clock(),
                newest_of=newest_of,
                recorded=self.recorded.get(link_id, []) if link_id is not None else ())

        decision = decide(None)
        if decision.needs_history:
            decision = decide({side: self._last_changed_by_us(records[side])
                               for side in self.sides})
        pair.settled = [SettleConflict(c, dict(pair.displays)) for c in decision.settled]
        pair.conflicts = [RecordConflict(c, dict(pair.displays)) for c in decision.conflicts]
        pair.firings = decision.firings
        pair.notes = self._notes(pair, decision.notes)
        pair.rules_due_at = decision.due_at
        for side in self.sides:
            self._add_update(pair, side, decision.current[side], decision.writes[side])
        pair.snapshots = decision.snapshots
        pair.hash = snapshot_hash(pair.snapshots)
        self._plan_comments(pair, link_id)
        self._plan_read_back(pair)

    def _add_update(self, pair: PairPlan, side: str, current: Mapping[str, Any],
                    write: SideWrite | None) -> None:
        """Add the update of ``side`` to the pair (if any), checked against its version."""
        if write is None:
            return
        record = pair.records[side]
        assert record is not None  # only existing records are updated
        pair.updates.append(UpdateFields(
            side=side,
            record_id=record.id,
            display=record.display,
            changes=[FieldChange(f, current[f], write.overrides[f]) for f in write.changed]
            + [FieldChange(f, current[f], write.after[f]) for f in write.implied],
            fields=write.fields,
            expected_version=record.version,
            losses=write.losses,
        ))

    def _notes(self, pair: PairPlan, notes: Sequence[Comment]) -> list[AddNote]:
        """The rules' new internal notes, written once to one side: ServiceNow (a work
        note) where the direction lets anything be written there, else Jira. The
        comment sync copies them across like any internal note."""
        if not notes:
            return []
        allowed = [side for side in ("servicenow", "jira")
                   if side in self.sides and self.session.options.allows(self.other(side), side)]
        if not allowed:
            return []
        side = allowed[0]
        origin = "incident-sync rules"
        # A note an earlier attempt wrote before failing (or whose reply was lost) is
        # on the record already: recognised by its unchanging head, not written again.
        record = pair.records.get(side)
        held = [comment_from_remote(side, raw, self.session.ctx[side]).body
                for raw in (record.comments if record is not None else [])]
        firings = {f.note_id: f for f in pair.firings if f.note_id}
        return [AddNote(side=side, note_id=note.id, text=note.body,
                        body=note.body if side == "servicenow" else comment_to_remote(
                            side, note, self.session.ctx[side], origin=origin),
                        firing=firings[note.id],
                        existing=any(note_head(note.body) in body for body in held))
                for note in notes]

    def _plan_read_back(self, pair: PairPlan) -> None:
        """A pair this run writes is read back once after (the settle step)."""
        if pair.writes:
            pair.read_back = ReadBack(ids=dict(pair.ids), displays=pair.displays)

    def _plan_comments(self, pair: PairPlan, link_id: int | None) -> None:
        """Copy every comment the other side lacks; recognise copies already made.

        A copy is known by its id in the comment map. A run killed between
        adding a copy and committing its id leaves a copy the map lacks; it is
        recognised by its exact text (our attribution line + the body), linked
        instead of copied again, and so never echoed back either.
        """
        ctx = self.session.ctx
        known: dict[str, set[str]] = {side: set() for side in self.sides}
        if link_id is not None:
            held = self.comment_pairs.get(link_id)
            for comment_link in (held if held is not None
                                 else self.store.comment_links(link_id)):
                for side in self.sides:
                    known[side].add(comment_link.id_on(side))
        comments = {side: list(rec.comments) if rec is not None else []
                    for side, rec in pair.records.items()}
        copies = {side: self._copy_texts(side, comments[side], known[side])
                  for side in self.sides}
        planned: list[AddComment] = []
        lacking = comments_to_copy({side: comments[side] for side in self.sides}, known,
                                   may_copy=self.session.options.allows)
        for source, raw in lacking:
            if raw.id in known[source]:
                continue  # recognised above as a copy of the other side's comment
            target = self.other(source)
            neutral = comment_from_remote(source, raw, ctx[source])
            origin = f"{side_title(source)} {pair.displays[source]}"
            body = comment_to_remote(target, neutral, ctx[target], origin=origin)
            existing = copies[target].pop(self._read_as(target, body, neutral), None)
            if existing is not None:
                known[target].add(existing)
            known[source].add(raw.id)
            planned.append(AddComment(
                source_side=source,
                source_comment_id=raw.id,
                target_side=target,
                target_display=pair.displays.get(target) or "(new record)",
                visibility=neutral.visibility.value,
                body=body,
                text=neutral.body,
                existing_id=existing,
            ))
        # A recognised copy is not an original of its side: never copy it back.
        recognised = {c.existing_id for c in planned if c.existing_id is not None}
        pair.comments = [c for c in planned if c.source_comment_id not in recognised]

    def _copy_texts(self, side: str, comments: Sequence[RemoteComment],
                    known: set[str]) -> dict[str, str]:
        """Neutral text -> id of the comments of ``side`` the comment map does not know."""
        texts: dict[str, str] = {}
        for raw in comments:
            if raw.id not in known:
                texts.setdefault(
                    comment_from_remote(side, raw, self.session.ctx[side]).body, raw.id)
        return texts

    def _read_as(self, side: str, body: Any, neutral: Any) -> str:
        """The neutral text ``side`` will show for a comment we write with ``body``."""
        probe = RemoteComment(id="probe", body=body, created=neutral.created,
                              visibility=neutral.visibility.value)
        return comment_from_remote(side, probe, self.session.ctx[side]).body

    # ------------------------------------------------------------------ histories

    def _field_edits(self, side: str, record_id: str) -> tuple[datetime, list[tuple[str, Edit]]]:
        """A record's creation time and its changes in neutral terms (field, change),
        oldest first, from the tool's own history (Jira changelog, ServiceNow audit)."""
        ahead = self.histories.get((side, record_id), MISSING)
        if isinstance(ahead, ConnectorError):
            raise ahead
        history = (self.session.connectors[side].history([record_id]).get(record_id)
                   if ahead is MISSING else ahead)
        if history is None:
            raise ConnectorError(f"{side_title(side)} {record_id}: its history is out of reach",
                                 side=side)
        neutral = self.session.profile.neutral_by_vendor_field(side, self.session.ctx[side])
        return history.created, [(name, edit) for edit in history.edits
                                 for name in neutral.get(edit.field, ())]

    def _changed_back_by_people(
        self, got: Mapping[str, RemoteRecord], displays: Mapping[str, str],
        base: Mapping[str, Mapping[str, Any] | None], committed: datetime,
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The bases (and per-field newest side) of a pair whose last write may have
        landed uncommitted, once the tools' histories say whether a person set a
        field back to its base after it (:func:`sync.decide.changed_back_suspects`,
        :func:`sync.decide.rebase_changed_back`): an ABA through a lost reply must
        not let the other side's value go back over the person's edit. Histories
        are read only for such pairs, and only when a field is in doubt."""
        incidents = {side: self.fields.incident(got[side]) for side in self.sides}
        plain = {side: dict(base[side] or {}) for side in self.sides}
        suspects = changed_back_suspects(self.fields, incidents, displays, plain)
        if not any(suspects.values()):
            return plain, {}
        people_last = {}
        for side in self.sides:
            _, edits = self._field_edits(side, got[side].id)
            people_last[side] = {name: edit.at for name, edit in edits if not edit.by_us}
        return rebase_changed_back(self.fields, incidents, displays, plain, suspects,
                                   people_last, committed)

    def _last_changed_by_us(self, record: RemoteRecord) -> dict[str, bool]:
        """Neutral field -> whether the integration user made its last change on
        ``record`` (fields its tool's history never mentions are absent)."""
        _, edits = self._field_edits(str(record.side), record.id)
        return {name: edit.by_us for name, edit in edits}   # oldest first: the last wins

    def _edited_by_people(self, side: str, record_id: str,
                          since: datetime | None) -> PeopleEdits:
        """Neutral fields of a record someone other than the integration user changed
        (at or after ``since``, when given), read from the tool's own history.

        ``since`` is another record's creation time on the other tool's clock; a
        second's slack counts an edit made in the same second as after it, so a
        clock tie ends as a recorded conflict rather than a lost edit.
        """
        created, edits = self._field_edits(side, record_id)
        start = None if since is None else since.replace(microsecond=0) - timedelta(seconds=1)
        return PeopleEdits(created, {name for name, edit in edits if not edit.by_us
                                     and (start is None or edit.at >= start)},
                           {name: edit.at for name, edit in edits if not edit.by_us})

    # ------------------------------------------------------------------ unlinked records

    def _plan_unlinked(
        self, unlinked: Mapping[str, list[PulledRecord]],
        records: Mapping[str, Mapping[str, PulledRecord]],
    ) -> None:
        plan = self.plan
        intents = {(i.source_side, i.source_id): i.id for i in self.store.pending_intents()}
        claimed: dict[tuple[str, str], PulledRecord] = {}   # (side, id) -> claimant
        adoptions: list[tuple[PulledRecord, PulledRecord, str]] = []

        # 1. Records that carry the other side's id point at their counterpart.
        for side in self.sides:
            other = self.other(side)
            marked = [r for r in unlinked[side] if r.foreign_id]
            if not marked:
                continue
            already = self.store.links_by(other, [r.foreign_id or "" for r in marked])
            wanted = sorted({r.foreign_id or "" for r in marked} - set(records[other]))
            fetched = self._read_many(other, wanted, marked)
            for record in marked:
                fid = record.foreign_id or ""
                if fid in already:
                    holder = LinkView(already[fid]).side(side)
                    plan.problems.append(ReportProblem(
                        side, record.id, record.display,
                        f"two records claim one link: it carries {side_title(other)} {fid}, "
                        f"which is linked to {side_title(side)} {holder.display}"))
                    continue
                counterpart = records[other].get(fid) or fetched.get(fid)
                if counterpart is None:
                    plan.orphans.append(ReportOrphan(
                        side, record.id, record.display,
                        f"carries {side_title(other)} id {fid}, which is gone or out of reach; "
                        "nothing is created or deleted"))
                    continue
                adoptions.append((record, counterpart, "it carries the other's id"))

        # 2. The rest: does the other side hold a record carrying their id?
        for side in self.sides:
            other = self.other(side)
            plain = [r for r in unlinked[side] if not r.foreign_id
                     and not any(c.id == r.id for _, c, _ in adoptions)]
            if not plain:
                continue
            try:
                found = self.session.connectors[other].find_by_foreign_id(
                    [r.id for r in plain], self.session.vendor_fields[other])
            except FatalError:
                raise
            except ConnectorError as error:
                for record in plain:
                    plan.problems.append(ReportProblem(
                        side, record.id, record.display,
                        f"cannot look for its copy on {side_title(other)}: {error}"))
                continue
            for record in plain:
                counterpart = found.pop(record.id, None)
                if counterpart is not None:
                    adoptions.append((record, self.spool.put(counterpart),
                                      "found by its id on the other side"))
                elif self.session.options.allows(side, other):
                    self.pending.append(("create", (record,), intents.get((side, record.id))))

        # 3. Adoptions, each pair once; two claimants of one record are a problem.
        seen_pairs: set[tuple[str, str]] = set()
        for record, counterpart, reason in adoptions:
            ends = sorted((f"{record.side}:{record.id}", f"{counterpart.side}:{counterpart.id}"))
            key = (ends[0], ends[1])
            if key in seen_pairs:
                continue
            seen_pairs.add(key)
            target = (str(counterpart.side), counterpart.id)
            rival = claimed.get(target)
            if rival is not None:
                for who in (record, rival):
                    plan.problems.append(ReportProblem(
                        str(who.side), who.id, who.display,
                        f"two records claim one link: {side_title(target[0])} "
                        f"{counterpart.display}"))
                self._cancel(str(rival.side), rival.id)
                continue
            claimed[target] = record
            linked = self.store.links_by(target[0], [counterpart.id])
            if linked:
                plan.problems.append(ReportProblem(
                    str(record.side), record.id, record.display,
                    f"two records claim one link: {side_title(target[0])} "
                    f"{counterpart.display} is already linked"))
                continue
            self.pending.append(("adopt", (record, counterpart), (reason, intents)))

    def _read_many(self, side: str, ids: Sequence[str],
                   asking: Sequence[PulledRecord]) -> dict[str, PulledRecord]:
        if not ids:
            return {}
        try:
            found = self.session.connectors[side].get_many(
                list(ids), self.session.vendor_fields[side])
        except FatalError:
            raise
        except (ConnectorError, ValueError) as error:  # ValueError: not an id of that tool
            for record in asking:
                self.plan.problems.append(ReportProblem(
                    str(record.side), record.id, record.display,
                    f"cannot read {side_title(side)} {record.foreign_id}: {error}"))
            return {}
        return {record_id: self.spool.put(record) for record_id, record in found.items()}

    def _plan_adopt(self, record: RemoteRecord, counterpart: RemoteRecord, reason: str,
                    intents: Mapping[tuple[str, str], int]) -> None:
        got = {str(record.side): record, str(counterpart.side): counterpart}
        pair = self._new_pair(got)
        source: str | None = None   # the side of the original, when we made the copy
        for candidate in (record, counterpart):
            if (str(candidate.side), candidate.id) in intents:
                source = str(candidate.side)
                pair.intent_id = intents[(source, candidate.id)]
                break
        pair.adopt = AdoptRecord(ids=dict(pair.ids), displays=dict(pair.displays),
                                 reason=reason)
        for side in self.sides:
            other = self.other(side)
            if got[side].foreign_id != got[other].id:
                # e.g. a crash between creating the copy and marking the original
                pair.marks.append(MarkForeignId(
                    side=side, record_id=got[side].id, display=got[side].display,
                    foreign_side=other, foreign_id=got[other].id,
                    foreign_display=got[other].display, expected_version=got[side].version))
        incidents = {side: self.fields.incident(got[side]) for side in self.sides}
        people: dict[str, set[str]] | None = None
        people_last: dict[str, dict[str, datetime]] = {}
        if source is not None:
            copy = self.other(source)
            edited = self._edited_by_people(copy, got[copy].id, since=None)
            # The original's history is read only where it can change the outcome:
            # people edited the copy, or the copy holds a value where the original is
            # empty now (filled in by its tool, or emptied by a person since the create).
            filled = [name for name in filled_on_copy(self.fields, incidents, pair.displays,
                                                      copy) if name not in edited.fields]
            original = (self._edited_by_people(source, got[source].id, since=edited.created)
                        if edited.fields or filled else None)
            people = {copy: edited.fields,
                      source: set() if original is None else original.fields}
            people_last = {copy: edited.last,
                           source: {} if original is None else original.last}
        newest_of: dict[str, str] = {}
        base = adoption_base(self.fields, incidents, pair.displays, source=source,
                             people=people, people_last=people_last, newest_of=newest_of)
        self._plan_merge(pair, base, {}, link_id=None, newest_of=newest_of)
        self.plan.pairs.append(pair)

    def _plan_create(self, record: RemoteRecord, side: str, intent_id: int | None) -> None:
        target = self.other(side)
        displays = {side: record.display, target: ""}
        decision = decide_create(self.fields, self.fields.incident(record), side, displays,
                                 self.session.rules, now=self.session.clock())
        # The copy's readback worked these out already (decide_create): reused.
        vendor = self.fields.vendor_fields(target, decision.copy, displays)
        pair = PairPlan(
            ids={side: record.id, target: None},
            displays=displays,
            records={side: record, target: None},
            firings=decision.firings,
            intent_id=intent_id,
            rules_due_at=decision.due_at,
        )
        pair.notes = self._notes(pair, decision.notes)
        pair.create = CreateRecord(
            source_side=side, source_id=record.id, source_display=record.display,
            target_side=target, title=decision.copy.title, fields=vendor.fields,
            losses=list(vendor.losses),
        )
        self._add_update(pair, side, decision.current, decision.source_write)
        # The original then carries its copy's id: both find each other after a crash.
        pair.marks.append(MarkForeignId(
            side=side, record_id=record.id, display=record.display, foreign_side=target,
            foreign_id=None, foreign_display="", expected_version=record.version))
        pair.snapshots = decision.snapshots
        pair.hash = snapshot_hash(pair.snapshots)
        self._plan_comments(pair, None)
        self._plan_read_back(pair)
        self.plan.pairs.append(pair)

    # ------------------------------------------------------------------ settle step

    def settle(self, written: Sequence[PairPlan]) -> list[PairPlan] | None:
        if not written:
            return []
        connectors, fields = self.session.connectors, self.session.vendor_fields
        wanted = {side: [p.ids[side] or "" for p in written] for side in self.sides}
        # The comments each record had when this run read it, with that version: a
        # connector whose comments cost a read of their own (ServiceNow's journal) skips
        # it for records no comment can have reached since (get_many's contract).
        known = {side: {rec.id: KnownComments(rec.version, tuple(rec.comments))
                        for p in written if (rec := p.records.get(side)) is not None}
                 for side in self.sides}

        def read(number: int) -> dict[str, RemoteRecord]:
            side = self.sides[number]
            return connectors[side].get_many(wanted[side], fields[side],
                                             comments_at=known[side])

        try:
            # The two sides' reads do not depend on each other: sent together, one
            # round trip less per batch than one side after the other. Each side's
            # read is consistent in itself (ServiceNow's rows before their journal, as
            # get_many makes them); which side is read first never mattered. A failure
            # is the first side's as in the loop before (run_chunks raises the lowest).
            fetched = dict(zip(self.sides, run_chunks(len(self.sides), read, len(self.sides)),
                               strict=True))
        except FatalError:
            raise
        except ConnectorError as error:
            logger.warning("settling written pairs postponed to the next run: %s", error)
            return None
        read_by = self.session.clock()
        for side, found in fetched.items():
            if found:
                # Our writes, just read back: the tightest bound of the tool's clock.
                self.session.saw_tool_clock(side, max(r.updated for r in found.values()),
                                            read_by)
        a = self.sides[0]
        links = self.store.links_by(a, wanted[a])
        link_ids = [link.id for link in links.values()]
        self._read_firings(link_ids)
        found = self.store.comment_links_of(link_ids)
        self.comment_pairs = {link_id: found.get(link_id, []) for link_id in link_ids}
        follow_up: list[PairPlan] = []
        settling: list[tuple[PairPlan, LinkView, dict[str, RemoteRecord]]] = []
        for pair in written:
            link = links.get(pair.ids[a] or "")
            got = {side: fetched[side].get(pair.ids[side] or "") for side in self.sides}
            present = {side: rec for side, rec in got.items() if rec is not None}
            if link is None or len(present) < 2:
                continue
            settling.append((pair, LinkView(link), present))
        # What each side made of the fields we wrote, for every pair first: the records
        # whose history must tell a tool's reshaping from a person's edit are then read
        # in one history call per side, not one record after another.
        rebases: dict[int, dict[str, _SideRebase]] = {}
        for pair, view, present in settling:

            def compare(pair: PairPlan = pair, view: LinkView = view,
                        got: dict[str, RemoteRecord] = present) -> None:
                rebases[id(pair)] = self._rebase_of(view, pair, got)

            self._guarded(next(iter(present.values())), compare)
        doubtful = [(side, present[side].id) for pair, _, present in settling
                    for side, found in rebases.get(id(pair), {}).items() if found.doubtful]
        self._read_histories({side: [i for s, i in doubtful if s == side] for side in self.sides})
        for pair, view, present in settling:
            if id(pair) not in rebases:
                continue    # its comparison failed: reported as the pair's problem

            def work(pair: PairPlan = pair, view: LinkView = view,
                     got: dict[str, RemoteRecord] = present) -> None:
                rebased = self._rebased(view, rebases[id(pair)], got)
                again = self._new_pair(got)
                again.link = view.link
                pending = {c.field: c for c in self.store.open_conflicts_of(view.id)}
                bases = {side: rebased.side(side).snapshot for side in self.sides}
                base = bases if all(b is not None for b in bases.values()) else None
                self._plan_merge(again, base, pending, link_id=view.id)
                again.read_back = None   # one pass only: a settle is never settled
                moved = any(got[side].version != view.side(side).version for side in self.sides)
                changed = any(again.snapshots[side] != view.side(side).snapshot
                              for side in self.sides)
                if again.updates or again.conflicts or again.notes or moved or changed:
                    follow_up.append(again)

            self._guarded(next(iter(present.values())), work)
        return follow_up

    def _rebase_of(self, view: LinkView, pair: PairPlan,
                   got: Mapping[str, RemoteRecord]) -> dict[str, _SideRebase]:
        """Per side we wrote: the snapshot taking what the side holds for those fields,
        and the written fields that read back otherwise than we wrote them."""
        written: dict[str, set[str]] = {side: set() for side in self.sides}
        if pair.create is not None:
            target = pair.create.target_side
            written[target].update(self.fields.travelling(target))
        for update in pair.updates:
            written[update.side].update(change.field for change in update.changes)
        found: dict[str, _SideRebase] = {}
        for side, wrote in written.items():
            if not wrote:
                continue
            held = self.fields.current(self.fields.incident(got[side]))
            ours = view.side(side).snapshot or {}
            snapshot, dropped = rebase_written(self.fields, ours, held, wrote)
            reshaped = [f for f in wrote if f in ours and snapshot[f] != ours[f]]
            found[side] = _SideRebase(snapshot, ours, held, reshaped, dropped)
        return found

    def _rebased(self, view: LinkView, rebases: Mapping[str, _SideRebase],
                 got: Mapping[str, RemoteRecord]) -> LinkView:
        """``view`` with each side's snapshot taking what the side holds for fields we wrote."""
        snapshots: dict[str, dict[str, Any]] = {}
        for side, found in rebases.items():
            snapshot = found.snapshot
            # A written field that reads back otherwise than we wrote it: the tool
            # reshaped our write (a title cut at 160), or a person edited the field
            # between our write and this read. Only the tool's history tells which;
            # it is read for such records only (rare: most writes read back as sent).
            if found.doubtful:
                last = self._last_changes(got[side], found.reshaped, found.dropped)
                # A person's value is no reshaping of ours: the snapshot keeps what we
                # wrote, so their edit is a change on this side and travels.
                snapshot.update({f: found.ours[f] for f in found.reshaped
                                 if last.get(f) is False})
                snapshot.update({f: found.held[f] for f in found.dropped if last.get(f)})
            snapshots[side] = snapshot
        return view.with_snapshots(snapshots) if snapshots else view

    def _read_histories(self, wanted: Mapping[str, Sequence[str]]) -> None:
        """Read the histories of these records ahead, one call per side (the sides
        together), for :meth:`_field_edits` to find; a side whose read failed leaves its
        error there, so each record's comparison meets it as its own read would have."""
        sides = [side for side in self.sides if wanted.get(side)]
        if not sides:
            return

        def read(number: int) -> dict[str, RecordHistory] | ConnectorError:
            side = sides[number]
            try:
                return self.session.connectors[side].history(list(wanted[side]))
            except FatalError:
                raise
            except ConnectorError as error:
                return error

        for side, found in zip(sides, run_chunks(len(sides), read, len(sides)), strict=True):
            for record_id in wanted[side]:
                self.histories[(side, record_id)] = (
                    found if isinstance(found, ConnectorError) else found.get(record_id))

    def _last_changes(self, record: RemoteRecord, reshaped: list[str],
                      dropped: list[str]) -> dict[str, bool]:
        """Per neutral field, whether the integration user made its last change on
        ``record`` (:meth:`_last_changed_by_us`). When the history is out of reach,
        nothing is known: a reshaped value stays absorbed (a tool's reshaping is the
        common case, and sending it back would overwrite the original with a value
        nobody typed) and a dropped one travels."""
        try:
            return self._last_changed_by_us(record)
        except FatalError:
            raise
        except ConnectorError as error:
            logger.warning("history of %s unread: %s taken as the tool's, %s travel: %s",
                           record.display, ", ".join(reshaped) or "nothing",
                           ", ".join(dropped) or "nothing", error)
            return {}


__all__ = ["Batch", "BatchStream", "PeopleEdits", "build_plan", "plan_settle", "stream_plan"]
