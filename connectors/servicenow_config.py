"""The ServiceNow connector's configuration: ``[servicenow]`` of the config file.

Contract: :class:`ServiceNowConfig` is validated once, here; the application's
settings use it as their ``servicenow`` section and
:meth:`connectors.servicenow.ServiceNowConnector.from_config` builds the
connector from it without checking anything again. ``password`` is optional
here (``check --offline`` needs none) and is handed to the connector unwrapped,
separately, by its one caller.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from connectors.config import ConnectorConfig, validate_tool_url


class ServiceNowConfig(ConnectorConfig):
    instance_url: str
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    table: str = Field(default="incident", pattern=r"^[a-z0-9_]+$")
    query: str = "active=true"
    page_size: int = Field(default=500, ge=1, le=10000)
    timeout: float = Field(default=30.0, gt=0, le=600)
    requests_per_minute: int | None = Field(default=None, ge=1)
    use_batch_api: bool = True
    # Requests in flight at once for what the Batch API does not carry (use_batch_api =
    # false); halved on a 429, min 1, raised again after a run of successes.
    concurrency: int = Field(default=4, ge=1, le=32)

    @field_validator("instance_url")
    @classmethod
    def _instance_root(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme in ("http", "https") and parts.hostname and parts.path.strip("/"):
            # pysnow builds every path itself: a path here would be silently dropped.
            raise ValueError("must be the instance root without path "
                             f"(got {parts.scheme}://{parts.hostname}{parts.path})")
        return validate_tool_url(value)
