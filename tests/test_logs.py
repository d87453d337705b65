"""Logs a log pipeline can read: ``--log-format json`` and ``-v``/``-vv`` on real runs.

The sandboxes here are served with a password no word contains, so a leak of
it (or of the basic-auth header built from it) would show in the output.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import SANDBOX_USER, TickingClock
from sync_helpers import jira_issue, sn_incident
from typer.testing import CliRunner

from connectors.http_log import status_class, url_path
from connectors.sandbox.http import Fault
from sync import logs
from sync.cli.main import app
from sync.state import StateStore

runner = CliRunner()
SECRET = "Xq7-correct-horse-battery-77"
BASIC = base64.b64encode(f"{SANDBOX_USER}:{SECRET}".encode()).decode()


@pytest.fixture
def sandboxes(clock: TickingClock) -> Iterator[tuple[Any, Any]]:
    from connectors.sandbox.jira import JiraSandbox
    from connectors.sandbox.servicenow import ServiceNowSandbox

    servicenow = ServiceNowSandbox(username=SANDBOX_USER, password=SECRET, clock=clock)
    jira = JiraSandbox(mode="cloud", username=SANDBOX_USER, password=SECRET, clock=clock)
    with servicenow, jira:
        yield servicenow, jira


@pytest.fixture
def config(sync_config: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    path = sync_config()
    monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", SECRET)
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", SECRET)
    return path


@pytest.fixture(autouse=True)
def text_logs_after() -> Iterator[None]:
    yield
    logs.configure(0, "text")   # the next test starts from the default


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line as JSON: a line that is not fails the test."""
    lines = stderr.splitlines()
    assert lines, "nothing logged"
    return [json.loads(line) for line in lines]


def run_id_of(config: Any) -> int:
    with StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False) as store:
        return store.runs()[0].id


def test_json_lines_carry_the_run_id_connection_and_each_pair_write(
    sandboxes: Any, config: Any
) -> None:
    servicenow, jira = sandboxes
    sys_id = sn_incident(servicenow, "Mail not syncing on phone")["sys_id"]
    jira_issue(jira, "Monitor flickering")

    result = runner.invoke(app, ["-v", "--log-format", "json", "run", "-c", str(config)])

    assert result.exit_code == 0, result.output
    records = json_lines(result.stderr)
    run_id = run_id_of(config)
    for record in records:
        assert list(record)[:6] == ["time", "level", "logger", "message", "run_id",
                                    "connection"]
        assert record["time"].endswith("Z") and record["level"] in ("info", "warning")
        assert (record["run_id"], record["connection"]) == (run_id, "default")
    creates = [r for r in records if r.get("action") == "create"]
    assert len(creates) == 2
    for line in creates:
        assert line["outcome"] == "ok" and line["duration_ms"] >= 0
        assert set(line["link"]) == {"servicenow", "jira"} and all(line["link"].values())
    [to_jira] = [c for c in creates if c["side"] == "jira"]
    assert to_jira["link"]["servicenow"] == sys_id
    [end] = [r for r in records if r["message"].startswith(f"run {run_id} finished")]
    assert end["outcome"] == "ok" and end["counts"]["created"] == 2
    # -v is not -vv: no request lines.
    assert not any(r["logger"] == "connectors.http" for r in records)


def test_vv_logs_each_request_with_method_path_status_and_elapsed_ms(
    sandboxes: Any, config: Any
) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "Slow VPN", description="see https://wiki/x?token=abc")

    result = runner.invoke(app, ["-vv", "--log-format", "json", "run", "-c", str(config)])

    assert result.exit_code == 0, result.output
    records = json_lines(result.stderr)
    requests = [r for r in records if r["logger"] == "connectors.http"]
    assert {r["vendor"] for r in requests} == {"servicenow", "jira"}
    for line in requests:
        assert line["level"] == "debug" and line["method"] in ("GET", "POST", "PUT", "PATCH")
        assert line["path"].startswith("/") and "?" not in line["path"]
        assert isinstance(line["status"], int) and line["elapsed_ms"] >= 0
    assert any(r["path"] == "/api/now/table/incident" for r in requests)
    # The ServiceNow tool saw as many wire requests as we logged (Batch API items ride in one).
    assert sum(1 for r in requests if r["vendor"] == "servicenow") == servicenow.log.wire()
    # Other libraries' debug lines (urllib3 prints query strings) stay out.
    assert {r["logger"].split(".")[0] for r in records} <= {"sync", "connectors", "mappings"}


