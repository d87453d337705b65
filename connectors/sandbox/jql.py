"""A JQL parser and evaluator for the Jira sandbox: the subset connectors need, strictly.

Contract:
- :func:`parse` turns JQL text into a :class:`Query` (a boolean tree of clauses
  and an ORDER BY list) or raises :class:`JqlError` whose ``message`` is what Jira
  puts in ``errorMessages`` ("Error in the JQL Query: ... (line L, character C)").
- Lexing follows Jira: strings quoted with ``"`` or ``'`` and backslash escapes
  (``\\"``, ``\\'``, ``\\\\``, ``\\n``, ``\\t``, ``\\r``, ``\\uXXXX``, an escaped space);
  a raw newline inside a string, an unknown escape, an unterminated string, an
  unquoted reserved word (``and``, ``order``, ``select`` ...) used as a value,
  and an unquoted reserved character (``+ ; ? | * / % ^ $ # @ [ ] { }``) are
  errors. Keywords and field names are case-insensitive.
- :func:`bind` checks the parsed query against a :class:`Catalog` (fields exist,
  operators are supported by the field, values exist and dates parse) and
  returns a :class:`BoundQuery` whose ``matches(issue)`` and ``sort(issues)`` do
  the evaluation. The catalog is the sandbox's view of its fields and issues;
  this module knows no vendor state.
- Semantics follow Jira: ``!=``/``NOT IN``/``!~`` never match an EMPTY field;
  ``~`` matches when every word of the term occurs as a word of the text
  (case-insensitive, a trailing ``*`` is a prefix match, a term quoted inside
  the string is a phrase); dates compare at millisecond precision and literals
  are minute-precision (``yyyy-MM-dd HH:mm``, ``yyyy/MM/dd HH:mm``, ``yyyy-MM-dd``,
  ``yyyy/MM/dd``, relative ``-5d``/``-15m``/``4w 2d``, epoch milliseconds).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

RESERVED_WORDS = frozenset("""
a an abort access add after alias all alter and any are as asc audit avg before begin
between boolean break by byte catch cf char character check checkpoint collate collation
column commit connect continue count create current date decimal declare decrement default
defaults define delete delimiter desc difference distinct divide do double drop else empty
encoding end equals escape exclusive exec execute exists explain false fetch file field
first float for from function go goto grant greater group having identified if immediate
in increment index initial inner inout input insert int integer intersect intersection
into is isempty isnull join last left less like limit lock long max min minus mode modify
modulo more multiply next noaudit not notin nowait null number object of on option or
order outer output power previous prior privileges public raise raw remainder rename
resume return returns revoke right row rowid rownum rows select session set share size
sqrt start strict string subtract sum synonym table then to trans transaction trigger
true uid union unique update user validate values view when whenever where while with
""".split())
# Jira's JQL grammar reserves these in unquoted values (the user docs also list "."
# and ",", but the parser accepts a dot in names such as jane.doe; "," separates).
RESERVED_CHARS = frozenset("+;?|*/%^$#@[]{}")
_OPERATOR_CHARS = "=!<>~"
_STOP_CHARS = frozenset(" \t\r\n()\"'," + _OPERATOR_CHARS)
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r", " ": " "}
_CF_CLAUSE = re.compile(r"cf\[(\d+)\]", re.IGNORECASE)
OPERATORS_TEXT = ("The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', "
                  "'IN', 'NOT IN', 'IS' and 'IS NOT'.")
DATE_FORMATS_TEXT = ("Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', "
                     "'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")


class _Empty:
    """The sentinel a catalog returns for a literal that means EMPTY (``Unresolved``)."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY_VALUE = _Empty()


