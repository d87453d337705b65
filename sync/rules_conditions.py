"""Rule conditions: a validated ``when`` table compiled into fast, pure tests.

Contract:
- :func:`compile_condition` turns a :class:`~sync.rules_model.ConditionSpec`
  into a :class:`Condition`, or raises ``ValueError`` with the reason a person
  needs (unknown field, a value the field cannot hold, a comparison on a text
  field, a table with no test or two, a test that can never hold).
- :func:`compile_holds` makes a condition's ``holds`` one generated function (what
  the rules engine calls per incident); it answers what ``holds`` answers.
- A condition reads a :class:`View` (the incident as the rules have changed it
  so far) and ``now``; ``holds`` answers yes/no, ``explain`` gives the reason it
  holds (``None`` when it does not), for ``rules test`` and escalation notes.
  Nothing here does I/O or reads the clock: time comes in as ``now``.
- Field tests: ``equals``/``in``/``not_in`` compare text case-insensitively and
  enumerations by value; on ``labels`` they ask whether the incident has the
  label(s). ``lt``/``lte``/``gt``/``gte`` compare numbers and exist only for
  ``impact``, ``urgency``, ``priority`` (1 is the most urgent: ``priority
  lte 2`` means P1 or P2) and ``escalation``. ``priority`` is the effective one:
  the one set, else the ITIL matrix's.
- ``text_contains`` matches whole words, case-insensitively, across title and
  description (or ``fields``): a hyphenated compound is one word, so
  "ransomware" does not match "ransomware-free" and "password" does not match
  "passwordless"; a trailing ``*`` asks for a prefix ("password*" matches
  "passwords"). Several words in a keyword match any spacing. Text tests first
  look for their words in the texts folded by :func:`fold_text` (any text, ASCII
  or not); only texts holding them run the regex, whose answer is the answer.
- SLA: ``response`` is breached when an incident still ``new`` is older than
  its priority's response target; ``resolution`` when an open one is older than
  its resolution target. An incident without ``opened_at``, or a priority
  without a target, breaches nothing.
"""

from __future__ import annotations

import re
import re._parser as _sre_parser  # the stdlib's own regex parser (required literals, below)
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import lru_cache
from typing import Any

from mappings.model import Escalation, Impact, Incident, Priority, Status, Urgency, itil_priority
from sync.rules_model import ConditionSpec, parse_duration

# Neutral fields a rule may test or set, and the type their values have.
ENUM_FIELDS: dict[str, type[Enum]] = {
    "status": Status, "impact": Impact, "urgency": Urgency, "priority": Priority,
    "escalation": Escalation,
}
NUMERIC_FIELDS = frozenset({"impact", "urgency", "priority", "escalation"})
TEXT_FIELDS = frozenset({
    "title", "description", "category", "subcategory", "assignment_group", "assignee",
    "caller", "resolution_code", "resolution_notes",
})
KNOWN_FIELDS = frozenset(ENUM_FIELDS) | TEXT_FIELDS | {"labels"}
DEFAULT_TEXT_FIELDS = ("title", "description")

SlaTargets = Mapping[int, tuple[timedelta, timedelta]]


class View:
    """The incident as the rules see it: the original plus what rules set so far.

    ``values`` is a shallow copy of the incident's field values (cheap, and reads
    stay plain dict look-ups); ``changes`` holds only what the rules set;
    ``lowered`` holds, per text field (and per tuple of fields, their texts joined by
    line breaks), (text, :func:`fold_text` of it): the text tests' prefilter folds
    each text once per incident.
    """

    __slots__ = ("changes", "incident", "lowered", "memo", "values")

    def __init__(self, incident: Incident, changes: dict[str, Any] | None = None) -> None:
        self.incident = incident
        self.values: dict[str, Any] = dict(incident.__dict__)
        self.changes: dict[str, Any] = {}
        self.memo: dict[int, bool] = {}
        self.lowered: dict[str | tuple[str, ...], tuple[str, str | None]] = {}
        if changes:
            for name, value in changes.items():
                self.set(name, value)

    def set(self, name: str, value: Any) -> None:
        self.values[name] = value
        self.changes[name] = value

    def get(self, name: str) -> Any:
        if name == "priority":
            values = self.values
            held = values["priority"]
            return held if held is not None else _MATRIX[values["impact"], values["urgency"]]
        try:
            return self.values[name]
        except KeyError:
            if name.startswith("custom."):
                return self.values["custom"].get(name[7:])
            raise