def test_text_format_is_level_logger_message(sandboxes: Any, config: Any) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "Projector broken")
    result = runner.invoke(app, ["-v", "run", "-c", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == f"INFO sync.engine: run {run_id_of(config)} started (run)"
    assert any(line.startswith("INFO sync.applier: create on Jira of INC") and
               line.endswith(": ok") for line in lines)


def _no_secret_in(stderr: str) -> None:
    assert SECRET not in stderr
    assert BASIC not in stderr and "Basic " not in stderr
    assert "authorization" not in stderr.lower()
    # Nothing had to be masked either: no line ever held the secret.
    assert "***" not in stderr


@pytest.mark.parametrize("fault", ["500 on write", "fault plan", "401", "jira 401"])
def test_vv_with_faults_never_shows_a_secret_or_an_authorization_header(
    sandboxes: Any, config: Any, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    servicenow, jira = sandboxes
    sn_incident(servicenow, "Badge reader offline")
    if fault == "500 on write":
        jira.faults.script.extend(Fault("500", method="POST") for _ in range(6))
    elif fault == "fault plan":
        servicenow.faults.script.extend([Fault("503", retry_after=0), Fault("drop"),
                                         Fault("429", retry_after=0)])
    elif fault == "401":
        monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", SECRET + "-wrong")
    else:  # refused at Jira's sign-in, the library's own first request
        monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", SECRET + "-wrong")

    for log_format in ("json", "text"):
        result = runner.invoke(app, ["-vv", "--log-format", log_format, "run",
                                     "-c", str(config)])
        assert result.exit_code in (0, 1, 3), result.output
        _no_secret_in(result.stderr)
        _no_secret_in(result.stdout)
        if log_format == "json":
            # Failures and the error line are JSON records too: every line parses.
            records = json_lines(result.stderr)
            statuses = {r.get("status") for r in records if r["logger"] == "connectors.http"}
            expected = {"500 on write": 500, "fault plan": 503, "401": 401,
                        "jira 401": 401}[fault]
            assert expected in statuses, statuses
            if fault == "500 on write":
                [failed] = [r for r in records if r.get("action") == "create"]
                assert failed["outcome"] == "failed" and failed["side"] == "jira"
                assert failed["link"]["servicenow"] and failed["link"]["jira"] is None
                assert failed["level"] == "info" and "500" in failed["error"]
                [queued] = [r for r in records if r.get("action") == "queue"]
                assert queued["record"] == {"servicenow": failed["link"]["servicenow"]}
                assert queued["side"] == "servicenow"
                assert queued["outcome"] == "waiting" and queued["error"] == failed["error"]
            if fault in ("401", "jira 401"):
                assert result.exit_code == 3
                tool = "ServiceNow" if fault == "401" else "Jira"
                assert any(r["level"] == "error" and tool in r["message"]
                           for r in records)
            if fault == "jira 401":
                assert any(r.get("vendor") == "jira" and r.get("status") == 401
                           for r in records), records


def test_a_transport_error_is_logged_without_a_status(sandboxes: Any, config: Any) -> None:
    servicenow, _ = sandboxes
    servicenow.faults.script.append(Fault("drop"))
    result = runner.invoke(app, ["-vv", "--log-format", "json", "run", "-c", str(config)])
    assert result.exit_code == 0, result.output
    [dropped] = [r for r in json_lines(result.stderr)
                 if r["logger"] == "connectors.http" and r["status"] is None]
    assert dropped["vendor"] == "servicenow" and dropped["error"]


def test_the_masker_hides_secrets_from_the_environment_and_registered_ones(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", "env-token-value")
    logs.mask_secret("registered-secret-value")
    logs.configure(0, "json")
    logging.getLogger("sync.test").warning("tried env-token-value and registered-secret-value")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "tried *** and ***"


def test_the_path_of_a_request_drops_host_user_info_and_query() -> None:
    assert url_path("https://admin:pw@example.atlassian.net/rest/api/3/search/jql?jql=x") == (
        "/rest/api/3/search/jql")
    assert url_path("http://127.0.0.1:8080") == "/"
    assert [status_class(s) for s in (200, 204, 302, 401, 503, None)] == [
        "2xx", "2xx", "3xx", "4xx", "5xx", "transport_error"]


def test_log_format_is_a_choice_and_may_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    bad = runner.invoke(app, ["--log-format", "xml", "status", "-c", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--log-format" in bad.output
    monkeypatch.setenv("INCIDENT_SYNC_LOG_FORMAT", "json")
    result = runner.invoke(app, ["status", "-c", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2
    [record] = json_lines(result.stderr)
    assert record["level"] == "error" and "file not found" in record["message"]


def test_the_log_options_may_follow_the_command(sandboxes: Any, config: Any) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "Scanner offline")
    result = runner.invoke(app, ["run", "-c", str(config), "-v", "--log-format=json"])
    assert result.exit_code == 0, result.output
    records = json_lines(result.stderr)
    assert any(r.get("action") == "create" for r in records)


def test_hoisting_moves_only_the_log_options_and_stops_at_the_double_dash() -> None:
    from sync.cli.app import hoist_log_options

    assert hoist_log_options(["run", "-c", "x.toml", "-vv", "--log-format", "json"]) == [
        "-vv", "--log-format", "json", "run", "-c", "x.toml"]
    assert hoist_log_options(["-v", "status", "--verbose"]) == ["-v", "--verbose", "status"]
    assert hoist_log_options(["rules", "test", "--", "-v"]) == ["rules", "test", "--", "-v"]
    assert hoist_log_options(["status", "--version"]) == ["status", "--version"]
