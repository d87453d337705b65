"""``incident-sync mappings fields``: what the connected site offers to map.

Contract:
- ``mappings fields --side jira|servicenow [--search TEXT] [--format table|json]
  [--config C]`` connects to the configured tool (read-only) and lists its
  fields for the configured Jira project and issue type or ServiceNow table:
  id, name, type, the values a select / choice field allows, and whether the
  field can be set on create / edit (Jira's screens; ServiceNow read-only
  columns). ``--search`` keeps fields whose id or name contains the text (any
  case).
- The table never cuts a cell: long cells fold, and when stdout is not a
  terminal the table is as wide as its content. ``json`` prints
  ``{"side", "fields": [{"id", "name", "type", "custom", "allowed",
  "on_create", "on_edit"}]}``.
- Errors are one stderr line: 2 for config, 3 when the tool cannot be reached
  or refuses the credentials.
- Registered on the ``mappings`` sub-app by :mod:`sync.cli.register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from connectors.base import SiteField
from sync.cli.app import ConfigOption, reported_errors, settings_from, stdout
from sync.cli.mappings import SideChoice
from sync.output import TableFormat, TableFormatOption, print_csv, print_json, print_table
from sync.settings import DEFAULT_CONFIG, Settings


def matches(site_field: SiteField, search: str | None) -> bool:
    if not search:
        return True
    wanted = search.casefold()
    return wanted in site_field.id.casefold() or wanted in site_field.name.casefold()


def fetch_fields(settings: Settings, side: str) -> list[SiteField]:
    """Open the one connector for ``side``, list its site fields, close it."""
    from sync.factory import build_connectors

    connector = next(c for c in build_connectors(settings) if str(c.side) == side)
    connector.open()
    try:
        return connector.site_fields()
    finally:
        connector.close()


def _settable(site_field: SiteField) -> str:
    """``create, edit``; ``no``; ``edit?`` where the tool could not tell (Jira shows an
    edit screen only for an existing issue: none in scope, no edit screen to read)."""
    marks = {"create": site_field.on_create, "edit": site_field.on_edit}
    shown = [name if value else f"{name}?" for name, value in marks.items()
             if value is not False]
    return ", ".join(shown) or "no"


def _tristate(value: bool | None) -> str:
    """CSV cell for a yes / no / the tool could not tell answer."""
    return "" if value is None else ("true" if value else "false")


def fields_table(side: str, fields: list[SiteField]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for name in ("id", "name", "type"):
        table.add_column(name, overflow="fold")
    table.add_column("allowed values", overflow="fold")
    table.add_column("settable on" if side == "jira" else "writable", overflow="fold")
    for site_field in fields:
        allowed = ", ".join(site_field.allowed) if site_field.allowed is not None else ""
        table.add_row(escape(site_field.id), escape(site_field.name), escape(site_field.type),
                      escape(allowed), _settable(site_field))
    return table


def fields(
    side: Annotated[SideChoice, typer.Option("--side", "-s", help="Which tool to list.")],
    search: Annotated[
        str | None, typer.Option("--search", help="Only fields whose id or name contains this.")
    ] = None,
    format: TableFormatOption = TableFormat.TABLE,
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """List the fields the connected site offers (id, name, type, allowed values)."""
    with reported_errors():
        settings = settings_from(config)
        found = [f for f in fetch_fields(settings, side.value) if matches(f, search)]
    if format is TableFormat.JSON:
        print_json(stdout, {"side": side.value, "fields": [f.to_json() for f in found]})
        return
    if format is TableFormat.CSV:
        print_csv(stdout, ["id", "name", "type", "allowed", "on_create", "on_edit"], (
            {"id": f.id, "name": f.name, "type": f.type,
             "allowed": "; ".join(f.allowed) if f.allowed is not None else "",
             "on_create": _tristate(f.on_create), "on_edit": _tristate(f.on_edit)}
            for f in found))
        return
    if not found:
        what = f" matching {search!r}" if search else ""
        stdout.print(f"no {side.value} field{what}", markup=False)
        return
    table = fields_table(side.value, found)
    # On a terminal long cells fold; piped, the table gets all the width it needs.
    print_table(stdout, table)
    stdout.print(f"{len(found)} fields", markup=False)
