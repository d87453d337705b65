"""The ``links`` and ``status`` commands: what the state store knows, for people and scripts.

Contract:
- Both commands read the store named by ``[sync] state_url``; they need no
  secrets and contact neither tool. They never create a store: when there is
  none yet they say so ("no state store at <path> yet") and exit 0.
- ``--format table`` (default) prints tables whose cells are never cut
  (:mod:`sync.output`); ``--format json`` prints one JSON document on stdout
  whose keys come in a fixed order, so scripts and diffs are stable;
  ``--format csv`` prints one row per item (``status``: one row per run, queued
  item, conflict and pending create, told apart by ``section``). Timestamps are
  ISO 8601 in UTC in json and csv.
- ``status`` also lists pending creates (intents a crashed run left behind).
- ``status`` exits 0 whenever the store could be read, parked items or not:
  the information is the output, and a monitoring script that wants to alert
  on parked items reads ``retry_queue[].state`` from the JSON. Errors reading
  the store use the usual one-line message and exit status.
- Values from the records (titles, error texts) are printed literally, never
  interpreted as console markup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from sync.cli import ConfigOption, app, reported_errors, settings_from, stderr, stdout
from sync.conflict_settle import conflict_state
from sync.output import TableFormat, TableFormatOption, print_csv, print_json, print_table
from sync.settings import DEFAULT_CONFIG
from sync.state import (
    ConflictRecord,
    Intent,
    Link,
    NoStateStore,
    RetryItem,
    RunRecord,
    StateStore,
)

RUNS_SHOWN = 10


OutputFormat = TableFormat
FormatOption = TableFormatOption


# --------------------------------------------------------------------------- data


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def _duration(run: RunRecord) -> float | None:
    if run.finished is None:
        return None
    return round((run.finished - run.started).total_seconds(), 3)


def retry_state(item: RetryItem, now: datetime) -> str:
    """parked (waits for a person), due (retried on the next run) or waiting."""
    if item.parked:
        return "parked"
    return "due" if item.next_attempt <= now else "waiting"


def link_json(link: Link) -> dict[str, Any]:
    return {
        "id": link.id,
        "servicenow_id": link.servicenow_id,
        "servicenow_display": link.servicenow_display,
        "jira_key": link.jira_key,
        "jira_display": link.jira_display,
        "version_servicenow": link.version_servicenow,
        "version_jira": link.version_jira,
        "created_at": _iso(link.created_at),
        "last_synced": _iso(link.updated_at),
    }


def run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "command": run.command,
        "started": _iso(run.started),
        "finished": _iso(run.finished),
        "duration_seconds": _duration(run),
        "outcome": run.outcome,
        "counts": dict(sorted(run.counts.items())),
        "error": run.error,
    }


def retry_json(item: RetryItem, display: str, now: datetime) -> dict[str, Any]:
    return {
        "side": item.side,
        "record_id": item.record_id,
        "display": display,
        "state": retry_state(item, now),
        "attempts": item.attempts,
        "next_attempt": _iso(item.next_attempt),
        "last_error": item.last_error,
    }


def conflict_json(conflict: ConflictRecord, link: Link | None) -> dict[str, Any]:
    return {
        "id": conflict.id,
        "link_id": conflict.link_id,
        "servicenow_id": link.servicenow_id if link else None,
        "servicenow_display": link.servicenow_display if link else None,
        "jira_key": link.jira_key if link else None,
        "field": conflict.field,
        "servicenow_value": conflict.servicenow_value,
        "jira_value": conflict.jira_value,
        "base": conflict.base,
        "resolution": conflict.resolution,
        "policy": conflict.policy,
        "state": conflict_state(conflict),
        "at": _iso(conflict.at),
    }


def intent_json(intent: Intent) -> dict[str, Any]:
    return {
        "id": intent.id,
        "source_side": intent.source_side,
        "source_id": intent.source_id,
        "target_side": intent.target_side,
        "created_at": _iso(intent.created_at),
    }


def status_json(store: StateStore, now: datetime) -> dict[str, Any]:
    """Everything ``status`` shows, as one JSON-ready document."""
    items = store.retry_items()
    displays = _record_displays(store, items)
    conflicts = store.open_conflicts()
    links = {c.link_id: store.link_by_id(c.link_id) for c in conflicts}
    return {
        "store": store.url,
        "runs": [run_json(run) for run in store.runs(RUNS_SHOWN)],
        "retry_queue": [
            retry_json(item, displays.get((item.side, item.record_id), ""), now)
            for item in items
        ],
        "conflicts": [conflict_json(c, links[c.link_id]) for c in conflicts],
        # Creates a crashed run left unconfirmed; the next run adopts or redoes them.
        "pending_creates": [intent_json(i) for i in store.pending_intents()],
    }


def _record_displays(store: StateStore, items: Iterable[RetryItem]) -> dict[tuple[str, str], str]:
    """Human names (INC number, issue key) for queued records that are linked."""
    wanted: dict[str, set[str]] = {}
    for item in items:
        wanted.setdefault(item.side, set()).add(item.record_id)
    displays: dict[tuple[str, str], str] = {}
    for side, ids in wanted.items():
        for record_id, link in store.links_by(side, ids).items():
            displays[(side, record_id)] = link.display_on(side)
    return displays


# --------------------------------------------------------------------------- output


def _print_json(document: Any) -> None:
    print_json(stdout, document)


LINK_COLUMNS = ["id", "servicenow_id", "servicenow_display", "jira_key", "jira_display",
                "version_servicenow", "version_jira", "created_at", "last_synced"]
STATUS_COLUMNS = ["section", "when", "subject", "side", "state", "field", "servicenow_value",
                  "jira_value", "detail"]


def status_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``status`` document flattened to one CSV row per run, item, conflict, create."""
    rows: list[dict[str, Any]] = []
    for run in document["runs"]:
        counts = ", ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
        seconds = run["duration_seconds"]
        detail = "; ".join(part for part in (
            "unfinished" if seconds is None else f"{seconds} s", counts, run["error"] or ""
        ) if part)
        rows.append({"section": "run", "when": run["started"], "subject": run["command"],
                     "state": run["outcome"], "detail": detail})
    for item in document["retry_queue"]:
        record = item["record_id"]
        if item["display"] and item["display"] != record:
            record = f"{item['display']} ({record})"
        rows.append({"section": "retry", "when": item["next_attempt"], "subject": record,
                     "side": item["side"], "state": item["state"],
                     "detail": "; ".join(part for part in (
                         f"attempts {item['attempts']}", item["last_error"] or "") if part)})
    for conflict in document["conflicts"]:
        pair = f"{conflict['servicenow_display'] or conflict['servicenow_id']} <-> " \
               f"{conflict['jira_key']}"
        rows.append({"section": "conflict", "when": conflict["at"], "subject": pair,
                     "state": conflict["state"], "field": conflict["field"],
                     "servicenow_value": conflict["servicenow_value"],
                     "jira_value": conflict["jira_value"],
                     "detail": f"conflict {conflict['id']}; base "
                               f"{json.dumps(conflict['base'], ensure_ascii=False)}"})
    for intent in document["pending_creates"]:
        rows.append({"section": "pending_create", "when": intent["created_at"],
                     "subject": intent["source_id"], "side": intent["source_side"],
                     "state": "pending", "detail": f"create on {intent['target_side']}"})
    return rows


