"""The engine's entry point: one locked run against the configured tools.

Contract: :func:`run_once` builds the engine from validated settings (through
:func:`sync.factory.engine_session`, which checks the profile against both
sites and closes store and engine whatever happens), runs it once and returns
its :class:`sync.engine.RunSummary`. Fatal problems raise
:class:`sync.errors.SyncError`; item failures are in the summary. It prints
nothing: the ``run`` command, ``demo`` and the benchmarks all call it and
each shows the outcome its own way.

While a run lasts, Python's cyclic garbage collector looks at the young objects
less often and leaves alone the objects alive when the run began
(:func:`collector_tuned`): a run allocates millions of short-lived containers that
reference counting frees, and the default thresholds had the collector scan them
about 900 times per 3,000 records (12 % of the run's CPU) for next to nothing. The
process's own settings are back when the last run in it ends; nothing a run decides
or writes depends on when the collector runs.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sync.engine import RunSummary
from sync.factory import engine_session
from sync.settings import Settings

# Young objects allocated between two collections during a run (Python's default: 700).
YOUNG_THRESHOLD = 10_000

_tuning = threading.Lock()
_tuned_runs = 0
_saved_threshold: tuple[int, int, int] = gc.get_threshold()
_froze = False   # whether the first of the runs now going froze what was alive


@contextmanager
def collector_tuned() -> Iterator[None]:
    """The collector's run-time settings (see the module's contract) while this lasts.

    Runs may overlap in one process (threads): the first to begin saves the process's
    thresholds and freezes what is alive, the last to end puts both back. A process
    that switched automatic collection off (threshold 0) is left as it is, and one
    that froze objects itself keeps them frozen (nothing more is frozen then).
    """
    global _tuned_runs, _saved_threshold, _froze
    with _tuning:
        if _tuned_runs == 0:
            _saved_threshold = gc.get_threshold()
            # A host process that froze objects itself (a forking server) keeps them
            # frozen: unfreeze cannot tell theirs from ours, so we freeze nothing then.
            _froze = bool(_saved_threshold[0]) and gc.get_freeze_count() == 0
            if _saved_threshold[0]:
                gc.set_threshold(max(_saved_threshold[0], YOUNG_THRESHOLD),
                                 *_saved_threshold[1:])
            if _froze:
                # What lived before the run (modules, the caller's objects) is not
                # garbage the run makes: the full collections skip it.
                gc.freeze()
        _tuned_runs += 1
    try:
        yield
    finally:
        with _tuning:
            _tuned_runs -= 1
            if _tuned_runs == 0:
                if _froze:
                    gc.unfreeze()
                if _saved_threshold[0]:
                    gc.set_threshold(*_saved_threshold)


def run_once(
    settings: Settings,
    *,
    retry_now: bool = False,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> RunSummary:
    """One locked run, built as ``incident-sync run`` builds it; ``progress(done, total)``
    is called as pairs are handled, ``clock`` (default: real time) is the engine's."""
    with collector_tuned(), engine_session(settings, progress=progress,
                                           retry_now=retry_now, clock=clock) as engine:
        return engine.run()
