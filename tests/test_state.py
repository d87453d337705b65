"""The state store: schema, links, pair transactions, comments, intents, conflicts, runs.

Tests taking ``state_url`` run on SQLite and on PostgreSQL (see conftest); the
others are about SQLite files (paths, WAL, its single writer) or need no database.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from db_helpers import run_sql
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from sync.errors import StateSchemaError, SyncError
from sync.state import (
    SCHEMA_VERSION,
    LinkConflict,
    LinkSide,
    NoStateStore,
    StateStore,
    StateStoreError,
    _canonical,
    masked_url,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(state_url: str) -> Any:
    with StateStore(state_url, clock=lambda: T0) as opened:
        yield opened


def save(store: StateStore, sn: str, key: str, hash: str | None = "abc",
         **changes: Any) -> Any:
    """Link ``sn`` and ``key``; ``changes`` override a side's fields: ``servicenow={...}``."""
    sides = {
        "servicenow": {"id": sn, "display": f"INC-{sn}",
                       "snapshot": {"title": "Printer on fire", "impact": 2}, "version": "3"},
        "jira": {"id": key, "display": key, "snapshot": {"title": "Printer on fire", "impact": 2},
                 "version": "2026-03-01T09:00:00.000+0000"},
    }
    for side, fields in changes.items():
        sides[side].update(fields)
    with store.pair() as tx:
        return tx.save_link({side: LinkSide(**fields) for side, fields in sides.items()},
                            hash=hash)


# ------------------------------------------------------------------ schema


def test_schema_is_created_on_first_use_and_versioned(db_path: Path) -> None:
    StateStore(f"sqlite:///{db_path}").close()
    with sqlite3.connect(db_path) as raw:
        listed = raw.execute("select name from sqlite_master where type='table'")
        tables = {row[0] for row in listed}
        version = raw.execute("select value from meta where key='schema_version'").fetchone()[0]
        journal = raw.execute("pragma journal_mode").fetchone()[0]
    assert {"meta", "links", "link_sides", "comment_links", "comment_sides", "intents",
            "retry_queue", "conflicts", "watermarks", "runs", "lock", "rule_firings",
            "link_rules"} <= tables
    assert version == str(SCHEMA_VERSION) == "4"
    assert journal == "wal"


def test_schema_is_created_on_an_empty_postgresql_database(state_url: str) -> None:
    StateStore(state_url).close()
    [(version,)] = run_sql(state_url, "select value from meta where key='schema_version'")
    assert version == str(SCHEMA_VERSION)
    # Opening again (a second worker) neither recreates nor fails.
    with StateStore(state_url) as again:
        assert again.all_links() == []


def test_reopening_a_store_keeps_its_links(state_url: str) -> None:
    with StateStore(state_url) as first:
        save(first, "sn1", "OPS-1")
    with StateStore(state_url) as second:
        link = second.link_by("servicenow", "sn1")
    assert link is not None and link.id_on("jira") == "OPS-1"
    assert link.snapshot_on("jira") == {"title": "Printer on fire", "impact": 2}


def test_store_written_by_a_newer_version_is_refused_with_one_line(state_url: str) -> None:
    StateStore(state_url).close()
    run_sql(state_url, "update meta set value='7' where key='schema_version'")
    with pytest.raises(StateSchemaError) as caught:
        StateStore(state_url)
    message = str(caught.value)
    assert "\n" not in message
    assert "schema version 7" in message and f"({SCHEMA_VERSION})" in message
    assert "upgrade" in message


def test_database_not_written_by_incident_sync_is_refused(state_url: str) -> None:
    run_sql(state_url, "create table meta (key varchar(64) primary key, value text)")
    with pytest.raises(StateSchemaError, match="no readable schema_version"):
        StateStore(state_url)


def test_file_that_is_not_a_database_gives_a_clear_error(db_path: Path) -> None:
    db_path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StateStoreError) as caught:
        StateStore(f"sqlite:///{db_path}")
    assert str(db_path) in str(caught.value)
    assert "not a database" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StateStoreError, match="does not exist"):
        StateStore(f"sqlite:///{tmp_path}/nowhere/state.db")


