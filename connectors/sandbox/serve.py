"""Serve both vendor sandboxes from the command line, and start them in process.

Contract:
- :func:`start_sandboxes` starts a :class:`ServiceNowSandbox` and a ``JiraSandbox``
  on loopback (seeded alike, same credentials, optional latency and transient
  faults) and returns them running; the caller stops them. ``demo`` reuses it.
- :func:`write_config` writes an incident-sync TOML for two running sandboxes:
  every required key of ``sync/settings.py``, the mapping profile that runs on
  the Jira site's field set (``default`` on stock, ``jsm-extended`` on extended),
  ``jira.email`` = the sandbox user, and **no secrets** (they go in the environment,
  as for real tools).
- :func:`sandbox` is the typer command behind ``incident-sync sandbox`` and
  ``python -m connectors.sandbox``: it serves both until Ctrl-C (or SIGTERM),
  printing the URLs and the ``export`` lines for the sandbox credentials (the
  only place a password is printed: these are throw-away local credentials).
  A non-loopback ``--host`` or another bad option is a one-line error, exit 2.
- This module is in ``connectors``, so it never imports ``sync``; the Jira
  sandbox is imported lazily so the ServiceNow half works on its own.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from connectors.sandbox.http import FaultPlan
from connectors.sandbox.servicenow import ServiceNowSandbox

if TYPE_CHECKING:
    from connectors.sandbox.jira import JiraSandbox

EXIT_USAGE = 2
JIRA_MODES = ("cloud", "datacenter")
JIRA_FIELD_SETS = ("stock", "extended")
# The mapping profile that runs on each Jira field set, for written configs.
PROFILE_FOR_FIELDS = {"stock": "default", "extended": "jsm-extended"}


class SandboxOptionError(ValueError):
    """A sandbox option is wrong; ``str()`` is the one-line message."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fault_plan(fault_rate: float, latency_ms: float, seed: int) -> FaultPlan:
    """Transient faults at ``fault_rate`` in all: half 429s, a quarter each 503 and 500."""
    return FaultPlan(rate_429=fault_rate / 2, rate_503=fault_rate / 4, rate_500=fault_rate / 4,
                     latency_ms=latency_ms, retry_after=1, seed=seed)


def _check_options(host: str, jira_mode: str, seed_incidents: int, latency_ms: float,
                   fault_rate: float, ports: tuple[int, int], jira_fields: str = "stock"
                   ) -> None:
    if not is_loopback(host):
        raise SandboxOptionError(
            f"--host {host!r} is not a loopback address; the sandboxes serve 127.0.0.1 only")
    if jira_mode not in JIRA_MODES:
        raise SandboxOptionError(f"--jira-mode {jira_mode!r}: choose cloud or datacenter")
    if jira_fields not in JIRA_FIELD_SETS:
        raise SandboxOptionError(f"--jira-fields {jira_fields!r}: choose stock or extended")
    if seed_incidents < 0:
        raise SandboxOptionError(f"--seed-incidents {seed_incidents}: must be 0 or more")
    if latency_ms < 0:
        raise SandboxOptionError(f"--latency-ms {latency_ms}: must be 0 or more")
    if not 0.0 <= fault_rate <= 1.0:
        raise SandboxOptionError(f"--fault-rate {fault_rate}: must be between 0 and 1")
    for port in ports:
        if not 0 <= port <= 65535:
            raise SandboxOptionError(f"port {port}: must be between 0 and 65535")


def start_sandboxes(
    *,
    host: str = "127.0.0.1",
    servicenow_port: int = 0,
    jira_port: int = 0,
    jira_mode: str = "cloud",
    seed_incidents: int = 0,
    seed: int = 1,
    latency_ms: float = 0.0,
    fault_rate: float = 0.0,
    username: str = "admin",
    password: str = "sandbox",
    clock: Callable[[], datetime] | None = None,
    jira_project: str = "OPS",
    jira_seed_incidents: int | None = None,
    jira_fields: str = "stock",
) -> tuple[ServiceNowSandbox, JiraSandbox]:
    """Both sandboxes, started. Raises SandboxOptionError for bad options, OSError on bind.

    ``jira_seed_incidents`` seeds the Jira side differently (None = ``seed_incidents``),
    e.g. 0 so that a first sync has only one side to copy. ``jira_fields`` is the
    Jira site's field set: "stock" (a new JSM ITSM project) or "extended".
    """
    jira_seeds = seed_incidents if jira_seed_incidents is None else jira_seed_incidents
    _check_options(host, jira_mode, min(seed_incidents, jira_seeds), latency_ms, fault_rate,
                   (servicenow_port, jira_port), jira_fields)
    from connectors.sandbox.jira import JiraSandbox

    servicenow = ServiceNowSandbox(
        host, servicenow_port, username=username, password=password,
        faults=fault_plan(fault_rate, latency_ms, seed), seed_incidents=seed_incidents,
        seed=seed, clock=clock,
    )
    jira = JiraSandbox(
        host, jira_port, mode=jira_mode, username=username, password=password,
        faults=fault_plan(fault_rate, latency_ms, seed + 1), seed_incidents=jira_seeds,
        seed=seed, clock=clock, project=jira_project, fields=jira_fields,
    )
    servicenow.start()
    try:
        jira.start()
    except BaseException:
        servicenow.stop()
        raise
    return servicenow, jira


