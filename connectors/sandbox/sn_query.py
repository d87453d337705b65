"""ServiceNow encoded queries (``sysparm_query``) for the sandbox: parse, filter, sort.

Contract:
- :func:`parse` turns an encoded query into an :class:`EncodedQuery`: ``^NQ``
  starts a new query (the groups are ORed), ``^`` ANDs conditions, ``^OR`` ORs a
  condition with the one before it (OR binds tighter than AND, as in ServiceNow:
  ``a^b^ORc`` is ``a AND (b OR c)``), ``ORDERBY<col>`` / ``ORDERBYDESC<col>`` sort.
  A literal ``^`` inside a value is written ``^^``.
- Operators: ``=``, ``!=``, ``IN``, ``NOT IN``, ``LIKE``, ``NOT LIKE``,
  ``STARTSWITH``, ``ENDSWITH``, ``ISEMPTY``, ``ISNOTEMPTY``, ``>``, ``>=``, ``<``,
  ``<=``, ``BETWEEN`` (``a@b``, inclusive). Column names, operators and values are
  case-sensitive.
- Like the real instance (``glide.invalid_query.returns_no_rows=false``), a part
  that cannot be understood is **silently ignored**: an unknown column, an
  unknown operator, a date that cannot be read. Ignored parts are kept in
  :attr:`EncodedQuery.ignored` so tests can see them; a query whose every part
  was ignored matches every row.
- Values compare by the column's kind: ``integer`` numerically, ``datetime`` as
  instants, ``boolean`` as ``true``/``false`` (``1``/``0`` accepted), anything
  else as text. Date values may be ``YYYY-MM-DD HH:MM:SS`` (UTC), ``YYYY-MM-DD``,
  ``javascript:gs.dateGenerate('d','t')`` (``t`` = ``HH:MM:SS``, ``start`` or
  ``end``), ``javascript:gs.dateGenerate("d t")`` (what pysnow emits) and the
  relative helpers ``gs.nowDateTime()``, ``gs.daysAgo(n)``, ``gs.daysAgoStart(n)``,
  ``gs.daysAgoEnd(n)``, ``gs.hoursAgo(n)``, ``gs.minutesAgo(n)``,
  ``gs.beginningOfToday()``, ``gs.endOfToday()``. Sandbox users are in UTC, so
  ``dateGenerate`` reads its argument as UTC.
- An empty value never satisfies ``>``, ``>=``, ``<``, ``<=`` or ``BETWEEN`` (it is
  NULL in the database); it does satisfy ``!=``, ``NOT IN`` and ``NOT LIKE``.
- The module is pure: the caller supplies the column kinds and a value getter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"

KindOf = Callable[[str], "str | None"]   # column -> kind, None when the column is unknown
Getter = Callable[[str], str]            # column -> the row's raw value ("" when empty)
T = TypeVar("T")

_OPERATORS = (
    "!=", ">=", "<=", "=", ">", "<", "NOT IN", "NOT LIKE", "ISNOTEMPTY", "ISEMPTY",
    "STARTSWITH", "ENDSWITH", "BETWEEN", "LIKE", "IN",
)
_CONDITION = re.compile(
    r"(?P<column>[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)"
    r"(?P<op>" + "|".join(re.escape(op) for op in _OPERATORS) + r")"
    r"(?P<value>.*)",
    re.DOTALL,
)
_ORDER = re.compile(r"ORDERBY(?P<desc>DESC)?(?P<column>[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)")
_NO_VALUE = frozenset({"ISEMPTY", "ISNOTEMPTY"})
_COMPARISONS = frozenset({">", ">=", "<", "<="})


@dataclass(frozen=True)
class Condition:
    """One ``<column><op><value>`` part; ``values`` is the value already read for its kind."""

    column: str
    op: str
    kind: str
    values: tuple[str, ...]
    # IN / NOT IN lists as a set of canonical values: journal reads ask for 100 ids at once.
    members: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Order:
    column: str
    kind: str
    descending: bool = False


@dataclass(frozen=True)
class EncodedQuery:
    """``groups`` are ORed (``^NQ``); each is clauses ANDed; each clause conditions ORed."""

    groups: tuple[tuple[tuple[Condition, ...], ...], ...]
    orders: tuple[Order, ...]
    ignored: tuple[str, ...]

    def matches(self, get: Getter) -> bool:
        groups = [g for g in self.groups if g]
        if not groups:
            return True
        return any(
            all(any(_holds(c, get(c.column)) for c in clause) for clause in group)
            for group in groups
        )


def escape_value(value: str) -> str:
    """A value as it must appear inside an encoded query (``^`` doubled)."""
    return value.replace("^", "^^")


def split_parts(text: str) -> list[str]:
    """Split on ``^`` separators, turning each escaped ``^^`` back into ``^``."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "^":
            if text.startswith("^^", index):
                current.append("^")
                index += 2
                continue
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def parse(text: str, kind_of: KindOf, now: datetime | None = None) -> EncodedQuery:
    """Parse ``text``; ``kind_of`` names each column's kind (None = unknown column)."""
    now = now or datetime.now(UTC)
    groups: list[list[list[Condition]]] = [[]]
    orders: list[Order] = []
    ignored: list[str] = []
    for index, part in enumerate(split_parts(text or "")):
        if not part or part == "EQ":
            continue
        joiner = "AND"
        body = part
        if index > 0 and part.startswith("NQ"):
            groups.append([])
            body = part[2:]
        elif index > 0 and part.startswith("OR") and not part.startswith("ORDERBY"):
            joiner = "OR"
            body = part[2:]
        order = _ORDER.fullmatch(body)
        if order:
            kind = kind_of(order["column"])
            if kind is None:
                ignored.append(part)
            else:
                orders.append(Order(order["column"], kind, bool(order["desc"])))
            continue
        condition = _condition(body, kind_of, now)
        if condition is None:
            ignored.append(part)
            continue
        clauses = groups[-1]
        if joiner == "OR" and clauses:
            clauses[-1].append(condition)
        else:
            clauses.append([condition])
    return EncodedQuery(
        groups=tuple(tuple(tuple(clause) for clause in group) for group in groups),
        orders=tuple(orders),
        ignored=tuple(ignored),
    )


