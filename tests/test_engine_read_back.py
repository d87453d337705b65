"""The settle step is the one read of what a create made: scenarios over both sandboxes.

Jira's bulk create answers ids and keys, no version; the connector used to read every
created issue's version right after its workflow steps, and the engine read the same
issues again in its settle step. The engine now asks for no version at create
(``NewRecord.version_wanted``) and its settle read (reconciled by id on Cloud) is the
one read: these scenarios show what that first read protected still holds, end to end
through the real connectors and the default mapping.
"""

from __future__ import annotations

from typing import Any

import pytest
from sync_helpers import assert_quiet, jira_fields, only_link, sn_incident, sync

import sync.applier as applier
from connectors.sandbox.http import Request, Response

PERSON = "elif.yilmaz@example.com"


def _resolved(servicenow: Any, title: str) -> dict[str, Any]:
    return sn_incident(servicenow, title, state="6", close_code="Solution provided",
                       close_notes="Restarted the gateway")


def test_an_issue_created_and_resolved_by_us_is_not_taken_for_a_person_s_edit(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """The version the link keeps is the one the issue has after its create and its
    "Resolve" step (read back once, by the settle step), so the next run sees no change
    and writes nothing: no echo of our own create."""
    servicenow, jira = sandboxes
    sn = _resolved(servicenow, "Gateway drops VPN sessions")
    config = sync_config()

    first = sync(make_engine, config)

    assert (first.created, first.failed) == (1, 0), first.failures
    link = only_link(config)
    key = link.id_on("jira")
    fields = jira_fields(jira, key)
    assert fields["status"]["name"] == "Resolved"
    assert link.version_on("jira") == fields["updated"]
    assert link.version_on("servicenow") == servicenow.get("incident",
                                                           sn["sys_id"])["sys_mod_count"]
    # After the bulk create, its steps: one read of the issue by key, the settle step's,
    # reconciled by id (Cloud), with every field the mapping reads.
    entries = jira.log.entries
    bulk = max(n for n, e in enumerate(entries) if e.path.endswith("/issue/bulk"))
    reads = [e for e in entries[bulk + 1:] if "/search" in e.path and "key in" in e.query]
    assert len(reads) == 1 and "fields=summary" in reads[0].query, reads
    assert f"reconcileIssues={jira.issue(key)['id']}" in reads[0].query

    assert_quiet(make_engine, config, servicenow, jira, runs=1)


def test_a_person_s_comment_on_a_new_issue_before_its_read_back_reaches_servicenow(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person comments on the new issue between its create and the settle step. The
    version the link keeps must never be one that already counts a comment nobody
    copied: the settle read sees the comment with the version, copies it in the same
    run, and the next run writes nothing."""
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "Badge reader at gate 2 offline")
    settle = applier.plan_settle

    def person_first(session: Any, store: Any, written: Any, problems: Any) -> Any:
        for pair in written:
            jira.add_comment(pair.ids["jira"], "Gate 3 is offline too", author_email=PERSON)
        return settle(session, store, written, problems)

    monkeypatch.setattr(applier, "plan_settle", person_first)
    config = sync_config()

    first = sync(make_engine, config)

    assert (first.created, first.comments, first.failed) == (1, 1, 0), first.failures
    journal = [row["value"] for row in servicenow.journal(sn["sys_id"])]
    assert len(journal) == 1 and journal[0].endswith("Gate 3 is offline too"), journal
    link = only_link(config)
    # The settle step's version comes from the read that saw the comment; the copy on
    # ServiceNow then moved that side on, so its version waits for the next read.
    monkeypatch.setattr(applier, "plan_settle", settle)
    assert_quiet(make_engine, config, servicenow, jira)
    assert len(servicenow.journal(sn["sys_id"])) == 1
    assert len(jira_fields(jira, link.id_on("jira"))["comment"]["comments"]) == 1


def test_a_failed_read_back_of_a_new_issue_leaves_it_to_the_next_run_without_echo(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no version read at create, a settle step whose Jira read fails leaves the
    link's versions unknown: the next run reads the pair again, finds nothing new and
    writes nothing (no echo), and keeps the versions it read."""
    servicenow, jira = sandboxes
    _resolved(servicenow, "Mail relay rejects internal senders")
    serve = jira.handle
    created = {"done": False}

    def reads_by_key_fail(request: Request) -> Response:
        # After the bulk create, only the settle step reads issues by key.
        if "/issue/bulk" in request.path:
            created["done"] = True
        elif created["done"] and "key in" in (request.arg("jql") or ""):
            return jira.error_response(500, "Internal Server Error")
        return serve(request)

    config = sync_config()
    monkeypatch.setattr(jira, "handle", reads_by_key_fail)
    first = sync(make_engine, config)
    monkeypatch.setattr(jira, "handle", serve)

    assert (first.created, first.failed) == (1, 0), first.failures
    link = only_link(config)
    assert link.version_on("jira") is None and link.version_on("servicenow") is None

    assert_quiet(make_engine, config, servicenow, jira, runs=1)
    link = only_link(config)
    assert link.version_on("jira") == jira_fields(jira, link.id_on("jira"))["updated"]


def test_an_original_only_back_linked_is_read_back_without_its_journal(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    """The settle step reads the original's row after its back-link; the back-link was
    its only save since the pull (sys_mod_count + 1, no journal entry), so the comments
    the pull read are still all it has: no second journal read, and nothing lost."""
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "Scanner on floor 4 offline")
    servicenow.update("incident", sn["sys_id"], {"comments": "Still offline after reboot"},
                      as_user="bob.jones")
    config = sync_config()

    first = sync(make_engine, config)

    assert (first.created, first.comments, first.failed) == (1, 1, 0), first.failures
    # The pull's journal read only; the settle step's row read found the back-link's
    # version and took the comments read by the pull.
    assert servicenow.log.count("GET", "/api/now/table/sys_journal_field") == 1
    key = only_link(config).id_on("jira")
    assert len(jira_fields(jira, key)["comment"]["comments"]) == 1
    assert_quiet(make_engine, config, servicenow, jira)


def test_a_person_s_comment_racing_the_back_link_is_copied_in_the_same_run(
    sandboxes: Any, sync_config: Any, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person comments on the original between the back-link's version check and its
    Batch API write (the Table API has no conditional write). The write's answer shows
    two saves, so the settle step reads the journal, sees the comment with the version
    it commits, and copies it in the same run: never a version that counts a comment
    nobody copied."""
    servicenow, jira = sandboxes
    sn = sn_incident(servicenow, "Label printer jams")
    serve = servicenow.handle

    def person_first(request: Request) -> Response:
        if request.path.endswith("/batch") and not servicenow.journal(sn["sys_id"]):
            servicenow.update("incident", sn["sys_id"], {"comments": "Jammed again at 9"},
                              as_user="bob.jones")
        return serve(request)

    monkeypatch.setattr(servicenow, "handle", person_first)
    config = sync_config()

    first = sync(make_engine, config)

    monkeypatch.setattr(servicenow, "handle", serve)
    assert (first.created, first.comments, first.failed) == (1, 1, 0), first.failures
    key = only_link(config).id_on("jira")
    (copied,) = jira_fields(jira, key)["comment"]["comments"]
    assert "Jammed again at 9" in str(copied["body"])
    assert_quiet(make_engine, config, servicenow, jira)
