"""The engine's common ground: options, run summary, neutral projections, crash steps.

Contract:
- :class:`EngineOptions` are the ``[sync]`` settings the engine needs;
  :class:`RunSummary` is what a run did (and its exit status).
- :func:`projection` is the JSON-ready neutral view of an incident the engine
  compares and stores as snapshots; :func:`with_values` writes such values
  back into an incident; :func:`snapshot_hash` fingerprints a pair's snapshots.
- :func:`sign_in` opens a connector, a tool that cannot be reached being
  :class:`connectors.base.Unreachable`.
- :class:`SimulatedCrash` and :data:`CRASH_STEPS` let tests stop the engine at
  named steps; production code never sets ``crash_at``.
- Nothing here writes to a tool or the state store.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from connectors.base import (
    Connector,
    RetriableError,
    ServerInfo,
    Unreachable,
)
from mappings.model import VOLATILE_FIELDS, Incident
from sync.actions import side_title
from sync.directions import CONFLICT_POLICIES, DIRECTIONS

logger = logging.getLogger(__name__)

# Fields never merged: comments have their own union, volatile stamps change on every write.
NOT_MERGED = frozenset({"comments"}) | VOLATILE_FIELDS
# A batch of linked records that ALL vanish at once smells of a scope or
# permission problem, not of deletions: refuse to act.
VANISHED_BATCH = 3
HEARTBEAT_SECONDS = 60.0

# Names of the steps a test can crash the engine at (``Engine(crash_at=...)``).
CRASH_STEPS = (
    "create:before-intent",
    "create:after-intent",
    "create:after-remote",
    "create:after-steps",
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
    rule_firings: int = 0      # (rule, field) changes the rules made on committed pairs
    elapsed: float = 0.0
    failures: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # written, but not as asked
    # (side, record id) -> the later last-update time of a pair this run failed, as
    # read: when the change it could not carry over was made (sync.metrics).
    read_times: dict[tuple[str, str], datetime] = field(default_factory=dict)

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
            "rule_firings": self.rule_firings,
            "warnings": len(self.warnings),
        }

    def line(self) -> str:
        # Rule firings only where rules fired: a run without rules reads as it always did.
        fired = f", rule firings {self.rule_firings}" if self.rule_firings else ""
        return (f"created {self.created}, adopted {self.adopted}, updated {self.updated}, "
                f"comments {self.comments}, "
                f"conflicts {self.conflicts}, failed {self.failed}, orphaned {self.orphaned}"
                f"{fired} in {self.elapsed:.1f} s")


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
    # Pairs planned, written, committed and read back together: one batched write
    # (and one read-back) per side for each such batch.
    batch_size: int = 200   # the config default too (sync.settings)
    # Seconds the site fields read for the site check are reused from the state
    # store (0: read them on every run).
    metadata_ttl: float = 3600.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {self.batch_size}")
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


def tool_clock_name(side: str, info: ServerInfo | None) -> str:
    """The state store's name for the (tool stamp, our time) pair kept for ``side``'s site."""
    where = f"{info.base_url}|{info.user}" if info is not None else ""
    return f"tool_clock|{side}|{where}"


class _ProjectionPlan(NamedTuple):
    """What :func:`projection` does for one list of names, worked out once."""

    # The model's fields NOT asked for, as a plain set: pydantic filters a dump by a
    # set in half the time it takes for a frozenset (which it reads as any other
    # iterable, per call), and by an exclude set a little faster than by the include
    # set naming the same fields (measured on the merged fields: 4.6 us, against 5.4
    # for the include set and 10.2 for the include frozenset). Shared by every call
    # with these names, so never changed: pydantic only reads it.
    excluded: set[str]
    # (name, key in the dump) for every name in order: a plain name's own field; for
    # a custom field or the labels, a first value that the steps below replace in place.
    picks: tuple[tuple[str, str], ...]
    custom: tuple[tuple[str, str], ...]   # (name, key in ``custom``)
    labels: bool


# Per tuple of names asked for, worked out once (a handful of field lists are ever
# asked for: the merged fields, a few others).
@functools.lru_cache(maxsize=64)
def _projection_plan(names: tuple[str, ...]) -> _ProjectionPlan:
    dumped: set[str] = set()
    picks = []
    custom = []
    for name in names:
        if name.startswith("custom."):
            custom.append((name, name[len("custom."):]))
            dumped.add("custom")
        else:
            dumped.add(name)
        picks.append((name, name))
    return _ProjectionPlan(set(Incident.model_fields) - dumped, tuple(picks),
                           tuple(custom), "labels" in dumped)


def projection(incident: Incident, fields: Iterable[str]) -> dict[str, Any]:
    """The JSON-ready neutral values of ``fields`` (``custom.x`` reads ``custom["x"]``)."""
    plan = _projection_plan(tuple(fields))
    # Only the fields asked for are dumped: a record's comments, often the most of it,
    # only when asked for (the merged fields, most callers' list, never are). A name
    # the model lacks is None, as it always was; so, at first, is "custom.x" (no
    # field has that name), whose place in the dict its value then takes.
    data = incident.model_dump(mode="json", exclude=plan.excluded)
    get = data.get
    out = {name: get(key) for name, key in plan.picks}
    if plan.custom:
        held = data["custom"]
        for name, key in plan.custom:
            out[name] = held.get(key)
    if plan.labels:
        out["labels"] = sorted(set(data["labels"]))
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


# What json.dumps(..., sort_keys=True, ensure_ascii=False, default=str) builds on each
# call, built once: the same text (dumps is this encoder's encode), twice per pair.
_HASH_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str)


def snapshot_hash(snapshots: Mapping[str, Mapping[str, Any]]) -> str:
    payload = _HASH_ENCODER.encode(snapshots)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _one_line(error: BaseException | str) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())
