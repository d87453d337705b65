"""`rules test` snapshots, and bad rules refused by `check --offline` in one line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rules_helpers import EXAMPLE
from typer.testing import CliRunner

from sync.cli.main import app

DATA = Path(__file__).resolve().parent / "data" / "rules"
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_rules_test_shows_before_each_firing_and_why_and_after_for_a_servicenow_record(
    no_incident_sync_env: None,
) -> None:
    result = invoke("rules", "test", "--record", str(DATA / "ransomware_servicenow.json"),
                    "--side", "servicenow", "--rules", str(EXAMPLE),
                    "--now", "2026-03-02T12:30:00Z")
    assert result.exit_code == 0, result.output
    expected = (DATA / "ransomware_servicenow.expected.txt").read_text(encoding="utf-8")
    assert result.output.replace(str(EXAMPLE), "rules.example.toml") == expected


def test_rules_test_as_json_for_a_jira_record(no_incident_sync_env: None) -> None:
    result = invoke("rules", "test", "--record", str(DATA / "password_jira.json"),
                    "--side", "jira", "--rules", str(EXAMPLE), "--now", "2026-03-02T16:00:00Z",
                    "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    data["rules_file"] = "rules.example.toml"
    assert data == json.loads((DATA / "password_jira.expected.json").read_text("utf-8"))
    assert [r["rule"] for r in data["rules"] if r["fires"]] == [
        "access-requests", "sla-response-breached"]


def test_rules_test_takes_the_rules_file_from_the_config(tmp_path: Path,
                                                        no_incident_sync_env: None) -> None:
    (tmp_path / "my-rules.toml").write_text(
        '[[rule]]\nname = "tag"\nthen = { add_labels = ["seen"] }\n', encoding="utf-8")
    config = tmp_path / "incident-sync.toml"
    config.write_text('[servicenow]\ninstance_url = "https://x.service-now.com"\n'
                      'username = "u"\n[jira]\nurl = "https://x.atlassian.net"\n'
                      'email = "a@example.com"\nproject = "OPS"\n[sync]\n'
                      'rules = "my-rules.toml"\n', encoding="utf-8")
    result = invoke("rules", "test", "--record", str(DATA / "ransomware_servicenow.json"),
                    "--side", "servicenow", "--config", str(config), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["after"]["labels"] == ["seen"]


@pytest.mark.parametrize(("args", "message"), [
    (["--now", "yesterday"], "--now: not an ISO 8601 time: 'yesterday'"),
    (["--record", "missing.json"], "missing.json: record not found"),
    ([], "no rules file: pass --rules FILE"),
])
def test_rules_test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    no_incident_sync_env: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    base = ["rules", "test", "--side", "servicenow"]
    if "--record" not in args:
        base += ["--record", str(DATA / "ransomware_servicenow.json")]
    if args:
        base += ["--rules", str(EXAMPLE)]
    result = invoke(*base, *args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and message in result.output, result.output
    assert "Traceback" not in result.output


BAD_RULES = [
    ('when = { field = "colour", equals = "red" }\nthen = { category = "x" }',
     "unknown field 'colour'"),
    ('then = { set_colour = "red" }', "then: unknown action 'set_colour'"),
    ('when = { text_has = ["x"] }\nthen = { category = "x" }', "when: unknown condition"),
    ("when = { matches = '(unclosed' }\nthen = { category = \"x\" }", "bad regex '(unclosed'"),
    ('when = { open_longer_than = "4 hours" }\nthen = { category = "x" }',
     "bad duration '4 hours'"),
    ('when = { sla_breached = "resolution" }\nthen = { category = "x" }',
     "sla_breached needs SLA targets"),
    ('when = { field = "status", equals = "opne" }\nthen = { category = "x" }',
     "status cannot be 'opne'"),
    ('when = { field = "title", gt = 3 }\nthen = { category = "x" }', "'title' is not a number"),
    ('when.all = [ { field = "status", equals = "new" }, { field = "status", in = ["closed"] } ]'
     '\nthen = { category = "x" }', "contradiction: the tests on 'status'"),
    ('when = { field = "priority", lt = 1 }\nthen = { category = "x" }',
     "contradiction: priority < 1 can never hold"),
    ("then = { impact = 3, urgency = 3, priority = 1 }",
     "contradiction: then sets impact 3 and urgency 3 (priority 5 by the ITIL matrix)"),
    ('when = { field = "escalation", gte = 2 }\nthen = { escalate = "moderate",'
     ' notify = "Managers" }', "contradiction: escalates to moderate but only fires"),
    ("then = {}", "then: does nothing"),
    ('when = { field = "category", equals = "x", in = ["y"] }\nthen = { category = "x" }',
     "needs exactly one of"),
]


@pytest.mark.parametrize(("body", "reason"), BAD_RULES)
def test_check_offline_names_file_rule_and_reason_in_one_line(
    body: str, reason: str, tmp_path: Path, no_incident_sync_env: None,
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[[rule]]\nname = "fine"\nthen = {{ category = "network" }}\n\n'
                     f'[[rule]]\nname = "broken-one"\n{body}\n', encoding="utf-8")
    config = tmp_path / "incident-sync.toml"
    # Unroutable tool URLs: anything contacted would fail loudly.
    config.write_text('[servicenow]\ninstance_url = "https://192.0.2.1"\nusername = "u"\n'
                      '[jira]\nurl = "https://192.0.2.2"\nemail = "a@example.com"\n'
                      'project = "OPS"\n[sync]\nrules = "rules.toml"\n', encoding="utf-8")
    result = invoke("check", "--offline", "--config", str(config))
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1, result.output
    assert f"{rules}: rule 'broken-one': " in result.output and reason in result.output


def test_the_shipped_example_passes_check_offline(tmp_path: Path,
                                                  no_incident_sync_env: None) -> None:
    config = tmp_path / "incident-sync.toml"
    config.write_text('[servicenow]\ninstance_url = "https://192.0.2.1"\nusername = "u"\n'
                      '[jira]\nurl = "https://192.0.2.2"\nemail = "a@example.com"\n'
                      f'project = "OPS"\n[sync]\nrules = "{EXAMPLE.as_posix()}"\n',
                      encoding="utf-8")
    result = invoke("check", "--offline", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "rules: 6 configured" in result.output