class JqlError(ValueError):
    """Invalid JQL. ``message`` is Jira's errorMessages text (``messages`` all of them,
    as Jira reports every invalid clause at once); ``warning`` marks the errors Jira
    only warns about when validation is off (values that don't exist)."""

    def __init__(self, message: str, *, warning: bool = False,
                 messages: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.messages = messages or [message]
        self.warning = warning


# ------------------------------------------------------------------ lexer


@dataclass(frozen=True)
class Token:
    kind: str      # "word" | "string" | "op" | "(" | ")" | "," | "eof"
    text: str
    line: int
    column: int

    @property
    def where(self) -> str:
        return f"(line {self.line}, character {self.column})"

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.casefold() in words


def _syntax(message: str, line: int, column: int) -> JqlError:
    return JqlError(f"Error in the JQL Query: {message} (line {line}, character {column})")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    index, line, line_start = 0, 1, 0
    while index < len(text):
        char = text[index]
        column = index - line_start + 1
        if char == "\n":
            index += 1
            line, line_start = line + 1, index
            continue
        if char in " \t\r":
            index += 1
            continue
        if char in "(),":
            tokens.append(Token(char, char, line, column))
            index += 1
            continue
        if char in _OPERATOR_CHARS:
            two = text[index:index + 2]
            if two in ("!=", "!~", ">=", "<="):
                tokens.append(Token("op", two, line, column))
                index += 2
                continue
            if char == "!":
                raise _syntax("The character '!' must be followed by '=' or '~'.", line, column)
            tokens.append(Token("op", char, line, column))
            index += 1
            continue
        if char in "\"'":
            value, index = _read_string(text, index, line, column)
            tokens.append(Token("string", value, line, column))
            continue
        start = index
        while index < len(text) and text[index] not in _STOP_CHARS:
            index += 1
        word = text[start:index]
        if not _CF_CLAUSE.fullmatch(word):
            for offset, letter in enumerate(word):
                if letter in RESERVED_CHARS:
                    raise _syntax(
                        f"The character '{letter}' is a reserved JQL character. You must "
                        f"enclose it in a string or use the escape '\\u{ord(letter):04x}' "
                        "instead.", line, column + offset)
        tokens.append(Token("word", word, line, column))
    tokens.append(Token("eof", "", line, len(text) - line_start + 1))
    return tokens


def _read_string(text: str, start: int, line: int, column: int) -> tuple[str, int]:
    quote = text[start]
    index = start + 1
    out: list[str] = []
    while index < len(text):
        char = text[index]
        if char == quote:
            return "".join(out), index + 1
        if char in "\r\n":
            raise _syntax("The quoted string contains a line break; use the escape '\\n' "
                          "instead.", line, column)
        if char == "\\":
            escape = text[index + 1:index + 2]
            if escape in _ESCAPES:
                out.append(_ESCAPES[escape])
                index += 2
                continue
            if escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[index + 2:index + 6]):
                out.append(chr(int(text[index + 2:index + 6], 16)))
                index += 6
                continue
            raise _syntax(f"The escape sequence '\\{escape}' is illegal in a string.",
                          line, column + index - start)
        out.append(char)
        index += 1
    raise _syntax(f"The quoted string '{text[start + 1:]}' has not been completed.", line,
                  column)


