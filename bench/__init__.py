"""Benchmarks of incident-sync: request counts and speed against the local sandboxes."""

from __future__ import annotations
