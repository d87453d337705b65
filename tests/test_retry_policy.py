"""The shared retry policy: what is retried, how long it waits, and the request budget."""

from __future__ import annotations

import threading
import time

import pytest

from connectors.base import AuthError, NotFound, RateLimited, RetriableError
from connectors.retry import AdaptiveLimit, RequestBudget, RetryPolicy, run_per_key


class Flaky:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def policy(sleeps: list[float], **kw: object) -> RetryPolicy:
    return RetryPolicy(sleep=sleeps.append, random=lambda: 1.0, **kw)  # type: ignore[arg-type]


def test_rate_limited_write_is_retried_after_the_vendors_retry_after() -> None:
    sleeps: list[float] = []
    request = Flaky(RateLimited("429", retry_after=7), RateLimited("429", retry_after=2))
    assert policy(sleeps).call(request, idempotent=False) == "ok"
    assert request.calls == 3
    assert sleeps == [7.0, 2.0]


def test_retry_after_is_capped() -> None:
    sleeps: list[float] = []
    policy(sleeps, max_wait=5).call(Flaky(RateLimited("429", retry_after=3600)), idempotent=True)
    assert sleeps == [5.0]


def test_server_error_is_retried_only_for_idempotent_requests() -> None:
    sleeps: list[float] = []
    read = Flaky(RetriableError("500"))
    assert policy(sleeps).call(read, idempotent=True) == "ok"
    write = Flaky(RetriableError("500"))
    with pytest.raises(RetriableError):
        policy(sleeps).call(write, idempotent=False)
    assert write.calls == 1


def test_backoff_grows_exponentially_and_gives_up_after_max_attempts() -> None:
    sleeps: list[float] = []
    request = Flaky(*[RetriableError("503")] * 10)
    with pytest.raises(RetriableError):
        policy(sleeps, max_attempts=4, base_wait=1).call(request, idempotent=True)
    assert request.calls == 4
    assert sleeps == [1.0, 2.0, 4.0]


def test_skippable_errors_are_not_retried() -> None:
    request = Flaky(NotFound("gone"))
    with pytest.raises(NotFound):
        policy([]).call(request, idempotent=True)
    assert request.calls == 1


def test_budget_spaces_requests_over_a_sliding_minute() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = RequestBudget(2, clock=lambda: now[0], sleep=sleep)
    budget.acquire()
    budget.acquire()
    assert slept == []
    now[0] = 10.0
    budget.acquire()  # third within the minute waits until the first is 60 s old
    assert slept == [50.0]


def test_budget_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        RequestBudget(0)


# --------------------------------------------------------------------------- concurrency


def test_a_429_halves_the_concurrency_down_to_one_and_successes_raise_it_again() -> None:
    limit = AdaptiveLimit(8, rise_after=3, sleep=lambda s: None)
    for expected in (4, 2, 1, 1):
        with pytest.raises(RateLimited):
            limit.call(Flaky(RateLimited("429")))
        assert limit.current == expected
    assert limit.lowest == 1
    for _ in range(7):
        assert limit.call(lambda: "ok") == "ok"
    assert limit.current == 3  # +1 per 3 successes in a row


def test_a_429_pauses_the_other_threads_once_but_not_the_one_whose_retry_waits() -> None:
    now = [100.0]
    sleeps: list[float] = []
    limit = AdaptiveLimit(4, clock=lambda: now[0], sleep=sleeps.append)
    with pytest.raises(RateLimited):
        limit.call(Flaky(RateLimited("429", retry_after=5)))
    limit.call(lambda: None)            # the refused thread's retry: its policy waited
    assert sleeps == []
    other: list[float] = []

    def elsewhere() -> None:
        limit.call(lambda: None)
        limit.call(lambda: None)        # waited once for this pause, not again
        other.extend(sleeps)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert other == [5.0]


def test_run_per_key_keeps_each_keys_order_and_overlaps_keys() -> None:
    keys = [f"K{n % 4}" for n in range(24)]
    seen: dict[str, list[int]] = {}
    active, peak = [0], [0]
    lock = threading.Lock()

    def work(index: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.005)
        with lock:
            seen.setdefault(keys[index], []).append(index)
            active[0] -= 1
        return index * 10

    assert run_per_key(keys, work, 4) == [n * 10 for n in range(24)]
    assert all(indexes == sorted(indexes) for indexes in seen.values())
    assert peak[0] > 1


def test_run_per_key_raises_what_must_stop_the_batch() -> None:
    def work(index: int) -> int:
        if index == 3:
            raise AuthError("token revoked")
        return index

    with pytest.raises(AuthError):
        run_per_key(["a", "b", "c", "d", "e"], work, 3)


def test_the_request_budget_holds_across_threads() -> None:
    now = [0.0]
    lock = threading.Lock()
    starts: list[float] = []

    def sleep(seconds: float) -> None:
        with lock:  # time passes only while someone waits
            now[0] += seconds

    budget = RequestBudget(10, clock=lambda: now[0], sleep=sleep)

    def worker() -> None:
        for _ in range(10):
            budget.acquire()
            with lock:
                starts.append(now[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 40
    # 40 starts at 10 a minute: the last ten cannot begin before three minutes passed.
    assert now[0] >= 180.0
