"""bench/wall.py: its time split adds up and its request log agrees with the sandboxes.

Counts and sums only, never a time: the in-flight time shared out per route adds up
to the time any request was in flight, that and the idle time to the wall, and the
requests the connectors logged are the wire requests the sandboxes counted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.wall import Timed, share_out  # noqa: E402


def test_overlapping_requests_share_their_time_and_gaps_are_idle() -> None:
    busy, shares = share_out([
        Timed("jira POST bulk", 0.0, 1.0),
        Timed("jira POST bulk", 0.5, 1.5),      # the same route twice: counted once
        Timed("servicenow GET incident", 1.0, 2.0),
        Timed("servicenow GET incident", 3.0, 4.0),   # after a gap of 1 s with none
    ])
    assert busy == pytest.approx(3.0)
    assert shares == pytest.approx({"jira POST bulk": 1.25, "servicenow GET incident": 1.75})


def test_a_small_sync_is_split_and_counted_consistently(tmp_path: Path) -> None:
    out = tmp_path / "wall.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "wall.py"), "--size", "6", "--latency-ms", "0",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["done"]["created"] == 6 and result["done"]["failed"] == 0
    assert result["requests"] == result["sandbox_requests"] > 0
    assert sum(r["requests"] for r in result["by_route"].values()) == result["requests"]
    assert sum(r["in_flight"] for r in result["by_route"].values()) == pytest.approx(
        result["in_flight"])
    assert result["in_flight"] + result["idle"] == pytest.approx(result["wall"])
    assert "POST /rest/api/3/issue/bulk" in " ".join(result["by_route"])


def test_bad_options_exit_2() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "wall.py"), "--size", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "--size" in done.stderr
