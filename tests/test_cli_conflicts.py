"""Conflicts people settle, through the CLI and both sandboxes.

A ``manual`` conflict waits for a person. It closes by itself once both sides
agree (a person made them equal), or once the policy can settle it (the config
switched to ``newest``); ``conflicts resolve ID --take SIDE`` settles it on
purpose, written by the next run and kept in the link's history.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from sync_helpers import jira_fields, linked_pair, store_of
from typer.testing import CliRunner

from sync.cli.main import app

runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args))


def open_rows(config: Path) -> list[dict[str, Any]]:
    result = cli("conflicts", "list", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def status_conflicts(config: Path) -> list[dict[str, Any]]:
    result = cli("status", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output)["conflicts"])


def audit_conflicts(config: Path) -> list[dict[str, Any]]:
    result = cli("audit", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output)["conflicts"])


def title_conflict(sandboxes: Any, sync_config: Any, make_engine: Any) -> tuple[Path, str, str]:
    """A linked pair whose title both sides changed, left open by the ``manual`` policy."""
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine, conflict="manual")
    servicenow.update("incident", sys_id, {"short_description": "VPN down in Paris"})
    jira.edit_issue(key, {"summary": "VPN down in Lyon"})
    result = cli("run", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "conflicts 1," in result.output.splitlines()[-1]
    (row,) = open_rows(config)
    assert (row["field"], row["state"]) == ("title", "open")
    assert (row["servicenow_value"], row["jira_value"]) == ("VPN down in Paris",
                                                           "VPN down in Lyon")
    return config, sys_id, key


def test_a_manual_conflict_closes_once_a_person_makes_both_sides_agree(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = title_conflict(sandboxes, sync_config, make_engine)
    assert [c["field"] for c in audit_conflicts(config)] == ["title"]
    jira.edit_issue(key, {"summary": "VPN down in Paris"})   # someone settles it by hand

    result = cli("run", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert open_rows(config) == []
    assert status_conflicts(config) == []
    assert audit_conflicts(config) == []
    history = json.loads(cli("conflicts", "list", "--all", "--config", str(config),
                             "--format", "json").output)
    assert [row["state"] for row in history] == ["closed", "settled: both sides agree"]
    assert servicenow.get("incident", sys_id)["short_description"] == "VPN down in Paris"


def test_switching_the_policy_from_manual_to_newest_settles_what_waited(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = title_conflict(sandboxes, sync_config, make_engine)
    newest = sync_config(conflict="newest")   # the same file, policy changed
    assert newest == config

    result = cli("run", "--config", str(config))

    assert result.exit_code == 0, result.output
    # Jira was edited last (the sandboxes' clock ticks on every write): Jira wins.
    assert servicenow.get("incident", sys_id)["short_description"] == "VPN down in Lyon"
    assert jira_fields(jira, key)["summary"] == "VPN down in Lyon"
    assert open_rows(config) == [] and status_conflicts(config) == []
    with store_of(config) as store:
        settled = [c for c in store.conflicts() if not c.open and c.resolution == "jira"]
    assert [(c.field, c.policy) for c in settled] == [("title", "newest")]
    again = cli("run", "--config", str(config))
    assert "updated 0, comments 0, conflicts 0," in again.output.splitlines()[-1]


def test_resolve_takes_the_chosen_side_on_the_next_run_and_keeps_the_history(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = title_conflict(sandboxes, sync_config, make_engine)
    (row,) = open_rows(config)

    chosen = cli("conflicts", "resolve", str(row["id"]), "--take", "jira",
                 "--config", str(config))

    assert chosen.exit_code == 0, chosen.output
    assert "Jira's value goes to ServiceNow on the next run" in chosen.output
    # Nothing written yet; every view shows the choice.
    assert servicenow.get("incident", sys_id)["short_description"] == "VPN down in Paris"
    assert [c["state"] for c in status_conflicts(config)] == ["chosen: take jira"]
    assert [c["resolution"] for c in audit_conflicts(config)] == ["chosen: take jira"]
    table = cli("status", "--config", str(config))
    assert "chosen:" in table.output  # the narrow test terminal folds the cell

    result = cli("run", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert servicenow.get("incident", sys_id)["short_description"] == "VPN down in Lyon"
    assert jira_fields(jira, key)["summary"] == "VPN down in Lyon"
    assert open_rows(config) == [] and status_conflicts(config) == []
    assert audit_conflicts(config) == []
    history = cli("conflicts", "list", "--all", "--config", str(config), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(history.output)))
    assert [(r["field"], r["state"], r["policy"]) for r in rows] == [
        ("title", "settled: jira by person", "person"),
        ("title", "settled: jira by person", "person")]
    assert rows[-1]["jira_value"] == "VPN down in Lyon"
    # Settled for good: the next run writes nothing, records nothing.
    again = cli("run", "--config", str(config))
    assert "updated 0, comments 0, conflicts 0," in again.output.splitlines()[-1]


def test_conflicts_list_formats_and_bad_ids(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    config, _, _ = title_conflict(sandboxes, sync_config, make_engine)
    (row,) = open_rows(config)

    table = cli("conflicts", "list", "--config", str(config))
    assert table.exit_code == 0
    assert "Open conflicts: 1" in table.output and "Lyon" in table.output
    assert "conflicts resolve ID --take" in table.output
    rows = list(csv.DictReader(io.StringIO(
        cli("conflicts", "list", "--config", str(config), "--format", "csv").output)))
    assert [(r["id"], r["field"], r["state"]) for r in rows] == [(str(row["id"]), "title",
                                                                  "open")]

    unknown = cli("conflicts", "resolve", "999", "--take", "jira", "--config", str(config))
    assert unknown.exit_code == 2
    assert unknown.output.strip() == (
        "incident-sync: conflicts resolve 999: no conflict with id 999; "
        "`incident-sync conflicts list` shows the open ones")
    wrong_side = cli("conflicts", "resolve", str(row["id"]), "--take", "both",
                     "--config", str(config))
    assert wrong_side.exit_code == 2 and "Traceback" not in wrong_side.output
    assert cli("conflicts", "resolve", str(row["id"]), "--take", "servicenow",
               "--config", str(config)).exit_code == 0
    assert cli("run", "--config", str(config)).exit_code == 0
    settled = cli("conflicts", "resolve", str(row["id"]), "--take", "jira",
                  "--config", str(config))
    assert settled.exit_code == 2
    assert "is already settled: servicenow by person" in settled.output


def test_a_later_edit_on_one_side_settles_an_open_conflict_and_travels(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = title_conflict(sandboxes, sync_config, make_engine)
    (row,) = open_rows(config)
    assert cli("conflicts", "resolve", str(row["id"]), "--take", "jira",
               "--config", str(config)).exit_code == 0
    # Before the run writes the choice, someone edits ServiceNow again: the news wins.
    servicenow.update("incident", sys_id, {"short_description": "VPN down in Paris and Lyon"})

    plan = cli("plan", "--config", str(config))
    assert "a later edit in ServiceNow wins" in plan.output
    result = cli("run", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert jira_fields(jira, key)["summary"] == "VPN down in Paris and Lyon"
    assert open_rows(config) == []
    history = json.loads(cli("conflicts", "list", "--all", "--config", str(config),
                             "--format", "json").output)
    assert history[-1]["state"] == "settled: servicenow by edit"