# The non-ASCII letters a case-insensitive regex takes for ASCII ones (every code
# point scanned with re; tests/test_rules_conditions.py scans them again): "İ" and
# "ı" match "i", the long s "ſ" matches "s", the Kelvin sign matches "k".
_ASCII_TWINS = (("\u0130", "i"), ("\u0131", "i"), ("\u017f", "s"), ("\u212a", "k"))


def fold_text(text: str) -> str:
    """``text`` as the substring prefilter reads it: lower-cased, and each non-ASCII
    letter a case-insensitive regex takes for an ASCII one replaced by that letter,
    one character for one (``str.lower`` alone turns "İ" into two, "i" and a
    combining dot). Where a regex (IGNORECASE or not) matches ASCII literal text,
    the folded text holds that text lower-cased, so a needle missing from it rules
    the match out, for any text."""
    if text.isascii():
        return text.lower()
    for twin, letter in _ASCII_TWINS:
        if twin in text:
            text = text.replace(twin, letter)
    return text.lower()


def joined_lower(view: View, fields: tuple[str, ...]) -> str:
    """``fields``' texts joined by line breaks and folded (:func:`fold_text`), once per
    incident: the joined prefilter of :class:`TextSearch`. Only for fields no rule
    sets (their texts hold for the whole evaluation)."""
    held = view.lowered.get(fields)
    if held is None:
        values = view.values
        if len(fields) == 2:   # title and description, most tests: no loop, no list
            first, second = values[fields[0]], values[fields[1]]
            text = (first + "\n" + second if second else first) if first else (second or "")
        else:
            texts = []
            for name in fields:
                held = values[name]
                if held:
                    texts.append(held)
            text = "\n".join(texts)
        held = view.lowered[fields] = (text, fold_text(text))
    return held[1]


# The ITIL matrix as a dict of members: the effective priority is read on every rule.
_MATRIX: dict[tuple[Any, Any], Priority] = {
    (impact, urgency): itil_priority(impact, urgency) for impact in Impact for urgency in Urgency}
_OPEN = frozenset({Status.NEW, Status.IN_PROGRESS, Status.ON_HOLD})

# Fields a rule action can change.
SETTABLE = frozenset({"category", "subcategory", "assignment_group", "impact", "urgency",
                      "priority", "labels", "escalation", "comments"})
# Fields whose value the effective priority depends on.
PRIORITY_READS = frozenset({"priority", "impact", "urgency"})


class Condition:
    """A compiled test. Subclasses override both methods consistently.

    ``reads`` names the fields the answer depends on: the engine uses it to know
    when a rule must be looked at again after another rule changed something.
    """

    reads: frozenset[str] = frozenset()

    def holds(self, view: View, now: datetime | None) -> bool:
        raise NotImplementedError

    def explain(self, view: View, now: datetime | None) -> str | None:
        raise NotImplementedError

    def instants(self, view: View) -> list[datetime]:
        """The instants at which this test's answer may flip by time alone (none for
        tests that do not read the clock)."""
        return []


class Always(Condition):
    """A rule without ``when`` fires on every incident."""

    def holds(self, view: View, now: datetime | None) -> bool:
        return True

    def explain(self, view: View, now: datetime | None) -> str | None:
        return "no condition (always)"


