"""Neutral incident model and the declarative mapping to and from vendor records.

Pure: nothing in this package performs I/O beyond reading profile files it is
handed, and nothing imports ``sync`` or ``connectors``.
"""

from __future__ import annotations
