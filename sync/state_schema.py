"""The tables of the state store, as portable SQLAlchemy Core metadata.

Contract:
- :data:`SCHEMA_VERSION` is the version these tables describe; it is written to
  ``meta`` (key ``schema_version``) when a store is created and checked on every
  open, so an older incident-sync refuses a store written by a newer one.
- Every timestamp column is :class:`UTCDateTime`: it accepts only timezone-aware
  datetimes, stores UTC, and always hands back aware UTC datetimes, on SQLite
  (which has no time zones) as on PostgreSQL.
- Nothing here stores credentials; no column is meant to hold one.
- Only portable column types and constraints, so the same metadata creates the
  schema on SQLite and PostgreSQL.
- Several configurations may share one database: every row that belongs to one
  of them carries its ``connection`` name (``[sync] connection``), and every
  uniqueness rule holds per connection. Comment links and conflicts belong to a
  link and are scoped through it; ``meta`` is the store's own.
- Links are symmetric: a ``links`` row holds what belongs to the pair (its
  connection, hash and times), and ``link_sides`` holds one row per side of it
  (side, record id, display, version, snapshot). A record is linked at most
  once per connection and side (a unique constraint, which is also the index
  that finds links by record id). Comment pairs keep their per-side comment ids
  in ``comment_sides`` the same way, and a conflict keeps its per-side values
  in one side-keyed JSON object. No column is named after a vendor: a side name
  ("servicenow", "jira") is a value.
- :data:`MIGRATIONS` lists, per version, the step that brings a store of the
  version before up to it (applied by :mod:`sync.state`, oldest first).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 4

# Version -> what the step that reaches it does (the steps live in sync.state_migrate).
MIGRATIONS: dict[int, str] = {
    2: "scope links, intents, retry queue, watermarks, runs and the lock by connection",
    3: "keep link, comment and conflict data per side instead of in vendor-named columns",
    4: "remember rule firings per link and when a link's rules are next due",
}

# Vendor ids are short (sys_id is 32 hex, Jira keys ~10 chars); 255 keeps
# PostgreSQL VARCHAR indexes cheap while leaving room for exotic instances.
_ID = 255
# A side name ("servicenow", "jira").
_SIDE = 32
# A connection name is an identifier people choose ("default", "ops-jira", ...).
_CONNECTION = 64
DEFAULT_CONNECTION = "default"


def _connection_column() -> Column[str]:
    return Column("connection", String(_CONNECTION), nullable=False,
                  server_default=DEFAULT_CONNECTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; naive input is a bug and refused."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the state store")
        # Stored naive-in-UTC: SQLite has no zone support, and one convention
        # for both databases keeps comparisons in SQL correct.
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

links = Table(
    "links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _connection_column(),
    Column("hash", String(128), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One row per side of a link: the record it links on that side, as last synced.
link_sides = Table(
    "link_sides",
    metadata,
    Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False),
    Column("side", String(_SIDE), nullable=False),
    # The link's connection, repeated here so uniqueness per connection is a constraint.
    Column("connection", String(_CONNECTION), nullable=False),
    Column("record_id", String(_ID), nullable=False),
    # Displays are for people (a number, a key, perhaps a title): no length limit.
    Column("display", Text, nullable=False, default=""),
    Column("version", String(_ID), nullable=True),
    # Canonical JSON text (sorted keys) of the neutral projection last synced.
    Column("snapshot", Text, nullable=True),
    PrimaryKeyConstraint("link_id", "side", name="pk_link_sides"),
    # A record is linked at most once per connection; two configurations
    # sharing the database may each link it (e.g. to two Jira projects). Its
    # index is also the one lookups by (connection, side, record ids) use.
    UniqueConstraint("connection", "side", "record_id", name="uq_link_sides_record"),
)

comment_links = Table(
    "comment_links",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False,
        index=True,
    ),
    Column("origin", String(_SIDE), nullable=False),
    Column("visibility", String(32), nullable=False),
)

# One row per side of a comment pair: the comment's id on that side.
comment_sides = Table(
    "comment_sides",
    metadata,
    Column(
        "comment_link_id", Integer, ForeignKey("comment_links.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # The pair's link, repeated so that "one comment pairs once per link" is a constraint.
    Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False),
    Column("side", String(_SIDE), nullable=False),
    Column("comment_id", String(_ID), nullable=False),
    PrimaryKeyConstraint("comment_link_id", "side", name="pk_comment_sides"),
    UniqueConstraint("link_id", "side", "comment_id", name="uq_comment_sides_comment"),
)

intents = Table(
    "intents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _connection_column(),
    Column("source_side", String(32), nullable=False),
    Column("source_id", String(_ID), nullable=False),
    Column("target_side", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed", Boolean, nullable=False, default=False),
    Index("ix_intents_pending", "completed", "source_side", "source_id"),
    Index("ix_intents_connection", "connection", "completed"),
)

retry_queue = Table(
    "retry_queue",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _connection_column(),
    Column("side", String(32), nullable=False),
    Column("record_id", String(_ID), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=False, default=""),
    Column("next_attempt", UTCDateTime, nullable=False),
    Column("parked", Boolean, nullable=False, default=False),
    UniqueConstraint("connection", "side", "record_id", name="uq_retry_connection_record"),
    Index("ix_retry_connection_due", "connection", "side", "parked", "next_attempt"),
)

conflicts = Table(
    "conflicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False,
        index=True,
    ),
    Column("field", String(_ID), nullable=False),
    # Values are canonical JSON text so any neutral value (str, int, list, None) fits.
    Column("base", Text, nullable=False),
    # {side: value}, canonical JSON (sorted keys): the value each side held.
    Column("side_values", Text, nullable=False),
    Column("resolution", String(64), nullable=False),
    Column("policy", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("open", Boolean, nullable=False),
)

# What the rules changed on a pair, one row per (rule, field) firing, kept as the
# link's history: the engine reads the latest per (rule, field) to tell a person's
# later change of that field (the person then wins) and an escalation note already
# written (never written twice). Values are canonical JSON text.
rule_firings = Table(
    "rule_firings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), nullable=False,
        index=True,
    ),
    Column("rule", String(_ID), nullable=False),
    Column("field", String(_ID), nullable=False),
    Column("old", Text, nullable=False),
    Column("new", Text, nullable=False),
    # The id of the internal note an escalation firing added (else NULL).
    Column("note_id", String(_ID), nullable=True),
    Column("at", UTCDateTime, nullable=False),
)

# When the rules of a linked pair will next change their verdict by time alone (an
# SLA target or an age threshold passing), so a run finds those pairs from the store
# without pulling every record. A link without a row is due on no date.
link_rules = Table(
    "link_rules",
    metadata,
    Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"), primary_key=True),
    Column("due_at", UTCDateTime, nullable=False),
    Index("ix_link_rules_due", "due_at"),
)

watermarks = Table(
    "watermarks",
    metadata,
    Column("connection", String(_CONNECTION), primary_key=True),
    Column("side", String(32), primary_key=True),
    Column("value", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    _connection_column(),
    Column("command", String(64), nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("finished", UTCDateTime, nullable=True),
    Column("counts", Text, nullable=False, default="{}"),
    Column("outcome", String(64), nullable=True),
    Column("error", Text, nullable=True),
)

# One row per connection holding its run lock: ``name`` is the connection name.
lock = Table(
    "lock",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("acquired", UTCDateTime, nullable=False),
    Column("expires", UTCDateTime, nullable=False),
)
