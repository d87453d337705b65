"""A stateful Jira stand-in (Cloud or Data Center, with JSM) served on loopback.

Contract:
- :class:`JiraSandbox` subclasses :class:`~connectors.sandbox.http.SandboxServer`.
  ``mode="cloud"`` serves ``/rest/api/2`` (strings) and ``/rest/api/3`` (ADF
  required for rich text), searches only through ``/search/jql`` (token paging,
  bounded JQL, default fields ``id``) and answers 410 on the removed
  ``/search``; ``mode="datacenter"`` serves ``/rest/api/2`` only, the legacy
  ``/search`` with startAt/total, and accepts a Bearer PAT (the password).
- Both serve what the ``jira`` library and the connector use: serverInfo,
  myself, field, priority, resolution, project, createmeta, issue create / bulk
  create / get / edit / delete, transitions, comments (internal through the
  ``sd.public.comment`` property), issue properties, remote links (upsert by
  globalId), changelog, users, the JSM request-comment and servicedesk
  endpoints, and ``listApplicationlinks``. The site is fixed by
  ``jira_site.py``; rules and state live in ``jira_store.py``, JSON views in
  ``jira_render.py``, JQL in ``jql.py``.
- Errors are Jira ErrorCollections; 429 carries the rate-limit headers of the
  mode. Every in-process helper (:meth:`create_issue`, :meth:`edit_issue`,
  :meth:`transition_issue`, :meth:`add_comment`, :meth:`issue`, ...) runs the same
  validation as the HTTP routes under ``self.lock`` and raises
  :class:`~connectors.sandbox.jira_store.JiraRejected` where HTTP would answer 4xx.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox import jira_site as site
from connectors.sandbox import jql
from connectors.sandbox.http import FaultPlan, Request, Response, SandboxServer
from connectors.sandbox.jira_render import Renderer, parse_field_selection
from connectors.sandbox.jira_store import (
    JiraRejected,
    JiraState,
    SearchCatalog,
    StoredIssue,
    bad_request,
    collection,
    not_found,
)
from connectors.sandbox.seed import seed_incidents

CLOUD_SEARCH_CAP = 5000       # per page when only id/key are asked for
CLOUD_SEARCH_FIELDS_CAP = 100  # per page when fields are asked for ("fewer may return")
DC_SEARCH_CAP = 1000
SEARCH_REMOVED = ("The requested API has been removed. Please migrate to the "
                  "/rest/api/3/search/jql API. A full migration guideline is available at "
                  "https://developer.atlassian.com/changelog/#CHANGE-2046")
_API = r"/rest/api/(?P<v>2|3|latest)"
_SEARCH_JQL_KEYS = {"jql", "nextPageToken", "maxResults", "fields", "expand", "properties",
                    "fieldsByKeys", "failFast", "reconcileIssues"}
_SEARCH_DC_KEYS = {"jql", "startAt", "maxResults", "validateQuery", "fields", "expand",
                   "properties", "fieldsByKeys"}

# The seed's neutral values as this site's options (documented for the mapping profile).
SEED_IMPACT = {1: "Extensive / Widespread", 2: "Significant / Large", 3: "Moderate / Limited"}
SEED_URGENCY = {1: "High", 2: "Medium", 3: "Low"}
SEED_STATUS = {"new": "Open", "in_progress": "Work in progress", "on_hold": "Pending",
               "resolved": "Resolved"}
SEED_COMPONENT = {"network": "Network", "database": "Database", "hardware": "Hardware",
                  "software": "Software", "inquiry": "Inquiry"}


@dataclass
class Call:
    """One API request as a handler sees it: who, which API version, how to render."""

    request: Request
    version: str
    render: Renderer
    actor: str  # email of the authenticated user

    def body(self) -> Any:
        try:
            return self.request.json()
        except ValueError:
            raise bad_request("Unexpected character in the request body: it is not valid "
                              "JSON.") from None


def _now() -> datetime:
    return datetime.now(UTC)


class JiraSandbox(SandboxServer):
    """Jira Cloud or Data Center (with JSM) as a stateful loopback HTTP server."""

    vendor = "jira"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        mode: str = "cloud",
        username: str = "admin",
        password: str = "sandbox",
        faults: FaultPlan | None = None,
        seed_incidents: int = 0,
        seed: int = 1,
        clock: Callable[[], datetime] | None = None,
        project: str = "OPS",
    ) -> None:
        if mode not in ("cloud", "datacenter"):
            raise ValueError(f"mode must be 'cloud' or 'datacenter', got {mode!r}")
        super().__init__(host, port, username=username, password=password, faults=faults)
        self.mode = mode
        self.clock = clock or _now
        self.state = JiraState(mode=mode, project=project, clock=lambda: self.clock())
        self._register_routes()
        if seed_incidents:
            self._seed(seed_incidents, seed)

    @property
    def cloud(self) -> bool:
        return self.mode == "cloud"

    # ---------------------------------------------------------------- hooks

    def _login(self, user: str, password: str) -> str | None:
        """The email of the user these credentials belong to, or None."""
        if password != self.password:
            return None
        for candidate in site.SITE_USERS:
            login = candidate.email if self.cloud else candidate.name
            if user.casefold() == login.casefold():
                return candidate.email
        if user == self.username:
            owner = next((u for u in site.SITE_USERS if u.name == user), site.SITE_USERS[0])
            return owner.email
        return None

    def authenticate(self, request: Request) -> Response | None:
        credentials = request.basic_auth()
        token = request.bearer_token()
        email: str | None = None
        if credentials is not None:
            email = self._login(*credentials)
        elif token is not None and not self.cloud and token == self.password:
            owner = next((u for u in site.SITE_USERS if u.name == self.username),
                         site.SITE_USERS[0])
            email = owner.email
        elif "authorization" not in request.headers and request.path.endswith("/serverInfo"):
            return None  # Jira answers serverInfo anonymously
        if email is None:
            message = ("Client must be authenticated to access this resource." if self.cloud
                       else "You are not authenticated. Authentication required to perform "
                            "this operation.")
            response = self.error_response(401, message)
            response.headers["WWW-Authenticate"] = 'Basic realm="protected-area"'
            return response
        request.user = email
        return None

    def error_response(self, status: int, message: str, detail: str = "") -> Response:
        text = f"{message}: {detail}" if detail else message
        return Response(status, collection([text]))

    def rate_limit_response(self, retry_after: int) -> Response:
        response = Response(429, collection(["Rate limit exceeded."]))
        response.headers["Retry-After"] = str(int(retry_after))
        response.headers["X-RateLimit-Remaining"] = "0"
        if self.cloud:
            reset = self.clock().astimezone(UTC) + timedelta(seconds=retry_after + 59)
            response.headers["X-RateLimit-Limit"] = "350"
            response.headers["X-RateLimit-Reset"] = reset.strftime("%Y-%m-%dT%H:%MZ")
            response.headers["RateLimit-Reason"] = "jira-burst-based"
        else:
            response.headers["X-RateLimit-Limit"] = "100"
            response.headers["X-RateLimit-Interval-Seconds"] = "1"
            response.headers["X-RateLimit-FillRate"] = "10"
        return response

    # ---------------------------------------------------------------- routing

    def _base(self) -> str:
        return self.url if self._httpd is not None else f"http://{self.host}:{self.requested_port}"

    def _api(self, method: str, path: str, handler: Callable[[Call], Response]) -> None:
        def wrapped(request: Request) -> Response:
            version = request.params.get("v", "2")
            version = "2" if version == "latest" else version
            if version == "3" and not self.cloud:
                return self.error_response(404, f"No such resource: {request.path}")
            call = Call(request, version, Renderer(self._base(), self.mode, version,
                                                   self.state.project),
                        request.user or "")
            try:
                return handler(call)
            except JiraRejected as exc:
                return Response(exc.status, exc.body)
        self.route(method, path, wrapped)

    def _register_routes(self) -> None:
        issue = _API + r"/issue/(?P<key>[^/]+)"
        routes: list[tuple[str, str, Callable[[Call], Response]]] = [
            ("GET", _API + "/serverInfo", self._server_info),
            ("GET", _API + "/myself", self._myself),
            ("GET", _API + "/field", lambda c: Response(200, site.field_list())),
            ("GET", _API + "/priority", self._priorities),
            ("GET", _API + "/resolution", self._resolutions),
            ("GET", _API + "/project", self._projects),
            ("GET", _API + r"/project/(?P<project>[^/]+)", self._project),
            ("GET", _API + r"/issue/createmeta/(?P<project>[^/]+)/issuetypes",
             self._createmeta_types),
            ("GET", _API + r"/issue/createmeta/(?P<project>[^/]+)/issuetypes/(?P<type>[^/]+)",
             self._createmeta_fields),
            ("POST", _API + "/issue", self._create),
            ("POST", _API + "/issue/bulk", self._bulk_create),
            ("GET", issue, self._get_issue),
            ("PUT", issue, self._edit),
            ("DELETE", issue, self._delete),
            ("PUT", issue + "/assignee", self._assign),
            ("GET", issue + "/transitions", self._transitions),
            ("POST", issue + "/transitions", self._do_transition),
            ("GET", issue + "/comment", self._comments),
            ("POST", issue + "/comment", self._add_comment),
            ("GET", issue + r"/comment/(?P<comment>\d+)", self._comment),
            ("PUT", issue + r"/comment/(?P<comment>\d+)", self._edit_comment),
            ("DELETE", issue + r"/comment/(?P<comment>\d+)", self._delete_comment),
            ("GET", issue + "/properties", self._property_keys),
            ("GET", issue + r"/properties/(?P<prop>[^/]+)", self._get_property),
            ("PUT", issue + r"/properties/(?P<prop>[^/]+)", self._put_property),
            ("DELETE", issue + r"/properties/(?P<prop>[^/]+)", self._delete_property),
            ("GET", issue + "/remotelink", self._remote_links),
            ("POST", issue + "/remotelink", self._add_remote_link),
            ("GET", issue + r"/remotelink/(?P<link>\d+)", self._remote_link),
            ("DELETE", issue + r"/remotelink/(?P<link>\d+)", self._delete_remote_link),
            ("GET", issue + "/changelog", self._changelog),
            ("GET", _API + "/search/jql", self._search_jql),
            ("POST", _API + "/search/jql", self._search_jql),
            ("POST", _API + "/search/approximate-count", self._approximate_count),
            ("GET", _API + "/search", self._search_legacy),
            ("POST", _API + "/search", self._search_legacy),
            ("GET", _API + "/user", self._user),
            ("GET", _API + "/user/search", self._user_search),
            ("GET", _API + "/user/assignable/search", self._assignable),
            ("GET", "/rest/applinks/latest/listApplicationlinks", lambda c: Response(200, [])),
            ("GET", "/rest/servicedeskapi/info", self._jsm_info),
            ("GET", "/rest/servicedeskapi/servicedesk", self._service_desks),
            ("GET", r"/rest/servicedeskapi/request/(?P<key>[^/]+)/comment", self._jsm_comments),
            ("POST", r"/rest/servicedeskapi/request/(?P<key>[^/]+)/comment",
             self._jsm_add_comment),
        ]
        for method, path, handler in routes:
            self._api(method, path, handler)

    # ---------------------------------------------------------------- site

    def _server_info(self, call: Call) -> Response:
        version = [1001, 0, 0] if self.cloud else [9, 12, 0]
        return Response(200, {
            "baseUrl": self._base(),
            "displayUrl": self._base(),
            "version": "1001.0.0-SNAPSHOT" if self.cloud else "9.12.0",
            "versionNumbers": version,
            "deploymentType": "Cloud" if self.cloud else "Server",
            "buildNumber": 100289 if self.cloud else 9120000,
            "buildDate": "2026-01-05T00:00:00.000+0000",
            "serverTime": site.jira_time(self.clock()),
            "scmInfo": "incident-sync sandbox",
            "serverTitle": "incident-sync sandbox",
            "serverTimeZone": "UTC",
        })

    def _myself(self, call: Call) -> Response:
        return Response(200, call.render.user(call.actor, full=True))

    def _priorities(self, call: Call) -> Response:
        return Response(200, [
            {**call.render.named("priority", p), "description": p.description,  # type: ignore[dict-item]
             "statusColor": "#cccccc", "isDefault": p.id == site.DEFAULT_PRIORITY}
            for p in site.PRIORITIES
        ])

    def _resolutions(self, call: Call) -> Response:
        return Response(200, [call.render.named("resolution", r) for r in site.RESOLUTIONS])

    def _check_project(self, ident: str) -> None:
        if ident not in (site.PROJECT_ID, self.state.project):
            raise not_found(f"No project could be found with key '{ident}'.")

    def _projects(self, call: Call) -> Response:
        return Response(200, [call.render.project_ref()])

    def _project(self, call: Call) -> Response:
        self._check_project(call.request.params["project"])
        return Response(200, call.render.project())

    def _page(self, call: Call, items: list[Any], key: str) -> Response:
        start = _int_arg(call.request.arg("startAt"), 0, "startAt")
        limit = _int_arg(call.request.arg("maxResults"), 50, "maxResults")
        shown = items[start:start + limit]
        data = {"maxResults": limit, "startAt": start, "total": len(items), key: shown}
        if not self.cloud:
            data["isLast"] = start + len(shown) >= len(items)
        return Response(200, data)

    def _createmeta_types(self, call: Call) -> Response:
        self._check_project(call.request.params["project"])
        types = [call.render.issue_type(t) for t in site.ISSUE_TYPES]
        return self._page(call, types, "issueTypes" if self.cloud else "values")

    def _createmeta_fields(self, call: Call) -> Response:
        self._check_project(call.request.params["project"])
        type_id = call.request.params["type"]
        if not any(t.id == type_id for t in site.ISSUE_TYPES):
            raise not_found(f"Issue type with id '{type_id}' does not exist.")
        return self._page(call, _create_meta(call.render), "fields" if self.cloud else "values")

    # ---------------------------------------------------------------- issues

    def _issue(self, call: Call) -> StoredIssue:
        return self.state.find(call.request.params["key"])

    def _create(self, call: Call) -> Response:
        body = call.body()
        issue = self.state.create(body, version=call.version, actor=call.actor)
        data: dict[str, Any] = {"id": str(issue.id), "key": issue.key,
                                "self": f"{call.render.api}/issue/{issue.id}"}
        if isinstance(body.get("transition"), dict):
            data["transition"] = {"status": 200, "errorCollection": collection()}
        return Response(201, data)

    def _bulk_create(self, call: Call) -> Response:
        body = call.body()
        updates = body.get("issueUpdates") if isinstance(body, dict) else None
        if not isinstance(updates, list):
            raise bad_request("Bulk create needs an 'issueUpdates' array.")
        if len(updates) > 50:
            raise bad_request("You can create at most 50 issues in one bulk request.")
        created, errors = [], []
        for index, update in enumerate(updates):
            try:
                issue = self.state.create(update, version=call.version, actor=call.actor)
            except JiraRejected as exc:
                errors.append({"status": exc.status, "elementErrors": exc.body,
                               "failedElementNumber": index})
                continue
            created.append({"id": str(issue.id), "key": issue.key,
                            "self": f"{call.render.api}/issue/{issue.id}"})
        return Response(201 if created else 400, {"issues": created, "errors": errors})

    def _get_issue(self, call: Call) -> Response:
        issue = self._issue(call)
        request = call.request
        fields = parse_field_selection(request.args("fields"), "*all")
        return Response(200, call.render.issue(
            issue, fields=fields, expand=_csv(request.args("expand")),
            properties=_csv(request.args("properties"))))

    def _edit(self, call: Call) -> Response:
        issue = self._issue(call)
        _bool_arg(call.request.arg("notifyUsers"), "notifyUsers")
        self.state.edit(issue, call.body() or {}, version=call.version, actor=call.actor)
        if _bool_arg(call.request.arg("returnIssue"), "returnIssue"):
            return Response(200, call.render.issue(
                issue, fields=site.ALL_FIELD_IDS, expand=_csv(call.request.args("expand"))))
        return Response(204)

    def _delete(self, call: Call) -> Response:
        self.state.delete(self._issue(call))
        return Response(204)

    def _assign(self, call: Call) -> Response:
        issue = self._issue(call)
        self.state.edit(issue, {"fields": {"assignee": call.body()}}, version=call.version,
                        actor=call.actor)
        return Response(204)

    def _transitions(self, call: Call) -> Response:
        issue = self._issue(call)
        with_fields = "transitions.fields" in _csv(call.request.args("expand"))
        wanted = call.request.arg("transitionId")
        result = []
        for transition in site.transitions_from(issue.status):
            if wanted and transition.id != wanted:
                continue
            target = site.status_by_id(transition.target)
            entry: dict[str, Any] = {
                "id": transition.id, "name": transition.name,
                "to": call.render.status(target), "hasScreen": target.is_done,
                "isGlobal": False, "isInitial": False, "isAvailable": True,
                "isConditional": False, "isLooped": False,
            }
            if with_fields:
                entry["fields"] = _resolution_meta(call.render) if target.is_done else {}
            result.append(entry)
        return Response(200, {"expand": "transitions", "transitions": result})

    def _do_transition(self, call: Call) -> Response:
        self.state.transition(self._issue(call), call.body(), version=call.version,
                              actor=call.actor)
        return Response(204)

    # ---------------------------------------------------------------- comments

    def _comments(self, call: Call) -> Response:
        issue = self._issue(call)
        request = call.request
        start = _int_arg(request.arg("startAt"), 0, "startAt")
        limit = min(_int_arg(request.arg("maxResults"), 100, "maxResults"), 5000)
        order = request.arg("orderBy") or "created"
        if order.lstrip("+-") != "created":
            raise bad_request(f"Invalid orderBy value '{order}'; use created, +created or "
                              "-created.")
        comments = sorted(issue.comments, key=lambda c: (c.created, c.id),
                          reverse=order.startswith("-"))
        return Response(200, call.render.comment_page(
            issue, comments[start:start + limit], start=start, limit=limit,
            total=len(comments),
            with_properties="properties" in _csv(request.args("expand"))))

    def _add_comment(self, call: Call) -> Response:
        issue = self._issue(call)
        body = call.body()
        if not isinstance(body, dict):
            raise bad_request("Can not deserialize the request body.")
        comment = self.state.add_comment(
            issue, body.get("body"), version=call.version, actor=call.actor,
            visibility=body.get("visibility"), properties=body.get("properties"))
        return Response(201, call.render.comment(
            issue, comment, with_properties="properties" in _csv(call.request.args("expand"))))

    def _find_comment(self, call: Call) -> tuple[StoredIssue, Any]:
        issue = self._issue(call)
        wanted = int(call.request.params["comment"])
        comment = next((c for c in issue.comments if c.id == wanted), None)
        if comment is None:
            raise not_found(f"Can not find a comment for the id: {wanted}.")
        return issue, comment

    def _comment(self, call: Call) -> Response:
        issue, comment = self._find_comment(call)
        return Response(200, call.render.comment(
            issue, comment, with_properties="properties" in _csv(call.request.args("expand"))))

    def _edit_comment(self, call: Call) -> Response:
        issue, comment = self._find_comment(call)
        body = call.body()
        if not isinstance(body, dict):
            raise bad_request("Can not deserialize the request body.")
        comment.body = self.state.comment_text(body.get("body"), call.version)
        comment.updated = self.state.now()
        if "visibility" in body:
            comment.visibility = body["visibility"]
        issue.updated = max(issue.updated, comment.updated)
        return Response(200, call.render.comment(issue, comment))

    def _delete_comment(self, call: Call) -> Response:
        issue, comment = self._find_comment(call)
        issue.comments.remove(comment)
        return Response(204)

    # ---------------------------------------------------------------- properties, links

    def _property_keys(self, call: Call) -> Response:
        issue = self._issue(call)
        return Response(200, {"keys": [
            {"self": f"{call.render.api}/issue/{issue.id}/properties/{key}", "key": key}
            for key in issue.properties
        ]})

    def _get_property(self, call: Call) -> Response:
        issue = self._issue(call)
        key = call.request.params["prop"]
        if key not in issue.properties:
            raise not_found(f"The property with key '{key}' does not exist.")
        return Response(200, {"key": key, "value": issue.properties[key]})

    def _put_property(self, call: Call) -> Response:
        issue = self._issue(call)
        created = self.state.set_property(issue, call.request.params["prop"],
                                          call.request.body)
        return Response(201 if created else 200)

    def _delete_property(self, call: Call) -> Response:
        issue = self._issue(call)
        key = call.request.params["prop"]
        if key not in issue.properties:
            raise not_found(f"The property with key '{key}' does not exist.")
        del issue.properties[key]
        return Response(204)

    def _link_json(self, call: Call, issue: StoredIssue, link: dict[str, Any]
                   ) -> dict[str, Any]:
        return {"id": link["id"],
                "self": f"{call.render.api}/issue/{issue.key}/remotelink/{link['id']}",
                **{k: v for k, v in link.items() if k != "id"}}

    def _remote_links(self, call: Call) -> Response:
        issue = self._issue(call)
        wanted = call.request.arg("globalId")
        links = [link for link in issue.remote_links
                 if wanted is None or link.get("globalId") == wanted]
        return Response(200, [self._link_json(call, issue, link) for link in links])

    def _add_remote_link(self, call: Call) -> Response:
        issue = self._issue(call)
        link, created = self.state.upsert_remote_link(issue, call.body())
        return Response(201 if created else 200, {
            "id": link["id"],
            "self": f"{call.render.api}/issue/{issue.key}/remotelink/{link['id']}"})

    def _find_link(self, call: Call) -> tuple[StoredIssue, dict[str, Any]]:
        issue = self._issue(call)
        wanted = int(call.request.params["link"])
        link = next((x for x in issue.remote_links if x["id"] == wanted), None)
        if link is None:
            raise not_found(f"No remote link with id {wanted} exists on this issue.")
        return issue, link

    def _remote_link(self, call: Call) -> Response:
        issue, link = self._find_link(call)
        return Response(200, self._link_json(call, issue, link))

    def _delete_remote_link(self, call: Call) -> Response:
        issue, link = self._find_link(call)
        issue.remote_links.remove(link)
        return Response(204)

    def _changelog(self, call: Call) -> Response:
        issue = self._issue(call)
        start = _int_arg(call.request.arg("startAt"), 0, "startAt")
        limit = min(_int_arg(call.request.arg("maxResults"), 100, "maxResults"), 100)
        shown = issue.history[start:start + limit]
        is_last = start + len(shown) >= len(issue.history)
        base = f"{call.render.api}/issue/{issue.key}/changelog"
        data: dict[str, Any] = {
            "self": f"{base}?maxResults={limit}&startAt={start}",
            "maxResults": limit, "startAt": start, "total": len(issue.history),
            "isLast": is_last, "values": [call.render.history(h) for h in shown],
        }
        if not is_last:
            data["nextPage"] = f"{base}?maxResults={limit}&startAt={start + limit}"
        return Response(200, data)

    # ---------------------------------------------------------------- search

    def _bind(self, call: Call, text: str, *, strict: bool = True) -> jql.BoundQuery:
        try:
            return jql.bind(jql.parse(text), SearchCatalog(self.state, call.actor),
                            strict=strict)
        except jql.JqlError as exc:
            raise bad_request(exc.message) from None

    def _matching(self, bound: jql.BoundQuery) -> list[StoredIssue]:
        found = [i for i in self.state.issues.values() if bound.matches(i)]
        if bound.order:
            return bound.sort(found, tiebreak=lambda i: i.id)
        return sorted(found, key=lambda i: (i.created, i.id), reverse=True)

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
                    params[key] = _csv([params[key]])
            return params
        request = call.request
        params = {k: request.arg(k) for k in allowed if request.arg(k) is not None}
        params["fields"] = request.args("fields")
        params["expand"] = _csv(request.args("expand"))
        params["properties"] = _csv(request.args("properties"))
        params["reconcileIssues"] = request.args("reconcileIssues")
        return params

    def _render_issues(self, call: Call, issues: list[StoredIssue], fields: list[str],
                       params: dict[str, Any]) -> list[dict[str, Any]]:
        expand = params.get("expand") or []
        if isinstance(expand, str):
            expand = _csv([expand])
        return [call.render.issue(i, fields=fields, expand=expand,
                                  properties=params.get("properties") or [], in_search=True)
                for i in issues]

    def _search_jql(self, call: Call) -> Response:
        if not self.cloud:
            return self.error_response(404, f"No such resource: {call.request.path}")
        params = self._search_params(call, _SEARCH_JQL_KEYS)
        text = str(params.get("jql") or "")
        bound = self._bind(call, text)
        if not bound.query.bounded:
            raise bad_request("Unbounded JQL queries are not allowed here. Please add a search "
                              "restriction to your query.")
        if len(params.get("properties") or []) > 5:
            raise bad_request("You can request at most 5 issue properties.")
        if len(params.get("reconcileIssues") or []) > 50:
            raise bad_request("You can reconcile at most 50 issues.")
        fields = parse_field_selection(params.get("fields") or [], "id")
        cap = CLOUD_SEARCH_CAP if all(f in ("id", "key") for f in fields) else \
            CLOUD_SEARCH_FIELDS_CAP
        limit = _int_arg(params.get("maxResults"), 50, "maxResults") or 50
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
            data["names"] = {f: site.field_name(f) for f in fields if f not in ("id", "key")}
        return Response(200, data)

    def _approximate_count(self, call: Call) -> Response:
        if not self.cloud:
            return self.error_response(404, f"No such resource: {call.request.path}")
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
            return Response(410, collection([SEARCH_REMOVED]))
        params = self._search_params(call, _SEARCH_DC_KEYS)
        validate = str(params.get("validateQuery", "strict")).casefold()
        if validate not in ("strict", "warn", "none", "true", "false"):
            raise bad_request(f"Invalid validateQuery value '{validate}'.")
        strict = validate in ("strict", "true")
        bound = self._bind(call, str(params.get("jql") or ""), strict=strict)
        fields = parse_field_selection(params.get("fields") or [], "*navigable")
        start = _int_arg(params.get("startAt"), 0, "startAt")
        limit = min(_int_arg(params.get("maxResults"), 50, "maxResults"), DC_SEARCH_CAP)
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

    # ---------------------------------------------------------------- users

    def _user(self, call: Call) -> Response:
        request = call.request
        if self.cloud:
            ident = request.arg("accountId")
            if not ident:
                raise bad_request("The accountId query parameter needs to be provided.")
            user = next((u for u in site.SITE_USERS if u.account_id == ident), None)
            missing = f"The user with account ID '{ident}' does not exist."
        else:
            name, key = request.arg("username"), request.arg("key")
            if not name and not key:
                raise bad_request("Either the 'username' or the 'key' query parameter must "
                                  "be provided.")
            user = next((u for u in site.SITE_USERS
                         if (name and u.name == name) or (key and u.key == key)), None)
            missing = f"The user named '{name or key}' does not exist"
        if user is None:
            raise not_found(missing)
        return Response(200, call.render.user(user.email, full=True))

    def _matching_users(self, term: str | None) -> list[site.SiteUser]:
        if not term:
            return list(site.SITE_USERS)
        folded = term.casefold()
        found = []
        for user in site.SITE_USERS:
            words = [user.email.casefold(), user.display_name.casefold(),
                     *user.display_name.casefold().split()]
            if not self.cloud:
                words.append(user.name.casefold())
            if any(word.startswith(folded) for word in words):
                found.append(user)
        return found

    def _user_term(self, call: Call) -> str | None:
        request = call.request
        if self.cloud and request.arg("username"):
            raise bad_request("The query parameter 'username' is not supported in GDPR "
                              "strict mode.")
        return request.arg("query") or request.arg("username")

    def _users_page(self, call: Call, users: list[site.SiteUser]) -> Response:
        start = _int_arg(call.request.arg("startAt"), 0, "startAt")
        limit = _int_arg(call.request.arg("maxResults"), 50, "maxResults")
        return Response(200, [call.render.user(u.email) for u in users[start:start + limit]])

    def _user_search(self, call: Call) -> Response:
        term = self._user_term(call)
        if not term:
            raise bad_request("One of 'query' or 'username' query parameters needs to be "
                              "provided.")
        return self._users_page(call, self._matching_users(term))

    def _assignable(self, call: Call) -> Response:
        request = call.request
        project, key = request.arg("project"), request.arg("issueKey")
        if not project and not key:
            raise bad_request("A project key or an issue key must be provided.")
        if project:
            self._check_project(project)
        if key:
            self.state.find(key)
        return self._users_page(call, self._matching_users(self._user_term(call)))

    # ---------------------------------------------------------------- JSM

    def _jsm_info(self, call: Call) -> Response:
        return Response(200, {"version": "10.3.0" if not self.cloud else "",
                              "platformVersion": "9.12.0" if not self.cloud else "",
                              "_links": {"self": f"{self._base()}/rest/servicedeskapi/info"}})

    def _service_desks(self, call: Call) -> Response:
        base = f"{self._base()}/rest/servicedeskapi/servicedesk"
        return Response(200, {
            "size": 1, "start": 0, "limit": 50, "isLastPage": True,
            "values": [{"id": site.SERVICE_DESK_ID, "projectId": site.PROJECT_ID,
                        "projectName": site.PROJECT_NAME, "projectKey": self.state.project,
                        "_links": {"self": f"{base}/{site.SERVICE_DESK_ID}"}}],
            "_links": {"base": self._base(), "context": "", "self": base},
        })

    def _jsm_comment(self, issue: StoredIssue, comment: Any) -> dict[str, Any]:
        user = site.user_by_email(comment.author)
        author: dict[str, Any] = {"emailAddress": comment.author,
                                  "displayName": user.display_name if user else comment.author,
                                  "active": True, "timeZone": "UTC"}
        if user and self.cloud:
            author["accountId"] = user.account_id
        elif user:
            author.update({"name": user.name, "key": user.key})
        created = comment.created
        base = f"{self._base()}/rest/servicedeskapi/request/{issue.id}/comment"
        return {
            "id": str(comment.id), "body": comment.body.text, "public": not comment.internal,
            "author": author,
            "created": {"iso8601": created.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "jira": site.jira_time(created),
                        "friendly": created.strftime("%d/%b/%y %I:%M %p"),
                        "epochMillis": int(created.timestamp() * 1000)},
            "_links": {"self": f"{base}/{comment.id}"},
        }

    def _jsm_comments(self, call: Call) -> Response:
        issue = self._issue(call)
        request = call.request
        public = _bool_arg(request.arg("public"), "public", default=True)
        internal = _bool_arg(request.arg("internal"), "internal", default=True)
        start = _int_arg(request.arg("start"), 0, "start")
        limit = _int_arg(request.arg("limit"), 50, "limit")
        comments = [c for c in issue.comments if (c.internal and internal)
                    or (not c.internal and public)]
        shown = comments[start:start + limit]
        base = f"{self._base()}/rest/servicedeskapi/request/{issue.key}/comment"
        return Response(200, {
            "size": len(shown), "start": start, "limit": limit,
            "isLastPage": start + len(shown) >= len(comments),
            "values": [self._jsm_comment(issue, c) for c in shown],
            "_links": {"base": self._base(), "context": "", "self": base},
        })

    def _jsm_add_comment(self, call: Call) -> Response:
        issue = self._issue(call)
        body = call.body()
        if not isinstance(body, dict) or not isinstance(body.get("body"), str):
            raise bad_request("The comment body must be a string (plain text or wiki "
                              "markup).")
        public = body.get("public", True)
        if not isinstance(public, bool):
            raise bad_request("'public' must be true or false.")
        comment = self.state.add_comment(issue, body["body"], version="2", actor=call.actor,
                                         internal=not public)
        return Response(201, self._jsm_comment(issue, comment))

    # ---------------------------------------------------------------- in-process helpers

    def _admin_email(self) -> str:
        return self._login(self.username, self.password) or site.SITE_USERS[0].email

    def create_issue(self, fields: dict[str, Any]) -> str:
        """Create an issue from v2-style fields (project and issue type default to
        OPS / Incident); returns its key."""
        fields = {"project": {"key": self.state.project}, "issuetype": {"name": "Incident"},
                  **fields}
        with self.lock:
            return self.state.create({"fields": fields}, version="2",
                                     actor=self._admin_email()).key

    def edit_issue(self, key: str, fields: dict[str, Any]) -> None:
        with self.lock:
            self.state.edit(self.state.find(key), {"fields": fields}, version="2",
                            actor=self._admin_email())

    def transition_issue(self, key: str, status_name: str, *,
                         resolution: str | None = None) -> None:
        """Move an issue to ``status_name`` along the workflow (shortest path)."""
        with self.lock:
            issue = self.state.find(key)
            target = site.find_status(status_name)
            if target is None:
                raise bad_request(f"No status named '{status_name}'.")
            path = site.workflow_path(issue.status, target.id)
            if path is None:
                raise bad_request(f"No workflow path from "
                                  f"'{site.status_by_id(issue.status).name}' to "
                                  f"'{target.name}'.")
            for step in path:
                body: dict[str, Any] = {"transition": {"id": step.id}}
                if resolution and site.status_by_id(step.target).is_done:
                    body["fields"] = {"resolution": {"name": resolution}}
                self.state.transition(issue, body, version="2", actor=self._admin_email())

    def add_comment(self, key: str, body: str, *, internal: bool = False,
                    author_email: str | None = None) -> str:
        with self.lock:
            author = author_email or self._admin_email()
            if site.user_by_email(author) is None:
                raise bad_request(f"No user with email '{author}'.")
            comment = self.state.add_comment(self.state.find(key), body, version="2",
                                             actor=author, internal=internal)
            return str(comment.id)

    def issue(self, key: str) -> dict[str, Any]:
        """Exactly what ``GET /rest/api/2/issue/{key}`` returns."""
        with self.lock:
            render = Renderer(self._base(), self.mode, "2", self.state.project)
            return render.issue(self.state.find(key), fields=site.ALL_FIELD_IDS)

    def issue_keys(self) -> list[str]:
        with self.lock:
            return [i.key for i in sorted(self.state.issues.values(), key=lambda i: i.id)]

    def delete_issue(self, key: str) -> None:
        with self.lock:
            self.state.delete(self.state.find(key))

    # ---------------------------------------------------------------- seeding

    def _seed(self, count: int, seed: int) -> None:
        """Issues from the shared seed, each status reached along the workflow."""
        moment = [datetime(2026, 1, 5, 8, 0, tzinfo=UTC)]
        real_clock = self.state.clock
        self.state.clock = lambda: moment[0]
        try:
            for incident in seed_incidents(count, seed):
                moment[0] = incident.opened_at
                priority = ["Highest", "High", "Medium", "Low", "Lowest"][
                    _itil(incident.impact, incident.urgency) - 1]
                reporter = site.user_by_email(incident.caller_email)
                fields: dict[str, Any] = {
                    "project": {"key": self.state.project}, "issuetype": {"name": "Incident"},
                    "summary": incident.title, "description": incident.description,
                    "priority": {"name": priority},
                    "components": [{"name": SEED_COMPONENT[incident.category]}],
                    "customfield_10004": {"value": SEED_IMPACT[incident.impact]},
                    "customfield_10005": {"value": SEED_URGENCY[incident.urgency]},
                    "customfield_10006": incident.group,
                    "customfield_10007": incident.subcategory,
                }
                if reporter:
                    fields["reporter"] = self._ref(reporter)
                assignee = site.user_by_email(incident.assignee_email or "")
                if assignee:
                    fields["assignee"] = self._ref(assignee)
                issue = self.state.create({"fields": fields}, version="2",
                                          actor=self._admin_email())
                target = site.find_status(SEED_STATUS[incident.status])
                assert target is not None
                for step in site.workflow_path(issue.status, target.id) or []:
                    moment[0] += timedelta(minutes=3)
                    body: dict[str, Any] = {"transition": {"id": step.id}}
                    if site.status_by_id(step.target).is_done:
                        body["fields"] = {"resolution": {"name": "Fixed"}}
                    self.state.transition(issue, body, version="2", actor=self._admin_email())
                for comment in incident.comments:
                    moment[0] += timedelta(minutes=5)
                    self.state.add_comment(issue, comment.body, version="2",
                                           actor=comment.author_email,
                                           internal=comment.internal)
        finally:
            self.state.clock = real_clock

    def _ref(self, user: site.SiteUser) -> dict[str, str]:
        return {"accountId": user.account_id} if self.cloud else {"name": user.name}


# ------------------------------------------------------------------ helpers


def _itil(impact: int, urgency: int) -> int:
    # The ITIL matrix (same as mappings.model.itil_priority); the sandbox does not
    # import mappings, so the three-by-three table is restated here.
    return {2: 1, 3: 2, 4: 3, 5: 4, 6: 5}[impact + urgency]


def _csv(values: list[str] | Any) -> list[str]:
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values or [] for part in str(value).split(",")
            if part.strip()]


def _int_arg(value: Any, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"The '{name}' parameter must be an integer, got '{value}'.") from None
    if number < 0:
        raise bad_request(f"The '{name}' parameter must not be negative.")
    return number


def _bool_arg(value: Any, name: str, *, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    folded = str(value).casefold()
    if folded not in ("true", "false"):
        raise bad_request(f"The '{name}' parameter must be true or false, got '{value}'.")
    return folded == "true"


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


def _resolution_meta(render: Renderer) -> dict[str, Any]:
    return {"resolution": {
        "required": False, "schema": {"type": "resolution", "system": "resolution"},
        "name": "Resolution", "key": "resolution",
        "operations": ["set"], "hasDefaultValue": True,
        "allowedValues": [render.named("resolution", r) for r in site.RESOLUTIONS],
    }}


def _create_meta(render: Renderer) -> list[dict[str, Any]]:
    """The fields an Incident can be created with (createmeta), with allowed values."""
    meta = []
    required = {"summary", "issuetype", "project"}
    allowed: dict[str, list[Any]] = {
        "priority": [render.named("priority", p) for p in site.PRIORITIES],
        "components": [{"self": f"{render.api}/component/{c.id}", "id": c.id, "name": c.name}
                       for c in site.COMPONENTS],
        "issuetype": [render.issue_type(t) for t in site.ISSUE_TYPES],
        "project": [render.project_ref()],
    }
    for entry in site.field_list():
        field_id = str(entry["id"])
        system = site.SYSTEM_BY_ID.get(field_id)
        if system is not None and not system.settable:
            continue
        item: dict[str, Any] = {
            "required": field_id in required, "schema": entry["schema"],
            "name": entry["name"], "key": field_id, "fieldId": field_id,
            "hasDefaultValue": field_id == "priority",
            "operations": ["add", "set", "remove"] if field_id in ("labels", "components")
            else ["set"],
        }
        custom = site.CUSTOM_BY_ID.get(field_id)
        if custom is not None and custom.kind == "select":
            item["allowedValues"] = [
                {"self": f"{render.api}/customFieldOption/{o.id}", "value": o.name, "id": o.id}
                for o in custom.options]
        elif field_id in allowed:
            item["allowedValues"] = allowed[field_id]
        meta.append(item)
    return meta

