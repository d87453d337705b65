"""A run tunes the cyclic collector only while it lasts: the process's thresholds and
its frozen objects are back when the last overlapping run ends, even one that failed."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

import sync.runner as runner
from sync.runner import YOUNG_THRESHOLD, collector_tuned


@pytest.fixture(autouse=True)
def _process_settings() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def test_settings_are_back_after_the_run_and_after_a_failed_one() -> None:
    frozen = gc.get_freeze_count()
    with collector_tuned():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == frozen
    with pytest.raises(RuntimeError), collector_tuned():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == frozen


def test_overlapping_runs_restore_once_when_the_last_ends() -> None:
    first_in, release = threading.Event(), threading.Event()

    def first() -> None:
        with collector_tuned():
            first_in.set()
            release.wait(timeout=5)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(timeout=5)
    with collector_tuned():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    # The first run still goes on: its settings stay.
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    release.set()
    thread.join(timeout=5)
    assert gc.get_threshold() == (700, 10, 10)


def test_a_process_without_automatic_collection_is_left_as_it_is() -> None:
    gc.set_threshold(0, 10, 10)
    frozen = gc.get_freeze_count()
    with collector_tuned():
        assert gc.get_threshold() == (0, 10, 10)
        assert gc.get_freeze_count() == frozen
    assert gc.get_threshold() == (0, 10, 10)


def test_objects_the_process_froze_itself_stay_frozen_after_the_run() -> None:
    # A forking server freezes what it built before forking; gc.unfreeze would undo
    # that too, so a run in such a process freezes nothing and unfreezes nothing.
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        theirs = gc.get_freeze_count()
        with collector_tuned():
            assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
            # Nothing more frozen (a frozen object refcounting frees still leaves).
            assert 0 < gc.get_freeze_count() <= theirs
        # Not unfrozen: gc.unfreeze would have emptied the permanent generation.
        assert gc.get_freeze_count() > theirs // 2
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.unfreeze()


def test_run_once_runs_inside_the_tuned_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, int, int]] = []

    class Engine:
        def run(self) -> str:
            seen.append(gc.get_threshold())
            return "summary"

    class Session:
        def __enter__(self) -> Engine:
            return Engine()

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(runner, "engine_session", lambda *a, **k: Session())
    assert runner.run_once(object()) == "summary"  # type: ignore[arg-type]
    assert seen == [(YOUNG_THRESHOLD, 10, 10)]
    assert gc.get_threshold() == (700, 10, 10)
