"""Schema migrations of the state store: bring a store written by an older incident-sync up.

Contract:
- :func:`migrate` upgrades the store behind ``engine`` from the version it
  records in ``meta`` to :data:`sync.state_schema.SCHEMA_VERSION`, one step per
  version, all in ONE transaction: it either ends at the current version or
  changes nothing. Data is kept: a step drops only the constraints and indexes
  it replaces, and columns whose every value it has first copied to their new
  place (version 3 moves per-side columns into rows keyed by side).
- Concurrent openers are safe: the version is re-read under a write lock
  (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``SELECT ... FOR UPDATE`` on the
  version row), so the second process finds the store already migrated.
- Each step is one function named after what it does, registered in
  :data:`STEPS` under the version it reaches; the same step runs on SQLite
  (which cannot alter constraints, so tables are rebuilt with the documented
  create-copy-drop-rename procedure, foreign keys off) and on PostgreSQL
  (``ALTER TABLE``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.schema import CreateIndex, CreateTable

from sync import state_schema as t
from sync.state_schema import DEFAULT_CONNECTION, SCHEMA_VERSION

logger = logging.getLogger(__name__)

Step = Callable[[Connection, bool], None]


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _add_connection_column(conn: Connection, table: str) -> None:
    """``connection`` on every existing row = the default connection: a store made before
    connections existed belonged to the one configuration that used it."""
    conn.exec_driver_sql(
        f"ALTER TABLE {_quote(conn, table)} ADD COLUMN connection VARCHAR(64) "
        f"NOT NULL DEFAULT '{DEFAULT_CONNECTION}'"
    )


def _sqlite_rebuild(
    conn: Connection,
    name: str,
    *,
    drop_unique: list[set[str]],
    add_unique: list[tuple[str, list[str]]],
    primary_key: list[str] | None = None,
    drop_indexes: tuple[str, ...] = (),
) -> None:
    """Rebuild one SQLite table with a ``connection`` column and new uniqueness rules.

    SQLite has no ALTER for constraints. The table is copied as it is now
    (reflected, so columns another step added are kept), minus the unique
    constraints in ``drop_unique`` (given by their columns) and the indexes in
    ``drop_indexes``, plus ``connection`` and ``add_unique``.
    """
    inspector = inspect(conn)
    columns = inspector.get_columns(name)
    old_pk = inspector.get_pk_constraint(name)["constrained_columns"]
    uniques = [u for u in inspector.get_unique_constraints(name)
               if set(u["column_names"]) not in drop_unique]
    indexes = [i for i in inspector.get_indexes(name) if i["name"] not in drop_indexes]
    if inspector.get_foreign_keys(name):
        raise RuntimeError(f"table {name} has foreign keys; this rebuild does not copy them")
    pk = primary_key or old_pk
    new_name = f"{name}__migrating"
    # Not in t.metadata: the new table must not clash with the declared one.
    scratch = MetaData()
    new_columns: list[Any] = [
        Column("connection", t.String(64), nullable=False, server_default=DEFAULT_CONNECTION)
    ]
    for col in columns:
        default = col.get("default")
        new_columns.append(Column(
            col["name"], col["type"], nullable=col["nullable"],
            server_default=text(default) if default is not None else None,
        ))
    constraints: list[Any] = [PrimaryKeyConstraint(*pk)]
    constraints += [UniqueConstraint(*u["column_names"], name=u["name"]) for u in uniques]
    constraints += [UniqueConstraint(*cols, name=uname) for uname, cols in add_unique]
    table = Table(new_name, scratch, *new_columns, *constraints)
    conn.execute(CreateTable(table))
    names = ", ".join(_quote(conn, c["name"]) for c in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {_quote(conn, new_name)} ({names}) SELECT {names} FROM {_quote(conn, name)}"
    )
    conn.exec_driver_sql(f"DROP TABLE {_quote(conn, name)}")
    conn.exec_driver_sql(f"ALTER TABLE {_quote(conn, new_name)} RENAME TO {_quote(conn, name)}")
    renamed = Table(name, MetaData(), autoload_with=conn)
    for index in indexes:
        conn.execute(CreateIndex(Index(index["name"], *(renamed.c[c] for c in
                                                          index["column_names"]),
                                       unique=bool(index["unique"]))))


def _postgresql_replace_unique(
    conn: Connection, name: str, old: set[str], new_name: str, new_cols: list[str]
) -> None:
    for unique in inspect(conn).get_unique_constraints(name):
        if set(unique["column_names"]) == old:
            conn.exec_driver_sql(
                f"ALTER TABLE {_quote(conn, name)} DROP CONSTRAINT {_quote(conn, unique['name'])}"
            )
    cols = ", ".join(_quote(conn, c) for c in new_cols)
    conn.exec_driver_sql(
        f"ALTER TABLE {_quote(conn, name)} ADD CONSTRAINT {_quote(conn, new_name)} UNIQUE ({cols})"
    )


def scope_by_connection(conn: Connection, is_sqlite: bool) -> None:
    """Version 2: several configurations share one store, each seeing only its own rows.

    Links, intents, the retry queue, watermarks and runs get a ``connection``
    column (existing rows: "default"); links and retry items are unique per
    connection, watermarks keyed by (connection, side); the lock row of the
    old single lock ("sync") becomes the default connection's.
    """
    if is_sqlite:
        _sqlite_rebuild(
            conn, "links", drop_unique=[{"servicenow_id"}, {"jira_key"}],
            add_unique=[("uq_links_connection_servicenow", ["connection", "servicenow_id"]),
                        ("uq_links_connection_jira", ["connection", "jira_key"])],
        )
        _sqlite_rebuild(
            conn, "retry_queue", drop_unique=[{"side", "record_id"}],
            add_unique=[("uq_retry_connection_record", ["connection", "side", "record_id"])],
            drop_indexes=("ix_retry_due",),
        )
        _sqlite_rebuild(conn, "watermarks", drop_unique=[], add_unique=[],
                        primary_key=["connection", "side"])
    else:
        _add_connection_column(conn, "links")
        _postgresql_replace_unique(conn, "links", {"servicenow_id"},
                                   "uq_links_connection_servicenow",
                                   ["connection", "servicenow_id"])
        _postgresql_replace_unique(conn, "links", {"jira_key"}, "uq_links_connection_jira",
                                   ["connection", "jira_key"])
        _add_connection_column(conn, "retry_queue")
        _postgresql_replace_unique(conn, "retry_queue", {"side", "record_id"},
                                   "uq_retry_connection_record",
                                   ["connection", "side", "record_id"])
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_retry_due")
        _add_connection_column(conn, "watermarks")
        pk_name = inspect(conn).get_pk_constraint("watermarks")["name"]
        conn.exec_driver_sql(f"ALTER TABLE watermarks DROP CONSTRAINT {_quote(conn, pk_name)}")
        conn.exec_driver_sql("ALTER TABLE watermarks ADD PRIMARY KEY (connection, side)")
    # Plain column additions need no rebuild, on either database.
    _add_connection_column(conn, "intents")
    _add_connection_column(conn, "runs")
    for index in (*t.retry_queue.indexes, *t.intents.indexes):
        if index.name in ("ix_retry_connection_due", "ix_intents_connection"):
            conn.execute(CreateIndex(index))
    conn.execute(update(t.lock).where(t.lock.c.name == "sync").values(name=DEFAULT_CONNECTION))


# ---------------------------------------------------------------- version 3

# The sides of a pair and what version 2 called their columns: the one place
# outside the tests that still names them, because the step below reads them.
_V2_SIDES = ("servicenow", "jira")
_V2_ID = {"servicenow": "servicenow_id", "jira": "jira_key"}
_V2_COMMENT_ID = {"servicenow": "servicenow_comment_id", "jira": "jira_comment_id"}


def _v3_tables() -> MetaData:
    """The tables step 3 creates or reshapes, as version 3 has them.

    Frozen here rather than taken from :mod:`sync.state_schema`, so a later
    version changing those tables does not change what this step builds.
    """
    md = MetaData()
    Table("links", md,
          Column("id", t.Integer, primary_key=True, autoincrement=True),
          Column("connection", t.String(64), nullable=False, server_default=DEFAULT_CONNECTION),
          Column("hash", t.String(128), nullable=True),
          Column("created_at", t.UTCDateTime, nullable=False),
          Column("updated_at", t.UTCDateTime, nullable=False))
    Table("link_sides", md,
          Column("link_id", t.Integer, ForeignKey("links.id", ondelete="CASCADE"),
                 nullable=False),
          Column("side", t.String(32), nullable=False),
          Column("connection", t.String(64), nullable=False),
          Column("record_id", t.String(255), nullable=False),
          Column("display", t.Text, nullable=False),
          Column("version", t.String(255), nullable=True),
          Column("snapshot", t.Text, nullable=True),
          PrimaryKeyConstraint("link_id", "side", name="pk_link_sides"),
          UniqueConstraint("connection", "side", "record_id", name="uq_link_sides_record"))
    Table("comment_links", md,
          Column("id", t.Integer, primary_key=True, autoincrement=True),
          Column("link_id", t.Integer, ForeignKey("links.id", ondelete="CASCADE"),
                 nullable=False, index=True),
          Column("origin", t.String(32), nullable=False),
          Column("visibility", t.String(32), nullable=False))
    Table("comment_sides", md,
          Column("comment_link_id", t.Integer,
                 ForeignKey("comment_links.id", ondelete="CASCADE"), nullable=False),
          Column("link_id", t.Integer, ForeignKey("links.id", ondelete="CASCADE"),
                 nullable=False),
          Column("side", t.String(32), nullable=False),
          Column("comment_id", t.String(255), nullable=False),
          PrimaryKeyConstraint("comment_link_id", "side", name="pk_comment_sides"),
          UniqueConstraint("link_id", "side", "comment_id", name="uq_comment_sides_comment"))
    Table("conflicts", md,
          Column("id", t.Integer, primary_key=True, autoincrement=True),
          Column("link_id", t.Integer, ForeignKey("links.id", ondelete="CASCADE"),
                 nullable=False, index=True),
          Column("field", t.String(255), nullable=False),
          Column("base", t.Text, nullable=False),
          Column("side_values", t.Text, nullable=False),
          Column("resolution", t.String(64), nullable=False),
          Column("policy", t.String(64), nullable=False),
          Column("at", t.UTCDateTime, nullable=False),
          Column("open", t.Boolean, nullable=False))
    return md


def _side_values_sql(conn: Connection) -> str:
    """SQL building a conflict's ``side_values`` from its two version-2 value columns.

    Each of those already holds canonical JSON text, so joining them as the
    members of an object with sorted keys gives exactly the canonical JSON the
    store writes for {side: value}; `||` concatenates on both databases.
    """
    members = [f"'\"{side}\":' || {_quote(conn, side + '_value')}"
               for side in sorted(_V2_SIDES)]
    return "'{' || " + " || ',' || ".join(members) + " || '}'"


def _sqlite_reshape(conn: Connection, v3: MetaData, name: str, select_sql: str) -> None:
    """Replace SQLite table ``name`` by its version-3 shape, filled by ``select_sql``
    (rows in the new column order): SQLite's create-copy-drop-rename procedure."""
    new_name = f"{name}__migrating"
    scratch = MetaData()
    for other in v3.tables.values():  # the tables its foreign keys name
        if other.name != name:
            other.to_metadata(scratch)
    table = v3.tables[name].to_metadata(scratch, name=new_name)
    conn.execute(CreateTable(table))
    columns = ", ".join(_quote(conn, c.name) for c in table.columns)
    conn.exec_driver_sql(f"INSERT INTO {_quote(conn, new_name)} ({columns}) {select_sql}")
    conn.exec_driver_sql(f"DROP TABLE {_quote(conn, name)}")
    conn.exec_driver_sql(f"ALTER TABLE {_quote(conn, new_name)} RENAME TO {_quote(conn, name)}")
    for index in v3.tables[name].indexes:
        conn.execute(CreateIndex(index))