def test_opening_without_create_never_creates_the_file(db_path: Path) -> None:
    with pytest.raises(NoStateStore, match="no state store at"):
        StateStore(f"sqlite:///{db_path}", create=False)
    assert not db_path.exists()


def test_opening_without_create_on_an_empty_database_finds_no_store(state_url: str) -> None:
    if state_url.startswith("sqlite"):
        # A SQLite store is its file: an empty one is made by creating the file.
        state_url = state_url.replace("state.db", "empty.db")
        sqlite3.connect(state_url.removeprefix("sqlite:///")).close()
    with pytest.raises(NoStateStore, match="no state store at"):
        StateStore(state_url, create=False)


def test_opening_without_create_reads_an_existing_store(state_url: str) -> None:
    with StateStore(state_url) as first:
        save(first, "sn1", "OPS-1")
    with StateStore(state_url, create=False) as reader:
        assert [link.id_on("jira") for link in reader.all_links()] == ["OPS-1"]


def test_in_memory_url_is_one_database_for_every_connection() -> None:
    with StateStore("sqlite://") as store:
        save(store, "sn1", "OPS-1")
        assert store.link_by("jira", "OPS-1") is not None


def test_masked_url_hides_the_password() -> None:
    shown = masked_url("postgresql+psycopg://sync:hunter2@db.example/incidents")
    assert "hunter2" not in shown and "sync" in shown and "db.example" in shown


# ------------------------------------------------------------------ links


def test_save_link_inserts_then_updates_the_row_found_by_either_id(store: StateStore) -> None:
    created = save(store, "sn1", "OPS-1")
    assert created.id_on("servicenow") == "sn1" and created.id_on("jira") == "OPS-1"
    assert created.created_at == T0

    by_sn = save(store, "sn1", "OPS-1", servicenow={"version": "4"}, jira={"snapshot": None})
    assert by_sn.id == created.id
    assert by_sn.version_on("servicenow") == "4"
    assert by_sn.snapshot_on("jira") is None

    relinked = save(store, "sn9", "OPS-1", servicenow={"display": "INC0009"})
    assert relinked.id == created.id
    assert store.link_by("servicenow", "sn1") is None
    assert store.link_by("servicenow", "sn9") == relinked
    assert len(store.all_links()) == 1


def test_two_records_claiming_one_link_is_a_clear_sync_error(store: StateStore) -> None:
    save(store, "sn1", "OPS-1")
    save(store, "sn2", "OPS-2")
    with pytest.raises(LinkConflict) as caught:
        save(store, "sn1", "OPS-2")
    assert isinstance(caught.value, SyncError)
    message = str(caught.value)
    assert "two records claim one link" in message
    assert "sn1 <-> Jira OPS-1" in message and "sn2 <-> Jira OPS-2" in message
    # Nothing was changed by the refused save.
    assert store.link_by("jira", "OPS-2").id_on("servicenow") == "sn2"  # type: ignore[union-attr]


def test_database_uniqueness_also_guards_links(state_url: str, store: StateStore) -> None:
    link = save(store, "sn1", "OPS-1")
    other = save(store, "sn2", "OPS-2")
    # A second link holding sn1, or a third side on one link, is refused by the database.
    with pytest.raises(IntegrityError):
        run_sql(state_url, "update link_sides set record_id = 'sn1' where link_id = :other "
                "and side = 'servicenow'", other=other.id)
    with pytest.raises(IntegrityError):
        run_sql(state_url, "insert into link_sides (link_id, side, connection, record_id, "
                "display) values (:link, 'jira', 'default', 'OPS-5', '')", link=link.id)


def test_a_link_missing_a_side_is_a_clear_store_error(state_url: str,
                                                       store: StateStore) -> None:
    link = save(store, "sn1", "OPS-1")
    run_sql(state_url, "delete from link_sides where side = 'jira'")
    with pytest.raises(StateStoreError, match=r"link \d+ has sides \['servicenow'\].*by hand"):
        store.link_by_id(link.id)


