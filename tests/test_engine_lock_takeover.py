"""A run lock left by a dead process on this host is taken over; any other lock is respected."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sync.engine import owner_is_dead
from sync.errors import LockHeld
from sync.settings import load_settings
from sync.state import StateStore

# The engine scenarios that use a store run on SQLite and on PostgreSQL (conftest).
pytestmark = pytest.mark.usefixtures("state_url")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_owner_is_dead_only_for_a_gone_process_of_this_host() -> None:
    host = socket.gethostname()
    assert owner_is_dead(f"{host}:{dead_pid()}")
    assert not owner_is_dead(f"{host}:{os.getpid()}")          # ourselves
    assert not owner_is_dead(f"{host}:1")                      # alive (init)
    assert not owner_is_dead(f"some-other-host:{dead_pid()}")  # cannot tell: wait for expiry
    assert not owner_is_dead("garbage")


def hold_lock(config: Path, owner: str) -> None:
    with StateStore(load_settings(config).state_url) as store:
        store.acquire_lock(owner, ttl=900)


def test_a_dead_local_holder_does_not_block_the_next_run(
    sandboxes: Any, sync_config: Any, make_engine: Any
) -> None:
    config = sync_config()
    hold_lock(config, f"{socket.gethostname()}:{dead_pid()}")
    summary = make_engine(config).run()
    assert summary.failed == 0
    with StateStore(load_settings(config).state_url, create=False) as store:
        assert store.lock_holder() is None


@pytest.mark.parametrize("owner", ["other-host:4242", f"{socket.gethostname()}:1"])
def test_a_live_or_remote_holder_keeps_the_lock(
    sandboxes: Any, sync_config: Any, make_engine: Any, owner: str
) -> None:
    config = sync_config()
    hold_lock(config, owner)
    with pytest.raises(LockHeld, match=owner):
        make_engine(config).run()
