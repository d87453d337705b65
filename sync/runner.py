"""The engine's entry point: one locked run against the configured tools.

Contract: :func:`run_once` builds the engine from validated settings (through
:func:`sync.factory.engine_session`, which checks the profile against both
sites and closes store and engine whatever happens), runs it once and returns
its :class:`sync.engine.RunSummary`. Fatal problems raise
:class:`sync.errors.SyncError`; item failures are in the summary. It prints
nothing: the ``run`` command, ``demo`` and the benchmarks all call it and
each shows the outcome its own way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sync.engine import RunSummary
from sync.factory import engine_session
from sync.settings import Settings


def run_once(
    settings: Settings,
    *,
    retry_now: bool = False,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> RunSummary:
    """One locked run, built as ``incident-sync run`` builds it; ``progress(done, total)``
    is called as pairs are handled, ``clock`` (default: real time) is the engine's."""
    with engine_session(settings, progress=progress, retry_now=retry_now,
                        clock=clock) as engine:
        return engine.run()
