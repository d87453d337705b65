"""Exit statuses when a tool is slow or silent, through the CLI against the sandboxes.

A tool that accepts the connection but never answers while we sign in could not
be reached (exit 3, like a refused connection); a request timing out during the
run is one item's failure: it waits in the retry queue and the run exits 1.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sync_helpers import linked_pair, store_of
from typer.testing import CliRunner

import connectors.retry as retry_module
from connectors.sandbox.http import Fault
from sync.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's own retry policy, with its jittered backoff drawn as zero seconds."""
    monkeypatch.setattr(retry_module, "random", SimpleNamespace(random=lambda: 0.0))


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port whose kernel completes every connection and nobody ever answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def with_setting(config: Path, section: str, line: str, *, replace: tuple[str, str] = ("", "")
                 ) -> Path:
    """``config`` with ``line`` added at the top of ``[section]`` (and a text replaced)."""
    text = config.read_text(encoding="utf-8")
    if replace[0]:
        text = text.replace(replace[0], replace[1])
    text = text.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)
    config.write_text(text, encoding="utf-8")
    return config


def test_a_servicenow_that_never_answers_while_signing_in_exits_3(
    sandboxes: Any, sync_config: Any, silent_server: str
) -> None:
    servicenow, _ = sandboxes
    config = with_setting(sync_config(), "servicenow", "timeout = 0.2",
                          replace=(servicenow.url, silent_server))

    result = runner.invoke(app, ["run", "--config", str(config)])

    assert result.exit_code == 3, result.output
    (line,) = [x for x in result.output.splitlines() if x.strip()]
    assert line.startswith("incident-sync: ServiceNow could not be reached while signing in")
    assert "Traceback" not in result.output
    with store_of(config) as store:
        (run,) = store.runs()
    assert run.outcome == "error" and "could not be reached" in (run.error or "")


def test_a_jira_that_never_answers_while_signing_in_exits_3(
    sandboxes: Any, sync_config: Any, silent_server: str
) -> None:
    _, jira = sandboxes
    config = with_setting(sync_config(), "jira", "timeout = 0.2",
                          replace=(jira.url, silent_server))

    result = runner.invoke(app, ["run", "--config", str(config)])

    assert result.exit_code == 3, result.output
    assert "Jira could not be reached while signing in" in result.output
    assert "no answer within 0.2s" in result.output
    assert "sandbox" not in result.output  # the token (the sandbox password) never shows


def test_a_jira_sign_in_answered_too_slowly_by_the_sandbox_exits_3(
    sandboxes: Any, sync_config: Any
) -> None:
    _, jira = sandboxes
    config = with_setting(sync_config(), "jira", "timeout = 0.2")
    jira.faults.latency_ms = 600   # every request, the sign-in included

    result = runner.invoke(app, ["run", "--config", str(config)])

    assert result.exit_code == 3, result.output
    assert "Jira could not be reached while signing in" in result.output


def test_a_timeout_during_the_run_sends_the_item_to_the_retry_queue_and_exits_1(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine)
    # Short timeout and stalls: the five attempts cost 5 x 0.5 s of wall time, not 5 x 1 s.
    with_setting(config, "jira", "timeout = 0.5")
    servicenow.update("incident", sys_id, {"short_description": "VPN down for everyone"})
    # Every attempt at the edit answers after the client gave up (an edit is idempotent,
    # so the connector tries it up to its limit of 5 times).
    jira.faults.script.extend(
        Fault("stall", delay_ms=1200, method="PUT", path=f"/rest/api/3/issue/{key}")
        for _ in range(5))

    result = runner.invoke(app, ["run", "--config", str(config)])

    assert result.exit_code == 1, result.output
    assert "failed 1" in result.output.splitlines()[-1]
    with store_of(config) as store:
        (item,) = store.retry_items()
    assert (item.side, item.record_id, item.parked) == ("servicenow", sys_id, False)
    assert "no answer within 0.5s" in item.last_error

    # The tool answers in time again: the next run completes the item.
    again = runner.invoke(app, ["run", "--config", str(config)])
    assert again.exit_code == 0, again.output
    with store_of(config) as store:
        assert store.retry_items() == []
    assert jira.issue(key)["fields"]["summary"] == "VPN down for everyone"
