"""The shared retry policy: what is retried, how long it waits, and the request budget."""

from __future__ import annotations

import pytest

from connectors.base import NotFound, RateLimited, RetriableError
from connectors.retry import RequestBudget, RetryPolicy


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
