"""Each rule condition on its own: field tests, keywords, regex, comparisons, time, SLA."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_helpers import NOW, fires, one_rule, opened, run

from mappings.model import Escalation, Impact, Incident, Priority, Status, Urgency
from sync.rules_conditions import (
    View,
    _complete,
    compile_condition,
    keyword_needles,
    keyword_pattern,
    regex_needles,
)
from sync.rules_model import ConditionSpec

SLA = '[sla]\nP1 = { response = "15m", resolution = "4h" }\n' \
      'P3 = { response = "4h", resolution = "24h" }\n'


def test_field_equals_compares_text_without_case() -> None:
    ruleset = one_rule('when = { field = "category", equals = "Network" }')
    assert fires(ruleset, category="network")
    assert not fires(ruleset, category="database")
    assert not fires(ruleset)  # no category at all


def test_field_in_and_not_in() -> None:
    within = one_rule('when = { field = "category", in = ["network", "database"] }')
    outside = one_rule('when = { field = "category", not_in = ["network", "database"] }')
    assert fires(within, category="database") and not fires(within, category="hardware")
    assert fires(outside, category="hardware") and not fires(outside, category="network")


def test_status_in_uses_neutral_statuses() -> None:
    ruleset = one_rule('when = { field = "status", in = ["new", "on_hold"] }')
    assert fires(ruleset, status=Status.ON_HOLD)
    assert not fires(ruleset, status=Status.RESOLVED)


def test_labels_tests_ask_whether_the_incident_has_the_label() -> None:
    has = one_rule('when = { field = "labels", equals = "vip" }')
    lacks = one_rule('when = { field = "labels", not_in = ["vip", "exec"] }')
    assert fires(has, labels=["x", "VIP"]) and not fires(has, labels=["x"])
    assert fires(lacks, labels=["x"]) and not fires(lacks, labels=["exec"])


def test_custom_fields_can_be_tested() -> None:
    ruleset = one_rule('when = { field = "custom.hold_reason", equals = "1" }')
    assert fires(ruleset, custom={"hold_reason": "1"})
    assert not fires(ruleset, custom={})


@pytest.mark.parametrize(("op", "bound", "hits"), [
    ("lte", 2, {1, 2}), ("lt", 2, {1}), ("gte", 4, {4, 5}), ("gt", 4, {5}),
])
def test_priority_comparisons_use_the_effective_priority(op: str, bound: int,
                                                         hits: set[int]) -> None:
    ruleset = one_rule(f'when = {{ field = "priority", {op} = {bound} }}')
    for impact in Impact:
        for urgency in Urgency:
            incident = Incident(impact=impact, urgency=urgency)  # priority from the matrix
            expected = int(incident.effective_priority) in hits
            assert fires(ruleset, impact=impact, urgency=urgency) is expected
    assert fires(ruleset, priority=Priority(min(hits)))  # an explicit priority counts too


def test_impact_urgency_and_escalation_comparisons() -> None:
    assert fires(one_rule('when = { field = "impact", equals = 1 }'), impact=Impact.HIGH)
    assert not fires(one_rule('when = { field = "urgency", lt = 2 }'), urgency=Urgency.LOW)
    assert fires(one_rule('when = { field = "escalation", gte = 1 }'),
                 escalation=Escalation.HIGH)


def test_keywords_match_whole_words_in_title_or_description_any_case() -> None:
    ruleset = one_rule('when = { text_contains = ["password", "server down"] }')
    assert fires(ruleset, title="PASSWORD reset please")
    assert fires(ruleset, description="The mail\nserver   down since 9:00")
    assert fires(ruleset, title="Reset my password.")
    assert not fires(ruleset, title="Passwordless login fails")
    assert not fires(ruleset, title="password-protected PDF will not open")
    assert not fires(ruleset, title="Servers are slow", description="down the hall")


def test_a_trailing_star_asks_for_a_prefix() -> None:
    ruleset = one_rule('when = { text_contains = ["password*"] }')
    assert fires(ruleset, title="Passwordless login fails")
    assert fires(ruleset, title="passwords expired")
    assert not fires(ruleset, title="pass word")


def test_keywords_can_be_limited_to_chosen_fields() -> None:
    ruleset = one_rule('when = { text_contains = ["outage"], fields = ["title"] }')
    assert fires(ruleset, title="Outage in Lyon")
    assert not fires(ruleset, description="Outage in Lyon")


def test_regex_over_text_and_on_a_field() -> None:
    text = one_rule(r"""when = { matches = '(?i)\bORA-\d{5}\b' }""")
    assert fires(text, description="job failed with ora-01653 on insert")
    assert not fires(text, description="ORA-1")
    on_field = one_rule(r"""when = { field = "assignee", matches = '@contractor\.' }""")
    assert fires(on_field, assignee="kim@contractor.example.com")
    assert not fires(on_field, assignee="kim@example.com")


def test_all_any_not_combine() -> None:
    ruleset = one_rule("""when.all = [
    { any = [ { field = "category", equals = "network" }, { text_contains = ["vpn"] } ] },
    { not = { field = "status", in = ["resolved", "closed", "canceled"] } },
]""")
    assert fires(ruleset, category="network")
    assert fires(ruleset, title="VPN drops", category="software")
    assert not fires(ruleset, title="VPN drops", status=Status.RESOLVED)
    assert not fires(ruleset, title="printer jam")


def test_open_longer_than_and_unchanged_longer_than() -> None:
    old = one_rule('when = { open_longer_than = "1d12h" }')
    assert fires(old, opened_at=NOW - timedelta(hours=37))
    assert not fires(old, opened_at=NOW - timedelta(hours=35))
    assert not fires(old)  # no opened_at: age unknown, nothing fires
    assert not fires(old, now=None, opened_at=NOW - timedelta(days=9))  # no clock given
    idle = one_rule('when = { unchanged_longer_than = "2d" }')
    assert fires(idle, updated_at=NOW - timedelta(days=3))
    assert not fires(idle, updated_at=NOW - timedelta(hours=47))


def test_sla_response_is_breached_only_while_new() -> None:
    ruleset = one_rule('when = { sla_breached = "response" }', head=SLA)
    p1 = {"impact": Impact.HIGH, "urgency": Urgency.HIGH}
    assert run(ruleset, opened(0.5, **p1)).firings
    assert not run(ruleset, opened(0.2, **p1)).firings        # 12 min < 15 min
    assert not run(ruleset, opened(0.5, status=Status.IN_PROGRESS, **p1)).firings
    assert run(ruleset, opened(5)).firings                    # P3: 4h response
    assert not run(ruleset, opened(5, impact=Impact.LOW, urgency=Urgency.LOW)).firings  # no P5


def test_sla_resolution_is_breached_while_open() -> None:
    ruleset = one_rule('when = { sla_breached = "resolution" }', head=SLA)
    p1 = {"impact": Impact.HIGH, "urgency": Urgency.HIGH}
    assert run(ruleset, opened(5, status=Status.ON_HOLD, **p1)).firings
    assert not run(ruleset, opened(3, status=Status.ON_HOLD, **p1)).firings
    assert not run(ruleset, opened(5, status=Status.RESOLVED, **p1)).firings
    assert not run(ruleset, Incident(**p1)).firings            # never opened: no SLA clock


def test_explain_says_why_a_rule_fired() -> None:
    ruleset = one_rule('when.all = [ { text_contains = ["ransomware"] },'
                       ' { field = "priority", lte = 2 } ]')
    outcome = run(ruleset, Incident(title="Ransomware on FS01", impact=Impact.HIGH))
    (match,) = outcome.matches
    assert match.reason == "text contains: 'Ransomware' in title and priority <= 2 (is 2)"
    sla = one_rule('when = { sla_breached = "any" }', head=SLA)
    (match,) = run(sla, opened(26, status=Status.IN_PROGRESS)).matches
    assert match.reason == "P3 resolution target 1d breached (open for 1d2h)"


def test_keywords_match_the_same_with_and_without_the_fast_prefilter() -> None:
    # IGNORECASE knows more case pairs than str.lower: "ſ" (long s) matches "s", so the
    # substring prefilter reads texts folded with those letters made ASCII.
    ruleset = one_rule('when = { text_contains = ["password", "café outage"] }')
    assert fires(ruleset, title="paſſword expired")
    assert fires(ruleset, description="Café OUTAGE in Lyon")
    assert fires(ruleset, title="Mot de passe: PassWord oublié")
    assert not fires(ruleset, title="Passwörter")


def test_regexes_get_the_fixed_text_every_match_holds_as_prefilter() -> None:
    outage = r'(?i)\b(server|host)s?\b[^.\n]{0,30}\b(is|are)\s+down\b'
    assert regex_needles(re.compile(outage)) == (("down", "host"), ("down", "server"))
    assert regex_needles(re.compile(r"(?i)\b(ORA|TNS)-\d{5}")) == (("-", "ora"), ("-", "tns"))
    assert regex_needles(re.compile(r"^INC\d+ (closed|done)")) == (("inc", " ", "closed"),
                                                                   ("inc", " ", "done"))
    assert regex_needles(re.compile(r"abc\d+wxyz")) == (("wxyz", "abc"),)
    # No fixed text every match must hold, or one the prefilter cannot trust: none.
    for pattern in (r"\d+", r"a|b", r"(?i:abc)d*", r"x*", r"(ab|\d)", r"\u00e9\u00e9"):
        assert regex_needles(re.compile(pattern)) is None, pattern


def test_keywords_prefilter_on_all_their_words() -> None:
    assert keyword_needles(["password", "passwords", "password reset", "need access",
                            "needs access", "locked out"]) == (
        ("locked", "out"), ("need", "access"), ("password",))
    assert keyword_needles(["pass*", "café outage"]) == (("outage",), ("pass",))
    assert keyword_needles(["café"]) is None   # no ASCII word to look for


def test_a_regex_matches_the_same_with_and_without_its_prefilter() -> None:
    ruleset = one_rule(r"""when = { matches = '(?i)\bservers?\b[^.\n]{0,30}\bis\s+down\b' }""")
    assert fires(ruleset, title="Mail server is DOWN")
    assert fires(ruleset, title="ſerver is down")   # folded: "server is down"
    assert fires(ruleset, title="Database server İS down in İzmir")
    assert not fires(ruleset, title="Mail server is fine", description="is it down? no")


_WORDS = st.sampled_from(["down", "Down", "server", "SERVERS", "is", "are", "ora", "x"])
_PIECES = st.one_of(
    _WORDS.map(re.escape),
    st.sampled_from([r"\s+", r"\b", r"\d*", r"[^.\n]{0,5}", r".", r"s?", " ", "-"]),
    st.lists(_WORDS.map(re.escape), min_size=2, max_size=3).map(lambda w: f"({'|'.join(w)})"),
    st.lists(_WORDS.map(re.escape), min_size=2, max_size=3).map(lambda w: f"(?:{'|'.join(w)})?"),
)
_TEXTS = st.lists(st.one_of(_WORDS, st.sampled_from([" ", "  ", ".", "-", "7", "\n", "ſ"])),
                  max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_PIECES, min_size=1, max_size=6), ignore_case=st.booleans(),
       text=_TEXTS)
def test_the_regex_prefilter_never_refuses_a_text_the_regex_matches(
        pieces: list[str], ignore_case: bool, text: str) -> None:
    pattern = re.compile(("(?i)" if ignore_case else "") + "".join(pieces))
    needles = regex_needles(pattern)
    if needles is not None and text.isascii() and pattern.search(text):
        assert _complete(needles, text.lower()), (pattern, text)


@settings(max_examples=300, deadline=None)
@given(keywords=st.lists(st.lists(_WORDS, min_size=1, max_size=3).map(" ".join)
                         .map(lambda k: k + "*" if len(k) % 3 == 0 else k),
                         min_size=1, max_size=4),
       title=_TEXTS, description=_TEXTS)
def test_keyword_tests_answer_what_their_regex_answers(
        keywords: list[str], title: str, description: str) -> None:
    # The prefilters (joined texts, then each text) only ever skip the regex where
    # it could not match: the answer is the regex's own, field by field.
    condition = compile_condition(ConditionSpec(text_contains=keywords), None)
    pattern = keyword_pattern(keywords)
    expected = bool(pattern.search(title) or pattern.search(description))
    incident = Incident(title=title, description=description)
    assert condition.holds(View(incident), None) is expected
