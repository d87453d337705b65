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
  create / get / editmeta / edit / delete, transitions, comments (internal through the
  ``sd.public.comment`` property), issue properties, remote links (upsert by
  globalId), changelog, users, the JSM request-comment and servicedesk
  endpoints, and ``listApplicationlinks``; Cloud also the bulk changelog fetch
  (``changelog/bulkfetch``) and ``issue/properties/multi``. The site is fixed by
  ``jira_site.py``; rules and state live in ``jira_store.py``, JSON views in
  ``jira_render.py``, JQL in ``jql.py`` (over ``jira_catalog.py``); the search,
  user and JSM routes in ``jira_search.py``, ``jira_users.py``, ``jira_jsm.py``;
  seeding in ``jira_seed.py``.
- Errors are Jira ErrorCollections; 429 carries the rate-limit headers of the
  mode. Every in-process helper (:meth:`create_issue`, :meth:`edit_issue`,
  :meth:`transition_issue`, :meth:`add_comment`, :meth:`issue`, ...) runs the same
  validation as the HTTP routes under ``self.lock`` and raises
  :class:`~connectors.sandbox.jira_store.JiraRejected` where HTTP would answer 4xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sandbox import jira_site as site
from connectors.sandbox.http import FaultPlan, Request, Response, SandboxServer
from connectors.sandbox.jira_call import Call, bool_arg, csv_values, int_arg, no_such_resource
from connectors.sandbox.jira_jsm import ServiceDeskRoutes
from connectors.sandbox.jira_render import Renderer, parse_field_selection
from connectors.sandbox.jira_search import SearchRoutes
from connectors.sandbox.jira_seed import seed_site
from connectors.sandbox.jira_store import (
    JiraRejected,
    JiraState,
    StoredComment,
    StoredIssue,
    bad_request,
    collection,
    not_found,
)
from connectors.sandbox.jira_users import UserRoutes

_API = r"/rest/api/(?P<v>2|3|latest)"


def _now() -> datetime:
    return datetime.now(UTC)


