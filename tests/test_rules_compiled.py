"""Compiled conditions answer what the condition objects answer, and the text prefilter
folds any text (ASCII or not) so that it never rules out a text the regex matches."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.model import Escalation, Impact, Incident, Priority, Status, Urgency
from sync.rules_conditions import (
    _ASCII_TWINS,
    _MAX_DEPTH,
    View,
    _complete,
    compile_condition,
    compile_holds,
    fold_text,
    keyword_needles,
    keyword_pattern,
    regex_needles,
)
from sync.rules_model import ConditionSpec

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SLA = {1: (timedelta(minutes=15), timedelta(hours=4)), 3: (timedelta(hours=4), timedelta(days=1))}

# Words and letters that put the prefilter to the test: case, the non-ASCII letters
# IGNORECASE takes for ASCII ones, other non-ASCII letters, a hyphenated compound.
_WORDS = st.sampled_from([
    "down", "DOWN", "server", "ſerver", "SERVERS", "is", "İS", "ıs", "\u212aey", "key",
    "password", "pass", "passwörd", "café", "outage", "ransomware-free", "x", "—",
])
_TEXTS = st.lists(st.one_of(_WORDS, st.sampled_from([" ", "  ", ".", "-", "7", "\n"])),
                  max_size=10).map("".join)

_ATOMS = st.sampled_from([
    {"field": "category", "equals": "Net"}, {"field": "category", "in": ["a", "b"]},
    {"field": "category", "not_in": ["a"]}, {"field": "urgency", "lte": 2},
    {"field": "priority", "lte": 3}, {"field": "priority", "gt": 1},
    {"field": "escalation", "lt": 2}, {"field": "status", "in": ["new", "on_hold"]},
    {"field": "labels", "equals": "x"}, {"field": "custom.team", "equals": "ops"},
    {"text_contains": ["server down", "outage"]}, {"text_contains": ["pass*", "key"]},
    {"text_contains": ["café"]}, {"text_contains": ["down"], "fields": ["category"]},
    {"matches": r"(?i)\b(server|host)s?\b[^.\n]{0,30}\bis\s+down\b"},
    {"matches": "^DOWN"}, {"field": "title", "matches": "x"},
    {"open_longer_than": "2h"}, {"unchanged_longer_than": "1d"},
    {"sla_breached": "response"}, {"sla_breached": "resolution"}, {"sla_breached": "any"},
])
_TREES = st.recursive(
    _ATOMS,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda parts: {"any": parts}),
        st.lists(inner, min_size=1, max_size=3).map(lambda parts: {"all": parts}),
        inner.map(lambda part: {"not": part})),
    max_leaves=8)
# Ages in minutes, the thresholds above among them (a test is "older than", not "as old as").
_AGES = st.integers(0, 3000) | st.sampled_from([15, 120, 240, 1440])
_INCIDENTS = st.builds(
    Incident, title=_TEXTS, description=_TEXTS,
    category=st.none() | st.sampled_from(["a", "b", "net", "is down", ""]),
    status=st.sampled_from(Status), impact=st.sampled_from(Impact),
    urgency=st.sampled_from(Urgency), priority=st.none() | st.sampled_from(Priority),
    escalation=st.sampled_from(Escalation),
    labels=st.lists(st.sampled_from(["x", "X", "y"]), max_size=2),
    opened_at=st.none() | _AGES.map(lambda m: NOW - timedelta(minutes=m)),
    updated_at=st.none() | _AGES.map(lambda m: NOW - timedelta(minutes=m)),
    custom=st.sampled_from([{}, {"team": "OPS"}, {"team": "dev"}]))


def _condition(tree: dict[str, Any]) -> Any:
    try:
        return compile_condition(ConditionSpec.model_validate(tree), SLA)
    except ValueError:
        return None   # a contradiction the compiler refuses: nothing to compare


@settings(max_examples=400, deadline=None)
@given(tree=_TREES, incident=_INCIDENTS, now=st.sampled_from([NOW, None]),
       changes=st.sampled_from([{}, {"category": "net"}, {"priority": Priority.CRITICAL},
                                {"labels": ["x"]}, {"category": "the server is down"}]))
def test_a_compiled_condition_answers_what_the_condition_answers(
        tree: dict[str, Any], incident: Incident, now: datetime | None,
        changes: dict[str, Any]) -> None:
    condition = _condition(tree)
    if condition is None:
        return
    compiled = compile_holds(condition)
    # Fresh views: each asks its text tests itself (the memo is per view).
    expected = condition.holds(View(incident, changes), now)
    assert compiled(View(incident, changes), now) == expected
    # Asked again on one view (the memo answering, as in a second pass).
    view = View(incident, changes)
    assert compiled(view, now) == expected and compiled(view, now) == expected
    assert condition.holds(view, now) == expected


def test_a_condition_nested_past_the_limit_is_asked_through_its_objects() -> None:
    tree: dict[str, Any] = {"text_contains": ["outage"]}
    for _ in range(_MAX_DEPTH + 5):
        tree = {"not": {"not": tree}}
    condition = _condition(tree)
    compiled = compile_holds(condition)
    assert compiled == condition.holds   # not generated: the objects' own holds
    for title in ("Outage in Lyon", "all fine"):
        view = View(Incident(title=title))
        assert compiled(view, NOW) is condition.holds(View(Incident(title=title)), NOW)


def test_the_generated_source_holds_no_text_from_the_rules_file() -> None:
    # Keywords, fields and patterns reach the function as closure values only.
    condition = _condition({"any": [{"text_contains": ['x") or __import__("os']},
                                    {"field": "category", "equals": "'; raise"}]})
    compiled = compile_holds(condition)
    constants = [c for c in compiled.__code__.co_consts if isinstance(c, str)]
    assert not any("__import__" in c or "raise" in c for c in constants)
    assert compiled(View(Incident(title='x") or __import__("os')), NOW) is True
    assert compiled(View(Incident(category="'; RAISE")), NOW) is True
    assert compiled(View(Incident(title="y")), NOW) is False


def test_the_letters_ignorecase_takes_for_ascii_ones_are_the_folded_ones() -> None:
    # Every code point past ASCII, searched with every ASCII character, case ignored:
    # the ones that match are exactly the folded twins, and fold to that letter.
    everything = "".join(chr(c) for c in range(0x80, 0x110000) if not 0xD800 <= c <= 0xDFFF)
    found: dict[str, set[str]] = {}
    for code in range(1, 128):
        for match in re.finditer(re.escape(chr(code)), everything, re.IGNORECASE):
            found.setdefault(match.group(0), set()).add(chr(code).lower())
    assert found == {twin: {letter} for twin, letter in _ASCII_TWINS}
    for twin, letter in _ASCII_TWINS:
        assert fold_text(f"A{twin}B") == f"a{letter}b"   # one character for one
    assert fold_text("İzmir") == "izmir" and "İzmir".lower() != "izmir"


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(st.one_of(
    _WORDS.map(re.escape),
    st.sampled_from([r"\s+", r"\b", r"\d*", r"[^.\n]{0,5}", r".", r"s?", " ", "-"]),
    st.lists(_WORDS.map(re.escape), min_size=2, max_size=3).map(lambda w: f"({'|'.join(w)})")),
    min_size=1, max_size=6), ignore_case=st.booleans(), text=_TEXTS)
def test_the_prefilter_never_refuses_a_text_the_regex_matches_ascii_or_not(
        pieces: list[str], ignore_case: bool, text: str) -> None:
    pattern = re.compile(("(?i)" if ignore_case else "") + "".join(pieces))
    needles = regex_needles(pattern)
    if needles is not None and pattern.search(text):
        assert _complete(needles, fold_text(text)), (pattern, text)


@settings(max_examples=400, deadline=None)
@given(keywords=st.lists(_WORDS.map(lambda w: w + "*" if len(w) % 3 == 0 else w),
                         min_size=1, max_size=3),
       title=_TEXTS, description=_TEXTS)
def test_keyword_tests_answer_what_their_regex_answers_for_any_text(
        keywords: list[str], title: str, description: str) -> None:
    condition = compile_condition(ConditionSpec(text_contains=keywords), None)
    pattern = keyword_pattern(keywords)
    needles = keyword_needles(keywords)
    expected = bool(pattern.search(title) or pattern.search(description))
    incident = Incident(title=title, description=description)
    assert condition.holds(View(incident), None) is expected
    assert compile_holds(condition)(View(incident), None) is expected
    if expected and needles is not None:
        assert _complete(needles, fold_text(title + "\n" + description))


def test_time_tests_compiled_agree_at_their_thresholds() -> None:
    # Exactly at a target or limit nothing is breached yet ("older than"); a second
    # later it is: both forms must flip at the same instant.
    trees = [{"sla_breached": kind} for kind in ("response", "resolution", "any")] + [
        {"open_longer_than": "2h"}, {"unchanged_longer_than": "1d"}]
    for tree in trees:
        condition = _condition(tree)
        compiled = compile_holds(condition)
        for minutes in (15, 120, 240, 1440):
            for extra in (timedelta(0), timedelta(seconds=1), -timedelta(seconds=1)):
                at = NOW - timedelta(minutes=minutes) - extra
                for status in (Status.NEW, Status.IN_PROGRESS, Status.RESOLVED):
                    for impact, urgency in ((Impact.HIGH, Urgency.HIGH),
                                            (Impact.LOW, Urgency.HIGH)):
                        incident = Incident(opened_at=at, updated_at=at, status=status,
                                            impact=impact, urgency=urgency)
                        assert compiled(View(incident), NOW) == condition.holds(
                            View(incident), NOW), (tree, minutes, extra, status)
