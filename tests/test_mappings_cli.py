"""`incident-sync mappings show|test` and the profile line of `check --offline`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync.cli.main import app

DATA = Path(__file__).parent / "data"
RECORDS = DATA / "records"
runner = CliRunner()
WIDE = {"COLUMNS": "220"}

CONFIG = """\
[servicenow]
instance_url = "http://127.0.0.1:8001"
username = "admin"

[jira]
url = "http://127.0.0.1:8002"
email = "admin"
project = "OPS"

[sync]
mapping = "{mapping}"
"""


# Prove the commands need nothing from the caller's environment.
pytestmark = pytest.mark.usefixtures("no_incident_sync_env")


def _config(tmp_path: Path, mapping: str) -> Path:
    path = tmp_path / "incident-sync.toml"
    path.write_text(CONFIG.format(mapping=mapping), encoding="utf-8")
    return path


def _one_line_error(result: object) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    return lines[0]


def test_show_prints_the_default_mapping_table() -> None:
    result = runner.invoke(app, ["mappings", "show", "--profile", "default"], env=WIDE)
    assert result.exit_code == 0, result.output
    for text in ("mapping default", "short_description", "summary", "truncate(limit=255",
                 "to-jira", "assignment_group", "group_by_name",
                 "label_prefix(prefix='category-')",
                 "required for closed, resolved: Solution provided", "new→Open"):
        assert text in result.stdout, text
    assert "Assignment group" not in result.stdout  # a stock site has no such field


def test_show_prints_the_extended_profile_over_the_default() -> None:
    result = runner.invoke(app, ["mappings", "show", "--profile", "jsm-extended"], env=WIDE)
    assert result.exit_code == 0, result.output
    for text in ("mapping jsm-extended", "Assignment group", "Subcategory", "Resolution notes",
                 "Escalation", "components", "short_description"):
        assert text in result.stdout, text
    assert "label_prefix" not in result.stdout


def test_show_uses_the_configured_profile_relative_to_the_config(tmp_path: Path) -> None:
    shutil.copy(DATA / "profiles" / "team_override.toml", tmp_path / "team.toml")
    result = runner.invoke(app, ["mappings", "show", "--config",
                                 str(_config(tmp_path, "team.toml"))], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "mapping team" in result.stdout
    assert "custom.business_unit" in result.stdout and "u_business_unit" in result.stdout
    assert "prefix(prefix='[SN] ')" in result.stdout


def test_show_with_a_broken_profile_is_one_line_and_exit_2() -> None:
    path = DATA / "profiles" / "non_total_map.toml"
    result = runner.invoke(app, ["mappings", "show", "--profile", str(path)])
    line = _one_line_error(result)
    assert line == (f"incident-sync: {path}: fields.status.to_jira (line 16):"
                    " map is not total: no mapping for 'canceled'")


def test_test_maps_a_servicenow_record_to_jira_fields() -> None:
    result = runner.invoke(app, [
        "mappings", "test", "--profile", "default", "--side", "servicenow",
        "--record", str(RECORDS / "servicenow_pull_resolved.json"),
    ])
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["incident"]["status"] == "resolved"
    assert output["incident"]["caller"] == "ines.moreau@example.com"
    jira = output["jira"]
    assert jira["fields"]["status"] == "Resolved"
    assert jira["fields"]["description"]["type"] == "doc"  # adf unless told otherwise
    # Without the site's field ids, names stay names in the preview.
    assert jira["fields"]["Impact"] == {"value": "Moderate / Limited"}
    assert jira["fields"]["resolution"] == {"name": "Done"}
    assert any("Workaround provided" in loss for loss in jira["losses"])


def test_test_uses_field_ids_and_text_format_when_given(tmp_path: Path) -> None:
    ids = tmp_path / "fields.json"
    ids.write_text(json.dumps([
        {"id": "customfield_10004", "name": "Impact", "custom": True},
        {"id": "summary", "name": "Summary", "custom": False},
    ]), encoding="utf-8")
    result = runner.invoke(app, [
        "mappings", "test", "--side", "servicenow", "--text-format", "wiki",
        "--field-ids", str(ids), "--record", str(RECORDS / "servicenow_docs_post.json"),
    ])
    assert result.exit_code == 0, result.output
    fields = json.loads(result.stdout)["jira"]["fields"]
    assert fields["customfield_10004"] == {"value": "Moderate / Limited"}
    assert fields["summary"] == "Unable to connect to office wifi"
    assert fields["description"] is None


def test_test_reads_a_jira_issue_with_its_names() -> None:
    result = runner.invoke(app, [
        "mappings", "test", "--side", "jira", "--record", str(RECORDS / "jira_v2_issue.json"),
    ])
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    # expand=names resolved "Impact" to customfield_10004; the string description is wiki.
    assert output["incident"]["impact"] == 2
    assert output["incident"]["description"].startswith("Since this morning the **VPN client**")
    assert output["incident"]["labels"] == ["remote-work"]
    sn = output["servicenow"]["fields"]
    assert sn["state"] == "2" and sn["assigned_to"] == {"$user": "chen.wei@example.com"}
    assert "priority" not in sn


def test_test_with_a_record_that_is_not_json(tmp_path: Path) -> None:
    bad = tmp_path / "record.json"
    bad.write_text("{not json", encoding="utf-8")
    line = _one_line_error(runner.invoke(app, [
        "mappings", "test", "--side", "jira", "--record", str(bad)]))
    assert line.startswith(f"incident-sync: {bad}: record is not JSON:")


def test_test_with_a_missing_record() -> None:
    line = _one_line_error(runner.invoke(app, [
        "mappings", "test", "--side", "jira", "--record", "nowhere.json"]))
    assert line == "incident-sync: nowhere.json: record not found"


def test_test_with_a_value_the_profile_cannot_map(tmp_path: Path) -> None:
    issue = json.loads((RECORDS / "jira_dc_issue.json").read_text(encoding="utf-8"))
    issue["fields"]["status"] = {"name": "Awaiting approval"}
    path = tmp_path / "issue.json"
    path.write_text(json.dumps(issue), encoding="utf-8")
    line = _one_line_error(runner.invoke(app, [
        "mappings", "test", "--side", "jira", "--record", str(path)]))
    assert "'Awaiting approval' has no mapping in fields.status.from_jira" in line


def test_test_rejects_an_unknown_side() -> None:
    result = runner.invoke(app, ["mappings", "test", "--side", "zendesk", "--record", "x.json"])
    assert result.exit_code == 2


def test_check_offline_reports_the_mapping(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--offline", "--config",
                                 str(_config(tmp_path, "default"))])
    assert result.exit_code == 0, result.output
    assert "mapping default: ok (19 fields)" in result.stdout


def test_check_offline_fails_on_a_broken_mapping(tmp_path: Path) -> None:
    shutil.copy(DATA / "profiles" / "unknown_transform.toml", tmp_path / "team.toml")
    line = _one_line_error(runner.invoke(app, [
        "check", "--offline", "--config", str(_config(tmp_path, "team.toml"))]))
    assert line.endswith("team.toml: fields.title.jira.transform (line 5): unknown transform"
                         " 'shorten' (known: rich_text, truncate, prefix, suffix, user_by_email,"
                         " group_by_name, datetime, select_option, name_object, components,"
                         " labels, label_prefix, int_string)")


def test_show_without_profile_or_config_shows_the_shipped_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["mappings", "show"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "mapping default (profiles/default.toml)" in result.stdout


# ------------------------------------------------------------------ references offline


def _preview(tmp_path: Path, side: str, record: object) -> dict[str, object]:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    result = runner.invoke(app, ["mappings", "test", "--profile", "default", "--side", side,
                                 "--record", str(path)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_test_names_each_reference_it_cannot_resolve_offline_instead_of_a_bare_null(
    tmp_path: Path,
) -> None:
    # A plain Table API read: references are sys_ids, one with its display value, and
    # the dot-walked emails/names were not requested.
    output = _preview(tmp_path, "servicenow", {"result": {
        "short_description": "Mail down", "state": "2", "impact": "2", "urgency": "2",
        "caller_id": "62826bf03710200044e0bfc8bcbe5df9",
        "assigned_to": {"value": "5137153cc611227c000bbd1bd8cd2007",
                        "display_value": "David Loo"},
        "assignment_group": {"value": "287ebd7da9fe198100f92cc8d1d2154e",
                             "display_value": "Network"},
    }})
    incident = output["incident"]
    assert (incident["caller"], incident["assignee"], incident["assignment_group"]) == (
        None, None, None)
    losses = output["jira"]["losses"]
    caller = [loss for loss in losses if loss.startswith("caller:")]
    assert len(caller) == 1
    assert "62826bf03710200044e0bfc8bcbe5df9" in caller[0]
    assert "no caller_id.email" in caller[0]
    assignee = next(loss for loss in losses if loss.startswith("assignee:"))
    assert "'David Loo' (sys_id 5137153cc611227c000bbd1bd8cd2007)" in assignee
    group = next(loss for loss in losses if loss.startswith("assignment_group:"))
    assert "'Network'" in group and "no assignment_group.name" in group


def test_test_says_which_people_a_run_would_still_look_up_on_the_other_side() -> None:
    result = runner.invoke(app, [
        "mappings", "test", "--profile", "default", "--side", "servicenow",
        "--record", str(RECORDS / "servicenow_display_all.json"),
    ])
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["incident"]["caller"] == "hiro.tanaka@example.com"
    losses = output["jira"]["losses"]
    assert not any("maps nobody" in loss for loss in losses)  # every reference was readable
    reporter = next(loss for loss in losses if loss.startswith("caller:"))
    assert "jira reporter" in reporter and "'hiro.tanaka@example.com'" in reporter
    assert "not resolved offline" in reporter
    assert output["jira"]["fields"]["reporter"] == {"$user": "hiro.tanaka@example.com"}


def test_test_of_a_jira_record_notes_the_servicenow_group_lookup() -> None:
    # The group travels from Jira only where an admin made the field: jsm-extended.
    result = runner.invoke(app, [
        "mappings", "test", "--profile", "jsm-extended", "--side", "jira",
        "--record", str(RECORDS / "jira_v2_issue.json"),
    ])
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    losses = output["servicenow"]["losses"]
    group = output["incident"]["assignment_group"]
    assert group and any(loss.startswith("assignment_group: servicenow assignment_group is the"
                                         f" group with name {group!r}") for loss in losses)
    assert any("'chen.wei@example.com'" in loss for loss in losses)
