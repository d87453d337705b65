"""``python -m connectors.sandbox``: the same command as ``incident-sync sandbox``.

Contract: one typer command (:func:`connectors.sandbox.serve.sandbox`), so
options, output and exit statuses are identical to the ``incident-sync`` form.
"""

from __future__ import annotations

import typer

from connectors.sandbox.serve import sandbox

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(sandbox)

if __name__ == "__main__":
    app(prog_name="python -m connectors.sandbox")
