"""The pure field decisions of a pair, table-driven: merge, rules, implied and invented values.

Each row is one situation of a linked (or adopted) pair in neutral terms, the
decision :func:`sync.decide.decide_pair` must take, and what it must write
where. No tool and no store is involved: the default mapping profile tells how
each side reads a write back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mappings.mapper import MappingContext
from mappings.model import Incident
from mappings.profile import load_profile
from sync.decide import FieldView, adoption_base, decide_create, decide_pair, rebase_written
from sync.engine_core import EngineOptions, projection
from sync.rules import loads_rules

SIDES = ("servicenow", "jira")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DISPLAYS = {"servicenow": "INC0010001", "jira": "OPS-1"}
BASE = {"title": "VPN down", "status": "in_progress"}


def view(conflict: str = "newest", direction: str = "both") -> FieldView:
    # The Jira custom fields the default profile names, as a stock JSM site numbers them.
    ids = {"Impact": "customfield_10004", "Urgency": "customfield_10005"}
    ctx = {side: MappingContext(text_format="plain", field_ids=ids) for side in SIDES}
    return FieldView(SIDES, load_profile("default"), ctx,
                     EngineOptions(conflict=conflict, direction=direction))


def incident(values: dict[str, Any]) -> Incident:
    return Incident.model_validate({**BASE, **values})


@dataclass(frozen=True)
class Pending:
    """An open conflict as the store keeps it (duck-typed for revisit)."""

    base: dict[str, Any]
    resolution: str = "manual"


@dataclass(frozen=True)
class Case:
    name: str
    servicenow: dict[str, Any] = field(default_factory=dict)
    jira: dict[str, Any] = field(default_factory=dict)
    newer: str = "jira"
    conflict: str = "newest"
    direction: str = "both"
    adopted: bool = False                   # no common past: base None
    unchanged: bool = False                 # each side's snapshot is what it holds now
    pending: dict[str, Pending] = field(default_factory=dict)
    last_by_us: dict[str, dict[str, bool]] | None = None
    # expected
    writes: dict[str, dict[str, Any]] = field(default_factory=dict)   # side -> field: value
    conflicts: list[tuple[str, str, str]] = field(default_factory=list)  # field, winner, by
    settled: list[tuple[str, str, str]] = field(default_factory=list)
    needs_history: bool = False


CASES = [
    Case("nothing changed: nothing written"),
    Case("a change on one side travels to the other",
         servicenow={"title": "VPN down in Berlin"},
         writes={"jira": {"title": "VPN down in Berlin"}}),
    Case("the same change on both sides is no conflict",
         servicenow={"title": "Fixed title"}, jira={"title": "Fixed title"}),
    Case("both changed: the newest side wins and the conflict is recorded",
         servicenow={"title": "From ServiceNow"}, jira={"title": "From Jira"}, newer="jira",
         last_by_us={"servicenow": {}, "jira": {}},
         writes={"servicenow": {"title": "From Jira"}},
         conflicts=[("title", "jira", "newest")]),
    Case("both changed, policy names a side: that side wins",
         servicenow={"title": "From ServiceNow"}, jira={"title": "From Jira"}, newer="jira",
         conflict="servicenow", last_by_us={"servicenow": {}, "jira": {}},
         writes={"jira": {"title": "From ServiceNow"}},
         conflicts=[("title", "servicenow", "servicenow")]),
    Case("both changed under manual: recorded, nothing written",
         servicenow={"title": "From ServiceNow"}, jira={"title": "From Jira"},
         conflict="manual", last_by_us={"servicenow": {}, "jira": {}},
         conflicts=[("title", "manual", "manual")]),
    Case("both changed and no history read yet: the decision asks for it",
         servicenow={"title": "From ServiceNow"}, jira={"title": "From Jira"},
         needs_history=True),
    Case("both changed, one side's last change was the sync's own: the person wins",
         servicenow={"title": "From ServiceNow"}, jira={"title": "From Jira"}, newer="jira",
         last_by_us={"servicenow": {}, "jira": {"title": True}},
         writes={"jira": {"title": "From ServiceNow"}}),
    Case("a change that cannot travel needs no decision (priority goes to Jira only)",
         servicenow={"priority": 2}, jira={"priority": 4}, newer="jira",
         last_by_us={"servicenow": {}, "jira": {}},
         writes={"jira": {"priority": 2}}),
    Case("the direction setting keeps a change home",
         jira={"title": "From Jira"}, direction="servicenow-to-jira"),
    Case("an adopted pair without common past: every difference is a conflict",
         servicenow={"title": "Old title"}, jira={"title": "New title"}, newer="jira",
         adopted=True, writes={"servicenow": {"title": "New title"}},
         conflicts=[("title", "jira", "newest")]),
    Case("an open conflict both sides now agree on is settled",
         servicenow={"title": "Agreed"}, jira={"title": "Agreed"},
         pending={"title": Pending({"servicenow": "Agreed", "jira": "Agreed"})},
         settled=[("title", "agreed", "person")]),
    Case("an open conflict a person chose a side for: that side travels",
         servicenow={"title": "Mine"}, jira={"title": "Theirs"},
         pending={"title": Pending({"servicenow": "Mine", "jira": "Theirs"}, "jira")},
         unchanged=True,
         writes={"servicenow": {"title": "Theirs"}},
         conflicts=[("title", "jira", "person")]),
    Case("resolving in Jira drags the close code and notes along, and the invented close "
         "code goes back to Jira",
         servicenow={}, jira={"status": "resolved"},
         writes={"servicenow": {"status": "resolved", "resolution_code": "Solution provided",
                                "resolution_notes": "Resolved in Jira OPS-1"},
                 "jira": {"resolution_code": "Solution provided"}}),
]


def run_case(case: Case) -> Any:
    fields = view(case.conflict, case.direction)
    incidents = {"servicenow": incident(case.servicenow), "jira": incident(case.jira)}
    base_values = projection(incident({}), fields.merged_fields)
    base = None if case.adopted else {side: dict(base_values) for side in SIDES}
    if case.unchanged:
        base = {side: projection(incidents[side], fields.merged_fields) for side in SIDES}
    older = next(s for s in SIDES if s != case.newer)
    updated = {case.newer: T0 + timedelta(minutes=5), older: T0}
    return fields, incidents, decide_pair(
        fields, incidents, updated=updated, displays=DISPLAYS, base=base,
        pending=case.pending, last_by_us=case.last_by_us)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide_pair(case: Case) -> None:
    _, _, decision = run_case(case)

    assert decision.needs_history is case.needs_history
    if case.needs_history:
        return
    writes = {side: {f: w.after[f] for f in [*w.changed, *w.implied]}
              for side, w in decision.writes.items() if w is not None}
    assert writes == case.writes
    assert [(c.field, c.resolution, c.policy) for c in decision.conflicts] == case.conflicts
    assert [(c.field, c.resolution, c.policy) for c in decision.settled] == case.settled
    # A side's next snapshot is what it will hold: its values, with our write read back.
    for side in SIDES:
        for name, value in writes.get(side, {}).items():
            assert decision.snapshots[side][name] == value


def test_a_snapshot_never_records_a_write_that_did_not_happen() -> None:
    case = CASES[0]
    _, _, decision = run_case(case)
    assert decision.writes == {"servicenow": None, "jira": None}
    for side in SIDES:
        assert decision.snapshots[side] == decision.current[side]


# A rule: a high-impact incident gets escalation 2 (hierarchical escalation, with the
# manager note the rules engine adds).
ESCALATE = loads_rules("""
[escalation]
manager_group = "Incident Managers"
[[rule]]
name = "escalate"
when = { field = "impact", equals = 1 }
then = { escalate = "high" }
""")


def test_rules_run_on_the_merged_incident_and_their_changes_are_written() -> None:
    fields = view()
    incidents = {"servicenow": incident({"impact": 1}), "jira": incident({})}
    base = {side: projection(incident({}), fields.merged_fields) for side in SIDES}
    decision = decide_pair(fields, incidents, updated={"servicenow": T0, "jira": T0},
                           displays=DISPLAYS, base=base, rules=ESCALATE)
    assert [(f.rule, f.field) for f in decision.firings] == [
        ("escalate", "escalation"), ("escalate", "internal_note")]
    assert decision.firings[0].new == 2
    sn_write, jira_write = decision.writes["servicenow"], decision.writes["jira"]
    assert sn_write is not None and sn_write.changed == ["escalation"]   # a ServiceNow field
    assert jira_write is not None and "impact" in jira_write.changed     # the merge's part


def test_a_create_sends_rule_changes_and_invented_values_back_to_the_source() -> None:
    fields = view()
    source = incident({"status": "resolved", "impact": 1})
    decision = decide_create(fields, source, "jira", {"jira": "OPS-1", "servicenow": ""},
                             rules=ESCALATE)
    assert decision.copy.escalation == 2
    # The copy had to invent a close code; Jira holds the resolution too: both agree.
    assert decision.source_write is not None
    assert decision.source_write.overrides == {"resolution_code": "Solution provided"}
    assert decision.snapshots["servicenow"]["resolution_code"] == "Solution provided"
    assert decision.snapshots["jira"]["resolution_code"] == "Solution provided"


def test_an_adopted_copy_counts_only_what_people_changed() -> None:
    fields = view()
    incidents = {"servicenow": incident({"title": "Original"}),
                 "jira": incident({"title": "Original", "status": "new"})}
    plain = adoption_base(fields, incidents, DISPLAYS)
    assert plain["jira"]["status"] == "in_progress"   # differs: a change on both sides
    ours = adoption_base(fields, incidents, DISPLAYS, source="servicenow",
                         people={"jira": set(), "servicenow": set()})
    assert ours["jira"]["status"] == "new"            # the copy's initial status: our work


def test_a_value_the_tool_reshaped_is_absorbed_and_a_drop_is_reported() -> None:
    fields = view()
    snapshot = {**projection(incident({}), fields.merged_fields), "title": "A long title",
                "resolution_code": "Duplicate"}
    held = {**snapshot, "title": "A long", "resolution_code": None}
    rebased, dropped = rebase_written(fields, snapshot, held, {"title"})
    assert rebased["title"] == "A long"
    assert dropped == ["resolution_code"]


def test_a_projection_dumps_the_comments_only_when_asked_for_and_says_the_same() -> None:
    record = Incident.model_validate({
        "title": "Mail down", "labels": ["vip", "mail", "vip"], "custom": {"hold_reason": "x"},
        "comments": [{"id": "c1", "body": "Looking", "created": "2026-03-01T09:00:00Z"}]})
    full = record.model_dump(mode="json")
    fields = view().merged_fields
    assert "comments" not in fields
    assert projection(record, fields) == {
        name: full["custom"].get(name[len("custom."):]) if name.startswith("custom.")
        else sorted(set(full["labels"])) if name == "labels" else full.get(name)
        for name in fields}
    # Asked for, from any iterable: there as the model dumps them.
    assert projection(record, iter(["comments", "custom.hold_reason"])) == {
        "comments": full["comments"], "custom.hold_reason": "x"}
