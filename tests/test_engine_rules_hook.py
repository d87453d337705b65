"""The rules hook: pure, traced by rule name, and applied by the engine before the diff."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_helpers import jira_fields, linked_pair, sync

from mappings.model import Escalation, Impact, Incident, Status, Urgency
from sync.engine import EngineOptions, projection, with_values
from sync.rules import apply_rules, loads_rules

# Impact high and still open -> escalation high (a hierarchical escalation).
ESCALATE_MAJOR = loads_rules("""
[escalation]
manager_group = "Incident Managers"
[[rule]]
name = "escalate-major"
when.all = [ { field = "impact", equals = 1 },
             { field = "status", in = ["new", "in_progress", "on_hold"] } ]
then = { escalate = "high" }
""")


def test_no_rules_return_the_incident_unchanged_and_no_firings() -> None:
    incident = Incident(title="Printer jammed")
    result, firings = apply_rules(incident)
    assert result == incident and firings == []


def test_a_rule_that_fires_is_traced_by_name_and_field() -> None:
    incident = Incident(title="Core switch down", impact=Impact.HIGH)
    result, firings = apply_rules(incident, ESCALATE_MAJOR)
    assert result.escalation is Escalation.HIGH
    assert [(f.rule, f.field, f.old, f.new) for f in firings] == [
        ("escalate-major", "escalation", 0, 2),
        ("escalate-major", "internal_note", None, "For Incident Managers: escalated to high by"
         " rule 'escalate-major' because impact is 1 and status in ['new', 'in_progress',"
         " 'on_hold'] (is 'new').")]
    assert incident.escalation is Escalation.NORMAL   # the input is untouched


@settings(max_examples=60, deadline=None)
@given(impact=st.sampled_from(Impact), urgency=st.sampled_from(Urgency),
       status=st.sampled_from(Status), escalation=st.sampled_from(Escalation))
def test_rules_are_idempotent(impact: Impact, urgency: Urgency, status: Status,
                              escalation: Escalation) -> None:
    incident = Incident(impact=impact, urgency=urgency, status=status, escalation=escalation)
    once, _ = apply_rules(incident, ESCALATE_MAJOR)
    twice, firings = apply_rules(once, ESCALATE_MAJOR)
    assert twice == once and firings == []


def test_projection_and_with_values_round_trip_custom_and_labels() -> None:
    incident = Incident(title="x", labels=["b", "a", "b"], custom={"hold_reason": "1"})
    view = projection(incident, ["title", "labels", "custom.hold_reason", "status"])
    assert view == {"title": "x", "labels": ["a", "b"], "custom.hold_reason": "1",
                    "status": "new"}
    changed = with_values(incident, {"custom.hold_reason": "2", "status": "on_hold"})
    assert changed.custom == {"hold_reason": "2"} and changed.status is Status.ON_HOLD


def test_engine_options_refuse_unknown_direction_and_policy() -> None:
    for bad in ({"direction": "sideways"}, {"conflict": "loudest"}):
        try:
            EngineOptions(**bad)
        except ValueError as error:
            assert next(iter(bad.values())) in str(error)
        else:
            raise AssertionError(f"{bad} accepted")
    assert EngineOptions(direction="jira-to-servicenow").allows("jira", "servicenow")
    assert not EngineOptions(direction="jira-to-servicenow").allows("servicenow", "jira")


# On the extended site escalation has a Jira field, so the rule's write shows on both.
@pytest.mark.parametrize("jira_fields", ["extended"], indirect=True)
def test_the_engine_applies_rules_to_the_merged_incident_before_the_diff(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    config, sys_id, key = linked_pair(sandboxes, sync_config, make_engine,
                                      mapping="jsm-extended")
    servicenow.update("incident", sys_id, {"impact": "1"})
    engine = make_engine(config)
    engine.rules = ESCALATE_MAJOR.rules

    plan = engine.build_plan()
    (pair,) = [p for p in plan.pairs if p.actions()]
    assert [(f.rule, f.field) for f in pair.firings] == [
        ("escalate-major", "escalation"), ("escalate-major", "internal_note")]
    assert "rule 'escalate-major' set escalation: 0 -> 2" in "\n".join(plan.describe())
    summary = engine.apply(plan)

    assert summary.failed == 0, summary.failures
    assert servicenow.get("incident", sys_id)["escalation"] == "2"
    assert jira_fields(jira, key)["customfield_10009"]["value"] == "High"
    # Idempotent: with the rule still on, nothing fires or changes any more.
    again = make_engine(config)
    again.rules = ESCALATE_MAJOR.rules
    assert again.run().updated == 0
    assert sync(make_engine, config).updated == 0