def test_per_side_values_must_name_both_sides(store: StateStore) -> None:
    with pytest.raises(ValueError, match="needs a record id on each side"), store.pair() as tx:
        tx.save_link({"servicenow": LinkSide("sn1", "", None, None)}, hash=None)
    link = save(store, "sn1", "OPS-1")
    with pytest.raises(ValueError, match="needs a value for each side"), store.pair() as tx:
        tx.record_conflict(link.id, "title", base="a", values={"jira": "b"},
                           resolution="manual", policy="manual", at=T0)
    with pytest.raises(ValueError, match="needs a comment id on each side"), \
            store.pair() as tx:
        tx.add_comment_link(link.id, {"servicenow": "c1", "jira": ""}, origin="jira",
                            visibility="public")
    assert store.conflicts() == [] and store.comment_links(link.id) == []


def test_snapshot_that_is_not_json_is_refused(store: StateStore) -> None:
    with pytest.raises(TypeError, match="the servicenow snapshot is not a JSON value"):
        save(store, "sn1", "OPS-1", servicenow={"snapshot": {"opened_at": T0}})
    assert store.all_links() == []


def test_snapshots_are_stored_as_canonical_json(state_url: str, store: StateStore) -> None:
    save(store, "sn1", "OPS-1", servicenow={"snapshot": {"b": "é", "a": [1, None]}})
    [(stored,)] = run_sql(state_url,
                          "select snapshot from link_sides where side = 'servicenow'")
    assert stored == '{"a":[1,null],"b":"é"}'


def test_links_by_answers_long_id_lists_in_chunks(store: StateStore) -> None:
    with store.pair() as tx:
        for n in range(1200):
            tx.save_link({"servicenow": LinkSide(f"sn{n}", "", None, None),
                          "jira": LinkSide(f"OPS-{n}", "", None, None)}, hash=None)
    wanted = [f"OPS-{n}" for n in range(0, 1300)]
    found = store.links_by("jira", wanted)
    assert len(found) == 1200
    assert found["OPS-1199"].id_on("servicenow") == "sn1199"
    assert set(store.links_by("servicenow", ["sn5", "nope"])) == {"sn5"}


def test_unknown_side_is_refused_by_name(store: StateStore) -> None:
    with pytest.raises(ValueError, match="side must be 'servicenow' or 'jira', not 'zendesk'"):
        store.link_by("zendesk", "1")


# ------------------------------------------------------------------ pair transactions


def test_failed_pair_rolls_back_only_its_own_changes(store: StateStore) -> None:
    save(store, "sn1", "OPS-1")
    intent = store.record_intent("servicenow", "sn2", "jira")
    store.record_failure("servicenow", "sn2", "boom", now=T0, base_seconds=60, max_attempts=5)

    with pytest.raises(RuntimeError, match="remote write failed"), store.pair() as tx:
        link = tx.save_link({"servicenow": LinkSide("sn2", "", {}, "1"),
                             "jira": LinkSide("OPS-2", "", {}, "1")}, hash=None)
        tx.add_comment_link(link.id, {"servicenow": "j1", "jira": "c1"}, origin="servicenow",
                            visibility="public")
        tx.complete_intent(intent)
        tx.clear_retry("servicenow", "sn2")
        raise RuntimeError("remote write failed")

    save(store, "sn3", "OPS-3")
    assert [link.id_on("servicenow") for link in store.all_links()] == ["sn1", "sn3"]
    assert [i.id for i in store.pending_intents()] == [intent]
    assert [r.record_id for r in store.retry_items()] == ["sn2"]


def test_pair_writes_are_committed_together(store: StateStore) -> None:
    intent = store.record_intent("servicenow", "sn1", "jira")
    store.record_failure("servicenow", "sn1", "boom", now=T0, base_seconds=60, max_attempts=5)
    with store.pair() as tx:
        link = tx.save_link({"servicenow": LinkSide("sn1", "INC0001", {}, "1"),
                             "jira": LinkSide("OPS-1", "OPS-1", {}, "1")}, hash="h")
        tx.complete_intent(intent)
        tx.clear_retry("servicenow", "sn1")
    assert store.link_by("servicenow", "sn1") == link
    assert store.pending_intents() == []
    assert store.retry_items() == []


def test_a_pair_that_writes_nothing_leaves_the_store_alone(store: StateStore) -> None:
    with store.pair():
        pass
    assert store.all_links() == []


# ------------------------------------------------------------------ comments


