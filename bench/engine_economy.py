"""What the engine spends on an idle run, and the memory an initial sync holds.

Contract:
- ``python -m bench.engine_economy requests --size N`` syncs ``N`` ServiceNow
  incidents to Jira on fresh sandboxes (:class:`bench.host.SandboxHost`), then
  makes idle runs: one right after, then three ten virtual minutes apart (as a
  scheduled ``run --every 10m`` would), and prints each run's wire requests per
  side as one JSON line (label, total, by route). Runs are built as ``run``
  builds them: the mapping is checked against both sites' fields. Nothing changes between the
  idle runs: every request they make is the price of asking "anything new?".
- ``python -m bench.engine_economy memory --sizes 200 2000`` runs the initial
  sync of each size in a child process of its own and prints the child's peak
  resident set size (``resource.getrusage``, the sandboxes live in yet another
  process) and the growth over the RSS it had before the run.
- A measuring script, not a test: nothing asserts, nothing is timed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.host import PASSWORD, HostSpec, SandboxHost
from bench.scenarios import RUN_INTERVAL_SECONDS, side_requests, write_config
from sync.demo import sandbox_secrets
from sync.factory import build_engine, open_store
from sync.settings import load_settings

SIDES = ("servicenow", "jira")


def measure(host: SandboxHost, config: Path, label: str) -> dict[str, Any]:
    """One run built as ``incident-sync run`` builds it (site check on), wire counted."""
    host.clear()
    settings = load_settings(config)
    store = open_store(settings)
    pulled: dict[str, int] = {}
    try:
        engine = build_engine(settings, store, clock=host.clock, site_check=True)
        build_plan = engine.build_plan

        def keep_pulled() -> Any:
            plan = build_plan()
            pulled.update(plan.pulled)
            return plan

        engine.build_plan = keep_pulled  # type: ignore[method-assign]
        try:
            summary = engine.run()
        finally:
            engine.close()
    finally:
        store.close()
    counts = host.counts()
    requests = {side: side_requests(counts[side]) for side in SIDES}
    return {"label": label, "summary": {k: v for k, v in summary.counts().items() if v},
            "pulled": pulled,
            "requests": {side: {"total": requests[side]["total"],
                                "by_route": requests[side]["by_route"]} for side in SIDES}}


def idle_requests(size: int) -> list[dict[str, Any]]:
    """The initial sync of ``size`` incidents, then idle runs; their requests per side."""
    lines = []
    with sandbox_secrets(PASSWORD), SandboxHost(HostSpec(servicenow_incidents=size)) as host, \
            tempfile.TemporaryDirectory(prefix="incident-sync-economy-") as tmp:
        config = write_config(Path(tmp), host.urls)
        lines.append(measure(host, config, "initial"))
        lines.append(measure(host, config, "idle, right after"))
        for n in range(3):
            host.advance(RUN_INTERVAL_SECONDS)
            lines.append(measure(host, config, f"idle, 10 min later (#{n + 1})"))
    return lines


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux


def initial_sync_memory(size: int) -> dict[str, Any]:
    """In this process: the initial sync of ``size`` incidents; RSS before and at peak."""
    with sandbox_secrets(PASSWORD), SandboxHost(HostSpec(servicenow_incidents=size)) as host, \
            tempfile.TemporaryDirectory(prefix="incident-sync-economy-") as tmp:
        config = write_config(Path(tmp), host.urls)
        before = _peak_kib()
        run = measure(host, config, "initial")
        peak = _peak_kib()
    return {"size": size, "created": run["summary"].get("created", 0),
            "failed": run["summary"].get("failed", 0),
            "rss_before_mib": round(before / 1024, 1), "rss_peak_mib": round(peak / 1024, 1),
            "growth_mib": round((peak - before) / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_economy",
                                     description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    requests = commands.add_parser("requests", help="idle runs' requests per side")
    requests.add_argument("--size", type=int, default=200)
    memory = commands.add_parser("memory", help="peak RSS of an initial sync per size")
    memory.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    child = commands.add_parser("memory-child", help=argparse.SUPPRESS)
    child.add_argument("size", type=int)
    args = parser.parse_args(argv)
    if args.command == "requests":
        for line in idle_requests(args.size):
            print(json.dumps(line, sort_keys=True))
    elif args.command == "memory-child":
        print(json.dumps(initial_sync_memory(args.size), sort_keys=True))
    else:
        for size in args.sizes:
            # A fresh process per size: ru_maxrss only ever grows.
            done = subprocess.run([sys.executable, "-m", "bench.engine_economy", "memory-child",
                                   str(size)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"size {size}: the child failed: {done.stderr.strip().splitlines()[-1:]}",
                      file=sys.stderr)
                return 1
            print(done.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
