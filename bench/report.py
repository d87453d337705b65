"""Summaries of benchmark results: medians over repeats, ratios, and a Markdown report.

Contract:
- Input is the JSON document :mod:`bench.run` writes (``results.json``); every
  function here is pure (no I/O), so the report can be re-rendered from a
  saved result with ``python bench/run.py --report bench/results/results.json``.
- Request counts are deterministic (seeded data, one client thread), so a count
  is reported as its median and flagged with ``*`` when repeats disagreed.
  Times are reported as median with min and max: machines are shared and noisy.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

SIDES = ("servicenow", "jira")
SIDE_TITLE = {"servicenow": "ServiceNow", "jira": "Jira"}
JIRA_BULK = 50
SN_BATCH = 50


def median(values: Iterable[float]) -> float:
    items = list(values)
    return float(statistics.median(items)) if items else 0.0


def count_text(values: Sequence[int]) -> str:
    """A count's median; ``*`` marks repeats that disagreed (min..max follows)."""
    if not values:
        return "-"
    mid = statistics.median(values)
    text = f"{mid:g}"
    if min(values) != max(values):
        text += f"* ({min(values)}..{max(values)})"
    return text


def time_text(seconds: Sequence[float], scale: float = 1.0, unit: str = "s",
              digits: int = 2) -> str:
    """``median (min–max)`` of a list of seconds, scaled into ``unit``."""
    if not seconds:
        return "-"
    values = [s * scale for s in seconds]
    return (f"{median(values):.{digits}f} {unit} "
            f"({min(values):.{digits}f}–{max(values):.{digits}f})")


def runs_labelled(repeats: Sequence[Sequence[dict[str, Any]]], label: str
                  ) -> list[dict[str, Any]]:
    """The run with ``label`` from each repeat."""
    return [run for runs in repeats for run in runs if run["label"] == label]


