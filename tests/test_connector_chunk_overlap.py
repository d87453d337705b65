"""The chunks of one batched call go together (issue #12 point 6), and nothing else moves.

Behaviour, not timing: the sandboxes add latency to every wire request and count how many
requests of each kind they are serving at once. A batched call of several chunks (Jira
bulk creates and ``key in`` searches, ServiceNow Batch API requests and ``sys_idIN`` reads)
must have more than one of its chunks in flight, send exactly the requests it sent one
chunk after another, hand back its results in input order, keep one chunk's failure to
that chunk's items, and take a 429 on one chunk as every request does: the connector's
concurrency halved, the chunk sent again after Retry-After.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import pytest
from connector_contract import FakeClock

from connectors import http_log
from connectors.base import NewRecord, RecordWrite, RetriableError
from connectors.jira import JiraConnector
from connectors.retry import RetryPolicy, run_chunks
from connectors.sandbox.http import ADMIN_PREFIX, Fault, Request, Response
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.servicenow import ServiceNowSandbox
from connectors.servicenow import ServiceNowConnector

PASSWORD = "Sn0w-Pa55word-never-logged"
LATENCY_MS = 100      # long enough that chunks sent together are served together
BULK = "POST /rest/api/3/issue/bulk"
SEARCH = "GET /rest/api/3/search/jql"
BATCH = "POST /api/now/v1/batch"
INCIDENTS = "GET /api/now/table/incident"
JOURNAL = "GET /api/now/table/sys_journal_field"


class _InFlight:
    """Counts the vendor requests a sandbox is serving at once, by method and path
    (ids left out); Batch API items, served inside their request, are not counted."""

    def track(self) -> None:
        self._flight_lock = threading.Lock()
        self._serving = threading.local()
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    def handle(self, request: Request) -> Response:
        nested = getattr(self._serving, "busy", False)
        if request.path.startswith(ADMIN_PREFIX) or nested:
            return super().handle(request)  # type: ignore[misc]
        parts = [p for p in request.path.split("/") if p]
        kind = f"{request.method} /{'/'.join(p for p in parts if not _is_id(p))}"
        with self._flight_lock:
            self.active[kind] += 1
            self.peak[kind] = max(self.peak[kind], self.active[kind])
        self._serving.busy = True
        try:
            return super().handle(request)  # type: ignore[misc]
        finally:
            self._serving.busy = False
            with self._flight_lock:
                self.active[kind] -= 1


def _is_id(part: str) -> bool:
    return len(part) == 32 or ("-" in part and part.split("-")[-1].isdigit())


class FlyingJira(_InFlight, JiraSandbox):
    pass


class FlyingServiceNow(_InFlight, ServiceNowSandbox):
    pass


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def jira() -> Iterator[FlyingJira]:
    with FlyingJira(mode="cloud", clock=FakeClock()) as sandbox:
        sandbox.track()
        yield sandbox


@pytest.fixture
def servicenow() -> Iterator[FlyingServiceNow]:
    with FlyingServiceNow(password=PASSWORD, clock=FakeClock()) as sandbox:
        sandbox.track()
        yield sandbox


def jira_connector(sandbox: JiraSandbox, sleeps: list[float], **options: Any) -> JiraConnector:
    connector = JiraConnector(sandbox.url, email="admin", token=sandbox.password, project="OPS",
                              retry=RetryPolicy(sleep=sleeps.append, random=lambda: 0.0),
                              **{"page_size": 100, "concurrency": 4, **options})
    connector.open()
    return connector


def sn_connector(sandbox: ServiceNowSandbox, sleeps: list[float],
                 **options: Any) -> ServiceNowConnector:
    connector = ServiceNowConnector(sandbox.url, "admin", PASSWORD,
                                    retry=RetryPolicy(sleep=sleeps.append, random=lambda: 0.0),
                                    **{"page_size": 100, "concurrency": 4, **options})
    connector.open()
    return connector


def flying(sandbox: _InFlight, latency_ms: float = LATENCY_MS) -> None:
    """From now on: added latency, and the counts of requests in flight afresh."""
    sandbox.faults.latency_ms = latency_ms  # type: ignore[attr-defined]
    sandbox.peak.clear()
    sandbox.log.clear()  # type: ignore[attr-defined]


def records(count: int, **fields: Any) -> list[NewRecord]:
    return [NewRecord({"summary": f"overlap {n}", **fields}, f"sys{n:04d}",
                      f"https://sn.example.test/incident.do?sys_id=sys{n:04d}")
            for n in range(count)]


# ---------------------------------------------------------------- run_chunks itself


def test_run_chunks_overlaps_and_answers_in_input_order() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def work(index: int) -> int:
        if index < 3:
            barrier.wait()  # only passes when three chunks run at once
        return index * 10

    assert run_chunks(7, work, 4) == [n * 10 for n in range(7)]


def test_run_chunks_raises_the_lowest_index_error_after_the_running_ones_end() -> None:
    ended: list[int] = []
    lock = threading.Lock()

    def work(index: int) -> int:
        if index in (1, 2):
            raise RuntimeError(f"chunk {index}")
        with lock:
            ended.append(index)
        return index

    with pytest.raises(RuntimeError, match="chunk 1"):
        run_chunks(3, work, 3)
    assert ended == [0]


def test_workers_run_in_the_callers_context() -> None:
    run_id: ContextVar[str] = ContextVar("run_id", default="none")
    run_id.set("run-7")
    assert run_chunks(4, lambda _: run_id.get(), 4) == ["run-7"] * 4


# ---------------------------------------------------------------- Jira


def test_bulk_create_chunks_overlap_and_map_back_to_their_items(
    jira: FlyingJira, sleeps: list[float]
) -> None:
    connector = jira_connector(jira, sleeps)
    flying(jira)
    results = connector.create(records(130))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:2]
    # Input order: each result is the issue made from its own record.
    assert [jira.issue(r.id or "")["fields"]["summary"] for r in results] == [
        f"overlap {n}" for n in range(130)]
    assert all(r.version == jira.issue(r.id or "")["fields"]["updated"] for r in results)
    # The same requests as one chunk after another: 3 bulk creates, 3 version searches.
    assert jira.log.count("POST", "re:/issue/bulk$") == 3
    assert jira.log.count("GET", "re:/search/jql$") == 3
    assert jira.peak[BULK] > 1 and jira.peak[SEARCH] > 1


def _threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def test_the_chunks_threads_are_kept_for_the_run_and_end_on_close(
    jira: FlyingJira, servicenow: FlyingServiceNow, sleeps: list[float]
) -> None:
    jira_side = jira_connector(jira, sleeps)
    sn_side = sn_connector(servicenow, sleeps)
    ids = incidents(servicenow, 130)
    flying(jira, 5)
    flying(servicenow, 5)
    for round_ in range(4):
        made = jira_side.create(records(130))
        assert all(r.ok for r in made)
        written = sn_side.write_many([RecordWrite(i, {}, foreign_id=f"OPS-{round_}-{n}")
                                      for n, i in enumerate(ids)])
        assert all(r.ok for r in written)
        # Many batched calls, each of several chunks: never more threads than the
        # connector's concurrency (the per-call pools started new ones every call).
        assert 0 < len(_threads("incident-sync-jira")) <= jira_side.concurrency
        assert 0 < len(_threads("incident-sync-servicenow")) <= sn_side.concurrency
    assert jira.peak[BULK] > 1 and servicenow.peak[BATCH] > 1
    jira_side.close()
    sn_side.close()
    assert _threads("incident-sync-jira") == [] and _threads("incident-sync-servicenow") == []
    # Reopened for the next run: the pool starts its threads again.
    jira_side.open()
    assert all(r.ok for r in jira_side.create(records(120)))
    assert 0 < len(_threads("incident-sync-jira")) <= jira_side.concurrency
    jira_side.close()
    assert _threads("incident-sync-jira") == []


def test_until_the_paths_are_known_chunks_go_one_at_a_time_then_together(
    jira: FlyingJira, sleeps: list[float]
) -> None:
    connector = jira_connector(jira, sleeps)
    flying(jira)
    results = connector.create(records(150, status="Work in progress"))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:2]
    assert {jira.issue(r.id or "")["fields"]["status"]["name"] for r in results} == {
        "Work in progress"}
    # The first chunk learnt the path (its issues each took a transition of their own);
    # the next two, sent together, took the step inside the create.
    assert jira.log.count("POST", "re:/transitions$") == 50
    assert jira.log.count("POST", "re:/issue/bulk$") == 3
    assert jira.peak[BULK] == 2
    order = [(e.method, e.path) for e in jira.log.entries]
    bulks = [n for n, (method, path) in enumerate(order)
             if method == "POST" and path.endswith("/issue/bulk")]
    last_step = max(n for n, (method, path) in enumerate(order)
                    if method == "POST" and path.endswith("/transitions"))
    assert bulks[0] < last_step < bulks[1]


def test_a_failed_bulk_chunk_fails_only_its_own_items(
    jira: FlyingJira, sleeps: list[float]
) -> None:
    connector = jira_connector(jira, sleeps)
    flying(jira)
    jira.faults.script.append(Fault("500", method="POST", path="/rest/api/3/issue/bulk"))
    results = connector.create(records(150))
    failed = [n for n, r in enumerate(results) if not r.ok]
    # A create is not idempotent: the refused chunk is not sent again, the others stand.
    assert failed in ([*range(0, 50)], [*range(50, 100)], [*range(100, 150)])
    assert all(isinstance(results[n].error, RetriableError) and results[n].id is None
               for n in failed)
    assert [jira.issue(r.id or "")["fields"]["summary"] for r in results if r.ok] == [
        f"overlap {n}" for n in range(150) if n not in failed]
    assert jira.log.count("POST", "re:/issue/bulk$") == 3


def test_a_429_on_one_bulk_chunk_halves_the_concurrency_and_sends_it_again(
    jira: FlyingJira, sleeps: list[float]
) -> None:
    connector = jira_connector(jira, sleeps)
    flying(jira)
    jira.faults.script.append(Fault("429", retry_after=3, method="POST",
                                    path="/rest/api/3/issue/bulk"))
    results = connector.create(records(150))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:2]
    assert [jira.issue(r.id or "")["fields"]["summary"] for r in results] == [
        f"overlap {n}" for n in range(150)]
    assert 3.0 in sleeps
    assert connector._limit.lowest == 2
    assert jira.log.count("POST", "re:/issue/bulk$") == 4
    assert jira.log.count("POST", "re:/issue/bulk$", status=429) == 1


def test_key_in_searches_overlap_and_keep_the_input_order(
    jira: FlyingJira, sleeps: list[float]
) -> None:
    keys = [jira.create_issue({"summary": f"read {n}"}) for n in range(250)]
    connector = jira_connector(jira, sleeps)
    flying(jira)
    wanted = list(reversed(keys))
    found = connector.get_many(wanted, ["summary"])
    assert list(found) == wanted
    assert jira.log.count("GET", "re:/search/jql$") == 3 and jira.peak[SEARCH] > 1


def test_marker_searches_overlap(jira: FlyingJira, sleeps: list[float]) -> None:
    connector = jira_connector(jira, sleeps)
    made = connector.create(records(120))
    wanted = [f"sys{n:04d}" for n in range(120)]
    one_at_a_time = jira_connector(jira, sleeps, concurrency=1).find_by_foreign_id(
        wanted, ["summary"])
    flying(jira)
    found = connector.find_by_foreign_id(wanted, ["summary"])
    assert {fid: r.id for fid, r in found.items()} == {
        f"sys{n:04d}": made[n].id for n in range(120)}
    assert list(found) == list(one_at_a_time)
    assert jira.log.count("GET", "re:/search/jql$") == 3 and jira.peak[SEARCH] > 1


# ---------------------------------------------------------------- ServiceNow


def incidents(sandbox: ServiceNowSandbox, count: int) -> list[str]:
    return [str(sandbox.insert("incident", {"short_description": f"row {n}"})["sys_id"])
            for n in range(count)]


def test_batch_api_chunks_overlap_and_answer_in_input_order(
    servicenow: FlyingServiceNow, sleeps: list[float]
) -> None:
    ids = incidents(servicenow, 130)
    connector = sn_connector(servicenow, sleeps)
    flying(servicenow)
    results = connector.write_many([RecordWrite(i, {}, foreign_id=f"OPS-{n}")
                                    for n, i in enumerate(ids)])
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:2]
    assert [r.id for r in results] == ids
    assert [(servicenow.get("incident", i) or {})["correlation_id"] for i in ids] == [
        f"OPS-{n}" for n in range(130)]
    assert servicenow.log.wire("POST", "/api/now/v1/batch") == 3
    assert servicenow.peak[BATCH] > 1


def test_a_failed_batch_request_fails_only_its_own_items(
    servicenow: FlyingServiceNow, sleeps: list[float]
) -> None:
    ids = incidents(servicenow, 150)
    connector = sn_connector(servicenow, sleeps)
    flying(servicenow)
    servicenow.faults.script.append(Fault("500", method="POST", path="/api/now/v1/batch"))
    results = connector.write_many([RecordWrite(i, {}, foreign_id=f"OPS-{n}")
                                    for n, i in enumerate(ids)])
    failed = [n for n, r in enumerate(results) if not r.ok]
    assert failed in ([*range(0, 50)], [*range(50, 100)], [*range(100, 150)])
    assert all(isinstance(results[n].error, RetriableError) for n in failed)
    assert [(servicenow.get("incident", i) or {})["correlation_id"] for i in ids] == [
        "" if n in failed else f"OPS-{n}" for n in range(150)]
    assert servicenow.log.wire("POST", "/api/now/v1/batch") == 3


def test_a_429_on_one_batch_request_halves_the_concurrency_and_sends_it_again(
    servicenow: FlyingServiceNow, sleeps: list[float]
) -> None:
    ids = incidents(servicenow, 150)
    connector = sn_connector(servicenow, sleeps)
    flying(servicenow)
    servicenow.faults.script.append(Fault("429", retry_after=3, method="POST",
                                          path="/api/now/v1/batch"))
    results = connector.write_many([RecordWrite(i, {}, foreign_id=f"OPS-{n}")
                                    for n, i in enumerate(ids)])
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:2]
    assert [(servicenow.get("incident", i) or {})["correlation_id"] for i in ids] == [
        f"OPS-{n}" for n in range(150)]
    assert 3.0 in sleeps and connector._limit.lowest == 2
    assert servicenow.log.wire("POST", "/api/now/v1/batch") == 4


def test_id_list_reads_overlap_with_their_journal_reads_and_keep_the_order(
    servicenow: FlyingServiceNow, sleeps: list[float]
) -> None:
    ids = incidents(servicenow, 250)
    for n, sys_id in enumerate(ids[::25]):
        servicenow.update("incident", sys_id, {"comments": f"note {n}"})
    connector = sn_connector(servicenow, sleeps)
    wanted = list(reversed(ids))
    one_at_a_time = sn_connector(servicenow, sleeps, concurrency=1).get_many(
        wanted, ["short_description"])
    flying(servicenow)
    found = connector.get_many(wanted, ["short_description"])
    assert sorted(found) == sorted(ids)
    assert list(found) == list(one_at_a_time)
    assert [r.fields["short_description"] for r in found.values()] == [
        (servicenow.get("incident", i) or {})["short_description"] for i in found]
    assert [c.body for i in ids[::25] for c in found[i].comments] == [
        f"note {n}" for n in range(10)]
    assert servicenow.log.wire("GET", "/api/now/table/incident") == 3
    assert servicenow.log.wire("GET", "/api/now/table/sys_journal_field") == 3
    assert servicenow.peak[INCIDENTS] > 1 and servicenow.peak[JOURNAL] > 1
    flying(servicenow)
    assert connector._versions(wanted) == {
        i: (servicenow.get("incident", i) or {})["sys_mod_count"] for i in ids}
    assert servicenow.log.wire("GET", "/api/now/table/incident") == 3
    assert servicenow.peak[INCIDENTS] > 1


def test_requests_on_the_workers_count_in_the_runs_tally(
    servicenow: FlyingServiceNow, sleeps: list[float]
) -> None:
    ids = incidents(servicenow, 250)
    connector = sn_connector(servicenow, sleeps)
    with http_log.counting() as tally:
        connector._versions(ids)
    assert tally.counts() == {("servicenow", "2xx"): 3}
