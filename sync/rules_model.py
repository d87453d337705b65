"""The rules file format: what a ``[sync] rules`` TOML file may say, validated.

Contract:
- :func:`parse_rules_file` reads a TOML file into a :class:`RulesFile`; every
  table is a pydantic model with ``extra="forbid"``, so an unknown key (a
  misspelt condition or action) is refused, not ignored.
- Problems raise :class:`RulesFileError` whose ``str()`` is one line:
  ``<file>: rule '<name>': <reason>`` (or ``<file>: [sla] ...`` for the
  file-wide tables). The caller turns it into a ConfigError (exit 2).
- Layout of a file::

      [escalation]
      manager_group = "Incident Managers"   # who hierarchical escalation notes address

      [sla]
      P1 = { response = "15m", resolution = "4h" }   # P1..P5, each optional

      [[rule]]
      name = "security-incidents"
      when.any = [ { text_contains = ["ransomware", "phishing"] },
                   { field = "category", equals = "security" } ]
      then = { assignment_group = "Security Operations", add_labels = ["security"] }

- A condition table holds exactly one test: ``all``/``any`` (lists of
  conditions), ``not`` (one condition), ``field`` with one of ``equals``,
  ``in``, ``not_in``, ``matches``, ``lt``/``lte``/``gt``/``gte``;
  ``text_contains`` (keywords, optional ``fields``); ``matches`` without a field
  (a regex over title and description); ``open_longer_than`` or
  ``unchanged_longer_than`` (durations such as ``"15m"``, ``"4h"``,
  ``"1d12h"``); ``sla_breached`` (``response``, ``resolution`` or ``any``).
  A ``when`` table is itself a condition; several tests in it are not allowed
  (write ``all``), so nothing is combined by accident.
- Durations are ``<number><unit>`` groups, units ``s m h d w``; anything else
  is refused with the text shown.
- Pure data: no regex is compiled here beyond checking it compiles, and
  nothing but the one file is read.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Scalar = str | int | bool


class RulesFileError(ValueError):
    """A rules file that cannot be honoured; ``str()`` is the one-line message."""


def parse_duration(text: str) -> timedelta:
    """``"1d12h"`` -> 36 hours. Refuses empty, zero, negative and unit-less text."""
    compact = text.replace(" ", "").lower()
    if not compact or _DURATION.sub("", compact):
        raise ValueError(f"bad duration {text!r}: use a number and a unit (s, m, h, d, w),"
                         " e.g. '15m', '4h', '1d12h'")
    total = timedelta()
    for amount, unit in _DURATION.findall(compact):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    if total <= timedelta():
        raise ValueError(f"bad duration {text!r}: must be longer than zero")
    return total


def check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"bad regex {pattern!r}: {error}") from None
    return pattern


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ConditionSpec(_Strict):
    """One test, or a combination of tests (see the module contract)."""

    all: list[ConditionSpec] | None = None
    any: list[ConditionSpec] | None = None
    not_: ConditionSpec | None = Field(default=None, alias="not")
    field: str | None = None
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
    matches: str | None = None
    lt: int | None = None
    lte: int | None = None
    gt: int | None = None
    gte: int | None = None
    text_contains: list[str] | None = None
    fields: list[str] | None = None
    open_longer_than: str | None = None
    unchanged_longer_than: str | None = None
    sla_breached: Literal["response", "resolution", "any"] | None = None

    _regex = field_validator("matches")(lambda cls, v: v if v is None else check_regex(v))

    @field_validator("open_longer_than", "unchanged_longer_than")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("text_contains")
    @classmethod
    def _keywords(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("text_contains needs at least one keyword")
            for word in value:
                if not word.strip() or not word.strip().rstrip("*"):
                    raise ValueError(f"text_contains: empty keyword {word!r}")
        return value

    def set_keys(self) -> list[str]:
        """The keys this table sets, by their TOML names."""
        names = {"not_": "not", "in_": "in"}
        return [names.get(key, key) for key in self.model_fields_set]


class EscalationSpec(_Strict):
    manager_group: str | None = None


class SlaTarget(_Strict):
    response: str
    resolution: str

    _durations = field_validator("response", "resolution")(
        lambda cls, v: (parse_duration(v), v)[1])


class SlaSpec(_Strict):
    P1: SlaTarget | None = None
    P2: SlaTarget | None = None
    P3: SlaTarget | None = None
    P4: SlaTarget | None = None
    P5: SlaTarget | None = None


class ActionSpec(_Strict):
    """What a rule does when it fires (all optional; at least one)."""

    category: str | None = None
    subcategory: str | None = None
    impact: int | None = Field(default=None, ge=1, le=3)
    urgency: int | None = Field(default=None, ge=1, le=3)
    priority: int | None = Field(default=None, ge=1, le=5)
    add_labels: list[str] | None = None
    assignment_group: str | None = None
    escalate: int | Literal["moderate", "high", "overdue"] | None = None
    notify: str | None = None
    stop: bool = False

    @field_validator("escalate")
    @classmethod
    def _level(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 1 <= value <= 3:
            raise ValueError(f"escalate: level {value} is not 1 (moderate), 2 (high) or"
                             " 3 (overdue)")
        return value

    @field_validator("add_labels")
    @classmethod
    def _labels(cls, value: list[str] | None) -> list[str] | None:
        for label in value or []:
            # Jira labels cannot hold spaces: a label with one could never travel.
            if not label or any(ch.isspace() for ch in label):
                raise ValueError(f"add_labels: {label!r} is not a label (no spaces, not empty)")
        return value


class RuleSpec(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    when: ConditionSpec | None = None
    then: ActionSpec


class RulesFile(_Strict):
    escalation: EscalationSpec = EscalationSpec()
    sla: SlaSpec = SlaSpec()
    rule: list[RuleSpec] = Field(default_factory=list)


def _rule_name(raw: dict[str, Any], loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rule" and isinstance(loc[1], int):
        rules = raw.get("rule")
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            name = rules[loc[1]].get("name")
            return str(name) if name else f"#{loc[1] + 1}"
    return None


def _describe(item: Any) -> str:
    """A pydantic error as a reason a person reads: where in the rule, and what."""
    loc = tuple(item["loc"])
    where = [str(p) for p in (loc[2:] if loc[:1] == ("rule",) else loc)
             if not str(p).startswith(("function-", "tagged-"))]
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "extra_forbidden":
        kind = "condition" if "when" in where else "action" if "then" in where else "key"
        message = f"unknown {kind} {where[-1]!r}"
        where = where[:-1]
    elif item["type"] == "missing":
        message = f"{where[-1]!r} is required"
        where = where[:-1]
    elif "input" in item and item["type"] not in ("value_error",):
        message = f"{message} (got {item['input']!r})"
    return f"{'.'.join(where)}: {message}" if where else message


def validation_error(path: str, raw: dict[str, Any], error: ValidationError) -> RulesFileError:
    item = error.errors()[0]
    name = _rule_name(raw, tuple(item["loc"]))
    head = f"rule {name!r}: " if name is not None else ""
    return RulesFileError(f"{path}: {head}{_describe(item)}")


def parse_rules_file(path: Path) -> tuple[RulesFile, dict[str, Any]]:
    """The validated file and its raw TOML (for error messages naming rules)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesFileError(f"{path}: no such rules file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RulesFileError(f"{path}: cannot read: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise RulesFileError(f"{path}: not valid TOML: {error}") from None
    try:
        return RulesFile.model_validate(raw), raw
    except ValidationError as error:
        raise validation_error(str(path), raw, error) from None
