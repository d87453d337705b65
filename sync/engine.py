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
  ``exit_code`` follows DESIGN.md (0 ok, 1 something failed).
- Snapshots are per side: the neutral projection of that side as of the last
  sync, i.e. our write as that side reads it back, or the side's own value.
  A record whose version equals the link's seen version is skipped without
  being mapped; "changed" means the version moved AND the projection differs.
- Creates are crash-safe: the intent is committed before the remote create,
  the new record carries the source's id, the source then gets the new id,
  and unlinked records are first looked up on the other side and adopted.
- The engine speaks of two sides symmetrically; vendor knowledge lives in the
  connectors and the mapping profile.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from connectors.base import (
    Connector,
    ConnectorError,
    FatalError,
    NewRecord,
    PreconditionFailed,
    RemoteRecord,
    ServerInfo,
    SyncError,
)
from mappings.mapper import (
    MappingContext,
    comment_from_remote,
    comment_to_remote,
    to_fields,
    to_incident,
)
from mappings.model import VOLATILE_FIELDS, Comment, Incident
from mappings.profile import Profile
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
    UpdateFields,
    side_title,
)
from sync.errors import SafetyValve
from sync.merge import comments_to_copy, merge_field
from sync.rules import Rule, apply_rules
from sync.state import Link, PairTx, StateStore

logger = logging.getLogger(__name__)

DIRECTIONS = ("both", "servicenow-to-jira", "jira-to-servicenow")
CONFLICT_POLICIES = ("newest", "servicenow", "jira", "manual")
# Fields never merged: comments have their own union, volatile stamps change on every write.
NOT_MERGED = frozenset({"comments"}) | VOLATILE_FIELDS
# A batch of linked records that ALL vanish at once smells of a scope or
# permission problem, not of deletions: refuse to act (STYLE habit 8).
VANISHED_BATCH = 3
HEARTBEAT_SECONDS = 60.0

# After creating a copy of a record, the source gets the copy's id, so both
# carry each other's id (DESIGN.md "Creates are crash-safe"). The protocol can
# only set a foreign id on create (NewRecord), so the one vendor field the
# engine names lives here: ServiceNow's correlation pair (VENDOR_APIS.md §1.5).
# A Jira source needs nothing: its copy's correlation_id already finds it.
BACKLINK_FIELDS: dict[str, Callable[[str], dict[str, str]]] = {
    "servicenow": lambda foreign_id: {"correlation_id": foreign_id,
                                      "correlation_display": "JIRA"},
}

# Names of the steps a test can crash the engine at (``Engine(crash_at=...)``).
CRASH_STEPS = (
    "create:before-intent",
    "create:after-intent",
    "create:after-remote",
    "create:after-commit",
    "update:before-write",
    "update:after-write",
    "update:after-commit",
)


class SimulatedCrash(BaseException):
    """Raised at a named step when a test asked for a crash there (never in production).

    A BaseException so that no per-pair handler swallows it, as with a real kill."""


