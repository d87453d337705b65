"""The request-economy bench: what a sync costs against its lower bound and a naive sync.

Usage (from the repository root, with the project's virtualenv):

    .venv/bin/python bench/economy.py [--sizes 1000] [--latency-ms 50] [--repeat 3]
                                      [--rss-size 100000] [--scenarios ...]

Contract:
- Scenarios (:data:`SCENARIOS`), each against fresh sandboxes in their own
  process (:class:`bench.host.SandboxHost`, the seed of ``incident-sync
  sandbox``) with ``--latency-ms`` added once per wire request:
  ``sn-to-jira`` initial ServiceNow -> Jira of N incidents without comments;
  ``sn-to-jira-links`` the same with ``[jira] remote_link = true`` (a remote link
  back to ServiceNow per issue; the naive sync makes none, so it is not run
  beside it); ``sn-to-jira-comments`` the same with the seeded comments; ``jira-to-sn``
  initial Jira -> ServiceNow (with comments); ``idle`` a run after a complete
  sync where nothing changed; ``changed`` 1 % of the records edited by a person
  on each side. Each is measured ``--repeat`` times (initial syncs on fresh
  sandboxes each time; idle and changed runs one after another in one synced
  world, ten virtual minutes apart).
- Every measured sync runs in a process of its own (``spawn`` unless
  ``--start-method forkserver``, which the tests use to start faster): its wall time
  (config load to close), CPU seconds (user + system) and peak RSS are that
  process's alone. Requests are counted by the sandboxes per side: wire requests
  and ServiceNow Batch API sub-requests apart.
- Beside each: the lower bound on requests (:func:`lower_bound`, from the
  config's page sizes, the connectors' batch limits, the seed data and the
  sign-in reads measured on a fresh store) with the ratio ours / bound, and the
  naive per-record sync (:mod:`bench.naive`) with the ratio naive / ours for
  requests and wall time.
- ``--rss-size`` adds one run of the initial ServiceNow -> Jira sync with
  comments at that size, without latency, for peak RSS (and CPU) only.
- Writes the raw figures as JSON (``--json``) and appends a Markdown section
  (machine, tables, formulas, the issue's targets met / missed) to
  ``--results`` (default ``bench/RESULTS.md``; ``--no-append`` to skip); the
  Markdown also goes to stdout, progress to stderr. Bad options: one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: bench is not an installed package, so make the
    # repository root importable (the project packages are installed editable).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.host import PASSWORD, USERNAME, HostSpec, SandboxHost, processes
from bench.scenarios import side_requests
from connectors.sandbox.serve import write_config as sandbox_config
from sync.demo import sandbox_secrets

SIDES = ("servicenow", "jira")
SCENARIOS = ("sn-to-jira", "sn-to-jira-links", "sn-to-jira-comments", "jira-to-sn", "idle",
             "changed")
INITIAL = ("sn-to-jira", "sn-to-jira-links", "sn-to-jira-comments", "jira-to-sn")
# Scenarios without comments: the seed's comments are not copied.
NO_COMMENTS = ("sn-to-jira", "sn-to-jira-links")
TITLES = {
    "sn-to-jira": "initial ServiceNow -> Jira, no comments",
    "sn-to-jira-links": "initial ServiceNow -> Jira, no comments, remote links on",
    "sn-to-jira-comments": "initial ServiceNow -> Jira, with comments",
    "jira-to-sn": "initial Jira -> ServiceNow, with comments",
    "idle": "idle (complete sync, nothing changed)",
    "changed": "1 % changed (person edits on each side)",
    "rss": "RSS run: initial ServiceNow -> Jira, with comments, no latency",
}
RUN_INTERVAL_SECONDS = 600.0  # a `run --every 10m` schedule, longer than Jira's pull overlap
SETTLE_RUNS = 4                # runs after an initial sync until one writes nothing
DEFAULT_RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "economy.json"
MB = 1024 * 1024

# The targets of issue #12 point 6 (stated for N = 10,000 at 50 ms, 2 cores, default config).
TARGETS = {
    "sn-to-jira per incident": 0.05,      # remote links off
    "sn-to-jira wall s": 30.0,
    "sn-to-jira remote links per incident": 1.05,
    "sn-to-jira remote links wall s": 60.0,
    "jira comment requests per comment": 1.0,
    "idle requests over sign-in": 4,
    "idle wall s": 2.0,
    "changed per changed record": 1.5,
    "cpu ms per record": 2.0,
    "rss MB at 100,000": 150.0,
}


# --------------------------------------------------------------------------- sync process

def _child(conn: Connection, kind: str, config: str, offset: float,
           options: dict[str, Any]) -> None:
    """The measured sync process: one engine run (or naive run), measured from inside."""
    try:
        from sync.runner import run_once
        from sync.settings import load_settings

        def clock() -> datetime:
            return datetime.now(UTC) + timedelta(seconds=offset)

        before = resource.getrusage(resource.RUSAGE_SELF)
        rss_before = before.ru_maxrss
        began = time.perf_counter()
        if kind == "engine":
            # Built as `incident-sync run` builds it (the site check included).
            summary = run_once(load_settings(Path(config)), clock=clock)
            done: dict[str, Any] = summary.counts()
            failures = list(summary.failures)
        else:
            from bench.naive import naive_sync
            since = options.get("since")
            done = naive_sync(Path(config), clock, mode=options["mode"],
                              source=options.get("source", "servicenow"),
                              comments=options.get("comments", True),
                              since=datetime.fromisoformat(since) if since else None)
            failures = []
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_SELF)
        conn.send(("ok", {
            "wall": wall,
            "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            # Linux reports ru_maxrss in KiB: the process's peak, imports included.
            "peak_rss": after.ru_maxrss * 1024, "rss_at_start": rss_before * 1024,
            "done": done, "failures": failures[:20],
        }))
    except BaseException as error:  # reported to the parent, which names the scenario
        conn.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        conn.close()


# How the measured sync processes start (``--start-method``): a fresh interpreter by
# default; the test suite forks them from a preloaded server to save ~1 s each.
START_METHOD = ["spawn"]


def run_process(kind: str, config: Path, offset: float, **options: Any) -> dict[str, Any]:
    """Run one sync in a fresh process; its own wall, CPU, peak RSS and what it did."""
    context = processes(START_METHOD[0])
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(child, kind, str(config), offset, options),
                              name=f"bench-{kind}")
    process.start()
    child.close()
    try:
        status, value = parent.recv()
    except EOFError:
        raise RuntimeError(f"the {kind} sync process died (exit {process.exitcode})") from None
    finally:
        process.join()
        parent.close()
    if status != "ok":
        raise RuntimeError(f"{kind} sync failed: {value}")
    return dict(value)


def measured(host: SandboxHost, config: Path, kind: str = "engine", **options: Any
             ) -> dict[str, Any]:
    """One sync process against ``host``, with the sandboxes' counts around it."""
    host.clear()
    result = run_process(kind, config, host.offset, **options)
    counts = host.counts()
    result["requests"] = {side: side_requests(counts[side]) for side in SIDES}
    return result


