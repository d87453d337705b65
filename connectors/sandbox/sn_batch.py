"""The ServiceNow Batch API (``POST /api/now/v1/batch``) for the sandbox (vendor-notes.md).

Contract: :func:`run_batch` answers one batch request. Each ``rest_requests``
item (``id``, ``method``, ``url`` required; ``headers`` as ``{name, value}``
pairs; ``body`` base64) becomes an inner request that inherits the batch's
authorization and goes through the sandbox's whole pipeline (fault injection,
routing, request log), so one item can fail while the others succeed. The reply
echoes ``batch_request_id``; each serviced item carries its own
``status_code``, ``status_text``, base64 ``body``, ``execution_time`` (ms),
``headers`` unless ``exclude_response_headers``, and ``error_message`` on
errors; items beyond ``max_items`` are listed in ``unserviced_requests``.
An item whose connection the fault plan drops answers 502.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectors.sandbox.http import Request, Response, _DropConnection
from connectors.sandbox.sn_writes import ServiceNowApiError

Handle = Callable[[Request], Response]
ErrorResponse = Callable[[int, str, str], Response]


def run_batch(outer: Request, payload: Any, handle: Handle, error_response: ErrorResponse,
              max_items: int) -> Response:
    if not isinstance(payload, dict) or not isinstance(payload.get("rest_requests"), list):
        raise ServiceNowApiError(400, "Invalid request",
                                 "body must be an object with a rest_requests array")
    serviced: list[dict[str, Any]] = []
    unserviced: list[str] = []
    for index, item in enumerate(payload["rest_requests"]):
        if index >= max_items:
            unserviced.append(_item_id(item))
            continue
        serviced.append(_run_item(outer, item, handle, error_response))
    return Response(200, {"batch_request_id": payload.get("batch_request_id"),
                          "serviced_requests": serviced,
                          "unserviced_requests": unserviced})


def _item_id(item: Any) -> str:
    return str(item.get("id", "")) if isinstance(item, dict) else ""


def _run_item(outer: Request, item: Any, handle: Handle, error_response: ErrorResponse
              ) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        inner = _inner_request(outer, item)
    except ServiceNowApiError as error:
        response = error_response(error.status, error.message, error.detail)
        return _batch_result(_item_id(item), response, started, exclude_headers=False)
    try:
        response = handle(inner)
    except _DropConnection:
        response = error_response(502, "Bad Gateway", "connection dropped")
    return _batch_result(_item_id(item), response, started,
                         exclude_headers=bool(item.get("exclude_response_headers")))


def _inner_request(outer: Request, item: Any) -> Request:
    if not isinstance(item, dict) or not all(item.get(k) for k in ("id", "method", "url")):
        raise ServiceNowApiError(400, "Invalid request", "id, method and url are required")
    parts = urlsplit(str(item["url"]))
    if not parts.path.startswith("/api/now/") or re.search(r"/batch/?$", parts.path):
        raise ServiceNowApiError(400, "Invalid request",
                                 f"url must be a Table API path: {item['url']!r}")
    headers = {str(h.get("name", "")).lower(): str(h.get("value", ""))
               for h in item.get("headers") or [] if isinstance(h, dict)}
    headers["authorization"] = outer.headers.get("authorization", "")  # inherited
    try:
        body = base64.b64decode(item.get("body") or "", validate=True)
    except (binascii.Error, ValueError):
        raise ServiceNowApiError(400, "Invalid request", "body is not base64") from None
    return Request(method=str(item["method"]).upper(), path=parts.path,
                   query=parse_qs(parts.query, keep_blank_values=True),
                   headers=headers, body=body)


def _batch_result(item_id: str, response: Response, started: float, *,
                  exclude_headers: bool) -> dict[str, Any]:
    payload = response.encode()
    result: dict[str, Any] = {
        "id": item_id,
        "status_code": response.status,
        "status_text": HTTPStatus(response.status).phrase,
        "body": base64.b64encode(payload).decode("ascii"),
        "execution_time": int((time.perf_counter() - started) * 1000),
    }
    if not exclude_headers:
        headers = {"Content-Type": "application/json;charset=UTF-8", **response.headers}
        result["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
    if response.status >= 400 and isinstance(response.body, dict):
        error = response.body.get("error") or {}
        result["error_message"] = str(error.get("message", ""))
    return result