def default_owner() -> str:
    """Who holds the run lock: enough to find the process on a shared store."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class RunSummary:
    """What a run did; ``line()`` is the one summary line the CLI prints."""

    created: int = 0
    adopted: int = 0
    updated: int = 0
    comments: int = 0
    conflicts: int = 0
    failed: int = 0
    orphaned: int = 0
    parked: int = 0
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    @property
    def outcome(self) -> str:
        return "failed-items" if self.failed else "ok"

    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "adopted": self.adopted,
            "updated": self.updated,
            "comments": self.comments,
            "conflicts": self.conflicts,
            "failed": self.failed,
            "orphaned": self.orphaned,
            "parked": self.parked,
        }

    def line(self) -> str:
        return (f"created {self.created}, updated {self.updated}, comments {self.comments}, "
                f"conflicts {self.conflicts}, failed {self.failed}, orphaned {self.orphaned} "
                f"in {self.elapsed:.1f} s")


@dataclass(frozen=True)
class EngineOptions:
    """The ``[sync]`` settings the engine needs, as plain values."""

    direction: str = "both"
    conflict: str = "newest"
    max_attempts: int = 5
    retry_base_seconds: float = 60.0
    lock_timeout: float = 0.0
    lock_ttl: float = 900.0

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, "
                             f"not {self.direction!r}")
        if self.conflict not in CONFLICT_POLICIES:
            raise ValueError(f"conflict must be one of {', '.join(CONFLICT_POLICIES)}, "
                             f"not {self.conflict!r}")

    def allows(self, source: str, target: str) -> bool:
        """May anything travel from ``source`` to ``target``?"""
        return self.direction == "both" or self.direction == f"{source}-to-{target}"


# --------------------------------------------------------------------------- projections


def projection(incident: Incident, fields: Iterable[str]) -> dict[str, Any]:
    """The JSON-ready neutral values of ``fields`` (``custom.x`` reads ``custom["x"]``)."""
    data = incident.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name in fields:
        if name.startswith("custom."):
            out[name] = data["custom"].get(name[len("custom."):])
        elif name == "labels":
            out[name] = sorted(set(data["labels"]))
        else:
            out[name] = data.get(name)
    return out


def with_values(incident: Incident, values: Mapping[str, Any]) -> Incident:
    """``incident`` with some neutral fields replaced by JSON-ready values (validated)."""
    if not values:
        return incident
    data = incident.model_dump(mode="json")
    for name, value in values.items():
        if name.startswith("custom."):
            data["custom"] = {**data["custom"], name[len("custom."):]: value}
        else:
            data[name] = value
    return Incident.model_validate(data)


def snapshot_hash(snapshots: Mapping[str, Mapping[str, Any]]) -> str:
    payload = json.dumps(snapshots, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- engine


class Engine:
    """Two connectors, a mapping profile and a state store, synced as DESIGN.md says."""

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
        if len(connectors) != 2 or connectors[0].side == connectors[1].side:
            raise ValueError("the engine needs exactly one connector per side")
        if crash_at is not None and crash_at not in CRASH_STEPS:
            raise ValueError(f"crash_at must be one of {', '.join(CRASH_STEPS)}")
        self.connectors: dict[str, Connector] = {str(c.side): c for c in connectors}
        self.sides: tuple[str, str] = (str(connectors[0].side), str(connectors[1].side))
        self.profile = profile
        self.store = store
        self.options = options or EngineOptions()
        self.rules = tuple(rules)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.owner = owner or default_owner()
        self.crash_at = crash_at
        self.progress = progress
        self.info: dict[str, ServerInfo] = {}
        self.ctx: dict[str, MappingContext] = {}
        self.vendor_fields: dict[str, list[str]] = {}
        self.merged_fields = [f for f in profile.neutral_fields() if f not in NOT_MERGED]
        self._opened = False
        self._locked = False
        self._last_beat = 0.0

    # ------------------------------------------------------------------ helpers

    def other(self, side: str) -> str:
        return self.sides[1] if side == self.sides[0] else self.sides[0]

    def _step(self, name: str) -> None:
        if self.crash_at == name:
            raise SimulatedCrash(name)

    def travels(self, name: str, target: str) -> bool:
        return (self.profile.travels(name, target)
                and self.options.allows(self.other(target), target))

    def open(self) -> None:
        """Connect to both tools and learn how each one formats rich text."""
        if self._opened:
            return
        for side, connector in self.connectors.items():
            info = connector.open()
            self.info[side] = info
            # Only some connectors resolve field names to ids (Jira custom
            # fields); the protocol does not promise the attribute.
            field_ids = dict(getattr(connector, "field_ids", None) or {})
            self.ctx[side] = MappingContext(text_format=info.text_format, field_ids=field_ids)
            self.vendor_fields[side] = list(self.profile.vendor_fields(side, self.ctx[side]))
        self._opened = True

    def close(self) -> None:
        for connector in self.connectors.values():
            try:
                connector.close()
            except ConnectorError as error:  # closing must not hide the run's outcome
                logger.warning("closing %s: %s", connector.side, error)
        self._opened = False

    def incident(self, record: RemoteRecord) -> Incident:
        side = str(record.side)
        return to_incident(side, record.fields, self.profile, self.ctx[side])

    def ctx_for(self, side: str, displays: Mapping[str, str] | None = None) -> MappingContext:
        """``side``'s mapping context naming the other record (for fallback texts)."""
        other = self.other(side)
        if not displays or not displays.get(other):
            return self.ctx[side]
        return replace(self.ctx[side], origin=f"{side_title(other)} {displays[other]}")

    def readback(self, side: str, incident: Incident,
                 displays: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What ``side`` would hold for each merged field after we wrote ``incident`` there."""
        ctx = self.ctx_for(side, displays)
        written = to_fields(side, incident, self.profile, ctx).fields
        return projection(to_incident(side, written, self.profile, ctx), self.merged_fields)

    # ------------------------------------------------------------------ plan

    def build_plan(self) -> Plan:
        """Everything a run would do, computed with reads only."""
        self.open()
        started = self.clock()
        plan = Plan(started=started)
        records: dict[str, dict[str, RemoteRecord]] = {side: {} for side in self.sides}
        forced: dict[str, set[str]] = {side: set() for side in self.sides}

        for side in self.sides:
            self._pull(side, plan, records[side])
        self._add_retries_and_intents(plan, records, forced)

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

    def _pull(self, side: str, plan: Plan, into: dict[str, RemoteRecord]) -> None:
        connector = self.connectors[side]
        since = self.store.watermark(side)
        # Items waiting in the retry queue (or parked) come back when they are
        # due, or when they change; not because an inclusive watermark re-reads them.
        waiting = {item.record_id for item in self.store.retry_items()
                   if item.side == side and (item.parked or item.next_attempt > plan.started)}
        newest: datetime | None = None
        try:
            for record in connector.pull(since, self.vendor_fields[side]):
                if newest is None or record.updated > newest:
                    newest = record.updated
                if record.id in waiting and since is not None and record.updated <= since:
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
        forced: dict[str, set[str]],
    ) -> None:
        wanted: dict[str, set[str]] = {side: set() for side in self.sides}
        for side in self.sides:
            for item in self.store.due_retries(side, plan.started):
                wanted[side].add(item.record_id)
                forced[side].add(item.record_id)
        for intent in self.store.pending_intents():
            if intent.source_side in wanted:
                wanted[intent.source_side].add(intent.source_id)
                forced[intent.source_side].add(intent.source_id)
        for side in self.sides:
            missing = sorted(wanted[side] - set(records[side]))
            if not missing or side in plan.pull_errors:
                continue
            try:
                records[side].update(
                    self.connectors[side].get_many(missing, self.vendor_fields[side]))
            except FatalError:
                raise
            except ConnectorError as error:
                plan.pull_errors[side] = f"fetching retry items: {error}"

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

        decisions = []
        for name in self.merged_fields:
            decisions.append(merge_field(
                name,
                sides=self.sides,
                current={side: current[side][name] for side in self.sides},
                base=None if base is None else {
                    side: (base[side] or {}).get(name) for side in self.sides},
                travels_to={side: self.travels(name, side) for side in self.sides},
                agrees={side: across[side][name] == current[self.other(side)][name]
                        for side in self.sides},
                owner=self.profile.owner(name),
                policy=self.options.conflict,
                newest=newest,
            ))

        merged_values = dict(current[a])
        for decision in decisions:
            if decision.source is not None:
                merged_values[decision.field] = decision.value
            if decision.conflict is not None:
                pair.conflicts.append(RecordConflict(decision.conflict, dict(pair.displays)))
        merged = with_values(incidents[a], merged_values)
        ruled, pair.firings = apply_rules(merged, self.rules)
        ruled_values = projection(ruled, self.merged_fields)
        by_rules = {f: v for f, v in ruled_values.items() if v != merged_values[f]}
        pair.merged = ruled

        for side in self.sides:
            overrides = {d.field: d.value for d in decisions
                         if d.source == self.other(side) and self.travels(d.field, side)}
            overrides.update({f: v for f, v in by_rules.items() if self.travels(f, side)})
            pair.snapshots[side] = self._plan_side_update(
                pair, side, incidents[side], current[side], overrides)
        pair.hash = snapshot_hash(pair.snapshots)
        self._plan_comments(pair, link_id)

    def _plan_side_update(
        self, pair: PairPlan, side: str, incident: Incident, current: Mapping[str, Any],
        overrides: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Add the update of ``side`` (if anything differs) and return its next snapshot."""
        snapshot = dict(current)
        if not overrides:
            return snapshot
        target = with_values(incident, overrides)
        after = self.readback(side, target, pair.displays)
        changed = [f for f in overrides if after[f] != current[f]]
        if not changed:
            return snapshot
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
        record = pair.records[side]
        assert record is not None
        pair.updates.append(UpdateFields(
            side=side,
            record_id=record.id,
            display=record.display,
            changes=[FieldChange(f, current[f], overrides[f]) for f in changed]
            + [FieldChange(f, current[f], after[f]) for f in implied],
            fields=vendor.fields,
            expected_version=record.version,
            losses=list(vendor.losses),
        ))
        for name in [*changed, *implied]:
            snapshot[name] = after[name]
        return snapshot

    def _plan_comments(self, pair: PairPlan, link_id: int | None) -> None:
        known: dict[str, set[str]] = {side: set() for side in self.sides}
        if link_id is not None:
            for comment_link in self.store.comment_links(link_id):
                for side in self.sides:
                    known[side].add(comment_link.id_on(side))
        comments = {side: list(rec.comments) if rec is not None else []
                    for side, rec in pair.records.items()}
        for source, raw in comments_to_copy(comments, known, may_copy=self.options.allows):
            target = self.other(source)
            neutral: Comment = comment_from_remote(source, raw, self.ctx[source])
            origin = f"{side_title(source)} {pair.displays[source]}"
            pair.comments.append(AddComment(
                source_side=source,
                source_comment_id=raw.id,
                target_side=target,
                target_display=pair.displays.get(target) or "(new record)",
                visibility=neutral.visibility.value,
                body=comment_to_remote(target, neutral, self.ctx[target], origin=origin),
                text=neutral.body,
            ))

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
        pair.intent_id = (intents.get((str(record.side), record.id))
                          or intents.get((str(counterpart.side), counterpart.id)))
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
        self._plan_merge(pair, None, link_id=None)
        plan.pairs.append(pair)

    def _plan_create(
        self, plan: Plan, record: RemoteRecord, side: str, intent_id: int | None,
        forced: Mapping[str, set[str]],
    ) -> None:
        target = self.other(side)
        incident = self.incident(record)
        ruled, firings = apply_rules(incident, self.rules)
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
        overrides = {f: v for f, v in ruled_values.items()
                     if v != current[f] and self.travels(f, side)}
        pair.snapshots[side] = self._plan_side_update(pair, side, incident, current, overrides)
        pair.snapshots[target] = self.readback(target, ruled, displays)
        pair.hash = snapshot_hash(pair.snapshots)
        self._plan_comments(pair, None)
        plan.pairs.append(pair)

    # ------------------------------------------------------------------ apply

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
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_SECONDS:
            self._last_beat = now
            if self._locked:
                self.store.heartbeat(self.owner, ttl=self.options.lock_ttl)

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

        A tool computes some values itself when we write others (ServiceNow
        derives priority from impact x urgency), and our write's version stamp
        would hide that change from the next run. So the written pairs are read
        back (one batched read per side) and merged again; what moved travels
        now, and the final version stamps are committed (adding a comment moves
        them too). One pass only: it cannot loop. If the read fails, the next
        run looks at the pairs again.
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
            logger.warning("settling new pairs postponed to the next run: %s", error)
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
            self._guarded(follow_up, present, lambda link=link, got=present: self._plan_linked(
                follow_up, link, got, {side: set() for side in self.sides}))
        for problem in follow_up.problems:
            self._fail(summary, problem.side, problem.record_id, problem.display, problem.error)
        for pair in follow_up.pairs:
            link = links.get(pair.ids[a] or "")
            # Unchanged but with new version stamps (a comment we added moves
            # them): commit them, so the next run skips the pair unmapped.
            moved = link is not None and any(
                (pair.records[side].version if pair.records[side] else None)
                != link.version_on(side) for side in self.sides)
            if pair.updates or pair.conflicts or moved:
                self._apply_pair(pair, summary)

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
                made = self.connectors[target].add_comment(
                    target_id, comment.body, comment.visibility)
                ids = {comment.source_side: comment.source_comment_id, target: made.id}
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
            summary.comments += 1
        return complete

    # ------------------------------------------------------------------ run

    def run(self, command: str = "run") -> RunSummary:
        """Lock, plan, apply, record the run; always release the lock."""
        self.store.acquire_lock(self.owner, timeout=self.options.lock_timeout,
                                ttl=self.options.lock_ttl)
        self._locked = True
        self._last_beat = time.monotonic()
        run_id = self.store.start_run(command, self.clock())
        summary = RunSummary()
        outcome, error_text = "error", None
        try:
            plan = self.build_plan()
            summary = self.apply(plan)
            outcome = summary.outcome
            return summary
        except SimulatedCrash:
            outcome, error_text = "crashed", "simulated crash"
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


def _id_key(side: str) -> str:
    return {"servicenow": "servicenow_id", "jira": "jira_key"}[side]


def _comment_key(side: str) -> str:
    return {"servicenow": "servicenow_comment_id", "jira": "jira_comment_id"}[side]


def _one_line(error: BaseException | str) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())
