"""A schema-2 store, as a user's incident-sync left it, is upgraded to schema 3 keeping every row.

The store under test is ``tests/data/state-schema2.sqlite``, written through the
public state API of the last version that wrote schema 2 (commit 33c7977) by
``tests/data/make_state_schema2.py`` (its docstring says how to regenerate it).
On SQLite a copy of that file is opened; on PostgreSQL the same rows are loaded
into the schema-2 layout (:func:`version_2_tables`, as that version created it)
and then opened. Every test runs on both databases (``state_url``, see conftest).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from db_helpers import dump, run_sql
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    make_url,
)

from sync.errors import StateSchemaError
from sync.state import SCHEMA_VERSION, LinkConflict, LinkSide, StateStore, StateStoreError

SCHEMA2_STORE = Path(__file__).parent / "data" / "state-schema2.sqlite"
SN1 = "9d385017c611228701d22104cc95c371"
SN2 = "46d44a4fa9fe198101d8bfaaf1c5d1d1"


def at(second: int, minute: int = 0, hour: int = 9, micro: int = 0) -> datetime:
    return datetime(2026, 3, 1, hour, minute, second, micro, tzinfo=UTC)


def version_2_tables() -> MetaData:
    """The schema incident-sync wrote at version 2, as it was (commit 33c7977)."""
    md = MetaData()
    conn = {"server_default": "default", "nullable": False}
    Table("meta", md, Column("key", String(64), primary_key=True),
          Column("value", Text, nullable=False))
    Table("links", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("connection", String(64), **conn),
          Column("servicenow_id", String(255), nullable=False),
          Column("jira_key", String(255), nullable=False),
          Column("servicenow_display", Text, nullable=False),
          Column("jira_display", Text, nullable=False),
          Column("snapshot_servicenow", Text), Column("snapshot_jira", Text),
          Column("version_servicenow", String(255)), Column("version_jira", String(255)),
          Column("hash", String(128)),
          Column("created_at", DateTime, nullable=False),
          Column("updated_at", DateTime, nullable=False),
          UniqueConstraint("connection", "servicenow_id", name="uq_links_connection_servicenow"),
          UniqueConstraint("connection", "jira_key", name="uq_links_connection_jira"))
    Table("comment_links", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"),
                 nullable=False, index=True),
          Column("servicenow_comment_id", String(255), nullable=False),
          Column("jira_comment_id", String(255), nullable=False),
          Column("origin", String(32), nullable=False),
          Column("visibility", String(32), nullable=False),
          UniqueConstraint("link_id", "servicenow_comment_id", name="uq_comment_servicenow"),
          UniqueConstraint("link_id", "jira_comment_id", name="uq_comment_jira"))
    Table("intents", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("connection", String(64), **conn),
          Column("source_side", String(32), nullable=False),
          Column("source_id", String(255), nullable=False),
          Column("target_side", String(32), nullable=False),
          Column("created_at", DateTime, nullable=False),
          Column("completed", Boolean, nullable=False),
          Index("ix_intents_pending", "completed", "source_side", "source_id"),
          Index("ix_intents_connection", "connection", "completed"))
    Table("retry_queue", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("connection", String(64), **conn),
          Column("side", String(32), nullable=False),
          Column("record_id", String(255), nullable=False),
          Column("attempts", Integer, nullable=False),
          Column("last_error", Text, nullable=False),
          Column("next_attempt", DateTime, nullable=False),
          Column("parked", Boolean, nullable=False),
          UniqueConstraint("connection", "side", "record_id", name="uq_retry_connection_record"),
          Index("ix_retry_connection_due", "connection", "side", "parked", "next_attempt"))
    Table("conflicts", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("link_id", Integer, ForeignKey("links.id", ondelete="CASCADE"),
                 nullable=False, index=True),
          Column("field", String(255), nullable=False),
          Column("base", Text, nullable=False),
          Column("servicenow_value", Text, nullable=False),
          Column("jira_value", Text, nullable=False),
          Column("resolution", String(64), nullable=False),
          Column("policy", String(64), nullable=False),
          Column("at", DateTime, nullable=False),
          Column("open", Boolean, nullable=False))
    Table("watermarks", md,
          Column("connection", String(64), primary_key=True),
          Column("side", String(32), primary_key=True),
          Column("value", DateTime, nullable=False))
    Table("runs", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("connection", String(64), **conn),
          Column("command", String(64), nullable=False),
          Column("started", DateTime, nullable=False),
          Column("finished", DateTime), Column("counts", Text, nullable=False),
          Column("outcome", String(64)), Column("error", Text))
    Table("lock", md, Column("name", String(64), primary_key=True),
          Column("owner", String(255), nullable=False),
          Column("acquired", DateTime, nullable=False),
          Column("expires", DateTime, nullable=False))
    return md


def load_schema2_store(url: str) -> None:
    """Put the committed schema-2 store at ``url``: the file itself on SQLite, its rows in
    the schema-2 layout on PostgreSQL."""
    if url.startswith("sqlite"):
        shutil.copyfile(SCHEMA2_STORE, str(make_url(url).database))
        return
    md = version_2_tables()
    source = create_engine(f"sqlite:///{SCHEMA2_STORE}")
    target = create_engine(url)
    try:
        with source.connect() as read, target.begin() as write:
            md.create_all(write)
            for table in md.sorted_tables:
                rows = [dict(row) for row in read.execute(table.select()).mappings()]
                if rows:
                    write.execute(table.insert(), rows)
            for name, table in md.tables.items():
                if "id" in table.c:
                    # Ids were copied as they were: move each sequence on past them.
                    write.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
    finally:
        source.dispose()
        target.dispose()


def sides(link: Any) -> dict[str, tuple[str, str, Any, Any]]:
    return {side: (s.id, s.display, s.snapshot, s.version) for side, s in link.sides.items()}


SNAPSHOT = {"assignee": None, "labels": ["floor-3", "hw"], "title": "Printer down", "urgency": 2}


def test_a_schema_2_store_is_upgraded_keeping_every_row(state_url: str) -> None:
    load_schema2_store(state_url)
    with StateStore(state_url) as ops, StateStore(state_url, connection="hr") as hr:
        one, two = ops.all_links()
        assert (one.id, two.id) == (1, 2)
        assert sides(one) == {
            "servicenow": (SN1, "INC0010001", SNAPSHOT, "2026-03-01 09:00:00"),
            "jira": ("OPS-1", "OPS-1 Ümlaut «printer» down", SNAPSHOT,
                     "2026-03-01T09:00:00.000+0000"),
        }
        assert (one.hash, one.created_at, one.updated_at) == ("a" * 64, at(1), at(1))
        assert sides(two) == {"servicenow": (SN2, "", None, None),
                              "jira": ("OPS-2", "", None, None)}
        assert (two.hash, two.created_at, two.updated_at) == (None, at(0, 5), at(0, 5))
        [shared] = hr.all_links()
        assert shared.id == 3 and sides(shared) == {
            "servicenow": (SN1, "INC0010001", {"title": "Printer down"}, "3"),
            "jira": ("HR-7", "HR-7", {"title": "Printer"}, "4"),
        }
        assert (shared.hash, shared.created_at) == ("b" * 64, at(2))

        def comments(link_id: int) -> list[tuple[dict[str, str], str, str]]:
            return [(dict(c.ids), c.origin, c.visibility) for c in ops.comment_links(link_id)]

        assert comments(1) == [({"servicenow": "c1a2b3", "jira": "10001"}, "servicenow", "public"),
                               ({"servicenow": "c4d5e6", "jira": "10002"}, "jira", "internal")]
        assert comments(2) == [({"servicenow": "c7f8a9", "jira": "10003"}, "servicenow",
                                "internal")]
        assert comments(3) == [({"servicenow": "c1a2b3", "jira": "20001"}, "servicenow", "public")]

        def conflicts(store: StateStore) -> list[tuple[Any, ...]]:
            return [(c.id, c.link_id, c.field, c.base, dict(c.values), c.resolution, c.policy,
                     c.at, c.open) for c in store.conflicts()]

        assert conflicts(ops) == [
            (1, 1, "urgency", 2, {"servicenow": 1, "jira": 3}, "manual", "manual", at(3), True),
            (2, 2, "labels", ["a"], {"servicenow": ["a", "b"], "jira": None}, "servicenow",
             "servicenow_wins", at(4), False),
            (3, 2, "title", "x", {"servicenow": "ü", "jira": {"text": "y"}}, "manual", "manual",
             at(5), True),
        ]
        assert conflicts(hr) == [
            (4, 3, "priority", "P3", {"servicenow": "P1", "jira": "P2"}, "jira", "person", at(7),
             True),
        ]
        # Everything the step does not reshape is as it was.
        assert [(i.id, i.source_side, i.source_id, i.target_side, i.created_at)
                for i in ops.pending_intents()] == [
            (1, "servicenow", "e5b0c7f1a9d34cf1b2a3c4d5e6f7a8b9", "jira", at(8))]
        assert [i.source_id for i in hr.pending_intents()] == ["HR-8"]
        assert [(r.side, r.record_id, r.attempts, r.last_error, r.next_attempt, r.parked)
                for r in ops.retry_items()] == [
            ("jira", "OPS-3", 1, "503 Service Unavailable", at(21, 1, micro=405165), False)]
        assert [(r.record_id, r.attempts, r.parked) for r in hr.retry_items()] == [
            ("0a1b2c", 3, True)]
        assert (ops.watermark("servicenow"), ops.watermark("jira")) == (at(0, 0, 10),
                                                                       at(0, 0, 11))
        assert (hr.watermark("servicenow"), hr.watermark("jira")) == (None, at(0, 0, 12))
        [run] = ops.runs()
        assert (run.command, run.started, run.finished, run.counts, run.outcome) == (
            "run", at(15), at(16), {"created": 2, "updated": 1}, "ok")
        assert [(r.command, r.finished) for r in hr.runs()] == [("reconcile", None)]
        assert ops.lock_holder() == ("ops-host:4242", at(19))
        assert hr.lock_holder() is None
    [(version,)] = run_sql(state_url, "select value from meta where key='schema_version'")
    # The committed store is carried through every later step too (4: the rules' tables).
    assert version == str(SCHEMA_VERSION) == "4"
    # Conflict values are stored in the store's canonical form, as a new write would be.
    assert run_sql(state_url, "select side_values from conflicts where id = 3") == [
        ('{"jira":{"text":"y"},"servicenow":"ü"}',)]
    assert run_sql(state_url, "select count(*) from link_sides") == [(6,)]
    assert run_sql(state_url, "select count(*) from comment_sides") == [(8,)]


def test_an_upgraded_store_keeps_its_guarantees(state_url: str) -> None:
    load_schema2_store(state_url)
    with StateStore(state_url) as ops, StateStore(state_url, connection="hr") as hr:
        # A record linked twice in one connection is still refused...
        with pytest.raises(LinkConflict, match="two records claim one link"), \
                ops.pair() as tx:
            tx.save_link({"servicenow": LinkSide(SN2, "", None, None),
                          "jira": LinkSide("OPS-1", "", None, None)}, hash=None)
        # ...a new link gets the next id, and another connection may link the same record.
        with ops.pair() as tx:
            new = tx.save_link({"servicenow": LinkSide("sn-new", "INC9", {"a": 1}, "1"),
                                "jira": LinkSide("OPS-9", "OPS-9", {"a": 1}, "1")}, hash="h")
        assert new.id == 4
        with hr.pair() as tx:
            tx.save_link({"servicenow": LinkSide(SN2, "", None, None),
                          "jira": LinkSide("HR-9", "", None, None)}, hash=None)
        # Comment pairs and open conflicts carry on as before the upgrade.
        with ops.pair() as tx:
            tx.add_comment_link(1, {"servicenow": "c1a2b3", "jira": "10001"},
                                origin="servicenow", visibility="public")
            tx.record_conflict(1, "urgency", base=2, values={"servicenow": 1, "jira": 4},
                               resolution="manual", policy="manual", at=at(30))
        assert len(ops.comment_links(1)) == 2
        [urgency] = [c for c in ops.open_conflicts() if c.field == "urgency"]
        assert (urgency.id, urgency.value_on("jira")) == (1, 4)
        assert ops.links_by("servicenow", [SN1, SN2])[SN1].id_on("jira") == "OPS-1"


def test_a_failed_upgrade_changes_nothing(state_url: str) -> None:
    load_schema2_store(state_url)
    # Make the step's last statements fail, after it has moved the link sides.
    if state_url.startswith("sqlite"):
        run_sql(state_url, "create table conflicts__migrating (id integer)")
    else:
        run_sql(state_url, "alter table conflicts add column side_values text")
    before = dump(state_url)
    with pytest.raises(StateStoreError, match=f"upgrading its schema to version "
                                              f"{SCHEMA_VERSION} failed, nothing was changed"):
        StateStore(state_url)
    assert dump(state_url) == before


def test_a_store_newer_than_this_version_is_still_refused(state_url: str) -> None:
    load_schema2_store(state_url)
    run_sql(state_url, "update meta set value = :v where key = 'schema_version'",
            v=str(SCHEMA_VERSION + 1))
    before = dump(state_url)
    with pytest.raises(StateSchemaError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        StateStore(state_url)
    assert dump(state_url) == before
