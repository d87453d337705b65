"""The benchmarks run end to end at a tiny size, and their request counts say what they should.

Runs ``bench/run.py`` once as a user would (a subprocess, results into a temp
dir) and checks the recorded COUNTS only, never times: batching on creates,
zero writes on a repeat run, writes that follow the number of edits, pulls in
ceil(records / page) pages. The bench package is not installed, so the pure
helpers are imported with the repository root put on the path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.host import is_write, route_of  # noqa: E402
from bench.report import count_text, markdown, minimum_writes  # noqa: E402

SIZE = 5
EDITS = (1, 3)
PULL = 60
SN_PAGE = 25
JIRA_PAGE = 50


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--sizes", str(SIZE), "--repeat", "1",
         "--edits", ",".join(map(str, EDITS)), "--pull", str(PULL),
         "--sn-pages", str(SN_PAGE), "--jira-pages", str(JIRA_PAGE),
         "--latency-size", "4", "--latency-ms", "5", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text(encoding="utf-8")), out


def runs(results: dict[str, Any], direction: str) -> dict[str, dict[str, Any]]:
    (only,) = results["sync"][direction][str(SIZE)]
    return {run["label"]: run for run in only}


def routes(run: dict[str, Any], side: str) -> dict[str, int]:
    return run["requests"][side]["by_route"]


def test_initial_sync_to_jira_creates_in_one_bulk_request(bench: Any) -> None:
    initial = runs(bench[0], "servicenow-to-jira")["initial"]
    assert initial["summary"]["created"] == SIZE and not initial["failures"]
    jira = routes(initial, "jira")
    assert jira["POST /rest/api/3/issue/bulk"] == 1
    # The entity property rides in the bulk create, and the remote link back to
    # ServiceNow is off by default ([jira] remote_link): no request per issue for them.
    assert "PUT /rest/api/3/issue/{key}/properties/incident-sync" not in jira
    assert "POST /rest/api/3/issue/{key}/remotelink" not in jira
    assert jira["POST /rest/api/3/issue/{key}/comment"] == initial["summary"]["comments"]
    # The originals' back-links (correlation_id) go as one Batch API request.
    servicenow = initial["requests"]["servicenow"]
    assert servicenow["by_route"]["POST /api/now/v1/batch"] == 1
    assert servicenow["batch_items"] == {"PATCH /api/now/table/incident/{sys_id}": SIZE}


def test_initial_sync_to_servicenow_creates_through_one_batch_request(bench: Any) -> None:
    initial = runs(bench[0], "jira-to-servicenow")["initial"]
    assert initial["summary"]["created"] == SIZE and not initial["failures"]
    servicenow = initial["requests"]["servicenow"]
    assert "POST /api/now/table/incident" not in servicenow["by_route"]
    # The batch's items are counted apart, never as requests on the wire: the creates,
    # then the copied comments as journal PATCHes. The Batch API promises no item
    # order, so a record's second comment waits for the next batch: one batch for the
    # creates plus one per comment a record holds at most (the seed gives 0-3).
    comments = initial["summary"]["comments"]
    assert servicenow["batch_items"] == {"POST /api/now/table/incident": SIZE,
                                         "PATCH /api/now/table/incident/{sys_id}": comments}
    assert 1 <= servicenow["by_route"]["POST /api/now/v1/batch"] <= 1 + 3
    assert servicenow["writes"] == servicenow["by_route"]["POST /api/now/v1/batch"]


def test_planning_an_initial_sync_reads_pages_not_records(bench: Any) -> None:
    for direction in ("servicenow-to-jira", "jira-to-servicenow"):
        initial = runs(bench[0], direction)["initial"]
        for side in ("servicenow", "jira"):
            planning = initial["plan_requests"][side]
            # Opening, one page of the pull, its comments, user names, one
            # marker lookup: a handful, whatever N, and nothing written.
            assert planning["writes"] == 0, (direction, side)
            assert planning["reads"] <= 6, (direction, side, planning)


def test_second_run_right_after_writes_nothing_and_reads_a_few_pages(bench: Any) -> None:
    for direction in ("servicenow-to-jira", "jira-to-servicenow"):
        repeat = runs(bench[0], direction)["repeat"]
        assert repeat["summary"]["created"] == repeat["summary"]["updated"] == 0
        for side in ("servicenow", "jira"):
            assert repeat["requests"][side]["writes"] == 0, (direction, side)
            assert repeat["requests"][side]["reads"] <= 5, (direction, side, repeat)


@pytest.mark.parametrize(("direction", "source", "target"), [
    ("servicenow-to-jira", "servicenow", "jira"),
    ("jira-to-servicenow", "jira", "servicenow"),
])
def test_incremental_run_writes_once_per_edited_record(
    bench: Any, direction: str, source: str, target: str
) -> None:
    by_label = runs(bench[0], direction)
    first, later = by_label["first-incremental k=1"], by_label[f"incremental k={EDITS[1]}"]
    for run, k in ((first, 1), (later, EDITS[1])):
        assert run["summary"]["updated"] == k
        if target == "servicenow":
            # ServiceNow's writes of a run ride in one Batch API request, an item each.
            assert run["requests"][target]["writes"] == 1
            assert run["requests"][target]["batch_items"] == {
                "PATCH /api/now/table/incident/{sys_id}": k}
        else:
            assert run["requests"][target]["writes"] == k
        assert run["requests"][source]["writes"] == 0
    # Reads grow neither with N nor per written record: the checks before the writes
    # are one read per batch (ServiceNow `sys_idIN`, Jira `key in (...)`). What the
    # pulls' overlap window brings back depends on the clock: on ServiceNow the k = 3
    # pull also brings back the record the k = 1 run wrote (its journal and its
    # author's name, two reads that are not per record either); on Jira a run fetches
    # the counterparts its pull did not bring back in one read, which a k = 1 run
    # whose overlap happened to hold its one counterpart did not need.
    extra = later["requests"][target]["reads"] - first["requests"][target]["reads"]
    assert extra <= {"jira": 1, "servicenow": 2}[target], (first, later)


def test_a_lost_state_store_is_recovered_by_adoption_without_writes(bench: Any) -> None:
    for direction in ("servicenow-to-jira", "jira-to-servicenow"):
        lost = runs(bench[0], direction)["state-lost"]
        assert lost["summary"]["adopted"] == SIZE, (direction, lost["failures"])
        assert lost["summary"]["created"] == lost["summary"]["comments"] == 0
        for side in ("servicenow", "jira"):
            assert lost["requests"][side]["writes"] == 0, (direction, side)
            assert lost["requests"][side]["reads"] <= 6, (direction, side, lost)


def test_pull_asks_one_page_per_page_size(bench: Any) -> None:
    (pulls,) = bench[0]["pull"]
    by_side = {p["side"]: p for p in pulls}
    servicenow, jira = by_side["servicenow"], by_side["jira"]
    assert servicenow["records"] == jira["records"] == PULL
    assert servicenow["requests"]["by_route"]["GET /api/now/table/incident"] == -(-PULL // SN_PAGE)
    # Journal entries come in one request per page of records.
    assert servicenow["requests"]["by_route"]["GET /api/now/table/sys_journal_field"] == \
        -(-PULL // SN_PAGE)
    assert jira["requests"]["by_route"]["GET /rest/api/3/search/jql"] == -(-PULL // JIRA_PAGE)
    assert jira["requests"]["writes"] == servicenow["requests"]["writes"] == 0


def test_latency_changes_no_request_count(bench: Any) -> None:
    latency = bench[0]["latency"]
    totals = {run["latency_ms"]: sum(run["requests"][s]["total"] for s in ("servicenow", "jira"))
              for run in latency}
    assert set(totals) == {0.0, 5.0}
    assert totals[0.0] == totals[5.0] > 0


def test_memory_is_traced_for_each_direction(bench: Any) -> None:
    memory = bench[0]["memory"]
    assert {m["direction"] for m in memory} == {"servicenow-to-jira", "jira-to-servicenow"}
    for item in memory:
        assert item["records"] == SIZE and item["peak_bytes"] > 0 and not item["failures"]


def test_report_rerenders_the_saved_markdown(bench: Any) -> None:
    results, out = bench
    saved = (out / "results.md").read_text(encoding="utf-8")
    assert saved == markdown(results)
    for heading in ("## Initial sync", "## Second run right after", "## Incremental runs",
                    "## Recovery",
                    "## Full pull", "## Peak memory", "## Added latency"):
        assert heading in saved


def test_bad_option_is_a_one_line_error_naming_it() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--sizes", "ten"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "--sizes" in done.stderr.strip().splitlines()[-1]


def test_routes_fold_record_ids_but_keep_the_api_version() -> None:
    assert route_of("GET", "/rest/api/3/issue/OPS-12/transitions") == \
        "GET /rest/api/3/issue/{key}/transitions"
    assert route_of("PATCH", "/api/now/table/incident/" + "a1" * 16) == \
        "PATCH /api/now/table/incident/{sys_id}"
    assert route_of("GET", "/rest/api/2/issue/10023/comment/10005") == \
        "GET /rest/api/2/issue/{id}/comment/{id}"


def test_jira_search_by_post_counts_as_a_read() -> None:
    assert not is_write("POST /rest/api/3/search/jql")
    assert is_write("POST /api/now/v1/batch")
    assert not is_write("GET /api/now/table/incident")


def test_counts_that_disagree_across_repeats_are_flagged() -> None:
    assert count_text([4, 4, 4]) == "4"
    assert count_text([3, 4, 9]) == "4* (3..9)"


def test_minimum_writes_batch_creates_fifty_per_request() -> None:
    run = {"summary": {"comments": 7},
           "requests": {"jira": {"by_route": {
               "POST /rest/api/3/issue/{key}/transitions": 4}}, "servicenow": {"by_route": {}}}}
    assert minimum_writes("servicenow-to-jira", 120, run).startswith(
        "257 = 3 bulk + 240 property/remote link + 4 transitions + 7 comments + 3 SN")
    assert minimum_writes("jira-to-servicenow", 120, run).startswith("10 = 3 SN batch + 7")
