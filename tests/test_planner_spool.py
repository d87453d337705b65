"""A run does not hold the whole pull: pulled records wait on disk until their batch.

Over two in-memory tools (the ``memory`` fixture), a few hundred records
synced in small batches: while a batch is written, the records of the pull and
of the batches already committed are no longer referenced (only the batches in
hand are); the records wait in a private spool file, without a name once open
(a killed run leaves nothing behind) and closed, so freed, when the run ends,
also when it stops on an error or an interrupt. :class:`sync.spool.RecordSpool`
hands back exactly what it was given.
"""

from __future__ import annotations

import gc
import os
import stat
import weakref
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import (
    NewRecord,
    RemoteComment,
    RemoteRecord,
    Side,
    Unreachable,
    WriteResult,
    user_ref,
)
from sync import spool as spool_module
from sync.errors import SafetyValve
from sync.spool import RecordSpool

GRACE = "grace.okafor@example.com"
COUNT = 300
BATCH = 20


def sn_incident(memory: Any, n: int) -> str:
    row = {"short_description": f"Printer {n} offline", "description": f"Printer {n}: details",
           "impact": "2", "urgency": "2", "category": "network", "subcategory": "VPN",
           "caller_id": user_ref(GRACE)}
    sys_id = str(memory.servicenow.put(row))
    memory.servicenow.comment(sys_id, f"Toner checked on printer {n}", "public")
    return sys_id


