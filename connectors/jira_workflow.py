"""Finding a way through a Jira workflow to a wanted status.

Contract:
- Jira only tells which transitions leave the status an issue is in *now*
  (``GET /issue/{key}/transitions``). :class:`WorkflowMap` collects what those
  answers revealed, per status, for the whole run, so later issues reuse it.
- :meth:`WorkflowMap.path` is a breadth-first search over the known edges: the
  shortest chain of transitions from one status to another, or None when the
  known part of the workflow does not connect them. Status names compare
  case-insensitively (Jira does the same).
- :meth:`WorkflowMap.frontier` lists the statuses reachable through known edges
  whose own transitions are still unknown, nearest first: what the connector
  must learn (read-only, from another issue in that status) before concluding
  that no path exists.
- :meth:`WorkflowMap.exploratory_step` picks, when learning read-only failed, a
  transition into a not-yet-explored status that is *not* in the done category,
  so exploring never closes or cancels an incident by accident.

Pure data and functions: no I/O, no ``jira`` library.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DONE = "done"


def norm(status: str) -> str:
    return status.strip().casefold()


@dataclass(frozen=True)
class Transition:
    """One workflow transition as ``GET transitions`` lists it."""

    id: str
    name: str
    to: str                 # target status name
    to_category: str = ""   # statusCategory key of the target: new | indeterminate | done

    @property
    def enters_done(self) -> bool:
        return self.to_category == DONE


def parse_transitions(raw: Iterable[Mapping[str, Any]]) -> list[Transition]:
    """Transitions from the vendor JSON; entries without an id or target are skipped."""
    result: list[Transition] = []
    for item in raw:
        target = item.get("to") or {}
        if not item.get("id") or not target.get("name"):
            continue
        category = (target.get("statusCategory") or {}).get("key", "")
        result.append(
            Transition(
                id=str(item["id"]),
                name=str(item.get("name", "")),
                to=str(target["name"]),
                to_category=str(category),
            )
        )
    return result


def shortest_path(
    start: str, target: str, edges: Mapping[str, Sequence[Transition]]
) -> list[Transition] | None:
    """BFS over ``edges`` (keys: normalised status names). ``[]`` when already there."""
    goal = norm(target)
    origin = norm(start)
    if origin == goal:
        return []
    previous: dict[str, tuple[str, Transition]] = {}
    seen = {origin}
    queue = deque([origin])
    while queue:
        status = queue.popleft()
        for transition in edges.get(status, ()):
            nxt = norm(transition.to)
            if nxt in seen:
                continue
            seen.add(nxt)
            previous[nxt] = (status, transition)
            if nxt == goal:
                path: list[Transition] = []
                node = nxt
                while node != origin:
                    node, step = previous[node]
                    path.append(step)
                return path[::-1]
            queue.append(nxt)
    return None


class WorkflowMap:
    """Transitions learnt per status during a run."""

    def __init__(self) -> None:
        self._edges: dict[str, list[Transition]] = {}
        self._categories: dict[str, str] = {}
        self._unlearnable: set[str] = set()

    def learn(self, status: str, transitions: Sequence[Transition]) -> None:
        self._edges[norm(status)] = list(transitions)
        for transition in transitions:
            if transition.to_category:
                self._categories[norm(transition.to)] = transition.to_category

    def mark_unlearnable(self, status: str) -> None:
        """No issue to learn this status's transitions from; don't ask again this run."""
        self._unlearnable.add(norm(status))

    def known(self, status: str) -> bool:
        return norm(status) in self._edges

    def category(self, status: str) -> str:
        return self._categories.get(norm(status), "")

    def path(self, start: str, target: str) -> list[Transition] | None:
        return shortest_path(start, target, self._edges)

    def reachable(self, start: str) -> list[str]:
        """Status names reachable from ``start`` through known edges, nearest first."""
        order: list[str] = []
        seen = {norm(start)}
        queue = deque([norm(start)])
        while queue:
            for transition in self._edges.get(queue.popleft(), ()):
                nxt = norm(transition.to)
                if nxt not in seen:
                    seen.add(nxt)
                    order.append(transition.to)
                    queue.append(nxt)
        return order

    def frontier(self, start: str) -> list[str]:
        """Reachable statuses whose transitions are unknown and still learnable."""
        return [
            status
            for status in self.reachable(start)
            if norm(status) not in self._edges and norm(status) not in self._unlearnable
        ]

    def exploratory_step(
        self, available: Sequence[Transition], visited: Iterable[str]
    ) -> Transition | None:
        """A transition into an unexplored, not-done status not yet visited, if any."""
        been = {norm(status) for status in visited}
        for transition in available:
            target = norm(transition.to)
            if transition.enters_done or target in been or target in self._edges:
                continue
            return transition
        return None