def total_requests(run: dict[str, Any]) -> int:
    return sum(run["requests"][side]["total"] for side in SIDES)


def sub_requests(run: dict[str, Any], side: str) -> int:
    return sum(run["requests"][side]["batch_items"].values())


# --------------------------------------------------------------------------- the bound

@dataclass(frozen=True)
class Limits:
    """What the lower bound is computed from: the config and the connectors' batch limits."""

    sn_page: int
    jira_page: int
    sn_batch: int       # ServiceNow Batch API items per request the connector sends
    sn_ids: int         # sys_ids per IN list (URL length)
    jira_bulk: int      # Jira bulk create: issues per request (vendor maximum 50)
    remote_link: bool   # a remote link per created Jira issue (no bulk API for them)
    signin: dict[str, int]


@dataclass(frozen=True)
class SeedFacts:
    """What the seeded source data asks for (same generator as the sandboxes)."""

    records: int
    comments: int
    with_comments: int   # records with at least one comment
    extra_steps: int     # Jira workflow steps past the first (first rides in the create)


def seed_facts(size: int, seed: int, comments: bool) -> SeedFacts:
    from connectors.sandbox.jira_site import INITIAL_STATUS, STATUSES, TRANSITIONS
    from connectors.sandbox.seed import seed_incidents

    # Shortest workflow path (in steps) from the initial status to each status.
    steps = {INITIAL_STATUS: 0}
    frontier = [INITIAL_STATUS]
    while frontier:
        following = []
        for status in frontier:
            for t in TRANSITIONS:
                if t.source == status and t.target not in steps:
                    steps[t.target] = steps[status] + 1
                    following.append(t.target)
        frontier = following
    by_name = {s.name: steps.get(s.id, 0) for s in STATUSES}
    wanted = {"new": "Open", "in_progress": "Work in progress", "on_hold": "Pending",
              "resolved": "Resolved"}
    incidents = seed_incidents(size, seed)
    count = sum(len(i.comments) for i in incidents) if comments else 0
    return SeedFacts(
        records=size, comments=count,
        with_comments=sum(1 for i in incidents if i.comments) if comments else 0,
        extra_steps=sum(max(0, by_name[wanted[i.status]] - 1) for i in incidents))