class JiraSandbox(SearchRoutes, UserRoutes, ServiceDeskRoutes, SandboxServer):
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
        fields: str = "stock",
    ) -> None:
        if mode not in ("cloud", "datacenter"):
            raise ValueError(f"mode must be 'cloud' or 'datacenter', got {mode!r}")
        self.fields = site.site_fields(fields, mode)  # ValueError for an unknown set
        super().__init__(host, port, username=username, password=password, faults=faults)
        self.mode = mode
        self.clock = clock or _now
        self._tasks: dict[str, dict[str, Any]] = {}  # asynchronous tasks, by id
        self.state = JiraState(mode=mode, project=project, clock=lambda: self.clock(),
                               fields=self.fields)
        self._register_routes()
        if seed_incidents:
            seed_site(self.state, seed_incidents, seed, actor=self._admin_email())

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
                                                   self.state.project, self.fields),
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
            ("GET", _API + "/field", lambda c: Response(200, self.fields.field_list())),
            ("GET", _API + "/priority", self._priorities),
            ("GET", _API + "/resolution", self._resolutions),
            ("GET", _API + "/project", self._projects),
            ("GET", _API + r"/project/(?P<project>[^/]+)", self._project),
            ("GET", _API + r"/issue/createmeta/(?P<project>[^/]+)/issuetypes",
             self._createmeta_types),
            ("GET", _API + r"/issue/createmeta/(?P<project>[^/]+)/issuetypes/(?P<type>[^/]+)",
             self._createmeta_fields),
            ("POST", _API + "/issue/properties/multi", self._properties_multi),
            ("GET", _API + r"/task/(?P<task>\d+)", self._task),
            ("POST", _API + "/issue", self._create),
            ("POST", _API + "/issue/bulk", self._bulk_create),
            ("GET", issue, self._get_issue),
            ("GET", issue + "/editmeta", self._editmeta),
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
            ("POST", _API + "/changelog/bulkfetch", self._bulk_changelog),
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

    def _projects(self, call: Call) -> Response:
        return Response(200, [call.render.project_ref()])

    def _project(self, call: Call) -> Response:
        self._check_project(call.request.params["project"])
        return Response(200, call.render.project())

    def _page(self, call: Call, items: list[Any], key: str) -> Response:
        start = int_arg(call.request.arg("startAt"), 0, "startAt")
        limit = int_arg(call.request.arg("maxResults"), 50, "maxResults")
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
        return self._page(call, _create_meta(call.render, self.fields),
                          "fields" if self.cloud else "values")

    # ---------------------------------------------------------------- issues

    def _create(self, call: Call) -> Response:
        body = call.body()
        issue = self.state.create(body, version=call.version, actor=call.actor)
        return Response(201, self._created(call, issue, body))

    def _created(self, call: Call, issue: StoredIssue, body: dict[str, Any]) -> dict[str, Any]:
        """A CreatedIssue; on Cloud with the nested response of the create's transition.

        Only Cloud documents that a create applies ``transition``; Data Center's create
        takes the same IssueUpdateBean but documents no such step, so it is ignored
        there (the issue stays in its start status)."""
        data: dict[str, Any] = {"id": str(issue.id), "key": issue.key,
                                "self": f"{call.render.api}/issue/{issue.id}"}
        if self.cloud:
            nested = self.state.create_transition(issue, body, version=call.version,
                                                  actor=call.actor)
            if nested is not None:
                data["transition"] = nested
        return data

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
            created.append(self._created(call, issue, update))
        return Response(201 if created else 400, {"issues": created, "errors": errors})

    def _get_issue(self, call: Call) -> Response:
        issue = self._issue(call)
        request = call.request
        fields = parse_field_selection(request.args("fields"), "*all", self.fields)
        return Response(200, call.render.issue(
            issue, fields=fields, expand=csv_values(request.args("expand")),
            properties=csv_values(request.args("properties"))))

    def _editmeta(self, call: Call) -> Response:
        """The issue's edit screen: what createmeta offers minus project and issue type
        (moved, not edited), keyed by field id as Jira's ``GET issue/{key}/editmeta``."""
        self._issue(call)
        fields = {item["fieldId"]: {k: v for k, v in item.items() if k != "fieldId"}
                  for item in _create_meta(call.render, self.fields)
                  if item["fieldId"] not in ("project", "issuetype")}
        return Response(200, {"fields": fields})

    def _edit(self, call: Call) -> Response:
        issue = self._issue(call)
        bool_arg(call.request.arg("notifyUsers"), "notifyUsers")
        self.state.edit(issue, call.body() or {}, version=call.version, actor=call.actor)
        if bool_arg(call.request.arg("returnIssue"), "returnIssue"):
            return Response(200, call.render.issue(
                issue, fields=self.fields.all_field_ids,
                expand=csv_values(call.request.args("expand"))))
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
        with_fields = "transitions.fields" in csv_values(call.request.args("expand"))
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
        start = int_arg(request.arg("startAt"), 0, "startAt")
        limit = min(int_arg(request.arg("maxResults"), 100, "maxResults"), 5000)
        order = request.arg("orderBy") or "created"
        if order.lstrip("+-") != "created":
            raise bad_request(f"Invalid orderBy value '{order}'; use created, +created or "
                              "-created.")
        comments = sorted(issue.comments, key=lambda c: (c.created, c.id),
                          reverse=order.startswith("-"))
        return Response(200, call.render.comment_page(
            issue, comments[start:start + limit], start=start, limit=limit,
            total=len(comments),
            with_properties="properties" in csv_values(request.args("expand"))))

    def _add_comment(self, call: Call) -> Response:
        issue = self._issue(call)
        body = call.body()
        if not isinstance(body, dict):
            raise bad_request("Can not deserialize the request body.")
        comment = self.state.add_comment(
            issue, body.get("body"), version=call.version, actor=call.actor,
            visibility=body.get("visibility"), properties=body.get("properties"))
        return Response(201, call.render.comment(
            issue, comment, with_properties=_expands(call, "properties")))

    def _find_comment(self, call: Call) -> tuple[StoredIssue, StoredComment]:
        issue = self._issue(call)
        wanted = int(call.request.params["comment"])
        comment = next((c for c in issue.comments if c.id == wanted), None)
        if comment is None:
            raise not_found(f"Can not find a comment for the id: {wanted}.")
        return issue, comment

    def _comment(self, call: Call) -> Response:
        issue, comment = self._find_comment(call)
        return Response(200, call.render.comment(
            issue, comment, with_properties=_expands(call, "properties")))

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

    def _properties_multi(self, call: Call) -> Response:
        """Cloud's "Bulk set issue properties by issue": up to 100 issues by numeric id,
        1..10 properties each; asynchronous (303 to a task), non-transactional, an
        unknown issue ignored. Data Center has no such resource."""
        if not self.cloud:
            raise no_such_resource(call)
        body = call.body()
        issues = body.get("issues") if isinstance(body, dict) else None
        if not isinstance(issues, list) or not 1 <= len(issues) <= 100:
            raise bad_request("'issues' must list 1 to 100 issues.")
        updates: list[tuple[StoredIssue, str, bytes]] = []
        for entry in issues:
            properties = entry.get("properties") if isinstance(entry, dict) else None
            if not isinstance(entry, dict) or not isinstance(entry.get("issueID"), int) \
                    or not isinstance(properties, dict) or not 1 <= len(properties) <= 10:
                raise bad_request("Each issue needs an integer 'issueID' and 1 to 10 "
                                  "'properties'.")
            issue = self.state.issues.get(entry["issueID"])
            if issue is None:
                continue  # "if an issue is not found, it is ignored"
            updates.extend((issue, str(key), json.dumps(value).encode("utf-8"))
                           for key, value in properties.items())
        failed = 0
        for issue, key, raw in updates:
            try:
                self.state.set_property(issue, key, raw)
            except JiraRejected:
                failed += 1  # non-transactional: the task result tells
        task_id = str(len(self._tasks) + 10000)
        self._tasks[task_id] = {
            "id": task_id, "self": f"{call.render.api}/task/{task_id}",
            "description": "Bulk set issue properties", "status": "COMPLETE", "progress": 100,
            "result": {"updated": len(updates) - failed, "failed": failed},
        }
        return Response(303, None, {"Location": self._tasks[task_id]["self"]})

    def _task(self, call: Call) -> Response:
        task = self._tasks.get(call.request.params["task"])
        if task is None:
            raise not_found(f"The task with id '{call.request.params['task']}' does not exist.")
        return Response(200, dict(task))

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
        start = int_arg(call.request.arg("startAt"), 0, "startAt")
        limit = min(int_arg(call.request.arg("maxResults"), 100, "maxResults"), 100)
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

    def _bulk_changelog(self, call: Call) -> Response:
        """Cloud's "Bulk fetch changelogs": the changelogs of up to 1,000 issues (ids or
        keys), optionally only those touching up to 10 field ids, oldest first and by
        issue id, ``maxResults`` changelogs a page (1..10,000, default 1,000) with a
        ``nextPageToken`` while more follow; a page groups its changelogs by issue, in
        the order the issues first come. An issue that does not exist has none.
        Data Center has no such resource."""
        if not self.cloud:
            raise no_such_resource(call)
        body = call.body()
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        wanted = body.get("issueIdsOrKeys")
        if not isinstance(wanted, list) or not 1 <= len(wanted) <= 1000 \
                or not all(isinstance(i, str) for i in wanted):
            raise bad_request("'issueIdsOrKeys' must list 1 to 1000 issue ids or keys.")
        field_ids = body.get("fieldIds") or []
        if not isinstance(field_ids, list) or len(field_ids) > 10:
            raise bad_request("'fieldIds' may list at most 10 field ids.")
        limit = body.get("maxResults", 1000)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10000:
            raise bad_request("'maxResults' must be between 1 and 10000.")
        token = body.get("nextPageToken")
        try:
            start = int(str(token)) if token is not None else 0
        except ValueError:
            raise bad_request("Invalid 'nextPageToken'.") from None
        issues: dict[int, Any] = {}
        for ident in wanted:
            issue = (self.state.issues.get(int(ident)) if ident.isdigit()
                     else self.state.by_key(ident))
            if issue is not None:
                issues[issue.id] = issue
        entries: list[tuple[Any, Any, dict[str, Any]]] = []
        for issue in issues.values():
            for history in issue.history:
                shown = call.render.history(history)
                if field_ids:
                    shown["items"] = [i for i in shown["items"]
                                      if i.get("fieldId") in field_ids]
                    if not shown["items"]:
                        continue
                entries.append((history.created, issue.id, shown))
        entries.sort(key=lambda entry: (entry[0], entry[1]))
        page = entries[start:start + limit]
        grouped: dict[int, list[dict[str, Any]]] = {}
        for _, issue_id, shown in page:
            grouped.setdefault(issue_id, []).append(shown)
        data: dict[str, Any] = {"issueChangeLogs": [
            {"issueId": str(issue_id), "changeHistories": histories}
            for issue_id, histories in grouped.items()]}
        if start + limit < len(entries):
            data["nextPageToken"] = str(start + limit)
        return Response(200, data)

    # ---------------------------------------------------------------- in-process helpers

    def _admin_email(self) -> str:
        return self._login(self.username, self.password) or site.SITE_USERS[0].email

    def _actor(self, as_user: str | None) -> str:
        """The acting user's email: ``as_user`` (a site user's email) or the admin."""
        if as_user is None:
            return self._admin_email()
        if site.user_by_email(as_user) is None:
            raise bad_request(f"No user with email '{as_user}'.")
        return as_user

    def create_issue(self, fields: dict[str, Any], *, as_user: str | None = None) -> str:
        """Create an issue from v2-style fields (project and issue type default to
        OPS / Incident) as ``as_user`` (an email; the admin by default); returns its key."""
        fields = {"project": {"key": self.state.project}, "issuetype": {"name": "Incident"},
                  **fields}
        with self.lock:
            return self.state.create({"fields": fields}, version="2",
                                     actor=self._actor(as_user)).key

    def edit_issue(self, key: str, fields: dict[str, Any], *,
                   as_user: str | None = None) -> None:
        with self.lock:
            self.state.edit(self.state.find(key), {"fields": fields}, version="2",
                            actor=self._actor(as_user))

    def transition_issue(self, key: str, status_name: str, *,
                         resolution: str | None = None, as_user: str | None = None) -> None:
        """Move an issue to ``status_name`` along the workflow (shortest path)."""
        with self.lock:
            actor = self._actor(as_user)
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
                self.state.transition(issue, body, version="2", actor=actor)

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
            render = Renderer(self._base(), self.mode, "2", self.state.project, self.fields)
            return render.issue(self.state.find(key), fields=self.fields.all_field_ids)

    def issue_keys(self) -> list[str]:
        with self.lock:
            return [i.key for i in sorted(self.state.issues.values(), key=lambda i: i.id)]

    def delete_issue(self, key: str) -> None:
        with self.lock:
            self.state.delete(self.state.find(key))

