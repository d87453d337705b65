"""``incident-sync demo``: the whole job on two local sandboxes, no account and no network.

Contract:
- Starts a ServiceNow and a Jira (Cloud) sandbox in-process on 127.0.0.1,
  seeds different incidents on BOTH sides, writes a config for them (in a
  temporary directory, or ``--keep DIR``) and puts the sandbox credentials in
  this process's environment only (restored afterwards; never in a file).
- Runs a full sync and prints its summary, runs again and shows that the
  second run wrote nothing (echo suppression, counted from the sandboxes'
  request logs), then prints a compact side-by-side audit of every linked
  pair: fields equal, or which ones differ.
- Returns the exit status: 0 when both runs succeeded and the second wrote
  nothing, 1 otherwise. Sandboxes are always stopped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.sandbox.http import SandboxServer
from sync.actions import side_title
from sync.output import print_table
from sync.settings import ENV_PREFIX, Settings, load_settings

USERNAME = "admin"
PASSWORD = "sandbox"  # throw-away credentials of the local sandboxes
SECRET_ENV = (f"{ENV_PREFIX}SERVICENOW__PASSWORD", f"{ENV_PREFIX}JIRA__TOKEN")


@contextmanager
def sandbox_secrets(password: str = PASSWORD) -> Iterator[None]:
    """The sandboxes' throw-away credentials in this process's environment, restored after.

    Never in a file: the demo (and the benchmarks) show the documented way to pass secrets.
    """
    saved = {name: os.environ.get(name) for name in SECRET_ENV}
    os.environ.update({name: password for name in SECRET_ENV})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="incident-sync-demo-") as name:
        yield Path(name)


def _start(seed_incidents: int) -> tuple[SandboxServer, SandboxServer]:
    # Not serve.start_sandboxes: it seeds both tools from one seed, i.e. the
    # same incidents twice; a demo reads better with different work on each side.
    from connectors.sandbox.jira import JiraSandbox
    from connectors.sandbox.servicenow import ServiceNowSandbox

    servicenow = ServiceNowSandbox(username=USERNAME, password=PASSWORD,
                                   seed_incidents=seed_incidents, seed=1)
    jira = JiraSandbox(mode="cloud", username=USERNAME, password=PASSWORD,
                       seed_incidents=seed_incidents, seed=2)
    servicenow.start()
    try:
        jira.start()
    except BaseException:
        servicenow.stop()
        raise
    return servicenow, jira


def run_demo(*, seed_incidents: int, keep: Path | None, console: Console) -> int:
    """Run the demo, printing as it goes; returns the exit status."""
    from connectors.sandbox.serve import write_config
    from sync.runner import run_once

    console.print("[bold]incident-sync demo[/bold]: two local sandboxes, no account needed\n")
    servicenow, jira = _start(seed_incidents)
    servers = {"servicenow": servicenow, "jira": jira}
    try:
        with _workdir(keep) as workdir, sandbox_secrets():
            config = write_config(
                workdir / "incident-sync.toml", servicenow.url, jira.url, USERNAME,
                state_url=f"sqlite:///{workdir / 'incident-sync.db'}",
            )
            console.print(f"ServiceNow sandbox  {servicenow.url}", markup=False)
            console.print(f"Jira sandbox        {jira.url} (Cloud)", markup=False)
            console.print(f"seeded {seed_incidents} incidents on each side; config {config}\n",
                          markup=False)
            settings = load_settings(config)

            console.print("[bold]1. first sync[/bold]: every incident gets its twin")
            first = run_once(settings)
            _print_summary(console, first.line(), first.failures)

            before = {side: server.log.writes() for side, server in servers.items()}
            console.print("\n[bold]2. second sync[/bold]: nothing changed, so nothing is "
                          "written (no echo)")
            second = run_once(settings)
            _print_summary(console, second.line(), second.failures)
            writes = {side: server.log.writes() - before[side]
                      for side, server in servers.items()}
            console.print(
                f"writes in the second run: ServiceNow {writes['servicenow']}, "
                f"Jira {writes['jira']}", markup=False)

            console.print("\n[bold]3. side by side[/bold]: every linked pair, field by field")
            equal = _compare(settings, console)
            if keep is not None:
                console.print(f"\nconfig and state store kept in {workdir}; the sandboxes "
                              "stop now (serve them with `incident-sync sandbox`)", markup=False)
    finally:
        jira.stop()
        servicenow.stop()
    ok = first.exit_code == 0 and second.exit_code == 0 and not any(writes.values()) and equal
    return 0 if ok else 1


def _print_summary(console: Console, line: str, failures: list[str]) -> None:
    for failure in failures:
        console.print(f"  failed: {failure}", markup=False)
    console.print(f"  {line}", markup=False)


def _compare(settings: Settings, console: Console) -> bool:
    """The audit of every linked pair, one row each; True when every pair is in step."""
    from sync.audit import build_audit
    from sync.factory import read_session

    with read_session(settings) as reading:
        report = build_audit(reading)
    table = Table(show_edge=False, pad_edge=False)
    for side in reading.session.sides:
        table.add_column(side_title(side), no_wrap=True)
    table.add_column("status", no_wrap=True)
    # Whole titles: a pipe lays the table out at its natural width, a terminal folds.
    table.add_column("title")
    table.add_column("fields")
    for pair in report.pairs:
        if pair.missing:
            verdict = f"[red]gone on {side_title(pair.missing)}[/red]"
        elif pair.differences:
            verdict = ("[yellow]differ: " + ", ".join(d.field for d in pair.differences)
                       + "[/yellow]")
        else:
            verdict = "[green]equal[/green]"
        table.add_row(pair.sides["servicenow"].display, pair.sides["jira"].display, pair.status,
                      escape(pair.title), verdict)
    print_table(console, table)
    extra = [f"{len(report.orphans)} orphans"] if report.orphans else []
    extra += [f"{len(report.conflicts)} open conflicts"] if report.conflicts else []
    verdict = "all equal" if all(p.in_step for p in report.pairs) else "some differ"
    console.print(", ".join([f"{len(report.pairs)} linked pairs, {verdict}", *extra]),
                  markup=False)
    console.print("(the full report: incident-sync audit --format table|json|csv|html)",
                  markup=False)
    return report.clean
