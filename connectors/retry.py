"""The one retry policy both connectors share, and an optional request budget.

Contract:
- :meth:`RetryPolicy.call` runs a request function that raises only errors of
  :mod:`connectors.base` (the connector translates library errors first) and
  retries it with tenacity:
  * :class:`RateLimited` (429, or 503 with Retry-After) is retried for every
    request, idempotent or not: the vendor refused it before doing anything;
  * any other :class:`RetriableError` (5xx, dropped connection, a proxy's HTML
    page) only when ``idempotent=True``, since a write may have happened;
  * waits honour ``retry_after`` (capped at ``max_wait``), else exponential
    backoff with full jitter; at most ``max_attempts`` tries, then the last error
    propagates unchanged.
- Vendor libraries' own retries must be off, so attempts don't multiply.
- :class:`RequestBudget` spaces requests so no more than N start in any minute; it is
  thread-safe (one lock around its window, sleeping outside it).
- :class:`AdaptiveLimit` bounds the requests in flight at once for a connector that
  overlaps work: halved on a 429 (whose Retry-After pauses every new request), raised
  by one after a run of successes. :func:`run_per_key` runs per-record work on a
  thread pool, one record's items in order on one worker; the caller's thread gets
  the results (state-store commits never leave the engine's thread).
- :func:`run_chunks` sends the independent chunks of one batched call (bulk creates,
  ``IN`` list reads, Batch API requests) on a thread pool, results in input order. The
  chunks' requests still hold the connector's :class:`AdaptiveLimit` slots and spend its
  :class:`RequestBudget`, so overlapping them never exceeds the vendor's limits.
- Both run each piece of work in a copy of the caller's context (``contextvars``), so
  what the caller's context carries (the run's request tally, its log fields) holds on
  the workers too. Their helper threads come from a connector's :class:`ChunkPool`
  (at most its concurrency, kept for the run, ended by its ``close``); the caller's
  thread works beside them and never waits for a free worker, so a chunk that itself
  calls :func:`run_chunks` on the same pool cannot deadlock it.
- ``meanwhile`` (both): the caller's own work that overlaps the chunks (a connector's
  caller writing the other vendor while this one's per-record steps are in flight).
  The chunks then start on the helpers first, up to the same ``workers`` at a time;
  the caller runs ``meanwhile`` on its own thread, in its own context, and then works
  beside them as above. What ``meanwhile`` raises stops the chunks as a chunk's
  exception does (the running ones end first) and is what the call raises.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar, cast

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from connectors.base import RateLimited, RetriableError

T = TypeVar("T")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta seconds or an HTTP date (RFC 9110).

    Both vendors document integer seconds; proxies in front of them may send a date.
    None when absent or unreadable, so the caller falls back to its own backoff.
    """
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    base_wait: float = 0.5
    max_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = field(default_factory=lambda: random.random)

    def wait_for(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: the vendor's Retry-After, else backoff."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return min(max(float(error.retry_after), 0.0), self.max_wait)
        ceiling = min(self.base_wait * (2 ** (state.attempt_number - 1)), self.max_wait)
        return ceiling * self.random()

    def call(self, request: Callable[[], T], *, idempotent: bool) -> T:
        def retriable(error: BaseException) -> bool:
            if isinstance(error, RateLimited):
                return True
            return idempotent and isinstance(error, RetriableError)

        retrying = Retrying(
            retry=retry_if_exception(retriable),
            stop=stop_after_attempt(self.max_attempts),
            wait=self.wait_for,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(request)


class RequestBudget:
    """At most ``per_minute`` requests start in any sliding 60-second window."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"requests_per_minute must be >= 1 (got {per_minute})")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until one more request may start, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._starts and now - self._starts[0] >= 60.0:
                    self._starts.popleft()
                if len(self._starts) < self.per_minute:
                    self._starts.append(now)
                    return
                delay = 60.0 - (now - self._starts[0])
            self._sleep(max(delay, 0.001))


class AdaptiveLimit:
    """How many requests may be in flight at once: at most ``maximum``, halved (never
    below 1) when the vendor answers 429, and raised by one after every ``rise_after``
    successes in a row. A 429's Retry-After (capped at ``max_pause``) also pauses every
    new request of the other threads, not only the one that was refused. Thread-safe;
    ``peak`` and ``lowest`` record what happened, for tests and the bench."""

    def __init__(
        self,
        maximum: int,
        *,
        rise_after: int = 10,
        max_pause: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if maximum < 1:
            raise ValueError(f"concurrency must be >= 1 (got {maximum})")
        self.maximum = maximum
        self.rise_after = rise_after
        self.max_pause = max_pause
        self.current = maximum
        self.lowest = maximum
        self.peak = 0
        self._active = 0
        self._successes = 0
        self._resume_at = 0.0
        self._epoch = 0        # pauses called so far; a thread waits out each once
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._local = threading.local()

    def acquire(self) -> None:
        """Block until a request may start: a slot is free and the pause of the latest
        429 is over. Each thread waits out a pause once; the thread that got the 429
        waits in its retry policy instead."""
        while True:
            with self._cond:
                while self._active >= self.current:
                    self._cond.wait()
                served = getattr(self._local, "epoch", 0) >= self._epoch
                delay = 0.0 if served else self._resume_at - self._clock()
                if delay <= 0:
                    self._active += 1
                    self.peak = max(self.peak, self._active)
                    return
                self._local.epoch = self._epoch
            self._sleep(delay)

    def release(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def throttled(self, retry_after: float | None) -> None:
        """The vendor said 429: halve the concurrency and pause for Retry-After."""
        with self._cond:
            self.current = max(1, self.current // 2)
            self.lowest = min(self.lowest, self.current)
            self._successes = 0
            if retry_after:
                pause = min(float(retry_after), self.max_pause)
                self._resume_at = max(self._resume_at, self._clock() + pause)
                self._epoch += 1
                # This thread's retry waits out Retry-After itself.
                self._local.epoch = self._epoch

    def succeeded(self) -> None:
        with self._cond:
            self._successes += 1
            if self._successes >= self.rise_after and self.current < self.maximum:
                self.current += 1
                self._successes = 0
                self._cond.notify_all()

    def call(self, request: Callable[[], T]) -> T:
        """Run one request inside a slot, telling the limit how it went."""
        self.acquire()
        try:
            result = request()
        except RateLimited as error:
            self.throttled(error.retry_after)
            raise
        finally:
            self.release()
        self.succeeded()
        return result


class ChunkPool:
    """The worker threads of one connector's overlapped chunks, kept for its run.

    Starting threads for every batched call cost more than the calls' own local
    work (hundreds of threads per thousand records); this pool starts at most
    ``size`` threads, lazily, keeps them between calls and ends them in
    :meth:`close` (the connector's ``close``). A pool closed is usable again: the next
    call starts threads anew (a connector reopened for the next run). Nested use
    cannot deadlock: :func:`run_chunks`' caller runs chunks itself and waits only for
    those a worker has started, never for a worker to become free.
    """

    def __init__(self, size: int, *, name: str = "incident-sync-chunk") -> None:
        self.size = max(1, size)
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, task: Callable[[], None]) -> Future[None]:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.size,
                                                    thread_name_prefix=self.name)
            return self._executor.submit(task)

    def close(self) -> None:
        """End the threads: queued tasks are dropped (a :func:`run_chunks` caller runs
        what no worker took), running ones end first."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


def run_per_key(keys: Sequence[str], work: Callable[[int], T], workers: int, *,
                pool: ChunkPool | None = None,
                meanwhile: Callable[[], None] | None = None) -> list[T]:
    """``work(i)`` for every index of ``keys``, up to ``workers`` keys at a time; the
    items of one key run in their order on one worker. Results in input order. The
    first exception (``work`` keeps per-item errors in its results, so only what must
    stop the batch, e.g. a FatalError) cancels what has not started and is raised.
    ``pool``, ``meanwhile``: as for :func:`run_chunks`."""
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    if meanwhile is None and (workers <= 1 or len(groups) <= 1):
        return [work(index) for index in range(len(keys))]
    # Each key's items are one chunk of run_chunks: in order, on one worker.
    ordered = list(groups.values())
    done = run_chunks(len(ordered), lambda n: [(index, work(index)) for index in ordered[n]],
                      workers, pool=pool, meanwhile=meanwhile)
    results = dict(pair for chunk in done for pair in chunk)
    return [results[index] for index in range(len(keys))]


def run_chunks(count: int, work: Callable[[int], T], workers: int, *,
               pool: ChunkPool | None = None,
               meanwhile: Callable[[], None] | None = None) -> list[T]:
    """``work(i)`` for every ``i`` in ``range(count)``, up to ``workers`` at a time: the
    independent chunks of one batched call, sent together instead of one after another.
    Results in input order. ``work`` keeps what is one chunk's failure in its result; an
    exception it raises (what must stop the call) lets the chunks already running end,
    starts no other, and the exception of the lowest index is raised, so a caller sees
    the error the one-after-another loop would have stopped at.

    The caller's thread takes chunks too, beside ``workers - 1`` helpers on ``pool``
    (the connector's, kept for its run; without one, a pool for this call alone).
    Chunks are handed out in index order to whichever thread is free, so every chunk
    below a failed one has started, and the caller waits only for chunks a helper
    started: a helper still queued (its pool busy, e.g. with the chunks of an outer
    call that is waiting for this one) finds nothing left and ends at once.

    ``meanwhile``: the caller's own work, run on its thread while the chunks start on
    ``min(workers, count)`` helpers (never more than ``workers`` chunks at once: the
    caller takes a chunk after ``meanwhile`` only while fewer run). Its exception, if
    any, is raised once the running chunks ended, in place of theirs.
    """
    if meanwhile is None and (workers <= 1 or count <= 1):
        return [work(index) for index in range(count)]
    if count == 0:
        assert meanwhile is not None
        meanwhile()
        return []
    width = min(max(workers, 1), count)
    # Without meanwhile the caller is one of the width runners; with it, not at first.
    helping = width if meanwhile is not None else width - 1
    if pool is None:
        own = ChunkPool(helping)
        try:
            return run_chunks(count, work, workers, pool=own, meanwhile=meanwhile)
        finally:
            own.close()
    context = contextvars.copy_context()
    results: list[T | None] = [None] * count
    errors: dict[int, BaseException] = {}
    state = threading.Condition()
    handed = 0      # chunks handed out so far (in index order)
    running = 0     # chunks being worked on
    stopped = False
    interrupted: BaseException | None = None   # the caller's own KeyboardInterrupt & co

    def runner(caller: bool = False) -> None:
        nonlocal handed, running, interrupted
        while True:
            with state:
                while running >= width and not (stopped or errors or handed >= count):
                    state.wait()   # the caller, back from meanwhile: width are running
                if stopped or errors or handed >= count:
                    return
                index = handed
                handed += 1
                running += 1
            try:
                # Each chunk in its own copy of the caller's context, as submitted.
                results[index] = context.copy().run(work, index)
            except BaseException as error:  # re-raised below, unchanged
                with state:
                    errors[index] = error
                    if caller and not isinstance(error, Exception):
                        interrupted = error
            finally:
                with state:
                    running -= 1
                    state.notify_all()

    helpers = [pool.submit(runner) for _ in range(helping)]
    try:
        if meanwhile is not None:
            meanwhile()
        runner(caller=True)
    finally:
        # Whatever ended the caller's part (an interrupt included), no chunk starts
        # after this; those running end before the call does.
        with state:
            stopped = True
        for helper in helpers:
            helper.cancel()   # still queued: nothing left for it
        with state:
            while running:
                state.wait()
    if interrupted is not None:
        raise interrupted   # as the caller waiting on its workers would have been
    if errors:
        raise errors[min(errors)]
    return cast("list[T]", results)   # every index was filled