def quote(value: str) -> str:
    """``value`` as a JQL double-quoted string literal (the inverse of the lexer)."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"')
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


# ------------------------------------------------------------------ syntax tree


@dataclass(frozen=True)
class Operand:
    kind: str                 # "literal" | "empty" | "function"
    text: str = ""
    args: tuple[str, ...] = ()
    token: Token | None = None


@dataclass(frozen=True)
class Clause:
    field: str
    operator: str             # "=", "!=", "~", "!~", ">", ">=", "<", "<=", "in",
    operands: tuple[Operand, ...]  # "not in", "is", "is not"
    token: Token


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Clause | And | Or | Not


@dataclass(frozen=True)
class SortKey:
    field: str
    ascending: bool | None    # None: the field's default direction


@dataclass(frozen=True)
class Query:
    where: Node | None
    order: tuple[SortKey, ...] = ()

    @property
    def bounded(self) -> bool:
        """Jira Cloud's enhanced search refuses queries without a restriction."""
        return self.where is not None


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, token: Token | None = None) -> JqlError:
        token = token or self.token
        return _syntax(message, token.line, token.column)

    def parse(self) -> Query:
        where: Node | None = None
        if self.token.kind != "eof" and not self.token.is_word("order"):
            where = self.parse_or()
        order: list[SortKey] = []
        if self.token.is_word("order"):
            self.advance()
            if not self.token.is_word("by"):
                raise self.error(f"Expecting 'by' but got '{self.token.text}'.")
            self.advance()
            order.append(self.parse_sort())
            while self.token.kind == ",":
                self.advance()
                order.append(self.parse_sort())
        if self.token.kind != "eof":
            raise self.error(f"Expecting either 'OR' or 'AND' but got '{self.token.text}'.")
        return Query(where, tuple(order))

    def parse_sort(self) -> SortKey:
        name = self.parse_field_name()
        ascending: bool | None = None
        if self.token.is_word("asc", "desc"):
            ascending = self.advance().text.casefold() == "asc"
        return SortKey(name, ascending)

    def parse_or(self) -> Node:
        parts = [self.parse_and()]
        while self.token.is_word("or"):
            self.advance()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self) -> Node:
        parts = [self.parse_not()]
        while self.token.is_word("and"):
            self.advance()
            parts.append(self.parse_not())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_not(self) -> Node:
        if self.token.is_word("not"):
            self.advance()
            return Not(self.parse_not())
        if self.token.kind == "(":
            self.advance()
            node = self.parse_or()
            if self.token.kind != ")":
                raise self.error(f"Expecting ')' but got '{self.token.text or '<EOF>'}'.")
            self.advance()
            return node
        return self.parse_clause()

    def parse_field_name(self) -> str:
        token = self.token
        if token.kind == "string":
            self.advance()
            return token.text
        if token.kind == "word" and token.text:
            if token.text.casefold() in RESERVED_WORDS and token.text.casefold() not in (
                    "empty", "null"):
                raise self.error(f"Expecting a field name but got '{token.text}'. You must "
                                 "surround reserved words in quotation marks.")
            self.advance()
            return token.text
        got = token.text or "<EOF>"
        raise self.error(f"Expecting a field name but got '{got}'.")

    def parse_clause(self) -> Clause:
        start = self.token
        name = self.parse_field_name()
        operator = self.parse_operator()
        if operator in ("in", "not in"):
            if self.token.kind != "(":
                raise self.error(f"Expecting '(' but got '{self.token.text or '<EOF>'}'.")
            self.advance()
            operands = [self.parse_operand()]
            while self.token.kind == ",":
                self.advance()
                operands.append(self.parse_operand())
            if self.token.kind != ")":
                raise self.error(f"Expecting ')' but got '{self.token.text or '<EOF>'}'.")
            self.advance()
            return Clause(name, operator, tuple(operands), start)
        if operator in ("is", "is not"):
            if not self.token.is_word("empty", "null"):
                raise self.error(f"Expecting 'EMPTY' but got '{self.token.text or '<EOF>'}'.")
            self.advance()
            return Clause(name, operator, (Operand("empty"),), start)
        return Clause(name, operator, (self.parse_operand(),), start)

    def parse_operator(self) -> str:
        token = self.token
        if token.kind == "op":
            self.advance()
            return token.text
        if token.is_word("in"):
            self.advance()
            return "in"
        if token.is_word("is"):
            self.advance()
            if self.token.is_word("not"):
                self.advance()
                return "is not"
            return "is"
        if token.is_word("not"):
            self.advance()
            if self.token.is_word("in"):
                self.advance()
                return "not in"
            raise self.error(f"Expecting 'IN' but got '{self.token.text or '<EOF>'}'.")
        raise self.error(f"Expecting operator but got '{token.text or '<EOF>'}'. "
                         + OPERATORS_TEXT, token)

    def parse_operand(self) -> Operand:
        token = self.token
        if token.kind == "string":
            self.advance()
            return Operand("literal", token.text, token=token)
        if token.kind == "word" and token.text:
            folded = token.text.casefold()
            if folded in ("empty", "null"):
                self.advance()
                return Operand("empty", token=token)
            if self.tokens[self.index + 1].kind == "(" and re.fullmatch(r"\w+", token.text):
                return self.parse_function()
            if folded in RESERVED_WORDS:
                raise self.error(f"'{token.text}' is a reserved JQL word. You must surround "
                                 "it in quotation marks to use it in a query.")
            self.advance()
            return Operand("literal", token.text, token=token)
        got = token.text or "<EOF>"
        raise self.error(f"Expecting either a value, list or function but got '{got}'.")

    def parse_function(self) -> Operand:
        name_token = self.advance()
        self.advance()  # "("
        args: list[str] = []
        while self.token.kind != ")":
            if self.token.kind not in ("word", "string"):
                raise self.error(f"Expecting ')' but got '{self.token.text or '<EOF>'}'.")
            args.append(self.advance().text)
            if self.token.kind == ",":
                self.advance()
        self.advance()
        return Operand("function", name_token.text, tuple(args), name_token)


