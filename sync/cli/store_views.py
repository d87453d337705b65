"""What the state store knows, shaped for people and scripts: shared by ``links`` and ``status``.

Contract (of both commands, :mod:`sync.cli.links` and :mod:`sync.cli.status`):
- Both commands read the store named by ``[sync] state_url``; they need no
  secrets and contact neither tool. They never create a store: when there is
  none yet they say so ("no state store at <path> yet") and exit 0.
- ``--format table`` (default) prints tables whose cells are never cut
  (:mod:`sync.output`); ``--format json`` prints one JSON document on stdout
  whose keys come in a fixed order, so scripts and diffs are stable;
  ``--format csv`` prints one row per item (``status``: one row per run, queued
  item, conflict and pending create, told apart by ``section``). Timestamps are
  ISO 8601 in UTC in json and csv.
- ``status`` also lists pending creates (intents a crashed run left behind)
  and the rule firings of the last finished run (``rules.last_run_firings``).
- ``links RECORD`` shows one link (RECORD: a ServiceNow number or sys_id, or a
  Jira key): its ids and versions, when its rules are next due by time alone,
  and its history of rule firings (rule, field, old -> new, when), oldest first.
- ``status`` exits 0 whenever the store could be read, parked items or not:
  the information is the output, and a monitoring script that wants to alert
  on parked items reads ``retry_queue[].state`` from the JSON. Errors reading
  the store use the usual one-line message and exit status.
- Values from the records (titles, error texts) are printed literally, never
  interpreted as console markup.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from sync.cli.app import say, settings_from, stdout
from sync.conflict_settle import conflict_state
from sync.metrics import item_counts
from sync.output import (
    RECORD_ID_KEYS,
    TableFormat,
    TableFormatOption,
    display_key,
    print_json,
    value_key,
    version_key,
)
from sync.state import (
    SIDES,
    ConflictRecord,
    FiringRecord,
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


def when(value: datetime | None) -> str:
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


def pair_label(link: Link) -> str:
    """``INC0010001 <-> OPS-1``: the pair as people name it (a ServiceNow record by its
    number when known, a Jira issue by its key)."""
    return f"{link.display_on(SIDES[0]) or link.id_on(SIDES[0])} <-> {link.id_on(SIDES[1])}"


def document_pair_label(document: Mapping[str, Any]) -> str:
    """:func:`pair_label` of a conflict document (``conflict_json``)."""
    first, second = SIDES
    return (f"{document[display_key(first)] or document[RECORD_ID_KEYS[first]]} <-> "
            f"{document[RECORD_ID_KEYS[second]]}")


def link_json(link: Link) -> dict[str, Any]:
    document: dict[str, Any] = {"id": link.id}
    for side in SIDES:
        document[RECORD_ID_KEYS[side]] = link.id_on(side)
        document[display_key(side)] = link.display_on(side)
    for side in SIDES:
        document[version_key(side)] = link.version_on(side)
    document["created_at"] = _iso(link.created_at)
    document["last_synced"] = _iso(link.updated_at)
    return document


def run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "command": run.command,
        "started": _iso(run.started),
        "finished": _iso(run.finished),
        "duration_seconds": _duration(run),
        "outcome": run.outcome,
        # The run's monitoring figures (requests, unsynced times) are for
        # ``status --format openmetrics``; people read the item counts.
        "counts": dict(sorted(item_counts(run.counts).items())),
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
    first, second = SIDES
    document: dict[str, Any] = {
        "id": conflict.id,
        "link_id": conflict.link_id,
        RECORD_ID_KEYS[first]: link.id_on(first) if link else None,
        display_key(first): link.display_on(first) if link else None,
        RECORD_ID_KEYS[second]: link.id_on(second) if link else None,
        "field": conflict.field,
    }
    for side in SIDES:
        document[value_key(side)] = conflict.value_on(side)
    document.update({
        "base": conflict.base,
        "resolution": conflict.resolution,
        "policy": conflict.policy,
        "state": conflict_state(conflict),
        "at": _iso(conflict.at),
    })
    return document


def intent_json(intent: Intent) -> dict[str, Any]:
    return {
        "id": intent.id,
        "source_side": intent.source_side,
        "source_id": intent.source_id,
        "target_side": intent.target_side,
        "created_at": _iso(intent.created_at),
    }


def firing_json(firing: FiringRecord) -> dict[str, Any]:
    return {"rule": firing.rule, "field": firing.field, "old": firing.old, "new": firing.new,
            "note_id": firing.note_id, "at": _iso(firing.at)}


def link_detail_json(store: StateStore, link: Link) -> dict[str, Any]:
    """One link with its rules' next due time and its history of rule firings."""
    return {**link_json(link), "rules_due_at": _iso(store.rules_due_at(link.id)),
            "rule_firings": [firing_json(f) for f in store.rule_firings([link.id]).get(
                link.id, [])]}


