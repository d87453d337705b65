"""Metrics for monitoring: ``status --format openmetrics`` and ``run --metrics-file``.

The exposition is read back with ``prometheus_client``'s OpenMetrics parser, the
one a Prometheus-compatible scraper would use; the oldest unsynced change's age
is checked against its documented definition on in-memory tools.
"""

from __future__ import annotations

import os
import re
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from sync_helpers import jira_issue, sn_incident
from typer.testing import CliRunner

from connectors.base import ConnectorError
from sync import metrics
from sync.cli import run as run_command
from sync.cli.main import app
from sync.cli.store_views import run_json
from sync.state import StateStore

runner = CliRunner()

FAMILIES = {
    "incident_sync_last_run_start_timestamp_seconds",
    "incident_sync_last_run_end_timestamp_seconds",
    "incident_sync_last_success_timestamp_seconds",
    "incident_sync_last_run_duration_seconds",
    "incident_sync_last_run_success",
    "incident_sync_last_run_items",
    "incident_sync_last_run_requests",
    "incident_sync_open_conflicts",
    "incident_sync_retry_queue_items",
    "incident_sync_oldest_unsynced_change_age_seconds",
}


def parse(text: str) -> dict[str, Any]:
    """Every family of an OpenMetrics exposition, by name (the parser checks the syntax)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(families: dict[str, Any], name: str, **labels: str) -> float:
    [value] = [s.value for s in families[name].samples
               if all(s.labels.get(k) == v for k, v in labels.items())]
    return float(value)


def test_status_openmetrics_is_valid_openmetrics_named_the_prometheus_way(
    sandboxes: Any, sync_config: Any
) -> None:
    servicenow, jira = sandboxes
    sn_incident(servicenow, "Mail not syncing on phone")
    jira_issue(jira, "Monitor flickering")
    config = sync_config()
    assert runner.invoke(app, ["run", "-c", str(config)]).exit_code == 0

    result = runner.invoke(app, ["status", "-c", str(config), "--format", "openmetrics"])

    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("# EOF\n")
    families = parse(result.stdout)
    assert set(families) == FAMILIES
    for name, family in families.items():
        assert re.fullmatch(r"incident_sync_[a-z0-9_]+", name)
        # Every figure is a level or the last run's count: gauges, never named _total.
        assert family.type == "gauge" and not name.endswith("_total")
        assert family.documentation, f"{name} has no HELP"
        assert family.samples and all(s.labels["connection"] == "default"
                                      for s in family.samples)
        if "timestamp" in name or "duration" in name or "age" in name:
            assert name.endswith("_seconds")
    assert sample(families, "incident_sync_last_run_items", kind="created") == 2
    assert sample(families, "incident_sync_last_run_items", kind="failed") == 0
    assert sample(families, "incident_sync_last_run_success") == 1
    assert sample(families, "incident_sync_open_conflicts") == 0
    assert sample(families, "incident_sync_oldest_unsynced_change_age_seconds") == 0
    # Every request the run made, as the tools saw them, the sign-in included.
    assert sample(families, "incident_sync_last_run_requests",
                  vendor="servicenow", status_class="2xx") == servicenow.log.wire()
    assert sample(families, "incident_sync_last_run_requests",
                  vendor="jira", status_class="2xx") == jira.log.wire()
    start = sample(families, "incident_sync_last_run_start_timestamp_seconds")
    end = sample(families, "incident_sync_last_run_end_timestamp_seconds")
    assert start <= end == sample(families, "incident_sync_last_success_timestamp_seconds")
    assert sample(families, "incident_sync_last_run_duration_seconds") == pytest.approx(
        end - start, abs=0.002)


def test_status_openmetrics_without_a_store_is_an_empty_exposition(
    tmp_path: Path, sandboxes: Any, sync_config: Any
) -> None:
    config = sync_config()
    result = runner.invoke(app, ["status", "-c", str(config), "-f", "openmetrics"])
    assert result.exit_code == 0
    assert result.stdout == "# EOF\n"
    assert parse(result.stdout) == {}
    assert "no state store" in result.stderr


def test_status_json_keeps_the_monitoring_figures_out_of_the_counts(
    sandboxes: Any, sync_config: Any
) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "Printer jam")
    config = sync_config()
    runner.invoke(app, ["run", "-c", str(config)])
    with StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False) as store:
        (run,) = store.runs()
    assert run.counts["unsynced"] == 0 and run.counts["requests.jira.2xx"] > 0
    assert not any(key.startswith(("requests", "unsynced")) for key in run_json(run)["counts"])


# --------------------------------------------------------------------------- lag


def store_of(memory: Any) -> StateStore:
    return StateStore(f"sqlite:///{memory.tmp_path / 'state.db'}", create=False)


def lag(memory: Any, seconds_later: float) -> float:
    with store_of(memory) as store:
        families = parse(metrics.render(store, memory.clock.now + timedelta(
            seconds=seconds_later)))
    return sample(families, "incident_sync_oldest_unsynced_change_age_seconds")


def test_lag_is_the_age_of_the_oldest_queued_change_kept_across_runs(memory: Any) -> None:
    from sync_helpers import memory_incident

    sys_id = memory_incident(memory, "VPN down in Lagos")
    changed = memory.servicenow.records[sys_id].updated
    memory.jira.reject(lambda fields: "Lagos" in str(fields.get("summary")),
                       ConnectorError("refused by a validator", side="jira"))

    first = memory.run(retry_base_seconds=3600)
    assert first.failed == 1
    # Measured when scraped: the change waits, so the age grows between runs.
    base = (memory.clock.now - changed).total_seconds()
    assert lag(memory, 0) == pytest.approx(base, abs=1)
    assert lag(memory, 600) == pytest.approx(base + 600, abs=1)

    # A run that does not try the item (not due yet) carries its time over.
    memory.clock.advance(seconds=30)
    assert memory.run(retry_base_seconds=3600).failed == 1
    assert lag(memory, 0) == pytest.approx((memory.clock.now - changed).total_seconds(), abs=1)

    # A later edit of the same record that fails too: the first change is still the oldest.
    memory.clock.advance(hours=3)   # due again
    memory.servicenow.edit(sys_id, {"short_description": "VPN down in Lagos and Accra"})
    assert memory.run(retry_base_seconds=3600).failed == 1
    with store_of(memory) as store:
        (newest, *_) = store.runs()
    assert newest.counts[f"unsynced.servicenow.{sys_id}"] == int(changed.timestamp())

    # Synced at last: nothing is unsynced.
    memory.jira.clear_faults()
    memory.clock.advance(hours=3)
    assert memory.run().failed == 0
    assert lag(memory, 600) == 0
    with store_of(memory) as store:
        assert store.runs()[0].counts["unsynced"] == 0


def test_a_parked_item_keeps_counting_as_unsynced(memory: Any) -> None:
    from sync_helpers import memory_incident

    sys_id = memory_incident(memory, "Disk full on db-7")
    changed = memory.servicenow.records[sys_id].updated
    memory.jira.reject(lambda fields: "db-7" in str(fields.get("summary")),
                       ConnectorError("refused", side="jira"))
    for _ in range(2):
        memory.run(max_attempts=2)
    with store_of(memory) as store:
        [item] = store.retry_items()
        assert item.parked
    assert lag(memory, 0) == pytest.approx((memory.clock.now - changed).total_seconds(), abs=1)


# --------------------------------------------------------------------------- the file


def test_metrics_file_is_replaced_atomically_after_each_run(
    sandboxes: Any, sync_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "Badge reader offline")
    config = sync_config()
    target = tmp_path / "textfile" / "incident_sync.prom"
    target.parent.mkdir()
    replaced: list[tuple[Path, Path, str]] = []
    real_replace = os.replace

    def watch_replace(src: Any, dst: Any) -> None:
        # What a scraper can see at the switch: a complete file, in the same directory.
        replaced.append((Path(src), Path(dst), Path(src).read_text(encoding="utf-8")))
        real_replace(src, dst)

    monkeypatch.setattr(metrics.os, "replace", watch_replace)
    seen: list[str] = []
    monkeypatch.setattr(run_command, "sleep", lambda _s: seen.append(target.read_text()))

    result = runner.invoke(app, ["run", "-c", str(config), "--every", "1s", "--max-runs", "2",
                                 "--metrics-file", str(target)])

    assert result.exit_code == 0, result.output
    assert len(replaced) == 2
    for src, dst, text in replaced:
        assert dst == target and src.parent == target.parent and src != target
        assert text.endswith("# EOF\n") and parse(text)
    # After the first run the file says what that run did; after the second, the second.
    assert sample(parse(seen[0]), "incident_sync_last_run_items", kind="created") == 1
    assert sample(parse(target.read_text()), "incident_sync_last_run_items", kind="created") == 0
    assert list(target.parent.iterdir()) == [target]   # no temporary file left behind
    # Readable by node_exporter, which runs as another user.
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_metrics_file_is_written_after_a_failed_run(
    sandboxes: Any, sync_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sync_config()
    monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", "not-the-password")
    target = tmp_path / "incident_sync.prom"

    result = runner.invoke(app, ["run", "-c", str(config), "--metrics-file", str(target)])

    assert result.exit_code == 3, result.output
    families = parse(target.read_text())
    assert sample(families, "incident_sync_last_run_success") == 0
    assert "incident_sync_last_success_timestamp_seconds" not in families
    assert sample(families, "incident_sync_last_run_requests",
                  vendor="servicenow", status_class="4xx") >= 1


@pytest.mark.parametrize("where", ["missing directory", "a directory"])
def test_an_unwritable_metrics_file_is_a_config_error_before_the_run(
    sandboxes: Any, sync_config: Any, tmp_path: Path, where: str
) -> None:
    servicenow, jira = sandboxes
    config = sync_config()
    target = tmp_path / "nowhere" / "m.prom" if where == "missing directory" else tmp_path

    result = runner.invoke(app, ["run", "-c", str(config), "--metrics-file", str(target)])

    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"incident-sync: --metrics-file {target}: ")
    assert servicenow.log.count() == jira.log.count() == 0   # nothing was contacted
    assert not (config.parent / "state.db").exists()