def _toml_string(value: str) -> str:
    # A JSON string literal is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def write_config(
    path: str | Path,
    sn_url: str,
    jira_url: str,
    username: str,
    *,
    jira_project: str = "OPS",
    state_url: str = "sqlite:///incident-sync.db",
    jira_flavor: str = "auto",
    mapping: str = "default",
) -> Path:
    """Write an incident-sync config for two sandboxes; returns the path. No secrets."""
    target = Path(path)
    text = f"""\
# incident-sync configuration for the local sandboxes (written by `incident-sync sandbox`).
# Secrets are not stored here; set them in the environment:
#   export INCIDENT_SYNC_SERVICENOW__PASSWORD=...
#   export INCIDENT_SYNC_JIRA__TOKEN=...

[servicenow]
instance_url = {_toml_string(sn_url)}
username = {_toml_string(username)}
table = "incident"
query = "active=true"
page_size = 500

[jira]
url = {_toml_string(jira_url)}
email = {_toml_string(username)}
flavor = {_toml_string(jira_flavor)}
project = {_toml_string(jira_project)}
issue_type = "Incident"
jql = ""

[sync]
direction = "both"
state_url = {_toml_string(state_url)}
mapping = {_toml_string(mapping)}
conflict = "newest"
"""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target


def serve_until_stopped(servers: tuple[Any, ...], stop: threading.Event) -> None:
    """Block until ``stop`` is set or Ctrl-C, then stop every server."""
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers:
            server.stop()


def _error(message: str) -> typer.Exit:
    typer.echo(f"incident-sync: sandbox: {message}", err=True)
    return typer.Exit(EXIT_USAGE)


def sandbox(
    host: Annotated[str, typer.Option(help="Loopback address to bind.")] = "127.0.0.1",
    servicenow_port: Annotated[
        int, typer.Option("--servicenow-port", help="ServiceNow port (0 = any free).")] = 8001,
    jira_port: Annotated[
        int, typer.Option("--jira-port", help="Jira port (0 = any free).")] = 8002,
    jira_mode: Annotated[
        str, typer.Option("--jira-mode", help="cloud or datacenter.")] = "cloud",
    jira_fields: Annotated[
        str, typer.Option("--jira-fields",
                          help="stock (a new JSM IT service management project) or extended "
                               "(plus the fields and components of the jsm-extended profile).")
    ] = "stock",
    seed_incidents: Annotated[
        int, typer.Option("--seed-incidents", help="Incidents seeded on each side.")] = 20,
    jira_seed_incidents: Annotated[
        int | None,
        typer.Option("--jira-seed-incidents",
                     help="Incidents seeded in Jira when it differs from --seed-incidents "
                          "(0: a first sync copies ServiceNow's, as bench/economy.py does)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated data and faults.")] = 1,
    latency_ms: Annotated[
        float, typer.Option("--latency-ms", help="Added latency per request.")] = 0.0,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", help="Share of requests answered 429/503/500.")
    ] = 0.0,
    username: Annotated[str, typer.Option(help="Sandbox user name (both tools).")] = "admin",
    password: Annotated[
        str, typer.Option(help="Sandbox password / token (both tools).")] = "sandbox",
    write_config_path: Annotated[
        Path | None,
        typer.Option("--write-config", help="Write an incident-sync TOML for these sandboxes."),
    ] = None,
) -> None:
    """Serve local ServiceNow and Jira stand-ins with seeded incidents until Ctrl-C."""
    if jira_seed_incidents is not None and jira_seed_incidents < 0:
        raise _error(f"--jira-seed-incidents {jira_seed_incidents}: must be 0 or more")
    try:
        servicenow, jira = start_sandboxes(
            host=host, servicenow_port=servicenow_port, jira_port=jira_port,
            jira_mode=jira_mode, seed_incidents=seed_incidents, seed=seed,
            latency_ms=latency_ms, fault_rate=fault_rate, username=username, password=password,
            jira_fields=jira_fields, jira_seed_incidents=jira_seed_incidents,
        )
    except SandboxOptionError as error:
        raise _error(str(error)) from None
    except OSError as error:
        raise _error(f"cannot listen on {host} ports {servicenow_port}/{jira_port}: "
                     f"{error.strerror or error}") from None
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        def _on_term(signum: int, frame: FrameType | None) -> None:
            stop.set()
        signal.signal(signal.SIGTERM, _on_term)
    try:
        if write_config_path is not None:
            write_config(write_config_path, servicenow.url, jira.url, username,
                         jira_flavor=jira_mode, mapping=PROFILE_FOR_FIELDS[jira_fields])
    except OSError as error:
        servicenow.stop()
        jira.stop()
        raise _error(f"cannot write {write_config_path}: {error.strerror or error}") from None
    lines = [
        f"ServiceNow sandbox: {servicenow.url}  ({seed_incidents} incidents, seed {seed})",
        f"Jira sandbox ({jira_mode}, {jira_fields} fields): {jira.url}  (project OPS"
        + ("" if jira_seed_incidents is None else f", {jira_seed_incidents} incidents") + ")",
        f"User: {username}. Sandbox credentials for incident-sync:",
        f"export INCIDENT_SYNC_SERVICENOW__PASSWORD={shlex.quote(password)}",
        f"export INCIDENT_SYNC_JIRA__TOKEN={shlex.quote(password)}",
    ]
    if write_config_path is not None:
        lines.append(f"Config written to {write_config_path} (no secrets in it); try: "
                     f"incident-sync check --config {shlex.quote(str(write_config_path))}")
    lines.append("Serving; press Ctrl-C to stop.")
    for line in lines:
        typer.echo(line)
    serve_until_stopped((servicenow, jira), stop)
    typer.echo("Sandboxes stopped.")
