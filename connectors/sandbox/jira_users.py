"""Jira user routes: ``/user``, ``/user/search`` and ``/user/assignable/search``.

Contract: Cloud identifies people by ``accountId`` and searches with ``query``
(``username`` -> 400, GDPR strict mode); Data Center by ``username``/``key`` and
searches with ``username`` (``query`` accepted too). A term matches the start of
the email, the display name or one of its words (and the name on DC). Results
are plain lists paged by ``startAt``/``maxResults`` (default 50).
"""

from __future__ import annotations

from connectors.sandbox import jira_site as site
from connectors.sandbox.http import Response
from connectors.sandbox.jira_call import Call, RoutesBase, int_arg
from connectors.sandbox.jira_store import bad_request, not_found


class UserRoutes(RoutesBase):
    """Looking people up."""

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
        start = int_arg(call.request.arg("startAt"), 0, "startAt")
        limit = int_arg(call.request.arg("maxResults"), 50, "maxResults")
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
