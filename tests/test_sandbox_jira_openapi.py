"""Every /rest/api/3 response the Jira sandbox serves, validated against Jira's OpenAPI spec.

The schemas come from tests/data/jira-openapi-subset.json (regenerate with
tests/data/make_jira_openapi_subset.py from the full spec); the test needs
nothing outside the repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.jira_site import account_id_for

SUBSET = json.loads((Path(__file__).parent / "data" / "jira-openapi-subset.json")
                    .read_text(encoding="utf-8"))
DOC = {"type": "doc", "version": 1, "content": [
    {"type": "paragraph", "content": [{"type": "text", "text": "VPN down in Osaka"}]}]}
# The spec documents GET .../remotelink as one RemoteIssueLink, but the endpoint
# returns an array of them (Atlassian, "Get remote issue links", REST v3); each item is
# validated instead.
ARRAY_OF_DOCUMENTED_ITEM = {("get", "/rest/api/3/issue/{issueIdOrKey}/remotelink")}


class Checked:
    """Sends v3 requests and validates each answer against the spec's schema."""

    def __init__(self, sandbox: JiraSandbox) -> None:
        self.sandbox = sandbox
        self.session = requests.Session()
        self.session.auth = ("admin@example.com", "sandbox")
        self.validated: set[tuple[str, str, str]] = set()

    def call(self, method: str, template: str, values: dict[str, str] | None = None, *,
             params: Any = None, body: Any = None, raw: str | None = None,
             expect: int) -> Any:
        path = template.format(**(values or {}))
        kwargs: dict[str, Any] = {"params": params}
        if raw is not None:
            kwargs.update(data=raw, headers={"Content-Type": "application/json"})
        elif body is not None:
            kwargs["json"] = body
        response = self.session.request(method.upper(), self.sandbox.url + path, **kwargs)
        assert response.status_code == expect, (method, path, response.text)
        documented = SUBSET["paths"][template][method]
        assert str(expect) in documented, f"{method} {template} {expect} is not documented"
        schema = documented[str(expect)]
        if schema is None and expect >= 400:
            # The spec names the status without a body schema; Jira sends its
            # ErrorCollection there, as on every other error.
            schema = {"$ref": "#/components/schemas/ErrorCollection"}
        if schema is None:
            assert response.content == b"", f"{method} {template} should have no body"
            return None
        payload = response.json()
        if (method, template) in ARRAY_OF_DOCUMENTED_ITEM:
            assert isinstance(payload, list)
            for item in payload:
                validate(item, schema)
        else:
            validate(payload, schema)
        self.validated.add((method, template, str(expect)))
        return payload


def validate(payload: Any, schema: dict[str, Any]) -> None:
    # The response schema refers to "#/components/schemas/..."; give it the subset's
    # components as its document root so those references resolve.
    rooted = {**schema, "components": SUBSET["components"]}
    jsonschema.Draft202012Validator(rooted).validate(payload)


@pytest.fixture
def api() -> Iterator[Checked]:
    with JiraSandbox(mode="cloud", seed_incidents=3) as sandbox:
        yield Checked(sandbox)


def test_platform_reference_responses_match_the_spec(api: Checked) -> None:
    api.call("get", "/rest/api/3/serverInfo", expect=200)
    me = api.call("get", "/rest/api/3/myself", expect=200)
    assert me["accountId"] == account_id_for("admin@example.com")
    api.call("get", "/rest/api/3/field", expect=200)
    api.call("get", "/rest/api/3/priority", expect=200)
    api.call("get", "/rest/api/3/resolution", expect=200)
    api.call("get", "/rest/api/3/project/{projectIdOrKey}", {"projectIdOrKey": "OPS"},
             params={"expand": "issueTypes"}, expect=200)
    api.call("get", "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes",
             {"projectIdOrKey": "OPS"}, expect=200)
    api.call("get", "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}",
             {"projectIdOrKey": "OPS", "issueTypeId": "10001"}, expect=200)
    alice = account_id_for("alice.smith@example.com")
    api.call("get", "/rest/api/3/user", params={"accountId": alice}, expect=200)
    api.call("get", "/rest/api/3/user/search", params={"query": "alice"}, expect=200)
    api.call("get", "/rest/api/3/user/assignable/search",
             params={"project": "OPS", "query": "a"}, expect=200)


