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
- :class:`RequestBudget` spaces requests so no more than N start in any minute.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

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
