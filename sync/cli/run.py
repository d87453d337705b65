"""The ``run`` command: apply, once or on a schedule; one summary line per run.

Contract:
- A progress bar only when stdout is a terminal, and always ONE summary line at
  the end (``created 3, adopted 1, updated 5, comments 7, conflicts 1, failed 0,
  orphaned 0 in 4.2 s``; adopted = records a crashed run had created, now linked
  instead of duplicated), preceded by the failures and orphans it found.
- ``--every`` repeats until Ctrl-C or ``--max-runs``, each summary line then
  starting with the local time it was printed at, with its UTC offset
  (``2026-03-02T10:15:04+01:00 created 0, ...``), so a log of a long-running
  loop says when each run happened; the exit status is the last run's (0 ok,
  1 items failed, 2 config, 3 a tool unreachable). A run retries only queued
  items whose next attempt has come; ``--retry-now`` makes every queued item
  (parked ones too) due in the first run.
- ``--metrics-file PATH`` writes the store's metrics (:func:`sync.metrics.render`,
  OpenMetrics text, node_exporter's textfile convention) after every run, a
  failed one too, atomically (a temporary file in the same directory, then a
  rename). A path that cannot be written is a one-line config error (exit 2)
  before the first run; a file that could not be written after a run is a
  warning and leaves the run's exit status alone.
- One run is :func:`sync.runner.run_once`; this module adds only the terminal
  around it. Errors reach the user as one stderr line (under ``--log-format
  json``, the failures, warnings and errors are JSON log records instead).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from sync import logs
from sync.cli.app import (
    ConfigOption,
    fail,
    reported_errors,
    say,
    settings_from,
    stderr,
    stdout,
)
from sync.errors import EXIT_CONFIG, EXIT_ITEMS_FAILED, SyncError, exit_code_for
from sync.settings import DEFAULT_CONFIG, Settings

if TYPE_CHECKING:  # the engine pulls in connectors and mappings: load them per command
    from sync.engine import RunSummary

log = logging.getLogger(__name__)

_INTERVAL = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

# Tests replace this to loop without waiting.
sleep: Callable[[float], None] = time.sleep


def _local_now() -> datetime:
    return datetime.now().astimezone()


# And this for a known time on the summary lines of ``run --every``.
now: Callable[[], datetime] = _local_now


def parse_interval(text: str) -> float:
    """``30s``, ``5m``, ``1h``, ``1h30m`` -> seconds. ValueError with the reason otherwise."""
    match = _INTERVAL.match(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(f"--every {text!r}: use a duration like 30s, 5m, 1h or 1h30m")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"--every {text!r}: the interval must be longer than 0 s")
    return float(total)


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress callback on a terminal; None (no output at all) otherwise."""
    if not stdout.is_terminal:
        yield None
        return
    with Progress(TextColumn("syncing"), BarColumn(), MofNCompleteColumn(),
                  console=stdout, transient=True) as progress:
        task = progress.add_task("pairs", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def print_summary(summary: RunSummary, *, stamped: bool = False) -> None:
    """The run's warnings, failures and orphans, then its summary line.

    ``stamped``: start the summary line with the time (``run --every``, whose
    output is a log of many runs)."""
    for warning in summary.warnings:
        _note(f"warning: {warning}")
    for failure in summary.failures:
        _note(f"failed: {failure}")
    for orphan in summary.orphans:
        stdout.print(f"orphaned: {orphan}", markup=False)
    stamp = f"{now().isoformat(timespec='seconds')} " if stamped else ""
    stdout.print(stamp + summary.line(), markup=False)


def _note(line: str) -> None:
    """A run's warning or failure on stderr; a log record under ``--log-format json``."""
    if logs.current_format() == "json":
        log.warning("%s", line)
    else:
        stderr.print(line, markup=False)


def _write_metrics(settings: Settings, path: Path) -> None:
    """The store's metrics into ``path``, atomically; a failure is a warning only."""
    from sync.metrics import render, write_atomically
    from sync.state import NoStateStore, StateStore

    try:
        try:
            store: StateStore | None = StateStore(
                settings.state_url, connection=settings.sync.connection, create=False)
        except NoStateStore:
            store = None
        try:
            text = render(store, datetime.now().astimezone())
        finally:
            if store is not None:
                store.close()
        write_atomically(path, text)
    except (SyncError, OSError) as error:
        say(f"metrics file {path} not written: {error}", level=logging.WARNING)


def run(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    every: Annotated[
        str | None,
        typer.Option("--every", help="Repeat at this interval (30s, 5m, 1h, 1h30m) until Ctrl-C."),
    ] = None,
    max_runs: Annotated[
        int | None,
        typer.Option("--max-runs", min=1, help="With --every: stop after this many runs."),
    ] = None,
    retry_now: Annotated[
        bool,
        typer.Option("--retry-now", help="Retry every item of the retry queue now, parked "
                     "ones included, instead of when each is due."),
    ] = False,
    metrics_file: Annotated[
        Path | None,
        typer.Option("--metrics-file", help="After each run, write the metrics (OpenMetrics "
                     "text) to this file atomically, e.g. for node_exporter's textfile "
                     "collector.", show_default=False),
    ] = None,
) -> None:
    """Sync both tools now (or every INTERVAL); one summary line per run."""
    from sync.runner import run_once

    interval = None
    if max_runs is not None and every is None:
        fail("--max-runs needs --every (a single run is the default)", EXIT_CONFIG)
    if every is not None:
        try:
            interval = parse_interval(every)
        except ValueError as error:
            fail(str(error), EXIT_CONFIG)
    if metrics_file is not None:
        from sync.metrics import check_writable

        problem = check_writable(metrics_file)
        if problem is not None:
            fail(f"--metrics-file {metrics_file}: {problem}", EXIT_CONFIG)
    with reported_errors():
        settings = settings_from(config)
    runs = 0
    code = 0
    try:
        while True:
            try:
                # "Now" is the first run; later ones follow the queue's schedule again.
                with _progress_bar() as progress:
                    summary = run_once(settings, retry_now=retry_now and runs == 0,
                                       progress=progress)
            except SyncError as error:
                if metrics_file is not None:
                    _write_metrics(settings, metrics_file)
                # Alone, the error ends the command; on a schedule the next
                # run may well succeed (a tool back up, a lock released).
                if interval is None:
                    fail(str(error), exit_code_for(error))
                say(str(error))
                code = exit_code_for(error)
            else:
                if metrics_file is not None:
                    _write_metrics(settings, metrics_file)
                print_summary(summary, stamped=interval is not None)
                code = summary.exit_code
            runs += 1
            if interval is None or (max_runs is not None and runs >= max_runs):
                break
            sleep(interval)
    except KeyboardInterrupt:
        say("interrupted; the last run's status stands")
        if code == 0 and runs == 0:
            code = EXIT_ITEMS_FAILED
    raise typer.Exit(code)
