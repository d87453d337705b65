"""The ``plan`` command: everything a run would do, written nowhere.

Contract: builds the plan and prints it (text or JSON); it writes nothing to
either tool and changes nothing in the state store (a missing store is not
created). Errors reach the user as one stderr line (:func:`sync.cli.app.reported_errors`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sync.cli.app import ConfigOption, reported_errors, settings_from, stdout
from sync.settings import DEFAULT_CONFIG


class PlanFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def plan(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    format: Annotated[
        PlanFormat, typer.Option("--format", "-f", help="text or json.")
    ] = PlanFormat.TEXT,
) -> None:
    """Show what a run would do (creates, field changes, transitions, comments, conflicts)."""
    from sync.factory import read_session
    from sync.planner import build_plan

    with reported_errors():
        settings = settings_from(config)
        with read_session(settings) as reading:
            result = build_plan(reading.session, reading.store)
    if format is PlanFormat.JSON:
        stdout.print_json(json.dumps(result.to_json(), ensure_ascii=False, default=str))
        return
    lines = result.describe()
    for line in lines:
        stdout.print(line, markup=False)
    counts = result.counts()
    if not lines:
        stdout.print("nothing to do: both tools are in step", markup=False)
    stdout.print(
        f"plan: {counts['creates']} to create, {counts['adoptions']} to link, "
        f"{counts['updates']} updates, {counts['comments']} comments, "
        f"{counts['conflicts']} conflicts, {counts['rule_firings']} rule firings, "
        f"{counts['orphans']} orphaned, {counts['problems']} problems",
        markup=False,
    )
