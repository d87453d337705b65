"""Jira search routes: Cloud's enhanced ``/search/jql`` and Data Center's ``/search``.

Contract:
- Cloud: ``GET``/``POST /rest/api/{2,3}/search/jql`` only; unbounded JQL -> 400;
  default fields ``id``; ``nextPageToken`` paging with ``isLast`` and no
  ``total``; ``maxResults`` default 50, at most 5000 when only id/key are asked
  for and 100 otherwise ("fewer may return when many fields are requested");
  a POST with keys the endpoint doesn't know (``startAt``) -> 400; at most 20
  comments / changelog histories embedded per issue. ``/search`` -> 410 (removed).
  ``POST /search/approximate-count`` -> ``{"count": N}``.
- Data Center: ``GET``/``POST /rest/api/2/search`` with ``startAt``, ``maxResults``
  (default 50, at most 1000), ``total``, ``isLast``, default fields
  ``*navigable``; ``validateQuery`` ``warn``/``false``/``none`` turns values that
  don't exist into ``warningMessages`` instead of a 400.
- Without ORDER BY, results come newest created first (ties by id).
- Fit for measuring: a query pinning ``key`` or ``labels`` with ``=`` / ``in`` reads
  its candidates from the store's key and label indexes (the marker-label and
  ``key in (...)`` searches of a big sync) instead of evaluating every issue.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from connectors.sandbox import jql
from connectors.sandbox.http import Response
from connectors.sandbox.jira_call import (
    Call,
    RoutesBase,
    csv_values,
    int_arg,
    no_such_resource,
)
from connectors.sandbox.jira_catalog import SearchCatalog
from connectors.sandbox.jira_render import parse_field_selection
from connectors.sandbox.jira_store import (
    JiraRejected,
    StoredIssue,
    bad_request,
    collection,
)

CLOUD_SEARCH_CAP = 5000       # per page when only id/key are asked for
CLOUD_SEARCH_FIELDS_CAP = 100  # per page when fields are asked for ("fewer may return")
DC_SEARCH_CAP = 1000
SEARCH_REMOVED = ("The requested API has been removed. Please migrate to the "
                  "/rest/api/3/search/jql API. A full migration guideline is available at "
                  "https://developer.atlassian.com/changelog/#CHANGE-2046")
SEARCH_JQL_KEYS = {"jql", "nextPageToken", "maxResults", "fields", "expand", "properties",
                   "fieldsByKeys", "failFast", "reconcileIssues"}
SEARCH_DC_KEYS = {"jql", "startAt", "maxResults", "validateQuery", "fields", "expand",
                  "properties", "fieldsByKeys"}


class SearchRoutes(RoutesBase):
    """The search endpoints of both deployments."""

    def _bind(self, call: Call, text: str, *, strict: bool = True) -> jql.BoundQuery:
        try:
            return jql.bind(jql.parse(text), SearchCatalog(self.state, call.actor),
                            strict=strict)
        except jql.JqlError as exc:
            raise JiraRejected(400, collection(exc.messages)) from None

    def _matching(self, bound: jql.BoundQuery) -> list[StoredIssue]:
        ids = self._candidates(bound.query.where)
        pool = (self.state.issues.values() if ids is None
                else [self.state.issues[i] for i in ids if i in self.state.issues])
        found = [i for i in pool if bound.matches(i)]
        if bound.order:
            return bound.sort(found, tiebreak=lambda i: i.id)
        return sorted(found, key=lambda i: (i.created, i.id), reverse=True)

    def _candidates(self, node: jql.Node | None) -> set[int] | None:
        """Issue ids a query can match, read from the key and label indexes when the
        query pins ``key``/``labels`` with ``=`` or ``in`` (alone, in every part of an
        OR, or in one part of an AND); None means every issue must be evaluated. Only
        narrows: each candidate is still evaluated against the whole query."""
        if isinstance(node, jql.Clause):
            name = node.field.strip().casefold()
            if node.operator not in ("=", "in") or any(
                    o.kind != "literal" for o in node.operands):
                return None
            values = [o.text for o in node.operands]
            if name in ("key", "issuekey", "id", "issue"):
                ids = {int(v) for v in values if v.isdigit()}
                return ids | self.state.ids_with_keys(v for v in values if not v.isdigit())
            if name == "labels":
                return self.state.ids_with_labels(values)
            return None
        if isinstance(node, jql.And):
            narrowed = [c for c in map(self._candidates, node.parts) if c is not None]
            return set.intersection(*narrowed) if narrowed else None
        if isinstance(node, jql.Or):
            parts = [self._candidates(part) for part in node.parts]
            if any(p is None for p in parts):
                return None
            return set().union(*parts)  # type: ignore[arg-type]
        return None

    def _search_params(self, call: Call, allowed: set[str]) -> dict[str, Any]:
        """GET query or POST body as one dict (lists for fields/expand/properties)."""
        if call.request.method == "POST":
            body = call.body()
            if not isinstance(body, dict):
                raise bad_request("Can not deserialize the request body.")
            for key in body:
                if key not in allowed:
                    raise bad_request(f'Unrecognized field "{key}"')
            params = {k: v for k, v in body.items() if v is not None}
            for key in ("expand", "properties"):
                if isinstance(params.get(key), str):
                    params[key] = csv_values([params[key]])
            return params
        request = call.request
        params = {k: request.arg(k) for k in allowed if request.arg(k) is not None}
        params["fields"] = request.args("fields")
        params["expand"] = csv_values(request.args("expand"))
        params["properties"] = csv_values(request.args("properties"))
        params["reconcileIssues"] = request.args("reconcileIssues")
        return params

    def _render_issues(self, call: Call, issues: list[StoredIssue], fields: list[str],
                       params: dict[str, Any]) -> list[dict[str, Any]]:
        expand = params.get("expand") or []
        if isinstance(expand, str):
            expand = csv_values([expand])
        return [call.render.issue(i, fields=fields, expand=expand,
                                  properties=params.get("properties") or [], in_search=True)
                for i in issues]

    def _search_jql(self, call: Call) -> Response:
        if not self.cloud:
            raise no_such_resource(call)
        params = self._search_params(call, SEARCH_JQL_KEYS)
        text = str(params.get("jql") or "")
        bound = self._bind(call, text)
        if not bound.query.bounded:
            raise bad_request("Unbounded JQL queries are not allowed here. Please add a search "
                              "restriction to your query.")
        if len(params.get("properties") or []) > 5:
            raise bad_request("You can request at most 5 issue properties.")
        if len(params.get("reconcileIssues") or []) > 50:
            raise bad_request("You can reconcile at most 50 issues.")
        fields = parse_field_selection(params.get("fields") or [], "id", self.fields)
        cap = CLOUD_SEARCH_CAP if all(f in ("id", "key") for f in fields) else \
            CLOUD_SEARCH_FIELDS_CAP
        limit = int_arg(params.get("maxResults"), 50, "maxResults") or 50
        limit = min(limit, cap)
        fingerprint = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        offset = _read_token(params.get("nextPageToken"), fingerprint)
        issues = self._matching(bound)
        page = issues[offset:offset + limit]
        data: dict[str, Any] = {"issues": self._render_issues(call, page, fields, params)}
        is_last = offset + len(page) >= len(issues)
        if not is_last:
            data["nextPageToken"] = _make_token(offset + len(page), fingerprint)
        data["isLast"] = is_last
        if "names" in (params.get("expand") or []):
            data["names"] = {f: self.fields.field_name(f) for f in fields
                             if f not in ("id", "key")}
        return Response(200, data)

    def _approximate_count(self, call: Call) -> Response:
        if not self.cloud:
            raise no_such_resource(call)
        body = call.body()
        if not isinstance(body, dict) or set(body) - {"jql"}:
            raise bad_request("The request body must be {\"jql\": \"...\"}.")
        bound = self._bind(call, str(body.get("jql") or ""))
        if not bound.query.bounded:
            raise bad_request("Unbounded JQL queries are not allowed here. Please add a search "
                              "restriction to your query.")
        return Response(200, {"count": len(self._matching(bound))})

    def _search_legacy(self, call: Call) -> Response:
        if self.cloud:
            raise JiraRejected(410, collection([SEARCH_REMOVED]))
        params = self._search_params(call, SEARCH_DC_KEYS)
        validate = str(params.get("validateQuery", "strict")).casefold()
        if validate not in ("strict", "warn", "none", "true", "false"):
            raise bad_request(f"Invalid validateQuery value '{validate}'.")
        strict = validate in ("strict", "true")
        bound = self._bind(call, str(params.get("jql") or ""), strict=strict)
        fields = parse_field_selection(params.get("fields") or [], "*navigable",
                                       self.fields)
        start = int_arg(params.get("startAt"), 0, "startAt")
        limit = min(int_arg(params.get("maxResults"), 50, "maxResults"), DC_SEARCH_CAP)
        issues = self._matching(bound)
        page = issues[start:start + limit]
        data: dict[str, Any] = {
            "expand": "schema,names", "startAt": start, "maxResults": limit,
            "total": len(issues), "isLast": start + len(page) >= len(issues),
            "issues": self._render_issues(call, page, fields, params),
        }
        if bound.warnings and validate == "warn":
            data["warningMessages"] = bound.warnings
        return Response(200, data)


def _make_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "q": fingerprint}).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _read_token(token: Any, fingerprint: str) -> int:
    if not token:
        return 0
    try:
        padded = str(token) + "=" * (-len(str(token)) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        if data["q"] != fingerprint:
            raise ValueError("token belongs to another query")
        return int(data["o"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("The provided next page token is invalid or expired.") from None
