"""Per-side views of the link table, so the engine never names a store column.

Contract:
- :class:`LinkView` wraps a :class:`sync.state.Link`; ``view.side(s)`` is a
  :class:`LinkSide` (id, display, snapshot, version) for side ``s``. The
  engine reads link state only through it, whatever the columns are called.
- :func:`save_link`, :func:`add_comment_link` and :func:`record_conflict`
  take per-side mappings and write them through a :class:`sync.state.PairTx`.
- This module is the one place that knows how the store's columns are named
  per side today (``servicenow_id``, ``jira_key``, ``snapshot_<side>`` ...);
  when the columns are renamed, only this module changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sync.merge import Conflict
from sync.state import ConflictRecord, Link, PairTx

# The column naming each side's record id in the link table, and its comment id.
_ID_COLUMN = {"servicenow": "servicenow_id", "jira": "jira_key"}
_COMMENT_COLUMN = {"servicenow": "servicenow_comment_id", "jira": "jira_comment_id"}


@dataclass(frozen=True)
class LinkSide:
    """What the store knows of one side of a pair as of the last sync."""

    id: str
    display: str
    snapshot: dict[str, Any] | None
    version: str | None


@dataclass(frozen=True)
class LinkView:
    """A link read per side: ``view.side("jira").version``."""

    link: Link

    @property
    def id(self) -> int:
        return self.link.id

    @property
    def committed_at(self) -> datetime:
        """When the pair was last committed (the engine's clock)."""
        return self.link.updated_at

    def side(self, side: str) -> LinkSide:
        return LinkSide(
            id=self.link.id_on(side),
            display=self.link.display_on(side),
            snapshot=self.link.snapshot_on(side),
            version=self.link.version_on(side),
        )

    def with_snapshots(self, snapshots: Mapping[str, dict[str, Any]]) -> LinkView:
        """This link as if its snapshots of some sides were ``snapshots`` (not stored)."""
        link = self.link
        changes = {_snapshot_column(side): snapshot for side, snapshot in snapshots.items()}
        return LinkView(_replaced(link, changes))


def _snapshot_column(side: str) -> str:
    return f"snapshot_{_checked(side)}"


def _checked(side: str) -> str:
    if side not in _ID_COLUMN:
        raise ValueError(f"side must be one of {', '.join(_ID_COLUMN)}, not {side!r}")
    return side


def _replaced(link: Link, changes: Mapping[str, Any]) -> Link:
    return replace(link, **changes)


def save_link(tx: PairTx, sides: Mapping[str, LinkSide], *, hash: str | None,
              at: datetime | None = None) -> LinkView:
    """Insert or update the link of a pair from its two sides' states; ``at`` stamps
    the commit (the engine's clock, which the planner compares with the tools'
    edit times after a write whose reply was lost)."""
    values: dict[str, Any] = {}
    for side, state in sides.items():
        side = _checked(side)
        values[_ID_COLUMN[side]] = state.id
        values[f"{side}_display"] = state.display
        values[f"snapshot_{side}"] = state.snapshot
        values[f"version_{side}"] = state.version
    return LinkView(tx.save_link(**values, hash=hash, at=at))


def add_comment_link(tx: PairTx, link_id: int, ids: Mapping[str, str], *, origin: str,
                     visibility: str) -> None:
    """Remember that the comments ``ids`` (side -> comment id) are one comment."""
    columns = {_COMMENT_COLUMN[_checked(side)]: comment_id for side, comment_id in ids.items()}
    tx.add_comment_link(link_id, **columns, origin=origin, visibility=visibility)


def record_conflict(tx: PairTx, link_id: int, conflict: Conflict, *, at: datetime,
                    open: bool | None = None) -> None:
    """Record a conflict on a link; with ``open=False``, how one was settled (by
    default the store leaves it open only when nothing was written: ``manual``)."""
    values = {f"{_checked(side)}_value": value for side, value in conflict.values.items()}
    tx.record_conflict(link_id, conflict.field, base=dict(conflict.base), **values,
                       resolution=conflict.resolution, policy=conflict.policy, at=at,
                       open=open)


def conflict_values(conflict: ConflictRecord) -> dict[str, Any]:
    """A recorded conflict's value on each side."""
    return {side: getattr(conflict, f"{side}_value") for side in _ID_COLUMN}