def _cell(value: Any) -> Text:
    return Text("-" if value is None or value == "" else str(value))


def _value(value: Any) -> Text:
    if value is None or value == "" or value == []:
        return Text("(empty)")
    if isinstance(value, str):
        return _cell(value)
    return _cell(json.dumps(value, ensure_ascii=False))


def _table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


def _open(config: Path, output: OutputFormat) -> StateStore | None:
    """The configured store, or None after saying there is none yet."""
    settings = settings_from(config, need_secrets=False)
    try:
        return StateStore(settings.state_url, connection=settings.sync.connection,
                          create=False)
    except NoStateStore as missing:
        if output is not OutputFormat.TABLE:
            # stdout carries only the (empty) document, for scripts.
            stderr.print(f"incident-sync: {missing}", markup=False)
        else:
            stdout.print(f"{missing}: the first `incident-sync run` creates it", markup=False)
        return None


@app.command()
def links(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List linked pairs: ServiceNow number and sys_id, Jira key, last sync, seen versions."""
    with reported_errors():
        store = _open(config, output)
        rows = [] if store is None else store.all_links()
        if store is not None:
            store.close()
    if output is OutputFormat.JSON:
        _print_json([link_json(link) for link in rows])
        return
    if output is OutputFormat.CSV:
        print_csv(stdout, LINK_COLUMNS, (link_json(link) for link in rows))
        return
    if store is None:
        return
    if not rows:
        stdout.print("no links yet: the first `incident-sync run` creates them", markup=False)
        return
    table = _table("Links", ["ServiceNow", "sys_id", "Jira", "Last synced",
                             "Seen version ServiceNow", "Seen version Jira"])
    for link in rows:
        table.add_row(
            _cell(link.servicenow_display), _cell(link.servicenow_id), _cell(link.jira_key),
            _cell(_when(link.updated_at)), _cell(link.version_servicenow),
            _cell(link.version_jira),
        )
    print_table(stdout, table)
    stdout.print(f"{len(rows)} link{'s' if len(rows) != 1 else ''}", markup=False)


@app.command()
def status(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show the last runs, the retry queue (due, waiting, parked) and open conflicts.

    Exits 0 whenever the state store could be read: parked items are listed
    (state "parked" in JSON), not signalled through the exit status.
    """
    now = datetime.now(UTC)
    with reported_errors():
        store = _open(config, output)
        if store is None:
            document: dict[str, Any] = {"store": None, "runs": [], "retry_queue": [],
                                        "conflicts": [], "pending_creates": []}
        else:
            try:
                document = status_json(store, now)
            finally:
                store.close()
    if output is OutputFormat.JSON:
        _print_json(document)
    elif output is OutputFormat.CSV:
        print_csv(stdout, STATUS_COLUMNS, status_rows(document))
    elif store is not None:
        _print_status(document)


def _print_status(document: dict[str, Any]) -> None:
    stdout.print(f"state store: {document['store']}", markup=False)
    runs = document["runs"]
    if not runs:
        stdout.print("no runs yet", markup=False)
    else:
        table = _table("Last runs", ["Started", "Duration", "Command", "Outcome", "Counts",
                                     "Error"])
        for run in runs:
            seconds = run["duration_seconds"]
            counts = ", ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
            table.add_row(
                _cell(_when(datetime.fromisoformat(run["started"]))),
                _cell("unfinished" if seconds is None else f"{seconds:.1f} s"),
                _cell(run["command"]), _cell(run["outcome"]), _cell(counts), _cell(run["error"]),
            )
        print_table(stdout, table)

    queue = document["retry_queue"]
    if not queue:
        stdout.print("retry queue: empty", markup=False)
    else:
        tally = {state: sum(1 for i in queue if i["state"] == state)
                 for state in ("due", "waiting", "parked")}
        table = _table(
            f"Retry queue: {tally['due']} due, {tally['waiting']} waiting, "
            f"{tally['parked']} parked",
            ["State", "Side", "Record", "Attempts", "Next attempt", "Last error"],
        )
        for item in queue:
            record = item["record_id"]
            if item["display"] and item["display"] != record:
                record = f"{item['display']} ({record})"
            table.add_row(
                _cell(item["state"]), _cell(item["side"]), _cell(record),
                _cell(item["attempts"]),
                _cell("-" if item["state"] == "parked"
                      else _when(datetime.fromisoformat(item["next_attempt"]))),
                _cell(item["last_error"]),
            )
        print_table(stdout, table)

    _print_conflicts(document["conflicts"])
    for intent in document["pending_creates"]:
        stdout.print(
            f"pending create: {intent['source_side']} {intent['source_id']} -> "
            f"{intent['target_side']} since "
            f"{_when(datetime.fromisoformat(intent['created_at']))} "
            "(a run stopped mid-create; the next run adopts or redoes it)",
            markup=False,
        )


def _print_conflicts(conflicts: list[dict[str, Any]]) -> None:
    if not conflicts:
        stdout.print("open conflicts: none", markup=False)
        return
    table = _table(f"Open conflicts: {len(conflicts)}",
                   ["Id", "Link", "Field", "ServiceNow", "Jira", "Base", "State", "Since"])
    for conflict in conflicts:
        pair = f"{conflict['servicenow_display'] or conflict['servicenow_id']} <-> " \
               f"{conflict['jira_key']}"
        table.add_row(
            _cell(conflict["id"]), _cell(pair), _cell(conflict["field"]),
            _value(conflict["servicenow_value"]), _value(conflict["jira_value"]),
            _value(conflict["base"]), _cell(conflict["state"]),
            _cell(_when(datetime.fromisoformat(conflict["at"]))),
        )
    print_table(stdout, table)
