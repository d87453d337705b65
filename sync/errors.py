"""The engine's errors and the mapping from the whole error tree to exit statuses.

Contract: ``SyncError`` is the root shared with the connectors
(:mod:`connectors.base`); this module adds the errors only the engine and CLI
raise, and :func:`exit_code_for` is the single place that turns an error into
an exit status (0 ok, 1 items failed, 2 usage/config, 3 a tool unreachable or
refusing auth, 4 an internal error: an exception the code did not foresee; see
docs/architecture.md, "Exit status").
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.base import (
    AuthError,
    ConnectorError,
    FatalError,
    PreconditionFailed,
    RateLimited,
    RetriableError,
    SkippableError,
    SyncError,
    Unreachable,
)

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
# Not an error class: any exception outside the SyncError tree is a bug, and the
# CLI frame (sync.cli.app) reports it as one line with this status.
EXIT_INTERNAL = 4
# Ctrl-C: the shell convention 128 + SIGINT, so scripts can tell it from a failure.
EXIT_INTERRUPTED = 130


class ConfigError(SyncError):
    """Configuration, mapping or rules are wrong. Nothing was contacted.

    ``source`` names the file; ``problems`` holds one ``[section] key: reason``
    line each. ``str()`` is the one-line form the CLI prints.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems) or ["invalid"]
        super().__init__(f"{source}: " + "; ".join(self.problems))


class LockHeld(SyncError):
    """Another run holds the lock on this state store."""


class SafetyValve(SyncError):
    """A side with links returned nothing; the run refuses to act on it."""


class StateSchemaError(SyncError):
    """The state store was written by a newer incident-sync."""


def exit_code_for(error: BaseException) -> int:
    """The process exit status for an error that ended a command."""
    if isinstance(error, ConfigError | StateSchemaError):
        return EXIT_CONFIG
    if isinstance(error, FatalError):
        return EXIT_UNREACHABLE
    return EXIT_ITEMS_FAILED


__all__ = [
    "EXIT_CONFIG",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_ITEMS_FAILED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "AuthError",
    "ConfigError",
    "ConnectorError",
    "FatalError",
    "LockHeld",
    "PreconditionFailed",
    "RateLimited",
    "RetriableError",
    "SafetyValve",
    "SkippableError",
    "StateSchemaError",
    "SyncError",
    "Unreachable",
    "exit_code_for",
]