def _pages(records: int, page: int) -> int:
    """Requests to page through ``records`` (an empty answer is still one request)."""
    return max(1, math.ceil(records / page))


def lower_bound(scenario: str, limits: Limits, facts: SeedFacts, changed: int = 0
                ) -> dict[str, Any]:
    """The fewest requests the vendors' APIs allow for a scenario, per side, with the formula.

    ``changed`` is the records edited per side in the ``changed`` scenario.
    """
    n, c, s = facts.records, facts.comments, limits.signin
    sn: dict[str, int] = {"sign-in": s["servicenow"]}
    jira: dict[str, int] = {"sign-in": s["jira"]}
    if scenario in ("sn-to-jira", "sn-to-jira-links", "sn-to-jira-comments", "rss"):
        sn["incident pages ceil(N/page)"] = _pages(n, limits.sn_page)
        sn["journal pages ceil(N/page)"] = _pages(n, limits.sn_page)
        sn["back-links ceil(N/batch)"] = math.ceil(n / limits.sn_batch)
        jira["scope search (empty)"] = 1
        jira["bulk creates ceil(N/50)"] = math.ceil(n / limits.jira_bulk)
        jira["workflow steps past the first"] = facts.extra_steps
        if limits.remote_link:
            jira["remote links N"] = n
        jira["comments C"] = c
    elif scenario == "jira-to-sn":
        jira["search pages ceil(N/page)"] = _pages(n, limits.jira_page)
        # Each original carries its copy's id as a label of its own: Cloud's bulk edit
        # sets one value on every issue it selects, so a mark is one edit per issue
        # (the entity property rides in the same edit).
        jira["back-links N (one edit each)"] = n
        sn["scope page (empty)"] = 1
        sn["inserts + journal writes ceil((N+C)/batch)"] = math.ceil((n + c) / limits.sn_batch)
        sn["journal ids ceil(N_c/ids)"] = math.ceil(facts.with_comments / limits.sn_ids)
    elif scenario == "idle":
        sn["incident page (empty)"] = 1
        jira["search page (empty)"] = 1
    elif scenario == "changed":
        k = changed
        sn["incident page ceil(k/page)"] = _pages(k, limits.sn_page)
        sn["journal page ceil(k/page)"] = _pages(k, limits.sn_page)
        sn["updates ceil(k/batch)"] = math.ceil(k / limits.sn_batch)
        jira["search page ceil(k/page)"] = _pages(k, limits.jira_page)
        jira["edits k (one PUT per issue)"] = k
    else:
        raise ValueError(f"no lower bound for scenario {scenario!r}")
    return {"servicenow": sum(sn.values()), "jira": sum(jira.values()),
            "total": sum(sn.values()) + sum(jira.values()),
            "terms": {"servicenow": sn, "jira": jira}}


def limits_for(config: Path, signin: dict[str, int]) -> Limits:
    import connectors.jira as jira_connector
    import connectors.servicenow as sn_connector
    from sync.settings import load_settings

    settings = load_settings(config)
    # `[jira] remote_link` is the config switch; a build without it always links.
    remote = getattr(settings.jira, "remote_link", True)
    return Limits(
        sn_page=settings.servicenow.page_size, jira_page=settings.jira.page_size,
        sn_batch=sn_connector.BATCH_SIZE, sn_ids=sn_connector.ID_BATCH,
        jira_bulk=jira_connector.BULK_LIMIT,
        remote_link=remote not in (False, "off", "false", "none", None), signin=signin)


def write_config(directory: Path, host: SandboxHost) -> Path:
    """The config ``incident-sync sandbox --write-config`` writes for these sandboxes.

    The same file a user gets by hand (scope, page sizes, mapping, direction
    ``both``), so the figures compare; the state store sits beside it.
    """
    return sandbox_config(directory / "incident-sync.toml", host.urls["servicenow"],
                          host.urls["jira"], USERNAME, state_url="sqlite:///state.db",
                          jira_flavor=host.spec.jira_mode)