def keep_sides_as_rows(conn: Connection, is_sqlite: bool) -> None:
    """Version 3: per-side link state in rows keyed by side, no vendor-named columns.

    Each link's two records (id, display, version, snapshot) move to two
    ``link_sides`` rows, each comment pair's two ids to two ``comment_sides``
    rows, and a conflict's two values into one side-keyed JSON object
    (``side_values``); the links, comment pairs and conflicts keep their ids,
    so nothing that points at them changes. Every value is copied as stored.
    """
    v3 = _v3_tables()
    for name in ("link_sides", "comment_sides"):
        conn.execute(CreateTable(v3.tables[name]))
    for side in _V2_SIDES:
        conn.exec_driver_sql(
            "INSERT INTO link_sides (link_id, side, connection, record_id, display, version, "
            f"snapshot) SELECT id, '{side}', connection, {_quote(conn, _V2_ID[side])}, "
            f"{_quote(conn, side + '_display')}, {_quote(conn, 'version_' + side)}, "
            f"{_quote(conn, 'snapshot_' + side)} FROM links"
        )
        conn.exec_driver_sql(
            "INSERT INTO comment_sides (comment_link_id, link_id, side, comment_id) "
            f"SELECT id, link_id, '{side}', {_quote(conn, _V2_COMMENT_ID[side])} "
            "FROM comment_links"
        )
    side_values = _side_values_sql(conn)
    if is_sqlite:
        # `links` goes first: the others' rebuilds must not find it half made.
        _sqlite_reshape(conn, v3, "links",
                        "SELECT id, connection, hash, created_at, updated_at FROM links")
        _sqlite_reshape(conn, v3, "comment_links",
                        "SELECT id, link_id, origin, visibility FROM comment_links")
        _sqlite_reshape(conn, v3, "conflicts",
                        f"SELECT id, link_id, field, base, {side_values}, resolution, policy, "
                        f"at, {_quote(conn, 'open')} FROM conflicts")
        return
    # PostgreSQL drops a column's constraints and indexes with it.
    for side in _V2_SIDES:
        for column in (_V2_ID[side], f"{side}_display", f"snapshot_{side}", f"version_{side}"):
            conn.exec_driver_sql(f"ALTER TABLE links DROP COLUMN {_quote(conn, column)}")
        conn.exec_driver_sql(
            f"ALTER TABLE comment_links DROP COLUMN {_quote(conn, _V2_COMMENT_ID[side])}"
        )
    conn.exec_driver_sql("ALTER TABLE conflicts ADD COLUMN side_values TEXT")
    conn.exec_driver_sql(f"UPDATE conflicts SET side_values = {side_values}")
    conn.exec_driver_sql("ALTER TABLE conflicts ALTER COLUMN side_values SET NOT NULL")
    for side in _V2_SIDES:
        conn.exec_driver_sql(
            f"ALTER TABLE conflicts DROP COLUMN {_quote(conn, side + '_value')}"
        )


