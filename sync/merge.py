"""Pure three-way merge of one linked pair: field by field, and the comment union.

Contract:
- Nothing here does I/O or knows a vendor. Sides are plain strings (the engine
  passes ``connectors.base.Side`` values); values are the JSON-ready neutral
  projections the engine compares (``sync.engine.projection``).
- Bases are kept PER SIDE: ``base[side]`` is that side's projection as of the
  last sync, i.e. what the side was left holding (our write as it reads back,
  or its own value). A side "changed" a field when its current value differs
  from its own base; that is what stops lossy mappings from bouncing.
- :func:`merge_field` decides, for one field, which side's value wins
  (``source``) or that nothing is to be written (``source is None``). A change
  only counts when it can travel to the other side. Changed on both sides to
  values that are not equivalent is a :class:`Conflict`, settled by the field's
  owner, else by the policy (``newest``, a side name, or ``manual`` = write
  nothing), and always returned so the engine can record it.
- :func:`comments_to_copy` is the comment union: a comment whose id is not
  in the comment map (neither as an original nor as our copy) is copied to the
  other side; nothing is ever deleted, and copies are never copied back.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar


@dataclass(frozen=True)
class Conflict:
    """Both sides changed ``field`` to different values since the last sync."""

    field: str
    base: Mapping[str, Any]       # side -> that side's last-synced value (None when new)
    values: Mapping[str, Any]     # side -> current value
    resolution: str               # the winning side, or "manual" (nothing written)
    policy: str                   # "owner" when the field's owner settled it, else the policy


@dataclass(frozen=True)
class FieldMerge:
    """The outcome for one field: the winning side and its value, or nothing to write."""

    field: str
    source: str | None
    value: Any = None
    conflict: Conflict | None = None


def merge_field(
    field: str,
    *,
    sides: tuple[str, str],
    current: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    travels_to: Mapping[str, bool],
    agrees: Mapping[str, bool],
    owner: str | None,
    policy: str,
    newest: str | None,
) -> FieldMerge:
    """Three-way merge of one field between ``sides``.

    ``agrees[side]`` is True when writing that side's current value across
    would leave the other side as it is (equal values, or equal once the
    other side's mapping has had its lossy say). ``base`` is None for a pair
    that was never synced (an adopted record): then values that agree neither
    way count as changed on both sides. ``travels_to[side]`` says whether the
    field may be written to that side. ``newest`` names the side whose record
    was updated last (for the ``newest`` policy).
    """
    first, second = sides
    other = {first: second, second: first}
    equivalent = agrees[first] or agrees[second]

    def changed(side: str) -> bool:
        if not travels_to[other[side]]:
            return False  # a change that cannot go anywhere needs no decision
        if base is None:
            return not equivalent
        return bool(current[side] != base[side])

    moved = [side for side in sides if changed(side)]
    if not moved:
        return FieldMerge(field, None)
    if len(moved) == 1:
        side = moved[0]
        if agrees[side]:
            return FieldMerge(field, None)  # the other side already holds it
        return FieldMerge(field, side, current[side])
    if equivalent:
        return FieldMerge(field, None)  # both moved, to the same thing

    if owner in sides:
        winner: str | None = owner
        settled_by = "owner"
    else:
        settled_by = policy
        if policy == "newest":
            winner = newest if newest in sides else first
        elif policy in sides:
            winner = policy
        else:
            winner = None  # manual: leave both as they are
    conflict = Conflict(
        field=field,
        base={side: (None if base is None else base[side]) for side in sides},
        values={side: current[side] for side in sides},
        resolution=winner or "manual",
        policy=settled_by,
    )
    if winner is None:
        return FieldMerge(field, None, conflict=conflict)
    return FieldMerge(field, winner, current[winner], conflict)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


C = TypeVar("C", bound=_HasId)


def comments_to_copy(
    comments: Mapping[str, Sequence[C]],
    known: Mapping[str, Collection[str]],
    *,
    may_copy: Callable[[str, str], bool] = lambda source, target: True,
) -> list[tuple[str, C]]:
    """``(source side, comment)`` for every comment the other side still lacks.

    ``known[side]`` holds every id of that side already in the comment map,
    originals and our copies alike, so nothing is copied twice or echoed back.
    ``may_copy(source, target)`` lets the direction setting block a way.
    Order: by side as given, then the side's own order (oldest first).
    """
    sides = list(comments)
    copies = []
    for side in sides:
        targets = [s for s in sides if s != side]
        if not targets or not may_copy(side, targets[0]):
            continue
        seen = known.get(side, ())
        for comment in comments[side]:
            if comment.id not in seen:
                copies.append((side, comment))
    return copies
