"""The settle step tells the tool's reshaping of our write from a person's edit.

The settle step reads back what a run wrote and, for the fields it wrote, takes what
the tool holds as that side's snapshot: a tool may reshape a write (ServiceNow cuts a
title at 160 characters) and that reshaping must never travel back over the original.
A person may also edit one of those fields in the seconds between the write and the
read-back. That value was typed by someone: it must travel like any other edit, and
never be absorbed as if the tool had made it of our write.
"""

from __future__ import annotations

from typing import Any

import pytest
from sync_helpers import (
    assert_quiet,
    jira_fields,
    jira_issue,
    links,
    only_link,
    sn_incident,
    sync,
)

import sync.applier as applier

PERSON_JIRA = "elif.yilmaz@example.com"


def _person_before_settle(monkeypatch: pytest.MonkeyPatch, edit: Any) -> Any:
    """Run ``edit(pair)`` for every written pair right before the settle step reads;
    returns the settle step to put back."""
    settle = applier.plan_settle

    def person_first(session: Any, store: Any, written: Any, problems: Any) -> Any:
        for pair in written:
            edit(pair)
        return settle(session, store, written, problems)

    monkeypatch.setattr(applier, "plan_settle", person_first)
    return settle


@pytest.mark.parametrize("origin", ["servicenow", "jira"])
def test_a_person_s_title_edit_on_a_new_copy_before_its_read_back_reaches_the_original(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: pytest.MonkeyPatch,
    origin: str,
) -> None:
    """The run creates the copy of ``origin``'s record on the other tool; a person
    retitles the copy before the settle step reads it back. Their title reaches the
    original (in this run's settle step or the next run), and then nothing moves."""
    servicenow, jira = sandboxes
    edited = "Printers on floors 3 and 4 offline"

    def person(pair: Any) -> None:
        if origin == "servicenow":
            jira.edit_issue(pair.ids["jira"], {"summary": edited}, as_user=PERSON_JIRA)
        else:
            servicenow.update("incident", pair.ids["servicenow"],
                              {"short_description": edited}, as_user="bob.jones")

    if origin == "servicenow":
        sn_incident(servicenow, "Printer on floor 3 offline")
    else:
        jira_issue(jira, "Printer on floor 3 offline")
    settle = _person_before_settle(monkeypatch, person)
    config = sync_config()

    first = sync(make_engine, config)
    monkeypatch.setattr(applier, "plan_settle", settle)

    assert (first.created, first.failed) == (1, 0), first.failures
    sync(make_engine, config)
    link = only_link(config)
    assert jira_fields(jira, link.id_on("jira"))["summary"] == edited
    row = servicenow.get("incident", link.id_on("servicenow"))
    assert row["short_description"] == edited
    assert_quiet(make_engine, config, servicenow, jira)


