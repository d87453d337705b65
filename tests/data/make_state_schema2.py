"""Regenerate tests/data/state-schema2.sqlite: a state store written by incident-sync at schema 2.

Usage (from a checkout of the commit that last wrote schema 2, 33c7977, with its
package installed; the state API it calls changed with schema 3):

    python tests/data/make_state_schema2.py tests/data/state-schema2.sqlite

It drives the store only through that version's public API (no raw SQL), so
the file is exactly what a user's store looked like, and fills every table:
two connections sharing one ServiceNow record, links with and without
snapshots and versions, unicode displays, comment pairs from both sides,
open, settled and person-chosen conflicts, intents, retry items (one parked),
watermarks, runs and a held lock. tests/test_state_schema3.py migrates a copy
and checks every row.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sync.state import StateStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """One second later on every read, so every stamp is distinct and reproducible."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def link(store: StateStore, **values: Any) -> Any:
    with store.pair() as tx:
        return tx.save_link(**values)


def main(path: Path) -> None:
    if path.exists():
        path.unlink()
    clock = Clock()
    url = f"sqlite:///{path}"
    with StateStore(url, clock=clock) as ops, \
            StateStore(url, connection="hr", clock=clock) as hr:
        first = link(
            ops, servicenow_id="9d385017c611228701d22104cc95c371", jira_key="OPS-1",
            servicenow_display="INC0010001", jira_display="OPS-1 Ümlaut «printer» down",
            snapshot_servicenow={"title": "Printer down", "urgency": 2,
                                 "labels": ["floor-3", "hw"], "assignee": None},
            snapshot_jira={"title": "Printer down", "urgency": 2, "labels": ["floor-3", "hw"],
                           "assignee": None},
            version_servicenow="2026-03-01 09:00:00", version_jira="2026-03-01T09:00:00.000+0000",
            hash="a" * 64,
        )
        # A pair committed without snapshots or versions (the columns allow NULL).
        second = link(
            ops, servicenow_id="46d44a4fa9fe198101d8bfaaf1c5d1d1", jira_key="OPS-2",
            servicenow_display="", jira_display="", snapshot_servicenow=None,
            snapshot_jira=None, version_servicenow=None, version_jira=None, hash=None,
            at=T0 + timedelta(minutes=5),
        )
        # The same ServiceNow record linked by a second configuration.
        shared = link(
            hr, servicenow_id="9d385017c611228701d22104cc95c371", jira_key="HR-7",
            servicenow_display="INC0010001", jira_display="HR-7",
            snapshot_servicenow={"title": "Printer down"}, snapshot_jira={"title": "Printer"},
            version_servicenow="3", version_jira="4", hash="b" * 64,
        )
        with ops.pair() as tx:
            tx.add_comment_link(first.id, "c1a2b3", "10001", origin="servicenow",
                                visibility="public")
            tx.add_comment_link(first.id, "c4d5e6", "10002", origin="jira",
                                visibility="internal")
            tx.add_comment_link(second.id, "c7f8a9", "10003", origin="servicenow",
                                visibility="internal")
        with hr.pair() as tx:
            tx.add_comment_link(shared.id, "c1a2b3", "20001", origin="servicenow",
                                visibility="public")
        with ops.pair() as tx:
            tx.record_conflict(first.id, "urgency", base=2, servicenow_value=1, jira_value=3,
                               resolution="manual", policy="manual", at=clock())
            tx.record_conflict(second.id, "labels", base=["a"], servicenow_value=["a", "b"],
                               jira_value=None, resolution="servicenow",
                               policy="servicenow_wins", at=clock())
            tx.record_conflict(second.id, "title", base="x", servicenow_value="ü",
                               jira_value={"text": "y"}, resolution="manual", policy="manual",
                               at=clock())
        with hr.pair() as tx:
            tx.record_conflict(shared.id, "priority", base="P3", servicenow_value="P1",
                               jira_value="P2", resolution="manual", policy="manual", at=clock())
        [hr_open] = hr.open_conflicts()
        hr.choose_conflict_side(hr_open.id, "jira", at=clock())

        ops.record_intent("servicenow", "e5b0c7f1a9d34cf1b2a3c4d5e6f7a8b9", "jira")
        done = ops.record_intent("jira", "OPS-9", "servicenow")
        with ops.pair() as tx:
            tx.complete_intent(done)
        hr.record_intent("jira", "HR-8", "servicenow")
        ops.record_failure("jira", "OPS-3", "503 Service Unavailable", now=clock(),
                           base_seconds=60, max_attempts=5)
        for _ in range(3):
            hr.record_failure("servicenow", "0a1b2c", "403 Forbidden", now=clock(),
                              base_seconds=60, max_attempts=3)
        ops.set_watermark("servicenow", T0 + timedelta(hours=1))
        ops.set_watermark("jira", T0 + timedelta(hours=2))
        hr.set_watermark("jira", T0 + timedelta(hours=3))
        run = ops.start_run("run", clock())
        ops.finish_run(run, finished=clock(), counts={"created": 2, "updated": 1},
                       outcome="ok")
        hr.start_run("reconcile", clock())  # never finished: a crashed run
        ops.acquire_lock("ops-host:4242", ttl=3600)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
