"""The unmodified ``jira`` 3.10.5 library against the Jira sandbox, Cloud and Data Center.

Each test runs in both modes: what the connector does through the library must
work against the sandbox exactly as against the real deployments.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from jira import JIRA, JIRAError

from connectors.sandbox.http import Fault, FaultPlan
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.jira_site import account_id_for


@dataclass
class Site:
    sandbox: JiraSandbox
    client: JIRA
    login: str

    @property
    def cloud(self) -> bool:
        return self.sandbox.mode == "cloud"

    def user_ref(self, email: str) -> dict[str, str]:
        if self.cloud:
            return {"accountId": account_id_for(email)}
        return {"name": email.split("@")[0]}


def connect(sandbox: JiraSandbox, login: str | None = None) -> JIRA:
    login = login or ("admin@example.com" if sandbox.mode == "cloud" else "admin")
    # max_retries=0: the connector owns the one retry policy (connectors/retry.py).
    return JIRA(sandbox.url, basic_auth=(login, "sandbox"), max_retries=0,
                get_server_info=True)


@pytest.fixture(params=["cloud", "datacenter"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    with JiraSandbox(mode=request.param, seed_incidents=6) as sandbox:
        client = connect(sandbox)
        yield Site(sandbox, client, "admin@example.com" if request.param == "cloud"
                   else "admin")


@pytest.fixture(params=["cloud", "datacenter"])
def extended_site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """A site an admin prepared for the jsm-extended profile."""
    with JiraSandbox(mode=request.param, seed_incidents=2, fields="extended") as sandbox:
        client = connect(sandbox)
        yield Site(sandbox, client, "admin@example.com" if request.param == "cloud"
                   else "admin")
        client.close()


def new_issue(site: Site, **fields: object):
    base: dict[str, object] = {"project": "OPS", "issuetype": {"name": "Incident"},
                               "summary": "Mail server unreachable"}
    base.update(fields)
    return site.client.create_issue(fields=base)


def test_server_info_makes_the_library_pick_the_deployment(site: Site) -> None:
    info = site.client.server_info()
    assert site.client._is_cloud is site.cloud
    assert info["deploymentType"] == ("Cloud" if site.cloud else "Server")
    assert info["versionNumbers"] == ([1001, 0, 0] if site.cloud else [9, 12, 0])
    assert site.client.myself()["emailAddress"] == "admin@example.com"


def test_search_with_max_results_zero_fetches_every_page(site: Site) -> None:
    for number in range(124):
        site.sandbox.create_issue({"summary": f"Batch incident {number}"})
    site.sandbox.log.clear()
    issues = site.client.search_issues("project = OPS ORDER BY key ASC", maxResults=0,
                                       fields=["summary", "updated"])
    keys = [issue.key for issue in issues]
    assert len(keys) == 130 and len(set(keys)) == 130
    assert keys[:2] == ["OPS-1", "OPS-2"]
    search_path = "/rest/api/2/search/jql" if site.cloud else "/rest/api/2/search"
    assert site.sandbox.log.count("GET", "re:" + search_path + "$") == 2
    assert issues[-1].fields.summary == "Batch incident 123"


def test_search_one_page_then_continue(site: Site) -> None:
    first = site.client.search_issues("project = OPS ORDER BY key ASC", maxResults=4)
    assert [i.key for i in first] == ["OPS-1", "OPS-2", "OPS-3", "OPS-4"]
    if site.cloud:
        token = first.nextPageToken
        assert token
        rest = site.client.enhanced_search_issues("project = OPS ORDER BY key ASC",
                                                  nextPageToken=token, maxResults=4)
        assert [i.key for i in rest] == ["OPS-5", "OPS-6"]
        assert rest.nextPageToken is None
    else:
        assert first.total == 6
        rest = site.client.search_issues("project = OPS ORDER BY key ASC", startAt=4,
                                         maxResults=4)
        assert [i.key for i in rest] == ["OPS-5", "OPS-6"]


def test_search_with_post_and_explicit_nulls(site: Site) -> None:
    issues = site.client.search_issues("project = OPS AND status = Open", use_post=True,
                                       fields=["summary", "status"], maxResults=50)
    assert issues and all(i.fields.status.name == "Open" for i in issues)


def test_create_issue_with_every_field_the_default_profile_maps(site: Site) -> None:
    issue = new_issue(
        site, description="Users in Lyon cannot send mail.", priority={"name": "High"},
        labels=["snow-abc123", "email", "category-software", "subcategory-Email"],
        customfield_10004={"value": "Significant / Large"},
        customfield_10005={"value": "High"},
        assignee=site.user_ref("bob.jones@example.com"),
        reporter=site.user_ref("grace.okafor@example.com"),
    )
    fields = site.client.issue(issue.key).fields
    assert sorted(fields.labels) == ["category-software", "email", "snow-abc123",
                                     "subcategory-Email"]
    assert fields.components == []
    assert fields.customfield_10005.value == "High"
    assert fields.assignee.emailAddress == "bob.jones@example.com"


def test_create_issue_with_every_mapped_field(extended_site: Site) -> None:
    site = extended_site
    issue = new_issue(
        site, description="Users in Lyon cannot send mail.\nSince 09:00.",
        priority={"name": "High"}, labels=["snow-abc123", "email"],
        components=[{"name": "Software"}],
        customfield_10004={"value": "Significant / Large"},
        customfield_10005={"value": "High"}, customfield_10006="Application Support",
        customfield_10007="Email", customfield_10100="abc123",
        assignee=site.user_ref("bob.jones@example.com"),
        reporter=site.user_ref("grace.okafor@example.com"),
    )
    assert issue.key.startswith("OPS-")
    fields = site.client.issue(issue.key).fields
    assert fields.status.name == "Open"
    assert fields.description == "Users in Lyon cannot send mail.\nSince 09:00."
    assert fields.priority.name == "High"
    assert sorted(fields.labels) == ["email", "snow-abc123"]
    assert [c.name for c in fields.components] == ["Software"]
    assert fields.customfield_10004.value == "Significant / Large"
    assert fields.customfield_10100 == "abc123"
    assert fields.assignee.emailAddress == "bob.jones@example.com"
    assert fields.reporter.displayName == "Grace Okafor"
    assert fields.creator.emailAddress == "admin@example.com"


def test_create_issue_with_unknown_option_is_rejected(site: Site) -> None:
    with pytest.raises(JIRAError) as caught:
        new_issue(site, customfield_10005={"value": "Whenever"})
    assert caught.value.status_code == 400
    assert "Option value 'Whenever' is not valid" in caught.value.text


def test_create_issues_reports_partial_failure_by_position(site: Site) -> None:
    results = site.client.create_issues([
        {"project": "OPS", "issuetype": {"name": "Incident"}, "summary": "Disk full"},
        {"project": "OPS", "issuetype": {"name": "Incident"}, "summary": "x" * 256},
        {"project": "OPS", "issuetype": {"name": "Incident"}, "summary": "Fan noise"},
    ])
    assert [r["status"] for r in results] == ["Success", "Error", "Success"]
    assert results[1]["error"] == {"summary": "Summary must be less than 255 characters."}
    assert results[2]["issue"].fields.summary == "Fan noise"


def test_create_issues_when_all_fail_returns_every_error(site: Site) -> None:
    results = site.client.create_issues([
        {"project": "OPS", "issuetype": {"name": "Incident"}, "summary": "ok",
         "priority": {"name": "Urgent!!"}},
    ])
    assert results[0]["status"] == "Error"
    assert "priority" in results[0]["error"]
    assert site.sandbox.log.count("POST", "/rest/api/2/issue/bulk", status=400) == 1


def test_issue_update_writes_then_re_reads_self(site: Site) -> None:
    issue = new_issue(site)
    site.sandbox.log.clear()
    issue.update(fields={"summary": "Mail server back", "labels": ["snow-1"]}, notify=False)
    assert issue.fields.summary == "Mail server back"
    assert issue.fields.labels == ["snow-1"]
    assert site.sandbox.log.count("PUT", f"/rest/api/2/issue/{issue.id}") == 1
    assert site.sandbox.log.count("GET", f"/rest/api/2/issue/{issue.id}") == 1
    put = next(e for e in site.sandbox.log.entries if e.method == "PUT")
    assert "notifyUsers=false" in put.query


def test_transitions_follow_the_workflow(site: Site) -> None:
    issue = new_issue(site)
    names = {t["name"]: t["id"] for t in site.client.transitions(issue)}
    assert names == {"Start work": "11", "To Pending": "21", "To Canceled": "31"}
    with pytest.raises(JIRAError) as caught:
        site.client.transition_issue(issue, "51")
    assert caught.value.status_code == 400
    assert "Transition id '51' is not valid for this issue." in caught.value.text
    site.client.transition_issue(issue, "Start work")
    site.client.transition_issue(issue, "Resolve", fields={"resolution": {"name": "Fixed"}},
                                 comment="Restarted the MTA.")
    fields = site.client.issue(issue.key).fields
    assert fields.status.name == "Resolved"
    assert fields.status.statusCategory.key == "done"
    assert fields.resolution.name == "Fixed"
    assert fields.resolutiondate is not None
    assert fields.comment.comments[-1].body == "Restarted the MTA."
    site.client.transition_issue(issue, "Reopen")
    fields = site.client.issue(issue.key).fields
    assert fields.resolution is None and fields.resolutiondate is None


def test_internal_comment_is_internal_for_jsm(site: Site) -> None:
    issue = new_issue(site)
    internal = site.client.add_comment(issue, "Escalating to the DBA team.", is_internal=True)
    public = site.client.add_comment(issue, "We are looking into it.")
    assert internal.raw["jsdPublic"] is False and public.raw["jsdPublic"] is True
    response = site.client._session.get(
        f"{site.sandbox.url}/rest/servicedeskapi/request/{issue.key}/comment",
        headers={"X-ExperimentalApi": "opt-in"})
    values = {v["id"]: v["public"] for v in response.json()["values"]}
    assert values == {internal.id: False, public.id: True}
    comments = site.client.comments(issue, expand="properties")
    assert [c.body for c in comments] == ["Escalating to the DBA team.",
                                          "We are looking into it."]
    assert comments[0].raw["properties"] == [
        {"key": "sd.public.comment", "value": {"internal": True}}]


def test_issue_property_created_then_updated(site: Site) -> None:
    issue = new_issue(site)
    first = site.client.add_issue_property(issue.key, "snow.sync", {"sys_id": "abc"})
    second = site.client.add_issue_property(issue.key, "snow.sync", {"sys_id": "def"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert [p.key for p in site.client.issue_properties(issue.key)] == ["snow.sync"]
    assert site.client.issue_property(issue.key, "snow.sync").value.sys_id == "def"


def test_remote_links_upsert_by_global_id(site: Site) -> None:
    issue = new_issue(site)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # listApplicationlinks must answer, not warn
        first = site.client.add_remote_link(
            issue.key, {"url": "https://sn.example/INC1", "title": "INC0010001",
                        "summary": "ServiceNow incident"},
            globalId="system=sn&id=abc", application={"type": "com.servicenow",
                                                      "name": "ServiceNow"},
            relationship="mirrored by")
        again = site.client.add_remote_link(
            issue.key, {"url": "https://sn.example/INC1", "title": "INC0010001 (moved)"},
            globalId="system=sn&id=abc")
    simple = site.client.add_simple_link(issue.key, {"url": "https://wiki", "title": "Runbook"})
    assert again.id == first.id != simple.id
    links = site.client.remote_links(issue.key)
    assert len(links) == 2
    upserted = next(link for link in links if link.id == first.id)
    assert upserted.object.title == "INC0010001 (moved)"
    assert not hasattr(upserted, "relationship")  # omitted on update: nulled
    assert not hasattr(upserted.object, "summary")


def test_user_search_and_lookup(site: Site) -> None:
    if site.cloud:
        found = site.client.search_users(query="alice.smith@example.com")
        assert [u.accountId for u in found] == [account_id_for("alice.smith@example.com")]
        user = site.client.user(found[0].accountId)
    else:
        found = site.client.search_users(user="alice")
        assert [u.name for u in found] == ["alice.smith"]
        assert found[0].key.startswith("JIRAUSER1")
        user = site.client.user("alice.smith")
    assert user.emailAddress == "alice.smith@example.com"
    assignable = site.client.search_assignable_users_for_issues(
        query="dana" if site.cloud else None, username=None if site.cloud else "dana",
        project="OPS")
    assert [u.displayName for u in assignable] == ["Dana Kowalski"]


def test_assign_issue_resolves_the_user(site: Site) -> None:
    issue = new_issue(site)
    site.client.assign_issue(issue.key, "chen.wei@example.com" if site.cloud else "chen.wei")
    assert site.client.issue(issue.key).fields.assignee.displayName == "Chen Wei"


def test_changelog_records_field_and_status_changes(site: Site) -> None:
    issue = new_issue(site, priority={"name": "Low"})
    issue.update(fields={"priority": {"name": "Highest"}, "customfield_10004":
                         {"value": "Minor / Localized"},
                         "assignee": site.user_ref("bob.jones@example.com")})
    site.client.transition_issue(issue, "Start work")
    histories = site.client.issue(issue.key, expand="changelog").changelog.histories
    # Jira leaves out absent from/to strings, so read them with a default.
    changed = [(item.field, getattr(item, "fromString", None), getattr(item, "toString", None))
               for history in histories for item in history.items]
    assert ("priority", "Low", "Highest") in changed
    assert ("Impact", None, "Minor / Localized") in changed
    assert ("assignee", None, "Bob Jones") in changed
    assert ("status", "Open", "Work in progress") in changed
    page = site.client._session.get(
        f"{site.sandbox.url}/rest/api/2/issue/{issue.key}/changelog").json()
    assert page["total"] == 2 and page["isLast"] is True
    assert page["values"][-1]["items"][0]["field"] == "status"


def test_delete_issue_then_it_is_gone(site: Site) -> None:
    issue = new_issue(site)
    issue.delete()
    with pytest.raises(JIRAError) as caught:
        site.client.issue(issue.key)
    assert caught.value.status_code == 404
    assert "Issue does not exist" in caught.value.text


def test_wrong_password_is_refused(site: Site) -> None:
    with pytest.raises(JIRAError) as caught:
        JIRA(site.sandbox.url, basic_auth=(site.login, "wrong"), max_retries=0,
             get_server_info=False).myself()
    assert caught.value.status_code == 401


def test_rate_limit_reaches_the_library_with_retry_after(site: Site) -> None:
    site.sandbox.faults = FaultPlan(script=[Fault("429", retry_after=0)])
    with pytest.raises(JIRAError) as caught:
        site.client.issue("OPS-1")
    response = caught.value.response
    assert caught.value.status_code == 429
    assert response.headers["Retry-After"] == "0"
    assert response.json() == {"errorMessages": ["Rate limit exceeded."], "errors": {}}
    assert site.client.issue("OPS-1").key == "OPS-1"  # the script is used up


def test_unavailable_and_dropped_connections_reach_the_library(site: Site) -> None:
    site.sandbox.faults = FaultPlan(script=[Fault("503", retry_after=1), Fault("drop")])
    with pytest.raises(JIRAError) as caught:
        site.client.issue("OPS-1")
    assert caught.value.status_code == 503
    assert caught.value.response.headers["Retry-After"] == "1"
    with pytest.raises(requests.exceptions.ConnectionError):
        site.client.issue("OPS-1")
    assert site.sandbox.log.count(status=0) == 1


def test_reference_lookups_the_connector_makes(site: Site) -> None:
    client = site.client
    fields = {f["name"]: f for f in client.fields()}
    assert fields["Pending reason"]["id"] == "customfield_10016"
    assert "ServiceNow ID" not in fields  # only an admin creates a marker field
    assert fields["Impact"]["clauseNames"] == ["cf[10004]", "Impact"]
    assert [p.name for p in client.priorities()] == ["Highest", "High", "Medium", "Low",
                                                     "Lowest"]
    assert "Known Error" in [r.name for r in client.resolutions()]
    project = client.project("OPS")
    assert (project.id, project.key) == ("10000", "OPS")
    assert [d.id for d in client.service_desks()] == ["1"]
    if site.cloud:
        assert client.approximate_issue_count("project = OPS") == 6
    else:
        assert [t.name for t in client.project_issue_types("OPS")] == ["Incident", "Task"]
        meta = {f.fieldId: f for f in client.project_issue_fields("OPS", "10001")}
        assert meta["summary"].required is True


def test_comment_update_changes_body_and_updated(site: Site) -> None:
    issue = new_issue(site)
    comment = site.client.add_comment(issue, "first words")
    comment.update(body="better words")
    again = site.client.comment(issue.key, comment.id)
    assert again.body == "better words"
    assert again.jsdPublic is True


def test_personal_access_token_works_on_data_center_only(site: Site) -> None:
    client = JIRA(site.sandbox.url, token_auth="sandbox", max_retries=0,
                  get_server_info=False)
    if site.cloud:
        with pytest.raises(JIRAError) as caught:
            client.myself()
        assert caught.value.status_code == 401
    else:
        assert client.myself()["name"] == "admin"
