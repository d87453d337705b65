"""Record histories through the real connectors: who changed which field, and when.

Contract: :meth:`Connector.history` returns, per record asked for, its creation
time and its field changes oldest first, each marked ``by_us`` when the
integration user (the connector's own sign-in) made it. On ServiceNow that is
``sys_audit`` (the sandbox audits incident updates as a stock instance does:
one row per changed field, user name, old and new value; inserts are not
audited; the table is read-only over HTTP); on Jira the issue changelog, its
author compared with the signed-in account (accountId on Cloud, user name on
Data Center), read whole (Cloud: the bulk changelog fetch's pages for all the issues
asked for at once, or the changelog resource's pages per issue on a site without it).
Unknown ids are absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from conftest import SANDBOX_PASSWORD, SANDBOX_USER

import connectors.jira as jira_connector
from connectors.base import RetriableError, SkippableError
from connectors.jira import JiraConnector
from connectors.retry import RetryPolicy
from connectors.sandbox.http import Request, Response
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.servicenow import ServiceNowSandbox
from connectors.servicenow import ServiceNowConnector

PERSON = "elif.yilmaz"


@pytest.fixture
def servicenow() -> Iterator[ServiceNowSandbox]:
    with ServiceNowSandbox(username=SANDBOX_USER, password=SANDBOX_PASSWORD) as sandbox:
        yield sandbox


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest) -> Iterator[JiraSandbox]:
    with JiraSandbox(mode=request.param, username=SANDBOX_USER,
                     password=SANDBOX_PASSWORD) as sandbox:
        yield sandbox


def test_servicenow_audits_each_changed_incident_field_with_its_user(
    servicenow: ServiceNowSandbox,
) -> None:
    row = servicenow.insert("incident", {"short_description": "VPN down", "impact": "2"})
    servicenow.update("incident", row["sys_id"], {"short_description": "VPN flaps",
                                                  "impact": "2"}, as_user=PERSON)
    servicenow.update("incident", row["sys_id"], {"short_description": "VPN flaps"})  # no-op

    answer = requests.get(
        f"{servicenow.url}/api/now/table/sys_audit",
        params={"sysparm_query": f"tablename=incident^documentkey={row['sys_id']}"},
        auth=(SANDBOX_USER, SANDBOX_PASSWORD), headers={"Accept": "application/json"},
        timeout=10)
    refused = requests.post(
        f"{servicenow.url}/api/now/table/sys_audit", json={"fieldname": "x"},
        auth=(SANDBOX_USER, SANDBOX_PASSWORD), timeout=10,
        headers={"Accept": "application/json", "Content-Type": "application/json"})

    (audit,) = answer.json()["result"]   # the insert is not audited, the no-op not saved
    assert {k: audit[k] for k in ("fieldname", "oldvalue", "newvalue", "user")} == {
        "fieldname": "short_description", "oldvalue": "VPN down", "newvalue": "VPN flaps",
        "user": PERSON}
    assert refused.status_code == 403


def test_servicenow_history_tells_the_integration_user_s_changes_from_a_person_s(
    servicenow: ServiceNowSandbox,
) -> None:
    row = servicenow.insert("incident", {"short_description": "Printer jammed"},
                            as_user=PERSON)
    servicenow.update("incident", row["sys_id"], {"impact": "1"}, as_user=PERSON)
    servicenow.update("incident", row["sys_id"], {"state": "2"})   # the integration user
    connector = ServiceNowConnector(instance_url=servicenow.url, username=SANDBOX_USER,
                                    password=SANDBOX_PASSWORD)
    connector.open()

    found = connector.history([row["sys_id"], "0" * 32])

    assert list(found) == [row["sys_id"]]
    history = found[row["sys_id"]]
    changes = {(e.field, e.by_us) for e in history.edits}
    assert {("impact", False), ("priority", False), ("state", True)} <= changes
    assert all(e.at >= history.created for e in history.edits)


def test_servicenow_history_refused_by_an_acl_fails_that_item_not_the_run(
    servicenow: ServiceNowSandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    row = servicenow.insert("incident", {"short_description": "Printer jammed"})
    serve = servicenow.handle

    def acl(request: Request) -> Response:
        if "/table/sys_audit" in request.path:
            return servicenow.error_response(403, "Operation Failed",
                                             "ACL Exception Read Failed")
        return serve(request)

    monkeypatch.setattr(servicenow, "handle", acl)
    connector = ServiceNowConnector(instance_url=servicenow.url, username=SANDBOX_USER,
                                    password=SANDBOX_PASSWORD)
    connector.open()

    with pytest.raises(SkippableError, match="cannot read sys_audit"):
        connector.history([row["sys_id"]])


def test_jira_history_tells_the_signed_in_account_s_changes_from_a_person_s(
    jira: JiraSandbox,
) -> None:
    key = jira.create_issue({"summary": "Wifi down"})
    jira.edit_issue(key, {"summary": "Wifi down on floor 2"},
                    as_user=f"{PERSON}@example.com")
    jira.transition_issue(key, "Work in progress")   # as the integration user
    connector = JiraConnector(url=jira.url, email=SANDBOX_USER, token=SANDBOX_PASSWORD,
                              project="OPS")
    connector.open()

    found = connector.history([key, "OPS-999"])

    assert list(found) == [key]
    assert [(e.field, e.by_us) for e in found[key].edits] == [
        ("summary", False), ("status", True)]


def test_jira_history_reads_a_long_changelog_whole(
    jira: JiraSandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cloud pages the bulk changelog fetch (100 a page here); Data Center embeds it all."""
    monkeypatch.setattr(jira_connector, "BULK_CHANGELOG_PAGE", 100)
    key = jira.create_issue({"summary": "edit 0"})
    for n in range(1, 131):
        jira.edit_issue(key, {"summary": f"edit {n}"})
    jira.edit_issue(key, {"summary": "by a person"}, as_user=f"{PERSON}@example.com")
    connector = JiraConnector(url=jira.url, email=SANDBOX_USER, token=SANDBOX_PASSWORD,
                              project="OPS")
    connector.open()

    jira.log.clear()

    edits = connector.history([key])[key].edits

    assert len(edits) == 131 and edits[-1].by_us is False
    pages = [e for e in jira.log.entries if e.path.endswith("/changelog/bulkfetch")]
    assert len(pages) == (2 if jira.mode == "cloud" else 0)
    assert [e for e in jira.log.entries if e.path.endswith(f"/{key}/changelog")] == []

