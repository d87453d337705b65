"""Open conflicts decided again: when people make both sides agree, choose a side, or the
policy changes.

Contract:
- Pure: no I/O, no vendor knowledge; sides are plain strings, values the
  JSON-ready neutral projections the merge compares (as in :mod:`sync.merge`).
- :func:`revisit` takes the three-way merge's decision for one field and the
  field's still-open conflict (or None) and returns the decision to act on and,
  when the conflict closes without a new conflict being recorded, the
  :class:`Conflict` recording how (a settlement, never open):
  * news wins: a field changed since the last sync is decided by the merge as
    usual: a change on one side travels and settles it (policy ``edit``), a
    change on both sides is recorded as a conflict again;
  * both sides now hold equivalent values: the conflict is settled as agreed;
  * a person chose a side (``conflicts resolve``): that side's current value
    travels, recorded with policy ``person``;
  * otherwise the field's owner, else the current policy decides as if both
    sides had just changed (so switching from ``manual`` to ``newest`` settles
    what waited); with ``manual`` the conflict stays open and nothing is written.
- :func:`conflict_state` names a recorded conflict's state for ``status``,
  ``audit`` and ``conflicts list``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sync.merge import Conflict, FieldMerge

AGREED = "agreed"   # resolution: both sides hold equivalent values now
PERSON = "person"   # policy: a person decided (``conflicts resolve``, or made them agree)
EDIT = "edit"       # policy: a later edit on one side settled it


def revisit(
    decision: FieldMerge,
    pending: Any,
    *,
    sides: tuple[str, str],
    current: Mapping[str, Any],
    agrees: Mapping[str, bool],
    travels_to: Mapping[str, bool],
    owner: str | None,
    policy: str,
    newest: str | None,
) -> tuple[FieldMerge, Conflict | None]:
    """``(decision to act on, settlement to record)`` for a field whose conflict is open.

    ``pending`` is the open :class:`sync.state.ConflictRecord` of this field
    (duck-typed: ``base``, ``resolution``), or None.
    """
    if pending is None or decision.conflict is not None:
        return decision, None
    base = dict(pending.base) if isinstance(pending.base, Mapping) else {s: None for s in sides}
    values = {side: current[side] for side in sides}
    if decision.source is not None:
        # A person changed the field on one side since: that edit travels and
        # settles the conflict (whatever was chosen before it).
        return decision, Conflict(decision.field, base, values, decision.source, EDIT)
    if agrees[sides[0]] or agrees[sides[1]]:
        return decision, Conflict(decision.field, base, values, AGREED, PERSON)
    if pending.resolution in sides:
        winner, settled_by = pending.resolution, PERSON
    elif owner in sides:
        winner, settled_by = owner, "owner"
    elif policy == "newest":
        winner, settled_by = (newest if newest in sides else sides[0]), policy
    elif policy in sides:
        winner, settled_by = policy, policy
    else:
        return decision, None  # manual: still waiting for a person
    loser = sides[1] if winner == sides[0] else sides[0]
    if not travels_to[loser]:
        return decision, None  # the direction setting keeps it from going there
    conflict = Conflict(decision.field, base, values, winner, settled_by)
    return FieldMerge(decision.field, winner, current[winner], conflict), None


def conflict_state(conflict: Any) -> str:
    """How far a recorded conflict (a :class:`sync.state.ConflictRecord`) is from settled,
    in words people and scripts can both read: ``open``, ``chosen: take <side>``,
    ``settled: <side> by <policy>``, ``settled: both sides agree`` or ``closed``."""
    chosen = conflict.policy == PERSON and conflict.resolution in ("servicenow", "jira")
    if conflict.open:
        return f"chosen: take {conflict.resolution}" if chosen else "open"
    if conflict.resolution == AGREED:
        return "settled: both sides agree"
    if conflict.resolution in ("servicenow", "jira"):
        return f"settled: {conflict.resolution} by {conflict.policy}"
    return "closed"
