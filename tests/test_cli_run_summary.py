"""What users read of ``run`` and ``--help``: stamped loop summaries, adoptions, flags."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import typer
from sync_helpers import jira_issue, sn_incident
from typer.testing import CliRunner

from sync import __version__
from sync.cli import run as commands
from sync.cli.main import app

runner = CliRunner()
CET = timezone(timedelta(hours=1))


def adoptable(sandboxes: Any) -> None:
    """A ServiceNow incident carrying the key of a Jira issue it was never linked to
    (what a crashed run leaves behind): the next run adopts the pair."""
    servicenow, jira = sandboxes
    key = jira_issue(jira, "Linked by hand")
    sn_incident(servicenow, "Linked by hand", correlation_id=key, correlation_display="JIRA")


def test_a_single_run_counts_adoptions_on_its_summary_line(
    sandboxes: Any, sync_config: Any
) -> None:
    adoptable(sandboxes)
    result = runner.invoke(app, ["run", "-c", str(sync_config())])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    # Not a loop: the line is the summary alone.
    assert last.startswith("created 0, adopted 1, "), last


def test_run_every_starts_each_summary_line_with_the_time_of_its_run(
    sandboxes: Any, sync_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    adoptable(sandboxes)
    config = sync_config()
    times = iter([datetime(2026, 3, 2, 10, 15, 4, tzinfo=CET),
                  datetime(2026, 3, 2, 10, 20, 4, tzinfo=CET)])
    monkeypatch.setattr(commands, "now", lambda: next(times))
    monkeypatch.setattr(commands, "sleep", lambda _seconds: None)

    result = runner.invoke(app, ["run", "-c", str(config), "--every", "5m", "--max-runs", "2"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("2026-03-02T10:15:04+01:00 created 0, adopted 1, ")
    assert lines[1].startswith("2026-03-02T10:20:04+01:00 created 0, adopted 0, ")


def test_the_real_clock_stamps_local_time_with_its_offset() -> None:
    stamp = commands.now().isoformat(timespec="seconds")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", stamp), stamp


def command_paths() -> list[list[str]]:
    """Every command and subcommand of the CLI, as the words that reach it."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]

    def walk(command: Any, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "root")
def test_help_shows_flags_without_a_value_type(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout
    help_line = next(line for line in result.stdout.splitlines() if "--help" in line)
    assert re.search(r"--help\s+Show this message", help_line), help_line


def test_version_is_a_flag_in_help_and_prints_the_version() -> None:
    shown = runner.invoke(app, ["--help"], env={"COLUMNS": "120"}).stdout
    version_line = next(line for line in shown.splitlines() if "--version" in line)
    assert re.search(r"--version\s+Show the version\.", version_line), version_line
    verbose_line = next(line for line in shown.splitlines() if "--verbose" in line)
    assert "<int>" not in verbose_line  # -v counts, it takes no value

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"incident-sync {__version__}"
