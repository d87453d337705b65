"""The connectors' chunk pool: threads kept for a run, bounded, ended by close, and
run_chunks on it keeping its contract (order, context, failures) with nested use."""

from __future__ import annotations

import threading
from contextvars import ContextVar

import pytest

from connectors.retry import ChunkPool, run_chunks, run_per_key


def _pool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(name)]


def test_threads_stay_bounded_over_many_calls_and_end_on_close() -> None:
    pool = ChunkPool(4, name="test-bounded")
    seen: set[int] = set()
    lock = threading.Lock()

    def work(index: int) -> int:
        with lock:
            seen.add(threading.get_ident())
        return index * 2

    for _ in range(200):
        assert run_chunks(9, work, 4, pool=pool) == [n * 2 for n in range(9)]
    # 200 calls of 3 helpers each: the old per-call pools started 800 threads.
    assert len(_pool_threads("test-bounded")) <= 4
    assert len(seen) <= 5   # the pool's threads and the caller's
    pool.close()
    assert _pool_threads("test-bounded") == []
    # Closed is not dead: a connector reopened for the next run uses it again.
    assert run_chunks(3, work, 3, pool=pool) == [0, 2, 4]
    pool.close()
    assert _pool_threads("test-bounded") == []


def test_nested_calls_on_a_busy_pool_do_not_deadlock() -> None:
    # Every pool thread busy in an outer chunk whose work calls run_chunks again on
    # the same pool: the inner calls' helpers can only queue, their callers do the work.
    pool = ChunkPool(2, name="test-nested")
    outer_started = threading.Barrier(3, timeout=5)   # the caller and both pool threads

    def inner(outer: int) -> list[int]:
        return run_chunks(5, lambda i: outer * 10 + i, 4, pool=pool)

    def outer(index: int) -> list[int]:
        if index < 3:
            outer_started.wait()
        return inner(index)

    done: list[list[list[int]]] = []
    thread = threading.Thread(target=lambda: done.append(run_chunks(4, outer, 3, pool=pool)))
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "nested run_chunks deadlocked"
    assert done == [[[o * 10 + i for i in range(5)] for o in range(4)]]
    pool.close()


def test_a_failure_on_the_pool_stops_handing_out_and_raises_the_lowest() -> None:
    pool = ChunkPool(3, name="test-fail")
    started: list[int] = []
    lock = threading.Lock()
    gate = threading.Event()

    def work(index: int) -> int:
        with lock:
            started.append(index)
        if index == 2:
            gate.set()
            raise RuntimeError("chunk 2")
        if index == 1:
            gate.wait(timeout=5)   # fails only once chunk 2 has started and failed
            raise RuntimeError("chunk 1")
        return index

    with pytest.raises(RuntimeError, match="chunk 1"):
        run_chunks(20, work, 3, pool=pool)
    # Chunks are handed out in order and none after a failure: far from all 20 ran.
    assert sorted(started)[:3] == [0, 1, 2]
    assert len(started) < 20
    # The pool is still good for the next call.
    assert run_chunks(4, lambda i: i, 3, pool=pool) == [0, 1, 2, 3]
    pool.close()


def test_each_chunk_runs_in_its_own_copy_of_the_callers_context() -> None:
    pool = ChunkPool(3, name="test-context")
    run_id: ContextVar[str] = ContextVar("run_id", default="none")
    run_id.set("run-9")

    def work(index: int) -> str:
        seen = run_id.get()
        run_id.set(f"changed by {index}")   # must not leak into another chunk
        return seen

    for _ in range(20):
        assert run_chunks(6, work, 3, pool=pool) == ["run-9"] * 6
    assert run_id.get() == "run-9"
    pool.close()


def test_run_per_key_on_a_pool_keeps_one_keys_items_in_order() -> None:
    pool = ChunkPool(3, name="test-per-key")
    order: dict[str, list[int]] = {}
    lock = threading.Lock()
    keys = [f"k{n % 5}" for n in range(30)]

    def work(index: int) -> int:
        with lock:
            order.setdefault(keys[index], []).append(index)
        return index + 100

    assert run_per_key(keys, work, 3, pool=pool) == [n + 100 for n in range(30)]
    assert all(items == sorted(items) for items in order.values())
    pool.close()


def test_an_interrupt_in_the_callers_own_chunk_wins_and_stops_the_call() -> None:
    # The caller's thread works chunks too: a KeyboardInterrupt raised there ends the
    # call as it ended the caller's wait before (not hidden behind a chunk's error),
    # after the chunks already running end, and no chunk starts after it.
    pool = ChunkPool(2, name="test-interrupt")
    caller = threading.get_ident()
    started: list[int] = []
    lock = threading.Lock()
    caller_in, helper_failed = threading.Event(), threading.Event()

    def work(index: int) -> int:
        with lock:
            started.append(index)
        if threading.get_ident() == caller:
            caller_in.set()
            helper_failed.wait(timeout=5)
            raise KeyboardInterrupt
        caller_in.wait(timeout=5)   # the helper's chunk (a lower index) fails first
        helper_failed.set()
        raise RuntimeError(f"chunk {index}")

    with pytest.raises(KeyboardInterrupt):
        run_chunks(50, work, 2, pool=pool)
    assert len(started) < 50
    pool.close()


# --------------------------------------------------------------------------- meanwhile


def test_meanwhile_runs_on_the_caller_while_the_chunks_are_in_flight() -> None:
    # Every chunk waits for meanwhile: run one after the other, this would time out.
    pool = ChunkPool(3, name="test-meanwhile")
    told = threading.Event()
    waited: list[bool] = []
    callers: list[int] = []

    def work(index: int) -> int:
        waited.append(told.wait(timeout=10))
        return index

    def meanwhile() -> None:
        callers.append(threading.get_ident())
        told.set()

    assert run_chunks(3, work, 3, pool=pool, meanwhile=meanwhile) == [0, 1, 2]
    assert waited == [True, True, True]
    assert callers == [threading.get_ident()]
    pool.close()


def test_meanwhile_keeps_the_chunks_at_once_within_the_workers() -> None:
    pool = ChunkPool(4, name="test-meanwhile-width")
    lock = threading.Lock()
    now = [0]
    most = [0]

    def work(index: int) -> int:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        threading.Event().wait(0.01)
        with lock:
            now[0] -= 1
        return index

    assert run_per_key([f"k{n}" for n in range(12)], work, 2, pool=pool,
                       meanwhile=lambda: None) == list(range(12))
    assert most[0] <= 2
    pool.close()


def test_what_meanwhile_raises_is_raised_once_the_running_chunks_ended() -> None:
    pool = ChunkPool(2, name="test-meanwhile-raise")
    started = threading.Semaphore(0)
    ended: list[int] = []

    def work(index: int) -> int:
        started.release()
        threading.Event().wait(0.05)
        ended.append(index)
        return index

    def meanwhile() -> None:
        assert started.acquire(timeout=10) and started.acquire(timeout=10)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_chunks(2, work, 2, pool=pool, meanwhile=meanwhile)
    # Both chunks had started on the helpers before meanwhile raised; both ended.
    assert sorted(ended) == [0, 1]
    pool.close()


def test_meanwhile_runs_when_there_is_no_chunk_or_one_worker() -> None:
    calls: list[str] = []
    assert run_per_key([], lambda i: i, 4, meanwhile=lambda: calls.append("none")) == []
    assert run_chunks(2, lambda i: i, 1, meanwhile=lambda: calls.append("one")) == [0, 1]
    assert calls == ["none", "one"]
