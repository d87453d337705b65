"""Planning: pull, pair, merge, rules and diff, turned into a Plan without writing anything.

Contract:
- :meth:`Planner.build_plan` pulls each side since its watermark (plus due
  retry items and pending create intents), pairs records through the link
  table, fetches missing counterparts in batches, merges each changed pair
  field by field against the per-side snapshots (:mod:`sync.merge`), runs
  the rules hook, and diffs the result against each side: only fields that
  differ as the side would read them back become writes.
- A value a write must invent for an empty field (a mandatory fallback such
  as ServiceNow's close notes) is written to the other side as well.
- Unlinked records are adopted when either side carries the other's id
  (found directly or with ``find_by_foreign_id``), else planned as creates
  where the direction allows. An adopted pair has no common past: every
  difference is a recorded conflict, except cuts and dropped values a tool's
  own habits explain. Two records claiming one counterpart are a problem for
  those records, not a crash. Where we made the copy (a create intent is
  pending) the tools' histories (:meth:`connectors.base.Connector.history`)
  say which fields a person, not the integration user, changed since the
  create; only those count as changed on the copy.
- A conflict on a linked pair where one side's last change of the field was
  the integration user's own (a half-done write of a failed run) is no
  conflict: the other side wins. Only pairs with a conflict read histories.
- Comments the other side lacks become copies; a copy an interrupted run
  already made is recognised by its exact text and linked, not copied again.
- A pull that fails stops all creates and keeps the watermarks; a side that
  returns nothing where links say records exist stops the run
  (:class:`sync.errors.SafetyValve`).
- Reads only: connectors' read methods and the state store's queries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connectors.base import (
    ConnectorError,
    Edit,
    FatalError,
    RemoteComment,
    RemoteRecord,
    SyncError,
)
from mappings.mapper import comment_from_remote, comment_to_remote, to_fields
from mappings.model import Comment, Incident
from sync.actions import (
    AddComment,
    AdoptRecord,
    CreateRecord,
    FieldChange,
    PairPlan,
    Plan,
    RecordConflict,
    ReportOrphan,
    ReportProblem,
    SettleConflict,
    UpdateFields,
    side_title,
)
from sync.conflict_settle import revisit
from sync.engine_core import (
    BACKLINK_FIELDS,
    VANISHED_BATCH,
    EngineCore,
    _one_line,
    projection,
    snapshot_hash,
    with_values,
)
from sync.errors import SafetyValve
from sync.merge import FieldMerge, merge_field
from sync.rules import apply_rules
from sync.state import Link


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _explained(written: Any, held: Any) -> bool:
    """Would a tool given ``written`` hold ``held`` by its own habits (cut, or dropped)?"""
    if is_empty(written):
        return False
    return is_empty(held) or (isinstance(written, str) and isinstance(held, str)
                              and written.startswith(held))


@dataclass(frozen=True)
class SideWrite:
    """One side's planned write: what changes, what it drags along, how it reads back."""

    overrides: dict[str, Any]
    changed: list[str]
    implied: list[str]
    after: dict[str, Any]
    fields: dict[str, Any]
    losses: list[str]


@dataclass(frozen=True)
class PeopleEdits:
    """A record's creation time and the neutral fields people changed on it."""

    created: datetime
    fields: set[str]


