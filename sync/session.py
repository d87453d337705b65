"""A sync session: both connectors, the mapping profile and what each side taught us.

Contract:
- :class:`Session` holds one connector per side, the options, the rules, the
  clock and, once :meth:`Session.open` signed in to both tools, the per-side
  mapping knowledge (:class:`sync.decide.FieldView`: text format, field ids,
  the profile as the sites can hold it) and the vendor fields to read.
- Opening reads only; nothing here writes to a tool. The planner, the applier
  and the auditor all take a session: reading is the same path for ``plan``,
  ``run`` and ``audit``, and only the applier writes to the tools.
- The site check's field lists (several requests per side: Jira fields,
  createmeta, editmeta; ServiceNow's dictionary and choices) are reused from
  the state store for ``[sync] metadata_ttl`` seconds when :meth:`Session.open`
  gets a store; only a run (``keep=True``) stores what it read, so ``plan``
  leaves the store as it was. A profile the cached lists fail is checked again
  against fresh ones before it stops a run (a field added to the site since).
  ``check`` never reads the cache.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from connectors.base import Connector, ConnectorError, RemoteRecord, ServerInfo, SiteField
from mappings.mapper import MappingContext, comment_from_remote
from mappings.model import Incident
from mappings.profile import Profile
from sync.decide import FieldView
from sync.engine_core import EngineOptions, sign_in
from sync.errors import ConfigError
from sync.rules import Rule
from sync.state import StateStore

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
        # Per side, the best (tool stamp, our clock) pair this run observed: the
        # tool's clock was at least that stamp when ours read that time.
        self.tool_clock: dict[str, tuple[datetime, datetime]] = {}

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

    def open(self, store: StateStore | None = None, *, keep: bool = False) -> None:
        """Connect to both tools and learn how each one formats rich text.

        ``store``: where the site check's field lists may come from (fresh for
        ``[sync] metadata_ttl`` seconds); ``keep``: store what was read afresh.
        """
        if self._fields is not None:
            return
        for side, connector in self.connectors.items():
            self.info[side] = sign_in(side, connector)
        if self.options.site_check:
            from sync.sitecheck import site_checked_profile

            # Before anything is read for the sync, so a row the site cannot hold
            # stops the run before any write; a skipped optional row warns once.
            cache = _SiteFieldsCache(self, store, keep) if store is not None else None
            try:
                self.profile, _ = site_checked_profile(
                    self.profile, self.connectors,
                    read_fields=cache.read if cache is not None else None)
            except ConfigError:
                if cache is None or not cache.hits:
                    raise
                cache.fresh = True
                self.profile, _ = site_checked_profile(self.profile, self.connectors,
                                                       read_fields=cache.read)
        for side in self.connectors:
            info = self.info[side]
            # Jira resolves custom field names to ids at sign-in (ServerInfo.field_ids).
            self.ctx[side] = MappingContext(text_format=info.text_format,
                                            field_ids=dict(info.field_ids))
            self.vendor_fields[side] = list(self.profile.vendor_fields(side, self.ctx[side]))
        self._fields = FieldView(self.sides, self.profile, dict(self.ctx), self.options)

    def saw_tool_clock(self, side: str, stamp: datetime, ours: datetime) -> None:
        """A record stamped ``stamp`` by ``side``'s clock had been read when our clock
        said ``ours``; keep the pair that bounds the tool's clock the most tightly."""
        best = self.tool_clock.get(side)
        if best is None or stamp - ours > best[0] - best[1]:
            self.tool_clock[side] = (stamp, ours)

    def close(self) -> None:
        for connector in self.connectors.values():
            try:
                connector.close()
            except ConnectorError as error:  # closing must not hide the run's outcome
                logger.warning("closing %s: %s", connector.side, error)
        self.forget()
        self._fields = None

    def forget(self) -> None:
        """Drop what the run mapped (:class:`sync.decide.MappingMemo`): at a run's start
        and end, so nothing mapped outlives the run it was mapped in, and between its
        batches when it plans them on its own thread (:func:`sync.planner.stream_plan`)."""
        if self._fields is not None:
            self._fields.memo.clear()

    def retain(self, thread: int) -> None:
        """A batch planned on ``thread`` is taken (:class:`sync.planner.BatchStream`
        plans ahead): keep only what its planning mapped, which its settle step
        reuses; what earlier batches and their settle steps mapped goes."""
        if self._fields is not None:
            self._fields.memo.retain(thread)

    def incident(self, record: RemoteRecord) -> Incident:
        """A record in neutral terms (fields only; comments are planned apart).

        Shared with the run's memo: change a copy, never this incident."""
        return self.fields.incident(record)

    def neutral(self, record: RemoteRecord) -> Incident:
        """A record in neutral terms with its comments (what an audit compares)."""
        incident = self.incident(record).model_copy()   # the memo's incident stays as is
        side = str(record.side)
        incident.comments = [comment_from_remote(side, comment, self.ctx[side])
                             for comment in record.comments]
        return incident


class _SiteFieldsCache:
    """A side's site fields from the store while fresh, else from the tool (kept on a run).

    The key names the side and the site as signed in to (URL and user), within
    the store's connection; the TTL bounds how long a changed site goes unseen.
    """

    def __init__(self, session: Session, store: StateStore, keep: bool) -> None:
        self.session = session
        self.store = store
        self.keep = keep
        self.fresh = session.options.metadata_ttl <= 0
        self.hits = 0

    def _name(self, side: str) -> str:
        info = self.session.info.get(side)
        where = f"{info.base_url}|{info.user}" if info is not None else ""
        return f"site_fields|{side}|{where}"

    def read(self, side: str, connector: Connector) -> list[SiteField]:
        now = self.session.clock()
        if not self.fresh:
            kept = self.store.cached_value(self._name(side))
            ttl = timedelta(seconds=self.session.options.metadata_ttl)
            if kept is not None and timedelta(0) <= now - kept[1] <= ttl:
                fields = _fields_from(kept[0])
                if fields is not None:
                    self.hits += 1
                    return fields
        fields = connector.site_fields()
        if self.keep and fields and self.session.options.metadata_ttl > 0:
            self.store.keep_value(self._name(side),
                                  json.dumps([f.to_json() for f in fields]), at=now)
        return fields


def _fields_from(text: str) -> list[SiteField] | None:
    """Site fields as :meth:`SiteField.to_json` kept them; None when unreadable."""
    try:
        rows = json.loads(text)
        return [SiteField(
            id=str(row["id"]), name=str(row["name"]), type=str(row["type"]),
            custom=bool(row["custom"]),
            allowed=tuple(row["allowed"]) if row["allowed"] is not None else None,
            on_create=row["on_create"], on_edit=row["on_edit"], note=str(row["note"]),
        ) for row in rows]
    except (ValueError, KeyError, TypeError):
        return None