def labels(repeats: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
    return [run["label"] for run in repeats[0]] if repeats else []


def req(run: dict[str, Any], side: str, key: str) -> int:
    return int(run["requests"][side][key])


def both(run: dict[str, Any], key: str) -> int:
    return sum(req(run, side, key) for side in SIDES)


def route_count(run: dict[str, Any], side: str, route: str) -> int:
    return int(run["requests"][side]["by_route"].get(route, 0))


# --------------------------------------------------------------------------- tables


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def sync_rows(sync: dict[str, dict[str, list[list[dict[str, Any]]]]], label: str
              ) -> list[list[Any]]:
    """One row per direction and size for the runs called ``label``."""
    rows = []
    for direction, by_size in sync.items():
        for size_text, repeats in sorted(by_size.items(), key=lambda kv: int(kv[0])):
            size = int(size_text)
            runs = runs_labelled(repeats, label)
            if not runs:
                continue
            row: list[Any] = [direction, size]
            for side in SIDES:
                row.append(count_text([req(r, side, "reads") for r in runs]))
                row.append(count_text([req(r, side, "writes") for r in runs]))
            totals = [both(r, "total") for r in runs]
            row.append(count_text(totals))
            row.append(f"{median(totals) / size:.2f}")
            row.append(f"{median(both(r, 'writes') for r in runs) / size:.2f}")
            row.append(time_text([r["seconds"] for r in runs]))
            row.append(time_text([r["seconds"] / size for r in runs], 1000.0, "ms", 1))
            rows.append(row)
    return rows


SYNC_HEADER = ["direction", "N", "SN reads", "SN writes", "Jira reads", "Jira writes",
               "total requests", "requests / record", "writes / record", "wall time",
               "time / record"]


def write_breakdown(sync: dict[str, dict[str, list[list[dict[str, Any]]]]]
                    ) -> list[list[Any]]:
    """Writes of the initial sync by route, with the minimum the vendors' APIs allow."""
    rows = []
    for direction, by_size in sync.items():
        for size_text, repeats in sorted(by_size.items(), key=lambda kv: int(kv[0])):
            size = int(size_text)
            runs = runs_labelled(repeats, "initial")
            if not runs:
                continue
            run = runs[0]
            routes: dict[str, int] = {}
            for side in SIDES:
                for route, count in run["requests"][side]["by_route"].items():
                    method = route.split(" ", 1)[0]
                    if method in ("POST", "PUT", "PATCH", "DELETE") and "/search" not in route:
                        routes[f"{SIDE_TITLE[side]}: {route}"] = count
            created = int(run["summary"]["created"])
            rows.append([direction, size, created, run["summary"]["comments"],
                         "<br>".join(f"{n} × `{r}`" for r, n in sorted(routes.items())),
                         minimum_writes(direction, created, run)])
    return rows


def phase_rows(sync: dict[str, dict[str, list[list[dict[str, Any]]]]]) -> list[list[Any]]:
    """Reads of the initial sync: while planning (pull, pairing) and while writing."""
    rows = []
    for direction, by_size in sync.items():
        for size_text, repeats in sorted(by_size.items(), key=lambda kv: int(kv[0])):
            runs = [r for r in runs_labelled(repeats, "initial") if r.get("plan_requests")]
            if not runs:
                continue
            size = int(size_text)
            row: list[Any] = [direction, size]
            for side in SIDES:
                row.append(count_text([req_plan(r, side, "reads") for r in runs]))
            for side in SIDES:
                row.append(count_text([req(r, side, "reads") - req_plan(r, side, "reads")
                                       for r in runs]))
            applied = median(both(r, "reads") - sum(req_plan(r, s, "reads") for s in SIDES)
                             for r in runs)
            created = median(int(r["summary"]["created"]) for r in runs) or 1
            row.append(f"{applied / created:.2f}")
            rows.append(row)
    return rows


PHASE_HEADER = ["direction", "N", "SN reads planning", "Jira reads planning",
                "SN reads applying", "Jira reads applying", "applying reads / created record"]


def req_plan(run: dict[str, Any], side: str, key: str) -> int:
    return int(run["plan_requests"][side][key])


def route_rows(sync: dict[str, dict[str, list[list[dict[str, Any]]]]], label: str
               ) -> tuple[int, list[list[Any]]]:
    """Every route of the ``label`` run at the largest size, per direction: where requests go."""
    sizes = sorted({int(size) for by_size in sync.values() for size in by_size})
    if not sizes:
        return 0, []
    size = sizes[-1]
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for direction, by_size in sync.items():
        runs = runs_labelled(by_size.get(str(size), []), label)
        if not runs:
            continue
        for side in SIDES:
            for route, count in runs[0]["requests"][side]["by_route"].items():
                counts.setdefault((SIDE_TITLE[side], route), {})[direction] = count
    directions = list(sync)
    rows = [[side, f"`{route}`", *(by.get(d, 0) for d in directions)]
            for (side, route), by in sorted(counts.items())]
    return size, rows


def minimum_writes(direction: str, created: int, run: dict[str, Any]) -> str:
    """The fewest writes the vendors' APIs allow for what this run created and copied.

    Jira: bulk create (50 per request), then per created issue its entity
    property and remote link (Jira has no bulk form of either), plus one POST per
    workflow step and per comment. ServiceNow: the Batch API (50 records per
    request) for creates and one PATCH per journal entry.
    """
    comments = int(run["summary"]["comments"])
    if direction == "servicenow-to-jira":
        transitions = route_count(run, "jira", "POST /rest/api/3/issue/{key}/transitions") or \
            route_count(run, "jira", "POST /rest/api/2/issue/{key}/transitions")
        bulk = -(-created // JIRA_BULK)
        backlinks = -(-created // SN_BATCH)
        total = bulk + 2 * created + transitions + comments + backlinks
        return (f"{total} = {bulk} bulk + {2 * created} property/remote link + "
                f"{transitions} transitions + {comments} comments + {backlinks} SN "
                "correlation batch")
    batches = -(-created // SN_BATCH)
    total = batches + comments
    return f"{total} = {batches} SN batch + {comments} SN journal PATCH"


def incremental_rows(sync: dict[str, dict[str, list[list[dict[str, Any]]]]]
                     ) -> list[list[Any]]:
    rows = []
    for direction, by_size in sync.items():
        for size_text, repeats in sorted(by_size.items(), key=lambda kv: int(kv[0])):
            for label in labels(repeats):
                if "incremental" not in label:
                    continue
                runs = runs_labelled(repeats, label)
                row: list[Any] = [direction, int(size_text), label]
                for side in SIDES:
                    row.append(count_text([int(r["pulled"].get(side, 0)) for r in runs]))
                    row.append(count_text([req(r, side, "total") for r in runs]))
                    row.append(count_text([req(r, side, "writes") for r in runs]))
                row.append(count_text([int(r["summary"]["updated"]) for r in runs]))
                row.append(time_text([r["seconds"] for r in runs]))
                rows.append(row)
    return rows


INCREMENTAL_HEADER = ["direction", "N", "run", "SN pulled", "SN requests", "SN writes",
                      "Jira pulled", "Jira requests", "Jira writes", "records updated",
                      "wall time"]


def recovery_rows(sync: dict[str, dict[str, list[list[dict[str, Any]]]]]
                  ) -> list[list[Any]]:
    """The ``state-lost`` runs: pairs adopted again, requests and writes it took."""
    rows = []
    for direction, by_size in sync.items():
        for size_text, repeats in sorted(by_size.items(), key=lambda kv: int(kv[0])):
            runs = runs_labelled(repeats, "state-lost")
            if not runs:
                continue
            rows.append([direction, int(size_text),
                         count_text([int(r["summary"]["adopted"]) for r in runs]),
                         count_text([int(r["summary"]["created"]) for r in runs]),
                         count_text([int(r["summary"]["comments"]) for r in runs]),
                         count_text([req(r, "servicenow", "total") for r in runs]),
                         count_text([req(r, "jira", "total") for r in runs]),
                         count_text([both(r, "writes") for r in runs]),
                         time_text([r["seconds"] for r in runs])])
    return rows


RECOVERY_HEADER = ["direction", "N", "pairs adopted", "created", "comments copied",
                   "SN requests", "Jira requests", "writes", "wall time"]


def pull_rows(pulls: Sequence[Sequence[dict[str, Any]]]) -> list[list[Any]]:
    rows = []
    if not pulls:
        return rows
    for index, first in enumerate(pulls[0]):
        same = [repeat[index] for repeat in pulls]
        side = first["side"]
        pages = [_page_requests(p) for p in same]
        comments = [_comment_requests(p) for p in same]
        others = [p["requests"]["total"] - a - b for p, a, b in zip(same, pages, comments,
                                                                    strict=True)]
        rows.append([SIDE_TITLE[side], first["page_size"], first["records"],
                     count_text(pages), first["expected_pages"], count_text(comments),
                     count_text(others), count_text([p["requests"]["total"] for p in same]),
                     time_text([p["seconds"] for p in same]),
                     time_text([p["seconds"] / max(p["records"], 1) for p in same],
                               1000.0, "ms", 2)])
    return rows


PULL_HEADER = ["side", "page size", "records", "page requests", "ceil(records/page)",
               "comment requests", "other", "total", "wall time", "time / record"]


def _page_requests(pull: dict[str, Any]) -> int:
    routes = pull["requests"]["by_route"]
    if pull["side"] == "servicenow":
        return int(routes.get("GET /api/now/table/incident", 0))
    return sum(n for route, n in routes.items() if "/search" in route)


def _comment_requests(pull: dict[str, Any]) -> int:
    routes = pull["requests"]["by_route"]
    if pull["side"] == "servicenow":
        return int(routes.get("GET /api/now/table/sys_journal_field", 0))
    return sum(n for route, n in routes.items() if route.endswith("/comment"))


def latency_rows(latency: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Per latency: requests, wall time, and how much of it the round trips explain."""
    rows = []
    if not latency:
        return rows
    base_runs = [r for r in latency if not r["latency_ms"]]
    base = median(r["seconds"] for r in base_runs) if base_runs else 0.0
    for value in sorted({r["latency_ms"] for r in latency}):
        runs = [r for r in latency if r["latency_ms"] == value]
        requests = median(both(r, "total") for r in runs)
        wall = median(r["seconds"] for r in runs)
        waiting = requests * value / 1000.0
        rows.append([f"{value:g} ms", count_text([both(r, "total") for r in runs]),
                     time_text([r["seconds"] for r in runs]),
                     f"{waiting:.2f} s", f"{base + waiting:.2f} s",
                     f"{waiting / wall:.0%}" if wall and value else "-"])
    return rows


LATENCY_HEADER = ["latency / request", "requests", "wall time", "requests × latency",
                  "no-latency wall + requests × latency", "share of wall time in round trips"]


def memory_rows(memory: Sequence[dict[str, Any]]) -> list[list[Any]]:
    return [[m["direction"], m["size"], f"{m['peak_bytes'] / 2**20:.1f} MiB",
             f"{m['peak_bytes'] / max(m['size'], 1) / 1024:.1f} KiB"] for m in memory]


MEMORY_HEADER = ["direction", "N", "peak traced heap", "per record"]


# --------------------------------------------------------------------------- document


def markdown(results: dict[str, Any]) -> str:
    """The whole report as Markdown (what README.md quotes)."""
    meta = results["meta"]
    out = [f"# incident-sync benchmark results ({meta['date']})", "",
           f"Machine: {meta['machine']}; Python {meta['python']}; "
           f"repeats: {meta['repeat']}; Jira flavour: {meta['jira_mode']}. "
           "Counts are medians over repeats (`*` = repeats disagreed); "
           "times are median (min–max).", ""]
    sync = results.get("sync") or {}
    if sync:
        out += ["## Initial sync (requests per side)", ""]
        out += _table(SYNC_HEADER, sync_rows(sync, "initial"))
        out += ["## Reads of the initial sync: planning (pull, pairing) vs applying", ""]
        out += _table(PHASE_HEADER, phase_rows(sync))
        out += ["## Writes of the initial sync by route, against the vendors' minimum", ""]
        out += _table(["direction", "N", "created", "comments copied", "writes (wire)",
                       "minimum the APIs allow"], write_breakdown(sync))
        size, rows = route_rows(sync, "initial")
        out += [f"## Every request of the initial sync at N = {size}, by route", ""]
        out += _table(["tool", "route", *sync], rows)
        out += ["## Second run right after (nothing changed)", ""]
        out += _table(SYNC_HEADER, sync_rows(sync, "repeat"))
        out += ["## Incremental runs after editing k source records", ""]
        out += _table(INCREMENTAL_HEADER, incremental_rows(sync))
        recovery = recovery_rows(sync)
        if recovery:
            out += ["## Recovery: the state store lost, every pair adopted again", ""]
            out += _table(RECOVERY_HEADER, recovery)
    if results.get("pull"):
        out += ["## Full pull (connector alone, no sync)", ""]
        out += _table(PULL_HEADER, pull_rows(results["pull"]))
    if results.get("memory"):
        out += ["## Peak memory of the sync process (tracemalloc, initial sync)", ""]
        out += _table(MEMORY_HEADER, memory_rows(results["memory"]))
    if results.get("latency"):
        size = results["latency"][0].get("size", "?")
        direction = results["latency"][0].get("direction", "?")
        out += [f"## Added latency per request (initial sync, {direction}, N = {size})", ""]
        out += _table(LATENCY_HEADER, latency_rows(results["latency"]))
    return "\n".join(out).rstrip() + "\n"