def test_comment_links_are_idempotent(store: StateStore) -> None:
    link = save(store, "sn1", "OPS-1")
    for _ in range(3):
        with store.pair() as tx:
            tx.add_comment_link(link.id, {"servicenow": "j1", "jira": "10001"},
                                origin="servicenow", visibility="public")
    with store.pair() as tx:
        tx.add_comment_link(
            link.id, {"servicenow": "j2", "jira": "10002"}, origin="jira", visibility="internal"
        )
    pairs = store.comment_links(link.id)
    assert [(c.id_on("servicenow"), c.id_on("jira"), c.origin, c.visibility) for c in pairs] == [
        ("j1", "10001", "servicenow", "public"),
        ("j2", "10002", "jira", "internal"),
    ]


def test_comment_paired_twice_with_different_partners_is_refused(store: StateStore) -> None:
    link = save(store, "sn1", "OPS-1")
    with store.pair() as tx:
        tx.add_comment_link(
            link.id, {"servicenow": "j1", "jira": "10001"}, origin="servicenow", visibility="public"
        )
    with pytest.raises(LinkConflict, match="already paired"), store.pair() as tx:
        tx.add_comment_link(
            link.id, {"servicenow": "j1", "jira": "10009"}, origin="servicenow", visibility="public"
        )
    assert len(store.comment_links(link.id)) == 1


def test_comment_link_for_an_unknown_link_is_refused(store: StateStore) -> None:
    with pytest.raises(StateStoreError, match="no link 99"), store.pair() as tx:
        tx.add_comment_link(
            99, {"servicenow": "j1", "jira": "10001"}, origin="jira", visibility="public"
        )


# ------------------------------------------------------------------ intents


CRASHING_CREATE = textwrap.dedent(
    """
    import os, sys
    from sync.state import LinkSide, StateStore
    store = StateStore(sys.argv[1])
    intent = store.record_intent("servicenow", "sn-crash", "jira")
    with store.pair() as tx:
        tx.save_link({"servicenow": LinkSide("sn-crash", "", {}, "1"),
                      "jira": LinkSide("OPS-77", "", {}, "1")}, hash=None)
        # The process dies between the remote create and the pair's commit.
        os._exit(9)
    """
)


def test_intents_survive_a_crash_during_the_remote_create(state_url: str) -> None:
    url = state_url
    StateStore(url).close()
    crashed = subprocess.run([sys.executable, "-c", CRASHING_CREATE, url], timeout=60)
    assert crashed.returncode == 9

    with StateStore(url) as after:
        pending = after.pending_intents()
        assert [(i.source_side, i.source_id, i.target_side) for i in pending] == [
            ("servicenow", "sn-crash", "jira")
        ]
        assert after.link_by("servicenow", "sn-crash") is None
        # A rerun records the same intent again: it gets the pending one back.
        assert after.record_intent("servicenow", "sn-crash", "jira") == pending[0].id
        with after.pair() as tx:
            tx.complete_intent(pending[0].id)
        assert after.pending_intents() == []


# ------------------------------------------------------------------ watermarks