# ---------------------------------------------------------------- version 4

def remember_rule_firings(conn: Connection, is_sqlite: bool) -> None:
    """Version 4: the rules' firings per link and when a link's rules are next due.

    Two new tables referencing ``links.id`` only; nothing existing changes.
    Links synced before have no due date: their time-based rules run the next
    time either record changes, and from then on on time.
    """
    for table in (t.rule_firings, t.link_rules):
        conn.execute(CreateTable(table))
        for index in table.indexes:
            conn.execute(CreateIndex(index))


# Version reached -> the step that reaches it from the version before.
STEPS: dict[int, Step] = {
    2: scope_by_connection,
    3: keep_sides_as_rows,
    4: remember_rule_firings,
}


def stored_version(conn: Connection, *, for_update: bool = False) -> int | None:
    query = select(t.meta.c.value).where(t.meta.c.key == "schema_version")
    if for_update:
        query = query.with_for_update()
    stored = conn.execute(query).scalar_one_or_none()
    try:
        return int(stored) if stored is not None else None
    except ValueError:
        return None


def migrate(engine: Engine, *, is_sqlite: bool) -> int | None:
    """Upgrade the store to SCHEMA_VERSION; returns the version found before (None: nothing
    to do)."""
    with engine.connect() as conn:
        if is_sqlite:
            # SQLite ignores this pragma inside a transaction, and with foreign keys on,
            # dropping `links` during its rebuild would cascade-delete comment links and
            # conflicts; so it is set before BEGIN, on the raw connection.
            conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                "PRAGMA foreign_keys = OFF"
            )
        try:
            conn.execution_options(incident_sync_write=True)
            with conn.begin():
                found = stored_version(conn, for_update=not is_sqlite)
                if found is None or found >= SCHEMA_VERSION:
                    return None
                for version in range(found + 1, SCHEMA_VERSION + 1):
                    logger.info("state store: migrating schema to version %d (%s)",
                                version, t.MIGRATIONS[version])
                    STEPS[version](conn, is_sqlite)
                if is_sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration broke {len(broken)} foreign keys")
                conn.execute(update(t.meta).where(t.meta.c.key == "schema_version")
                             .values(value=str(SCHEMA_VERSION)))
                return found
        finally:
            if is_sqlite:
                conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
                    "PRAGMA foreign_keys = ON"
                )
