"""The economy bench runs end to end at a tiny size; its counts, bounds and report hold together.

Runs ``bench/economy.py`` once as a user would (a subprocess, every scenario,
N = 4, one repeat, no latency, processes forked from a preloaded server, results
into a temp dir) and checks COUNTS only,
never times: every sync did its work, the naive sync spends a request per record
where the product pages, the lower bound follows its documented formula, and the
report names the targets met or missed. Also: ``incident-sync sandbox`` seeds
exactly what the bench's sandboxes hold, so figures taken by hand compare.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.economy import Limits, SeedFacts, lower_bound, markdown, seed_facts  # noqa: E402
from bench.host import HostSpec, start_counting  # noqa: E402
from connectors.sandbox.serve import start_sandboxes  # noqa: E402

SIZE = 4
SIDES = ("servicenow", "jira")


@pytest.fixture(scope="module")
def economy(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    out = tmp_path_factory.mktemp("economy")
    results = out / "RESULTS.md"
    results.write_text("# Bench results\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "economy.py"), "--sizes", str(SIZE),
         "--repeat", "1", "--latency-ms", "0", "--rss-size", "3",
         # Forked from a preloaded server: ~20 syncs start without re-importing.
         "--start-method", "forkserver",
         "--json", str(out / "economy.json"), "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "economy.json").read_text(encoding="utf-8"))
    return data, results.read_text(encoding="utf-8"), out


def scenario(data: dict[str, Any], name: str) -> dict[str, Any]:
    return data["sizes"][str(SIZE)][name]


def total(run: dict[str, Any]) -> int:
    return sum(run["requests"][side]["total"] for side in SIDES)


@pytest.mark.slow  # one bench run: some 20 processes, about a minute
@pytest.mark.parametrize("name", ["sn-to-jira", "sn-to-jira-comments", "jira-to-sn"])
def test_initial_syncs_copy_every_record_ours_and_naive(economy: Any, name: str) -> None:
    data = scenario(economy[0], name)
    (ours,), (naive,) = data["ours"], data["naive"]
    assert ours["done"]["created"] == naive["done"]["created"] == SIZE
    assert ours["done"]["failed"] == naive["done"]["failed"] == 0
    seeded = seed_facts(SIZE, 1, comments=name != "sn-to-jira").comments
    assert ours["done"]["comments"] == naive["done"]["comments"] == seeded
    # Each sync ran in its own process, measured there.
    assert ours["peak_rss"] > 0 and ours["cpu"] > 0 and ours["wall"] > 0


@pytest.mark.slow  # one bench run: some 20 processes, about a minute
def test_without_comments_the_source_holds_none(economy: Any) -> None:
    (ours,) = scenario(economy[0], "sn-to-jira")["ours"]
    jira = ours["requests"]["jira"]["by_route"]
    assert not any(route.endswith("/comment") for route in jira)


@pytest.mark.slow  # one bench run: some 20 processes, about a minute
def test_remote_links_scenario_links_each_issue_once_and_has_no_naive_run(
    economy: Any,
) -> None:
    data = scenario(economy[0], "sn-to-jira-links")
    (ours,) = data["ours"]
    assert data["naive"] == []     # the naive sync makes no remote links: nothing to compare
    assert ours["done"]["created"] == SIZE and ours["done"]["failed"] == 0
    jira = ours["requests"]["jira"]["by_route"]
    assert jira["POST /rest/api/3/issue/{key}/remotelink"] == SIZE
    assert data["limits"]["remote_link"] is True
    # Without the switch, none: the default config makes no remote link.
    (plain,) = scenario(economy[0], "sn-to-jira")["ours"]
    assert not any(route.endswith("/remotelink") for route in plain["requests"]["jira"]["by_route"])
    assert "remote links on: requests per incident" in economy[1]


@pytest.mark.slow  # one bench run: some 20 processes, about a minute
def test_naive_sync_searches_creates_and_marks_once_per_record(economy: Any) -> None:
    (naive,) = scenario(economy[0], "sn-to-jira")["naive"]
    sn = naive["requests"]["servicenow"]["by_route"]
    jira = naive["requests"]["jira"]["by_route"]
    assert sn["PATCH /api/now/table/incident/{sys_id}"] == SIZE   # the id written back
    assert jira["POST /rest/api/3/issue/bulk"] == SIZE            # create([one]) each
    # One search per record (by its id) besides the scope pull.
    searches = sum(n for route, n in jira.items() if route.endswith("/search/jql"))
    assert searches >= SIZE


@pytest.mark.slow  # one bench run: some 20 processes, about a minute
def test_idle_run_writes_nothing_and_the_naive_idle_searches_every_record(
    economy: Any,
) -> None:
    idle = scenario(economy[0], "idle")
    (ours,), (naive,) = idle["ours"], idle["naive"]
    for run in (ours, naive):
        assert all(run["requests"][side]["writes"] == 0 for side in SIDES)
    assert naive["done"]["pulled"] == SIZE
    assert total(naive) >= SIZE + sum(idle["signin"].values())


@pytest.mark.slow  # one bench run: some 20 processes, about a minute
def test_one_percent_changed_travels_both_ways(economy: Any) -> None:
    changed = scenario(economy[0], "changed")
    k = changed["k"]
    (ours,), (naive,) = changed["ours"], changed["naive"]
    assert k == 1
    assert ours["done"]["updated"] == 2 * k and ours["done"]["failed"] == 0
    assert naive["done"]["updated"] == 2 * k


@pytest.mark.slow  # one bench run: some 20 processes, about a minute
def test_sub_requests_are_counted_apart_from_wire_requests(economy: Any) -> None:
    (ours,) = scenario(economy[0], "jira-to-sn")["ours"]
    sn = ours["requests"]["servicenow"]
    # One Batch API request for the creates, then one per copied comment a record holds
    # at most (0-3 in the seed): the Batch API promises no item order.
    assert 1 <= sn["by_route"]["POST /api/now/v1/batch"] <= 1 + 3
    assert sn["batch_items"]["POST /api/now/table/incident"] == SIZE
    assert "POST /api/now/table/incident" not in sn["by_route"]


@pytest.mark.slow  # one bench run: some 20 processes, about a minute
def test_report_is_appended_with_machine_bound_naive_and_targets(economy: Any) -> None:
    data, appended, out = economy
    assert appended.startswith("# Bench results\n")
    section = markdown(data)
    assert appended.endswith(section)
    for words in ("## Request economy", "cores", "Python", "load average", "lower bound",
                  "naive / ours", "Targets of issue #12", "RSS run", "N = 3,"):
        assert words in section, words
    assert ("| met |" in section) or ("| **missed** |" in section)
    # --report renders the saved figures again, without running anything.
    again = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "economy.py"), "--report",
         str(out / "economy.json"), "--no-append"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert again.returncode == 0 and again.stdout == section


def test_lower_bound_follows_its_formula() -> None:
    limits = Limits(sn_page=500, jira_page=100, sn_batch=50, sn_ids=100, jira_bulk=50,
                    remote_link=True, signin={"servicenow": 1, "jira": 3})
    facts = SeedFacts(records=1000, comments=1400, with_comments=700, extra_steps=100)
    to_jira = lower_bound("sn-to-jira-comments", limits, facts)
    # SN: sign-in + 2 pages + 2 journal pages + 20 back-link batches.
    assert to_jira["servicenow"] == 1 + 2 + 2 + 20
    # Jira: sign-in + empty search + 20 bulk creates + 100 extra steps + 1000 links + comments.
    assert to_jira["jira"] == 3 + 1 + 20 + 100 + 1000 + 1400
    back = lower_bound("jira-to-sn", limits, facts)
    assert back["servicenow"] == 1 + 1 + math.ceil(2400 / 50) + 7
    # Jira: sign-in + 10 search pages + a mark (label) edit per original.
    assert back["jira"] == 3 + 10 + 1000
    assert lower_bound("idle", limits, facts)["total"] == 1 + 3 + 2
    changed = lower_bound("changed", limits, facts, changed=10)
    assert changed["total"] == (1 + 1 + 1 + 1) + (3 + 1 + 10)


def test_bad_option_is_a_one_line_error_naming_it() -> None:
    for option, value in (("--sizes", "ten"), ("--scenarios", "nap"), ("--repeat", "0")):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "economy.py"), option,
                               value], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 2, option
        assert option in done.stderr.strip().splitlines()[-1]


def _incidents(servicenow: Any) -> list[tuple[str, str, str]]:
    return [(r["short_description"], r["impact"], r["state"])
            for r in servicenow.rows("incident")]


def _issues(jira: Any) -> list[tuple[str, str]]:
    return [(jira.issue(k)["fields"]["summary"], jira.issue(k)["fields"]["status"]["name"])
            for k in jira.issue_keys()]


def test_sandbox_command_seeds_what_the_bench_serves() -> None:
    bench = start_counting(HostSpec(servicenow_incidents=6, jira_incidents=5))
    servicenow, jira = start_sandboxes(seed_incidents=6, jira_seed_incidents=5)
    try:
        assert _incidents(servicenow) == _incidents(bench["servicenow"])
        journal = [(r["element"], r["value"]) for r in servicenow.rows("sys_journal_field")]
        assert journal == [(r["element"], r["value"])
                           for r in bench["servicenow"].rows("sys_journal_field")]
        assert _issues(jira) == _issues(bench["jira"])
    finally:
        servicenow.stop()
        jira.stop()


def test_sandbox_command_seeds_one_side_for_a_first_sync(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors.sandbox", "--servicenow-port", "0", "--jira-port",
         "0", "--seed-incidents", "3", "--jira-seed-incidents", "0",
         "--write-config", str(tmp_path / "sandbox.toml")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving"):
                break
        assert any(line.startswith("Jira sandbox") and "0 incidents" in line for line in lines)
        url = next(line.split()[2] for line in lines if line.startswith("ServiceNow sandbox"))
        listed = requests.get(f"{url}/api/now/table/incident", auth=("admin", "sandbox"),
                              headers={"Accept": "application/json"}, timeout=10)
        assert len(listed.json()["result"]) == 3
    finally:
        # Stopping on Ctrl-C is the sandbox command's own test; here it only has to go.
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
