"""What every Jira sandbox route shares: the request as a handler sees it, argument
parsing with Jira's error texts, and the base the route groups build on.

Contract:
- :class:`Call` is one authenticated API request: the raw request, the REST
  version ("2" or "3"), the renderer for that version and the actor's email.
- :func:`int_arg`, :func:`bool_arg` and :func:`csv_values` read query or body
  values and refuse bad ones with a 400 ErrorCollection
  (:class:`~connectors.sandbox.jira_store.JiraRejected`).
- :class:`RoutesBase` is what the route groups (search, users, JSM) may rely on
  from :class:`~connectors.sandbox.jira.JiraSandbox`: its state, mode and URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.sandbox import jira_site as site
from connectors.sandbox.http import Request
from connectors.sandbox.jira_render import Renderer
from connectors.sandbox.jira_store import (
    JiraRejected,
    JiraState,
    StoredIssue,
    bad_request,
    collection,
    not_found,
)


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


def no_such_resource(call: Call) -> JiraRejected:
    """What a deployment answers for an endpoint it does not have."""
    return JiraRejected(404, collection([f"No such resource: {call.request.path}"]))


def csv_values(values: list[str] | Any) -> list[str]:
    """Repeated and comma-joined values as one list (``expand=a,b&expand=c``)."""
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values or [] for part in str(value).split(",")
            if part.strip()]


def int_arg(value: Any, default: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise bad_request(f"The '{name}' parameter must be an integer, got '{value}'.") from None
    if number < 0:
        raise bad_request(f"The '{name}' parameter must not be negative.")
    return number


def bool_arg(value: Any, name: str, *, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    folded = str(value).casefold()
    if folded not in ("true", "false"):
        raise bad_request(f"The '{name}' parameter must be true or false, got '{value}'.")
    return folded == "true"


class RoutesBase:
    """The sandbox as its route groups see it."""

    state: JiraState
    mode: str
    fields: site.SiteFields

    @property
    def cloud(self) -> bool:
        return self.mode == "cloud"

    def _base(self) -> str:
        raise NotImplementedError

    def _issue(self, call: Call) -> StoredIssue:
        return self.state.find(call.request.params["key"])

    def _check_project(self, ident: str) -> None:
        if ident not in (site.PROJECT_ID, self.state.project):
            raise not_found(f"No project could be found with key '{ident}'.")
