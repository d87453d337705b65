"""Several ``incident-sync run`` processes on one shared PostgreSQL state store.

Contract: the sandboxes live in this (the parent) process, with some latency per
request so that runs overlap; the workers are real child processes running the
CLI. The store is a PostgreSQL schema of the test's own (``postgres_state_url``,
see conftest): the database several hosts share. (SQLite's lock across
processes is covered by test_state_lock and test_cli_run.)

- Workers of one connection never interleave: while one is mid-run (held at its
  bulk create, so the overlap does not depend on the machine's speed) the other
  exits 1 naming the holder, or (``lock_timeout``) waits and runs after it; either
  way every record has exactly one copy.
- Workers of different connections (two configurations on one database) run
  side by side and each sees only its own links.
- A worker killed on another host (its hostname faked in the child) keeps the
  lock until the lock's expiry; then a worker here takes it over and adopts
  the creates the killed one made, without duplicating them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import SANDBOX_PASSWORD, SANDBOX_USER
from db_helpers import run_sql

from connectors.sandbox.http import FaultPlan, Request, Response
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.servicenow import ServiceNowSandbox
from sync.state import StateStore

pytestmark = pytest.mark.slow

LATENCY_MS = 15.0
CHILD_TIMEOUT = 120.0
SECRETS = {"INCIDENT_SYNC_SERVICENOW__PASSWORD": SANDBOX_PASSWORD,
           "INCIDENT_SYNC_JIRA__TOKEN": SANDBOX_PASSWORD}
# The CLI as a worker on another host: only the host name differs.
ON_HOST = (
    "import socket, sys\n"
    "host = sys.argv.pop(1)\n"
    "socket.gethostname = lambda: host\n"
    "from sync.cli.main import main\n"
    "sys.argv[0] = 'incident-sync'\n"
    "main()\n"
)


@pytest.fixture
def sandboxes() -> Iterator[tuple[ServiceNowSandbox, JiraSandbox]]:
    """Real clock: the children cannot share a test clock."""
    servicenow = ServiceNowSandbox(username=SANDBOX_USER, password=SANDBOX_PASSWORD)
    jira = JiraSandbox(mode="cloud", username=SANDBOX_USER, password=SANDBOX_PASSWORD)
    with servicenow, jira:
        yield servicenow, jira


def write_config(path: Path, sandboxes: tuple[ServiceNowSandbox, JiraSandbox], state_url: str,
                 **sync: Any) -> Path:
    servicenow, jira = sandboxes
    query = sync.pop("query", "active=true")
    jql = sync.pop("jql", "")
    keys = {"state_url": state_url, "retry_base_seconds": 0.0, **sync}
    lines = "\n".join(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
                      for k, v in keys.items())
    path.write_text(
        f'[servicenow]\ninstance_url = "{servicenow.url}"\nusername = "{SANDBOX_USER}"\n'
        f'query = "{query}"\n\n'
        f'[jira]\nurl = "{jira.url}"\nemail = "{SANDBOX_USER}"\nproject = "OPS"\n'
        f"jql = '{jql}'\n\n"
        f"[sync]\n{lines}\n", encoding="utf-8")
    return path


def seed(servicenow: ServiceNowSandbox, count: int, category: str = "network") -> list[str]:
    ids = []
    for n in range(count):
        row = servicenow.insert("incident", {
            "short_description": f"{category} trouble {n}", "description": f"since 8:{n:02d}",
            "impact": "2", "urgency": "2", "category": category,
            "caller_id": servicenow.user_sys_id("grace.okafor"),
        })
        ids.append(row["sys_id"])
    return ids


def worker(config: Path, host: str | None = None) -> subprocess.Popen[str]:
    """``incident-sync run`` in a child; ``host`` fakes the host name it runs on."""
    command = [sys.executable, "-m", "sync.cli"] if host is None else \
        [sys.executable, "-c", ON_HOST, host]
    return subprocess.Popen([*command, "run", "--config", str(config)], cwd=config.parent,
                            env={**os.environ, **SECRETS, "COLUMNS": "200"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = child.communicate(timeout=CHILD_TIMEOUT)
    return child.returncode, out + err


def copies(jira: JiraSandbox, sys_ids: list[str]) -> Counter[str]:
    """How many Jira issues carry each ServiceNow record's label."""
    found: Counter[str] = Counter()
    for key in jira.issue_keys():
        for label in jira.issue(key)["fields"].get("labels", []):
            if label.startswith("snow-") and label[5:] in sys_ids:
                found[label[5:]] += 1
    return found


def slow(*servers: Any) -> None:
    for server in servers:
        server.faults = FaultPlan(latency_ms=LATENCY_MS)


# --------------------------------------------------------------------------- tests


def hold_bulk_create(jira: JiraSandbox, monkeypatch: pytest.MonkeyPatch
                     ) -> tuple[threading.Event, threading.Event]:
    """Hold the first bulk create until released: the run that sent it holds the lock
    (it takes the lock before any write) for as long as the test wants, however slowly
    the machine starts the other worker. Returns (arrived, release)."""
    arrived, release = threading.Event(), threading.Event()
    serve: Callable[[Request], Response] = jira.handle

    def handle(request: Request) -> Response:
        if request.method == "POST" and request.path.endswith("/issue/bulk") \
                and not arrived.is_set():
            arrived.set()
            release.wait(CHILD_TIMEOUT)
        return serve(request)

    monkeypatch.setattr(jira, "handle", handle)
    return arrived, release


