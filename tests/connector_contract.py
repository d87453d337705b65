"""The contract every connector honours, run against its vendor's sandbox.

Contract (for the vendor test modules that subclass :class:`ConnectorContract`):
- pytest collects only ``Test*`` subclasses, so this class is never run by itself.
  Import it as ``from connector_contract import ConnectorContract`` (``tests/``
  is not a package; pytest puts it on ``sys.path``).
- A subclass provides the fixtures ``sandbox`` (a running sandbox built with
  ``clock=clock`` and no seed incidents) and ``connector`` (opened against it with
  ``page_size=PAGE_SIZE`` and a :class:`connectors.retry.RetryPolicy` that does not
  sleep), and the hooks below. The ``clock`` fixture is defined here: a
  :class:`FakeClock` the sandbox stamps records with, so tests move time by hand
  instead of sleeping.
- Hooks: ``title_field``, ``description_field``, ``user_field`` (vendor field
  names), ``make_record`` (creates a record in scope directly in the sandbox),
  ``new_record`` (a :class:`NewRecord` for ``connector.create``),
  ``update_fields`` (fields that set a new title), ``comment_body`` /
  ``comment_text`` (a comment body in the vendor's raw format and back) and
  ``hostile_foreign_ids`` (ids meant to break a query's structure).
- Request counts are read from ``sandbox.log`` and bounded in pages, never in
  time, so the suite stays deterministic on noisy machines.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import (
    Connector,
    ConnectorError,
    NewComment,
    NewRecord,
    PreconditionFailed,
    RecordWrite,
    RemoteRecord,
    Side,
    user_ref,
)

PAGE_SIZE = 5
KNOWN_EMAIL = "alice.smith@example.com"
UNKNOWN_EMAIL = "nobody.here@example.invalid"


class FakeClock:
    """A hand-moved UTC clock; call it for the current time (the sandbox's ``clock``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


class ConnectorContract:
    """Behaviour both connectors share; subclass per vendor (and per Jira flavor)."""

    title_field: str = ""
    description_field: str = ""
    user_field: str = ""

    # Foreign ids written by hostile or careless users: quoting, the encoded-query
    # separators (^, ^OR, ^NQ), JQL operators, newlines, backslashes and unicode.
    hostile_foreign_ids: tuple[str, ...] = (
        'OPS-1"',
        "OPS-1^ORactive=false",
        "OPS-1^NQactive=true",
        "OPS-1\nactive=true",
        "OPS-1\\",
        "OPS-1) OR project = X",
        "OPS-1' OR '1'='1",
        "OPS-1,OPS-2",
        "ÖPS-1-ünïcødé-漢字",
    )

    # An id shaped like the vendor's that names no record.
    missing_id: str = "f" * 32

    # ------------------------------------------------------------------ hooks

    def make_record(self, sandbox: Any, title: str, **kw: Any) -> str:
        """Create a record in scope directly in the sandbox; return its id.
        ``description=`` sets the description when given."""
        raise NotImplementedError

    def new_record(self, title: str, foreign_id: str) -> NewRecord:
        """A record for ``connector.create`` carrying ``foreign_id``."""
        raise NotImplementedError

    def update_fields(self, title: str) -> dict[str, Any]:
        """Fields for ``connector.update`` that set the title to ``title``."""
        raise NotImplementedError

    def comment_body(self, text: str) -> Any:
        """``text`` as a raw comment body in the vendor's format."""
        return text

    def comment_text(self, body: Any) -> str:
        """The plain text of a raw comment body."""
        return str(body)

    @property
    def fields(self) -> list[str]:
        return [self.title_field, self.description_field, self.user_field]

    # ------------------------------------------------------------------ fixtures

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    # ------------------------------------------------------------------ helpers

    def _get(self, connector: Connector, record_id: str) -> RemoteRecord:
        found = connector.get_many([record_id], self.fields)
        assert record_id in found, f"record {record_id} not found by get_many"
        return found[record_id]

    # ------------------------------------------------------------------ pull

    def test_pull_returns_every_record_in_scope_once_in_updated_order(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        made = []
        for n in range(2 * PAGE_SIZE + 2):
            made.append(self.make_record(sandbox, f"Printer {n} jammed"))
            clock.advance(seconds=1)
        pulled = list(connector.pull(None, self.fields))
        ids = [r.id for r in pulled]
        assert len(ids) == len(set(ids)), "a record came back twice"
        assert set(made) <= set(ids)
        stamps = [r.updated for r in pulled]
        assert stamps == sorted(stamps)
        assert all(r.updated.tzinfo is not None for r in pulled)
        by_id = {r.id: r for r in pulled}
        assert [by_id[i].fields[self.title_field] for i in made] == [
            f"Printer {n} jammed" for n in range(len(made))
        ]
        assert all(by_id[i].side in (Side.SERVICENOW, Side.JIRA) for i in made)
        assert all(by_id[i].display and by_id[i].version for i in made)

    def test_pull_since_a_watermark_returns_only_newer_records(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        old = [self.make_record(sandbox, f"Old {n}") for n in range(3)]
        # Well past any overlap a connector adds for coarse query precision.
        watermark = clock.advance(minutes=30)
        clock.advance(seconds=5)
        new = [self.make_record(sandbox, f"New {n}") for n in range(PAGE_SIZE + 1)]
        pulled = [r.id for r in connector.pull(watermark, self.fields)]
        assert sorted(pulled) == sorted(new)
        assert not set(old) & set(pulled)

    def test_pull_with_nothing_changed_returns_nothing(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        self.make_record(sandbox, "Quiet one")
        watermark = clock.advance(hours=2)
        assert list(connector.pull(watermark, self.fields)) == []

    # ------------------------------------------------------------------ get_many

    def test_get_many_fetches_in_batches_not_one_request_per_record(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        made = [self.make_record(sandbox, f"Batch {n}") for n in range(12)]
        sandbox.log.clear()
        found = connector.get_many([*made, *made[:2]], self.fields)
        assert set(found) == set(made)
        assert all(found[i].fields[self.title_field] == f"Batch {n}" for n, i in enumerate(made))
        pages = math.ceil(len(made) / PAGE_SIZE)
        assert sandbox.log.count() <= 2 * pages + 2
        assert sandbox.log.count() < len(made)

    def test_get_many_leaves_out_ids_that_do_not_exist(
        self, connector: Connector, sandbox: Any
    ) -> None:
        real = self.make_record(sandbox, "Exists")
        found = connector.get_many([real], self.fields)
        assert set(found) == {real}
        assert connector.get_many([], self.fields) == {}

    # ------------------------------------------------------------------ create

    def test_create_returns_ids_and_versions_and_the_foreign_id_is_findable(
        self, connector: Connector
    ) -> None:
        records = [self.new_record(f"Created {n}", f"FOREIGN-{n}") for n in range(3)]
        results = connector.create(records)
        assert len(results) == 3
        assert all(r.ok and r.id and r.version and r.display for r in results), results
        found = connector.find_by_foreign_id([f"FOREIGN-{n}" for n in range(3)], self.fields)
        assert {k: v.id for k, v in found.items()} == {
            f"FOREIGN-{n}": results[n].id for n in range(3)
        }
        assert all(v.foreign_id == k for k, v in found.items())
        current = connector.get_many([r.id for r in results if r.id], self.fields)
        # The engine recognises its own writes by this stamp (echo suppression).
        assert [current[r.id].version for r in results if r.id] == [r.version for r in results]
        assert current[results[0].id or ""].fields[self.title_field] == "Created 0"

    def test_create_tells_its_ids_once_on_the_calling_thread_before_it_returns(
        self, connector: Connector
    ) -> None:
        told: list[tuple[list[str | None], int]] = []
        records = [self.new_record(f"Told {n}", f"TOLD-{n}") for n in range(3)]
        results = connector.create(records, created=lambda made: told.append(
            ([r.id for r in made], threading.get_ident())))
        assert told == [([r.id for r in results], threading.get_ident())]
        assert all(r.ok and r.id for r in results), results
        empty: list[int] = []
        assert connector.create([], created=lambda made: empty.append(len(made))) == []
        assert empty == [0]

    # ------------------------------------------------------------------ update

    def test_update_moves_the_version_and_touches_only_the_given_fields(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        record_id = self.make_record(sandbox, "Before", description="Keep this text")
        before = self._get(connector, record_id)
        clock.advance(seconds=2)
        result = connector.update(record_id, self.update_fields("After"), before.version)
        assert result.ok and result.id == record_id
        after = self._get(connector, record_id)
        assert after.fields[self.title_field] == "After"
        assert after.version == result.version != before.version
        assert after.fields[self.description_field] == before.fields[self.description_field]

    def test_update_with_a_stale_expected_version_is_refused(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        record_id = self.make_record(sandbox, "Contested")
        seen = self._get(connector, record_id).version
        clock.advance(seconds=2)
        connector.update(record_id, self.update_fields("First writer"), seen)
        clock.advance(seconds=2)
        with pytest.raises(PreconditionFailed):
            connector.update(record_id, self.update_fields("Second writer"), seen)
        assert self._get(connector, record_id).fields[self.title_field] == "First writer"

    # ------------------------------------------------------------------ back-link

    def test_a_marked_record_carries_the_foreign_id_and_is_found_by_it(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        record_id = self.make_record(sandbox, "Original", description="Keep this text")
        before = self._get(connector, record_id)
        assert before.foreign_id is None
        clock.advance(seconds=2)
        result = connector.mark_foreign_id(record_id, "COPY-7", before.version)
        assert result.ok and result.version
        after = self._get(connector, record_id)
        assert after.foreign_id == "COPY-7" and after.version == result.version
        assert after.fields[self.title_field] == "Original"
        assert after.fields[self.description_field] == before.fields[self.description_field]
        found = connector.find_by_foreign_id(["COPY-7"], self.fields)
        assert found["COPY-7"].id == record_id
        # Marking again with the same id writes nothing: the version stays.
        clock.advance(seconds=2)
        again = connector.mark_foreign_id(record_id, "COPY-7", result.version)
        assert again.ok and again.version == result.version

    def test_marking_a_record_that_moved_is_refused(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        record_id = self.make_record(sandbox, "Contested")
        seen = self._get(connector, record_id).version
        clock.advance(seconds=2)
        connector.update(record_id, self.update_fields("A person's edit"), seen)
        clock.advance(seconds=2)
        with pytest.raises(PreconditionFailed):
            connector.mark_foreign_id(record_id, "COPY-8", seen)
        assert self._get(connector, record_id).foreign_id is None

    def test_history_marks_the_connector_s_own_update_and_knows_the_creation_time(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        record_id = self.make_record(sandbox, "Before")
        created = clock.now
        clock.advance(seconds=2)
        connector.update(record_id, self.update_fields("After"))
        history = connector.history([record_id])[record_id]
        assert history.created == created.replace(microsecond=0)
        ours = [e for e in history.edits if e.field == self.title_field]
        assert [(e.by_us, e.at) for e in ours] == [(True, clock.now)]

    # ------------------------------------------------------------------ comments

    def test_public_and_internal_comments_round_trip_through_pull(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        record_id = self.make_record(sandbox, "Chatty")
        clock.advance(seconds=1)
        public = connector.add_comment(record_id, self.comment_body("Seen by caller"), "public")
        clock.advance(seconds=1)
        internal = connector.add_comment(record_id, self.comment_body("Agents only"), "internal")
        assert public.visibility == "public" and internal.visibility == "internal"
        assert public.id and internal.id and public.id != internal.id
        (pulled,) = [r for r in connector.pull(None, self.fields) if r.id == record_id]
        got = {self.comment_text(c.body).strip(): c.visibility for c in pulled.comments}
        assert got.get("Seen by caller") == "public"
        assert got.get("Agents only") == "internal"
        assert {c.id for c in pulled.comments} >= {public.id, internal.id}
        fetched = self._get(connector, record_id)
        assert {c.id for c in fetched.comments} == {c.id for c in pulled.comments}

    # ------------------------------------------------------------------ batches

    def test_write_many_updates_marks_and_refuses_only_the_stale_item(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        edited, marked, stale = (self.make_record(sandbox, f"Batch {n}") for n in range(3))
        seen = {r: self._get(connector, r).version for r in (edited, marked, stale)}
        clock.advance(seconds=2)
        connector.update(stale, self.update_fields("A person's edit"))
        clock.advance(seconds=2)
        results = connector.write_many([
            RecordWrite(edited, self.update_fields("Edited in a batch"), None, seen[edited]),
            RecordWrite(marked, {}, "COPY-31", seen[marked]),
            RecordWrite(stale, self.update_fields("Lost update"), None, seen[stale]),
        ])
        assert [r.ok for r in results] == [True, True, False], [r.error for r in results]
        assert isinstance(results[2].error, PreconditionFailed)
        after = connector.get_many([edited, marked, stale], self.fields)
        assert after[edited].fields[self.title_field] == "Edited in a batch"
        assert after[edited].version == results[0].version != seen[edited]
        assert after[marked].foreign_id == "COPY-31"
        assert after[marked].version == results[1].version
        assert after[stale].fields[self.title_field] == "A person's edit"
        assert connector.write_many([]) == []

    def test_write_many_applies_writes_to_one_record_in_their_order(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        record_id = self.make_record(sandbox, "Twice")
        seen = self._get(connector, record_id).version
        clock.advance(seconds=2)
        results = connector.write_many([
            RecordWrite(record_id, self.update_fields("First"), None, seen),
            RecordWrite(record_id, self.update_fields("Second"), "COPY-32"),
            # Checked against the version the writes before it left: stale now.
            RecordWrite(record_id, self.update_fields("Third"), None, seen),
        ])
        assert [r.ok for r in results] == [True, True, False], [r.error for r in results]
        assert isinstance(results[2].error, PreconditionFailed)
        after = self._get(connector, record_id)
        assert after.fields[self.title_field] == "Second" and after.foreign_id == "COPY-32"
        assert after.version == results[1].version

    def test_write_many_fails_a_missing_record_alone(
        self, connector: Connector, sandbox: Any
    ) -> None:
        real = self.make_record(sandbox, "Here")
        results = connector.write_many([
            RecordWrite(self.missing_id, self.update_fields("Nowhere")),
            RecordWrite(real, self.update_fields("Still here")),
        ])
        assert isinstance(results[0].error, ConnectorError) and results[1].ok
        assert self._get(connector, real).fields[self.title_field] == "Still here"

    def test_add_comments_returns_each_comment_made_with_its_visibility(
        self, connector: Connector, sandbox: Any, clock: FakeClock
    ) -> None:
        first, second = self.make_record(sandbox, "Talk 1"), self.make_record(sandbox, "Talk 2")
        clock.advance(seconds=1)
        wanted = [(first, "One", "public"), (second, "Other", "internal"),
                  (first, "Two", "internal"), (first, "Three", "public")]
        results = connector.add_comments(
            [NewComment(r, self.comment_body(t), v) for r, t, v in wanted]
            + [NewComment(self.missing_id, self.comment_body("Lost"), "public")])
        assert [r.ok for r in results] == [True] * 4 + [False], [r.error for r in results]
        made = [r.comment for r in results[:4]]
        assert all(c is not None and c.id for c in made)
        assert len({c.id for c in made if c}) == 4
        assert [(self.comment_text(c.body).strip(), c.visibility) for c in made if c] == [
            (t, v) for _, t, v in wanted]
        pulled = connector.get_many([first, second], self.fields)
        got = {c.id: (self.comment_text(c.body).strip(), c.visibility)
               for r in pulled.values() for c in r.comments}
        assert {c.id: (self.comment_text(c.body).strip(), c.visibility) for c in made if c} \
            == {i: got[i] for i in (c.id for c in made if c)}
        assert connector.add_comments([]) == []

    # ------------------------------------------------------------------ foreign ids

    def test_find_by_foreign_id_with_hostile_ids_finds_exactly_the_right_one(
        self, connector: Connector
    ) -> None:
        hostile = list(self.hostile_foreign_ids)
        results = connector.create(
            [self.new_record(f"Hostile {n}", fid) for n, fid in enumerate(hostile)]
            + [self.new_record("Decoy", "OPS-1")]
        )
        assert all(r.ok for r in results), [r.error for r in results]
        ids = {fid: r.id for fid, r in zip([*hostile, "OPS-1"], results, strict=True)}
        for fid in hostile:
            found = connector.find_by_foreign_id([fid], self.fields)
            assert {k: v.id for k, v in found.items()} == {fid: ids[fid]}, fid
        together = connector.find_by_foreign_id(hostile, self.fields)
        assert {k: v.id for k, v in together.items()} == {fid: ids[fid] for fid in hostile}

    def test_find_by_foreign_id_never_matches_a_lookalike(self, connector: Connector) -> None:
        (result,) = connector.create([self.new_record("Real", "OPS-77")])
        assert result.ok
        for probe in ("OPS-7", "OPS-777", "ops-77", 'OPS-77" OR "1"="1', "OPS-77^ORactive=true"):
            assert connector.find_by_foreign_id([probe], self.fields) == {}, probe
        assert connector.find_by_foreign_id([], self.fields) == {}

    # ------------------------------------------------------------------ users

    def test_unknown_user_leaves_the_field_empty_with_a_warning(
        self, connector: Connector
    ) -> None:
        record = self.new_record("Who is this", "FOREIGN-U1")
        fields = {**record.fields, self.user_field: user_ref(UNKNOWN_EMAIL)}
        (created,) = connector.create([NewRecord(fields, record.foreign_id)])
        assert created.ok, created.error
        assert any(UNKNOWN_EMAIL in w for w in created.warnings)
        assert created.id
        assert not self._get(connector, created.id).fields.get(self.user_field)
        updated = connector.update(created.id, {self.user_field: user_ref(UNKNOWN_EMAIL)})
        assert updated.ok and any(UNKNOWN_EMAIL in w for w in updated.warnings)

    def test_known_user_is_resolved_by_email(self, connector: Connector) -> None:
        record = self.new_record("Alice's laptop", "FOREIGN-U2")
        fields = {**record.fields, self.user_field: user_ref(KNOWN_EMAIL)}
        (created,) = connector.create([NewRecord(fields, record.foreign_id)])
        assert created.ok and not created.warnings and created.id
        assert self._get(connector, created.id).fields.get(self.user_field)

    def test_site_fields_list_what_the_connector_writes_and_write_nothing(
        self, connector: Connector, sandbox: Any
    ) -> None:
        self.make_record(sandbox, "Wi-Fi drops in room 4")
        before = len(sandbox.log.entries)

        fields = {f.id: f for f in connector.site_fields()}

        for name in (self.title_field, self.description_field, self.user_field):
            assert name in fields, name
            assert fields[name].name and fields[name].type
            assert fields[name].on_create is not False and fields[name].on_edit is not False
        asked = sandbox.log.entries[before:]
        assert asked and all(e.method == "GET" or "/search" in e.path for e in asked)
