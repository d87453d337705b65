"""``python -m sync.cli``: the same command as the ``incident-sync`` console script."""

from __future__ import annotations

from sync.cli.main import main

main()
