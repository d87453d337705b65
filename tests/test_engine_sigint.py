"""Ctrl-C: a real SIGINT to an ``incident-sync run`` child between a copy's create and
its transition, then reruns.

Contract (user report: SIGINT 12 s into ``incident-sync run`` and the rerun moved 17
ServiceNow incidents from In Progress / On Hold back to New): the interrupted run
ends with one line on stderr (no traceback) and exit status 1, releases its lock
and is recorded as interrupted; the reruns adopt the copies it left in Jira's
initial status and move them to the originals' statuses; every original keeps its
state and hold reason, no conflict is recorded, and one more run writes nothing.

The sandboxes live in this process (on the real clock: the child cannot share a
test clock) and see every request; a tripwire sends the SIGINT when the child's
second transition request arrives, as the bulk create's follow-up moves begin.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SANDBOX_PASSWORD, SANDBOX_USER
from test_engine_sigkill import (
    CHILD_TIMEOUT,
    SECRETS,
    Tripwire,
    cli_run,
    run_in_process,
    writes,
)

from connectors.sandbox.http import FaultPlan
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.serve import write_config
from connectors.sandbox.servicenow import ServiceNowSandbox
from sync.settings import load_settings
from sync.state import StateStore

pytestmark = pytest.mark.slow

EDITOR = "elif.yilmaz"          # the agents who worked the incidents (not the integration user)
INCIDENTS = 8
LATENCY_MS = 30.0
JIRA_STATUS_OF = {"2": "Work in progress", "3": "Pending"}


@pytest.fixture
def sandboxes() -> Iterator[tuple[ServiceNowSandbox, JiraSandbox]]:
    servicenow = ServiceNowSandbox(username=SANDBOX_USER, password=SANDBOX_PASSWORD)
    jira = JiraSandbox(mode="cloud", username=SANDBOX_USER, password=SANDBOX_PASSWORD)
    with servicenow, jira:
        yield servicenow, jira


@pytest.fixture
def config(tmp_path: Path, sandboxes: tuple[ServiceNowSandbox, JiraSandbox],
           monkeypatch: pytest.MonkeyPatch) -> Path:
    servicenow, jira = sandboxes
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return write_config(tmp_path / "incident-sync.toml", servicenow.url, jira.url, SANDBOX_USER,
                        state_url=f"sqlite:///{tmp_path / 'state.db'}")


def test_ctrl_c_mid_run_ends_cleanly_and_the_rerun_keeps_every_original_status(
    sandboxes: tuple[ServiceNowSandbox, JiraSandbox], config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    servicenow, jira = sandboxes
    states: dict[str, dict[str, str]] = {}
    for n in range(INCIDENTS):
        row = servicenow.insert("incident", {
            "short_description": f"VPN drops for site {n}", "impact": "2", "urgency": "2",
        }, as_user=EDITOR)
        values = {"state": "2"} if n % 2 else {"state": "3", "hold_reason": "1"}
        servicenow.update("incident", row["sys_id"], values, as_user=EDITOR)
        states[row["sys_id"]] = values

    wire = Tripwire(jira, "POST", r"/issue/[A-Z]+-\d+/transitions$", 2, monkeypatch,
                    signum=signal.SIGINT)
    for server in sandboxes:
        server.faults = FaultPlan(latency_ms=LATENCY_MS)
    child = cli_run(config, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wire.arm(child.pid)
    out, err = child.communicate(timeout=CHILD_TIMEOUT)
    for server in sandboxes:
        server.faults = FaultPlan()

    assert wire.fired.is_set(), out + err
    assert child.returncode == 1, err
    assert err.decode().splitlines() == [
        "incident-sync: interrupted; the last run's status stands"], err
    settings = load_settings(config)
    with StateStore(settings.state_url, create=False) as store:
        assert store.lock_holder() is None
        (last,) = store.runs(limit=1)
        assert last.outcome == "interrupted"
    moved = [jira.issue(k)["fields"]["status"]["name"] for k in jira.issue_keys()]
    assert len(moved) == INCIDENTS and "Open" in moved   # copies the run never moved

    with StateStore(settings.state_url) as store:
        summary = run_in_process(config, store)
        assert summary.failed == 0 and summary.conflicts == 0, summary.failures
        servicenow.log.clear()
        jira.log.clear()
        again = run_in_process(config, store)
        assert again.failed == 0, again.failures
        assert writes(servicenow) == [] and writes(jira) == []
        links = {link.id_on("servicenow"): link.id_on("jira") for link in store.all_links()}
        assert store.open_conflicts() == []

    assert sorted(links) == sorted(states)
    for sys_id, values in states.items():
        row = servicenow.get("incident", sys_id)
        assert row is not None
        assert {k: row[k] for k in values} == values, row["number"]
        status = jira.issue(links[sys_id])["fields"]["status"]["name"]
        assert status == JIRA_STATUS_OF[values["state"]], (row["number"], links[sys_id])
