"""The rules hook: where local rules meet the merged incident, before the diff.

Contract:
- :func:`apply_rules` takes the merged incident and a sequence of rules and
  returns the (possibly) changed incident plus one :class:`RuleFiring` per
  field a rule changed, traced by the rule's name. It never mutates its input.
- A rule is anything with a ``name`` and a pure ``apply(incident)`` that
  returns the changed incident, or None when it does not fire. Rules run in
  order, each on the previous one's result.
- With no rules the incident comes back unchanged and there are no firings.
  The declarative TOML rules (categorization, priority, escalation) are a later
  issue; until they exist no rule is loaded from configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mappings.model import Incident


class Rule(Protocol):
    name: str

    def apply(self, incident: Incident) -> Incident | None: ...


@dataclass(frozen=True)
class RuleFiring:
    """Rule ``rule`` changed ``field`` from ``old`` to ``new`` (JSON-ready values)."""

    rule: str
    field: str
    old: Any
    new: Any

    def describe(self) -> str:
        return f"rule {self.rule!r} set {self.field}: {self.old!r} -> {self.new!r}"

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "field": self.field, "old": self.old, "new": self.new}


def apply_rules(
    incident: Incident, rules: Sequence[Rule] = ()
) -> tuple[Incident, list[RuleFiring]]:
    """Run ``rules`` in order on a copy of ``incident``; return it and what fired."""
    firings: list[RuleFiring] = []
    current = incident
    for rule in rules:
        result = rule.apply(current.model_copy(deep=True))
        if result is None:
            continue
        before = current.model_dump(mode="json")
        after = result.model_dump(mode="json")
        for name in sorted(after):
            if after[name] != before.get(name):
                firings.append(RuleFiring(rule.name, name, before.get(name), after[name]))
        current = result
    return current, firings
