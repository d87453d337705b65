"""No command ever shows a traceback: an unforeseen exception is one line and exit 4.

Every command of the app is found by walking the typer app, so a command added
later is covered without editing this file: commands with a known deep call get
the fault injected there (the realistic case: a bug somewhere below the command
body); any other command gets it injected at its callback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from sync.cli.main import app
from sync.errors import EXIT_INTERNAL, EXIT_INTERRUPTED

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("no_incident_sync_env")

CONFIG = """\
[servicenow]
instance_url = "http://127.0.0.1:9"
username = "admin"

[jira]
url = "http://127.0.0.1:9"
email = "admin"
project = "OPS"
"""

SN_RECORD = {"result": {"number": "INC0010001", "short_description": "Mail down",
                        "state": "2", "impact": "2", "urgency": "2"}}


class Injected(Exception):
    """The unforeseen exception: nothing in the product knows this class."""


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    children = getattr(command, "commands", None)
    if not children:
        yield path
        return
    for name, child in sorted(children.items()):
        yield from _walk(child, (*path, name))


def command_paths() -> list[tuple[str, ...]]:
    """Every leaf command of the app, as the words a user types."""
    return list(_walk(typer.main.get_command(app)))


# Where each known command goes deep enough to stand for "a bug below the command
# body": (extra arguments after the command words, dotted attribute to break).
# Paths are relative to a temporary directory holding incident-sync.toml and record.json.
DEEP: dict[tuple[str, ...], tuple[list[str], str]] = {
    ("check",): (["-c", "{cfg}"], "sync.cli.app.load_settings"),
    ("plan",): (["-c", "{cfg}"], "sync.cli.app.load_settings"),
    ("run",): (["-c", "{cfg}"], "sync.cli.app.load_settings"),
    ("audit",): (["-c", "{cfg}"], "sync.cli.app.load_settings"),
    ("links",): (["-c", "{cfg}"], "sync.cli.app.load_settings"),
    ("status",): (["-c", "{cfg}"], "sync.cli.app.load_settings"),
    ("mappings", "show"): (["-c", "{cfg}"], "sync.cli.mappings.load_profile"),
    ("mappings", "test"): (["--record", "{record}", "--side", "servicenow", "-c", "{cfg}"],
                           "sync.cli.mappings.to_fields"),
    ("mappings", "fields"): (["--side", "jira", "-c", "{cfg}"], "sync.cli.app.load_settings"),
    ("conflicts", "resolve"): (["1", "--take", "jira", "-c", "{cfg}"],
                               "sync.cli.app.load_settings"),
    ("rules", "test"): (["--record", "{record}", "--side", "servicenow", "--rules",
                         str(REPO / "rules.example.toml"), "-c", "{cfg}"],
                        "sync.cli.rules.evaluate"),
    ("demo",): ([], "sync.demo._start"),
    ("sandbox",): (["--servicenow-port", "0", "--jira-port", "0"],
                   "connectors.sandbox.serve.start_sandboxes"),
}


def _raiser(exc: BaseException) -> Callable[..., Any]:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise exc
    return broken


def _files(tmp_path: Path) -> dict[str, str]:
    cfg = tmp_path / "incident-sync.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    record = tmp_path / "record.json"
    record.write_text(json.dumps(SN_RECORD), encoding="utf-8")
    return {"cfg": str(cfg), "record": str(record)}


def _invoke_with_fault(path: tuple[str, ...], exc: BaseException, tmp_path: Path,
                       monkeypatch: pytest.MonkeyPatch, *, verbose: bool = False,
                       at_callback: bool = False) -> Any:
    files = _files(tmp_path)
    monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", "pw-not-used")
    monkeypatch.setenv("INCIDENT_SYNC_JIRA__TOKEN", "token-not-used")
    extra, target = DEEP.get(path, ([], ""))
    args = [part.format(**files) for part in extra]
    if target and not at_callback:
        monkeypatch.setattr(target, _raiser(exc))
    else:
        # A command this file does not know: break the function behind it. Its
        # signature is kept, so typer parses the same options as for the real one.
        info = _command_info(path)
        monkeypatch.setattr(info, "callback", functools.wraps(info.callback)(_raiser(exc)))
    result = runner.invoke(app, [*(["-v"] if verbose else []), *path, *args])
    assert result.exit_code != 2 or path in DEEP, (
        f"{' '.join(path)} needs arguments: add it to DEEP", result.output)
    return result


def _command_info(path: tuple[str, ...]) -> Any:
    """Typer's registration of a command (typer builds click commands afresh per call)."""
    group = app
    *groups, name = path
    for word in groups:
        group = next(g.typer_instance for g in group.registered_groups
                     if (g.name or g.typer_instance.info.name) == word)
    return next(c for c in group.registered_commands
                if (c.name or typer.main.get_command_name(c.callback.__name__)) == name)


