"""parse_sn_time reads the Table API's shape without strptime and still answers exactly
what strptime answered (the same moment, or the same refusal) for any text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.servicenow_query import SN_TIME_FORMAT, parse_sn_time


def by_strptime(text: str) -> object:
    if not text:
        return None
    try:
        return datetime.strptime(text, SN_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return "refused"


def outcome(text: str) -> object:
    try:
        return parse_sn_time(text)
    except ValueError as error:
        assert str(error) == f"not a ServiceNow UTC timestamp: {text!r}"
        return "refused"


TEXTS = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.strftime(SN_TIME_FORMAT).rjust(19, "0")),
    st.text(alphabet="0123456789-: T\t\n\x1fZ+.", min_size=17, max_size=21),
    st.sampled_from(["", " 2026-03-02 09:00:00", "2026-03-02 09:00:00 ", "2026-02-30 09:00:00",
                     "2026-03-02 24:00:00", "2026-03-02 09:00:60", "\u0662026-03-02 09:00:00",
                     "2026-03-02 9:00:000", "+026-03-02 09:00:00", "2026-03-02 09:00:0 "]),
)


@settings(max_examples=600, deadline=None)
@given(text=TEXTS)
def test_the_fast_path_answers_what_strptime_answered(text: str) -> None:
    assert outcome(text) == by_strptime(text)


@pytest.mark.parametrize("text", ["2026-01-05 09:00:01", "1999-12-31 23:59:59",
                                  "0001-01-01 00:00:00"])
def test_table_api_stamps_are_utc(text: str) -> None:
    parsed = parse_sn_time(text)
    assert parsed == datetime.strptime(text, SN_TIME_FORMAT).replace(tzinfo=UTC)
    assert parsed is not None and parsed.tzinfo is UTC
