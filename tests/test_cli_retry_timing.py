"""Retry timing through the CLI and the sandboxes: a queued item is retried when it is due.

The CLI runs on the real clock, so with ``retry_base_seconds = 60`` a run right
after a failure finds the item waiting; ``run --retry-now`` takes it at once.
The summary's ``failed`` count is what the retry queue holds after the run, and
``status`` shows each item's next attempt and last error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import linked_pair, sn_incident, store_of
from typer.testing import CliRunner

from connectors.sandbox.http import Fault
from sync.cli.main import app

runner = CliRunner()


def run(config: Path, *extra: str) -> Any:
    return runner.invoke(app, ["run", "--config", str(config), *extra])


def puts_to(jira: Any, key: str) -> int:
    return jira.log.count(method="PUT", path=f"/rest/api/3/issue/{key}")


def failing_edit(sandboxes: Any, sync_config: Any, make_engine: Any) -> tuple[Path, str, str]:
    """A linked pair whose ServiceNow edit Jira refuses (500) on every attempt of one run."""
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine,
                                      retry_base_seconds=60)
    servicenow.update("incident", sys_id, {"short_description": "VPN down again"})
    jira.faults.script.extend(
        Fault("500", method="PUT", path=f"/rest/api/3/issue/{key}") for _ in range(5))
    return config, sys_id, key


def test_a_run_right_after_a_failure_leaves_the_waiting_item_alone(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = failing_edit(sandboxes, sync_config, make_engine)
    first = run(config)
    assert first.exit_code == 1, first.output
    assert "failed 1," in first.output.splitlines()[-1]
    jira.faults.script.clear()
    # The other record of the pair moves too: still not a reason to retry early.
    jira.edit_issue(key, {"labels": ["vpn"]})
    jira.log.clear()

    second = run(config)

    # Not due for a minute: untouched, still counted as failed, still exit 1.
    assert second.exit_code == 1, second.output
    assert "failed 1," in second.output.splitlines()[-1]
    assert puts_to(jira, key) == 0
    assert jira.issue(key)["fields"]["summary"] == "VPN down"
    with store_of(config) as store:
        (item,) = store.retry_items()
    assert (item.record_id, item.attempts) == (sys_id, 1)

    retried = run(config, "--retry-now")

    assert retried.exit_code == 0, retried.output
    assert "failed 0," in retried.output.splitlines()[-1]
    assert jira.issue(key)["fields"]["summary"] == "VPN down again"
    with store_of(config) as store:
        assert store.retry_items() == []
    assert servicenow.get("incident", sys_id)["short_description"] == "VPN down again"
    assert jira.issue(key)["fields"]["labels"] == ["vpn"]


# A category the project has no component for is refused by Jira: only where the category
# travels in components, the jsm-extended profile on the extended site (a stock site takes
# any category as a label).
@pytest.mark.parametrize("jira_fields", ["extended"], indirect=True)
def test_a_failed_create_waits_for_its_turn_too(
    sandboxes: Any, sync_config: Any
) -> None:
    servicenow, jira = sandboxes
    sn_incident(servicenow, "Badly categorised", category="facilities")  # refused by Jira
    config = sync_config(retry_base_seconds=60, mapping="jsm-extended")
    assert run(config).exit_code == 1
    jira.log.clear()

    again = run(config)

    assert again.exit_code == 1
    assert "failed 1," in again.output.splitlines()[-1]
    assert jira.log.count(method="POST", path="/rest/api/3/issue") == 0
    assert not jira.issue_keys()


def test_status_shows_next_attempt_and_last_error_of_each_item(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    config, sys_id, _ = failing_edit(sandboxes, sync_config, make_engine)
    assert run(config).exit_code == 1

    table = runner.invoke(app, ["status", "--config", str(config)])
    document = json.loads(runner.invoke(
        app, ["status", "--config", str(config), "--format", "json"]).output)

    assert table.exit_code == 0, table.output
    assert "Retry queue: 0 due, 1 waiting, 0 parked" in table.output
    assert "Next attempt" in table.output and "Last error" in table.output
    (item,) = document["retry_queue"]
    assert (item["record_id"], item["state"], item["attempts"]) == (sys_id, "waiting", 1)
    assert item["next_attempt"] and "500" in item["last_error"]
    with store_of(config) as store:
        (queued,) = store.retry_items()
    assert item["next_attempt"] == queued.next_attempt.isoformat()


# A category the project has no component for is refused by Jira: only where the category
# travels in components, the jsm-extended profile on the extended site (a stock site takes
# any category as a label).
@pytest.mark.parametrize("jira_fields", ["extended"], indirect=True)
def test_retry_now_also_takes_a_parked_item_and_the_next_run_leaves_it_parked(
    sandboxes: Any, sync_config: Any
) -> None:
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "Badly categorised", category="facilities")  # refused by Jira
    config = sync_config(max_attempts=1, mapping="jsm-extended")
    parked = run(config)
    assert parked.exit_code == 1 and "failed 1," in parked.output.splitlines()[-1]
    # Parked by that run: later runs leave it alone and are clean again.
    jira.log.clear()
    assert run(config).exit_code == 0
    assert jira.log.count(method="POST", path="/rest/api/3/issue") == 0

    forced = run(config, "--retry-now")

    assert forced.exit_code == 1, forced.output
    assert jira.log.count(method="POST", path="/rest/api/3/issue") >= 1
    with store_of(config) as store:
        (item,) = store.retry_items()
    assert (item.record_id, item.attempts, item.parked) == (sn["sys_id"], 2, True)
