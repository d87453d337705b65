"""Metrics for monitoring: what a run records with itself, and the OpenMetrics text of a store.

Contract:
- A run records, besides its item counts, two more kinds of figures in its
  row's ``counts`` (flat integer keys, so the column and its readers stay as
  they were): ``requests.<vendor>.<status class>`` (HTTP requests the run
  made, :mod:`connectors.http_log`), and for every record the retry queue
  holds after the run ``unsynced.<side>.<record id>`` = when the change the
  sync could not carry over was made (Unix seconds), with ``unsynced`` = how
  many. :func:`run_figures` builds them; :func:`item_counts` is what is left
  for people (``status``'s counts).
- "When the change was made" (:func:`unsynced_since`): the later of the two
  records' last-update times (``sys_updated_on``, Jira ``updated``) as the
  run that failed the pair read them, a lower bound of the change's age; a
  record the run could not read counts from the start of that run. Across
  runs the earliest time recorded for a record is kept while it stays queued
  (parked items included: their change is unsynced too). The item leaves the
  figures when it leaves the retry queue.
- :func:`render` is the OpenMetrics text exposition of a store (``status
  --format openmetrics`` and ``run --metrics-file``): gauges only (every
  figure is a level or the last run's count, none a counter the process
  keeps), names in Prometheus style with their unit suffix, HELP and TYPE
  lines, a ``connection`` label on every sample, ``# EOF`` last. The oldest
  unsynced change's age is measured at render time: it grows while the sync
  stands still.
- :func:`write_atomically` writes a file the way node_exporter's textfile
  collector needs: a temporary file in the same directory, then
  ``os.replace``, so a scrape never reads half a file; :func:`check_writable`
  proves a path can be written before a run starts.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from sync.state import RetryItem, RunRecord, StateStore

PREFIX = "incident_sync"
REQUESTS = "requests."
UNSYNCED = "unsynced"
ITEM_KINDS = ("created", "adopted", "updated", "comments", "conflicts", "failed", "parked",
              "orphaned")
# How far back ``render`` looks for the last successful run.
RUNS_READ = 1000


# --------------------------------------------------------------------------- a run's figures


def unsynced_since(store: StateStore, read: Mapping[tuple[str, str], datetime], run_id: int,
                   started: datetime) -> dict[tuple[str, str], datetime]:
    """For each record queued now: when its unsynced change was made (module contract).

    ``read``: the run's failed pairs' last-update times by (side, record id)
    (:attr:`sync.engine_core.RunSummary.read_times`).
    """
    carried = _unsynced_of(_previous_figures(store.runs(50), run_id))
    out: dict[tuple[str, str], datetime] = {}
    for item in store.retry_items():
        key = (item.side, item.record_id)
        known = [t for t in (read.get(key), carried.get(key)) if t is not None]
        out[key] = min(known) if known else started
    return out


def run_figures(requests: Mapping[tuple[str, str], int],
                unsynced: Mapping[tuple[str, str], datetime]) -> dict[str, int]:
    """The ``counts`` keys a run records for monitoring (module contract)."""
    figures = {f"{REQUESTS}{vendor}.{kind}": n for (vendor, kind), n in requests.items()}
    figures[UNSYNCED] = len(unsynced)
    for (side, record_id), when in unsynced.items():
        figures[f"{UNSYNCED}.{side}.{record_id}"] = math.floor(when.timestamp())
    return figures


def item_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """A run's counts without its monitoring figures: what people read."""
    return {k: v for k, v in counts.items() if not k.startswith((REQUESTS, UNSYNCED))}


def requests_of(counts: Mapping[str, int]) -> dict[tuple[str, str], int]:
    out = {}
    for key, value in counts.items():
        if key.startswith(REQUESTS):
            vendor, _, kind = key[len(REQUESTS):].rpartition(".")
            out[(vendor, kind)] = value
    return out


def _unsynced_of(counts: Mapping[str, int] | None) -> dict[tuple[str, str], datetime]:
    out = {}
    for key, value in (counts or {}).items():
        if key.startswith(UNSYNCED + "."):
            side, _, record_id = key[len(UNSYNCED) + 1:].partition(".")
            out[(side, record_id)] = datetime.fromtimestamp(value, UTC)
    return out


def _previous_figures(runs: Iterable[RunRecord], run_id: int | None) -> dict[str, int] | None:
    """The counts of the newest run (other than ``run_id``) that recorded unsynced figures.

    A run killed before it recorded anything is skipped, so its successor still
    carries the times over."""
    for run in runs:
        if run.id != run_id and UNSYNCED in run.counts:
            return run.counts
    return None


