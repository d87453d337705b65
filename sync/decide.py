"""Every field decision of a sync, as pure functions: merge, rules, implied and invented values.

Contract:
- Nothing here does I/O: inputs are neutral incidents, per-side snapshots and
  what the tools' histories said (read by the caller); outputs are decisions.
  A :class:`FieldView` carries the pure mapping knowledge (profile, per-side
  mapping context, direction) needed to tell how a side reads a write back.
- :func:`decide_pair` decides a linked or adopted pair: the three-way merge per
  field (:func:`sync.merge.merge_field`), still-open conflicts decided again
  (:func:`sync.conflict_settle.revisit`), the rules hook, and per side the
  write (changed fields, fields the write drags along, the vendor fields) and
  the snapshot the side will hold after it. Values a write must invent for an
  empty field (a mandatory fallback such as ServiceNow's close notes) are
  written to the other side too. When both sides changed a field and no
  history was given, the decision asks for the tools' histories
  (``needs_history``): a side whose last change was the integration user's own
  did not move by anyone's hand, and the other side wins without a conflict.
- :func:`decide_create` decides a create: the copy's neutral values, the
  source's write (rule changes, invented values) and both snapshots.
- :func:`adoption_base` gives a pair without a common past its snapshots, and
  :func:`rebase_written` what a side's snapshot becomes once we read back what
  it made of our write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from connectors.base import RemoteRecord
from mappings.mapper import MappingContext, VendorFields, to_fields, to_incident
from mappings.model import VOLATILE_FIELDS, Comment, Incident, revalidates
from mappings.profile import Profile
from sync.actions import side_title
from sync.conflict_settle import revisit
from sync.engine_core import NOT_MERGED, EngineOptions, projection, with_values
from sync.merge import Conflict, FieldMerge, merge_field
from sync.rules import (
    Rule,
    RuleFiring,
    apply_rules,
    next_due,
    overridden_by_people,
    owed_notes,
    with_notes,
)


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def explained(written: Any, held: Any) -> bool:
    """Would a tool given ``written`` hold ``held`` by its own habits (cut, or dropped)?"""
    if is_empty(written):
        return False
    return is_empty(held) or (isinstance(written, str) and isinstance(held, str)
                              and written.startswith(held))


# Entries a run's mapping memo keeps per kind, at least; it keeps four batches' worth
# (a batch planned, then read back and planned again) when the batch size is larger.
MEMO_MIN = 256


class MappingMemo:
    """What a run already mapped, so each record is mapped once and each readback
    worked out once: pure results of the mapping, reused, never changed.

    - a record's incident and merged-field projection, keyed by the record
      object (held, so its id cannot be reused while the entry lives): a record
      re-read after a write is a new object, mapped anew;
    - a side's vendor fields for an incident and what the side reads back from
      them, keyed by (side, the origin named in fallback texts, the incident's
      JSON): the same neutral values give the same result (the mapper's
      contract), whichever record they came from. The JSON leaves out what a
      write to that side never carries where no row writes it there: the
      tool's volatile stamps (a record read back after our write differs from
      its earlier read in ``updated_at`` alone) and the comments;
    - per side and origin, the mapping context naming the other record.

    Bounded (oldest entries go first) and cleared when a run starts and ends
    (:meth:`sync.session.Session.forget`): it never outlives a run. A run also
    clears it before planning each batch, once the previous batch is written,
    committed and settled, so it holds one batch's records, not the scope's.
    """

    def __init__(self, limit: int = MEMO_MIN) -> None:
        self.limit = limit
        self.records: dict[int, tuple[RemoteRecord, Incident]] = {}
        self.by_incident: dict[int, tuple[Incident, dict[str, Any]]] = {}
        self.vendor: dict[tuple[str, str, str], VendorFields] = {}
        self.readbacks: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.contexts: dict[tuple[str, str], MappingContext] = {}

    def clear(self) -> None:
        for kept in (self.records, self.by_incident, self.vendor, self.readbacks,
                     self.contexts):
            kept.clear()

    def keep(self, kept: dict[Any, Any], key: Any, value: Any) -> None:
        """Add an entry, dropping the oldest ones past the limit."""
        kept[key] = value
        while len(kept) > self.limit:
            del kept[next(iter(kept))]


@dataclass(frozen=True)
class FieldView:
    """The mapping knowledge of both sides: how a record reads, how a write reads back.

    ``memo`` holds what the current run already mapped (:class:`MappingMemo`).
    """

    sides: tuple[str, str]
    profile: Profile
    ctx: dict[str, MappingContext]
    options: EngineOptions
    memo: MappingMemo = field(default_factory=MappingMemo, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.memo.limit = max(MEMO_MIN, 4 * self.options.batch_size)

    @cached_property
    def merged_fields(self) -> list[str]:
        return [f for f in self.profile.neutral_fields() if f not in NOT_MERGED]

    @cached_property
    def _unwritten(self) -> dict[str, set[str]]:
        """Per side, the incident's attributes a write there never carries (see
        :class:`MappingMemo`): left out of the memo's keys."""
        return {side: {name for name in (*VOLATILE_FIELDS, "comments")
                       if not self.profile.travels(name, side)} for side in self.sides}

    def _key(self, side: str, incident: Incident, ctx: MappingContext) -> tuple[str, str, str]:
        """The memo's key of a write of ``incident`` to ``side`` with ``ctx``."""
        return side, ctx.origin, incident.model_dump_json(exclude=self._unwritten.get(side))

    @cached_property
    def _travels(self) -> dict[tuple[str, str], bool]:
        """(field, target side) -> may it be written there: filled as asked, once each."""
        return {}

    @cached_property
    def _travelling(self) -> dict[str, tuple[str, ...]]:
        """Per side, the merged fields that may be written there, in their order."""
        return {side: tuple(f for f in self.merged_fields if self.travels(f, side))
                for side in self.sides}

    def travelling(self, target: str) -> tuple[str, ...]:
        """The merged fields that may be written to ``target`` (:meth:`travels`)."""
        return self._travelling[target]

    def other(self, side: str) -> str:
        return self.sides[1] if side == self.sides[0] else self.sides[0]

    def travels(self, name: str, target: str) -> bool:
        """May field ``name`` be written to ``target`` (profile and direction)?"""
        known = self._travels.get((name, target))
        if known is None:
            known = self._travels[name, target] = (
                self.profile.travels(name, target)
                and self.options.allows(self.other(target), target))
        return known

    def incident(self, record: RemoteRecord) -> Incident:
        """``record`` in neutral terms, mapped once per record object in a run.

        The incident returned is shared: callers must not change it (copy it first).
        """
        held = self.memo.records.get(id(record))
        if held is not None and held[0] is record:
            return held[1]
        side = str(record.side)
        incident = to_incident(side, record.fields, self.profile, self.ctx[side])
        self.memo.keep(self.memo.records, id(record), (record, incident))
        self.memo.keep(self.memo.by_incident, id(incident), (incident, {}))
        return incident

    def mapped(self, incident: Incident) -> bool:
        """Is ``incident`` one :meth:`incident` mapped (and so validated) in this run,
        the very object, still held by the memo?"""
        held = self.memo.by_incident.get(id(incident))
        return held is not None and held[0] is incident

    def current(self, incident: Incident) -> dict[str, Any]:
        """The merged fields' projection of ``incident`` (worked out once for a record's
        incident from :meth:`incident`); a fresh dict the caller may change."""
        held = self.memo.by_incident.get(id(incident))
        if held is None or held[0] is not incident:
            return projection(incident, self.merged_fields)
        if not held[1]:
            held[1].update(projection(incident, self.merged_fields))
        return dict(held[1])

    def ctx_for(self, side: str, displays: Mapping[str, str] | None = None) -> MappingContext:
        """``side``'s mapping context naming the other record (for fallback texts)."""
        other = self.other(side)
        if not displays or not displays.get(other):
            return self.ctx[side]
        origin = f"{side_title(other)} {displays[other]}"
        held = self.memo.contexts.get((side, origin))
        if held is None:
            held = replace(self.ctx[side], origin=origin)
            self.memo.keep(self.memo.contexts, (side, origin), held)
        return held

    def vendor_fields(self, side: str, incident: Incident,
                      displays: Mapping[str, str] | None = None) -> VendorFields:
        """Every vendor field a write of ``incident`` to ``side`` sends, with the losses
        (:func:`mappings.mapper.to_fields` with the context naming the other record)."""
        ctx = self.ctx_for(side, displays)
        return _copied(self._vendor(side, incident, ctx, self._key(side, incident, ctx)))

    def _vendor(self, side: str, incident: Incident, ctx: MappingContext,
                key: tuple[str, str, str]) -> VendorFields:
        held = self.memo.vendor.get(key)
        if held is None:
            held = to_fields(side, incident, self.profile, ctx)
            self.memo.keep(self.memo.vendor, key, held)
        return held

    def readback(self, side: str, incident: Incident,
                 displays: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What ``side`` would hold for each merged field after we wrote ``incident`` there."""
        ctx = self.ctx_for(side, displays)
        key = self._key(side, incident, ctx)
        held = self.memo.readbacks.get(key)
        if held is None:
            written = self._vendor(side, incident, ctx, key).fields
            held = projection(to_incident(side, written, self.profile, ctx),
                              self.merged_fields)
            self.memo.keep(self.memo.readbacks, key, held)
        return dict(held)


def _copied(vendor: VendorFields) -> VendorFields:
    """A memo's vendor fields as the caller's own (the memo's copy stays as it was)."""
    return VendorFields(dict(vendor.fields), list(vendor.losses))


@dataclass(frozen=True)
class SideWrite:
    """One side's write: what changes, what it drags along, how it reads back."""

    overrides: dict[str, Any]       # neutral field -> the value asked for
    changed: list[str]              # fields the write changes as the side reads them
    implied: list[str]              # fields that change with them (a resolve's close code)
    after: dict[str, Any]           # the side's merged fields after the write
    fields: dict[str, Any]          # the vendor fields sent
    losses: list[str]


def side_write(view: FieldView, side: str, incident: Incident, current: Mapping[str, Any],
               overrides: Mapping[str, Any], displays: Mapping[str, str]) -> SideWrite | None:
    """What writing ``overrides`` to ``side`` would send and leave there; None if nothing."""
    if not overrides:
        return None
    target = with_values(incident, overrides)
    after = view.readback(side, target, displays)
    changed = [f for f in overrides if after[f] != current[f]]
    if not changed:
        return None
    ctx = view.ctx_for(side, displays)
    vendor = to_fields(side, target, view.profile, ctx, only=changed)
    # A write may drag other fields along (a resolve carries its close code
    # and notes): those change on the side too, so show and remember them.
    sent = set(vendor.fields)
    implied = [
        f for f in view.merged_fields
        if f not in changed and view.travels(f, side) and after[f] != current[f]
        and set(to_fields(side, target, view.profile, ctx, only=[f]).fields) <= sent
    ]
    return SideWrite(dict(overrides), changed, implied, after, vendor.fields,
                     list(vendor.losses))


def invented(view: FieldView, write: SideWrite | None, current: Mapping[str, Any],
             other_current: Mapping[str, Any], other: str) -> dict[str, Any]:
    """Values a write had to invent for empty fields (a fallback such as ServiceNow's
    mandatory close notes), for the other side where that field is empty too:
    written there as well, both tools hold the same text and no audit ever differs."""
    if write is None:
        return {}
    return {f: write.after[f] for f in write.implied
            if is_empty(current[f]) and not is_empty(write.after[f])
            and is_empty(other_current[f]) and view.travels(f, other)}


def next_snapshot(current: Mapping[str, Any], write: SideWrite | None) -> dict[str, Any]:
    """What a side will hold after ``write`` (its current values where nothing is written)."""
    snapshot = dict(current)
    if write is not None:
        for name in [*write.changed, *write.implied]:
            snapshot[name] = write.after[name]
    return snapshot


_UNMOVED: dict[str, FieldMerge] = {}


def _unmoved(name: str) -> FieldMerge:
    """``merge_field``'s answer for a field no side moved (frozen, so shared)."""
    held = _UNMOVED.get(name)
    if held is None:
        held = _UNMOVED[name] = FieldMerge(name, None)
    return held


@dataclass
class PairDecision:
    """What to do with one pair: per side the write and the snapshot it leaves."""

    current: dict[str, dict[str, Any]]
    writes: dict[str, SideWrite | None] = field(default_factory=dict)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    settled: list[Conflict] = field(default_factory=list)   # open ones that close now
    firings: list[RuleFiring] = field(default_factory=list)
    notes: list[Comment] = field(default_factory=list)   # rule notes to write, each once
    due_at: datetime | None = None   # when the rules next change the pair by time alone
    # Both sides changed a field since the last sync: the histories must say whose
    # hand it was before deciding (call again with ``last_by_us``).
    needs_history: bool = False


def decide_pair(
    view: FieldView,
    incidents: Mapping[str, Incident],
    *,
    updated: Mapping[str, datetime],
    displays: Mapping[str, str],
    base: Mapping[str, Mapping[str, Any] | None] | None,
    pending: Mapping[str, Any] | None = None,
    rules: Sequence[Rule] = (),
    last_by_us: Mapping[str, Mapping[str, bool]] | None = None,
    now: datetime | None = None,
    newest_of: Mapping[str, str] | None = None,
    recorded: Sequence[RuleFiring] = (),
) -> PairDecision:
    """Merge both records of a pair field by field, run the rules, decide each side's write.

    ``base`` holds each side's snapshot (None for a pair without a common past);
    ``pending`` the pair's still-open conflicts by field; ``last_by_us[side]``
    whether the integration user made the last change of a field on that side;
    ``now`` the time rules judge ages and SLA targets by; ``newest_of`` per field
    the side whose person edited it last, where the tools' histories said so (it
    then decides the newest policy instead of the records' update times);
    ``recorded`` the rule firings stored for the link, oldest first: a field a
    person changed after a rule set it stays the person's (the rule does not set
    it again), and a note already written is not written again.
    """
    sides = view.sides
    a, b = sides
    other = view.other
    names = view.merged_fields
    current = {side: view.current(incidents[side]) for side in sides}
    across = {side: view.readback(other(side), incidents[side], displays) for side in sides}
    newest = a if updated[a] >= updated[b] else b
    bases = None if base is None else {side: dict(base[side] or {}) for side in sides}
    pending = pending or {}

    newest_of = newest_of or {}
    # What the merge and the conflict revisit know of each field, worked out once
    # (neither the bases nor the histories change it), when first asked.
    facts: dict[str, dict[str, Any]] = {}

    def fact(name: str) -> dict[str, Any]:
        known = facts.get(name)
        if known is None:
            known = facts[name] = dict(
                sides=sides,
                current={side: current[side][name] for side in sides},
                travels_to={side: view.travels(name, side) for side in sides},
                agrees={side: across[side][name] == current[other(side)][name]
                        for side in sides},
                owner=view.profile.owner(name),
                policy=view.options.conflict,
                newest=newest_of.get(name, newest),
            )
        return known

    def merge(name: str) -> FieldMerge:
        return merge_field(name, base=None if bases is None else {
            side: bases[side].get(name) for side in sides}, **fact(name))

    decision = PairDecision(current=current)
    if bases is not None and all(
            current[side] == bases[side]
            or all(current[side][name] == bases[side].get(name)
                   or not view.travels(name, other(side)) for name in names)
            for side in sides):
        # No field moved on either side since the last sync, as merge_field counts a
        # move (a change that may travel to the other side), which is what the settle
        # step sees of a pair just written and read back: merge_field then finds
        # nothing to write and no conflict for any field, whatever its other facts.
        decisions = [_unmoved(name) for name in names]
    else:
        decisions = [merge(name) for name in names]
    fought = [d.field for d in decisions if d.conflict is not None]
    if fought and bases is not None:
        if last_by_us is None:
            decision.needs_history = True
            return decision
        # Both sides moved since the last sync. A side whose last change of the
        # field was our own (a write a failed or interrupted run got half done,
        # such as one step of a multi-step transition) did not move by anyone's
        # hand: the other side's person wins, without a conflict.
        for name in fought:
            by_us = [side for side in sides if last_by_us.get(side, {}).get(name)]
            if len(by_us) == 1:
                bases[by_us[0]][name] = current[by_us[0]][name]
        decisions = [merge(name) for name in names]
    revisited = []
    for one in decisions:
        open_conflict = pending.get(one.field)
        if open_conflict is not None:   # revisit leaves a field without one as it is
            one, settled = revisit(one, open_conflict, **fact(one.field))
            if settled is not None:
                decision.settled.append(settled)
        revisited.append(one)

    merged_values = dict(current[a])
    merged = False
    for one in revisited:
        if one.source is not None:
            merged_values[one.field] = one.value
            merged = True
        if one.conflict is not None:
            decision.conflicts.append(one.conflict)
    by_rules: dict[str, Any]
    if not rules and not merged and view.mapped(incidents[a]) and revalidates(incidents[a]):
        # No rules and nothing merged (what the settle step sees of nearly every pair):
        # the merged incident would be side a's own through its JSON dump and
        # validation, and for an incident this run mapped, so validated, that gives
        # back the same projection (mappings.model.revalidates): no rule changes,
        # without the dump, the validation and the projection. Where validating again
        # would refuse it, the path below still raises as it always did.
        by_rules = {}
    else:
        ruled, ruling = _ruled(with_values(incidents[a], merged_values), rules, now, recorded)
        decision.firings, decision.notes, decision.due_at = ruling
        ruled_values = view.current(ruled)
        by_rules = {f: v for f, v in ruled_values.items() if v != merged_values[f]}

    overrides = {side: {d.field: d.value for d in revisited
                        if d.source == other(side) and view.travels(d.field, side)}
                 for side in sides}
    for side in sides:
        overrides[side].update({f: v for f, v in by_rules.items() if view.travels(f, side)})
    writes = {side: side_write(view, side, incidents[side], current[side], overrides[side],
                               displays) for side in sides}
    for side in sides:
        made_up = invented(view, writes[side], current[side], current[other(side)], other(side))
        if made_up:
            target = other(side)
            overrides[target].update(made_up)
            writes[target] = side_write(view, target, incidents[target], current[target],
                                        overrides[target], displays)
    decision.writes = writes
    decision.snapshots = {side: next_snapshot(current[side], writes[side]) for side in sides}
    return decision


@dataclass
class CreateDecision:
    """A create: the copy's incident, the source's own write, and both snapshots."""

    copy: Incident
    current: dict[str, Any]                    # the source's merged fields now
    source_write: SideWrite | None
    snapshots: dict[str, dict[str, Any]]
    firings: list[RuleFiring]
    notes: list[Comment] = field(default_factory=list)
    due_at: datetime | None = None


def _ruled(incident: Incident, rules: Sequence[Rule], now: datetime | None,
           recorded: Sequence[RuleFiring]
           ) -> tuple[Incident, tuple[list[RuleFiring], list[Comment], datetime | None]]:
    """The rules applied to a merged incident, with what a link's recorded firings
    say: the person-won fields, the notes already written. Also the notes to write
    and when the rules are next due by time alone."""
    if not rules:
        return incident, ([], [], None)
    latest: dict[tuple[str, str], RuleFiring] = {}
    for firing in recorded:
        latest[(firing.rule, firing.field)] = firing   # oldest first: the last wins
    overridden = overridden_by_people(latest.values(), incident)
    written = [f.note_id for f in recorded if f.note_id]
    held = with_notes(incident, written)
    ruled, firings = apply_rules(held, rules, now, overridden)
    known = {c.id for c in held.comments}
    notes = [c for c in ruled.comments if c.id not in known]
    # A note an earlier run's escalation owes (its write failed): written now.
    for firing, note in owed_notes(ruled, rules, now, recorded, overridden):
        firings.append(firing)
        notes.append(note)
    due = next_due(ruled, rules, now, overridden) if now is not None else None
    return ruled, (firings, notes, due)


def decide_create(view: FieldView, incident: Incident, side: str, displays: Mapping[str, str],
                  rules: Sequence[Rule] = (), now: datetime | None = None) -> CreateDecision:
    """Copy ``incident`` of ``side`` to the other side, rules applied.

    What the rules changed goes back to the source where it may travel, and so
    does what the copy had to invent for empty fields: both tools then agree.
    """
    target = view.other(side)
    names = view.merged_fields
    ruled, (firings, notes, due) = _ruled(incident, rules, now, ())
    current = view.current(incident)
    ruled_values = view.current(ruled)
    created = view.readback(target, ruled, displays)
    overrides = {f: v for f, v in ruled_values.items()
                 if v != current[f] and view.travels(f, side)}
    overrides.update({f: created[f] for f in names
                      if is_empty(ruled_values[f]) and not is_empty(created[f])
                      and view.travels(f, target) and view.travels(f, side)})
    write = side_write(view, side, incident, current, overrides, displays)
    return CreateDecision(copy=ruled, current=current, source_write=write,
                          snapshots={side: next_snapshot(current, write), target: created},
                          firings=firings, notes=notes, due_at=due)


def adoption_base(
    view: FieldView, incidents: Mapping[str, Incident], displays: Mapping[str, str],
    *, source: str | None = None, people: Mapping[str, set[str]] | None = None,
    people_last: Mapping[str, Mapping[str, datetime]] | None = None,
    newest_of: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
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
    and the tools' histories tell what happened since (``people[side]``: the
    fields someone other than the integration user changed, on the original
    only after the copy was made): on the copy, only those count as changed
    (what an interrupted create or a failed follow-up transition left there,
    such as the initial status, is the sync's own unfinished work and never
    overrides the original); where a person changed the copy, the original
    counts as changed only if a person changed that field after the copy was
    created. Where people changed a field on both since the create, both count
    as changed, even where the original's empty value would otherwise read as a
    tool's habit (a person unassigned it after a write of ours whose reply was
    lost had assigned it), and ``newest_of`` (when given) gets the side of the
    later person's edit of that field (``people_last``), for the newest policy.
    A field the copy's tool filled in where the create wrote nothing (Jira's
    default reporter) stays news for the original, unless a person emptied the
    original's field since the create (:func:`filled_on_copy` names the fields
    whose original history must then be read).
    """
    names = view.merged_fields
    held = {side: view.current(incidents[side]) for side in view.sides}
    across = {side: view.readback(side, incidents[view.other(side)], displays)
              for side in view.sides}
    base = {side: {name: held[side][name] if explained(across[side][name], held[side][name])
                   else across[side][name] for name in names} for side in view.sides}
    if source is None:
        return base
    copy = view.other(source)
    by_people = people or {}
    on_copy, on_source = by_people.get(copy, set()), by_people.get(source, set())
    for name in names:
        if name in on_copy:
            base[copy][name] = across[copy][name]   # a person's edit: a change
            if name not in on_source:
                base[source][name] = held[source][name]   # untouched since the create
                continue
            # People changed it on both: a change on both (a conflict unless they
            # agree), the later person's edit being the newest.
            base[source][name] = across[source][name]
            last = people_last or {}
            if newest_of is not None and name in last.get(copy, {}) \
                    and name in last.get(source, {}):
                newest_of[name] = (source if last[source][name] >= last[copy][name]
                                   else copy)
        elif not (is_empty(across[copy][name]) and not is_empty(held[copy][name])):
            base[copy][name] = held[copy][name]   # the sync's own work: no change
        elif name in on_source:
            # A value the create wrote that a person emptied on the original since:
            # the copy did not change, the original did (not a tool's habit of
            # dropping values), and the emptying travels.
            base[copy][name] = held[copy][name]
            base[source][name] = across[source][name]
    return base


def changed_back_suspects(
    view: FieldView, incidents: Mapping[str, Incident], displays: Mapping[str, str],
    base: Mapping[str, Mapping[str, Any]],
) -> dict[str, list[str]]:
    """Per side, the fields that may have been set back to their base by a person.

    For a pair whose last attempt failed (a lost reply is such a failure) or
    whose create intent is pending, a write of that attempt may have landed
    without being committed: the snapshots still hold the values of the last
    committed sync. A field one side holds at its base while the other side
    moved is then either truly unchanged, or a person set it back after our
    write landed (unassigned the record a lost write had assigned): only the
    tool's history can tell. These are the fields to ask it about.
    """
    names = view.merged_fields
    current = {side: view.current(incidents[side]) for side in view.sides}
    suspects: dict[str, list[str]] = {}
    for side in view.sides:
        other = view.other(side)
        suspects[side] = [
            name for name in names
            if view.travels(name, side) and view.travels(name, other)
            and current[side][name] == base[side].get(name)
            and current[other][name] != base[other].get(name)]
    return suspects


def rebase_changed_back(
    view: FieldView, incidents: Mapping[str, Incident], displays: Mapping[str, str],
    base: Mapping[str, Mapping[str, Any]], suspects: Mapping[str, Sequence[str]],
    people_last: Mapping[str, Mapping[str, datetime]], committed: datetime,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The bases and the per-field newest side once the histories have spoken.

    ``people_last[side][field]`` is when a person last changed the field on that
    side's record; ``committed`` when the link was last committed (the engine's
    clock). A suspect a person changed at or after the commit counts as changed
    on its side: its base becomes what our write of the other side's value would
    have left there, so the merge goes on as usual (a conflict if both moved),
    and the newest policy compares the two people's edit times of that field,
    not the records' update times (later edits of other fields say nothing of
    this one). The tools stamp whole seconds: a second's slack counts an edit in
    the commit's second as after it, so a tie ends as a recorded conflict rather
    than a lost edit.
    """
    bases = {side: dict(base[side]) for side in view.sides}
    start = committed.replace(microsecond=0) - timedelta(seconds=1)
    newest_of: dict[str, str] = {}
    for side, names in suspects.items():
        other = view.other(side)
        across = view.readback(side, incidents[other], displays)
        for name in names:
            at = people_last.get(side, {}).get(name)
            if at is None or at < start:
                continue   # truly unchanged since the last commit
            bases[side][name] = across[name]
            theirs = people_last.get(other, {}).get(name)
            newest_of[name] = side if theirs is None or at >= theirs else other
    return bases, newest_of


