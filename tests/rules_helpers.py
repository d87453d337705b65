"""Shared helpers for the rules tests: rule files from text, incidents at a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mappings.model import Incident
from sync.rules import Outcome, RuleSet, evaluate, load_rules, loads_rules

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parent.parent / "rules.example.toml"


def rules(text: str) -> RuleSet:
    return loads_rules(text, "rules.toml")


def example() -> RuleSet:
    return load_rules(EXAMPLE)


def one_rule(when: str, then: str = 'then = { add_labels = ["hit"] }', head: str = "") -> RuleSet:
    """A file with one rule named "r" (``when`` is TOML lines under it, may be empty)."""
    return rules(f'{head}\n[[rule]]\nname = "r"\n{when}\n{then}\n')


def fires(ruleset: RuleSet, now: datetime | None = NOW, **fields: Any) -> bool:
    return bool(evaluate(Incident(**fields), ruleset, now).firings)


def run(ruleset: RuleSet, incident: Incident, now: datetime | None = NOW,
        overridden: Any = frozenset()) -> Outcome:
    return evaluate(incident, ruleset, now, overridden, explain=True)


def opened(hours: float, **fields: Any) -> Incident:
    return Incident(opened_at=NOW - timedelta(hours=hours), **fields)
