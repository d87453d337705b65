"""Where the wall time of one sync goes: requests in flight against the process's own work.

Usage (from the repository root, with the project's virtualenv):

    .venv/bin/python bench/wall.py [--size 2000] [--latency-ms 50] [--json out.json]

Contract:
- Runs one initial ServiceNow -> Jira sync without comments (the economy bench's
  ``sn-to-jira`` scenario) of ``--size`` incidents, built as ``incident-sync run``
  builds it, in this process, against both sandboxes in a child process
  (:class:`bench.host.SandboxHost`) that adds ``--latency-ms`` once per wire request.
  ``[sync] batch_size`` and the rest of the config come from the sandbox config, and
  ``INCIDENT_SYNC_*`` variables override them as for a real run.
- Every request the sync sends is timed from the connectors' own request log (the
  ``connectors.http`` DEBUG records: when the answer came and how long it took), so
  requests of worker threads count as the caller's do.
- Reports: wall time (config load to close), the sync process's CPU seconds, the
  sandbox process's CPU seconds, the time at least one request was in flight and the
  time none was (the sync's own work, on the engine's thread or waiting for it), and
  the in-flight time shared out per route (an instant with k routes in flight gives
  each 1/k), with the number of requests of each. The shares add up to the in-flight
  time, which with the idle time adds up to the wall.
- Nothing is asserted on time; a one-off figure, not a median (``bench/economy.py``
  makes those). Bad options: one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: make the repository root importable (see bench/economy.py).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.host import PASSWORD, USERNAME, HostSpec, SandboxHost, route_of
from connectors.sandbox.serve import write_config as sandbox_config


@dataclass(frozen=True)
class Timed:
    """One request: its route (ids left out) and when it was sent and answered,
    in seconds from the start of the run."""

    route: str
    began: float
    ended: float


@dataclass
class Breakdown:
    size: int
    latency_ms: float
    wall: float
    cpu: float
    sandbox_cpu: float
    requests: int
    sandbox_requests: int     # wire requests the sandboxes counted: equals ``requests``
    in_flight: float
    idle: float
    by_route: dict[str, dict[str, float]] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)


class _Recorder(logging.Handler):
    """Collects the connectors' one-line-per-request records as :class:`Timed`."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if not isinstance(event, dict):
            return
        route = f"{event.get('vendor')} " + route_of(str(event.get("method")),
                                                     str(event.get("path")))
        elapsed = float(event.get("elapsed_ms") or 0.0) / 1000.0
        # Handler.handle holds the handler's own lock around emit: one thread at a time.
        self.seen.append((route, record.created - elapsed, record.created))


def share_out(requests: list[Timed]) -> tuple[float, dict[str, float]]:
    """The time at least one request was in flight, and its share per route (an
    instant with k distinct routes in flight counts 1/k for each)."""
    edges = sorted([(r.began, 1, r.route) for r in requests]
                   + [(r.ended, -1, r.route) for r in requests])
    active: Counter[str] = Counter()
    shares: Counter[str] = Counter()
    busy = 0.0
    last: float | None = None
    for at, step, route in edges:
        if last is not None and active:
            span = at - last
            busy += span
            for name in active:
                shares[name] += span / len(active)
        active[route] += step
        if active[route] <= 0:
            del active[route]
        last = at
    return busy, dict(shares)


def _process_cpu(pid: int) -> float:
    """User + system seconds of another process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(size: int, latency_ms: float, jira_mode: str = "cloud") -> Breakdown:
    """One initial ServiceNow -> Jira sync of ``size`` incidents, timed request by request."""
    from sync.demo import sandbox_secrets
    from sync.runner import run_once
    from sync.settings import load_settings

    recorder = _Recorder()
    http = logging.getLogger("connectors.http")
    level, propagate = http.level, http.propagate
    http.setLevel(logging.DEBUG)
    http.propagate = False
    http.addHandler(recorder)
    try:
        with sandbox_secrets(PASSWORD), tempfile.TemporaryDirectory() as scratch, \
                SandboxHost(HostSpec(servicenow_incidents=size, jira_mode=jira_mode,
                                     comments=False)) as host:
            host.set_latency(latency_ms)
            config = sandbox_config(Path(scratch) / "incident-sync.toml",
                                    host.urls["servicenow"], host.urls["jira"], USERNAME,
                                    state_url=f"sqlite:///{scratch}/state.db",
                                    jira_flavor=jira_mode)
            pid = host.pid
            sandbox_before = _process_cpu(pid) if pid else 0.0
            before = resource.getrusage(resource.RUSAGE_SELF)
            began = time.time()
            summary = run_once(load_settings(config), clock=host.clock)
            wall = time.time() - began
            after = resource.getrusage(resource.RUSAGE_SELF)
            sandbox_cpu = (_process_cpu(pid) - sandbox_before) if pid else 0.0
            counted = host.counts()
    finally:
        http.removeHandler(recorder)
        http.setLevel(level)
        http.propagate = propagate
    timed = [Timed(route, start - began, end - began) for route, start, end in recorder.seen]
    busy, shares = share_out(timed)
    counts = Counter(r.route for r in timed)
    return Breakdown(
        size=size, latency_ms=latency_ms, wall=wall,
        cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        sandbox_cpu=sandbox_cpu, requests=len(timed),
        sandbox_requests=sum(sum(side["wire"].values()) for side in counted.values()),
        in_flight=busy, idle=wall - busy,
        by_route={route: {"requests": counts[route], "in_flight": shares[route]}
                  for route in sorted(shares, key=lambda r: -shares[r])},
        done=summary.counts(),
    )


def render(result: Breakdown) -> str:
    lines = [
        f"N = {result.size:,}, {result.latency_ms:g} ms per request: wall {result.wall:.2f} s, "
        f"sync CPU {result.cpu:.2f} s, sandbox CPU {result.sandbox_cpu:.2f} s, "
        f"{result.requests:,} requests",
        f"  at least one request in flight {result.in_flight:.2f} s, "
        f"none in flight {result.idle:.2f} s",
    ]
    for route, figures in result.by_route.items():
        lines.append(f"  {figures['in_flight']:7.2f} s  {int(figures['requests']):6,}  {route}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2000, help="incidents (default 2000)")
    parser.add_argument("--latency-ms", type=float, default=50.0,
                        help="added per wire request (default 50)")
    parser.add_argument("--jira-mode", choices=("cloud", "datacenter"), default="cloud")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.size < 1 or args.latency_ms < 0:
        print("wall.py: --size must be >= 1 and --latency-ms >= 0", file=sys.stderr)
        return 2
    result = measure(args.size, args.latency_ms, args.jira_mode)
    print(render(result))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