def test_every_command_is_found_by_walking_the_app() -> None:
    paths = command_paths()
    # The walk must reach into groups (mappings) and see the top-level commands.
    assert ("mappings", "show") in paths and ("mappings", "test") in paths
    for known in DEEP:
        assert known in paths, f"{' '.join(known)} is gone from the app; update DEEP"


@pytest.mark.parametrize("where", ["deep", "callback"])
@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_unforeseen_exception_is_one_line_exit_4(
    path: tuple[str, ...], where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "callback" is also how a command unknown to DEEP is covered: proven here on all.
    result = _invoke_with_fault(path, Injected("disk on fire"), tmp_path, monkeypatch,
                                at_callback=where == "callback")
    assert result.exit_code == EXIT_INTERNAL, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert lines == [
        "incident-sync: internal error: Injected: disk on fire; rerun with -v for details"
    ]


def test_check_offline_fault_is_one_line_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _files(tmp_path)["cfg"]
    monkeypatch.setattr("sync.checks.offline_checks", _raiser(Injected("offline")))
    result = runner.invoke(app, ["check", "--offline", "-c", cfg])
    assert result.exit_code == EXIT_INTERNAL
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_with_verbose_the_traceback_goes_to_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        result = _invoke_with_fault(("links",), Injected("details please"), tmp_path,
                                    monkeypatch, verbose=True)
    assert result.exit_code == EXIT_INTERNAL
    assert "internal error: Injected: details please" in result.stderr
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "sync.cli.app")
    assert "Traceback" in logged and "Injected: details please" in logged


def test_a_secret_in_the_exception_text_is_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sync.cli.app.load_settings",
                        _raiser(Injected("connect to https://admin:s3cret-value@host failed")))
    cfg = _files(tmp_path)["cfg"]
    monkeypatch.setenv("INCIDENT_SYNC_SERVICENOW__PASSWORD", "s3cret-value")
    result = runner.invoke(app, ["status", "-c", cfg])
    assert result.exit_code == EXIT_INTERNAL
    assert "s3cret-value" not in result.output
    assert "admin:***@host" in result.stderr


def test_ctrl_c_is_not_an_internal_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _invoke_with_fault(("status",), KeyboardInterrupt(), tmp_path, monkeypatch)
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.stderr.splitlines() == ["incident-sync: interrupted"]
    assert "internal error" not in result.output


def test_usage_errors_keep_exit_2_and_known_errors_their_status(tmp_path: Path) -> None:
    assert runner.invoke(app, ["status", "--format", "yaml"]).exit_code == 2
    missing = runner.invoke(app, ["plan", "-c", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "internal error" not in missing.output


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "incident-sync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sync"]


SITECUSTOMIZE = """\
import sync.checks


def _broken(*args, **kwargs):
    raise ZeroDivisionError("injected below check --offline")


sync.checks.offline_checks = _broken
"""


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_installed_console_script_reports_an_internal_error(tmp_path: Path,
                                                            verbose: bool) -> None:
    # sitecustomize runs before the console script's own code: the fault sits in the
    # real process, below a real command, as a bug would.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("INCIDENT_SYNC_")}
    env["PYTHONPATH"] = str(hook)
    cfg = _files(tmp_path)["cfg"]
    result = subprocess.run(
        [*_console_script(), *(["-v"] if verbose else []), "check", "--offline", "-c", cfg],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )
    assert result.returncode == EXIT_INTERNAL, result.stderr
    first, *rest = result.stderr.splitlines()
    assert first == ("incident-sync: internal error: ZeroDivisionError: injected below check"
                     " --offline; rerun with -v for details")
    if verbose:
        assert "Traceback (most recent call last)" in result.stderr
        assert "offline_checks" in result.stderr
    else:
        assert rest == [] and "Traceback" not in result.stderr
