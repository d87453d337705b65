"""The ``audit`` command: compare every linked pair across both tools.

Contract: reads both tools and the state store, writes nothing to either (a
missing store is not created), prints or writes the report in the chosen
format, and exits 0 whatever it found: the findings are the output. With
``--fail-on-drift`` it exits 1 when any linked pair differs or is missing a
record, a record is orphaned, or a conflict is open (for an auditor's own CI),
after writing the whole report and one stderr line with the counts. Exit 2/3
keep their usual meaning (configuration / a tool unreachable). The report is
written once: to stdout, or with ``--output FILE`` only to the file (stdout
then gets one line saying where it went and the counts). Cells are never cut
(:mod:`sync.output`).
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sync.cli.app import ConfigOption, fail, reported_errors, say, settings_from, stdout
from sync.errors import EXIT_CONFIG, EXIT_ITEMS_FAILED
from sync.output import print_table
from sync.settings import DEFAULT_CONFIG

if TYPE_CHECKING:  # the report pulls in mappings: load it when the command runs
    from sync.audit_report import AuditReport


class AuditFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    HTML = "html"


def audit(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    format: Annotated[
        AuditFormat, typer.Option("--format", "-f", help="table, json, csv or html.")
    ] = AuditFormat.TABLE,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
    ] = None,
    fail_on_drift: Annotated[
        bool,
        typer.Option("--fail-on-drift",
                     help="Exit 1 when a pair differs, a record is orphaned or a conflict "
                          "is open."),
    ] = False,
) -> None:
    """Compare linked records field by field; list orphans and open conflicts."""
    from sync.audit import build_audit, report_context
    from sync.factory import build_profile, read_session

    with reported_errors():
        settings = settings_from(config)
        with read_session(settings) as reading:
            report = build_audit(reading)
            report.context = report_context(settings, build_profile(settings),
                                            reading.session.profile)
    _emit(report, format, output)
    if fail_on_drift and not report.clean:
        say(f"audit found drift: {report.summary()}", level=logging.WARNING)
        raise typer.Exit(EXIT_ITEMS_FAILED)


def _emit(report: AuditReport, format: AuditFormat, output: Path | None) -> None:
    if output is None and format is AuditFormat.TABLE and stdout.is_terminal:
        # A person at a terminal: the table fits the screen, folding long cells.
        stdout.out(report.header(), highlight=False, end="")
        print_table(stdout, report.table())
        stdout.print(report.summary(), markup=False)
        return
    text = report.render(format.value)
    if output is None:
        # Machine formats and pipes go out byte for byte: no wrapping, no markup.
        stdout.out(text, highlight=False, end="")
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"--output {output}: cannot write: {error.strerror}", EXIT_CONFIG)
    stdout.print(f"audit written to {output}: {report.summary()}", markup=False)
