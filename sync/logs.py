"""Logs a person or a log pipeline can read: text or JSON lines on stderr.

Contract:
- :func:`configure` installs ONE handler on the root logger, writing to whatever
  ``sys.stderr`` is when a record comes (commands run in-process swap it), and
  replaces the one an earlier call installed. Verbosity 0 shows warnings and
  errors; 1 (``-v``) adds INFO: run start and end, one line per pair action;
  2 (``-vv``) adds DEBUG: one line per HTTP request (:mod:`connectors.http_log`).
  Other libraries' loggers (urllib3, jira, pysnow, ...) pass only at WARNING
  and above whatever the verbosity: their debug lines carry query strings and
  headers we cannot vouch for.
- ``text``: ``LEVEL logger: message``. ``json``: one object per line with, in
  this order, ``time`` (ISO 8601 UTC, milliseconds), ``level``, ``logger``,
  ``message``, ``run_id`` and ``connection`` (null outside a run), then the
  event fields a record carries (:data:`EVENT_FIELDS`, e.g. ``link``, ``side``,
  ``action``, ``outcome``, ``duration_ms``; for HTTP ``vendor``, ``method``,
  ``path``, ``status``, ``elapsed_ms``), then ``exc`` for a traceback.
- Event fields travel as ONE ``extra={"event": {...}}`` mapping (:func:`event`
  builds it); modules that may not import ``sync`` (the connectors) pass the
  same mapping themselves. Unknown keys are dropped, so a record can never
  smuggle an arbitrary object into a line.
- The run id and connection come from a context variable the engine sets for
  the length of a run (:func:`bound`), so no call site passes them.
- Secrets never reach a line: every formatted line has the values registered
  with :func:`mask_secret` (the factory registers both tools' credentials) and
  the secrets set in the environment replaced by ``***``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sync.settings import ENV_PREFIX, SECRET_KEYS

LOG_FORMATS = ("text", "json")
# The event fields a JSON line may carry, in the order they are written.
EVENT_FIELDS = (
    "link", "side", "record", "action", "outcome", "duration_ms", "error", "counts",
    "vendor", "method", "path", "status", "elapsed_ms",
)
# Loggers of the product: everything else is held at WARNING.
_OURS = ("sync", "connectors", "mappings")
_MIN_SECRET = 4   # shorter values would mask ordinary words

# An immutable default: a mapping shared by every context must never be changed in place.
_context: ContextVar[Mapping[str, Any]] = ContextVar(
    "incident_sync_log_context", default=MappingProxyType({}))
_secrets: set[str] = set()


def mask_secret(*values: str | None) -> None:
    """Never let these values appear in a log line (credentials the process holds)."""
    for value in values:
        if value and len(value) >= _MIN_SECRET:
            _secrets.add(value)


def env_secrets() -> list[str]:
    """Values of the secrets set in the environment (INCIDENT_SYNC_<SECTION>__PASSWORD...)."""
    found = []
    for name, value in os.environ.items():
        key = name.rsplit("__", 1)[-1].lower()
        if name.startswith(ENV_PREFIX) and key in SECRET_KEYS and len(value) >= _MIN_SECRET:
            found.append(value)
    return found


def masked(text: str) -> str:
    """``text`` with every known secret replaced by ``***`` (longest first)."""
    for secret in sorted({*_secrets, *env_secrets()}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (``run_id``, ``connection``) to every line logged inside the block."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def event(**fields: Any) -> dict[str, Any]:
    """The ``extra`` of a record carrying event fields: ``log.info(msg, extra=event(...))``."""
    return {"event": fields}


class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is when a record comes.

    A handler bound once per process to the first stream would fail on every
    later record when commands run in-process (tests) swap and close it.
    """

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def _ours(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name.split(".")[0] in _OURS


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message`` (and the traceback), secrets masked."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return masked(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module contract), secrets masked."""

    def format(self, record: logging.LogRecord) -> str:
        context = _context.get()
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
                            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": context.get("run_id"),
            "connection": context.get("connection"),
        }
        fields = getattr(record, "event", None)
        if isinstance(fields, Mapping):
            line.update({key: fields[key] for key in EVENT_FIELDS if key in fields})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # One physical line whatever the values hold: json.dumps escapes newlines.
        return masked(json.dumps(line, ensure_ascii=False, default=str))


_installed: logging.Handler | None = None
_format = "text"


def configure(verbosity: int = 0, fmt: str = "text") -> None:
    """Install the stderr handler for ``verbosity`` (0, 1, 2+) and ``fmt`` (text|json)."""
    global _installed, _format
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {fmt!r}")
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
    handler = _CurrentStderr()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ours)
    level = logging.WARNING - 10 * min(max(verbosity, 0), 2)
    # The handler's own level too: a logger someone set lower (an embedding
    # application, a test) still shows no more than the verbosity asked for.
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(level)
    _installed, _format = handler, fmt


def current_format() -> str:
    """The format :func:`configure` last installed (``text`` before any call)."""
    return _format
