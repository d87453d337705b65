"""A stateful stand-in for the ServiceNow Table, Batch and Aggregate APIs, on loopback.

Contract (docs/vendor-notes.md, "ServiceNow", is the reference; deliberate choices are noted):
- Routes: ``/api/now[/v1|/v2]/table/{table}`` (GET list, POST) and
  ``.../table/{table}/{sys_id}`` (GET, PUT, PATCH, DELETE); ``POST
  /api/now[/v1|/v2]/batch``; ``GET /api/now[/v1]/stats/{table}`` (Aggregate
  API). Tables: ``incident``, ``sys_user``, ``sys_user_group``,
  ``sys_journal_field``, ``sys_audit``, ``sys_choice``, ``sys_dictionary`` and
  ``sys_db_object`` (the last five read-only; the dictionary holds incident's
  columns under ``task`` / ``incident`` as a stock instance does). Every saved
  incident update writes a ``sys_audit`` row per changed field (user name, old and
  new value), as a stock instance's auditing of the incident table does; inserts
  are not audited. An unknown table is a 400 ``Invalid table``.
- Basic auth with the configured credentials; refusals carry the documented 401
  body. ``Accept`` must allow JSON (missing -> 400, unacceptable -> 406); writes
  also need ``Content-Type: application/json`` (missing -> 400, other -> 415).
- Every error body is ``{"error": {"message", "detail"}, "status": "failure"}``;
  429s carry ``Retry-After`` and the ``X-RateLimit-*`` headers.
- Records hold strings only. Writes ignore unknown and read-only fields
  (``priority`` is computed from impact x urgency; ``active``/``incident_state``
  follow ``state``). ``state`` accepts 1,2,3,6,7,8 (400 otherwise); saving a
  record in state 6/7 without ``close_code`` and ``close_notes`` is a 403
  data-policy error, an unknown ``close_code`` a 403 too; state 3 needs
  ``hold_reason``. An update that changes nothing does not save (no
  ``sys_mod_count`` bump), as on the instance.
- ``comments``/``work_notes`` in a write append ``sys_journal_field`` rows; they
  read back ``""`` raw and as the rendered journal under display values.
- Deliberate choices where the vendor is unspecified: default list order is
  ``sys_created_on`` then ``sys_id``; ``correlation_id``/``correlation_display``
  longer than 100 characters are truncated silently (like the instance's field
  length); a reference written with something that is neither an existing
  sys_id nor (for sys_user / sys_user_group / incident) a display value is
  refused with 400, so a connector that writes emails into references without
  ``sysparm_input_display_value=true`` fails loudly instead of storing junk.
  Response-shaping sysparms (``sysparm_fields``, ``sysparm_display_value``,
  ``sysparm_exclude_reference_link``) are honoured on writes as the instance
  does; query/limit/offset sent with writes (pysnow sends them) are ignored.
- Pieces: ``sn_tables`` (schemas, rendering), ``sn_query`` (encoded queries),
  ``sn_writes`` (coercion, business rules), ``sn_batch`` (Batch API),
  ``sn_stats`` (Aggregate API); this
  module holds the state, the routes and the seed.
- Fit for measuring: rows are indexed by ``sys_id`` and by the columns a sync looks
  up by the thousand (``sys_journal_field.element_id``, ``incident.correlation_id``,
  ``sys_audit.documentkey``), so a query pinning one of them with ``=`` / ``IN``
  reads its candidates instead of scanning the table (a journal read no longer
  grows with the whole journal). Batch API items are logged as such, apart from wire
  requests, and are not delayed again by the added latency.
- In-process helpers (:meth:`insert`, :meth:`update`, :meth:`get`, :meth:`rows`,
  :meth:`delete`, :meth:`journal`) run the same code as the routes, under
  :attr:`lock`, and raise :class:`ServiceNowApiError` where HTTP would answer
  an error.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from connectors.sandbox import seed as seed_data
from connectors.sandbox.http import FaultPlan, Request, Response, SandboxServer
from connectors.sandbox.sn_batch import run_batch
from connectors.sandbox.sn_query import DATETIME_FORMAT, EncodedQuery, escape_value, parse
from connectors.sandbox.sn_query import sort_rows as _sort_rows
from connectors.sandbox.sn_stats import StatsRequest, aggregate
from connectors.sandbox.sn_tables import (
    TABLES,
    Renderer,
    View,
    choice_rows,
    column_of,
    db_object_rows,
    dictionary_rows,
)
from connectors.sandbox.sn_writes import SYS_ID, ServiceNowApiError, coerce, incident_rules

__all__ = ["ServiceNowApiError", "ServiceNowSandbox"]

Clock = Callable[[], datetime]

DEFAULT_LIMIT = 10000
RATE_LIMIT_PER_HOUR = 100
RATE_LIMIT_RULE = "b2a3c4d5e6f70812a3b4c5d6e7f80911"
INDEXED: dict[str, tuple[str, ...]] = {
    "incident": ("correlation_id",),
    "sys_journal_field": ("element_id",),
    "sys_audit": ("documentkey",),
}
_TABLE_PATH = r"/api/now(?:/(?P<version>v1|v2))?/table/(?P<table>[A-Za-z0-9_]+)"
_SEED_CLOSE_NOTES = "Root cause found and fixed; the caller confirmed service is restored."


def _now_utc() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATETIME_FORMAT)


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _stable_sys_id(kind: str, key: str) -> str:
    # Seed people and groups keep the same sys_id whatever the seed, like a real
    # instance's users do across incident loads.
    return hashlib.md5(f"{kind}:{key}".encode(), usedforsecurity=False).hexdigest()


class ServiceNowSandbox(SandboxServer):
    """The ServiceNow Table API, stateful, on loopback."""

    vendor = "servicenow"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        username: str = "admin",
        password: str = "sandbox",
        faults: FaultPlan | None = None,
        seed_incidents: int = 0,
        seed: int = 1,
        clock: Clock | None = None,
        max_batch_items: int = 100,
    ) -> None:
        super().__init__(host, port, username=username, password=password, faults=faults)
        self.clock: Clock = clock or _now_utc
        self.max_batch_items = max_batch_items
        self._rng = random.Random(seed)
        self._tables: dict[str, dict[str, dict[str, str]]] = {name: {} for name in TABLES}
        self._sequence: dict[str, int] = {}  # sys_id -> insertion order (journal rendering)
        # (table, column) -> value -> sys_ids: the lookups a sync makes by the thousand
        # (journal rows by element_id, incidents by correlation_id, audit rows by
        # documentkey) read candidates here instead of scanning the whole table.
        self._index: dict[tuple[str, str], dict[str, set[str]]] = {
            (table, column): {} for table, columns in INDEXED.items() for column in columns}
        self._next_number = 10001
        self.renderer = Renderer(self._tables, self._base_url, self._journal_entries,
                                 self._display_name_of_user)
        self._register_routes()
        self._load_seed(seed_incidents, seed)

    # ------------------------------------------------------------------ vendor hooks

    def authenticate(self, request: Request) -> Response | None:
        if request.basic_auth() == (self.username, self.password):
            request.user = self.username
            return None
        response = self.error_response(401, "User Not Authenticated",
                                       "Required to provide Auth information")
        response.headers["WWW-Authenticate"] = 'BASIC realm="Service-now"'
        return response

    def error_response(self, status: int, message: str, detail: str = "") -> Response:
        return Response(status, {"error": {"message": message, "detail": detail},
                                 "status": "failure"})

    def rate_limit_response(self, retry_after: int) -> Response:
        response = self.error_response(
            429, "Rate limit exceeded",
            f"Rate limit of {RATE_LIMIT_PER_HOUR} requests per hour for Table API exceeded",
        )
        now = self.clock().astimezone(UTC)
        next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        response.headers.update({
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(RATE_LIMIT_PER_HOUR),
            "X-RateLimit-Reset": str(int(next_hour.timestamp())),
            "X-RateLimit-Rule": RATE_LIMIT_RULE,
        })
        return response

    def _base_url(self) -> str:
        try:
            return self.url
        except RuntimeError:  # not started: in-process use only
            return f"http://{self.host}:{self.requested_port}"

    # ------------------------------------------------------------------ in-process API

    def insert(self, table: str, values: Mapping[str, Any], *, as_user: str = "admin"
               ) -> dict[str, Any]:
        """Insert like ``POST``; returns the raw record (every value a string)."""
        with self.lock:
            self._writable_table(table)
            row = self._insert(table, values, as_user, input_display=False)
            return self._raw(table, row)

    def update(self, table: str, sys_id: str, values: Mapping[str, Any], *,
               as_user: str = "admin") -> dict[str, Any]:
        """Update like ``PATCH`` (partial); returns the raw record."""
        with self.lock:
            self._writable_table(table)
            row = self._update(table, sys_id, values, as_user, input_display=False)
            return self._raw(table, row)

    def get(self, table: str, sys_id: str) -> dict[str, Any] | None:
        with self.lock:
            self._table(table)
            row = self._tables[table].get(sys_id)
            return None if row is None else self._raw(table, row)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every record of ``table`` in the default list order, raw."""
        with self.lock:
            self._table(table)
            return [self._raw(table, row) for row in self._ordered(table)]

    def delete(self, table: str, sys_id: str) -> None:
        with self.lock:
            self._writable_table(table)
            self._delete(table, sys_id)

    def journal(self, sys_id: str) -> list[dict[str, str]]:
        """The sys_journal_field rows of one record, oldest first."""
        with self.lock:
            journal = self._tables["sys_journal_field"]
            rows = [dict(journal[i])
                    for i in self._indexed("sys_journal_field", "element_id", [sys_id])]
            return sorted(rows, key=lambda r: self._sequence[r["sys_id"]])

    def user_sys_id(self, user_name: str) -> str:
        """The sys_id of a sys_user by user_name (KeyError when unknown)."""
        with self.lock:
            for row in self._tables["sys_user"].values():
                if row["user_name"] == user_name:
                    return row["sys_id"]
        raise KeyError(f"no sys_user with user_name {user_name!r}")

    def group_sys_id(self, name: str) -> str:
        """The sys_id of a sys_user_group by name (KeyError when unknown)."""
        with self.lock:
            for row in self._tables["sys_user_group"].values():
                if row["name"] == name:
                    return row["sys_id"]
        raise KeyError(f"no sys_user_group named {name!r}")

    # ------------------------------------------------------------------ routes

    def _register_routes(self) -> None:
        one = _TABLE_PATH + r"/(?P<sys_id>[^/]+)"
        self.route("GET", _TABLE_PATH, self._http(self._get_list))
        self.route("POST", _TABLE_PATH, self._http(self._post))
        self.route("GET", one, self._http(self._get_one))
        self.route("PUT", one, self._http(self._put_or_patch))
        self.route("PATCH", one, self._http(self._put_or_patch))
        self.route("DELETE", one, self._http(self._delete_one))
        self.route("POST", r"/api/now(?:/(?P<version>v\d+))?/batch", self._http(self._batch))
        self.route("GET", r"/api/now(?:/(?P<version>v\d+))?/stats/(?P<table>[A-Za-z0-9_]+)",
                   self._http(self._stats))

    def _http(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            try:
                _check_headers(request)
                return handler(request)
            except ServiceNowApiError as error:
                return self.error_response(error.status, error.message, error.detail)
        return run

    def _get_list(self, request: Request) -> Response:
        table = self._table(request.params["table"])
        query = self._parse_query(table, request.arg("sysparm_query", "") or "")
        pairs = self._parse_query(table, "^".join(
            f"{name}={escape_value(values[-1])}" for name, values in request.query.items()
            if not name.startswith("sysparm_") and column_of(table, name) is not None
        ))
        candidates = self._candidates(table, query)
        rows = [r for r in (self._ordered(table) if candidates is None else candidates)
                if query.matches(self._getter(table, r)) and pairs.matches(self._getter(table, r))]
        rows = _sort_rows(rows, query.orders, lambda r: self._getter(table, r))
        total = len(rows)
        limit = _int_param(request.arg("sysparm_limit"), DEFAULT_LIMIT, minimum=1)
        offset = _int_param(request.arg("sysparm_offset"), 0, minimum=0)
        page = rows[offset:offset + limit]
        if not page and request.params.get("version") == "v1":
            raise ServiceNowApiError(
                404, "No Record found",
                "Records matching query not found. Check query parameter or offset parameter")
        view = _view(request)
        headers: dict[str, str] = {}
        if not _is_true(request.arg("sysparm_no_count")):
            headers["X-Total-Count"] = str(total)
        if not _is_true(request.arg("sysparm_suppress_pagination_header")):
            link = _link_header(request, total, offset, limit)
            if link:
                headers["Link"] = link
        body = [self.renderer.render(table, row, view) for row in page]
        return Response(200, {"result": body}, headers)

    def _stats(self, request: Request) -> Response:
        table = self._table(request.params["table"])
        query = self._parse_query(table, request.arg("sysparm_query", "") or "")
        candidates = self._candidates(table, query)
        rows = [r for r in (self._ordered(table) if candidates is None else candidates)
                if query.matches(self._getter(table, r))]

        def names(param: str) -> tuple[str, ...]:
            return tuple(n.strip() for n in (request.arg(param) or "").split(",") if n.strip())

        wanted = StatsRequest(
            count=_is_true(request.arg("sysparm_count")),
            group_by=names("sysparm_group_by"), min_fields=names("sysparm_min_fields"),
            max_fields=names("sysparm_max_fields"), sum_fields=names("sysparm_sum_fields"),
            avg_fields=names("sysparm_avg_fields"))
        result = aggregate(rows, lambda r: self._getter(table, r), wanted,
                           self._kind_of(table))
        return Response(200, {"result": result})

    def _get_one(self, request: Request) -> Response:
        table = self._table(request.params["table"])
        row = self._find(table, request.params["sys_id"])
        return Response(200, {"result": self.renderer.render(table, row, _view(request))})

    def _post(self, request: Request) -> Response:
        table = self._table(request.params["table"])
        self._writable_table(table)
        values = _record_body(request)
        row = self._insert(table, values, request.user or self.username,
                           input_display=_is_true(request.arg("sysparm_input_display_value")))
        location = f"{self._base_url()}/api/now/table/{table}/{row['sys_id']}"
        return self._write_response(request, 201, table, row, {"Location": location})

    def _put_or_patch(self, request: Request) -> Response:
        table = self._table(request.params["table"])
        self._writable_table(table)
        values = _record_body(request)
        row = self._update(table, request.params["sys_id"], values,
                           request.user or self.username,
                           input_display=_is_true(request.arg("sysparm_input_display_value")))
        return self._write_response(request, 200, table, row, {})

    def _delete_one(self, request: Request) -> Response:
        table = self._table(request.params["table"])
        self._writable_table(table)
        self._delete(table, request.params["sys_id"])
        return Response(204, None)

    def _write_response(self, request: Request, status: int, table: str,
                        row: Mapping[str, str], headers: dict[str, str]) -> Response:
        if _is_true(request.headers.get("x-no-response-body")):
            return Response(status, None, headers)
        return Response(status, {"result": self.renderer.render(table, row, _view(request))},
                        headers)

    # ------------------------------------------------------------------ batch

    def _batch(self, request: Request) -> Response:
        # Each item runs through handle(): faults, dispatch with the batch's auth, the log.
        return run_batch(request, _json_body(request), self.handle, self.error_response,
                         self.max_batch_items)

    # ------------------------------------------------------------------ storage core

    def _table(self, name: str) -> str:
        if name not in TABLES:
            raise ServiceNowApiError(400, f"Invalid table {name}", "")
        return name

    def _writable_table(self, name: str) -> None:
        self._table(name)
        if not TABLES[name].http_writable:
            raise ServiceNowApiError(403, "Operation Failed",
                                     f"ACL Exception: table {name} is read-only")

    def _find(self, table: str, sys_id: str) -> dict[str, str]:
        row = self._tables[table].get(sys_id)
        if row is None:
            raise ServiceNowApiError(404, "No Record found",
                                     "Record doesn't exist or ACL restricts the record retrieval")
        return row

    def _ordered(self, table: str) -> list[dict[str, str]]:
        return sorted(self._tables[table].values(),
                      key=lambda r: (r.get("sys_created_on", ""), r["sys_id"]))

    def _raw(self, table: str, row: Mapping[str, str]) -> dict[str, Any]:
        return self.renderer.render(table, row, View(exclude_link=True))

    def _kind_of(self, table: str) -> Callable[[str], str | None]:
        def kind_of(column: str) -> str | None:
            found = column_of(table, column)
            return None if found is None else found.query_kind
        return kind_of

    def _parse_query(self, table: str, text: str) -> EncodedQuery:
        return parse(text, self._kind_of(table), self.clock())

    def _getter(self, table: str, row: Mapping[str, str]) -> Callable[[str], str]:
        def get(column: str) -> str:
            head, _, rest = column.partition(".")
            if not rest:
                return row.get(head, "")
            target_table = TABLES[table].columns[head].reference or ""
            target = self.renderer.lookup(target_table, row.get(head, ""))
            return target.get(rest, "") if target else ""
        return get

    def _new_sys_id(self) -> str:
        while True:
            sys_id = f"{self._rng.getrandbits(128):032x}"
            if all(sys_id not in rows for rows in self._tables.values()):
                return sys_id

    def _user_row(self, user_name: str) -> dict[str, str]:
        for row in self._tables["sys_user"].values():
            if row["user_name"] == user_name:
                return row
        raise ServiceNowApiError(401, "User Not Authenticated", f"unknown user {user_name!r}")

    def _display_name_of_user(self, user_name: str) -> str:
        for row in self._tables["sys_user"].values():
            if row["user_name"] == user_name:
                return row["name"]
        return user_name

    def _journal_entries(self, sys_id: str, elements: Sequence[str]) -> list[dict[str, str]]:
        journal = self._tables["sys_journal_field"]
        rows = [journal[i] for i in self._indexed("sys_journal_field", "element_id", [sys_id])
                if journal[i]["element"] in elements]
        return sorted(rows, key=lambda r: self._sequence[r["sys_id"]], reverse=True)

    def _insert(self, table: str, values: Mapping[str, Any], user_name: str, *,
                input_display: bool, at: datetime | None = None) -> dict[str, str]:
        user = self._user_row(user_name)
        now = _stamp(at or self.clock())
        schema = TABLES[table]
        changes, journal = coerce(self._tables, table, values, input_display)
        requested_id = str(values.get("sys_id", "") or "")
        sys_id = requested_id if SYS_ID.match(requested_id) else self._new_sys_id()
        if sys_id in self._tables[table]:
            raise ServiceNowApiError(403, "Operation Failed",
                                     f"Unique Key violation detected by database: {sys_id}")
        row = {name: "" for name in schema.columns if schema.columns[name].kind != "journal"}
        row.update(schema.defaults)
        row.update(changes)
        row.update({"sys_id": sys_id, "sys_created_on": now, "sys_created_by": user_name,
                    "sys_updated_on": now, "sys_updated_by": user_name, "sys_mod_count": "0"})
        if table == "incident":
            row["opened_at"] = row["opened_at"] or now
            row["opened_by"] = row["opened_by"] or user["sys_id"]
            incident_rules(None, row, changes, user["sys_id"], now)
            # Numbered only once the insert is accepted, so refusals leave no gaps.
            row["number"] = f"INC{self._next_number:07d}"
            self._next_number += 1
        self._put(table, row)
        self._sequence[sys_id] = len(self._sequence)
        self._append_journal(table, sys_id, journal, user_name, now)
        return row

    def _update(self, table: str, sys_id: str, values: Mapping[str, Any], user_name: str, *,
                input_display: bool, at: datetime | None = None) -> dict[str, str]:
        current = self._find(table, sys_id)
        user = self._user_row(user_name)
        now = _stamp(at or self.clock())
        changes, journal = coerce(self._tables, table, values, input_display)
        row = dict(current)
        row.update(changes)
        if table == "incident":
            incident_rules(current, row, changes, user["sys_id"], now)
        if row == current and not journal:
            return current  # nothing changed: the instance does not save
        row["sys_mod_count"] = str(int(current.get("sys_mod_count") or 0) + 1)
        row["sys_updated_on"] = now
        row["sys_updated_by"] = user_name
        self._put(table, row)
        if table == "incident":
            self._audit(table, row, current, user_name, now)
        self._append_journal(table, sys_id, journal, user_name, now)
        return row

    def _audit(self, table: str, row: Mapping[str, str], before: Mapping[str, str],
               user_name: str, now: str) -> None:
        """One sys_audit row per field this update changed (system columns aside)."""
        for name, value in row.items():
            if name.startswith("sys_") or before.get(name, "") == value:
                continue
            entry_id = self._new_sys_id()
            self._put("sys_audit", {
                "sys_id": entry_id, "tablename": table, "documentkey": row["sys_id"],
                "fieldname": name, "oldvalue": before.get(name, ""), "newvalue": value,
                "user": user_name, "reason": "", "record_checkpoint": row["sys_mod_count"],
                "sys_created_on": now, "sys_created_by": user_name,
                "sys_updated_on": now, "sys_updated_by": user_name, "sys_mod_count": "0",
            })
            self._sequence[entry_id] = len(self._sequence)

    def _delete(self, table: str, sys_id: str) -> None:
        self._find(table, sys_id)
        self._drop(table, sys_id)
        for entry_id in list(self._indexed("sys_journal_field", "element_id", [sys_id])):
            self._drop("sys_journal_field", entry_id)

    def _put(self, table: str, row: dict[str, str]) -> None:
        """Store a row (new or changed), keeping the indexes of its table current."""
        before = self._tables[table].get(row["sys_id"])
        for column in INDEXED.get(table, ()):
            index = self._index[(table, column)]
            if before is not None:
                index.get(before.get(column, ""), set()).discard(row["sys_id"])
            index.setdefault(row.get(column, ""), set()).add(row["sys_id"])
        self._tables[table][row["sys_id"]] = row

    def _drop(self, table: str, sys_id: str) -> None:
        row = self._tables[table].pop(sys_id)
        for column in INDEXED.get(table, ()):
            self._index[(table, column)].get(row.get(column, ""), set()).discard(sys_id)

    def _indexed(self, table: str, column: str, values: Iterable[str]) -> set[str]:
        """sys_ids of the rows whose ``column`` is one of ``values`` (an indexed column)."""
        index = self._index[(table, column)]
        found: set[str] = set()
        for value in values:
            found |= index.get(value, set())
        return found

    def _candidates(self, table: str, query: EncodedQuery) -> list[dict[str, str]] | None:
        """The rows ``query`` can match, in the default order, from an index or the
        primary key when each of its ``^NQ`` groups pins ``sys_id`` or an indexed column
        with ``=`` / ``IN`` (a condition not ORed with another); None means scan the
        table. Only narrows: every candidate is still matched against the query."""
        groups = [g for g in query.groups if g]
        if not groups:
            return None
        ids: set[str] = set()
        for group in groups:
            pinned: set[str] | None = None
            for clause in group:
                if len(clause) != 1 or clause[0].op not in ("=", "IN"):
                    continue
                condition = clause[0]
                values = condition.members if condition.op == "IN" else {condition.values[0]}
                if condition.column == "sys_id":
                    pinned = {v for v in values if v in self._tables[table]}
                elif condition.column in INDEXED.get(table, ()):
                    pinned = self._indexed(table, condition.column, values)
                else:
                    continue
                break
            if pinned is None:
                return None
            ids |= pinned
        rows = [self._tables[table][i] for i in ids if i in self._tables[table]]
        return sorted(rows, key=lambda r: (r.get("sys_created_on", ""), r["sys_id"]))

    def _append_journal(self, table: str, sys_id: str, entries: Sequence[tuple[str, str]],
                        user_name: str, now: str) -> None:
        for element, text in entries:
            entry_id = self._new_sys_id()
            self._put("sys_journal_field", {
                "sys_id": entry_id, "element": element, "element_id": sys_id, "name": table,
                "value": text, "sys_created_on": now, "sys_created_by": user_name,
                "sys_updated_on": now, "sys_updated_by": user_name, "sys_mod_count": "0",
            })
            self._sequence[entry_id] = len(self._sequence)

    # ------------------------------------------------------------------ seed

    def _load_seed(self, incidents: int, seed: int) -> None:
        start = _stamp(datetime(2026, 1, 1, tzinfo=UTC))
        users = list(seed_data.USERS)
        if all(u.user_name != self.username for u in users):
            users.append(seed_data.SeedUser(self.username, self.username,
                                            f"{self.username}@example.com"))
        for user in users:
            first, _, last = user.name.partition(" ")
            self._seed_row("sys_user", _stable_sys_id("sys_user", user.user_name), start, {
                "user_name": user.user_name, "name": user.name, "first_name": first,
                "last_name": last, "email": user.email,
            })
        for group in seed_data.GROUPS:
            self._seed_row("sys_user_group", _stable_sys_id("sys_user_group", group), start,
                           {"name": group, "description": f"{group} team"})
        for choice in choice_rows():
            self._seed_row("sys_choice", self._new_sys_id(), start, choice)
        for entry in dictionary_rows():
            # Stable ids that draw nothing from the seeded generator, so the seeded
            # incidents keep the sys_ids they had before the dictionary existed.
            key = f"{entry['name']}.{entry['element']}"
            self._seed_row("sys_dictionary", _stable_sys_id("sys_dictionary", key), start, entry)
        # super_class is a reference: the parent's row goes first, with a stable sys_id.
        for table in db_object_rows():
            parent = table["super_class"]
            self._seed_row("sys_db_object", _stable_sys_id("sys_db_object", table["name"]),
                           start, {**table, "super_class": _stable_sys_id("sys_db_object", parent)
                                   if parent else ""})
        for incident in seed_data.seed_incidents(incidents, seed):
            self._seed_incident(incident)

    def _seed_row(self, table: str, sys_id: str, now: str, values: Mapping[str, str]) -> None:
        row = {name: "" for name in TABLES[table].columns}
        row.update(TABLES[table].defaults)
        row.update(values)
        row.update({"sys_id": sys_id, "sys_created_on": now, "sys_created_by": "system",
                    "sys_updated_on": now, "sys_updated_by": "system"})
        self._put(table, row)
        self._sequence[sys_id] = len(self._sequence)

    def _seed_incident(self, incident: seed_data.SeedIncident) -> None:
        by_email = {u.email: u.user_name for u in seed_data.USERS}
        caller = by_email[incident.caller_email]
        opened = incident.opened_at
        row = self._insert("incident", {
            "short_description": incident.title, "description": incident.description,
            "impact": str(incident.impact), "urgency": str(incident.urgency),
            "category": incident.category, "subcategory": incident.subcategory,
            "assignment_group": incident.group, "caller_id": self.user_sys_id(caller),
            "contact_type": "self-service",
        }, caller, input_display=False, at=opened)
        for index, comment in enumerate(incident.comments):
            element = "work_notes" if comment.internal else "comments"
            self._update("incident", row["sys_id"], {element: comment.body},
                         by_email[comment.author_email], input_display=False,
                         at=opened + timedelta(minutes=11 * (index + 1)))
        if incident.status == "new":
            return
        agent = by_email[incident.assignee_email or seed_data.AGENT_EMAILS[0]]
        final: dict[str, str] = {"assigned_to": self.user_sys_id(agent)}
        final["state"] = {"in_progress": "2", "on_hold": "3", "resolved": "6"}[incident.status]
        if incident.status == "on_hold":
            final["hold_reason"] = "4"
        if incident.status == "resolved":
            final.update({"close_code": "Solution provided", "close_notes": _SEED_CLOSE_NOTES})
        self._update("incident", row["sys_id"], final, agent, input_display=False,
                     at=opened + timedelta(hours=2))


# --------------------------------------------------------------------------- helpers


def _check_headers(request: Request) -> None:
    """Accept on every call, Content-Type on writes (docs/vendor-notes.md, Table API)."""
    accept = request.headers.get("accept")
    if accept is None or not accept.strip():
        raise ServiceNowApiError(400, "Invalid request", "Missing Accept header")
    ranges = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(r in ("application/json", "application/*", "*/*", "*") for r in ranges):
        raise ServiceNowApiError(406, "Not Acceptable",
                                 f"Accept {accept!r} does not allow application/json")
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        content_type = request.headers.get("content-type")
        if content_type is None or not content_type.strip():
            raise ServiceNowApiError(400, "Invalid request", "Missing Content-Type header")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise ServiceNowApiError(415, "Unsupported Media Type",
                                     f"Content-Type {content_type!r} is not application/json")


def _json_body(request: Request) -> Any:
    try:
        return request.json()
    except (ValueError, UnicodeDecodeError):
        raise ServiceNowApiError(400, "Exception while reading request",
                                 "The payload is not valid JSON.") from None


def _record_body(request: Request) -> dict[str, Any]:
    body = _json_body(request)
    if isinstance(body, list):  # several records: only the first is used (KB0534905)
        body = body[0] if body else {}
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ServiceNowApiError(400, "Exception while reading request",
                                 "The payload must be a JSON object.")
    return body


def _int_param(value: str | None, default: int, *, minimum: int) -> int:
    try:
        number = int(value) if value not in (None, "") else default
    except ValueError:
        return default
    return number if number >= minimum else default


def _view(request: Request) -> View:
    fields = tuple(f.strip() for f in (request.arg("sysparm_fields") or "").split(",")
                   if f.strip())
    display = (request.arg("sysparm_display_value") or "false").strip().lower()
    if display not in ("true", "false", "all"):
        display = "false"
    return View(fields=fields, display=display,
                exclude_link=_is_true(request.arg("sysparm_exclude_reference_link")))


def _link_header(request: Request, total: int, offset: int, limit: int) -> str:
    """``Link`` with relative page URLs; empty when everything fits in this page."""
    if offset == 0 and total <= limit:
        return ""
    # The last page starts on the same grid as this one (offset + k*limit), before total.
    last = max(0, offset + ((total - 1 - offset) // limit) * limit) if total else 0
    targets = [("first", 0)]
    if offset > 0:
        targets.append(("prev", max(0, offset - limit)))
    if offset + limit < total:
        targets.append(("next", offset + limit))
    targets.append(("last", last))
    base = [(k, v) for k, values in request.query.items() for v in values
            if k not in ("sysparm_offset", "sysparm_limit")]
    links = []
    for rel, target in targets:
        query = urlencode([*base, ("sysparm_offset", str(target)),
                           ("sysparm_limit", str(limit))])
        links.append(f'<{request.path}?{query}>;rel="{rel}"')
    return ",".join(links)
