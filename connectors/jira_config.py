"""The Jira connector's configuration: ``[jira]`` of the config file.

Contract: :class:`JiraConfig` is validated once, here (the scope JQL included);
the application's settings use it as their ``jira`` section and
:meth:`connectors.jira.JiraConnector.from_config` builds the connector from it
without checking anything again. ``token`` is optional here (``check
--offline`` needs none) and is handed to the connector unwrapped, separately.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from connectors.config import ConnectorConfig, validate_tool_url
from connectors.jira_jql import validate_scope_jql


class JiraConfig(ConnectorConfig):
    url: str
    email: str = ""
    token: SecretStr | None = None
    flavor: Literal["auto", "cloud", "datacenter"] = "auto"
    project: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,9}$")
    issue_type: str = Field(default="Incident", min_length=1)
    jql: str = ""
    service_desk_id: str | None = None
    marker_field: str | None = Field(default=None, pattern=r"^customfield_\d+$")
    page_size: int = Field(default=100, ge=1, le=5000)
    timeout: float = Field(default=30.0, gt=0, le=600)
    requests_per_minute: int | None = Field(default=None, ge=1)
    overlap_minutes: int = Field(default=2, ge=1, le=60)
    # A remote link on each created issue back to its ServiceNow record costs one
    # request per created issue (Jira has no bulk remote-link call); off by default so
    # an initial sync stays at a few requests per hundred incidents. The marker label
    # and the entity property travel in the create itself either way.
    remote_link: bool = False
    # Requests in flight at once for what Jira cannot batch (comments, edits,
    # transitions, remote links); halved on a 429, min 1, and raised again after a
    # run of successes.
    concurrency: int = Field(default=4, ge=1, le=32)

    _url = field_validator("url")(lambda cls, v: validate_tool_url(v))

    @field_validator("email", mode="before")
    @classmethod
    def _no_email(cls, value: object) -> object:
        # Data Center signs in with a personal access token alone: no email is "".
        return "" if value is None else value

    @field_validator("jql")
    @classmethod
    def _scope(cls, value: str) -> str:
        try:
            return validate_scope_jql(value)
        except ValueError as error:
            # The key is named by whoever reports the error: the reason alone here.
            raise ValueError(str(error).removeprefix("jql: ")) from None
