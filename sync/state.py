"""The state store: links between records, their last-synced snapshots, and run bookkeeping.

Contract:
- ``StateStore(url)`` opens a SQLAlchemy database: a SQLite file by default
  (``sqlite:///path``), PostgreSQL by URL. The schema (:mod:`sync.state_schema`)
  is created on first use and versioned; a store written by a newer
  incident-sync raises :class:`sync.errors.StateSchemaError`. ``sqlite://``
  (in-memory) is served from a private temporary file removed on :meth:`close`,
  so it keeps real transaction semantics across threads.
- ``with store.pair() as tx:`` is ONE transaction for one linked pair: it
  commits when the block ends normally and rolls back only that pair's changes
  when it raises. The transaction starts lazily at the first write, so a pair
  block that does remote I/O before writing holds no database lock meanwhile.
  Writes made in a pair are not visible to the store's read methods until the
  block ends. Once a pair block has written, the same thread must not start
  another write (a nested pair, ``record_failure``, ...) until the block ends:
  on SQLite, which has a single writer, that raises RuntimeError at once
  instead of deadlocking. Other threads simply wait their turn.
- ``with store.pairs() as tx:`` is ONE transaction for the commits of several
  pairs (:class:`PairsTx`): each method takes a list and sends one statement
  for it where pair transactions send one each, and leaves each pair's rows as
  its own pair transaction would. What a bulk statement cannot tell apart per
  pair (a link gone, a record or comment paired already, a race with another
  writer) raises :class:`BatchRefused`: the block rolls back whole and the
  caller commits the pairs one by one.
- The rules' memory per link: the firings recorded with a pair's commit
  (:meth:`PairTx.record_rule_firings`, read for many links in one query by
  :meth:`StateStore.rule_firings`) and when its rules next change it by time
  alone (:meth:`PairTx.set_rules_due`, :meth:`StateStore.rules_due`). Both
  tables hang off ``links.id`` and go with their link.
- A pair's commit costs few statements: a new link is two INSERTs, a link the
  caller read (``save_link(link=...)``) is updated by id, and the store
  remembers, per run, which records are queued and which links have open
  conflicts, comment pairs or a rules row, so a statement (or read) that would
  find nothing is not sent. That memory is read when first needed and dropped
  when a run takes the lock (:meth:`StateStore.forget_cached_rows`); rows
  another process writes to this connection meanwhile are seen after that.
- Every other writing method commits on its own, at once (``record_intent``
  and ``record_intents``, a batch's intents in one transaction, must survive a
  crash during the remote create that follows them).
- Every timestamp going in must be timezone-aware; every timestamp coming out
  is aware UTC.
- Snapshots are stored as canonical JSON (sorted keys) and must already be
  JSON values (str, int, float, bool, None, list, dict); anything else is a
  bug in the caller and raises TypeError rather than being silently
  stringified, which would make every pair look changed on the next run.
- Links are symmetric: :class:`Link` holds one :class:`LinkSide` per side
  (``link.sides[side]``: record id, display, snapshot, version), and
  :meth:`PairTx.save_link`, :meth:`PairTx.add_comment_link` and
  :meth:`PairTx.record_conflict` take their per-side values keyed by side. A
  record is linked at most once per connection and side: linking it to a second
  pair raises :class:`LinkConflict`.
- ``StateStore(url, connection=NAME)`` sees and writes only the rows of that
  connection (``[sync] connection``): links, intents, retry queue, conflicts
  (through their links), watermarks, runs and the lock. Several
  configurations can share one database without seeing each other's links.
- Opening a store written by an older incident-sync upgrades its schema in
  place first (:mod:`sync.state_migrate`, one transaction), readers included:
  the upgrade changes how rows are keyed, never what they say.
- The run lock (:meth:`StateStore.acquire_lock`) is one row per connection,
  claimed with single atomic statements, so it works across processes and
  hosts sharing the database. An expired lock (its holder crashed) is taken
  over. Runs of different connections do not exclude each other.
- Nothing here is handed credentials, and URLs shown in messages have their
  password masked.
- Database failures surface as :class:`StateStoreError` (a SyncError) with one
  line naming the store, never as a driver traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from sync import state_schema as t
from sync.conflict_settle import PERSON
from sync.errors import LockHeld, StateSchemaError, SyncError
from sync.state_migrate import migrate, stored_version
from sync.state_schema import DEFAULT_CONNECTION, SCHEMA_VERSION

logger = logging.getLogger(__name__)

SIDES = ("servicenow", "jira")
MAX_CONNECTION_CHARS = 64
# PostgreSQL advisory lock key taken while a store's schema is created: any
# fixed number works, this one is "isyn" in ASCII.
SCHEMA_LOCK_KEY = 0x6973796E
LOCK_POLL_SECONDS = 0.25
# How long a SQLite connection waits for another writer before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_RETRY_DELAY = timedelta(days=1)
# Up to +25 % of the delay, fixed per record: spreads a burst of failures
# without making tests depend on a random number generator.
RETRY_JITTER = 0.25
MAX_ERROR_CHARS = 500
# Well under SQLite's bound-parameter limit and PostgreSQL's practical IN size.
IN_CHUNK = 500
# Conflicts recorded with one of these resolutions wait for a person.
OPEN_RESOLUTIONS = frozenset({"manual", "unresolved", "open", "none", ""})

__all__ = [
    "DEFAULT_CONNECTION",
    "SCHEMA_VERSION",
    "BatchRefused",
    "CommentLink",
    "ConflictNote",
    "ConflictRecord",
    "FiringRecord",
    "Intent",
    "Link",
    "LinkConflict",
    "LinkSave",
    "LinkSide",
    "NoStateStore",
    "PairTx",
    "PairsTx",
    "RetryItem",
    "RunRecord",
    "StateStore",
    "StateStoreError",
    "masked_url",
    "retry_delay",
]


class StateStoreError(SyncError):
    """The state store cannot be read or written, or its records contradict each other."""


class LinkConflict(StateStoreError):
    """Two records claim one link (a ServiceNow record and a Jira issue linked elsewhere)."""


class NoStateStore(StateStoreError):
    """Opened with ``create=False`` and there is no state store at the URL yet."""


# --------------------------------------------------------------------------- records


def _side(side: str) -> str:
    value = str(side)
    if value not in SIDES:
        raise ValueError(f"side must be 'servicenow' or 'jira', not {value!r}")
    return value


@dataclass(frozen=True)
class LinkSide:
    """What the store knows of one side of a pair as of the last sync."""

    id: str
    display: str
    snapshot: dict[str, Any] | None
    version: str | None


@dataclass(frozen=True)
class Link:
    """A linked pair: ``sides[side]`` is each side's record as last synced."""

    id: int
    sides: Mapping[str, LinkSide]
    hash: str | None
    created_at: datetime
    updated_at: datetime

    def on(self, side: str) -> LinkSide:
        return self.sides[_side(side)]

    def id_on(self, side: str) -> str:
        return self.on(side).id

    def snapshot_on(self, side: str) -> dict[str, Any] | None:
        return self.on(side).snapshot

    def version_on(self, side: str) -> str | None:
        return self.on(side).version

    def display_on(self, side: str) -> str:
        return self.on(side).display


@dataclass(frozen=True)
class CommentLink:
    """Two comments that are one: ``ids[side]`` is the comment's id on each side."""

    link_id: int
    ids: Mapping[str, str]
    origin: str
    visibility: str

    def id_on(self, side: str) -> str:
        return self.ids[_side(side)]


@dataclass(frozen=True)
class Intent:
    id: int
    source_side: str
    source_id: str
    target_side: str
    created_at: datetime


@dataclass(frozen=True)
class RetryItem:
    side: str
    record_id: str
    attempts: int
    last_error: str
    next_attempt: datetime
    parked: bool


@dataclass(frozen=True)
class ConflictRecord:
    id: int
    link_id: int
    field: str
    base: Any
    # The value each side held: {side: value}.
    values: Mapping[str, Any]
    resolution: str
    policy: str
    at: datetime
    open: bool

    def value_on(self, side: str) -> Any:
        return self.values[_side(side)]


@dataclass(frozen=True)
class FiringRecord:
    """One recorded rule firing of a link: ``rule`` changed ``field`` from ``old`` to ``new``
    (JSON values) at ``at``; ``note_id`` names the internal note an escalation added."""

    link_id: int
    rule: str
    field: str
    old: Any
    new: Any
    note_id: str | None
    at: datetime


@dataclass(frozen=True)
class RunRecord:
    id: int
    command: str
    started: datetime
    finished: datetime | None
    counts: dict[str, int]
    outcome: str | None
    error: str | None


# --------------------------------------------------------------------------- helpers


def masked_url(url: str) -> str:
    """The URL as safe to show: any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable state URL>"


def retry_delay(side: str, record_id: str, attempts: int, base_seconds: float) -> timedelta:
    """Backoff before attempt ``attempts + 1``: base * 2**(attempts-1), jittered, capped at 1 day.

    The jitter is a fixed fraction derived from the record, so one record's
    schedule is reproducible while a burst of failures still spreads out.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, not {attempts}")
    # The cap is reached long before 2**40; bounding the exponent keeps the
    # float arithmetic finite however often an item keeps failing.
    raw = max(base_seconds, 0.0) * float(2 ** min(attempts - 1, 40))
    digest = hashlib.sha256(f"{side}:{record_id}".encode()).digest()
    fraction = int.from_bytes(digest[:4], "big") / 2**32
    seconds = min(raw * (1.0 + RETRY_JITTER * fraction), MAX_RETRY_DELAY.total_seconds())
    return timedelta(seconds=seconds)


