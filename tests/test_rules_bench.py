"""The rules micro-benchmark runs as a user would, and measures rules that really fire."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_rules_speed_bench_reports_rates_for_mapping_rules_and_both() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "rules_speed.py"), "--count", "200",
         "--repeat", "1", "--json"],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result["per_second"]) == {"mapping", "rules", "mapping+rules"}
    assert all(rate > 0 for rate in result["per_second"].values())
    # The batch exercises the rules: most incidents get a firing, not none of them.
    assert result["rules"] == 6 and 0 < result["fired"] < 200


def test_rules_speed_bench_refuses_a_bad_count_and_a_bad_rules_file(tmp_path: Path) -> None:
    bench = str(ROOT / "bench" / "rules_speed.py")
    bad = subprocess.run([sys.executable, bench, "--count", "0"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, check=False)
    assert bad.returncode == 2 and "--count" in bad.stderr
    rules = tmp_path / "r.toml"
    rules.write_text('[[rule]]\nname = "x"\nthen = { colour = "red" }\n', encoding="utf-8")
    broken = subprocess.run([sys.executable, bench, "--rules", str(rules)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert broken.returncode == 2
    assert broken.stderr.strip() == f"rules_speed: {rules}: rule 'x': then: unknown action" \
        " 'colour'"