def test_two_workers_of_one_connection_never_interleave(
    tmp_path: Path, sandboxes: Any, postgres_state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicenow, jira = sandboxes
    sys_ids = seed(servicenow, 12)
    config = write_config(tmp_path / "a.toml", sandboxes, postgres_state_url)
    StateStore(postgres_state_url).close()  # the schema exists before the workers race
    arrived, release = hold_bulk_create(jira, monkeypatch)
    first = worker(config)
    try:
        assert arrived.wait(CHILD_TIMEOUT), "the first worker never reached its bulk create"
        # The first worker is mid-run, holding the lock: the second one must not run.
        held, held_text = finish(worker(config))
    finally:
        release.set()
    ok, ok_text = finish(first)
    assert ok == 0, ok_text
    assert held == 1, held_text
    assert "another run (owner" in held_text and "holds the lock of connection 'default'" \
        in held_text
    assert "Traceback" not in held_text
    assert copies(jira, sys_ids) == Counter({sys_id: 1 for sys_id in sys_ids})


def test_a_waiting_worker_runs_after_the_holder_finishes(
    tmp_path: Path, sandboxes: Any, postgres_state_url: str
) -> None:
    servicenow, jira = sandboxes
    sys_ids = seed(servicenow, 8)
    config = write_config(tmp_path / "a.toml", sandboxes, postgres_state_url,
                          lock_timeout=120.0)
    StateStore(postgres_state_url).close()
    slow(servicenow, jira)
    children = [worker(config), worker(config)]
    for child in children:
        code, text = finish(child)
        assert code == 0, text
    assert copies(jira, sys_ids) == Counter({sys_id: 1 for sys_id in sys_ids})
    with StateStore(postgres_state_url, create=False) as store:
        later, earlier = store.runs()
        assert len(store.all_links()) == 8
    assert earlier.finished is not None and later.finished is not None
    # Never interleaved: the second run started only after the first one finished.
    assert later.started >= earlier.finished
    assert later.counts.get("created", 0) == 0


def test_two_configurations_share_one_database_without_seeing_each_other(
    tmp_path: Path, sandboxes: Any, postgres_state_url: str
) -> None:
    servicenow, jira = sandboxes
    network = seed(servicenow, 6, "network")
    hardware = seed(servicenow, 6, "hardware")
    configs = {
        name: write_config(tmp_path / f"{name}.toml", sandboxes, postgres_state_url,
                           connection=name,
                           direction="servicenow-to-jira", query=f"category={name}",
                           # Each configuration's scope on both sides, as one per Jira
                           # project would have (the default profile labels the category).
                           jql=f'labels = "category-{name}"')
        for name in ("network", "hardware")
    }
    StateStore(postgres_state_url).close()
    slow(servicenow, jira)
    children = [worker(config) for config in configs.values()]
    for child in children:
        code, text = finish(child)
        assert code == 0, text  # runs of different connections do not exclude each other
    assert copies(jira, network + hardware) == Counter({i: 1 for i in network + hardware})
    for name, mine in (("network", network), ("hardware", hardware)):
        with StateStore(postgres_state_url, connection=name, create=False) as store:
            assert sorted(link.id_on("servicenow") for link in store.all_links()) == sorted(mine)
            assert [run.outcome for run in store.runs()] != []
    with StateStore(postgres_state_url, connection="default", create=False) as nobody:
        assert nobody.all_links() == [] and nobody.runs() == []


def kill_on_bulk_create(jira: JiraSandbox, monkeypatch: pytest.MonkeyPatch
                        ) -> Callable[[int], threading.Event]:
    """SIGKILL the child when its bulk create arrives; the create is then served anyway,
    so the issues exist and the killed worker never links them."""
    target: dict[str, int] = {}
    fired = threading.Event()
    serve: Callable[[Request], Response] = jira.handle

    def handle(request: Request) -> Response:
        if request.method == "POST" and request.path.endswith("/issue/bulk") and target \
                and not fired.is_set():
            os.kill(target["pid"], signal.SIGKILL)
            fired.set()
        return serve(request)

    monkeypatch.setattr(jira, "handle", handle)

    def arm(pid: int) -> threading.Event:
        target["pid"] = pid
        return fired

    return arm


def test_a_worker_killed_on_another_host_is_taken_over_after_expiry_and_adopted(
    tmp_path: Path, sandboxes: Any, postgres_state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    servicenow, jira = sandboxes
    sys_ids = seed(servicenow, 6)
    config = write_config(tmp_path / "a.toml", sandboxes, postgres_state_url)
    StateStore(postgres_state_url).close()
    arm = kill_on_bulk_create(jira, monkeypatch)
    remote = worker(config, host="worker-b.example")
    fired = arm(remote.pid)
    code, text = finish(remote)
    assert fired.is_set() and code == -signal.SIGKILL, text
    assert copies(jira, sys_ids) == Counter({i: 1 for i in sys_ids})  # created, not linked
    with StateStore(postgres_state_url, create=False) as store:
        holder = store.lock_holder()
        assert holder is not None and holder[0].startswith("worker-b.example:")
        assert store.all_links() == []

    # This host cannot tell whether worker-b is alive: the lock holds until it expires.
    code, text = finish(worker(config))
    assert code == 1 and "worker-b.example" in text, text

    # The lock's 15 minutes pass (its expiry moved into the past).
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    run_sql(postgres_state_url, "update lock set expires = :past", past=past)
    code, text = finish(worker(config))
    assert code == 0, text
    assert copies(jira, sys_ids) == Counter({i: 1 for i in sys_ids})  # adopted, not doubled
    with StateStore(postgres_state_url, create=False) as store:
        assert sorted(link.id_on("servicenow") for link in store.all_links()) == sorted(sys_ids)
        assert store.lock_holder() is None
