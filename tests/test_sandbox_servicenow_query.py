"""The sandbox's encoded-query engine: operators, grouping, escaping, dates, sorting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sandbox.sn_query import (
    EncodedQuery,
    escape_value,
    parse,
    parse_datetime_value,
    sort_rows,
    split_parts,
)

NOW = datetime(2026, 3, 10, 15, 30, 45, tzinfo=UTC)
KINDS = {"name": "string", "count": "integer", "opened": "datetime", "active": "boolean",
         "caller.email": "string"}


def kind_of(column: str) -> str | None:
    return KINDS.get(column)


def q(text: str) -> EncodedQuery:
    return parse(text, kind_of, NOW)


def getter(row: dict[str, str]) -> Callable[[str], str]:
    return lambda column: row.get(column, "")


def select(text: str, rows: list[dict[str, str]]) -> list[str]:
    query = q(text)
    return [r["name"] for r in rows if query.matches(getter(r))]


ROWS = [
    {"name": "alpha", "count": "2", "opened": "2026-01-01 10:00:00", "active": "true"},
    {"name": "beta", "count": "10", "opened": "2026-01-02 10:00:00", "active": "false"},
    {"name": "gamma", "count": "", "opened": "", "active": "true"},
    {"name": "Alpha^x", "count": "7", "opened": "2026-01-03 00:00:00", "active": "true"},
]


def test_equals_is_case_sensitive() -> None:
    assert select("name=alpha", ROWS) == ["alpha"]
    assert select("name=ALPHA", ROWS) == []


def test_and_or_and_new_query_precedence() -> None:
    # a^b^ORc is a AND (b OR c); ^NQ ORs whole queries.
    assert select("active=true^name=alpha^ORname=gamma", ROWS) == ["alpha", "gamma"]
    assert select("name=beta^NQcount=7", ROWS) == ["beta", "Alpha^x"]
    assert select("name=alpha^ORname=beta^active=false", ROWS) == ["beta"]


def test_in_and_not_in() -> None:
    assert select("nameINalpha,beta", ROWS) == ["alpha", "beta"]
    assert select("nameNOT INalpha,beta", ROWS) == ["gamma", "Alpha^x"]
    assert select("countIN2,07", ROWS) == ["alpha", "Alpha^x"]  # integers compare by value


def test_text_operators() -> None:
    assert select("nameLIKEph", ROWS) == ["alpha", "Alpha^x"]
    assert select("nameNOT LIKEph", ROWS) == ["beta", "gamma"]
    assert select("nameSTARTSWITHg", ROWS) == ["gamma"]
    assert select("nameENDSWITHa", ROWS) == ["alpha", "beta", "gamma"]


def test_empty_and_not_empty() -> None:
    assert select("countISEMPTY", ROWS) == ["gamma"]
    assert select("openedISNOTEMPTY", ROWS) == ["alpha", "beta", "Alpha^x"]


def test_integer_comparisons_are_numeric_not_textual() -> None:
    assert select("count>5", ROWS) == ["beta", "Alpha^x"]  # "10" > "5" numerically
    assert select("count<=7", ROWS) == ["alpha", "Alpha^x"]
    assert select("countBETWEEN3@10", ROWS) == ["beta", "Alpha^x"]


def test_empty_values_never_satisfy_comparisons() -> None:
    assert "gamma" not in select("count<100", ROWS)
    assert "gamma" not in select("opened<2030-01-01 00:00:00", ROWS)
    assert "gamma" in select("count!=2", ROWS)


def test_escaped_caret_in_a_value() -> None:
    assert select("name=Alpha^^x", ROWS) == ["Alpha^x"]
    assert split_parts("a=x^^^ORb=1") == ["a=x^", "ORb=1"]
    assert escape_value("a^b") == "a^^b"


def test_dates_plain_and_generated_forms_agree() -> None:
    plain = select("opened>=2026-01-02 10:00:00", ROWS)
    single = select("opened>=javascript:gs.dateGenerate('2026-01-02','10:00:00')", ROWS)
    pysnow = select('opened>=javascript:gs.dateGenerate("2026-01-02 10:00:00")', ROWS)
    assert plain == single == pysnow == ["beta", "Alpha^x"]


def test_between_dates_as_pysnow_emits_them() -> None:
    text = ('openedBETWEENjavascript:gs.dateGenerate("2026-01-01 12:00:00")'
            '@javascript:gs.dateGenerate("2026-01-03 00:00:00")')
    assert select(text, ROWS) == ["beta", "Alpha^x"]


def test_date_generate_start_and_end_of_day() -> None:
    assert parse_datetime_value("javascript:gs.dateGenerate('2026-01-02','start')", NOW) == \
        datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_datetime_value("javascript:gs.dateGenerate('2026-01-02','end')", NOW) == \
        datetime(2026, 1, 2, 23, 59, 59, tzinfo=UTC)


def test_relative_date_helpers_use_the_clock() -> None:
    assert parse_datetime_value("javascript:gs.daysAgoStart(1)", NOW) == \
        datetime(2026, 3, 9, tzinfo=UTC)
    assert parse_datetime_value("javascript:gs.daysAgoEnd(0)", NOW) == \
        datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC)
    assert parse_datetime_value("javascript:gs.minutesAgo(30)", NOW) == \
        datetime(2026, 3, 10, 15, 0, 45, tzinfo=UTC)


def test_invalid_parts_are_silently_ignored() -> None:
    query = q("nmae=alpha^name=beta^countSAMEAS3^opened>not a date")
    assert [r["name"] for r in ROWS if query.matches(getter(r))] == ["beta"]
    assert query.ignored == ("nmae=alpha", "countSAMEAS3", "opened>not a date")
    # A typo alone returns every row, like the instance.
    assert select("nmae=alpha", ROWS) == [r["name"] for r in ROWS]


def test_boolean_accepts_one_and_zero() -> None:
    assert select("active=1", ROWS) == select("active=true", ROWS)
    assert select("active=0", ROWS) == ["beta"]


def test_hostile_values_stay_values() -> None:
    rows = [{"name": "it's \"quoted\"\nline2 ☃ ^NQcount=1"}, {"name": "x" * 5000}]
    hostile = rows[0]["name"]
    assert select("name=" + escape_value(hostile), rows) == [hostile]
    assert select("name=" + "x" * 5000, rows) == ["x" * 5000]
    assert select("nameLIKE" + escape_value("☃ ^NQ"), rows) == [hostile]


def test_dot_walked_columns() -> None:
    rows = [{"name": "a", "caller.email": "ann@example.com"}, {"name": "b"}]
    assert select("caller.email=ann@example.com", rows) == ["a"]


def test_order_by_clauses_and_nulls_first() -> None:
    query = q("ORDERBYDESCactive^ORDERBYcount")
    ordered = sort_rows(ROWS, query.orders, getter)
    assert [r["name"] for r in ordered] == ["gamma", "alpha", "Alpha^x", "beta"]
    assert [o.column for o in query.orders] == ["active", "count"]


def test_order_by_unknown_column_is_ignored() -> None:
    query = q("ORDERBYnope^name=beta")
    assert query.orders == () and query.ignored == ("ORDERBYnope",)


# --------------------------------------------------------------------------- property

_TEXT = st.text(alphabet="ab^=@ ,é\n", min_size=0, max_size=4)
_NUMBER = st.integers(min_value=-3, max_value=12)
_RECORD = st.fixed_dictionaries({
    "name": _TEXT,
    "count": st.one_of(st.just(""), _NUMBER.map(str)),
})
_TEXT_OPS = ["=", "!=", "LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH", "IN", "NOT IN",
             "ISEMPTY", "ISNOTEMPTY"]
_INT_OPS = ["=", "!=", ">", ">=", "<", "<=", "BETWEEN", "IN", "ISEMPTY"]


@st.composite
def _condition(draw: st.DrawFn) -> tuple[str, Callable[[dict[str, str]], bool]]:
    if draw(st.booleans()):
        op = draw(st.sampled_from(_TEXT_OPS))
        if op in ("IN", "NOT IN"):
            values = draw(st.lists(_TEXT.filter(lambda v: "," not in v), min_size=1,
                                   max_size=3))
            text = "name" + op + ",".join(escape_value(v) for v in values)
            hit = (lambda r, vs=values: r["name"] in vs) if op == "IN" else \
                (lambda r, vs=values: r["name"] not in vs)
            return text, hit
        value = draw(_TEXT)
        checks: dict[str, Callable[[dict[str, str]], bool]] = {
            "=": lambda r: r["name"] == value, "!=": lambda r: r["name"] != value,
            "LIKE": lambda r: value in r["name"], "NOT LIKE": lambda r: value not in r["name"],
            "STARTSWITH": lambda r: r["name"].startswith(value),
            "ENDSWITH": lambda r: r["name"].endswith(value),
            "ISEMPTY": lambda r: r["name"] == "", "ISNOTEMPTY": lambda r: r["name"] != "",
        }
        shown = "" if op in ("ISEMPTY", "ISNOTEMPTY") else escape_value(value)
        return "name" + op + shown, checks[op]
    op = draw(st.sampled_from(_INT_OPS))
    a, b = draw(_NUMBER), draw(_NUMBER)

    def num(r: dict[str, str]) -> int | None:
        return int(r["count"]) if r["count"] else None

    int_checks: dict[str, Callable[[dict[str, str]], bool]] = {
        "=": lambda r: num(r) == a, "!=": lambda r: num(r) != a,
        ">": lambda r: num(r) is not None and num(r) > a,  # type: ignore[operator]
        ">=": lambda r: num(r) is not None and num(r) >= a,  # type: ignore[operator]
        "<": lambda r: num(r) is not None and num(r) < a,  # type: ignore[operator]
        "<=": lambda r: num(r) is not None and num(r) <= a,  # type: ignore[operator]
        "BETWEEN": lambda r: num(r) is not None and a <= num(r) <= b,  # type: ignore[operator]
        "IN": lambda r: num(r) in (a, b),
        "ISEMPTY": lambda r: num(r) is None,
    }
    shown = {"BETWEEN": f"{a}@{b}", "IN": f"{a},{b}", "ISEMPTY": ""}.get(op, str(a))
    return "count" + op + shown, int_checks[op]


@st.composite
def _query(draw: st.DrawFn) -> tuple[str, Callable[[dict[str, str]], bool]]:
    """Random groups (^NQ) of AND clauses of OR conditions, with a Python twin."""
    groups = draw(st.lists(st.lists(st.lists(_condition(), min_size=1, max_size=2),
                                    min_size=1, max_size=3), min_size=1, max_size=2))
    text = "^NQ".join(
        "^".join("^OR".join(c[0] for c in clause) for clause in group) for group in groups)

    def twin(r: dict[str, str]) -> bool:
        return any(all(any(c[1](r) for c in clause) for clause in group) for group in groups)

    return text, twin


@settings(max_examples=150, deadline=None)
@given(records=st.lists(_RECORD, max_size=8), query=_query())
def test_evaluator_agrees_with_a_python_filter(
    records: list[dict[str, str]], query: tuple[str, Callable[[dict[str, str]], bool]]
) -> None:
    text, twin = query
    parsed = q(text)
    assert parsed.ignored == ()
    assert [parsed.matches(getter(r)) for r in records] == [twin(r) for r in records]
