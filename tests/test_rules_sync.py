"""The shipped example rules through `plan` and `run` on the sandboxes (Jira Cloud)."""

from __future__ import annotations

from typing import Any

import pytest
from rules_helpers import EXAMPLE
from sync_helpers import jira_fields, jira_issue, sn_incident
from typer.testing import CliRunner

from sync import factory
from sync.cli.main import app

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_plan_and_run_apply_the_example_rules_and_the_result_reaches_servicenow(
    sandboxes: Any, sync_config: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicenow, jira = sandboxes
    # The commands' engines read the sandboxes' clock, so SLA ages are those of the test
    # (minutes), not of the wall clock (months after the seeded dates).
    build = factory.build_engine
    monkeypatch.setattr(factory, "build_engine",
                        lambda settings, store, **kw: build(settings, store,
                                                            **{**kw, "clock": clock}))
    # ... and so does `plan` (its read-only session).
    session = factory.Session
    monkeypatch.setattr(factory, "Session",
                        lambda *args, **kw: session(*args, **{"clock": clock, **kw}))
    # The groups the example names exist on the instance (an admin creates them).
    secops = servicenow.insert("sys_user_group", {"name": "Security Operations"})["sys_id"]
    servicenow.insert("sys_user_group", {"name": "Incident Managers"})
    attack = sn_incident(servicenow, "Ransomware note on file server FS01",
                         description="Files renamed to .locked; a ransom note was found.",
                         impact="1", urgency="2", category="software")
    calm = sn_incident(servicenow, "Our backups are ransomware-free, please confirm",
                       impact="3", urgency="3", category="inquiry")
    key = jira_issue(jira, "Password reset for timesheet app")
    config = sync_config(rules=str(EXAMPLE))

    plan = invoke("plan", "--config", str(config))
    assert plan.exit_code == 0, plan.output
    assert "rule 'security-to-secops' set assignment_group: None -> 'Security Operations'" \
        not in plan.output  # the merged incident held the Network group, not None
    assert "rule 'security-to-secops' set assignment_group: 'Network' -> 'Security" \
        " Operations'" in plan.output
    assert "security-major-escalation" in plan.output
    assert "access-requests" in plan.output
    assert servicenow.get("incident", attack["sys_id"])["escalation"] == "0"  # plan wrote nothing

    result = invoke("run", "--config", str(config))
    assert result.exit_code == 0, result.output

    row = servicenow.get("incident", attack["sys_id"])
    assert row["assignment_group"] == secops          # functional escalation
    assert row["escalation"] == "2"                   # hierarchical escalation (P1)
    assert (row["urgency"], row["priority"]) == ("1", "1")
    untouched = servicenow.get("incident", calm["sys_id"])
    assert untouched["escalation"] == "0" and untouched["urgency"] == "3"
    # The Jira request became a ServiceNow incident categorized as an access request.
    (created,) = [r for r in servicenow.rows("incident") if r["correlation_id"] == key]
    assert (created["category"], created["subcategory"], created["impact"]) == (
        "inquiry", "Access", "3")
    # Impact, urgency and priority travel to Jira on a stock site.
    fields = jira_fields(jira, key)
    assert fields["priority"]["name"] == "Lowest" or fields["priority"]["name"] == "Low"
    assert "access-request" in fields["labels"]

    again = invoke("run", "--config", str(config))
    assert again.exit_code == 0, again.output
    assert "created 0, adopted 0, updated 0," in again.output  # nothing fires twice: idempotent
    replan = invoke("plan", "--config", str(config))
    assert "rule '" not in replan.output, replan.output


def test_check_online_names_the_groups_the_rules_need_that_servicenow_lacks(
    sandboxes: Any, sync_config: Any
) -> None:
    servicenow, _ = sandboxes
    config = sync_config(rules=str(EXAMPLE))
    result = invoke("check", "--config", str(config))
    assert result.exit_code == 1, result.output
    assert "no group named 'Security Operations', 'Incident Managers'" in result.output

    servicenow.insert("sys_user_group", {"name": "Security Operations"})
    servicenow.insert("sys_user_group", {"name": "Incident Managers"})
    result = invoke("check", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "rules: groups exist" in result.output and "0 failed" in result.output
