"""pysnow 0.7.17, unmodified, against the ServiceNow sandbox over real loopback HTTP."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests

from connectors.sandbox.servicenow import ServiceNowSandbox

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import pysnow
    from pysnow.exceptions import NoResults


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 2, 3, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> Iterator[ServiceNowSandbox]:
    with ServiceNowSandbox(seed_incidents=20, seed=7, clock=clock) as server:
        yield server


@pytest.fixture
def incidents(sandbox: ServiceNowSandbox) -> Iterator[pysnow.Resource]:
    client = pysnow.Client(host=f"127.0.0.1:{sandbox.port}", user="admin",
                           password="sandbox", use_ssl=False)
    yield client.resource(api_path="/table/incident")
    client.close()


def test_pages_through_every_record_with_limit_and_offset(
    sandbox: ServiceNowSandbox, incidents: pysnow.Resource
) -> None:
    seen: list[str] = []
    offset = 0
    pages = 0
    while True:
        response = incidents.get(query="ORDERBYnumber", limit=7, offset=offset)
        page = list(response.all())
        assert response.headers["X-Total-Count"] == "20"
        links = requests.utils.parse_header_links(response.headers["Link"])
        rels = {link["rel"]: link["url"] for link in links}
        assert "first" in rels and "last" in rels
        assert ("next" in rels) == (offset + 7 < 20)
        assert ("prev" in rels) == (offset > 0)
        assert rels["last"].startswith("/api/now/table/incident?")
        assert "sysparm_offset=14" in rels["last"] and "sysparm_limit=7" in rels["last"]
        seen += [r["number"] for r in page]
        pages += 1
        if "next" not in rels:
            break
        offset += 7
    assert pages == 3
    assert seen == sorted(r["number"] for r in sandbox.rows("incident"))
    assert sandbox.log.count("GET", "/api/now/table/incident") == 3


def test_single_page_has_no_link_header(incidents: pysnow.Resource) -> None:
    response = incidents.get(query="active=true")
    assert list(response.all())
    assert "Link" not in response.headers


def test_streamed_first(incidents: pysnow.Resource) -> None:
    first = incidents.get(query="ORDERBYDESCnumber", stream=True).first()
    assert first["number"] == "INC0010020"


def test_get_one_by_sys_id_path(sandbox: ServiceNowSandbox, incidents: pysnow.Resource) -> None:
    wanted = sandbox.rows("incident")[3]
    record = incidents.request("GET", path_append=f"/{wanted['sys_id']}").one()
    assert record["number"] == wanted["number"]
    assert record["caller_id"] == {
        "link": f"{sandbox.url}/api/now/table/sys_user/{wanted['caller_id']}",
        "value": wanted["caller_id"],
    }


def test_missing_record_is_an_http_error(incidents: pysnow.Resource) -> None:
    with pytest.raises(requests.HTTPError) as caught:
        incidents.request("GET", path_append="/" + "0" * 32).one()
    assert caught.value.response.status_code == 404
    assert caught.value.response.json()["error"]["message"] == "No Record found"


def test_empty_query_result_is_no_results(incidents: pysnow.Resource) -> None:
    with pytest.raises(NoResults):
        incidents.get(query={"number": "INC9999999"}).one()


def test_query_builder_dates(sandbox: ServiceNowSandbox, incidents: pysnow.Resource) -> None:
    rows = sandbox.rows("incident")
    pivot = rows[10]["sys_updated_on"]
    moment = datetime.strptime(pivot, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    # An aware non-UTC datetime: pysnow converts it to UTC before formatting.
    local = moment.astimezone(timezone(timedelta(hours=2)))
    query = (pysnow.QueryBuilder().field("sys_updated_on").greater_than_or_equal(local)
             .AND().field("number").order_ascending())
    got = [r["number"] for r in incidents.get(query=query).all()]
    assert got == sorted(r["number"] for r in rows if r["sys_updated_on"] >= pivot)

    start = datetime.strptime(rows[2]["opened_at"], "%Y-%m-%d %H:%M:%S")
    end = datetime.strptime(rows[5]["opened_at"], "%Y-%m-%d %H:%M:%S")
    between = pysnow.QueryBuilder().field("opened_at").between(start, end)
    got = sorted(r["number"] for r in incidents.get(query=between).all())
    assert got == [r["number"] for r in rows[2:6]]


def test_insert_returns_the_created_record(
    sandbox: ServiceNowSandbox, incidents: pysnow.Resource
) -> None:
    created = incidents.create(payload={
        "short_description": "Unable to connect to office wifi",
        "assignment_group": sandbox.group_sys_id("Network"), "urgency": "2", "impact": "2",
    }).one()
    assert created["number"] == "INC0010021"
    assert created["priority"] == "3" and created["state"] == "1"
    assert created["opened_at"] == created["sys_created_on"] == "2026-02-03 09:00:00"
    assert created["caller_id"] == "" and created["comments"] == ""
    assert sandbox.log.count("POST", "/api/now/table/incident", status=201) == 1


def test_update_is_get_then_put(
    sandbox: ServiceNowSandbox, incidents: pysnow.Resource, clock: Clock
) -> None:
    target = sandbox.rows("incident")[0]
    sandbox.log.clear()
    clock.now += timedelta(hours=1)
    updated = incidents.update(query={"number": target["number"]},
                               payload={"urgency": "1", "impact": "1",
                                        "comments": "Escalated by phone"}).one()
    assert updated["priority"] == "1"
    assert updated["comments"] == ""
    assert updated["sys_mod_count"] == str(int(target["sys_mod_count"]) + 1)
    assert updated["sys_updated_on"] == "2026-02-03 10:00:00"
    assert [(e.method, e.status) for e in sandbox.log.entries] == [("GET", 200), ("PUT", 200)]
    assert sandbox.journal(target["sys_id"])[-1]["value"] == "Escalated by phone"


def test_delete(sandbox: ServiceNowSandbox, incidents: pysnow.Resource) -> None:
    target = sandbox.rows("incident")[1]
    assert incidents.delete(query={"sys_id": target["sys_id"]}) == {"status": "record deleted"}
    assert sandbox.get("incident", target["sys_id"]) is None
    assert sandbox.log.count("DELETE", status=204) == 1


def test_display_value_modes(sandbox: ServiceNowSandbox, incidents: pysnow.Resource) -> None:
    target = next(r for r in sandbox.rows("incident") if r["state"] == "2")
    group = next(g for g in sandbox.rows("sys_user_group")
                 if g["sys_id"] == target["assignment_group"])
    query = {"sys_id": target["sys_id"]}
    shown = incidents.get(query=query, display_value=True).one()
    assert shown["state"] == "In Progress"
    assert shown["assignment_group"]["display_value"] == group["name"]
    assert "value" not in shown["assignment_group"]
    both = incidents.get(query=query, display_value="all").one()
    assert both["state"] == {"display_value": "In Progress", "value": "2"}
    assert both["assignment_group"]["value"] == group["sys_id"]
    assert both["assignment_group"]["link"].endswith(f"/sys_user_group/{group['sys_id']}")
    bare = incidents.get(query=query, display_value="all", exclude_reference_link=True).one()
    assert bare["assignment_group"] == {"display_value": group["name"],
                                        "value": group["sys_id"]}
    # pysnow keeps display_value from the previous call unless told otherwise.
    raw = incidents.get(query=query, display_value=False, exclude_reference_link=True).one()
    assert raw["assignment_group"] == group["sys_id"]


def test_journal_renders_newest_first_under_display_values(
    sandbox: ServiceNowSandbox, incidents: pysnow.Resource, clock: Clock
) -> None:
    target = sandbox.rows("incident")[0]
    base = {"sys_id": target["sys_id"]}
    sandbox.update("incident", target["sys_id"], {"comments": "older"}, as_user="alice.smith")
    clock.now += timedelta(minutes=1)
    sandbox.update("incident", target["sys_id"], {"comments": "newer"}, as_user="bob.jones")
    text = incidents.get(query=base, display_value=True, fields=["comments"]).one()["comments"]
    assert text.startswith(
        "2026-02-03 09:01:00 - Bob Jones (Additional comments)\nnewer\n\n"
        "2026-02-03 09:00:00 - Alice Smith (Additional comments)\nolder\n\n")


def test_dot_walked_fields_come_back_flat(
    sandbox: ServiceNowSandbox, incidents: pysnow.Resource
) -> None:
    target = next(r for r in sandbox.rows("incident") if r["assigned_to"])
    record = incidents.get(
        query={"sys_id": target["sys_id"]},
        fields=["number", "caller_id.email", "assignment_group.name", "assigned_to.email",
                "no_such_field"],
    ).one()
    assert set(record) == {"number", "caller_id.email", "assignment_group.name",
                           "assigned_to.email"}
    users = {u["sys_id"]: u["email"] for u in sandbox.rows("sys_user")}
    assert record["caller_id.email"] == users[target["caller_id"]]
    assert record["assigned_to.email"] == users[target["assigned_to"]]


def test_query_on_a_dot_walked_column(
    sandbox: ServiceNowSandbox, incidents: pysnow.Resource
) -> None:
    caller = sandbox.rows("incident")[0]["caller_id"]
    email = next(u["email"] for u in sandbox.rows("sys_user") if u["sys_id"] == caller)
    got = {r["sys_id"] for r in incidents.get(query=f"caller_id.email={email}").all()}
    assert got == {r["sys_id"] for r in sandbox.rows("incident") if r["caller_id"] == caller}


def test_journal_table_is_queryable(sandbox: ServiceNowSandbox) -> None:
    client = pysnow.Client(host=f"127.0.0.1:{sandbox.port}", user="admin",
                           password="sandbox", use_ssl=False)
    journal = client.resource(api_path="/table/sys_journal_field")
    ids = [r["sys_id"] for r in sandbox.rows("incident")[:6]]
    rows = list(journal.get(
        query=f"element_idIN{','.join(ids)}^elementINcomments,work_notes^ORDERBYsys_created_on",
        fields=["sys_id", "element", "element_id", "value", "sys_created_on",
                "sys_created_by"]).all())
    expected = [j for i in ids for j in sandbox.journal(i)]
    assert sorted(r["sys_id"] for r in rows) == sorted(j["sys_id"] for j in expected)
    stamps = [r["sys_created_on"] for r in rows]
    assert stamps == sorted(stamps)
    client.close()
