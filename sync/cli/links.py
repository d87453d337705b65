"""The ``links`` command: the link table of the state store.

The shared contract of the state-store views is in :mod:`sync.cli.store_views`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sync.cli.app import ConfigOption, reported_errors, stderr, stdout
from sync.cli.store_views import (
    LINK_COLUMNS,
    FormatOption,
    OutputFormat,
    cell,
    find_link,
    link_detail_json,
    link_json,
    open_existing_store,
    print_document,
    titled_table,
    value_cell,
    when,
)
from sync.output import RECORD_ID_KEYS, display_key, print_csv, print_table
from sync.settings import DEFAULT_CONFIG


def links(
    record: Annotated[str | None, typer.Argument(
        help="Show one link and its history of rule firings: a ServiceNow number or"
             " sys_id, or a Jira key.", show_default=False)] = None,
    config: ConfigOption = Path(DEFAULT_CONFIG),
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List linked pairs: ServiceNow number and sys_id, Jira key, last sync, seen versions."""
    if record is not None:
        _show_one(record, config, output)
        return
    with reported_errors():
        store = open_existing_store(config, output)
        rows = [] if store is None else store.all_links()
        if store is not None:
            store.close()
    if output is OutputFormat.JSON:
        print_document([link_json(link) for link in rows])
        return
    if output is OutputFormat.CSV:
        print_csv(stdout, LINK_COLUMNS, (link_json(link) for link in rows))
        return
    if store is None:
        return
    if not rows:
        stdout.print("no links yet: the first `incident-sync run` creates them", markup=False)
        return
    table = titled_table("Links", ["ServiceNow", "sys_id", "Jira", "Last synced",
                             "Seen version ServiceNow", "Seen version Jira"])
    for link in rows:
        table.add_row(
            cell(link.display_on("servicenow")), cell(link.id_on("servicenow")),
            cell(link.id_on("jira")), cell(when(link.updated_at)),
            cell(link.version_on("servicenow")), cell(link.version_on("jira")),
        )
    print_table(stdout, table)
    stdout.print(f"{len(rows)} link{'s' if len(rows) != 1 else ''}", markup=False)


def _show_one(record: str, config: Path, output: OutputFormat) -> None:
    """One link: ids, versions, when its rules are next due, its rule firings."""
    document: dict[str, Any] | None = None
    with reported_errors():
        store = open_existing_store(config, output)
        if store is None:
            return
        try:
            link = find_link(store, record)
            if link is not None:
                document = link_detail_json(store, link)
        finally:
            store.close()
    if document is None:
        # A record the store does not link: the argument names nothing (usage error).
        stderr.print(f"incident-sync: no link for {record!r} (a ServiceNow number or"
                     " sys_id, or a Jira key)", markup=False)
        raise typer.Exit(2)
    if output is OutputFormat.JSON:
        print_document(document)
        return
    if output is OutputFormat.CSV:
        print_csv(stdout, FIRING_COLUMNS, document["rule_firings"])
        return
    servicenow, jira = "servicenow", "jira"
    stdout.print(f"ServiceNow {document[display_key(servicenow)]} "
                 f"({document[RECORD_ID_KEYS[servicenow]]}) <-> Jira "
                 f"{document[RECORD_ID_KEYS[jira]]}, last synced {document['last_synced']}",
                 markup=False)
    due = document["rules_due_at"]
    stdout.print(f"rules next due: {due if due else 'on no date (no time-based rule pending)'}",
                 markup=False)
    firings = document["rule_firings"]
    if not firings:
        stdout.print("rule firings: none", markup=False)
        return
    table = titled_table(f"Rule firings: {len(firings)}", ["At", "Rule", "Field", "Old", "New"])
    for firing in firings:
        table.add_row(cell(firing["at"]), cell(firing["rule"]), cell(firing["field"]),
                      value_cell(firing["old"]), value_cell(firing["new"]))
    print_table(stdout, table)


FIRING_COLUMNS = ["at", "rule", "field", "old", "new", "note_id"]
