"""The ``incident-sync`` frame: the typer app, error reporting, exit statuses.

Contract:
- Every subcommand accepts ``--config PATH`` (default ``incident-sync.toml`` or
  ``$INCIDENT_SYNC_CONFIG``).
- Errors reach the user as ONE line on stderr, never a traceback, and the exit
  status is decided in one place (:func:`sync.errors.exit_code_for`):
  0 all done, 1 items failed (or the lock is held), 2 usage/config, 3 a tool
  unreachable or refusing auth, 4 internal error.
- Exit 4: an exception no command foresaw (a bug) ends as
  ``incident-sync: internal error: <what>; rerun with -v for details``; with
  ``-v`` the traceback goes to the log on stderr. The root command group
  (:class:`GuardedGroup`) does this for every command, present and future, so
  no command body needs its own catch-all. Ctrl-C is not an error: one line,
  ``incident-sync: interrupted``, exit 130 (a command may say more, as ``run``
  does). Values of secrets set in the environment are masked in both.
- Root options for every command: ``-v``/``-vv`` (INFO: each pair's actions;
  DEBUG: each HTTP request) and ``--log-format text|json`` (or
  ``$INCIDENT_SYNC_LOG_FORMAT``), accepted before or after the command
  (:func:`hoist_log_options`); :mod:`sync.logs` formats the lines. Under
  ``json`` the frame's one-line messages (:func:`say`) are log records too, so
  stderr stays one JSON object per line for a log pipeline.
- This module is the frame only: it imports no command. Each command is a plain
  function in its own module of :mod:`sync.cli`, and :mod:`sync.cli.register`
  (the one module that knows them all) adds them to :data:`app`; the console
  script enters through :func:`sync.cli.main.main`.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from sync import __version__, logs
from sync.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    SyncError,
    exit_code_for,
)
from sync.settings import DEFAULT_CONFIG, ENV_PREFIX, Settings, load_settings

log = logging.getLogger(__name__)
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)

# Exceptions that are click's own way of ending a command (exit statuses, usage
# errors, aborts) and pipes closed by the reader (click quiets those itself):
# none of them is a bug.
# Typer has vendored click since 0.2x; its usage-error base is reached through the
# public typer.BadParameter on either kind of install.
_CLICK_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
_NOT_INTERNAL = (typer.Exit, typer.Abort, _CLICK_ERROR, BrokenPipeError)


def internal_error_line(error: BaseException) -> str:
    """The one line for an unforeseen exception: its type and message, secrets masked."""
    what = " ".join(str(error).split()) or "(no message)"
    return f"internal error: {type(error).__name__}: {logs.masked(what)}; rerun with -v for details"


def report_internal_error(error: BaseException, *, verbose: bool) -> None:
    """Print the one line; with ``verbose`` log the traceback (stderr) for a bug report."""
    say(internal_error_line(error))
    if verbose:
        text = "".join(traceback.format_exception(error))
        log.error("internal error, traceback follows:\n%s", logs.masked(text.rstrip()))


def _verbose(ctx: typer.Context | None) -> bool:
    return bool(ctx is not None and ctx.find_root().params.get("verbose"))


class GuardedGroup(TyperGroup):
    """The root command group: nothing a command lets escape reaches the user raw.

    ``invoke`` runs the group callback and the chosen (sub)command, so catching
    there covers every command, including ones added later; ``main`` also
    covers argument parsing. A SyncError a command did not report itself still
    gets its usual status; anything else is a bug (exit 4).
    """

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _show_flags_as_flags(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _flags_of(command, ctx)
        return command

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _NOT_INTERNAL:
            raise
        except KeyboardInterrupt:
            # Typer would exit 130 silently; say why the command stopped.
            say("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except SyncError as error:
            say(str(error))
            raise typer.Exit(exit_code_for(error)) from None
        except Exception as error:
            report_internal_error(error, verbose=_verbose(ctx))
            raise typer.Exit(EXIT_INTERNAL) from None

    def main(self, args: Sequence[str] | None = None, *more: Any, **extra: Any) -> Any:
        args = hoist_log_options(list(args if args is not None else sys.argv[1:]))
        try:
            return super().main(args, *more, **extra)
        except _NOT_INTERNAL:
            raise
        except Exception as error:  # outside invoke: while parsing the arguments
            if not extra.get("standalone_mode", True):
                raise
            verbose = any(a in ("-v", "--verbose") or a.startswith("-vv")
                          for a in (args if args is not None else sys.argv[1:]))
            report_internal_error(error, verbose=verbose)
            sys.exit(EXIT_INTERNAL)


def hoist_log_options(args: list[str]) -> list[str]:
    """``run -v --log-format json`` read as ``-v --log-format json run``.

    The logging options belong to the root command, so that every command has
    them; people also type them after the command (a systemd unit's
    ``ExecStart=incident-sync run ... -v``). They are moved before it, in their
    order; nothing after ``--`` is touched.
    """
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg == "--verbose" or re.fullmatch(r"-v+", arg) or arg.startswith("--log-format="):
            front.append(arg)
        elif arg == "--log-format" and index + 1 < len(args):
            front.extend(args[index:index + 2])
            index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


def _show_flags_as_flags(params: Sequence[Any]) -> None:
    """Give options that take no value (flags, counters) no type in ``--help``.

    Typer's rich help shows every option's type, flags included, so ``--version``
    read as ``--version <bool>``, as if it wanted a value. An empty metavar
    leaves the type column blank for exactly those options.
    """
    for param in params:
        if param is not None and (getattr(param, "is_flag", False)
                                  or getattr(param, "count", False)):
            param.metavar = ""


def _flags_of(command: Any, ctx: Any) -> None:
    """:func:`_show_flags_as_flags` for ``command``, its help option and its subcommands."""
    # The help option is made on first use and cached on the command; a subcommand's
    # context inherits the help option names of this one, so it is the same option.
    _show_flags_as_flags([*command.params, command.get_help_option(ctx)])
    for sub in getattr(command, "commands", {}).values():
        _flags_of(sub, ctx)


app = typer.Typer(
    name="incident-sync",
    cls=GuardedGroup,
    help="Keep ITIL incidents in step between ServiceNow and Jira Service Management.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

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


def say(message: str, *, level: int = logging.ERROR) -> None:
    """One line for the user on stderr: ``incident-sync: <message>``.

    Under ``--log-format json`` stderr is a stream of JSON lines for a log
    pipeline, so the line becomes a log record of ``level`` instead.
    """
    if logs.current_format() == "json":
        log.log(level, "%s", message)
    else:
        stderr.print(f"incident-sync: {message}", markup=False)


def fail(message: str, code: int) -> NoReturn:
    """Print one line to stderr and exit with ``code``."""
    say(message)
    raise typer.Exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn any SyncError into one stderr line and its exit status (exit_code_for)."""
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


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


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
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True,
        help="More logs on stderr: -v each pair's actions, -vv each HTTP request "
             "(also accepted after the command).")] = 0,
    log_format: Annotated[LogFormat, typer.Option(
        "--log-format", envvar=f"{ENV_PREFIX}LOG_FORMAT", case_sensitive=False,
        help="text for people; json for a log pipeline (one object per line).")
    ] = LogFormat.TEXT,
) -> None:
    logs.configure(verbose, log_format.value)
