"""The one module that knows every command: it adds each to the frame's typer app.

Contract: command modules define plain functions and import only the frame
(:mod:`sync.cli.app`); this module imports them all and registers them on
:data:`sync.cli.app.app`, so nothing imports back into a command module and the
CLI has no import cycle. Adding a command is one line here. Importing this
module completes the app (the console script, ``python -m sync`` and the tests
all go through :mod:`sync.cli.main`, which imports it).
"""

from __future__ import annotations

import typer

from connectors.sandbox.serve import sandbox
from sync.cli import (
    audit,
    check,
    conflicts,
    demo,
    fields,
    links,
    mappings,
    plan,
    rules,
    run,
    status,
)
from sync.cli.app import app

app.command()(check.check)
app.command()(plan.plan)
app.command()(run.run)
app.command()(demo.demo)
app.command()(audit.audit)
app.command()(links.links)
app.command()(status.status)
app.command("sandbox")(sandbox)

conflicts_app = typer.Typer(
    name="conflicts",
    help="List the conflicts both tools disagree on, and settle one by choosing a side.",
    no_args_is_help=True,
)
conflicts_app.command("list")(conflicts.list_conflicts)
conflicts_app.command("resolve")(conflicts.resolve)
app.add_typer(conflicts_app, name="conflicts")

mappings_app = typer.Typer(
    name="mappings",
    help="Show a mapping profile, or try it on a sample record.",
    no_args_is_help=True,
)
mappings_app.command("show")(mappings.show)
mappings_app.command("test")(mappings.test)
mappings_app.command("fields")(fields.fields)
app.add_typer(mappings_app, name="mappings")

rules_app = typer.Typer(
    name="rules",
    help="Try the categorization, priority and escalation rules on a sample record.",
    no_args_is_help=True,
)
rules_app.command("test")(rules.test)
app.add_typer(rules_app, name="rules")

__all__ = ["app"]