def test_a_title_servicenow_cut_is_still_absorbed_not_sent_back(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """The tool's own reshaping (a title cut at 160 characters) stays absorbed: the
    original keeps its full title, and the check that tells it from a person's edit
    costs one history read for that record only."""
    servicenow, jira = sandboxes
    title = "Gateway " + "x" * 200
    key = jira_issue(jira, title)
    config = sync_config()

    untouched = jira_issue(jira, "Scanner offline")   # reads back as written
    servicenow.log.clear()
    first = sync(make_engine, config)

    assert (first.created, first.failed) == (2, 0), first.failures
    assert servicenow.log.count("GET", "/api/now/table/sys_audit") == 1
    assert jira_fields(jira, key)["summary"] == title
    assert jira_fields(jira, untouched)["summary"] == "Scanner offline"
    (sn_id,) = [link.id_on("servicenow") for link in links(config)
                if link.id_on("jira") == key]
    assert servicenow.get("incident", sn_id)["short_description"] == title[:160]
    assert_quiet(make_engine, config, servicenow, jira)
    assert jira_fields(jira, key)["summary"] == title


def test_a_batch_of_cut_titles_reads_servicenow_s_history_once_for_all_of_them(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """Many records whose titles ServiceNow cuts (monitoring alerts are often long): the
    settle step asks for their histories in one call, one audit query for the batch,
    not one request per record in series; each cut is still absorbed."""
    servicenow, jira = sandboxes
    titles = [f"Alert {n}: " + "disk latency above threshold " * 8 for n in range(4)]
    keys = [jira_issue(jira, title) for title in titles]
    jira_issue(jira, "Scanner offline")               # reads back as written
    config = sync_config()
    servicenow.log.clear()

    first = sync(make_engine, config)

    assert (first.created, first.failed) == (5, 0), first.failures
    assert servicenow.log.count("GET", "/api/now/table/sys_audit") == 1
    by_key = {link.id_on("jira"): link.id_on("servicenow") for link in links(config)}
    for key, title in zip(keys, titles, strict=True):
        assert jira_fields(jira, key)["summary"] == title
        assert servicenow.get("incident", by_key[key])["short_description"] == title[:160]
    assert_quiet(make_engine, config, servicenow, jira)


def test_a_batch_of_values_jira_dropped_reads_jira_s_histories_in_one_call(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several copies whose assignee Jira left empty (a person it does not know): their
    issues' histories are asked for together, once for the batch, and the original
    keeps its assignee as when each was read alone."""
    from connectors.jira import JiraConnector

    servicenow, jira = sandboxes
    contractor = servicenow.insert("sys_user", {"user_name": "zoe.extern", "name": "Zoe Extern",
                                                "email": "zoe.extern@contractor.example"})
    rows = [sn_incident(servicenow, f"Laptop swap {n}", assigned_to=contractor["sys_id"])
            for n in range(3)]
    asked: list[list[str]] = []
    history = JiraConnector.history

    def recorded(self: JiraConnector, ids: Any) -> Any:
        asked.append(list(ids))
        return history(self, ids)

    monkeypatch.setattr(JiraConnector, "history", recorded)
    config = sync_config()

    first = sync(make_engine, config)

    assert (first.created, first.failed) == (3, 0), first.failures
    keys = sorted(link.id_on("jira") for link in links(config))
    assert [sorted(call) for call in asked] == [keys]
    for key in keys:
        assert jira_fields(jira, key)["assignee"] is None       # unknown in Jira
    for row in rows:
        assert servicenow.get("incident", row["sys_id"])["assigned_to"] == contractor["sys_id"]
    assert_quiet(make_engine, config, servicenow, jira)


def test_cut_titles_whose_history_is_out_of_reach_stay_absorbed_with_a_warning(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The batch's history read refused (an integration user without sys_audit
    access): every record in it is settled as before the check existed, its cut
    title taken as the tool's, with a warning each, and the run does not fail."""
    servicenow, jira = sandboxes
    titles = [f"Alert {n}: " + "queue depth above threshold " * 8 for n in range(2)]
    keys = [jira_issue(jira, title) for title in titles]
    serve = servicenow.handle
    refused: list[str] = []

    def acl(request: Any) -> Any:
        if "/table/sys_audit" in request.path:
            refused.append(request.path)
            return servicenow.error_response(403, "Operation Failed",
                                             "ACL Exception Read Failed")
        return serve(request)

    monkeypatch.setattr(servicenow, "handle", acl)
    config = sync_config()

    with caplog.at_level("WARNING", logger="sync.planner"):
        first = sync(make_engine, config)

    assert (first.created, first.failed) == (2, 0), first.failures
    unread = [r for r in caplog.records if "history of" in r.getMessage()]
    assert len(unread) == 2, [r.getMessage() for r in caplog.records]
    assert len(refused) == 1            # asked once for the batch, not once per record
    for key, title in zip(keys, titles, strict=True):
        assert jira_fields(jira, key)["summary"] == title      # never cut back
    assert_quiet(make_engine, config, servicenow, jira)