def sort_rows(
    rows: Iterable[T], orders: Sequence[Order], getter: Callable[[T], Getter]
) -> list[T]:
    """Stable sort by the ORDERBY clauses, first clause most significant.

    Empty values sort first ascending (NULLs first, as in the instance database).
    """
    result = list(rows)
    for order in reversed(orders):
        result.sort(
            key=lambda row, o=order: _sort_key(o.kind, getter(row)(o.column)),
            reverse=order.descending,
        )
    return result


# --------------------------------------------------------------------------- internals


def _condition(body: str, kind_of: KindOf, now: datetime) -> Condition | None:
    match = _CONDITION.fullmatch(body)
    if not match:
        return None
    column, op, raw = match["column"], match["op"], match["value"]
    kind = kind_of(column)
    if kind is None:
        return None
    if op in _NO_VALUE:
        return Condition(column, op, kind, ())
    if op in ("IN", "NOT IN"):
        pieces = raw.split(",")
    elif op == "BETWEEN":
        low, sep, high = raw.partition("@")
        if not sep:
            return None
        pieces = [low, high]
    else:
        pieces = [raw]
    values = []
    for piece in pieces:
        value = _read_value(kind, piece, now)
        if value is None:
            return None
        values.append(value)
    members = frozenset(_canonical(kind, v) for v in values) if op in ("IN", "NOT IN") \
        else frozenset()
    return Condition(column, op, kind, tuple(values), members)


def _read_value(kind: str, raw: str, now: datetime) -> str | None:
    """The value in its canonical text form for ``kind``; None when unreadable."""
    if kind == "datetime":
        if raw == "":
            return ""
        moment = parse_datetime_value(raw, now)
        return None if moment is None else moment.strftime(DATETIME_FORMAT)
    if kind == "boolean":
        return {"1": "true", "0": "false"}.get(raw, raw)
    return raw


_DATE_GENERATE = re.compile(
    r"javascript:\s*gs\.dateGenerate\(\s*(['\"])(?P<a>[^'\"]*)\1"
    r"(?:\s*,\s*(['\"])(?P<b>[^'\"]*)\3)?\s*\)\s*;?"
)
_RELATIVE = re.compile(r"javascript:\s*gs\.(?P<fn>[A-Za-z]+)\(\s*(?P<n>-?\d*)\s*\)\s*;?")