def parse(text: str) -> Query:
    """Parse JQL text; raises :class:`JqlError` with Jira's message on bad syntax."""
    return _Parser(text).parse()


# ------------------------------------------------------------------ binding


@dataclass(frozen=True)
class Field:
    """A searchable field as the catalog describes it.

    ``kind`` decides the operators: "key", "equality" (single value: status,
    priority, project, resolution, issuetype, select options), "multi" (labels,
    components), "user", "date", "text" (``~`` only), "string" (single-line text
    custom fields: ``~`` and ``=``).
    """

    id: str
    name: str
    kind: str


_SUPPORTED = {
    "key": {"=", "!=", "in", "not in", "is", "is not"},
    "equality": {"=", "!=", "in", "not in", "is", "is not"},
    "multi": {"=", "!=", "in", "not in", "is", "is not"},
    "user": {"=", "!=", "in", "not in", "is", "is not"},
    "date": {"=", "!=", ">", ">=", "<", "<=", "in", "not in", "is", "is not"},
    "text": {"~", "!~", "is", "is not"},
    "string": {"~", "!~", "=", "!=", "is", "is not", "in", "not in"},
}


class Catalog(Protocol):
    """What the evaluator needs to know about a site's fields and issues."""

    def field(self, name: str) -> Field | None:
        """The field a clause name (case-insensitive) refers to, or None."""

    def normalize(self, field: Field, value: str) -> Any:
        """A literal as the field compares it; raises JqlError(warning=True) if absent."""

    def values(self, issue: Any, field: Field) -> list[Any]:
        """The issue's values for the field, normalized like literals; [] when EMPTY."""

    def current_user(self) -> Any:
        """The searching user's normalized identity (for currentUser())."""

    def now(self) -> datetime:
        """The site's clock (aware UTC)."""

    def sort_value(self, issue: Any, field: Field) -> Any:
        """A comparable value for ORDER BY; None when EMPTY."""


@dataclass
class BoundQuery:
    """A query checked against a catalog: evaluates issues and sorts them."""

    query: Query
    catalog: Catalog
    predicate: Callable[[Any], bool]
    order: list[tuple[Field, bool]]
    warnings: list[str] = field(default_factory=list)

    def matches(self, issue: Any) -> bool:
        return self.predicate(issue)

    def sort(self, issues: Iterable[Any], tiebreak: Callable[[Any], Any]) -> list[Any]:
        """Sorted by ORDER BY (EMPTY last ascending, first descending), then ``tiebreak``."""
        result = sorted(issues, key=tiebreak)
        for sort_field, ascending in reversed(self.order):
            def key(issue: Any, sort_field: Field = sort_field) -> tuple[int, Any]:
                value = self.catalog.sort_value(issue, sort_field)
                return (1, 0) if value is None else (0, value)
            result.sort(key=key, reverse=not ascending)
        return result


_DEFAULT_DESCENDING = {"date"}


def bind(query: Query, catalog: Catalog, *, strict: bool = True) -> BoundQuery:
    """Check ``query`` against ``catalog``; with ``strict=False`` value errors become
    warnings (the clause then matches nothing), like Jira's validateQuery=warn."""
    warnings: list[str] = []
    errors: list[str] = []
    predicate = (_compile(query.where, catalog, strict, warnings, errors) if query.where
                 else _always)
    if errors:
        raise JqlError(errors[0], messages=errors)
    order: list[tuple[Field, bool]] = []
    for sort in query.order:
        sort_field = catalog.field(sort.field)
        if sort_field is None:
            raise JqlError(_unknown_field(sort.field))
        if sort_field.kind in ("text",):
            raise JqlError(f"Field '{sort.field}' does not support sorting.")
        # Jira's default direction is per field: dates and priority sort descending.
        default_ascending = (sort_field.kind not in _DEFAULT_DESCENDING
                             and sort_field.id != "priority")
        ascending = sort.ascending if sort.ascending is not None else default_ascending
        order.append((sort_field, ascending))
    return BoundQuery(query, catalog, predicate, order, warnings)


