"""Property: a Jira pull returns every in-scope issue exactly once, whatever the page
size, the update times and an update landing in the middle of the pull."""

from __future__ import annotations

import pytest
from connector_contract import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.jira import JiraConnector
from connectors.retry import RetryPolicy
from connectors.sandbox.jira import JiraSandbox


@pytest.mark.parametrize("mode", ["cloud", "datacenter"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=90), min_size=0, max_size=14),
    page_size=st.integers(min_value=1, max_value=6),
    touch=st.none() | st.tuples(st.integers(min_value=0, max_value=13),
                                st.integers(min_value=0, max_value=13)),
)
def test_pull_returns_each_issue_once_for_any_paging(
    mode: str, gaps: list[int], page_size: int, touch: tuple[int, int] | None
) -> None:
    clock = FakeClock()
    with JiraSandbox(mode=mode, clock=clock) as sandbox:
        keys = []
        for gap in gaps:  # equal stamps (gap 0) exercise the key tie-break
            clock.advance(seconds=gap)
            keys.append(sandbox.create_issue({"summary": "p"}))
        connector = JiraConnector(sandbox.url, email="admin" if mode == "cloud" else "",
                                  token=sandbox.password, project="OPS", page_size=page_size,
                                  retry=RetryPolicy(sleep=lambda s: None))
        connector.open()
        stream = connector.pull(None, ["summary"])
        pulled = []
        for record in stream:
            pulled.append(record)
            if touch is not None and keys and len(pulled) == touch[0] % len(keys) + 1:
                clock.advance(seconds=3)
                sandbox.edit_issue(keys[touch[1] % len(keys)], {"summary": "touched"})
        ids = [r.id for r in pulled]
        assert sorted(ids) == sorted(keys) and len(ids) == len(set(ids))
        if touch is None:
            assert [r.updated for r in pulled] == sorted(r.updated for r in pulled)
        connector.close()
