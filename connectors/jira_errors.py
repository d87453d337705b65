"""Jira failures as errors of :mod:`connectors.base`: HTTP answers and transport faults.

Contract:
- :func:`from_http` maps a Jira (or proxy) answer to the error tree:
  401/403 -> :class:`AuthError` with advice naming the account and what to
  check or grant (never the token), 404/410 -> :class:`NotFound`, 429 or 503
  with ``Retry-After`` -> :class:`RateLimited` (``Retry-After`` seconds or
  HTTP date, else Cloud's ISO ``X-RateLimit-Reset``), an HTML page instead of
  JSON -> :class:`RetriableError` naming endpoint and status, other 5xx and 409
  -> :class:`RetriableError`, other 4xx -> :class:`Rejected` (a
  :class:`ValidationFailed`) carrying Jira's ``errors`` per field and its
  ``errorMessages`` in full.
- :func:`from_transport` maps ``requests`` failures: refused connection,
  unknown host, TLS and connect timeouts -> :class:`Unreachable`; read
  timeouts and dropped connections -> :class:`RetriableError`; invalid or
  truncated JSON in a 2xx answer -> :class:`RetriableError` naming the
  endpoint and status.
- Messages are one line and name endpoints without their query string (the
  JQL is noise there). Nothing here sees credentials, and no library
  exception is kept: callers raise these ``from None``.

No ``jira`` library: :mod:`connectors.jira` unpacks its exception first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from connectors.base import (
    AuthError,
    ConnectorError,
    NotFound,
    RateLimited,
    RetriableError,
    Unreachable,
    ValidationFailed,
)
from connectors.retry import parse_retry_after

_UNREACHABLE_HINTS = ("NewConnectionError", "NameResolution", "getaddrinfo",
                      "Connection refused", "Failed to resolve")


class Rejected(ValidationFailed):
    """Jira refused the request's values; ``messages`` are its ``errorMessages`` in full
    (the one-line text may be shortened), e.g. to see which JQL values don't exist."""

    def __init__(self, message: str, *, messages: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.messages = list(messages or [])


@dataclass(frozen=True)
class Account:
    """Who the connector signs in as, for advice texts (no secret in here)."""

    email: str
    project: str

    @property
    def who(self) -> str:
        return self.email or "the personal-access-token user"

    @property
    def credential(self) -> str:
        return "API token" if self.email else "personal access token"


def path(url: str) -> str:
    """A URL without its query: error texts name the endpoint, not the whole JQL."""
    return url.split("?", 1)[0]


def reset_wait(value: str | None) -> float | None:
    """Seconds until a Cloud ``X-RateLimit-Reset`` (ISO-8601, e.g. ``2026-03-26T16:00Z``)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def one_line(text: Any, limit: int = 300) -> str:
    """``text`` on one line, shortened: error texts must fit a log line and a table cell."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def field_errors(response: requests.Response | None) -> tuple[list[str], dict[str, str]]:
    """Jira's ErrorCollection: (``errorMessages``, ``errors`` per field); empty if none."""
    if response is None:
        return [], {}
    try:
        body = response.json()
    except ValueError:
        return [], {}
    if not isinstance(body, dict):
        return [], {}
    messages = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = body.get("errors") or {}
    fields = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}
    return messages, fields


def from_http(what: str, status: int, url: str, response: requests.Response | None,
              text: str, account: Account) -> ConnectorError:
    """The error for an HTTP answer ``status`` (``text``: the library's parsed message)."""
    at = path(url)
    where: dict[str, Any] = {"side": "jira", "status": status, "url": url}
    headers: Mapping[str, str] = response.headers if response is not None else {}
    html = "html" in headers.get("Content-Type", "").lower()
    messages, fields = field_errors(response)
    detail = "; ".join([*messages, *(f"{k}: {v}" for k, v in fields.items())])
    if not detail and not html:
        detail = one_line(text)
    if status == 401:
        return AuthError(
            f"Jira {what}: HTTP 401, credentials refused for {account.who} ({at})",
            advice=(f"check the {account.credential} of {account.who} "
                    "(INCIDENT_SYNC_JIRA__TOKEN): wrong, expired or revoked"),
            **where,
        )
    if status == 403:
        return AuthError(
            f"Jira {what}: HTTP 403, permission denied for {account.who} ({at})"
            + (f": {one_line(detail)}" if detail else ""),
            advice=(f"grant {account.who} Browse projects, Create, Edit and Transition issues "
                    f"and Add comments in project {account.project} (a JSM agent licence for "
                    "internal comments)"),
            **where,
        )
    if status in (404, 410):
        return NotFound(f"Jira {what}: HTTP {status} at {at}: {one_line(detail) or 'not found'}",
                        **where)
    if status == 429 or (status == 503 and headers.get("Retry-After")):
        wait = parse_retry_after(headers.get("Retry-After"))
        if wait is None:
            wait = reset_wait(headers.get("X-RateLimit-Reset"))
        return RateLimited(f"Jira {what}: HTTP {status}, rate limited at {at}",
                           retry_after=wait, **where)
    if html:
        return RetriableError(
            f"Jira {what}: HTTP {status} with an HTML page instead of JSON from {at} "
            "(a proxy or maintenance page?)",
            **where,
        )
    if status >= 500 or status == 409:
        return RetriableError(f"Jira {what}: HTTP {status} at {at}: {one_line(detail)}", **where)
    return Rejected(
        f"Jira {what}: HTTP {status}: {one_line(detail) or 'rejected'}", fields=fields,
        messages=messages, **where,
    )


def from_transport(exc: BaseException, what: str, *, base_url: str, last_url: str,
                   last_status: int | None, timeout: float) -> ConnectorError:
    """The error for a failure below HTTP, or for an unreadable 2xx body."""
    endpoint = path(last_url or base_url)
    url = last_url or base_url
    if isinstance(exc, ValueError):  # requests' JSONDecodeError is a ValueError too
        return RetriableError(f"Jira {what}: invalid JSON from {endpoint} (HTTP {last_status})",
                              side="jira", status=last_status, url=url)
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return Unreachable(f"Jira {what}: cannot connect to {base_url} ({type(exc).__name__})",
                           side="jira", url=base_url)
    if isinstance(exc, requests.exceptions.Timeout):
        return RetriableError(f"Jira {what}: no answer within {timeout:g}s from {endpoint}",
                              side="jira", url=url)
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = repr(exc.args[0] if exc.args else exc)
        if any(hint in reason for hint in _UNREACHABLE_HINTS):
            return Unreachable(
                f"Jira {what}: cannot connect to {base_url} (refused or unknown host)",
                side="jira", url=base_url)
        return RetriableError(f"Jira {what}: connection dropped talking to {endpoint}",
                              side="jira", url=url)
    return RetriableError(f"Jira {what}: {type(exc).__name__} talking to {endpoint}",
                          side="jira", url=url)
