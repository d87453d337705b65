"""Building ServiceNow encoded queries that a value can never restructure.

Contract:
- Pure string building; no I/O, no pysnow (so it can be tested and reused alone).
- Every *value* placed in a query goes through :func:`escape_value`. The rule:
  ``^`` is the only character that separates encoded-query terms (``^`` AND,
  ``^OR``, ``^NQ``, ``^ORDERBY``), and a literal caret is written ``^^``. So
  doubling every caret turns ``^OR``/``^NQ``/``^ORDERBY`` inside a value into
  plain text, whatever follows it. Newlines and other characters have no
  meaning in an encoded query and are kept as they are; the URL encoding of
  ``sysparm_query`` is the HTTP layer's job.
- ``IN`` lists separate values with commas and have no escape for a comma, so a
  value containing one is matched with an ``=`` term joined by ``^OR`` instead.
- Field names are never escaped but validated (:func:`check_field`): letters,
  digits and underscores, optionally one level of dot-walk; anything else is a
  ValueError naming the field.
- The configured scope query is trusted (an admin wrote it) but may contain
  ``^NQ`` (several OR-ed queries): our own conditions are appended to *every*
  segment, so they narrow the whole scope and not just its last segment. Sort
  clauses in the scope are dropped: the connector owns the order.
- Timestamps are written as UTC literals ``YYYY-MM-DD HH:MM:SS``, never
  ``gs.dateGenerate`` (which reads the integration user's time zone).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_SYS_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
SN_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
ORDER = ("sys_updated_on", "sys_id")


def check_field(name: str) -> str:
    """``name`` when it is a plain (or once dot-walked) field name, else ValueError."""
    if not isinstance(name, str) or not _FIELD.match(name):
        raise ValueError(f"not a ServiceNow field name: {name!r}")
    return name


def check_sys_id(value: str) -> str:
    """``value`` when it can be a sys_id (it goes into URL paths), else ValueError."""
    if not isinstance(value, str) or not _SYS_ID.match(value):
        raise ValueError(f"not a ServiceNow sys_id: {value!r}")
    return value


def escape_value(value: str) -> str:
    """A value as it must appear in an encoded query: every ``^`` doubled."""
    return str(value).replace("^", "^^")


def sn_time(moment: datetime) -> str:
    """An aware datetime as a ServiceNow UTC literal (seconds; sub-seconds dropped)."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC).strftime(SN_TIME_FORMAT)


def parse_sn_time(text: str) -> datetime | None:
    """A ServiceNow UTC literal as an aware datetime; None for ``""``."""
    if not text:
        return None
    if (len(text) == 19 and text[10] == " " and text[4] == text[7] == "-"
            and text[13] == text[16] == ":" and text.isascii() and text[0] > " "):
        # The Table API's one shape (every record carries two), without strptime's
        # cost: what strptime makes of it, or strptime's to judge when it is not.
        try:
            return datetime.fromisoformat(text + "+00:00")
        except ValueError:
            pass
    try:
        return datetime.strptime(text, SN_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"not a ServiceNow UTC timestamp: {text!r}") from None


def equals(field: str, value: str) -> str:
    return f"{check_field(field)}={escape_value(value)}"


def any_of(field: str, values: Sequence[str]) -> str:
    """One term matching ``field`` equal to any of ``values`` (exactly).

    Comma-free values go in one ``IN`` list; values with a comma, which an
    ``IN`` list cannot hold, become ``^OR`` alternatives of the same term.
    """
    check_field(field)
    if not values:
        raise ValueError(f"any_of({field}): no values")
    plain = [v for v in values if "," not in v]
    commas = [v for v in values if "," in v]
    alternatives = []
    if plain:
        alternatives.append(f"{field}IN{','.join(escape_value(v) for v in plain)}")
    alternatives.extend(equals(field, v) for v in commas)
    return "^OR".join(alternatives)


def split_top_level(query: str, separator: str) -> list[str]:
    """Split ``query`` on ``separator`` (``^NQ`` or ``^``), ignoring escaped ``^^``."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    sep_tail = separator[1:]
    while i < len(query):
        ch = query[i]
        if ch == "^":
            if query.startswith("^^", i):
                current.append("^^")
                i += 2
                continue
            if query.startswith(sep_tail, i + 1):
                parts.append("".join(current))
                current = []
                i += len(separator)
                continue
        current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def scope_segments(scope: str) -> list[str]:
    """The scope's ``^NQ`` segments with any sort clauses removed."""
    segments = []
    for segment in split_top_level(scope.strip(), "^NQ"):
        terms = [
            t for t in split_top_level(segment, "^")
            if t and not t.startswith(("ORDERBY", "GROUPBY"))
        ]
        segments.append("^".join(terms))
    return segments


# Field names are lower case on ServiceNow and operators upper case, so the name
# ends where the operator begins (categoryINa,b -> category).
_TERM_FIELD = re.compile(r"^(?:NQ|OR)?([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)")


def scope_fields(scope: str) -> list[str]:
    """The field names the terms of a scope query name (to check they exist)."""
    names = []
    for term in split_top_level(scope.strip(), "^"):
        if not term or term.startswith(("ORDERBY", "GROUPBY")) or term == "EQ":
            continue
        match = _TERM_FIELD.match(term)
        if match:
            names.append(match.group(1))
    return list(dict.fromkeys(names))


def order_clause(fields: Sequence[str] = ORDER) -> str:
    return "^".join(f"ORDERBY{check_field(f)}" for f in fields)


def combine(scope: str, alternatives: Sequence[Sequence[str]], *, order: bool = True) -> str:
    """``scope AND (alt_1 OR alt_2 ...)`` where each alternative is an AND of terms.

    Expressed with ``^NQ``: every scope segment is combined with every
    alternative, since ``^NQ`` is the only top-level OR an encoded query has.
    """
    segments = scope_segments(scope) if scope.strip() else [""]
    queries = []
    for segment in segments:
        for terms in alternatives or [()]:
            joined = "^".join(t for t in (segment, *terms) if t)
            queries.append(joined)
    query = "^NQ".join(queries)
    if order:
        query = f"{query}^{order_clause()}" if query else order_clause()
    return query


def pull_query(
    scope: str, since: datetime | None, after: tuple[str, str] | None = None
) -> str:
    """The query for one keyset page of a pull.

    ``since`` is the inclusive watermark; ``after`` the (sys_updated_on, sys_id)
    of the last record already returned. Keyset paging instead of offsets: a
    record updated while we page moves to the end of the order instead of
    shifting every later record one place back, which with offsets would skip one.
    """
    if after is None:
        terms = [f"sys_updated_on>={sn_time(since)}"] if since is not None else []
        return combine(scope, [terms])
    stamp, sys_id = after
    return combine(
        scope,
        [
            [f"sys_updated_on>{escape_value(stamp)}"],
            [f"sys_updated_on={escape_value(stamp)}", f"sys_id>{escape_value(sys_id)}"],
        ],
    )
