"""The engine's common ground: options, run summary, neutral projections and the core object.

Contract:
- :class:`EngineCore` holds what planning and applying share: one connector
  per side, the mapping profile, the state store, the options, the clock, and
  per side the mapping context learnt from the tool (:meth:`EngineCore.open`).
- :func:`projection` is the JSON-ready neutral view of an incident the engine
  compares and stores as snapshots; :meth:`EngineCore.readback` is what a
  side would hold for each field after we wrote an incident there (our write
  as that side reads it back): what keeps lossy mappings from bouncing.
- :class:`SimulatedCrash` and :data:`CRASH_STEPS` let tests stop the engine at
  named steps; production code never sets ``crash_at``.
- Nothing here writes to a tool or the state store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from connectors.base import (
    Connector,
    ConnectorError,
    RemoteRecord,
    RetriableError,
    ServerInfo,
    Unreachable,
)
from mappings.mapper import MappingContext, to_fields, to_incident
from mappings.model import VOLATILE_FIELDS, Incident
from mappings.profile import Profile
from sync.actions import side_title
from sync.directions import CONFLICT_POLICIES, DIRECTIONS
from sync.rules import Rule
from sync.state import StateStore

logger = logging.getLogger(__name__)

# Fields never merged: comments have their own union, volatile stamps change on every write.
NOT_MERGED = frozenset({"comments"}) | VOLATILE_FIELDS
# A batch of linked records that ALL vanish at once smells of a scope or
# permission problem, not of deletions: refuse to act (STYLE habit 8).
VANISHED_BATCH = 3
HEARTBEAT_SECONDS = 60.0

# After creating a copy of a record, the source gets the copy's id, so both
# carry each other's id (docs/architecture.md, "Crash-safe creates"). The protocol can
# only set a foreign id on create (NewRecord), so the one vendor field the
# engine names lives here: ServiceNow's correlation pair (docs/vendor-notes.md).
# A Jira source needs nothing: its copy's correlation_id already finds it.
BACKLINK_FIELDS: dict[str, Callable[[str], dict[str, str]]] = {
    "servicenow": lambda foreign_id: {"correlation_id": foreign_id,
                                      "correlation_display": "JIRA"},
}

# Names of the steps a test can crash the engine at (``Engine(crash_at=...)``).
CRASH_STEPS = (
    "create:before-intent",
    "create:after-intent",
    "create:after-remote",
    "create:after-commit",
    "update:before-write",
    "update:after-write",
    "update:after-commit",
    "comment:after-write",
)


class SimulatedCrash(BaseException):
    """Raised at a named step when a test asked for a crash there (never in production).

    A BaseException so that no per-pair handler swallows it, as with a real kill."""


def default_owner() -> str:
    """Who holds the run lock: enough to find the process on a shared store."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` (``host:pid``) names a process of this host that is gone.

    Another host's process, an unreadable owner or a live (or reused) pid: False,
    so the lock is then left to its expiry.
    """
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, as another user's process
        return False
    return False


@dataclass
class RunSummary:
    """What a run did; ``line()`` is the one summary line the CLI prints."""

    created: int = 0
    adopted: int = 0
    updated: int = 0
    comments: int = 0
    conflicts: int = 0
    failed: int = 0
    orphaned: int = 0
    parked: int = 0
    pull_failures: int = 0     # sides whose pull failed (no item: nothing queued)
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # written, but not as asked

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.pull_failures else 0

    @property
    def outcome(self) -> str:
        return "failed-items" if self.failed or self.pull_failures else "ok"

    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "adopted": self.adopted,
            "updated": self.updated,
            "comments": self.comments,
            "conflicts": self.conflicts,
            "failed": self.failed,
            "orphaned": self.orphaned,
            "parked": self.parked,
            "pull_failures": self.pull_failures,
            "warnings": len(self.warnings),
        }

    def line(self) -> str:
        return (f"created {self.created}, updated {self.updated}, comments {self.comments}, "
                f"conflicts {self.conflicts}, failed {self.failed}, orphaned {self.orphaned} "
                f"in {self.elapsed:.1f} s")


@dataclass(frozen=True)
class EngineOptions:
    """The ``[sync]`` settings the engine needs, as plain values."""

    direction: str = "both"
    conflict: str = "newest"
    max_attempts: int = 5
    retry_base_seconds: float = 60.0
    lock_timeout: float = 0.0
    lock_ttl: float = 900.0
    retry_now: bool = False    # treat every queued item as due (``run --retry-now``)
    # Check the profile against both sites' fields on sign-in and run with the rows
    # they can hold (ConfigError naming the first required row that cannot work).
    site_check: bool = False

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, "
                             f"not {self.direction!r}")
        if self.conflict not in CONFLICT_POLICIES:
            raise ValueError(f"conflict must be one of {', '.join(CONFLICT_POLICIES)}, "
                             f"not {self.conflict!r}")

    def allows(self, source: str, target: str) -> bool:
        """May anything travel from ``source`` to ``target``?"""
        return self.direction == "both" or self.direction == f"{source}-to-{target}"


# --------------------------------------------------------------------------- projections


def sign_in(side: str, connector: Connector) -> ServerInfo:
    """Open ``connector``; a tool still failing after the retries is Unreachable.

    A read timeout, a dropped connection or a 5xx while signing in means nothing
    can be synced with this tool: "a tool could not be reached" (exit 3), not a
    failed item.
    """
    try:
        return connector.open()
    except RetriableError as error:
        raise Unreachable(
            f"{side_title(side)} could not be reached while signing in: "
            f"{_one_line(error)}", side=side, status=error.status, url=error.url,
        ) from None


def projection(incident: Incident, fields: Iterable[str]) -> dict[str, Any]:
    """The JSON-ready neutral values of ``fields`` (``custom.x`` reads ``custom["x"]``)."""
    data = incident.model_dump(mode="json")
    out: dict[str, Any] = {}
    for name in fields:
        if name.startswith("custom."):
            out[name] = data["custom"].get(name[len("custom."):])
        elif name == "labels":
            out[name] = sorted(set(data["labels"]))
        else:
            out[name] = data.get(name)
    return out


def with_values(incident: Incident, values: Mapping[str, Any]) -> Incident:
    """``incident`` with some neutral fields replaced by JSON-ready values (validated)."""
    if not values:
        return incident
    data = incident.model_dump(mode="json")
    for name, value in values.items():
        if name.startswith("custom."):
            data["custom"] = {**data["custom"], name[len("custom."):]: value}
        else:
            data[name] = value
    return Incident.model_validate(data)


def snapshot_hash(snapshots: Mapping[str, Mapping[str, Any]]) -> str:
    payload = json.dumps(snapshots, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- engine


class EngineCore:
    """Two connectors, a mapping profile, a state store and the options: what every step uses."""

    def __init__(
        self,
        connectors: Sequence[Connector],
        profile: Profile,
        store: StateStore,
        options: EngineOptions | None = None,
        *,
        rules: Sequence[Rule] = (),
        clock: Callable[[], datetime] | None = None,
        owner: str | None = None,
        crash_at: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        if len(connectors) != 2 or connectors[0].side == connectors[1].side:
            raise ValueError("the engine needs exactly one connector per side")
        if crash_at is not None and crash_at not in CRASH_STEPS:
            raise ValueError(f"crash_at must be one of {', '.join(CRASH_STEPS)}")
        self.connectors: dict[str, Connector] = {str(c.side): c for c in connectors}
        self.sides: tuple[str, str] = (str(connectors[0].side), str(connectors[1].side))
        self.profile = profile
        self.store = store
        self.options = options or EngineOptions()
        self.rules = tuple(rules)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.owner = owner or default_owner()
        self.crash_at = crash_at
        self.progress = progress
        self.info: dict[str, ServerInfo] = {}
        self.ctx: dict[str, MappingContext] = {}
        self.vendor_fields: dict[str, list[str]] = {}
        self.merged_fields = [f for f in profile.neutral_fields() if f not in NOT_MERGED]
        self._opened = False
        self._locked = False
        self._last_beat = 0.0

    # ------------------------------------------------------------------ helpers

    def other(self, side: str) -> str:
        return self.sides[1] if side == self.sides[0] else self.sides[0]

    def _step(self, name: str) -> None:
        if self.crash_at == name:
            raise SimulatedCrash(name)

    def travels(self, name: str, target: str) -> bool:
        return (self.profile.travels(name, target)
                and self.options.allows(self.other(target), target))

    def open(self) -> None:
        """Connect to both tools and learn how each one formats rich text."""
        if self._opened:
            return
        for side, connector in self.connectors.items():
            self.info[side] = sign_in(side, connector)
        if self.options.site_check:
            from sync.sitecheck import site_checked_profile

            # Before anything is read for the sync, so a row the site cannot hold
            # stops the run before any write; a skipped optional row warns once.
            self.profile, _ = site_checked_profile(self.profile, self.connectors, opened=True)
        for side, connector in self.connectors.items():
            info = self.info[side]
            # Only some connectors resolve field names to ids (Jira custom
            # fields); the protocol does not promise the attribute.
            field_ids = dict(getattr(connector, "field_ids", None) or {})
            self.ctx[side] = MappingContext(text_format=info.text_format, field_ids=field_ids)
            self.vendor_fields[side] = list(self.profile.vendor_fields(side, self.ctx[side]))
        self._opened = True

    def close(self) -> None:
        for connector in self.connectors.values():
            try:
                connector.close()
            except ConnectorError as error:  # closing must not hide the run's outcome
                logger.warning("closing %s: %s", connector.side, error)
        self._opened = False

    def beat(self) -> None:
        """Keep the run lock alive during a long run (at most one write a minute)."""
        now = time.monotonic()
        if self._locked and now - self._last_beat >= HEARTBEAT_SECONDS:
            self._last_beat = now
            self.store.heartbeat(self.owner, ttl=self.options.lock_ttl)

    def incident(self, record: RemoteRecord) -> Incident:
        side = str(record.side)
        return to_incident(side, record.fields, self.profile, self.ctx[side])

    def ctx_for(self, side: str, displays: Mapping[str, str] | None = None) -> MappingContext:
        """``side``'s mapping context naming the other record (for fallback texts)."""
        other = self.other(side)
        if not displays or not displays.get(other):
            return self.ctx[side]
        return replace(self.ctx[side], origin=f"{side_title(other)} {displays[other]}")

    def readback(self, side: str, incident: Incident,
                 displays: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What ``side`` would hold for each merged field after we wrote ``incident`` there."""
        ctx = self.ctx_for(side, displays)
        written = to_fields(side, incident, self.profile, ctx).fields
        return projection(to_incident(side, written, self.profile, ctx), self.merged_fields)


def _id_key(side: str) -> str:
    return {"servicenow": "servicenow_id", "jira": "jira_key"}[side]


def _comment_key(side: str) -> str:
    return {"servicenow": "servicenow_comment_id", "jira": "jira_comment_id"}[side]


def _one_line(error: BaseException | str) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())
