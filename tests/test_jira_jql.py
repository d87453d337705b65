"""JQL quoting and builders: hostile values stay inside their literal, markers are exact."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.jira_jql import (
    field_clause,
    foreign_id_from_label,
    is_issue_key,
    jql_datetime,
    keys_jql,
    marker_label,
    markers_jql,
    pull_jql,
    quotable,
    quote,
    status_probe_jql,
    validate_scope_jql,
)

HOSTILE = [
    '") OR project = X',
    'a"b',
    "back\\slash",
    'ends with \\',
    '\\"',
    "line\nbreak",
    "tab\tand\rreturn",
    "^OR^NQ",
    "' OR '1'='1",
    "ünïcødé ✓ 事件",
    "",
]

_UNESCAPE = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def read_literal(text: str) -> tuple[str, int]:
    """Parse one JQL string literal at the start of ``text``: (value, chars consumed)."""
    assert text[0] == '"'
    out: list[str] = []
    i = 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            out.append(_UNESCAPE[text[i + 1]])
            i += 2
        elif char == '"':
            return "".join(out), i + 1
        else:
            out.append(char)
            i += 1
    raise AssertionError(f"literal never closed: {text!r}")


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_value_is_one_literal_that_decodes_back(value: str) -> None:
    literal = quote(value)
    decoded, consumed = read_literal(literal)
    assert consumed == len(literal)
    assert decoded == value
    assert "\n" not in literal and "\r" not in literal


@settings(max_examples=150)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"))).filter(bool)
       | st.sampled_from(HOSTILE))
def test_any_printable_text_round_trips_through_quote(value: str) -> None:
    literal = quote(value)
    assert read_literal(literal) == (value, len(literal))


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x85"])
def test_unescapable_control_character_is_refused_with_its_position(char: str) -> None:
    with pytest.raises(ValueError, match=r"control character U\+00[0-9A-F]{2} at position 3"):
        quote("abc" + char)
    assert not quotable("abc" + char)
    assert quotable("abc\n")


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        quote(12)  # type: ignore[arg-type]


def test_pull_jql_rounds_watermark_minus_overlap_down_to_the_minute() -> None:
    since = datetime(2026, 3, 1, 10, 5, 59, 999000, tzinfo=UTC)
    jql = pull_jql("OPS", "", since, 2, UTC)
    assert jql == (
        'project = "OPS" AND updated >= "2026-03-01 10:03" ORDER BY updated ASC, key ASC'
    )


def test_pull_jql_uses_the_searching_users_time_zone() -> None:
    since = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    assert '"2026-03-02 01:28"' in pull_jql("OPS", "", since, 2, plus_two)


def test_pull_jql_wraps_the_extra_scope_and_omits_dates_for_a_full_pull() -> None:
    jql = pull_jql("OPS", 'priority = High OR labels = "x"', None, 2)
    assert jql == (
        'project = "OPS" AND (priority = High OR labels = "x") ORDER BY updated ASC, key ASC'
    )


def test_naive_watermark_is_taken_as_utc() -> None:
    assert jql_datetime(datetime(2026, 1, 2, 3, 4, 5)) == '"2026-01-02 03:04"'


@pytest.mark.parametrize("bad", ["status = Open ORDER BY created", "(a = b"])
def test_scope_jql_that_would_break_the_query_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="jql:"):
        validate_scope_jql(bad)


def test_keys_jql_quotes_keys_and_drops_malformed_ones() -> None:
    jql = keys_jql(["OPS-1", 'OPS-2") OR key = "X-1', "OPS-10", "ops-0"])
    assert jql.startswith('key in ("OPS-1", "OPS-10") ')
    with pytest.raises(ValueError):
        keys_jql(['") OR 1=1'])


def test_issue_key_shape() -> None:
    assert is_issue_key("OPS-12") and is_issue_key("A_B2-1")
    assert not is_issue_key("OPS-01") and not is_issue_key("OPS") and not is_issue_key("1-2")


ODD_IDS = [*[h for h in HOSTILE if h], "0123abcd" * 4, "50%", "snow-x"]


@pytest.mark.parametrize("foreign_id", ODD_IDS)
def test_marker_label_is_exact_and_reversible(foreign_id: str) -> None:
    label = marker_label(foreign_id)
    assert label.startswith("snow-")
    assert re.fullmatch(r"snow-[A-Za-z0-9._%-]+", label), label
    assert foreign_id_from_label(label) == foreign_id


def test_hex_sys_id_label_stays_readable() -> None:
    sys_id = "46d44a23a9fe19810012d100cca80666"
    assert marker_label(sys_id) == "snow-" + sys_id


@settings(max_examples=150)
@given(st.text(min_size=1), st.text(min_size=1))
def test_marker_labels_of_different_ids_never_collide(a: str, b: str) -> None:
    if a != b:
        assert marker_label(a) != marker_label(b)


def test_other_labels_carry_no_foreign_id() -> None:
    assert foreign_id_from_label("network") is None
    assert foreign_id_from_label("snow-") is None
    with pytest.raises(ValueError):
        marker_label("")


def test_markers_jql_by_label_and_by_custom_field() -> None:
    by_label = markers_jql(["abc", 'x") OR project = "Y'])
    assert by_label.startswith('labels in ("snow-abc", "snow-x%22%29%20OR%20project%20%3D%20%22Y")')
    by_field = markers_jql(["abc", 'q"'], "customfield_10100")
    assert by_field.startswith('(cf[10100] ~ "abc" OR cf[10100] ~ "q\\"") ORDER BY')
    assert field_clause("summary") == '"summary"'
    with pytest.raises(ValueError):
        markers_jql([])


def test_status_probe_quotes_the_status_name() -> None:
    assert status_probe_jql("OPS", 'Work "in" progress').startswith(
        'project = "OPS" AND status = "Work \\"in\\" progress"'
    )