def parse_datetime_value(raw: str, now: datetime) -> datetime | None:
    """A date value of an encoded query as an aware UTC datetime, or None."""
    text = raw.strip()
    generated = _DATE_GENERATE.fullmatch(text)
    if generated:
        date_part, time_part = generated["a"], generated["b"]
        if time_part is None:
            return _plain_datetime(date_part)
        if time_part == "start":
            return _plain_datetime(date_part)
        if time_part == "end":
            start = _plain_datetime(date_part)
            return None if start is None else start + timedelta(days=1, seconds=-1)
        return _plain_datetime(f"{date_part} {time_part}")
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return _relative(relative["fn"], relative["n"], now)
    return _plain_datetime(text)


def _plain_datetime(text: str) -> datetime | None:
    for fmt in (DATETIME_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _relative(function: str, count: str, now: datetime) -> datetime | None:
    n = int(count) if count not in ("", "-") else 0
    now = now.astimezone(UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    table: dict[str, Callable[[], datetime]] = {
        "nowDateTime": lambda: now,
        "daysAgo": lambda: now - timedelta(days=n),
        "daysAgoStart": lambda: midnight - timedelta(days=n),
        "daysAgoEnd": lambda: midnight - timedelta(days=n - 1, seconds=1),
        "hoursAgo": lambda: now - timedelta(hours=n),
        "minutesAgo": lambda: now - timedelta(minutes=n),
        "beginningOfToday": lambda: midnight,
        "endOfToday": lambda: midnight + timedelta(days=1, seconds=-1),
    }
    make = table.get(function)
    return make() if make else None


def _as_int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def _canonical(kind: str, value: str) -> str:
    """The form two equal values share: integers by value ("07" is "7"), else as is."""
    if kind == "integer":
        number = _as_int(value)
        if number is not None:
            return str(number)
    return value


def _equal(kind: str, actual: str, wanted: str) -> bool:
    if kind == "integer":
        left, right = _as_int(actual), _as_int(wanted)
        if left is not None and right is not None:
            return left == right
    return actual == wanted


def _compare(kind: str, actual: str, wanted: str) -> int | None:
    """-1/0/1 comparing ``actual`` to ``wanted``; None when not comparable (empty)."""
    if actual == "" or wanted == "":
        return None
    if kind == "integer":
        left, right = _as_int(actual), _as_int(wanted)
        if left is None or right is None:
            return None
        return (left > right) - (left < right)
    # Datetimes are canonical "YYYY-MM-DD HH:MM:SS" text, which sorts like the instant.
    return (actual > wanted) - (actual < wanted)


def _holds(condition: Condition, actual: str) -> bool:
    op, kind, values = condition.op, condition.kind, condition.values
    if kind == "boolean":
        actual = {"1": "true", "0": "false"}.get(actual, actual)
    if op == "ISEMPTY":
        return actual == ""
    if op == "ISNOTEMPTY":
        return actual != ""
    if op == "=":
        return _equal(kind, actual, values[0])
    if op == "!=":
        return not _equal(kind, actual, values[0])
    if op == "IN":
        return _canonical(kind, actual) in condition.members
    if op == "NOT IN":
        return _canonical(kind, actual) not in condition.members
    if op == "LIKE":
        return values[0] in actual
    if op == "NOT LIKE":
        return values[0] not in actual
    if op == "STARTSWITH":
        return actual.startswith(values[0])
    if op == "ENDSWITH":
        return actual.endswith(values[0])
    if op == "BETWEEN":
        low, high = _compare(kind, actual, values[0]), _compare(kind, actual, values[1])
        return low is not None and high is not None and low >= 0 and high <= 0
    if op in _COMPARISONS:
        result = _compare(kind, actual, values[0])
        if result is None:
            return False
        return {">": result > 0, ">=": result >= 0, "<": result < 0, "<=": result <= 0}[op]
    return False  # pragma: no cover - the regex admits only the operators above


def _sort_key(kind: str, value: str) -> tuple[int, int | str]:
    if value == "":
        return (0, 0)
    if kind == "integer":
        number = _as_int(value)
        if number is not None:
            return (1, number)
    return (2, value) if kind == "integer" else (1, value)