def signin_reads(host: SandboxHost, directory: Path) -> dict[str, int]:
    """Requests of ``open`` alone (sign-in and metadata), per side, on a fresh store."""
    from sync.factory import build_engine, open_store
    from sync.settings import load_settings

    probe = directory / "probe"
    probe.mkdir(exist_ok=True)
    settings = load_settings(write_config(probe, host))
    store = open_store(settings)
    try:
        host.clear()
        engine = build_engine(settings, store, clock=host.clock)
        try:
            engine.open()
        finally:
            engine.close()
    finally:
        store.close()
    counts = host.counts()
    return {side: sum(counts[side]["wire"].values()) for side in SIDES}


# --------------------------------------------------------------------------- scenarios

def _spec(scenario: str, size: int, jira_mode: str) -> HostSpec:
    source_jira = scenario == "jira-to-sn"
    return HostSpec(servicenow_incidents=0 if source_jira else size,
                    jira_incidents=size if source_jira else 0, jira_mode=jira_mode,
                    comments=scenario not in NO_COMMENTS)


def _host(spec: HostSpec, latency_ms: float) -> SandboxHost:
    host = SandboxHost(spec)
    host.__enter__()
    try:
        host.set_latency(latency_ms)
    except BaseException:
        host.__exit__(None, None, None)
        raise
    return host


def _configs(directory: Path, host: SandboxHost, *, remote_link: bool = False
             ) -> tuple[Path, Path]:
    ours, naive = directory / "ours", directory / "naive"
    ours.mkdir(exist_ok=True)
    naive.mkdir(exist_ok=True)
    config = write_config(ours, host)
    if remote_link:
        # The user's switch, set in the written file as a user would set it.
        text = config.read_text(encoding="utf-8")
        if "\n[jira]\n" not in text:
            raise ValueError(f"{config}: no [jira] table to turn remote links on in")
        config.write_text(text.replace("\n[jira]\n", "\n[jira]\nremote_link = true\n", 1),
                          encoding="utf-8")
    return config, write_config(naive, host)


def initial(scenario: str, size: int, latency_ms: float, repeat: int, jira_mode: str,
            progress: Callable[[str], None], naive_repeat: int = 1) -> dict[str, Any]:
    """An initial sync, ``repeat`` times on fresh sandboxes; the naive one ``naive_repeat``."""
    spec = _spec(scenario, size, jira_mode)
    source = "jira" if scenario == "jira-to-sn" else "servicenow"
    result: dict[str, Any] = {"ours": [], "naive": []}
    if scenario == "sn-to-jira-links":
        naive_repeat = 0   # the naive sync makes no remote links: no like-for-like baseline
    for index in range(max(repeat, naive_repeat)):
        for who in ("ours", "naive"):
            if index >= (repeat if who == "ours" else naive_repeat):
                continue
            progress(f"{scenario} N={size} {who} ({index + 1})")
            with tempfile.TemporaryDirectory(prefix="incident-sync-economy-") as tmp:
                host = _host(spec, 0.0)
                try:
                    if "signin" not in result:
                        result["signin"] = signin_reads(host, Path(tmp))
                    ours_config, naive_config = _configs(
                        Path(tmp), host, remote_link=scenario == "sn-to-jira-links")
                    result.setdefault("config", str(ours_config))
                    result["limits"] = asdict(limits_for(ours_config, result["signin"]))
                    host.set_latency(latency_ms)
                    if who == "ours":
                        run = measured(host, ours_config)
                    else:
                        run = measured(host, naive_config, "naive", mode="initial",
                                       source=source, comments=spec.comments)
                finally:
                    host.__exit__(None, None, None)
            result[who].append(run)
    return result


def _settle(host: SandboxHost, config: Path, progress: Callable[[str], None]) -> int:
    """Runs after an initial sync until one writes nothing; how many it took."""
    for attempt in range(1, SETTLE_RUNS + 1):
        host.advance(RUN_INTERVAL_SECONDS)
        run = measured(host, config)
        writes = sum(run["requests"][side]["writes"] for side in SIDES)
        progress(f"  settle run {attempt}: {writes} writes")
        if writes == 0:
            return attempt
    return SETTLE_RUNS


