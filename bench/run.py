"""Run the incident-sync benchmarks and write bench/results/results.{json,md}.

Usage (from the repository root, with the project's virtualenv):

    .venv/bin/python bench/run.py [--sizes 10,100,500] [--repeat 5] [--only sync,pull]

Contract:
- Runs the scenarios of :mod:`bench.scenarios` (fresh local sandboxes in a
  child process each time; nothing leaves 127.0.0.1), ``--repeat`` times each,
  and writes the raw measures (``results.json``) and the summary
  (``results.md``, see :mod:`bench.report`) into ``--out``.
- ``--report FILE`` only re-renders the Markdown of a saved ``results.json``.
- Bad arguments exit with status 2 and a one-line message naming the option.
- Progress goes to stderr, the Markdown summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: bench is not an installed package, so make the
    # repository root importable (the project packages are installed editable).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import markdown
from bench.scenarios import (
    DIRECTIONS,
    peak_memory,
    pull_only,
    sync_sequence,
    with_latency,
)

PARTS = ("sync", "pull", "memory", "latency")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _sizes(text: str) -> list[int]:
    """``"10,100"`` -> [10, 100]; every size a positive integer (an empty text is none)."""
    if not text.strip():
        return []
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return values


def _parts(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [v for v in values if v not in PARTS]
    if unknown or not values:
        raise argparse.ArgumentTypeError(
            f"expected some of {','.join(PARTS)}, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Request counts and speed of incident-sync against the local sandboxes.")
    p.add_argument("--sizes", type=_sizes, default=[10, 100, 500],
                   help="incidents per initial sync (default 10,100,500)")
    p.add_argument("--repeat", type=int, default=5, help="runs of each scenario (default 5)")
    p.add_argument("--only", type=_parts, default=list(PARTS),
                   help=f"scenarios to run, of {','.join(PARTS)} (default all)")
    p.add_argument("--edits", type=_sizes, default=[1, 1, 10],
                   help="records edited before each incremental run (default 1,1,10)")
    p.add_argument("--pull", type=int, default=1000, help="records per side for the pull")
    p.add_argument("--sn-pages", type=_sizes, default=[100, 300, 500],
                   help="ServiceNow page sizes for the pull (default 100,300,500)")
    p.add_argument("--jira-pages", type=_sizes, default=[50, 100],
                   help="Jira page sizes for the pull (default 50,100)")
    p.add_argument("--memory-sizes", type=_sizes, default=None,
                   help="sizes traced for peak memory (default: --sizes)")
    p.add_argument("--latency-ms", type=float, default=20.0,
                   help="latency added per request in the latency scenario (default 20)")
    p.add_argument("--latency-size", type=int, default=100,
                   help="incidents in the latency scenario (default 100)")
    p.add_argument("--jira-mode", choices=("cloud", "datacenter"), default="cloud")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="directory for results.json and results.md (default bench/results)")
    p.add_argument("--report", type=Path, default=None,
                   help="only re-render the Markdown of this results.json")
    return p


def _progress(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every selected scenario, repeated; the JSON-ready results."""
    results: dict[str, Any] = {"meta": {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(), "repeat": args.repeat,
        "jira_mode": args.jira_mode, "sizes": args.sizes, "edits": args.edits,
    }}
    started = time.perf_counter()
    if "sync" in args.only:
        results["sync"] = {}
        for direction in DIRECTIONS:
            results["sync"][direction] = {}
            for size in args.sizes:
                repeats = []
                for index in range(args.repeat):
                    _progress(f"sync {direction} N={size} ({index + 1}/{args.repeat})")
                    repeats.append(sync_sequence(direction, size, edits=tuple(args.edits),
                                                 jira_mode=args.jira_mode))
                results["sync"][direction][str(size)] = repeats
    if "pull" in args.only and args.pull:
        results["pull"] = []
        for index in range(args.repeat):
            _progress(f"pull {args.pull} ({index + 1}/{args.repeat})")
            results["pull"].append(pull_only(
                args.pull, sn_page_sizes=tuple(args.sn_pages),
                jira_page_sizes=tuple(args.jira_pages), jira_mode=args.jira_mode))
    if "memory" in args.only:
        results["memory"] = []
        sizes = args.sizes if args.memory_sizes is None else args.memory_sizes
        for direction in DIRECTIONS:
            for size in sizes:
                _progress(f"memory {direction} N={size}")
                results["memory"].append(peak_memory(direction, size,
                                                     jira_mode=args.jira_mode))
    if "latency" in args.only and args.latency_size:
        results["latency"] = []
        direction = "servicenow-to-jira"
        for latency in (0.0, args.latency_ms):
            for index in range(args.repeat):
                _progress(f"latency {latency:g} ms N={args.latency_size} "
                          f"({index + 1}/{args.repeat})")
                measure = with_latency(direction, args.latency_size, latency,
                                       jira_mode=args.jira_mode)
                measure.update(size=args.latency_size, direction=direction)
                results["latency"].append(measure)
    results["meta"]["bench_seconds"] = round(time.perf_counter() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.report is not None:
        try:
            saved = json.loads(args.report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            p.error(f"--report: cannot read {args.report}: {error}")
        sys.stdout.write(markdown(saved))
        return 0
    if args.repeat < 1:
        p.error(f"--repeat: must be at least 1, got {args.repeat}")
    if args.pull < 0 or args.latency_size < 0 or args.latency_ms < 0:
        p.error("--pull, --latency-size and --latency-ms must not be negative")
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n",
                                           encoding="utf-8")
    text = markdown(results)
    (args.out / "results.md").write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    _progress(f"wrote {args.out / 'results.json'} and results.md "
              f"in {results['meta']['bench_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