def _always(issue: Any) -> bool:
    return True


def _never(issue: Any) -> bool:
    return False


def _unknown_field(name: str) -> str:
    return f"Field '{name}' does not exist or you do not have permission to view it."


def _compile(node: Node, catalog: Catalog, strict: bool, warnings: list[str],
             errors: list[str]) -> Callable[[Any], bool]:
    if isinstance(node, And):
        parts = [_compile(p, catalog, strict, warnings, errors) for p in node.parts]
        return lambda issue: all(p(issue) for p in parts)
    if isinstance(node, Or):
        parts = [_compile(p, catalog, strict, warnings, errors) for p in node.parts]
        return lambda issue: any(p(issue) for p in parts)
    if isinstance(node, Not):
        inner = _compile(node.part, catalog, strict, warnings, errors)
        return lambda issue: not inner(issue)
    try:
        return _compile_clause(node, catalog, strict, warnings, errors)
    except JqlError as exc:
        errors.append(exc.message)
        return _never


def _compile_clause(clause: Clause, catalog: Catalog, strict: bool, warnings: list[str],
                    errors: list[str]) -> Callable[[Any], bool]:
    target = catalog.field(clause.field)
    if target is None:
        raise JqlError(_unknown_field(clause.field))
    operator = clause.operator
    if operator not in _SUPPORTED[target.kind]:
        shown = operator.upper()
        raise JqlError(f"The operator '{shown}' is not supported by the '{clause.field}' field.")
    if operator in ("is", "is not"):
        empty = operator == "is"
        return lambda issue: (not catalog.values(issue, target)) == empty
    literals: list[list[Any] | None] = []
    for operand in clause.operands:
        try:
            literals.append(_operand_values(operand, target, catalog))
        except JqlError as exc:
            # validateQuery=warn: a value that doesn't exist is dropped, the rest count.
            (warnings if exc.warning and not strict else errors).append(exc.message)
    if not literals:
        return _never
    wants_empty = any(values is None for values in literals)
    flat = [value for values in literals if values is not None for value in values]
    if target.kind == "date":
        return _date_predicate(operator, target, flat, wants_empty, catalog)
    if operator in ("~", "!~"):
        if wants_empty:
            raise JqlError(f"The field '{clause.field}' does not support searching for EMPTY "
                           "values with the '~' operator.")
        terms = [_text_term(str(v), clause.field) for v in flat]
        positive = operator == "~"

        def text_match(issue: Any) -> bool:
            texts = [str(v) for v in catalog.values(issue, target)]
            if not texts:
                return False
            found = any(_text_matches(term, texts) for term in terms)
            return found if positive else not found
        return text_match
    if operator in (">", ">=", "<", "<="):
        raise JqlError(f"The operator '{operator}' is not supported by the '{clause.field}' "
                       "field.")
    positive = operator in ("=", "in")
    wanted = set(flat)

    def equality(issue: Any) -> bool:
        have = catalog.values(issue, target)
        if not have:
            return wants_empty if positive else False
        hit = any(value in wanted for value in have)
        return hit if positive else (not hit and not wants_empty)
    return equality


def _operand_values(operand: Operand, target: Field, catalog: Catalog) -> list[Any] | None:
    """The normalized values an operand stands for; None for EMPTY."""
    if operand.kind == "empty":
        return None
    if operand.kind == "function":
        name = operand.text.casefold()
        if name == "currentuser" and target.kind == "user":
            return [catalog.current_user()]
        if target.kind == "date" and name in ("now", "startofday", "endofday"):
            now = catalog.now()
            if name == "startofday":
                now = now.replace(hour=0, minute=0, second=0, microsecond=0)
            elif name == "endofday":
                now = now.replace(hour=23, minute=59, second=59, microsecond=999000)
            return [now]
        raise JqlError(f"Unable to find JQL function '{operand.text}("
                       f"{', '.join(operand.args)})'.")
    if target.kind == "date":
        return [parse_date(operand.text, target.name, catalog.now())]
    if target.kind in ("text", "string") and operand.text == "":
        raise JqlError(f"The field '{target.name}' does not support searching for an empty "
                       "string.")
    value = catalog.normalize(target, operand.text)
    return None if value is EMPTY_VALUE else [value]