@dataclass(frozen=True)
class AllOf(Condition):
    parts: tuple[Condition, ...]

    def instants(self, view: View) -> list[datetime]:
        return [at for part in self.parts for at in part.instants(view)]

    @property
    def reads(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset().union(*(p.reads for p in self.parts))

    def holds(self, view: View, now: datetime | None) -> bool:
        for part in self.parts:   # a plain loop: no generator per call (hot path)
            if not part.holds(view, now):
                return False
        return True

    def explain(self, view: View, now: datetime | None) -> str | None:
        reasons = [part.explain(view, now) for part in self.parts]
        return None if any(r is None for r in reasons) else " and ".join(
            r for r in reasons if r is not None)


@dataclass(frozen=True)
class AnyOf(Condition):
    parts: tuple[Condition, ...]

    def instants(self, view: View) -> list[datetime]:
        return [at for part in self.parts for at in part.instants(view)]

    @property
    def reads(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset().union(*(p.reads for p in self.parts))

    def holds(self, view: View, now: datetime | None) -> bool:
        for part in self.parts:
            if part.holds(view, now):
                return True
        return False

    def explain(self, view: View, now: datetime | None) -> str | None:
        for part in self.parts:
            reason = part.explain(view, now)
            if reason is not None:
                return reason
        return None


@dataclass(frozen=True)
class Not(Condition):
    part: Condition
    text: str

    @property
    def reads(self) -> frozenset[str]:  # type: ignore[override]
        return self.part.reads

    def holds(self, view: View, now: datetime | None) -> bool:
        return not self.part.holds(view, now)

    def instants(self, view: View) -> list[datetime]:
        return self.part.instants(view)

    def explain(self, view: View, now: datetime | None) -> str | None:
        return None if self.part.holds(view, now) else f"not ({self.text})"


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


@dataclass(frozen=True)
class FieldTest(Condition):
    """``field`` against a set of values (equals/in/not_in) or a number (comparisons)."""

    field: str
    test: Callable[[Any], bool]
    text: str
    show_value: bool = True

    @property
    def reads(self) -> frozenset[str]:  # type: ignore[override]
        return PRIORITY_READS if self.field == "priority" else frozenset({self.field})

    def __post_init__(self) -> None:
        # A field other than the effective priority or a custom one is a plain look-up.
        object.__setattr__(self, "plain", self.field != "priority"
                           and not self.field.startswith("custom."))

    def holds(self, view: View, now: datetime | None) -> bool:
        field = self.field
        return self.test(view.values[field] if self.plain else view.get(field))

    def explain(self, view: View, now: datetime | None) -> str | None:
        value = view.get(self.field)
        if not self.test(value):
            return None
        if not self.show_value:
            return self.text
        shown = value.value if isinstance(value, Enum) else value
        return f"{self.text} (is {shown!r})"


@dataclass(frozen=True)
class TextSearch(Condition):
    """A compiled regex searched in each of ``fields``; ``what`` names the test."""

    pattern: re.Pattern[str]
    fields: tuple[str, ...]
    what: str
    # Groups of lower-case texts such that every match holds all the texts of one
    # group (for keywords: the words of one keyword). A text where no group is
    # complete cannot match, found by plain substring tests, far cheaper than the
    # regex, which only runs on texts that pass. None: no prefilter.
    needles: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        # No action sets the fields searched: the answer holds for the whole evaluation.
        object.__setattr__(self, "fixed", not frozenset(self.fields) & SETTABLE)
        # Plain fields are read straight from the view's values (custom ones by get).
        plain = not any(f.startswith("custom.") for f in self.fields)
        object.__setattr__(self, "plain", plain)
        # Texts that stay as they are, with a prefilter: one substring test per needle
        # on all of them joined (lower-cased once per incident, shared by every test
        # on the same fields) rules out most incidents before any per-field work.
        object.__setattr__(self, "joined", self.fixed and plain and self.needles is not None)
        # The key of this test's answer in View.memo (its identity, taken once).
        object.__setattr__(self, "key", id(self))

    @property
    def reads(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset(self.fields)

    def holds(self, view: View, now: datetime | None) -> bool:
        # Rules never set the texts searched here (title, description, ...) unless
        # they name a field a rule sets: remember the answer for this incident.
        memo = view.memo
        key = self.key
        found = memo.get(key)
        if found is not None and (self.fixed or not self.reads & view.changes.keys()):
            return found
        if self.joined:
            low = joined_lower(view, self.fields)
            if not _complete(self.needles, low):  # type: ignore[arg-type]
                memo[key] = False   # no group complete in the texts: no match
                return False
        found = memo[key] = self._search_fields(view)
        return found

    def search(self, view: View) -> bool:
        """:meth:`holds` of a ``joined`` test whose texts passed the joined prefilter
        (compiled conditions run that prefilter inline): the answer, remembered."""
        memo = view.memo
        found = memo.get(self.key)
        if found is None:   # a joined test's texts never change: a held answer stands
            found = memo[self.key] = self._search_fields(view)
        return found

    def _search_fields(self, view: View) -> bool:
        """Does the regex match one of the fields (each prefiltered on its own)?"""
        needles = self.needles
        values = view.values
        lowered = view.lowered
        for name in self.fields:
            text = values[name] if self.plain else view.get(name)
            if not text:
                continue
            if needles is not None and isinstance(text, str):
                # The lower-cased text, once per incident and field, shared by every rule.
                held = lowered.get(name)
                if held is None or held[0] is not text:
                    held = (text, fold_text(text))
                    lowered[name] = held
                if not _complete(needles, held[1]):
                    continue   # no group complete: the regex cannot match this text
            if self.pattern.search(text):
                return True
        return False

    def explain(self, view: View, now: datetime | None) -> str | None:
        for name in self.fields:
            text = view.get(name)
            found = self.pattern.search(text) if text else None
            if found:
                return f"{self.what}: {found.group(0)!r} in {name}"
        return None


@dataclass(frozen=True)
class Age(Condition):
    """Time since ``stamp`` (opened_at or updated_at) is more than ``limit``."""

    stamp: str
    limit: timedelta
    text: str

    @property
    def reads(self) -> frozenset[str]:  # type: ignore[override]
        return frozenset({self.stamp})

    def holds(self, view: View, now: datetime | None) -> bool:
        at = view.get(self.stamp)
        return now is not None and at is not None and now - at > self.limit

    def instants(self, view: View) -> list[datetime]:
        at = view.get(self.stamp)
        return [] if at is None else [at + self.limit]

    def explain(self, view: View, now: datetime | None) -> str | None:
        if not self.holds(view, now):
            return None
        assert now is not None
        return f"{self.text} ({_human(now - view.get(self.stamp))})"


@dataclass(frozen=True)
class SlaBreached(Condition):
    which: str
    targets: SlaTargets
    reads: frozenset[str] = PRIORITY_READS | {"opened_at", "status"}

    def __post_init__(self) -> None:
        # Which targets count, asked once (holds runs for every incident).
        object.__setattr__(self, "response", self.which in ("response", "any"))
        object.__setattr__(self, "resolution", self.which in ("resolution", "any"))
        # explain's text before the age, per (priority, kind), filled as asked.
        object.__setattr__(self, "heads", {})

    def _breach(self, view: View, now: datetime | None) -> str | None:
        values = view.values
        opened = values["opened_at"]
        status: Status = values["status"]
        if now is None or opened is None or status not in _OPEN:
            return None
        priority = values["priority"]   # View.get("priority"), inlined
        target = self.targets.get(priority if priority is not None
                                  else _MATRIX[values["impact"], values["urgency"]])
        if target is None:
            return None
        age = now - opened
        if self.response and status is Status.NEW and age > target[0]:
            return "response"
        if self.resolution and age > target[1]:
            return "resolution"
        return None

    def holds(self, view: View, now: datetime | None) -> bool:
        return self._breach(view, now) is not None

    def instants(self, view: View) -> list[datetime]:
        opened = view.get("opened_at")
        target = self.targets.get(int(view.get("priority")))
        if opened is None or target is None or not view.get("status").is_open:
            return []
        return [opened + target[0], opened + target[1]]

    def explain(self, view: View, now: datetime | None) -> str | None:
        kind = self._breach(view, now)
        if kind is None:
            return None
        assert now is not None
        values = view.values
        priority = values["priority"]   # View.get("priority"), inlined
        if priority is None:
            priority = _MATRIX[values["impact"], values["urgency"]]
        # Everything but the age is said once per priority and kind (the reason
        # heads an escalation note, written for most incidents that breach).
        head = self.heads.get((priority, kind))   # type: ignore[attr-defined]
        if head is None:
            target = self.targets[int(priority)][0 if kind == "response" else 1]
            head = self.heads[(priority, kind)] = (  # type: ignore[attr-defined]
                f"P{int(priority)} {kind} target {_human_target(target)} breached (open for ")
        return f"{head}{_human(now - values['opened_at'])})"


def _human(delta: timedelta) -> str:
    """``1d2h3m4s`` (units that are zero left out; under a minute, negative too: ``Ns``)."""
    days = delta.days
    # Whole seconds as int(total_seconds()) gives them (truncated), without the float
    # where it is exact (under 2**53 microseconds: ages below ~285 years).
    seconds = days * 86400 + delta.seconds if 0 <= days < 100_000 else int(
        delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return ((f"{days}d" if days else "") + (f"{hours}h" if hours else "")
            + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else ""))


# The few SLA targets, said once each (an incident's age is new every time).
_human_target = lru_cache(maxsize=64)(_human)


def keyword_pattern(keywords: Sequence[str]) -> re.Pattern[str]:
    """One case-insensitive regex matching any keyword as a whole word (see contract)."""
    alternatives = []
    for keyword in keywords:
        word = keyword.strip()
        prefix = word.endswith("*")
        words = word.rstrip("*").split()
        body = r"\s+".join(re.escape(w) for w in words)
        alternatives.append(body + (r"\w*" if prefix else ""))
    # Longest first, so "server down" is reported rather than a shorter keyword it holds.
    alternatives.sort(key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(alternatives) + r")(?![\w-])", re.IGNORECASE)


def _complete(groups: tuple[tuple[str, ...], ...], text: str) -> bool:
    """Is every text of some group in ``text``? (Plain loops: this runs per test.)"""
    for group in groups:
        for needle in group:
            if needle not in text:
                break
        else:
            return True
    return False


def keyword_needles(keywords: Sequence[str]) -> tuple[tuple[str, ...], ...] | None:
    """Per keyword, its words lower-cased (see :class:`TextSearch`).

    Searched for in texts folded by :func:`fold_text` (which turns the non-ASCII
    letters IGNORECASE matches to ASCII ones into those), with ASCII words only:
    a keyword with a non-ASCII word is checked by its other words (None if it has
    no other).
    A trailing ``*`` leaves a prefix, still a substring of what it matches.
    """
    groups = []
    for keyword in keywords:
        words = tuple(w.lower() for w in keyword.strip().rstrip("*").split() if w.isascii())
        if not words:
            return None
        groups.append(words)
    return _minimal(groups)


def _minimal(groups: list[tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    """``groups`` without those that add nothing: a group whose every text holds one of
    another group's texts (complete whenever it is, the other is too)."""
    unique = sorted(set(groups), key=lambda g: (len(g), sum(map(len, g)), g))
    kept: list[tuple[str, ...]] = []
    for group in unique:
        if not any(all(any(o in word for word in group) for o in other) for other in kept):
            kept.append(group)
    return tuple(sorted(kept))


def regex_needles(pattern: re.Pattern[str]) -> tuple[tuple[str, ...], ...] | None:
    """Lower-case texts every match of ``pattern`` holds, as :class:`TextSearch` groups.

    The prefilter of :class:`TextSearch` for ``matches`` regexes: a regex is
    searched on every incident, and most texts cannot match it because they lack
    some fixed text every match holds (``\\bservers?\\b.*\\bdown\\b`` needs
    "down"). Found in the parsed regex's top-level sequence: its runs of literal
    characters (every match holds all of them), and the leading literal runs of
    the alternatives of one group ``(a|b)`` (every match holds one of them): a
    group per alternative, each with all the runs. Only ASCII characters count
    (the substring test runs on texts folded by :func:`fold_text`, where
    case-insensitive matching of ASCII text is plain lower-casing). A regex with no
    such text (or one the parser cannot be asked about) has no prefilter: None.
    """
    try:
        parsed = _sre_parser.parse(pattern.pattern, pattern.flags)
        items = list(parsed)
    except Exception:  # a private parser: never trust its shape, just skip the prefilter
        return None
    literal = _sre_parser.LITERAL
    runs: list[str] = []
    branches: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, arg in [*items, (None, None)]:
        if op is literal and 0 < arg < 128:
            run.append(chr(arg))
            continue
        if run:
            runs.append("".join(run).lower())
            run = []
        branch = _branch_needles(op, arg)
        if branch:
            branches.append(branch)
    if not runs and not branches:
        return None
    # Longest first: the likeliest to be missing, so the test stops soonest.
    held = tuple(sorted(set(runs), key=lambda r: (-len(r), r)))
    if not branches:
        return (held,)
    best = max(branches, key=lambda needles: (min(map(len, needles)), -len(needles)))
    return _minimal([(*held, needle) for needle in best])


def _branch_needles(op: Any, arg: Any) -> tuple[str, ...] | None:
    """The leading literal runs of a top-level group ``(a|b|...)`` whose every
    alternative starts with one (and sets no flags of its own); else None."""
    if op is not _sre_parser.SUBPATTERN:
        return None
    _group, add_flags, del_flags, body = arg
    body = list(body)
    if add_flags or del_flags or len(body) != 1 or body[0][0] is not _sre_parser.BRANCH:
        return None
    needles = []
    for alternative in body[0][1][1]:
        lead = []
        for item_op, item_arg in alternative:
            if item_op is not _sre_parser.LITERAL or not 0 < item_arg < 128:
                break
            lead.append(chr(item_arg))
        if not lead:
            return None
        needles.append("".join(lead).lower())
    return tuple(needles)


# --------------------------------------------------------------------------- compiling


def check_field(name: str) -> str:
    if name in KNOWN_FIELDS or (name.startswith("custom.") and len(name) > 7):
        return name
    raise ValueError(f"unknown field {name!r} (known: {', '.join(sorted(KNOWN_FIELDS))},"
                     " custom.<name>)")


def field_value(name: str, value: Any) -> Any:
    """``value`` as ``name`` holds it (an enumeration member, or text); ValueError if it can't."""
    kind = ENUM_FIELDS.get(name)
    if kind is not None:
        if isinstance(value, bool):
            value = None
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in kind)  # type: ignore[attr-defined]
            raise ValueError(f"{name} cannot be {value!r} (one of {allowed})") from None
    if name in TEXT_FIELDS or name == "labels":
        if not isinstance(value, str):
            raise ValueError(f"{name} holds text, not {value!r}")
    return value


_TESTS = ("equals", "in", "not_in", "matches", "lt", "lte", "gt", "gte")
_OPS: dict[str, Callable[[int, int], bool]] = {
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
}
_OP_TEXT = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def field_test(spec: ConditionSpec, keys: set[str]) -> Condition:
    name = check_field(spec.field or "")
    tests = [k for k in _TESTS if k in keys]
    if len(tests) != 1:
        raise ValueError(f"condition on field {name!r} needs exactly one of "
                         f"{', '.join(_TESTS)} (got {', '.join(tests) or 'none'})")
    (test,) = tests
    if test == "matches":
        if name in NUMERIC_FIELDS or name == "status":
            raise ValueError(f"matches: {name!r} is not a text field")
        assert spec.matches is not None
        pattern = re.compile(spec.matches)
        return TextSearch(pattern, (name,), f"{name} matches {spec.matches!r}",
                          regex_needles(pattern))
    if test in _OPS:
        if name not in NUMERIC_FIELDS:
            raise ValueError(f"{test}: {name!r} is not a number (compare impact, urgency,"
                             " priority or escalation)")
        bound = int(getattr(spec, test))
        op = _OPS[test]
        if not any(op(int(m), bound) for m in ENUM_FIELDS[name]):  # type: ignore[attr-defined]
            raise ValueError(f"contradiction: {name} {_OP_TEXT[test]} {bound} can never hold")
        return FieldTest(name, lambda v, op=op, bound=bound: v is not None and op(int(v), bound),
                         f"{name} {_OP_TEXT[test]} {bound}")
    raw: list[Any] = ([spec.equals] if test == "equals"
                      else list(spec.in_ or []) if test == "in" else list(spec.not_in or []))
    if not raw:
        raise ValueError(f"{test}: {name!r} needs at least one value")
    values = frozenset(_fold(field_value(name, v)) for v in raw)
    shown = ", ".join(repr(v) for v in raw)
    negate = test == "not_in"
    if name == "labels":
        def check(held: Any, values: frozenset[Any] = values, negate: bool = negate) -> bool:
            found = any(_fold(label) in values for label in held or ())
            return found != negate
    else:
        def check(held: Any, values: frozenset[Any] = values, negate: bool = negate) -> bool:
            return (_fold(held) in values) != negate
    verb = {"equals": "is", "in": "in", "not_in": "not in"}[test]
    if test == "equals":
        return FieldTest(name, check, f"{name} {verb} {shown}", show_value=name == "labels")
    return FieldTest(name, check, f"{name} {verb} [{shown}]")


def compile_condition(spec: ConditionSpec, sla: SlaTargets | None) -> Condition:
    """The :class:`Condition` for ``spec``; ValueError naming what is wrong."""
    keys = set(spec.set_keys())
    kinds = [k for k in ("all", "any", "not", "text_contains", "open_longer_than",
                         "unchanged_longer_than", "sla_breached") if k in keys]
    if "field" in keys:
        kinds.append("field")
    elif "matches" in keys:
        kinds.append("matches")
    if "fields" in keys and "text_contains" not in keys and "matches" not in keys:
        raise ValueError("'fields' only goes with text_contains or matches")
    stray = keys - {"field", "fields", *_TESTS} if "field" in keys else set()
    if len(kinds) != 1 or stray:
        if not kinds:
            raise ValueError("a condition needs a test (all, any, not, field, text_contains,"
                             " matches, open_longer_than, unchanged_longer_than, sla_breached)")
        raise ValueError(f"one test per condition table (got {', '.join(sorted(keys))});"
                         " combine tests with all = [...]")
    kind = kinds[0]
    if kind in ("all", "any"):
        parts = getattr(spec, kind) or []
        if not parts:
            raise ValueError(f"{kind} needs at least one condition")
        compiled = tuple(compile_condition(p, sla) for p in parts)
        if kind == "all":
            contradiction(parts)
            return AllOf(compiled)
        return AnyOf(compiled)
    if kind == "not":
        assert spec.not_ is not None
        return Not(compile_condition(spec.not_, sla), describe(spec.not_))
    if kind == "field":
        return field_test(spec, keys)
    if kind in ("text_contains", "matches"):
        names = tuple(check_field(f) for f in (spec.fields or DEFAULT_TEXT_FIELDS))
        for name in names:
            if name not in TEXT_FIELDS and not name.startswith("custom."):
                raise ValueError(f"fields: {name!r} is not a text field")
        if kind == "matches":
            assert spec.matches is not None
            pattern = re.compile(spec.matches)
            return TextSearch(pattern, names, f"matches {spec.matches!r}",
                              regex_needles(pattern))
        assert spec.text_contains is not None
        return TextSearch(keyword_pattern(spec.text_contains), names, "text contains",
                          keyword_needles(spec.text_contains))
    if kind in ("open_longer_than", "unchanged_longer_than"):
        text = getattr(spec, kind)
        stamp = "opened_at" if kind == "open_longer_than" else "updated_at"
        label = "open for more than" if stamp == "opened_at" else "unchanged for more than"
        return Age(stamp, parse_duration(text), f"{label} {text}")
    if not sla:
        raise ValueError("sla_breached needs SLA targets: add an [sla] table (P1..P5)")
    assert spec.sla_breached is not None
    return SlaBreached(spec.sla_breached, sla)


def describe(spec: ConditionSpec) -> str:
    """A short text form of a condition, for ``not (...)`` reasons."""
    data = spec.model_dump(by_alias=True, exclude_unset=True)
    return ", ".join(f"{k} = {v!r}" for k, v in data.items())


# --------------------------------------------------------------------------- generated tests

# Nesting beyond this is left to the objects' own holds (the parser limits nested
# parentheses; no real rule comes near it).
_MAX_DEPTH = 40


def compile_holds(condition: Condition) -> Callable[[View, datetime | None], bool]:
    """``condition.holds`` as one generated function: a tree of tests is one call.

    The source is built from the compiled condition's structure only: every value
    that came from the rules file (field names, keywords, patterns, thresholds) is
    a closure variable of the generated function, never text in its source. The
    function answers what ``condition.holds`` answers (same tests, same order, same
    short-circuits, the text tests' memo shared with them); a test of a kind not
    known here, or a tree nested too deep, is called through its own ``holds``.
    """
    bound: dict[str, Any] = {}

    def bind(value: Any) -> str:
        name = f"c{len(bound)}"
        bound[name] = value
        return name

    uses: set[str] = set()
    try:
        body = _source(condition, bind, uses, 0)
    except _TooDeep:
        return condition.holds
    lines = [f"def make({', '.join(bound)}):",
             "    def holds(view, now):",
             "        values = view.values"]
    if "lowered" in uses:
        lines.append("        lowered = view.lowered")
    lines += [f"        return {body}", "    return holds"]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines) + "\n", "<rule condition>", "exec"), namespace)
    holds: Callable[[View, datetime | None], bool] = namespace["make"](**bound)
    return holds


class _TooDeep(Exception):
    pass


def _priority_source(bind: Callable[[Any], str]) -> str:
    """View.get("priority") as an expression: the one set, else the ITIL matrix's."""
    return (f'(_p if (_p := values["priority"]) is not None'
            f' else {bind(_MATRIX)}[values["impact"], values["urgency"]])')


def _source(condition: Condition, bind: Callable[[Any], str], uses: set[str],
            depth: int) -> str:
    """The expression for ``condition`` (see :func:`compile_holds`)."""
    if depth > _MAX_DEPTH:
        raise _TooDeep
    kind = type(condition)
    if kind is Always:
        return "True"
    if kind is AllOf or kind is AnyOf:
        parts = [_source(part, bind, uses, depth + 1)
                 for part in condition.parts]  # type: ignore[attr-defined]
        if not parts:   # what the loops answer for no parts
            return "True" if kind is AllOf else "False"
        return "(" + (" and " if kind is AllOf else " or ").join(parts) + ")"
    if kind is Not:
        return f"(not {_source(condition.part, bind, uses, depth + 1)})"  # type: ignore[attr-defined]
    if kind is FieldTest:
        test = bind(condition.test)  # type: ignore[attr-defined]
        name: str = condition.field  # type: ignore[attr-defined]
        if name == "priority":
            return f"{test}({_priority_source(bind)})"
        if condition.plain:  # type: ignore[attr-defined]
            return f"{test}(values[{bind(name)}])"
        return f"{test}(view.get({bind(name)}))"
    if kind is TextSearch and condition.joined:  # type: ignore[attr-defined]
        return _text_source(condition, bind, uses)  # type: ignore[arg-type]
    if kind is SlaBreached:
        return _sla_source(condition, bind)  # type: ignore[arg-type]
    if kind is Age:
        return (f"(now is not None and (_a := values[{bind(condition.stamp)}]) is not None"  # type: ignore[attr-defined]
                f" and now - _a > {bind(condition.limit)})")  # type: ignore[attr-defined]
    return f"bool({bind(condition.holds)}(view, now))"


def _text_source(test: TextSearch, bind: Callable[[Any], str], uses: set[str]) -> str:
    """TextSearch.holds of a joined test: the joined prefilter as plain ``in`` tests,
    then (texts that pass it) the per-field search, remembered per incident."""
    uses.add("lowered")
    fields = bind(test.fields)
    search = f"{bind(test.search)}(view)"
    groups = test.needles or ()
    if any(not group for group in groups):
        return search   # a group of no texts is always complete: no prefilter
    # The folded texts, named _l by the first test (the first group's first word is
    # always the first asked).
    texts = (f"(_l := (_h[1] if (_h := lowered.get({fields})) is not None"
             f" else {bind(joined_lower)}(view, {fields})))")
    tests = []
    for group in groups:
        # Longest word first: the likeliest to be missing, so the group fails soonest.
        words = []
        for needle in sorted(group, key=len, reverse=True):
            words.append(f"{bind(needle)} in {texts}")
            texts = "_l"
        tests.append("(" + " and ".join(words) + ")")
    if not tests:
        return "False"   # no group at all: _complete answers no
    return f"(({' or '.join(tests)}) and {search})"


def _sla_source(test: SlaBreached, bind: Callable[[Any], str]) -> str:
    """SlaBreached.holds: open, a target for the effective priority, past it."""
    head = (f'(now is not None and (_o := values["opened_at"]) is not None'
            f' and (_s := values["status"]) in {bind(_OPEN)}'
            f" and (_t := {bind(test.targets)}.get({_priority_source(bind)})) is not None")
    new = bind(Status.NEW)
    response = f"(_s is {new} and now - _o > _t[0])"
    resolution = "now - _o > _t[1]"
    if test.response and test.resolution:  # type: ignore[attr-defined]
        return f"{head} and ({response} or {resolution}))"
    if test.response:  # type: ignore[attr-defined]
        return f"{head} and {response})"
    if test.resolution:  # type: ignore[attr-defined]
        return f"{head} and {resolution})"
    return "False"


# --------------------------------------------------------------------------- contradictions


def _allowed(spec: ConditionSpec) -> tuple[str, frozenset[Any], bool] | None:
    """(field, values, negated) a plain field test allows, or None when it isn't one."""
    keys = set(spec.set_keys())
    if "field" not in keys or not keys & {"equals", "in", "not_in", "lt", "lte", "gt", "gte"}:
        return None
    name = spec.field or ""
    if name == "labels":
        return None  # a set of labels can hold several values at once: no contradiction
    for op in ("lt", "lte", "gt", "gte"):
        if op in keys:
            bound = int(getattr(spec, op))
            members = ENUM_FIELDS[name]
            return name, frozenset(m for m in members if _OPS[op](int(m), bound)), False  # type: ignore[attr-defined]
    if "not_in" in keys:
        return name, frozenset(_fold(field_value(name, v)) for v in spec.not_in or []), True
    raw = [spec.equals] if "equals" in keys else list(spec.in_ or [])
    return name, frozenset(_fold(field_value(name, v)) for v in raw), False


def contradiction(parts: Sequence[ConditionSpec]) -> None:
    """Raise ValueError when tests joined by ``all`` can never hold together."""
    allowed: dict[str, frozenset[Any]] = {}
    excluded: dict[str, set[Any]] = {}
    for part in parts:
        found = _allowed(part)
        if found is None:
            continue
        name, values, negated = found
        if negated:
            excluded.setdefault(name, set()).update(values)
        else:
            allowed[name] = allowed[name] & values if name in allowed else values
    for name in set(allowed) | set(excluded):
        domain = allowed.get(name)
        if domain is None and name in ENUM_FIELDS:
            domain = frozenset(ENUM_FIELDS[name])  # type: ignore[arg-type]
        if domain is not None and not domain - excluded.get(name, set()):
            raise ValueError(f"contradiction: the tests on {name!r} joined by all can never"
                             " hold together")
