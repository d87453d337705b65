"""The in-memory connector honours the connector contract, and its fault hooks do what they say.

The contract suite is the one both vendor connectors run against their HTTP
sandboxes; here the "sandbox" is the connector's own store, and its request log
is the connector's call journal (one entry per protocol call: a batched
``get_many`` is one call, like one page request).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from connector_contract import ConnectorContract, FakeClock

from connectors.base import (
    Connector,
    NewComment,
    NewRecord,
    NotFound,
    PreconditionFailed,
    RecordWrite,
    RetriableError,
    Side,
    Unreachable,
    ValidationFailed,
)
from connectors.memory import MemoryConnector

READS = {"open", "pull", "get_many", "find_by_foreign_id", "check", "site_fields", "history"}


@dataclass(frozen=True)
class _Entry:
    method: str
    path: str


class _Journal:
    """The sandbox request-log interface over a connector's call journal."""

    def __init__(self, connector: MemoryConnector) -> None:
        self.connector = connector

    @property
    def entries(self) -> list[_Entry]:
        return [_Entry("GET" if op in READS else "POST", f"/{op}")
                for op in self.connector.journal]

    def count(self) -> int:
        return len(self.connector.journal)

    def clear(self) -> None:
        self.connector.journal.clear()


class _MemorySite:
    """The contract's ``sandbox``: the store people act on, with a request log."""

    def __init__(self, connector: MemoryConnector) -> None:
        self.connector = connector
        self.log = _Journal(connector)


class _MemoryContract(ConnectorContract):
    side = Side.SERVICENOW

    @pytest.fixture
    def connector(self, clock: FakeClock) -> Iterator[MemoryConnector]:
        connector = MemoryConnector(self.side, clock=clock)
        connector.open()
        yield connector
        connector.close()

    @pytest.fixture
    def sandbox(self, connector: MemoryConnector) -> _MemorySite:
        return _MemorySite(connector)

    def make_record(self, sandbox: Any, title: str, **kw: Any) -> str:
        fields = {self.title_field: title, self.description_field: kw.get("description", "")}
        return str(sandbox.connector.put(fields))

    def new_record(self, title: str, foreign_id: str) -> NewRecord:
        return NewRecord({self.title_field: title}, foreign_id)

    def update_fields(self, title: str) -> dict[str, Any]:
        return {self.title_field: title}


class TestMemoryServiceNowContract(_MemoryContract):
    side = Side.SERVICENOW
    title_field = "short_description"
    description_field = "description"
    user_field = "caller_id"


class TestMemoryJiraContract(_MemoryContract):
    side = Side.JIRA
    title_field = "summary"
    description_field = "description"
    user_field = "assignee"


# --------------------------------------------------------------------------- fault hooks


@pytest.fixture
def memory() -> MemoryConnector:
    connector = MemoryConnector("jira", clock=FakeClock())
    connector.open()
    return connector


def test_it_satisfies_the_protocol_and_reports_its_site(memory: MemoryConnector) -> None:
    assert isinstance(memory, Connector)
    info = memory.open()
    assert info.side is Side.JIRA and info.field_ids["Impact"] == "customfield_10004"


def test_fail_next_raises_before_anything_changes_then_recovers(memory: MemoryConnector) -> None:
    record = NewRecord({"summary": "Printer jammed"}, "sys-1")
    memory.fail_next("create", Unreachable("jira down (injected)"), times=2)
    for _ in range(2):
        with pytest.raises(Unreachable):
            memory.create([record])
    assert memory.records == {}
    (result,) = memory.create([record])
    assert result.ok and memory.calls["create"] == 3


def test_a_lost_reply_applies_the_write_then_raises(memory: MemoryConnector) -> None:
    memory.lose_reply("create")
    with pytest.raises(RetriableError, match="reply was lost"):
        memory.create([NewRecord({"summary": "VPN down"}, "sys-2")])
    # The write happened: a retry must adopt it by its foreign id, not duplicate it.
    assert set(memory.find_by_foreign_id(["sys-2"], ["summary"])) == {"sys-2"}
    (key,) = memory.records
    memory.lose_reply("update")
    with pytest.raises(RetriableError):
        memory.update(key, {"summary": "VPN down in Lagos"})
    assert memory.get(key)["summary"] == "VPN down in Lagos"


def test_rejected_items_fail_alone_and_the_batch_goes_on(memory: MemoryConnector) -> None:
    memory.reject(lambda fields: fields.get("summary") == "bad",
                  ValidationFailed("summary: refused (injected)", side="jira"))
    results = memory.create([NewRecord({"summary": "bad"}, "a"),
                             NewRecord({"summary": "good"}, "b")])
    assert [r.ok for r in results] == [False, True]
    assert isinstance(results[0].error, ValidationFailed)
    assert [r.fields["summary"] for r in memory.records.values()] == ["good"]


def test_people_s_edits_are_theirs_in_the_history_and_move_the_version(
    memory: MemoryConnector,
) -> None:
    key = memory.put({"summary": "Disk full"})
    seen = memory.get_many([key], ["summary"])[key].version
    memory.edit(key, {"summary": "Disk full on db-2"})
    memory.update(key, {"summary": "Disk full on db-2 (cleaned)"})
    edits = memory.history([key])[key].edits
    assert [(e.field, e.by_us) for e in edits] == [("summary", False), ("summary", True)]
    with pytest.raises(PreconditionFailed):
        memory.update(key, {"summary": "stale"}, expected_version=seen)
    with pytest.raises(NotFound):
        memory.update("OPS-404", {"summary": "x"})


def test_unknown_operation_names_are_refused(memory: MemoryConnector) -> None:
    with pytest.raises(ValueError, match="unknown operation 'craete'"):
        memory.fail_next("craete", Unreachable("x"))


def test_a_batch_of_writes_keeps_its_order_and_a_stale_item_fails_alone(
        memory: MemoryConnector) -> None:
    first = memory.put({"summary": "one"})
    second = memory.put({"summary": "two"})
    stale = str(int(memory.get_many([second], ["summary"])[second].version) - 1)
    results = memory.write_many([
        RecordWrite(first, {"summary": "one, edited"}, foreign_id="abc123"),
        RecordWrite(second, {"summary": "lost"}, expected_version=stale),
        RecordWrite(first, {"summary": "one, again"}),
    ])
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, PreconditionFailed)
    after = memory.get_many([first, second], ["summary"])
    assert after[first].fields["summary"] == "one, again"
    assert after[first].foreign_id == "abc123"
    assert after[second].fields["summary"] == "two"
    assert results[2].version == after[first].version


def test_a_batch_of_comments_reports_each_item(memory: MemoryConnector) -> None:
    record = memory.put({"summary": "one"})
    memory.fail_next("add_comment", ValidationFailed("too long", side="jira"))
    results = memory.add_comments([NewComment(record, "a", "public"),
                                   NewComment(record, "b", "internal")])
    assert [r.ok for r in results] == [False, True]
    assert isinstance(results[0].error, ValidationFailed)
    assert results[1].comment is not None
    assert [c.body for c in memory.get_many([record], [])[record].comments] == ["b"]


def test_a_fatal_error_in_a_batch_stops_it(memory: MemoryConnector) -> None:
    record = memory.put({"summary": "one"})
    memory.fail_next("update", Unreachable("down", side="jira"))
    with pytest.raises(Unreachable):
        memory.write_many([RecordWrite(record, {"summary": "x"})])
