"""JQL building for the Jira connector: every value quoted, nothing concatenated raw.

Contract:
- :func:`quote` turns any string into one JQL string literal: wrapped in double
  quotes, ``\\`` and ``"`` escaped, newline / carriage return / tab written as
  JQL escapes. Any other control character is refused with ``ValueError`` (no
  JQL escape exists for it, and no legitimate id or name contains one). A quoted
  value can therefore never end the literal early: ``") OR project = X`` stays a
  harmless string.
- The builders (:func:`pull_jql`, :func:`keys_jql`, :func:`markers_jql`,
  :func:`status_probe_jql`) put only quoted values, issue keys checked against
  the key syntax, and the operator's own scope JQL (parenthesised, validated by
  :func:`validate_scope_jql`) into a query.
- :func:`marker_label` / :func:`foreign_id_from_label` map a ServiceNow id to
  the ``snow-<id>`` label and back, injectively: ids made only of label-safe
  characters (sys_ids are 32 hex digits) stay readable; anything else is
  percent-encoded, because Jira labels cannot hold spaces and the mapping must
  stay exact for hostile ids.
- Date literals are minute-precision (all JQL accepts) and rounded *down* in
  the searching user's time zone, so ``updated >= <literal>`` never misses a
  record; callers drop the overlap by comparing full timestamps.

No I/O, no ``jira`` library: pure functions, unit-tested with hostile values.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import quote as _percent_encode
from urllib.parse import unquote as _percent_decode

LABEL_PREFIX = "snow-"
ORDER = "ORDER BY updated ASC, key ASC"

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ISSUE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-[1-9][0-9]*$")
_LABEL_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
_CUSTOM_FIELD = re.compile(r"^customfield_(\d+)$")
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


def quote(value: str) -> str:
    """``value`` as one JQL string literal, e.g. ``a"b`` -> ``"a\\"b"``."""
    if not isinstance(value, str):
        raise TypeError(f"JQL value must be a string, got {type(value).__name__}")
    out: list[str] = []
    for position, char in enumerate(value):
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif unicodedata.category(char) == "Cc":
            raise ValueError(
                f"JQL value contains control character U+{ord(char):04X} at position {position}"
            )
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def is_issue_key(value: str) -> bool:
    """True for strings shaped like an issue key (``OPS-12``); only those can exist."""
    return bool(_ISSUE_KEY.match(value))


def validate_scope_jql(jql: str) -> str:
    """The operator's extra scope JQL, stripped; refuses what would break the query."""
    text = jql.strip()
    if _ORDER_BY.search(text):
        raise ValueError("jql: must not contain ORDER BY (the connector orders pulls itself)")
    if text.count("(") != text.count(")"):
        raise ValueError("jql: unbalanced parentheses")
    return text


def jql_datetime(moment: datetime, zone: tzinfo = UTC) -> str:
    """A quoted ``"yyyy-MM-dd HH:mm"`` literal for ``moment`` in ``zone``, rounded down."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone).replace(second=0, microsecond=0)
    return quote(local.strftime("%Y-%m-%d %H:%M"))


def scope_jql(project: str, extra: str = "") -> str:
    """``project = "OPS"`` plus the operator's extra scope in parentheses."""
    clause = f"project = {quote(project)}"
    return f"{clause} AND ({extra})" if extra else clause


def pull_jql(
    project: str,
    extra: str,
    since: datetime | None,
    overlap_minutes: int,
    zone: tzinfo = UTC,
) -> str:
    """The incremental pull query: scope, ``updated >=`` watermark minus overlap, stable order."""
    query = scope_jql(project, extra)
    if since is not None:
        start = since - timedelta(minutes=overlap_minutes)
        query += f" AND updated >= {jql_datetime(start, zone)}"
    return f"{query} {ORDER}"


def keys_jql(keys: Sequence[str]) -> str:
    """``key in ("OPS-1", ...)`` for the well-formed keys; ``ValueError`` when none is."""
    valid = [key for key in keys if is_issue_key(key)]
    if not valid:
        raise ValueError("no well-formed issue key to search for")
    return f"key in ({', '.join(quote(key) for key in valid)}) {ORDER}"


def marker_label(foreign_id: str) -> str:
    """The label carrying a ServiceNow id: ``snow-<id>``, percent-encoded when needed."""
    if not foreign_id:
        raise ValueError("foreign id must not be empty")
    if _LABEL_SAFE.match(foreign_id) and "%" not in foreign_id:
        return LABEL_PREFIX + foreign_id
    return LABEL_PREFIX + _percent_encode(foreign_id, safe="")


def foreign_id_from_label(label: str) -> str | None:
    """The ServiceNow id a marker label carries, or None for any other label."""
    if not label.startswith(LABEL_PREFIX) or len(label) == len(LABEL_PREFIX):
        return None
    return _percent_decode(label[len(LABEL_PREFIX):], errors="strict")


def field_clause(field_id: str) -> str:
    """How JQL names a field: ``cf[10100]`` for custom fields, else the quoted id."""
    match = _CUSTOM_FIELD.match(field_id)
    return f"cf[{match.group(1)}]" if match else quote(field_id)


def markers_jql(foreign_ids: Iterable[str], marker_field: str | None = None) -> str:
    """Issues carrying any of these ServiceNow ids, across the whole site.

    Labels match exactly (``labels in``); a text custom field only supports the
    contains operator ``~``, so callers must filter the results exactly.
    """
    ids = [fid for fid in dict.fromkeys(foreign_ids) if fid]
    if not ids:
        raise ValueError("no foreign id to search for")
    if marker_field is None:
        labels = ", ".join(quote(marker_label(fid)) for fid in ids)
        return f"labels in ({labels}) {ORDER}"
    clause = field_clause(marker_field)
    return "(" + " OR ".join(f"{clause} ~ {quote(fid)}" for fid in ids) + f") {ORDER}"


def status_probe_jql(project: str, status: str) -> str:
    """Any one issue of the project in ``status``: used to learn its transitions read-only."""
    return f"project = {quote(project)} AND status = {quote(status)} {ORDER}"


def quotable(value: str) -> bool:
    """True when :func:`quote` accepts ``value`` (no unescapable control character)."""
    try:
        quote(value)
    except ValueError:
        return False
    return True
