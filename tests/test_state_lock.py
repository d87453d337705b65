"""The run lock across processes: exclusion, waiting, LockHeld, takeover of a crashed holder.

Every test runs on SQLite and PostgreSQL (``state_url``, see conftest).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sync.errors import LockHeld
from sync.state import LOCK_POLL_SECONDS, StateStore

# A run in another process: claims the lock, says what happened, then holds it
# until told "release" or until it is killed (a crash).
HOLDER = textwrap.dedent(
    """
    import sys
    from sync.errors import LockHeld
    from sync.state import StateStore
    url, owner, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = StateStore(url)
    try:
        store.acquire_lock(owner, timeout=0, ttl=ttl)
    except LockHeld:
        print("held", flush=True)
        sys.exit(0)
    print("locked", flush=True)
    if sys.stdin.readline().strip() == "release":
        store.release_lock(owner)
        print("released", flush=True)
    """
)


class Holder:
    def __init__(self, url: str, owner: str, ttl: float = 900.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url, owner, str(ttl)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def said(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("release\n")
        self.process.stdin.flush()
        assert self.said() == "released"
        self.process.wait(timeout=30)

    def crash(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def url(state_url: str) -> str:
    address = state_url
    StateStore(address).close()  # schema exists before processes race for the lock
    return address


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.stop()


class FakeTime:
    """A clock and a sleep that moves it, so waiting is counted, not timed."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.on_sleep: list[object] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)
        if self.on_sleep:
            action = self.on_sleep.pop(0)
            if callable(action):
                action()


def test_live_lock_in_another_process_raises_lock_held_naming_the_holder(
    url: str, holders: list[Holder]
) -> None:
    holder = Holder(url, "host-a:4242")
    holders.append(holder)
    assert holder.said() == "locked"
    with StateStore(url) as store, pytest.raises(LockHeld) as caught:
        store.acquire_lock("host-b:1", timeout=0)
    message = str(caught.value)
    assert re.fullmatch(
        r"another run \(owner host-a:4242, since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\) holds "
        r"the lock of connection 'default' on (sqlite|postgresql\+psycopg)://\S+; try again "
        r"later",
        message,
    ), message


def test_waiting_caller_polls_until_timeout_then_gives_up(
    url: str, holders: list[Holder]
) -> None:
    holder = Holder(url, "host-a:1")
    holders.append(holder)
    assert holder.said() == "locked"
    fake = FakeTime(datetime.now(UTC))
    with StateStore(url, clock=fake.clock, sleep=fake.sleep) as store:
        with pytest.raises(LockHeld, match="owner host-a:1"):
            store.acquire_lock("host-b:2", timeout=1.0)
    assert len(fake.sleeps) == round(1.0 / LOCK_POLL_SECONDS)
    assert sum(fake.sleeps) == pytest.approx(1.0)


def test_waiting_caller_gets_the_lock_when_the_holder_releases_it(
    url: str, holders: list[Holder]
) -> None:
    holder = Holder(url, "host-a:1")
    holders.append(holder)
    assert holder.said() == "locked"
    fake = FakeTime(datetime.now(UTC))
    fake.on_sleep = [None, holder.release]
    with StateStore(url, clock=fake.clock, sleep=fake.sleep) as store:
        store.acquire_lock("host-b:2", timeout=60.0)
        assert store.lock_holder() is not None
        assert store.lock_holder()[0] == "host-b:2"  # type: ignore[index]
    assert len(fake.sleeps) == 2


def test_expired_lock_of_a_crashed_process_is_taken_over(
    url: str, holders: list[Holder]
) -> None:
    holder = Holder(url, "host-a:crashed", ttl=60)
    holders.append(holder)
    assert holder.said() == "locked"
    holder.crash()
    with StateStore(url) as store, pytest.raises(LockHeld):
        store.acquire_lock("host-b:1", timeout=0)  # still within its ttl
    later = datetime.now(UTC) + timedelta(minutes=2)
    with StateStore(url, clock=lambda: later) as store:
        store.acquire_lock("host-b:1", timeout=0)
        assert store.lock_holder() == ("host-b:1", later)


def test_only_one_of_several_racing_processes_gets_the_lock(
    url: str, holders: list[Holder]
) -> None:
    holders.extend(Holder(url, f"racer-{n}") for n in range(4))
    answers = sorted(holder.said() for holder in holders)
    assert answers == ["held", "held", "held", "locked"]


def test_heartbeat_keeps_the_lock_and_detects_a_takeover(url: str) -> None:
    address = url
    start = datetime.now(UTC)
    time_a, time_b = FakeTime(start), FakeTime(start + timedelta(seconds=90))
    with StateStore(address, clock=time_a.clock) as a, StateStore(
        address, clock=time_b.clock
    ) as b:
        a.acquire_lock("a", ttl=60)
        time_a.now += timedelta(seconds=50)
        a.heartbeat("a", ttl=60)  # now expires at start + 110 s
        with pytest.raises(LockHeld):
            b.acquire_lock("b", timeout=0)

        time_b.now = start + timedelta(seconds=111)  # a missed its next heartbeat
        b.acquire_lock("b", timeout=0)
        with pytest.raises(LockHeld, match="no longer held by a"):
            a.heartbeat("a")


def test_release_lets_the_next_run_in_and_ignores_strangers(url: str) -> None:
    address = url
    with StateStore(address) as a, StateStore(address) as b:
        a.acquire_lock("a")
        b.release_lock("b")  # not the holder: nothing happens
        with pytest.raises(LockHeld):
            b.acquire_lock("b")
        a.release_lock("a")
        assert a.lock_holder() is None
        b.acquire_lock("b")
        a.acquire_lock("b")  # the same owner may claim again (refresh)


def test_non_positive_ttl_is_refused(url: str) -> None:
    with StateStore(url) as store:
        with pytest.raises(ValueError, match="lock ttl must be positive"):
            store.acquire_lock("a", ttl=0)
        assert store.lock_holder() is None