def _edited(jira: JiraSandbox, count: int) -> list[str]:
    keys = []
    for n in range(count):
        key = jira.create_issue({"summary": f"Printer {n}"})
        jira.edit_issue(key, {"summary": f"Printer {n} jammed"},
                        as_user=f"{PERSON}@example.com")
        jira.transition_issue(key, "Work in progress")
        keys.append(key)
    return keys


@pytest.mark.parametrize("jira", ["cloud"], indirect=True)
def test_jira_cloud_reads_many_issues_histories_in_one_search_and_one_bulk_fetch(
    jira: JiraSandbox,
) -> None:
    """Two requests for a batch of issues instead of two per issue (an issue read and its
    changelog page), with the same histories as the per-issue reads give."""
    keys = _edited(jira, 6)
    connector = JiraConnector(url=jira.url, email=SANDBOX_USER, token=SANDBOX_PASSWORD,
                              project="OPS")
    connector.open()
    jira.log.clear()

    found = connector.history(keys)

    assert sorted(found) == sorted(keys)
    assert [f"{e.method} {e.path.rsplit('/', 2)[-2:]}" for e in jira.log.entries] == [
        "GET ['search', 'jql']", "POST ['changelog', 'bulkfetch']"]
    assert connector.history(["OPS-999", keys[0]]) == {keys[0]: found[keys[0]]}
    connector._bulk_changelog = False       # the per-issue reads, for comparison
    jira.log.clear()
    assert connector.history(keys) == found
    assert len(jira.log.entries) == 2 * len(keys)
    for key in keys:
        assert [(e.field, e.by_us) for e in found[key].edits] == [
            ("summary", False), ("status", True)]


@pytest.mark.parametrize("jira", ["cloud"], indirect=True)
def test_jira_history_falls_back_to_one_issue_at_a_time_on_a_site_without_the_bulk_fetch(
    jira: JiraSandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = _edited(jira, 3)
    serve = jira.handle
    asked: list[str] = []

    def older_site(request: Request) -> Response:
        if request.path.endswith("/changelog/bulkfetch"):
            asked.append(request.path)
            return Response(404, {"errorMessages": ["No such resource"], "errors": {}})
        return serve(request)

    monkeypatch.setattr(jira, "handle", older_site)
    connector = JiraConnector(url=jira.url, email=SANDBOX_USER, token=SANDBOX_PASSWORD,
                              project="OPS")
    connector.open()

    first = connector.history(keys)
    second = connector.history(keys)

    assert first == second and sorted(first) == sorted(keys)
    assert len(asked) == 1                  # learnt once per run, not asked again
    assert all([(e.field, e.by_us) for e in first[key].edits] == [
        ("summary", False), ("status", True)] for key in keys)


@pytest.mark.parametrize(("value", "expected"), [
    ("2021-01-17T12:34:00.000+0000", datetime(2021, 1, 17, 12, 34, tzinfo=UTC)),
    (1492070429, datetime(2017, 4, 13, 8, 0, 29, tzinfo=UTC)),        # the spec's example
    (1492070429123, datetime(2017, 4, 13, 8, 0, 29, 123000, tzinfo=UTC)),
])
def test_a_changelog_time_is_read_as_the_schema_or_the_example_gives_it(
    value: object, expected: datetime,
) -> None:
    assert jira_connector._changelog_time(value) == expected


@pytest.mark.parametrize("jira", ["cloud"], indirect=True)
@pytest.mark.parametrize("answer", [
    [{"issueId": "1"}],                                           # not an object
    {"issueChangeLogs": "none"},                                  # not a list
    {"issueChangeLogs": [], "nextPageToken": "same"},             # a token that never moves
])
def test_an_odd_bulk_changelog_answer_is_a_one_line_retriable_error(
    jira: JiraSandbox, monkeypatch: pytest.MonkeyPatch, answer: object,
) -> None:
    keys = _edited(jira, 1)
    serve = jira.handle

    def odd(request: Request) -> Response:
        if request.path.endswith("/changelog/bulkfetch"):
            return Response(200, answer)
        return serve(request)

    monkeypatch.setattr(jira, "handle", odd)
    connector = JiraConnector(url=jira.url, email=SANDBOX_USER, token=SANDBOX_PASSWORD,
                              project="OPS",
                              retry=RetryPolicy(max_attempts=1, sleep=lambda _: None))
    connector.open()

    with pytest.raises(RetriableError) as raised:
        connector.history(keys)
    assert "\n" not in str(raised.value)