_ABSOLUTE = [
    (re.compile(r"\d{4}-\d{1,2}-\d{1,2} \d{1,2}:\d{2}"), "%Y-%m-%d %H:%M"),
    (re.compile(r"\d{4}/\d{1,2}/\d{1,2} \d{1,2}:\d{2}"), "%Y/%m/%d %H:%M"),
    (re.compile(r"\d{4}-\d{1,2}-\d{1,2}"), "%Y-%m-%d"),
    (re.compile(r"\d{4}/\d{1,2}/\d{1,2}"), "%Y/%m/%d"),
]
_PERIOD = re.compile(r"([-+]?)\s*((?:\d+[wdhm]\s*)+)")
_PERIOD_PART = re.compile(r"(\d+)([wdhm])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}


def parse_date(text: str, field_name: str, now: datetime) -> datetime:
    """A JQL date literal as an aware UTC datetime (the searching user's zone is UTC)."""
    value = text.strip()
    for pattern, fmt in _ABSOLUTE:
        if pattern.fullmatch(value):
            try:
                return datetime.strptime(value, fmt).replace(tzinfo=UTC)
            except ValueError:
                break
    period = _PERIOD.fullmatch(value)
    if period:
        delta = timedelta()
        for amount, unit in _PERIOD_PART.findall(period.group(2)):
            delta += timedelta(**{_UNITS[unit]: int(amount)})
        return now - delta if period.group(1) == "-" else now + delta
    if re.fullmatch(r"\d{9,}", value):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    raise JqlError(f"Date value '{text}' for field '{field_name}' is invalid. "
                   + DATE_FORMATS_TEXT)


def _date_predicate(operator: str, target: Field, literals: Sequence[datetime],
                    wants_empty: bool, catalog: Catalog) -> Callable[[Any], bool]:
    compare: dict[str, Callable[[datetime, datetime], bool]] = {
        "=": lambda a, b: a == b, "in": lambda a, b: a == b,
        "!=": lambda a, b: a != b, "not in": lambda a, b: a != b,
        ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    }
    check = compare[operator]
    negative = operator in ("!=", "not in")

    def date_match(issue: Any) -> bool:
        have = catalog.values(issue, target)
        if not have:
            return wants_empty and not negative
        if negative:
            return all(check(have[0], literal) for literal in literals) and not wants_empty
        return any(check(have[0], literal) for literal in literals)
    return date_match


@dataclass(frozen=True)
class _Term:
    phrase: str | None
    words: tuple[str, ...]


_WORD = re.compile(r"\w+\*?", re.UNICODE)


def _text_term(value: str, field_name: str) -> _Term:
    stripped = value.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        return _Term(stripped[1:-1].casefold(), ())
    words = tuple(_WORD.findall(stripped.casefold()))
    if not words:
        raise JqlError(f"The field '{field_name}' does not support searching for an empty "
                       "string.")
    return _Term(None, words)


def _text_matches(term: _Term, texts: Sequence[str]) -> bool:
    if term.phrase is not None:
        return any(term.phrase in text.casefold() for text in texts)
    have = {w for text in texts for w in re.findall(r"\w+", text.casefold())}
    for word in term.words:
        if word.endswith("*"):
            if not any(h.startswith(word[:-1]) for h in have):
                return False
        elif word not in have:
            return False
    return True


def text_words(text: str) -> set[str]:
    """The words ``~`` sees in a text (exposed so tests state the same rule)."""
    return set(re.findall(r"\w+", text.casefold()))


def cf_number(name: str) -> int | None:
    """The number in a ``cf[NNNNN]`` clause name, else None."""
    match = _CF_CLAUSE.fullmatch(name.strip())
    return int(match.group(1)) if match else None
