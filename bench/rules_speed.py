"""Micro-benchmark: mapping + rules over a batch of incidents, on one core.

Usage (from the repository root, with the project's virtualenv):

    .venv/bin/python bench/rules_speed.py [--count 20000] [--repeat 5] [--rules FILE]

Contract:
- Builds ``--count`` raw ServiceNow incident records (Table API shape) from the
  sandbox's realistic seed texts, with extra security, outage and access texts
  mixed in so the shipped rules really fire, and opened times spread over
  two days so SLA rules fire too (on most P1-P3 incidents).
- Times (CPU time of this one process, so one core), best of ``--repeat``: mapping alone
  (raw record -> neutral incident through the default profile), rules alone
  (the rules file, default ``rules.example.toml``, on the mapped incidents) and
  both together, and prints incidents per second for each as a Markdown table,
  plus how many incidents had a firing (so a bench where nothing fires cannot
  pass for fast rules).
- Nothing is contacted and nothing is written. ``--json`` prints the figures as
  JSON instead (the smoke test reads it).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connectors.sandbox.seed import seed_incidents
from mappings.mapper import MappingContext, to_incident
from mappings.model import Incident
from mappings.profile import load_profile
from sync.rules import RuleSet, apply_rules, load_rules

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
STATE = {"new": "1", "in_progress": "2", "on_hold": "3", "resolved": "6"}
# Texts the shipped rules act on, besides the seed's everyday incidents.
EXTRA = [
    ("Ransomware note on file server FS0{n}", "Files renamed to *.locked on share {n}."),
    ("Phishing mail with a fake invoice", "Several users clicked the link in {n} mails."),
    ("Mail server down", "Nobody can send mail since {n}:00."),
    ("Password reset for timesheet app", "Locked out after {n} attempts."),
    ("Our backups are ransomware-free, please confirm", "Audit question {n}."),
]


def records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` raw ServiceNow records (strings, as the Table API returns them)."""
    rng = random.Random(seed)
    base = seed_incidents(min(count, 500), seed=seed)
    out = []
    for i in range(count):
        s = base[i % len(base)]
        title, description = s.title, s.description
        if i % 4 == 0:
            title, description = (t.format(n=i % 10) for t in EXTRA[(i // 4) % len(EXTRA)])
        opened = NOW - timedelta(minutes=rng.randrange(0, 2 * 24 * 60))
        out.append({
            "sys_id": f"{i:032x}", "number": f"INC{i:07d}",
            "short_description": title, "description": description,
            "state": STATE[s.status], "impact": str(s.impact), "urgency": str(s.urgency),
            "priority": str((s.impact + s.urgency) - 1), "category": s.category,
            "subcategory": s.subcategory, "escalation": "0",
            "opened_at": opened.strftime("%Y-%m-%d %H:%M:%S"),
            "sys_updated_on": (opened + timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S"),
        })
    return out


def best(repeat: int, work: Callable[[], Any]) -> float:
    """Best CPU time of this process over ``repeat`` runs of ``work``.

    CPU time, not wall time: on a shared machine other processes take turns on
    the core, and their turns are not what is being measured.
    """
    times = []
    for _ in range(repeat):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def measure(count: int, repeat: int, ruleset: RuleSet) -> dict[str, Any]:
    profile = load_profile("default")
    ctx = MappingContext()
    raw = records(count)

    def mapping() -> list[Incident]:
        return [to_incident("servicenow", r, profile, ctx) for r in raw]

    mapped = mapping()

    def rules_only() -> int:
        return sum(1 for incident in mapped if apply_rules(incident, ruleset, NOW)[1])

    def both() -> None:
        for r in raw:
            apply_rules(to_incident("servicenow", r, profile, ctx), ruleset, NOW)

    fired = rules_only()
    seconds = {"mapping": best(repeat, mapping), "rules": best(repeat, rules_only),
               "mapping+rules": best(repeat, both)}
    return {
        "count": count, "repeat": repeat, "rules": len(ruleset), "fired": fired,
        "python": platform.python_version(), "machine": platform.machine(),
        "per_second": {k: count / v for k, v in seconds.items()},
        "microseconds_each": {k: v / count * 1e6 for k, v in seconds.items()},
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [f"{result['count']} ServiceNow records, {result['rules']} rules"
             f" ({result['fired']} incidents with a firing), best of {result['repeat']},"
             f" CPU time on one core, Python {result['python']} ({result['machine']})", "",
             "| step | incidents / second | µs per incident |", "|---|---:|---:|"]
    for step, rate in result["per_second"].items():
        lines.append(f"| {step} | {rate:,.0f} | {result['microseconds_each'][step]:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rules", type=Path, default=ROOT / "rules.example.toml")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.count < 1 or args.repeat < 1:
        parser.error("--count and --repeat must be at least 1")  # exits 2
    try:
        ruleset = load_rules(args.rules)
    except ValueError as error:
        print(f"rules_speed: {error}", file=sys.stderr)
        return 2
    result = measure(args.count, args.repeat, ruleset)
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
