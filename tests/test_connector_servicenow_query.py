"""Encoded-query building: escaping rule, IN lists, scope segments, keyset pages.

The structure checks parse what we build with the sandbox's encoded-query parser,
the stand-in for the instance's: a hostile value must come back as exactly one
condition holding exactly that value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sandbox.sn_query import EncodedQuery, parse
from connectors.servicenow_query import (
    any_of,
    check_field,
    check_sys_id,
    combine,
    equals,
    escape_value,
    parse_sn_time,
    pull_query,
    scope_segments,
    sn_time,
    split_top_level,
)

KINDS = {"correlation_id": "string", "short_description": "string", "active": "boolean",
         "category": "string", "sys_updated_on": "datetime", "sys_id": "string",
         "state": "integer", "priority": "integer"}
HOSTILE = ["OPS-1^ORactive=false", "x^NQactive=true", "a^^b", "^", "^^^", "line\nnext",
           'quote"', "back\\slash", "x^ORDERBYDESCnumber", ") OR project = X", "ünï^cødé",
           "a,b", "ends with caret^", "^ORshort_description=x", "=", "NQ", "ORx"]


def parsed(query: str) -> EncodedQuery:
    return parse(query, KINDS.get)


def conditions(query: EncodedQuery) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.column, c.op, c.values) for group in query.groups for clause in group
            for c in clause]


def test_caret_is_doubled_and_nothing_else_changes() -> None:
    assert escape_value("a^b^^c") == "a^^b^^^^c"
    assert escape_value("line\nnext \"q\" \\") == "line\nnext \"q\" \\"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_value_stays_one_condition_with_that_exact_value(value: str) -> None:
    query = parsed(f"active=true^{equals('correlation_id', value)}^ORDERBYsys_id")
    assert conditions(query) == [("active", "=", ("true",)), ("correlation_id", "=", (value,))]
    assert len(query.groups) == 1 and not query.ignored
    assert [o.column for o in query.orders] == ["sys_id"]


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_any_text_value_round_trips_through_the_parser(value: str) -> None:
    query = parsed(equals("correlation_id", value))
    assert conditions(query) == [("correlation_id", "=", (value,))]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6, unique=True))
def test_any_of_matches_exactly_the_given_values(values: list[str]) -> None:
    query = parsed(any_of("correlation_id", values))
    assert len(query.groups) == 1 and len(query.groups[0]) == 1
    matched = {v for v in values if query.matches(lambda col, v=v: v)}
    assert matched == set(values)
    assert not query.matches(lambda col: "".join(values) + "-other")


def test_values_with_commas_leave_the_in_list_for_an_or_alternative() -> None:
    assert any_of("correlation_id", ["A", "B,C", "D^E"]) == (
        "correlation_idINA,D^^E^ORcorrelation_id=B,C"
    )


def test_field_names_are_validated_not_escaped() -> None:
    assert check_field("caller_id.email") == "caller_id.email"
    for bad in ("", "a=b", "x^y", "a.b.c", "1abc", "short description"):
        with pytest.raises(ValueError, match="not a ServiceNow field name"):
            check_field(bad)
    assert check_sys_id("0123abcdef") == "0123abcdef"
    with pytest.raises(ValueError, match="sys_id"):
        check_sys_id("../incident")


def test_split_ignores_escaped_carets() -> None:
    assert split_top_level("a=1^^NQb^NQc=2", "^NQ") == ["a=1^^NQb", "c=2"]
    assert split_top_level("a=1^b=x^^y", "^") == ["a=1", "b=x^^y"]


def test_scope_segments_drop_sorting_and_keep_each_segment() -> None:
    assert scope_segments("active=true^ORDERBYnumber^NQcategory=network^ORDERBYDESCx") == [
        "active=true", "category=network"]


def test_our_conditions_narrow_every_segment_of_an_or_scope() -> None:
    query = parsed(combine("category=network^NQcategory=database", [["state=2"]]))
    assert [[c[0] for c in conditions(EncodedQuery((g,), (), ()))] for g in query.groups] == [
        ["category", "state"], ["category", "state"]]
    row = {"category": "database", "state": "1"}
    assert not query.matches(lambda col: row.get(col, ""))


def test_timestamps_are_utc_literals_and_must_be_aware() -> None:
    cet = timezone(timedelta(hours=1))
    assert sn_time(datetime(2026, 1, 5, 10, 0, 1, 999, tzinfo=cet)) == "2026-01-05 09:00:01"
    with pytest.raises(ValueError, match="timezone-aware"):
        sn_time(datetime(2026, 1, 5))
    assert parse_sn_time("2026-01-05 09:00:01") == datetime(2026, 1, 5, 9, 0, 1, tzinfo=UTC)
    assert parse_sn_time("") is None
    with pytest.raises(ValueError, match="not a ServiceNow UTC timestamp"):
        parse_sn_time("yesterday")


def test_first_page_filters_by_watermark_and_orders_stably() -> None:
    since = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert pull_query("active=true", since) == (
        "active=true^sys_updated_on>=2026-01-05 09:00:00^ORDERBYsys_updated_on^ORDERBYsys_id")
    assert pull_query("", None) == "ORDERBYsys_updated_on^ORDERBYsys_id"


def test_next_page_starts_strictly_after_the_last_key() -> None:
    query = parsed(pull_query("active=true", None, ("2026-01-05 09:00:00", "bbb")))
    def row(updated: str, sys_id: str) -> bool:
        values = {"active": "true", "sys_updated_on": updated, "sys_id": sys_id}
        return query.matches(lambda col: values.get(col, ""))
    assert not row("2026-01-05 09:00:00", "aaa")
    assert not row("2026-01-05 09:00:00", "bbb")
    assert row("2026-01-05 09:00:00", "ccc")
    assert row("2026-01-05 09:00:01", "aaa")
    assert not row("2026-01-05 08:59:59", "zzz")
