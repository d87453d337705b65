"""The command frame: --version, --help, `check --offline`, one-line errors and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync import __version__
from sync.cli.main import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

GOOD = """\
[servicenow]
instance_url = "http://127.0.0.1:8001"
username = "admin"

[jira]
url = "http://127.0.0.1:8002"
email = "admin"
project = "OPS"
"""


# Prove the commands need nothing from the caller's environment.
pytestmark = pytest.mark.usefixtures("no_incident_sync_env")


def config(tmp_path: Path, text: str = GOOD) -> Path:
    path = tmp_path / "incident-sync.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"incident-sync {__version__}"


def test_help_lists_check() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "check" in result.stdout


def test_check_offline_accepts_a_good_config(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--offline", "--config", str(config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout


def test_check_offline_needs_no_secrets_but_online_does(tmp_path: Path) -> None:
    path = config(tmp_path)
    assert runner.invoke(app, ["check", "--offline", "-c", str(path)]).exit_code == 0
    result = runner.invoke(app, ["check", "-c", str(path)])
    assert result.exit_code == 2
    assert "INCIDENT_SYNC_SERVICENOW__PASSWORD" in result.stderr


def test_config_error_is_one_line_exit_2_no_traceback(tmp_path: Path) -> None:
    path = config(tmp_path, GOOD.replace('project = "OPS"', 'projet = "OPS"'))
    result = runner.invoke(app, ["check", "--offline", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{path}: " in lines[0]
    assert "[jira] projet: unknown key" in lines[0]
    assert "[jira] project: missing (required)" in lines[0]
    assert "Traceback" not in result.output


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENT_SYNC_CONFIG", str(config(tmp_path)))
    result = runner.invoke(app, ["check", "--offline"])
    assert result.exit_code == 0, result.output


def test_default_config_file_is_named_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["check", "--offline"])
    assert result.exit_code == 2
    assert "incident-sync.toml: file not found" in result.stderr


def test_unknown_option_is_a_usage_error() -> None:
    result = runner.invoke(app, ["check", "--nope"])
    assert result.exit_code == 2


def test_real_subprocess_exit_codes_and_single_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("INCIDENT_SYNC_")}
    # The installed console script, as a user runs it; `python -m` where it is absent.
    script = Path(sys.executable).parent / "incident-sync"
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "sync.cli"]
    ok = subprocess.run(
        [*exe, "check", "--offline", "-c", str(config(tmp_path))],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    bad_path = tmp_path / "bad.toml"
    bad_path.write_text(GOOD.replace("http://127.0.0.1:8002", "http://jira.example.com"))
    bad = subprocess.run(
        [*exe, "check", "--offline", "-c", str(bad_path)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "[jira] url: plain http is only allowed to loopback hosts" in bad.stderr
    version = subprocess.run(
        [*exe, "--version"], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )
    assert version.returncode == 0 and __version__ in version.stdout


@pytest.mark.parametrize("module", ["sync", "sync.cli"])
def test_python_dash_m_has_every_subcommand(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("INCIDENT_SYNC_")}
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for command in ("check", "plan", "run", "audit", "links", "status", "demo", "sandbox"):
        assert command in result.stdout
