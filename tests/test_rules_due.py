"""When the rules next change an incident by time alone (:func:`sync.rules.next_due`), and
what a link's recorded firings make of a later evaluation (person wins, notes once)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from rules_helpers import NOW, opened, rules

from mappings.model import Escalation, Impact, Status, Urgency
from sync.rules import (
    DUE_SLACK,
    NOTE_FIELD,
    apply_rules,
    next_due,
    overridden_by_people,
    owed_notes,
    with_notes,
)

SLA = rules("""
[sla]
P1 = { response = "15m", resolution = "4h" }
P5 = { response = "24h", resolution = "5d" }
[escalation]
manager_group = "Incident Managers"
[[rule]]
name = "response"
when = { sla_breached = "response" }
then = { escalate = "moderate" }
[[rule]]
name = "resolution"
when = { sla_breached = "resolution" }
then = { escalate = "overdue" }
[[rule]]
name = "stale"
when = { unchanged_longer_than = "2d" }
then = { add_labels = ["stale"] }
""")
P1 = {"impact": Impact.HIGH, "urgency": Urgency.HIGH}


def test_a_new_p1_is_due_just_after_its_response_target_then_its_resolution_target() -> None:
    incident = opened(0.1, **P1)   # open for 6 minutes
    assert next_due(incident, SLA, NOW) == incident.opened_at + timedelta(minutes=15) + DUE_SLACK

    later = NOW + timedelta(minutes=20)
    ruled, firings = apply_rules(incident, SLA, later)
    assert ruled.escalation is Escalation.MODERATE and firings
    # The response breach is spent; the resolution target is next.
    assert next_due(ruled, SLA, later) == incident.opened_at + timedelta(hours=4) + DUE_SLACK


def test_an_instant_where_nothing_would_change_is_not_due() -> None:
    # In progress: the response target cannot breach, so only the resolution counts.
    incident = opened(0.1, status=Status.IN_PROGRESS, **P1)
    assert next_due(incident, SLA, NOW) == incident.opened_at + timedelta(hours=4) + DUE_SLACK
    # Already overdue and stale-labelled: no later instant changes anything.
    done, _ = apply_rules(opened(80, status=Status.IN_PROGRESS, updated_at=NOW
                                 - timedelta(days=3), **P1), SLA, NOW)
    assert next_due(done, SLA, NOW) is None
    # A resolved incident breaches no SLA; its age rule still counts.
    closed = opened(1, status=Status.RESOLVED, updated_at=NOW - timedelta(hours=1), **P1)
    assert next_due(closed, SLA, NOW) == closed.updated_at + timedelta(days=2) + DUE_SLACK


def test_rules_without_a_time_test_are_never_due() -> None:
    plain = rules('[[rule]]\nname = "r"\nwhen = { field = "impact", equals = 1 }\n'
                  'then = { add_labels = ["big"] }\n')
    assert next_due(opened(1, **P1), plain, NOW) is None


def test_an_escalation_a_person_lowered_is_not_due_again() -> None:
    incident = opened(1, **P1)   # past the response target
    ruled, firings = apply_rules(incident, SLA, NOW)
    lowered = ruled.model_copy(update={"escalation": Escalation.NORMAL})
    overridden = overridden_by_people(firings, lowered)
    assert ("response", "escalation") in overridden
    again, more = apply_rules(lowered, SLA, NOW, overridden)
    assert again.escalation is Escalation.NORMAL and more == []
    # The resolution rule still escalates when its own target passes: a different rule.
    assert next_due(again, SLA, NOW, overridden) == \
        incident.opened_at + timedelta(hours=4) + DUE_SLACK


@settings(max_examples=40, deadline=None)
@given(minutes=st.integers(min_value=0, max_value=6 * 24 * 60),
       status=st.sampled_from([Status.NEW, Status.IN_PROGRESS, Status.ON_HOLD,
                               Status.RESOLVED]),
       high=st.booleans())
def test_nothing_changes_between_now_and_the_due_time(minutes: int, status: Status,
                                                      high: bool) -> None:
    """The due time is exact: just before it the rules change nothing, at it they do."""
    fields = P1 if high else {"impact": Impact.LOW, "urgency": Urgency.LOW}
    incident = opened(minutes / 60, status=status, updated_at=NOW - timedelta(minutes=minutes),
                      **fields)
    ruled, _ = apply_rules(incident, SLA, NOW)
    due = next_due(ruled, SLA, NOW)
    if due is None:
        assert apply_rules(ruled, SLA, NOW + timedelta(days=30))[1] == []
        return
    assert due > NOW
    assert apply_rules(ruled, SLA, due - timedelta(seconds=1))[1] == []
    assert apply_rules(ruled, SLA, due)[1] != []


def test_a_recorded_note_is_never_added_again_and_an_unrecorded_one_is_owed() -> None:
    incident = opened(1, **P1)
    ruled, firings = apply_rules(incident, SLA, NOW)
    (note,) = [f for f in firings if f.field == NOTE_FIELD]
    assert note.note_id == "rules:response:escalation-1"

    # Recorded: the escalation and the note. Nothing is owed, nothing added again.
    assert owed_notes(ruled, SLA, NOW, firings) == []
    held = with_notes(ruled, [note.note_id])
    assert apply_rules(held, SLA, NOW)[1] == []

    # The escalation was recorded but the note's write failed: the note is owed.
    escalation_only = [f for f in firings if f.field != NOTE_FIELD]
    after_failure = ruled.model_copy(update={"comments": []})
    ((owed, comment),) = owed_notes(after_failure, SLA, NOW, escalation_only)
    assert (owed.rule, owed.field, owed.note_id) == ("response", NOTE_FIELD, note.note_id)
    assert comment.body.startswith("For Incident Managers: escalated to moderate")
    # ... unless a person has lowered the escalation since: nothing is owed then.
    lowered = after_failure.model_copy(update={"escalation": Escalation.NORMAL})
    assert owed_notes(lowered, SLA, NOW, escalation_only) == []
