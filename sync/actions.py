"""The action objects a plan is made of, and the plan itself.

Contract:
- Building a plan writes nothing anywhere; every write the engine will make is
  one of these objects, so ``plan`` prints them and ``run`` executes them
  (STYLE habit 7). Each has ``describe()`` (one human line) and ``to_json()``
  (a JSON-ready dict with a stable key order and a ``"action"`` tag).
- Actions are grouped per pair (:class:`PairPlan`): that is the unit that
  commits or fails together. Values shown are neutral, JSON-ready values.
- Sides are named by their string value; nothing here knows a vendor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.base import RemoteRecord
from sync.merge import Conflict
from sync.rules import RuleFiring
from sync.state import Link

_EXCERPT = 60


def side_title(side: str) -> str:
    """How humans name a side in plans, attribution lines and summaries."""
    return {"servicenow": "ServiceNow", "jira": "Jira"}.get(str(side), str(side))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def excerpt(text: str) -> str:
    """The first line of ``text``, cut for one-line output."""
    line = " ".join(text.split())
    return line if len(line) <= _EXCERPT else line[: _EXCERPT - 1] + "…"


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.field}: {_short(self.old)} -> {_short(self.new)}"

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass
class CreateRecord:
    """Create the record on ``target_side`` from a record of ``source_side``."""

    source_side: str
    source_id: str
    source_display: str
    target_side: str
    title: str
    fields: dict[str, Any]           # target vendor fields (may hold user/group refs)
    losses: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (f"create in {side_title(self.target_side)} from "
                f"{side_title(self.source_side)} {self.source_display}: "
                f"{excerpt(self.title)!r}")
        if self.losses:
            text += f" (lossy: {', '.join(self.losses)})"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "create",
            "source_side": self.source_side,
            "source_id": self.source_id,
            "source_display": self.source_display,
            "target_side": self.target_side,
            "title": self.title,
            "fields": self.fields,
            "losses": self.losses,
        }


@dataclass(frozen=True)
class AdoptRecord:
    """Link two existing records (one carries the other's id); nothing is created."""

    ids: dict[str, str]
    displays: dict[str, str]
    reason: str

    def describe(self) -> str:
        sides = " <-> ".join(f"{side_title(side)} {self.displays[side]}" for side in self.ids)
        return f"link existing {sides} ({self.reason})"

    def to_json(self) -> dict[str, Any]:
        return {"action": "adopt", "ids": self.ids, "displays": self.displays,
                "reason": self.reason}


@dataclass
class UpdateFields:
    """Write these neutral fields (as ``fields``, the vendor form) to one record."""

    side: str
    record_id: str
    display: str
    changes: list[FieldChange]
    fields: dict[str, Any]
    expected_version: str | None = None
    losses: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        for change in self.changes:
            text = change.describe()
            if change.field == "status":
                text += " (status transition)"
            parts.append(text)
        return f"update {side_title(self.side)} {self.display}: " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "update",
            "side": self.side,
            "record_id": self.record_id,
            "display": self.display,
            "changes": [change.to_json() for change in self.changes],
            "fields": self.fields,
            "losses": self.losses,
        }


@dataclass
class AddComment:
    """Copy one comment to the other side, with its own visibility."""

    source_side: str
    source_comment_id: str
    target_side: str
    target_display: str
    visibility: str
    body: Any                        # vendor-format body with the attribution line
    text: str                        # the neutral text, for humans
    # The copy is already there (an interrupted run made it): link it, write nothing.
    existing_id: str | None = None

    def describe(self) -> str:
        if self.existing_id is not None:
            return (f"recognise the copy of a {self.visibility} comment already in "
                    f"{side_title(self.target_side)}: {excerpt(self.text)!r}")
        return (f"copy {self.visibility} comment to {side_title(self.target_side)}: "
                f"{excerpt(self.text)!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "action": "comment",
            "source_side": self.source_side,
            "source_comment_id": self.source_comment_id,
            "target_side": self.target_side,
            "target_display": self.target_display,
            "visibility": self.visibility,
            "text": self.text,
            "existing_id": self.existing_id,
        }


