"""A real crash: ``incident-sync run`` in a child process is SIGKILLed mid-sync, then rerun.

Contract: the sandboxes live in this (the parent) process, so they outlive the
kill, and see every request the child sends. A tripwire on one sandbox counts
the requests of one kind as they arrive and, at the n-th, SIGKILLs the child
before the sandbox serves that request; the sandbox then serves it anyway, so
the write happens but the child never hears of it (the worst moment: a tool
did something the state store does not know). After the kill:

- the killed run's lock is still in the store under the child's owner id; an
  immediate ``incident-sync run`` on this host (the same command, invoked in
  this process: what it must see is the dead child's pid, not a fresh
  interpreter, and a second child would cost a Python start-up per case) sees
  that the holder's process is gone, takes the lock over and completes; one
  more run writes nothing
  (a holder on another host keeps the lock until its expiry: test_lock_*);
- then every source record has exactly one copy on the other side, there is
  exactly one link per pair and no other, and every comment is on each side of
  its pair exactly once, internal ones internal on both sides.

The child gets the sandbox secrets in its environment, never on its command
line or in the config file. Sandboxes add latency only while the child runs,
so the kill lands mid-run; the reruns are in process and fast.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import SANDBOX_PASSWORD, SANDBOX_USER, no_sleep_retry
from typer.testing import CliRunner

from connectors.sandbox.http import WRITE_METHODS, FaultPlan, Request, Response
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.serve import write_config
from connectors.sandbox.servicenow import ServiceNowSandbox
from mappings.wiki import wiki_to_text
from sync.cli.main import app as cli_app
from sync.engine import RunSummary
from sync.factory import build_engine
from sync.settings import load_settings
from sync.state import StateStore

pytestmark = pytest.mark.slow

PER_SIDE = 10            # records created on each side before the first run
LATENCY_MS = 20.0        # per request while the child runs: the kill lands mid-run
CHILD_TIMEOUT = 90.0     # seconds; a child still running then is a hang, not slowness
SECRETS = {"INCIDENT_SYNC_SERVICENOW__PASSWORD": SANDBOX_PASSWORD,
           "INCIDENT_SYNC_JIRA__TOKEN": SANDBOX_PASSWORD}


# --------------------------------------------------------------------------- the tripwire


class Tripwire:
    """SIGKILLs the child when the ``nth`` request matching (method, path regex) arrives
    (or sends it ``signum``: SIGINT is the user's Ctrl-C).

    The kill happens before the sandbox serves that request, which it then
    serves anyway: the write lands, the child never learns of it."""

    def __init__(self, server: Any, method: str, path: str, nth: int,
                 monkeypatch: pytest.MonkeyPatch, signum: int = signal.SIGKILL) -> None:
        self.method, self.path, self.nth = method, re.compile(path), nth
        self.signum = signum
        self.seen = 0
        self.pid: int | None = None
        self.armed = threading.Event()
        self.fired = threading.Event()
        self.served = threading.Event()   # the request it fired on has been carried out
        self._lock = threading.Lock()
        serve: Callable[[Request], Response] = server.handle

        def handle(request: Request) -> Response:
            if request.method == self.method and self.path.search(request.path):
                with self._lock:
                    self.seen += 1
                    hit = self.seen == self.nth
                if hit:
                    self.kill()
                    try:
                        return serve(request)
                    finally:
                        self.served.set()
            return serve(request)

        monkeypatch.setattr(server, "handle", handle)

    def arm(self, pid: int) -> None:
        self.pid = pid
        self.armed.set()

    def kill(self) -> None:
        # The child cannot send a request before Popen returned its pid, but a
        # slow parent thread could still be setting it: wait rather than miss.
        if not self.armed.wait(timeout=10) or self.pid is None:
            return
        os.kill(self.pid, self.signum)
        self.fired.set()


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: the n-th request of a kind on one side; ``edits`` = kill a run
    that carries edits of linked pairs instead of their first sync; ``worked`` = the
    ServiceNow-born incidents are In Progress, so their copies are moved by transitions."""

    side: str
    method: str
    path: str
    nth: int
    edits: bool = False
    jira_mode: str = "cloud"
    worked: bool = False


KILL_POINTS = {
    # One bulk request creates every ServiceNow-born incident's copy in Jira.
    "mid-jira-bulk-create": KillPoint("jira", "POST", r"/issue/bulk$", 1),
    # Data Center: REST v2, wiki text, users by name; same crash, other code paths.
    "mid-jira-bulk-create-datacenter": KillPoint("jira", "POST", r"/issue/bulk$", 1,
                                                 jira_mode="datacenter"),
    # One Batch API request creates every Jira-born issue's copy in ServiceNow.
    "mid-servicenow-batch-create": KillPoint("servicenow", "POST", r"/api/now/v1/batch$", 1),
    # After the bulk create, each ServiceNow source gets its copy's key (a PATCH).
    "mid-backlink-updates": KillPoint("servicenow", "PATCH", r"/api/now/table/incident/", 4),
    # The copies' transitions, while the back-links are written beside them.
    "mid-jira-transitions": KillPoint("jira", "POST", r"/issue/[A-Z]+-\d+/transitions$", 2,
                                      worked=True),
    # Comment copies on Jira: each is one POST.
    "mid-comment-copies": KillPoint("jira", "POST", r"/issue/[A-Z]+-\d+/comment$", 5),
    # Linked pairs edited on both sides: the run's field updates on each side.
    "mid-jira-field-updates": KillPoint("jira", "PUT", r"/issue/[A-Z]+-\d+$", 4, edits=True),
    "mid-servicenow-field-updates": KillPoint("servicenow", "PATCH", r"/api/now/table/incident/",
                                              3, edits=True),
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def sandboxes(point: str) -> Iterator[tuple[ServiceNowSandbox, JiraSandbox]]:
    """Both sandboxes on the real clock: the child process cannot share a test clock."""
    servicenow = ServiceNowSandbox(username=SANDBOX_USER, password=SANDBOX_PASSWORD)
    jira = JiraSandbox(mode=KILL_POINTS[point].jira_mode, username=SANDBOX_USER,
                       password=SANDBOX_PASSWORD)
    with servicenow, jira:
        yield servicenow, jira


@pytest.fixture
def config(tmp_path: Path, sandboxes: tuple[ServiceNowSandbox, JiraSandbox],
           monkeypatch: pytest.MonkeyPatch, database: str,
           request: pytest.FixtureRequest) -> Path:
    """The store is SQLite or PostgreSQL (``database``): a crash must be safe on both."""
    servicenow, jira = sandboxes
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    state_url = (request.getfixturevalue("postgres_state_url") if database == "postgresql"
                 else f"sqlite:///{tmp_path / 'state.db'}")
    return write_config(tmp_path / "incident-sync.toml", servicenow.url, jira.url, SANDBOX_USER,
                        state_url=state_url)


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Note:
    """A comment written on one record before the sync: its unique text and visibility."""

    side: str
    record_id: str
    text: str
    internal: bool


def seed(servicenow: ServiceNowSandbox, jira: JiraSandbox) -> list[Note]:
    """PER_SIDE open incidents on each side, each with one comment (alternately internal)."""
    notes = []
    for n in range(PER_SIDE):
        row = servicenow.insert("incident", {
            "short_description": f"VPN drops for site {n}", "description": f"Site {n} since 8:00",
            "impact": "2", "urgency": str(1 + n % 3), "category": "network",
            "caller_id": servicenow.user_sys_id("grace.okafor"),
            "assignment_group": servicenow.group_sys_id("Network"),
        })
        notes.append(comment_on(servicenow, jira, "servicenow", row["sys_id"], n))
        key = jira.create_issue({
            "summary": f"Printer {n} jammed", "description": f"Floor {n}: paper jam",
            "customfield_10004": {"value": "Moderate / Limited"},
            "customfield_10005": {"value": "Medium"},
        })
        notes.append(comment_on(servicenow, jira, "jira", key, n))
    return notes


def comment_on(servicenow: ServiceNowSandbox, jira: JiraSandbox, side: str, record_id: str,
               n: int, what: str = "first look") -> Note:
    internal = n % 2 == 1
    text = f"{side} {record_id} {what}: {'work note' if internal else 'reply'} {n}"
    if side == "servicenow":
        servicenow.update("incident", record_id,
                          {"work_notes" if internal else "comments": text})
    else:
        jira.add_comment(record_id, text, internal=internal)
    return Note(side, record_id, text, internal)


def edit_every_pair(servicenow: ServiceNowSandbox, jira: JiraSandbox, store: StateStore,
                    notes: list[Note]) -> None:
    """Edit each linked pair on one side (alternating) and comment on the other."""
    for n, link in enumerate(store.all_links()):
        if n % 2 == 0:
            servicenow.update("incident", link.id_on("servicenow"),
                              {"short_description": f"Edited in ServiceNow {n}", "urgency": "1"})
            notes.append(comment_on(servicenow, jira, "jira", link.id_on("jira"), n, "follow-up"))
        else:
            jira.edit_issue(link.id_on('jira'), {"summary": f"Edited in Jira {n}"})
            notes.append(comment_on(servicenow, jira, "servicenow", link.id_on("servicenow"), n,
                                    "follow-up"))


def child_env() -> dict[str, str]:
    return {**os.environ, **SECRETS, "COLUMNS": "120"}


def cli_run(config: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """``incident-sync run`` in a child, as ``python -m sync.cli`` (the venv's interpreter)."""
    return subprocess.Popen([sys.executable, "-m", "sync.cli", "run", "--config", str(config)],
                            cwd=config.parent, env=child_env(), **popen)


def writes(server: Any) -> list[str]:
    """Write requests that are not searches (Jira's search POSTs read)."""
    return [f"{e.method} {e.path}" for e in server.log.entries
            if e.method in WRITE_METHODS and "/search" not in e.path]


def run_in_process(config: Path, store: StateStore) -> RunSummary:
    engine = build_engine(load_settings(config), store, retry=no_sleep_retry())
    try:
        return engine.run()
    finally:
        engine.close()


def sync_fully(config: Path) -> None:
    """A first, uninterrupted sync in process (no latency)."""
    with StateStore(load_settings(config).state_url) as store:
        summary = run_in_process(config, store)
    assert summary.failed == 0, summary.failures


# --------------------------------------------------------------------------- checks


def body_text(body: str) -> str:
    """A comment's own text: a copy's attribution line and blank line removed."""
    return body.split("\n\n", 1)[1] if body.startswith("[") and "\n\n" in body else body


def comments_on(servicenow: ServiceNowSandbox, jira: JiraSandbox, sys_id: str,
                key: str) -> dict[str, Counter[tuple[str, bool]]]:
    """(text, internal) of every comment on each record of a pair."""
    sn = Counter((body_text(row["value"]), row["element"] == "work_notes")
                 for row in servicenow.journal(sys_id))
    jira_comments = jira.issue(key)["fields"]["comment"]["comments"]
    # REST v2 bodies: wiki markup on Data Center (escaped brackets), plain on Cloud.
    text = wiki_to_text if jira.mode == "datacenter" else str
    on_jira = Counter((body_text(text(c["body"])), not c["jsdPublic"]) for c in jira_comments)
    return {"servicenow": sn, "jira": on_jira}


def check_synced_once(servicenow: ServiceNowSandbox, jira: JiraSandbox, store: StateStore,
                      sources: dict[str, list[str]], notes: list[Note]) -> None:
    sn_rows = servicenow.rows("incident")
    keys = jira.issue_keys()
    assert len(sn_rows) == len(keys) == 2 * PER_SIDE, (len(sn_rows), len(keys))
    # Exactly one copy per source, found by the id it carries.
    for sys_id in sources["servicenow"]:
        carriers = [k for k in keys if f"snow-{sys_id}" in jira.issue(k)["fields"]["labels"]]
        assert len(carriers) == 1, (sys_id, carriers)
    for key in sources["jira"]:
        carriers = [r["sys_id"] for r in sn_rows if r["correlation_id"] == key]
        assert len(carriers) == 1, (key, carriers)
    # Exactly one link per pair, and every record in one.
    links = store.all_links()
    assert len(links) == 2 * PER_SIDE
    assert sorted(link.id_on("servicenow") for link in links) == sorted(
        r["sys_id"] for r in sn_rows
    )
    assert sorted(link.id_on("jira") for link in links) == sorted(keys)
    # Every comment once on each side, with its visibility; nothing else (no echoes).
    for link in links:
        ours = [n for n in notes if n.record_id in (link.id_on("servicenow"), link.id_on("jira"))]
        expected = Counter((n.text, n.internal) for n in ours)
        seen = comments_on(servicenow, jira, link.id_on("servicenow"), link.id_on("jira"))
        for side, got in seen.items():
            assert got == expected, (side, link.display_on("servicenow"), link.display_on("jira"),
                                     dict(got), dict(expected))


def check_fields_agree(servicenow: ServiceNowSandbox, jira: JiraSandbox,
                       store: StateStore) -> None:
    """Titles and urgencies (the fields the seed and the edits set) agree on every pair."""
    urgency = {"1": "High", "2": "Medium", "3": "Low"}   # the default profile's to_jira
    for link in store.all_links():
        row = servicenow.get("incident", link.id_on("servicenow"))
        assert row is not None
        fields = jira.issue(link.id_on("jira"))["fields"]
        assert (row["short_description"], urgency[row["urgency"]]) == (
            fields["summary"], fields["customfield_10005"]["value"]), link.id_on("jira")


# --------------------------------------------------------------------------- the test


# Every kill point on SQLite; on PostgreSQL one per kind of write (a create on each
# side, updates), which exercises its transactions without doubling the slowest test.
ON_POSTGRESQL = ("mid-jira-bulk-create", "mid-servicenow-batch-create",
                 "mid-jira-field-updates")


@pytest.mark.parametrize(("database", "point"), [
    *(("sqlite", point) for point in KILL_POINTS),
    *(("postgresql", point) for point in ON_POSTGRESQL),
])
def test_sigkilled_run_is_finished_by_a_rerun_without_duplicates(
    database: str, point: str, sandboxes: tuple[ServiceNowSandbox, JiraSandbox], config: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    servicenow, jira = sandboxes
    kill = KILL_POINTS[point]
    notes = seed(servicenow, jira)
    sources = {"servicenow": [r["sys_id"] for r in servicenow.rows("incident")],
               "jira": jira.issue_keys()}
    if kill.worked:
        for sys_id in sources["servicenow"]:
            servicenow.update("incident", sys_id, {"state": "2"})
    if kill.edits:
        sync_fully(config)
        with StateStore(load_settings(config).state_url) as store:
            edit_every_pair(servicenow, jira, store, notes)

    wire = Tripwire(servicenow if kill.side == "servicenow" else jira, kill.method, kill.path,
                    kill.nth, monkeypatch)
    for server in sandboxes:
        server.faults = FaultPlan(latency_ms=LATENCY_MS)
    with open(tmp_path / "child.out", "wb") as out:
        child = cli_run(config, stdout=out, stderr=subprocess.STDOUT)
        wire.arm(child.pid)
        child.wait(timeout=CHILD_TIMEOUT)
    for server in sandboxes:
        server.faults = FaultPlan()
    assert wire.fired.is_set(), (
        f"the run ended (exit {child.returncode}) before the kill point; saw {wire.seen} "
        f"matching requests: {(tmp_path / 'child.out').read_text()}")
    assert child.returncode == -signal.SIGKILL
    # The write the child was waiting for lands after its death, before any rerun.
    assert wire.served.wait(timeout=CHILD_TIMEOUT)

    # The dead run's lock is still there and keeps an immediate rerun out.
    owner = f"{socket.gethostname()}:{child.pid}"
    with StateStore(load_settings(config).state_url, create=False) as store:
        holder = store.lock_holder()
    assert holder is not None and holder[0] == owner
    # On this host the holder is known dead: a rerun takes the lock over at once
    # (cron, systemd) instead of waiting for its expiry, and finishes the job.
    rerun = CliRunner().invoke(cli_app, ["run", "--config", str(config)],
                               env={**SECRETS, "COLUMNS": "120"})
    assert rerun.exit_code == 0, rerun.output
    assert "failed 0" in rerun.output
    with StateStore(load_settings(config).state_url, create=False) as store:
        assert store.lock_holder() is None

    with StateStore(load_settings(config).state_url) as store:
        summary = run_in_process(config, store)
        assert summary.failed == 0, summary.failures
        servicenow.log.clear()
        jira.log.clear()
        again = run_in_process(config, store)
        assert again.failed == 0, again.failures
        assert writes(servicenow) == [] and writes(jira) == []
        check_synced_once(servicenow, jira, store, sources, notes)
        check_fields_agree(servicenow, jira, store)
        if kill.worked:
            for link in store.all_links():
                if link.id_on("servicenow") in sources["servicenow"]:
                    row = servicenow.get("incident", link.id_on("servicenow"))
                    assert row is not None and row["state"] == "2"
                    fields = jira.issue(link.id_on("jira"))["fields"]
                    assert fields["status"]["name"] == "Work in progress"
