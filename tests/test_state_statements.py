"""How much SQL a pair's commit costs, and that what makes it cheap costs no correctness.

The budget scenarios run the real engine over two in-memory tools (the ``memory``
fixture) on SQLite and count, on the state store's own engine, every statement
the driver executes (``before_cursor_execute``, BEGIN and PRAGMA aside: an
executemany is one) and every transaction begun (reads included). A change that
makes the store chattier per pair fails here. The budgets are the figures
measured when a batch's pair commits went in one transaction with bulk
statements (before: 5.8 statements and 2.6 transactions per created pair, 4.7
and 2.6 per updated one; before the store stopped sending statements that
change nothing: 22 and 5, 23 and 6).

The hint tests check the store's shortcuts against the database's word: a link
said to be new that exists, a link known by id that is gone, a queue item or an
open conflict the store did not write itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event
from sync_helpers import memory_incident

from sync.state import LinkConflict, LinkSide, StateStore
from sync.state_schema import link_sides, links

N = 50
# Per pair at N = 50 (one batch), fixed per-run reads and writes (lock, run row,
# watermarks, caches) spread over the pairs. Measured: created 1.84 statements /
# 0.68 transactions (SQLite inserts the new links one row per statement, to get
# each its id: 1.0 of the 1.84), updated 0.78 / 0.68.
CREATED_STATEMENTS = 2.0
UPDATED_STATEMENTS = 1.0
TRANSACTIONS = 0.75

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class SqlCount:
    """Statements and transactions seen on one SQLAlchemy engine."""

    statements: int = 0
    transactions: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def watch(self, engine: Any) -> None:
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", self._begin)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        words = statement.split()
        if words[0].upper() in ("BEGIN", "PRAGMA"):
            return
        self.statements += 1
        kind = " ".join(words[:3])
        self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def _begin(self, conn: Any) -> None:
        self.transactions += 1

    def per_pair(self) -> tuple[float, float]:
        return self.statements / N, self.transactions / N



def counted_run(memory: Any) -> tuple[Any, SqlCount]:
    engine = memory.engine()
    count = SqlCount()
    count.watch(engine.store._engine)
    return engine.run(), count


def test_a_created_and_an_updated_pair_stay_within_the_statement_budget(memory: Any) -> None:
    ids = [memory_incident(memory, f"Incident {i}") for i in range(N)]

    created, count = counted_run(memory)
    assert created.created == N and created.failed == 0, created.failures
    statements, transactions = count.per_pair()
    assert statements <= CREATED_STATEMENTS, (statements, count.kinds)
    assert transactions <= TRANSACTIONS, transactions
    # No savepoint, no read-back and no empty DELETE per pair.
    assert not any(kind.startswith(("SAVEPOINT", "DELETE FROM retry_queue"))
                   for kind in count.kinds), count.kinds

    memory.clock.advance(minutes=5)
    for i, sys_id in enumerate(ids):
        memory.servicenow.edit(sys_id, {"short_description": f"Incident {i} edited"})
    updated, count = counted_run(memory)
    assert updated.updated >= N and updated.failed == 0, updated.failures
    statements, transactions = count.per_pair()
    assert statements <= UPDATED_STATEMENTS, (statements, count.kinds)
    assert transactions <= TRANSACTIONS, transactions
    assert all(link.id_on("jira") for link in memory.links())


def sides(sn: str, key: str, version: str = "1") -> dict[str, LinkSide]:
    return {"servicenow": LinkSide(sn, f"INC-{sn}", {"title": "Printer on fire"}, version),
            "jira": LinkSide(key, key, {"title": "Printer on fire"}, version)}


@pytest.fixture
def store(state_url: str) -> Any:
    with StateStore(state_url, clock=lambda: T0) as opened:
        yield opened


def test_a_pair_said_to_be_new_that_is_linked_updates_its_link(store: StateStore) -> None:
    with store.pair() as tx:
        first = tx.save_link(sides("sn1", "OPS-1"), hash="a", new=True)
    with store.pair() as tx:
        again = tx.save_link(sides("sn1", "OPS-1", "2"), hash="b", new=True)
    assert again.id == first.id and again.version_on("jira") == "2"
    assert store.all_links() == [again]


def test_a_new_pair_claiming_a_linked_record_is_refused_and_leaves_nothing(
    store: StateStore,
) -> None:
    with store.pair() as tx:
        tx.save_link(sides("sn1", "OPS-1"), hash=None, new=True)
        tx.save_link(sides("sn2", "OPS-2"), hash=None, new=True)
    with pytest.raises(LinkConflict, match="two records claim one link"), store.pair() as tx:
        tx.save_link(sides("sn1", "OPS-2"), hash=None, new=True)
    assert sorted(link.id_on("servicenow") for link in store.all_links()) == ["sn1", "sn2"]


def test_a_link_known_by_id_is_updated_in_place_and_a_gone_one_is_found_again(
    store: StateStore,
) -> None:
    with store.pair() as tx:
        link = tx.save_link(sides("sn1", "OPS-1"), hash="a", new=True)
    with store.pair() as tx:
        kept = tx.save_link(sides("sn1", "OPS-1", "7"), hash="b", link=link)
    assert store.link_by_id(link.id) == kept
    assert kept.created_at == link.created_at and kept.hash == "b"

    # The link read earlier no longer matches its records: looked up by them.
    with store.pair() as tx:
        moved = tx.save_link(sides("sn9", "OPS-1"), hash="c", link=link)
    assert moved.id == link.id and store.link_by("servicenow", "sn1") is None

    # A link deleted since it was read (by hand, say): the pair gets a new one.
    with store._engine.begin() as conn:
        conn.execute(delete(link_sides).where(link_sides.c.link_id == link.id))
        conn.execute(delete(links).where(links.c.id == link.id))
    with store.pair() as tx:
        again = tx.save_link(sides("sn9", "OPS-1"), hash="d", link=moved)
    assert store.all_links() == [again] and again.id_on("servicenow") == "sn9"

    # Its id may be reused by another pair: that link is left alone.
    with store._engine.begin() as conn:
        conn.execute(delete(link_sides).where(link_sides.c.link_id == again.id))
        conn.execute(delete(links).where(links.c.id == again.id))
    with store.pair() as tx:
        other = tx.save_link(sides("sn5", "OPS-5"), hash="e", new=True)
    with store.pair() as tx:
        tx.save_link(sides("sn9", "OPS-1"), hash="f", link=again)
    assert store.link_by_id(other.id) == other
    assert sorted(link.id_on("jira") for link in store.all_links()) == ["OPS-1", "OPS-5"]


def test_retry_items_and_conflicts_of_another_writer_are_seen_once_a_run_takes_the_lock(
    state_url: str,
) -> None:
    with StateStore(state_url, clock=lambda: T0) as ours, \
            StateStore(state_url, clock=lambda: T0) as theirs:
        with ours.pair() as tx:
            link = tx.save_link(sides("sn1", "OPS-1"), hash=None, new=True)
            tx.clear_retry("servicenow", "sn1")   # loads what is queued: nothing
            tx.close_conflicts(link.id, "title")  # and which links have open conflicts
        theirs.record_failure("servicenow", "sn1", "boom", now=T0, base_seconds=1,
                              max_attempts=5)
        with theirs.pair() as tx:
            tx.record_conflict(link.id, "title", base="a", values={"servicenow": "b",
                               "jira": "c"}, resolution="manual", policy="manual", at=T0)

        ours.acquire_lock("run-2")
        with ours.pair() as tx:
            tx.clear_retry("servicenow", "sn1")
            tx.close_conflicts(link.id, "title")
        assert ours.retry_items() == []
        assert ours.open_conflicts() == []
        ours.release_lock("run-2")


def test_what_a_store_writes_itself_it_clears_in_the_same_run(store: StateStore) -> None:
    with store.pair() as tx:
        link = tx.save_link(sides("sn1", "OPS-1"), hash=None, new=True)
        tx.clear_retry("jira", "OPS-1")
        tx.set_rules_due(link.id, None)
    store.record_failure("jira", "OPS-1", "boom", now=T0, base_seconds=1, max_attempts=5)
    with store.pair() as tx:
        tx.record_conflict(link.id, "title", base="a", values={"servicenow": "b", "jira": "c"},
                           resolution="manual", policy="manual", at=T0)
        tx.set_rules_due(link.id, T0 + timedelta(hours=1))
    assert store.rules_due_at(link.id) == T0 + timedelta(hours=1)
    with store.pair() as tx:
        tx.clear_retry("jira", "OPS-1")
        tx.close_conflicts(link.id, "title")
        tx.set_rules_due(link.id, None)
    assert store.retry_items() == [] and store.open_conflicts() == []
    assert store.rules_due_at(link.id) is None
    assert [c.field for c in store.conflicts(link.id)] == ["title"]


def test_a_rolled_back_clear_keeps_the_item_known_as_queued(store: StateStore) -> None:
    store.record_failure("jira", "OPS-1", "boom", now=T0, base_seconds=1, max_attempts=5)
    with pytest.raises(RuntimeError, match="rolled back"), store.pair() as tx:
        tx.clear_retry("jira", "OPS-1")
        raise RuntimeError("rolled back")
    assert len(store.retry_items()) == 1
    with store.pair() as tx:
        tx.clear_retry("jira", "OPS-1")
    assert store.retry_items() == []


def test_a_batch_of_intents_is_one_transaction_reusing_pending_twins(
    store: StateStore,
) -> None:
    earlier = store.record_intent("servicenow", "sn2", "jira")
    count = SqlCount()
    count.watch(store._engine)
    ids = store.record_intents([("servicenow", "sn1", "jira"), ("servicenow", "sn2", "jira"),
                                ("jira", "OPS-3", "servicenow")])
    assert count.transactions == 1 and count.statements == 2, count.kinds
    assert ids[1] == earlier and len(set(ids)) == 3
    pending = {(i.source_side, i.source_id): i.id for i in store.pending_intents()}
    assert pending == {("servicenow", "sn1"): ids[0], ("servicenow", "sn2"): earlier,
                       ("jira", "OPS-3"): ids[2]}


def test_without_insert_returning_as_on_sqlite_before_3_35_the_shortcuts_hold(
    tmp_path: Any,
) -> None:
    from sync.state import _HotStatements

    with StateStore(f"sqlite:///{tmp_path / 'state.db'}", clock=lambda: T0) as store:
        store._hot = _HotStatements.build(True, returning=False)
        with store.pair() as tx:
            link = tx.save_link(sides("sn1", "OPS-1"), hash=None, new=True)
            tx.add_comment_link(link.id, {"servicenow": "c1", "jira": "10001"},
                                origin="servicenow", visibility="public")
            tx.add_comment_link(link.id, {"servicenow": "c1", "jira": "10001"},
                                origin="servicenow", visibility="public")
        with store.pair() as tx:
            again = tx.save_link(sides("sn1", "OPS-1", "2"), hash=None, new=True)
        assert again.id == link.id and len(store.comment_links(link.id)) == 1
        with pytest.raises(LinkConflict), store.pair() as tx:
            tx.save_link(sides("sn2", "OPS-2"), hash=None, new=True)
            tx.save_link(sides("sn2", "OPS-1"), hash=None, new=True)
        assert store.all_links() == [again]
        ids = store.record_intents([("servicenow", "sn3", "jira"), ("jira", "OPS-4", "servicenow")])
        assert [i.id for i in store.pending_intents()] == ids
