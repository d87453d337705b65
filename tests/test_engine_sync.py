"""Engine scenarios over both sandboxes, through the real connectors and the default mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.sandbox.http import WRITE_METHODS
from connectors.sandbox.jira_site import account_id_for
from sync.state import StateStore

ALICE = "alice.smith@example.com"
BOB = "bob.jones@example.com"
GRACE = "grace.okafor@example.com"


# --------------------------------------------------------------------------- helpers


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


def only_link(config: Path) -> Any:
    with StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False) as store:
        (link,) = store.all_links()
        return link


def links(config: Path) -> list[Any]:
    with StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False) as store:
        return store.all_links()


def store_of(config: Path) -> StateStore:
    return StateStore(f"sqlite:///{config.parent / 'state.db'}", create=False)


def sync(make_engine: Any, config: Path, **kw: Any) -> Any:
    return make_engine(config, **kw).run()


def jira_fields(jira: Any, key: str) -> dict[str, Any]:
    return jira.issue(key)["fields"]


# --------------------------------------------------------------------------- initial sync


def test_initial_sync_creates_each_side_s_incidents_on_the_other(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "VPN drops every 5 minutes", impact="1", urgency="1")
    key = jira_issue(jira, "Printer on floor 3 jammed",
                     assignee={"accountId": _account(jira, ALICE)})
    config = sync_config()

    summary = sync(make_engine, config)

    assert (summary.created, summary.failed, summary.orphaned) == (2, 0, 0), summary.failures
    assert len(servicenow.rows("incident")) == 2
    assert len(jira.issue_keys()) == 2
    linked = {link.servicenow_id: link.jira_key for link in links(config)}
    assert sn["sys_id"] in linked and key in linked.values()
    copy = jira_fields(jira, linked[sn["sys_id"]])
    assert copy["summary"] == "VPN drops every 5 minutes"
    assert copy["priority"]["name"] == "Highest"
    assert f"snow-{sn['sys_id']}" in copy["labels"]
    # Both carry each other's id.
    assert servicenow.get("incident", sn["sys_id"])["correlation_id"] == linked[sn["sys_id"]]
    (back,) = [r for r in servicenow.rows("incident") if r["sys_id"] != sn["sys_id"]]
    assert back["short_description"] == "Printer on floor 3 jammed"
    assert back["correlation_id"] == key
    assert back["assigned_to"] == servicenow.user_sys_id("alice.smith")


def _account(jira: Any, email: str) -> str:
    return account_id_for(email)


def test_second_run_right_after_writes_nothing_on_either_side(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    sn_incident(servicenow, "Outlook crashes on attachments")
    sn_incident(servicenow, "Wifi down on floor 2", impact="1", urgency="2")
    key = jira_issue(jira, "SQL job failing nightly")
    jira.add_comment(key, "Checked the logs", internal=True)
    config = sync_config()
    first = sync(make_engine, config)
    assert first.failed == 0, first.failures
    servicenow.log.clear()
    jira.log.clear()

    second = sync(make_engine, config)

    assert (second.created, second.updated, second.comments, second.failed) == (0, 0, 0, 0)
    assert writes(servicenow) == [] and writes(jira) == []
