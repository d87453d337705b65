"""Jira connector HTTP edge cases with `responses`: flavors, errors, retries, secrecy.

Each test scripts the exact answers Jira (or a proxy in front of it) gives and
asserts the connector's error type, its retries (recorded, never slept) and the
requests it sent.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connectors.base import (
    AuthError,
    ConnectorError,
    NewRecord,
    NotFound,
    RateLimited,
    RetriableError,
    Unreachable,
    ValidationFailed,
)
from connectors.jira import JiraConnector
from connectors.retry import RetryPolicy

BASE = "https://jira.example.test"
EMAIL = "integration@example.com"
TOKEN = "tok-S3CRET-9f8e7d6c5b4a"
SECRETS = (TOKEN, base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode())
FIELDS = [
    {"id": "summary", "name": "Summary", "clauseNames": ["summary"]},
    {"id": "updated", "name": "Updated", "clauseNames": ["updated"]},
    {"id": "customfield_10004", "name": "Impact", "clauseNames": ["cf[10004]", "Impact"]},
]


def api(cloud: bool, path: str) -> str:
    return f"{BASE}/rest/api/{3 if cloud else 2}/{path}"


def issue(key: str, updated: str, **fields: Any) -> dict[str, Any]:
    return {"id": key.split("-")[1], "key": key,
            "fields": {"updated": updated, "summary": f"about {key}", "labels": [], **fields}}


def opened(rsps: responses.RequestsMock, cloud: bool, sleeps: list[float],
           **options: Any) -> JiraConnector:
    rsps.get(f"{BASE}/rest/api/2/serverInfo",
             json={"versionNumbers": [1001, 0, 0] if cloud else [9, 12, 0],
                   "deploymentType": "Cloud" if cloud else "Server", "version": "x"})
    rsps.get(api(cloud, "myself"), json={"emailAddress": EMAIL, "name": "integration",
                                         "timeZone": "UTC"})
    rsps.get(api(cloud, "field"), json=FIELDS)
    arguments: dict[str, Any] = {"page_size": 2, **options}
    connector = JiraConnector(
        BASE, email=EMAIL if cloud else "", token=TOKEN, project="OPS",
        retry=RetryPolicy(sleep=sleeps.append, random=lambda: 1.0), **arguments,
    )
    connector.open()
    return connector


def search_url(cloud: bool) -> str:
    return api(cloud, "search/jql" if cloud else "search")


def query_of(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


@pytest.fixture
def rsps() -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def sleeps() -> list[float]:
    return []


# ---------------------------------------------------------------- flavors


def test_cloud_is_detected_and_speaks_v3_with_adf(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    assert connector._info is not None
    assert (connector._info.flavor, connector._info.text_format) == ("cloud", "adf")
    assert connector.field_ids["Impact"] == "customfield_10004"
    assert [c.request.url.split("?")[0] for c in rsps.calls] == [
        f"{BASE}/rest/api/2/serverInfo", api(True, "myself"), api(True, "field")]


def test_data_center_is_detected_and_speaks_v2_with_wiki(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, False, sleeps)
    assert connector._info is not None
    assert (connector._info.flavor, connector._info.text_format) == ("datacenter", "wiki")
    assert rsps.calls[1].request.headers["Authorization"].startswith("Bearer ")


def test_configured_flavor_wins_over_server_info(rsps: Any, sleeps: list[float]) -> None:
    rsps.get(f"{BASE}/rest/api/2/serverInfo",
             json={"versionNumbers": [9, 0, 0], "deploymentType": "Server"})
    rsps.get(api(True, "myself"), json={"accountId": "abc"})
    rsps.get(api(True, "field"), json=FIELDS)
    connector = JiraConnector(BASE, email=EMAIL, token=TOKEN, project="OPS", flavor="cloud",
                              retry=RetryPolicy(sleep=sleeps.append))
    assert connector.open().flavor == "cloud"


def test_cloud_pull_pages_by_token_on_search_jql_never_legacy_search(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.get(search_url(True), json={"issues": [issue("OPS-1", "2026-01-05T09:00:00.000+0000"),
                                                issue("OPS-2", "2026-01-05T09:01:00.000+0000")],
                                     "nextPageToken": "t1", "isLast": False})
    rsps.get(search_url(True), json={"issues": [issue("OPS-2", "2026-01-05T09:01:00.000+0000"),
                                                issue("OPS-3", "2026-01-05T09:02:00.000+0000")],
                                     "isLast": True})
    keys = [r.id for r in connector.pull(None, ["summary"])]
    assert keys == ["OPS-1", "OPS-2", "OPS-3"]  # the key repeated across pages comes once
    searches = [c for c in rsps.calls if "/search" in c.request.url]
    assert len(searches) == 2
    assert all(urlsplit(c.request.url).path.endswith("/rest/api/3/search/jql") for c in searches)
    first, second = (query_of(c) for c in searches)
    assert "startAt" not in first and first["maxResults"] == ["2"]
    assert second["nextPageToken"] == ["t1"]
    assert {"summary", "updated", "status", "labels", "comment"} <= set(first["fields"])
    assert first["jql"] == ['project = "OPS" ORDER BY updated ASC, key ASC']


def test_data_center_pull_pages_by_offset_on_v2_search(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, False, sleeps)
    rsps.get(search_url(False), json={"startAt": 0, "total": 3, "issues": [
        issue("OPS-1", "2026-01-05T09:00:00.000+0000"),
        issue("OPS-2", "2026-01-05T09:01:00.000+0000")]})
    rsps.get(search_url(False), json={"startAt": 1, "total": 3, "issues": [
        issue("OPS-2", "2026-01-05T09:01:00.000+0000"),
        issue("OPS-3", "2026-01-05T09:02:00.000+0000")]})
    assert [r.id for r in connector.pull(None, ["summary"])] == ["OPS-1", "OPS-2", "OPS-3"]
    searches = [query_of(c) for c in rsps.calls if "/search" in c.request.url]
    # each later page re-reads the previous page's last issue to notice shifts
    assert [(q["startAt"], q["maxResults"]) for q in searches] == [(["0"], ["2"]), (["1"], ["3"])]


def test_data_center_pull_rereads_when_an_update_shifts_the_results(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, False, sleeps)
    t = "2026-01-05T09:0{}:00.000+0000"
    # OPS-1 is updated after the first page: it re-sorts to the end and OPS-3
    # slides into the slot plain offsets would have skipped.
    rsps.get(search_url(False), json={"startAt": 0, "total": 4, "issues": [
        issue("OPS-1", t.format(1)), issue("OPS-2", t.format(2))]})
    moved = [issue("OPS-2", t.format(2)), issue("OPS-3", t.format(3)),
             issue("OPS-4", t.format(4)), issue("OPS-1", t.format(5))]
    rsps.get(search_url(False), json={"startAt": 1, "total": 4, "issues": moved[1:4]})
    rsps.get(search_url(False), json={"startAt": 0, "total": 4, "issues": moved[0:2]})
    rsps.get(search_url(False), json={"startAt": 1, "total": 4, "issues": moved[1:4]})
    pulled = [r.id for r in connector.pull(None, ["summary"])]
    assert sorted(pulled) == ["OPS-1", "OPS-2", "OPS-3", "OPS-4"]
    assert len(pulled) == 4


def test_data_center_results_that_never_settle_are_retriable(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, False, sleeps)
    rsps.get(search_url(False), json={"startAt": 0, "total": 9, "issues": [
        issue("OPS-1", "2026-01-05T09:00:00.000+0000"),
        issue("OPS-2", "2026-01-05T09:00:00.000+0000")]})
    with pytest.raises(RetriableError, match="kept moving"):
        list(connector.pull(None, ["summary"]))


def test_pull_since_drops_the_overlap_and_rounds_the_watermark_down(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.get(search_url(True), json={"issues": [
        issue("OPS-1", "2026-01-05T09:08:59.000+0000"),
        issue("OPS-2", "2026-01-05T09:10:30.000+0000")], "isLast": True})
    since = datetime(2026, 1, 5, 9, 10, 30, tzinfo=UTC)
    assert [r.id for r in connector.pull(since, ["summary"])] == ["OPS-2"]
    (call,) = [c for c in rsps.calls if "/search" in c.request.url]
    assert 'updated >= "2026-01-05 09:08"' in query_of(call)["jql"][0]


def test_empty_result_page_ends_the_pull_after_one_request(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.get(search_url(True), json={"issues": [], "isLast": True})
    assert list(connector.pull(None, ["summary"])) == []
    assert len([c for c in rsps.calls if "/search" in c.request.url]) == 1


def test_a_page_token_served_twice_is_a_pagination_loop(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    page = {"issues": [issue("OPS-1", "2026-01-05T09:00:00.000+0000")],
            "nextPageToken": "same", "isLast": False}
    rsps.get(search_url(True), json=page)
    with pytest.raises(RetriableError, match="pagination loop"):
        list(connector.pull(None, ["summary"]))


def test_truncated_embedded_comments_are_completed_per_issue(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, True, sleeps)
    embedded = {"comments": [{"id": "1", "body": "x", "created": "2026-01-05T09:00:00.000+0000",
                              "jsdPublic": True}], "total": 2, "maxResults": 1, "startAt": 0}
    rsps.get(search_url(True), json={"issues": [
        issue("OPS-1", "2026-01-05T09:00:00.000+0000", comment=embedded)], "isLast": True})
    rsps.get(api(True, "issue/OPS-1/comment"), json={"total": 2, "comments": [
        {"id": "1", "body": "x", "created": "2026-01-05T09:00:00.000+0000", "jsdPublic": True},
        {"id": "2", "body": "y", "created": "2026-01-05T09:01:00.000+0000",
         "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]}]})
    (record,) = connector.pull(None, ["summary"])
    assert [(c.id, c.visibility) for c in record.comments] == [("1", "public"), ("2", "internal")]
    assert "comment" not in record.fields


# ---------------------------------------------------------------- error translation


@pytest.mark.parametrize("cloud", [True, False])
def test_401_is_an_auth_error_with_advice_and_no_secret(
    rsps: Any, sleeps: list[float], cloud: bool
) -> None:
    connector = opened(rsps, cloud, sleeps)
    rsps.get(search_url(cloud), status=401, json={"errorMessages": ["Unauthorized"]})
    with pytest.raises(AuthError) as caught:
        list(connector.pull(None, ["summary"]))
    error = caught.value
    assert error.status == 401 and "token" in error.advice
    assert error.__cause__ is None and error.__suppress_context__
    for text in (str(error), repr(error), error.advice):
        assert not any(secret in text for secret in SECRETS)
    assert len([c for c in rsps.calls if "/search" in c.request.url]) == 1  # never retried


def test_403_names_the_user_and_the_permissions_to_grant(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.post(api(True, "issue/OPS-1/comment"), status=403,
              json={"errorMessages": ["You do not have permission to comment"]})
    with pytest.raises(AuthError) as caught:
        connector.add_comment("OPS-1", {"type": "doc", "version": 1, "content": []}, "internal")
    assert EMAIL in str(caught.value) and "Add comments" in caught.value.advice


@pytest.mark.parametrize("status", [404, 410])
def test_404_and_410_are_not_found(rsps: Any, sleeps: list[float], status: int) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.get(api(True, "issue/OPS-9"), status=status,
             json={"errorMessages": ["Issue does not exist or you do not have permission"]})
    with pytest.raises(NotFound, match=str(status)):
        connector.update("OPS-9", {"summary": "x"}, expected_version="v")


def test_429_sequence_is_retried_after_each_retry_after(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.get(search_url(True), status=429, headers={"Retry-After": "3"},
             json={"errorMessages": ["Rate limit exceeded."]})
    rsps.get(search_url(True), status=429, headers={"Retry-After": "1"},
             json={"errorMessages": ["Rate limit exceeded."]})
    rsps.get(search_url(True), json={"issues": [], "isLast": True})
    assert list(connector.pull(None, ["summary"])) == []
    assert sleeps == [3.0, 1.0]
    assert len([c for c in rsps.calls if "/search" in c.request.url]) == 3


def test_rate_limited_write_is_retried_too(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.post(api(True, "issue/OPS-1/comment"), status=429, headers={"Retry-After": "0"})
    rsps.post(api(True, "issue/OPS-1/comment"), status=201, json={
        "id": "7", "body": "hi", "created": "2026-01-05T09:00:00.000+0000", "jsdPublic": True})
    comment = connector.add_comment("OPS-1", "hi", "public")
    assert (comment.id, comment.visibility) == ("7", "public")
    assert sleeps == [0.0]


def test_503_with_retry_after_is_rate_limited(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    for _ in range(5):
        rsps.get(search_url(True), status=503, headers={"Retry-After": "2"})
    with pytest.raises(RateLimited) as caught:
        list(connector.pull(None, ["summary"]))
    assert caught.value.retry_after == 2.0 and sleeps == [2.0] * 4


@pytest.mark.parametrize("status", [500, 502])
def test_html_error_page_from_a_proxy_is_retriable_naming_url_and_status(
    rsps: Any, sleeps: list[float], status: int
) -> None:
    connector = opened(rsps, False, sleeps)
    for _ in range(5):
        rsps.get(search_url(False), status=status, content_type="text/html",
                 body="<html><body><h1>Bad Gateway</h1></body></html>")
    with pytest.raises(RetriableError) as caught:
        list(connector.pull(None, ["summary"]))
    text = str(caught.value)
    assert f"HTTP {status}" in text and "/rest/api/2/search" in text and "<html" not in text
    assert len(sleeps) == 4  # idempotent read: all five attempts used


def test_server_error_on_a_write_is_not_retried(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.post(api(True, "issue/OPS-1/comment"), status=500,
              json={"errorMessages": ["Internal server error"]})
    with pytest.raises(RetriableError, match="Internal server error"):
        connector.add_comment("OPS-1", "x", "internal")
    assert len([c for c in rsps.calls if c.request.method == "POST"]) == 1 and sleeps == []


def test_truncated_json_is_retriable_and_names_url_and_status(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, True, sleeps)
    for _ in range(5):
        rsps.get(search_url(True), body='{"issues": [{"key": "OPS-1", "fie',
                 content_type="application/json")
    with pytest.raises(RetriableError) as caught:
        list(connector.pull(None, ["summary"]))
    assert "invalid JSON" in str(caught.value) and "HTTP 200" in str(caught.value)
    assert "/rest/api/3/search/jql" in str(caught.value)


def test_400_is_validation_failed_with_the_vendors_field_messages(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.put(api(True, "issue/OPS-1"), status=400, json={
        "errorMessages": [], "errors": {"customfield_10004": "Option id 'x' is not valid"}})
    with pytest.raises(ValidationFailed) as caught:
        connector.update("OPS-1", {"customfield_10004": {"value": "x"}})
    assert caught.value.fields == {"customfield_10004": "Option id 'x' is not valid"}
    assert "customfield_10004" in str(caught.value)


def test_edit_without_admin_rights_falls_back_to_notifying(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.put(api(True, "issue/OPS-1"), status=403, json={"errorMessages": [
        "To discard the user notification either admin or project admin permissions required."]})
    rsps.put(api(True, "issue/OPS-1"), status=204)
    rsps.get(api(True, "issue/OPS-1"), json={"key": "OPS-1", "fields": {
        "updated": "2026-01-05T09:00:00.000+0000"}})
    result = connector.update("OPS-1", {"summary": "new"})
    assert result.ok and result.version == "2026-01-05T09:00:00.000+0000"
    puts = [c for c in rsps.calls if c.request.method == "PUT"]
    assert [query_of(c).get("notifyUsers") for c in puts] == [["false"], None]
    assert json.loads(puts[1].request.body) == {"fields": {"summary": "new"}}


def test_connection_refused_is_unreachable_without_secrets() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = JiraConnector(f"http://127.0.0.1:{port}", email=EMAIL, token=TOKEN,
                              project="OPS", retry=RetryPolicy(sleep=lambda s: None))
    with pytest.raises(Unreachable) as caught:
        connector.open()
    assert str(port) in str(caught.value)
    assert not any(s in str(caught.value) + repr(caught.value) for s in SECRETS)
    assert caught.value.__cause__ is None


def test_credentials_never_reach_logs_or_errors(
    rsps: Any, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "jira", "connectors"):
        caplog.set_level(logging.DEBUG, logger=name)
    connector = opened(rsps, True, sleeps)
    errors: list[ConnectorError] = []
    rsps.get(search_url(True), status=401, json={"errorMessages": ["nope"]})
    rsps.post(api(True, "issue/OPS-1/comment"), status=500, body="<html>oops</html>",
              content_type="text/html")
    rsps.get(api(True, "issue/OPS-2"), body="{trunc")
    for action in (lambda: list(connector.pull(None, ["summary"])),
                   lambda: connector.add_comment("OPS-1", "x", "public"),
                   lambda: connector.update("OPS-2", {}, expected_version="v")):
        with pytest.raises(ConnectorError) as caught:
            action()
        errors.append(caught.value)
    logging.getLogger("urllib3").debug("probe")  # the capture works at DEBUG
    assert "probe" in caplog.text
    exposed = caplog.text + "".join(str(e) + repr(e) for e in errors) + repr(connector)
    assert not any(secret in exposed for secret in SECRETS)


def test_cloud_429_without_retry_after_waits_until_the_rate_limit_reset(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.get(search_url(True), status=429, headers={"X-RateLimit-Reset": "2999-01-01T00:00Z"})
    rsps.get(search_url(True), json={"issues": [], "isLast": True})
    assert list(connector.pull(None, ["summary"])) == []
    assert sleeps == [60.0]  # the reset is far away: capped by the policy's max_wait


def test_naive_watermark_is_taken_as_utc(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.get(search_url(True), json={"issues": [
        issue("OPS-1", "2026-01-05T09:59:00.000+0000"),
        issue("OPS-2", "2026-01-05T10:00:00.000+0000")], "isLast": True})
    assert [r.id for r in connector.pull(datetime(2026, 1, 5, 10, 0), ["summary"])] == ["OPS-2"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"flavor": "server"}, "flavor: Input should be 'auto', 'cloud' or 'datacenter'"),
        ({"flavor": "cloud", "email": ""}, "email: Jira Cloud needs"),
        ({"token": ""}, "token: missing"),
        ({"page_size": 0}, "page_size: Input should be greater than or equal to 1 (got 0)"),
        ({"jql": "status = Open ORDER BY key"}, "jql: must not contain ORDER BY"),
        ({"marker_field": "summary"}, "marker_field: String should match pattern '^customfield_"),
        ({"overlap_minutes": 0}, "overlap_minutes: Input should be greater than or equal to 1"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_key(options: dict, message: str) -> None:
    arguments: dict[str, Any] = {"email": EMAIL, "token": TOKEN, "project": "OPS", **options}
    with pytest.raises(ValueError) as caught:
        JiraConnector(BASE, **arguments)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_use_before_open_is_a_programming_error() -> None:
    connector = JiraConnector(BASE, email=EMAIL, token=TOKEN, project="OPS")
    with pytest.raises(RuntimeError, match="before open"):
        connector.get_many(["OPS-1"], ["summary"])
    assert TOKEN not in repr(connector)


def test_dc_comments_without_visibility_are_reread_with_their_properties(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, False, sleeps)
    bare = [{"id": "1", "body": "hello", "created": "2026-01-05T09:00:00.000+0000"},
            {"id": "2", "body": "agents", "created": "2026-01-05T09:01:00.000+0000"}]
    rsps.get(search_url(False), json={"startAt": 0, "total": 2, "issues": [
        issue("OPS-1", "2026-01-05T09:01:00.000+0000",
              comment={"comments": bare, "total": 2, "startAt": 0, "maxResults": 2}),
        issue("OPS-2", "2026-01-05T09:02:00.000+0000",
              comment={"comments": [], "total": 0, "startAt": 0, "maxResults": 0})]})
    rsps.get(api(False, "issue/OPS-1/comment"), json={"total": 2, "comments": [
        {**bare[0], "properties": []},
        {**bare[1], "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]}]})
    first, second = connector.pull(None, ["summary"])
    assert [c.visibility for c in first.comments] == ["public", "internal"]
    rereads = [c for c in rsps.calls if "/comment" in c.request.url]
    assert len(rereads) == 1 and query_of(rereads[0])["expand"] == ["properties"]
    assert second.comments == []


def test_retry_after_reads_seconds_and_http_dates_and_ignores_junk() -> None:
    from connectors.jira_errors import reset_wait
    from connectors.retry import parse_retry_after as retry_after

    assert retry_after("7") == 7.0 and retry_after("-3") == 0.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past
    assert (retry_after("Fri, 01 Jan 2999 00:00:00 GMT") or 0) > 3600
    assert retry_after("soon") is None and retry_after(None) is None
    assert reset_wait("2015-01-01T00:00Z") == 0.0 and reset_wait("garbage") is None


def test_library_refusals_without_http_become_validation_errors(
    rsps: Any, sleeps: list[float]
) -> None:
    from jira import JIRAError

    connector = opened(rsps, True, sleeps)
    error = connector._translate(JIRAError("Invalid transition name. Foo"), "transition")
    assert isinstance(error, ValidationFailed) and "Invalid transition name" in str(error)


def test_many_missing_keys_are_all_dropped_in_one_retry(rsps: Any, sleeps: list[float]) -> None:
    connector = opened(rsps, True, sleeps, page_size=100)
    missing = [f"OPS-{n}" for n in range(100, 130)]
    rsps.get(search_url(True), status=400, json={"errorMessages": [
        f"An issue with key '{key}' does not exist for field 'key'." for key in missing]})
    rsps.get(search_url(True), json={"issues": [issue("OPS-1", "2026-01-05T09:00:00.000+0000")],
                                     "isLast": True})
    found = connector.get_many(["OPS-1", *missing], ["summary"])
    assert list(found) == ["OPS-1"]
    searches = [query_of(c)["jql"][0] for c in rsps.calls if "/search" in c.request.url]
    assert len(searches) == 2 and searches[1].startswith('key in ("OPS-1") ')


def test_the_connector_satisfies_the_protocol() -> None:
    from connectors.base import Connector, Side

    connector = JiraConnector(BASE, email=EMAIL, token=TOKEN, project="OPS", page_size=7)
    assert isinstance(connector, Connector) and connector.side is Side.JIRA
    assert connector.page_size == connector.config.page_size == 7


def test_read_timeout_is_retriable_and_connect_timeout_unreachable(
    rsps: Any, sleeps: list[float]
) -> None:
    import requests

    connector = opened(rsps, True, sleeps, timeout=7.5)
    for _ in range(5):
        rsps.get(search_url(True), body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(RetriableError, match=r"no answer within 7\.5s"):
        list(connector.pull(None, ["summary"]))
    assert len(sleeps) == 4
    rsps.get(api(True, "issue/OPS-1"), body=requests.exceptions.ConnectTimeout("syn lost"))
    with pytest.raises(Unreachable):
        connector.update("OPS-1", {}, expected_version="v")


def test_every_request_carries_the_configured_timeout(
    rsps: Any, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = opened(rsps, True, sleeps, timeout=7.5)
    seen: list[Any] = []
    send = connector._meter.send

    def recording(request: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("timeout"))
        return send(request, *args, **kwargs)

    monkeypatch.setattr(connector._meter, "send", recording)
    rsps.get(search_url(True), json={"issues": [], "isLast": True})
    rsps.get(api(True, "issue/OPS-1"), json={"key": "OPS-1", "fields": {"updated": "x"}})
    list(connector.pull(None, ["summary"]))
    connector.update("OPS-1", {}, expected_version="x")
    assert seen == [7.5, 7.5]  # the search, and the version read (nothing to write)


def test_an_answer_of_the_wrong_shape_is_retriable_not_a_crash(
    rsps: Any, sleeps: list[float]
) -> None:
    connector = opened(rsps, True, sleeps)
    rsps.get(api(True, "project/OPS"), json={"id": "10000", "issueTypes": [
        {"id": "10001", "name": "Incident"}]})
    rsps.post(api(True, "issue/bulk"), status=201, json={"unexpected": True})
    (result,) = connector.create([NewRecord({"summary": "s"}, "f")])
    assert isinstance(result.error, RetriableError)
    assert "unexpected answer" in str(result.error) and "issue/bulk" in str(result.error)
