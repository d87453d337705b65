"""A batch of pairs committed in one transaction (``store.pairs()``).

Tests taking ``state_url`` run on SQLite and on PostgreSQL (see conftest).

- What a batch leaves committed for each pair is what that pair's own commit
  (``store.pair()``) leaves: the same rows, table by table.
- What a bulk statement cannot tell apart per pair (a link gone, a record or a
  comment paired already) refuses the whole batch: nothing of it is committed,
  the store stays usable, and the pairs committed one by one say which pair it was.
- The engine commits a batch's pairs together and, when the store refuses them,
  one by one: a pair whose records another writer linked meanwhile fails alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from db_helpers import run_sql
from sync_helpers import memory_incident

from sync.state import (
    BatchRefused,
    CommentLink,
    ConflictNote,
    Link,
    LinkConflict,
    LinkSave,
    LinkSide,
    PairsTx,
    StateStore,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def sides(sn: str, key: str, version: str | None = "1",
          title: str = "Printer on fire") -> dict[str, LinkSide]:
    return {"servicenow": LinkSide(sn, f"INC-{sn}", {"title": title, "impact": 2}, version),
            "jira": LinkSide(key, key, {"title": title}, version)}


def seed(store: StateStore) -> tuple[Link, Link]:
    """Two linked pairs, one queued record, one open conflict, one rules row."""
    with store.pair() as tx:
        first = tx.save_link(sides("sn1", "OPS-1"), hash="a", at=T0, new=True)
        second = tx.save_link(sides("sn2", "OPS-2"), hash="b", at=T0, new=True)
        tx.record_conflict(first.id, "title", base="x", values={"servicenow": "y", "jira": "z"},
                           resolution="manual", policy="manual", at=T0)
        tx.set_rules_due(second.id, T0 + timedelta(hours=4))
    store.record_failure("jira", "OPS-2", "boom", now=T0, base_seconds=1, max_attempts=5)
    return first, second


def commits(store: StateStore, first: Link, second: Link) -> list[dict[str, Any]]:
    """A batch's worth of commits: two links known by id, two new ones, with all the rest."""
    intents = store.record_intents([("servicenow", "sn3", "jira"), ("servicenow", "sn4", "jira")])
    at = T0 + timedelta(minutes=5)
    firing = {"rule": "sla", "field": "priority", "old": 3, "new": 2}
    return [
        {"save": LinkSave(sides("sn1", "OPS-1", "2", "Printer fixed"), hash="a2", at=at,
                          link=first),
         "comments": [({"servicenow": "c1", "jira": "10001"}, "servicenow", "public")],
         "conflicts": [], "closes": ["title"], "firings": [firing], "due": None,
         "intent": None, "retries": [("servicenow", "sn1"), ("jira", "OPS-1")]},
        {"save": LinkSave(sides("sn2", "OPS-2", None), hash="b2", at=at, link=second),
         "comments": [], "conflicts": [("status", "manual")], "closes": [], "firings": [],
         "due": None, "intent": None, "retries": [("servicenow", "sn2"), ("jira", "OPS-2")]},
        {"save": LinkSave(sides("sn3", "OPS-3"), hash="c", at=at, new=True),
         "comments": [({"servicenow": "c2", "jira": "10002"}, "jira", "internal"),
                      ({"servicenow": "c3", "jira": "10003"}, "servicenow", "public")],
         "conflicts": [("impact", "newest")], "closes": [], "firings": [firing, firing],
         "due": T0 + timedelta(days=1), "intent": intents[0],
         "retries": [("servicenow", "sn3"), ("jira", "OPS-3")]},
        {"save": LinkSave(sides("sn4", "OPS-4"), hash=None, at=at, new=True),
         "comments": [], "conflicts": [], "closes": ["title"], "firings": [], "due": None,
         "intent": intents[1], "retries": [("servicenow", "sn4"), ("jira", "OPS-4")]},
    ]


def note(link_id: int, field: str, resolution: str) -> ConflictNote:
    return ConflictNote(link_id=link_id, field=field, base="x",
                        values={"servicenow": "y", "jira": "z"}, resolution=resolution,
                        policy=resolution, at=T0 + timedelta(minutes=5))


