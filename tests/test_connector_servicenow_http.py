"""HTTP edge cases of the ServiceNow connector, scripted with ``responses``, and the
guarantee that credentials never reach logs or error texts."""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
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
from connectors.retry import RequestBudget, RetryPolicy
from connectors.sandbox.http import Fault
from connectors.sandbox.servicenow import ServiceNowSandbox
from connectors.servicenow import ServiceNowConnector

BASE = "https://sn.example.test"
LIST = f"{BASE}/api/now/table/incident"
JOURNAL = f"{BASE}/api/now/table/sys_journal_field"
SECRET = "Hunter2-s3cret-Pa55"
SYS_ID = "a" * 32


def row(n: int = 1) -> dict[str, str]:
    return {"sys_id": f"{n:032x}", "number": f"INC{n:07d}", "sys_mod_count": "0",
            "sys_updated_on": "2026-01-05 09:00:00", "correlation_id": "",
            "short_description": f"Row {n}"}


def error_body(message: str, detail: str = "") -> dict[str, Any]:
    return {"error": {"message": message, "detail": detail}, "status": "failure"}


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connector(sleeps: list[float]) -> ServiceNowConnector:
    return ServiceNowConnector(BASE, "integration.user", SECRET, page_size=5,
                               retry=RetryPolicy(sleep=sleeps.append, random=lambda: 0.0,
                                                 max_attempts=3))


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def assert_secret_free(error: BaseException) -> None:
    for text in (str(error), repr(error), str(getattr(error, "advice", ""))):
        assert SECRET not in text
        assert base64.b64encode(f"integration.user:{SECRET}".encode()).decode() not in text


# --------------------------------------------------------------------------- status codes


