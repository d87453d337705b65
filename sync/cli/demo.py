"""The ``demo`` command: option parsing only; the demo itself is :func:`sync.demo.run_demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sync.cli.app import reported_errors, stdout


def demo(
    seed_incidents: Annotated[
        int, typer.Option("--seed-incidents", min=0, max=500,
                          help="Incidents seeded on EACH side.")
    ] = 8,
    keep: Annotated[
        Path | None,
        typer.Option("--keep", help="Write the config and state store here and keep them."),
    ] = None,
) -> None:
    """Start both sandboxes in-process, sync them twice and compare: no account needed."""
    from sync.demo import run_demo

    with reported_errors():
        raise typer.Exit(run_demo(seed_incidents=seed_incidents, keep=keep, console=stdout))