class Planner(EngineCore):
    """The read-only half of the engine."""

    def build_plan(self) -> Plan:
        """Everything a run would do, computed with reads only."""
        self.open()
        started = self.clock()
        plan = Plan(started=started)
        records: dict[str, dict[str, RemoteRecord]] = {side: {} for side in self.sides}
        forced: dict[str, set[str]] = {side: set() for side in self.sides}

        waiting = self._waiting(plan.started)
        for side in self.sides:
            self._pull(side, plan, records[side], waiting[side])
        self._add_retries_and_intents(plan, records, forced, waiting)

        links = {side: self.store.links_by(side, records[side]) for side in self.sides}
        pairs: dict[int, dict[str, RemoteRecord]] = {}
        by_link: dict[int, Link] = {}
        unlinked: dict[str, list[RemoteRecord]] = {side: [] for side in self.sides}
        for side in self.sides:
            for record_id, record in records[side].items():
                link = links[side].get(record_id)
                if link is None:
                    unlinked[side].append(record)
                    continue
                by_link[link.id] = link
                pairs.setdefault(link.id, {})[side] = record

        active = {
            link_id: got for link_id, got in pairs.items()
            if any(record.version != by_link[link_id].version_on(side)
                   or record.id in forced[side] for side, record in got.items())
            # A pair waiting in the retry queue is left alone until it is due,
            # even when its other record moved (perhaps by our own failed write).
            and not any(by_link[link_id].id_on(side) in waiting[side]
                        and by_link[link_id].id_on(side) not in forced[side]
                        for side in self.sides)
        }
        self._fetch_counterparts(plan, active, by_link)
        for link_id, got in active.items():
            link = by_link[link_id]
            if len(got) < 2:
                continue  # orphaned or failed: reported by _fetch_counterparts
            self._guarded(plan, got, lambda link=link, got=got: self._plan_linked(
                plan, link, got, forced))

        if plan.pull_errors:
            # A side we could not read may hold the counterparts of these
            # records: creating now could duplicate them (STYLE habit 8).
            return plan
        self._plan_unlinked(plan, unlinked, records, forced)
        return plan

    def _waiting(self, now: datetime) -> dict[str, set[str]]:
        """Per side, the ids in the retry queue whose next attempt has not come yet.

        Parked items are not among them: they come back when a person changes
        the record (an edit after the watermark), which is how one is fixed.
        ``retry_now`` (``run --retry-now``) makes every item due at once.
        """
        waiting: dict[str, set[str]] = {side: set() for side in self.sides}
        if self.options.retry_now:
            return waiting
        for item in self.store.retry_items(parked=False):
            if item.side in waiting and item.next_attempt > now:
                waiting[item.side].add(item.record_id)
        return waiting

    def _pull(self, side: str, plan: Plan, into: dict[str, RemoteRecord],
              waiting: set[str]) -> None:
        connector = self.connectors[side]
        since = self.store.watermark(side)
        # Parked items come back when they change, not because an inclusive
        # watermark re-reads them; waiting items only when they are due.
        parked = {item.record_id for item in self.store.retry_items(parked=True)
                  if item.side == side}
        newest: datetime | None = None
        try:
            for record in connector.pull(since, self.vendor_fields[side]):
                self.beat()  # a first pull of a big scope can outlast the lock's ttl
                if newest is None or record.updated > newest:
                    newest = record.updated
                if record.id in waiting:
                    continue
                if record.id in parked and since is not None and record.updated <= since:
                    continue
                into[record.id] = record
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
        if newest is not None:
            plan.watermarks[side] = min(plan.started, newest)

    def _add_retries_and_intents(
        self, plan: Plan, records: dict[str, dict[str, RemoteRecord]],
        forced: dict[str, set[str]], waiting: Mapping[str, set[str]],
    ) -> None:
        wanted: dict[str, set[str]] = {side: set() for side in self.sides}
        retries: dict[str, set[str]] = {side: set() for side in self.sides}
        for side in self.sides:
            due = ([i for i in self.store.retry_items() if i.side == side]
                   if self.options.retry_now else self.store.due_retries(side, plan.started))
            for item in due:
                wanted[side].add(item.record_id)
                retries[side].add(item.record_id)
                forced[side].add(item.record_id)
        for link in self._links_to_settle():
            # Decided again on this run: a person chose a side, or the policy may
            # settle what ``manual`` left open (both records fetched, even unchanged).
            ids = {side: link.id_on(side) for side in self.sides}
            if any(ids[side] in waiting.get(side, set()) for side in self.sides):
                continue
            for side in self.sides:
                wanted[side].add(ids[side])
                forced[side].add(ids[side])
        # A create that failed (not one a crash cut short) waits its turn too, and a
        # parked one waits for a person (or --retry-now), like any queued item.
        held = {(side, item_id) for side, ids in waiting.items() for item_id in ids}
        if not self.options.retry_now:
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
                found = self.connectors[side].get_many(missing, self.vendor_fields[side])
            except FatalError:
                raise
            except ConnectorError as error:
                plan.pull_errors[side] = f"fetching retry items: {error}"
                continue
            records[side].update(found)
            for record_id in sorted(retries[side] & set(missing) - set(found)):
                # Counted as a failed attempt, so a vanished item ends up parked
                # instead of being asked for on every run.
                plan.problems.append(ReportProblem(
                    side, record_id, record_id,
                    "waiting for a retry, but no longer exists or is out of reach"))

    def _links_to_settle(self) -> list[Link]:
        """Links with an open conflict this run can decide without news from the tools."""
        link_ids = {c.link_id for c in self.store.open_conflicts()
                    if self.options.conflict != "manual" or c.resolution in self.sides}
        found = (self.store.link_by_id(link_id) for link_id in sorted(link_ids))
        return [link for link in found if link is not None]

    def _fetch_counterparts(
        self, plan: Plan, active: dict[int, dict[str, RemoteRecord]], by_link: dict[int, Link]
    ) -> None:
        """Fetch, in batches, the other side of every active pair we did not pull."""
        wanted: dict[str, dict[str, int]] = {side: {} for side in self.sides}
        for link_id, got in active.items():
            for side in self.sides:
                if side not in got:
                    wanted[side][by_link[link_id].id_on(side)] = link_id
        for side, ids in wanted.items():
            if not ids:
                continue
            try:
                found = self.connectors[side].get_many(sorted(ids), self.vendor_fields[side])
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
                    active[link_id][side] = found[record_id]
                    continue
                link = by_link[link_id]
                plan.orphans.append(ReportOrphan(
                    side, record_id, link.display_on(side),
                    f"linked to {side_title(self.other(side))} "
                    f"{link.display_on(self.other(side))} but gone or out of scope; "
                    "nothing is deleted"))

    def _guarded(self, plan: Plan, got: Mapping[str, RemoteRecord],
                 work: Callable[[], None]) -> None:
        """Run one pair's planning; a mapping error becomes a problem for that pair only."""
        try:
            work()
        except (ValueError, SyncError) as error:
            if isinstance(error, FatalError | SafetyValve):
                raise
            record = next(iter(got.values()))
            plan.problems.append(ReportProblem(
                str(record.side), record.id, record.display, _one_line(error)))

    # ------------------------------------------------------------------ linked pairs

    def _plan_linked(
        self, plan: Plan, link: Link, got: Mapping[str, RemoteRecord],
        forced: Mapping[str, set[str]],
    ) -> None:
        pair = PairPlan(
            kind="update",
            ids={side: got[side].id for side in self.sides},
            displays={side: got[side].display for side in self.sides},
            records=dict(got),
            retry_ids=[(side, got[side].id) for side in self.sides
                       if got[side].id in forced[side]],
        )
        bases = {side: link.snapshot_on(side) for side in self.sides}
        base = bases if all(b is not None for b in bases.values()) else None
        self._plan_merge(pair, base, link_id=link.id)
        plan.pairs.append(pair)

    def _plan_merge(
        self, pair: PairPlan, base: Mapping[str, Mapping[str, Any] | None] | None,
        *, link_id: int | None,
    ) -> None:
        """Merge both records of a pair field by field, run the rules, diff per side."""
        a, b = self.sides
        records = {side: rec for side, rec in pair.records.items() if rec is not None}
        incidents = {side: self.incident(records[side]) for side in self.sides}
        current = {side: projection(incidents[side], self.merged_fields) for side in self.sides}
        across = {side: self.readback(self.other(side), incidents[side], pair.displays)
                  for side in self.sides}
        newest = a if records[a].updated >= records[b].updated else b

        bases = None if base is None else {side: dict(base[side] or {}) for side in self.sides}
        # Conflicts still open on this pair are decided again (sync.conflict_settle).
        pending = ({} if link_id is None else
                   {c.field: c for c in self.store.conflicts(link_id) if c.open})

        def facts(name: str) -> dict[str, Any]:
            return dict(
                sides=self.sides,
                current={side: current[side][name] for side in self.sides},
                travels_to={side: self.travels(name, side) for side in self.sides},
                agrees={side: across[side][name] == current[self.other(side)][name]
                        for side in self.sides},
                owner=self.profile.owner(name),
                policy=self.options.conflict,
                newest=newest,
            )

        def decide(name: str) -> FieldMerge:
            return merge_field(name, base=None if bases is None else {
                side: bases[side].get(name) for side in self.sides}, **facts(name))

        decisions = [decide(name) for name in self.merged_fields]
        fought = [d.field for d in decisions if d.conflict is not None]
        if fought and bases is not None:
            # Both sides moved since the last sync. A side whose last change of the
            # field was our own (a write a failed or interrupted run got half done,
            # such as one step of a multi-step transition) did not move by anyone's
            # hand: the other side's person wins, without a conflict.
            ours = {side: self._last_changed_by_us(records[side]) for side in self.sides}
            for name in fought:
                by_us = [side for side in self.sides if ours[side].get(name)]
                if len(by_us) == 1:
                    bases[by_us[0]][name] = current[by_us[0]][name]
            decisions = [decide(name) for name in self.merged_fields]
        revisited = []
        for decision in decisions:
            decision, settled = revisit(decision, pending.get(decision.field),
                                        **facts(decision.field))
            if settled is not None:
                pair.settled.append(SettleConflict(settled, dict(pair.displays)))
            revisited.append(decision)
        decisions = revisited

        merged_values = dict(current[a])
        for decision in decisions:
            if decision.source is not None:
                merged_values[decision.field] = decision.value
            if decision.conflict is not None:
                pair.conflicts.append(RecordConflict(decision.conflict, dict(pair.displays)))
        merged = with_values(incidents[a], merged_values)
        ruled, pair.firings = apply_rules(merged, self.rules, self.clock())
        ruled_values = projection(ruled, self.merged_fields)
        by_rules = {f: v for f, v in ruled_values.items() if v != merged_values[f]}
        pair.merged = ruled

        overrides = {side: {d.field: d.value for d in decisions
                            if d.source == self.other(side) and self.travels(d.field, side)}
                     for side in self.sides}
        for side in self.sides:
            overrides[side].update({f: v for f, v in by_rules.items() if self.travels(f, side)})
        writes = {side: self._side_write(pair, side, incidents[side], current[side],
                                         overrides[side]) for side in self.sides}
        for side in self.sides:
            other = self.other(side)
            invented = self._invented(writes[side], current[side], current[other], other)
            if invented:
                overrides[other].update(invented)
                writes[other] = self._side_write(pair, other, incidents[other], current[other],
                                                 overrides[other])
        for side in self.sides:
            pair.snapshots[side] = self._add_update(pair, side, current[side], writes[side])
        pair.hash = snapshot_hash(pair.snapshots)
        self._plan_comments(pair, link_id)

    def _side_write(
        self, pair: PairPlan, side: str, incident: Incident, current: Mapping[str, Any],
        overrides: Mapping[str, Any],
    ) -> SideWrite | None:
        """What writing ``overrides`` to ``side`` would send and leave there; None if nothing."""
        if not overrides:
            return None
        target = with_values(incident, overrides)
        after = self.readback(side, target, pair.displays)
        changed = [f for f in overrides if after[f] != current[f]]
        if not changed:
            return None
        ctx = self.ctx_for(side, pair.displays)
        vendor = to_fields(side, target, self.profile, ctx, only=changed)
        # A write may drag other fields along (a resolve carries its close code
        # and notes): those change on the side too, so show and remember them.
        implied = [
            f for f in self.merged_fields
            if f not in changed and self.travels(f, side) and after[f] != current[f]
            and set(to_fields(side, target, self.profile, ctx, only=[f]).fields)
            <= set(vendor.fields)
        ]
        return SideWrite(dict(overrides), changed, implied, after, vendor.fields,
                         list(vendor.losses))

    def _invented(self, write: SideWrite | None, current: Mapping[str, Any],
                  other_current: Mapping[str, Any], other: str) -> dict[str, Any]:
        """Values a write had to invent for empty fields (a fallback such as ServiceNow's
        mandatory close notes), for the other side where that field is empty too:
        written there as well, both tools hold the same text and no audit ever differs."""
        if write is None:
            return {}
        return {f: write.after[f] for f in write.implied
                if is_empty(current[f]) and not is_empty(write.after[f])
                and is_empty(other_current[f]) and self.travels(f, other)}

    def _add_update(self, pair: PairPlan, side: str, current: Mapping[str, Any],
                    write: SideWrite | None) -> dict[str, Any]:
        """Add the update of ``side`` to the pair (if any); return the side's next snapshot."""
        snapshot = dict(current)
        if write is None:
            return snapshot
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
        for name in [*write.changed, *write.implied]:
            snapshot[name] = write.after[name]
        return snapshot

    def _plan_comments(self, pair: PairPlan, link_id: int | None) -> None:
        """Copy every comment the other side lacks; recognise copies already made.

        A copy is known by its id in the comment map. A run killed between
        adding a copy and committing its id leaves a copy the map lacks; it is
        recognised by its exact text (our attribution line + the body), linked
        instead of copied again, and so never echoed back either.
        """
        known: dict[str, set[str]] = {side: set() for side in self.sides}
        if link_id is not None:
            for comment_link in self.store.comment_links(link_id):
                for side in self.sides:
                    known[side].add(comment_link.id_on(side))
        comments = {side: list(rec.comments) if rec is not None else []
                    for side, rec in pair.records.items()}
        copies = {side: self._copy_texts(side, comments[side], known[side])
                  for side in self.sides}
        planned: list[AddComment] = []
        for source in self.sides:
            target = self.other(source)
            for raw in comments[source]:
                if raw.id in known[source] or not self.options.allows(source, target):
                    continue
                neutral: Comment = comment_from_remote(source, raw, self.ctx[source])
                origin = f"{side_title(source)} {pair.displays[source]}"
                body = comment_to_remote(target, neutral, self.ctx[target], origin=origin)
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
                texts.setdefault(comment_from_remote(side, raw, self.ctx[side]).body, raw.id)
        return texts

    def _read_as(self, side: str, body: Any, neutral: Comment) -> str:
        """The neutral text ``side`` will show for a comment we write with ``body``."""
        probe = RemoteComment(id="probe", body=body, created=neutral.created,
                              visibility=neutral.visibility.value)
        return comment_from_remote(side, probe, self.ctx[side]).body

    # ------------------------------------------------------------------ unlinked records

    def _plan_unlinked(
        self, plan: Plan, unlinked: Mapping[str, list[RemoteRecord]],
        records: Mapping[str, Mapping[str, RemoteRecord]], forced: Mapping[str, set[str]],
    ) -> None:
        intents = {(i.source_side, i.source_id): i.id for i in self.store.pending_intents()}
        claimed: dict[tuple[str, str], RemoteRecord] = {}   # (side, id) -> claimant
        adoptions: list[tuple[RemoteRecord, RemoteRecord, str]] = []

        # 1. Records that carry the other side's id point at their counterpart.
        for side in self.sides:
            other = self.other(side)
            marked = [r for r in unlinked[side] if r.foreign_id]
            if not marked:
                continue
            already = self.store.links_by(other, [r.foreign_id or "" for r in marked])
            wanted = sorted({r.foreign_id or "" for r in marked} - set(records[other]))
            fetched = self._read_many(plan, other, wanted, marked)
            for record in marked:
                fid = record.foreign_id or ""
                if fid in already:
                    holder = already[fid]
                    plan.problems.append(ReportProblem(
                        side, record.id, record.display,
                        f"two records claim one link: it carries {side_title(other)} {fid}, "
                        f"which is linked to {side_title(side)} {holder.display_on(side)}"))
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
                found = self.connectors[other].find_by_foreign_id(
                    [r.id for r in plain], self.vendor_fields[other])
            except FatalError:
                raise
            except ConnectorError as error:
                for record in plain:
                    plan.problems.append(ReportProblem(
                        side, record.id, record.display,
                        f"cannot look for its copy on {side_title(other)}: {error}"))
                continue
            for record in plain:
                counterpart = found.get(record.id)
                if counterpart is not None:
                    adoptions.append((record, counterpart, "found by its id on the other side"))
                elif self.options.allows(side, other):
                    self._guarded(plan, {side: record}, lambda r=record, s=side: self._plan_create(
                        plan, r, s, intents.get((s, r.id)), forced))

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
                plan.pairs = [p for p in plan.pairs if p.ids.get(str(rival.side)) != rival.id]
                continue
            claimed[target] = record
            linked = self.store.links_by(target[0], [counterpart.id])
            if linked:
                plan.problems.append(ReportProblem(
                    str(record.side), record.id, record.display,
                    f"two records claim one link: {side_title(target[0])} "
                    f"{counterpart.display} is already linked"))
                continue
            self._guarded(plan, {str(record.side): record},
                          lambda r=record, c=counterpart, why=reason: self._plan_adopt(
                              plan, r, c, why, intents, forced))

    def _read_many(self, plan: Plan, side: str, ids: Sequence[str],
                   asking: Sequence[RemoteRecord]) -> dict[str, RemoteRecord]:
        if not ids:
            return {}
        try:
            return self.connectors[side].get_many(list(ids), self.vendor_fields[side])
        except FatalError:
            raise
        except (ConnectorError, ValueError) as error:  # ValueError: not an id of that tool
            for record in asking:
                plan.problems.append(ReportProblem(
                    str(record.side), record.id, record.display,
                    f"cannot read {side_title(side)} {record.foreign_id}: {error}"))
            return {}

    def _plan_adopt(
        self, plan: Plan, record: RemoteRecord, counterpart: RemoteRecord, reason: str,
        intents: Mapping[tuple[str, str], int], forced: Mapping[str, set[str]],
    ) -> None:
        got = {str(record.side): record, str(counterpart.side): counterpart}
        pair = PairPlan(
            kind="adopt",
            ids={side: got[side].id for side in self.sides},
            displays={side: got[side].display for side in self.sides},
            records=dict(got),
            retry_ids=[(side, got[side].id) for side in self.sides
                       if got[side].id in forced[side]],
        )
        source: str | None = None   # the side of the original, when we made the copy
        for candidate in (record, counterpart):
            if (str(candidate.side), candidate.id) in intents:
                source = str(candidate.side)
                pair.intent_id = intents[(source, candidate.id)]
                break
        pair.adopt = AdoptRecord(
            ids={side: got[side].id for side in self.sides},
            displays={side: got[side].display for side in self.sides},
            reason=reason,
        )
        for side in self.sides:
            other_id = got[self.other(side)].id
            if side in BACKLINK_FIELDS and got[side].foreign_id != other_id:
                # e.g. a crash between creating the copy and marking the source
                pair.backlink = (side, other_id)
        self._plan_merge(pair, self._adoption_base(got, pair.displays, source), link_id=None)
        plan.pairs.append(pair)

    def _adoption_base(self, got: Mapping[str, RemoteRecord], displays: Mapping[str, str],
                       source: str | None = None) -> dict[str, dict[str, Any]]:
        """Snapshots for a pair without a common past: each side's base is the other
        side's values as it would hold them, so every difference counts as a change
        on both sides (a conflict, settled by the owner or the policy and recorded).

        Except where a tool's own habits explain the difference: a side holding a
        cut of the other's text (ServiceNow keeps 160 title characters) or nothing
        where the other has a value (a user that tool does not know) did not
        change it; its base is what it holds, so the fuller value travels to it
        and it never overwrites the other with less.

        When we made one of the two (``source`` names the original's side: a
        create intent is pending), the pair does have a common past, the create,
        and the tools' histories tell what happened since: on the copy, only a
        field someone other than the integration user changed counts as changed
        (what an interrupted create or a failed follow-up transition left there,
        such as the initial status, is the sync's own unfinished work and never
        overrides the original); where a person changed the copy, the original
        counts as changed only if a person changed that field after the copy was
        created. A field the copy's tool filled in where the create wrote
        nothing (Jira's default reporter) stays news for the original.
        """
        incidents = {side: self.incident(got[side]) for side in self.sides}
        held = {side: projection(incidents[side], self.merged_fields) for side in self.sides}
        across = {side: self.readback(side, incidents[self.other(side)], displays)
                  for side in self.sides}
        base: dict[str, dict[str, Any]] = {}
        for side in self.sides:
            base[side] = {name: held[side][name]
                          if _explained(across[side][name], held[side][name])
                          else across[side][name] for name in self.merged_fields}
        if source is None:
            return base
        copy = self.other(source)
        edited = self._edited_by_people(copy, got[copy].id, since=None)
        by_people = {copy: edited.fields}
        by_people[source] = (
            self._edited_by_people(source, got[source].id, since=edited.created).fields
            if by_people[copy] else set())
        for name in self.merged_fields:
            if name in by_people[copy]:
                base[copy][name] = across[copy][name]   # a person's edit: a change
                if name not in by_people[source]:
                    base[source][name] = held[source][name]   # untouched since the create
            elif not (is_empty(across[copy][name]) and not is_empty(held[copy][name])):
                base[copy][name] = held[copy][name]   # the sync's own work: no change
        return base

    def _field_edits(self, side: str, record_id: str) -> tuple[datetime, list[tuple[str, Edit]]]:
        """A record's creation time and its changes in neutral terms (field, change),
        oldest first, from the tool's own history (Jira changelog, ServiceNow audit)."""
        history = self.connectors[side].history([record_id]).get(record_id)
        if history is None:
            raise ConnectorError(f"{side_title(side)} {record_id}: its history is out of reach",
                                 side=side)
        neutral = self.profile.neutral_by_vendor_field(side, self.ctx[side])
        return history.created, [(name, edit) for edit in history.edits
                                 for name in neutral.get(edit.field, ())]

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
                                     and (start is None or edit.at >= start)})

    def _plan_create(
        self, plan: Plan, record: RemoteRecord, side: str, intent_id: int | None,
        forced: Mapping[str, set[str]],
    ) -> None:
        target = self.other(side)
        incident = self.incident(record)
        ruled, firings = apply_rules(incident, self.rules, self.clock())
        displays = {side: record.display, target: ""}
        vendor = to_fields(target, ruled, self.profile, self.ctx_for(target, displays))
        pair = PairPlan(
            kind="create",
            ids={side: record.id, target: None},
            displays={side: record.display, target: ""},
            records={side: record, target: None},
            merged=ruled,
            firings=firings,
            intent_id=intent_id,
            retry_ids=[(side, record.id)] if record.id in forced[side] else [],
        )
        pair.create = CreateRecord(
            source_side=side, source_id=record.id, source_display=record.display,
            target_side=target, title=ruled.title, fields=vendor.fields,
            losses=list(vendor.losses),
        )
        current = projection(incident, self.merged_fields)
        ruled_values = projection(ruled, self.merged_fields)
        created = self.readback(target, ruled, displays)
        overrides = {f: v for f, v in ruled_values.items()
                     if v != current[f] and self.travels(f, side)}
        # What the copy had to invent for empty fields goes back to the source too.
        overrides.update({f: created[f] for f in self.merged_fields
                          if is_empty(ruled_values[f]) and not is_empty(created[f])
                          and self.travels(f, target) and self.travels(f, side)})
        write = self._side_write(pair, side, incident, current, overrides)
        pair.snapshots[side] = self._add_update(pair, side, current, write)
        pair.snapshots[target] = created
        pair.hash = snapshot_hash(pair.snapshots)
        self._plan_comments(pair, None)
        plan.pairs.append(pair)
