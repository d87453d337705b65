"""Helpers shared by the engine and CLI scenario tests (sandboxes, stores, counts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.base import group_ref, user_ref
from connectors.sandbox.http import WRITE_METHODS
from sync.settings import load_settings
from sync.state import StateStore

ALICE = "alice.smith@example.com"
BOB = "bob.jones@example.com"
GRACE = "grace.okafor@example.com"


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

