"""Both sandboxes in a child process, counting what crosses the wire, for the benchmarks.

Contract:
- :class:`SandboxHost` (context manager) starts a ServiceNow and a Jira sandbox in
  a separate process (forked from a preloaded fork server: :func:`processes`), so
  the benchmarked sync process measures only
  its own memory and CPU, as it would against real tools over a network.
- Counts are of *wire* requests: one per HTTP request the sync process sent.
  The ServiceNow sandbox also logs each item of a Batch API request as if it
  were a request of its own; those inner items are counted apart
  (``inner``), never as wire requests.
- Latency (``set_latency``) is added once per wire request, before it is
  handled, to mimic a network round trip. (The sandboxes' own
  ``FaultPlan.latency_ms`` would also delay every inner Batch API item, which
  a real network does not.)
- Both sandboxes run on a shared virtual clock: real UTC time plus an offset
  that :meth:`SandboxHost.advance` moves forward, so a benchmark can let
  "ten minutes pass" between runs without sleeping. The sync process must use
  :meth:`SandboxHost.clock` so that both sides agree on the time.
- ``edit(side, count, start, as_person)`` changes the description (ServiceNow) or
  summary (Jira) of ``count`` incidents on one side in process, not over the wire;
  ``as_person`` makes the edit as a person (:data:`PERSON`) rather than as the
  integration account, as a real agent's edit is (the tools' histories are how the
  sync tells a person's edit from its own write).
- Seeding is that of ``incident-sync sandbox`` (``connectors.sandbox.serve``): both
  sandboxes draw from the shared generator with the same ``seed``, so
  ``incident-sync sandbox --seed-incidents N --jira-seed-incidents 0`` serves the
  world of a ServiceNow -> Jira scenario of size N. ``HostSpec.comments = False``
  drops the seeded comments (journal entries, Jira comments) before serving.
- :func:`start_counting` builds the same counting sandboxes in the calling process
  (tests that need no separate process, e.g. the request-budget guard).
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from connectors.sandbox.http import ADMIN_PREFIX, WRITE_METHODS, Request, Response

USERNAME = "admin"
PASSWORD = "sandbox"  # throw-away credentials of local sandboxes
# The person whose edits the benchmarks make (a seeded agent, not the integration user).
PERSON = "elif.yilmaz"
PERSON_EMAIL = f"{PERSON}@example.com"
START_TIMEOUT = 60.0

_IDS = (
    (re.compile(r"/[0-9a-f]{32}(?=/|$)"), "/{sys_id}"),
    (re.compile(r"/[A-Z][A-Z0-9_]+-\d+(?=/|$)"), "/{key}"),
    # Numeric ids, but not the API version in /rest/api/3/.
    (re.compile(r"(?<!/api)/\d+(?=/|$)"), "/{id}"),
)


def route_of(method: str, path: str) -> str:
    """``"GET /rest/api/3/issue/{key}"``: a request with its record ids folded away."""
    for pattern, name in _IDS:
        path = pattern.sub(name, path)
    return f"{method} {path}"


def is_write(route: str) -> bool:
    """A request that changes data. Jira searches sent as POST only read."""
    method, _, path = route.partition(" ")
    return method in WRITE_METHODS and "/search" not in path


@dataclass(frozen=True)
class HostSpec:
    """What the child process serves."""

    servicenow_incidents: int = 0
    jira_incidents: int = 0
    jira_mode: str = "cloud"
    seed: int = 1
    comments: bool = True


class _WireCounting:
    """Mixin over a SandboxServer: counts wire requests apart from Batch API items."""

    def _init_counting(self) -> None:
        self._depth = threading.local()
        self._wire: Counter[str] = Counter()
        self._inner: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.latency_s = 0.0

    def handle(self, request: Request) -> Response:
        depth = getattr(self._depth, "value", 0)
        admin = request.path.startswith(ADMIN_PREFIX)
        if depth == 0 and not admin and self.latency_s:
            time.sleep(self.latency_s)
        self._depth.value = depth + 1
        try:
            response = super().handle(request)  # type: ignore[misc]
        finally:
            self._depth.value = depth
        if not admin:
            with self._count_lock:
                (self._wire if depth == 0 else self._inner)[
                    route_of(request.method, request.path)] += 1
        return response

    def counts(self) -> dict[str, dict[str, int]]:
        with self._count_lock:
            return {"wire": dict(self._wire), "inner": dict(self._inner)}

    def clear_counts(self) -> None:
        with self._count_lock:
            self._wire.clear()
            self._inner.clear()


def _virtual_clock(offset: list[float]) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + timedelta(seconds=offset[0])


def start_counting(spec: HostSpec, clock: Callable[[], datetime] | None = None
                   ) -> dict[str, Any]:
    """Both counting sandboxes, seeded per ``spec``, built (not started) in this process.

    The caller starts and stops them (each is a context manager). Seeds as
    ``connectors.sandbox.serve.start_sandboxes`` does: the same ``seed`` on both sides.
    """
    from connectors.sandbox.jira import JiraSandbox
    from connectors.sandbox.servicenow import ServiceNowSandbox

    class CountingServiceNow(_WireCounting, ServiceNowSandbox):
        pass

    class CountingJira(_WireCounting, JiraSandbox):
        pass

    with _seeded_comments(spec.comments):
        servicenow = CountingServiceNow(username=USERNAME, password=PASSWORD, clock=clock,
                                        seed_incidents=spec.servicenow_incidents,
                                        seed=spec.seed)
        jira = CountingJira(mode=spec.jira_mode, username=USERNAME, password=PASSWORD,
                            clock=clock, seed_incidents=spec.jira_incidents, seed=spec.seed)
    servers: dict[str, Any] = {"servicenow": servicenow, "jira": jira}
    for server in servers.values():
        server._init_counting()
    return servers


@contextmanager
def _seeded_comments(keep: bool) -> Iterator[None]:
    """While building the sandboxes, seed incidents with their comments or without.

    The same incidents either way (the generator draws the comments all the same);
    only the comments are left out, before any index of the sandboxes is built.
    """
    if keep:
        yield
        return
    from connectors.sandbox import jira_seed, seed

    generate = seed.seed_incidents

    def without_comments(*args: Any, **kwargs: Any) -> list[Any]:
        return [replace(incident, comments=[]) for incident in generate(*args, **kwargs)]

    modules = [m for m in (seed, jira_seed) if getattr(m, "seed_incidents", None) is generate]
    for module in modules:
        module.seed_incidents = without_comments  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in modules:
            module.seed_incidents = generate  # type: ignore[attr-defined]


def _serve(conn: Connection, spec: HostSpec) -> None:
    """The child process: build, start, then answer commands until ``stop``."""
    offset = [0.0]
    clock = _virtual_clock(offset)
    servers = start_counting(spec, clock)
    servicenow, jira = servers["servicenow"], servers["jira"]
    with servicenow, jira:
        conn.send({"servicenow": servicenow.url, "jira": jira.url})
        while True:
            command, args = conn.recv()
            if command == "stop":
                conn.send(None)
                return
            try:
                conn.send(("ok", _answer(command, args, servers, offset)))
            except Exception as error:  # the parent re-raises it with the command's name
                conn.send(("error", f"{type(error).__name__}: {error}"))


def _answer(command: str, args: Any, servers: dict[str, Any], offset: list[float]) -> Any:
    if command == "counts":
        return {side: server.counts() for side, server in servers.items()}
    if command == "clear":
        for server in servers.values():
            server.clear_counts()
        return None
    if command == "latency":
        for server in servers.values():
            server.latency_s = float(args) / 1000.0
        return None
    if command == "advance":
        offset[0] += float(args)
        return offset[0]
    if command == "edit":
        side, count, start, as_person = args
        return _edit(servers[side], side, int(count), int(start), bool(as_person))
    if command == "size":
        servicenow, jira = servers["servicenow"], servers["jira"]
        return {"servicenow": len(servicenow.rows("incident")), "jira": len(jira.issue_keys())}
    raise ValueError(f"unknown command {command!r}")


def _edit(server: Any, side: str, count: int, start: int, as_person: bool = False
          ) -> list[str]:
    """Change the description of ``count`` incidents from position ``start`` (stable order)."""
    if side == "servicenow":
        rows = sorted(server.rows("incident"), key=lambda row: row["number"])
        chosen = rows[start:start + count]
        for row in chosen:
            server.update("incident", row["sys_id"],
                          {"description": f"{row['description']}\nUpdate from the desk."},
                          as_user=PERSON if as_person else USERNAME)
        return [row["number"] for row in chosen]
    keys = sorted(server.issue_keys(), key=lambda key: int(key.rpartition("-")[2]))
    chosen_keys = keys[start:start + count]
    for key in chosen_keys:
        server.edit_issue(key, {"summary": f"{server.issue(key)['fields']['summary']} (update)"},
                          as_user=PERSON_EMAIL if as_person else None)
    return chosen_keys


# What every bench process imports: loaded once in the fork server, so each measured
# process starts in milliseconds instead of re-importing the product (~1 s of CPU each).
PRELOAD = ["sync.runner", "sync.settings", "connectors.sandbox.serve", "bench.host",
           "bench.naive"]


def processes(method: str = "forkserver") -> multiprocessing.context.BaseContext:
    """A process context for the bench's children. ``forkserver``: forked from a clean,
    single-threaded fork server that has the product imported (never from the parent,
    which runs threads), so a child starts at once; the sandbox host always starts this
    way. ``spawn``: a fresh interpreter that imports everything itself, which the
    economy bench uses by default for the processes it measures, so their peak RSS
    counts every page of the imports, as a user's process would (a forked child counts
    only the shared library pages it touches again)."""
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(PRELOAD)
    return context


class SandboxHost:
    """The parent's handle on the child process serving both sandboxes."""

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.offset = 0.0
        self.urls: dict[str, str] = {}
        context = processes()
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, spec), daemon=True,
                                        name="bench-sandboxes")
        self._child = child

    def __enter__(self) -> SandboxHost:
        self._process.start()
        self._child.close()
        if not self._conn.poll(START_TIMEOUT):
            self._process.kill()
            raise RuntimeError(f"sandboxes did not start within {START_TIMEOUT:.0f} s")
        try:
            self.urls = self._conn.recv()
        except EOFError:
            raise RuntimeError("sandbox process died while starting (see its traceback "
                               "above)") from None
        return self

    @property
    def pid(self) -> int | None:
        """The sandbox process's id once started (for its CPU time, bench/wall.py)."""
        return self._process.pid

    def __exit__(self, *exc: object) -> None:
        try:
            self._conn.send(("stop", None))
            self._conn.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()

    def _ask(self, command: str, args: Any = None) -> Any:
        self._conn.send((command, args))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"sandbox host: {command}: {value}")
        return value

    def clock(self) -> datetime:
        """The virtual time the sandboxes stamp records with."""
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per side: ``wire`` and ``inner`` route counters since the last clear."""
        return self._ask("counts")

    def clear(self) -> None:
        self._ask("clear")

    def set_latency(self, milliseconds: float) -> None:
        self._ask("latency", milliseconds)

    def advance(self, seconds: float) -> None:
        self.offset = float(self._ask("advance", seconds))

    def edit(self, side: str, count: int, start: int = 0, *, as_person: bool = False
             ) -> list[str]:
        return list(self._ask("edit", (side, count, start, as_person)))

    def size(self) -> dict[str, int]:
        return dict(self._ask("size"))
