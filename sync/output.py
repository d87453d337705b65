"""How table commands write to stdout: whole cells on a terminal, a pipe or a file.

Contract:
- :class:`TableFormat` is the ``--format`` choice every table command offers:
  ``table`` for people, ``json`` (one document) and ``csv`` (one header row,
  then one row per item) for scripts and spreadsheets.
- :func:`print_table` never cuts a cell with an ellipsis. On a terminal,
  columns too wide for the screen fold onto more lines; anywhere else (a pipe,
  a file, a CI log) the table is laid out at its natural width whatever
  ``COLUMNS`` says, so every row stays on one line for grep and diff.
- :func:`print_json` and :func:`print_csv` write text byte for byte: no
  markup, no highlighting, no wrapping.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

# Wider than any real table; only bounds the measurement.
_UNBOUNDED = 1_000_000


class TableFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


TableFormatOption = Annotated[
    TableFormat,
    typer.Option("--format", "-f", help="table for people; json or csv for scripts.",
                 case_sensitive=False),
]


# The per-side keys of the JSON and CSV documents (links, status, conflicts, audit), named
# as their first version named them, since scripts read them: ``<side>_display``,
# ``version_<side>``, ``<side>_value``, ``<side>_url``, and a record's id, which Jira
# calls the issue key.
RECORD_ID_KEYS = {"servicenow": "servicenow_id", "jira": "jira_key"}


def display_key(side: str) -> str:
    return f"{side}_display"


def version_key(side: str) -> str:
    return f"version_{side}"


def value_key(side: str) -> str:
    return f"{side}_value"


def url_key(side: str) -> str:
    return f"{side}_url"


def natural_width(table: Table, console: Console) -> int:
    """The width at which no cell of ``table`` needs to wrap."""
    options = console.options.update(width=_UNBOUNDED)
    return max(Measurement.get(console, options, table).maximum, 1)


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` on ``console`` with every cell whole (see the module contract)."""
    for column in table.columns:
        # The default overflow ("ellipsis") drops the end of a word too long for its
        # column; folding keeps every character.
        column.overflow = "fold"
    if console.is_terminal:
        console.print(table)
        return
    # Not a terminal: nobody's screen to fit, so do not wrap at all. A one-off
    # console writes to the same stream at the table's own width.
    wide = Console(file=console.file, width=natural_width(table, console),
                   highlight=False, color_system=None, emoji=False)
    wide.print(table)


def render_table_text(table: Table) -> str:
    """``table`` as plain text at its natural width (for reports written to files)."""
    measure = Console(file=io.StringIO(), width=_UNBOUNDED, color_system=None)
    for column in table.columns:
        column.overflow = "fold"
    buffer = io.StringIO()
    Console(file=buffer, width=natural_width(table, measure), highlight=False,
            color_system=None, emoji=False).print(table)
    return buffer.getvalue()


def print_json(console: Console, document: Any) -> None:
    """One JSON document, indented, non-ASCII kept, written as is."""
    console.out(json.dumps(document, indent=2, ensure_ascii=False, default=str),
                highlight=False)


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header row of ``columns`` and one row per mapping; None becomes empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n",
                            extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else _csv_value(value)
                         for key, value in row.items()})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def print_csv(console: Console, columns: Sequence[str],
              rows: Iterable[Mapping[str, Any]]) -> None:
    console.out(csv_text(columns, rows), highlight=False, end="")
