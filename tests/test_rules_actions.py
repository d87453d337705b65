"""Each rule action: what it sets, the ITIL matrix, labels, groups, escalation, stop."""

from __future__ import annotations

from rules_helpers import NOW, one_rule, rules, run

from mappings.model import Comment, Escalation, Impact, Incident, Priority, Urgency, Visibility

MANAGERS = '[escalation]\nmanager_group = "Incident Managers"\n'


def changes(outcome: object) -> list[tuple[str, str, object, object]]:
    return [(f.rule, f.field, f.old, f.new) for f in outcome.firings]  # type: ignore[attr-defined]


def test_set_category_and_subcategory() -> None:
    outcome = run(one_rule("", 'then = { category = "inquiry", subcategory = "Access" }'),
                  Incident(category="software"))
    assert outcome.incident.category == "inquiry" and outcome.incident.subcategory == "Access"
    assert changes(outcome) == [("r", "category", "software", "inquiry"),
                                ("r", "subcategory", None, "Access")]


def test_impact_and_urgency_move_the_priority_by_the_itil_matrix() -> None:
    start = Incident(impact=Impact.MEDIUM, urgency=Urgency.MEDIUM, priority=Priority.MODERATE)
    outcome = run(one_rule("", "then = { urgency = 1 }"), start)
    assert outcome.incident.urgency is Urgency.HIGH
    assert outcome.incident.priority is Priority.HIGH            # 2 x 1 -> 2
    low = run(one_rule("", "then = { impact = 3, urgency = 3 }"), start).incident
    assert low.priority is Priority.PLANNING                     # 3 x 3 -> 5


def test_an_explicit_priority_wins_over_the_matrix() -> None:
    outcome = run(one_rule("", "then = { urgency = 1, priority = 1 }"),
                  Incident(impact=Impact.MEDIUM, urgency=Urgency.MEDIUM))
    assert outcome.incident.priority is Priority.CRITICAL
    later = rules('[[rule]]\nname = "a"\nthen = { priority = 1 }\n'
                  '[[rule]]\nname = "b"\nthen = { urgency = 3 }\n')
    # A later impact/urgency change re-derives the priority: the matrix follows the last word.
    assert run(later, Incident()).incident.priority is Priority.LOW


def test_add_labels_adds_only_what_is_missing_and_never_removes() -> None:
    outcome = run(one_rule("", 'then = { add_labels = ["security", "vip"] }'),
                  Incident(labels=["vip", "other"]))
    assert outcome.incident.labels == ["vip", "other", "security"]
    assert changes(outcome) == [("r", "labels", ["vip", "other"], ["vip", "other", "security"])]


def test_assign_to_a_group_is_functional_escalation() -> None:
    outcome = run(one_rule("", 'then = { assignment_group = "Security Operations" }'),
                  Incident(assignment_group="Service Desk"))
    assert outcome.incident.assignment_group == "Security Operations"


def test_escalate_raises_the_level_and_adds_one_internal_note_for_the_managers() -> None:
    ruleset = one_rule('when = { text_contains = ["ransomware"] }',
                       'then = { escalate = "high" }', head=MANAGERS)
    outcome = run(ruleset, Incident(title="Ransomware on FS01"))
    assert outcome.incident.escalation is Escalation.HIGH
    (note,) = outcome.incident.comments
    assert note == Comment(
        id="rules:r:escalation-2", author="incident-sync rules", created=NOW,
        visibility=Visibility.INTERNAL,
        body="For Incident Managers: escalated to high by rule 'r' because text contains:"
             " 'Ransomware' in title.")
    assert [f.field for f in outcome.firings] == ["escalation", "internal_note"]


def test_escalate_never_lowers_and_adds_no_note_when_already_that_high() -> None:
    ruleset = one_rule("", "then = { escalate = 1 }", head=MANAGERS)
    outcome = run(ruleset, Incident(escalation=Escalation.OVERDUE))
    assert outcome.incident.escalation is Escalation.OVERDUE
    assert outcome.firings == [] and outcome.incident.comments == []


def test_notify_names_another_group_for_one_rule() -> None:
    ruleset = one_rule("", 'then = { escalate = "overdue", notify = "Major Incident Team" }',
                       head=MANAGERS)
    (note,) = run(ruleset, Incident()).incident.comments
    assert note.body.startswith("For Major Incident Team: escalated to overdue")


def test_stop_ends_the_rules_for_this_incident() -> None:
    ruleset = rules('[[rule]]\nname = "first"\nwhen.text_contains = ["vip"]\n'
                    'then = { add_labels = ["vip"], stop = true }\n'
                    '[[rule]]\nname = "second"\nthen = { add_labels = ["everyone"] }\n')
    assert run(ruleset, Incident(title="VIP laptop")).incident.labels == ["vip"]
    assert run(ruleset, Incident(title="laptop")).incident.labels == ["everyone"]


def test_a_field_already_holding_the_value_is_not_a_firing() -> None:
    outcome = run(one_rule("", 'then = { category = "network" }'), Incident(category="network"))
    assert outcome.firings == [] and outcome.matches[0].changed == []
