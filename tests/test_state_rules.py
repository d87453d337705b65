"""The state store's rule tables: firings per link, due times, and the schema step adding them.

Tests taking ``state_url`` run on SQLite and on PostgreSQL (see conftest).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from db_helpers import run_sql

from sync.state import SCHEMA_VERSION, LinkSide, StateStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def link(store: StateStore, sn: str, key: str, *, firings: Any = (),
         due: datetime | None = None, at: datetime = T0) -> int:
    with store.pair() as tx:
        saved = tx.save_link({"servicenow": LinkSide(sn, sn, {"title": "x"}, "1"),
                              "jira": LinkSide(key, key, {"title": "x"}, "1")},
                             hash=None, at=at)
        tx.record_rule_firings(saved.id, list(firings), at=at)
        tx.set_rules_due(saved.id, due)
    return saved.id


def test_firings_are_kept_per_link_in_order_and_read_for_many_links_at_once(
    state_url: str
) -> None:
    with StateStore(state_url, clock=lambda: T0) as store:
        one = link(store, "sn1", "OPS-1", firings=[
            {"rule": "outage", "field": "impact", "old": 2, "new": 1},
            {"rule": "outage", "field": "labels", "old": [], "new": ["outage"]}])
        two = link(store, "sn2", "OPS-2", firings=[
            {"rule": "major", "field": "internal_note", "old": None, "new": "For managers",
             "note_id": "rules:major:escalation-2"}])
        three = link(store, "sn3", "OPS-3")
        later = T0 + timedelta(hours=1)
        with store.pair() as tx:
            tx.record_rule_firings(one, [{"rule": "outage", "field": "impact", "old": 3,
                                          "new": 1}], at=later)

        found = store.rule_firings([one, two, three])

    assert set(found) == {one, two}   # a link without firings has no entry
    assert [(f.rule, f.field, f.old, f.new, f.at) for f in found[one]] == [
        ("outage", "impact", 2, 1, T0), ("outage", "labels", [], ["outage"], T0),
        ("outage", "impact", 3, 1, later)]
    (note,) = found[two]
    assert (note.note_id, note.new) == ("rules:major:escalation-2", "For managers")


def test_due_links_are_those_due_by_now_of_this_connection_only(state_url: str) -> None:
    with StateStore(state_url) as store:
        soon = link(store, "sn1", "OPS-1", due=T0 + timedelta(minutes=15))
        link(store, "sn2", "OPS-2", due=T0 + timedelta(hours=4))
        link(store, "sn3", "OPS-3")   # no time-based rule
    with StateStore(state_url, connection="hr") as other:
        link(other, "sn9", "HR-9", due=T0)

    with StateStore(state_url) as store:
        assert store.rules_due(T0) == []
        assert [x.id for x in store.rules_due(T0 + timedelta(minutes=15))] == [soon]
        assert [x.id_on("jira") for x in store.rules_due(T0 + timedelta(days=1))] == [
            "OPS-1", "OPS-2"]
        # A commit that finds nothing due any more clears the date.
        with store.pair() as tx:
            tx.set_rules_due(soon, None)
        assert store.rules_due_at(soon) is None
        assert [x.id_on("jira") for x in store.rules_due(T0 + timedelta(days=1))] == ["OPS-2"]
        assert store.rule_firings([soon]) == {}
    with StateStore(state_url, connection="hr") as other:
        assert [x.id_on("jira") for x in other.rules_due(T0)] == ["HR-9"]


def test_a_pair_that_fails_records_no_firings_and_no_due_time(state_url: str) -> None:
    with StateStore(state_url) as store:
        one = link(store, "sn1", "OPS-1")
        try:
            with store.pair() as tx:
                tx.record_rule_firings(one, [{"rule": "r", "field": "impact", "old": 2,
                                              "new": 1}], at=T0)
                tx.set_rules_due(one, T0)
                raise RuntimeError("the pair's write failed")
        except RuntimeError:
            pass
        assert store.rule_firings([one]) == {} and store.rules_due_at(one) is None


def test_a_schema_3_store_gains_the_rule_tables_and_keeps_every_row(state_url: str) -> None:
    # A store as the schema-3 code left it: the tables of today but the rule tables.
    with StateStore(state_url) as store:
        first = link(store, "sn1", "OPS-1")
        with store.pair() as tx:
            tx.add_comment_link(first, {"servicenow": "c1", "jira": "10001"},
                                origin="servicenow", visibility="public")
    run_sql(state_url, "DROP TABLE link_rules")
    run_sql(state_url, "DROP TABLE rule_firings")
    run_sql(state_url, "UPDATE meta SET value = '3' WHERE key = 'schema_version'")

    with StateStore(state_url) as store:
        (kept,) = store.all_links()
        assert (kept.id, kept.id_on("jira")) == (first, "OPS-1")
        assert [c.id_on("jira") for c in store.comment_links(first)] == ["10001"]
        # Links synced before have no due date; the new tables work at once.
        assert store.rules_due_at(first) is None
        with store.pair() as tx:
            tx.record_rule_firings(first, [{"rule": "r", "field": "impact", "old": 2,
                                            "new": 1}], at=T0)
            tx.set_rules_due(first, T0)
        assert [f.field for f in store.rule_firings([first])[first]] == ["impact"]
        assert [x.id for x in store.rules_due(T0)] == [first]
    [(version,)] = run_sql(state_url, "select value from meta where key='schema_version'")
    assert version == str(SCHEMA_VERSION) == "4"