def steady(size: int, latency_ms: float, repeat: int, jira_mode: str,
           progress: Callable[[str], None], naive_repeat: int = 1) -> dict[str, Any]:
    """Idle and 1 %-changed runs in a synced world (ours), and the naive script's likewise.

    The world: ``size`` ServiceNow incidents with comments, synced to Jira (not
    measured), then settled; latency is added for the measured runs only.
    """
    spec = _spec("idle", size, jira_mode)
    k = max(1, size // 100)
    out: dict[str, Any] = {"idle": {"ours": [], "naive": []},
                           "changed": {"ours": [], "naive": [], "k": k}}
    for who in ("ours", "naive") if naive_repeat else ("ours",):
        rounds = repeat if who == "ours" else naive_repeat
        with tempfile.TemporaryDirectory(prefix="incident-sync-economy-") as tmp:
            host = _host(spec, 0.0)
            try:
                signin = signin_reads(host, Path(tmp))
                out["idle"].setdefault("signin", signin)
                out["changed"].setdefault("signin", signin)
                ours_config, naive_config = _configs(Path(tmp), host)
                limits = asdict(limits_for(ours_config, signin))
                out["idle"]["limits"] = out["changed"]["limits"] = limits
                progress(f"steady N={size} {who}: initial sync (not measured)")
                if who == "ours":
                    measured(host, ours_config)
                    out["idle"]["settle_runs"] = _settle(host, ours_config, progress)
                else:
                    measured(host, naive_config, "naive", mode="initial")
                host.set_latency(latency_ms)
                for index in range(rounds):
                    host.advance(RUN_INTERVAL_SECONDS)
                    progress(f"idle N={size} {who} ({index + 1}/{rounds})")
                    run = measured(host, ours_config) if who == "ours" else \
                        measured(host, naive_config, "naive", mode="initial")
                    out["idle"][who].append(run)
                for index in range(rounds):
                    host.advance(RUN_INTERVAL_SECONDS)
                    since = host.clock()
                    # Different records each round, as a person (not the integration user).
                    host.edit("servicenow", k, start=index * k, as_person=True)
                    host.edit("jira", k, start=index * k, as_person=True)
                    host.advance(1.0)
                    progress(f"changed N={size} k={k}+{k} {who} ({index + 1}/{rounds})")
                    run = measured(host, ours_config) if who == "ours" else \
                        measured(host, naive_config, "naive", mode="changed",
                                 since=since.isoformat())
                    out["changed"][who].append(run)
            finally:
                host.__exit__(None, None, None)
    return out


def rss_run(size: int, jira_mode: str, progress: Callable[[str], None]) -> dict[str, Any]:
    """One initial ServiceNow -> Jira sync with comments at ``size``, no latency."""
    progress(f"rss N={size}")
    with tempfile.TemporaryDirectory(prefix="incident-sync-economy-") as tmp:
        host = _host(_spec("sn-to-jira-comments", size, jira_mode), 0.0)
        try:
            config, _ = _configs(Path(tmp), host)
            run = measured(host, config)
        finally:
            host.__exit__(None, None, None)
    return {"ours": [run], "naive": []}


# --------------------------------------------------------------------------- report

def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
            "load": [round(x, 2) for x in load]}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _wall(runs: list[dict[str, Any]]) -> str:
    walls = [r["wall"] for r in runs]
    if not walls:
        return "-"
    if len(walls) == 1:
        return f"{walls[0]:.2f} s"
    return f"{_median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f})"


