"""The ``audit`` command: compare every linked pair across both tools.

Contract: reads both tools and the state store, writes nothing to either (a
missing store is not created), prints or writes the report in the chosen
format, and exits 0 whatever it found: the findings are the output. Exit 2/3
keep their usual meaning (configuration / a tool unreachable).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sync.cli import ConfigOption, app, fail, reported_errors, settings_from, stdout
from sync.errors import EXIT_CONFIG
from sync.settings import DEFAULT_CONFIG


class AuditFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    HTML = "html"


@app.command()
def audit(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    format: Annotated[
        AuditFormat, typer.Option("--format", "-f", help="table, json, csv or html.")
    ] = AuditFormat.TABLE,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report to this file.")
    ] = None,
) -> None:
    """Compare linked records field by field; list orphans and open conflicts."""
    from sync.audit import build_audit
    from sync.factory import engine_session

    with reported_errors():
        settings = settings_from(config)
        with engine_session(settings, create_store=False) as engine:
            report = build_audit(engine)
    text = report.render(format.value)
    if output is None:
        # Machine formats go out byte for byte: no wrapping, no markup.
        stdout.out(text, highlight=False, end="")
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"--output {output}: cannot write: {error.strerror}", EXIT_CONFIG)
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.counts().items())
    stdout.print(f"audit written to {output}: {counts}", markup=False)
