"""Table commands in a pipe: no cell cut with "…", whole value maps, every --format.

CliRunner's stdout is not a terminal, like a pipe or a file; a subprocess run
with COLUMNS=40 checks a narrow setting as a user's shell passes it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import sn_incident, store_of, sync
from typer.testing import CliRunner

from mappings.profile import load_profile
from sync.cli.main import app

runner = CliRunner()
NARROW = {"COLUMNS": "40"}
ELLIPSIS = "…"

# Long enough to have been cut by every old limit (audit cells were cut at 200
# characters), with an unbreakable word wider than any narrow column.
LONG_WORD = "x" * 120
LONG_TITLE = "VPN drops for the whole third floor " + LONG_WORD + " since the switch upgrade"
LONG_ERROR = ("ValidationFailed: [close_code] " + "y" * 150
              + " the data policy refuses a resolve without a close code")


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), env=NARROW)


def all_map_entries_shown(text: str) -> None:
    """Every entry of every value map of the default profile is in ``text``."""
    profile = load_profile("default")
    for rule in profile.rules.values():
        for side, table in rule.to_maps.items():
            for key, value in table.items():
                assert f"{key}→{value}" in text, (rule.neutral, side, key)
        for side, table in rule.from_maps.items():
            to_map = rule.to_maps.get(side, {})
            for key, value in table.items():
                # A read entry that inverts a write entry is implied by it.
                if to_map.get(str(value)) != key:
                    assert f"{key}→{value}" in text, (rule.neutral, side, key)


# ------------------------------------------------------------------ mappings show


def test_mappings_show_in_a_pipe_has_whole_value_maps_and_no_ellipsis() -> None:
    result = invoke("mappings", "show", "--profile", "default")
    assert result.exit_code == 0, result.output
    assert ELLIPSIS not in result.stdout
    assert "(+" not in result.stdout  # no "(+3)" summaries of longer maps
    all_map_entries_shown(result.stdout)
    # Not a terminal: each row's first line holds the neutral name and both fields.
    assert any(line.startswith("│ status ") and " state " in line
               for line in result.stdout.splitlines())


def test_mappings_show_csv_and_json_hold_every_map_entry() -> None:
    as_csv = invoke("mappings", "show", "--profile", "default", "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["neutral"] for row in rows] == list(load_profile("default").rules)
    all_map_entries_shown(as_csv.stdout)

    as_json = invoke("mappings", "show", "--profile", "default", "--format", "json")
    data = json.loads(as_json.stdout)
    status = next(f for f in data["fields"] if f["neutral"] == "status")
    rule = load_profile("default").rules["status"]
    assert status["jira"]["to_map"] == rule.to_maps["jira"]
    assert status["jira"]["from_map"] == rule.from_maps["jira"]
    assert status["servicenow"]["field"] == "state"


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "incident-sync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sync"]


def test_narrow_columns_in_a_real_pipe_cut_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("INCIDENT_SYNC_")}
    result = subprocess.run(
        [*_console_script(), "mappings", "show", "--profile", "default"],
        capture_output=True, text=True, env={**env, **NARROW}, cwd=tmp_path, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert ELLIPSIS not in result.stdout
    all_map_entries_shown(result.stdout)


# ------------------------------------------------------------------ over the sandboxes


@pytest.fixture
def busy(sandboxes: Any, sync_config: Any, make_engine: Any) -> Path:
    """A synced pair with a long title edited on ServiceNow since (the audit sees it
    differ), a long open conflict and a long retry error in the store."""
    servicenow, _ = sandboxes
    row = sn_incident(servicenow, "VPN drops")
    config = sync_config()
    first = sync(make_engine, config)
    assert first.created == 1 and first.failed == 0, first.failures
    servicenow.update("incident", row["sys_id"], {"short_description": LONG_TITLE})
    now = datetime.now(UTC)
    with store_of(config) as store:
        (link,) = store.all_links()
        with store.pair() as tx:
            tx.record_conflict(
                link.id,
                "title",
                base="VPN drops",
                values={"servicenow": LONG_TITLE, "jira": "VPN " + LONG_WORD},
                resolution="manual",
                policy="manual",
                at=now,
            )
        store.record_failure("servicenow", row["sys_id"], LONG_ERROR,
                             now=now - timedelta(hours=1), base_seconds=60, max_attempts=5)
    return config


TABLE_COMMANDS = [("links",), ("status",), ("audit",), ("check",),
                  ("mappings", "fields", "--side", "jira"),
                  ("mappings", "fields", "--side", "servicenow")]


@pytest.mark.parametrize("command", TABLE_COMMANDS, ids=" ".join)
@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_table_commands_in_a_pipe_cut_no_cell(busy: Path, command: tuple[str, ...],
                                              fmt: str) -> None:
    result = invoke(*command, "-c", str(busy), "--format", fmt)
    assert result.exit_code == 0, result.output
    assert ELLIPSIS not in result.stdout
    if fmt == "json":
        json.loads(result.stdout)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert rows and all(None not in row for row in rows)  # no ragged row
    if command in (("status",), ("audit",)):
        # The long values arrive whole, in one piece.
        assert LONG_WORD in result.stdout
        assert (LONG_ERROR if command == ("status",) else LONG_TITLE) in result.stdout.replace(
            '\\"', '"')


# ``mappings show`` in a real pipe at 40 columns is test_narrow_columns_in_a_real_pipe_cut_nothing
# (the same rendering of the default profile, without a config): not started twice.
@pytest.mark.parametrize("command", TABLE_COMMANDS, ids=" ".join)
def test_a_real_pipe_at_forty_columns_cuts_no_cell(busy: Path, command: tuple[str, ...]) -> None:
    # The console script in its own process, as `incident-sync status | less` runs it:
    # COLUMNS=40 is read there, and the sandboxes of this test are on loopback.
    env = {**os.environ, **NARROW}
    result = subprocess.run(
        [*_console_script(), *command, "-c", str(busy)],
        capture_output=True, text=True, env=env, cwd=busy.parent, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert ELLIPSIS not in result.stdout
    if command == ("status",):
        assert LONG_ERROR in result.stdout
    if command == ("audit",):
        assert LONG_TITLE in result.stdout


def test_audit_table_is_printed_once(busy: Path) -> None:
    result = invoke("audit", "-c", str(busy))
    assert result.exit_code == 0, result.output
    assert result.stdout.count("incident-sync audit") == 1
    assert result.stdout.count("linked 1, in step 0, differing 1") == 1


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_audit_with_output_writes_the_report_only_to_the_file(
    busy: Path, tmp_path: Path, fmt: str
) -> None:
    report = tmp_path / f"audit.{fmt}"
    result = invoke("audit", "-c", str(busy), "--format", fmt, "--output", str(report))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"audit written to {report}: linked 1, in step 0, differing 1, orphans 0, "
        "open conflicts 1"
    ]
    text = report.read_text(encoding="utf-8")
    assert LONG_TITLE in text and ELLIPSIS not in text
    if fmt == "table":
        assert text.count("incident-sync audit") == 1


def test_status_csv_has_one_row_per_run_item_and_conflict(busy: Path) -> None:
    result = invoke("status", "-c", str(busy), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    sections = [row["section"] for row in rows]
    assert sections.count("run") == 1
    assert sections.count("retry") == 1 and sections.count("conflict") == 1
    conflict = next(row for row in rows if row["section"] == "conflict")
    assert (conflict["field"], conflict["servicenow_value"]) == ("title", LONG_TITLE)


def test_check_json_lists_local_and_online_checks(busy: Path) -> None:
    result = invoke("check", "-c", str(busy), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    tools = {row["tool"] for row in data["checks"]}
    assert {"local", "servicenow", "jira"} <= tools
    assert data["failed"] == 0 and data["passed"] == len(data["checks"])
