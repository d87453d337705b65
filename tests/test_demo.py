"""``incident-sync demo``: sandboxes in-process, two runs, no echo, a readable comparison."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

from sync.cli.main import app
from sync.demo import SECRET_ENV
from sync.settings import load_settings

runner = CliRunner()


def test_demo_syncs_both_sides_then_writes_nothing_and_compares(tmp_path: Path) -> None:
    before = {name: os.environ.get(name) for name in SECRET_ENV}
    keep = tmp_path / "demo"

    result = runner.invoke(app, ["demo", "--seed-incidents", "3", "--keep", str(keep)],
                           catch_exceptions=False)

    assert result.exit_code == 0, result.output
    out = result.output
    assert "created 6, " in out and "failed 0, orphaned 0" in out
    assert "writes in the second run: ServiceNow 0, Jira 0" in out
    assert "6 linked pairs, all equal" in out
    # The secrets lived in the process environment only, and are gone again.
    assert {name: os.environ.get(name) for name in SECRET_ENV} == before
    config = keep / "incident-sync.toml"
    keys = [line.split("=")[0].strip() for line in config.read_text(encoding="utf-8").splitlines()
            if "=" in line and not line.startswith("#")]
    assert "password" not in keys and "token" not in keys
    assert load_settings(config).servicenow.password is None
    assert (keep / "incident-sync.db").exists()


def test_demo_without_keep_runs_in_a_temporary_directory() -> None:
    result = runner.invoke(app, ["demo", "--seed-incidents", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 linked pairs, all equal" in result.output