# --------------------------------------------------------------------------- exposition


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}"


class _Exposition:
    def __init__(self, connection: str) -> None:
        self.connection = connection
        self.lines: list[str] = []

    def gauge(self, name: str, help_text: str,
              samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        samples = list(samples)
        if not samples:
            return  # a family with nothing to say is left out
        full = f"{PREFIX}_{name}"
        self.lines.append(f"# HELP {full} {help_text}")
        self.lines.append(f"# TYPE {full} gauge")
        for labels, value in samples:
            pairs = {"connection": self.connection, **labels}
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items())
            self.lines.append(f"{full}{{{text}}} {_number(value)}")

    def text(self) -> str:
        return "\n".join([*self.lines, "# EOF"]) + "\n"


def render(store: StateStore | None, now: datetime) -> str:
    """The OpenMetrics text of ``store`` at ``now`` (no store yet: only ``# EOF``)."""
    if store is None:
        return "# EOF\n"
    out = _Exposition(store.connection)
    runs = store.runs(RUNS_READ)
    queue = store.retry_items()
    newest = runs[0] if runs else None
    finished = next((r for r in runs if r.finished is not None), None)
    succeeded = next((r for r in runs if r.finished is not None and r.outcome == "ok"), None)
    if newest is not None:
        out.gauge("last_run_start_timestamp_seconds",
                  "When the newest run started (Unix time), finished or not.",
                  [({}, newest.started.timestamp())])
    if finished is not None and finished.finished is not None:
        out.gauge("last_run_end_timestamp_seconds",
                  "When the newest finished run ended (Unix time).",
                  [({}, finished.finished.timestamp())])
        out.gauge("last_run_duration_seconds", "How long the newest finished run took.",
                  [({}, (finished.finished - finished.started).total_seconds())])
        out.gauge("last_run_success",
                  "1 when the newest finished run synced everything, 0 when it did not.",
                  [({}, 1.0 if finished.outcome == "ok" else 0.0)])
        out.gauge("last_run_items",
                  "Items the newest finished run handled, by kind (failed: what the retry "
                  "queue held after it; parked: items it parked).",
                  [({"kind": kind}, finished.counts.get(kind, 0)) for kind in ITEM_KINDS])
        out.gauge("last_run_requests",
                  "HTTP requests the newest finished run made, by vendor and status class.",
                  [({"vendor": vendor, "status_class": kind}, n)
                   for (vendor, kind), n in sorted(requests_of(finished.counts).items())])
    if succeeded is not None and succeeded.finished is not None:
        out.gauge("last_success_timestamp_seconds",
                  "When the newest run that synced everything ended (Unix time).",
                  [({}, succeeded.finished.timestamp())])
    out.gauge("open_conflicts", "Conflicts waiting to be settled.",
              [({}, len(store.open_conflicts()))])
    out.gauge("retry_queue_items", "Items in the retry queue, by state.",
              [({"state": state}, _queued(queue, state, now))
               for state in ("due", "waiting", "parked")])
    out.gauge("oldest_unsynced_change_age_seconds",
              "Age of the oldest change the sync has not carried over (records in the retry "
              "queue); 0 when the queue is empty.",
              [({}, _lag(runs, queue, now))])
    return out.text()


def _queued(queue: list[RetryItem], state: str, now: datetime) -> int:
    if state == "parked":
        return sum(1 for item in queue if item.parked)
    due = state == "due"
    return sum(1 for item in queue if not item.parked and (item.next_attempt <= now) == due)


def _lag(runs: list[RunRecord], queue: list[RetryItem], now: datetime) -> float:
    """Seconds since the oldest unsynced change of a record still queued (0: none)."""
    recorded = _unsynced_of(_previous_figures(runs, None))
    times = [recorded[(item.side, item.record_id)] for item in queue
             if (item.side, item.record_id) in recorded]
    if not times:
        return 0.0
    return max(0.0, round((now - min(times)).total_seconds(), 3))


# --------------------------------------------------------------------------- the textfile


def check_writable(path: Path) -> str | None:
    """None when ``path`` can be written the atomic way; else the reason, for one line."""
    if path.is_dir():
        return f"{path} is a directory"
    folder = path.parent
    if not folder.is_dir():
        return f"directory {folder} does not exist"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as error:
        return f"cannot write in {folder}: {error.strerror or error}"
    return None


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (temporary file + ``os.replace``)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes the file readable by us alone; the collector runs as another user.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
