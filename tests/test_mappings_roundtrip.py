"""Round-trip stability of the default profile (hypothesis).

For every field that travels to a side, reading back what ``to_fields`` wrote gives
the neutral value again, on both sides and with both Jira text formats; where it
cannot (cut text, lossy maps, fallbacks), the loss is reported, deterministic and
stable: writing what was read back writes the same thing again.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.mapper import MappingContext, to_fields, to_incident
from mappings.model import Escalation, Impact, Incident, Priority, Status, Urgency
from mappings.profile import load_profile
from mappings.transforms import cut, utf16_len

PROFILE = load_profile("default")
SITE_FIELDS = {
    "Impact": "customfield_10004", "Urgency": "customfield_10005",
    "Assignment group": "customfield_10006", "Subcategory": "customfield_10007",
    "Resolution notes": "customfield_10008", "Escalation": "customfield_10009",
}
CONTEXTS = [
    ("servicenow", MappingContext()),
    ("jira", MappingContext(text_format="adf", field_ids=SITE_FIELDS)),
    ("jira", MappingContext(text_format="wiki", field_ids=SITE_FIELDS)),
    ("jira", MappingContext(text_format="plain", field_ids=SITE_FIELDS)),
]
# Where a loss may legitimately happen; anything else must round-trip exactly.
MAY_LOSE = {
    "servicenow": {"title", "resolution_code", "resolution_notes", "custom.hold_reason"},
    "jira": {"title", "description", "resolution_code", "resolution_notes", "priority",
             "labels", "category"},
}

_FRAGMENTS = [
    "VPN", " down ", "Kraków", "🔥", "👩‍💻", "数据库", "naïve", "*", "**bold**", "_x_", "{code}",
    "{{mono}}", "[link](https://ex.com/a)", "[x|https://ex.com]", "# ", "h1. ", "bq. ", "- ",
    "1. ", "```", "\\", "\\\\", "&amp;", "&#92;", "|", "||", "----", "(y)", ":)", "\n", "\n\n",
    "\r\n", "  ", "https://wiki.example.com/a_b?c=1&d=2", "ORA-01653", "~~", "+", "^", "?",
    "!", "<b>", "@Dana",
]
markdownish = st.lists(st.sampled_from(_FRAGMENTS), max_size=30).map("".join)
text = st.one_of(st.text(max_size=120), markdownish)
long_text = st.integers(min_value=200, max_value=400).map(lambda n: "é😀x\n" * n)
some_text = st.one_of(text, text, long_text)
nonblank = st.one_of(st.text(min_size=1, max_size=60), markdownish).map(str.strip).filter(bool)
emails = st.one_of(
    st.sampled_from(["alice.smith@example.com", "elif.yilmaz@example.com"]),
    st.emails().map(str.lower),
)
labels = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Z", "C")), min_size=1, max_size=12),
    max_size=5,
).map(lambda xs: sorted({x for x in xs if not x.startswith("snow-")}))
close_codes = st.sampled_from([
    "Solution provided", "Workaround provided", "Duplicate", "Known error",
    "No resolution provided", "Resolved by caller", "User error",
])

incidents = st.builds(
    Incident,
    title=some_text,
    description=some_text,
    status=st.sampled_from(Status),
    impact=st.sampled_from(Impact),
    urgency=st.sampled_from(Urgency),
    priority=st.none() | st.sampled_from(Priority),
    category=st.none() | st.sampled_from(["network", "software", "database"]) | nonblank,
    subcategory=st.none() | nonblank,
    assignment_group=st.none() | nonblank,
    assignee=st.none() | emails,
    caller=st.none() | emails,
    resolution_code=st.none() | close_codes,
    resolution_notes=st.none() | some_text.filter(bool),
    escalation=st.sampled_from(Escalation),
    labels=labels,
    custom=st.one_of(st.just({}), st.builds(lambda v: {"hold_reason": v},
                                            st.sampled_from(["1", "3", "4", "5"]))),
)


def _value(incident: Incident, name: str) -> Any:
    if name.startswith("custom."):
        return incident.custom.get(name[len("custom."):])
    return getattr(incident, name)


def _travelling(side: str) -> list[str]:
    return [name for name in PROFILE.neutral_fields() if PROFILE.travels(name, side)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incident=incidents, which=st.sampled_from(range(len(CONTEXTS))))
def test_written_fields_read_back_as_the_neutral_values(incident: Incident, which: int) -> None:
    side, ctx = CONTEXTS[which]
    written = to_fields(side, incident, PROFILE, ctx)
    back = to_incident(side, written.fields, PROFILE, ctx)
    lossy = {loss.split(":", 1)[0] for loss in written.losses}
    assert lossy <= MAY_LOSE[side], written.losses
    for name in _travelling(side):
        if name not in lossy:
            assert _value(back, name) == _value(incident, name), name
    # Stable: what was read back writes exactly the same fields again.
    assert to_fields(side, back, PROFILE, ctx).fields == written.fields


@settings(max_examples=60, deadline=None)
@given(incident=incidents, which=st.sampled_from(range(len(CONTEXTS))))
def test_mapping_is_deterministic(incident: Incident, which: int) -> None:
    side, ctx = CONTEXTS[which]
    copy = Incident.model_validate(incident.model_dump())
    assert to_fields(side, incident, PROFILE, ctx) == to_fields(side, copy, PROFILE, ctx)


@settings(max_examples=80, deadline=None)
@given(title=text.filter(lambda t: t.strip() and "\n" not in t and "\r" not in t
                         and utf16_len(t) <= 255))
def test_titles_that_fit_jira_are_not_lossy(title: str) -> None:
    _, ctx = CONTEXTS[1]
    written = to_fields("jira", Incident(title=title), PROFILE, ctx, only=["title"])
    assert written.losses == []
    assert to_incident("jira", written.fields, PROFILE, ctx).title == title


@settings(max_examples=150, deadline=None)
@given(value=st.text(max_size=80), limit=st.integers(min_value=2, max_value=40),
       marker=st.sampled_from(["…", "[…]", "~"]))
def test_cut_is_idempotent_and_fits(value: str, limit: int, marker: str) -> None:
    if utf16_len(marker) >= limit:
        return
    once = cut(value, limit, marker)
    assert utf16_len(once) <= limit
    assert cut(once, limit, marker) == once
    if utf16_len(value) <= limit:
        assert once == value


def test_description_longer_than_jira_allows_is_cut_once_and_reported() -> None:
    incident = Incident(description="Log line with *stars* and [brackets]\n" * 1200)
    for _, ctx in CONTEXTS[1:]:
        written = to_fields("jira", incident, PROFILE, ctx, only=["description"])
        assert [loss.split(":")[0] for loss in written.losses] == ["description"]
        raw = written.fields["description"]
        if isinstance(raw, str):
            assert utf16_len(raw) <= 32767  # the escaped wiki is what Jira stores
        back = to_incident("jira", written.fields, PROFILE, ctx)
        assert back.description.endswith("…") and utf16_len(back.description) <= 32767
        again = to_fields("jira", back, PROFILE, ctx, only=["description"])
        assert again.fields == written.fields and again.losses == []


def test_every_status_round_trips_on_both_sides() -> None:
    for side, ctx in CONTEXTS[:2]:
        for status in Status:
            written = to_fields(side, Incident(status=status), PROFILE, ctx, only=["status"])
            assert to_incident(side, written.fields, PROFILE, ctx).status is status
