"""The `sandbox` command: options, one-line errors, the config it writes, serving until stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from connectors.sandbox.serve import (
    SandboxOptionError,
    serve_until_stopped,
    start_sandboxes,
    write_config,
)
from connectors.sandbox.servicenow import ServiceNowSandbox
from sync.cli.main import app
from sync.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("INCIDENT_SYNC_"):
            monkeypatch.delenv(name)


def test_written_config_loads_and_holds_no_secrets(tmp_path: Path) -> None:
    path = write_config(tmp_path / "conf" / "incident-sync.toml", "http://127.0.0.1:8101",
                        "http://127.0.0.1:8102", "ops.admin", jira_flavor="datacenter")
    settings = load_settings(path)
    assert settings.servicenow.instance_url == "http://127.0.0.1:8101"
    assert settings.servicenow.username == "ops.admin"
    assert settings.jira.url == "http://127.0.0.1:8102"
    assert settings.jira.email == "ops.admin"
    assert settings.jira.project == "OPS" and settings.jira.flavor == "datacenter"
    assert settings.servicenow.password is None and settings.jira.token is None
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    keys = {key for section in data.values() for key in section}
    assert not keys & {"password", "token", "client_secret"}
    # Relative SQLite state lands beside the config, wherever the command runs.
    assert settings.state_url == f"sqlite:///{tmp_path / 'conf' / 'incident-sync.db'}"


def test_written_config_with_secrets_from_the_environment_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path / "c.toml", "http://127.0.0.1:1", "http://127.0.0.1:2",
                        'we"ird\\name', state_url="sqlite:///:memory:")
    monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", "sandbox")
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", "sandbox")
    settings = load_settings(path)
    settings.require_secrets()
    assert settings.servicenow.username == 'we"ird\\name'
    assert settings.state_url == "sqlite:///:memory:"


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
def test_non_loopback_host_is_refused_with_exit_2(host: str) -> None:
    result = runner.invoke(app, ["sandbox", "--host", host])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a loopback address" in lines[0] and host in lines[0]


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--fault-rate", "1.5", "between 0 and 1"),
    ("--jira-mode", "server", "cloud or datacenter"),
    ("--jira-fields", "custom", "stock or extended"),
    ("--seed-incidents", "-1", "0 or more"),
    ("--latency-ms", "-5", "0 or more"),
])
def test_bad_options_are_one_line_errors(option: str, value: str, words: str) -> None:
    result = runner.invoke(app, ["sandbox", option, value])
    assert result.exit_code == 2
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_start_sandboxes_checks_options_before_starting_anything() -> None:
    with pytest.raises(SandboxOptionError, match="loopback"):
        start_sandboxes(host="192.168.1.1")


def test_serve_until_stopped_stops_every_server() -> None:
    server = ServiceNowSandbox().start()
    url = server.url
    stop = threading.Event()
    stop.set()
    serve_until_stopped((server,), stop)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/now/table/incident", auth=("admin", "sandbox"), timeout=2)


def test_module_help_runs_as_a_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connectors.sandbox", "--help"], cwd=REPO,
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "120", "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    for option in ("--servicenow-port", "--jira-port", "--jira-mode", "--seed-incidents",
                   "--seed", "--latency-ms", "--fault-rate", "--username", "--password",
                   "--write-config", "--host", "--jira-fields"):
        assert option in result.stdout


def test_incident_sync_lists_the_sandbox_command() -> None:
    result = runner.invoke(app, ["sandbox", "--help"])
    assert result.exit_code == 0 and "--write-config" in result.stdout


# --------------------------------------------------------------------------- both halves


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str], Path]]:
    config = tmp_path / "sandbox.toml"
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.sandbox", "--servicenow-port", "0",
         "--jira-port", "0", "--seed-incidents", "3", "--seed", "4",
         "--password", "s3cret pass", "--write-config", str(config)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving"):
                break
        yield process, lines, config
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_serves_both_until_interrupted(
    served: tuple[subprocess.Popen[str], list[str], Path]
) -> None:
    process, lines, config = served
    assert lines and lines[-1].startswith("Serving"), lines
    assert "export INCIDENT_SYNC_SERVICENOW__PASSWORD='s3cret pass'" in lines
    assert "export INCIDENT_SYNC_JIRA__TOKEN='s3cret pass'" in lines
    settings = load_settings(config)
    assert "s3cret" not in config.read_text(encoding="utf-8")
    listed = requests.get(f"{settings.servicenow.instance_url}/api/now/table/incident",
                          auth=("admin", "s3cret pass"), headers={"Accept": "application/json"},
                          timeout=10)
    assert listed.status_code == 200 and len(listed.json()["result"]) == 3
    info = requests.get(f"{settings.jira.url}/rest/api/2/serverInfo",
                        auth=("admin", "s3cret pass"), timeout=10)
    assert info.status_code == 200
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "Sandboxes stopped." in out


def test_start_sandboxes_in_process_for_demo() -> None:
    servicenow, jira = start_sandboxes(seed_incidents=2, seed=5, jira_mode="datacenter")
    try:
        assert len(servicenow.rows("incident")) == 2
        assert len(jira.issue_keys()) == 2
    finally:
        servicenow.stop()
        jira.stop()


def test_start_sandboxes_can_seed_one_side_only() -> None:
    servicenow, jira = start_sandboxes(seed_incidents=3, jira_seed_incidents=0)
    try:
        assert len(servicenow.rows("incident")) == 3
        assert jira.issue_keys() == []
    finally:
        servicenow.stop()
        jira.stop()


def test_extended_jira_fields_are_served_with_a_config_for_their_profile(
        tmp_path: Path) -> None:
    config = tmp_path / "sandbox.toml"
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.sandbox", "--servicenow-port", "0",
         "--jira-port", "0", "--seed-incidents", "2", "--jira-fields", "extended",
         "--write-config", str(config)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Serving"):
                break
        assert any("extended fields" in line for line in lines), lines
        settings = load_settings(config)
        assert settings.sync.mapping == "jsm-extended"
        fields = requests.get(f"{settings.jira.url}/rest/api/2/field",
                              auth=("admin", "sandbox"), timeout=10).json()
        assert {"Subcategory", "Assignment group", "Resolution notes", "Escalation"} <= {
            f["name"] for f in fields}
        issue = requests.get(f"{settings.jira.url}/rest/api/2/issue/OPS-1",
                             auth=("admin", "sandbox"), timeout=10).json()
        assert issue["fields"]["components"] and issue["fields"]["customfield_10007"]
    finally:
        process.kill()
        process.wait(timeout=30)


def test_stock_jira_fields_get_the_default_profile(tmp_path: Path) -> None:
    servicenow, jira = start_sandboxes(seed_incidents=1)
    try:
        path = write_config(tmp_path / "c.toml", servicenow.url, jira.url, "admin")
        assert load_settings(path).sync.mapping == "default"
        assert jira.fields.kind == "stock" and jira.fields.components == []
    finally:
        servicenow.stop()
        jira.stop()


def test_busy_port_is_a_one_line_error() -> None:
    with ServiceNowSandbox() as busy:
        result = runner.invoke(app, ["sandbox", "--servicenow-port", str(busy.port),
                                     "--jira-port", "0", "--seed-incidents", "0"])
    assert result.exit_code == 2
    assert "cannot listen" in result.stderr and len(result.stderr.strip().splitlines()) == 1
