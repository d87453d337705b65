"""An in-memory connector: the connector protocol over plain dicts, with fault hooks.

Contract:
- :class:`MemoryConnector` implements :class:`connectors.base.Connector` for one
  side, keeping every record in this process: engine scenarios run in
  milliseconds with no HTTP. It is a stand-in for *tests and experiments*, not a
  vendor model: it has no workflow, no business rules (ServiceNow does not
  recompute a priority here), no ACLs. What a vendor does beyond storing
  values is tested against the HTTP sandboxes.
- Records are shaped like the side's raw records, so the default mapping
  profile maps them: ServiceNow columns (``short_description``, ``state``,
  ``correlation_id`` as the foreign id, ``sys_updated_on`` as
  ``YYYY-MM-DD HH:MM:SS``), Jira fields (``summary``, ``status``, custom
  fields by id with :data:`JIRA_FIELD_IDS`, ``created``/``updated`` ISO 8601).
  Values are stored as written: a person reference is kept as the
  ``{"$user": email}`` the mapping wrote (the mapper reads it back), an
  unknown person or group is left empty with a warning, like the vendors.
- People act through :meth:`put`, :meth:`edit`, :meth:`comment` and
  :meth:`delete` (edits by someone other than the integration user, in the
  record's history as such); the engine acts through the protocol methods
  (edits by us). Every write moves the record's version and ``updated`` stamp,
  taken from ``clock`` (pass the test's clock).
- Fault hooks: :meth:`fail_next` makes the next N calls of an operation raise
  an error before doing anything; :meth:`lose_reply` makes them apply the write
  and then raise :class:`RetriableError` (the reply was lost on the way back);
  :meth:`reject` fails single items whose written fields match a predicate (a
  vendor's per-record validation error), the rest of a batch goes on.
  ``calls`` counts every protocol call by operation, ``journal`` lists them in order.
  The batch methods (``write_many``, ``add_comments``) apply item by item through
  ``update`` / ``mark_foreign_id`` / ``add_comment`` (so those hooks and counts
  apply per item); ``batches`` counts the batch calls themselves and
  ``batch_sizes`` lists each one's size, so a test can tell one batch from many.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connectors.base import (
    GROUP_REF,
    USER_REF,
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
    WriteResult,
    comment_each,
    ref_of,
    results_so_far,
    write_each,
)

# The stock JSM ITSM project's select fields (by name -> id), as the default profile names them.
JIRA_FIELD_IDS: dict[str, str] = {"Impact": "customfield_10004", "Urgency": "customfield_10005"}

DEFAULT_USERS = ("alice.smith@example.com", "bob.jones@example.com", "grace.okafor@example.com")
DEFAULT_GROUPS = ("Network", "Service Desk", "Database")
OPERATIONS = ("open", "pull", "get_many", "find_by_foreign_id", "create", "update",
              "mark_foreign_id",
              "add_comment", "check", "site_fields", "history")

# Fields every record of a side has, with the site's type for site_fields().
_SERVICENOW_FIELDS: dict[str, str] = {
    "short_description": "string", "description": "string", "state": "choice",
    "hold_reason": "choice", "impact": "choice", "urgency": "choice", "priority": "choice",
    "category": "choice", "subcategory": "choice", "assignment_group": "reference",
    "assigned_to": "reference", "caller_id": "reference", "close_code": "choice",
    "close_notes": "string", "escalation": "choice", "opened_at": "glide_date_time",
    "sys_updated_on": "glide_date_time", "resolved_at": "glide_date_time",
    "correlation_id": "string",
}
_JIRA_FIELDS: dict[str, str] = {
    "summary": "string", "description": "string", "status": "status", "priority": "priority",
    "labels": "array", "assignee": "user", "reporter": "user", "resolution": "resolution",
    "created": "datetime", "updated": "datetime", "resolutiondate": "datetime",
    JIRA_FIELD_IDS["Impact"]: "option", JIRA_FIELD_IDS["Urgency"]: "option",
}
_READ_ONLY = {"opened_at", "sys_updated_on", "resolved_at", "created", "updated",
              "resolutiondate", "priority"}


@dataclass
class StoredRecord:
    """One record as the in-memory tool keeps it."""

    id: str
    display: str
    fields: dict[str, Any]
    created: datetime
    updated: datetime
    version: int = 1
    foreign_id: str | None = None
    comments: list[RemoteComment] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)


@dataclass
class _Fault:
    error: ConnectorError | None   # None: apply, then lose the reply
    times: int


class MemoryConnector:
    """A :class:`connectors.base.Connector` over dicts for one side (see the module doc)."""

    def __init__(
        self,
        side: Side | str,
        *,
        clock: Callable[[], datetime] | None = None,
        user: str = "sync.user@example.com",
        users: Sequence[str] = DEFAULT_USERS,
        groups: Sequence[str] = DEFAULT_GROUPS,
        in_scope: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> None:
        self.side = Side(side)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.user = user
        self.users = {u.casefold() for u in users}
        self.groups = set(groups)
        self.in_scope = in_scope or (lambda _fields: True)
        self.records: dict[str, StoredRecord] = {}
        self.calls: Counter[str] = Counter()
        self.journal: list[str] = []    # every protocol call, in order
        self.batches: Counter[str] = Counter()          # write_many / add_comments calls
        self.batch_sizes: list[tuple[str, int]] = []    # (method, items) per batch call
        self.field_ids: dict[str, str] = dict(JIRA_FIELD_IDS) if self.is_jira else {}
        self._faults: dict[str, list[_Fault]] = {}
        self._rejections: list[tuple[Callable[[Mapping[str, Any]], bool], ConnectorError]] = []
        self._numbers = itertools.count(1)
        self._comment_ids = itertools.count(1)
        self.opened = False

    @property
    def is_jira(self) -> bool:
        return self.side is Side.JIRA

    def __repr__(self) -> str:
        return f"MemoryConnector({self.side.value!r}, records={len(self.records)})"

    # ----------------------------------------------------------------- fault hooks

    def fail_next(self, operation: str, error: ConnectorError, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` raise ``error`` and change nothing."""
        self._check_operation(operation)
        self._faults.setdefault(operation, []).append(_Fault(error, times))

    def lose_reply(self, operation: str, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` apply, then raise RetriableError."""
        self._check_operation(operation)
        self._faults.setdefault(operation, []).append(_Fault(None, times))

    def reject(self, when: Callable[[Mapping[str, Any]], bool], error: ConnectorError) -> None:
        """Creates and updates whose written fields match ``when`` fail with ``error``."""
        self._rejections.append((when, error))

    def clear_faults(self) -> None:
        self._faults.clear()
        self._rejections.clear()

    @staticmethod
    def _check_operation(operation: str) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}: one of {', '.join(OPERATIONS)}")

    def _enter(self, operation: str) -> bool:
        """Count the call; raise an injected error; True when the reply must be lost."""
        self.calls[operation] += 1
        self.journal.append(operation)
        queue = self._faults.get(operation)
        if not queue:
            return False
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        if fault.error is not None:
            raise fault.error
        return True

    def _lost(self, operation: str) -> RetriableError:
        return RetriableError(f"{self.side.value} {operation}: the reply was lost (injected)",
                              side=self.side.value)

    # ----------------------------------------------------------------- people's side

    def put(self, fields: Mapping[str, Any], *, foreign_id: str | None = None,
            by: str = "agent@example.com") -> str:
        """A person creates a record with these raw fields; returns its id."""
        now = self._now()
        number = next(self._numbers)
        record_id = f"OPS-{number}" if self.is_jira else f"{number:032x}"
        display = record_id if self.is_jira else f"INC{number + 10000:07d}"
        record = StoredRecord(record_id, display, dict(copy.deepcopy(fields)), now, now,
                              foreign_id=foreign_id)
        if not self.is_jira and foreign_id is not None:
            record.fields["correlation_id"] = foreign_id
        record.fields.setdefault("status" if self.is_jira else "state",
                                 "Open" if self.is_jira else "1")
        self.records[record_id] = record
        self._stamp(record, now)
        return record_id

    def edit(self, record_id: str, fields: Mapping[str, Any], *,
             by: str = "agent@example.com") -> None:
        """A person changes these raw fields (history says: not us)."""
        record = self._record(record_id)
        now = self._now()
        for name, value in fields.items():
            record.fields[name] = copy.deepcopy(value)
            record.edits.append(Edit(name, now, by_us=by == self.user))
            if name == "correlation_id" and not self.is_jira:
                # ServiceNow's foreign id IS this column (the engine writes it back).
                record.foreign_id = str(value) if value else None
        record.version += 1
        self._stamp(record, now)

    def comment(self, record_id: str, body: str, visibility: str = "public", *,
                by: str = "agent@example.com") -> RemoteComment:
        """A person comments."""
        record = self._record(record_id)
        now = self._now()
        added = RemoteComment(f"c{next(self._comment_ids)}", body, now, visibility, by)
        record.comments.append(added)
        record.version += 1
        self._stamp(record, now)
        return added

    def delete(self, record_id: str) -> None:
        """The record is gone (deleted, or hidden from the integration user)."""
        self.records.pop(record_id, None)

    def get(self, record_id: str) -> dict[str, Any]:
        """The raw fields of a record, as stored."""
        return self._record(record_id).fields

    # ----------------------------------------------------------------- protocol

    def open(self) -> ServerInfo:
        self._enter("open")
        self.opened = True
        return ServerInfo(
            side=self.side, base_url=f"memory://{self.side.value}", flavor="memory",
            version="1", user=self.user, text_format="plain", field_ids=dict(self.field_ids),
        )

    def close(self) -> None:
        self.opened = False

    def pull(self, since: datetime | None, fields: Sequence[str]) -> Iterator[RemoteRecord]:
        self._enter("pull")
        chosen = [r for r in self.records.values()
                  if self.in_scope(r.fields) and (since is None or r.updated >= since)]
        for record in sorted(chosen, key=lambda r: (r.updated, r.id)):
            yield self._remote(record, fields)

    def get_many(self, ids: Sequence[str], fields: Sequence[str], *,
                 comments_at: Mapping[str, KnownComments] | None = None
                 ) -> dict[str, RemoteRecord]:
        # Comments come with the records here: nothing to spare, comments_at unused.
        self._enter("get_many")
        return {i: self._remote(self.records[i], fields) for i in dict.fromkeys(ids)
                if i in self.records}

    def find_by_foreign_id(
        self, foreign_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, RemoteRecord]:
        self._enter("find_by_foreign_id")
        wanted = set(foreign_ids)
        return {r.foreign_id: self._remote(r, fields) for r in self.records.values()
                if r.foreign_id is not None and r.foreign_id in wanted}

    def create(self, records: Sequence[NewRecord], *,
               created: Callable[[list[WriteResult]], None] | None = None
               ) -> list[WriteResult]:
        lose = self._enter("create")
        results = []
        for new in records:
            rejected = self._rejected(new.fields)
            if rejected is not None:
                results.append(WriteResult(error=rejected))
                continue
            values, warnings = self._resolved(new.fields)
            record_id = self.put(values, foreign_id=new.foreign_id, by=self.user)
            record = self.records[record_id]
            results.append(WriteResult(record_id, str(record.version), record.display,
                                       warnings=warnings))
        if lose:
            raise self._lost("create")   # the caller never learns the ids: not told
        if created is not None:
            # No steps after a create here: told once they are all done.
            created(results_so_far(results))
        return results

    def update(
        self, record_id: str, fields: Mapping[str, Any], expected_version: str | None = None
    ) -> WriteResult:
        lose = self._enter("update")
        record = self._record(record_id)
        if expected_version is not None and expected_version != str(record.version):
            raise PreconditionFailed(
                f"{self.side.value} {record.display} changed since version {expected_version}")
        rejected = self._rejected(fields)
        if rejected is not None:
            return WriteResult(record_id, error=rejected)
        values, warnings = self._resolved(fields)
        self.edit(record_id, values, by=self.user)
        if lose:
            raise self._lost("update")
        return WriteResult(record_id, str(record.version), record.display, warnings=warnings)

    def mark_foreign_id(
        self, record_id: str, foreign_id: str, expected_version: str | None = None
    ) -> WriteResult:
        """The record now carries the other side's id: ServiceNow in its
        ``correlation_id`` column, Jira as the record's foreign id (where the Jira
        connector puts its marker). Already marked: no write."""
        lose = self._enter("mark_foreign_id")
        record = self._record(record_id)
        if expected_version is not None and expected_version != str(record.version):
            raise PreconditionFailed(
                f"{self.side.value} {record.display} changed since version {expected_version}")
        if record.foreign_id != foreign_id:
            if self.is_jira:
                now = self._now()
                record.foreign_id = foreign_id
                record.edits.append(Edit("foreign_id", now, by_us=True))
                record.version += 1
                self._stamp(record, now)
            else:
                self.edit(record_id, {"correlation_id": foreign_id}, by=self.user)
        if lose:
            raise self._lost("mark_foreign_id")
        return WriteResult(record_id, str(record.version), record.display)

    def add_comment(self, record_id: str, body: Any, visibility: str) -> RemoteComment:
        lose = self._enter("add_comment")
        added = self.comment(record_id, body, visibility, by=self.user)
        if lose:
            raise self._lost("add_comment")
        return added

    def write_many(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        self.batches["write_many"] += 1
        self.batch_sizes.append(("write_many", len(writes)))
        return write_each(self, writes)

    def add_comments(self, comments: Sequence[NewComment]) -> list[CommentResult]:
        self.batches["add_comments"] += 1
        self.batch_sizes.append(("add_comments", len(comments)))
        return comment_each(self, comments)

    def check(self, fields: Sequence[str], statuses: Sequence[str]) -> list[CheckResult]:
        self._enter("check")
        known = {f.id for f in self._site_fields()}
        rows = [CheckResult(self.side, "reach and sign in", True, f"memory as {self.user}")]
        for name in fields:
            base = name.split(".", 1)[0]
            rows.append(CheckResult(self.side, f"field {name}", base in known,
                                    "" if base in known else "no such field"))
        rows.extend(CheckResult(self.side, f"status {s}", True) for s in statuses)
        return rows

    def site_fields(self) -> list[SiteField]:
        self._enter("site_fields")
        return self._site_fields()

    def history(self, ids: Sequence[str]) -> dict[str, RecordHistory]:
        self._enter("history")
        return {i: RecordHistory(self.records[i].created, tuple(self.records[i].edits))
                for i in ids if i in self.records}

    # ----------------------------------------------------------------- internals

    def _now(self) -> datetime:
        moment = self.clock()
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def _record(self, record_id: str) -> StoredRecord:
        try:
            return self.records[record_id]
        except KeyError:
            raise NotFound(f"{self.side.value} record {record_id} does not exist",
                           side=self.side.value) from None

    def _stamp(self, record: StoredRecord, now: datetime) -> None:
        """Move ``updated`` and the read-only time fields the side shows."""
        record.updated = now
        if self.is_jira:
            record.fields["created"] = record.created.isoformat()
            record.fields["updated"] = now.isoformat()
        else:
            record.fields["opened_at"] = record.created.strftime("%Y-%m-%d %H:%M:%S")
            record.fields["sys_updated_on"] = now.strftime("%Y-%m-%d %H:%M:%S")

    def _rejected(self, fields: Mapping[str, Any]) -> ConnectorError | None:
        for when, error in self._rejections:
            if when(fields):
                return error
        return None

    def _resolved(self, fields: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Written values as stored: unknown people and groups left empty, with a warning."""
        values: dict[str, Any] = {}
        warnings: list[str] = []
        for name, value in fields.items():
            ref = ref_of(value)
            if ref is not None and ref[1] is not None:
                kind, target = ref
                known = (target.casefold() in self.users if kind == USER_REF
                         else target in self.groups if kind == GROUP_REF else False)
                if not known:
                    what = "user" if kind == USER_REF else "group"
                    warnings.append(f"{self.side.value} {name}: unknown {what} {target}; "
                                    "left empty")
                    value = None
            values[name] = copy.deepcopy(value)
        return values, warnings

    def _remote(self, record: StoredRecord, fields: Sequence[str]) -> RemoteRecord:
        # Asked-for fields, by their base name for dot-walks (``caller_id.email``
        # reads the stored reference), plus the ones a side always shows.
        always = ("status", "created", "updated") if self.is_jira else (
            "state", "opened_at", "sys_updated_on", "correlation_id")
        names = {f.split(".", 1)[0] for f in fields} | set(always)
        shown = {n: copy.deepcopy(v) for n, v in record.fields.items() if n in names}
        return RemoteRecord(
            side=self.side, id=record.id, display=record.display, version=str(record.version),
            updated=record.updated, fields=shown, comments=list(record.comments),
            foreign_id=record.foreign_id, url=f"memory://{self.side.value}/{record.id}",
        )

    def _site_fields(self) -> list[SiteField]:
        kinds = _JIRA_FIELDS if self.is_jira else _SERVICENOW_FIELDS
        names = {fid: name for name, fid in self.field_ids.items()}
        return [SiteField(id=fid, name=names.get(fid, fid), type=kind,
                          custom=fid.startswith("customfield_"),
                          on_create=None if fid in _READ_ONLY else True,
                          on_edit=None if fid in _READ_ONLY else True)
                for fid, kind in kinds.items()]


__all__ = ["DEFAULT_GROUPS", "DEFAULT_USERS", "JIRA_FIELD_IDS", "MemoryConnector",
           "StoredRecord"]