def _side_text(runs: list[dict[str, Any]], side: str) -> str:
    totals = [r["requests"][side]["total"] for r in runs]
    subs = [sub_requests(r, side) for r in runs]
    text = f"{int(_median(totals)):,}"
    if len(set(totals)) > 1:
        text += "*"
    if any(subs):
        text += f" (+{int(_median(subs)):,} sub)"
    return text


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def summarise(name: str, data: dict[str, Any], size: int) -> dict[str, Any]:
    """One table row's figures for a scenario (medians over the repeats)."""
    ours, naive = data["ours"], data.get("naive", [])
    total = _median([total_requests(r) for r in ours])
    unit = 2 * data["k"] if name == "changed" else size
    facts = seed_facts(size, 1, name not in NO_COMMENTS)
    limits = Limits(**data["limits"]) if "limits" in data else None
    bound = lower_bound(name, limits, facts, changed=data.get("k", 0)) if limits else None
    naive_total = _median([total_requests(r) for r in naive]) if naive else None
    return {
        "scenario": name, "records": unit, "total": total, "per": total / unit if unit else 0,
        "bound": bound, "naive_total": naive_total,
        "wall": _median([r["wall"] for r in ours]),
        "naive_wall": _median([r["wall"] for r in naive]) if naive else None,
        "cpu": _median([r["cpu"] for r in ours]),
        "rss": max(r["peak_rss"] for r in ours) if ours else 0,
        "failed": max((r["done"].get("failed", 0) for r in ours), default=0),
        "naive_failed": max((r["done"].get("failed", 0) for r in naive), default=0),
    }


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    m = meta["machine"]
    lines = [
        f"## Request economy (`bench/economy.py`), {meta['date']}", "",
        f"Command: `{meta['command']}`. Machine: {m['cpu']}, {m['cores']} cores, "
        f"{m['system']}, Python {m['python']}; load average {m['load'][0]} at the start, "
        f"{meta['load_end'][0]} at the end (other jobs share the machine). "
        + (f"Latency {meta['latency_ms']:g} ms added once per wire request (a Batch API "
           "request is one round trip); " if results["sizes"] else "")
        + f"Jira {meta['jira_mode']}; code at `{meta['commit']}`; "
        f"{meta['bench_seconds']:.0f} s in all.", "",
    ]
    for size_text, scenarios in results["sizes"].items():
        size = int(size_text)
        lines += [
            f"### N = {size:,}", "",
            "| scenario | SN requests | Jira requests | total | per incident | lower bound "
            "| ours / bound | naive | naive / ours | wall (median, min-max) | naive wall "
            "| naive / ours wall | CPU s | CPU ms / record | peak RSS |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        notes: list[str] = []
        for name in SCENARIOS:
            if name not in scenarios:
                continue
            data = scenarios[name]
            row = summarise(name, data, size)
            bound = row["bound"]
            per_unit = "per changed record" if name == "changed" else ""
            naive_total, naive_wall = row["naive_total"], row["naive_wall"]
            lines.append(
                f"| {TITLES[name]} | {_side_text(data['ours'], 'servicenow')} "
                f"| {_side_text(data['ours'], 'jira')} | {int(row['total']):,} "
                f"| {row['per']:.3f}{' ' + per_unit if per_unit else ''} "
                f"| {bound['total']:,} | {_ratio(row['total'], bound['total'])} "
                f"| {'-' if naive_total is None else f'{int(naive_total):,}'} "
                f"| {'-' if naive_total is None else _ratio(naive_total, row['total'])} "
                f"| {_wall(data['ours'])} "
                f"| {'-' if naive_wall is None else f'{naive_wall:.2f} s'} "
                f"| {'-' if naive_wall is None else _ratio(naive_wall, row['wall'])} "
                f"| {row['cpu']:.2f} | {1000 * row['cpu'] / size:.2f} "
                f"| {row['rss'] / MB:.0f} MB |")
            if row["failed"] or row["naive_failed"]:
                notes.append(f"{TITLES[name]}: failed items, ours {row['failed']}, naive "
                             f"{row['naive_failed']}.")
        lines += [""] + [f"* {n}" for n in notes] + ([""] if notes else [])
        lines += _bound_lines(scenarios, size)
        lines += _target_lines(scenarios, size)
    if "rss" in results:
        lines += _rss_lines(results["rss"])
    return "\n".join(lines) + "\n"


def _rss_lines(rss: dict[str, Any]) -> list[str]:
    (run,) = rss["ours"]
    size = rss["size"]
    ok = run["peak_rss"] <= TARGETS["rss MB at 100,000"] * MB
    return [
        f"RSS run: initial ServiceNow -> Jira with comments, N = {size:,}, no latency, one "
        f"run: {total_requests(run):,} requests, {run['wall']:.1f} s wall, "
        f"{run['cpu']:.1f} s CPU ({1000 * run['cpu'] / size:.2f} ms per record), "
        f"created {run['done'].get('created', 0):,}, failed {run['done'].get('failed', 0)}; "
        f"**peak RSS {run['peak_rss'] / MB:.0f} MB** against the target of 150 MB at "
        f"N = 100,000: {_verdict(ok)}"
        + ("" if size >= 100_000 else f" (measured at {size:,}, not 100,000)") + ".", ""]


def _bound_lines(scenarios: dict[str, Any], size: int) -> list[str]:
    lines = ["Lower bound per scenario (per side: every term, from the config's page sizes, "
             "the connectors' batch limits, the seed data and the sign-in reads of `open` on "
             "a fresh store):", ""]
    for name in SCENARIOS:
        if name not in scenarios or "limits" not in scenarios[name]:
            continue
        data = scenarios[name]
        row = summarise(name, data, size)
        terms = row["bound"]["terms"]
        parts = [f"{side}: " + " + ".join(f"{v:,} {k}" for k, v in terms[side].items())
                 for side in SIDES]
        lines.append(f"* {TITLES[name]}: {row['bound']['total']:,} = " + "; ".join(parts))
    return [*lines, ""]


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _target_lines(scenarios: dict[str, Any], size: int) -> list[str]:
    rows: list[tuple[str, str, str, bool]] = []
    for name, what, per_key, wall_key, per_text, wall_text in (
            ("sn-to-jira", "initial SN -> Jira, no comments", "sn-to-jira per incident",
             "sn-to-jira wall s", "<= 0.05", "<= 30 s"),
            ("sn-to-jira-links", "initial SN -> Jira, no comments, remote links on",
             "sn-to-jira remote links per incident", "sn-to-jira remote links wall s",
             "<= 1.05", "<= 60 s")):
        if name not in scenarios:
            continue
        row = summarise(name, scenarios[name], size)
        rows.append((f"{what}: requests per incident", per_text, f"{row['per']:.3f}",
                     row["per"] <= TARGETS[per_key]))
        rows.append(("  ... wall", wall_text, f"{row['wall']:.1f} s",
                     row["wall"] <= TARGETS[wall_key]))
    with_comments = scenarios.get("sn-to-jira-comments")
    if with_comments:
        run = with_comments["ours"][0]
        copied = run["done"].get("comments", 0)
        posts = sum(n for route, n in run["requests"]["jira"]["by_route"].items()
                    if route.endswith("/comment") and route.startswith("POST"))
        each = posts / copied if copied else 0.0
        rows.append(("comments to Jira: requests per comment", "<= 1", f"{each:.2f}",
                     each <= TARGETS["jira comment requests per comment"]))
    back = scenarios.get("jira-to-sn")
    if back:
        run = back["ours"][0]
        single = sum(n for route, n in run["requests"]["servicenow"]["by_route"].items()
                     if route.split(" ")[0] in ("PATCH", "PUT")
                     and "/api/now/table/" in route)
        rows.append(("comments to ServiceNow batched (journal writes outside the Batch API)",
                     "0", f"{single:,}", single == 0))
    idle = scenarios.get("idle")
    if idle:
        row = summarise("idle", idle, size)
        over = row["total"] - sum(idle["signin"].values())
        rows.append(("idle: requests beyond the sign-in reads "
                     f"({sum(idle['signin'].values())})", "<= 4", f"{int(over):,}",
                     over <= TARGETS["idle requests over sign-in"]))
        rows.append(("idle: wall", "<= 2 s", f"{row['wall']:.2f} s",
                     row["wall"] <= TARGETS["idle wall s"]))
    changed = scenarios.get("changed")
    if changed:
        row = summarise("changed", changed, size)
        rows.append(("1 % changed: requests per changed record", "<= 1.5", f"{row['per']:.2f}",
                     row["per"] <= TARGETS["changed per changed record"]))
    cpus = [summarise(name, scenarios[name], size) for name in
            INITIAL if name in scenarios]
    if cpus:
        worst = max(1000 * row["cpu"] / size for row in cpus)
        rows.append(("local CPU per record (worst initial sync)", "<= 2 ms", f"{worst:.2f} ms",
                     worst <= TARGETS["cpu ms per record"]))
    if not rows:
        return []
    lines = [f"Targets of issue #12 point 6 (stated for N = 10,000 at 50 ms; measured here at "
             f"N = {size:,}):", "", "| target | wanted | measured | |", "|---|---|---|---|"]
    lines += [f"| {what} | {want} | {got} | {_verdict(ok)} |" for what, want, got, ok in rows]
    return [*lines, ""]


# --------------------------------------------------------------------------- CLI

def _sizes(text: str) -> list[int]:
    """``"1000,10000"`` -> [1000, 10000]; an empty text is none (e.g. an RSS run only)."""
    if not text.strip():
        return []
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"sizes must be positive integers, got {text!r}")
    return values