@dataclass
class AddNote:
    """Write an internal note a rule added (an escalation addressed to managers) to one
    side, once: its firing is recorded in its own commit right after the write, so a
    note whose write failed stays owed and one written is never written again. The
    comment sync then copies it to the other side like any internal note."""

    side: str
    note_id: str                     # rules:<rule>:escalation-<level>
    body: Any                        # vendor-format body
    text: str                        # the neutral text, for humans
    firing: RuleFiring               # recorded once the note is on the record
    # Already on the record (a write whose reply was lost): recorded, not written.
    existing: bool = False

    def describe(self) -> str:
        if self.existing:
            return (f"recognise the internal note already in {side_title(self.side)}: "
                    f"{excerpt(self.text)!r}")
        return f"add internal note to {side_title(self.side)}: {excerpt(self.text)!r}"

    def to_json(self) -> dict[str, Any]:
        return {"action": "note", "side": self.side, "note_id": self.note_id,
                "visibility": "internal", "text": self.text, "existing": self.existing}


@dataclass
class MarkForeignId:
    """Make a record carry the id of its counterpart (the back-link), with a version check.

    ``foreign_id`` is None in a plan when the counterpart is a copy still to be
    created: the run fills in the new id. ``expected_version`` is the record's
    version as planned; a write of the same pair to that record before this one
    moves it, and the run checks against the version that write left.
    """

    side: str
    record_id: str
    display: str
    foreign_side: str
    foreign_id: str | None
    foreign_display: str
    expected_version: str | None

    def describe(self) -> str:
        other = (f"{side_title(self.foreign_side)} {self.foreign_display}"
                 if self.foreign_id is not None
                 else f"its new copy in {side_title(self.foreign_side)}")
        return f"mark {side_title(self.side)} {self.display} with the id of {other}"

    def to_json(self) -> dict[str, Any]:
        return {"action": "mark", "side": self.side, "record_id": self.record_id,
                "display": self.display, "foreign_side": self.foreign_side,
                "foreign_id": self.foreign_id, "expected_version": self.expected_version}


@dataclass(frozen=True)
class ReadBack:
    """After the pair's writes: read both records once and decide the pair again.

    What a tool made of the writes (a cut title, a priority it derived) becomes
    the snapshot or, where it is news for the other side, one more update of
    the pair in the same run (each with its version check). Never repeated.
    """

    ids: dict[str, str | None]
    displays: dict[str, str]

    def describe(self) -> str:
        return ("then read both records back: what the tools made of these writes is "
                "kept, and what they derived from them travels in this run")

    def to_json(self) -> dict[str, Any]:
        return {"action": "read-back", "ids": dict(self.ids)}


def _per_side(values: dict[str, Any]) -> str:
    """``ServiceNow 'a', Jira 'b'``: one value per side, shortened for a plan line."""
    return ", ".join(f"{side_title(side)} {_short(value)}" for side, value in values.items())


@dataclass(frozen=True)
class RecordConflict:
    """Both sides changed a field; how it was settled. Always recorded."""

    conflict: Conflict
    displays: dict[str, str]

    def describe(self) -> str:
        c = self.conflict
        values, bases = _per_side(c.values), _per_side(c.base)
        outcome = ("both left as they are (manual)" if c.resolution == "manual"
                   else f"{side_title(c.resolution)} wins")
        return (f"conflict on {c.field}: {values} (was {bases}); {outcome} "
                f"by {c.policy}")

    def to_json(self) -> dict[str, Any]:
        c = self.conflict
        return {
            "action": "conflict",
            "field": c.field,
            "values": dict(c.values),
            "base": dict(c.base),
            "resolution": c.resolution,
            "policy": c.policy,
            "displays": self.displays,
        }


@dataclass(frozen=True)
class ReportOrphan:
    """A linked or marked record whose counterpart is gone or out of scope. Never deleted."""

    side: str
    record_id: str
    display: str
    reason: str

    def describe(self) -> str:
        return f"orphan {side_title(self.side)} {self.display}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"action": "orphan", "side": self.side, "record_id": self.record_id,
                "display": self.display, "reason": self.reason}


@dataclass(frozen=True)
class ReportProblem:
    """A record that cannot be synced this run (it goes to the retry queue)."""

    side: str
    record_id: str
    display: str
    error: str

    def describe(self) -> str:
        return f"cannot sync {side_title(self.side)} {self.display}: {self.error}"

    def to_json(self) -> dict[str, Any]:
        return {"action": "problem", "side": self.side, "record_id": self.record_id,
                "display": self.display, "error": self.error}


@dataclass(frozen=True)
class SettleConflict:
    """An open conflict closes: both sides agree now, or a later edit on one side settles it."""

    conflict: Conflict
    displays: dict[str, str]

    def describe(self) -> str:
        c = self.conflict
        values = _per_side(c.values)
        how = ("both sides agree now" if c.resolution not in c.values
               else f"a later edit in {side_title(c.resolution)} wins")
        return f"conflict on {c.field} settled: {how} ({values})"

    def to_json(self) -> dict[str, Any]:
        c = self.conflict
        return {
            "action": "settle-conflict",
            "field": c.field,
            "values": dict(c.values),
            "resolution": c.resolution,
            "policy": c.policy,
            "displays": self.displays,
        }


