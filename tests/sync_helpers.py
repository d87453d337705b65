"""Helpers shared by the engine and CLI scenario tests (sandboxes, stores, counts)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from connectors.base import group_ref, user_ref
from connectors.sandbox.http import WRITE_METHODS
from sync.settings import load_settings
from sync.state import StateStore

ALICE = "alice.smith@example.com"
BOB = "bob.jones@example.com"
GRACE = "grace.okafor@example.com"
EDITOR = "elif.yilmaz"               # a person on both tools (not the integration user)
EDITOR_EMAIL = f"{EDITOR}@example.com"
ON_HOLD_AWAITING_CALLER = "1"        # ServiceNow hold_reason


def seed_worked_incidents(servicenow: Any) -> dict[str, str]:
    """Three incidents people worked on (In Progress, On Hold with its reason): sys_id ->
    the state they left it in. Their Jira copies must be moved by transitions."""
    states = {}
    for title, values in (
        ("VPN drops every 5 minutes", {"state": "2"}),
        ("Printer on floor 3 jammed", {"state": "3", "hold_reason": ON_HOLD_AWAITING_CALLER}),
        ("Payroll export times out", {"state": "2"}),
    ):
        row = servicenow.insert("incident", {"short_description": title, "impact": "2",
                                             "urgency": "2"}, as_user=EDITOR)
        servicenow.update("incident", row["sys_id"], values, as_user=EDITOR)
        states[row["sys_id"]] = values["state"]
    return states


def jira_status(jira: Any, key: str) -> str:
    return str(jira.issue(key)["fields"]["status"]["name"])


def transitions_wait_for(event: threading.Event, monkeypatch: pytest.MonkeyPatch
                         ) -> list[bool]:
    """Make every Jira connector transition wait (10 s at most) for ``event``; the list
    returned records, per transition, whether the event came in time: had the event
    been set only after the transitions, each would time out (False)."""
    from connectors.jira import JiraConnector

    waited: list[bool] = []
    move = JiraConnector._move

    def gated(self: JiraConnector, *args: Any, **kwargs: Any) -> bool:
        waited.append(event.wait(timeout=10))
        return bool(move(self, *args, **kwargs))

    monkeypatch.setattr(JiraConnector, "_move", gated)
    return waited


def memory_incident(memory: Any, title: str, **values: Any) -> str:
    """An incident as an agent enters it in the in-memory ServiceNow; returns its sys_id."""
    row = {"short_description": title, "description": f"{title}: details",
           "impact": "2", "urgency": "2", "category": "network", "subcategory": "VPN",
           "caller_id": user_ref(GRACE), "assignment_group": group_ref("Network"), **values}
    return str(memory.servicenow.put(row, foreign_id=values.get("correlation_id")))


def sn_incident(servicenow: Any, title: str, **values: Any) -> dict[str, Any]:
    """Insert an incident the way an agent would, references as sys_ids."""
    row = {"short_description": title, "description": f"{title}: details",
           "impact": "2", "urgency": "2", "category": "network", "subcategory": "VPN",
           "caller_id": servicenow.user_sys_id("grace.okafor"),
           "assignment_group": servicenow.group_sys_id("Network")}
    row.update(values)
    return servicenow.insert("incident", row)


def jira_issue(jira: Any, title: str, **fields: Any) -> str:
    values = {"summary": title, "description": f"{title}: details",
              "customfield_10004": {"value": "Moderate / Limited"},
              "customfield_10005": {"value": "Medium"}}
    values.update(fields)
    return jira.create_issue(values)


def writes(server: Any) -> list[str]:
    """Write requests that are not searches (Jira's search POSTs read)."""
    return [f"{e.method} {e.path}" for e in server.log.entries
            if e.method in WRITE_METHODS and "/search" not in e.path]


def store_url(config: Path) -> str:
    """The state store the config names (SQLite beside it, or a test's PostgreSQL)."""
    return load_settings(config).state_url


def only_link(config: Path) -> Any:
    with StateStore(store_url(config), create=False) as store:
        (link,) = store.all_links()
        return link


def links(config: Path) -> list[Any]:
    with StateStore(store_url(config), create=False) as store:
        return store.all_links()


def store_of(config: Path) -> StateStore:
    return StateStore(store_url(config), create=False)


def sync(make_engine: Any, config: Path, **kw: Any) -> Any:
    return make_engine(config, **kw).run()


def jira_fields(jira: Any, key: str) -> dict[str, Any]:
    return jira.issue(key)["fields"]


def linked_pair(sandboxes: Any, sync_config: Any, make_engine: Any, title: str = "VPN down",
                **config: Any) -> tuple[Path, str, str]:
    """One ServiceNow incident synced to Jira: (config, sys_id, key)."""
    servicenow, _ = sandboxes
    sn = sn_incident(servicenow, title)
    path = sync_config(**config)
    first = sync(make_engine, path)
    assert first.created == 1 and first.failed == 0, first.failures
    return path, sn["sys_id"], only_link(path).id_on("jira")


def assert_quiet(make_engine: Any, config: Path, servicenow: Any, jira: Any,
                 runs: int = 2) -> None:
    """``runs`` more runs create, update, copy and fail nothing, and write to neither tool."""
    servicenow.log.clear()
    jira.log.clear()
    for _ in range(runs):
        again = sync(make_engine, config)
        assert (again.created, again.updated, again.comments, again.failed) == (0, 0, 0, 0), \
            again.failures
    assert writes(servicenow) == [] and writes(jira) == []

