"""The benchmark scenarios: each drives the real engine (or a connector) against SandboxHost.

Contract:
- Every scenario starts fresh sandboxes (a new :class:`bench.host.SandboxHost`),
  writes an incident-sync config for them into a temporary directory, and
  builds the engine exactly as the CLI does (``sync.factory``), on the
  sandboxes' virtual clock. Nothing here changes how the engine works.
- A run's measure (:class:`RunMeasure`) holds the wire request counts per side
  (by route, reads, writes, Batch API items), the same counts at the end of
  planning (pull, pairing and lookups: everything before the first write),
  what the engine did (its summary counts and records pulled) and the wall
  time from loading the config to closing the connections.
- Scenarios return plain JSON-ready dicts; :mod:`bench.report` summarises them.
- Secrets: the sandboxes' throw-away password is put into this process's
  environment for the duration of a scenario and removed afterwards.
"""

from __future__ import annotations

import math
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.host import PASSWORD, USERNAME, HostSpec, SandboxHost, is_write
from sync.demo import sandbox_secrets
from sync.directions import DIRECTIONS as ALL_DIRECTIONS
from sync.factory import build_engine, open_store
from sync.settings import load_settings

SIDES = ("servicenow", "jira")
# One-way directions and the side each one reads from ("servicenow-to-jira" -> servicenow).
DIRECTIONS = {d: d.split("-to-")[0] for d in ALL_DIRECTIONS if d != "both"}
# Time between scheduled runs: longer than Jira's 2-minute pull overlap, as
# with `run --every 10m`, so a run does not re-read what the previous one saw.
RUN_INTERVAL_SECONDS = 600.0


