"""Idle is idle: a run where nothing changed asks each tool almost nothing, whatever N is.

Over the HTTP sandboxes with 200 incidents synced, runs built as ``incident-sync
run`` builds them (the mapping checked against both sites' fields), ten minutes
apart: once the first run after the initial sync has seen the echoes of the
sync's own writes, every later idle run costs at most 4 requests per side
besides signing in, counted in the sandboxes' request logs; the site fields
come from the state store, and the watermarks have passed the echoes.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from conftest import no_sleep_retry
from sync_helpers import sn_incident

N = 200
IDLE_BUDGET = 4


def measured_run(config: Path, clock: Any, sandboxes: Any) -> tuple[Any, dict[str, int]]:
    """One run as the CLI builds it; per side, the requests it made beyond signing in."""
    from sync.factory import build_engine, open_store
    from sync.settings import load_settings

    servers = dict(zip(("servicenow", "jira"), sandboxes, strict=True))
    settings = load_settings(config)
    store = open_store(settings)
    engine = build_engine(settings, store, retry=no_sleep_retry(), clock=clock,
                          site_check=True)
    sign_in = {side: 0 for side in servers}
    for side, connector in engine.connectors.items():
        original = connector.open

        def counted_open(_original: Any = original, _side: str = side) -> Any:
            before = len(servers[_side].log.entries)
            try:
                return _original()
            finally:
                sign_in[_side] += len(servers[_side].log.entries) - before

        connector.open = counted_open  # type: ignore[method-assign]
    for server in servers.values():
        server.log.clear()
    try:
        summary = engine.run()
    finally:
        engine.close()
        store.close()
    return summary, {side: len(server.log.entries) - sign_in[side]
                     for side, server in servers.items()}


def test_idle_runs_cost_at_most_four_requests_per_side_besides_signing_in(
    sandboxes: Any, sync_config: Any, clock: Any,
) -> None:
    servicenow, _ = sandboxes
    # The test clock moves on every read; at a second a read, a run over 200 pairs
    # would age the kept site fields past their hour by itself.
    clock.step = timedelta(milliseconds=10)
    for n in range(N):
        sn_incident(servicenow, f"Incident {n}: printer on floor {n % 7} offline")
    config = sync_config()
    first, _ = measured_run(config, clock, sandboxes)
    assert first.created == N and first.failed == 0, first.failures

    clock.advance(minutes=10)
    echo, _ = measured_run(config, clock, sandboxes)   # sees the echoes of the first run
    assert echo.updated == 0 and echo.failed == 0, echo.failures
    for _ in range(2):
        clock.advance(minutes=10)
        idle, spent = measured_run(config, clock, sandboxes)
        assert idle.updated == 0 and idle.created == 0 and idle.failed == 0, idle.failures
        assert spent["servicenow"] <= IDLE_BUDGET and spent["jira"] <= IDLE_BUDGET, spent