def find_link(store: StateStore, record: str) -> Link | None:
    """The link of ``record``: a Jira key, a ServiceNow sys_id or number (its display)."""
    for side in SIDES:
        found = store.link_by(side, record)
        if found is not None:
            return found
    wanted = record.strip().casefold()
    for link in store.all_links():
        if any(wanted == link.display_on(side).casefold() for side in SIDES):
            return link
    return None


def status_json(store: StateStore, now: datetime) -> dict[str, Any]:
    """Everything ``status`` shows, as one JSON-ready document."""
    items = store.retry_items()
    displays = _record_displays(store, items)
    conflicts = store.open_conflicts()
    links = {c.link_id: store.link_by_id(c.link_id) for c in conflicts}
    runs = store.runs(RUNS_SHOWN)
    finished = next((run for run in runs if run.finished is not None), None)
    return {
        "store": store.url,
        "runs": [run_json(run) for run in runs],
        "retry_queue": [
            retry_json(item, displays.get((item.side, item.record_id), ""), now)
            for item in items
        ],
        "conflicts": [conflict_json(c, links[c.link_id]) for c in conflicts],
        # Creates a crashed run left unconfirmed; the next run adopts or redoes them.
        "pending_creates": [intent_json(i) for i in store.pending_intents()],
        # What the rules changed in the last finished run (None: no run finished yet).
        "rules": {"last_run_firings": None if finished is None
                  else finished.counts.get("rule_firings", 0)},
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


def print_document(document: Any) -> None:
    print_json(stdout, document)


LINK_COLUMNS = ["id", *(key for side in SIDES for key in (RECORD_ID_KEYS[side],
                                                          display_key(side))),
                *(version_key(side) for side in SIDES), "created_at", "last_synced"]
STATUS_COLUMNS = ["section", "when", "subject", "side", "state", "field",
                  *(value_key(side) for side in SIDES), "detail"]


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
        rows.append({"section": "conflict", "when": conflict["at"],
                     "subject": document_pair_label(conflict),
                     "state": conflict["state"], "field": conflict["field"],
                     **{value_key(side): conflict[value_key(side)] for side in SIDES},
                     "detail": f"conflict {conflict['id']}; base "
                               f"{json.dumps(conflict['base'], ensure_ascii=False)}"})
    for intent in document["pending_creates"]:
        rows.append({"section": "pending_create", "when": intent["created_at"],
                     "subject": intent["source_id"], "side": intent["source_side"],
                     "state": "pending", "detail": f"create on {intent['target_side']}"})
    return rows


def cell(value: Any) -> Text:
    return Text("-" if value is None or value == "" else str(value))


def value_cell(value: Any) -> Text:
    if value is None or value == "" or value == []:
        return Text("(empty)")
    if isinstance(value, str):
        return cell(value)
    return cell(json.dumps(value, ensure_ascii=False))


def titled_table(title: str, columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


def open_existing_store(config: Path, output: str) -> StateStore | None:
    """The configured store, or None after saying there is none yet."""
    settings = settings_from(config, need_secrets=False)
    try:
        return StateStore(settings.state_url, connection=settings.sync.connection,
                          create=False)
    except NoStateStore as missing:
        if output != OutputFormat.TABLE:
            # stdout carries only the (empty) document, for scripts.
            say(str(missing), level=logging.WARNING)
        else:
            stdout.print(f"{missing}: the first `incident-sync run` creates it", markup=False)
        return None
