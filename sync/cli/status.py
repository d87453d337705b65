"""The ``status`` command: last runs, retry queue, open conflicts, pending creates.

The shared contract of the state-store views is in :mod:`sync.cli.store_views`.
``--format openmetrics`` prints the store's metrics instead, in the OpenMetrics
text format (:func:`sync.metrics.render`; no store yet: an empty exposition),
for a monitoring system to scrape or a script to read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from sync.cli.app import ConfigOption, reported_errors, stdout
from sync.cli.store_views import (
    STATUS_COLUMNS,
    cell,
    document_pair_label,
    open_existing_store,
    print_document,
    status_json,
    status_rows,
    titled_table,
    value_cell,
    when,
)
from sync.metrics import render
from sync.output import print_csv, print_table, value_key
from sync.settings import DEFAULT_CONFIG


class StatusFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    OPENMETRICS = "openmetrics"


def status(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    output: Annotated[StatusFormat, typer.Option(
        "--format", "-f", case_sensitive=False,
        help="table for people; json or csv for scripts; openmetrics for monitoring.")
    ] = StatusFormat.TABLE,
) -> None:
    """Show the last runs, the retry queue (due, waiting, parked) and open conflicts.

    Exits 0 whenever the state store could be read: parked items are listed
    (state "parked" in JSON), not signalled through the exit status.
    """
    now = datetime.now(UTC)
    if output is StatusFormat.OPENMETRICS:
        with reported_errors():
            store = open_existing_store(config, output)
            try:
                text = render(store, now)
            finally:
                if store is not None:
                    store.close()
        stdout.out(text, highlight=False, end="")
        return
    with reported_errors():
        store = open_existing_store(config, output)
        if store is None:
            document: dict[str, Any] = {"store": None, "runs": [], "retry_queue": [],
                                        "conflicts": [], "pending_creates": [],
                                        "rules": {"last_run_firings": None}}
        else:
            try:
                document = status_json(store, now)
            finally:
                store.close()
    if output is StatusFormat.JSON:
        print_document(document)
    elif output is StatusFormat.CSV:
        print_csv(stdout, STATUS_COLUMNS, status_rows(document))
    elif store is not None:
        _print_status(document)


def _print_status(document: dict[str, Any]) -> None:
    stdout.print(f"state store: {document['store']}", markup=False)
    runs = document["runs"]
    if not runs:
        stdout.print("no runs yet", markup=False)
    else:
        table = titled_table("Last runs", ["Started", "Duration", "Command", "Outcome", "Counts",
                                     "Error"])
        for run in runs:
            seconds = run["duration_seconds"]
            counts = ", ".join(f"{k} {v}" for k, v in run["counts"].items() if v)
            table.add_row(
                cell(when(datetime.fromisoformat(run["started"]))),
                cell("unfinished" if seconds is None else f"{seconds:.1f} s"),
                cell(run["command"]), cell(run["outcome"]), cell(counts), cell(run["error"]),
            )
        print_table(stdout, table)

    queue = document["retry_queue"]
    if not queue:
        stdout.print("retry queue: empty", markup=False)
    else:
        tally = {state: sum(1 for i in queue if i["state"] == state)
                 for state in ("due", "waiting", "parked")}
        table = titled_table(
            f"Retry queue: {tally['due']} due, {tally['waiting']} waiting, "
            f"{tally['parked']} parked",
            ["State", "Side", "Record", "Attempts", "Next attempt", "Last error"],
        )
        for item in queue:
            record = item["record_id"]
            if item["display"] and item["display"] != record:
                record = f"{item['display']} ({record})"
            table.add_row(
                cell(item["state"]), cell(item["side"]), cell(record),
                cell(item["attempts"]),
                cell("-" if item["state"] == "parked"
                      else when(datetime.fromisoformat(item["next_attempt"]))),
                cell(item["last_error"]),
            )
        print_table(stdout, table)

    _print_conflicts(document["conflicts"])
    fired = document["rules"]["last_run_firings"]
    if fired is not None:
        stdout.print(f"rules: the last run fired {fired} time{'s' if fired != 1 else ''}",
                     markup=False)
    for intent in document["pending_creates"]:
        stdout.print(
            f"pending create: {intent['source_side']} {intent['source_id']} -> "
            f"{intent['target_side']} since "
            f"{when(datetime.fromisoformat(intent['created_at']))} "
            "(a run stopped mid-create; the next run adopts or redoes it)",
            markup=False,
        )


def _print_conflicts(conflicts: list[dict[str, Any]]) -> None:
    if not conflicts:
        stdout.print("open conflicts: none", markup=False)
        return
    table = titled_table(f"Open conflicts: {len(conflicts)}",
                   ["Id", "Link", "Field", "ServiceNow", "Jira", "Base", "State", "Since"])
    for conflict in conflicts:
        table.add_row(
            cell(conflict["id"]), cell(document_pair_label(conflict)), cell(conflict["field"]),
            *(value_cell(conflict[value_key(side)]) for side in ("servicenow", "jira")),
            value_cell(conflict["base"]), cell(conflict["state"]),
            cell(when(datetime.fromisoformat(conflict["at"]))),
        )
    print_table(stdout, table)
