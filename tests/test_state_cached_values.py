"""The state store keeps small cached values per connection (site fields, a tool's clock).

Every test runs on SQLite and PostgreSQL (``state_url``, see conftest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sync.state import StateStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_kept_value_comes_back_with_its_time_and_is_replaced_by_the_next(
        state_url: str) -> None:
    with StateStore(state_url) as store:
        assert store.cached_value("site_fields|jira|https://example.atlassian.net") is None
        store.keep_value("site_fields|jira|https://example.atlassian.net", "[1, 2]", at=T0)
        later = T0 + timedelta(minutes=5)
        store.keep_value("site_fields|jira|https://example.atlassian.net", "[3]", at=later)
        assert store.cached_value("site_fields|jira|https://example.atlassian.net") == (
            "[3]", later)


def test_kept_values_belong_to_their_connection(state_url: str) -> None:
    long_name = "tool_clock|servicenow|" + "https://a-very-long-instance-name.example" * 3
    with StateStore(state_url, connection="ops") as ops, \
            StateStore(state_url, connection="hr") as hr:
        ops.keep_value(long_name, "ops value", at=T0)
        assert hr.cached_value(long_name) is None
        hr.keep_value(long_name, "hr value", at=T0)
        assert ops.cached_value(long_name) == ("ops value", T0)
        assert hr.cached_value(long_name) == ("hr value", T0)
