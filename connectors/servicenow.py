"""The ServiceNow connector: the Table API through pysnow, plus the Batch API.

Contract:
- The only module that imports pysnow; every pysnow / requests exception is
  translated at this boundary into the :mod:`connectors.base` error tree (the
  HTTP rules live in :mod:`connectors.servicenow_errors`), and every request goes through the shared
  :class:`connectors.retry.RetryPolicy` (reads idempotent, writes not) and the
  optional :class:`connectors.retry.RequestBudget`.
- Reads use ``sysparm_display_value=false`` and
  ``sysparm_exclude_reference_link=true``: every value is the raw string, a
  reference is a bare sys_id. Dot-walked fields (``caller_id.email``) come back
  as flat keys. Only the fields asked for plus the connector's own
  (``sys_id, number, sys_mod_count, sys_updated_on, correlation_id``) are read.
- ``pull`` pages with a keyset on (sys_updated_on, sys_id) rather than offsets,
  so a record changed while we page cannot make us skip another; each record is
  yielded once per pull; comments (``sys_journal_field``) are read in one
  request per page of records (per 100 records on bigger pages, to keep URLs
  near 4 kB), and journal authors' user names turned into emails in one cached
  lookup.
- Version = ``sys_mod_count``. ``update(expected_version=...)`` reads the stamp
  first and raises PreconditionFailed when it moved. (The Table API has no
  conditional write; a write landing between our read and our PATCH is not
  detected. The window is one round trip.)
- ``{"$user": email}`` and ``{"$group": name}`` values are resolved to sys_ids
  in batches (``emailIN`` / ``nameIN``) and cached per run. An unknown one is a
  warning on the WriteResult, never an error: on create the field stays empty,
  on update the field is left as it was (we never clear data we cannot map).
- Creating several records uses the Batch API (one request per 50) when
  ``use_batch_api``; unserviced items, and items the instance answered 429
  (after their Retry-After), are re-sent up to 3 times.
- ``write_many`` (updates and back-links) and ``add_comments`` (journal entries)
  are Batch API PATCH sub-requests too: the version check of a whole batch is one
  ``sys_idIN...`` read, a stale item fails alone with PreconditionFailed, and the
  new journal entries' ids are read back once per 100 records
  (``element_idIN...``). The Batch API does not promise to run its items in
  order, so a record's second write or comment goes into a later batch. Without
  ``use_batch_api`` both fall back to one record at a time, ``concurrency`` records
  in flight at once (one record's writes in order on one worker).
- Every request holds a slot of an :class:`connectors.retry.AdaptiveLimit`: a 429
  halves the slots (Retry-After honoured) and a run of successes raises them.
- The requests of one batched call that do not depend on each other go together
  (:func:`connectors.retry.run_chunks`, within those slots and the budget): the Batch
  API requests of one round (each with its own re-sends), the ``sys_idIN`` reads of
  ``get_many``, ``find_by_foreign_id`` and version checks (each chunk's journal read
  right after its rows), a page's journal reads and the read-back of new entries. The
  requests are those of one chunk after another; results keep their order, journal
  authors are looked up on the caller's thread chunk by chunk, as before.
- ``get_many`` takes the caller's comments instead of reading the journal of a row
  whose ``sys_mod_count`` shows no comment can have reached it since they were read
  (``comments_at``): the same version, or moved only by this run's own Batch API
  writes, each one save on the version checked just before it (+1) with no journal
  entry. The engine's settle step reads a back-linked original that way: its row only.
- ``history`` reads ``sys_created_on`` of the records and their ``sys_audit``
  rows (field, user, time; stock instances audit the incident table), one
  request per 100 records plus one per 1,000 audit rows: the changes the
  integration user made are told apart from everyone else's by user name.
- Secrets: the password lives only in the pysnow session's auth; it is never
  logged or put into an error text (errors name the user, the URL and status).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pysnow
import pysnow.exceptions
import requests
from requests.adapters import HTTPAdapter

from connectors import http_log
from connectors.base import (
    GROUP_REF,
    USER_REF,
    AuthError,
    CheckResult,
    CommentResult,
    ConnectorError,
    Edit,
    KnownComments,
    NewComment,
    NewRecord,
    NotFound,
    PreconditionFailed,
    RecordHistory,
    RecordWrite,
    RemoteComment,
    RemoteRecord,
    RetriableError,
    ServerInfo,
    Side,
    SiteField,
    SkippableError,
    ValidationFailed,
    WriteResult,
    comment_each,
    ref_of,
    results_so_far,
    write_each,
)
from connectors.retry import (
    AdaptiveLimit,
    ChunkPool,
    RequestBudget,
    RetryPolicy,
    parse_retry_after,
    run_chunks,
    run_per_key,
)
from connectors.servicenow_config import ServiceNowConfig
from connectors.servicenow_errors import (
    short_url,
    translate_http_error,
    translate_request_error,
)
from connectors.servicenow_query import (
    any_of,
    check_field,
    check_sys_id,
    combine,
    equals,
    parse_sn_time,
    pull_query,
    scope_fields,
)
from connectors.session_env import remember_environment

log = logging.getLogger(__name__)
T = TypeVar("T")

SIDE = Side.SERVICENOW
OWN_FIELDS = ("sys_id", "number", "sys_mod_count", "sys_updated_on", "correlation_id")
JOURNAL_FIELDS = ["sys_id", "element", "element_id", "value", "sys_created_on", "sys_created_by"]
VISIBILITY_OF_ELEMENT = {"comments": "public", "work_notes": "internal"}
ELEMENT_OF_VISIBILITY = {"public": "comments", "internal": "work_notes"}
RESOLVING_STATES = {"6", "7"}          # Resolved, Closed: need close_code + close_notes
BASE_STATES = {"1", "2", "3", "6", "7", "8"}
BATCH_SIZE = 50                        # records per Batch API request
ID_BATCH = 100                         # ids per IN list: URLs stay near 4 kB
BATCH_RESENDS = 3                      # re-sends of unserviced Batch API items
JOURNAL_PAGE = 1000
META_PAGE = 1000                       # sys_dictionary / sys_choice rows per request
MAX_TABLE_DEPTH = 10                   # incident -> task is 2; custom tables go deeper
AUDIT_FIELDS = ["documentkey", "fieldname", "user", "sys_created_on"]
# Rows the instance writes to sys_audit that are not field edits.
AUDIT_NOT_FIELDS = {"DELETED", "comments", "work_notes"}
BATCH_PATH = "/api/now/v1/batch"
# Records whose own last saves get_many remembers (_own_saves): more than a batch of
# pairs (at most 1,000), so a settle read of a batch finds them, and bounded.
OWN_SAVES_KEPT = 2000
# A batched write's answer needs only the new version (and id, number): keep it small.
WRITE_FIELDS = "sysparm_fields=sys_id,number,sys_mod_count&sysparm_exclude_reference_link=true"


# --------------------------------------------------------------------------- errors


def translate_exception(
    error: Exception, *, url: str, user: str, write: bool = False,
    payload_fields: Iterable[str] = (),
) -> ConnectorError:
    """Any library exception as an error-tree exception (never with credentials)."""
    if isinstance(error, ConnectorError):
        return error
    if isinstance(error, pysnow.exceptions.InvalidUsage):
        raise error  # our bug, not the vendor's: retrying cannot help
    translated = translate_request_error(error, url=url, user=user, write=write,
                                         payload_fields=payload_fields)
    if translated is not None:
        return translated
    if isinstance(error, pysnow.exceptions.PysnowException):
        # MissingResult and friends: a body without the Table API envelope.
        return RetriableError(
            f"ServiceNow answered {short_url(url)} without a result ({type(error).__name__})",
            side=SIDE.value, url=short_url(url),
        )
    raise error


# --------------------------------------------------------------------------- helpers


def _flat(value: Any) -> Any:
    """A raw value as a string: some instances ignore exclude_reference_link."""
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def _parsed(response: Any, read: Callable[[], T]) -> T:
    """``read()`` of a pysnow response, a bad body becoming RetriableError with URL and status."""
    try:
        return read()
    except ValueError as error:
        raw = getattr(response, "_response", None)  # pysnow keeps the requests.Response here
        if raw is None or not 200 <= raw.status_code < 300:
            raise
        raise RetriableError(
            f"ServiceNow answered {short_url(raw.url)} with status {raw.status_code} and an "
            f"invalid or truncated JSON body ({type(error).__name__})",
            side=SIDE.value, status=raw.status_code, url=short_url(raw.url),
        ) from None


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _rounds(record_ids: Sequence[str]) -> list[list[int]]:
    """Indexes grouped so each group names a record at most once: round k holds the
    k-th item of every record, so a record's items run in their order, one round
    after the other."""
    seen: dict[str, int] = {}
    rounds: list[list[int]] = []
    for index, record_id in enumerate(record_ids):
        depth = seen.get(record_id, 0)
        seen[record_id] = depth + 1
        if depth == len(rounds):
            rounds.append([])
        rounds[depth].append(index)
    return rounds


def _parse_base_url(instance_url: str) -> tuple[str | None, str | None, bool]:
    """(instance, host, use_ssl) for pysnow.Client from a URL; ValueError when invalid."""
    parts = urlsplit(instance_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"servicenow instance_url must be http(s)://host[:port], got {instance_url!r}"
        )
    if parts.path.strip("/") or parts.query or parts.username or parts.password:
        raise ValueError(
            "servicenow instance_url must be the instance root without path, query or "
            f"credentials, got {short_url(instance_url)!r}"
        )
    use_ssl = parts.scheme == "https"
    host = parts.netloc
    if use_ssl and host.endswith(".service-now.com") and parts.port is None:
        return host[: -len(".service-now.com")], None, True
    return None, host, use_ssl


# --------------------------------------------------------------------------- connector


class ServiceNowConnector:
    """A :class:`connectors.base.Connector` for one ServiceNow table (``incident``)."""

    side = SIDE

    def __init__(
        self,
        instance_url: str,
        username: str,
        password: str,
        *,
        table: str = "incident",
        query: str = "active=true",
        page_size: int = 500,
        timeout: float = 30.0,
        requests_per_minute: int | None = None,
        use_batch_api: bool = True,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
    ) -> None:
        config = ServiceNowConfig.from_options(
            instance_url=instance_url, username=username, table=table, query=query,
            page_size=page_size, timeout=timeout, requests_per_minute=requests_per_minute,
            use_batch_api=use_batch_api, concurrency=concurrency,
        )
        self._setup(config, password, retry)

    @classmethod
    def from_config(
        cls, config: ServiceNowConfig, *, password: str, retry: RetryPolicy | None = None
    ) -> ServiceNowConnector:
        """The connector for a validated ``config``; nothing is checked again."""
        connector = cls.__new__(cls)
        connector._setup(config, password, retry)
        return connector

    def _setup(self, config: ServiceNowConfig, password: str, retry: RetryPolicy | None) -> None:
        if not password:
            raise ValueError("password: missing (set INCIDENT_SYNC_SERVICENOW__PASSWORD)")
        self.config = config
        self._instance, self._host, self._use_ssl = _parse_base_url(config.instance_url)
        self.base_url = config.instance_url
        self.username = config.username
        self.table = config.table
        self.query = config.query or ""
        self.page_size = config.page_size
        self.timeout = config.timeout
        self.use_batch_api = config.use_batch_api
        self.retry = retry or RetryPolicy()
        self.concurrency = config.concurrency
        self._limit = AdaptiveLimit(config.concurrency, max_pause=self.retry.max_wait,
                                    sleep=self.retry.sleep)
        # The chunks' helper threads, kept for the run (bounded like the requests in
        # flight), ended by close().
        self._pool = ChunkPool(config.concurrency, name="incident-sync-servicenow")
        rpm = config.requests_per_minute
        self.budget = RequestBudget(rpm) if rpm else None
        # pysnow keeps the password inside its session's auth object, the only copy.
        self._client: pysnow.Client = pysnow.Client(
            instance=self._instance, host=self._host, user=config.username, password=password,
            use_ssl=self._use_ssl,
        )
        if config.concurrency > 10:  # requests' default pool keeps 10 connections per host
            pooled = HTTPAdapter(pool_connections=config.concurrency,
                                 pool_maxsize=config.concurrency)
            self._client.session.mount("https://", pooled)
            self._client.session.mount("http://", pooled)
        http_log.attach(self._client.session, "servicenow")  # -vv lines, request counts
        self._lock = threading.Lock()
        self._users: dict[str, str | None] = {}        # lower-case email -> sys_id
        self._groups: dict[str, str | None] = {}       # group name -> sys_id
        self._authors: dict[str, str] = {}             # user_name -> email (or user_name)
        self._me: dict[str, Any] | None = None         # our sys_user row, read by open()
        # sys_id -> (version before, version after) of this run's last Batch API writes
        # that saved the record once (sys_mod_count + 1) on the version checked just
        # before and added no journal entry: get_many may trust comments known at
        # "before" for a record it finds at "after" (see get_many). Bounded.
        self._own_saves: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def __repr__(self) -> str:
        return (f"ServiceNowConnector({self.base_url!r}, user={self.username!r}, "
                f"table={self.table!r})")

    # ----------------------------------------------------------------- plumbing

    @property
    def client(self) -> pysnow.Client:
        return self._client

    def _resource(self, table: str) -> Any:
        # A fresh resource per request: pysnow's parameters stick to a resource
        # object, so sharing one would leak one call's query into the next.
        return self.client.resource(api_path=f"/table/{table}", timeout=self.timeout)

    def _url(self, path: str) -> str:
        return f"{self.client.base_url}{path}"

    def _call(
        self,
        request: Callable[[], T],
        *,
        url: str,
        idempotent: bool,
        payload_fields: Iterable[str] = (),
    ) -> T:
        """Run one HTTP request under the budget and the retry policy, errors translated."""
        fields = list(payload_fields)

        def attempt() -> T:
            if self.budget is not None:
                self.budget.acquire()
            try:
                return request()
            except Exception as error:  # translated at the boundary, re-raised typed
                raise translate_exception(
                    error, url=url, user=self.username, write=not idempotent,
                    payload_fields=fields,
                ) from None

        # Each attempt holds one of the bounded slots; a 429 halves them.
        return self.retry.call(lambda: self._limit.call(attempt), idempotent=idempotent)

    def _list(
        self, table: str, query: str, fields: Sequence[str], *, limit: int, offset: int = 0
    ) -> list[dict[str, Any]]:
        """One GET page of raw rows."""
        def request() -> list[dict[str, Any]]:
            response = self._resource(table).get(
                query=query, limit=limit, offset=offset, fields=list(fields),
                display_value=False, exclude_reference_link=True,
                suppress_pagination_header=True,
            )
            rows = _parsed(response, response.all)
            if not isinstance(rows, list):
                raise ValueError("result is not a list")
            return [{k: _flat(v) for k, v in row.items()} for row in rows]

        return self._call(request, url=self._url(f"/api/now/table/{table}"), idempotent=True)

    def _fields(self, fields: Sequence[str]) -> list[str]:
        wanted = [check_field(f) for f in fields]
        return list(dict.fromkeys([*OWN_FIELDS, *wanted]))

    # ----------------------------------------------------------------- lifecycle

    def open(self) -> ServerInfo:
        # The proxy environment read once per run, not per request.
        remember_environment(self.client.session)
        rows = self._list(
            "sys_user", equals("user_name", self.username),
            ["sys_id", "user_name", "email", "active", "locked_out"], limit=1,
        )
        # Kept for check(): an itil user can read its own sys_user record.
        self._me = rows[0] if rows else None
        email = rows[0].get("email", "") if rows else ""
        return ServerInfo(
            side=SIDE, base_url=self.base_url, flavor="servicenow",
            user=email or self.username, text_format="plain",
        )

    def close(self) -> None:
        # The session's pools are released; the session itself stays usable, so a
        # scheduled run can open() again without us keeping a copy of the password.
        self._pool.close()
        self.client.session.close()
        with self._lock:
            self._users.clear()
            self._groups.clear()
            self._authors.clear()
            self._own_saves.clear()

    # ----------------------------------------------------------------- reading

    def _record(self, row: Mapping[str, Any], comments: list[RemoteComment]) -> RemoteRecord:
        sys_id = str(row.get("sys_id") or "")
        try:
            updated = parse_sn_time(str(row.get("sys_updated_on") or ""))
        except ValueError:
            updated = None
        if not sys_id or updated is None:
            raise RetriableError(
                f"ServiceNow returned a {self.table} row without a sys_id or a readable "
                f"sys_updated_on (sys_id {sys_id!r})",
                side=SIDE.value,
            )
        return RemoteRecord(
            side=SIDE,
            id=sys_id,
            display=str(row.get("number") or sys_id),
            version=str(row.get("sys_mod_count") or "0"),
            updated=updated,
            fields=dict(row),
            comments=comments,
            foreign_id=str(row.get("correlation_id") or "") or None,
            url=f"{self.base_url}/{self.table}.do?sys_id={sys_id}",
        )

    def _comments(self, sys_ids: Sequence[str]) -> dict[str, list[RemoteComment]]:
        """Journal entries (comments and work notes) of these records, oldest first."""
        return self._journal_comments(sys_ids, self._journal_rows(sys_ids))

    def _journal_rows(self, sys_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The journal rows of these records, oldest first per chunk, chunks in order.

        One request per page of records while the id list keeps the URL short
        (ID_BATCH ids, about 4 kB); bigger pages take ceil(page / ID_BATCH), sent
        together (:func:`run_chunks`): they do not depend on each other."""
        chunks = list(_chunks(list(sys_ids), ID_BATCH))

        def read(number: int) -> list[dict[str, Any]]:
            query = combine(
                "",
                [[equals("name", self.table), any_of("element_id", list(chunks[number])),
                  "elementINcomments,work_notes"]],
                order=False,
            ) + "^ORDERBYsys_created_on^ORDERBYsys_id"
            rows: list[dict[str, Any]] = []
            offset = 0
            # Journal rows are only ever inserted, so offset paging over them is stable.
            while True:
                page = self._list("sys_journal_field", query, JOURNAL_FIELDS,
                                  limit=JOURNAL_PAGE, offset=offset)
                rows.extend(page)
                if len(page) < JOURNAL_PAGE:
                    return rows
                offset += JOURNAL_PAGE

        return [row for rows in run_chunks(len(chunks), read, self.concurrency, pool=self._pool)
                for row in rows]

    def _journal_comments(self, sys_ids: Sequence[str], rows: Sequence[Mapping[str, Any]]
                          ) -> dict[str, list[RemoteComment]]:
        """These journal rows as each record's comments (authors' emails looked up once,
        cached), on the caller's thread."""
        found: dict[str, list[RemoteComment]] = {i: [] for i in sys_ids}
        if not sys_ids:
            return found
        authors = self._author_emails({str(r.get("sys_created_by") or "") for r in rows})
        for row in rows:
            parent = str(row.get("element_id") or "")
            if parent not in found:
                continue
            by = str(row.get("sys_created_by") or "")
            found[parent].append(RemoteComment(
                id=str(row.get("sys_id") or ""),
                body=str(row.get("value") or ""),
                created=self._journal_time(row),
                # Anything but a known public journal is internal: fail closed.
                visibility=VISIBILITY_OF_ELEMENT.get(str(row.get("element") or ""), "internal"),
                author=authors.get(by, by),
            ))
        return found

    @staticmethod
    def _journal_time(row: Mapping[str, Any]) -> datetime:
        try:
            created = parse_sn_time(str(row.get("sys_created_on") or ""))
        except ValueError:
            created = None
        if created is None:
            # Inventing a time would change the comment on every pull; refuse instead.
            raise RetriableError(
                f"ServiceNow journal entry {row.get('sys_id')!r} has no readable sys_created_on",
                side=SIDE.value,
            )
        return created

    def _author_emails(self, user_names: set[str]) -> dict[str, str]:
        """user_name -> email for journal authors, one cached batch lookup."""
        names = sorted(n for n in user_names if n)
        with self._lock:
            missing = [n for n in names if n not in self._authors]
        for chunk in _chunks(missing, ID_BATCH):
            rows = self._list("sys_user", any_of("user_name", list(chunk)),
                              ["user_name", "email"], limit=len(chunk))
            with self._lock:
                for row in rows:
                    name = str(row.get("user_name") or "")
                    if name:
                        self._authors[name] = str(row.get("email") or "") or name
                for name in chunk:
                    self._authors.setdefault(name, name)
        with self._lock:
            return {n: self._authors.get(n, n) for n in names}

    def _records(self, rows: list[dict[str, Any]]) -> list[RemoteRecord]:
        comments = self._comments([str(r.get("sys_id") or "") for r in rows])
        return [self._record(r, comments.get(str(r.get("sys_id") or ""), [])) for r in rows]

    def pull(self, since: datetime | None, fields: Sequence[str]) -> Iterator[RemoteRecord]:
        wanted = self._fields(fields)
        after: tuple[str, str] | None = None
        seen: set[str] = set()
        while True:
            rows = self._list(self.table, pull_query(self.query, since, after), wanted,
                              limit=self.page_size)
            fresh = [r for r in rows if str(r.get("sys_id") or "") not in seen]
            for record in self._records(fresh):
                seen.add(record.id)
                yield record
            if len(rows) < self.page_size:
                return
            last = rows[-1]
            cursor = (str(last.get("sys_updated_on") or ""), str(last.get("sys_id") or ""))
            if cursor == after or not all(cursor):
                # A server that ignores our keyset would loop forever: refuse.
                raise RetriableError(
                    f"ServiceNow paging of {self.table} did not advance past {cursor}",
                    side=SIDE.value,
                )
            after = cursor

    def _chunk_rows(
        self, chunks: Sequence[Sequence[str]], read: Callable[[Sequence[str]], list[dict[str, Any]]]
    ) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """Per chunk, the rows ``read`` returns and their journal rows: the chunks are
        independent ``IN`` list reads, so they are sent together (:func:`run_chunks`),
        each chunk's journal read right after its own rows. Results in chunk order."""
        def one(number: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            rows = read(chunks[number])
            return rows, self._journal_rows([str(r.get("sys_id") or "") for r in rows])

        return run_chunks(len(chunks), one, self.concurrency, pool=self._pool)

    def _chunk_records(self, rows: list[dict[str, Any]],
                       journal: Sequence[Mapping[str, Any]],
                       known: Mapping[str, list[RemoteComment]] | None = None
                       ) -> list[RemoteRecord]:
        """One chunk's rows as records, on the caller's thread: chunk by chunk in order,
        so journal authors are looked up (and cached) as the one-after-another loop did.
        ``known``: the comments of rows whose journal was not read (see get_many)."""
        held = known or {}
        comments = self._journal_comments(
            [str(r.get("sys_id") or "") for r in rows
             if str(r.get("sys_id") or "") not in held], journal)
        comments.update({sys_id: list(listed) for sys_id, listed in held.items()})
        return [self._record(r, comments.get(str(r.get("sys_id") or ""), [])) for r in rows]

    def get_many(self, ids: Sequence[str], fields: Sequence[str], *,
                 comments_at: Mapping[str, KnownComments] | None = None
                 ) -> dict[str, RemoteRecord]:
        """The records of these sys_ids: one ``sys_idIN`` read per ID_BATCH, then that
        chunk's journal read (after the rows, so a comment newer than a row's version
        is seen rather than one its version counts missed).

        ``comments_at``: a row whose ``sys_mod_count`` shows no comment can have been
        added since the version the caller's comments go with takes those comments and
        is left out of the journal read (none at all when every row is such): the row
        is still at that version, or this run's own Batch API writes alone moved it
        there, each saving the record once (sys_mod_count grows by one per update) on
        the version checked just before it and adding no journal entry. Adding a
        comment or work note saves the record, moving its sys_mod_count (as every
        pull's ``sys_updated_on`` watermark relies on)."""
        wanted = self._fields(fields)
        unique = list(dict.fromkeys(i for i in ids if i))
        found: dict[str, RemoteRecord] = {}
        chunks = list(_chunks(unique, min(self.page_size, ID_BATCH)))
        given = comments_at or {}

        def read(number: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                       dict[str, list[RemoteComment]]]:
            query = f"{any_of('sys_id', list(chunks[number]))}^ORDERBYsys_id"
            rows = self._list(self.table, query, wanted, limit=len(chunks[number]))
            known: dict[str, list[RemoteComment]] = {}
            for row in rows:
                sys_id = str(row.get("sys_id") or "")
                held = given.get(sys_id)
                if held is not None and self._no_comment_since(
                        sys_id, held.version, str(row.get("sys_mod_count") or "0")):
                    known[sys_id] = list(held.comments)
            unread = [str(r.get("sys_id") or "") for r in rows
                      if str(r.get("sys_id") or "") not in known]
            return rows, self._journal_rows(unread) if unread else [], known

        # Independent chunks, sent together; each chunk's journal read after its rows.
        for rows, journal, known in run_chunks(len(chunks), read, self.concurrency,
                                               pool=self._pool):
            for record in self._chunk_records(rows, journal, known):
                found[record.id] = record
        return found

    def _no_comment_since(self, sys_id: str, version: str, now: str) -> bool:
        """Whether a record at ``now`` can hold no journal entry it lacked at ``version``:
        the same version, or only this run's own saves between (``_own_saves``)."""
        if now == version:
            return True
        with self._lock:
            return self._own_saves.get(sys_id) == (version, now)

    def _saved_once(self, sys_id: str, before: str | None, after: str | None,
                    payload: Mapping[str, Any]) -> None:
        """Remember a Batch API write that saved ``sys_id`` exactly once on ``before``
        (checked just before) and added no journal entry; chained onto the previous such
        write of the record when that one left ``before``."""
        if (before is None or after is None or not before.isdigit()
                or after != str(int(before) + 1)
                or any(element in payload for element in ELEMENT_OF_VISIBILITY.values())):
            with self._lock:
                self._own_saves.pop(sys_id, None)
            return
        with self._lock:
            first = self._own_saves.pop(sys_id, None)
            start = first[0] if first is not None and first[1] == before else before
            self._own_saves[sys_id] = (start, after)
            while len(self._own_saves) > OWN_SAVES_KEPT:
                self._own_saves.popitem(last=False)

    def history(self, ids: Sequence[str]) -> dict[str, RecordHistory]:
        unique = list(dict.fromkeys(i for i in ids if i))
        created: dict[str, datetime] = {}
        edits: dict[str, list[Edit]] = {}
        for chunk in _chunks(unique, ID_BATCH):
            for row in self._list(self.table, f"{any_of('sys_id', list(chunk))}^ORDERBYsys_id",
                                  ["sys_id", "sys_created_on"], limit=len(chunk)):
                created[str(row.get("sys_id") or "")] = self._audit_time(row, "record")
            query = combine(
                "", [[equals("tablename", self.table), any_of("documentkey", list(chunk))]],
                order=False,
            ) + "^ORDERBYsys_created_on^ORDERBYsys_id"
            offset = 0
            # Audit rows are only ever inserted, so offset paging over them is stable.
            while True:
                try:
                    page = self._list("sys_audit", query, AUDIT_FIELDS, limit=JOURNAL_PAGE,
                                      offset=offset)
                except AuthError as exc:
                    if exc.status != 403:
                        raise
                    # Only the few records being adopted need it: those wait in the
                    # retry queue, the rest of the run goes on.
                    raise SkippableError(
                        f"ServiceNow user {self.username!r} cannot read sys_audit (403), "
                        "which tells a person's edits from the sync's: grant it read access",
                        side=SIDE.value, status=403) from None
                for row in page:
                    name = str(row.get("fieldname") or "")
                    if name and name not in AUDIT_NOT_FIELDS:
                        edits.setdefault(str(row.get("documentkey") or ""), []).append(Edit(
                            field=name, at=self._audit_time(row, "audit row"),
                            by_us=str(row.get("user") or "") == self.username))
                if len(page) < JOURNAL_PAGE:
                    break
                offset += JOURNAL_PAGE
        return {sys_id: RecordHistory(at, tuple(edits.get(sys_id, ())))
                for sys_id, at in created.items()}

    @staticmethod
    def _audit_time(row: Mapping[str, Any], what: str) -> datetime:
        try:
            at = parse_sn_time(str(row.get("sys_created_on") or ""))
        except ValueError:
            at = None
        if at is None:
            raise RetriableError(f"ServiceNow {what} without a readable sys_created_on",
                                 side=SIDE.value)
        return at

    def find_by_foreign_id(
        self, foreign_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, RemoteRecord]:
        wanted = self._fields(fields)
        # An empty id would match every unlinked record.
        unique = list(dict.fromkeys(f for f in foreign_ids if f))
        found: dict[str, RemoteRecord] = {}
        chunks = list(_chunks(unique, min(self.page_size, ID_BATCH)))

        def read(chunk: Sequence[str]) -> list[dict[str, Any]]:
            query = f"{any_of('correlation_id', list(chunk))}^ORDERBYsys_created_on^ORDERBYsys_id"
            rows = self._list(self.table, query, wanted, limit=max(len(chunk) * 2, 10))
            # The server compares case-insensitively on many databases: keep exact matches.
            return [r for r in rows if str(r.get("correlation_id") or "") in chunk]

        # The chunks hold distinct ids, so no chunk's matches can be another's.
        for exact, journal in self._chunk_rows(chunks, read):
            for record in self._chunk_records(exact, journal):
                if record.foreign_id in found:
                    log.warning("ServiceNow: %s and %s both carry foreign id %r; using the first",
                                found[record.foreign_id].display, record.display,
                                record.foreign_id)
                    continue
                if record.foreign_id:
                    found[record.foreign_id] = record
        return found

    # ----------------------------------------------------------------- references

    def _resolve(self, kind: str, keys: set[str]) -> dict[str, str | None]:
        """sys_ids of users (by lower-case email) or groups (by name), cached."""
        cache = self._users if kind == USER_REF else self._groups
        table, field = ("sys_user", "email") if kind == USER_REF else ("sys_user_group", "name")
        with self._lock:
            missing = sorted(k for k in keys if k not in cache)
        for chunk in _chunks(missing, ID_BATCH):
            rows = self._list(table, f"{any_of(field, list(chunk))}^ORDERBYsys_id",
                              ["sys_id", field], limit=len(chunk) * 2)
            with self._lock:
                for name in chunk:
                    cache.setdefault(name, None)
                for row in rows:
                    value = str(row.get(field) or "")
                    key = value.lower() if kind == USER_REF else value
                    if key in chunk and cache.get(key) is None:
                        cache[key] = str(row.get("sys_id") or "") or None
        with self._lock:
            return {k: cache.get(k) for k in keys}

    def group_ids(self, names: Iterable[str]) -> dict[str, str | None]:
        """sys_id of each ``sys_user_group`` by exact name; None for a name not found."""
        return self._resolve(GROUP_REF, set(names))

    def _resolve_refs(
        self, payloads: Sequence[Mapping[str, Any]], *, creating: bool
    ) -> list[tuple[dict[str, Any], list[str]]]:
        """Payloads with user/group refs replaced by sys_ids, and warnings per payload."""
        wanted: dict[str, set[str]] = {USER_REF: set(), GROUP_REF: set()}
        for payload in payloads:
            for value in payload.values():
                ref = ref_of(value)
                if ref and ref[1]:
                    wanted[ref[0]].add(ref[1].lower() if ref[0] == USER_REF else ref[1])
        resolved = {kind: self._resolve(kind, keys) if keys else {}
                    for kind, keys in wanted.items()}
        out = []
        for payload in payloads:
            fields: dict[str, Any] = {}
            warnings: list[str] = []
            for name, value in payload.items():
                ref = ref_of(value)
                if ref is None:
                    fields[name] = "" if value is None else value
                    continue
                kind, target = ref
                if not target:
                    fields[name] = ""
                    continue
                key = target.lower() if kind == USER_REF else target
                sys_id = resolved[kind].get(key)
                if sys_id:
                    fields[name] = sys_id
                    continue
                what = "user with email" if kind == USER_REF else "group named"
                if creating:
                    fields[name] = ""
                    warnings.append(f"{name}: no ServiceNow {what} {target!r}; left empty")
                else:
                    warnings.append(f"{name}: no ServiceNow {what} {target!r}; left unchanged")
            out.append((fields, warnings))
        return out

    # ----------------------------------------------------------------- writing

    def _check_resolution(self, fields: Mapping[str, Any]) -> None:
        # Fail before sending when we can see the data policy would refuse it.
        if str(fields.get("state", "")) in RESOLVING_STATES:
            missing = [f for f in ("close_code", "close_notes") if not fields.get(f)]
            if missing:
                raise ValidationFailed(
                    f"ServiceNow: resolving (state {fields['state']}) needs "
                    f"{' and '.join(missing)}",
                    fields={f: "mandatory when resolving" for f in missing},
                    side=SIDE.value,
                )

    def _result_of(self, row: Mapping[str, Any], warnings: list[str]) -> WriteResult:
        return WriteResult(
            id=str(_flat(row.get("sys_id")) or ""),
            version=str(_flat(row.get("sys_mod_count")) or "0"),
            display=str(_flat(row.get("number")) or ""),
            warnings=warnings,
        )

    def _insert_one(self, payload: dict[str, Any]) -> dict[str, Any]:
        def request() -> dict[str, Any]:
            response = self._resource(self.table).create(payload)
            return dict(_parsed(response, response.one))

        return self._call(request, url=self._url(f"/api/now/table/{self.table}"),
                          idempotent=False, payload_fields=payload)

    def create(self, records: Sequence[NewRecord], *,
               created: Callable[[list[WriteResult]], None] | None = None
               ) -> list[WriteResult]:
        """Inserts (the Batch API for several); ``created`` is told when they are done:
        a ServiceNow create has no steps after it to overlap (see
        :meth:`connectors.base.Connector.create`)."""
        if not records:
            if created is not None:
                created([])
            return []
        payloads = []
        for record in records:
            fields = dict(record.fields)
            fields["correlation_id"] = record.foreign_id
            fields["correlation_display"] = "JIRA"
            payloads.append(fields)
        resolved = self._resolve_refs(payloads, creating=True)
        results: dict[int, WriteResult] = {}
        pending: list[int] = []
        for index, (payload, warnings) in enumerate(resolved):
            try:
                self._check_resolution(payload)
            except ValidationFailed as error:
                results[index] = WriteResult(error=error, warnings=warnings)
                continue
            pending.append(index)
        if self.use_batch_api and len(pending) > 1:
            outcomes = self._batch_create([resolved[i][0] for i in pending])
            for index, outcome in zip(pending, outcomes, strict=True):
                warnings = resolved[index][1]
                if isinstance(outcome, ConnectorError):
                    results[index] = WriteResult(error=outcome, warnings=warnings)
                else:
                    results[index] = self._result_of(outcome, warnings)
        else:
            for index in pending:
                payload, warnings = resolved[index]
                try:
                    results[index] = self._result_of(self._insert_one(payload), warnings)
                except (SkippableError, RetriableError) as error:
                    results[index] = WriteResult(error=error, warnings=warnings)
        ordered = [results[index] for index in range(len(records))]
        if created is not None:
            created(results_so_far(ordered))
        return ordered

    def _batch_create(
        self, payloads: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any] | ConnectorError]:
        """Insert records through the Batch API; one outcome per payload, in order."""
        path = f"/api/now/table/{self.table}"
        items = [self._batch_item(str(n), "POST", path, p) for n, p in enumerate(payloads)]
        outcomes = self._batch_run(items)
        return [self._batch_outcome(outcomes[str(n)], path, payloads[n])
                for n in range(len(payloads))]

    @staticmethod
    def _batch_item(item_id: str, method: str, url: str,
                    payload: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": item_id, "method": method, "url": url,
            "headers": [{"name": "Content-Type", "value": "application/json"},
                        {"name": "Accept", "value": "application/json"}],
            "body": base64.b64encode(json.dumps(dict(payload)).encode("utf-8")).decode("ascii"),
            # Kept: a 429 item's Retry-After is among them (a few hundred bytes).
            "exclude_response_headers": False,
        }

    def _batch_run(
        self, items: Sequence[dict[str, Any]]
    ) -> dict[str, Mapping[str, Any] | ConnectorError]:
        """Send these Batch API items (ids unique), BATCH_SIZE a request; the served
        answer of each item by id, or the error that left it unanswered.

        Unserviced items (a size or time limit hit) are re-sent, and so are items
        the instance answered 429 (refused before doing anything, like a whole
        request's 429), after their Retry-After; at most BATCH_RESENDS times. A
        failure of the whole batch request is every one of its items' error.

        The requests of one call hold distinct items (a record's second write goes in
        a later call, :func:`_rounds`), so they are sent together (:func:`run_chunks`),
        each with its own re-sends; every request holds a slot of the connector's
        limit, which a 429 halves."""
        by_id = {str(item["id"]): item for item in items}
        chunks = list(_chunks(list(by_id), BATCH_SIZE))

        def send(number: int) -> dict[str, Mapping[str, Any] | ConnectorError]:
            served: dict[str, Mapping[str, Any] | ConnectorError] = {}
            todo = list(chunks[number])
            for sends in range(1 + BATCH_RESENDS):
                if not todo:
                    break
                batch_id = f"incident-sync-{sends}"
                try:
                    reply = self._post_batch({"batch_request_id": batch_id,
                                              "rest_requests": [by_id[i] for i in todo]})
                    if str(reply.get("batch_request_id", batch_id)) != batch_id:
                        raise RetriableError("ServiceNow Batch API answered another batch",
                                             side=SIDE.value, url=self._url(BATCH_PATH))
                except (SkippableError, RetriableError) as error:
                    # The whole batch failed before any item ran: each item carries it.
                    served.update((i, error) for i in todo)
                    todo = []
                    break
                again: list[str] = []
                waits: list[float] = []
                for answer in reply.get("serviced_requests") or []:
                    item_id = str(answer.get("id"))
                    if item_id not in todo:  # not one this request sent
                        continue
                    served[item_id] = answer
                    if int(answer.get("status_code") or 0) == 429 and sends < BATCH_RESENDS:
                        again.append(item_id)
                        waits.append(self._retry_after(answer))
                unserviced = [str(i) for i in reply.get("unserviced_requests") or []
                              if str(i) in by_id and str(i) not in served]
                todo = [i for i in todo if i in again or i in unserviced]
                if waits:
                    self.retry.sleep(min(max(waits), self.retry.max_wait))
            for item_id in todo:
                served.setdefault(item_id, RetriableError(
                    f"ServiceNow Batch API left item {item_id} unserviced after "
                    f"{BATCH_RESENDS} re-sends", side=SIDE.value, url=self._url(BATCH_PATH)))
            return served

        served: dict[str, Mapping[str, Any] | ConnectorError] = {}
        for answers in run_chunks(len(chunks), send, self.concurrency, pool=self._pool):
            served.update(answers)
        return served

    def _post_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        url = self._url(BATCH_PATH)

        def request() -> dict[str, Any]:
            response = self.client.session.post(url, data=json.dumps(body), timeout=self.timeout)
            response.raise_for_status()
            data = response.json()
            if not isinstance(data, dict):
                raise ValueError("batch reply is not an object")
            return data

        return self._call(request, url=url, idempotent=False)

    @staticmethod
    def _retry_after(answer: Mapping[str, Any]) -> float:
        for header in answer.get("headers") or []:
            if isinstance(header, dict) and str(header.get("name", "")).lower() == "retry-after":
                seconds = parse_retry_after(str(header.get("value", "")))
                if seconds is not None:
                    return seconds
        return 1.0

    def _batch_outcome(
        self, served: Mapping[str, Any] | ConnectorError, path: str,
        payload: Mapping[str, Any],
    ) -> dict[str, Any] | ConnectorError:
        """One Batch API item's record (``result``), or its error translated."""
        if isinstance(served, ConnectorError):
            return served
        status = int(served.get("status_code") or 0)
        try:
            raw = base64.b64decode(served.get("body") or "").decode("utf-8")
            data = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError):
            data = None
        if 200 <= status < 300 and isinstance(data, dict) and isinstance(data.get("result"), dict):
            return dict(data["result"])
        fake = requests.Response()
        fake.status_code = status or 500
        fake.url = self._url(path)
        fake._content = json.dumps(data).encode("utf-8") if isinstance(data, dict) else b""
        fake.reason = str(served.get("status_text") or served.get("error_message") or "")
        for header in served.get("headers") or []:
            if isinstance(header, dict) and "name" in header:
                fake.headers[str(header["name"])] = str(header.get("value", ""))
        if 200 <= status < 300:
            return RetriableError(f"ServiceNow Batch API item has no record (status {status})",
                                  side=SIDE.value, status=status, url=self._url(path))
        return translate_http_error(fake, user=self.username, write=True, payload_fields=payload)

    def _path_id(self, record_id: str) -> str:
        """``record_id`` when it can be a sys_id; it goes into a URL path unescaped."""
        try:
            return check_sys_id(record_id)
        except ValueError as error:
            raise NotFound(f"ServiceNow {self.table}: {error}", side=SIDE.value) from None

    def _version(self, record_id: str) -> str:
        rows = self._list(self.table, f"{equals('sys_id', record_id)}",
                          ["sys_id", "sys_mod_count"], limit=1)
        if not rows:
            raise NotFound(f"ServiceNow {self.table} {record_id} not found", side=SIDE.value)
        return str(rows[0].get("sys_mod_count") or "0")

    def _patch(self, record_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        self._path_id(record_id)

        def request() -> dict[str, Any]:
            response = self._resource(self.table).request(
                "PATCH", path_append=f"/{record_id}", data=json.dumps(dict(payload)))
            return dict(_parsed(response, response.one))

        # A PATCH with the same values is harmless to repeat, but it moves
        # sys_mod_count: treat it as a write and retry only what the vendor refused.
        return self._call(request, url=self._url(f"/api/now/table/{self.table}/{record_id}"),
                          idempotent=False, payload_fields=payload)

    def update(
        self, record_id: str, fields: Mapping[str, Any], expected_version: str | None = None
    ) -> WriteResult:
        self._path_id(record_id)
        # No resolution pre-check here: the record may already carry close_code and
        # close_notes, so only the instance can tell; its 403 becomes ValidationFailed.
        ((payload, warnings),) = self._resolve_refs([fields], creating=False)
        if expected_version is not None:
            current = self._version(record_id)
            if current != str(expected_version):
                raise PreconditionFailed(
                    f"ServiceNow {self.table} {record_id} moved: version {current}, "
                    f"expected {expected_version}"
                )
        if not payload:
            version = self._version(record_id)
            return WriteResult(id=record_id, version=version, warnings=warnings)
        return self._result_of(self._patch(record_id, payload), warnings)

    def mark_foreign_id(
        self, record_id: str, foreign_id: str, expected_version: str | None = None
    ) -> WriteResult:
        """Set the incident's correlation pair to the Jira key of its copy (where
        :meth:`create` puts it on a copy): one version read when ``expected_version``
        is given, one PATCH. ``correlation_display`` names the other tool."""
        return self.update(record_id, {"correlation_id": foreign_id,
                                       "correlation_display": "JIRA"},
                           expected_version=expected_version)

    def add_comment(self, record_id: str, body: Any, visibility: str) -> RemoteComment:
        # Unknown visibility goes to work notes: never publish by mistake.
        element = ELEMENT_OF_VISIBILITY.get(visibility, "work_notes")
        text = str(body)
        if not text.strip():
            raise ValidationFailed("ServiceNow: a comment must not be empty",
                                   fields={element: "empty"}, side=SIDE.value)
        self._patch(record_id, {element: text})
        query = combine(
            "", [[equals("element_id", record_id), equals("element", element),
                  equals("name", self.table)]], order=False,
        ) + "^ORDERBYDESCsys_created_on"
        rows = self._list("sys_journal_field", query, JOURNAL_FIELDS, limit=20)
        mine = [r for r in rows if str(r.get("value") or "") == text]
        if not mine:
            raise RetriableError(
                f"ServiceNow stored the {element} entry on {record_id} but it is not readable "
                "in sys_journal_field", side=SIDE.value,
            )
        row = mine[0]
        by = str(row.get("sys_created_by") or "")
        return RemoteComment(
            id=str(row.get("sys_id") or ""),
            body=text,
            created=self._journal_time(row),
            visibility=VISIBILITY_OF_ELEMENT[element],
            author=self._author_emails({by}).get(by, by) if by else "",
        )

    # ----------------------------------------------------------------- batched writes

    def write_many(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Updates and back-links as Batch API PATCH sub-requests.

        Costs, per call: one version read per ID_BATCH records (``sys_idIN...``,
        only for writes that carry an expected version or change nothing) and one
        batch request per BATCH_SIZE writes. The Batch API does not promise to run
        its items in order, so a record's second write goes in a later batch (a
        "round"), checked against the version its first write left. Without
        ``use_batch_api`` each write is an update (and mark) of its own.
        """
        if not self.use_batch_api:
            return run_per_key([w.record_id for w in writes],
                               lambda i: write_each(self, [writes[i]])[0], self.concurrency,
                               pool=self._pool)
        results: list[WriteResult | None] = [None] * len(writes)
        payloads: list[dict[str, Any]] = []
        for write in writes:
            payload = dict(write.fields)
            if write.foreign_id is not None:
                payload.update({"correlation_id": write.foreign_id, "correlation_display": "JIRA"})
            payloads.append(payload)
        resolved = self._resolve_refs(payloads, creating=False)
        rounds = _rounds([w.record_id for w in writes])
        for index, write in enumerate(writes):
            try:
                self._path_id(write.record_id)
            except NotFound as error:
                results[index] = WriteResult(id=write.record_id, error=error)
        versions: dict[str, str] = {}
        path = f"/api/now/table/{self.table}"
        for members in rounds:
            # One read for the round's records whose version matters and is unknown
            # (after round 0, known from the previous round's answers).
            need = {writes[i].record_id for i in members if results[i] is None
                    and (writes[i].expected_version is not None or not resolved[i][0])}
            versions.update(self._versions([r for r in need if r not in versions]))
            items: dict[str, tuple[int, dict[str, Any]]] = {}
            checked = {record_id: version for record_id, version in versions.items()
                       if version}
            for index in members:
                if results[index] is not None:
                    continue
                write = writes[index]
                payload, warnings = resolved[index]
                current = versions.get(write.record_id)
                if write.record_id in need and current is None:
                    results[index] = WriteResult(id=write.record_id, error=NotFound(
                        f"ServiceNow {self.table} {write.record_id} not found",
                        side=SIDE.value, status=404))
                elif (write.expected_version is not None
                        and current != str(write.expected_version)):
                    results[index] = WriteResult(id=write.record_id, error=PreconditionFailed(
                        f"ServiceNow {self.table} {write.record_id} moved: version "
                        f"{current}, expected {write.expected_version}"))
                elif not payload:
                    results[index] = WriteResult(id=write.record_id, version=current,
                                                 warnings=list(warnings))
                else:
                    items[str(index)] = (index, payload)
            served = self._batch_run([
                self._batch_item(item_id, "PATCH",
                                 f"{path}/{writes[index].record_id}?{WRITE_FIELDS}", payload)
                for item_id, (index, payload) in items.items()])
            for item_id, (index, payload) in items.items():
                record_id = writes[index].record_id
                outcome = self._batch_outcome(served[item_id], f"{path}/{record_id}", payload)
                if isinstance(outcome, ConnectorError):
                    results[index] = WriteResult(id=record_id, error=outcome,
                                                 warnings=list(resolved[index][1]))
                    versions.pop(record_id, None)  # unknown now: a later round must re-read
                    continue
                result = self._result_of(outcome, list(resolved[index][1]))
                result.id = result.id or record_id
                results[index] = result
                # Checked just before (read now or left by a previous round's write):
                # the version this write went onto, if this run knows it.
                self._saved_once(record_id, checked.get(record_id), result.version, payload)
                versions[record_id] = result.version or ""
        return [r if r is not None else WriteResult(id=w.record_id, error=RetriableError(
            f"ServiceNow {self.table} {w.record_id}: write not attempted", side=SIDE.value))
                for r, w in zip(results, writes, strict=True)]

    def _versions(self, record_ids: Sequence[str]) -> dict[str, str]:
        """sys_mod_count of these records, one read per ID_BATCH; missing ones absent."""
        unique = list(dict.fromkeys(record_ids))
        found: dict[str, str] = {}
        chunks = list(_chunks(unique, ID_BATCH))

        def read(number: int) -> list[dict[str, Any]]:
            return self._list(self.table, f"{any_of('sys_id', list(chunks[number]))}"
                              "^ORDERBYsys_id", ["sys_id", "sys_mod_count"],
                              limit=len(chunks[number]))

        # Independent reads: sent together, their rows taken in chunk order.
        for rows in run_chunks(len(chunks), read, self.concurrency, pool=self._pool):
            found.update((str(r.get("sys_id") or ""), str(r.get("sys_mod_count") or "0"))
                         for r in rows)
        return found

    def add_comments(self, comments: Sequence[NewComment]) -> list[CommentResult]:
        """Journal entries as Batch API PATCH sub-requests (``comments`` for public,
        ``work_notes`` otherwise), a record's entries in rounds so they keep their
        order; the new entries' ids read back once per batch of records
        (``sys_journal_field`` by ``element_idIN...``). Without ``use_batch_api``,
        one PATCH and one journal read per comment."""
        if not self.use_batch_api:
            return run_per_key([c.record_id for c in comments],
                               lambda i: comment_each(self, [comments[i]])[0], self.concurrency,
                               pool=self._pool)
        results: list[CommentResult | None] = [None] * len(comments)
        texts: list[tuple[str, str]] = []   # (element, text) per comment
        for index, item in enumerate(comments):
            element = ELEMENT_OF_VISIBILITY.get(item.visibility, "work_notes")
            text = str(item.body)
            texts.append((element, text))
            try:
                self._path_id(item.record_id)
                if not text.strip():
                    raise ValidationFailed("ServiceNow: a comment must not be empty",
                                           fields={element: "empty"}, side=SIDE.value)
            except (NotFound, ValidationFailed) as error:
                results[index] = CommentResult(error=error)
        path = f"/api/now/table/{self.table}"
        written: list[int] = []
        for members in _rounds([c.record_id for c in comments]):
            todo = [i for i in members if results[i] is None]
            served = self._batch_run([
                self._batch_item(str(i), "PATCH",
                                 f"{path}/{comments[i].record_id}?{WRITE_FIELDS}",
                                 {texts[i][0]: texts[i][1]}) for i in todo])
            for index in todo:
                outcome = self._batch_outcome(served[str(index)],
                                              f"{path}/{comments[index].record_id}",
                                              {texts[index][0]: texts[index][1]})
                if isinstance(outcome, ConnectorError):
                    results[index] = CommentResult(error=outcome)
                else:
                    written.append(index)
        entries = self._new_entries([(comments[i].record_id, *texts[i]) for i in written])
        for index, row in zip(written, entries, strict=True):
            element, text = texts[index]
            if row is None:
                results[index] = CommentResult(error=RetriableError(
                    f"ServiceNow stored the {element} entry on {comments[index].record_id} "
                    "but it is not readable in sys_journal_field", side=SIDE.value))
                continue
            by = str(row.get("sys_created_by") or "")
            results[index] = CommentResult(comment=RemoteComment(
                id=str(row.get("sys_id") or ""), body=text, created=self._journal_time(row),
                visibility=VISIBILITY_OF_ELEMENT[element],
                author=self._author_emails({by}).get(by, by) if by else ""))
        return [r if r is not None else CommentResult(error=RetriableError(
            "ServiceNow comment not attempted", side=SIDE.value)) for r in results]

    def _new_entries(
        self, written: Sequence[tuple[str, str, str]]
    ) -> list[dict[str, Any] | None]:
        """The sys_journal_field rows just written, one per (record, element, text), in
        order: read newest first, per ID_BATCH records, only the integration user's
        entries, and only until every one is matched. Equal texts on one record take
        distinct rows, the newest going to the last written."""
        wanted: dict[tuple[str, str, str], list[int]] = {}
        for index, key in enumerate(written):
            wanted.setdefault(key, []).append(index)
        out: list[dict[str, Any] | None] = [None] * len(written)
        records = list(dict.fromkeys(record for record, _, _ in written))
        chunks = list(_chunks(records, ID_BATCH))

        def read(number: int) -> None:
            """One chunk's rows: its records' keys are its own, so each chunk fills
            distinct slots of ``out`` and the chunks are read together."""
            chunk = chunks[number]
            open_keys = {k: list(v) for k, v in wanted.items() if k[0] in chunk}
            query = combine(
                "", [[equals("name", self.table), any_of("element_id", list(chunk)),
                      "elementINcomments,work_notes", equals("sys_created_by", self.username)]],
                order=False,
            ) + "^ORDERBYDESCsys_created_on"
            offset = 0
            while any(open_keys.values()):
                page = self._list("sys_journal_field", query, JOURNAL_FIELDS,
                                  limit=JOURNAL_PAGE, offset=offset)
                for row in page:
                    key = (str(row.get("element_id") or ""), str(row.get("element") or ""),
                           str(row.get("value") or ""))
                    slots = open_keys.get(key)
                    if slots:
                        out[slots.pop()] = row  # newest row -> last written of equal texts
                if len(page) < JOURNAL_PAGE:
                    break
                offset += JOURNAL_PAGE

        run_chunks(len(chunks), read, self.concurrency, pool=self._pool)
        return out

    # ----------------------------------------------------------------- site fields

    def site_fields(self) -> list[SiteField]:
        """The table's columns from ``sys_dictionary`` (its own and those it inherits,
        found through ``sys_db_object.super_class``) with their ``sys_choice`` values.

        A user who may not read the dictionary (it needs the admin or
        personalize_dictionary role) gets the columns of one record instead, typed
        ``unknown``; an empty list means neither was readable.
        """
        tables = self._table_chain()
        entries = self._dictionary(tables) if tables is not None else None
        if entries is None:
            # Without the dictionary (or the table's ancestry, without which the
            # inherited columns would look missing) a record shows the columns.
            tables = tables or [self.table]
            entries = [{"name": self.table, "element": name, "column_label": name,
                        "internal_type": "unknown", "choice": "0"}
                       for name in (self._sample() or [{}])[0]]
        # A table's own entry overrides the one it inherits (same element).
        depth = {name: index for index, name in enumerate(tables)}
        columns: dict[str, dict[str, Any]] = {}
        for entry in sorted(entries, key=lambda e: -depth.get(str(e.get("name")), 0)):
            columns[str(entry.get("element"))] = entry
        choices = self._choices(tables)
        out = []
        for element, entry in sorted(columns.items()):
            read_only = str(entry.get("read_only", "false")) == "true"
            kind = str(entry.get("internal_type") or "unknown")
            if entry.get("reference"):
                kind = f"{kind} -> {entry['reference']}"
            is_choice = str(entry.get("choice") or "0") not in ("", "0")
            out.append(SiteField(
                id=element, name=str(entry.get("column_label") or element), type=kind,
                custom=element.startswith("u_"),
                allowed=choices.get(element) if is_choice else None,
                on_create=not read_only, on_edit=not read_only,
                note=f"a read-only column of {self.table}" if read_only else "",
            ))
        return out

    def _table_chain(self) -> list[str] | None:
        """The table and the tables it extends, nearest first (incident, task); None
        when sys_db_object is hidden from this user."""
        chain = [self.table]
        try:
            while len(chain) < MAX_TABLE_DEPTH:
                rows = self._list("sys_db_object", equals("name", chain[-1]),
                                  ["name", "super_class.name"], limit=1)
                parent = str(rows[0].get("super_class.name") or "") if rows else ""
                if not parent or parent in chain:
                    break
                chain.append(parent)
        except (AuthError, NotFound):
            return None
        return chain

    def _dictionary(self, tables: Sequence[str]) -> list[dict[str, Any]] | None:
        """sys_dictionary entries of these tables; None when hidden from this user."""
        try:
            return self._all_rows(
                "sys_dictionary", f"{any_of('name', tables)}^elementISNOTEMPTY",
                ["name", "element", "column_label", "internal_type", "choice", "reference",
                 "read_only"])
        except (AuthError, NotFound):
            return None

    def _choices(self, tables: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """Active choice values per column; a table's own list hides the inherited one."""
        try:
            rows = self._all_rows(
                "sys_choice", f"{any_of('name', tables)}^inactive!=true",
                ["name", "element", "value", "sequence"])
        except (AuthError, NotFound):
            return {}
        by_table: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for row in rows:
            key = (str(row.get("name")), str(row.get("element")))
            sequence = str(row.get("sequence") or "0")
            order = int(sequence) if sequence.lstrip("-").isdigit() else 0
            by_table.setdefault(key, []).append((order, str(row.get("value"))))
        out: dict[str, tuple[str, ...]] = {}
        for table in reversed(list(tables)):  # nearest table last: it wins
            for (name, element), values in by_table.items():
                if name == table:
                    out[element] = tuple(v for _, v in sorted(values))
        return out

    def _all_rows(self, table: str, query: str, fields: Sequence[str]) -> list[dict[str, Any]]:
        """Every row of a metadata query, page by page (ordered, so pages don't shift)."""
        rows: list[dict[str, Any]] = []
        while True:
            page = self._list(table, f"{query}^ORDERBYsys_id", fields, limit=META_PAGE,
                              offset=len(rows))
            rows.extend(page)
            if len(page) < META_PAGE:
                return rows

    # ----------------------------------------------------------------- check

    def check(self, fields: Sequence[str], statuses: Sequence[str]) -> list[CheckResult]:
        """Reach, credentials, read access, scope query, fields and state values.

        Nothing is written: write access cannot be proven without writing, so we
        report what we can see (the user's record and the table are readable).
        """
        results: list[CheckResult] = []

        def row(what: str, ok: bool, detail: str = "") -> None:
            results.append(CheckResult(SIDE, what, ok, detail))

        try:
            info = self.open()
        except ConnectorError as error:
            advice = getattr(error, "advice", "")
            row("reach and sign in", False, f"{error}{'; ' + advice if advice else ''}")
            return results
        row("reach and sign in", True, f"{self.base_url} as {info.user}")
        me = self._me
        if me and me.get("active", "true") != "false" and me.get("locked_out") != "true":
            row("integration user readable", True, f"sys_user {me.get('sys_id', '')}")
        else:
            row("integration user readable", False,
                f"no active sys_user named {self.username!r} visible to itself")
        try:
            sample = self._list(self.table, combine(self.query, [[]]), [], limit=1)
        except ConnectorError as error:
            row(f"read {self.table} in scope", False, str(error))
            return results
        row(f"read {self.table} in scope", True,
            f"query {self.query!r} " + ("matches records" if sample else "matches no record yet"))
        if not sample:
            sample = self._sample()
        record = sample[0] if sample else None
        unknown = [f for f in scope_fields(self.query) if record is not None
                   and f.split(".", 1)[0] not in record]
        if unknown:
            # The instance silently drops such terms: the scope would be wider than meant.
            row("scope query fields exist", False,
                f"{self.query!r} names unknown field(s) {', '.join(unknown)}; ServiceNow "
                "ignores such terms and would match more records than intended")
        results.extend(self._check_fields(fields, record))
        results.extend(self._check_states(statuses))
        return results

    def _sample(self) -> list[dict[str, Any]]:
        """Any one record of the table with all its fields (to learn its columns)."""
        try:
            return self._list(self.table, "ORDERBYsys_id", [], limit=1)
        except (AuthError, NotFound, RetriableError):
            return []

    def _check_fields(
        self, fields: Sequence[str], sample: Mapping[str, Any] | None
    ) -> list[CheckResult]:
        if not fields:
            return []
        if sample is None:
            return [CheckResult(SIDE, "mapped fields exist", True,
                                f"not verified: {self.table} has no record to inspect")]
        bad = []
        for name in fields:
            try:
                check_field(name)
            except ValueError as error:
                bad.append(str(error))
                continue
            if name.split(".", 1)[0] not in sample:
                bad.append(name)
        if bad:
            return [CheckResult(SIDE, "mapped fields exist", False,
                                f"unknown in {self.table}: {', '.join(bad)}")]
        return [CheckResult(SIDE, "mapped fields exist", True, f"{len(fields)} fields")]

    def _check_states(self, statuses: Sequence[str]) -> list[CheckResult]:
        wanted = sorted({str(s) for s in statuses if str(s)})
        if not wanted:
            return []
        try:
            rows = self._list(
                "sys_choice",
                combine("", [[equals("name", self.table), equals("element", "state"),
                              any_of("value", wanted)]], order=False),
                ["value", "label", "inactive"], limit=100,
            )
            known = {str(r.get("value")) for r in rows if r.get("inactive", "false") != "true"}
            source = "sys_choice"
        except (AuthError, NotFound):
            # sys_choice may be hidden from an itil user: fall back to the base states.
            known, source = BASE_STATES, "base incident states"
        missing = [s for s in wanted if s not in known]
        if missing:
            return [CheckResult(SIDE, "mapped states exist", False,
                                f"no {self.table} state {', '.join(missing)} ({source})")]
        return [CheckResult(SIDE, "mapped states exist", True,
                            f"{', '.join(wanted)} ({source})")]
