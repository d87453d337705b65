"""A mapping profile checked against the real site through ``check``, ``plan`` and ``run``.

Each scenario profile (tests/data/profiles/site_*.toml) names something one of the
sandboxes lacks: a Jira field, a select option, a field no create screen offers, a
ServiceNow column, a sys_choice value. ``check`` lists the row with the reason and
exits 2; ``plan`` and ``run`` exit 2 with one line naming the profile, the row and
the field, having written nothing to either tool. An ``optional`` row is skipped with
a warning instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sync_helpers import sn_incident, writes
from typer.testing import CliRunner

from sync.cli.main import app

runner = CliRunner()
PROFILES = Path(__file__).parent / "data" / "profiles"

# profile -> (row key, what the one line and the check row must say)
BROKEN = {
    "site_jira_field_absent": (
        "fields.urgency.jira", ["Jira field 'Urgencyy'", "not on this site",
                                "similar: Urgency ("]),
    "site_jira_option_absent": (
        "fields.urgency.jira", ["Jira field 'Urgency'", "does not offer 'Sevre'"]),
    "site_jira_resolution_absent": (
        "fields.resolution_code.jira", ["Jira field 'resolution'",
                                        "does not offer \"Won't Fix\""]),
    "site_jira_not_on_create_screen": (
        "fields.custom.opened_by.jira", ["Jira field 'Creator'",
                                         "not on the create screen of OPS / Incident"]),
    "site_servicenow_column_absent": (
        "fields.custom.severity.servicenow", ["ServiceNow field 'u_severty'",
                                              "not on this site",
                                              "similar: Severity (severity)"]),
    "site_servicenow_choice_absent": (
        "fields.custom.hold_reason.servicenow", ["ServiceNow field 'hold_reason'",
                                                 "does not offer '2'"]),
}


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


@pytest.fixture
def with_incidents(sandboxes: Any) -> tuple[Any, Any]:
    """Both tools with work to do, so a run that went ahead would write."""
    servicenow, jira = sandboxes
    sn_incident(servicenow, "VPN drops every hour")
    sn_incident(servicenow, "Printer on 3rd floor jams")
    servicenow.log.clear()
    jira.log.clear()
    return servicenow, jira


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("profile", sorted(BROKEN))
def test_plan_and_run_refuse_a_profile_the_site_cannot_hold_before_any_write(
    with_incidents: Any, sync_config: Any, profile: str, command: str
) -> None:
    servicenow, jira = with_incidents
    path = PROFILES / f"{profile}.toml"
    config = sync_config(mapping=str(path))

    result = invoke(command, "--config", str(config))

    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    key, says = BROKEN[profile]
    assert lines[0].startswith(f"incident-sync: {path}: {key}: ")
    for text in says:
        assert text in lines[0]
    assert writes(servicenow) == [] and writes(jira) == []
    assert not (config.parent / "state.db").exists() or command == "run"


@pytest.mark.parametrize("profile", sorted(BROKEN))
def test_check_lists_the_row_with_its_reason_and_exits_2(
    with_incidents: Any, sync_config: Any, profile: str
) -> None:
    servicenow, jira = with_incidents
    config = sync_config(mapping=str(PROFILES / f"{profile}.toml"))

    result = invoke("check", "--config", str(config))

    assert result.exit_code == 2, result.output
    key, says = BROKEN[profile]
    neutral = key.split(".", 1)[1].rsplit(".", 1)[0]
    (row,) = [line for line in result.output.splitlines() if f"field {neutral} " in line]
    assert "FAILED" in row
    for text in says[1:]:
        assert text in row
    # Every other check still ran on the rows that fit.
    assert "statuses" in result.output and "mapped states exist" in result.output
    assert writes(servicenow) == [] and writes(jira) == []


def test_check_shows_every_broken_row_not_just_the_first(
    sandboxes: Any, sync_config: Any, tmp_path: Path
) -> None:
    profile = tmp_path / "two.toml"
    profile.write_text(
        'extends = "default"\n\n'
        '[fields.urgency]\nto_jira = { 1 = "High", 2 = "Sevre", 3 = "Low" }\n\n'
        '[fields.custom.severity]\nservicenow = "u_severty"\njira = "Urgency"\n'
        'direction = "to-servicenow"\n',
        encoding="utf-8",
    )
    config = sync_config(mapping=str(profile))

    check = invoke("check", "--config", str(config))
    plan = invoke("plan", "--config", str(config))

    assert check.exit_code == 2
    assert "field urgency" in check.output and "field custom.severity" in check.output
    assert plan.exit_code == 2
    assert "(and 1 more: run incident-sync check)" in plan.output


def test_an_optional_row_the_site_lacks_is_skipped_with_one_warning_per_run(
    with_incidents: Any, sync_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, jira = with_incidents
    config = sync_config(mapping=str(PROFILES / "site_jira_optional_absent.toml"))

    check = invoke("check", "--config", str(config))
    with caplog.at_level(logging.WARNING, logger="sync.sitecheck"):
        run = invoke("run", "--config", str(config))

    assert check.exit_code == 0, check.output
    (row,) = [line for line in check.output.splitlines() if "field custom.major_incident" in line]
    assert "skipped" in row and "not on this site" in row and "FAILED" not in row
    assert run.exit_code == 0, run.output
    assert run.output.strip().splitlines()[-1].startswith("created 2, ")
    warnings = [r.getMessage() for r in caplog.records if r.name == "sync.sitecheck"]
    assert len(warnings) == 1
    assert "fields.custom.major_incident.jira" in warnings[0]
    assert "Major incident flagg: not on this site" in warnings[0]
    assert "optional row skipped" in warnings[0]
    # The rest of the profile ran: both incidents are in Jira.
    assert any(w.startswith("POST /rest/api/3/issue/bulk") for w in writes(jira))


def test_an_optional_row_the_site_has_is_checked_and_synced_as_usual(
    sandboxes: Any, sync_config: Any, tmp_path: Path
) -> None:
    profile = tmp_path / "optional_present.toml"
    profile.write_text(
        'extends = "default"\n\n[fields.custom.jira_creator]\n'
        'servicenow = { field = "opened_by", transform = "user_by_email" }\n'
        'jira = { field = "creator", transform = "user_by_email" }\n'
        'direction = "to-servicenow"\noptional = true\n',
        encoding="utf-8",
    )
    config = sync_config(mapping=str(profile))

    check = invoke("check", "--config", str(config))
    run = invoke("run", "--config", str(config))

    assert check.exit_code == 0, check.output
    assert "skipped" not in check.output and "custom.jira_creator" not in check.output
    assert run.exit_code == 0, run.output
    assert "skipped" not in run.output


def test_the_skip_warning_shows_in_the_output_of_every_scheduled_run(
    with_incidents: Any, sync_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sync.cli.run as run_command

    config = sync_config(mapping=str(PROFILES / "site_jira_optional_absent.toml"))
    # The loop itself, in process; only its wait between runs is skipped.
    waits: list[float] = []
    monkeypatch.setattr(run_command, "sleep", waits.append)

    done = runner.invoke(app, ["run", "--every", "1s", "--max-runs", "2",
                               "--config", str(config)])

    assert done.exit_code == 0, done.output
    assert waits == [1.0]
    warnings = [line for line in done.stderr.splitlines() if "optional row skipped" in line]
    assert len(warnings) == 2, done.stderr
    assert all("fields.custom.major_incident.jira" in line for line in warnings)
    # ``--every`` starts each summary line with the time of its run.
    assert [line.split(",")[0].split(" ", 1)[1]
            for line in done.stdout.splitlines()] == ["created 2", "created 0"]


@pytest.mark.parametrize(("failure", "status"), [("refused", 3), ("flaky", 1)])
def test_check_tells_a_tool_failing_to_list_its_fields_from_a_bad_profile(
    sandboxes: Any, sync_config: Any, monkeypatch: pytest.MonkeyPatch, failure: str,
    status: int
) -> None:
    from connectors.base import AuthError, RetriableError
    from connectors.jira import JiraConnector

    def site_fields(self: JiraConnector) -> list[Any]:
        if failure == "refused":
            raise AuthError("Jira: admin may not browse project OPS", side="jira")
        raise RetriableError("Jira: HTTP 503 from /rest/api/3/field", side="jira")

    monkeypatch.setattr(JiraConnector, "site_fields", site_fields)

    result = invoke("check", "--config", str(sync_config()))

    assert result.exit_code == status, result.output
    (row,) = [line for line in result.output.splitlines()
              if line.startswith("jira") and "profile fields on the site" in line]
    assert "FAILED" in row and ("may not browse" in row or "HTTP 503" in row)
