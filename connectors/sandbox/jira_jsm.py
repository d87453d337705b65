"""Jira Service Management routes: service desks and request comments.

Contract: ``GET /rest/servicedeskapi/servicedesk`` lists desk "1" (project OPS);
``GET /rest/servicedeskapi/request/{key}/comment`` pages by ``start``/``limit``
with ``isLastPage`` and filters with ``public``/``internal``;
``POST`` the same path takes ``{"body": text, "public": bool}`` (a string, not
ADF) and creates a comment the platform API shows with ``jsdPublic`` =
``public``. ``/rest/servicedeskapi/info`` answers so the library's
``supports_service_desk()`` is true.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox import jira_site as site
from connectors.sandbox.http import Response
from connectors.sandbox.jira_call import Call, RoutesBase, bool_arg, int_arg
from connectors.sandbox.jira_store import StoredComment, StoredIssue, bad_request


class ServiceDeskRoutes(RoutesBase):
    """The JSM endpoints the connector uses."""

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

    def _jsm_comment(self, issue: StoredIssue, comment: StoredComment) -> dict[str, Any]:
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
        public = bool_arg(request.arg("public"), "public", default=True)
        internal = bool_arg(request.arg("internal"), "internal", default=True)
        start = int_arg(request.arg("start"), 0, "start")
        limit = int_arg(request.arg("limit"), 50, "limit")
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
