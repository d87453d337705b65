"""What every connector's configuration model shares: strictness, URL rules, one-line errors.

Contract:
- Each connector owns a pydantic model of its settings (``servicenow_config``,
  ``jira_config``); the model is the ONE place those settings are validated. The
  application's settings compose these models; a connector built from keywords
  validates them through the same model.
- Models forbid unknown keys and validate defaults. Secrets are
  :class:`pydantic.SecretStr` and optional in the model (a config in git has
  none); the connector takes the plain secret as a separate argument.
- :func:`validate_tool_url`: https anywhere, plain http only to loopback (the
  sandboxes), no credentials, query or fragment in the URL.
- :func:`one_line` turns a ValidationError into ``key: reason`` (never a value
  of a secret key), for callers outside a config file.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

SECRET_KEYS = frozenset({"password", "token", "client_secret"})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_tool_url(value: str) -> str:
    """https anywhere; plain http only to loopback (the sandboxes). No path tricks."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"plain http is only allowed to loopback hosts (sandboxes): {value!r}")
    if parts.username or parts.password:
        # Credentials in a URL end up in logs; they belong in the environment.
        raise ValueError("credentials must not be part of the URL")
    if parts.query or parts.fragment:
        raise ValueError(f"URL must not carry a query or fragment: {value!r}")
    return value.strip().rstrip("/")


def one_line(error: ValidationError) -> str:
    """The first problem as ``key: reason``; values of secret keys never shown."""
    item = error.errors()[0]
    key = ".".join(str(p) for p in item["loc"]) or "(settings)"
    reason = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        reason = "unknown key"
    elif item["type"] == "missing":
        reason = "missing (required)"
    elif item["type"] != "value_error" and key not in SECRET_KEYS and "input" in item:
        reason = f"{reason} (got {item['input']!r})"
    return f"{key}: {' '.join(reason.split())}"


class ConnectorConfig(BaseModel):
    """Base of the connectors' configuration models: strict and immutable."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    @classmethod
    def from_options(cls, **options: Any) -> Self:
        """The model from keyword options; ValueError with one line when invalid."""
        try:
            return cls(**options)
        except ValidationError as error:
            raise ValueError(one_line(error)) from None
