"""The ServiceNow Aggregate API (``GET /api/now/stats/{table}``) for the sandbox, §1.8.

Contract: :func:`aggregate` computes the ``result`` of one stats call over rows
already filtered by ``sysparm_query``: ``stats.count`` when ``sysparm_count=true``,
``stats.min|max|sum|avg`` per ``sysparm_{min,max,sum,avg}_fields`` (each a
``{field: value}`` object), all numbers as strings. With ``sysparm_group_by`` the
result is a list, one item per distinct combination (sorted by value), each with
``groupby_fields: [{"field", "value"}]``. Unknown fields are ignored, as
everywhere in the Table API. Empty values are left out of min/max/sum/avg;
integer columns compare numerically, other columns as text. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from connectors.sandbox.sn_query import Getter

Row = TypeVar("Row")
KindOf = Callable[[str], "str | None"]


@dataclass(frozen=True)
class StatsRequest:
    count: bool = False
    group_by: tuple[str, ...] = ()
    min_fields: tuple[str, ...] = ()
    max_fields: tuple[str, ...] = ()
    sum_fields: tuple[str, ...] = ()
    avg_fields: tuple[str, ...] = ()

    def known(self, kind_of: KindOf) -> StatsRequest:
        """The same request without the fields the table does not have."""
        def keep(names: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(n for n in names if kind_of(n) is not None)
        return StatsRequest(self.count, keep(self.group_by), keep(self.min_fields),
                            keep(self.max_fields), keep(self.sum_fields),
                            keep(self.avg_fields))


def aggregate(rows: Sequence[Row], getter: Callable[[Row], Getter], request: StatsRequest,
              kind_of: KindOf) -> dict[str, Any] | list[dict[str, Any]]:
    request = request.known(kind_of)
    if not request.group_by:
        return {"stats": _stats([getter(r) for r in rows], request, kind_of)}
    groups: dict[tuple[str, ...], list[Getter]] = {}
    for row in rows:
        get = getter(row)
        groups.setdefault(tuple(get(f) for f in request.group_by), []).append(get)
    return [
        {"stats": _stats(members, request, kind_of),
         "groupby_fields": [{"field": f, "value": v} for f, v in zip(request.group_by, key,
                                                                     strict=True)]}
        for key, members in sorted(groups.items())
    ]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _format(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.4f}"


def _stats(rows: Sequence[Getter], request: StatsRequest, kind_of: KindOf) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if request.count:
        out["count"] = str(len(rows))
    for name, fields in (("min", request.min_fields), ("max", request.max_fields)):
        if not fields:
            continue
        out[name] = {}
        for field in fields:
            values = [get(field) for get in rows if get(field) != ""]
            if kind_of(field) == "integer":
                numbers = [n for n in map(_number, values) if n is not None]
                chosen = (min if name == "min" else max)(numbers) if numbers else None
                out[name][field] = "" if chosen is None else _format(chosen)
            else:
                out[name][field] = (min if name == "min" else max)(values) if values else ""
    for name, fields in (("sum", request.sum_fields), ("avg", request.avg_fields)):
        if not fields:
            continue
        out[name] = {}
        for field in fields:
            numbers = [n for n in (_number(get(field)) for get in rows) if n is not None]
            if not numbers:
                out[name][field] = ""
            elif name == "sum":
                out[name][field] = _format(sum(numbers))
            else:
                out[name][field] = _format(sum(numbers) / len(numbers))
    return out
