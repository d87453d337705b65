"""The Jira sandbox over plain HTTP: the vendor rules a connector can trip over.

ADF on v3, enhanced search (tokens, bounded JQL, default fields), the legacy
search (410 on Cloud, startAt/total on DC), validation errors in Jira's
ErrorCollection format, auth, rate-limit headers, JSM comments, properties and
remote links, and the in-process helpers other parts' tests use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from connectors.sandbox.http import Fault, FaultPlan
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.jira_site import account_id_for
from connectors.sandbox.jira_store import JiraRejected
from connectors.sandbox.seed import seed_incidents

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
DOC = {"type": "doc", "version": 1, "content": [
    {"type": "paragraph", "content": [{"type": "text", "text": "Disk "},
                                      {"type": "text", "text": "full", "marks": [
                                          {"type": "strong"}]}]}]}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Api:
    """A requests session bound to one sandbox, speaking JSON."""

    def __init__(self, sandbox: JiraSandbox, login: str, version: str = "2") -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.auth = (login, "sandbox")
        self.version = version

    def url(self, path: str) -> str:
        if path.startswith("/"):
            return self.sandbox.url + path
        return f"{self.sandbox.url}/rest/api/{self.version}/{path}"

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.url(path), params=params)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.url(path), json=body)

    def put(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.session.put(self.url(path), json=body, params=params)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cloud(clock: Clock) -> Iterator[JiraSandbox]:
    with JiraSandbox(mode="cloud", seed_incidents=8, clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def dc(clock: Clock) -> Iterator[JiraSandbox]:
    with JiraSandbox(mode="datacenter", seed_incidents=8, clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def extended(clock: Clock) -> Iterator[JiraSandbox]:
    """A Cloud site an admin prepared for the jsm-extended profile."""
    with JiraSandbox(mode="cloud", seed_incidents=8, clock=clock,
                     fields="extended") as sandbox:
        yield sandbox


@pytest.fixture
def v2(cloud: JiraSandbox) -> Api:
    return Api(cloud, "admin@example.com", "2")


@pytest.fixture
def ext2(extended: JiraSandbox) -> Api:
    return Api(extended, "admin@example.com", "2")


@pytest.fixture
def v3(cloud: JiraSandbox) -> Api:
    return Api(cloud, "admin@example.com", "3")


@pytest.fixture
def dcapi(dc: JiraSandbox) -> Api:
    return Api(dc, "admin", "2")


def incident(**fields: Any) -> dict[str, Any]:
    base = {"project": {"key": "OPS"}, "issuetype": {"name": "Incident"},
            "summary": "Printer jammed"}
    base.update(fields)
    return {"fields": base}


def errors_of(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"errorMessages", "errors"}
    return body


# ------------------------------------------------------------------ ADF on v3


def test_v3_create_with_string_description_is_rejected(v3: Api) -> None:
    response = v3.post("issue", incident(description="plain text"))
    assert response.status_code == 400
    assert errors_of(response)["errors"] == {"description": (
        "Operation value must be an Atlassian Document (see the Atlassian Document Format)")}


def test_v3_description_round_trips_as_adf_and_reads_as_text_on_v2(v3: Api, v2: Api) -> None:
    key = v3.post("issue", incident(description=DOC)).json()["key"]
    assert v3.get(f"issue/{key}").json()["fields"]["description"] == DOC
    assert v2.get(f"issue/{key}").json()["fields"]["description"] == "Disk full"


def test_v2_text_reads_as_paragraphs_and_hard_breaks_on_v3(v3: Api, v2: Api) -> None:
    key = v2.post("issue", incident(description="line one\nline two\n\nsecond")).json()["key"]
    doc = v3.get(f"issue/{key}").json()["fields"]["description"]
    assert doc == {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [
            {"type": "text", "text": "line one"}, {"type": "hardBreak"},
            {"type": "text", "text": "line two"}]},
        {"type": "paragraph", "content": [{"type": "text", "text": "second"}]}]}


def test_v3_comment_and_textarea_need_adf(v3: Api) -> None:
    key = v3.post("issue", incident()).json()["key"]
    assert v3.post(f"issue/{key}/comment", {"body": "hello"}).status_code == 400
    bad = v3.put(f"issue/{key}", {"fields": {"environment": "notes"}})
    assert bad.status_code == 400 and "environment" in errors_of(bad)["errors"]
    broken = {"type": "doc", "version": 1, "content": [{"type": "text", "text": "no block"}]}
    assert v3.post(f"issue/{key}/comment", {"body": broken}).status_code == 400
    created = v3.post(f"issue/{key}/comment", {"body": DOC})
    assert created.status_code == 201 and created.json()["body"] == DOC


def test_v2_rejects_adf_bodies(v2: Api) -> None:
    response = v2.post("issue", incident(description=DOC))
    assert errors_of(response)["errors"] == {"description": "Operation value must be a string"}


# ------------------------------------------------------------------ enhanced search


def test_enhanced_search_defaults_to_id_only_and_pages_by_token(v3: Api) -> None:
    first = v3.get("search/jql", jql="project = OPS ORDER BY key ASC", maxResults=3).json()
    assert set(first) == {"issues", "isLast", "nextPageToken"}
    assert first["issues"][0] == {
        "expand": first["issues"][0]["expand"], "id": "10001",
        "self": f"{v3.sandbox.url}/rest/api/3/issue/10001", "key": "OPS-1"}
    assert first["isLast"] is False
    keys = [i["key"] for i in first["issues"]]
    token = first["nextPageToken"]
    while token:
        page = v3.get("search/jql", jql="project = OPS ORDER BY key ASC", maxResults=3,
                      nextPageToken=token).json()
        keys += [i["key"] for i in page["issues"]]
        token = page.get("nextPageToken")
        assert page["isLast"] is (token is None)
    assert keys == [f"OPS-{n}" for n in range(1, 9)]


def test_enhanced_search_token_of_another_query_is_refused(v3: Api) -> None:
    token = v3.get("search/jql", jql="project = OPS", maxResults=1).json()["nextPageToken"]
    response = v3.get("search/jql", jql="project = OPS AND status = Open",
                      nextPageToken=token)
    assert response.status_code == 400


def test_enhanced_search_repeated_fields_and_star_all(v2: Api) -> None:
    response = v2.session.get(v2.url("search/jql"), params=[
        ("jql", "key = OPS-1"), ("fields", "summary"), ("fields", "updated")])
    fields = response.json()["issues"][0]["fields"]
    assert set(fields) == {"summary", "updated"}
    assert TIMESTAMP.match(fields["updated"])
    everything = v2.get("search/jql", jql="key = OPS-1", fields="*all").json()
    assert {"status", "customfield_10016", "comment", "environment"} <= set(
        everything["issues"][0]["fields"])
    navigable = v2.get("search/jql", jql="key = OPS-1", fields="*navigable,-labels").json()
    assert "comment" not in navigable["issues"][0]["fields"]
    assert "labels" not in navigable["issues"][0]["fields"]


def test_enhanced_search_post_accepts_nulls_and_refuses_unknown_keys(v2: Api) -> None:
    body = {"jql": "project = OPS", "fields": ["summary"], "expand": None,
            "properties": None, "reconcileIssues": [], "maxResults": 2}
    response = v2.post("search/jql", body)
    assert response.status_code == 200 and len(response.json()["issues"]) == 2
    legacy = v2.post("search/jql", {"jql": "project = OPS", "startAt": 0})
    assert legacy.status_code == 400
    assert errors_of(legacy)["errorMessages"] == ['Unrecognized field "startAt"']


def test_enhanced_search_refuses_unbounded_jql(v3: Api) -> None:
    for jql in ("", "ORDER BY created DESC"):
        response = v3.get("search/jql", jql=jql)
        assert response.status_code == 400
        assert "Unbounded JQL" in errors_of(response)["errorMessages"][0]


def test_enhanced_search_caps_pages(cloud: JiraSandbox, v2: Api) -> None:
    for n in range(110):
        cloud.create_issue({"summary": f"load {n}"})
    ids_only = v2.get("search/jql", jql="project = OPS", maxResults=6000).json()
    assert len(ids_only["issues"]) == 118 and ids_only["isLast"] is True
    with_fields = v2.get("search/jql", jql="project = OPS", maxResults=6000,
                         fields="summary").json()
    assert len(with_fields["issues"]) == 100 and with_fields["isLast"] is False


def test_legacy_search_is_gone_on_cloud(v2: Api, v3: Api) -> None:
    for api in (v2, v3):
        response = api.get("search", jql="project = OPS")
        assert response.status_code == 410
        assert "/rest/api/3/search/jql" in errors_of(response)["errorMessages"][0]


def test_approximate_count(v3: Api) -> None:
    response = v3.post("search/approximate-count", {"jql": "project = OPS"})
    assert response.json() == {"count": 8}
    assert v3.post("search/approximate-count", {"jql": ""}).status_code == 400


def test_search_embeds_at_most_twenty_comments(cloud: JiraSandbox, v2: Api) -> None:
    key = cloud.create_issue({"summary": "chatty"})
    for n in range(23):
        cloud.add_comment(key, f"update {n}")
    embedded = v2.get("search/jql", jql=f"key = {key}", fields="comment").json()
    page = embedded["issues"][0]["fields"]["comment"]
    assert len(page["comments"]) == 20 and page["total"] == 23
    assert len(v2.get(f"issue/{key}").json()["fields"]["comment"]["comments"]) == 23


# ------------------------------------------------------------------ Data Center


def test_dc_serves_v2_only_and_legacy_search_with_totals(dcapi: Api) -> None:
    assert dcapi.session.get(dcapi.url("/rest/api/3/myself")).status_code == 404
    assert dcapi.get("search/jql", jql="project = OPS").status_code == 404
    page = dcapi.get("search", jql="project = OPS ORDER BY key", startAt=5, maxResults=2,
                     validateQuery="True").json()
    assert (page["startAt"], page["maxResults"], page["total"], page["isLast"]) == (5, 2, 8,
                                                                                    False)
    assert [i["key"] for i in page["issues"]] == ["OPS-6", "OPS-7"]
    assert "status" in page["issues"][0]["fields"]  # *navigable by default
    everything = dcapi.get("search", jql="").json()
    assert everything["total"] == 8


def test_dc_missing_key_is_an_error_unless_validation_only_warns(dcapi: Api) -> None:
    strict = dcapi.get("search", jql="key in (OPS-1, OPS-99)")
    assert strict.status_code == 400
    assert errors_of(strict)["errorMessages"] == [
        "An issue with key 'OPS-99' does not exist for field 'key'."]
    warned = dcapi.post("search", {"jql": "key in (OPS-1, OPS-99)", "validateQuery": "warn"})
    assert [i["key"] for i in warned.json()["issues"]] == ["OPS-1"]
    assert warned.json()["warningMessages"] == [
        "An issue with key 'OPS-99' does not exist for field 'key'."]


def test_dc_users_are_names_and_keys(dcapi: Api) -> None:
    me = dcapi.get("myself").json()
    assert (me["name"], me["key"]) == ("admin", "JIRAUSER10000")
    assert "accountId" not in me
    issue = dcapi.get("issue/OPS-1").json()["fields"]["reporter"]
    assert set(issue) >= {"name", "key", "emailAddress", "displayName"}
    refused = dcapi.put("issue/OPS-1", {"fields": {"assignee": {"name": "nobody"}}})
    assert errors_of(refused)["errors"] == {"assignee": "User 'nobody' does not exist."}


def test_dc_accepts_a_personal_access_token(dc: JiraSandbox) -> None:
    response = requests.get(f"{dc.url}/rest/api/2/myself",
                            headers={"Authorization": "Bearer sandbox"})
    assert response.status_code == 200 and response.json()["name"] == "admin"
    wrong = requests.get(f"{dc.url}/rest/api/2/myself",
                         headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_cloud_refuses_bearer_tokens_and_names(cloud: JiraSandbox, v2: Api) -> None:
    response = requests.get(f"{cloud.url}/rest/api/2/myself",
                            headers={"Authorization": "Bearer sandbox"})
    assert response.status_code == 401
    assert errors_of(response)["errorMessages"]
    by_name = v2.put("issue/OPS-1", {"fields": {"assignee": {"name": "alice.smith"}}})
    assert by_name.status_code == 400


def test_server_info_answers_anonymously(cloud: JiraSandbox) -> None:
    assert requests.get(f"{cloud.url}/rest/api/2/serverInfo").status_code == 200
    assert requests.get(f"{cloud.url}/rest/api/2/myself").status_code == 401


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(("fields", "errors"), [
    ({"summary": None}, {"summary": "You must specify a summary of the issue."}),
    ({"summary": "s" * 256}, {"summary": "Summary must be less than 255 characters."}),
    ({"description": "d" * 32768}, {"description": (
        "The entered text is too long. It exceeds the allowed limit of 32,767 characters.")}),
    ({"priority": {"name": "Blocker"}}, {"priority": "Specify a valid 'id' or 'name' for "
                                                     "Priority"}),
    ({"components": [{"name": "Coffee"}]}, {"components": "Component name 'Coffee' is not "
                                                          "valid"}),
    ({"customfield_10004": {"value": "Huge"}}, {"customfield_10004": "Option value 'Huge' is "
                                                                     "not valid"}),
    ({"issuetype": {"name": "Epic"}}, {"issuetype": "The issue type selected is invalid."}),
    ({"project": {"key": "NOPE"}}, {"project": "Specify a valid project ID or key"}),
    ({"labels": ["two words"]}, {"labels": "The label 'two words' contains spaces which is "
                                           "invalid."}),
    ({"customfield_10007": "VPN"}, {"customfield_10007": "Field 'customfield_10007' cannot be "
                                                         "set. It is not on the appropriate "
                                                         "screen, or unknown."}),
    ({"components": [{"name": "Network"}]}, {"components": "Component name 'Network' is not "
                                                           "valid"}),
    ({"duedate": "tomorrow"}, {"duedate": "Error parsing date string: tomorrow"}),
    ({"assignee": {"accountId": "0" * 24}}, {"assignee": "Specified user does not exist or "
                                                         "you do not have required permissions"}),
])
def test_create_validation_errors(v2: Api, fields: dict[str, Any],
                                  errors: dict[str, str]) -> None:
    body = incident(**fields)
    body["fields"] = {k: v for k, v in body["fields"].items() if v is not None}
    response = v2.post("issue", body)
    assert response.status_code == 400
    assert errors_of(response) == {"errorMessages": [], "errors": errors}


def test_create_answers_201_with_a_self_the_client_can_get(v2: Api) -> None:
    response = v2.post("issue", incident())
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"id", "key", "self"}
    assert v2.session.get(created["self"]).json()["key"] == created["key"]


def test_bulk_create_limits_and_all_failed(v2: Api) -> None:
    too_many = v2.post("issue/bulk", {"issueUpdates": [incident()] * 51})
    assert too_many.status_code == 400
    failed = v2.post("issue/bulk", {"issueUpdates": [incident(summary=""), incident(
        issuetype={"id": "999"})]})
    assert failed.status_code == 400
    body = failed.json()
    assert body["issues"] == []
    assert [e["failedElementNumber"] for e in body["errors"]] == [0, 1]
    assert body["errors"][1]["elementErrors"]["errors"] == {
        "issuetype": "The issue type selected is invalid."}


def test_bulk_create_sets_properties_and_on_cloud_applies_the_transition(v2: Api) -> None:
    body = {"issueUpdates": [
        {**incident(summary="moved"), "transition": {"id": "11"},
         "properties": [{"key": "incident-sync", "value": {"servicenow_sys_id": "a"}}]},
        # Not a transition out of Open: the issue is still created, the nested
        # response carries the refusal (Cloud's CreatedIssue.transition).
        {**incident(summary="stays"), "transition": {"id": "81"}},
    ]}
    response = v2.post("issue/bulk", body)
    assert response.status_code == 201
    moved, stays = response.json()["issues"]
    assert moved["transition"] == {"status": 200,
                                   "errorCollection": {"errorMessages": [], "errors": {}}}
    assert stays["transition"]["status"] == 400
    assert v2.get(f"issue/{moved['key']}").json()["fields"]["status"]["name"] == \
        "Work in progress"
    assert v2.get(f"issue/{stays['key']}").json()["fields"]["status"]["name"] == "Open"
    prop = v2.get(f"issue/{moved['key']}/properties/incident-sync").json()
    assert prop == {"key": "incident-sync", "value": {"servicenow_sys_id": "a"}}


def test_data_center_create_documents_no_transition_and_ignores_it(dcapi: Api) -> None:
    response = dcapi.post("issue", {**incident(), "transition": {"id": "11"},
                                    "properties": [{"key": "k", "value": 1}]})
    assert response.status_code == 201 and "transition" not in response.json()
    key = response.json()["key"]
    assert dcapi.get(f"issue/{key}").json()["fields"]["status"]["name"] == "Open"
    assert dcapi.get(f"issue/{key}/properties/k").json()["value"] == 1


def test_edit_update_operations_on_labels_and_components(ext2: Api) -> None:
    v2 = ext2
    key = v2.post("issue", incident(labels=["a", "b"], components=[{"name": "Network"}])
                  ).json()["key"]
    response = v2.put(f"issue/{key}", {"update": {
        "labels": [{"add": "c"}, {"remove": "a"}],
        "components": [{"add": {"name": "Database"}}, {"remove": {"name": "Network"}}],
        "summary": [{"set": "Printer fixed"}]},
        "transition": {"id": "11"}}, notifyUsers="false")
    assert response.status_code == 204 and response.content == b""
    fields = v2.get(f"issue/{key}").json()["fields"]
    assert fields["labels"] == ["b", "c"]
    assert [c["name"] for c in fields["components"]] == ["Database"]
    assert fields["summary"] == "Printer fixed"
    assert fields["status"]["name"] == "Open"  # edit ignores transitions
    both = v2.put(f"issue/{key}", {"fields": {"labels": []}, "update": {"labels": [
        {"add": "x"}]}})
    assert both.status_code == 400


def test_updated_moves_on_edit_transition_and_comment(cloud: JiraSandbox, v2: Api,
                                                      clock: Clock) -> None:
    key = cloud.create_issue({"summary": "Clocked"})
    created = v2.get(f"issue/{key}").json()["fields"]
    assert created["created"] == "2026-03-02T09:30:15.123+0000"
    stamps = [created["updated"]]
    for action in ("edit", "transition", "comment"):
        clock.tick(minutes=1)
        if action == "edit":
            v2.put(f"issue/{key}", {"fields": {"summary": "Clocked again"}})
        elif action == "transition":
            v2.post(f"issue/{key}/transitions", {"transition": {"id": "11"}})
        else:
            v2.post(f"issue/{key}/comment", {"body": "tick"})
        stamps.append(v2.get(f"issue/{key}").json()["fields"]["updated"])
    assert stamps == ["2026-03-02T09:30:15.123+0000", "2026-03-02T09:31:15.123+0000",
                      "2026-03-02T09:32:15.123+0000", "2026-03-02T09:33:15.123+0000"]


def test_transition_rules(v2: Api) -> None:
    key = v2.post("issue", incident()).json()["key"]
    listed = v2.get(f"issue/{key}/transitions").json()["transitions"]
    assert [(t["id"], t["to"]["name"], t["to"]["statusCategory"]["key"]) for t in listed] == [
        ("11", "Work in progress", "indeterminate"), ("21", "Pending", "indeterminate"),
        ("31", "Canceled", "done")]
    not_on_screen = v2.post(f"issue/{key}/transitions", {
        "transition": {"id": "11"}, "fields": {"resolution": {"name": "Fixed"}}})
    assert not_on_screen.status_code == 400
    assert v2.post(f"issue/{key}/transitions", {"transition": {"id": 11}}).status_code == 204
    done = v2.post(f"issue/{key}/transitions", {"transition": {"id": "51"}})
    assert done.status_code == 204
    fields = v2.get(f"issue/{key}").json()["fields"]
    assert fields["resolution"]["name"] == "Done"  # the default on entering done
    assert TIMESTAMP.match(fields["resolutiondate"])
    with_meta = v2.get(f"issue/{key}/transitions", expand="transitions.fields").json()
    close = next(t for t in with_meta["transitions"] if t["id"] == "81")
    assert "resolution" in close["fields"]


def test_comments_paging_and_order(cloud: JiraSandbox, v2: Api, clock: Clock) -> None:
    key = cloud.create_issue({"summary": "Paged comments"})
    for n in range(5):
        clock.tick(seconds=10)
        cloud.add_comment(key, f"c{n}")
    page = v2.get(f"issue/{key}/comment", startAt=1, maxResults=2).json()
    assert [c["body"] for c in page["comments"]] == ["c1", "c2"]
    assert (page["startAt"], page["maxResults"], page["total"]) == (1, 2, 5)
    newest = v2.get(f"issue/{key}/comment", orderBy="-created", maxResults=1).json()
    assert newest["comments"][0]["body"] == "c4"
    assert v2.get(f"issue/{key}/comment").json()["maxResults"] == 100


def test_jsm_comments_public_and_internal(cloud: JiraSandbox, v2: Api) -> None:
    key = cloud.create_issue({"summary": "JSM"})
    jsm = f"/rest/servicedeskapi/request/{key}/comment"
    internal = v2.post(jsm, {"body": "note for agents", "public": False})
    assert internal.status_code == 201 and internal.json()["public"] is False
    v2.post(jsm, {"body": "hello customer", "public": True})
    assert v2.post(jsm, {"body": DOC}).status_code == 400  # JSM takes text, not ADF
    platform = v2.get(f"issue/{key}/comment").json()["comments"]
    assert [c["jsdPublic"] for c in platform] == [False, True]
    only_public = v2.get(jsm, internal="false").json()
    assert [v["body"] for v in only_public["values"]] == ["hello customer"]
    paged = v2.get(jsm, start=0, limit=1).json()
    assert (paged["size"], paged["isLastPage"]) == (1, False)
    created = paged["values"][0]["created"]
    assert set(created) == {"iso8601", "jira", "friendly", "epochMillis"}
    desks = v2.get("/rest/servicedeskapi/servicedesk").json()
    assert [(d["id"], d["projectKey"]) for d in desks["values"]] == [("1", "OPS")]


def test_issue_property_limits(v2: Api) -> None:
    url = v2.url("issue/OPS-1/properties/snow.sync")
    too_long = v2.session.put(url, data='"' + "x" * 32768 + '"',
                              headers={"Content-Type": "application/json"})
    assert too_long.status_code == 400
    assert v2.session.put(url, data="not json",
                          headers={"Content-Type": "application/json"}).status_code == 400
    assert v2.get("issue/OPS-1/properties/missing").status_code == 404
    assert v2.put("issue/OPS-1/properties/snow.sync", {"v": 1}).status_code == 201
    keys = v2.get("issue/OPS-1/properties").json()["keys"]
    assert [k["key"] for k in keys] == ["snow.sync"]
    assert v2.session.delete(url).status_code == 204


def test_remote_link_needs_a_title_and_filters_by_global_id(v2: Api) -> None:
    missing = v2.post("issue/OPS-1/remotelink", {"object": {"url": "https://x"}})
    assert errors_of(missing) == {"errorMessages": [], "errors": {"title": "'title' is "
                                                                           "required."}}
    link = {"globalId": "g-1", "object": {"url": "https://x", "title": "X"}}
    assert v2.post("issue/OPS-1/remotelink", link).status_code == 201
    assert v2.post("issue/OPS-1/remotelink", link).status_code == 200
    v2.post("issue/OPS-1/remotelink", {"globalId": "g-2", "object": {"url": "https://y",
                                                                     "title": "Y"}})
    found = v2.get("issue/OPS-1/remotelink", globalId="g-2").json()
    assert [x["object"]["title"] for x in found] == ["Y"]


def test_user_endpoints_on_cloud(v2: Api) -> None:
    alice = account_id_for("alice.smith@example.com")
    found = v2.get("user/search", query="Alice").json()
    assert [u["accountId"] for u in found] == [alice]
    assert "name" not in found[0]
    assert v2.get("user/search", username="alice").status_code == 400
    assert v2.get("user", accountId=alice).json()["displayName"] == "Alice Smith"
    assert v2.get("user", accountId="x" * 24).status_code == 404
    assert v2.get("user/assignable/search", query="bob").status_code == 400
    assert len(v2.get("user/assignable/search", project="OPS").json()) == 10


def test_field_list_carries_clause_names(ext2: Api) -> None:
    fields = {f["id"]: f for f in ext2.get("field").json()}
    assert fields["customfield_10100"]["clauseNames"] == ["cf[10100]", "ServiceNow ID"]
    assert fields["customfield_10004"]["schema"]["type"] == "option"
    assert fields["status"]["custom"] is False


def test_a_stock_site_has_only_the_jsm_itsm_fields_and_no_components(v2: Api,
                                                                     dcapi: Api) -> None:
    custom = {f["name"]: f["schema"]["custom"] for f in v2.get("field").json() if f["custom"]}
    assert custom == {
        "Impact": "com.atlassian.jira.plugin.system.customfieldtypes:select",
        "Urgency": "com.atlassian.jira.plugin.system.customfieldtypes:select",
        "Pending reason": "com.atlassian.jira.plugin.system.customfieldtypes:select",
        "Request Type": "com.atlassian.servicedesk:vp-origin",
        "Request participants": "com.atlassian.servicedesk:sd-request-participants",
        "Organizations": "com.atlassian.servicedesk:sd-customer-organizations",
        "Satisfaction": "com.atlassian.servicedesk:sd-request-feedback",
        "Time to resolution": "com.atlassian.servicedesk:sd-sla-field",
        "Time to first response": "com.atlassian.servicedesk:sd-sla-field",
        "Affected services":
            "com.atlassian.jira.plugins.service-entity:service-entity-field-cftype",
    }
    assert "Customer Request Type" in {f["name"] for f in dcapi.get("field").json()}
    assert v2.get("project/OPS").json()["components"] == []
    meta = v2.get("issue/createmeta/OPS/issuetypes/10001").json()["fields"]
    assert next(f for f in meta if f["fieldId"] == "components")["allowedValues"] == []
    urgency = next(f for f in meta if f["name"] == "Urgency")
    assert [v["value"] for v in urgency["allowedValues"]] == [
        "Critical", "High", "Medium", "Low"]
    # JSM manages its own fields (SLAs, request type...): the sandbox shows them empty.
    assert "customfield_10014" not in {f["fieldId"] for f in meta}
    fields = v2.get("issue/OPS-1").json()["fields"]
    assert fields["customfield_10014"] is None and fields["customfield_10016"] is None
    sla = v2.put("issue/OPS-1", {"fields": {"customfield_10014": "x"}})
    assert sla.status_code == 400 and "customfield_10014" in errors_of(sla)["errors"]


def test_project_and_createmeta(v2: Api, dcapi: Api) -> None:
    project = v2.get("project/OPS", expand="issueTypes").json()
    assert [t["name"] for t in project["issueTypes"]] == ["Incident", "Task"]
    assert v2.get("project/NOPE").status_code == 404
    cloud_types = v2.get("issue/createmeta/OPS/issuetypes").json()
    assert [t["id"] for t in cloud_types["issueTypes"]] == ["10001", "10002"]
    dc_fields = dcapi.get("issue/createmeta/OPS/issuetypes/10001").json()["values"]
    impact = next(f for f in dc_fields if f["fieldId"] == "customfield_10004")
    assert [v["value"] for v in impact["allowedValues"]] == [
        "Extensive / Widespread", "Significant / Large", "Moderate / Limited",
        "Minor / Localized"]
    assert next(f for f in dc_fields if f["fieldId"] == "summary")["required"] is True


# ------------------------------------------------------------------ errors, auth, faults


def test_malformed_and_unknown_jql_use_jira_messages(v2: Api) -> None:
    unknown = v2.get("search/jql", jql="colour = red")
    assert errors_of(unknown) == {"errorMessages": [
        "Field 'colour' does not exist or you do not have permission to view it."],
        "errors": {}}
    broken = v2.get("search/jql", jql='project = OPS AND summary ~ "unterminated')
    assert broken.status_code == 400
    assert errors_of(broken)["errorMessages"][0].startswith("Error in the JQL Query:")


def test_rate_limit_headers_per_deployment(cloud: JiraSandbox, dc: JiraSandbox) -> None:
    for sandbox, login in ((cloud, "admin@example.com"), (dc, "admin")):
        sandbox.faults = FaultPlan(script=[Fault("429", retry_after=1)])
        response = requests.get(f"{sandbox.url}/rest/api/2/issue/OPS-1",
                                auth=(login, "sandbox"))
        assert response.status_code == 429
        assert response.json() == {"errorMessages": ["Rate limit exceeded."], "errors": {}}
        assert response.headers["Retry-After"] == "1"
        if sandbox.mode == "cloud":
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z",
                                response.headers["X-RateLimit-Reset"])
            assert response.headers["RateLimit-Reason"]
        else:
            assert response.headers["X-RateLimit-Interval-Seconds"] == "1"
            assert response.headers["X-RateLimit-FillRate"]
        assert response.headers["X-RateLimit-Limit"]
        assert response.headers["X-RateLimit-Remaining"] == "0"


def test_faults_set_over_http_are_seen_by_clients(cloud: JiraSandbox, v2: Api) -> None:
    plan = {"script": [{"kind": "503", "retry_after": 0}, {"kind": "drop"}]}
    assert requests.post(f"{cloud.url}/_sandbox/faults", json=plan).status_code == 200
    unavailable = v2.get("issue/OPS-1")
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "0"
    assert unavailable.json()["errorMessages"]
    with pytest.raises(requests.exceptions.ConnectionError):
        v2.get("issue/OPS-1")
    assert v2.get("issue/OPS-1").status_code == 200
    assert cloud.log.count("GET", "/rest/api/2/issue/OPS-1") == 3


# ------------------------------------------------------------------ in-process helpers


def test_in_process_helpers_share_the_http_rules(cloud: JiraSandbox, v2: Api) -> None:
    key = cloud.create_issue({"summary": "Helper made", "labels": ["snow-xyz"]})
    cloud.edit_issue(key, {"priority": {"name": "Lowest"}})
    cloud.transition_issue(key, "Resolved", resolution="Known Error")  # via Work in progress
    comment_id = cloud.add_comment(key, "fixed", internal=True,
                                   author_email="chen.wei@example.com")
    assert cloud.issue(key) == v2.get(f"issue/{key}").json()
    fields = cloud.issue(key)["fields"]
    assert (fields["status"]["name"], fields["resolution"]["name"]) == ("Resolved",
                                                                        "Known Error")
    comment = fields["comment"]["comments"][-1]
    assert comment["id"] == comment_id and comment["jsdPublic"] is False
    assert comment["author"]["displayName"] == "Chen Wei"
    with pytest.raises(JiraRejected) as caught:
        cloud.edit_issue(key, {"summary": "x" * 300})
    assert caught.value.status == 400
    with pytest.raises(JiraRejected):
        cloud.transition_issue(key, "No such status")
    assert key in cloud.issue_keys()
    cloud.delete_issue(key)
    assert key not in cloud.issue_keys()
    assert v2.get(f"issue/{key}").status_code == 404


def test_seeded_issues_follow_the_seed(cloud: JiraSandbox, v2: Api, ext2: Api) -> None:
    expected = seed_incidents(8, 1)
    statuses = {"new": "Open", "in_progress": "Work in progress", "on_hold": "Pending",
                "resolved": "Resolved"}
    for number, seeded in enumerate(expected, start=1):
        fields = v2.get(f"issue/OPS-{number}").json()["fields"]
        assert fields["summary"] == seeded.title
        assert fields["status"]["name"] == statuses[seeded.status]
        # The category as the site's profile writes it: labels on a stock site...
        assert fields["labels"] == [f"category-{seeded.category}",
                                    "subcategory-" + seeded.subcategory.replace(" ", "%20")]
        assert fields["components"] == []
        # ...components and admin-made fields on the extended one.
        extended = ext2.get(f"issue/OPS-{number}").json()["fields"]
        assert extended["customfield_10006"] == seeded.group
        assert extended["customfield_10007"] == seeded.subcategory
        assert [c["name"].casefold() for c in extended["components"]] == [seeded.category]
        assert extended["labels"] == []
        assert fields["reporter"]["emailAddress"] == seeded.caller_email
        assert [not c["jsdPublic"] for c in fields["comment"]["comments"]] == [
            c.internal for c in seeded.comments]
        assert (fields["resolution"] is not None) == (seeded.status == "resolved")
        assert fields["created"] == datetime.strftime(
            seeded.opened_at, "%Y-%m-%dT%H:%M:%S.000+0000")


def test_issue_get_honours_fields_expand_and_properties(cloud: JiraSandbox, v2: Api,
                                                        clock: Clock) -> None:
    key = cloud.create_issue({"summary": "Expand me", "description": "a < b\n\nnext"})
    v2.put(f"issue/{key}/properties/snow.sync", {"sys_id": "abc"})
    for n in range(3):
        clock.tick(minutes=1)
        cloud.edit_issue(key, {"summary": f"Expand me {n}"})
    issue = v2.get(f"issue/{key}", fields="summary,description",
                   expand="renderedFields,names,changelog", properties="snow.sync").json()
    assert set(issue["fields"]) == {"summary", "description"}
    assert issue["renderedFields"]["description"] == "<p>a &lt; b</p><p>next</p>"
    assert issue["names"] == {"summary": "Summary", "description": "Description"}
    assert issue["changelog"]["total"] == 3
    assert issue["properties"] == {"snow.sync": {"sys_id": "abc"}}
    page = v2.get(f"issue/{key}/changelog", startAt=0, maxResults=2).json()
    assert (page["isLast"], len(page["values"])) == (False, 2)
    rest = v2.session.get(page["nextPage"]).json()
    assert rest["isLast"] is True
    assert rest["values"][0]["items"] == [{"field": "summary", "fieldtype": "jira",
                                           "fieldId": "summary",
                                           "fromString": "Expand me 1",
                                           "toString": "Expand me 2"}]


def test_key_and_label_searches_read_an_index_and_follow_every_write(
    cloud: JiraSandbox, v2: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.sandbox import jql

    keys = [v2.post("issue", incident(summary=f"n{n}", labels=[f"snow-{n}"])).json()["key"]
            for n in range(30)]
    evaluated: list[str] = []
    original = jql.BoundQuery.matches
    monkeypatch.setattr(jql.BoundQuery, "matches",
                        lambda self, issue: evaluated.append(issue.key) or original(self, issue))

    def found(text: str) -> list[str]:
        page = v2.get("search/jql", jql=text, fields="labels").json()
        return sorted(i["key"] for i in page["issues"])

    assert found("project = OPS AND labels in (snow-3, SNOW-4)") == sorted(keys[3:5])
    assert found(f"key in ({keys[7]}, {keys[9]})") == sorted([keys[7], keys[9]])
    assert len(evaluated) == 4  # the candidates only, not every issue of the site
    assert v2.put(f"issue/{keys[3]}", {"update": {"labels": [
        {"remove": "snow-3"}, {"add": "snow-x"}]}}).status_code == 204
    assert found("labels = snow-3") == [] and found("labels = snow-x") == [keys[3]]
    assert v2.session.delete(v2.url(f"issue/{keys[4]}")).status_code == 204
    assert found("labels in (snow-4)") == []
    evaluated.clear()
    assert len(found("project = OPS AND summary ~ n1")) > 0  # no index for text: a scan
    assert len(evaluated) == len(cloud.issue_keys())


def test_bulk_issue_properties_are_cloud_only_asynchronous_and_ignore_unknown_issues(
    v2: Api, dcapi: Api
) -> None:
    created = v2.post("issue", incident()).json()
    body = {"issues": [{"issueID": int(created["id"]), "properties": {"p": {"a": 1}}},
                       {"issueID": 999999, "properties": {"p": {"a": 2}}}]}
    response = v2.session.post(v2.url("issue/properties/multi"), json=body,
                               allow_redirects=False)
    assert response.status_code == 303
    task = v2.session.get(response.headers["Location"]).json()
    assert task["status"] == "COMPLETE"
    assert v2.get(f"issue/{created['key']}/properties/p").json()["value"] == {"a": 1}
    too_many = {"issues": [{"issueID": 1, "properties": {"p": 1}}] * 101}
    assert v2.post("issue/properties/multi", too_many).status_code == 400
    no_props = {"issues": [{"issueID": int(created["id"]), "properties": {}}]}
    assert v2.post("issue/properties/multi", no_props).status_code == 400
    assert dcapi.post("issue/properties/multi", body).status_code == 404


def test_bulk_changelog_fetch_pages_every_issue_s_changelogs_oldest_first(
    cloud: JiraSandbox, v3: Api, dcapi: Api, clock: Clock,
) -> None:
    """Cloud's changelog/bulkfetch: the changelogs of the issues named (ids or keys),
    oldest first then by issue id, ``maxResults`` a page with a ``nextPageToken``,
    filtered by field ids when asked; unknown issues have none; Data Center lacks it."""
    first = cloud.create_issue({"summary": "one"})
    second = cloud.create_issue({"summary": "two"})
    for n in range(2):
        clock.tick(minutes=1)
        cloud.edit_issue(first, {"summary": f"one {n}"})
        clock.tick(minutes=1)
        cloud.edit_issue(second, {"summary": f"two {n}"})
    cloud.transition_issue(second, "Work in progress")
    second_id = str(cloud.issue(second)["id"])
    body = {"issueIdsOrKeys": [first, second_id, "OPS-999"], "maxResults": 3}
    page = v3.post("changelog/bulkfetch", body).json()
    rest = v3.post("changelog/bulkfetch", {**body, "nextPageToken": page["nextPageToken"]})
    assert rest.status_code == 200 and "nextPageToken" not in rest.json()
    seen = [(log["issueId"], [i["toString"] for h in log["changeHistories"]
                              for i in h["items"]])
            for answer in (page, rest.json()) for log in answer["issueChangeLogs"]]
    first_id = str(cloud.issue(first)["id"])
    # A page's three oldest changelogs, grouped by issue in the order they first come.
    assert seen == [(first_id, ["one 0", "one 1"]), (second_id, ["two 0"]),
                    (second_id, ["two 1", "Work in progress"])]
    status_only = v3.post("changelog/bulkfetch", {"issueIdsOrKeys": [first, second],
                                                   "fieldIds": ["status"]}).json()
    assert [(log["issueId"], len(log["changeHistories"]))
            for log in status_only["issueChangeLogs"]] == [(second_id, 1)]
    for bad in ({"issueIdsOrKeys": []}, {"issueIdsOrKeys": ["OPS-1"] * 1001},
                {"issueIdsOrKeys": [first], "fieldIds": [f"f{n}" for n in range(11)]},
                {"issueIdsOrKeys": [first], "maxResults": 0}, ["OPS-1"]):
        assert v3.post("changelog/bulkfetch", bad).status_code == 400, bad
    assert dcapi.post("changelog/bulkfetch", {"issueIdsOrKeys": ["OPS-1"]}).status_code == 404
