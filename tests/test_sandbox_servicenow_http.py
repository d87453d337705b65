"""The ServiceNow sandbox over plain HTTP: headers, errors, PATCH, Batch API, faults."""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connectors.sandbox.http import Fault, FaultPlan
from connectors.sandbox.servicenow import ServiceNowSandbox

JSON = {"Accept": "application/json", "Content-Type": "application/json"}
AUTH = ("admin", "sandbox")


@pytest.fixture
def sandbox() -> Iterator[ServiceNowSandbox]:
    with ServiceNowSandbox(seed_incidents=5, seed=2) as server:
        yield server


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.auth = AUTH
        session.headers.update(JSON)
        yield session


def test_wrong_password_gets_the_documented_401(sandbox: ServiceNowSandbox) -> None:
    response = requests.get(f"{sandbox.url}/api/now/table/incident", auth=("admin", "nope"))
    assert response.status_code == 401
    assert response.json() == {"error": {"message": "User Not Authenticated",
                                         "detail": "Required to provide Auth information"},
                               "status": "failure"}
    assert requests.get(f"{sandbox.url}/api/now/table/incident").status_code == 401


def test_write_without_content_type_is_400(sandbox: ServiceNowSandbox) -> None:
    response = requests.post(f"{sandbox.url}/api/now/table/incident", auth=AUTH,
                             data=b'{"short_description": "x"}',
                             headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["detail"] == "Missing Content-Type header"
    assert sandbox.rows("incident")[-1]["short_description"] != "x"


def test_missing_accept_is_400_and_unacceptable_accept_406(sandbox: ServiceNowSandbox) -> None:
    url = f"{sandbox.url}/api/now/table/incident"
    assert requests.get(url, auth=AUTH, headers={"Accept": ""}).status_code == 400
    assert requests.get(url, auth=AUTH, headers={"Accept": "text/html"}).status_code == 406


def test_json_content_type_variants_are_accepted(sandbox: ServiceNowSandbox) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8",
                         "Application/JSON;charset=UTF-8"):
        response = requests.post(
            f"{sandbox.url}/api/now/table/incident", auth=AUTH,
            data=json.dumps({"short_description": content_type}),
            headers={"Accept": "application/json, text/plain, */*",
                     "Content-Type": content_type})
        assert response.status_code == 201, response.text


