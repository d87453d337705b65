"""Workflow path finding over learnt transitions (the JSM incident workflow as data)."""

from __future__ import annotations

from connectors.jira_workflow import Transition, WorkflowMap, parse_transitions, shortest_path

CAT = {"Open": "new", "Work in progress": "indeterminate", "Pending": "indeterminate",
       "Resolved": "done", "Closed": "done", "Canceled": "done"}
EDGES = {
    "Open": [("11", "Work in progress"), ("21", "Pending"), ("31", "Canceled")],
    "Work in progress": [("41", "Pending"), ("51", "Resolved"), ("32", "Canceled")],
    "Pending": [("61", "Work in progress"), ("71", "Resolved")],
    "Resolved": [("81", "Closed"), ("91", "Work in progress")],
    "Closed": [],
    "Canceled": [],
}


def transitions(status: str) -> list[Transition]:
    return [Transition(tid, f"To {to}", to, CAT[to]) for tid, to in EDGES[status]]


def full_map() -> WorkflowMap:
    workflow = WorkflowMap()
    for status in EDGES:
        workflow.learn(status, transitions(status))
    return workflow


def test_direct_transition_is_one_step() -> None:
    assert [t.id for t in full_map().path("Open", "Work in progress")] == ["11"]


def test_open_to_resolved_goes_through_work_in_progress() -> None:
    assert [t.id for t in full_map().path("Open", "Resolved")] == ["11", "51"]


def test_pending_to_closed_takes_the_shortest_chain() -> None:
    assert [t.id for t in full_map().path("pending", "CLOSED")] == ["71", "81"]


def test_already_there_is_an_empty_path() -> None:
    assert full_map().path("Resolved", "resolved") == []


def test_dead_end_status_has_no_path() -> None:
    assert full_map().path("Canceled", "Open") is None
    assert full_map().path("Open", "Nonexistent") is None


def test_frontier_lists_unknown_statuses_nearest_first() -> None:
    workflow = WorkflowMap()
    workflow.learn("Open", transitions("Open"))
    assert workflow.frontier("Open") == ["Work in progress", "Pending", "Canceled"]
    workflow.learn("Work in progress", transitions("Work in progress"))
    workflow.mark_unlearnable("Pending")
    assert workflow.frontier("Open") == ["Canceled", "Resolved"]
    assert workflow.path("Open", "Resolved") is not None


def test_exploration_never_steps_into_a_done_status() -> None:
    workflow = WorkflowMap()
    workflow.learn("Open", transitions("Open"))
    step = workflow.exploratory_step(transitions("Open"), visited=["Open"])
    assert step is not None and step.to == "Work in progress"
    step = workflow.exploratory_step(transitions("Open"), visited=["Open", "Work in progress"])
    assert step is not None and step.to == "Pending"
    assert workflow.exploratory_step(
        transitions("Open"), visited=["Open", "Work in progress", "Pending"]) is None
    assert workflow.category("Canceled") == "done"


def test_parse_transitions_reads_ids_as_strings_and_skips_broken_entries() -> None:
    raw = [
        {"id": 51, "name": "Resolve",
         "to": {"name": "Resolved", "statusCategory": {"key": "done"}}},
        {"id": "9", "name": "no target"},
        {"name": "no id", "to": {"name": "X"}},
    ]
    assert parse_transitions(raw) == [Transition("51", "Resolve", "Resolved", "done")]
    assert parse_transitions(raw)[0].enters_done


def test_shortest_path_handles_cycles() -> None:
    edges = {"a": [Transition("1", "", "b")], "b": [Transition("2", "", "a")]}
    assert shortest_path("a", "c", edges) is None
