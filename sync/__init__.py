"""The sync engine, its state store, rules, audit and the ``incident-sync`` command."""

__version__ = "0.1.0"
