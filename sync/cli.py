"""The ``incident-sync`` command: argument parsing, error reporting, exit statuses.

Contract:
- Every subcommand accepts ``--config PATH`` (default ``incident-sync.toml`` or
  ``$INCIDENT_SYNC_CONFIG``).
- Errors reach the user as ONE line on stderr, never a traceback, and the exit
  status is decided in one place (:func:`sync.errors.exit_code_for`):
  0 all done, 1 items failed, 2 usage/config, 3 a tool unreachable or refusing auth.
- Subcommands living in other modules register themselves through
  :func:`_register_subcommands`, so this module stays the frame.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from sync import __version__
from sync.errors import EXIT_CONFIG, EXIT_OK, ConfigError, SyncError, exit_code_for
from sync.settings import DEFAULT_CONFIG, ENV_PREFIX, Settings, load_settings

app = typer.Typer(
    name="incident-sync",
    help="Keep ITIL incidents in step between ServiceNow and Jira Service Management.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar=f"{ENV_PREFIX}CONFIG",
        help=f"Config file (TOML). Default {DEFAULT_CONFIG}.",
        show_default=False,
    ),
]


def fail(message: str, code: int) -> NoReturn:
    """Print one line to stderr and exit with ``code``."""
    stderr.print(f"incident-sync: {message}", markup=False)
    raise typer.Exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn any SyncError into one stderr line and the DESIGN.md exit status."""
    try:
        yield
    except SyncError as error:
        fail(str(error), exit_code_for(error))


def settings_from(config: Path, *, need_secrets: bool = True) -> Settings:
    """Load and validate settings; with ``need_secrets``, require the credentials too."""
    settings = load_settings(config)
    if need_secrets:
        settings.require_secrets()
    return settings


def _version(value: bool) -> None:
    if value:
        stdout.print(f"incident-sync {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def check(
    config: ConfigOption = Path(DEFAULT_CONFIG),
    offline: Annotated[
        bool, typer.Option("--offline", help="Validate files only; contact nothing.")
    ] = False,
) -> None:
    """Validate config, mapping and rules; without --offline also reach both tools."""
    from sync import checks

    with reported_errors():
        settings = settings_from(config, need_secrets=not offline)
        for line in checks.offline_checks(settings):
            stdout.print(line, markup=False)
        if not offline:
            raise typer.Exit(checks.online_check(settings, stdout))


def _register_subcommands() -> None:
    """Import the modules that add subcommands to :data:`app`.

    Each module registers on import (``@app.command()`` on this app), so adding a
    command is one line here.
    """
    from connectors.sandbox.serve import sandbox  # connectors-side: cannot import this app
    app.command("sandbox")(sandbox)
    from sync import (
        cli_mappings,  # noqa: F401  (mappings show, mappings test)
        commands,  # noqa: F401  (plan, run, demo)
        commands_audit,  # noqa: F401  (audit)
        commands_conflicts,  # noqa: F401  (conflicts list, conflicts resolve)
        commands_state,  # noqa: F401  (links, status)
    )


# At import time, so the app is complete for the console script and for tests alike.
_register_subcommands()


def main() -> None:
    """Console-script entry point."""
    # Typer/Click map usage errors to exit 2 themselves, which matches DESIGN.md.
    try:
        app()
    except ConfigError as error:  # raised outside a command body (e.g. a callback)
        stderr.print(f"incident-sync: {error}", markup=False)
        sys.exit(EXIT_CONFIG)


if __name__ == "__main__":  # pragma: no cover - `python -m sync.cli`
    # Run as a script this file is `__main__`, a second copy of the module whose
    # app has none of the subcommands (they register on `sync.cli.app`).
    from sync.cli import main as _registered_main

    _registered_main()