@dataclass
class PairPlan:
    """Everything one pair needs: what to write, in order, and what to commit after.

    The writes of a pair are, in this order: the create, the updates, the marks,
    the comments, then the read-back (which may add the settle step's writes).
    """

    ids: dict[str, str | None]                  # side -> record id (None: not created yet)
    displays: dict[str, str]
    records: dict[str, RemoteRecord | None]
    create: CreateRecord | None = None
    adopt: AdoptRecord | None = None
    updates: list[UpdateFields] = field(default_factory=list)
    marks: list[MarkForeignId] = field(default_factory=list)
    comments: list[AddComment] = field(default_factory=list)
    read_back: ReadBack | None = None
    conflicts: list[RecordConflict] = field(default_factory=list)
    settled: list[SettleConflict] = field(default_factory=list)   # open ones now agreed
    firings: list[RuleFiring] = field(default_factory=list)
    notes: list[AddNote] = field(default_factory=list)
    # When the pair's rules next change it by time alone (stored with the link).
    rules_due_at: datetime | None = None
    # What each side will hold after the writes, as that side reads it back.
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    hash: str | None = None
    intent_id: int | None = None                # a pending create intent this pair settles
    # The pair's link as last read or committed (None: no link when planned); its
    # commit updates that link by id instead of looking it up by record ids.
    link: Link | None = None

    @property
    def label(self) -> str:
        return " <-> ".join(f"{side_title(side)} {display}"
                            for side, display in self.displays.items() if display)

    @property
    def writes(self) -> bool:
        """Does this pair write to a tool (anything but recognising comment copies)?"""
        return bool(self.create or self.updates or self.marks
                    or any(not n.existing for n in self.notes)
                    or any(c.existing_id is None for c in self.comments))

    def actions(self) -> list[Any]:
        items: list[Any] = []
        if self.create is not None:
            items.append(self.create)
        if self.adopt is not None:
            items.append(self.adopt)
        items.extend(self.conflicts)
        items.extend(self.settled)
        items.extend(self.firings)
        items.extend(self.updates)
        items.extend(self.notes)
        items.extend(self.marks)
        items.extend(self.comments)
        if self.read_back is not None:
            items.append(self.read_back)
        return items


@dataclass
class Plan:
    """What one run would do, computed without writing anything anywhere."""

    started: datetime
    pairs: list[PairPlan] = field(default_factory=list)
    orphans: list[ReportOrphan] = field(default_factory=list)
    problems: list[ReportProblem] = field(default_factory=list)
    pull_errors: dict[str, str] = field(default_factory=dict)
    watermarks: dict[str, datetime] = field(default_factory=dict)   # to set after apply
    pulled: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "creates": sum(1 for p in self.pairs if p.create is not None),
            "adoptions": sum(1 for p in self.pairs if p.adopt is not None),
            "updates": sum(len(p.updates) for p in self.pairs),
            "comments": sum(len(p.comments) for p in self.pairs),
            "notes": sum(len(p.notes) for p in self.pairs),
            "conflicts": sum(len(p.conflicts) for p in self.pairs),
            "rule_firings": sum(len(p.firings) for p in self.pairs),
            "orphans": len(self.orphans),
            "problems": len(self.problems) + len(self.pull_errors),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(),
            "counts": self.counts(),
            "pulled": self.pulled,
            "pull_errors": self.pull_errors,
            "pairs": [
                {"pair": {side: {"id": self.pair_id(p, side), "display": p.displays[side]}
                          for side in p.displays},
                 "actions": [a.to_json() for a in p.actions()]}
                for p in self.pairs if p.actions()
            ],
            "orphans": [o.to_json() for o in self.orphans],
            "problems": [p.to_json() for p in self.problems],
        }

    @staticmethod
    def pair_id(pair: PairPlan, side: str) -> str | None:
        return pair.ids.get(side)

    def describe(self) -> list[str]:
        """The plan as human lines: pair headers then indented actions."""
        lines: list[str] = []
        for side, error in self.pull_errors.items():
            lines.append(f"pull from {side_title(side)} failed: {error} "
                         "(no creates, watermarks kept)")
        for pair in self.pairs:
            actions = pair.actions()
            if not actions:
                continue
            lines.append(pair.label)
            lines.extend(f"  {a.describe()}" for a in actions)
        lines.extend(o.describe() for o in self.orphans)
        lines.extend(p.describe() for p in self.problems)
        return lines
