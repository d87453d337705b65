"""``plan``, ``run`` and ``check`` through the CLI (typer's CliRunner) against both sandboxes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import jira_issue, sn_incident, writes
from typer.testing import CliRunner

from sync.cli import run as run_command
from sync.cli.main import app
from sync.cli.run import parse_interval
from sync.state import StateStore

runner = CliRunner()

SUMMARY = (r"created \d+, adopted \d+, updated \d+, comments \d+, conflicts \d+, failed \d+, "
           r"orphaned \d+ in ")


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def state(config: Path) -> StateStore:
    return StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False)


def test_run_syncs_and_ends_with_one_summary_line(sandboxes: Any, sync_config: Any) -> None:
    servicenow, jira = sandboxes
    sn_incident(servicenow, "Mail not syncing on phone")
    jira_issue(jira, "Monitor flickering")
    config = sync_config()

    result = invoke("run", "--config", str(config))

    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("created 2, adopted 0, updated 0, comments 0, conflicts 0, "
                                "failed 0, orphaned 0 in ")
    with state(config) as store:
        (record,) = store.runs()
    assert record.outcome == "ok" and record.counts["created"] == 2


def test_run_every_repeats_until_max_runs(
    sandboxes: Any, sync_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "Deadlocks in billing")
    config = sync_config()
    waits: list[float] = []
    monkeypatch.setattr(run_command, "sleep", waits.append)

    result = invoke("run", "--config", str(config), "--every", "1s", "--max-runs", "2")

    assert result.exit_code == 0, result.output
    # Each line of the loop's log starts with the time of its run.
    summaries = [line.split(" ", 1)[1] for line in result.output.splitlines()
                 if " created " in line]
    assert len(summaries) == 2
    assert summaries[0].startswith("created 1,") and summaries[1].startswith("created 0,")
    assert waits == [1.0]
    with state(config) as store:
        assert len(store.runs()) == 2


# With jsm-extended the category is a Jira component: Jira refuses one it does not have.
@pytest.mark.parametrize("jira_fields", ["extended"], indirect=True)
def test_run_exits_1_when_an_item_failed(sandboxes: Any, sync_config: Any) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "Badly categorised", category="facilities")
    config = sync_config(mapping="jsm-extended")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 1
    assert "failed 1" in result.output.splitlines()[-1]


def test_run_refuses_to_overlap_a_running_sync(sandboxes: Any, sync_config: Any) -> None:
    config = sync_config()
    with StateStore(f"sqlite:///{config.parent / 'state.db'}") as other:
        other.acquire_lock("other-host:4242")
        result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 1
    assert "another run (owner other-host:4242" in result.output
    assert "try again later" in result.output


def test_run_with_a_bad_interval_is_a_usage_error(sync_config: Any) -> None:
    result = runner.invoke(app, ["run", "--config", str(sync_config()), "--every", "soon"])
    assert result.exit_code == 2
    assert "--every 'soon'" in result.output


def test_run_against_an_unreachable_tool_exits_3(
    sandboxes: Any, sync_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sync_config()
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", "wrong-token")
    result = runner.invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 3
    assert "wrong-token" not in result.output


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600),
                                               ("1h30m", 5400), ("2m5s", 125)])
def test_intervals_parse(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "5", "m5", "1d", "-1m"])
def test_bad_intervals_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--every"):
        parse_interval(text)


def test_plan_prints_every_action_and_writes_nothing(sandboxes: Any, sync_config: Any) -> None:
    servicenow, jira = sandboxes
    sn_incident(servicenow, "VPN drops")
    jira.add_comment(jira_issue(jira, "Laptop disk almost full"), "Backup first",
                     internal=True)
    config = sync_config()

    result = invoke("plan", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert "create in Jira from ServiceNow INC0010001: 'VPN drops'" in result.output
    assert "create in ServiceNow from Jira OPS-1: 'Laptop disk almost full'" in result.output
    assert "copy internal comment to ServiceNow: 'Backup first'" in result.output
    assert result.output.strip().splitlines()[-1].startswith("plan: 2 to create")
    assert writes(servicenow) == [] and writes(jira) == []
    assert not (config.parent / "state.db").exists()


def test_plan_as_json(sandboxes: Any, sync_config: Any) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "Wifi slow")
    config = sync_config()
    result = invoke("plan", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["counts"]["creates"] == 1
    (pair,) = data["pairs"]
    # The create, the back-link its original gets, and the read-back after: every write.
    create, mark, read_back = pair["actions"]
    assert create["action"] == "create" and create["target_side"] == "jira"
    assert create["fields"]["summary"] == "Wifi slow"
    assert mark["action"] == "mark" and mark["side"] == "servicenow"
    assert mark["foreign_id"] is None and mark["expected_version"] is not None
    assert read_back["action"] == "read-back"


def test_plan_of_a_config_with_no_secrets_is_a_config_error(
    sync_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sync_config()
    monkeypatch.delenv("INCIDENT_SYNC_JIRA__TOKEN")
    result = runner.invoke(app, ["plan", "--config", str(config)])
    assert result.exit_code == 2
    assert "INCIDENT_SYNC_JIRA__TOKEN" in result.output


def test_check_reaches_both_tools_and_passes(sandboxes: Any, sync_config: Any) -> None:
    sn_incident(sandboxes[0], "Something in scope")
    config = sync_config()
    result = invoke("check", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "FAILED" not in result.output
    assert "0 failed" in result.output


def test_check_with_a_refused_password_exits_3(
    sandboxes: Any, sync_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sync_config()
    monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", "not-the-password")
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 3, result.output
    assert "FAILED" in result.output
    assert "not-the-password" not in result.output


def test_check_with_a_missing_status_exits_1(
    sandboxes: Any, sync_config: Any, tmp_path: Path
) -> None:
    profile = tmp_path / "odd.toml"
    profile.write_text(
        'name = "odd"\nextends = "default"\n\n[fields.status.to_jira]\n'
        'new = "Triage"\nin_progress = "Work in progress"\non_hold = "Pending"\n'
        'resolved = "Resolved"\nclosed = "Closed"\ncanceled = "Canceled"\n',
        encoding="utf-8",
    )
    config = sync_config(mapping=str(profile))
    result = runner.invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "Triage" in result.output


def test_check_offline_names_a_rules_file_it_cannot_honour(sync_config: Any) -> None:
    config = sync_config(rules="rules.toml")
    result = runner.invoke(app, ["check", "--offline", "--config", str(config)])
    assert result.exit_code == 2
    assert "[sync] rules" in result.output and "rules.toml" in result.output


def test_check_offline_reports_config_mapping_and_rules(sync_config: Any) -> None:
    result = runner.invoke(app, ["check", "--offline", "--config", str(sync_config())])
    assert result.exit_code == 0, result.output
    assert "mapping default: ok" in result.output and "rules: none configured" in result.output


def test_run_reports_what_a_tool_did_not_take_as_written(
    sandboxes: Any, sync_config: Any
) -> None:
    servicenow, _ = sandboxes
    stranger = servicenow.insert("sys_user", {"user_name": "sam.temp", "name": "Sam Temp",
                                              "email": "sam.temp@agency.example"})
    sn_incident(servicenow, "Desk phone dead", assigned_to=stranger["sys_id"])
    result = runner.invoke(app, ["run", "--config", str(sync_config())])
    assert result.exit_code == 0, result.output
    assert "warning: Jira" in result.output and "sam.temp@agency.example" in result.output
    assert result.output.strip().splitlines()[-1].startswith("created 1,")


def test_max_runs_without_every_is_a_usage_error(sync_config: Any) -> None:
    result = runner.invoke(app, ["run", "--config", str(sync_config()), "--max-runs", "3"])
    assert result.exit_code == 2
    assert "--max-runs needs --every" in result.output


def test_run_without_a_usable_temporary_directory_says_so_in_one_line_and_exits_1(
    sandboxes: Any, sync_config: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A run keeps its pulled records in a spool under TMPDIR: a missing (or full)
    # directory is the machine's problem, said as such, not an internal error.
    import tempfile

    servicenow, _ = sandboxes
    sn_incident(servicenow, "Printer jam on floor 3")
    config = sync_config()
    missing = tmp_path / "no-such-dir"
    monkeypatch.setattr(tempfile, "tempdir", str(missing))

    result = runner.invoke(app, ["run", "--config", str(config)])

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    (line,) = [x for x in result.output.splitlines() if "record spool" in x]
    assert str(missing) in line and "TMPDIR" in line
    monkeypatch.setattr(tempfile, "tempdir", None)
    # Nothing was created (a copy made then would be adopted now, not created), and
    # the next run with a usable directory does the work.
    again = invoke("run", "--config", str(config))
    assert again.exit_code == 0, again.output
    assert again.output.strip().splitlines()[-1].startswith("created 1,")