def filled_on_copy(view: FieldView, incidents: Mapping[str, Incident],
                   displays: Mapping[str, str], copy: str) -> list[str]:
    """Fields the copy holds where its original is empty now: a value the copy's
    tool filled in, or one the create wrote that a person has since emptied on the
    original. Only the original's history can tell which."""
    held = view.current(incidents[copy])
    across = view.readback(copy, incidents[view.other(copy)], displays)
    return [name for name in view.merged_fields
            if is_empty(across[name]) and not is_empty(held[name])]


def rebase_written(
    view: FieldView, snapshot: Mapping[str, Any] | None, held: Mapping[str, Any],
    written: set[str],
) -> tuple[dict[str, Any], list[str]]:
    """A side's snapshot after reading back what it made of the fields we ``written``.

    A value we wrote is the tool's to reshape or even drop (an unknown user left
    empty): absorbed, never sent back to wipe the original. One it filled in
    where we wrote none (Jira's default reporter) is news for the other side.
    Also returned: the fields the tool emptied that we did not write; the caller
    absorbs those too where the tool's history says the drop was ours (Jira
    clears the resolution of an issue our transition reopened).
    """
    rebased = dict(snapshot or {})
    rebased.update({f: held[f] for f in written if not is_empty(rebased.get(f))})
    dropped = [f for f in view.merged_fields if f not in written
               and not is_empty(rebased.get(f)) and is_empty(held[f])]
    return rebased, dropped