def _scenarios(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [v for v in values if v not in SCENARIOS]
    if unknown or not values:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(SCENARIOS)}, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/economy.py",
        description="Requests, wall, CPU and RSS of incident-sync against its lower bound "
                    "and a naive per-record sync, on the local sandboxes.")
    p.add_argument("--sizes", type=_sizes, default=[1000],
                   help="incidents per scenario (default 1000; '' = none, e.g. RSS only)")
    p.add_argument("--latency-ms", type=float, default=50.0,
                   help="latency added per wire request (default 50)")
    p.add_argument("--repeat", type=int, default=3, help="runs per scenario (default 3)")
    p.add_argument("--rss-size", type=int, default=0,
                   help="also one RSS-only initial sync of this size, no latency (0 = none)")
    p.add_argument("--scenarios", type=_scenarios, default=list(SCENARIOS),
                   help=f"some of {','.join(SCENARIOS)} (default all)")
    p.add_argument("--naive-repeat", type=int, default=None,
                   help="runs of the naive sync per scenario (default --repeat; 0 = none)")
    p.add_argument("--report", type=Path, default=None,
                   help="only render (and append) the Markdown of a saved --json file")
    p.add_argument("--jira-mode", choices=("cloud", "datacenter"), default="cloud")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON,
                   help="raw figures (default bench/results/economy.json)")
    p.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                   help="Markdown file the section is appended to (default bench/RESULTS.md)")
    p.add_argument("--no-append", action="store_true", help="do not append to --results")
    p.add_argument("--start-method", choices=("spawn", "forkserver"), default="spawn",
                   help="how measured syncs start: spawn (default: a fresh interpreter, "
                        "honest peak RSS) or forkserver (fast start, for tests)")
    return p


