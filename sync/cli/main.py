"""The console script's entry point: the complete app and :func:`main`.

Contract: importing this module gives the app with every command registered
(:mod:`sync.cli.register`); :func:`main` runs it and maps a configuration error
raised outside any command body to exit status 2. ``incident-sync``,
``python -m sync`` and ``python -m sync.cli`` all call :func:`main`.
"""

from __future__ import annotations

import sys

from sync.cli.app import say
from sync.cli.register import app
from sync.errors import EXIT_CONFIG, ConfigError


def main() -> None:
    """Console-script entry point."""
    # Typer/Click map usage errors to exit 2 themselves: our status for usage errors.
    try:
        app()
    except ConfigError as error:  # raised outside a command body (e.g. a callback)
        say(str(error))
        sys.exit(EXIT_CONFIG)


__all__ = ["app", "main"]