# ------------------------------------------------------------------ helpers


def _expands(call: Call, what: str) -> bool:
    return what in csv_values(call.request.args("expand"))


def _resolution_meta(render: Renderer) -> dict[str, Any]:
    return {"resolution": {
        "required": False, "schema": {"type": "resolution", "system": "resolution"},
        "name": "Resolution", "key": "resolution",
        "operations": ["set"], "hasDefaultValue": True,
        "allowedValues": [render.named("resolution", r) for r in site.RESOLUTIONS],
    }}


def _create_meta(render: Renderer, fields: site.SiteFields) -> list[dict[str, Any]]:
    """The fields an Incident can be created with (createmeta), with allowed values.

    JSM-managed fields are left out: the sandbox does not accept writes to them."""
    meta = []
    required = {"summary", "issuetype", "project"}
    allowed: dict[str, list[Any]] = {
        "priority": [render.named("priority", p) for p in site.PRIORITIES],
        "components": [{"self": f"{render.api}/component/{c.id}", "id": c.id, "name": c.name}
                       for c in fields.components],
        "issuetype": [render.issue_type(t) for t in site.ISSUE_TYPES],
        "project": [render.project_ref()],
    }
    for entry in fields.field_list():
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
        custom = fields.custom(field_id)
        if custom is not None and not custom.writable:
            continue
        if custom is not None and custom.kind == "select":
            item["allowedValues"] = [
                {"self": f"{render.api}/customFieldOption/{o.id}", "value": o.name, "id": o.id}
                for o in custom.options]
        elif field_id in allowed:
            item["allowedValues"] = allowed[field_id]
        meta.append(item)
    return meta

