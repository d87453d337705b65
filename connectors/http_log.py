"""One debug line per HTTP request, and the run's request counts per vendor and status class.

Contract:
- :func:`attach` wraps every transport adapter mounted on a ``requests``
  session (the jira library's, pysnow's) in a :class:`LoggedAdapter`. A
  connector calls it once, in one line, right after it built or re-mounted
  its session; an adapter already wrapped is left as it is.
- Each request logs one DEBUG record on logger ``connectors.http`` (shown at
  ``-vv``): ``GET /rest/api/3/myself -> 200 in 12 ms``, with the event fields
  ``vendor``, ``method``, ``path``, ``status`` and ``elapsed_ms`` (under the
  record's ``event`` extra, the convention :mod:`sync.logs` formats). ``path``
  is the URL's path only: no scheme, host or user info, no query string (a
  query carries JQL, encoded queries and emails). Headers and bodies are
  never looked at, so Authorization and credentials cannot reach a line.
- A request that got no answer (refused, timed out, dropped) logs
  ``status`` null and the exception's type, then re-raises it unchanged.
- :func:`counting` opens a :class:`RequestTally` for the current context
  (the engine opens one per run); each request then adds one to
  (vendor, status class): ``2xx``, ``3xx``, ``4xx``, ``5xx`` or
  ``transport_error``. Without an open tally requests are only logged. The
  tally lives in a context variable: a worker thread counts into it only when
  it runs in a copy of the caller's context (``contextvars.copy_context``).
- Wrapping changes nothing a connector sees: the same response or exception,
  and the inner adapter still does the work (the Jira request meter too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter

log = logging.getLogger("connectors.http")

STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "transport_error")


class RequestTally:
    """Requests per (vendor, status class), safe to count from several threads."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def add(self, vendor: str, status_class: str) -> None:
        with self._lock:
            self._counts[(vendor, status_class)] += 1

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


_tally: ContextVar[RequestTally | None] = ContextVar("incident_sync_requests", default=None)


@contextmanager
def counting() -> Iterator[RequestTally]:
    """Count every request made in this context (and its callees) until the block ends."""
    tally = RequestTally()
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)


def status_class(status: int | None) -> str:
    """``2xx`` ... ``5xx`` for an HTTP status; ``transport_error`` when there was none."""
    if status is None or not 100 <= status <= 599:
        return "transport_error"
    return f"{status // 100}xx"


def url_path(url: str) -> str:
    """The path of ``url`` alone: what a log line may show of a request's address."""
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return "(unparseable URL)"


class LoggedAdapter(BaseAdapter):
    """An adapter that logs and counts each request, then hands it to ``inner``."""

    def __init__(self, inner: BaseAdapter, vendor: str) -> None:
        super().__init__()
        self.inner = inner
        self.vendor = vendor

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        began = time.monotonic()
        try:
            response = self.inner.send(request, *args, **kwargs)
        except Exception as error:
            self._record(request, None, began, type(error).__name__)
            raise
        self._record(request, response.status_code, began, None)
        return response

    def close(self) -> None:
        self.inner.close()

    def _record(self, request: requests.PreparedRequest, status: int | None, began: float,
                error: str | None) -> None:
        elapsed_ms = round((time.monotonic() - began) * 1000, 1)
        kind = status_class(status)
        tally = _tally.get()
        if tally is not None:
            tally.add(self.vendor, kind)
        method = request.method or "?"
        path = url_path(str(request.url or ""))
        fields: dict[str, Any] = {"vendor": self.vendor, "method": method, "path": path,
                                  "status": status, "elapsed_ms": elapsed_ms}
        if error is not None:
            fields["error"] = error
        log.debug("%s %s %s -> %s in %.0f ms", self.vendor, method, path,
                  status if status is not None else error, elapsed_ms,
                  extra={"event": fields})


def attach(session: requests.Session, vendor: str) -> requests.Session:
    """Log and count every request ``session`` sends; returns the session."""
    adapters: Mapping[str, BaseAdapter] = dict(session.adapters)
    wrapped: dict[int, LoggedAdapter] = {}
    for prefix, adapter in adapters.items():
        if isinstance(adapter, LoggedAdapter):
            continue
        # One wrapper per adapter: the jira library mounts one adapter on two prefixes.
        wrapper = wrapped.setdefault(id(adapter), LoggedAdapter(adapter, vendor))
        session.mount(prefix, wrapper)
    return session