def _progress(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def _commit() -> str:
    head = Path(__file__).resolve().parent.parent / ".git"
    try:
        import subprocess
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=head.parent,
                              capture_output=True, text=True, timeout=10, check=False)
        return done.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {"meta": {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(["python", "bench/economy.py", *argv]),
        "machine": machine(), "latency_ms": args.latency_ms, "repeat": args.repeat,
        "jira_mode": args.jira_mode, "commit": _commit(),
    }, "sizes": {}}
    naive = args.repeat if args.naive_repeat is None else args.naive_repeat

    def save() -> None:
        # After every scenario, so a long run cut short still leaves its figures.
        results["meta"]["bench_seconds"] = time.perf_counter() - started
        results["meta"]["load_end"] = machine()["load"]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n",
                             encoding="utf-8")

    with sandbox_secrets(PASSWORD):
        for size in args.sizes:
            found: dict[str, Any] = {}
            results["sizes"][str(size)] = found
            for name in INITIAL:
                if name in args.scenarios:
                    found[name] = initial(name, size, args.latency_ms, args.repeat,
                                          args.jira_mode, _progress, naive_repeat=naive)
                    save()
            if "idle" in args.scenarios or "changed" in args.scenarios:
                world = steady(size, args.latency_ms, args.repeat, args.jira_mode, _progress,
                               naive_repeat=naive)
                for name in ("idle", "changed"):
                    if name in args.scenarios:
                        found[name] = world[name]
                save()
        if args.rss_size:
            results["rss"] = rss_run(args.rss_size, args.jira_mode, _progress)
            results["rss"]["size"] = args.rss_size
    save()
    return results


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    args = p.parse_args(argv)
    if args.report is not None:
        try:
            saved = json.loads(args.report.read_text(encoding="utf-8"))
            text = markdown(saved)
        except (OSError, ValueError, KeyError) as error:
            p.error(f"--report: cannot render {args.report}: {error}")
        _publish(text, args)
        return 0
    if args.repeat < 1:
        p.error(f"--repeat: must be at least 1, got {args.repeat}")
    if args.latency_ms < 0:
        p.error(f"--latency-ms: must not be negative, got {args.latency_ms:g}")
    if args.rss_size < 0:
        p.error(f"--rss-size: must not be negative, got {args.rss_size}")
    if args.naive_repeat is not None and args.naive_repeat < 0:
        p.error(f"--naive-repeat: must not be negative, got {args.naive_repeat}")
    START_METHOD[0] = args.start_method
    results = run(args, argv)
    _publish(markdown(results), args)
    _progress(f"wrote {args.json}")
    return 0


def _publish(text: str, args: argparse.Namespace) -> None:
    """The Markdown to stdout and, unless --no-append, at the end of --results."""
    if not args.no_append:
        with args.results.open("a", encoding="utf-8") as out:
            out.write("\n" + text)
        _progress(f"appended to {args.results}")
    sys.stdout.write(text)


if __name__ == "__main__":
    raise SystemExit(main())
