"""The ServiceNow connector against the ServiceNow sandbox: the shared contract and
the ServiceNow-specific behaviour (paging costs, journal visibility, Batch API,
resolution rules, references, hostile scope values, faults)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from connector_contract import PAGE_SIZE, ConnectorContract, FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import (
    KnownComments,
    NewComment,
    NewRecord,
    NotFound,
    RateLimited,
    RecordWrite,
    Side,
    ValidationFailed,
    group_ref,
    user_ref,
)
from connectors.retry import RetryPolicy
from connectors.sandbox.http import Fault
from connectors.sandbox.servicenow import ServiceNowSandbox
from connectors.servicenow import ServiceNowConnector

PASSWORD = "Sn0w-Pa55word-never-logged"
FIELDS = ["short_description", "description", "assigned_to", "state", "assignment_group",
          "caller_id.email", "assignment_group.name"]


def make_connector(sandbox: ServiceNowSandbox, sleeps: list[float] | None = None,
                   **kw: Any) -> ServiceNowConnector:
    sleeps = [] if sleeps is None else sleeps
    options: dict[str, Any] = {"page_size": PAGE_SIZE, **kw}
    connector = ServiceNowConnector(
        sandbox.url, "admin", PASSWORD,
        retry=RetryPolicy(sleep=sleeps.append, random=lambda: 0.0), **options,
    )
    connector.open()
    return connector


def insert(sandbox: ServiceNowSandbox, title: str, **values: Any) -> str:
    row = sandbox.insert("incident", {"short_description": title, **values})
    return str(row["sys_id"])


class TestServiceNowContract(ConnectorContract):
    title_field = "short_description"
    description_field = "description"
    user_field = "assigned_to"

    @pytest.fixture
    def sandbox(self, clock: FakeClock) -> Iterator[ServiceNowSandbox]:
        with ServiceNowSandbox(password=PASSWORD, clock=clock) as server:
            yield server

    @pytest.fixture
    def connector(self, sandbox: ServiceNowSandbox) -> Iterator[ServiceNowConnector]:
        connector = make_connector(sandbox)
        yield connector
        connector.close()

    def make_record(self, sandbox: Any, title: str, **kw: Any) -> str:
        return insert(sandbox, title, **kw)

    def new_record(self, title: str, foreign_id: str) -> NewRecord:
        return NewRecord({"short_description": title, "description": f"{title}, in detail",
                          "impact": "2", "urgency": "2"}, foreign_id)

    def update_fields(self, title: str) -> dict[str, Any]:
        return {"short_description": title}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Iterator[ServiceNowSandbox]:
    with ServiceNowSandbox(password=PASSWORD, clock=clock) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connector(sandbox: ServiceNowSandbox, sleeps: list[float]) -> Iterator[ServiceNowConnector]:
    connector = make_connector(sandbox, sleeps)
    yield connector
    connector.close()


# --------------------------------------------------------------------------- pull


def test_pull_of_many_records_costs_one_request_per_page_plus_one_journal_request_per_page(
    clock: FakeClock,
) -> None:
    with ServiceNowSandbox(password=PASSWORD, clock=clock, seed_incidents=0) as sandbox:
        for n in range(1000):
            insert(sandbox, f"Load {n}")
            if n % 7 == 0:
                clock.advance(seconds=1)
        connector = make_connector(sandbox, page_size=100)
        sandbox.log.clear()
        records = list(connector.pull(None, FIELDS))
        assert len({r.id for r in records}) == 1000
        pages = math.ceil(1000 / 100)
        # A full last page needs one more (empty) page request to know it was the last.
        assert sandbox.log.count("GET", "/api/now/table/incident") == pages + 1
        assert sandbox.log.count("GET", "/api/now/table/sys_journal_field") == pages
        assert sandbox.log.count() == 2 * pages + 1


def test_get_many_of_200_costs_a_few_requests(sandbox: ServiceNowSandbox) -> None:
    made = [insert(sandbox, f"Linked {n}") for n in range(200)]
    sandbox.update("incident", made[150], {"comments": "a note"}, as_user="bob.jones")
    connector = make_connector(sandbox, page_size=500)
    sandbox.log.clear()
    found = connector.get_many(made, FIELDS)
    assert set(found) == set(made) and len(found[made[150]].comments) == 1
    # 2 record batches + 2 journal batches of 100 ids + 1 lookup of the note's author.
    assert sandbox.log.count() == 5


def test_pull_asks_only_for_the_mapped_and_own_fields_with_raw_values(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    insert(sandbox, "Fields only")
    sandbox.log.clear()
    (record,) = list(connector.pull(None, ["short_description", "caller_id.email"]))
    (page,) = [e for e in sandbox.log.entries if e.path == "/api/now/table/incident"]
    assert "sysparm_display_value=False" in page.query
    assert "sysparm_exclude_reference_link=True" in page.query
    assert "ORDERBYsys_updated_on^ORDERBYsys_id" in page.query
    assert set(record.fields) == {"sys_id", "number", "sys_mod_count", "sys_updated_on",
                                  "correlation_id", "short_description", "caller_id.email"}


def test_pull_reads_dot_walked_people_and_groups_as_flat_keys(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    insert(sandbox, "Dot walk", caller_id=sandbox.user_sys_id("ines.moreau"),
           assignment_group=sandbox.group_sys_id("Network"))
    (record,) = list(connector.pull(None, FIELDS))
    assert record.fields["caller_id.email"] == "ines.moreau@example.com"
    assert record.fields["assignment_group.name"] == "Network"
    assert record.fields["assignment_group"] == sandbox.group_sys_id("Network")


def test_record_changed_during_paging_is_neither_skipped_nor_repeated(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox, clock: FakeClock
) -> None:
    made = []
    for n in range(3 * PAGE_SIZE):
        made.append(insert(sandbox, f"Moving {n}"))
        clock.advance(seconds=1)
    pulled = connector.pull(None, FIELDS)
    first_page = [next(pulled) for _ in range(PAGE_SIZE)]
    # An agent edits a record of the page already read: it moves to the end of
    # the order. Offset paging would now skip one record of the next page.
    clock.advance(seconds=1)
    sandbox.update("incident", first_page[1].id, {"short_description": "Edited meanwhile"})
    rest = list(pulled)
    ids = [r.id for r in first_page + rest]
    assert sorted(ids) == sorted(made)
    assert len(ids) == len(set(ids))


def test_pull_scope_with_nq_segments_is_narrowed_by_the_watermark_in_every_segment(
    sandbox: ServiceNowSandbox, clock: FakeClock
) -> None:
    old_network = insert(sandbox, "Old network", category="network")
    old_db = insert(sandbox, "Old database", category="database")
    watermark = clock.advance(hours=1)
    new_db = insert(sandbox, "New database", category="database")
    connector = make_connector(sandbox, query="category=network^NQcategory=database")
    pulled = [r.id for r in connector.pull(watermark, FIELDS)]
    assert pulled == [new_db]
    assert {r.id for r in connector.pull(None, FIELDS)} == {old_network, old_db, new_db}


def test_inactive_records_are_out_of_the_default_scope(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    active = insert(sandbox, "Still open")
    insert(sandbox, "Done", state="7", close_code="Solution provided", close_notes="Fixed")
    assert [r.id for r in connector.pull(None, FIELDS)] == [active]


def test_pull_since_is_inclusive_at_second_precision(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox, clock: FakeClock
) -> None:
    clock.advance(seconds=10)
    stamp = clock.now
    record = insert(sandbox, "On the second")
    assert [r.id for r in connector.pull(stamp + timedelta(microseconds=999), FIELDS)] == [record]


# --------------------------------------------------------------------------- comments


def test_journal_entries_come_back_with_visibility_and_author_email(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox, clock: FakeClock
) -> None:
    record = insert(sandbox, "Journal")
    clock.advance(seconds=1)
    sandbox.update("incident", record, {"comments": "Please reboot"}, as_user="bob.jones")
    clock.advance(seconds=1)
    sandbox.update("incident", record, {"work_notes": "Root cause: bad driver"},
                   as_user="chen.wei")
    (pulled,) = list(connector.pull(None, FIELDS))
    assert [(c.body, c.visibility, c.author) for c in pulled.comments] == [
        ("Please reboot", "public", "bob.jones@example.com"),
        ("Root cause: bad driver", "internal", "chen.wei@example.com"),
    ]
    assert pulled.comments[0].created < pulled.comments[1].created


def test_add_comment_writes_work_notes_for_internal_and_comments_for_public(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    record = insert(sandbox, "Where does it go")
    connector.add_comment(record, "for the caller", "public")
    connector.add_comment(record, "for agents", "internal")
    connector.add_comment(record, "unclear audience", "someone")
    elements = {r["value"]: r["element"] for r in sandbox.journal(record)}
    assert elements == {"for the caller": "comments", "for agents": "work_notes",
                        "unclear audience": "work_notes"}


def test_add_comment_to_a_missing_record_is_not_found(connector: ServiceNowConnector) -> None:
    with pytest.raises(NotFound):
        connector.add_comment("0" * 32, "hello", "public")
    with pytest.raises(NotFound):
        connector.add_comment("../sys_user", "hello", "public")


# --------------------------------------------------------------------------- writes


def test_create_many_uses_the_batch_api_and_one_user_lookup(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    sandbox.log.clear()
    records = [NewRecord({"short_description": f"Bulk {n}",
                          "assigned_to": user_ref("alice.smith@example.com"),
                          "assignment_group": group_ref("Network")}, f"OPS-{n}")
               for n in range(60)]
    results = connector.create(records)
    assert all(r.ok and r.version == "0" for r in results)
    assert sandbox.log.count("POST", "/api/now/v1/batch") == 2       # 50 + 10
    # (The sandbox also logs each item the batch ran, as a batch item, not a wire request.)
    assert sandbox.log.wire("POST") == 2
    assert sandbox.log.count("GET", "re:/sys_user$") == 1
    assert sandbox.log.count("GET", "/api/now/table/sys_user_group") == 1
    row = sandbox.get("incident", results[59].id or "")
    assert row is not None
    assert row["correlation_id"] == "OPS-59" and row["correlation_display"] == "JIRA"
    assert row["assigned_to"] == sandbox.user_sys_id("alice.smith")
    assert row["assignment_group"] == sandbox.group_sys_id("Network")
    # Cached per run: the next write resolves without asking again.
    connector.create([NewRecord({"assigned_to": user_ref("Alice.Smith@example.com"),
                                 "short_description": "Again"}, "OPS-99")])
    assert sandbox.log.count("GET", "re:/sys_user$") == 1


def test_batch_create_maps_per_item_failures_without_failing_the_others(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    results = connector.create([
        NewRecord({"short_description": "Fine"}, "OPS-1"),
        NewRecord({"short_description": "Bad state", "state": "42"}, "OPS-2"),
        NewRecord({"short_description": "Bad code", "state": "6", "close_code": "Magic",
                   "close_notes": "It went away"}, "OPS-3"),
        NewRecord({"short_description": "Also fine"}, "OPS-4"),
    ])
    assert [r.ok for r in results] == [True, False, False, True]
    assert isinstance(results[1].error, ValidationFailed)
    assert isinstance(results[2].error, ValidationFailed)
    assert "close_code" in str(results[2].error)


def test_batch_create_resends_unserviced_items(clock: FakeClock) -> None:
    with ServiceNowSandbox(password=PASSWORD, clock=clock, max_batch_items=3) as sandbox:
        connector = make_connector(sandbox)
        results = connector.create(
            [NewRecord({"short_description": f"Item {n}"}, f"OPS-{n}") for n in range(7)])
        assert all(r.ok for r in results)
        assert len({r.id for r in results}) == 7
        assert sandbox.log.count("POST", "/api/now/v1/batch") == 3


def test_single_create_without_batch_api_posts_to_the_table(
    sandbox: ServiceNowSandbox
) -> None:
    connector = make_connector(sandbox, use_batch_api=False)
    results = connector.create([NewRecord({"short_description": f"One {n}"}, f"OPS-{n}")
                                for n in range(2)])
    assert all(r.ok and r.display.startswith("INC") for r in results)
    assert sandbox.log.count("POST", "/api/now/table/incident") == 2
    assert sandbox.log.count("POST", "/api/now/v1/batch") == 0


def test_write_many_of_a_hundred_records_costs_one_version_read_and_two_batches(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox, clock: FakeClock
) -> None:
    ids = [insert(sandbox, f"Many {n}") for n in range(100)]
    seen = {r.id: r.version for r in connector.get_many(ids, FIELDS).values()}
    clock.advance(seconds=2)
    sandbox.log.clear()
    results = connector.write_many([
        RecordWrite(sys_id, {"short_description": f"Edited {n}"},
                    f"OPS-{n}" if n % 2 else None, seen[sys_id])
        for n, sys_id in enumerate(ids)])
    assert all(r.ok and r.version == "1" for r in results), [r.error for r in results]
    # One sys_idIN read of 100 versions, then 50 + 50 PATCH sub-requests.
    assert sandbox.log.count("GET", "/api/now/table/incident") == 1
    assert sandbox.log.count("POST", "/api/now/v1/batch") == 2
    assert sandbox.log.count("PATCH", "/api/now/table/incident/") == 100
    assert sandbox.log.count("PATCH") == 100 and sandbox.log.count("PUT") == 0
    assert sandbox.log.wire() == 3 and sandbox.log.count(batch_item=True) == 100
    assert sandbox.get("incident", ids[1])["correlation_id"] == "OPS-1"  # type: ignore[index]
    assert sandbox.get("incident", ids[0])["correlation_id"] == ""  # type: ignore[index]


def test_write_many_without_expected_versions_reads_nothing(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    ids = [insert(sandbox, f"Blind {n}") for n in range(3)]
    sandbox.log.clear()
    results = connector.write_many([RecordWrite(i, {}, f"OPS-{n}") for n, i in enumerate(ids)])
    assert all(r.ok for r in results)
    assert sandbox.log.count("GET") == 0
    assert sandbox.log.count("POST", "/api/now/v1/batch") == 1


def test_write_many_keeps_a_records_writes_in_order_across_rounds(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    first, other = insert(sandbox, "Round trip"), insert(sandbox, "Bystander")
    sandbox.log.clear()
    results = connector.write_many([
        RecordWrite(first, {"short_description": "one"}),
        RecordWrite(other, {"short_description": "other"}),
        RecordWrite(first, {"short_description": "two"}, None, "1"),
    ])
    assert [r.version for r in results] == ["1", "1", "2"]
    assert sandbox.get("incident", first)["short_description"] == "two"  # type: ignore[index]
    # The Batch API does not promise item order: the second write waits for a later
    # batch, checked against the version the first answered with (no extra read).
    assert sandbox.log.count("POST", "/api/now/v1/batch") == 2
    assert sandbox.log.count("GET") == 0


def test_write_many_maps_a_data_policy_refusal_to_its_item_only(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    good, bad = insert(sandbox, "Fine"), insert(sandbox, "Half resolved")
    results = connector.write_many([RecordWrite(bad, {"state": "6"}),
                                    RecordWrite(good, {"short_description": "Still fine"})])
    assert isinstance(results[0].error, ValidationFailed) and results[1].ok
    assert sandbox.get("incident", bad)["state"] == "1"  # type: ignore[index]


def test_batch_items_refused_with_429_are_resent_after_retry_after(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox, sleeps: list[float]
) -> None:
    ids = [insert(sandbox, f"Throttled {n}") for n in range(4)]
    sandbox.faults.script = [Fault("429", retry_after=7, method="PATCH")]
    results = connector.write_many([RecordWrite(i, {"short_description": "x"}) for i in ids])
    assert all(r.ok for r in results), [r.error for r in results]
    assert sleeps == [7.0]
    assert sandbox.log.count("POST", "/api/now/v1/batch") == 2
    assert all(sandbox.get("incident", i)["sys_mod_count"] == "1"  # type: ignore[index]
               for i in ids)


def test_write_many_without_batch_api_writes_record_by_record(
    sandbox: ServiceNowSandbox
) -> None:
    connector = make_connector(sandbox, use_batch_api=False)
    ids = [insert(sandbox, f"Each {n}") for n in range(3)]
    results = connector.write_many([RecordWrite(i, {"short_description": "e"}) for i in ids])
    comments = connector.add_comments([NewComment(i, "hello", "public") for i in ids])
    assert all(r.ok for r in results) and all(c.ok for c in comments)
    assert sandbox.log.count("POST", "/api/now/v1/batch") == 0
    assert sandbox.log.count("PATCH", "/api/now/table/incident/") == 6


def test_add_comments_batches_journal_writes_and_reads_their_ids_once(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    ids = [insert(sandbox, f"Chat {n}") for n in range(30)]
    wanted = [NewComment(i, f"note {n} on {k}", "public" if k % 2 else "internal")
              for n, i in enumerate(ids) for k in range(2)]
    sandbox.log.clear()
    results = connector.add_comments(wanted)
    assert all(r.ok and r.comment for r in results), [r.error for r in results]
    # Two rounds (each record's second comment after its first) of 30 sub-requests,
    # one journal read for all 30 records, one author lookup.
    assert sandbox.log.count("POST", "/api/now/v1/batch") == 2
    assert sandbox.log.count("GET", "/api/now/table/sys_journal_field") == 1
    assert sandbox.log.count("GET", "/api/now/table/sys_user") == 1
    assert sandbox.log.wire() == 4  # 60 comments: 2 batches, 1 journal read, 1 author
    for n, sys_id in enumerate(ids):
        rows = sandbox.journal(sys_id)
        assert [(r["value"], r["element"]) for r in rows] == [
            (f"note {n} on 0", "work_notes"), (f"note {n} on 1", "comments")]
        mine = [r.comment for r in results[2 * n:2 * n + 2]]
        assert [c.id for c in mine if c] == [r["sys_id"] for r in rows]
        assert [c.visibility for c in mine if c] == ["internal", "public"]


def test_add_comments_with_equal_texts_on_one_record_gets_distinct_ids(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    sys_id = insert(sandbox, "Echo")
    results = connector.add_comments([NewComment(sys_id, "+1", "public")] * 3)
    made = [c.comment.id for c in results if c.comment]
    # Written in one second, equal entries cannot be told apart: each gets its own.
    assert len(set(made)) == 3 and set(made) == {r["sys_id"] for r in sandbox.journal(sys_id)}


def test_an_empty_comment_in_a_batch_fails_alone(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    sys_id = insert(sandbox, "Quiet")
    results = connector.add_comments([NewComment(sys_id, "  ", "public"),
                                      NewComment(sys_id, "said", "public")])
    assert isinstance(results[0].error, ValidationFailed) and results[1].ok
    assert [r["value"] for r in sandbox.journal(sys_id)] == ["said"]


def test_resolving_without_close_code_is_rejected_naming_the_fields(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    record = insert(sandbox, "Resolve me")
    with pytest.raises(ValidationFailed) as caught:
        connector.update(record, {"state": "6"})
    assert set(caught.value.fields) >= {"close_code", "close_notes"}
    (created,) = connector.create([NewRecord({"short_description": "x", "state": "6"}, "OPS-5")])
    assert isinstance(created.error, ValidationFailed)
    assert set(created.error.fields) == {"close_code", "close_notes"}
    (half,) = connector.create([NewRecord({"short_description": "y", "state": "7",
                                           "close_code": "Solution provided"}, "OPS-6")])
    assert isinstance(half.error, ValidationFailed) and set(half.error.fields) == {"close_notes"}


def test_resolving_with_close_code_sets_the_state_directly(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    record = insert(sandbox, "Resolve me")
    result = connector.update(record, {"state": "6", "close_code": "Solution provided",
                                       "close_notes": "Replaced the cable"})
    row = sandbox.get("incident", record)
    assert row is not None and row["state"] == "6" and result.version == row["sys_mod_count"]


def test_update_of_a_missing_record_is_not_found(connector: ServiceNowConnector) -> None:
    with pytest.raises(NotFound):
        connector.update("f" * 32, {"short_description": "ghost"})
    with pytest.raises(NotFound):
        connector.update("f" * 32, {"short_description": "ghost"}, expected_version="1")


def test_update_clears_a_user_with_none_and_keeps_it_for_an_unknown_email(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    alice = sandbox.user_sys_id("alice.smith")
    record = insert(sandbox, "Owned", assigned_to=alice)
    result = connector.update(record, {"assigned_to": user_ref("ghost@example.invalid"),
                                       "assignment_group": group_ref("No Such Team")})
    assert len(result.warnings) == 2
    assert "No Such Team" in result.warnings[1]
    assert (sandbox.get("incident", record) or {})["assigned_to"] == alice
    connector.update(record, {"assigned_to": user_ref(None)})
    assert (sandbox.get("incident", record) or {})["assigned_to"] == ""


# --------------------------------------------------------------------------- faults


def test_rate_limited_page_is_retried_after_retry_after(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox, sleeps: list[float]
) -> None:
    insert(sandbox, "Behind a limit")
    sandbox.faults.script.extend([Fault("429", retry_after=1), Fault("503", retry_after=0)])
    assert len(list(connector.pull(None, FIELDS))) == 1
    assert sleeps == [1.0, 0.0]


def test_dropped_connection_and_proxy_page_on_reads_are_retried(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    record = insert(sandbox, "Flaky network")
    sandbox.faults.script.extend([Fault("drop"), Fault("html"), Fault("500")])
    assert set(connector.get_many([record], FIELDS)) == {record}


def test_write_is_not_retried_after_a_server_error_but_is_after_a_rate_limit(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    record = insert(sandbox, "Careful writes")
    sandbox.faults.script.append(Fault("500", method="PATCH"))
    with pytest.raises(Exception) as caught:
        connector.update(record, {"short_description": "maybe"})
    assert type(caught.value).__name__ == "RetriableError"
    assert sandbox.log.count("PATCH") == 1
    sandbox.faults.script.append(Fault("429", method="PATCH", retry_after=0))
    assert connector.update(record, {"short_description": "surely"}).ok
    assert sandbox.log.count("PATCH") == 3


def test_persistent_rate_limit_surfaces_as_rate_limited(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    sandbox.faults.script.extend([Fault("429", retry_after=0)] * 5)
    with pytest.raises(RateLimited) as caught:
        list(connector.pull(None, FIELDS))
    assert caught.value.retry_after == 0.0


# --------------------------------------------------------------------------- check


def test_check_reports_access_scope_fields_and_states(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    insert(sandbox, "For the sample")
    rows = connector.check(["short_description", "caller_id.email", "u_not_a_field"],
                           ["1", "2", "6", "99"])
    by_what = {r.what: r for r in rows}
    assert all(r.side is Side.SERVICENOW for r in rows)
    assert by_what["reach and sign in"].ok
    assert by_what["read incident in scope"].ok
    assert not by_what["mapped fields exist"].ok
    assert "u_not_a_field" in by_what["mapped fields exist"].detail
    assert not by_what["mapped states exist"].ok
    assert "99" in by_what["mapped states exist"].detail
    assert sandbox.log.writes() == 0


def test_check_with_wrong_password_says_so_without_the_password(
    sandbox: ServiceNowSandbox
) -> None:
    connector = ServiceNowConnector(sandbox.url, "admin", "wrong-" + PASSWORD,
                                    retry=RetryPolicy(sleep=lambda s: None))
    (row,) = connector.check(["short_description"], ["1"])
    assert not row.ok and "401" in row.detail and "admin" in row.detail
    assert PASSWORD not in row.detail


def test_check_flags_a_scope_query_naming_an_unknown_field(sandbox: ServiceNowSandbox) -> None:
    insert(sandbox, "Sample")
    connector = make_connector(sandbox, query="active=true^u_tpyo=1")
    rows = {r.what: r for r in connector.check(["short_description"], [])}
    assert not rows["scope query fields exist"].ok
    assert "u_tpyo" in rows["scope query fields exist"].detail
    assert rows["mapped fields exist"].ok


# --------------------------------------------------------------------------- hostile values


HOSTILE_TITLES = ['He said "reboot"', "a^ORactive=false", "x^NQactive=true", "line\nbreak",
                  "back\\slash", ") OR project = X", "Ünïcødé 漢字 ✓", "'; DROP TABLE incident"]


def test_hostile_titles_round_trip_unchanged(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    results = connector.create([NewRecord({"short_description": t}, f"OPS-{n}")
                                for n, t in enumerate(HOSTILE_TITLES)])
    assert all(r.ok for r in results)
    pulled = {r.id: r.fields["short_description"] for r in connector.pull(None, FIELDS)}
    assert [pulled[r.id or ""] for r in results] == HOSTILE_TITLES
    first = results[0].id or ""
    updated = connector.update(first, {"short_description": HOSTILE_TITLES[1]})
    assert updated.ok
    assert (sandbox.get("incident", first) or {})["short_description"] == HOSTILE_TITLES[1]


def test_find_by_foreign_id_searches_outside_the_scope(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    resolved = insert(sandbox, "Closed long ago", correlation_id="OPS-404", state="7",
                      close_code="Solution provided", close_notes="Done")
    insert(sandbox, "Unlinked")
    assert [r.id for r in connector.pull(None, FIELDS) if r.id == resolved] == []
    found = connector.find_by_foreign_id(["OPS-404", ""], FIELDS)
    assert {k: v.id for k, v in found.items()} == {"OPS-404": resolved}


def test_a_closed_connector_opens_again_with_fresh_caches(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    connector.create([NewRecord({"short_description": "a",
                                 "assigned_to": user_ref("bob.jones@example.com")}, "OPS-1")])
    connector.close()
    sandbox.log.clear()
    assert connector.open().user == "admin@example.com"
    connector.create([NewRecord({"short_description": "b",
                                 "assigned_to": user_ref("bob.jones@example.com")}, "OPS-2")])
    assert sandbox.log.count("GET", "re:/sys_user$") == 2  # open() + a new user lookup


# --------------------------------------------------------------------------- property


@settings(max_examples=15, deadline=None)
@given(
    page_size=st.integers(min_value=1, max_value=4),
    steps=st.lists(st.tuples(st.sampled_from(["insert", "edit", "close"]),
                             st.integers(min_value=0, max_value=30),
                             st.integers(min_value=0, max_value=2)),
                   min_size=1, max_size=14),
)
def test_pull_returns_each_record_in_scope_exactly_once_in_order(
    page_size: int, steps: list[tuple[str, int, int]]
) -> None:
    clock = FakeClock()
    with ServiceNowSandbox(password=PASSWORD, clock=clock) as sandbox:
        made: list[str] = []
        for action, pick, tick in steps:
            if action == "insert" or not made:
                made.append(insert(sandbox, f"Record {len(made)}"))
            elif action == "edit":
                sandbox.update("incident", made[pick % len(made)], {"urgency": "1"})
            else:
                sandbox.update("incident", made[pick % len(made)], {
                    "state": "6", "close_code": "Solution provided", "close_notes": "ok"})
            clock.advance(seconds=tick)
        connector = make_connector(sandbox, page_size=page_size)
        pulled = list(connector.pull(None, FIELDS))
        in_scope = {r["sys_id"] for r in sandbox.rows("incident") if r["active"] == "true"}
        assert [r.id for r in pulled] == sorted(
            in_scope, key=lambda i: ((sandbox.get("incident", i) or {})["sys_updated_on"], i))


def test_without_batch_api_records_overlap_and_429s_lower_the_concurrency(
    sandbox: ServiceNowSandbox, sleeps: list[float]
) -> None:
    connector = make_connector(sandbox, sleeps, use_batch_api=False, concurrency=4)
    ids = [insert(sandbox, f"Parallel {n}") for n in range(5)]
    sandbox.faults.latency_ms = 10
    sandbox.faults.script.extend([Fault("429", retry_after=3, method="PATCH")] * 2)
    results = connector.add_comments([NewComment(i, f"{i} #{k}", "public")
                                      for k in range(3) for i in ids])
    assert all(r.ok for r in results), [r.error for r in results]
    assert connector._limit.peak > 1 and connector._limit.lowest < 4
    assert 3.0 in sleeps
    for sys_id in ids:
        assert [r["value"] for r in sandbox.journal(sys_id)] == [f"{sys_id} #{k}"
                                                                 for k in range(3)]


# --------------------------------------------------------------------------- read-back


def _journal_reads(sandbox: ServiceNowSandbox) -> int:
    return sandbox.log.count("GET", "/api/now/table/sys_journal_field")


def test_get_many_takes_the_known_comments_of_a_record_still_at_their_version(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    """Adding a comment saves the record: one still at the version the caller's comments
    go with has none the caller lacks, so its journal is not read again."""
    sys_id = insert(sandbox, "Known comments")
    sandbox.update("incident", sys_id, {"comments": "Seen already"}, as_user="bob.jones")
    before = connector.get_many([sys_id], FIELDS)[sys_id]
    assert [c.body for c in before.comments] == ["Seen already"]
    sandbox.log.clear()
    again = connector.get_many([sys_id], FIELDS, comments_at={
        sys_id: KnownComments(before.version, tuple(before.comments))})
    assert _journal_reads(sandbox) == 0
    assert again[sys_id].comments == before.comments and again[sys_id].version == before.version


def test_get_many_reads_the_journal_of_a_record_a_comment_moved_since(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    sys_id = insert(sandbox, "Moved on")
    before = connector.get_many([sys_id], FIELDS)[sys_id]
    other = insert(sandbox, "Still")
    still = connector.get_many([other], FIELDS)[other]
    sandbox.update("incident", sys_id, {"comments": "Added by a person"},
                   as_user="bob.jones")
    sandbox.log.clear()
    found = connector.get_many([sys_id, other], FIELDS, comments_at={
        sys_id: KnownComments(before.version, tuple(before.comments)),
        other: KnownComments(still.version, tuple(still.comments))})
    # One journal read, for the record that moved only.
    assert _journal_reads(sandbox) == 1
    journal = [e for e in sandbox.log.entries if e.path.endswith("/sys_journal_field")]
    assert sys_id in journal[0].query and other not in journal[0].query
    assert [c.body for c in found[sys_id].comments] == ["Added by a person"]


def test_get_many_trusts_the_known_comments_past_the_connector_s_own_back_link(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    """A back-link (correlation_id) saved once on the version checked just before it
    adds no journal entry: a read after it needs no journal read either."""
    sys_id = insert(sandbox, "Marked")
    sandbox.update("incident", sys_id, {"work_notes": "Internal"}, as_user="bob.jones")
    before = connector.get_many([sys_id], FIELDS)[sys_id]
    (marked,) = connector.write_many([RecordWrite(sys_id, {}, "OPS-7", before.version)])
    assert marked.ok and marked.version == str(int(before.version) + 1)
    sandbox.log.clear()
    found = connector.get_many([sys_id], FIELDS, comments_at={
        sys_id: KnownComments(before.version, tuple(before.comments))})
    assert _journal_reads(sandbox) == 0
    assert found[sys_id].version == marked.version
    assert [c.body for c in found[sys_id].comments] == ["Internal"]
    assert found[sys_id].foreign_id == "OPS-7"


def test_a_comment_landing_between_the_check_and_the_back_link_is_read_back(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Table API has no conditional write: a person's comment can land between the
    version read and the Batch API PATCH. The write's answer then shows two saves, not
    one, so the read after it reads the journal and sees the comment."""
    sys_id = insert(sandbox, "Raced")
    before = connector.get_many([sys_id], FIELDS)[sys_id]
    serve = sandbox.handle

    def person_first(request: Any) -> Any:
        if request.path.endswith("/batch"):
            sandbox.update("incident", sys_id, {"comments": "Typed meanwhile"},
                           as_user="bob.jones")
        return serve(request)

    monkeypatch.setattr(sandbox, "handle", person_first)
    (marked,) = connector.write_many([RecordWrite(sys_id, {}, "OPS-8", before.version)])
    monkeypatch.setattr(sandbox, "handle", serve)
    assert marked.ok and marked.version == str(int(before.version) + 2)
    sandbox.log.clear()
    found = connector.get_many([sys_id], FIELDS, comments_at={
        sys_id: KnownComments(before.version, tuple(before.comments))})
    assert _journal_reads(sandbox) == 1
    assert [c.body for c in found[sys_id].comments] == ["Typed meanwhile"]


def test_a_comment_after_the_back_link_is_read_back(
    connector: ServiceNowConnector, sandbox: ServiceNowSandbox
) -> None:
    sys_id = insert(sandbox, "Later")
    before = connector.get_many([sys_id], FIELDS)[sys_id]
    (marked,) = connector.write_many([RecordWrite(sys_id, {}, "OPS-9", before.version)])
    assert marked.ok
    sandbox.update("incident", sys_id, {"comments": "After the link"}, as_user="bob.jones")
    sandbox.log.clear()
    found = connector.get_many([sys_id], FIELDS, comments_at={
        sys_id: KnownComments(before.version, tuple(before.comments))})
    assert _journal_reads(sandbox) == 1
    assert [c.body for c in found[sys_id].comments] == ["After the link"]
