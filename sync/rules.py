"""The rules engine: categorization, ITIL prioritisation and escalation, as pure functions.

Contract:
- :func:`load_rules` reads a rules file (format: :mod:`sync.rules_model`) into
  a :class:`RuleSet`; any problem is :class:`sync.rules_model.RulesFileError`,
  one line ``<file>: rule '<name>': <reason>``. Rules compile once; applying
  them does no I/O, reads no clock and no global configuration.
- :func:`evaluate` ``(incident, rules, now, overridden) -> Outcome`` runs the
  rules in file order on the incident, each seeing what the ones before it
  set; ``stop`` ends the pass. Passes repeat until another pass could change
  nothing (no rule looked at a field that a rule at or after it then changed),
  so the result is a fixed point: applying the rules to their own output
  changes nothing (idempotent) and the same input always gives the same output.
  A set of rules that keeps undoing itself stops after ``len(rules) + 2``
  passes with ``Outcome.unstable`` naming the rules still changing things.
- Actions: ``category``/``subcategory``/``assignment_group`` set text;
  ``impact``/``urgency`` set their value and the priority the ITIL matrix
  gives for the result; ``priority`` sets the priority explicitly (it wins
  over the matrix); ``add_labels`` adds labels (never removes one);
  ``escalate`` raises ``escalation`` to a level, never lowers it, and when it
  raises it adds one internal note addressed to the manager group (the rule's
  ``notify``, else the file's ``[escalation] manager_group``), whose id
  ``rules:<rule>:escalation-<level>`` is never added twice.
- ``overridden`` holds ``(rule name, field)`` pairs: a person changed that
  field after the rule set it, so the rule no longer sets it (the person wins).
  :func:`overridden_by_people` finds them from the firings recorded for a link
  and the incident as it now is; storing those firings per link is the
  caller's job.
- Every change is a :class:`RuleFiring` (rule, field, old, new), net of the
  passes: a field whose final value is its original value has no firing.
  ``internal_note`` firings carry the note's text.
- :func:`apply_rules` is the engine's entry point: ``(incident, firings)``.
- :func:`next_due` tells when the rules would next change an incident (their
  own fixed point) by time alone: the first instant an age threshold or SLA
  target passes after which evaluating again fires something; None if never.
  The engine stores it per link and plans the pair again then, unchanged or not.
- :func:`with_notes` marks notes already written (their ids, recorded per link)
  as present, so a rule never adds the same note again.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from mappings.model import (
    Comment,
    Escalation,
    Impact,
    Incident,
    Priority,
    Urgency,
    Visibility,
    construct_trusted,
    copy_updated,
    itil_priority,
)
from sync.rules_conditions import (
    _MATRIX,
    PRIORITY_READS,
    Always,
    Condition,
    SlaTargets,
    View,
    compile_condition,
    compile_holds,
    field_test,
)
from sync.rules_model import (
    ActionSpec,
    RulesFile,
    RulesFileError,
    RuleSpec,
    parse_duration,
    parse_rules_file,
    validation_error,
)

NOTE_AUTHOR = "incident-sync rules"
NOTE_FIELD = "internal_note"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LEVELS = {"moderate": 1, "high": 2, "overdue": 3}


class RuleFiring(NamedTuple):
    """Rule ``rule`` changed ``field`` from ``old`` to ``new`` (JSON-ready values).

    Immutable; a named tuple because a pass makes one per change and a frozen
    dataclass costs several times as much to build (the rules' hot path).
    """

    rule: str
    field: str
    old: Any
    new: Any
    # The id of the internal note an ``internal_note`` firing added (else None).
    note_id: str | None = None

    def describe(self) -> str:
        return f"rule {self.rule!r} set {self.field}: {self.old!r} -> {self.new!r}"

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "field": self.field, "old": self.old, "new": self.new}


# RuleFiring((rule, field, old, new, note_id)) as the named tuple's own __new__ builds
# it (tuple.__new__ on the class), without that Python-level frame: a pass makes one
# per change, and a firing incident several.
_firing = partial(tuple.__new__, RuleFiring)


@dataclass(frozen=True)
class Rule:
    """One compiled rule: a condition and what to set when it holds."""

    name: str
    when: Condition
    sets: tuple[tuple[str, Any], ...] = ()
    add_labels: tuple[str, ...] = ()
    escalate: Escalation | None = None
    notify: str | None = None
    stop: bool = False
    description: str = ""
    # What the condition reads, and what the actions write or read to decide: the
    # engine looks at a rule again only when another rule changed one of these.
    reads: frozenset[str] = frozenset()
    touches: frozenset[str] = frozenset()
    # Derived from the above once (read on every firing): see __post_init__.
    sets_priority: bool = field(init=False, repr=False, compare=False)
    note_id: str | None = field(init=False, repr=False, compare=False)
    note_head: str | None = field(init=False, repr=False, compare=False)
    # The condition as one generated function (what when.holds answers, one call).
    holds: Callable[[View, datetime | None], bool] = field(
        init=False, repr=False, compare=False)
    # Are the labels it adds all plain text (their JSON is themselves)?
    text_labels: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "holds", compile_holds(self.when))
        object.__setattr__(self, "text_labels",
                           all(label.__class__ is str for label in self.add_labels))
        # Does the rule set the priority explicitly (then it wins over the matrix)?
        explicit = "priority" in self.touches and any(n == "priority" for n, _ in self.sets)
        object.__setattr__(self, "sets_priority", explicit)
        level = self.escalate
        object.__setattr__(self, "note_id", None if level is None else _note_id(self, level))
        object.__setattr__(self, "note_head", None if level is None else _note_head(self, level))


@dataclass(frozen=True)
class RuleSet:
    """A loaded rules file: the rules in order, SLA targets, the manager group."""

    rules: tuple[Rule, ...] = ()
    sla: Mapping[int, tuple[timedelta, timedelta]] = field(default_factory=dict)
    manager_group: str | None = None
    source: str = ""

    def groups(self) -> list[str]:
        """Every group the rules name (for an online check that they exist)."""
        return rule_groups(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Any:
        return iter(self.rules)


def rule_groups(rules: Iterable[Rule]) -> list[str]:
    """The groups ``rules`` assign to or notify, in file order, each once."""
    found: list[str] = []
    for rule in rules:
        for name, value in rule.sets:
            if name == "assignment_group" and value not in found:
                found.append(value)
        if rule.notify and rule.notify not in found:
            found.append(rule.notify)
    return found


@dataclass
class Match:
    """A rule that fired in the last pass, why, and what it changed or was kept from."""

    rule: str
    reason: str
    changed: list[str] = field(default_factory=list)
    kept_by_person: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    incident: Incident
    firings: list[RuleFiring]
    matches: list[Match] = field(default_factory=list)
    passes: int = 0
    unstable: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- loading


def _actions(spec: ActionSpec) -> tuple[tuple[tuple[str, Any], ...], Escalation | None]:
    """Validated actions as (field, typed value) pairs, in a fixed order; ValueError if not."""
    sets: list[tuple[str, Any]] = []
    for name in ("category", "subcategory", "assignment_group"):
        value = getattr(spec, name)
        if value is not None:
            if not value.strip():
                raise ValueError(f"then.{name}: empty (leave the key out instead)")
            sets.append((name, value))
    if spec.impact is not None:
        sets.append(("impact", Impact(spec.impact)))
    if spec.urgency is not None:
        sets.append(("urgency", Urgency(spec.urgency)))
    if spec.priority is not None:
        if spec.impact is not None and spec.urgency is not None:
            matrix = itil_priority(spec.impact, spec.urgency)
            if matrix != spec.priority:
                # ServiceNow computes priority from impact x urgency: the pair would
                # never hold there, and the sync would fight over it every run.
                raise ValueError(
                    f"contradiction: then sets impact {spec.impact} and urgency"
                    f" {spec.urgency} (priority {int(matrix)} by the ITIL matrix) and"
                    f" priority {spec.priority}")
        sets.append(("priority", Priority(spec.priority)))
    level = None
    if spec.escalate is not None:
        level = Escalation(_LEVELS[spec.escalate] if isinstance(spec.escalate, str)
                           else spec.escalate)
    if spec.notify is not None and level is None:
        raise ValueError("then.notify: only goes with escalate (it names who the"
                         " escalation note is for)")
    if not sets and not spec.add_labels and level is None and not spec.stop:
        raise ValueError("then: does nothing (set a field, add_labels, escalate or stop)")
    return tuple(sets), level


def _never_raises(spec: RuleSpec, level: Escalation) -> bool:
    """Does the rule's own condition demand an escalation at or above what it escalates to?

    Only the escalation tests at the top of ``when`` (or of its ``all``) decide;
    a rule that can never raise the level contradicts itself.
    """
    when = spec.when
    if when is None:
        return False
    tests = [t for t in (when.all if when.all is not None else [when])
             if t.field == "escalation"]
    compiled = [field_test(t, set(t.set_keys())) for t in tests]
    return not any(
        all(c.holds(View(Incident(), {"escalation": current}), None) for c in compiled)
        for current in Escalation if current < level)


def compile_rule(spec: RuleSpec, sla: SlaTargets, manager_group: str | None) -> Rule:
    when = compile_condition(spec.when, sla) if spec.when is not None else Always()
    sets, level = _actions(spec.then)
    if level is not None:
        if not (spec.then.notify or manager_group):
            raise ValueError("then.escalate: no one to notify: set notify here or"
                             " [escalation] manager_group")
        if _never_raises(spec, level):
            raise ValueError(f"contradiction: escalates to {level.name.lower()} but only"
                             " fires when escalation is already at least that high")
    # Labels, escalation and notes only grow (added, raised, never removed): another
    # rule's change to them never makes this rule's action do something new.
    touches = {name for name, _ in sets}
    if touches & {"impact", "urgency"}:
        touches |= PRIORITY_READS
    return Rule(
        name=spec.name, when=when, sets=sets, add_labels=tuple(spec.then.add_labels or ()),
        escalate=level, notify=spec.then.notify or manager_group if level is not None else None,
        stop=spec.then.stop, description=spec.description, reads=when.reads,
        touches=frozenset(touches),
    )


def build_ruleset(data: RulesFile, source: str) -> RuleSet:
    """Compile a validated file; RulesFileError naming the rule on the first problem."""
    sla: dict[int, tuple[timedelta, timedelta]] = {}
    for level in range(1, 6):
        target = getattr(data.sla, f"P{level}")
        if target is not None:
            response, resolution = parse_duration(target.response), parse_duration(
                target.resolution)
            if response > resolution:
                raise RulesFileError(f"{source}: [sla] P{level}: response target"
                                     f" {target.response} is after resolution target"
                                     f" {target.resolution}")
            sla[level] = (response, resolution)
    manager = data.escalation.manager_group
    rules: list[Rule] = []
    seen: set[str] = set()
    for spec in data.rule:
        if spec.name in seen:
            raise RulesFileError(f"{source}: rule {spec.name!r}: a second rule has this name"
                                 " (names trace firings, so they must be unique)")
        seen.add(spec.name)
        try:
            rules.append(compile_rule(spec, sla, manager))
        except ValueError as error:
            raise RulesFileError(f"{source}: rule {spec.name!r}: {error}") from None
    return RuleSet(tuple(rules), sla, manager, source)


def loads_rules(text: str, source: str = "rules") -> RuleSet:
    """:func:`load_rules` for TOML text already in hand (tests, previews)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RulesFileError(f"{source}: not valid TOML: {error}") from None
    try:
        data = RulesFile.model_validate(raw)
    except ValidationError as error:
        raise validation_error(source, raw, error) from None
    return build_ruleset(data, source)


def load_rules(path: Path | str) -> RuleSet:
    """Read, validate and compile a rules file (see the module contract)."""
    path = Path(path)
    data, _raw = parse_rules_file(path)
    return build_ruleset(data, str(path))


# --------------------------------------------------------------------------- applying


def _json(value: Any) -> Any:
    kind = value.__class__
    if kind is str or value is None:   # most values: asked first (a hot path)
        return value
    if isinstance(value, Enum):
        return value._value_   # what .value returns, without the descriptor's cost
    if isinstance(value, list):
        return [v if v.__class__ is str else _json(v) for v in value]
    return value


def _note_id(rule: Rule, level: Escalation) -> str:
    return f"rules:{rule.name}:escalation-{int(level)}"


def _note_head(rule: Rule, level: Escalation) -> str:
    return f"For {rule.notify}: escalated to {level.name.lower()} by rule {rule.name!r} because "


def _note(rule: Rule, level: Escalation, reason: str, now: datetime) -> Comment:
    # Every value is built here and valid by construction: skip validation (hot path).
    own = level is rule.escalate
    return construct_trusted(Comment, {
        "id": rule.note_id if own else _note_id(rule, level),
        "author": NOTE_AUTHOR,
        "body": f"{rule.note_head if own else _note_head(rule, level)}{reason}.",
        "created": now,
        "visibility": Visibility.INTERNAL,
    })


def _change(rule: Rule, view: View, name: str, new: Any, events: list[RuleFiring],
            match: Match | None) -> None:
    """Set ``name`` to ``new`` in the view, as an event of ``rule`` (nothing if it holds it)."""
    old = view.get(name)
    if old == new:
        return
    events.append(_firing((rule.name, name, _json(old), _json(new), None)))
    view.values[name] = new   # view.set, inlined
    view.changes[name] = new
    if match is not None:
        match.changed.append(name)


def _person_wins(rule: Rule, name: str, overridden: Collection[tuple[str, str]],
                 match: Match | None) -> bool:
    # Called only when ``overridden`` holds something (the callers test that first:
    # most incidents have no person's edit to respect, and a call costs).
    if (rule.name, name) in overridden:
        if match is not None:
            match.kept_by_person.append(name)
        return True
    return False


def note_head(body: str) -> str:
    """The part of a rule note's text that never changes between runs (who it is for,
    the level, the rule): a note already on a record is recognised by it, whatever
    reason (an age, say) the text gave."""
    return body.split(" because ", 1)[0]


def _run_rule(rule: Rule, view: View, now: datetime | None, stamp: datetime,
              overridden: Collection[tuple[str, str]], events: list[RuleFiring],
              explain: bool) -> Match | None:
    """Apply one rule whose condition holds; record its changes as events."""
    reason = (rule.when.explain(view, now) or "") if explain else ""
    match = Match(rule.name, reason) if explain else None
    values = view.values
    for name, value in rule.sets:
        if overridden and _person_wins(rule, name, overridden, match):
            continue
        _change(rule, view, name, value, events, match)
        if name in ("impact", "urgency") and not rule.sets_priority:
            _change(rule, view, "priority", _MATRIX[values["impact"], values["urgency"]],
                    events, match)
    added = rule.add_labels
    changes = view.changes
    if added and not (overridden and _person_wins(rule, "labels", overridden, match)):
        held = values["labels"]
        missing: list[str] | tuple[str, ...]
        if held:
            missing = []
            for label in added:
                if label not in held:
                    missing.append(label)
        else:
            missing = added   # nothing held: every label is missing
        if missing:
            # _change, inlined for the two actions most firings take (labels and
            # escalation): the new value always differs from the old here. When the
            # rule's labels are all text, the new list's JSON is the old one's plus them.
            old_json = _json(held) if held else []
            labels = [*held, *missing]
            events.append(_firing((rule.name, "labels", old_json, [*old_json, *missing]
                                   if rule.text_labels else _json(labels), None)))
            values["labels"] = changes["labels"] = labels
            if match is not None:
                match.changed.append("labels")
    level = rule.escalate
    if level is not None and not (
            overridden and _person_wins(rule, "escalation", overridden, match)) \
            and (old := values["escalation"]) < level:
        events.append(_firing((rule.name, "escalation", _json(old), level._value_, None)))
        values["escalation"] = changes["escalation"] = level
        if match is not None:
            match.changed.append("escalation")
        note_id = rule.note_id
        comments = values["comments"]
        for comment in comments:
            if comment.id == note_id:
                break
        else:
            why = reason or rule.when.explain(view, now) or "its condition holds"
            note = _note(rule, level, why, stamp)
            values["comments"] = changes["comments"] = [*comments, note]
            events.append(_firing((rule.name, NOTE_FIELD, None, note.body, note_id)))
    return match


def evaluate(
    incident: Incident,
    rules: Sequence[Rule] | RuleSet = (),
    now: datetime | None = None,
    overridden: Collection[tuple[str, str]] = frozenset(),
    *,
    explain: bool = False,
) -> Outcome:
    """Run ``rules`` to a fixed point (see the module contract). Pure."""
    return Outcome(*_evaluate(incident, rules, now, overridden, explain))


def _evaluate(
    incident: Incident,
    rules: Sequence[Rule] | RuleSet,
    now: datetime | None,
    overridden: Collection[tuple[str, str]],
    explain: bool,
) -> tuple[Incident, list[RuleFiring], list[Match], int, list[str]]:
    """:func:`evaluate`'s outcome as a tuple (apply_rules needs no Outcome)."""
    ordered = rules.rules if isinstance(rules, RuleSet) else tuple(rules)
    plan = _PLANS.get(id(ordered))
    if plan is None or plan.ordered is not ordered:
        plan = _plan(ordered)
    stamp = now or incident.updated_at or incident.opened_at or _EPOCH
    view = View(incident)
    events: list[RuleFiring] = []
    matches: dict[str, Match] = {}
    limit = len(ordered) + 2
    passes = 0
    changers: list[str] = []
    while passes < limit:
        passes += 1
        before = len(events)
        changed: list[tuple[int, str]] = []
        acted: list[int] = []
        for position, rule, holds, inert in plan.steps:
            if not holds(view, now):
                continue
            acted.append(position)
            mark = len(events)
            found = _run_rule(rule, view, now, stamp, overridden, events, explain)
            if not inert and len(events) > mark:
                for event in events[mark:]:
                    changed.append((position, event.field))
            if found is not None:
                _remember(matches, found)
            if rule.stop:
                break
        if not changed or not plan.another_pass(changed, acted):
            changers = []
            break
        changers = sorted({e.rule for e in events[before:]})
    changes = view.changes
    if not changes:
        return incident, _net(events, incident, view), list(matches.values()), passes, changers
    # One pass of rules that each change a field at most once: no (rule, field) twice,
    # so netting only drops the fields back at their original value (see _net).
    firings = _net(events, incident, view, passes == 1 and not plan.repeats)
    # The changes are the rules' own values, valid by construction (as model_copy assumes).
    return (copy_updated(incident, changes), firings, list(matches.values()), passes,
            changers)


class _Plan:
    """What :func:`evaluate` needs of one rule list, worked out once per list.

    ``steps``: (position, rule, its condition's ``holds``, inert) in order, so a
    pass makes no look-ups; inert: nothing the rule can change is read by a rule
    at or before it or touched by an earlier one, so its changes never call for
    another pass (the SLA rules at the end of a file, say) and need no noting.
    ``another_pass`` answers from tables built here: which changes (position of
    the changer, field) a rule at or before it read, and which rules before a
    position touch a field.
    """

    def __init__(self, ordered: tuple[Rule, ...]) -> None:
        self.ordered = ordered
        first: dict[str, int] = {}
        for index, rule in enumerate(ordered):
            for name in rule.reads:
                first.setdefault(name, index)
        self.first_reader = first
        # Can a rule record two changes of one field in one run of it? (Impact and
        # urgency set together move the matrix's priority twice.) See _net.
        self.repeats = any(_repeats(rule) for rule in ordered)
        self._effects: dict[tuple[int, str], tuple[bool, frozenset[int]]] = {}
        self.steps = tuple(
            (position, rule, rule.holds,
             all(self._effect(position, name) == (False, frozenset())
                 for name in _changeable(rule)))
            for position, rule in enumerate(ordered))

    def _effect(self, position: int, changed_name: str) -> tuple[bool, frozenset[int]]:
        """(does a rule at or before ``position`` read the field, the earlier rules
        whose actions touch it), for a change of ``changed_name`` at ``position``."""
        key = (position, changed_name)
        held = self._effects.get(key)
        if held is None:
            name = "comments" if changed_name == NOTE_FIELD else changed_name
            # Impact and urgency move the priority with them (the ITIL matrix): a rule
            # that set the priority explicitly must get to see that too.
            names = (name, "priority") if name in ("impact", "urgency") else (name,)
            read = any(self.first_reader.get(one, position + 1) <= position for one in names)
            touching = frozenset(index for index in range(position)
                                 if any(one in self.ordered[index].touches for one in names))
            held = self._effects[key] = (read, touching)
        return held

    def another_pass(self, changed: list[tuple[int, str]], acted: list[int]) -> bool:
        """Could a second pass differ from this one? Only through a rule that looked at a
        field before a rule at or after it changed it: a field its condition reads, or,
        for a rule that acted before the changer, a field its actions set. Otherwise
        every rule would see what it saw and do what it did (now no-ops): a fixed point.
        """
        effects = self._effects
        for entry in changed:
            held = effects.get(entry)
            read, touching = held if held is not None else self._effect(*entry)
            if read:
                return True
            if touching:
                for index in acted:
                    if index in touching:
                        return True
        return False


def _repeats(rule: Rule) -> bool:
    """Can one run of ``rule`` record two events of one field (see :func:`_run_rule`)?"""
    names = [name for name, _ in rule.sets]
    if not rule.sets_priority:
        names += ["priority" for name in names if name in ("impact", "urgency")]
    if rule.add_labels:
        names.append("labels")
    if rule.escalate is not None:
        names += ["escalation", NOTE_FIELD]
    return len(names) != len(set(names))


def _changeable(rule: Rule) -> set[str]:
    """Every field (event name) :func:`_run_rule` may record a change of for ``rule``."""
    names = {name for name, _ in rule.sets}
    if names & {"impact", "urgency"}:
        names.add("priority")   # the ITIL matrix's
    if rule.add_labels:
        names.add("labels")
    if rule.escalate is not None:
        names |= {"escalation", NOTE_FIELD}
    return names


_PLANS: dict[int, _Plan] = {}


def _plan(ordered: tuple[Rule, ...]) -> _Plan:
    """The :class:`_Plan` of a rule list (kept per list: evaluate runs per incident)."""
    held = _PLANS.get(id(ordered))
    if held is not None and held.ordered is ordered:
        return held
    if len(_PLANS) >= 64:
        _PLANS.clear()
    plan = _PLANS[id(ordered)] = _Plan(ordered)
    return plan


def _remember(matches: dict[str, Match], found: Match) -> None:
    """Keep one Match per rule over all passes: its first reason, everything it did."""
    held = matches.setdefault(found.rule, Match(found.rule, found.reason))
    held.changed.extend(f for f in found.changed if f not in held.changed)
    held.kept_by_person.extend(f for f in found.kept_by_person if f not in held.kept_by_person)


def _net(events: list[RuleFiring], incident: Incident, view: View,
         once: bool = False) -> list[RuleFiring]:
    """One firing per (rule, field) whose field really changed: first old, last new;
    the last firing of a field is the rule that gave it its final value.

    ``once``: no (rule, field) has two events. Then, when every field changed holds
    a value other than its original one, every event stands as it is: the list.
    """
    if not events:
        return []
    original = incident.__dict__
    if once:
        for name, value in view.changes.items():
            if name == "comments":
                continue   # notes: NOTE_FIELD events, never netted away
            if original[name] == value or (name == "priority" and original[name] is None):
                break   # back at its original value (or the matrix's): the full netting
        else:
            return events
    unchanged: dict[str, bool] = {}
    merged: dict[tuple[str, str], RuleFiring] = {}
    last_rule: dict[str, str] = {}   # per field, the rule of its latest event
    final = view.values
    for event in events:
        rule, name, _old, new, note_id = event   # unpacked: cheaper than the properties
        if name != NOTE_FIELD:
            same = unchanged.get(name)
            if same is None:
                if name == "priority" and original["priority"] is None:
                    same = int(incident.effective_priority) == int(view.get("priority"))
                else:
                    same = original[name] == final[name]
                unchanged[name] = same
            if same:
                continue
        key = (rule, name)
        first = merged.get(key)
        if first is not None and last_rule.get(name) != rule:
            # Another rule changed the field in between: this firing moves after it, so
            # the last firing of a field is the rule that gave it its final value (r0
            # sets a, r1 sets b, a second pass r0 sets a again: r0's comes last).
            del merged[key]
        last_rule[name] = rule
        merged[key] = event if first is None else RuleFiring(rule, name, first[2], new, note_id)
    return list(merged.values())


def apply_rules(
    incident: Incident,
    rules: Sequence[Rule] | RuleSet = (),
    now: datetime | None = None,
    overridden: Collection[tuple[str, str]] = frozenset(),
) -> tuple[Incident, list[RuleFiring]]:
    """The incident after the rules, and what fired. Never mutates ``incident``."""
    result, firings, _matches, _passes, _changers = _evaluate(
        incident, rules, now, overridden, False)
    return result, firings


# The tools stamp whole seconds and the tests are strict (older than, not as old
# as): a rule is due this long after the instant its threshold is reached.
DUE_SLACK = timedelta(seconds=1)


def next_due(
    incident: Incident,
    rules: Sequence[Rule] | RuleSet,
    now: datetime,
    overridden: Collection[tuple[str, str]] = frozenset(),
) -> datetime | None:
    """When the rules would next change ``incident`` by time alone (see the contract).

    ``incident`` is the rules' own result at ``now`` (a fixed point), so any
    firing at a later instant is a change of verdict. Only instants where a
    time test can flip are tried, in order, so the answer is exact and cheap.
    """
    ordered = tuple(rules)
    view = View(incident)
    candidates = sorted({at + DUE_SLACK for rule in ordered for at in rule.when.instants(view)
                         if at + DUE_SLACK > now})
    for at in candidates:
        if evaluate(incident, ordered, at, overridden).firings:
            return at
    return None


def owed_notes(
    incident: Incident,
    rules: Sequence[Rule] | RuleSet,
    now: datetime | None,
    recorded: Iterable[RuleFiring],
    overridden: Collection[tuple[str, str]] = frozenset(),
) -> list[tuple[RuleFiring, Comment]]:
    """Notes still owed for escalations the rules made on earlier runs.

    ``recorded`` holds a link's firings: an escalation a rule made is recorded
    with the pair's commit, its note only once the note is on the record. A
    rule whose escalation is recorded but whose note is not (the note's write
    failed) owes the note while the incident still holds that level and no
    person has lowered it; ``incident`` is the rules' result (it holds the notes
    of this evaluation and placeholders for the recorded ones).
    """
    recorded = list(recorded)
    raised = {f.rule for f in recorded if f.field == "escalation"}
    written = {f.note_id for f in recorded if f.note_id}
    held = {c.id for c in incident.comments}
    view = View(incident)
    stamp = now or incident.updated_at or incident.opened_at or _EPOCH
    owed: list[tuple[RuleFiring, Comment]] = []
    for rule in rules:
        level = rule.escalate
        if level is None or rule.name not in raised or (rule.name, "escalation") in overridden:
            continue
        note_id = f"rules:{rule.name}:escalation-{int(level)}"
        if note_id in written or note_id in held or view.values["escalation"] < level:
            continue
        note = _note(rule, level, rule.when.explain(view, now) or "its condition held", stamp)
        owed.append((RuleFiring(rule.name, NOTE_FIELD, None, note.body, note_id), note))
    return owed


def with_notes(incident: Incident, note_ids: Iterable[str]) -> Incident:
    """``incident`` holding placeholders for the rule notes ``note_ids`` already written."""
    held = {c.id for c in incident.comments}
    missing = [n for n in note_ids if n not in held]
    if not missing:
        return incident
    stamp = incident.updated_at or incident.opened_at or _EPOCH
    placeholders = [Comment.model_construct(id=note_id, author=NOTE_AUTHOR, body="",
                                            created=stamp, visibility=Visibility.INTERNAL)
                    for note_id in missing]
    return incident.model_copy(update={"comments": [*incident.comments, *placeholders]})


def overridden_by_people(
    recorded: Iterable[RuleFiring], incident: Incident
) -> frozenset[tuple[str, str]]:
    """(rule, field) pairs whose value a person changed after the rule set it.

    ``recorded`` are the firings stored for a link (the latest per rule and
    field); ``incident`` is the merged incident before the rules run. A field
    no longer holding what the rule set was changed by someone else: from then
    on the rule leaves it alone. Labels count as changed when a label the rule
    added is gone; escalation when it is below what the rule raised it to.
    """
    view = View(incident)
    found: set[tuple[str, str]] = set()
    for firing in recorded:
        if firing.field == NOTE_FIELD:
            continue
        now_held = _json(view.get(firing.field))
        if firing.field == "labels":
            added = set(firing.new or ()) - set(firing.old or ())
            changed = not added <= set(now_held or ())
        elif firing.field == "escalation":
            changed = now_held < firing.new
        else:
            changed = now_held != firing.new
        if changed:
            found.add((firing.rule, firing.field))
    return frozenset(found)
