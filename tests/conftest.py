"""Shared fixtures: running sandboxes on a test clock, a config for them, engines and stores.

Contract:
- ``clock`` is a :class:`TickingClock`: every read moves it one second on, so
  each write the sandboxes stamp is later than the one before (Jira's version
  is its ``updated`` stamp) and no test sleeps.
- ``sandboxes`` starts a ServiceNow and a Jira sandbox (Cloud; parametrize
  ``jira_mode`` indirectly for Data Center) without seed incidents, on that clock.
- ``sync_config(**sync_keys)`` writes an incident-sync TOML for them into the
  test's tmp dir (state store beside it) and sets the sandbox secrets in the
  environment (monkeypatch: undone after the test); it returns the path.
- ``make_engine(config, ...)`` builds the real engine (real connectors, real
  default mapping, real state store) with a retry policy that never sleeps.
- ``state_url`` is a fresh, empty state store URL, parametrized over the two
  databases: ``sqlite`` (a file in the test's tmp dir) and ``postgresql`` (a
  database of its own, created for the test and dropped after it, on the
  server named by ``INCIDENT_SYNC_TEST_POSTGRES_URL``; see ``.ci/postgres``).
  Without that server the PostgreSQL cases skip, except under ``CI=true``,
  where they fail: CI must never pass by skipping them. A test that uses
  ``sync_config`` and requests ``state_url`` gets its config pointed at it.
- Every test (but the bench's and the request budget's own modules) runs with
  ``instant_backoff``: a connector built without an explicit retry policy (the
  CLI's, through the factory) gets the real policy (same attempts, same retry
  rules, same computed waits) whose sleep returns at once, so a 429's
  ``Retry-After: 1`` or a 5xx backoff costs no wall time. Tests about the waits
  themselves pass their own recording policy, as before.
- Sandboxes started in tests poll for stop() every 5 ms instead of 50 ms
  (``SandboxServer.poll_interval``): every test that starts a sandbox waited
  ~25 ms per server for its stop.
- Every test also runs with ``shared_shipped_profiles``: the engine factory loads
  a shipped profile (``default``, ``jsm-extended``) once per test session instead
  of parsing and validating its TOML on every engine build (a profile is
  immutable after loading); profiles given by path still load each time.
- ``memory`` is the same world without HTTP: two :class:`MemoryConnector` on the
  test clock (``memory.servicenow``, ``memory.jira``), and ``memory.engine(**sync_keys)``
  builds the real engine over them through :func:`sync.factory.build_engine`
  (default mapping, a SQLite state store in the tmp dir). Scenarios that need no
  vendor behaviour beyond storing values run on it in milliseconds.
Tests of other parts may use these fixtures; nothing here reads /work/shared.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import connectors.jira
import connectors.servicenow
import sync.factory
from connectors.retry import RetryPolicy
from mappings.profile import Profile, load_profile, shipped_profiles

SANDBOX_USER = "admin"
SANDBOX_PASSWORD = "sandbox"


class TickingClock:
    """A UTC clock that moves ``step`` on every read; ``advance`` jumps ahead."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(seconds=1)):
        self.now = start or datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
        self.step = step

    def __call__(self) -> datetime:
        self.now = self.now + self.step
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


def no_sleep_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=3, base_wait=0.0, max_wait=0.0, sleep=lambda _s: None)


def _no_wait(_seconds: float) -> None:
    """A retry wait that returns at once (the wait is still computed and logged)."""


@dataclass
class InstantRetryPolicy(RetryPolicy):
    """The connectors' default policy with a sleep that returns at once."""

    sleep: Callable[[float], None] = _no_wait


# Modules that measure real throughput or real pacing keep real waits.
_REAL_WAIT_MODULES = ("test_bench", "test_request_budget")