def test_401_is_an_auth_error_naming_the_user_with_advice_and_no_password(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(LIST, status=401, json=error_body("User Not Authenticated",
                                                 "Required to provide Auth information"))
    with pytest.raises(AuthError) as caught:
        connector.get_many([SYS_ID], ["short_description"])
    error = caught.value
    assert error.status == 401 and "integration.user" in str(error)
    assert "password" in error.advice
    assert len(mocked.calls) == 1
    assert_secret_free(error)


def test_403_on_a_read_is_a_missing_permission(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(LIST, status=403, json=error_body("Operation Failed", "ACL restricts read"))
    with pytest.raises(AuthError) as caught:
        list(connector.pull(None, ["short_description"]))
    assert "itil" in caught.value.advice and "ACL restricts read" in str(caught.value)


def test_403_data_policy_on_a_write_is_a_validation_failure_naming_fields(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.patch(f"{LIST}/{SYS_ID}", status=403, json=error_body(
        "Operation Failed", "Data Policy Exception: \n Close code is mandatory\n"))
    with pytest.raises(ValidationFailed) as caught:
        connector.update(SYS_ID, {"state": "6", "close_notes": "done"})
    assert caught.value.fields == {"close_code": "mandatory"}
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("status", [404, 410])
def test_404_and_410_are_not_found(
    status: int, connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.patch(f"{LIST}/{SYS_ID}", status=status, json=error_body(
        "No Record found", "Record doesn't exist or ACL restricts the record retrieval"))
    with pytest.raises(NotFound) as caught:
        connector.update(SYS_ID, {"short_description": "x"})
    assert caught.value.status == status


def test_400_is_a_validation_failure_with_the_vendors_message(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.patch(f"{LIST}/{SYS_ID}", status=400,
                 json=error_body("Invalid value for state", "state: 42 is not a choice"))
    with pytest.raises(ValidationFailed) as caught:
        connector.update(SYS_ID, {"state": "42"})
    assert caught.value.fields == {"Invalid value for state": "state: 42 is not a choice"}


def test_429_sequence_is_retried_after_each_retry_after(
    connector: ServiceNowConnector, mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    limit = error_body("Rate limit exceeded", "Rate limit of 100 requests per hour")
    mocked.get(LIST, status=429, json=limit, headers={"Retry-After": "3"})
    mocked.get(LIST, status=429, json=limit, headers={"Retry-After": "1"})
    mocked.get(LIST, json={"result": [row(1)]})
    mocked.get(JOURNAL, json={"result": []})
    assert list(connector.get_many([row(1)["sys_id"]], ["short_description"]))
    assert sleeps == [3.0, 1.0]
    assert len(mocked.calls) == 4


def test_429_with_an_http_date_retry_after_and_503_with_retry_after_are_rate_limits(
    connector: ServiceNowConnector, mocked: responses.RequestsMock, sleeps: list[float]
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=600), usegmt=True)
    mocked.get(LIST, status=429, json=error_body("Rate limit exceeded"),
               headers={"Retry-After": later})
    mocked.get(LIST, status=503, json=error_body("Service Unavailable"),
               headers={"Retry-After": "2"})
    mocked.get(LIST, status=503, json=error_body("Service Unavailable"),
               headers={"Retry-After": "2"})
    with pytest.raises(RateLimited) as caught:
        connector.get_many([SYS_ID], ["short_description"])
    assert caught.value.retry_after == 2.0
    assert sleeps == [connector.retry.max_wait, 2.0]  # the date is 10 minutes away: capped


@pytest.mark.parametrize("status", [500, 502])
def test_html_error_pages_from_a_proxy_are_retriable_and_named(
    status: int, connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    page = "<html><body><h1>Bad Gateway</h1></body></html>"
    mocked.get(LIST, status=status, body=page, content_type="text/html")
    with pytest.raises(RetriableError) as caught:
        connector.get_many([SYS_ID], ["short_description"])
    text = str(caught.value)
    assert str(status) in text and LIST in text and "non-JSON" in text
    assert "<html>" not in text
    assert len(mocked.calls) == 3  # max_attempts, all idempotent reads


def test_503_without_retry_after_is_retriable_not_a_rate_limit(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(LIST, status=503, json=error_body("Service Unavailable"))
    with pytest.raises(RetriableError) as caught:
        connector.get_many([SYS_ID], ["short_description"])
    assert not isinstance(caught.value, RateLimited)


def test_truncated_json_is_retriable_naming_the_url(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(LIST, body='{"result": [{"sys_id": "abc", "number": "INC', status=200)
    with pytest.raises(RetriableError) as caught:
        list(connector.pull(None, ["short_description"]))
    assert "invalid or truncated" in str(caught.value) and LIST in str(caught.value)
    assert "status 200" in str(caught.value) and caught.value.status == 200


def test_a_body_without_result_is_retriable(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(LIST, json={"unexpected": True})
    with pytest.raises(RetriableError):
        list(connector.pull(None, ["short_description"]))


def test_empty_result_page_ends_the_pull_in_one_request(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(LIST, json={"result": []})
    assert list(connector.pull(None, ["short_description"])) == []
    assert len(mocked.calls) == 1


def test_a_server_that_ignores_the_keyset_is_caught_instead_of_looping(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    same_page = {"result": [row(n) for n in range(1, 6)]}
    mocked.get(LIST, json=same_page)
    mocked.get(JOURNAL, json={"result": []})
    with pytest.raises(RetriableError, match="did not advance"):
        list(connector.pull(None, ["short_description"]))


def test_dropped_connection_and_read_timeout_are_retriable(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.get(LIST, body=requests.ConnectionError("Connection aborted: RemoteDisconnected"))
    mocked.get(LIST, body=requests.ReadTimeout("read timed out"))
    mocked.get(LIST, json={"result": []})
    assert connector.get_many([SYS_ID], ["short_description"]) == {}
    assert len(mocked.calls) == 3


def test_a_dropped_write_is_not_repeated(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.patch(f"{LIST}/{SYS_ID}", body=requests.ConnectionError("reset by peer"))
    with pytest.raises(RetriableError):
        connector.update(SYS_ID, {"short_description": "x"})
    assert len(mocked.calls) == 1


def test_batch_api_item_errors_become_per_item_results(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    created = base64.b64encode(b'{"result": {"sys_id": "' + b"b" * 32 +
                               b'", "number": "INC0010001", "sys_mod_count": "0"}}').decode()
    refused = base64.b64encode(b'{"error": {"message": "Operation Failed", "detail": '
                               b'"Data Policy Exception: Close notes is mandatory"}}').decode()
    mocked.post(f"{BASE}/api/now/v1/batch", json={
        "batch_request_id": "incident-sync-0",
        "serviced_requests": [
            {"id": "0", "status_code": 201, "status_text": "Created", "body": created},
            {"id": "1", "status_code": 403, "status_text": "Forbidden", "body": refused},
        ],
        "unserviced_requests": [],
    })
    results = connector.create([NewRecord({"short_description": "ok"}, "OPS-1"),
                                NewRecord({"short_description": "no"}, "OPS-2")])
    assert results[0].ok and results[0].id == "b" * 32 and results[0].display == "INC0010001"
    assert isinstance(results[1].error, ValidationFailed)
    assert results[1].error.fields == {"close_notes": "mandatory"}


def test_request_budget_spaces_requests(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    connector.budget = RequestBudget(2, clock=lambda: now[0], sleep=sleep)
    mocked.get(LIST, json={"result": []})
    for _ in range(3):
        connector.get_many([SYS_ID], ["short_description"])
    assert waits == [60.0]
    assert len(mocked.calls) == 3


# --------------------------------------------------------------------------- construction


def test_instance_url_is_validated_without_echoing_credentials() -> None:
    with pytest.raises(ValueError, match="http"):
        ServiceNowConnector("ftp://sn.example.test", "u", SECRET)
    with pytest.raises(ValueError, match="without path") as caught:
        ServiceNowConnector(f"https://u:{SECRET}@sn.example.test/nav", "u", SECRET)
    assert SECRET not in str(caught.value)
    with pytest.raises(ValueError, match="page_size"):
        ServiceNowConnector(BASE, "u", SECRET, page_size=0)
    with pytest.raises(ValueError, match="password"):
        ServiceNowConnector(BASE, "u", "")


def test_service_now_cloud_url_uses_the_instance_name() -> None:
    connector = ServiceNowConnector("https://dev12345.service-now.com/", "u", SECRET)
    assert connector.client.base_url == "https://dev12345.service-now.com"
    assert SECRET not in repr(connector)


# --------------------------------------------------------------------------- secrets


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_is_unreachable(sleeps: list[float]) -> None:
    connector = ServiceNowConnector(f"http://127.0.0.1:{free_port()}", "integration.user",
                                    SECRET, timeout=2, retry=RetryPolicy(sleep=sleeps.append))
    with pytest.raises(Unreachable) as caught:
        connector.open()
    assert "unreachable" in str(caught.value)
    assert_secret_free(caught.value)
    assert sleeps == []  # fatal: not retried


def test_credentials_never_reach_logs_or_error_texts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "pysnow", "connectors"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    errors: list[ConnectorError] = []
    with ServiceNowSandbox(username="integration.user", password=SECRET) as sandbox:
        sandbox.insert("incident", {"short_description": "Visible"})
        good = ServiceNowConnector(sandbox.url, "integration.user", SECRET,
                                   retry=RetryPolicy(sleep=lambda s: None, max_attempts=2))
        good.open()
        assert len(list(good.pull(None, ["short_description"]))) == 1
        sandbox.faults.script.extend([Fault("500"), Fault("500")])
        with pytest.raises(RetriableError) as server_error:
            list(good.pull(None, ["short_description"]))
        errors.append(server_error.value)
        bad = ServiceNowConnector(sandbox.url, "integration.user", SECRET + "-wrong",
                                  retry=RetryPolicy(sleep=lambda s: None))
        with pytest.raises(AuthError) as auth_error:
            bad.open()
        errors.append(auth_error.value)
        port = sandbox.port
    with pytest.raises(Unreachable) as refused:
        ServiceNowConnector(f"http://127.0.0.1:{port}", "integration.user", SECRET,
                            retry=RetryPolicy(sleep=lambda s: None)).open()
    errors.append(refused.value)
    assert caplog.records, "debug logging was not captured"
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert SECRET not in logged
    assert base64.b64encode(f"integration.user:{SECRET}".encode()).decode() not in logged
    for error in errors:
        assert_secret_free(error)


def test_a_failed_batch_request_fails_each_item_without_repeating_the_writes(
    connector: ServiceNowConnector, mocked: responses.RequestsMock
) -> None:
    mocked.post(f"{BASE}/api/now/v1/batch", status=500, json=error_body("Internal error"))
    results = connector.create([NewRecord({"short_description": f"n{n}"}, f"OPS-{n}")
                                for n in range(3)])
    assert [type(r.error) for r in results] == [RetriableError] * 3
    assert len(mocked.calls) == 1