@dataclass
class RunMeasure:
    """One engine run, measured."""

    label: str
    seconds: float
    summary: dict[str, int]
    pulled: dict[str, int]
    requests: dict[str, dict[str, Any]]
    plan_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    peak_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def side_requests(counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Wire totals of one side: total, reads, writes, by route and Batch API items."""
    wire = counts.get("wire", {})
    writes = sum(n for route, n in wire.items() if is_write(route))
    total = sum(wire.values())
    return {"total": total, "reads": total - writes, "writes": writes,
            "by_route": dict(sorted(wire.items())),
            "batch_items": dict(sorted(counts.get("inner", {}).items()))}


def write_config(directory: Path, urls: dict[str, str], *, sn_page_size: int | None = None,
                 jira_page_size: int | None = None) -> Path:
    """An incident-sync config for the host's sandboxes (all incidents in scope)."""
    sn_extra = f"page_size = {sn_page_size}\n" if sn_page_size else ""
    jira_extra = f"page_size = {jira_page_size}\n" if jira_page_size else ""
    path = directory / "incident-sync.toml"
    path.write_text(
        f'[servicenow]\ninstance_url = "{urls["servicenow"]}"\nusername = "{USERNAME}"\n'
        f'query = ""\n{sn_extra}\n'
        f'[jira]\nurl = "{urls["jira"]}"\nemail = "{USERNAME}"\nproject = "OPS"\n'
        f'{jira_extra}\n'
        f'[sync]\nstate_url = "sqlite:///state.db"\n',
        encoding="utf-8",
    )
    return path


def measure_run(host: SandboxHost, config: Path, label: str, *,
                trace_memory: bool = False) -> RunMeasure:
    """One `incident-sync run`, as the CLI does it, with the wire counted around it."""
    host.clear()
    plans: list[Any] = []
    planned: list[dict[str, Any]] = []
    if trace_memory:
        tracemalloc.start()
    began = time.perf_counter()
    settings = load_settings(config)
    store = open_store(settings)
    try:
        engine = build_engine(settings, store, clock=host.clock)
        build_plan = engine.build_plan

        def keep_plan() -> Any:
            plan = build_plan()
            plans.append(plan)
            # Counts between planning and applying: one pipe round trip to
            # the host process, negligible against the run.
            planned.append(host.counts())
            return plan

        engine.build_plan = keep_plan  # type: ignore[method-assign]
        try:
            summary = engine.run()
        finally:
            engine.close()
    finally:
        store.close()
    seconds = time.perf_counter() - began
    peak = None
    if trace_memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    counts = host.counts()
    return RunMeasure(
        label=label, seconds=seconds, summary=summary.counts(),
        pulled=dict(plans[0].pulled) if plans else {},
        requests={side: side_requests(counts[side]) for side in SIDES},
        plan_requests={side: side_requests(planned[0][side]) for side in SIDES}
        if planned else {},
        failures=list(summary.failures), peak_bytes=peak,
    )


def _host_spec(direction: str, size: int, jira_mode: str) -> HostSpec:
    source = DIRECTIONS[direction]
    return HostSpec(servicenow_incidents=size if source == "servicenow" else 0,
                    jira_incidents=size if source == "jira" else 0, jira_mode=jira_mode)


def sync_sequence(direction: str, size: int, *, edits: tuple[int, ...] = (1, 10),
                  jira_mode: str = "cloud") -> list[dict[str, Any]]:
    """Initial sync of ``size`` incidents one way, then the runs that follow it.

    Runs: ``initial``; ``repeat`` right after (nothing changed); then, ten
    virtual minutes apart, one run per entry of ``edits`` after editing that
    many source incidents. The first of those is labelled ``first-incremental``:
    it may re-read records stamped in the watermark's second or Jira's overlap
    (see README); the later ones show the steady state. Last, ``state-lost``:
    the state store is deleted and the run adopts every pair again.
    """
    source = DIRECTIONS[direction]
    runs: list[dict[str, Any]] = []
    with sandbox_secrets(PASSWORD), SandboxHost(_host_spec(direction, size, jira_mode)) as host, \
            tempfile.TemporaryDirectory(prefix="incident-sync-bench-") as tmp:
        config = write_config(Path(tmp), host.urls)
        runs.append(measure_run(host, config, "initial").to_json())
        runs.append(measure_run(host, config, "repeat").to_json())
        for index, k in enumerate(edits):
            host.advance(RUN_INTERVAL_SECONDS)
            edited = host.edit(source, min(k, size))
            host.advance(1.0)
            label = f"first-incremental k={len(edited)}" if index == 0 else \
                f"incremental k={len(edited)}"
            if any(r["label"] == label for r in runs):
                label += f" (#{index + 1})"  # labels pick rows in the report: keep them unique
            run = measure_run(host, config, label).to_json()
            run["edited"] = len(edited)
            runs.append(run)
        # A lost state store: every pair must be found again by the ids both
        # records carry and adopted, with nothing written or duplicated.
        host.advance(RUN_INTERVAL_SECONDS)
        (Path(tmp) / "state.db").unlink()
        runs.append(measure_run(host, config, "state-lost").to_json())
    return runs


def pull_only(size: int, *, sn_page_sizes: tuple[int, ...], jira_page_sizes: tuple[int, ...],
              jira_mode: str = "cloud") -> list[dict[str, Any]]:
    """A full pull of ``size`` incidents per side through each connector alone.

    Uses the field list a real run asks for (the engine opens the connectors
    and derives it from the mapping profile), for each page size given.
    """
    results: list[dict[str, Any]] = []
    spec = HostSpec(servicenow_incidents=size, jira_incidents=size, jira_mode=jira_mode)
    with sandbox_secrets(PASSWORD), SandboxHost(spec) as host, \
            tempfile.TemporaryDirectory(prefix="incident-sync-bench-") as tmp:
        cases = [("servicenow", p) for p in sn_page_sizes] + [("jira", p) for p in jira_page_sizes]
        for side, page_size in cases:
            config = write_config(
                Path(tmp), host.urls,
                sn_page_size=page_size if side == "servicenow" else None,
                jira_page_size=page_size if side == "jira" else None)
            results.append(_pull_once(host, config, side, page_size, size))
    return results


def _pull_once(host: SandboxHost, config: Path, side: str, page_size: int,
               size: int) -> dict[str, Any]:
    settings = load_settings(config)
    store = open_store(settings)
    try:
        engine = build_engine(settings, store, clock=host.clock)
        try:
            engine.open()
            host.clear()
            began = time.perf_counter()
            records = list(engine.connectors[side].pull(None, engine.vendor_fields[side]))
            seconds = time.perf_counter() - began
        finally:
            engine.close()
    finally:
        store.close()
    requests = side_requests(host.counts()[side])
    return {"side": side, "page_size": page_size, "records": len(records),
            "expected_pages": math.ceil(size / page_size), "seconds": seconds,
            "requests": requests,
            "comments": sum(len(r.comments) for r in records)}


def with_latency(direction: str, size: int, latency_ms: float, *,
                 jira_mode: str = "cloud") -> dict[str, Any]:
    """An initial sync with ``latency_ms`` added to every wire request."""
    with sandbox_secrets(PASSWORD), SandboxHost(_host_spec(direction, size, jira_mode)) as host, \
            tempfile.TemporaryDirectory(prefix="incident-sync-bench-") as tmp:
        host.set_latency(latency_ms)
        config = write_config(Path(tmp), host.urls)
        run = measure_run(host, config, f"initial latency={latency_ms:g}ms").to_json()
    run["latency_ms"] = latency_ms
    return run


def peak_memory(direction: str, size: int, *, jira_mode: str = "cloud") -> dict[str, Any]:
    """Peak Python heap (tracemalloc) of the sync process during an initial sync."""
    with sandbox_secrets(PASSWORD), SandboxHost(_host_spec(direction, size, jira_mode)) as host, \
            tempfile.TemporaryDirectory(prefix="incident-sync-bench-") as tmp:
        config = write_config(Path(tmp), host.urls)
        run = measure_run(host, config, "initial (traced)", trace_memory=True).to_json()
    return {"direction": direction, "size": size, "peak_bytes": run["peak_bytes"],
            "records": run["summary"]["created"], "failures": run["failures"]}