@pytest.fixture(autouse=True)
def instant_backoff(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default retry policies of in-process connectors never sleep (see the contract)."""
    if request.node.path.name.startswith(_REAL_WAIT_MODULES):
        return
    monkeypatch.setattr(connectors.jira, "RetryPolicy", InstantRetryPolicy)
    monkeypatch.setattr(connectors.servicenow, "RetryPolicy", InstantRetryPolicy)


@pytest.fixture(autouse=True, scope="session")
def quick_sandbox_stop() -> Iterator[None]:
    """Sandboxes notice stop() within 5 ms (an idle sandbox thread wakes 200 times a
    second meanwhile: nothing next to a test's work)."""
    from connectors.sandbox.http import SandboxServer

    before = SandboxServer.poll_interval
    SandboxServer.poll_interval = 0.005
    yield
    SandboxServer.poll_interval = before


_SHIPPED = frozenset(shipped_profiles())
_LOADED: dict[str, Profile] = {}


def _load_profile_once(name_or_path: str, base_dir: Path | None = None) -> Profile:
    """``load_profile``, remembering shipped profiles (a name, never a path)."""
    if name_or_path not in _SHIPPED:
        return load_profile(name_or_path, base_dir=base_dir)
    if name_or_path not in _LOADED:
        _LOADED[name_or_path] = load_profile(name_or_path)
    return _LOADED[name_or_path]


@pytest.fixture(autouse=True)
def shared_shipped_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine factory loads each shipped profile once per session (see the contract)."""
    monkeypatch.setattr(sync.factory, "load_profile", _load_profile_once)


POSTGRES_URL_ENV = "INCIDENT_SYNC_TEST_POSTGRES_URL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Any]:
    """An AUTOCOMMIT engine on the test server's maintenance database, or a skip."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        why = f"no PostgreSQL test server: set {POSTGRES_URL_ENV} (.ci/postgres start)"
        if _in_ci():
            pytest.fail(f"CI=true but {why}", pytrace=False)
        pytest.skip(why)
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # ImportError (no driver) or the server refusing
        pytest.fail(f"PostgreSQL test server {POSTGRES_URL_ENV} unusable: {exc}", pytrace=False)
    yield engine
    engine.dispose()


def fresh_postgres_schema(admin: Any) -> Iterator[str]:
    """A schema of its own for one test: yield a URL whose search_path is that schema.

    A schema rather than a database: CREATE DATABASE costs half a second, a
    schema next to nothing, and the store (and every child process given the
    URL) sees only its own tables either way.
    """
    from sqlalchemy import text

    name = f"isync_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield admin.url.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as conn:
            # A failed test may leave a child holding locks: give up rather than hang.
            conn.execute(text("SET lock_timeout = '20s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    yield from fresh_postgres_schema(request.getfixturevalue("postgres_admin"))


@pytest.fixture
def postgres_state_url(postgres_admin: Any) -> Iterator[str]:
    """A fresh store URL on PostgreSQL only, for tests about sharing one server."""
    yield from fresh_postgres_schema(postgres_admin)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_state_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``state_url``, shared by a module's tests (property tests that give each
    example its own connection name instead of its own store)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('state') / 'state.db'}"
        return
    yield from fresh_postgres_schema(request.getfixturevalue("postgres_admin"))


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def jira_mode(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "cloud")


@pytest.fixture
def jira_fields(request: pytest.FixtureRequest) -> str:
    """The Jira site's field set: "stock" (a new JSM ITSM project) unless a test asks
    for "extended" (the fields and components the jsm-extended profile needs)."""
    return getattr(request, "param", "stock")


@pytest.fixture
def sandboxes(clock: TickingClock, jira_mode: str, jira_fields: str
              ) -> Iterator[tuple[Any, Any]]:
    from connectors.sandbox.jira import JiraSandbox
    from connectors.sandbox.servicenow import ServiceNowSandbox

    servicenow = ServiceNowSandbox(username=SANDBOX_USER, password=SANDBOX_PASSWORD,
                                   clock=clock)
    jira = JiraSandbox(mode=jira_mode, username=SANDBOX_USER, password=SANDBOX_PASSWORD,
                       clock=clock, fields=jira_fields)
    with servicenow, jira:
        yield servicenow, jira


@pytest.fixture
def failing_transitions(sandboxes: tuple[Any, Any],
                        monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """While the yielded switch holds a 1, every Jira transition POST answers 500."""
    from connectors.sandbox.http import Request, Response

    _, jira = sandboxes
    switch = [1]
    serve: Callable[[Request], Response] = jira.handle

    def handle(request: Request) -> Response:
        if switch[0] and request.method == "POST" and request.path.endswith("/transitions"):
            return jira.error_response(500, "Internal Server Error")
        return serve(request)

    monkeypatch.setattr(jira, "handle", handle)
    yield switch


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


@pytest.fixture
def sync_config(
    tmp_path: Path, sandboxes: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Callable[..., Path]:
    servicenow, jira = sandboxes
    # Tests parametrized over the databases get their config pointed at theirs.
    default_url = (request.getfixturevalue("state_url") if "state_url" in request.fixturenames
                   else "sqlite:///state.db")
    monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", SANDBOX_PASSWORD)
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", SANDBOX_PASSWORD)

    def write(*, query: str = "", jql: str = "", name: str = "incident-sync.toml",
              **sync_keys: Any) -> Path:
        keys = {"state_url": default_url, "retry_base_seconds": 0.0,
                "conflict": "newest", **sync_keys}
        sync_lines = "\n".join(f"{k} = {_toml(v)}" for k, v in keys.items())
        path = tmp_path / name
        path.write_text(
            f"[servicenow]\ninstance_url = {_toml(servicenow.url)}\n"
            f"username = {_toml(SANDBOX_USER)}\nquery = {_toml(query)}\n\n"
            f"[jira]\nurl = {_toml(jira.url)}\nemail = {_toml(SANDBOX_USER)}\n"
            f"project = \"OPS\"\njql = {_toml(jql)}\n\n"
            f"[sync]\n{sync_lines}\n",
            encoding="utf-8",
        )
        return path

    return write


@pytest.fixture
def make_engine(clock: TickingClock) -> Iterator[Callable[..., Any]]:
    from sync.factory import build_engine, open_store
    from sync.settings import load_settings

    made: list[Any] = []

    def build(config: Path, *, crash_at: str | None = None, create_store: bool = True) -> Any:
        settings = load_settings(config)
        store = open_store(settings, create=create_store)
        engine = build_engine(settings, store, retry=no_sleep_retry(), clock=clock,
                              crash_at=crash_at)
        made.append(engine)
        return engine

    yield build
    for engine in made:
        engine.close()
        engine.store.close()


@pytest.fixture
def no_incident_sync_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No INCIDENT_SYNC_* variable from the caller's shell reaches the test."""
    for name in list(os.environ):
        if name.upper().startswith("INCIDENT_SYNC_"):
            monkeypatch.delenv(name)


class MemoryWorld:
    """Two in-memory tools on one clock and engines over them (the ``memory`` fixture)."""

    def __init__(self, tmp_path: Path, clock: TickingClock) -> None:
        from connectors.memory import MemoryConnector

        self.tmp_path = tmp_path
        self.clock = clock
        self.servicenow = MemoryConnector("servicenow", clock=clock)
        self.jira = MemoryConnector("jira", clock=clock)
        self.made: list[Any] = []

    def config(self, **sync_keys: Any) -> Path:
        keys = {"state_url": "sqlite:///state.db", "retry_base_seconds": 0.0,
                "conflict": "newest", **sync_keys}
        sync_lines = "\n".join(f"{k} = {_toml(v)}" for k, v in keys.items())
        path = self.tmp_path / "incident-sync.toml"
        # The tools are in memory: these URLs are never contacted.
        path.write_text(
            '[servicenow]\ninstance_url = "https://memory.invalid"\nusername = "sync"\n\n'
            '[jira]\nurl = "https://memory.invalid"\nemail = "sync@example.com"\n'
            f'project = "OPS"\n\n[sync]\n{sync_lines}\n', encoding="utf-8")
        return path

    def engine(self, *, crash_at: str | None = None, **sync_keys: Any) -> Any:
        from sync.factory import build_engine, open_store
        from sync.settings import load_settings

        settings = load_settings(self.config(**sync_keys))
        store = open_store(settings)
        engine = build_engine(settings, store, retry=no_sleep_retry(), clock=self.clock,
                              crash_at=crash_at, connectors=(self.servicenow, self.jira))
        self.made.append(engine)
        return engine

    def run(self, **sync_keys: Any) -> Any:
        return self.engine(**sync_keys).run()

    def links(self) -> list[Any]:
        from sync.state import StateStore

        with StateStore(f"sqlite:///{self.tmp_path / 'state.db'}", create=False) as store:
            return store.all_links()

    def close(self) -> None:
        for engine in self.made:
            engine.close()
            engine.store.close()


@pytest.fixture
def memory(tmp_path: Path, clock: TickingClock) -> Iterator[MemoryWorld]:
    world = MemoryWorld(tmp_path, clock)
    yield world
    world.close()
