"""Vendor connectors: one module per vendor plus the protocol they share (base.py)."""

from __future__ import annotations
