"""Strict configuration: one TOML file plus ``INCIDENT_SYNC_*`` environment variables.

Contract:
- :func:`load_settings` reads the TOML file, overlays environment variables
  (prefix ``INCIDENT_SYNC_``, nested delimiter ``__``; the environment wins) and
  validates everything with pydantic-settings, ``extra="forbid"`` at every level.
- Any problem raises :class:`sync.errors.ConfigError` carrying *all* problems of
  the file at once, each as ``file: [section] key: reason``. Values of secret
  keys are never part of a message.
- The ``[servicenow]`` and ``[jira]`` sections are the connectors' own models
  (:mod:`connectors.servicenow_config`, :mod:`connectors.jira_config`): each
  is validated once, by its connector's rules.
- Secrets are :class:`pydantic.SecretStr`; they may come from the file, but the
  environment is the documented place. They are optional here so that
  ``check --offline`` can validate a config in git without them;
  :meth:`Settings.require_secrets` enforces them before anything is contacted.
- Relative ``mapping``/``rules``/SQLite paths are resolved against the directory
  of the config file, so a config works whatever the current directory is.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict

from connectors.config import SECRET_KEYS, validate_tool_url
from connectors.jira_config import JiraConfig
from connectors.servicenow_config import ServiceNowConfig
from sync.directions import ConflictPolicy, Direction
from sync.errors import ConfigError

ENV_PREFIX = "INCIDENT_SYNC_"
ENV_DELIMITER = "__"
DEFAULT_CONFIG = "incident-sync.toml"


# Each connector owns its section's model (validated once, there); the file's
# sections ARE those models, so nothing here checks them again.
ServiceNowSettings = ServiceNowConfig
JiraSettings = JiraConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class SyncSettings(_Section):
    direction: Direction = "both"
    state_url: str = "sqlite:///incident-sync.db"
    mapping: str = "default"
    rules: str | None = None
    conflict: ConflictPolicy = "newest"
    max_attempts: int = Field(default=5, ge=1, le=100)
    retry_base_seconds: float = Field(default=60.0, ge=0)
    lock_timeout: float = Field(default=0.0, ge=0)
    # Pairs written, committed and read back together (one batched write per side).
    # 200: a batch then holds several chunks of each batched call (bulk creates of 50,
    # Batch API requests of 50, id lists of 100), which the connectors send together.
    batch_size: int = Field(default=200, ge=1, le=1000)
    # Seconds the sites' field lists are reused from the state store (0 = every run).
    metadata_ttl: float = Field(default=3600.0, ge=0)
    # Plan the next batch on a second thread while this one is written (one more
    # batch of planned pairs in memory); off, each batch is planned when it is taken.
    # Off by default: on a busy 2-core machine it saved no wall time and cost CPU
    # (bench/RESULTS.md, "Planning the next batch ahead").
    plan_ahead: bool = False
    # Scopes links, retry queue, conflicts, watermarks, runs and the run lock in the
    # state store, so several configurations can share one database.
    connection: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError(f"state_url must be sqlite:/// or postgresql+...:// (got {value!r})")
        return value


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        case_sensitive=False,
    )

    servicenow: ServiceNowConfig
    jira: JiraConfig
    sync: SyncSettings = Field(default_factory=SyncSettings)

    # Where the file was read from; set by load_settings, not a config key.
    _source: Path | None = None

    @property
    def source(self) -> Path | None:
        return self._source

    def require_secrets(self) -> None:
        """Raise ConfigError unless every secret needed to contact the tools is set."""
        problems = []
        if self.servicenow.password is None:
            problems.append(
                "[servicenow] password: missing (set INCIDENT_SYNC_SERVICENOW__PASSWORD)"
            )
        if self.jira.token is None:
            problems.append("[jira] token: missing (set INCIDENT_SYNC_JIRA__TOKEN)")
        if problems:
            raise ConfigError(str(self._source or DEFAULT_CONFIG), problems)

    def resolve_path(self, value: str) -> Path:
        """A path from the config, relative to the config file's directory."""
        path = Path(value).expanduser()
        if not path.is_absolute() and self._source is not None:
            path = self._source.parent / path
        return path

    @property
    def state_url(self) -> str:
        """The state URL with a relative SQLite path anchored at the config file."""
        url = self.sync.state_url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix:
            rest = url[len(prefix):]
            if rest != ":memory:":
                return prefix + str(self.resolve_path(rest))
        return url


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2:
        return f"[{parts[0]}] {'.'.join(parts[1:])}"
    return f"[{parts[0]}]" if parts else "(file)"


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + ENV_DELIMITER.join(str(p).upper() for p in loc)


def _reason(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        return "unknown section" if len(item["loc"]) == 1 else "unknown key"
    if kind == "missing":
        return "missing (required)"
    message = str(item["msg"])
    message = message.removeprefix("Value error, ")
    is_secret = any(str(p) in SECRET_KEYS for p in item["loc"])
    if not is_secret and kind not in ("value_error",) and "input" in item:
        value = item["input"]
        if not isinstance(value, dict | list):
            message = f"{message} (got {value!r})"
    return message


def format_validation_error(error: ValidationError) -> list[str]:
    """``[section] key: reason`` lines, noting keys that came from the environment."""
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        where = _location(loc)
        if _env_name(loc) in {k.upper() for k in os.environ}:
            where = f"{where} (from {_env_name(loc)})"
        lines.append(f"{where}: {_reason(item)}")
    return lines


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read, overlay the environment, validate. Raises ConfigError with every problem."""
    config_path = Path(path or os.environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG)
    name = str(config_path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, ["file not found (pass --config PATH)"]) from None
    except OSError as exc:
        raise ConfigError(name, [f"cannot read: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(name, [f"not valid TOML: {exc}"]) from None

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: Any, env_settings: Any,
            dotenv_settings: Any, file_secret_settings: Any,
        ) -> tuple[Any, ...]:
            # Order is precedence: environment over file.
            return (env_settings, InitSettingsSource(settings_cls, init_kwargs=data))

    try:
        settings = _FromFile()
    except ValidationError as exc:
        raise ConfigError(name, format_validation_error(exc)) from None
    plain = Settings.model_construct(**{k: getattr(settings, k) for k in Settings.model_fields})
    plain._source = config_path.resolve()
    return plain


__all__ = [
    "DEFAULT_CONFIG",
    "ENV_DELIMITER",
    "ENV_PREFIX",
    "SECRET_KEYS",
    "JiraSettings",
    "ServiceNowSettings",
    "Settings",
    "SyncSettings",
    "format_validation_error",
    "load_settings",
    "validate_tool_url",
]