def test_watermarks_round_trip_aware_datetimes(store: StateStore) -> None:
    assert store.watermark("jira") is None
    local = datetime(2026, 3, 1, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    store.set_watermark("jira", local)
    got = store.watermark("jira")
    assert got == local and got is not None and got.tzinfo is UTC
    assert got.hour == 9
    store.set_watermark("jira", T0)
    assert store.watermark("jira") == T0
    assert store.watermark("servicenow") is None


def test_naive_watermark_is_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.set_watermark("servicenow", datetime(2026, 3, 1, 9, 0))


# ------------------------------------------------------------------ retry queue


def test_due_retries_skip_parked_and_future_items(store: StateStore) -> None:
    store.record_failure("jira", "OPS-1", "503", now=T0, base_seconds=60, max_attempts=3)
    store.record_failure("jira", "OPS-2", "400", now=T0, base_seconds=60, max_attempts=1)
    store.record_failure("servicenow", "sn1", "503", now=T0, base_seconds=60, max_attempts=3)
    assert store.due_retries("jira", T0) == []
    later = T0 + timedelta(minutes=5)
    assert [r.record_id for r in store.due_retries("jira", later)] == ["OPS-1"]
    assert [r.record_id for r in store.retry_items(parked=True)] == ["OPS-2"]
    assert len(store.retry_items(parked=False)) == 2
    with store.pair() as tx:
        tx.clear_retry("jira", "OPS-1")
    assert store.due_retries("jira", later) == []


def test_retry_error_text_is_truncated_to_500_chars(store: StateStore) -> None:
    item = store.record_failure("jira", "OPS-1", "x" * 5000, now=T0, base_seconds=1,
                                max_attempts=3)
    assert len(item.last_error) == 500
    assert len(store.retry_items()[0].last_error) == 500


# ------------------------------------------------------------------ conflicts


def test_open_conflict_seen_again_stays_one_row(store: StateStore) -> None:
    link = save(store, "sn1", "OPS-1")
    for run in range(2):
        with store.pair() as tx:
            tx.record_conflict(
                link.id,
                "title",
                base="a",
                values={"servicenow": "b", "jira": f"c{run}"},
                resolution="manual",
                policy="manual",
                at=T0 + timedelta(minutes=run),
            )
    [conflict] = store.open_conflicts()
    assert (
        conflict.field,
        conflict.base,
        conflict.value_on("servicenow"),
        conflict.value_on("jira"),
    ) == ("title", "a", "b", "c1")
    assert conflict.at == T0 + timedelta(minutes=1)

    with store.pair() as tx:
        tx.close_conflicts(link.id, "title")
    assert store.open_conflicts() == []
    assert len(store.conflicts(link.id)) == 1


def test_settled_conflict_is_history_and_closes_the_open_one(store: StateStore) -> None:
    link = save(store, "sn1", "OPS-1")
    with store.pair() as tx:
        tx.record_conflict(
            link.id,
            "urgency",
            base=2,
            values={"servicenow": 1, "jira": 3},
            resolution="manual",
            policy="manual",
            at=T0,
        )
        tx.record_conflict(
            link.id,
            "labels",
            base=[],
            values={"servicenow": ["a"], "jira": ["b"]},
            resolution="servicenow",
            policy="newest",
            at=T0,
        )
        tx.record_conflict(
            link.id,
            "resolved_at",
            base=None,
            values={"servicenow": T0, "jira": None},
            resolution="servicenow",
            policy="servicenow",
            at=T0,
        )
    assert [c.field for c in store.open_conflicts()] == ["urgency"]
    with store.pair() as tx:
        tx.record_conflict(
            link.id,
            "urgency",
            base=2,
            values={"servicenow": 1, "jira": 3},
            resolution="jira",
            policy="jira",
            at=T0 + timedelta(hours=1),
        )
    assert store.open_conflicts() == []
    history = {c.field: c for c in store.conflicts(link.id) if not c.open}
    assert history["labels"].value_on("servicenow") == ["a"]
    assert history["resolved_at"].value_on("servicenow") == T0.isoformat()


# ------------------------------------------------------------------ runs


def test_runs_are_listed_newest_first_with_their_counts(store: StateStore) -> None:
    first = store.start_run("run", T0)
    store.finish_run(first, finished=T0 + timedelta(seconds=42),
                     counts={"created": 3, "failed": 0}, outcome="ok")
    second = store.start_run("run", T0 + timedelta(minutes=5))
    runs = store.runs()
    assert [r.id for r in runs] == [second, first]
    assert runs[0].finished is None and runs[0].outcome is None
    assert runs[1].counts == {"created": 3, "failed": 0}
    assert runs[1].finished == T0 + timedelta(seconds=42)
    assert [r.id for r in store.runs(limit=1)] == [second]


def test_finishing_an_unknown_run_is_an_error(store: StateStore) -> None:
    with pytest.raises(StateStoreError, match="no run with id 404"):
        store.finish_run(404, finished=T0, counts={}, outcome="ok")


# ------------------------------------------------------------------ threads


def test_pairs_from_many_threads_all_commit_and_fail_independently(store: StateStore) -> None:
    def work(worker: int) -> None:
        for n in range(15):
            try:
                with store.pair() as tx:
                    tx.save_link(
                        {
                            "servicenow": LinkSide(
                                id=f"sn{worker}-{n}", display="", snapshot={"n": n}, version=str(n)
                            ),
                            "jira": LinkSide(
                                id=f"OPS-{worker}{n:03d}", display="", snapshot=None, version=None
                            ),
                        },
                        hash=None,
                    )
                    if n % 5 == 4:
                        raise RuntimeError("remote write failed")
            except RuntimeError:
                store.record_failure("servicenow", f"sn{worker}-{n}", "remote write failed",
                                     now=T0, base_seconds=1, max_attempts=3)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(work, range(6)))
    assert len(store.all_links()) == 6 * 12
    assert len(store.retry_items()) == 6 * 3
    assert store.link_by("servicenow", "sn3-4") is None


