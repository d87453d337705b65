"""Retry queue backoff and parking, as properties over sequences of failures.

The store is shared by the module's examples, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.state import MAX_RETRY_DELAY, StateStore, retry_delay

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
_record_numbers = itertools.count()


@pytest.fixture(scope="module")
def store(module_state_url: str) -> Iterator[StateStore]:
    with StateStore(module_state_url) as opened:
        yield opened


@settings(max_examples=30, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12),
    base=st.floats(min_value=0, max_value=7200, allow_nan=False),
    max_attempts=st.integers(min_value=1, max_value=8),
    side=st.sampled_from(["servicenow", "jira"]),
)
def test_failures_back_off_monotonically_and_park_at_max(
    store: StateStore, gaps: list[int], base: float, max_attempts: int, side: str
) -> None:
    # A fresh record per example: the module's store is shared between examples.
    record_id = f"rec-{next(_record_numbers)}"
    now = T0
    previous = None
    for expected_attempts, gap in enumerate(gaps, start=1):
        now += timedelta(seconds=gap)
        item = store.record_failure(side, record_id, f"failure {expected_attempts}", now=now,
                                    base_seconds=base, max_attempts=max_attempts)
        assert item.attempts == expected_attempts
        assert item.parked == (item.attempts >= max_attempts)
        assert now <= item.next_attempt <= now + MAX_RETRY_DELAY
        if previous is not None:
            assert item.attempts == previous.attempts + 1
            assert item.next_attempt >= previous.next_attempt
        stored = [r for r in store.retry_items() if r.record_id == record_id and r.side == side]
        assert stored == [item]
        due = [r.record_id for r in store.due_retries(side, item.next_attempt)]
        assert (record_id in due) == (not item.parked)
        previous = item


@settings(max_examples=60, deadline=None)
@given(
    record_id=st.text(min_size=1, max_size=40),
    base=st.floats(min_value=0.001, max_value=86400, allow_nan=False),
    attempts=st.integers(min_value=1, max_value=200),
)
def test_delay_doubles_within_jitter_and_is_capped_at_a_day(
    record_id: str, base: float, attempts: int
) -> None:
    delay = retry_delay("jira", record_id, attempts, base)
    following = retry_delay("jira", record_id, attempts + 1, base)
    assert delay == retry_delay("jira", record_id, attempts, base)  # deterministic
    assert delay <= following <= MAX_RETRY_DELAY
    unjittered = base * 2 ** min(attempts - 1, 40)
    if unjittered * 1.25 < MAX_RETRY_DELAY.total_seconds():
        assert unjittered <= delay.total_seconds() <= unjittered * 1.25 + 1e-6


def test_jitter_spreads_records_that_fail_together() -> None:
    delays = {retry_delay("servicenow", f"sys{n}", 1, 60.0) for n in range(20)}
    assert len(delays) > 10


def test_zero_attempts_is_not_a_failure() -> None:
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        retry_delay("jira", "OPS-1", 0, 60.0)
