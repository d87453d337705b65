"""Scope and closure: what the ServiceNow scope query means for incidents that finish."""

from __future__ import annotations

from typing import Any

from sync.settings import load_settings
from sync.state import StateStore

# On SQLite and Jira Cloud: what is tested is the ServiceNow scope query. The store on
# PostgreSQL is test_state*'s; closing through the Data Center workflow is
# test_connector_jira's (test_closing_learns_the_workflow_..., both flavours).


def sn_incident(servicenow: Any, title: str, **values: Any) -> dict[str, Any]:
    row = {"short_description": title, "description": f"{title}: details",
           "impact": "2", "urgency": "2", "category": "network", "subcategory": "VPN"}
    row.update(values)
    return servicenow.insert("incident", row)


def jira_status(jira: Any, key: str) -> str:
    return str(jira.issue(key)["fields"]["status"]["name"])


def the_link(config: Any) -> Any:
    with StateStore(load_settings(config).state_url, create=False) as store:
        (link,) = store.all_links()
        return link


def test_closing_a_linked_incident_reaches_jira_when_the_scope_follows_linked_records(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    row = sn_incident(servicenow, "VPN drops")
    config = sync_config(query="active=true^ORcorrelation_idISNOTEMPTY")
    assert make_engine(config).run().failed == 0
    link = the_link(config)
    servicenow.update("incident", row["sys_id"], {
        "state": "6", "close_code": "Solution provided", "close_notes": "Replaced the router"})
    summary = make_engine(config).run()
    assert summary.failed == 0, summary.failures
    assert jira_status(jira, link.id_on("jira")) == "Resolved"
    servicenow.update("incident", row["sys_id"], {"state": "7"})
    summary = make_engine(config).run()
    assert summary.failed == 0, summary.failures
    assert jira_status(jira, link.id_on("jira")) == "Closed"


def test_a_new_incident_created_resolved_reaches_jira_resolved(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    sn_incident(servicenow, "Printer jam", state="6", close_code="Solution provided",
                close_notes="Cleared the jam")
    config = sync_config(query="active=true")
    summary = make_engine(config).run()
    assert summary.failed == 0, summary.failures
    assert jira_status(jira, the_link(config).id_on("jira")) == "Resolved"


def test_closing_with_the_default_scope_leaves_jira_as_it_was(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    servicenow, jira = sandboxes
    row = sn_incident(servicenow, "VPN drops", state="6", close_code="Solution provided",
                      close_notes="Done")
    config = sync_config(query="active=true")
    assert make_engine(config).run().failed == 0
    link = the_link(config)
    servicenow.update("incident", row["sys_id"], {"state": "7"})
    summary = make_engine(config).run()
    assert summary.failed == 0 and summary.updated == 0
    assert jira_status(jira, link.id_on("jira")) == "Resolved"
    assert servicenow.get("incident", row["sys_id"])["state"] == "7"
