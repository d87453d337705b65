"""The Jira connector against the Jira sandbox, Cloud and Data Center: the shared
contract, then the Jira-specific behaviour (transitions, bulk create, markers,
comment completion, request costs, users, check, faults)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from connector_contract import PAGE_SIZE, ConnectorContract, FakeClock
from sync_helpers import transitions_wait_for

from connectors.base import NewComment, NewRecord, NotFound, PreconditionFailed, RecordWrite
from connectors.jira import JiraConnector
from connectors.jira_workflow import Transition
from connectors.retry import RetryPolicy
from connectors.sandbox.adf import adf_to_text, text_to_adf
from connectors.sandbox.http import Fault
from connectors.sandbox.jira import JiraSandbox

FIELDS = ["summary", "description", "assignee", "status", "priority", "customfield_10004"]


def make_connector(sandbox: JiraSandbox, sleeps: list[float] | None = None,
                   **kw: Any) -> JiraConnector:
    """Cloud signs in with basic auth (email + token), Data Center with a PAT."""
    recorded = [] if sleeps is None else sleeps
    options: dict[str, Any] = {"page_size": PAGE_SIZE, **kw}
    connector = JiraConnector(
        sandbox.url, email="admin" if sandbox.cloud else "", token=sandbox.password,
        project="OPS", retry=RetryPolicy(sleep=recorded.append, random=lambda: 0.0), **options,
    )
    connector.open()
    return connector


class JiraContract(ConnectorContract):
    mode = "cloud"
    field_set = "stock"  # a JSM project as the IT service management template makes it
    missing_id = "OPS-99999"
    title_field = "summary"
    description_field = "description"
    user_field = "assignee"

    @pytest.fixture
    def sandbox(self, clock: FakeClock) -> Iterator[JiraSandbox]:
        with JiraSandbox(mode=self.mode, clock=clock, fields=self.field_set) as sandbox:
            yield sandbox

    @pytest.fixture
    def connector(self, sandbox: JiraSandbox) -> Iterator[JiraConnector]:
        connector = make_connector(sandbox)
        yield connector
        connector.close()

    def text(self, value: str) -> Any:
        return text_to_adf(value) if self.mode == "cloud" else value

    def make_record(self, sandbox: JiraSandbox, title: str, **kw: Any) -> str:
        fields: dict[str, Any] = {"summary": title}
        if kw.get("description") is not None:
            fields["description"] = kw["description"]
        return sandbox.create_issue(fields)

    def new_record(self, title: str, foreign_id: str) -> NewRecord:
        return NewRecord(
            fields={"summary": title, "description": self.text(f"From ServiceNow: {title}")},
            foreign_id=foreign_id,
            foreign_url=f"https://dev1.service-now.com/incident.do?sys_id={foreign_id}",
            foreign_display="INC0010001",
        )

    def update_fields(self, title: str) -> dict[str, Any]:
        return {"summary": title}

    def comment_body(self, text: str) -> Any:
        return self.text(text)

    def comment_text(self, body: Any) -> str:
        return adf_to_text(body) if isinstance(body, dict) else str(body)


class TestJiraCloudContract(JiraContract):
    mode = "cloud"


class TestJiraDataCenterContract(JiraContract):
    mode = "datacenter"


class TestJiraMarkerFieldContract(JiraContract):
    """The same contract when the sys_id lives in a text custom field (searched with ~),
    on Data Center with the marker field an admin created."""

    mode = "datacenter"
    field_set = "extended"

    @pytest.fixture
    def connector(self, sandbox: JiraSandbox) -> Iterator[JiraConnector]:
        connector = make_connector(sandbox, marker_field="customfield_10100")
        yield connector
        connector.close()


# ---------------------------------------------------------------- Jira specifics


@pytest.fixture(params=["cloud", "datacenter"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(mode: str, clock: FakeClock) -> Iterator[JiraSandbox]:
    with JiraSandbox(mode=mode, clock=clock) as sandbox:
        yield sandbox


@pytest.fixture
def connector(sandbox: JiraSandbox) -> Iterator[JiraConnector]:
    connector = make_connector(sandbox)
    yield connector
    connector.close()


def text(sandbox: JiraSandbox, value: str) -> Any:
    return text_to_adf(value) if sandbox.cloud else value


def test_flavor_and_text_format_follow_the_server(sandbox: JiraSandbox) -> None:
    connector = JiraConnector(sandbox.url, email="admin" if sandbox.cloud else "",
                              token=sandbox.password, project="OPS")
    info = connector.open()
    assert info.flavor == sandbox.mode
    assert info.text_format == ("adf" if sandbox.cloud else "wiki")
    assert connector.field_ids["Impact"] == "customfield_10004"
    assert connector.field_ids["Pending reason"] == "customfield_10016"
    # A stock site has no marker field; only an admin creates one.
    assert "ServiceNow ID" not in connector.field_ids


def test_cloud_never_calls_the_removed_search(connector: JiraConnector,
                                              sandbox: JiraSandbox) -> None:
    for n in range(3):
        sandbox.create_issue({"summary": f"n{n}"})
    assert len(list(connector.pull(None, FIELDS))) == 3
    if sandbox.cloud:
        assert sandbox.log.count(path="re:/search$") == 0
        assert sandbox.log.count(path="/rest/api/3/search/jql") == 1
    else:
        assert sandbox.log.count(path="/rest/api/2/search") == 1


def test_pull_of_1000_records_costs_one_request_per_page(sandbox: JiraSandbox) -> None:
    for n in range(1000):
        sandbox.create_issue({"summary": f"bulk {n}"})
    for key in ("OPS-3", "OPS-500"):
        sandbox.add_comment(key, "a public note")
        sandbox.add_comment(key, "an agents-only note", internal=True)
    connector = make_connector(sandbox, page_size=100)
    sandbox.log.clear()
    pulled = list(connector.pull(None, FIELDS))
    assert len(pulled) == 1000 == len({r.id for r in pulled})
    # comments come embedded with their visibility: no extra comment requests
    assert sandbox.log.count() == math.ceil(1000 / 100)
    by_key = {r.id: r for r in pulled}
    assert [c.visibility for c in by_key["OPS-500"].comments] == ["public", "internal"]


def test_get_many_of_200_costs_a_few_requests(sandbox: JiraSandbox) -> None:
    keys = [sandbox.create_issue({"summary": f"g{n}"}) for n in range(200)]
    connector = make_connector(sandbox, page_size=100)
    sandbox.log.clear()
    found = connector.get_many(keys, FIELDS)
    assert set(found) == set(keys)
    assert sandbox.log.count() <= 4


def test_get_many_skips_keys_jira_says_do_not_exist(connector: JiraConnector,
                                                    sandbox: JiraSandbox) -> None:
    real = sandbox.create_issue({"summary": "real"})
    sandbox.log.clear()
    found = connector.get_many([real, "OPS-999", "NOPE-1", 'OPS-1") OR ("1'], FIELDS)
    assert set(found) == {real}
    # DC drops missing keys itself (validateQuery=warn); Cloud names them in a 400
    # and the connector asks once more without them.
    assert sandbox.log.count() == (2 if sandbox.cloud else 1)


def test_resolve_finds_a_path_through_work_in_progress(connector: JiraConnector,
                                                       sandbox: JiraSandbox) -> None:
    key = sandbox.create_issue({"summary": "broken"})
    sandbox.log.clear()
    result = connector.update(key, {"status": "Resolved", "resolution": {"name": "Fixed"}})
    assert result.ok
    issue = sandbox.issue(key)["fields"]
    assert issue["status"]["name"] == "Resolved"
    assert issue["resolution"]["name"] == "Fixed"
    assert sandbox.log.count(method="POST", path="re:/transitions$") == 2
    assert result.version == issue["updated"]


def test_closing_learns_the_workflow_from_other_issues_without_moving_them(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    resolved = sandbox.create_issue({"summary": "already resolved"})
    sandbox.transition_issue(resolved, "Resolved", resolution="Done")
    key = sandbox.create_issue({"summary": "to close"})
    connector.update(key, {"status": "Closed", "resolution": {"name": "Done"}})
    assert sandbox.issue(key)["fields"]["status"]["name"] == "Closed"
    assert sandbox.issue(resolved)["fields"]["status"]["name"] == "Resolved"


def test_unreachable_status_is_a_clear_no_transition_path(connector: JiraConnector,
                                                          sandbox: JiraSandbox) -> None:
    from connectors.base import NoTransitionPath

    key = sandbox.create_issue({"summary": "gone"})
    sandbox.transition_issue(key, "Canceled")
    with pytest.raises(NoTransitionPath, match="'Open'"):
        connector.update(key, {"status": "Open"})
    with pytest.raises(NoTransitionPath, match="'Nowhere'"):
        connector.update(sandbox.create_issue({"summary": "x"}), {"status": "Nowhere"})


@pytest.mark.parametrize("remote_link", [False, True])
def test_create_carries_marker_and_property_and_links_back_only_when_configured(
    sandbox: JiraSandbox, remote_link: bool
) -> None:
    connector = make_connector(sandbox, remote_link=remote_link)
    records = [NewRecord({"summary": f"c{n}", "description": text(sandbox, "d")}, f"sys{n}",
                         f"https://dev1.service-now.com/incident.do?sys_id=sys{n}",
                         f"INC00{n}") for n in range(3)]
    connector._ids()  # the project/issue type lookup happens once per run
    sandbox.log.clear()
    results = connector.create(records)
    assert all(r.ok and not r.warnings for r in results), results
    # One bulk POST (marker label and entity property inside it) + one version search
    # per batch; a remote link per record only when configured.
    assert sandbox.log.count() == 2 + (len(records) if remote_link else 0)
    assert sandbox.log.count("PUT") == 0
    key = results[0].id or ""
    assert "snow-sys0" in sandbox.issue(key)["fields"]["labels"]
    prop = connector._api("GET", f"issue/{key}/properties/incident-sync")
    assert prop["value"] == {"servicenow_sys_id": "sys0",
                             "servicenow_url": records[0].foreign_url}
    links = connector._api("GET", f"issue/{key}/remotelink")
    if not remote_link:
        assert links == []
        return
    (link,) = links
    assert link["globalId"] == "system=https://dev1.service-now.com&id=sys0"
    assert link["object"] == {"url": records[0].foreign_url, "title": "INC000"}


def test_a_second_create_run_of_the_same_record_is_findable_first(
    connector: JiraConnector,
) -> None:
    """Adopt, don't duplicate: the marker is searchable right after the create."""
    (first,) = connector.create([NewRecord({"summary": "once"}, "crash1")])
    found = connector.find_by_foreign_id(["crash1"], FIELDS)
    assert {k: v.id for k, v in found.items()} == {"crash1": first.id}


