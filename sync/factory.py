"""Build the engine's parts from validated Settings: connectors, profile, rules, store, engine.

Contract:
- This is the ONLY place a :class:`pydantic.SecretStr` is unwrapped: the plain
  secret goes straight into a connector's constructor and nowhere else (not
  into logs, messages, the state store or a plan).
- Problems with a file the config points at (mapping profile, rules) raise
  :class:`sync.errors.ConfigError` naming the file, key and reason, before
  anything is contacted.
- ``open_store(settings, create=False)`` never creates a store: ``plan`` uses
  it so that previewing leaves no trace; a missing store reads as empty.
- :func:`read_session` is how ``plan`` and ``audit`` read: a session and
  the store, no engine (nothing that could write).
- :func:`engine_session` is how commands get an engine: store and engine are
  closed whatever happens. It first checks the mapping profile against both
  sites (:func:`sync.sitecheck.site_checked_profile`): a row the site cannot
  hold is a ConfigError before anything is written; optional ones are skipped
  with a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

from connectors.base import Connector
from connectors.retry import RetryPolicy
from mappings.profile import MappingError, Profile, load_profile
from sync import logs
from sync.engine import Engine, EngineOptions
from sync.errors import ConfigError
from sync.rules import Rule, load_rules
from sync.rules_model import RulesFileError
from sync.session import Session
from sync.settings import Settings
from sync.state import NoStateStore, StateStore


def _source(settings: Settings) -> str:
    return str(settings.source) if settings.source is not None else "config"


def build_connectors(
    settings: Settings, *, retry: RetryPolicy | None = None
) -> tuple[Connector, Connector]:
    """Both connectors, not opened yet. Requires the secrets (``require_secrets``)."""
    from connectors.jira import JiraConnector
    from connectors.servicenow import ServiceNowConnector

    settings.require_secrets()
    sn, jira = settings.servicenow, settings.jira
    assert sn.password is not None and jira.token is not None  # require_secrets said so
    # Whatever a library might log, these values never reach a log line.
    logs.mask_secret(sn.password.get_secret_value(), jira.token.get_secret_value())
    try:
        # The sections ARE the connectors' config models, validated when loaded.
        servicenow = ServiceNowConnector.from_config(
            sn, password=sn.password.get_secret_value(), retry=retry)
        jira_connector = JiraConnector.from_config(
            jira, token=jira.token.get_secret_value(), retry=retry)
    except ValueError as error:
        # What only a connector can judge (e.g. Jira Cloud without the token's
        # email); its messages never hold secrets.
        raise ConfigError(_source(settings), [str(error)]) from None
    return servicenow, jira_connector


def build_profile(settings: Settings) -> Profile:
    base_dir = settings.source.parent if settings.source is not None else None
    try:
        return load_profile(settings.sync.mapping, base_dir=base_dir)
    except MappingError as error:
        raise ConfigError(_source(settings), [f"[sync] mapping: {error}"]) from None


def build_rules(settings: Settings) -> list[Rule]:
    """The rules of ``[sync] rules`` in file order (none without the key); ConfigError if bad."""
    if not settings.sync.rules:
        return []
    try:
        return list(load_rules(settings.resolve_path(settings.sync.rules)).rules)
    except RulesFileError as error:
        # The message already names the rules file, the rule and the reason.
        raise ConfigError("[sync] rules", [str(error)]) from None


def open_store(settings: Settings, *, create: bool = True) -> StateStore:
    """The state store; with ``create=False`` a missing store opens as an empty scratch one."""
    if create:
        return StateStore(settings.state_url, connection=settings.sync.connection)
    try:
        return StateStore(settings.state_url, connection=settings.sync.connection,
                          create=False)
    except NoStateStore:
        # Planning before the first run: read from an empty private store
        # rather than create the user's file.
        return StateStore("sqlite://")


def engine_options(settings: Settings) -> EngineOptions:
    s = settings.sync
    return EngineOptions(
        direction=s.direction, conflict=s.conflict, max_attempts=s.max_attempts,
        retry_base_seconds=s.retry_base_seconds, lock_timeout=s.lock_timeout,
        batch_size=s.batch_size, metadata_ttl=s.metadata_ttl, plan_ahead=s.plan_ahead,
    )


def build_engine(
    settings: Settings,
    store: StateStore,
    *,
    retry: RetryPolicy | None = None,
    clock: Callable[[], datetime] | None = None,
    progress: Callable[[int, int], None] | None = None,
    crash_at: str | None = None,
    site_check: bool = False,
    retry_now: bool = False,
    connectors: tuple[Connector, Connector] | None = None,
) -> Engine:
    """An engine over fresh connectors; the caller owns ``store`` and closes the engine.

    ``connectors`` replaces the configured ones (e.g. two
    :class:`connectors.memory.MemoryConnector`): the rest still comes from
    ``settings``, so a test or a tool drives the same engine the commands build.

    ``site_check``: on sign-in, read both sites' fields and run with the profile
    they can hold (ConfigError when a required row cannot work). ``retry_now`` makes
    every item of the retry queue due in this engine's runs.
    """
    profile = build_profile(settings)
    rules = build_rules(settings)
    if connectors is None:
        connectors = build_connectors(settings, retry=retry)
    options = replace(engine_options(settings), retry_now=retry_now, site_check=site_check)
    return Engine(
        connectors, profile, store, options, rules=rules, clock=clock,
        progress=progress, crash_at=crash_at,
    )


@dataclass(frozen=True)
class Reading:
    """A session and a store to read through: what ``plan`` and ``audit`` get.

    No lock, no crash steps, no write path: nothing here can change a tool."""

    session: Session
    store: StateStore


@contextmanager
def read_session(settings: Settings) -> Iterator[Reading]:
    """A read-only session with the store as it is (a missing one reads as empty).

    Like :func:`engine_session`, the profile is checked against both sites on
    sign-in; both are closed on the way out.
    """
    store = open_store(settings, create=False)
    try:
        profile = build_profile(settings)
        rules = build_rules(settings)
        connectors = build_connectors(settings)
        options = replace(engine_options(settings), site_check=True)
        session = Session(connectors, profile, options, rules=rules)
        try:
            yield Reading(session, store)
        except MappingError as error:
            raise ConfigError(error.source, [f"{error.key}: {error.reason}"]) from None
        finally:
            session.close()
    finally:
        store.close()


@contextmanager
def engine_session(
    settings: Settings,
    *,
    create_store: bool = True,
    progress: Callable[[int, int], None] | None = None,
    retry_now: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> Iterator[Engine]:
    """An engine with its own store, both closed on the way out (commands use this).

    ``clock``: the engine's time (benchmarks and tests on a virtual clock)."""
    store = open_store(settings, create=create_store)
    try:
        engine = build_engine(settings, store, progress=progress, site_check=True,
                              retry_now=retry_now, clock=clock)
        try:
            yield engine
        except MappingError as error:
            # A field name the site check could not foresee (the site changed in
            # between): still one line and exit status 2, never a traceback.
            raise ConfigError(error.source, [f"{error.key}: {error.reason}"]) from None
        finally:
            engine.close()
    finally:
        store.close()
