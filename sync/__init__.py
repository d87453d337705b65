"""The sync engine, its state store, rules, audit and the ``incident-sync`` command."""

from __future__ import annotations

__version__ = "0.1.0"
