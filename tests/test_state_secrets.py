"""Secrets never reach the state store, its files, or its error messages.

The store tests run on SQLite and PostgreSQL (``state_url``, see conftest).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from db_helpers import run_sql
from sqlalchemy import create_engine, inspect

from connectors.base import AuthError
from sync.errors import LockHeld, SyncError
from sync.settings import load_settings
from sync.state import LinkSide, StateStore

PASSWORD = "sn-Pa55w0rd-7f3e9c"
TOKEN = "ATATT3xFfGF0-jira-token-51d2"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

CONFIG = """\
[servicenow]
instance_url = "http://127.0.0.1:8001"
username = "integration.user"

[jira]
url = "http://127.0.0.1:8002"
email = "integration@example.com"
project = "OPS"

[sync]
state_url = "sqlite:///incident-sync.db"
"""


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_url: str) -> object:
    for name in list(os.environ):
        if name.upper().startswith("INCIDENT_SYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", PASSWORD)
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", TOKEN)
    monkeypatch.setenv("INCIDENT_SYNC_SYNC__STATE_URL", state_url)
    path = tmp_path / "incident-sync.toml"
    path.write_text(CONFIG, encoding="utf-8")
    loaded = load_settings(path)
    loaded.require_secrets()
    return loaded


def fake_run(store: StateStore, settings: object) -> None:
    """Everything a run writes, fed from objects that carry the secrets around."""
    owner = f"host:{os.getpid()}:{settings.servicenow.username}"  # type: ignore[attr-defined]
    store.acquire_lock(owner, ttl=60)
    run = store.start_run("run", T0)
    store.set_watermark("servicenow", T0)
    store.set_watermark("jira", T0)
    intent = store.record_intent("servicenow", "sn1", "jira")
    with store.pair() as tx:
        link = tx.save_link(
            {
                "servicenow": LinkSide(
                    id="sn1",
                    display="INC0010001",
                    snapshot={"title": "Mail down", "caller": "integration@example.com"},
                    version="2",
                ),
                "jira": LinkSide(
                    id="OPS-1",
                    display="OPS-1",
                    snapshot={"title": "Mail down"},
                    version="2026-03-01T09:00:00.000+0000",
                ),
            },
            hash="h",
        )
        tx.add_comment_link(
            link.id, {"servicenow": "j1", "jira": "10001"}, origin="servicenow", visibility="public"
        )
        tx.complete_intent(intent)
        tx.record_conflict(
            link.id,
            "title",
            base="a",
            values={"servicenow": "b", "jira": "c"},
            resolution="manual",
            policy="manual",
            at=T0,
        )
    refused = AuthError("401 from Jira: check the API token", side="jira", status=401,
                        advice="create a new token at id.atlassian.com")
    store.record_failure("jira", "OPS-2", str(refused), now=T0, base_seconds=60,
                         max_attempts=5)
    store.heartbeat(owner, ttl=60)
    store.finish_run(run, finished=T0 + timedelta(seconds=3), counts={"created": 1},
                     outcome="items failed", error=str(refused))


def test_no_secret_reaches_any_table_or_file_of_the_store(settings: object) -> None:
    url = settings.state_url  # type: ignore[attr-defined]
    with StateStore(url) as store:
        fake_run(store, settings)
        with StateStore(url) as other, pytest.raises(LockHeld) as held:
            other.acquire_lock("someone-else")
        assert PASSWORD not in str(held.value) and TOKEN not in str(held.value)

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
    finally:
        engine.dispose()
    assert len(tables) >= 9
    cells = 0
    for table in tables:
        for row in run_sql(url, f'select * from "{table}"'):
            for value in row:
                cells += 1
                assert PASSWORD not in str(value), table
                assert TOKEN not in str(value), table
    assert cells > 50  # the fake run really wrote something everywhere
    if not url.startswith("sqlite:///"):
        return  # a server's files are not ours to read
    db = Path(url.removeprefix("sqlite:///"))
    for file in db.parent.glob(db.name + "*"):  # the database, its WAL and shared memory
        content = file.read_bytes()
        assert PASSWORD.encode() not in content and TOKEN.encode() not in content


def test_a_password_in_a_database_url_is_masked_in_errors() -> None:
    url = f"postgresql+psycopg://sync:{PASSWORD}@127.0.0.1:9/incidents"
    with pytest.raises(SyncError) as caught:
        StateStore(url)
    message = str(caught.value)
    assert PASSWORD not in message
    assert "sync:***@127.0.0.1:9/incidents" in message
