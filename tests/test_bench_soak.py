"""The soak (``bench/soak.py``) in CI: a short run finds nothing wrong, and its check bites.

The short run is the soak as a user runs it (a subprocess, Cloud and Data
Center, faults, runs killed with SIGINT/SIGKILL), a few rounds only, so it
takes seconds. Its verdict line and exit status carry every must-be-zero
figure. The second test proves the final check is not blind: an edit and a
comment made after the last sync are reported as lost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.soak import MUST_BE_ZERO, Soak, verdict  # noqa: E402
from bench.soak_world import Edit  # noqa: E402

pytestmark = pytest.mark.slow


def test_a_short_soak_on_cloud_and_data_center_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    figures_file = tmp_path / "soak.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--rounds", "4", "--records", "2",
         "--jira-mode", "both", "--seed", "3", "--kill-rate", "0.6",
         "--json", str(figures_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)

    last = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert last.startswith("soak: OK (cloud+datacenter): 8 rounds, ")
    document = json.loads(figures_file.read_text(encoding="utf-8"))
    assert [r["mode"] for r in document["results"]] == ["cloud", "datacenter"]
    for result in document["results"]:
        assert {name: result[name] for name in MUST_BE_ZERO} == dict.fromkeys(MUST_BE_ZERO, 0)
        assert result["rounds"] == 4 and result["edits"] > 0 and result["faults"] > 0
        assert result["runs"] == 4 + result["quiet_runs"]
    # The soak did put the sync through kills, not only faults.
    assert sum(r["kills_sigint"] + r["kills_sigkill"] for r in document["results"]) > 0


def test_the_soak_check_reports_an_edit_and_a_comment_that_never_synced() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="soak-check-"))
    soak = Soak("cloud", rounds=0, records=1, seed=5, fault_rate=0.0, kill_rate=0.0,
                workdir=workdir)
    try:
        with soak.serving():
            soak.seed_records()
            assert soak.run_child(faults=False, kill=False) == 0
            sys_id = soak.sn_ids()[0]
            soak.servicenow.update("incident", sys_id,
                                   {"short_description": "Edited, never synced"})
            soak.edits.append(Edit("servicenow", sys_id, "title", "Edited, never synced", 0.0,
                                   soak.epoch))
            soak.comment("servicenow", sys_id)
            soak.check()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures = soak.figures
    assert (figures.lost_edits, figures.lost_comments, figures.duplicates) == (1, 1, 0)
    assert any("lost edit: title" in finding for finding in figures.findings)
    line, code = verdict([figures])
    assert code == 1 and line.startswith("soak: FAIL (cloud)")
    assert "lost edits 1, lost comments 1" in line
