"""The pure re-decision of a field whose conflict is still open (sync.conflict_settle)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sync.conflict_settle import revisit
from sync.merge import FieldMerge, merge_field

SIDES = ("servicenow", "jira")
BASE = {"servicenow": "VPN down", "jira": "VPN down"}


def open_conflict(resolution: str = "manual", policy: str = "manual") -> Any:
    return SimpleNamespace(base=BASE, resolution=resolution, policy=policy)


def facts(current: dict[str, Any], policy: str = "manual", newest: str = "jira",
          owner: str | None = None) -> dict[str, Any]:
    same = current["servicenow"] == current["jira"]
    return dict(sides=SIDES, current=current, travels_to=dict.fromkeys(SIDES, True),
                agrees=dict.fromkeys(SIDES, same), owner=owner, policy=policy, newest=newest)


def decide(current: dict[str, Any], snapshot: dict[str, Any], pending: Any,
           **kw: Any) -> tuple[FieldMerge, Any]:
    given = facts(current, **kw)
    return revisit(merge_field("title", base=snapshot, **given), pending, **given)


def test_nothing_changes_without_an_open_conflict() -> None:
    held = {"servicenow": "Paris", "jira": "Lyon"}
    decision, settled = decide(held, held, None, policy="newest")
    assert (decision.source, decision.conflict, settled) == (None, None, None)


def test_manual_stays_open_when_nothing_moved() -> None:
    held = {"servicenow": "Paris", "jira": "Lyon"}
    decision, settled = decide(held, held, open_conflict())
    assert (decision.source, decision.conflict, settled) == (None, None, None)


def test_both_sides_agreeing_settle_it_as_agreed_by_a_person() -> None:
    snapshot = {"servicenow": "Paris", "jira": "Lyon"}
    now = {"servicenow": "Paris", "jira": "Paris"}
    decision, settled = decide(now, snapshot, open_conflict())
    assert decision.source is None
    assert (settled.resolution, settled.policy, settled.base) == ("agreed", "person", BASE)


def test_a_changed_policy_decides_what_manual_left_open() -> None:
    held = {"servicenow": "Paris", "jira": "Lyon"}
    decision, settled = decide(held, held, open_conflict(), policy="newest", newest="jira")
    assert (decision.source, decision.value, settled) == ("jira", "Lyon", None)
    assert decision.conflict is not None
    assert (decision.conflict.resolution, decision.conflict.policy) == ("jira", "newest")


def test_a_person_s_choice_beats_the_field_s_owner_and_the_policy() -> None:
    held = {"servicenow": "Paris", "jira": "Lyon"}
    chosen = open_conflict(resolution="servicenow", policy="person")
    decision, _ = decide(held, held, chosen, policy="jira", owner="jira")
    assert (decision.source, decision.value) == ("servicenow", "Paris")
    assert decision.conflict is not None and decision.conflict.policy == "person"


def test_a_later_edit_on_one_side_wins_and_settles_it() -> None:
    snapshot = {"servicenow": "Paris", "jira": "Lyon"}
    now = {"servicenow": "Paris and Lyon", "jira": "Lyon"}
    decision, settled = decide(now, snapshot, open_conflict(resolution="jira", policy="person"))
    assert (decision.source, decision.value) == ("servicenow", "Paris and Lyon")
    assert (settled.resolution, settled.policy) == ("servicenow", "edit")
