"""A sync session: both connectors, the mapping profile and what each side taught us.

Contract:
- :class:`Session` holds one connector per side, the options, the rules, the
  clock and, once :meth:`Session.open` signed in to both tools, the per-side
  mapping knowledge (:class:`sync.decide.FieldView`: text format, field ids,
  the profile as the sites can hold it) and the vendor fields to read.
- Opening reads only; nothing here writes to a tool or to a state store. The
  planner, the applier and the auditor all take a session: reading is the same
  path for ``plan``, ``run`` and ``audit``, and only the applier writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from connectors.base import Connector, ConnectorError, RemoteRecord, ServerInfo
from mappings.mapper import MappingContext, comment_from_remote
from mappings.model import Incident
from mappings.profile import Profile
from sync.decide import FieldView
from sync.engine_core import EngineOptions, sign_in
from sync.rules import Rule

logger = logging.getLogger(__name__)


class Session:
    """Two connectors, a mapping profile, the options and the rules of one sync job."""

    def __init__(
        self,
        connectors: Sequence[Connector],
        profile: Profile,
        options: EngineOptions | None = None,
        *,
        rules: Sequence[Rule] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if len(connectors) != 2 or connectors[0].side == connectors[1].side:
            raise ValueError("the engine needs exactly one connector per side")
        self.connectors: dict[str, Connector] = {str(c.side): c for c in connectors}
        self.sides: tuple[str, str] = (str(connectors[0].side), str(connectors[1].side))
        self.profile = profile
        self.options = options or EngineOptions()
        self.rules = tuple(rules)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.info: dict[str, ServerInfo] = {}
        self.ctx: dict[str, MappingContext] = {}
        self.vendor_fields: dict[str, list[str]] = {}
        self._fields: FieldView | None = None

    @property
    def opened(self) -> bool:
        return self._fields is not None

    @property
    def fields(self) -> FieldView:
        """The pure mapping knowledge of both sides (after :meth:`open`)."""
        if self._fields is None:
            raise RuntimeError("the session is not open yet")
        return self._fields

    def other(self, side: str) -> str:
        return self.sides[1] if side == self.sides[0] else self.sides[0]

    def open(self) -> None:
        """Connect to both tools and learn how each one formats rich text."""
        if self._fields is not None:
            return
        for side, connector in self.connectors.items():
            self.info[side] = sign_in(side, connector)
        if self.options.site_check:
            from sync.sitecheck import site_checked_profile

            # Before anything is read for the sync, so a row the site cannot hold
            # stops the run before any write; a skipped optional row warns once.
            self.profile, _ = site_checked_profile(self.profile, self.connectors)
        for side in self.connectors:
            info = self.info[side]
            # Jira resolves custom field names to ids at sign-in (ServerInfo.field_ids).
            self.ctx[side] = MappingContext(text_format=info.text_format,
                                            field_ids=dict(info.field_ids))
            self.vendor_fields[side] = list(self.profile.vendor_fields(side, self.ctx[side]))
        self._fields = FieldView(self.sides, self.profile, dict(self.ctx), self.options)

    def close(self) -> None:
        for connector in self.connectors.values():
            try:
                connector.close()
            except ConnectorError as error:  # closing must not hide the run's outcome
                logger.warning("closing %s: %s", connector.side, error)
        self._fields = None

    def incident(self, record: RemoteRecord) -> Incident:
        """A record in neutral terms (fields only; comments are planned apart)."""
        return self.fields.incident(record)

    def neutral(self, record: RemoteRecord) -> Incident:
        """A record in neutral terms with its comments (what an audit compares)."""
        incident = self.incident(record)
        side = str(record.side)
        incident.comments = [comment_from_remote(side, comment, self.ctx[side])
                             for comment in record.comments]
        return incident
