"""The sync's direction and conflict-policy values, defined once.

Contract: :data:`Direction` / :data:`ConflictPolicy` are the types the settings
validate against; :data:`DIRECTIONS` / :data:`CONFLICT_POLICIES` are the same
values as tuples for the engine's own checks and for tools (the benchmarks).
A new value is added here and nowhere else.
"""

from __future__ import annotations

from typing import Literal, get_args

Direction = Literal["both", "servicenow-to-jira", "jira-to-servicenow"]
ConflictPolicy = Literal["newest", "servicenow", "jira", "manual"]

DIRECTIONS: tuple[str, ...] = get_args(Direction)
CONFLICT_POLICIES: tuple[str, ...] = get_args(ConflictPolicy)

__all__ = ["CONFLICT_POLICIES", "DIRECTIONS", "ConflictPolicy", "Direction"]
