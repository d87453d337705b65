"""Per-side views of the store's links, the engine's one way to read and write link state.

Contract:
- :class:`LinkView` wraps a :class:`sync.state.Link`; ``view.side(s)`` is the
  :class:`LinkSide` (id, display, snapshot, version) for side ``s``. The
  engine reads link state only through it.
- :func:`save_link` and :func:`add_comment_link` take per-side mappings and
  write them through a :class:`sync.state.PairTx`; :func:`save_links` does the
  same for a batch's :class:`sync.state.PairsTx`, and :func:`conflict_note`
  turns a merge conflict into what :meth:`sync.state.PairsTx.record_conflicts`
  takes (for one pair's transaction too, through ``PairsTx.within``).
- The store keeps every side's state in rows keyed by side, so this module
  only adapts: it names no column and knows no vendor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sync.merge import Conflict
from sync.state import (
    SIDES,
    ConflictNote,
    ConflictRecord,
    Link,
    LinkSave,
    LinkSide,
    PairsTx,
    PairTx,
)

__all__ = ["LinkSide", "LinkView", "add_comment_link", "conflict_note", "conflict_values",
           "save_link", "save_links"]


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
        return self.link.on(side)

    def with_snapshots(self, snapshots: Mapping[str, dict[str, Any]]) -> LinkView:
        """This link as if its snapshots of some sides were ``snapshots`` (not stored)."""
        sides = dict(self.link.sides)
        for side, snapshot in snapshots.items():
            sides[side] = replace(self.link.on(side), snapshot=snapshot)
        return LinkView(replace(self.link, sides=sides))


def save_link(tx: PairTx, sides: Mapping[str, LinkSide], *, hash: str | None,
              at: datetime | None = None, link: Link | None = None,
              new: bool = False) -> LinkView:
    """Insert or update the link of a pair from its two sides' states; ``at`` stamps
    the commit (the engine's clock, which the planner compares with the tools'
    edit times after a write whose reply was lost). ``link`` (the pair's link as
    read) or ``new`` (it had none) spare the store its lookup by record ids."""
    return LinkView(tx.save_link(sides, hash=hash, at=at, link=link, new=new))


def save_links(tx: PairsTx, saves: Sequence[LinkSave]) -> list[LinkView]:
    """Several pairs' links in one transaction, each as :func:`save_link` saves it."""
    return [LinkView(link) for link in tx.save_links(saves)]


def add_comment_link(tx: PairTx, link_id: int, ids: Mapping[str, str], *, origin: str,
                     visibility: str) -> None:
    """Remember that the comments ``ids`` (side -> comment id) are one comment."""
    tx.add_comment_link(link_id, ids, origin=origin, visibility=visibility)


def conflict_note(link_id: int, conflict: Conflict, *, at: datetime,
                  open: bool | None = None) -> ConflictNote:
    """A conflict as :meth:`sync.state.PairsTx.record_conflicts` takes it; with
    ``open=False``, how one was settled (by default the store leaves it open only
    when nothing was written: ``manual``)."""
    return ConflictNote(link_id=link_id, field=conflict.field, base=dict(conflict.base),
                        values=dict(conflict.values), resolution=conflict.resolution,
                        policy=conflict.policy, at=at, open=open)


def conflict_values(conflict: ConflictRecord) -> dict[str, Any]:
    """A recorded conflict's value on each side."""
    return {side: conflict.value_on(side) for side in SIDES}