def test_issue_lifecycle_responses_match_the_spec(api: Checked) -> None:
    alice = account_id_for("alice.smith@example.com")
    fields = {"project": {"key": "OPS"}, "issuetype": {"id": "10001"}, "summary": "VPN down",
              "description": DOC, "environment": DOC,
              "labels": ["snow-1", "category-network"],
              "customfield_10004": {"value": "Moderate / Limited"},
              "assignee": {"accountId": alice}}
    created = api.call("post", "/rest/api/3/issue", body={"fields": fields}, expect=201)
    key = {"issueIdOrKey": created["key"]}
    api.call("post", "/rest/api/3/issue", body={"fields": {**fields, "description": "text"}},
             expect=400)
    api.call("post", "/rest/api/3/issue/bulk", body={"issueUpdates": [
        {"fields": fields}, {"fields": {**fields, "summary": ""}}]}, expect=201)
    api.call("post", "/rest/api/3/issue/bulk", body={"issueUpdates": [
        {"fields": {**fields, "priority": {"name": "Nope"}}}]}, expect=400)
    api.call("put", "/rest/api/3/issue/{issueIdOrKey}", key,
             body={"fields": {"summary": "VPN flapping"}}, expect=204)
    api.call("put", "/rest/api/3/issue/{issueIdOrKey}/assignee", key,
             body={"accountId": account_id_for("bob.jones@example.com")}, expect=204)
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}/transitions", key,
             params={"expand": "transitions.fields"}, expect=200)
    api.call("post", "/rest/api/3/issue/{issueIdOrKey}/transitions", key,
             body={"transition": {"id": "11"}}, expect=204)
    api.call("post", "/rest/api/3/issue/{issueIdOrKey}/transitions", key, body={
        "transition": {"id": "51"}, "fields": {"resolution": {"name": "Fixed"}},
        "update": {"comment": [{"add": {"body": DOC}}]}}, expect=204)
    comment = api.call("post", "/rest/api/3/issue/{issueIdOrKey}/comment", key, body={
        "body": DOC, "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]},
        params={"expand": "properties"}, expect=201)
    ids = {**key, "id": comment["id"]}
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}/comment", key, expect=200)
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}", ids, expect=200)
    api.call("put", "/rest/api/3/issue/{issueIdOrKey}/comment/{id}", ids,
             body={"body": DOC}, expect=200)
    api.call("put", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}",
             {**key, "propertyKey": "snow.sync"}, raw='{"sys_id": "abc"}', expect=201)
    api.call("put", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}",
             {**key, "propertyKey": "snow.sync"}, raw='{"sys_id": "def"}', expect=200)
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}/properties", key, expect=200)
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}",
             {**key, "propertyKey": "snow.sync"}, expect=200)
    link = {"globalId": "system=sn&id=1", "application": {"type": "com.servicenow",
                                                          "name": "ServiceNow"},
            "relationship": "mirrored by",
            "object": {"url": "https://sn.example/1", "title": "INC0010001",
                       "status": {"resolved": False}}}
    made = api.call("post", "/rest/api/3/issue/{issueIdOrKey}/remotelink", key, body=link,
                    expect=201)
    api.call("post", "/rest/api/3/issue/{issueIdOrKey}/remotelink", key, body=link,
             expect=200)
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}/remotelink", key, expect=200)
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}/remotelink/{linkId}",
             {**key, "linkId": str(made["id"])}, expect=200)
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}/changelog", key, expect=200)
    logs = api.call("post", "/rest/api/3/changelog/bulkfetch",
                    body={"issueIdsOrKeys": [key["issueIdOrKey"]], "maxResults": 1},
                    expect=200)
    api.call("post", "/rest/api/3/changelog/bulkfetch",
             body={"issueIdsOrKeys": [key["issueIdOrKey"]],
                   "nextPageToken": logs["nextPageToken"]}, expect=200)
    api.call("post", "/rest/api/3/changelog/bulkfetch", body={"issueIdsOrKeys": []},
             expect=400)
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}/editmeta", key, expect=200)
    issue = api.call("get", "/rest/api/3/issue/{issueIdOrKey}", key,
                     params={"expand": "renderedFields,names,changelog",
                             "properties": "snow.sync"}, expect=200)
    assert issue["fields"]["description"] == DOC
    assert issue["properties"] == {"snow.sync": {"sys_id": "def"}}
    api.call("delete", "/rest/api/3/issue/{issueIdOrKey}", key, expect=204)
    api.call("get", "/rest/api/3/issue/{issueIdOrKey}", key, expect=404)


def test_search_responses_match_the_spec(api: Checked) -> None:
    page = api.call("get", "/rest/api/3/search/jql", params=[
        ("jql", "project = OPS ORDER BY key"), ("fields", "summary"), ("fields", "status"),
        ("expand", "names"), ("maxResults", "2")], expect=200)
    api.call("post", "/rest/api/3/search/jql", body={
        "jql": "project = OPS ORDER BY key", "fields": ["*all"], "expand": "changelog",
        "nextPageToken": page["nextPageToken"], "maxResults": 2}, expect=200)
    api.call("post", "/rest/api/3/search/jql", body={"jql": "summary = x"}, expect=400)
    api.call("post", "/rest/api/3/search/approximate-count",
             body={"jql": "project = OPS"}, expect=200)


def test_every_subset_operation_with_a_body_was_validated() -> None:
    """The subset lists only what the sandbox serves; keep both in step."""
    with JiraSandbox(mode="cloud", seed_incidents=3) as sandbox:
        checked = Checked(sandbox)
        test_platform_reference_responses_match_the_spec(checked)
        test_issue_lifecycle_responses_match_the_spec(checked)
        test_search_responses_match_the_spec(checked)
    wanted = {(method, path) for path, methods in SUBSET["paths"].items()
              for method, statuses in methods.items()
              if statuses.get("200") or statuses.get("201")}
    covered = {(method, path) for method, path, _ in checked.validated}
    assert wanted - covered == set()
