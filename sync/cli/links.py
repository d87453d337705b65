"""The ``links`` command: the link table of the state store.

The shared contract of the state-store views is in :mod:`sync.cli.store_views`.
"""

from __future__ import annotations

from pathlib import Path

from sync.cli.app import ConfigOption, reported_errors, stdout
from sync.cli.store_views import (
    LINK_COLUMNS,
    FormatOption,
    OutputFormat,
    cell,
    link_json,
    open_existing_store,
    print_document,
    titled_table,
    when,
)
from sync.output import print_csv, print_table
from sync.settings import DEFAULT_CONFIG


def links(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List linked pairs: ServiceNow number and sys_id, Jira key, last sync, seen versions."""
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