def commit_one_by_one(store: StateStore, batch: list[dict[str, Any]]) -> list[Link]:
    saved = []
    for item in batch:
        save = item["save"]
        with store.pair() as tx:
            link = tx.save_link(save.sides, hash=save.hash, at=save.at, link=save.link,
                                new=save.new)
            for ids, origin, visibility in item["comments"]:
                tx.add_comment_link(link.id, ids, origin=origin, visibility=visibility)
            for field, resolution in item["conflicts"]:
                c = note(link.id, field, resolution)
                tx.record_conflict(c.link_id, c.field, base=c.base, values=c.values,
                                   resolution=c.resolution, policy=c.policy, at=c.at)
            for field in item["closes"]:
                tx.close_conflicts(link.id, field)
            tx.record_rule_firings(link.id, item["firings"], at=save.at)
            tx.set_rules_due(link.id, item["due"])
            if item["intent"] is not None:
                tx.complete_intent(item["intent"])
            for side, record_id in item["retries"]:
                tx.clear_retry(side, record_id)
        saved.append(link)
    return saved


def commit_together(tx: PairsTx, batch: list[dict[str, Any]]) -> list[Link]:
    links = tx.save_links([item["save"] for item in batch])
    tx.add_comment_links([CommentLink(link_id=link.id, ids=ids, origin=origin,
                                      visibility=visibility)
                          for link, item in zip(links, batch, strict=True)
                          for ids, origin, visibility in item["comments"]])
    tx.record_conflicts(note(link.id, field, resolution)
                        for link, item in zip(links, batch, strict=True)
                        for field, resolution in item["conflicts"])
    tx.close_conflicts((link.id, field) for link, item in zip(links, batch, strict=True)
                       for field in item["closes"])
    tx.record_rule_firings((link.id, item["firings"], item["save"].at)
                           for link, item in zip(links, batch, strict=True))
    tx.set_rules_due((link.id, item["due"]) for link, item in zip(links, batch, strict=True))
    tx.complete_intents(item["intent"] for item in batch if item["intent"] is not None)
    tx.clear_retries(key for item in batch for key in item["retries"])
    return links


@pytest.fixture
def two_stores(state_url: str, tmp_path: Any) -> Iterator[tuple[StateStore, StateStore]]:
    """Two stores seeded alike: one commits pair by pair, the other as a batch."""
    if state_url.startswith("sqlite"):
        other = f"sqlite:///{tmp_path / 'other.db'}"
        with StateStore(state_url, clock=lambda: T0) as one, \
                StateStore(other, clock=lambda: T0) as two:
            yield one, two
        return
    # PostgreSQL: one schema, two connections (each sees only its own rows).
    with StateStore(state_url, connection="one", clock=lambda: T0) as one, \
            StateStore(state_url, connection="two", clock=lambda: T0) as two:
        yield one, two


