"""``incident-sync mappings fields`` against both sandboxes (Jira Cloud and Data Center).

Through the real client libraries: the command opens the configured connector, so
these also cover the connectors' ``site_fields`` end to end.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sync_helpers import sn_incident, writes
from typer.testing import CliRunner

from sync.cli.main import app

runner = CliRunner()

BOTH_MODES = pytest.mark.parametrize("jira_mode", ["cloud", "datacenter"], indirect=True)


def fields_json(config: Any, side: str, *extra: str) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["mappings", "fields", "--side", side, "--format", "json",
                                 "--config", str(config), *extra])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["side"] == side
    return list(data["fields"])


@BOTH_MODES
def test_jira_fields_list_ids_names_types_and_select_options(
    sandboxes: Any, sync_config: Any, jira_mode: str
) -> None:
    _, jira = sandboxes
    config = sync_config()

    fields = {f["id"]: f for f in fields_json(config, "jira")}

    assert fields["summary"]["name"] == "Summary" and fields["summary"]["on_create"] is True
    urgency = next(f for f in fields.values() if f["name"] == "Urgency")
    assert urgency["id"].startswith("customfield_") and urgency["custom"] is True
    assert urgency["type"].startswith("option")
    assert "High" in urgency["allowed"] and "Low" in urgency["allowed"]
    assert fields["priority"]["allowed"] == ["Highest", "High", "Medium", "Low", "Lowest"]
    # Jira sets these itself: no create screen offers them.
    assert fields["creator"]["on_create"] is False and fields["created"]["on_create"] is False
    # No issue in scope yet: the edit screen cannot be read, so it is not claimed.
    assert fields["summary"]["on_edit"] is None
    assert writes(jira) == []


@BOTH_MODES
def test_jira_fields_read_the_edit_screen_of_an_issue_in_scope(
    sandboxes: Any, sync_config: Any, jira_mode: str
) -> None:
    _, jira = sandboxes
    jira.create_issue({"summary": "Disk full on build agent"})
    config = sync_config()

    fields = {f["id"]: f for f in fields_json(config, "jira")}

    assert fields["summary"]["on_edit"] is True
    # Changing the issue type is a move, not an edit: the edit screen lacks it.
    assert fields["issuetype"]["on_create"] is True and fields["issuetype"]["on_edit"] is False
    assert any(e.path.endswith("/editmeta") for e in jira.log.entries)


def test_servicenow_fields_come_from_the_dictionary_with_inherited_columns_and_choices(
    sandboxes: Any, sync_config: Any
) -> None:
    servicenow, _ = sandboxes
    config = sync_config()

    fields = {f["id"]: f for f in fields_json(config, "servicenow")}

    # Inherited from task and incident's own, in one list.
    assert fields["short_description"]["name"] == "Short description"
    assert fields["caller_id"]["type"] == "reference -> sys_user"
    assert fields["state"]["allowed"] == ["1", "2", "3", "6", "7", "8"]
    assert "Solution provided" in fields["close_code"]["allowed"]
    assert fields["subcategory"]["allowed"] is None
    assert fields["number"]["on_create"] is False  # read-only column
    assert writes(servicenow) == []


def test_search_keeps_fields_whose_id_or_name_contains_the_text(
    sandboxes: Any, sync_config: Any
) -> None:
    config = sync_config()

    by_name = fields_json(config, "jira", "--search", "URGEN")
    by_id = fields_json(config, "servicenow", "--search", "caller")

    assert [f["name"] for f in by_name] == ["Urgency"]
    assert [f["id"] for f in by_id] == ["caller_id"]


@BOTH_MODES
def test_the_table_piped_keeps_every_cell_whole(
    sandboxes: Any, sync_config: Any, jira_mode: str
) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "Laptop will not boot")
    config = sync_config()

    jira = runner.invoke(app, ["mappings", "fields", "--side", "jira", "--search", "impact",
                               "--config", str(config)])
    sn = runner.invoke(app, ["mappings", "fields", "-s", "servicenow", "--config", str(config)])

    assert jira.exit_code == 0 and sn.exit_code == 0, jira.output + sn.output
    assert "…" not in jira.output and "…" not in sn.output
    (impact,) = [line for line in jira.output.splitlines() if "Impact" in line]
    # The whole option list on one line, in the site's order.
    assert "Extensive / Widespread, Significant / Large" in impact
    (close_code,) = [line for line in sn.output.splitlines() if line.startswith("close_code ")]
    assert "Resolution code" in close_code and "Workaround provided" in close_code
    assert jira.output.strip().endswith("1 fields")


def test_no_match_says_so(sandboxes: Any, sync_config: Any) -> None:
    result = runner.invoke(app, ["mappings", "fields", "--side", "jira", "--search", "zzz",
                                 "--config", str(sync_config())])
    assert result.exit_code == 0
    assert result.output.strip() == "no jira field matching 'zzz'"


def test_a_refused_password_exits_3_in_one_line_without_the_password(
    sandboxes: Any, sync_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sync_config()
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", "not-the-token")

    result = runner.invoke(app, ["mappings", "fields", "--side", "jira", "--config", str(config)])

    assert result.exit_code == 3, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "not-the-token" not in result.output


def test_a_bad_side_is_a_usage_error(sandboxes: Any, sync_config: Any) -> None:
    result = runner.invoke(app, ["mappings", "fields", "--side", "github",
                                 "--config", str(sync_config())])
    assert result.exit_code == 2
