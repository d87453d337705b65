"""How ServiceNow HTTP failures become errors of the :mod:`connectors.base` tree.

Contract:
- Pure translation of ``requests`` responses and exceptions; no pysnow (that
  library's own exceptions are handled in :mod:`connectors.servicenow`).
- 401 -> AuthError with advice; 403 -> AuthError, except a data-policy /
  business-rule refusal of a write -> ValidationFailed naming the fields;
  404/410 -> NotFound; 429, and 503 with Retry-After -> RateLimited(retry_after);
  other 5xx -> RetriableError (saying when the body was not JSON, e.g. a proxy
  page); other 4xx -> ValidationFailed with the vendor's message and detail;
  no connection at all -> Unreachable; dropped connection, read timeout,
  invalid or truncated JSON -> RetriableError naming the URL.
- Texts are one line and name the user, URL (scheme, host, path: never query
  values nor ``user:password@``) and status; never a credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from connectors.base import (
    AuthError,
    ConnectorError,
    NotFound,
    RateLimited,
    RetriableError,
    Side,
    Unreachable,
    ValidationFailed,
)
from connectors.retry import parse_retry_after

SIDE = Side.SERVICENOW


def short_url(url: str | None) -> str:
    """Scheme, host and path: enough to name the resource, without query values."""
    if not url:
        return "?"
    parts = urlsplit(url)
    # hostname/port, never netloc: a URL may carry user:password@.
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def _error_body(response: requests.Response) -> tuple[str, str, bool]:
    """(message, detail, is_json) from a ServiceNow error body."""
    try:
        data = response.json()
    except ValueError:
        return "", "", False
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or ""), str(error.get("detail") or ""), True
    if isinstance(error, str):
        return error, str(data.get("detail") or ""), True
    return "", "", True


# Labels a data-policy message names, as the field names a mapping writes.
_FIELD_OF_LABEL = {"close code": "close_code", "close notes": "close_notes",
                   "resolution code": "close_code", "resolution notes": "close_notes",
                   "on hold reason": "hold_reason"}


def _mandatory_fields(text: str) -> dict[str, str]:
    """Field names from a data-policy text: lines like ``Close code is mandatory``."""
    found = {}
    for label in re.findall(r"([A-Za-z][A-Za-z _]*?) is mandatory", text):
        key = label.strip().lower()
        found[_FIELD_OF_LABEL.get(key, key.replace(" ", "_"))] = "mandatory"
    return found


def translate_http_error(
    response: requests.Response,
    *,
    user: str,
    write: bool = False,
    payload_fields: Iterable[str] = (),
) -> ConnectorError:
    """The error-tree exception for a non-2xx ServiceNow answer."""
    status = response.status_code
    url = short_url(response.url)
    message, detail, is_json = _error_body(response)
    said = ": ".join(p for p in (message, detail) if p) or response.reason or "no details"
    said = " ".join(said.split())  # one line, whatever the vendor's formatting
    where = {"side": SIDE.value, "status": status, "url": url}
    if status == 401:
        return AuthError(
            f"ServiceNow refused the credentials of user {user!r} (401) at {url}",
            advice=(
                f"check the username {user!r} and its password "
                "(INCIDENT_SYNC_SERVICENOW__PASSWORD), that the account is active, not locked "
                "out and allowed web service access"
            ),
            **where,
        )
    if status == 403:
        mentioned = {f: said for f in payload_fields if f in said}
        mentioned.update(_mandatory_fields(said))
        policy = any(w in said.lower() for w in ("mandatory", "data policy", "invalid"))
        if write and (mentioned or policy):
            # A data policy / business rule refused the values: an item problem,
            # not a missing permission.
            return ValidationFailed(
                f"ServiceNow rejected the values (403) at {url}: {said}",
                fields=mentioned or {"record": said},
                **where,
            )
        return AuthError(
            f"ServiceNow user {user!r} lacks permission (403) at {url}: {said}",
            advice=(
                f"give {user!r} read/write access to the table (for example the itil role) "
                "and the rest_service role, and check ACLs on the fields"
            ),
            **where,
        )
    if status in (404, 410):
        return NotFound(f"ServiceNow: not found ({status}) at {url}: {said}", **where)
    if status == 429 or (status == 503 and response.headers.get("Retry-After")):
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return RateLimited(
            f"ServiceNow rate limit ({status}) at {url}: {said}", retry_after=wait, **where
        )
    if status >= 500:
        kind = "" if is_json else " with a non-JSON body (a proxy or gateway page?)"
        return RetriableError(f"ServiceNow server error {status}{kind} at {url}: {said}", **where)
    fields = {}
    if detail and message:
        fields = {message: detail}
    return ValidationFailed(f"ServiceNow rejected the request ({status}) at {url}: {said}",
                            fields=fields, **where)


def _is_unreachable(error: requests.RequestException) -> bool:
    """True when no connection was made at all (refused, DNS, TLS, connect timeout)."""
    if isinstance(error, requests.exceptions.SSLError | requests.exceptions.ConnectTimeout):
        return True
    seen: set[int] = set()
    stack: list[Any] = [error]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | ConnectTimeoutError):
            return True
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
    return False


def translate_request_error(error: Exception, *, url: str, user: str, write: bool = False,
                            payload_fields: Iterable[str] = ()) -> ConnectorError | None:
    """The error-tree exception for a ``requests`` failure or a bad body; None otherwise."""
    where = {"side": SIDE.value, "url": short_url(url)}
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return translate_http_error(error.response, user=user, write=write,
                                    payload_fields=payload_fields)
    # requests.JSONDecodeError is both a RequestException and a ValueError: a body problem.
    if isinstance(error, requests.RequestException) and not isinstance(error, ValueError):
        if _is_unreachable(error):
            return Unreachable(
                f"ServiceNow at {short_url(url)} is unreachable ({type(error).__name__})",
                **where,
            )
        return RetriableError(
            f"ServiceNow connection to {short_url(url)} failed ({type(error).__name__})",
            **where,
        )
    if isinstance(error, ValueError):
        # A truncated or foreign body: often a proxy hiccup, so worth retrying.
        return RetriableError(
            f"ServiceNow answered {short_url(url)} with an invalid or truncated body "
            f"({type(error).__name__})",
            **where,
        )
    return None