def test_writing_inside_a_pair_on_the_same_thread_fails_fast(db_path: Path) -> None:
    # SQLite only: its single writer is what would deadlock; PostgreSQL has row locks.
    store = StateStore(f"sqlite:///{db_path}", clock=lambda: T0)
    with store, store.pair() as tx:
        intent = store.record_intent("servicenow", "sn1", "jira")  # before the pair wrote
        # (clear_retry of a record that is not queued writes nothing: a real write here)
        tx.complete_intent(intent + 1)
        with pytest.raises(RuntimeError, match="would deadlock"):
            store.record_failure("jira", "OPS-1", "x", now=T0, base_seconds=1, max_attempts=2)
        with pytest.raises(RuntimeError, match="nested pair"), store.pair() as inner:
            inner.complete_intent(intent + 1)
    with StateStore(f"sqlite:///{db_path}", clock=lambda: T0) as again:
        again.record_failure("jira", "OPS-1", "x", now=T0, base_seconds=1, max_attempts=2)
        assert len(again.pending_intents()) == 1


def test_schema_compiles_for_postgresql_without_a_server() -> None:
    # The parametrized tests run on a real server; compiling the DDL for its
    # dialect also catches SQLite-only types where no server is at hand.
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from sync.state_schema import metadata

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    ddl = [str(CreateTable(table).compile(dialect=dialect)) for table in metadata.sorted_tables]
    ddl += [str(CreateIndex(index).compile(dialect=dialect))
            for table in metadata.sorted_tables for index in table.indexes]
    text = "\n".join(ddl)
    assert "CREATE TABLE links" in text and "SERIAL" in text
    assert "BOOLEAN" in text and "TIMESTAMP WITHOUT TIME ZONE" in text
    assert "UNIQUE (connection, side, record_id)" in text
    assert "UNIQUE (link_id, side, comment_id)" in text
    assert "REFERENCES links (id) ON DELETE CASCADE" in text


def test_comment_links_of_reads_a_batch_as_one_link_at_a_time_would(store: StateStore) -> None:
    first, second, bare = (save(store, "sn1", "OPS-1"), save(store, "sn2", "OPS-2"),
                           save(store, "sn3", "OPS-3"))
    for link, ids, origin in ((first, ("j1", "10001"), "servicenow"),
                              (second, ("j2", "10002"), "jira"),
                              (first, ("j3", "10003"), "jira")):
        with store.pair() as tx:
            tx.add_comment_link(link.id, {"servicenow": ids[0], "jira": ids[1]},
                                origin=origin, visibility="public")
    batch = store.comment_links_of([first.id, second.id, bare.id])
    assert set(batch) == {first.id, second.id}   # a link without comment pairs is absent
    for link in (first, second, bare):
        assert batch.get(link.id, []) == store.comment_links(link.id)
    assert [c.id_on("jira") for c in batch[first.id]] == ["10001", "10003"]
    assert store.comment_links_of([]) == {}


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4)
    | st.floats(allow_nan=True, allow_infinity=True) | st.just(T0) | st.just({1, 2}),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3),
    max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(value=_JSONISH)
def test_canonical_json_is_json_dumps_text_with_its_errors(value: Any) -> None:
    # The encoder built once says what json.dumps with the same options says: the same
    # text, or the same refusal (a time, a set, NaN or infinity is not a JSON value).
    try:
        expected = json.dumps(value, sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        with pytest.raises(TypeError, match="the snapshot is not a JSON value: ") as refused:
            _canonical(value, "the snapshot")
        assert str(refused.value).endswith(str(error))
        return
    assert _canonical(value, "the snapshot") == expected
