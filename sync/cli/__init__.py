"""The ``incident-sync`` command line, one module per command.

Layout (imports point one way only, so the CLI has no import cycle):
- :mod:`sync.cli.app`: the typer app and the frame (error reporting, exit
  statuses, ``--config``); it imports no command.
- one module per command or command group (``check``, ``plan``, ``run``,
  ``demo``, ``audit``, ``links``, ``status``, ``conflicts``, ``mappings``,
  ``fields``): plain functions that import only the frame and the engine side.
- :mod:`sync.cli.register`: the one module that imports every command and adds
  it to the app.
- :mod:`sync.cli.main`: the complete app and the console script's ``main``.

This package module imports nothing, so importing any part of the CLI loads
only what that part needs.
"""

from __future__ import annotations