def rows_of(store: StateStore, state_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """The store's rows of its connection, ids made relative to its first link."""
    links = store.all_links()
    base = min(link.id for link in links)
    found = {"links": sorted((link.id - base, link.hash, link.created_at, link.updated_at,
                              sorted(link.sides.items())) for link in links)}
    found["comments"] = sorted(
        (link.id - base, sorted(c.ids.items()), c.origin, c.visibility)
        for link in links for c in store.comment_links(link.id))
    found["conflicts"] = sorted((c.link_id - base, c.field, c.resolution, c.open)
                                for c in store.conflicts())
    found["firings"] = sorted((link_id - base, f.rule, f.field, f.old, f.new, f.at)
                              for link_id, fired in store.rule_firings(
                                  [link.id for link in links]).items() for f in fired)
    found["due"] = sorted((link.id - base, store.rules_due_at(link.id)) for link in links)
    found["intents"] = [(i.source_side, i.source_id) for i in store.pending_intents()]
    found["retries"] = [(r.side, r.record_id) for r in store.retry_items()]
    return found


def test_a_batch_leaves_each_pair_as_its_own_commit_leaves_it(
    two_stores: tuple[StateStore, StateStore], state_url: str,
) -> None:
    one, two = two_stores
    one_by_one = commit_one_by_one(one, commits(one, *seed(one)))
    with two.pairs() as tx:
        together = commit_together(tx, commits(two, *seed(two)))

    assert rows_of(one, state_url) == rows_of(two, state_url)
    assert [link.sides for link in one_by_one] == [link.sides for link in together]
    # What save_links answers is what reading the links back returns.
    assert together == [two.link_by_id(link.id) for link in together]
    # The row cache learnt what the batch cleared: a second clear sends nothing.
    assert ("jira", "OPS-2") not in two._rows.get("queued", two._load_queued)


def test_a_batch_saves_a_link_found_by_its_records_as_a_pair_does(store: StateStore) -> None:
    first, _ = seed(store)
    # Neither known by id nor new: the link holding sn1 is found and relinked.
    with store.pairs() as tx:
        (moved, new) = tx.save_links([
            LinkSave(sides("sn1", "OPS-9"), hash="m", at=T0),
            LinkSave(sides("sn5", "OPS-5"), hash="n", at=T0, new=True)])
    assert moved.id == first.id and moved.id_on("jira") == "OPS-9"
    assert store.link_by("jira", "OPS-5") == new


@pytest.fixture
def store(state_url: str) -> Iterator[StateStore]:
    with StateStore(state_url, clock=lambda: T0) as opened:
        yield opened


def refused(store: StateStore, write: Callable[[PairsTx], object]) -> None:
    """``write`` in a batch that must be refused, leaving every row as it was."""
    before = store.all_links(), store.retry_items(), store.pending_intents()
    with pytest.raises(BatchRefused), store.pairs() as tx:
        # Something of the batch was written before the refusal: rolled back too.
        tx.complete_intents(intent.id for intent in store.pending_intents())
        tx.save_links([LinkSave(sides("sn7", "OPS-7"), hash=None, at=T0, new=True)])
        write(tx)
    assert (store.all_links(), store.retry_items(), store.pending_intents()) == before


def test_a_link_known_by_id_that_is_gone_refuses_the_batch(
    store: StateStore, state_url: str,
) -> None:
    first, second = seed(store)
    store.record_intents([("servicenow", "sn8", "jira")])
    run_sql(state_url, "delete from link_sides where link_id = :id", id=second.id)
    run_sql(state_url, "delete from links where id = :id", id=second.id)
    refused(store, lambda tx: tx.save_links([
        LinkSave(sides("sn1", "OPS-1", "5"), hash="a", at=T0, link=first),
        LinkSave(sides("sn2", "OPS-2", "5"), hash="b", at=T0, link=second)]))
    # The store is usable after the refusal, and a pair's own commit sorts it out.
    with store.pair() as tx:
        again = tx.save_link(sides("sn2", "OPS-2", "5"), hash="b", at=T0, link=second)
    assert store.link_by("servicenow", "sn2") == again


def test_a_new_link_claiming_a_linked_record_refuses_the_batch(store: StateStore) -> None:
    seed(store)
    refused(store, lambda tx: tx.save_links([
        LinkSave(sides("sn6", "OPS-6"), hash=None, at=T0, new=True),
        LinkSave(sides("sn1", "OPS-8"), hash=None, at=T0, new=True)]))


def test_a_record_linked_elsewhere_meanwhile_refuses_the_batch(
    store: StateStore, state_url: str,
) -> None:
    first, second = seed(store)
    # Another writer linked sn1 to OPS-X since the batch read `first`.
    run_sql(state_url, "update link_sides set record_id = 'OPS-X' where link_id = :id "
            "and side = 'jira'", id=first.id)
    refused(store, lambda tx: tx.save_links([
        LinkSave(sides("sn2", "OPS-2", "5"), hash="b", at=T0, link=second),
        LinkSave(sides("sn1", "OPS-1", "5"), hash="a", at=T0, link=first)]))


def test_a_comment_paired_already_refuses_the_batch(store: StateStore) -> None:
    first, second = seed(store)
    with store.pair() as tx:
        tx.add_comment_link(first.id, {"servicenow": "c1", "jira": "10001"},
                            origin="servicenow", visibility="public")
    refused(store, lambda tx: tx.add_comment_links([
        CommentLink(link_id=second.id, ids={"servicenow": "c9", "jira": "10009"},
                    origin="jira", visibility="public"),
        CommentLink(link_id=first.id, ids={"servicenow": "c1", "jira": "10001"},
                    origin="servicenow", visibility="public")]))
    refused(store, lambda tx: tx.add_comment_links([
        CommentLink(link_id=first.id + second.id + 100, ids={"servicenow": "c9",
                                                             "jira": "10009"},
                    origin="jira", visibility="public")]))


def test_two_records_of_two_links_in_a_batch_raise_link_conflict(store: StateStore) -> None:
    seed(store)
    with pytest.raises(LinkConflict, match="two records claim one link"), store.pairs() as tx:
        tx.save_links([LinkSave(sides("sn1", "OPS-2"), hash=None, at=T0)])
    assert sorted(link.id_on("jira") for link in store.all_links()) == ["OPS-1", "OPS-2"]


# --------------------------------------------------------------------------- the engine



def test_a_pair_whose_records_another_writer_linked_meanwhile_fails_alone(
    memory: Any,
) -> None:
    ids = [memory_incident(memory, f"Incident {i}") for i in range(4)]
    assert memory.run().created == 4
    links = {link.id_on("servicenow"): link for link in memory.links()}
    victim = links[ids[1]]
    memory.clock.advance(minutes=5)
    for i, sys_id in enumerate(ids):
        memory.servicenow.edit(sys_id, {"short_description": f"Incident {i} edited"})

    engine = memory.engine()
    store = engine.store
    batches = store.pairs

    @contextmanager
    def raced() -> Iterator[PairsTx]:
        # Before the batch's first commit, another writer links the victim's two
        # records to two other pairs: they now claim two links.
        if not getattr(raced, "done", False):
            raced.done = True  # type: ignore[attr-defined]
            with StateStore(store._engine.url.render_as_string(hide_password=False)) as other:
                with other.pair() as tx:
                    tx.save_link(sides(victim.id_on("servicenow"), "OPS-900"), hash=None,
                                 link=victim)
                    tx.save_link(sides("elsewhere", victim.id_on("jira")), hash=None,
                                 new=True)
        with batches() as tx:
            yield tx

    store.pairs = raced  # type: ignore[method-assign]
    summary = engine.run()

    assert summary.failed == 1 and summary.updated == 3, summary.failures
    assert "two records claim one link" in summary.failures[0]
    assert ids[1] in summary.failures[0] or "Incident 1" in summary.failures[0]
    after = {link.id_on("servicenow"): link for link in memory.links()}
    for i in (0, 2, 3):
        assert after[ids[i]].snapshot_on("servicenow")["title"] == f"Incident {i} edited"
    assert [item.record_id for item in store.retry_items()] == [ids[1]]


def test_a_store_refusing_every_batch_ends_as_one_taking_them(tmp_path: Any) -> None:
    """The pair-by-pair path (creates, updates, comments, the settle step) leaves
    what the batched one leaves, with the same counts."""
    from conftest import MemoryWorld, TickingClock

    def scenario(world: Any, refuse: bool) -> tuple[list[dict[str, int]], list[Any]]:
        def engine() -> Any:
            made = world.engine()
            if refuse:
                @contextmanager
                def refusing() -> Iterator[PairsTx]:
                    raise BatchRefused("refused by the test")
                    yield  # pragma: no cover
                made.store.pairs = refusing
            return made

        ids = [memory_incident(world, f"Incident {i}") for i in range(3)]
        world.servicenow.comment(ids[0], "First comment")
        counts = [engine().run().counts()]
        world.clock.advance(minutes=5)
        world.servicenow.edit(ids[1], {"short_description": "Incident 1 edited"})
        for sys_id in ids:
            world.servicenow.comment(sys_id, f"Comment on {sys_id}")
        counts.append(engine().run().counts())
        counts.append(engine().run().counts())
        with StateStore(f"sqlite:///{world.tmp_path / 'state.db'}", create=False) as state:
            links = sorted(
                (link.snapshot_on("servicenow")["title"], link.version_on("servicenow"),
                 link.version_on("jira"), len(state.comment_links(link.id)))
                for link in state.all_links())
            assert state.retry_items() == [] and state.pending_intents() == []
        return counts, links

    results = []
    for refuse in (False, True):
        (tmp_path / str(refuse)).mkdir()
        world = MemoryWorld(tmp_path / str(refuse), TickingClock())
        try:
            results.append(scenario(world, refuse))
        finally:
            world.close()
    (batched, batched_links), (one_by_one, one_by_one_links) = results
    assert batched == one_by_one
    assert batched[0]["created"] == 3 and batched[1]["comments"] == 3
    assert batched[2]["updated"] == batched[2]["comments"] == 0
    assert [n for *_, n in batched_links] == [2, 1, 1]
    assert batched_links == one_by_one_links
