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