def test_other_content_type_is_415(sandbox: ServiceNowSandbox) -> None:
    response = requests.post(f"{sandbox.url}/api/now/table/incident", auth=AUTH,
                             data="short_description=x",
                             headers={"Accept": "application/json",
                                      "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415


def test_invalid_json_is_400(sandbox: ServiceNowSandbox, http: requests.Session) -> None:
    response = http.post(f"{sandbox.url}/api/now/table/incident", data=b"{not json")
    assert response.status_code == 400
    assert response.json()["status"] == "failure"


def test_post_returns_201_with_location(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    response = http.post(f"{sandbox.url}/api/now/table/incident",
                         json={"short_description": "Mail down", "impact": 1, "urgency": 1})
    assert response.status_code == 201
    record = response.json()["result"]
    assert response.headers["Location"] == (
        f"{sandbox.url}/api/now/table/incident/{record['sys_id']}")
    assert record["priority"] == "1" and record["impact"] == "1"  # numbers stored as text


def test_only_the_first_of_several_records_is_used(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    before = len(sandbox.rows("incident"))
    response = http.post(f"{sandbox.url}/api/now/table/incident",
                         json=[{"short_description": "one"}, {"short_description": "two"}])
    assert response.json()["result"]["short_description"] == "one"
    assert len(sandbox.rows("incident")) == before + 1


def test_patch_is_partial(sandbox: ServiceNowSandbox, http: requests.Session) -> None:
    target = sandbox.rows("incident")[0]
    response = http.patch(f"{sandbox.url}/api/now/table/incident/{target['sys_id']}",
                          json={"description": "Patched"})
    assert response.status_code == 200
    record = response.json()["result"]
    assert record["description"] == "Patched"
    assert record["short_description"] == target["short_description"]


def test_no_response_body_header(sandbox: ServiceNowSandbox, http: requests.Session) -> None:
    target = sandbox.rows("incident")[0]
    response = http.patch(f"{sandbox.url}/api/now/table/incident/{target['sys_id']}",
                          json={"description": "quiet"},
                          headers={"X-no-response-body": "true"})
    assert response.status_code == 200 and response.content == b""
    assert sandbox.get("incident", target["sys_id"])["description"] == "quiet"


def test_input_display_value_resolves_people_by_email(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    response = http.post(
        f"{sandbox.url}/api/now/table/incident",
        params={"sysparm_input_display_value": "True", "sysparm_exclude_reference_link": "true"},
        json={"short_description": "x", "caller_id": "ines.moreau@example.com",
              "assignment_group": "Database", "state": "In Progress"})
    assert response.status_code == 201, response.text
    record = response.json()["result"]
    assert record["caller_id"] == sandbox.user_sys_id("ines.moreau")
    assert record["assignment_group"] == sandbox.group_sys_id("Database")
    assert record["state"] == "2"


def test_email_without_input_display_value_is_refused(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    response = http.post(f"{sandbox.url}/api/now/table/incident",
                         json={"short_description": "x", "caller_id": "ines.moreau@example.com"})
    assert response.status_code == 400
    assert "caller_id" in response.json()["error"]["detail"]


def test_delete_is_204_without_body(sandbox: ServiceNowSandbox, http: requests.Session) -> None:
    target = sandbox.rows("incident")[0]
    url = f"{sandbox.url}/api/now/table/incident/{target['sys_id']}"
    response = http.delete(url)
    assert response.status_code == 204 and response.content == b""
    missing = http.get(url)
    assert missing.status_code == 404
    assert missing.json() == {"error": {
        "message": "No Record found",
        "detail": "Record doesn't exist or ACL restricts the record retrieval"},
        "status": "failure"}


def test_empty_list_v1_is_404_but_latest_and_v2_are_empty_200(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    params = {"sysparm_query": "number=INC0000000"}
    v1 = http.get(f"{sandbox.url}/api/now/v1/table/incident", params=params)
    assert v1.status_code == 404 and v1.json()["error"]["message"] == "No Record found"
    for path in ("/api/now/table/incident", "/api/now/v2/table/incident"):
        response = http.get(sandbox.url + path, params=params)
        assert response.status_code == 200 and response.json() == {"result": []}
        assert response.headers["X-Total-Count"] == "0"


def test_unknown_table_and_wrong_method(sandbox: ServiceNowSandbox, http: requests.Session
                                        ) -> None:
    response = http.get(f"{sandbox.url}/api/now/table/incidnet")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Invalid table incidnet"
    assert http.put(f"{sandbox.url}/api/now/table/incident", json={}).status_code == 405


def test_journal_is_read_only_over_http(sandbox: ServiceNowSandbox, http: requests.Session
                                        ) -> None:
    response = http.post(f"{sandbox.url}/api/now/table/sys_journal_field", json={"value": "x"})
    assert response.status_code == 403


def test_count_and_pagination_headers_can_be_suppressed(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    url = f"{sandbox.url}/api/now/table/incident"
    paged = http.get(url, params={"sysparm_limit": "2"})
    assert paged.headers["X-Total-Count"] == "5" and "Link" in paged.headers
    assert paged.links["next"]["url"].endswith("sysparm_offset=2&sysparm_limit=2")
    quiet = http.get(url, params={"sysparm_limit": "2", "sysparm_no_count": "true",
                                  "sysparm_suppress_pagination_header": "TRUE"})
    assert "X-Total-Count" not in quiet.headers and "Link" not in quiet.headers
    assert len(quiet.json()["result"]) == 2


def test_name_value_pairs_filter_like_a_query(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    target = sandbox.rows("incident")[2]
    response = http.get(f"{sandbox.url}/api/now/table/incident",
                        params={"number": target["number"], "sysparm_fields": "sys_id"})
    assert response.json()["result"] == [{"sys_id": target["sys_id"]}]


def test_display_value_is_case_insensitive(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    response = http.get(f"{sandbox.url}/api/now/table/incident",
                        params={"sysparm_display_value": "True", "sysparm_fields": "active",
                                "sysparm_limit": "1"})
    assert response.json()["result"] == [{"active": "true"}]


def test_data_policy_error_body_over_http(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    target = sandbox.rows("incident")[0]
    response = http.patch(f"{sandbox.url}/api/now/table/incident/{target['sys_id']}",
                          json={"state": "6"})
    assert response.status_code == 403
    assert response.json() == {"error": {
        "message": "Operation Failed",
        "detail": "Data Policy Exception: \n Close code is mandatory\n Close notes is mandatory"},
        "status": "failure"}


# --------------------------------------------------------------------------- batch


def _b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def _unb64(text: str) -> Any:
    raw = base64.b64decode(text)
    return json.loads(raw) if raw else None


def test_batch_runs_each_request_with_its_own_status(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    target = sandbox.rows("incident")[0]
    headers = [{"name": "Content-Type", "value": "application/json"},
               {"name": "Accept", "value": "application/json"}]
    body = {"batch_request_id": "b-1", "rest_requests": [
        {"id": "11", "method": "GET", "url": "/api/now/table/incident?sysparm_limit=1",
         "headers": headers[1:], "exclude_response_headers": True},
        {"id": "12", "method": "POST", "url": "/api/now/table/incident", "headers": headers,
         "body": _b64({"short_description": "From batch", "impact": "1", "urgency": "2"})},
        {"id": "13", "method": "PATCH", "url": f"/api/now/v1/table/incident/{target['sys_id']}",
         "headers": headers, "body": _b64({"state": "6"})},
        {"id": "14", "method": "DELETE", "url": "/api/now/table/incident/" + "f" * 32,
         "headers": headers},
    ]}
    response = http.post(f"{sandbox.url}/api/now/v1/batch", json=body)
    assert response.status_code == 200
    result = response.json()
    assert result["batch_request_id"] == "b-1" and result["unserviced_requests"] == []
    items = {item["id"]: item for item in result["serviced_requests"]}
    assert [items[i]["status_code"] for i in ("11", "12", "13", "14")] == [200, 201, 403, 404]
    assert "headers" not in items["11"]
    assert len(_unb64(items["11"]["body"])["result"]) == 1
    created = _unb64(items["12"]["body"])["result"]
    assert created["priority"] == "2"
    assert {"name": "Location",
            "value": f"{sandbox.url}/api/now/table/incident/{created['sys_id']}"} in \
        items["12"]["headers"]
    assert items["13"]["error_message"] == "Operation Failed"
    assert items["12"]["status_text"] == "Created"
    # Each inner request is logged too, as well as the batch itself.
    assert sandbox.log.count("POST", "/api/now/v1/batch") == 1
    assert sandbox.log.count("POST", "/api/now/table/incident", status=201) == 1
    assert sandbox.log.count("PATCH", status=403) == 1


def test_batch_items_over_the_limit_are_unserviced(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    sandbox.max_batch_items = 2
    requests_ = [{"id": str(i), "method": "GET", "url": "/api/now/table/sys_user?sysparm_limit=1",
                  "headers": [{"name": "Accept", "value": "application/json"}]}
                 for i in range(4)]
    result = http.post(f"{sandbox.url}/api/now/v1/batch",
                       json={"batch_request_id": "7", "rest_requests": requests_}).json()
    assert [item["id"] for item in result["serviced_requests"]] == ["0", "1"]
    assert result["unserviced_requests"] == ["2", "3"]


def test_batch_needs_authentication(sandbox: ServiceNowSandbox) -> None:
    response = requests.post(f"{sandbox.url}/api/now/v1/batch", headers=JSON,
                             json={"batch_request_id": "1", "rest_requests": []})
    assert response.status_code == 401


def test_batch_item_missing_fields_is_a_400_item(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    result = http.post(f"{sandbox.url}/api/now/v1/batch", json={
        "batch_request_id": "1", "rest_requests": [{"id": "1", "method": "GET"}]}).json()
    assert result["serviced_requests"][0]["status_code"] == 400


# --------------------------------------------------------------------------- faults


def test_scripted_429_then_success(sandbox: ServiceNowSandbox, http: requests.Session) -> None:
    sandbox.faults = FaultPlan(script=[Fault("429", retry_after=0)])
    url = f"{sandbox.url}/api/now/table/incident"
    limited = http.get(url)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "0"
    assert limited.headers["X-RateLimit-Limit"] == "100"
    assert int(limited.headers["X-RateLimit-Reset"]) > 0
    assert limited.headers["X-RateLimit-Rule"]
    assert "X-RateLimit-Remaining" not in limited.headers
    assert limited.json() == {"error": {
        "message": "Rate limit exceeded",
        "detail": "Rate limit of 100 requests per hour for Table API exceeded"},
        "status": "failure"}
    assert http.get(url).status_code == 200
    assert sandbox.log.count("GET", status=429) == 1 and sandbox.log.count("GET", status=200) == 1


def test_dropped_connection_is_seen_by_the_client(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    sandbox.faults = FaultPlan(script=[Fault("drop")])
    with pytest.raises(requests.ConnectionError):
        http.get(f"{sandbox.url}/api/now/table/incident")
    assert sandbox.log.count("GET", status=0) == 1
    assert http.get(f"{sandbox.url}/api/now/table/incident").status_code == 200


def test_503_fault_uses_the_servicenow_error_format(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    sandbox.faults = FaultPlan(script=[Fault("503", retry_after=1, method="PATCH")])
    target = sandbox.rows("incident")[0]
    assert http.get(f"{sandbox.url}/api/now/table/incident").status_code == 200
    response = http.patch(f"{sandbox.url}/api/now/table/incident/{target['sys_id']}",
                          json={"description": "x"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["status"] == "failure"


def test_latency_and_faults_set_over_the_admin_endpoint(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    plan = {"latency_ms": 5, "script": [{"kind": "500", "path": "/api/now/table/sys_user"}]}
    assert requests.post(f"{sandbox.url}/_sandbox/faults", json=plan).status_code == 200
    assert requests.get(f"{sandbox.url}/_sandbox/faults").json()["latency_ms"] == 5
    assert http.get(f"{sandbox.url}/api/now/table/incident").status_code == 200
    assert http.get(f"{sandbox.url}/api/now/table/sys_user").status_code == 500
    stats = requests.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["by_status"] == {"200": 1, "500": 1}


def test_batch_items_can_fail_alone(sandbox: ServiceNowSandbox, http: requests.Session) -> None:
    sandbox.faults = FaultPlan(script=[Fault("429", retry_after=0, path="/api/now/table/sys_user")])
    items = [{"id": name, "method": "GET", "url": f"/api/now/table/{name}?sysparm_limit=1",
              "headers": [{"name": "Accept", "value": "application/json"}]}
             for name in ("incident", "sys_user")]
    result = http.post(f"{sandbox.url}/api/now/v1/batch",
                       json={"batch_request_id": "9", "rest_requests": items}).json()
    codes = {item["id"]: item["status_code"] for item in result["serviced_requests"]}
    assert codes == {"incident": 200, "sys_user": 429}


def test_offset_past_the_end_is_empty_with_links_back(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    response = http.get(f"{sandbox.url}/api/now/table/incident",
                        params={"sysparm_limit": "2", "sysparm_offset": "10"})
    assert response.status_code == 200 and response.json() == {"result": []}
    assert response.links["last"]["url"].endswith("sysparm_offset=4&sysparm_limit=2")
    assert response.links["prev"]["url"].endswith("sysparm_offset=8&sysparm_limit=2")
    assert "next" not in response.links


def test_concurrent_writes_are_all_kept(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    target = sandbox.rows("incident")[0]
    url = f"{sandbox.url}/api/now/table/incident/{target['sys_id']}"

    def write(n: int) -> int:
        with requests.Session() as session:
            session.auth = AUTH
            return session.patch(url, json={"work_notes": f"note {n}"}, headers=JSON).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(write, range(40)))
    assert codes == [200] * 40
    record = sandbox.get("incident", target["sys_id"])
    assert int(record["sys_mod_count"]) == int(target["sys_mod_count"]) + 40
    notes = [j["value"] for j in sandbox.journal(target["sys_id"]) if j["value"].startswith("note")]
    assert sorted(notes) == sorted(f"note {n}" for n in range(40))


def test_dot_walks_and_journal_under_display_all(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    target = sandbox.rows("incident")[0]
    sandbox.update("incident", target["sys_id"], {"work_notes": "private"},
                   as_user="hiro.tanaka")
    email = next(u["email"] for u in sandbox.rows("sys_user")
                 if u["sys_id"] == target["caller_id"])
    response = http.get(f"{sandbox.url}/api/now/table/incident/{target['sys_id']}", params={
        "sysparm_display_value": "all",
        "sysparm_fields": "caller_id.email,work_notes,comments_and_work_notes,priority"})
    record = response.json()["result"]
    assert record["caller_id.email"] == {"display_value": email, "value": email}
    assert record["work_notes"]["value"] == ""
    newest = record["work_notes"]["display_value"].split("\n\n")[0]
    assert newest.endswith(" - Hiro Tanaka (Work notes)\nprivate")
    assert "Hiro Tanaka (Work notes)" in record["comments_and_work_notes"]["display_value"]
    assert record["priority"]["display_value"].startswith(record["priority"]["value"] + " - ")


# --------------------------------------------------------------------------- aggregate


def test_stats_count_with_a_query(sandbox: ServiceNowSandbox, http: requests.Session) -> None:
    active = sum(1 for r in sandbox.rows("incident") if r["active"] == "true")
    response = http.get(f"{sandbox.url}/api/now/stats/incident",
                        params={"sysparm_query": "active=true", "sysparm_count": "true"})
    assert response.json() == {"result": {"stats": {"count": str(active)}}}


def test_stats_grouped_with_min_and_max(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    rows = sandbox.rows("incident")
    response = http.get(f"{sandbox.url}/api/now/v1/stats/incident", params={
        "sysparm_count": "true", "sysparm_group_by": "priority,no_such_field",
        "sysparm_min_fields": "sys_mod_count", "sysparm_max_fields": "sys_updated_on"})
    groups = response.json()["result"]
    assert sum(int(g["stats"]["count"]) for g in groups) == len(rows)
    for group in groups:
        [field] = group["groupby_fields"]
        members = [r for r in rows if r["priority"] == field["value"]]
        assert field["field"] == "priority"
        assert group["stats"]["count"] == str(len(members))
        assert group["stats"]["min"]["sys_mod_count"] == str(
            min(int(r["sys_mod_count"]) for r in members))
        assert group["stats"]["max"]["sys_updated_on"] == max(r["sys_updated_on"]
                                                              for r in members)


def test_stats_count_wire_requests_apart_from_batch_items(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    items = [{"id": str(n), "method": "GET", "url": "/api/now/table/incident?sysparm_limit=1",
              "headers": [{"name": "Accept", "value": "application/json"}]} for n in range(3)]
    assert http.post(f"{sandbox.url}/api/now/v1/batch",
                     json={"batch_request_id": "1", "rest_requests": items}).status_code == 200
    assert http.get(f"{sandbox.url}/api/now/table/sys_user").status_code == 200
    stats = requests.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["wire"] == {"POST": 1, "GET": 1} and stats["total"] == 2
    assert stats["batch_items"] == 3
    assert stats["batch_items_by_route"] == {"GET /api/now/table/incident": 3}
    assert sandbox.log.wire() == 2 and sandbox.log.count(batch_item=True) == 3
    assert sandbox.log.count() == 5


def test_batch_items_are_not_delayed_again_by_the_added_latency(
    sandbox: ServiceNowSandbox, http: requests.Session
) -> None:
    import time

    items = [{"id": str(n), "method": "GET", "url": "/api/now/table/incident?sysparm_limit=1",
              "headers": [{"name": "Accept", "value": "application/json"}]} for n in range(8)]
    sandbox.faults.latency_ms = 100
    started = time.perf_counter()
    http.post(f"{sandbox.url}/api/now/v1/batch",
              json={"batch_request_id": "1", "rest_requests": items})
    # One round trip's latency, not nine.
    assert time.perf_counter() - started < 0.5


def test_indexed_lookups_do_not_scan_the_table_and_follow_every_write(
    sandbox: ServiceNowSandbox, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = sandbox.insert("incident", {"short_description": "a", "correlation_id": "OPS-1"})
    second = sandbox.insert("incident", {"short_description": "b", "comments": "hello"})
    sandbox.update("incident", first["sys_id"], {"work_notes": "note", "correlation_id": "OPS-2"})
    scans: list[str] = []
    original = sandbox._ordered
    monkeypatch.setattr(sandbox, "_ordered", lambda table: scans.append(table) or original(table))

    def rows(table: str, query: str) -> list[dict[str, Any]]:
        response = http.get(f"{sandbox.url}/api/now/table/{table}",
                            params={"sysparm_query": query})
        return list(response.json()["result"])

    journal = rows("sys_journal_field",
                   f"element_idIN{first['sys_id']},{second['sys_id']}^ORDERBYsys_created_on")
    assert sorted(r["value"] for r in journal) == ["hello", "note"]
    assert rows("incident", "correlation_id=OPS-1") == []
    assert [r["sys_id"] for r in rows("incident", "correlation_id=OPS-2")] == [first["sys_id"]]
    assert [r["sys_id"] for r in rows("incident", f"sys_idIN{second['sys_id']},nothere")] == [
        second["sys_id"]]
    assert scans == []
    rows("incident", "short_description=a")  # not indexed: a scan
    assert scans == ["incident"]
    sandbox.delete("incident", first["sys_id"])
    assert rows("sys_journal_field", f"element_id={first['sys_id']}") == []
    assert rows("incident", "correlation_id=OPS-2") == []


def test_a_client_that_resets_mid_request_leaves_no_traceback(
    sandbox: ServiceNowSandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    """A killed run or a dropped connection resets its socket mid-request: the sandbox
    takes it quietly (the stdlib server would print a traceback) and keeps serving."""
    host, port = sandbox.url.removeprefix("http://").split(":")
    client = socket.create_connection((host, int(port)))
    client.sendall(b"GET /api/now/table/incident HTTP/1.1\r\nHost: x\r\n")  # headers unfinished
    # Close with a reset (SO_LINGER 0) instead of a clean FIN.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    time.sleep(0.2)  # the server thread meets the reset
    ok = requests.get(f"{sandbox.url}/api/now/table/incident", auth=AUTH,
                      headers={"Accept": "application/json"}, timeout=5)
    assert ok.status_code == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err


def test_another_serving_error_is_one_line_without_a_traceback(
    sandbox: ServiceNowSandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    server = sandbox._httpd
    assert server is not None
    try:
        raise ValueError("malformed frame")
    except ValueError:
        server.handle_error(None, ("127.0.0.1", 50000))
    err = capfd.readouterr().err
    assert err == ("servicenow sandbox: error serving 127.0.0.1:50000: "
                   "ValueError: malformed frame\n")