def held_open(path: str) -> bool:
    """Does this process hold the file once named ``path`` open (``/proc``: Linux)?
    An unnamed file's link reads ``path (deleted)``."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:   # the listing's own descriptor, closed by now
            continue
        if target.startswith(path):
            return True
    return False


class Watched:
    """Weak references to every record a run's pull handed out or its spool read back."""

    def __init__(self, memory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refs: list[weakref.ref[RemoteRecord]] = []
        self.spools: list[RecordSpool] = []
        self.modes: dict[str, int] = {}   # spool file -> its mode when it was unnamed
        pull = memory.servicenow.pull

        def watched_pull(since: datetime | None, fields: Sequence[str]) -> Iterator[RemoteRecord]:
            for record in pull(since, fields):
                self.refs.append(weakref.ref(record))
                yield record

        memory.servicenow.pull = watched_pull
        load, init = RecordSpool.load, RecordSpool.__init__

        def watched_load(spool: RecordSpool, pulled: Any) -> dict[int, RemoteRecord]:
            found = load(spool, pulled)
            self.refs.extend(weakref.ref(record) for record in found.values())
            return found

        def watched_init(spool: RecordSpool) -> None:
            init(spool)
            self.spools.append(spool)

        unlink = os.unlink

        def watched_unlink(path: Any, *args: Any, **kwargs: Any) -> None:
            if Path(path).name.startswith("incident-sync-spool-"):
                self.modes[str(path)] = stat.S_IMODE(os.stat(path).st_mode)
            unlink(path, *args, **kwargs)

        monkeypatch.setattr(RecordSpool, "load", watched_load)
        monkeypatch.setattr(RecordSpool, "__init__", watched_init)
        monkeypatch.setattr(os, "unlink", watched_unlink)

    def alive(self) -> int:
        gc.collect()
        return sum(1 for ref in self.refs if ref() is not None)


def test_while_a_batch_is_written_only_the_batches_in_hand_are_in_memory(
    memory: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(COUNT):
        sn_incident(memory, n)
    watched = Watched(memory, monkeypatch)
    seen: list[tuple[int, int, bool]] = []   # (records handed out so far, alive, spool open)
    create = memory.jira.create

    def creating(records: Sequence[NewRecord], **told: Any) -> list[WriteResult]:
        (spool,) = watched.spools
        seen.append((len(watched.refs), watched.alive(), not spool.closed))
        # In use, and without a name: a killed run leaves no text behind.
        assert held_open(spool.path) and not os.path.exists(spool.path)
        return create(records, **told)

    memory.jira.create = creating

    summary = memory.run(batch_size=BATCH)

    assert summary.created == COUNT and summary.failed == 0, summary.failures
    assert len(seen) == COUNT // BATCH   # one create call per batch
    for _, alive, spool_open in seen:
        # The batch being written (its records as read back from the spool): never
        # the pull, never a batch already committed.
        assert alive <= BATCH, seen
        assert spool_open
    # Every record was pulled before the first write, and none of them is held;
    # every pair's records came back from the spool.
    assert seen[0][0] >= COUNT
    assert len(watched.refs) == 2 * COUNT
    (spool,) = watched.spools
    assert watched.modes == {spool.path: 0o600}   # it holds incident texts
    assert spool.closed and not held_open(spool.path)
    assert watched.alive() == 0
    assert len(memory.links()) == COUNT


def test_the_spool_is_removed_when_a_run_stops_mid_way(
    memory: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(60):
        sn_incident(memory, n)
    watched = Watched(memory, monkeypatch)
    calls: list[int] = []
    create = memory.jira.create

    def failing(records: Sequence[NewRecord], **told: Any) -> list[WriteResult]:
        calls.append(len(records))
        if len(calls) == 2:
            raise Unreachable("jira went away", side="jira")
        return create(records, **told)

    memory.jira.create = failing

    with pytest.raises(Unreachable):
        memory.run(batch_size=BATCH)

    (spool,) = watched.spools
    assert spool.closed and not held_open(spool.path)
    assert len(memory.links()) == BATCH   # the first batch committed, nothing after


def test_the_spool_is_removed_on_an_interrupt_during_the_pull(
    memory: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n in range(30):
        sn_incident(memory, n)
    watched = Watched(memory, monkeypatch)
    pull = memory.servicenow.pull

    def interrupted(since: datetime | None, fields: Sequence[str]) -> Iterator[RemoteRecord]:
        for count, record in enumerate(pull(since, fields)):
            if count == 10:
                raise KeyboardInterrupt
            yield record

    memory.servicenow.pull = interrupted

    with pytest.raises(KeyboardInterrupt):
        memory.run(batch_size=BATCH)

    (spool,) = watched.spools
    assert spool.closed and not held_open(spool.path)
    assert memory.links() == []


def test_the_spool_is_removed_when_a_safety_valve_stops_the_planning(
    memory: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [sn_incident(memory, n) for n in range(3)]
    assert memory.run().created == 3
    for key in list(memory.jira.records):
        memory.jira.delete(key)      # the linked counterparts all vanish: the valve
    for sys_id in ids:
        memory.servicenow.edit(sys_id, {"short_description": "changed"})
    watched = Watched(memory, monkeypatch)

    with pytest.raises(SafetyValve, match="refusing to act"):
        memory.run()

    (spool,) = watched.spools
    assert spool.closed and not held_open(spool.path)


def test_a_plan_removes_its_spool_too(memory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(25):
        sn_incident(memory, n)
    watched = Watched(memory, monkeypatch)

    plan = memory.engine(batch_size=BATCH).build_plan()

    assert len(plan.pairs) == 25 and all(p.create is not None for p in plan.pairs)
    (spool,) = watched.spools
    assert spool.closed and not held_open(spool.path)


def test_the_spool_hands_back_each_record_as_it_was_put() -> None:
    stamp = datetime(2026, 12, 7, 14, 3, 9, 120000, tzinfo=UTC)
    records = [RemoteRecord(
        side=Side.JIRA, id=f"OPS-{n}", display=f"OPS-{n}", version=f"v{n}", updated=stamp,
        fields={"summary": f"Printer {n}", "labels": ("a", "b"), "due": stamp,
                "description": {"type": "doc", "content": [{"type": "text", "text": "x" * n}]}},
        comments=[RemoteComment(id=f"c{n}", body="checked", created=stamp,
                                visibility="public", author=GRACE)],
        foreign_id=None if n % 2 else f"sys{n}", url=f"https://jira.invalid/OPS-{n}",
    ) for n in range(1, 1200)]
    spool = RecordSpool()
    try:
        pulled = [spool.put(record) for record in records]
        assert [(p.side, p.id, p.display, p.version, p.foreign_id) for p in pulled] == [
            (r.side, r.id, r.display, r.version, r.foreign_id) for r in records]
        # More rows than one query asks for, some not yet flushed, out of order.
        wanted = pulled[::-3]
        found = spool.load(wanted)
        assert [found[p.row] for p in wanted] == records[::-3]
        assert spool.load([]) == {}
    finally:
        spool.close()
    assert spool.closed and not held_open(spool.path)
    spool.close()   # again: nothing happens
    with pytest.raises(RuntimeError):
        spool.load(pulled[:1])


def test_a_spool_nobody_closed_is_freed_when_collected() -> None:
    spool = RecordSpool()
    spool.put(RemoteRecord(side=Side.JIRA, id="OPS-1", display="OPS-1", version="1",
                           updated=datetime(2026, 12, 7, tzinfo=UTC), fields={}))
    path = spool.path
    assert held_open(path) and not os.path.exists(path)   # in use, unnamed
    del spool
    gc.collect()
    assert not held_open(path)


def test_the_spool_sits_in_the_temporary_directory(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.setattr(spool_module.tempfile, "tempdir", str(tmp_path))
    spool = RecordSpool()
    try:
        assert Path(spool.path).parent == tmp_path
    finally:
        spool.close()


def test_a_spool_that_cannot_be_made_or_written_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tempfile

    missing = tmp_path / "gone"
    monkeypatch.setattr(tempfile, "tempdir", str(missing))
    with pytest.raises(spool_module.SpoolError, match=r"cannot make .*record spool in .*gone"):
        RecordSpool()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    spool = RecordSpool()
    try:
        # A full disk, as SQLite says it: the spool may not grow past its first pages.
        assert spool._db is not None
        spool._db.execute("PRAGMA max_page_count = 2")
        big = {"description": os.urandom(200_000).hex()}
        with pytest.raises(spool_module.SpoolError, match=r"cannot write .*full"):
            for n in range(spool_module.CHUNK):
                spool.put(RemoteRecord(side=Side.SERVICENOW, id=f"id{n}", display=f"INC{n}",
                                       version="1", updated=datetime(2026, 1, 1, tzinfo=UTC),
                                       fields=big))
    finally:
        spool.close()