def test_more_than_fifty_creates_go_in_bulk_requests_of_fifty(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    records = [NewRecord({"summary": f"many {n}"}, f"m{n}") for n in range(55)]
    results = connector.create(records)
    assert all(r.ok for r in results) and len({r.id for r in results}) == 55
    assert sandbox.log.count(method="POST", path="re:/issue/bulk$") == 2


def test_bulk_create_where_every_item_fails_reports_each(connector: JiraConnector) -> None:
    results = connector.create([NewRecord({"summary": ""}, "e1"),
                                NewRecord({"summary": "y" * 256}, "e2")])
    assert [type(r.error).__name__ for r in results] == ["ValidationFailed"] * 2
    assert all(r.id is None for r in results)


def test_bulk_create_maps_partial_failures_to_their_items(connector: JiraConnector,
                                                          sandbox: JiraSandbox) -> None:
    good = NewRecord({"summary": "fine"}, "ok1")
    bad = NewRecord({"summary": "x" * 300}, "bad1")
    results = connector.create([good, bad, NewRecord({"summary": "fine too"}, "ok2")])
    assert [r.ok for r in results] == [True, False, True]
    assert "summary" in str(results[1].error)
    assert results[0].id != results[2].id


def test_create_in_a_wanted_status_transitions_after_the_create(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    (result,) = connector.create([NewRecord({"summary": "busy", "status": "Work in progress"},
                                            "wip1")])
    assert result.ok
    issue = sandbox.issue(result.id or "")["fields"]
    assert issue["status"]["name"] == "Work in progress"
    assert result.version == issue["updated"]


def test_later_creates_take_their_first_step_in_the_create_itself_on_cloud_only(
    connector: JiraConnector, sandbox: JiraSandbox, mode: str
) -> None:
    (first,) = connector.create([NewRecord({"summary": "learn", "status": "Resolved"}, "w0")])
    assert first.ok  # the first one learns the start status and its transitions
    sandbox.log.clear()
    wanted = ["Work in progress", "Pending", "Resolved"]
    results = connector.create([NewRecord({"summary": f"s{n}", "status": status}, f"w{n + 1}")
                                for n, status in enumerate(wanted)])
    assert all(r.ok for r in results), [r.error for r in results]
    assert [sandbox.issue(r.id or "")["fields"]["status"]["name"] for r in results] == wanted
    assert sandbox.log.count("GET", "re:/transitions$") == 0
    # Cloud documents a create's `transition`: the first step rides in the bulk create,
    # only Resolved's second step (Work in progress -> Resolved) is a request. Data
    # Center documents no such step: each is a POST, still without a GET first.
    steps = 1 if mode == "cloud" else 4
    assert sandbox.log.count("POST", "re:/transitions$") == steps


def test_a_step_along_a_known_path_is_taken_without_reading_transitions(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    learnt, other = sandbox.create_issue({"summary": "a"}), sandbox.create_issue({"summary": "b"})
    connector.update(learnt, {"status": "Resolved"})  # learns Open's and WIP's way out
    sandbox.log.clear()
    connector.update(other, {"status": "Resolved"})
    assert sandbox.issue(other)["fields"]["status"]["name"] == "Resolved"
    assert sandbox.log.count("GET", "re:/transitions$") == 0
    assert sandbox.log.count("POST", "re:/transitions$") == 2


def test_a_refused_step_reads_the_issue_s_transitions_and_goes_on(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    key = sandbox.create_issue({"summary": "conditional"})
    # What another issue taught the run does not hold for this one.
    connector._workflow.learn("Open", [Transition("99", "Gone", "Work in progress",
                                                  "indeterminate")])
    sandbox.log.clear()
    result = connector.update(key, {"status": "Work in progress"})
    assert result.ok
    assert sandbox.issue(key)["fields"]["status"]["name"] == "Work in progress"
    assert sandbox.log.count("GET", "re:/transitions$") == 1
    assert sandbox.log.count("POST", "re:/transitions$", status=400) == 1
    assert sandbox.log.count("POST", "re:/transitions$", status=204) == 1


def test_a_refused_step_on_an_issue_not_where_we_thought_learns_nothing_wrong(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    learnt = sandbox.create_issue({"summary": "teaches Open"})
    connector.update(learnt, {"status": "Work in progress"})
    key = sandbox.create_issue({"summary": "moved behind our back"})
    sandbox.transition_issue(key, "Pending")
    # Believed in Open (e.g. a create's transition whose answer was lost): Open's
    # "Start work" is refused, the real status is read, and Pending's way is taken.
    assert connector._move(key, "Open", "Work in progress", None)
    assert sandbox.issue(key)["fields"]["status"]["name"] == "Work in progress"
    assert [t.id for t in connector._workflow.path("Open", "Work in progress") or []] == ["11"]


def test_creates_in_the_initial_status_read_that_status_once_per_run(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    sandbox.log.clear()
    results = connector.create(
        [NewRecord({"summary": f"new {n}", "status": "Open"}, f"open{n}") for n in range(5)]
    )
    assert all(r.ok for r in results)
    single_reads = sandbox.log.count("GET", r"re:/rest/api/\d/issue/[A-Z]+-\d+$")
    assert single_reads == 1
    assert sandbox.log.count("POST", "re:/transitions$") == 0


def test_create_tells_the_ids_while_its_transitions_are_in_flight(
    connector: JiraConnector, sandbox: JiraSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every transition waits until the caller was told: done one after the other
    # (tell after the transitions), the waits would time out.
    told = threading.Event()
    waited = transitions_wait_for(told, monkeypatch)
    seen: list[tuple[list[str | None], list[str], int]] = []

    def created(results: list[Any]) -> None:
        keys = [r.id for r in results]
        statuses = [sandbox.issue(k or "")["fields"]["status"]["name"] for k in keys]
        seen.append((keys, statuses, threading.get_ident()))
        told.set()

    records = [NewRecord({"summary": f"busy {n}", "status": "Work in progress"}, f"wip{n}")
               for n in range(3)]
    results = connector.create(records, created=created)

    assert all(r.ok for r in results) and waited == [True] * 3
    ((keys, statuses, thread),) = seen              # told once, on the calling thread
    assert keys == [r.id for r in results] and thread == threading.get_ident()
    # Told before any issue moved (on Cloud a later create's first step rides inside
    # it; here the run has no path known yet, so every issue is still Open).
    assert statuses == ["Open"] * 3
    assert [sandbox.issue(k or "")["fields"]["status"]["name"] for k in keys] == (
        ["Work in progress"] * 3)


def test_an_issue_told_created_fails_when_its_transition_then_fails(
    connector: JiraConnector, sandbox: JiraSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve = sandbox.handle

    def failing(request: Any) -> Any:
        if request.method == "POST" and request.path.endswith("/transitions"):
            return sandbox.error_response(500, "Internal Server Error")
        return serve(request)

    monkeypatch.setattr(sandbox, "handle", failing)
    told: list[list[Any]] = []
    results = connector.create(
        [NewRecord({"summary": "moves", "status": "Work in progress"}, "t1"),
         NewRecord({"summary": "stays"}, "t2")], created=told.append)

    ((moving, staying),) = told
    assert moving.ok and moving.id and staying.ok      # as told: both made
    assert results[0].id == moving.id and not results[0].ok and "500" in str(results[0].error)
    assert results[1].ok
    assert moving.error is None                        # what was told stays as told


def test_create_tells_once_whatever_its_chunks(connector: JiraConnector) -> None:
    told: list[int] = []
    records = [NewRecord({"summary": f"n{n}", "status": "Work in progress"}, f"c{n}")
               for n in range(120)]
    assert all(r.ok for r in connector.create(records, created=lambda r: told.append(len(r))))
    assert connector.create([], created=lambda r: told.append(len(r))) == []
    assert told == [120, 0]


def test_labels_written_by_the_engine_keep_the_marker(connector: JiraConnector,
                                                      sandbox: JiraSandbox) -> None:
    (result,) = connector.create([NewRecord({"summary": "labelled", "labels": ["a"]}, "m1")])
    connector.update(result.id or "", {"labels": ["b"]})
    assert sorted(sandbox.issue(result.id or "")["fields"]["labels"]) == ["b", "snow-m1"]
    assert set(connector.find_by_foreign_id(["m1"], FIELDS)) == {"m1"}


def test_marker_field_is_used_when_configured(mode: str, clock: FakeClock) -> None:
    with JiraSandbox(mode=mode, clock=clock, fields="extended") as sandbox:
        connector = make_connector(sandbox, marker_field="customfield_10100")
        (result,) = connector.create([NewRecord({"summary": "by field"}, "abc123")])
        assert sandbox.issue(result.id or "")["fields"]["customfield_10100"] == "abc123"
        found = connector.find_by_foreign_id(["abc123", "abc12"], FIELDS)
        assert {k: v.id for k, v in found.items()} == {"abc123": result.id}
        connector.close()


def test_a_marker_field_the_site_lacks_is_refused_on_create(sandbox: JiraSandbox) -> None:
    connector = make_connector(sandbox, marker_field="customfield_10100")
    (result,) = connector.create([NewRecord({"summary": "by field"}, "abc123")])
    assert result.error is not None and "customfield_10100" in str(result.error)
    connector.close()


def test_more_comments_than_embedded_are_completed(connector: JiraConnector,
                                                   sandbox: JiraSandbox) -> None:
    key = sandbox.create_issue({"summary": "chatty"})
    for n in range(25):
        sandbox.add_comment(key, f"note {n}", internal=n % 2 == 1)
    (record,) = connector.get_many([key], FIELDS).values()
    assert len(record.comments) == 25
    assert [c.visibility for c in record.comments[:2]] == ["public", "internal"]


def test_users_are_looked_up_once_per_run(connector: JiraConnector,
                                          sandbox: JiraSandbox) -> None:
    from connectors.base import user_ref

    sandbox.log.clear()
    for n in range(3):
        connector.create([NewRecord({"summary": f"u{n}",
                                     "assignee": user_ref("alice.smith@example.com")}, f"u{n}")])
    assert sandbox.log.count(path="re:/user/search$") == 1


def test_check_reports_every_area(connector: JiraConnector) -> None:
    rows = connector.check(["summary", "customfield_10004"], ["Open", "Resolved"])
    assert all(row.ok for row in rows), rows
    assert len(rows) == 7
    bad = {row.what: row for row in connector.check(["nonexistent_field"], ["Nowhere"])}
    assert not bad["mapped fields"].ok and "nonexistent_field" in bad["mapped fields"].detail
    assert not bad["statuses"].ok and "Nowhere" in bad["statuses"].detail


def test_check_names_a_service_desk_that_is_not_this_projects(sandbox: JiraSandbox) -> None:
    connector = make_connector(sandbox, service_desk_id="42")
    rows = {row.what: row for row in connector.check(["summary"], ["Open"])}
    desk = rows["service desk (internal comments)"]
    assert not desk.ok and "42" in desk.detail
    assert make_connector(sandbox, service_desk_id="1").check([], [])[-1].ok


def test_wrong_password_fails_check_with_auth_advice(sandbox: JiraSandbox) -> None:
    connector = JiraConnector(sandbox.url, email="admin", token="wrong-token", project="OPS",
                              retry=RetryPolicy(sleep=lambda s: None))
    (row,) = connector.check(["summary"], ["Open"])
    assert not row.ok and "401" in row.detail and "wrong-token" not in row.detail


# ---------------------------------------------------------------- faults and budget


def test_rate_limits_and_dropped_connections_on_reads_are_retried(sandbox: JiraSandbox) -> None:
    from connectors.sandbox.http import Fault

    for n in range(3):
        sandbox.create_issue({"summary": f"f{n}"})
    sleeps: list[float] = []
    connector = make_connector(sandbox, sleeps)
    sandbox.faults.script.extend([Fault("429", retry_after=1), Fault("drop"),
                                  Fault("503", retry_after=0), Fault("html")])
    assert len(list(connector.pull(None, FIELDS))) == 3
    assert sleeps[0] == 1.0 and sleeps[2] == 0.0 and len(sleeps) == 4


def test_server_error_on_bulk_create_fails_every_item_without_retrying(
    sandbox: JiraSandbox,
) -> None:
    from connectors.base import RetriableError
    from connectors.sandbox.http import Fault

    connector = make_connector(sandbox)
    connector._ids()
    sandbox.faults.script.append(Fault("500", method="POST"))
    results = connector.create([NewRecord({"summary": "a"}, "x1"),
                                NewRecord({"summary": "b"}, "x2")])
    assert all(isinstance(r.error, RetriableError) for r in results)
    assert sandbox.log.count(method="POST", path="re:/issue/bulk$") == 1
    assert sandbox.issue_keys() == []


def test_request_budget_spaces_every_http_request(sandbox: JiraSandbox) -> None:
    from connectors.retry import RequestBudget

    now = [0.0]
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    connector = make_connector(sandbox, requests_per_minute=1000)
    # Swap in a budget on a fake clock: three requests a minute, then it must wait.
    connector._meter.budget = RequestBudget(3, clock=lambda: now[0], sleep=wait)
    for n in range(4):
        sandbox.create_issue({"summary": f"b{n}"})
    connector.get_many(["OPS-1"], FIELDS)
    connector.get_many(["OPS-2"], FIELDS)
    connector.get_many(["OPS-3"], FIELDS)
    assert waits == []
    connector.get_many(["OPS-4"], FIELDS)
    assert waits and waits[0] == 60.0


def test_scope_jql_narrows_the_pull(sandbox: JiraSandbox) -> None:
    inside = sandbox.create_issue({"summary": "in", "labels": ["major"]})
    sandbox.create_issue({"summary": "out"})
    connector = make_connector(sandbox, jql='labels = "major"')
    assert [r.id for r in connector.pull(None, FIELDS)] == [inside]


def test_status_and_resolution_are_accepted_as_names_or_objects(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    key = sandbox.create_issue({"summary": "either way"})
    connector.update(key, {"status": {"name": "Work in progress"}})
    connector.update(key, {"status": "Resolved", "resolution": "Done"})
    fields = sandbox.issue(key)["fields"]
    assert (fields["status"]["name"], fields["resolution"]["name"]) == ("Resolved", "Done")


def test_a_record_without_foreign_id_fails_alone(connector: JiraConnector) -> None:
    results = connector.create([NewRecord({"summary": "no marker"}, ""),
                                NewRecord({"summary": "marked"}, "fine1")])
    assert [r.ok for r in results] == [False, True]
    assert "foreign id" in str(results[0].error)


def test_a_wrong_issue_type_fails_every_item_with_the_types_named(sandbox: JiraSandbox) -> None:
    connector = make_connector(sandbox, issue_type="Outage")
    results = connector.create([NewRecord({"summary": "a"}, "t1")])
    assert not results[0].ok and "Incident" in str(results[0].error)


def test_pull_loses_nothing_when_an_issue_is_updated_mid_pull(
    sandbox: JiraSandbox, clock: FakeClock
) -> None:
    """Plain offsets (and the sandbox's offset-based Cloud tokens) would skip one issue."""
    keys = []
    for n in range(12):
        keys.append(sandbox.create_issue({"summary": f"moving {n}"}))
        clock.advance(seconds=1)
    connector = make_connector(sandbox)
    sandbox.log.clear()
    stream = connector.pull(None, FIELDS)
    first = [next(stream) for _ in range(PAGE_SIZE)]
    clock.advance(seconds=5)
    sandbox.edit_issue(keys[0], {"summary": "touched during the pull"})
    pulled = [r.id for r in first + list(stream)]
    assert sorted(pulled) == sorted(keys) and len(pulled) == len(set(pulled))
    # DC re-reads one window; Cloud searches once more from the shift
    assert sandbox.log.count(path="re:/search") <= (6 if sandbox.cloud else 5)


@pytest.mark.parametrize("flavor", ["cloud", "datacenter"])
def test_credentials_never_reach_logs_or_errors_over_real_http(
    flavor: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    import base64
    import logging

    from connectors.base import ConnectorError
    from connectors.sandbox.http import Fault

    secret = "Jira-T0ken-never-logged-7f3a"
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "jira", "connectors"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[ConnectorError] = []
    with JiraSandbox(mode=flavor, clock=clock, password=secret) as sandbox:
        email = "admin" if flavor == "cloud" else ""
        good = JiraConnector(sandbox.url, email=email, token=secret, project="OPS",
                             retry=RetryPolicy(sleep=lambda s: None, max_attempts=2))
        good.open()
        sandbox.create_issue({"summary": "x"})
        list(good.pull(None, FIELDS))
        sandbox.faults.script.extend([Fault("500"), Fault("500")])
        with pytest.raises(ConnectorError) as server_error:
            list(good.pull(None, FIELDS))
        errors.append(server_error.value)
        wrong = JiraConnector(sandbox.url, email=email, token=secret + "-wrong", project="OPS",
                              retry=RetryPolicy(sleep=lambda s: None))
        with pytest.raises(ConnectorError) as refused:
            wrong.open()
        errors.append(refused.value)
        url = sandbox.url
    gone = JiraConnector(url, email=email, token=secret, project="OPS",
                         retry=RetryPolicy(sleep=lambda s: None))
    with pytest.raises(ConnectorError) as unreachable:
        gone.open()
    errors.append(unreachable.value)
    assert "Starting new HTTP connection" in caplog.text  # urllib3 did log at DEBUG
    encoded = base64.b64encode(f"{email}:{secret}".encode()).decode()
    exposed = caplog.text + "".join(f"{e}{e!r}{getattr(e, 'advice', '')}" for e in errors)
    assert secret not in exposed and encoded not in exposed
    assert all(e.__cause__ is None for e in errors)


def test_a_new_resolution_for_a_done_issue_leaves_its_status_and_comes_back_with_it(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    key = sandbox.create_issue({"summary": "resolved already"})
    sandbox.transition_issue(key, "Resolved", resolution="Fixed")
    sandbox.log.clear()
    result = connector.update(key, {"status": "Resolved", "resolution": {"name": "Done"}})
    assert result.ok and result.warnings == []
    fields = sandbox.issue(key)["fields"]
    assert (fields["status"]["name"], fields["resolution"]["name"]) == ("Resolved", "Done")
    moves = [e for e in sandbox.log.entries if e.method == "POST"
             and e.path.endswith("/transitions")]
    assert len(moves) == 2 == sandbox.log.writes()   # out of Resolved, and back in


def test_a_resolution_for_an_open_issue_is_left_with_a_warning(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    key = sandbox.create_issue({"summary": "still open"})
    sandbox.log.clear()
    result = connector.update(key, {"resolution": {"name": "Done"}})
    assert result.ok and any("resolution" in w for w in result.warnings)
    assert sandbox.issue(key)["fields"]["resolution"] is None
    assert sandbox.log.writes() == 0


def test_a_path_through_an_unexplored_done_status_is_refused_not_guessed(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    """Open -> Closed needs Resolved, a done status: with no issue there to learn from,
    the connector won't gamble (it might as well end in Canceled)."""
    from connectors.base import NoTransitionPath

    key = sandbox.create_issue({"summary": "close me"})
    with pytest.raises(NoTransitionPath, match="transitions out of Resolved"):
        connector.update(key, {"status": "Closed", "resolution": {"name": "Done"}})
    assert sandbox.issue(key)["fields"]["status"]["name"] not in ("Canceled", "Closed")
    sandbox.transition_issue(sandbox.create_issue({"summary": "teacher"}), "Resolved",
                             resolution="Done")
    fresh = make_connector(sandbox)  # a new run learns afresh
    fresh.update(key, {"status": "Closed", "resolution": {"name": "Done"}})
    assert sandbox.issue(key)["fields"]["status"]["name"] == "Closed"


def test_ids_with_control_characters_are_exact_through_labels(
    connector: JiraConnector,
) -> None:
    odd = "sys\x00id\x1b"
    (created,) = connector.create([NewRecord({"summary": "odd"}, odd)])
    assert created.ok
    assert {k: v.id for k, v in connector.find_by_foreign_id([odd], FIELDS).items()} == {
        odd: created.id}
    assert connector.find_by_foreign_id(["sysid"], FIELDS) == {}


# ---------------------------------------------------------------- concurrency


def test_comments_overlap_across_issues_and_keep_their_order_within_one(
    sandbox: JiraSandbox,
) -> None:
    connector = make_connector(sandbox, concurrency=4)
    keys = [sandbox.create_issue({"summary": f"busy {n}"}) for n in range(6)]
    sandbox.faults.latency_ms = 20  # so requests do overlap
    wanted = [NewComment(key, text(sandbox, f"{key} #{k}"), "internal")
              for k in range(3) for key in keys]
    results = connector.add_comments(wanted)
    assert all(r.ok for r in results), [r.error for r in results]
    assert connector._limit.peak > 1
    for key in keys:
        bodies = [c["body"] for c in sandbox.issue(key)["fields"]["comment"]["comments"]]
        assert [adf_to_text(b).strip() if isinstance(b, dict) else b.strip()
                for b in bodies] == [f"{key} #{k}" for k in range(3)]


def test_429s_lower_the_concurrency_and_nothing_is_lost_or_reordered(
    sandbox: JiraSandbox,
) -> None:
    sleeps: list[float] = []
    connector = make_connector(sandbox, sleeps, concurrency=4)
    keys = [sandbox.create_issue({"summary": f"throttled {n}"}) for n in range(5)]
    sandbox.faults.script.extend(
        [Fault("429", retry_after=2, method="POST", path="/rest/api")] * 3)
    wanted = [NewComment(key, text(sandbox, f"{key} note {k}"), "public")
              for key in keys for k in range(4)]
    results = connector.add_comments(wanted)
    assert all(r.ok for r in results), [r.error for r in results]
    assert connector._limit.lowest < 4          # halved on the 429s
    assert 2.0 in sleeps                        # Retry-After honoured
    assert sandbox.log.count("POST", "re:/comment$", status=429) == 3
    for key in keys:
        bodies = [c["body"] for c in sandbox.issue(key)["fields"]["comment"]["comments"]]
        assert [adf_to_text(b).strip() if isinstance(b, dict) else b.strip()
                for b in bodies] == [f"{key} note {k}" for k in range(4)]


def test_write_many_edits_issues_concurrently_in_order_per_issue(
    sandbox: JiraSandbox,
) -> None:
    connector = make_connector(sandbox, concurrency=3)
    keys = [sandbox.create_issue({"summary": f"edit {n}"}) for n in range(4)]
    results = connector.write_many(
        [RecordWrite(key, {"summary": f"{key} first"}) for key in keys]
        + [RecordWrite(key, {"summary": f"{key} second"}, f"sys-{key}") for key in keys])
    assert all(r.ok for r in results), [r.error for r in results]
    for key in keys:
        fields = sandbox.issue(key)["fields"]
        assert fields["summary"] == f"{key} second" and f"snow-sys-{key}" in fields["labels"]


def test_relinked_issues_get_their_stale_property_updated_in_one_request_on_cloud(
    connector: JiraConnector, sandbox: JiraSandbox, mode: str
) -> None:
    made = connector.create([NewRecord({"summary": f"r{n}"}, f"old{n}",
                                       f"https://dev1.service-now.com/incident.do?sys_id=old{n}")
                             for n in range(3)])
    plain = sandbox.create_issue({"summary": "never had a property"})
    sandbox.log.clear()
    results = connector.write_many([RecordWrite(r.id or "", {}, f"new{n}")
                                    for n, r in enumerate(made)]
                                   + [RecordWrite(plain, {}, "new9")])
    assert all(r.ok and not r.warnings for r in results), results
    for n, result in enumerate(made):
        prop = connector._api("GET", f"issue/{result.id}/properties/incident-sync")["value"]
        assert prop == {"servicenow_sys_id": f"new{n}",
                        "servicenow_url": f"https://dev1.service-now.com/incident.do?sys_id=new{n}"}
    assert connector._api("GET", f"issue/{plain}/properties")["keys"] == []
    if mode == "cloud":
        assert sandbox.log.count("POST", "re:/issue/properties/multi$", status=303) == 1
        assert sandbox.log.count("PUT", "re:/properties/") == 0
        assert sandbox.log.count("GET", "re:/task/") == 0  # the 303 is not followed
    else:
        assert sandbox.log.count("PUT", "re:/properties/incident-sync$") == 3
    # A single mark outside a batch updates its property at once.
    connector.mark_foreign_id(made[0].id or "", "newest")
    prop = connector._api("GET", f"issue/{made[0].id}/properties/incident-sync")["value"]
    assert prop["servicenow_sys_id"] == "newest"


def test_write_many_reads_no_version_for_writes_that_want_none(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    """The engine reads its first writes back itself (the settle step): writes marked
    ``version_wanted=False`` cost their check search and their edits only, answer no
    version, and a write beside them that wants its version still gets it."""
    keys = [sandbox.create_issue({"summary": f"quiet edit {n}"}) for n in range(4)]
    seen = {k: r.version for k, r in connector.get_many(keys, ["summary"]).items()}
    sandbox.log.clear()
    results = connector.write_many([
        RecordWrite(key, {"summary": f"edited {n}"}, f"sys{n}", seen[key],
                    version_wanted=False) for n, key in enumerate(keys[:3])])
    assert all(r.ok and r.version is None for r in results), results
    assert sandbox.log.count("PUT", r"re:/issue/[A-Z]+-\d+$") == 3
    assert len(_check_searches(sandbox)) == 1
    assert sandbox.log.count(path="re:/search") == 1          # the check, no version search
    assert [sandbox.issue(k)["fields"]["summary"] for k in keys[:3]] == [
        "edited 0", "edited 1", "edited 2"]
    sandbox.log.clear()
    mixed = connector.write_many([
        RecordWrite(keys[0], {"summary": "again"}, None, None, version_wanted=False),
        RecordWrite(keys[3], {"summary": "wanted"}, None, seen[keys[3]])])
    assert mixed[0].ok and mixed[0].version is None
    assert mixed[1].ok and mixed[1].version == sandbox.issue(keys[3])["fields"]["updated"]


def test_write_many_checks_its_issues_in_one_search_instead_of_a_read_each(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    keys = [sandbox.create_issue({"summary": f"cost {n}"}) for n in range(10)]
    seen = {k: r.version for k, r in connector.get_many(keys, ["summary"]).items()}
    sandbox.log.clear()
    results = connector.write_many([
        # Fields and the mark of the ServiceNow copy travel in the same edit.
        RecordWrite(key, {"summary": f"edited {n}"}, f"sys{n}" if n % 2 else None, seen[key])
        for n, key in enumerate(keys)])
    assert all(r.ok and r.version for r in results), [r.error for r in results]
    assert sandbox.log.count("GET", r"re:/issue/[A-Z]+-\d+$") == 0
    assert sandbox.log.count("PUT", r"re:/issue/[A-Z]+-\d+$") == 10
    # One check search (its pages) before the edits, then the new versions, one search
    # per page of keys (50 at most: Cloud reconciles ids).
    pages = math.ceil(len(keys) / PAGE_SIZE)
    assert len(_check_searches(sandbox)) == pages
    assert sandbox.log.count(path="re:/search") == 2 * pages
    current = connector.get_many(keys, ["summary"])
    assert [current[r.id or ""].version for r in results] == [r.version for r in results]
    assert current[keys[1]].foreign_id == "sys1" and current[keys[0]].foreign_id is None
    assert current[keys[3]].fields["summary"] == "edited 3"


def _check_searches(sandbox: JiraSandbox) -> list[int]:
    """Positions in the log of write_many's check searches: the ones asking for exactly
    the fields a write checks (updated, status, labels), not the record fields."""
    return [n for n, e in enumerate(sandbox.log.entries)
            if "/search" in e.path and "fields=updated" in e.query
            and "fields=labels" in e.query and "fields=comment" not in e.query]


def test_write_many_reads_each_batch_in_one_search_just_before_its_edits(
    sandbox: JiraSandbox,
) -> None:
    """N edited issues -> ceil(N / batch) check searches (50 on Cloud: the reconcile
    limit; 100 on Data Center), not N reads; each made after the previous batch's edits
    and before its own."""
    connector = make_connector(sandbox, page_size=100)
    keys = [sandbox.create_issue({"summary": f"many {n}"}) for n in range(120)]
    seen = {k: r.version for k, r in connector.get_many(keys, ["summary"]).items()}
    sandbox.log.clear()
    results = connector.write_many([
        RecordWrite(key, {"summary": f"batched {n}"}, f"sn{n}" if n % 3 == 0 else None,
                    seen[key]) for n, key in enumerate(keys)])
    assert all(r.ok and r.version for r in results), [r.error for r in results][:3]
    batch = 50 if sandbox.cloud else 100
    checks = _check_searches(sandbox)
    assert len(checks) == math.ceil(len(keys) / batch)
    assert sandbox.log.count("GET", r"re:/issue/[A-Z]+-\d+$") == 0
    entries = sandbox.log.entries
    for number, position in enumerate(checks):
        edits_before = sum(1 for e in entries[:position] if e.method == "PUT")
        assert edits_before == number * batch
        # The mark compares the entity property too: asked in the same search.
        assert "properties=incident-sync" in entries[position].query
        if sandbox.cloud:  # read-after-write for exactly the batch's issues
            assert entries[position].query.count("reconcileIssues=") == min(
                batch, len(keys) - number * batch)
    assert sandbox.issue(keys[3])["fields"]["labels"] == ["snow-sn3"]
    assert sandbox.issue(keys[119])["fields"]["summary"] == "batched 119"
    connector.close()


def test_write_many_refuses_only_the_issue_a_person_edited_since_the_pull(
    connector: JiraConnector, sandbox: JiraSandbox, clock: FakeClock
) -> None:
    keys = [sandbox.create_issue({"summary": f"race {n}"}) for n in range(3)]
    seen = {k: r.version for k, r in connector.get_many(keys, ["summary"]).items()}
    clock.advance(minutes=1)
    sandbox.edit_issue(keys[1], {"summary": "typed by a person"},
                       as_user="elif.yilmaz@example.com")
    sandbox.log.clear()
    results = connector.write_many([
        RecordWrite(key, {"summary": f"ours {n}"}, f"sn{n}", seen[key])
        for n, key in enumerate(keys)])
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, PreconditionFailed)
    assert sandbox.issue(keys[1])["fields"]["summary"] == "typed by a person"
    assert "snow-sn1" not in sandbox.issue(keys[1])["fields"]["labels"]
    assert sandbox.issue(keys[2])["fields"]["summary"] == "ours 2"
    assert sandbox.log.count("GET", r"re:/issue/[A-Z]+-\d+$") == 0
    assert sandbox.log.count("PUT", r"re:/issue/[A-Z]+-\d+$") == 2


def test_write_many_reads_by_itself_what_its_search_cannot_serve(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    """A key's second write in one batch must see the first one's edit, and an issue
    the search does not return (here deleted) fails alone, as a read of it would."""
    keys = [sandbox.create_issue({"summary": f"odd {n}"}) for n in range(3)]
    seen = {k: r.version for k, r in connector.get_many(keys, ["summary"]).items()}
    sandbox.delete_issue(keys[2])
    sandbox.log.clear()
    results = connector.write_many([
        RecordWrite(keys[0], {"summary": "first"}, None, seen[keys[0]]),
        RecordWrite(keys[1], {"summary": "one"}),
        RecordWrite(keys[0], {"labels": ["team-a"]}, "sn0"),
        RecordWrite(keys[2], {"summary": "gone"}, "sn2", seen[keys[2]]),
    ])
    assert [r.ok for r in results] == [True, True, True, False]
    assert isinstance(results[3].error, NotFound)
    fields = sandbox.issue(keys[0])["fields"]
    assert fields["summary"] == "first" and fields["labels"] == ["team-a", "snow-sn0"]
    # keys[0]'s second write and the deleted issue read themselves; the rest is searched.
    assert sandbox.log.count("GET", f"re:/issue/{keys[0]}$") == 1
    assert sandbox.log.count("GET", f"re:/issue/{keys[2]}$") == 1
    assert sandbox.log.count("GET", f"re:/issue/{keys[1]}$") == 0
    # One search answered (Cloud first refuses the query naming the deleted key: 400).
    answered = [n for n in _check_searches(sandbox) if sandbox.log.entries[n].status == 200]
    assert len(answered) == 1


@pytest.mark.parametrize("mode", ["cloud"])  # Data Center's search needs no ids
def test_write_many_on_cloud_reads_an_issue_the_run_never_searched_by_itself(
    sandbox: JiraSandbox,
) -> None:
    """Cloud's search is read-after-write only for reconciled ids: an issue whose id the
    run does not know is checked by its own read, never by an unreconciled search."""
    assert sandbox.cloud
    first = make_connector(sandbox)
    key = sandbox.create_issue({"summary": "unseen"})
    version = first.get_many([key], ["summary"])[key].version
    first.close()
    connector = make_connector(sandbox)  # a fresh run: no id known yet
    sandbox.log.clear()
    results = connector.write_many([RecordWrite(key, {"summary": "checked"}, None, version)])
    assert results[0].ok, results[0].error
    assert sandbox.log.count("GET", f"re:/issue/{key}$") == 1
    assert _check_searches(sandbox) == []
    connector.close()



# --------------------------------------------------------------------------- read-back


def test_a_create_whose_caller_reads_back_sends_no_version_search(
    connector: JiraConnector, sandbox: JiraSandbox
) -> None:
    """The engine reads every issue it created back (its settle step): a create it marks
    ``version_wanted=False`` answers the keys, the workflow steps done, and no version,
    without the search it would make for one (Jira's bulk create answers no version)."""
    connector.create([NewRecord({"summary": "learn", "status": "Resolved"}, "v0")])
    sandbox.log.clear()
    results = connector.create([
        NewRecord({"summary": f"quiet {n}", "status": "Resolved" if n % 2 else None},
                  f"v{n + 1}", version_wanted=False) for n in range(4)])
    assert all(r.ok and r.id and r.version is None for r in results), results
    assert sandbox.log.count(path="re:/search") == 0
    assert [sandbox.issue(r.id or "")["fields"]["status"]["name"] for r in results] == [
        "Open", "Resolved", "Open", "Resolved"]
    # What the create and its steps left is what a read of the issues then finds.
    found = connector.get_many([r.id or "" for r in results], ["summary", "status"])
    assert [found[r.id or ""].version for r in results] == [
        sandbox.issue(r.id or "")["fields"]["updated"] for r in results]


@pytest.mark.parametrize("mode", ["cloud"])  # Data Center documents no eventual consistency
def test_reading_issues_the_run_just_created_reconciles_their_ids_on_cloud(
    sandbox: JiraSandbox,
) -> None:
    """Cloud's search is read-after-write only for the ids it reconciles (at most 50): a
    get_many of issues the run created searches those 50 a search with their ids, so the
    read that replaced the create's version search still sees what the create made."""
    connector = make_connector(sandbox, page_size=100)
    older = [sandbox.create_issue({"summary": f"older {n}"}) for n in range(3)]
    made = connector.create([NewRecord({"summary": f"new {n}"}, f"r{n}", version_wanted=False)
                             for n in range(60)])
    keys = [r.id or "" for r in made]
    ids = {key: str(sandbox.issue(key)["id"]) for key in keys}
    sandbox.log.clear()
    found = connector.get_many([*keys, *older], ["summary"])
    assert set(found) == {*keys, *older}
    searches = [e for e in sandbox.log.entries if "/search" in e.path]
    reconciled = [e for e in searches if "reconcileIssues=" in e.query]
    # The chunks go together: their order in the log is the order they arrived in.
    assert sorted(e.query.count("reconcileIssues=") for e in reconciled) == [10, 50]
    assert sorted(q for e in reconciled for q in _reconciled_ids(e.query)) == sorted(
        ids.values())
    # The issues the run did not create: one plain search, as before.
    assert len(searches) - len(reconciled) == 1
    connector.close()


@pytest.mark.parametrize("mode", ["cloud"])
def test_reading_issues_the_run_edited_or_commented_reconciles_their_ids_on_cloud(
    sandbox: JiraSandbox,
) -> None:
    """An edit, a transition or a comment changes the issue as a create does: the read
    after it (the settle step's) is reconciled by id, so an eventually consistent search
    cannot hand back the issue from before our write (which the engine would take for
    what Jira made of it). Issues the run only read are searched as before."""
    connector = make_connector(sandbox, page_size=100)
    keys = [sandbox.create_issue({"summary": f"there {n}"}) for n in range(5)]
    seen = {k: r.version for k, r in connector.get_many(keys, ["summary"]).items()}
    edited, moved, commented = keys[0], keys[1], keys[2]
    results = connector.write_many([
        RecordWrite(edited, {"summary": "edited"}, None, seen[edited]),
        RecordWrite(moved, {"status": "Resolved", "resolution": "Done"}, None, seen[moved])])
    assert all(r.ok for r in results), [r.error for r in results]
    made = connector.add_comments([NewComment(commented, text(sandbox, "a note"), "public")])
    assert all(r.ok for r in made)
    sandbox.log.clear()
    found = connector.get_many(keys, ["summary", "status"])
    assert found[edited].fields["summary"] == "edited"
    assert found[moved].fields["status"]["name"] == "Resolved"
    searches = [e for e in sandbox.log.entries if "/search" in e.path]
    reconciled = sorted(q for e in searches for q in _reconciled_ids(e.query))
    assert reconciled == sorted(str(sandbox.issue(k)["id"]) for k in (edited, moved, commented))
    # The two issues this run did not write: searched without reconciling.
    plain = [e for e in searches if "reconcileIssues=" not in e.query]
    assert len(plain) == 1 and all(k in plain[0].query for k in keys[3:])
    connector.close()


def _reconciled_ids(query: str) -> list[str]:
    return [part.split("=", 1)[1] for part in query.split("&")
            if part.startswith("reconcileIssues=")]
