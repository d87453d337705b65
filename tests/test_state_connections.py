"""Several configurations share one store by connection name; older stores are migrated.

Every test runs on SQLite and PostgreSQL (``state_url``, see conftest).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from db_helpers import run_sql
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
)

from sync.errors import LockHeld
from sync.state import SCHEMA_VERSION, LinkSide, StateStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def save(store: StateStore, sn: str, key: str) -> Any:
    with store.pair() as tx:
        return tx.save_link(
            {
                "servicenow": LinkSide(id=sn, display=sn, snapshot={"title": sn}, version="1"),
                "jira": LinkSide(id=key, display=key, snapshot={"title": key}, version="1"),
            },
            hash=None,
        )


# ------------------------------------------------------------------ scoping


def test_two_connections_on_one_store_never_see_each_others_rows(state_url: str) -> None:
    with StateStore(state_url, connection="ops", clock=lambda: T0) as ops, \
            StateStore(state_url, connection="hr", clock=lambda: T0) as hr:
        ops_link = save(ops, "sn1", "OPS-1")
        # The same ServiceNow record may be linked by another configuration.
        hr_link = save(hr, "sn1", "HR-1")
        assert ops.link_by("servicenow", "sn1").id_on("jira") == "OPS-1"  # type: ignore[union-attr]
        assert hr.link_by("servicenow", "sn1").id_on("jira") == "HR-1"  # type: ignore[union-attr]
        assert ops.link_by("jira", "HR-1") is None and ops.link_by_id(hr_link.id) is None
        assert [link.id_on("jira") for link in hr.all_links()] == ["HR-1"]
        assert set(ops.links_by("servicenow", ["sn1"])) == {"sn1"}

        ops.record_intent("servicenow", "sn2", "jira")
        ops.record_failure("servicenow", "sn3", "boom", now=T0, base_seconds=1,
                           max_attempts=3)
        ops.set_watermark("jira", T0)
        run = ops.start_run("run", T0)
        with ops.pair() as tx:
            tx.record_conflict(
                ops_link.id,
                "title",
                base="a",
                values={"servicenow": "b", "jira": "c"},
                resolution="manual",
                policy="manual",
                at=T0,
            )
        assert hr.pending_intents() == [] and hr.retry_items() == []
        assert hr.due_retries("servicenow", T0 + timedelta(hours=1)) == []
        assert hr.watermark("jira") is None and hr.runs() == []
        assert hr.open_conflicts() == [] and hr.conflicts() == []
        assert len(ops.open_conflicts()) == 1 and [r.id for r in ops.runs()] == [run]

        # Clearing a retry item in one connection leaves the other's alone.
        hr.record_failure("servicenow", "sn3", "hr boom", now=T0, base_seconds=1,
                          max_attempts=3)
        with hr.pair() as tx:
            tx.clear_retry("servicenow", "sn3")
        assert [r.last_error for r in ops.retry_items()] == ["boom"]


def test_the_run_lock_is_per_connection(state_url: str) -> None:
    with StateStore(state_url, connection="ops") as ops, \
            StateStore(state_url, connection="hr") as hr, \
            StateStore(state_url, connection="ops") as ops_again:
        ops.acquire_lock("host-a:1")
        hr.acquire_lock("host-b:2")  # another configuration runs alongside
        with pytest.raises(LockHeld, match=r"owner host-a:1.*lock of connection 'ops'"):
            ops_again.acquire_lock("host-c:3")
        assert hr.lock_holder()[0] == "host-b:2"  # type: ignore[index]
        ops.release_lock("host-a:1")
        ops_again.acquire_lock("host-c:3")


def test_connection_name_is_checked() -> None:
    with pytest.raises(ValueError, match="connection name must be 1-64 characters"):
        StateStore("sqlite://", connection="")


# ------------------------------------------------------------------ workers starting together


OPEN_AND_LINK = (
    "import sys\n"
    "from sync.state import LinkSide, StateStore\n"
    "with StateStore(sys.argv[1], connection=sys.argv[2]) as store:\n"
    "    with store.pair() as tx:\n"
    "        tx.save_link({'servicenow': LinkSide('sn1', '', None, None),\n"
    "                      'jira': LinkSide(sys.argv[2], '', None, None)}, hash=None)\n"
)


def test_workers_opening_one_fresh_store_together_all_succeed(state_url: str) -> None:
    # No schema yet: every process tries to create it at the same moment.
    children = [
        subprocess.Popen([sys.executable, "-c", OPEN_AND_LINK, state_url, f"C-{n}"],
                         stderr=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    for n in range(4):
        with StateStore(state_url, connection=f"C-{n}") as store:
            assert [link.id_on('jira') for link in store.all_links()] == [f"C-{n}"]


# ------------------------------------------------------------------ migration


def version_1_tables() -> MetaData:
    """The schema incident-sync 0.1 wrote (version 1), as it was."""
    md = MetaData()
    Table("meta", md, Column("key", String(64), primary_key=True),
          Column("value", Text, nullable=False))
    Table("links", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("servicenow_id", String(255), nullable=False, unique=True),
          Column("jira_key", String(255), nullable=False, unique=True),
          Column("servicenow_display", Text, nullable=False),
          Column("jira_display", Text, nullable=False),
          Column("snapshot_servicenow", Text), Column("snapshot_jira", Text),
          Column("version_servicenow", String(255)), Column("version_jira", String(255)),
          Column("hash", String(128)),
          Column("created_at", DateTime, nullable=False),
          Column("updated_at", DateTime, nullable=False))
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
          Column("source_side", String(32), nullable=False),
          Column("source_id", String(255), nullable=False),
          Column("target_side", String(32), nullable=False),
          Column("created_at", DateTime, nullable=False),
          Column("completed", Boolean, nullable=False),
          Index("ix_intents_pending", "completed", "source_side", "source_id"))
    Table("retry_queue", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("side", String(32), nullable=False),
          Column("record_id", String(255), nullable=False),
          Column("attempts", Integer, nullable=False),
          Column("last_error", Text, nullable=False),
          Column("next_attempt", DateTime, nullable=False),
          Column("parked", Boolean, nullable=False),
          UniqueConstraint("side", "record_id", name="uq_retry_side_record"),
          Index("ix_retry_due", "side", "parked", "next_attempt"))
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
    Table("watermarks", md, Column("side", String(32), primary_key=True),
          Column("value", DateTime, nullable=False))
    Table("runs", md,
          Column("id", Integer, primary_key=True, autoincrement=True),
          Column("command", String(64), nullable=False),
          Column("started", DateTime, nullable=False),
          Column("finished", DateTime), Column("counts", Text, nullable=False),
          Column("outcome", String(64)), Column("error", Text))
    Table("lock", md, Column("name", String(64), primary_key=True),
          Column("owner", String(255), nullable=False),
          Column("acquired", DateTime, nullable=False),
          Column("expires", DateTime, nullable=False))
    return md


def make_version_1_store(url: str) -> None:
    """A store as 0.1 left it: two links with comments and a conflict, queue, marks, lock."""
    md = version_1_tables()
    engine = create_engine(url)
    at = datetime(2026, 3, 1, 9, 0)  # version 1 stored naive UTC
    try:
        with engine.begin() as conn:
            md.create_all(conn)
            t = md.tables
            conn.execute(t["meta"].insert().values(key="schema_version", value="1"))
            for n in (1, 2):
                conn.execute(t["links"].insert().values(
                    id=n, servicenow_id=f"sn{n}", jira_key=f"OPS-{n}",
                    servicenow_display=f"INC000{n}", jira_display=f"OPS-{n}",
                    snapshot_servicenow='{"title":"x"}', snapshot_jira='{"title":"x"}',
                    version_servicenow="1", version_jira="1", hash=None,
                    created_at=at, updated_at=at))
            conn.execute(t["comment_links"].insert().values(
                link_id=1, servicenow_comment_id="j1", jira_comment_id="10001",
                origin="servicenow", visibility="public"))
            conn.execute(t["conflicts"].insert().values(
                link_id=2, field="urgency", base="2", servicenow_value="1", jira_value="3",
                resolution="manual", policy="manual", at=at, open=True))
            conn.execute(t["intents"].insert().values(
                source_side="servicenow", source_id="sn9", target_side="jira",
                created_at=at, completed=False))
            conn.execute(t["retry_queue"].insert().values(
                side="jira", record_id="OPS-7", attempts=2, last_error="503",
                next_attempt=at, parked=False))
            conn.execute(t["watermarks"].insert().values(side="jira", value=at))
            conn.execute(t["runs"].insert().values(command="run", started=at, finished=at,
                                                   counts='{"created":2}', outcome="ok"))
            conn.execute(t["lock"].insert().values(
                name="sync", owner="old-host:7", acquired=at, expires=at + timedelta(hours=1)))
            if url.startswith("postgresql"):
                # Explicit ids above: move the sequence on as the old code's inserts would.
                conn.exec_driver_sql("SELECT setval('links_id_seq', 2)")
    finally:
        engine.dispose()


def test_a_version_1_store_is_migrated_keeping_every_row(state_url: str) -> None:
    make_version_1_store(state_url)
    with StateStore(state_url, clock=lambda: T0) as store:
        assert [(x.id_on("servicenow"), x.id_on("jira")) for x in store.all_links()] == [
            ("sn1", "OPS-1"), ("sn2", "OPS-2")]
        # The rebuild of `links` must not cascade into comment links and conflicts.
        assert [c.id_on("jira") for c in store.comment_links(1)] == ["10001"]
        assert [(c.link_id, c.field) for c in store.open_conflicts()] == [(2, "urgency")]
        assert [i.source_id for i in store.pending_intents()] == ["sn9"]
        assert [(r.record_id, r.attempts) for r in store.retry_items()] == [("OPS-7", 2)]
        assert store.watermark("jira") == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
        assert store.runs()[0].counts == {"created": 2}
        # The old single lock is the default connection's now: still held.
        assert store.lock_holder()[0] == "old-host:7"  # type: ignore[index]
        # New rows work as in a new store: a third link, and uniqueness per connection.
        assert save(store, "sn3", "OPS-3").id == 3
    with StateStore(state_url, connection="hr") as other:
        assert other.all_links() == [] and other.lock_holder() is None
        save(other, "sn1", "HR-1")
    [(version,)] = run_sql(state_url, "select value from meta where key='schema_version'")
    assert version == str(SCHEMA_VERSION)


def test_migration_happens_once_and_readers_see_the_migrated_store(state_url: str) -> None:
    make_version_1_store(state_url)
    with StateStore(state_url, create=False) as reader:
        assert len(reader.all_links()) == 2
    with StateStore(state_url) as again:  # already at the current version: nothing to do
        assert len(again.all_links()) == 2
        assert [r.record_id for r in again.retry_items()] == ["OPS-7"]
