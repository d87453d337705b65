"""The ``conflicts list`` and ``conflicts resolve`` commands: conflicts people settle.

Contract:
- Both commands read (``resolve`` also writes) the state store named by
  ``[sync] state_url``; they need no secrets and contact neither tool.
- ``conflicts list [--all] [--format table|json|csv]`` shows the open conflicts
  (with ``--all`` the settled ones too, i.e. every link's conflict history):
  id, pair, field, both values, the base, the state and when. The state is
  ``open`` (waiting for a person), ``chosen: take <side>`` (a person chose;
  the next run writes it) or, for settled rows, how they were settled. JSON
  and CSV have fixed keys and columns, for scripts.
- ``conflicts resolve ID --take servicenow|jira`` records a person's choice on
  an open conflict. The next run writes the chosen side's current value to the
  other side and records the settlement in the link's history (policy
  ``person``); until then ``status``, ``audit`` and ``list`` show the choice.
  An unknown or already settled id is a one-line error, exit 2.
- Values from the records are printed literally, never as console markup.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from sync.actions import side_title
from sync.cli.app import ConfigOption, fail, reported_errors, settings_from, stdout
from sync.cli.store_views import pair_label
from sync.conflict_settle import conflict_state
from sync.errors import EXIT_CONFIG
from sync.output import RECORD_ID_KEYS, value_key
from sync.settings import DEFAULT_CONFIG
from sync.state import SIDES, ConflictRecord, Link, NoStateStore, StateStore

VALUE_KEYS = tuple(value_key(side) for side in SIDES)
CSV_COLUMNS = ("id", "link_id", "servicenow", "jira", "field", *VALUE_KEYS,
               "base", "state", "resolution", "policy", "at")


class ListFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class SideChoice(StrEnum):
    servicenow = "servicenow"
    jira = "jira"


def conflict_row(conflict: ConflictRecord, link: Link | None) -> dict[str, Any]:
    """One conflict as a JSON-ready dict with a fixed key order."""
    return {
        "id": conflict.id,
        "link_id": conflict.link_id,
        "servicenow": link.display_on("servicenow") or link.id_on("servicenow") if link
        else None,
        RECORD_ID_KEYS["servicenow"]: link.id_on("servicenow") if link else None,
        "jira": link.id_on("jira") if link else None,
        "field": conflict.field,
        **{value_key(side): conflict.value_on(side) for side in SIDES},
        "base": conflict.base,
        "state": conflict_state(conflict),
        "resolution": conflict.resolution,
        "policy": conflict.policy,
        "at": conflict.at.astimezone(UTC).isoformat(),
    }


def _open_store(config: Path, *, quiet: bool) -> StateStore | None:
    settings = settings_from(config, need_secrets=False)
    try:
        return StateStore(settings.state_url, create=False)
    except NoStateStore as missing:
        if not quiet:
            stdout.print(f"{missing}: the first `incident-sync run` creates it", markup=False)
        return None


def _rows(store: StateStore, *, history: bool) -> list[dict[str, Any]]:
    conflicts = store.conflicts() if history else store.open_conflicts()
    links = {link_id: store.link_by_id(link_id) for link_id in {c.link_id for c in conflicts}}
    return [conflict_row(c, links[c.link_id]) for c in conflicts]


def _plain(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "(empty)"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([
            _plain(row[name]) if name in (*VALUE_KEYS, "base")
            else ("" if row[name] is None else row[name]) for name in CSV_COLUMNS])
    return buffer.getvalue()


def list_conflicts(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    output: Annotated[
        ListFormat, typer.Option("--format", "-f", help="table, json or csv.",
                                 case_sensitive=False)
    ] = ListFormat.TABLE,
    history: Annotated[
        bool, typer.Option("--all", help="Settled conflicts too (every link's history).")
    ] = False,
) -> None:
    """List open conflicts (with --all, settled ones too): values, base, state."""
    with reported_errors():
        store = _open_store(config, quiet=output is not ListFormat.TABLE)
        rows: list[dict[str, Any]] = []
        if store is not None:
            try:
                rows = _rows(store, history=history)
            finally:
                store.close()
    if output is ListFormat.JSON:
        stdout.out(json.dumps(rows, indent=2, ensure_ascii=False), highlight=False)
        return
    if output is ListFormat.CSV:
        stdout.out(_csv(rows), highlight=False, end="")
        return
    if store is None:
        return
    if not rows:
        stdout.print("no open conflicts" if not history else "no conflicts recorded",
                     markup=False)
        return
    table = Table(title=f"{'Conflicts' if history else 'Open conflicts'}: {len(rows)}",
                  title_justify="left")
    for name in ("Id", "Link", "Field", "ServiceNow", "Jira", "Base", "State", "Since"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(
            Text(str(row["id"])), Text(f"{row['servicenow']} <-> {row['jira']}"),
            Text(row["field"]), *(Text(_plain(row[key])) for key in VALUE_KEYS),
            Text(_plain(row["base"])), Text(row["state"]),
            Text(datetime.fromisoformat(row["at"]).strftime("%Y-%m-%d %H:%M:%S UTC")),
        )
    stdout.print(table)
    if any(row["state"] == "open" for row in rows):
        stdout.print("settle one with: incident-sync conflicts resolve ID --take "
                     "servicenow|jira", markup=False)


def resolve(
    conflict_id: Annotated[int, typer.Argument(metavar="ID", help="The conflict's id "
                                               "(see `conflicts list`).")],
    take: Annotated[
        SideChoice, typer.Option("--take", help="The side whose value wins: servicenow or "
                                 "jira.", case_sensitive=False)
    ],
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Settle an open conflict: the next run writes the chosen side's value to the other."""
    with reported_errors():
        store = _open_store(config, quiet=True)
        if store is None:
            settings = settings_from(config, need_secrets=False)
            fail(f"no conflict {conflict_id}: there is no state store at "
                 f"{settings.state_url} yet", EXIT_CONFIG)
        try:
            try:
                chosen = store.choose_conflict_side(conflict_id, take.value,
                                                    at=datetime.now(UTC))
            except LookupError as error:
                fail(f"conflicts resolve {conflict_id}: {error}; `incident-sync conflicts "
                     "list` shows the open ones", EXIT_CONFIG)
            link = store.link_by_id(chosen.link_id)
        finally:
            store.close()
    pair = pair_label(link) if link is not None else f"link {chosen.link_id}"
    winner = side_title(take.value)
    loser = side_title("jira" if take.value == "servicenow" else "servicenow")
    stdout.print(f"conflict {chosen.id} on {chosen.field} ({pair}): {winner}'s value goes to "
                 f"{loser} on the next run", markup=False)