_SIDE_TITLES = {"servicenow": "ServiceNow", "jira": "Jira"}


def _pair_text(ids: Mapping[str, str], joiner: str = "<->", what: str = "") -> str:
    """``ServiceNow sn1 <-> Jira OPS-1``: a pair of records (or comments) for messages."""
    return f" {joiner} ".join(f"{what}{_SIDE_TITLES.get(side, side)} {ids[side]}"
                              for side in SIDES if side in ids)


# What json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
# allow_nan=False) builds on each call, built once: the same text and the same errors
# (dumps is this encoder's encode; encode keeps nothing between calls). Four snapshots
# per synced record go through it.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)


def _canonical(value: Any, what: str) -> str:
    try:
        return _CANONICAL.encode(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not a JSON value: {exc}") from None


def _display_json(value: Any) -> Any:
    """Conflict values are for people to read: make common Python values JSON-able."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _loose_json(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_display_json
    )


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value.isoformat()}")
    return value.astimezone(UTC)


def _links_from(rows: Iterable[Mapping[str, Any]]) -> list[Link]:
    """Links from rows of :func:`_link_rows` (one per side), in the rows' order."""
    pairs: dict[int, tuple[Mapping[str, Any], dict[str, LinkSide]]] = {}
    for row in rows:
        _, sides = pairs.setdefault(row["id"], (row, {}))
        sides[row["side"]] = LinkSide(id=row["record_id"], display=row["display"],
                                      snapshot=_loads(row["snapshot"]), version=row["version"])
    links = []
    for link_id, (row, sides) in pairs.items():
        if set(sides) != set(SIDES):
            raise StateStoreError(
                f"link {link_id} has sides {sorted(sides)} in the state store, not both of "
                f"{', '.join(SIDES)}; the store was edited by hand"
            )
        links.append(Link(id=link_id, sides={side: sides[side] for side in SIDES},
                          hash=row["hash"], created_at=row["created_at"],
                          updated_at=row["updated_at"]))
    return links


def _link_rows() -> Any:
    """SELECT of links joined with their sides, one row per side, in link order."""
    links, sides = t.links, t.link_sides
    return (
        select(links.c.id, links.c.hash, links.c.created_at, links.c.updated_at, sides.c.side,
               sides.c.record_id, sides.c.display, sides.c.version, sides.c.snapshot)
        .join(sides, sides.c.link_id == links.c.id)
        .order_by(links.c.id, sides.c.side)
    )


def _retry_from(row: Mapping[str, Any]) -> RetryItem:
    return RetryItem(
        side=row["side"],
        record_id=row["record_id"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        next_attempt=row["next_attempt"],
        parked=bool(row["parked"]),
    )


def _conflict_from(row: Mapping[str, Any]) -> ConflictRecord:
    return ConflictRecord(
        id=row["id"],
        link_id=row["link_id"],
        field=row["field"],
        base=_loads(row["base"]),
        values=_loads(row["side_values"]),
        resolution=row["resolution"],
        policy=row["policy"],
        at=row["at"],
        open=bool(row["open"]),
    )


def _run_from(row: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        id=row["id"],
        command=row["command"],
        started=row["started"],
        finished=row["finished"],
        counts=json.loads(row["counts"] or "{}"),
        outcome=row["outcome"],
        error=row["error"],
    )


def _db_reason(exc: SQLAlchemyError) -> str:
    # str(exc) would append the SQL and its parameters; the driver's own
    # message is the useful, parameter-free part.
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        reason = str(exc.orig)
    else:
        reason = str(exc).split("\n", 1)[0]
    return " ".join(reason.split()) or type(exc).__name__


# --------------------------------------------------------------------------- store


@dataclass(frozen=True)
class _HotStatements:
    """The statements every pair's commit runs, built once per store: building a
    SQLAlchemy statement costs more CPU than SQLite takes to run it, and a
    statement built once (its values bound at execution, one row or many) is
    compiled once. A multi-row ``values([...])`` would be compiled every time."""

    returning: bool            # INSERT ... RETURNING (not on SQLite before 3.35)
    sides_returning: bool      # the insert_*sides statements say their rows by RETURNING
    insert_link: Any
    insert_sides: Any          # ON CONFLICT DO NOTHING (RETURNING side but on SQLite)
    upsert_sides: Any          # on (link_id, side)
    update_link: Any           # by id and connection
    update_held_link: Any      # ... while it holds both records (b_record_<side>)
    complete_intent: Any
    insert_comment_link: Any
    insert_comment_sides: Any  # ON CONFLICT DO NOTHING (RETURNING side but on SQLite)
    # A batch's (PairsTx): the new rows' ids in the order of their parameters.
    insert_links: Any          # RETURNING id; None without RETURNING
    insert_comment_links: Any  # RETURNING id; None without RETURNING
    delete_retry: Any          # by b_connection, b_side, b_record_id
    insert_intents: Any        # RETURNING id and the intent's key (any order)
    insert_firings: Any
    upsert_rules_due: Any      # on link_id
    delete_rules_due: Any      # by b_link_id

    @classmethod
    def build(cls, is_sqlite: bool, returning: bool) -> _HotStatements:
        dialect_insert = sqlite_dialect.insert if is_sqlite else postgresql.insert
        ln, s = t.links.c, t.link_sides.c
        upsert = dialect_insert(t.link_sides)
        upsert = upsert.on_conflict_do_update(
            index_elements=[s.link_id, s.side],
            set_={name: upsert.excluded[name]
                  for name in ("record_id", "display", "version", "snapshot")})
        # Bound names differ from the columns': SQLAlchemy reserves those for SET.
        values = {"hash": bindparam("b_hash"), "updated_at": bindparam("b_updated_at")}
        mine = (ln.id == bindparam("b_id"), ln.connection == bindparam("b_connection"))
        holds = (select(func.count()).select_from(t.link_sides)
                 .where(s.link_id == bindparam("b_id"), or_(*(
                     (s.side == side) & (s.record_id == bindparam(f"b_record_{side}"))
                     for side in SIDES)))
                 .scalar_subquery())
        insert_sides = dialect_insert(t.link_sides).on_conflict_do_nothing()
        insert_comment_sides = dialect_insert(t.comment_sides).on_conflict_do_nothing()
        # SQLite counts the rows an executemany made in its rowcount, and without
        # RETURNING runs it as one prepared statement: with RETURNING, SQLAlchemy sends
        # a multi-row INSERT whose text differs with the row count, and each such text
        # stays in sqlite3's statement cache (megabytes over a run's batches).
        sides_returning = returning and not is_sqlite
        if sides_returning:
            insert_sides = insert_sides.returning(s.side)
            insert_comment_sides = insert_comment_sides.returning(t.comment_sides.c.side)
        q, r = t.retry_queue.c, t.link_rules.c
        upsert_due = dialect_insert(t.link_rules)
        upsert_due = upsert_due.on_conflict_do_update(
            index_elements=[r.link_id], set_={"due_at": upsert_due.excluded.due_at})
        # sort_by_parameter_order: PostgreSQL sends one multi-row INSERT whose ids
        # SQLAlchemy matches to the rows; SQLite, which cannot promise that order,
        # one INSERT per row within the one call.
        insert_links = insert_comment_links = None
        if returning:
            insert_links = insert(t.links).returning(ln.id, sort_by_parameter_order=True)
            insert_comment_links = insert(t.comment_links).returning(
                t.comment_links.c.id, sort_by_parameter_order=True)
        return cls(
            returning=returning,
            sides_returning=sides_returning,
            insert_link=insert(t.links),
            insert_sides=insert_sides,
            upsert_sides=upsert,
            update_link=update(t.links).where(*mine).values(**values),
            update_held_link=update(t.links).where(*mine, holds == len(SIDES))
            .values(**values),
            complete_intent=update(t.intents).where(t.intents.c.id == bindparam("b_id"))
            .values(completed=True),
            insert_comment_link=insert(t.comment_links),
            insert_comment_sides=insert_comment_sides,
            insert_links=insert_links,
            insert_comment_links=insert_comment_links,
            delete_retry=delete(t.retry_queue).where(
                q.connection == bindparam("b_connection"), q.side == bindparam("b_side"),
                q.record_id == bindparam("b_record_id")),
            insert_firings=insert(t.rule_firings),
            insert_intents=insert(t.intents).returning(
                t.intents.c.id, t.intents.c.source_side, t.intents.c.source_id,
                t.intents.c.target_side),
            upsert_rules_due=upsert_due,
            delete_rules_due=delete(t.link_rules).where(r.link_id == bindparam("b_link_id")),
        )

    def rows_made(self, result: Any) -> int:
        """How many rows an insert of the ``insert_*sides`` statements made."""
        # Without RETURNING only SQLite is left, whose executemany rowcount is the sum.
        return len(result.all()) if self.sides_returning else int(result.rowcount)


class _RowCache:
    """Sets of keys of the store's own rows (queued records, links with an open
    conflict, with a comment pair, with a rules row), each read once when first needed.

    A set may hold more than the database (an add is made when the write is
    made, before its commit; a removal waits for the commit), never less, for
    rows this store wrote: a statement is skipped only when its row is surely
    absent. Rows another process writes during a run are not seen until
    :meth:`forget`; the run lock keeps other runs of the connection out, and a
    skipped DELETE of such a row only leaves an item for the next run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sets: dict[str, set[Any]] = {}

    def get(self, name: str, load: Callable[[], set[Any]]) -> set[Any]:
        with self._lock:
            found = self._sets.get(name)
        if found is None:
            loaded = load()
            with self._lock:
                found = self._sets.setdefault(name, loaded)
        return found

    def holds(self, name: str, load: Callable[[], set[Any]], key: Any) -> bool:
        found = self.get(name, load)
        with self._lock:
            return key in found

    def add(self, name: str, load: Callable[[], set[Any]], key: Any) -> None:
        found = self.get(name, load)
        with self._lock:
            found.add(key)

    def discard(self, name: str, key: Any) -> None:
        with self._lock:
            found = self._sets.get(name)
            if found is not None:
                found.discard(key)

    def forget(self) -> None:
        with self._lock:
            self._sets.clear()


class StateStore:
    """Links, snapshots, retry queue, conflicts, watermarks, runs and the run lock."""

    def __init__(
        self,
        url: str,
        *,
        connection: str = DEFAULT_CONNECTION,
        create: bool = True,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep or time.sleep
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None
        # Which thread has a pair transaction open (see _guard_single_writer).
        self._local = threading.local()
        # What this store knows of its own rows, so a pair's commit skips the
        # statements that would change nothing (see _RowCache); loaded lazily,
        # dropped when a run takes the lock.
        self._rows = _RowCache()
        self.url = masked_url(url)
        if not connection or len(connection) > MAX_CONNECTION_CHARS:
            raise ValueError(
                f"connection name must be 1-{MAX_CONNECTION_CHARS} characters, not {connection!r}"
            )
        self.connection = connection
        self._engine = self._make_engine(url, create=create)
        self._hot = _HotStatements.build(self._is_sqlite, self._engine.dialect.insert_returning)
        try:
            self._prepare_schema(create=create)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ plumbing

    def _make_engine(self, url: str, *, create: bool) -> Engine:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StateStoreError(f"state_url is not a database URL: {masked_url(url)}") from None
        self._is_sqlite = parsed.get_backend_name() == "sqlite"
        if not self._is_sqlite:
            try:
                # Pairs commit from the engine's worker threads: as for SQLite, more
                # connections than write concurrency so none waits for the pool.
                return create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=40)
            except ImportError as exc:
                raise StateStoreError(
                    f"cannot use state store {self.url}: its database driver is not installed "
                    f"({exc}); for PostgreSQL: pip install 'psycopg[binary]'"
                ) from None
            except SQLAlchemyError as exc:
                raise StateStoreError(f"cannot use state store {self.url}: {exc}") from None

        database = parsed.database or ""
        if database in ("", ":memory:"):
            # A private file instead of :memory:, because every pooled
            # connection to :memory: would see its own empty database.
            self._temp_dir = tempfile.TemporaryDirectory(prefix="incident-sync-state-")
            database = os.path.join(self._temp_dir.name, "state.db")
            parsed = parsed.set(database=database)
        elif not create and not Path(database).exists():
            raise NoStateStore(f"no state store at {database} yet")
        elif create and not Path(database).parent.exists():
            raise StateStoreError(
                f"cannot create state store {database}: directory "
                f"{Path(database).parent} does not exist"
            )
        # A pair's transaction may wait for another thread's; a pool bigger
        # than the engine's write concurrency avoids waiting for a connection.
        engine = create_engine(parsed, pool_size=8, max_overflow=40)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StateStoreError(f"state store {self.url}: {_db_reason(exc)}") from None

    def _guard_single_writer(self, what: str) -> None:
        """Refuse a second write transaction on a thread whose pair already holds one.

        SQLite has one writer at a time: the second transaction would wait for
        the pair's lock, which its own thread holds, until busy_timeout. A
        clear error at once beats a 30-second hang ending in "database is locked".
        """
        if self._is_sqlite and getattr(self._local, "pair_open", False):
            raise RuntimeError(
                f"{what} inside a `with store.pair()` block that has already written, on the "
                "same thread: SQLite allows one writer, so this would deadlock; call it "
                "before or after the pair block"
            )

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One committed transaction; IntegrityError passes through for callers to explain."""
        self._guard_single_writer("a state store write")
        try:
            with self._engine.connect() as conn:
                conn.execution_options(incident_sync_write=True)
                with conn.begin():
                    yield conn
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StateStoreError(f"state store {self.url}: {_db_reason(exc)}") from None

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT for ``table``, which knows ON CONFLICT (SQLite and
        PostgreSQL spell it alike)."""
        return (sqlite_dialect.insert(table) if self._is_sqlite
                else postgresql.insert(table))

    def forget_cached_rows(self) -> None:
        """Drop what the store remembers of its retry queue, open conflicts and rule
        rows; read again at next need. A run taking the lock calls it, so rows other
        processes changed between runs are seen."""
        self._rows.forget()

    def _load_queued(self) -> set[Any]:
        """(side, record id) of every item of this connection's retry queue."""
        c = t.retry_queue.c
        with self._read() as conn:
            return {(row.side, row.record_id) for row in conn.execute(
                select(c.side, c.record_id).where(c.connection == self.connection))}

    # The sets below hold link ids of every connection: link ids are unique across
    # them, and a write naming another connection's link behaves as it always did.

    def _load_open_conflicts(self) -> set[Any]:
        """The ids of the links that have an open conflict."""
        c = t.conflicts.c
        with self._read() as conn:
            return set(conn.execute(select(c.link_id).distinct().where(
                c.open.is_(True))).scalars())

    def _load_commented(self) -> set[Any]:
        """The ids of the links that have a comment pair."""
        c = t.comment_links.c
        with self._read() as conn:
            return set(conn.execute(select(c.link_id).distinct()).scalars())

    def _load_rules_due(self) -> set[Any]:
        """The ids of the links that have a ``link_rules`` row."""
        r = t.link_rules.c
        with self._read() as conn:
            return set(conn.execute(select(r.link_id)).scalars())

    def _prepare_schema(self, *, create: bool) -> None:
        # A reader must not queue behind a run's writes for the write lock.
        transaction = self._write if create else self._read
        try:
            with transaction() as conn:
                if create and not self._is_sqlite:
                    # Workers starting together on a fresh PostgreSQL database would
                    # race to CREATE the same tables; SQLite's BEGIN IMMEDIATE already
                    # serializes them. Held until this transaction ends.
                    conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK_KEY)))
                tables = set(inspect(conn).get_table_names())
                if "meta" not in tables:
                    if not create:
                        raise NoStateStore(f"no state store at {self.url} yet")
                    t.metadata.create_all(conn)
                    conn.execute(
                        insert(t.meta).values(key="schema_version", value=str(SCHEMA_VERSION))
                    )
                    return
                version = stored_version(conn)
                if version is None:
                    raise StateSchemaError(
                        f"state store {self.url} has no readable schema_version; "
                        "it was not written by incident-sync"
                    )
                if version > SCHEMA_VERSION:
                    raise StateSchemaError(
                        f"state store {self.url} has schema version {version}, newer than "
                        f"this incident-sync understands ({SCHEMA_VERSION}); upgrade incident-sync"
                    )
                if version == SCHEMA_VERSION and create:
                    t.metadata.create_all(conn)
                if version == SCHEMA_VERSION:
                    return
        except IntegrityError as exc:
            # Two processes creating one fresh store at once: the other one won.
            logger.debug("schema created concurrently: %s", _db_reason(exc))
            return
        # An older store: upgraded in its own transaction, which re-reads the
        # version under a write lock in case another process is upgrading it too.
        try:
            found = migrate(self._engine, is_sqlite=self._is_sqlite)
        except (SQLAlchemyError, RuntimeError) as exc:
            reason = _db_reason(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
            raise StateStoreError(
                f"state store {self.url}: upgrading its schema to version {SCHEMA_VERSION} "
                f"failed, nothing was changed: {reason}"
            ) from None
        if found is not None:
            logger.warning("state store %s: schema upgraded from version %d to %d",
                           self.url, found, SCHEMA_VERSION)

    def close(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        """The store's clock (aware UTC); tests inject one."""
        return _require_aware(self._clock(), "clock()")

    # ------------------------------------------------------------------ pairs

    @contextmanager
    def pair(self) -> Iterator[PairTx]:
        tx = PairTx(self)
        try:
            yield tx
        except BaseException:
            tx._end(commit=False)
            raise
        tx._end(commit=True)

    @contextmanager
    def pairs(self) -> Iterator[PairsTx]:
        """ONE transaction for the commits of several pairs (:class:`PairsTx`): it
        commits when the block ends normally and rolls back all of it when it raises."""
        tx = PairsTx(self)
        try:
            yield tx
        except BaseException:
            tx._tx._end(commit=False)
            raise
        tx._tx._end(commit=True)

    # ------------------------------------------------------------------ links

    def _links_where(self, conn: Connection, *where: Any) -> list[Link]:
        """This connection's links matching ``where`` (on ``links``), with both sides."""
        query = _link_rows().where(t.links.c.connection == self.connection, *where)
        return _links_from(conn.execute(query).mappings())

    def _read_links(self, *where: Any) -> list[Link]:
        with self._read() as conn:
            return self._links_where(conn, *where)

    def _linked_on(self, side: str, record_ids: Collection[str]) -> Any:
        """The ids of this connection's links whose record on ``side`` is one of
        ``record_ids``: one lookup on the (connection, side, record_id) index."""
        s = t.link_sides.c
        return select(s.link_id).where(s.connection == self.connection, s.side == _side(side),
                                       s.record_id.in_(list(record_ids)))

    def link_by(self, side: str, record_id: str) -> Link | None:
        found = self._read_links(t.links.c.id.in_(self._linked_on(side, [record_id])))
        return found[0] if found else None

    def link_by_id(self, link_id: int) -> Link | None:
        found = self._read_links(t.links.c.id == link_id)
        return found[0] if found else None

    def links_by(self, side: str, ids: Collection[str]) -> dict[str, Link]:
        """Links keyed by their id on ``side``, for those of ``ids`` that are linked."""
        side = _side(side)
        wanted = sorted(set(ids))
        found: dict[str, Link] = {}
        with self._read() as conn:
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start:start + IN_CHUNK]
                linked = self._linked_on(side, chunk)
                for link in self._links_where(conn, t.links.c.id.in_(linked)):
                    found[link.id_on(side)] = link
        return found

    def all_links(self) -> list[Link]:
        return self._read_links()

    def comment_links(self, link_id: int) -> list[CommentLink]:
        """The comment pairs of a link; no query for a link the store knows has none
        (most links: planning a pair asks for its comment pairs every time)."""
        return self.comment_links_of([link_id]).get(link_id, [])

    def comment_links_of(self, link_ids: Collection[int]) -> dict[int, list[CommentLink]]:
        """The comment pairs of these links (a link without any is absent), in one
        query per :data:`IN_CHUNK` links: a batch of pairs is planned with one read,
        not one per link. Links the store knows have none are not asked for."""
        wanted = sorted({link_id for link_id in link_ids
                         if self._rows.holds("commented", self._load_commented, link_id)})
        if not wanted:
            return {}
        c, s = t.comment_links.c, t.comment_sides.c
        rows: list[Any] = []
        with self._read() as conn:
            for start in range(0, len(wanted), IN_CHUNK):
                rows.extend(conn.execute(
                    select(c.id, c.link_id, c.origin, c.visibility, s.side, s.comment_id)
                    .join(t.comment_sides, s.comment_link_id == c.id)
                    .where(c.link_id.in_(wanted[start:start + IN_CHUNK]))
                    .order_by(c.id, s.side)
                ).mappings().all())
        pairs: dict[int, tuple[Mapping[str, Any], dict[str, str]]] = {}
        for row in rows:
            pairs.setdefault(row["id"], (row, {}))[1][row["side"]] = row["comment_id"]
        found: dict[int, list[CommentLink]] = {}
        for row, ids in pairs.values():
            found.setdefault(row["link_id"], []).append(CommentLink(
                link_id=row["link_id"], ids=ids, origin=row["origin"],
                visibility=row["visibility"]))
        return found

    # ------------------------------------------------------------------ rules

    def rule_firings(self, link_ids: Collection[int]) -> dict[int, list[FiringRecord]]:
        """The recorded rule firings of these links, oldest first, in one query per
        :data:`IN_CHUNK` links (a batch of pairs is planned with one read, not one per
        link). Links of other connections are not seen."""
        f, ln = t.rule_firings.c, t.links.c
        wanted = sorted(set(link_ids))
        found: dict[int, list[FiringRecord]] = {}
        with self._read() as conn:
            for start in range(0, len(wanted), IN_CHUNK):
                chunk = wanted[start:start + IN_CHUNK]
                rows = conn.execute(
                    select(t.rule_firings).join(t.links, ln.id == f.link_id)
                    .where(ln.connection == self.connection, f.link_id.in_(chunk))
                    .order_by(f.link_id, f.id)
                ).mappings()
                for row in rows:
                    found.setdefault(row["link_id"], []).append(FiringRecord(
                        link_id=row["link_id"], rule=row["rule"], field=row["field"],
                        old=_loads(row["old"]), new=_loads(row["new"]),
                        note_id=row["note_id"], at=row["at"]))
        return found

    def rules_due(self, now: datetime) -> list[Link]:
        """Links whose rules change their verdict by time alone at or before ``now``
        (this connection's, in link order): one indexed read of ``link_rules``."""
        r = t.link_rules.c
        now = _require_aware(now, "now")
        return self._read_links(t.links.c.id.in_(select(r.link_id).where(r.due_at <= now)))

    def rules_due_at(self, link_id: int) -> datetime | None:
        """When the rules of ``link_id`` are next due by time alone (None: never)."""
        r = t.link_rules.c
        with self._read() as conn:
            return conn.execute(select(r.due_at).where(r.link_id == link_id)).scalar()

    # ------------------------------------------------------------------ intents

    def record_intent(self, source_side: str, source_id: str, target_side: str) -> int:
        """Note a create about to happen; committed at once. A pending twin is reused."""
        source_side, target_side = _side(source_side), _side(target_side)
        c = t.intents.c
        with self._write() as conn:
            existing = conn.execute(
                select(c.id).where(
                    c.connection == self.connection,
                    c.completed.is_(False),
                    c.source_side == source_side,
                    c.source_id == source_id,
                    c.target_side == target_side,
                )
            ).scalar()
            if existing is not None:
                return int(existing)
            result = conn.execute(
                insert(t.intents).values(
                    connection=self.connection,
                    source_side=source_side,
                    source_id=source_id,
                    target_side=target_side,
                    created_at=self.now(),
                    completed=False,
                )
            )
            return int(result.inserted_primary_key[0])

    def record_intents(self, creates: Sequence[tuple[str, str, str]]) -> list[int]:
        """Note a batch of creates about to happen, ``(source_side, source_id,
        target_side)`` each, in ONE committed transaction; their ids in order. A
        pending twin is reused, as by :meth:`record_intent`."""
        wanted = [(_side(a), str(i), _side(b)) for a, i, b in creates]
        if not wanted:
            return []
        c = t.intents.c
        found: dict[tuple[str, str, str], int] = {}
        source_ids = sorted({source_id for _, source_id, _ in wanted})
        with self._write() as conn:
            for start in range(0, len(source_ids), IN_CHUNK):
                rows = conn.execute(
                    select(c.id, c.source_side, c.source_id, c.target_side).where(
                        c.connection == self.connection, c.completed.is_(False),
                        c.source_id.in_(source_ids[start:start + IN_CHUNK]))
                    .order_by(c.id))
                for row in rows:
                    found.setdefault((row.source_side, row.source_id, row.target_side),
                                     int(row.id))
            new = list(dict.fromkeys(key for key in wanted if key not in found))
            created_at = self.now()
            if not self._hot.returning:
                for a, i, b in new:   # SQLite before 3.35: one INSERT each, same transaction
                    found[(a, i, b)] = int(conn.execute(insert(t.intents).values(
                        connection=self.connection, source_side=a, source_id=i, target_side=b,
                        created_at=created_at, completed=False)).inserted_primary_key[0])
                new = []
            if new:
                # Multi-row INSERT ... RETURNING (SQLAlchemy's insertmanyvalues, compiled
                # once per store, not per batch as a values([...]) list would be); the
                # rows come back with their keys, so their order does not matter.
                made = conn.execute(self._hot.insert_intents, [
                    {"connection": self.connection, "source_side": a, "source_id": i,
                     "target_side": b, "created_at": created_at, "completed": False}
                    for a, i, b in new])
                for row in made:
                    found[(row.source_side, row.source_id, row.target_side)] = int(row.id)
        return [found[key] for key in wanted]

    def pending_intents(self) -> list[Intent]:
        c = t.intents.c
        with self._read() as conn:
            rows = conn.execute(
                select(c.id, c.source_side, c.source_id, c.target_side, c.created_at)
                .where(c.connection == self.connection, c.completed.is_(False))
                .order_by(c.id)
            ).mappings().all()
        return [Intent(**row) for row in rows]

    # ------------------------------------------------------------------ retry queue

    def due_retries(self, side: str, now: datetime) -> list[RetryItem]:
        """Items of ``side`` whose next attempt has come; parked items never are."""
        c = t.retry_queue.c
        now = _require_aware(now, "now")
        with self._read() as conn:
            rows = conn.execute(
                select(t.retry_queue)
                .where(c.connection == self.connection, c.side == _side(side),
                       c.parked.is_(False), c.next_attempt <= now)
                .order_by(c.next_attempt, c.id)
            ).mappings().all()
        return [_retry_from(row) for row in rows]

    def retry_items(self, *, parked: bool | None = None) -> list[RetryItem]:
        c = t.retry_queue.c
        query = (select(t.retry_queue).where(c.connection == self.connection)
                 .order_by(c.next_attempt, c.id))
        if parked is not None:
            query = query.where(c.parked.is_(parked))
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [_retry_from(row) for row in rows]

    def record_failure(
        self,
        side: str,
        record_id: str,
        error: str,
        *,
        now: datetime,
        base_seconds: float,
        max_attempts: int,
    ) -> RetryItem:
        """Count one more failed attempt and schedule the next; park after ``max_attempts``."""
        side = _side(side)
        now = _require_aware(now, "now")
        message = str(error)
        if len(message) > MAX_ERROR_CHARS:
            message = message[: MAX_ERROR_CHARS - 1] + "…"
        c = t.retry_queue.c
        where = (c.connection == self.connection, c.side == side, c.record_id == record_id)
        with self._write() as conn:
            previous = conn.execute(select(c.attempts).where(*where)).scalar()
            attempts = (previous or 0) + 1
            values = {
                "attempts": attempts,
                "last_error": message,
                "next_attempt": now + retry_delay(side, record_id, attempts, base_seconds),
                "parked": attempts >= max_attempts,
            }
            if previous is None:
                conn.execute(insert(t.retry_queue).values(
                    connection=self.connection, side=side, record_id=record_id, **values
                ))
            else:
                conn.execute(update(t.retry_queue).where(*where).values(**values))
        self._rows.add("queued", self._load_queued, (side, record_id))
        return RetryItem(side=side, record_id=record_id, **values)

    # ------------------------------------------------------------------ conflicts

    def _conflicts(self) -> Any:
        """SELECT of the conflicts on this connection's links."""
        mine = select(t.links.c.id).where(t.links.c.connection == self.connection)
        return select(t.conflicts).where(t.conflicts.c.link_id.in_(mine))

    def open_conflicts(self) -> list[ConflictRecord]:
        c = t.conflicts.c
        with self._read() as conn:
            rows = conn.execute(
                self._conflicts().where(c.open.is_(True)).order_by(c.at, c.id)
            ).mappings().all()
        return [_conflict_from(row) for row in rows]

    def conflicts(self, link_id: int | None = None) -> list[ConflictRecord]:
        """Every recorded conflict (open and settled), oldest first."""
        c = t.conflicts.c
        query = self._conflicts().order_by(c.at, c.id)
        if link_id is not None:
            query = query.where(c.link_id == link_id)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [_conflict_from(row) for row in rows]

    def open_conflicts_of(self, link_id: int) -> list[ConflictRecord]:
        """The open conflicts of one link, oldest first; no query for a link the store
        knows has none (most links: planning a pair asks every time)."""
        if not self._rows.holds("open_conflicts", self._load_open_conflicts, link_id):
            return []
        return [conflict for conflict in self.conflicts(link_id) if conflict.open]

    def conflict_by_id(self, conflict_id: int) -> ConflictRecord | None:
        c = t.conflicts.c
        with self._read() as conn:
            row = conn.execute(select(t.conflicts).where(c.id == conflict_id)).mappings().first()
        return _conflict_from(row) if row is not None else None

    def choose_conflict_side(self, conflict_id: int, side: str, *, at: datetime) -> ConflictRecord:
        """A person settles open conflict ``conflict_id``: ``side``'s value is to win.

        The row stays open (resolution ``side``, policy ``person``) until a run has
        written the value across; that run records the settlement and closes it.
        ``at`` becomes the time of the choice. LookupError when there is no such
        open conflict (the message says which and why).
        """
        side = _side(side)
        at = _require_aware(at, "at")
        c = t.conflicts.c
        with self._write() as conn:
            row = conn.execute(select(t.conflicts).where(c.id == conflict_id)).mappings().first()
            if row is None:
                raise LookupError(f"no conflict with id {conflict_id}")
            if not row["open"]:
                raise LookupError(
                    f"conflict {conflict_id} ({row['field']}) is already settled: "
                    f"{row['resolution']} by {row['policy']}")
            # Open, with a side as resolution: a person's choice awaiting its write.
            conn.execute(update(t.conflicts).where(c.id == conflict_id)
                         .values(resolution=side, policy=PERSON, at=at))
            row = conn.execute(select(t.conflicts).where(c.id == conflict_id)).mappings().one()
        return _conflict_from(row)

    # ------------------------------------------------------------------ watermarks

    def watermark(self, side: str) -> datetime | None:
        with self._read() as conn:
            return conn.execute(
                select(t.watermarks.c.value).where(t.watermarks.c.connection == self.connection,
                                                   t.watermarks.c.side == _side(side))
            ).scalar()

    def set_watermark(self, side: str, value: datetime) -> None:
        side = _side(side)
        value = _require_aware(value, "watermark")
        with self._write() as conn:
            mine = (t.watermarks.c.connection == self.connection, t.watermarks.c.side == side)
            changed = conn.execute(
                update(t.watermarks).where(*mine).values(value=value)
            ).rowcount
            if not changed:
                conn.execute(insert(t.watermarks).values(connection=self.connection, side=side,
                                                         value=value))

    # ------------------------------------------------------------------ runs

    def start_run(self, command: str, started: datetime) -> int:
        with self._write() as conn:
            result = conn.execute(
                insert(t.runs).values(
                    connection=self.connection, command=command,
                    started=_require_aware(started, "started"), counts="{}",
                )
            )
            return int(result.inserted_primary_key[0])

    def finish_run(
        self,
        run_id: int,
        *,
        finished: datetime,
        counts: Mapping[str, int],
        outcome: str,
        error: str | None = None,
    ) -> None:
        if error is not None and len(error) > MAX_ERROR_CHARS:
            error = error[: MAX_ERROR_CHARS - 1] + "…"
        with self._write() as conn:
            changed = conn.execute(
                update(t.runs)
                .where(t.runs.c.id == run_id, t.runs.c.connection == self.connection)
                .values(
                    finished=_require_aware(finished, "finished"),
                    counts=_canonical({str(k): int(v) for k, v in counts.items()}, "counts"),
                    outcome=outcome,
                    error=error,
                )
            ).rowcount
        if not changed:
            raise StateStoreError(f"state store {self.url}: no run with id {run_id}")

    def runs(self, limit: int = 10) -> list[RunRecord]:
        """The latest ``limit`` runs, newest first."""
        c = t.runs.c
        with self._read() as conn:
            rows = conn.execute(
                select(t.runs).where(c.connection == self.connection)
                .order_by(c.started.desc(), c.id.desc()).limit(limit)
            ).mappings().all()
        return [_run_from(row) for row in rows]

    # ------------------------------------------------------------------ lock

    def acquire_lock(self, owner: str, *, timeout: float = 0.0, ttl: float = 900.0) -> None:
        """Claim the run lock, waiting up to ``timeout`` seconds for a live holder.

        Raises LockHeld naming the holder when it is still held after ``timeout``.
        Expiry compares the holders' clocks: hosts sharing a store need NTP.
        """
        if ttl <= 0:
            raise ValueError(f"lock ttl must be positive seconds, not {ttl}")
        deadline = self.now() + timedelta(seconds=max(timeout, 0.0))
        while True:
            if self._try_lock(owner, ttl):
                # A new run: what other processes did since the last one is read afresh.
                self.forget_cached_rows()
                return
            holder = self.lock_holder()
            remaining = (deadline - self.now()).total_seconds()
            if remaining <= 0:
                if holder is None:
                    continue  # released between the two statements: try again at once
                holder_owner, since = holder
                raise LockHeld(
                    f"another run (owner {holder_owner}, since "
                    f"{since:%Y-%m-%d %H:%M:%S} UTC) holds the lock of connection "
                    f"{self.connection!r} on {self.url}; try again later"
                )
            self._sleep(min(LOCK_POLL_SECONDS, remaining))

    def _try_lock(self, owner: str, ttl: float) -> bool:
        now = self.now()
        expires = now + timedelta(seconds=ttl)
        c = t.lock.c
        try:
            with self._write() as conn:
                # One conditional UPDATE is atomic in every database: it takes
                # over an expired lock (or refreshes our own) or touches nothing.
                claimed = conn.execute(
                    update(t.lock)
                    .where(c.name == self.connection, or_(c.expires <= now, c.owner == owner))
                    .values(owner=owner, acquired=now, expires=expires)
                ).rowcount
                if claimed:
                    return True
                held = conn.execute(
                    select(func.count()).select_from(t.lock).where(c.name == self.connection)
                ).scalar()
                if held:
                    return False
                conn.execute(
                    insert(t.lock).values(name=self.connection, owner=owner, acquired=now,
                                          expires=expires)
                )
                return True
        except IntegrityError:
            return False  # another process inserted the row first

    def lock_holder(self) -> tuple[str, datetime] | None:
        """(owner, acquired) of the lock row, expired or not; None when nobody holds it."""
        with self._read() as conn:
            row = conn.execute(
                select(t.lock.c.owner, t.lock.c.acquired).where(t.lock.c.name == self.connection)
            ).first()
        return (row.owner, row.acquired) if row else None

    def heartbeat(self, owner: str, ttl: float = 900.0) -> None:
        """Push the lock's expiry ``ttl`` seconds ahead; LockHeld if we no longer hold it."""
        c = t.lock.c
        with self._write() as conn:
            extended = conn.execute(
                update(t.lock)
                .where(c.name == self.connection, c.owner == owner)
                .values(expires=self.now() + timedelta(seconds=ttl))
            ).rowcount
        if not extended:
            raise LockHeld(
                f"the lock on {self.url} is no longer held by {owner} (it expired and "
                "another run took it over); stopping"
            )

    def release_lock(self, owner: str) -> None:
        """Give the lock up; a no-op when ``owner`` does not hold it."""
        c = t.lock.c
        with self._write() as conn:
            conn.execute(delete(t.lock).where(c.name == self.connection, c.owner == owner))

    # ------------------------------------------------------------------ cached values

    def cached_value(self, name: str) -> tuple[str, datetime] | None:
        """The value kept under ``name`` for this connection and when it was kept
        (aware UTC), or None; what counts as fresh is the caller's business.

        ``meta`` is the store's own table (keys of at most 64 characters, no
        connection column): the key is a digest of connection and name, which
        scopes a value to this configuration and fits any name.
        """
        key = "cache:" + hashlib.sha256(f"{self.connection}\0{name}".encode()).hexdigest()[:40]
        with self._read() as conn:
            text = conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
        if text is None:
            return None
        try:
            kept = json.loads(text)
            return str(kept["value"]), datetime.fromisoformat(kept["at"]).astimezone(UTC)
        except (ValueError, KeyError, TypeError):
            return None   # unreadable: as if never kept, the caller reads afresh

    def keep_value(self, name: str, value: str, *, at: datetime) -> None:
        """Keep ``value`` under ``name`` for this connection, stamped ``at``; replaces."""
        key = "cache:" + hashlib.sha256(f"{self.connection}\0{name}".encode()).hexdigest()[:40]
        text = json.dumps({"at": _require_aware(at, "at").isoformat(), "value": value})
        try:
            with self._write() as conn:
                changed = conn.execute(
                    update(t.meta).where(t.meta.c.key == key).values(value=text)).rowcount
                if not changed:
                    conn.execute(insert(t.meta).values(key=key, value=text))
        except IntegrityError:
            pass  # another process kept it in between: a value as good as ours


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    # Take transaction control from pysqlite (it would BEGIN only before DML),
    # so _sqlite_on_begin decides how each transaction starts.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # Writers take the write lock up front (waiting up to busy_timeout): a
    # read transaction upgraded later would fail at once with SQLITE_BUSY
    # in WAL mode instead of waiting.
    if conn.get_execution_options().get("incident_sync_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


# --------------------------------------------------------------------------- pair


class PairTx:
    """The writes of one pair, in one transaction opened at the first write."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._conn: Connection | None = None
        self._done = False
        # What the store's row cache learns once this transaction has committed.
        self._on_commit: list[Callable[[], None]] = []

    def _connection(self) -> Connection:
        if self._done:
            raise RuntimeError("this pair transaction has already ended")
        if self._conn is None:
            self._store._guard_single_writer("a nested pair transaction")
            try:
                conn = self._store._engine.connect()
                conn.execution_options(incident_sync_write=True)
                conn.begin()
            except SQLAlchemyError as exc:
                raise StateStoreError(
                    f"state store {self._store.url}: {_db_reason(exc)}"
                ) from None
            self._conn = conn
            self._store._local.pair_open = True
        return self._conn

    def _end(self, *, commit: bool) -> None:
        self._done = True
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._store._local.pair_open = False
        try:
            if commit:
                conn.commit()
            else:
                conn.rollback()
        except SQLAlchemyError as exc:
            raise StateStoreError(f"state store {self._store.url}: {_db_reason(exc)}") from None
        finally:
            conn.close()
        if commit:
            for learn in self._on_commit:
                learn()

    @contextmanager
    def _step(self) -> Iterator[Connection]:
        conn = self._connection()
        try:
            yield conn
        except (IntegrityError, StateStoreError):
            raise
        except SQLAlchemyError as exc:
            raise StateStoreError(f"state store {self._store.url}: {_db_reason(exc)}") from None

    def save_link(
        self,
        sides: Mapping[str, LinkSide],
        *,
        hash: str | None,
        at: datetime | None = None,
        link: Link | None = None,
        new: bool = False,
    ) -> Link:
        """Insert the link of a pair from its sides (side -> :class:`LinkSide`), or
        update the link that holds either side's record.

        ``at`` stamps ``updated_at`` (the last committed sync), by default the
        store's clock; the engine passes its own, the clock it compares with the
        tools' edit times.

        What the caller knows saves the lookup: ``link``, the pair's link as
        read (its id and records), is updated in place when it still holds
        both records; ``new`` says the pair had no link when planned, so it is
        inserted straight away. Either way, when the database says otherwise
        (the link is gone, a record is linked already), the link is found by
        its records as without them: the hints cost statements, never
        correctness.

        Raises LinkConflict when the two records belong to two different links;
        the pair's transaction is then to be ended (it rolls back).
        """
        rows = self._side_rows(sides)
        updated_at = self._store.now() if at is None else _require_aware(at, "at")
        with self._step() as conn:
            saved: Link | None = None
            if link is not None and all(link.id_on(side) == rows[side]["record_id"]
                                        for side in SIDES):
                saved = self._update_link(conn, link.id, link.created_at, rows, hash,
                                          updated_at)
            elif new:
                saved = self._insert_link(conn, rows, hash, updated_at)
            if saved is None:
                saved = self._save_found(conn, sides, rows, hash, updated_at)
        return saved

    @staticmethod
    def _side_rows(sides: Mapping[str, LinkSide]) -> dict[str, dict[str, Any]]:
        """Each side's ``link_sides`` values (record id, display, version, canonical
        snapshot); ValueError when a side or its record id is missing."""
        if set(sides) != set(SIDES) or not all(sides[side].id for side in SIDES):
            raise ValueError(
                f"save_link needs a record id on each side ({', '.join(SIDES)}), got "
                f"{ {side: state.id for side, state in sides.items()} }"
            )
        return {
            side: {
                "record_id": sides[side].id,
                "display": sides[side].display or "",
                "version": sides[side].version,
                "snapshot": None if sides[side].snapshot is None
                else _canonical(dict(sides[side].snapshot), f"the {side} snapshot"),
            }
            for side in SIDES
        }

    @staticmethod
    def _link_of(link_id: int, rows: Mapping[str, Mapping[str, Any]], hash: str | None,
                 created_at: datetime, updated_at: datetime) -> Link:
        """The link as these rows store it (what reading it back would return)."""
        return Link(id=link_id, sides={
            side: LinkSide(id=rows[side]["record_id"], display=rows[side]["display"],
                           snapshot=_loads(rows[side]["snapshot"]), version=rows[side]["version"])
            for side in SIDES}, hash=hash, created_at=created_at, updated_at=updated_at)

    def _write_sides(self, conn: Connection, link_id: int,
                     rows: Mapping[str, Mapping[str, Any]]) -> None:
        """Both sides' rows of ``link_id`` in one upsert on (link_id, side).

        A record linked elsewhere violates the per-record uniqueness: LinkConflict.
        """
        connection = self._store.connection
        try:
            conn.execute(self._store._hot.upsert_sides, [
                {"link_id": link_id, "side": side, "connection": connection, **rows[side]}
                for side in SIDES])
        except IntegrityError:
            raise LinkConflict(self._race_text(rows)) from None

    @staticmethod
    def _race_text(rows: Mapping[str, Mapping[str, Any]]) -> str:
        return (f"{_pair_text({side: rows[side]['record_id'] for side in SIDES}, 'or')} "
                "was linked elsewhere by another writer at the same time; two records "
                "claim one link")

    def _update_link(self, conn: Connection, link_id: int, created_at: datetime,
                     rows: Mapping[str, Mapping[str, Any]], hash: str | None,
                     updated_at: datetime, *, holding: bool = True) -> Link | None:
        """Update the link known by id (two statements); None when it is gone or,
        with ``holding``, no longer holds these records (ids may be reused after a
        link is deleted). Without, the link was just found in this transaction."""
        hot = self._store._hot
        params = {"b_id": link_id, "b_connection": self._store.connection, "b_hash": hash,
                  "b_updated_at": updated_at}
        if holding:
            params.update({f"b_record_{side}": rows[side]["record_id"] for side in SIDES})
        changed = conn.execute(hot.update_held_link if holding else hot.update_link,
                               params).rowcount
        if not changed:
            return None
        self._write_sides(conn, link_id, rows)
        return self._link_of(link_id, rows, hash, created_at, updated_at)

    def _insert_link(self, conn: Connection, rows: Mapping[str, Mapping[str, Any]],
                     hash: str | None, updated_at: datetime) -> Link | None:
        """Insert a new link (two statements); None, with nothing left behind, when
        one of its records is linked already."""
        connection = self._store.connection
        hot = self._store._hot
        result = conn.execute(hot.insert_link, {
            "connection": connection, "hash": hash, "created_at": updated_at,
            "updated_at": updated_at})
        link_id = int(result.inserted_primary_key[0])
        # ON CONFLICT DO NOTHING: a record linked already is skipped instead of
        # failing the statement, which on PostgreSQL would abort the whole pair.
        # RETURNING tells the rows made (one statement for both: insertmanyvalues).
        inserted = hot.rows_made(conn.execute(hot.insert_sides, [
            {"link_id": link_id, "side": side, "connection": connection, **rows[side]}
            for side in SIDES]))
        if inserted == len(SIDES):
            return self._link_of(link_id, rows, hash, updated_at, updated_at)
        conn.execute(delete(t.link_sides).where(t.link_sides.c.link_id == link_id))
        conn.execute(delete(t.links).where(t.links.c.id == link_id))
        return None

    def _save_found(self, conn: Connection, sides: Mapping[str, LinkSide],
                    rows: Mapping[str, Mapping[str, Any]], hash: str | None,
                    updated_at: datetime) -> Link:
        """Find the link holding either record, then update it or insert a new one."""
        s, ln = t.link_sides.c, t.links.c
        held = conn.execute(
            select(s.link_id, s.side, s.record_id, ln.created_at)
            .join(t.links, ln.id == s.link_id)
            .where(s.link_id.in_(
                select(s.link_id).where(s.connection == self._store.connection, or_(*(
                    (s.side == side) & (s.record_id == rows[side]["record_id"])
                    for side in SIDES)))))
            .order_by(s.link_id, s.side)
        ).all()
        current: dict[int, dict[str, str]] = {}
        created: dict[int, datetime] = {}
        for row in held:
            current.setdefault(row.link_id, {})[row.side] = row.record_id
            created[row.link_id] = row.created_at
        if len(current) > 1:
            raise LinkConflict(self._conflict_text(sides, current))
        if not current:
            saved = self._insert_link(conn, rows, hash, updated_at)
            if saved is None:
                # Lost a race with another writer that linked one of the records.
                raise LinkConflict(self._race_text(rows))
            return saved
        [(link_id, was)] = current.items()
        now = {side: rows[side]["record_id"] for side in SIDES}
        if was != now:
            logger.warning("relinking: %s becomes %s", _pair_text(was), _pair_text(now))
        saved = self._update_link(conn, link_id, created[link_id], rows, hash, updated_at,
                                  holding=False)
        if saved is None:
            raise LinkConflict(self._race_text(rows))
        return saved

    @staticmethod
    def _conflict_text(sides: Mapping[str, LinkSide],
                       current: Mapping[int, Mapping[str, str]]) -> str:
        pairs = "; ".join(_pair_text(ids) for ids in current.values())
        wanted = _pair_text({side: sides[side].id for side in SIDES}, "and")
        return (
            f"two records claim one link: {wanted} are already linked elsewhere ({pairs}); "
            "fix the link fields on the records"
        )

    def add_comment_link(
        self,
        link_id: int,
        ids: Mapping[str, str],
        *,
        origin: str,
        visibility: str,
    ) -> None:
        """Remember that the comments ``ids`` (side -> comment id) are one; repeating the
        same call changes nothing."""
        origin = _side(origin)
        if set(ids) != set(SIDES) or not all(ids[side] for side in SIDES):
            raise ValueError(f"add_comment_link needs a comment id on each side "
                             f"({', '.join(SIDES)}), got {dict(ids)}")
        what = _pair_text(ids, "/", "comment ")
        s = t.comment_sides.c
        with self._step() as conn:
            self._store._rows.add("commented", self._store._load_commented, link_id)
            # Insert first: a new comment pair (the common case) is two statements.
            # A comment paired already makes the sides' insert skip (ON CONFLICT DO
            # NOTHING, which keeps a PostgreSQL transaction usable); then the new
            # row goes again and the pairs holding the comments are looked at.
            hot = self._store._hot
            try:
                result = conn.execute(hot.insert_comment_link, {
                    "link_id": link_id, "origin": origin, "visibility": visibility})
            except IntegrityError:
                raise StateStoreError(
                    f"state store {self._store.url}: no link {link_id} for {what}"
                ) from None
            comment_link_id = int(result.inserted_primary_key[0])
            inserted = hot.rows_made(conn.execute(hot.insert_comment_sides, [
                {"comment_link_id": comment_link_id, "link_id": link_id, "side": side,
                 "comment_id": ids[side]}
                for side in SIDES
            ]))
            if inserted == len(SIDES):
                return
            conn.execute(delete(t.comment_sides).where(s.comment_link_id == comment_link_id))
            conn.execute(delete(t.comment_links).where(t.comment_links.c.id == comment_link_id))
            rows = conn.execute(
                select(s.comment_link_id, s.side, s.comment_id)
                .where(s.comment_link_id.in_(
                    select(s.comment_link_id).where(s.link_id == link_id, or_(*(
                        (s.side == side) & (s.comment_id == ids[side]) for side in SIDES)))))
            ).all()
        paired: dict[int, dict[str, str]] = {}
        for row in rows:
            paired.setdefault(row.comment_link_id, {})[row.side] = row.comment_id
        if any(found == dict(ids) for found in paired.values()):
            return
        if paired:
            raise LinkConflict(
                f"{what} on link {link_id}: one of them is already paired with another "
                "comment"
            )
        raise StateStoreError(
            f"state store {self._store.url}: {what} on link {link_id} was paired "
            "concurrently")

    def complete_intent(self, intent_id: int) -> None:
        self.complete_intents([intent_id])

    def complete_intents(self, intent_ids: Iterable[int]) -> None:
        params = [{"b_id": intent_id} for intent_id in intent_ids]
        if params:
            with self._step() as conn:
                conn.execute(self._store._hot.complete_intent, params)

    def clear_retry(self, side: str, record_id: str) -> None:
        """Take the record out of the retry queue; no statement when it is not queued."""
        self.clear_retries([(side, record_id)])

    def clear_retries(self, records: Iterable[tuple[str, str]]) -> None:
        """Take these (side, record id) out of the retry queue, in one statement; none
        for the records that are not queued."""
        store = self._store
        rows = store._rows
        queued = [key for key in ((_side(side), record_id) for side, record_id in records)
                  if rows.holds("queued", store._load_queued, key)]
        if not queued:
            return
        with self._step() as conn:
            conn.execute(store._hot.delete_retry, [
                {"b_connection": store.connection, "b_side": side, "b_record_id": record_id}
                for side, record_id in queued])

        def learn() -> None:
            for key in queued:
                rows.discard("queued", key)
        self._on_commit.append(learn)

    def record_conflict(
        self,
        link_id: int,
        field: str,
        *,
        base: Any,
        values: Mapping[str, Any],
        resolution: str,
        policy: str,
        at: datetime,
        open: bool | None = None,
    ) -> None:
        """Record a conflict on one field of a pair; ``values`` is each side's value.

        ``open`` defaults to whether ``resolution`` means "waiting for a person"
        (:data:`OPEN_RESOLUTIONS`, e.g. "manual"). An open conflict replaces the
        open one already recorded for the same field, so a conflict seen on
        every run stays one row; a settled one is kept as history and closes
        any open one on that field.
        """
        is_open = resolution in OPEN_RESOLUTIONS if open is None else open
        if set(values) != set(SIDES):
            raise ValueError(f"record_conflict needs a value for each side "
                             f"({', '.join(SIDES)}), got one for {sorted(values)}")
        row = {
            "base": _loose_json(base),
            "side_values": _loose_json({_side(side): value for side, value in values.items()}),
            "resolution": resolution,
            "policy": policy,
            "at": _require_aware(at, "at"),
            "open": is_open,
        }
        c = t.conflicts.c
        same_field_open = (c.link_id == link_id, c.field == field, c.open.is_(True))
        cache, load = self._store._rows, self._store._load_open_conflicts
        # A link without an open conflict has none on this field to replace or close.
        had_open = cache.holds("open_conflicts", load, link_id)
        with self._step() as conn:
            if is_open:
                cache.add("open_conflicts", load, link_id)
                if had_open:
                    current = conn.execute(
                        select(c.id).where(*same_field_open).order_by(c.id.desc())
                    ).scalar()
                    if current is not None:
                        conn.execute(update(t.conflicts).where(c.id == current).values(**row))
                        return
            elif had_open:
                conn.execute(update(t.conflicts).where(*same_field_open).values(open=False))
            conn.execute(insert(t.conflicts).values(link_id=link_id, field=field, **row))

    def record_rule_firings(self, link_id: int, firings: Sequence[Mapping[str, Any]], *,
                            at: datetime) -> None:
        """Add the rule firings of one commit of a pair: mappings with ``rule``,
        ``field``, ``old``, ``new`` (JSON values) and optionally ``note_id``."""
        self.record_firings([(link_id, firings, at)])

    def record_firings(
        self, firings: Iterable[tuple[int, Sequence[Mapping[str, Any]], datetime]],
    ) -> None:
        """Add each (link id, firings, at) as :meth:`record_rule_firings` does, in one
        INSERT."""
        rows = []
        for link_id, fired, at in firings:
            if not fired:
                continue
            at = _require_aware(at, "at")
            rows.extend({"link_id": link_id, "rule": str(f["rule"]), "field": str(f["field"]),
                         "old": _loose_json(f.get("old")), "new": _loose_json(f.get("new")),
                         "note_id": f.get("note_id"), "at": at} for f in fired)
        if rows:
            with self._step() as conn:
                conn.execute(self._store._hot.insert_firings, rows)

    def set_rules_due(self, link_id: int, due_at: datetime | None) -> None:
        """When the pair's rules are next due by time alone (None: on no date)."""
        self.set_rules_due_of([(link_id, due_at)])

    def set_rules_due_of(self, dues: Iterable[tuple[int, datetime | None]]) -> None:
        """Each (link id, when its rules are next due by time alone): one upsert, one
        DELETE at most (most links are due on no date and have no row to delete)."""
        store = self._store
        cache, load = store._rows, store._load_rules_due
        keep: list[dict[str, Any]] = []
        drop: list[int] = []
        for link_id, due_at in dues:
            if due_at is not None:
                keep.append({"link_id": link_id, "due_at": _require_aware(due_at, "due_at")})
            elif cache.holds("rules_due", load, link_id):
                drop.append(link_id)
        if not keep and not drop:
            return
        with self._step() as conn:
            if drop:
                conn.execute(store._hot.delete_rules_due,
                             [{"b_link_id": link_id} for link_id in drop])
            if keep:
                for row in keep:
                    cache.add("rules_due", load, row["link_id"])
                conn.execute(store._hot.upsert_rules_due, keep)
        if drop:
            def learn() -> None:
                for link_id in drop:
                    cache.discard("rules_due", link_id)
            self._on_commit.append(learn)

    def close_conflicts(self, link_id: int, field: str) -> None:
        """Close the open conflicts on ``field``; no statement when the link has none."""
        if not self._store._rows.holds("open_conflicts", self._store._load_open_conflicts,
                                       link_id):
            return
        c = t.conflicts.c
        with self._step() as conn:
            conn.execute(
                update(t.conflicts)
                .where(c.link_id == link_id, c.field == field, c.open.is_(True))
                .values(open=False)
            )


# --------------------------------------------------------------------------- batch of pairs


@dataclass(frozen=True)
class LinkSave:
    """One pair's link for :meth:`PairsTx.save_links`: what :meth:`PairTx.save_link`
    takes, meaning the same."""

    sides: Mapping[str, LinkSide]
    hash: str | None
    at: datetime | None = None
    link: Link | None = None
    new: bool = False


@dataclass(frozen=True)
class ConflictNote:
    """One conflict for :meth:`PairsTx.record_conflicts`: what
    :meth:`PairTx.record_conflict` takes, meaning the same."""

    link_id: int
    field: str
    base: Any
    values: Mapping[str, Any]
    resolution: str
    policy: str
    at: datetime
    open: bool | None = None


class BatchRefused(StateStoreError):
    """A batch of pairs met what only each pair's own commit sorts out: end the
    block (all of it rolls back) and commit its pairs one by one."""


class PairsTx:
    """The commits of several pairs, in ONE transaction opened at the first write.

    Each method takes a list and sends one statement for all of it (executemany,
    INSERT ... RETURNING) where pair transactions send one each; what it leaves
    committed for a pair is what that pair's own :class:`PairTx` leaves. What a
    bulk statement cannot tell apart per pair raises :class:`BatchRefused`: a
    link known by id that is gone or no longer holds its records, a record or a
    comment paired already (another writer's race included), a link that is not
    there for a comment pair. A link found by its records (neither known by id
    nor new) is saved as a pair's commit saves it, in this transaction; its
    LinkConflict passes through. Either way the caller ends the block, which
    rolls everything back, and commits the pairs one by one: one bad pair fails
    alone and nothing is lost.
    """

    def __init__(self, store: StateStore, tx: PairTx | None = None) -> None:
        self._store = store
        # The connection and transaction, the row cache's updates on commit, and
        # the per-pair writes these lists fall back on.
        self._tx = PairTx(store) if tx is None else tx

    @classmethod
    def within(cls, tx: PairTx) -> PairsTx:
        """These list writes inside one pair's own transaction (a list of one pair
        writes what the pair's single writes would)."""
        return cls(tx._store, tx)

    def save_links(self, saves: Sequence[LinkSave]) -> list[Link]:
        """Each pair's link, as :meth:`PairTx.save_link` saves it; in ``saves``'s order.

        The links known by id: one UPDATE (checked: each still holds both its
        records) and one upsert of their sides. The new ones: one INSERT of the
        links returning their ids and one of their sides.
        """
        store = self._store
        prepared = [(save, PairTx._side_rows(save.sides),
                     store.now() if save.at is None else _require_aware(save.at, "at"))
                    for save in saves]
        held: list[int] = []
        new: list[int] = []
        for index, (save, rows, _) in enumerate(prepared):
            if save.link is not None and all(save.link.id_on(side) == rows[side]["record_id"]
                                             for side in SIDES):
                held.append(index)
            elif save.new:
                new.append(index)
        saved: dict[int, Link] = {}
        if held or new:
            with self._tx._step() as conn:
                if held:
                    self._update_held(conn, held, prepared, saved)
                if new:
                    self._insert_new(conn, new, prepared, saved)
        for index, (save, _, _) in enumerate(prepared):
            if index not in saved:   # found by its records, as a pair's commit does
                saved[index] = self._tx.save_link(save.sides, hash=save.hash, at=save.at,
                                                  link=save.link, new=save.new)
        return [saved[index] for index in range(len(prepared))]

    def _update_held(self, conn: Connection, held: list[int],
                     prepared: Sequence[tuple[LinkSave, dict[str, dict[str, Any]], datetime]],
                     saved: dict[int, Link]) -> None:
        hot, connection = self._store._hot, self._store.connection
        known: list[tuple[int, Link, dict[str, dict[str, Any]], str | None, datetime]] = []
        for index in held:
            save, rows, updated_at = prepared[index]
            assert save.link is not None
            known.append((index, save.link, rows, save.hash, updated_at))
        changed = conn.execute(hot.update_held_link, [
            {"b_id": link.id, "b_connection": connection, "b_hash": hash,
             "b_updated_at": updated_at,
             **{f"b_record_{side}": rows[side]["record_id"] for side in SIDES}}
            for _, link, rows, hash, updated_at in known]).rowcount
        if changed != len(known):
            raise BatchRefused(f"{len(known) - changed} of {len(known)} links known by id "
                               "are gone or hold other records now")
        try:
            conn.execute(hot.upsert_sides, [
                {"link_id": link.id, "side": side, "connection": connection, **rows[side]}
                for _, link, rows, _, _ in known for side in SIDES])
        except IntegrityError:
            raise BatchRefused("a record of these links was linked elsewhere") from None
        for index, link, rows, hash, updated_at in known:
            saved[index] = PairTx._link_of(link.id, rows, hash, link.created_at, updated_at)

    def _insert_new(self, conn: Connection, new: list[int],
                    prepared: Sequence[tuple[LinkSave, dict[str, dict[str, Any]], datetime]],
                    saved: dict[int, Link]) -> None:
        hot, connection = self._store._hot, self._store.connection
        params = [{"connection": connection, "hash": prepared[index][0].hash,
                   "created_at": prepared[index][2], "updated_at": prepared[index][2]}
                  for index in new]
        if hot.insert_links is not None:
            link_ids = [int(row[0]) for row in conn.execute(hot.insert_links, params)]
        else:   # SQLite before 3.35: one INSERT each, as a pair's commit does
            link_ids = [int(conn.execute(hot.insert_link, one).inserted_primary_key[0])
                        for one in params]
        # ON CONFLICT DO NOTHING keeps a PostgreSQL transaction usable; a row not
        # made means a record linked already.
        made = hot.rows_made(conn.execute(hot.insert_sides, [
            {"link_id": link_id, "side": side, "connection": connection,
             **prepared[index][1][side]}
            for link_id, index in zip(link_ids, new, strict=True) for side in SIDES]))
        if made != len(SIDES) * len(new):
            raise BatchRefused("a record of these new links is linked already")
        for link_id, index in zip(link_ids, new, strict=True):
            save, rows, updated_at = prepared[index]
            saved[index] = PairTx._link_of(link_id, rows, save.hash, updated_at, updated_at)

    def add_comment_links(self, pairs: Sequence[CommentLink]) -> None:
        """Remember each of these comment pairs (a :class:`CommentLink` each: link id,
        comment id per side, origin, visibility): one INSERT of the pairs, one of
        their sides. One paired already (even as itself) refuses the batch."""
        for pair in pairs:
            _side(pair.origin)
            if set(pair.ids) != set(SIDES) or not all(pair.ids[side] for side in SIDES):
                raise ValueError(f"add_comment_link needs a comment id on each side "
                                 f"({', '.join(SIDES)}), got {dict(pair.ids)}")
        if not pairs:
            return
        store = self._store
        hot = store._hot
        params = [{"link_id": pair.link_id, "origin": pair.origin,
                   "visibility": pair.visibility} for pair in pairs]
        with self._tx._step() as conn:
            for pair in pairs:
                store._rows.add("commented", store._load_commented, pair.link_id)
            try:
                if hot.insert_comment_links is not None:
                    made_ids = [int(row[0]) for row in conn.execute(hot.insert_comment_links,
                                                                    params)]
                else:
                    made_ids = [int(conn.execute(hot.insert_comment_link, one)
                                    .inserted_primary_key[0]) for one in params]
            except IntegrityError:
                raise BatchRefused("a link of these comment pairs is gone") from None
            made = hot.rows_made(conn.execute(hot.insert_comment_sides, [
                {"comment_link_id": made_id, "link_id": pair.link_id, "side": side,
                 "comment_id": pair.ids[side]}
                for made_id, pair in zip(made_ids, pairs, strict=True) for side in SIDES]))
            if made != len(SIDES) * len(pairs):
                raise BatchRefused("a comment of these pairs is paired already")

    def record_conflicts(self, notes: Iterable[ConflictNote]) -> None:
        """Record each conflict as :meth:`PairTx.record_conflict` does, in order (a
        conflict replaces or closes those before it on its field)."""
        for note in notes:
            self._tx.record_conflict(note.link_id, note.field, base=note.base,
                                     values=note.values, resolution=note.resolution,
                                     policy=note.policy, at=note.at, open=note.open)

    def close_conflicts(self, fields: Iterable[tuple[int, str]]) -> None:
        """Close the open conflicts on each (link id, field); no statement for a link
        the store knows has none."""
        for link_id, field in fields:
            self._tx.close_conflicts(link_id, field)

    def complete_intents(self, intent_ids: Iterable[int]) -> None:
        self._tx.complete_intents(intent_ids)

    def clear_retries(self, records: Iterable[tuple[str, str]]) -> None:
        """Take these (side, record id) out of the retry queue; no statement for the
        records that are not queued."""
        self._tx.clear_retries(records)

    def record_rule_firings(
        self, firings: Iterable[tuple[int, Sequence[Mapping[str, Any]], datetime]],
    ) -> None:
        """Add each (link id, firings, at) as :meth:`PairTx.record_rule_firings` does,
        in one INSERT."""
        self._tx.record_firings(firings)

    def set_rules_due(self, dues: Iterable[tuple[int, datetime | None]]) -> None:
        """Each (link id, when its rules are next due by time alone), as
        :meth:`PairTx.set_rules_due` keeps it: one upsert, one DELETE at most."""
        self._tx.set_rules_due_of(dues)
