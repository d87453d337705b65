"""The ``check`` command: validate config, mapping and rules; optionally reach both tools.

Contract: ``--offline`` reads only local files and contacts nothing; otherwise
every check against both sites runs and the exit status says whether all
passed (:mod:`sync.checks` decides). ``--format json|csv`` gives one row per check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sync.cli.app import ConfigOption, reported_errors, settings_from, stdout
from sync.errors import EXIT_OK
from sync.output import TableFormat, TableFormatOption, print_csv, print_json
from sync.settings import DEFAULT_CONFIG


def check(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    offline: Annotated[
        bool, typer.Option("--offline", help="Validate files only; contact nothing.")
    ] = False,
    output: TableFormatOption = TableFormat.TABLE,
) -> None:
    """Validate config, mapping and rules; without --offline also reach both tools.

    ``--format json|csv`` gives one row per check, the file checks as tool
    ``local``: ``{"checks": [{"tool", "check", "ok", "skipped", "detail"}], "passed",
    "failed"}`` or the same columns as CSV (``ok``, ``skipped`` true/false; a skipped
    optional profile row is ok).
    """
    from sync import checks

    with reported_errors():
        settings = settings_from(config, need_secrets=not offline)
        lines = checks.offline_checks(settings)
        if output is TableFormat.TABLE:
            for line in lines:
                stdout.print(line, markup=False)
            if not offline:
                raise typer.Exit(checks.online_check(settings, stdout))
            return
        rows = [_offline_row(line) for line in lines]
        code = EXIT_OK
        if not offline:
            results, code = checks.online_results(settings)
            rows += [{"tool": r.side, "check": r.what, "ok": r.ok, "detail": r.detail,
                      "skipped": r.result == "skipped"} for r in results]
    if output is TableFormat.JSON:
        failed = sum(1 for row in rows if not row["ok"])
        print_json(stdout, {"checks": rows, "passed": len(rows) - failed, "failed": failed})
    else:
        print_csv(stdout, ["tool", "check", "ok", "skipped", "detail"],
                  ({**row, "ok": "true" if row["ok"] else "false",
                    "skipped": "true" if row["skipped"] else "false"} for row in rows))
    raise typer.Exit(code)


def _offline_row(line: str) -> dict[str, Any]:
    """``mapping default: ok (23 fields)`` -> a check row; a broken file raised already."""
    what, _, detail = line.rpartition(": ")
    return {"tool": "local", "check": what or line, "ok": True, "detail": detail if what else "",
            "skipped": False}
