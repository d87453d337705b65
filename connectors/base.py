"""What every vendor connector is: the shared protocol, its data types and its errors.

Contract:
- A connector speaks *raw vendor records* (:class:`RemoteRecord`): field names and
  values exactly as the vendor returns them for the fields asked for. Mapping
  them to the neutral incident is not its job (that is ``mappings``), and it
  never imports ``sync``.
- Every method that touches the network may raise only errors of the tree below;
  vendor-library exceptions are translated at the connector's boundary. Error
  texts never contain credentials.
- Writes return the new version stamp so the engine can recognise its own
  writes when they come back on the next pull (echo suppression).
- What a connector learns about its site at :meth:`Connector.open` is data on
  :class:`ServerInfo` (e.g. ``field_ids``), never found by ``hasattr``/``getattr`` probes.
- :meth:`Connector.history` tells, per record, when it was created and which
  vendor fields were changed when, and whether by the integration user itself
  (Jira changelog, ServiceNow ``sys_audit``): what lets the engine tell a
  person's edit from the state its own interrupted create left behind.

The error tree (typed errors: callers branch on the class, never on message
text); ``sync.errors`` adds the engine's own
(``ConfigError``, ``LockHeld``) under the same root::

    SyncError
    ├── ConfigError                      (sync.errors)
    ├── ConnectorError
    │   ├── RetriableError               try again later
    │   │   └── RateLimited(retry_after)
    │   ├── FatalError                   stop talking to this tool
    │   │   ├── AuthError                401/403 with advice
    │   │   └── Unreachable              DNS, refused, TLS
    │   └── SkippableError               this item only; the run goes on
    │       ├── NotFound
    │       └── ValidationFailed         the vendor rejected the values
    └── PreconditionFailed               the record moved since we read it
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class Side(StrEnum):
    SERVICENOW = "servicenow"
    JIRA = "jira"

    @property
    def other(self) -> Side:
        return Side.JIRA if self is Side.SERVICENOW else Side.SERVICENOW


# --------------------------------------------------------------------------- errors


class SyncError(Exception):
    """Root of every error incident-sync raises on purpose."""


class ConnectorError(SyncError):
    """A vendor call failed. ``side``, ``status`` and ``url`` say where, when known."""

    def __init__(
        self,
        message: str,
        *,
        side: str | None = None,
        status: int | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.side = side
        self.status = status
        self.url = url


class RetriableError(ConnectorError):
    """Transient: a later attempt may succeed (5xx, dropped connection, bad proxy page)."""


class RateLimited(RetriableError):
    """The vendor said 429 (or 503 with Retry-After); wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class FatalError(ConnectorError):
    """This tool cannot be used in this run; CLI exit status 3."""


class AuthError(FatalError):
    """Credentials refused (401) or permission missing (403). ``advice`` says what to check."""

    def __init__(self, message: str, *, advice: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.advice = advice


class Unreachable(FatalError):
    """The tool did not answer at all (refused, DNS, TLS, timeout on connect)."""


class SkippableError(ConnectorError):
    """This one item failed; it goes to the retry queue and the run goes on."""


class NotFound(SkippableError):
    """The record (or user, transition, field) does not exist or is hidden by ACLs."""


class ValidationFailed(SkippableError):
    """The vendor rejected the values written (400/422 with a field message)."""

    def __init__(self, message: str, *, fields: Mapping[str, str] | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.fields = dict(fields or {})


class NoTransitionPath(ValidationFailed):
    """No chain of workflow transitions reaches the wanted status."""


class PreconditionFailed(SyncError):
    """The record changed since the version we read; re-read and merge again."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ServerInfo:
    """Who we are talking to, learnt by :meth:`Connector.open`."""

    side: Side
    base_url: str
    flavor: str                # "servicenow", "cloud" or "datacenter"
    version: str = ""
    user: str = ""             # the integration user as the tool knows it
    text_format: str = "plain"  # rich text in raw records: "plain", "adf" or "wiki"
    # Field name -> id as the site has them (Jira custom fields: "Category" ->
    # "customfield_10010"); what a mapping names by name is written by id. Empty
    # where names are ids (ServiceNow columns).
    field_ids: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RemoteComment:
    """One comment / journal entry as the vendor has it.

    ``body`` is in the vendor's raw format (plain text for ServiceNow, a string or
    an ADF dict for Jira). ``visibility`` is ``"public"`` or ``"internal"``; a
    connector that cannot tell says ``"internal"`` (fail closed).
    """

    id: str
    body: Any
    created: datetime
    visibility: str = "internal"
    author: str = ""          # email when the vendor tells it, else a display name


@dataclass
class RemoteRecord:
    """One incident as the vendor returned it.

    ``fields`` maps vendor field names (as asked for, dot-walked names included,
    e.g. ServiceNow ``caller_id.email``) to raw values. ``foreign_id`` is the
    other side's id this record carries (ServiceNow ``correlation_id``, the
    Jira marker), or None.
    """

    side: Side
    id: str                   # sys_id / issue key: the link key
    display: str              # INC0010002 / OPS-12: what humans read
    version: str              # sys_mod_count / updated: moves on every write
    updated: datetime         # aware UTC
    fields: dict[str, Any]
    comments: list[RemoteComment] = field(default_factory=list)
    foreign_id: str | None = None
    url: str = ""             # a link a human can open


# References to people and groups in written fields. A mapping cannot know a
# vendor's user ids, so it writes ``{"$user": "alice@example.com"}`` or
# ``{"$group": "Network"}`` as the field's value; the connector resolves them
# (cached per run) before sending. An unknown user or group is left empty and
# reported in :attr:`WriteResult.warnings`, never an error that stops the run.
# Plain JSON, so plans and the state store can show and keep them as they are.
USER_REF = "$user"
GROUP_REF = "$group"


def user_ref(email: str | None) -> dict[str, str | None]:
    return {USER_REF: email}


def group_ref(name: str | None) -> dict[str, str | None]:
    return {GROUP_REF: name}


def ref_of(value: Any) -> tuple[str, str | None] | None:
    """``("$user", email)`` / ``("$group", name)`` for a reference value, else None."""
    if isinstance(value, dict) and len(value) == 1:
        (key, target), = value.items()
        if key in (USER_REF, GROUP_REF):
            return key, target
    return None


@dataclass(frozen=True)
class NewRecord:
    """A record to create: vendor fields (values may be user/group refs), the
    other side's id to carry, and where that id points for a back-link.

    ``version_wanted``: False when the caller reads the record back itself after
    its other writes (the engine's settle step): a connector whose create answer
    carries no version (Jira's bulk create answers ids and keys) then skips the
    read it would make for it, and :attr:`WriteResult.version` may be None."""

    fields: dict[str, Any]
    foreign_id: str
    foreign_url: str = ""
    foreign_display: str = ""
    version_wanted: bool = True


@dataclass(frozen=True)
class Edit:
    """One field change in a record's history: the vendor field, when, and whether the
    integration user (the one the connector signs in as) made it."""

    field: str
    at: datetime
    by_us: bool


@dataclass(frozen=True)
class RecordHistory:
    """When a record was created (aware UTC) and its field changes since, oldest first."""

    created: datetime
    edits: tuple[Edit, ...] = ()


@dataclass(frozen=True)
class KnownComments:
    """A record's comments as the caller read them, and the version they go with
    (:meth:`Connector.get_many`'s ``comments_at``)."""

    version: str
    comments: tuple[RemoteComment, ...]


@dataclass
class WriteResult:
    """The outcome of one write: the record's new id and version, or the error."""

    id: str | None = None
    version: str | None = None
    display: str = ""
    # A ConnectorError, or PreconditionFailed for a stale expected version in a batch.
    error: SyncError | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class RecordWrite:
    """One existing record's write in a batch (:meth:`Connector.write_many`).

    ``fields`` as for :meth:`Connector.update`; ``foreign_id``, when set, makes the
    record carry the other side's id as :meth:`Connector.mark_foreign_id` does. Either
    or both may be given. ``expected_version`` is checked as by ``update``.

    ``version_wanted``: False when the caller reads the record back itself after the
    batch's writes (the engine's settle step): a connector whose write answers no
    version (a Jira edit answers 204) then skips the read it would make for it, and
    :attr:`WriteResult.version` may be None.
    """

    record_id: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    foreign_id: str | None = None
    expected_version: str | None = None
    version_wanted: bool = True


@dataclass(frozen=True)
class NewComment:
    """One comment to append in a batch (:meth:`Connector.add_comments`)."""

    record_id: str
    body: Any
    visibility: str


@dataclass
class CommentResult:
    """The outcome of one comment of a batch: the comment as made, or the error."""

    comment: RemoteComment | None = None
    error: ConnectorError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class CheckResult:
    """One line of ``incident-sync check``."""

    side: Side
    what: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class SiteField:
    """One field the connected site offers for the configured table / project and type.

    ``id`` is what a write names (Jira ``customfield_10004`` / ``summary``, a
    ServiceNow column); ``name`` is what people read (Jira field name, ServiceNow
    column label). ``allowed`` holds the values a select / choice field accepts,
    None when the field takes free values (or the tool does not say).
    ``on_create`` / ``on_edit``: whether the field can be set when creating /
    editing (Jira create and edit screens); None when the tool cannot tell or the
    question does not apply (Jira sets status and resolution through transitions).
    ``note`` says, in the tool's own terms, why a field cannot be set ("not on the
    create screen of OPS / Incident", "read-only column").
    """

    id: str
    name: str
    type: str
    custom: bool = False
    allowed: tuple[str, ...] | None = None
    on_create: bool | None = None
    on_edit: bool | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "type": self.type, "custom": self.custom,
            "allowed": list(self.allowed) if self.allowed is not None else None,
            "on_create": self.on_create, "on_edit": self.on_edit, "note": self.note,
        }


# --------------------------------------------------------------------------- protocol


@runtime_checkable
class Connector(Protocol):
    """The small interface the engine drives both vendors through.

    ``fields`` arguments name vendor fields the mapping needs; a connector adds
    the ones it needs itself (id, version stamp, foreign-id marker, status).
    """

    side: Side

    def open(self) -> ServerInfo:
        """Connect, verify the credentials and learn the flavor (one cheap request)."""
        ...

    def close(self) -> None:
        """Release sessions and per-run caches."""
        ...

    def pull(self, since: datetime | None, fields: Sequence[str]) -> Iterator[RemoteRecord]:
        """Records in scope updated at or after ``since`` (all in scope when None),
        oldest first, page by page, each record once, comments included."""
        ...

    def get_many(self, ids: Sequence[str], fields: Sequence[str], *,
                 comments_at: Mapping[str, KnownComments] | None = None
                 ) -> dict[str, RemoteRecord]:
        """The records with these ids, fetched in batches; missing ids are absent.

        ``comments_at``: per id, comments the caller holds and the version they are
        the record's comments at (a record it read before). A connector whose comments
        cost requests of their own (ServiceNow's journal) may use them, instead of
        reading, for a record whose version shows that no comment can have been added
        since: at that version still, or moved on only by the connector's own writes
        that added none. Connectors whose comments come with the record ignore it."""
        ...

    def find_by_foreign_id(
        self, foreign_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, RemoteRecord]:
        """Records carrying one of these other-side ids, keyed by that foreign id.

        Exact match, escaped; searches the whole tool, not just the scope, so
        a create after a crash adopts instead of duplicating."""
        ...

    def create(self, records: Sequence[NewRecord], *,
               created: Callable[[list[WriteResult]], None] | None = None
               ) -> list[WriteResult]:
        """Create records (in bulk where the vendor allows), marking each with its
        foreign id; one result per input, in order. A failed item does not fail
        the others.

        ``created``: called exactly once, on the calling thread, before a create that
        returns does (never when it raises), with copies of the results
        (:func:`results_so_far`) as every record's create answered them (ids known),
        taken before any of the connector's own per-record steps after it (Jira's
        workflow transitions, remote links) started, so what the caller is told does
        not depend on how far those steps got; they run on its workers meanwhile and
        the caller writes the other tool. An item told as created may still fail in the returned
        results (a step after its create failed); one told as failed stays failed.
        A connector with no steps after its creates calls it once they are done.
        What ``created`` raises is raised by ``create`` once those steps ended."""
        ...

    def update(
        self, record_id: str, fields: Mapping[str, Any], expected_version: str | None = None
    ) -> WriteResult:
        """Write only these fields. A status change is a field like any other here;
        a connector whose vendor needs workflow transitions finds the path.
        Raises PreconditionFailed when ``expected_version`` is given and stale."""
        ...

    def mark_foreign_id(
        self, record_id: str, foreign_id: str, expected_version: str | None = None
    ) -> WriteResult:
        """Make an existing record carry the other side's id (the back-link a copy's
        original gets), in the vendor's own place for it; a record already carrying it
        is left as it is. Raises PreconditionFailed when ``expected_version`` is stale."""
        ...

    def add_comment(self, record_id: str, body: Any, visibility: str) -> RemoteComment:
        """Append a comment with this visibility ("public" or "internal")."""
        ...

    def write_many(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Apply these writes, in as few requests as the vendor allows (a batch API,
        else bounded concurrency); one result per input, in order. Writes naming the
        same record are applied in their order. A failed item (its error in
        :attr:`WriteResult.error`, a stale version as PreconditionFailed) does not
        fail the others; a :class:`FatalError` is raised."""
        ...

    def add_comments(self, comments: Sequence[NewComment]) -> list[CommentResult]:
        """Append these comments, batched like :meth:`write_many`; one result per
        input, in order, comments on one record in their order. A
        :class:`FatalError` is raised; any other error stays with its item."""
        ...

    def check(self, fields: Sequence[str], statuses: Sequence[str]) -> list[CheckResult]:
        """Verify access, scope, and that these fields and statuses exist."""
        ...

    def site_fields(self) -> list[SiteField]:
        """Every field the site offers for the configured table (ServiceNow) or project
        and issue type (Jira), with select values and create/edit settability. Read-only;
        call after :meth:`open`."""
        ...

    def history(self, ids: Sequence[str]) -> dict[str, RecordHistory]:
        """Creation time and field changes (who: us or not) of these records; missing
        ids are absent. Only called for the few records an adoption merges."""
        ...


def write_each(connector: Connector, writes: Sequence[RecordWrite]) -> list[WriteResult]:
    """:meth:`Connector.write_many` one record at a time, for a vendor without a batch
    API: each write is an ``update`` then, when it carries one, a ``mark_foreign_id``
    checked against the version the update left."""
    results: list[WriteResult] = []
    for write in writes:
        try:
            result = WriteResult(id=write.record_id, version=write.expected_version)
            if write.fields:
                result = connector.update(write.record_id, write.fields,
                                          expected_version=write.expected_version)
            if result.ok and write.foreign_id is not None:
                marked = connector.mark_foreign_id(
                    write.record_id, write.foreign_id,
                    expected_version=result.version or write.expected_version)
                marked.warnings[:0] = result.warnings
                result = marked
        except FatalError:
            raise
        except (ConnectorError, PreconditionFailed) as error:
            result = WriteResult(id=write.record_id, error=error)
        results.append(result)
    return results


def results_so_far(results: Sequence[WriteResult]) -> list[WriteResult]:
    """Copies of ``results`` as they are now, for :meth:`Connector.create`'s ``created``:
    what the caller is told stays as told while the connector's own steps go on."""
    return [replace(result, warnings=list(result.warnings)) for result in results]


def comment_each(connector: Connector, comments: Sequence[NewComment]) -> list[CommentResult]:
    """:meth:`Connector.add_comments` one comment at a time."""
    results: list[CommentResult] = []
    for item in comments:
        try:
            results.append(CommentResult(
                comment=connector.add_comment(item.record_id, item.body, item.visibility)))
        except FatalError:
            raise
        except ConnectorError as error:
            results.append(CommentResult(error=error))
    return results


__all__ = [
    "GROUP_REF",
    "USER_REF",
    "AuthError",
    "CheckResult",
    "CommentResult",
    "Connector",
    "ConnectorError",
    "Edit",
    "FatalError",
    "KnownComments",
    "NewComment",
    "NewRecord",
    "NoTransitionPath",
    "NotFound",
    "PreconditionFailed",
    "RateLimited",
    "RecordHistory",
    "RecordWrite",
    "RemoteComment",
    "RemoteRecord",
    "RetriableError",
    "ServerInfo",
    "Side",
    "SiteField",
    "SkippableError",
    "SyncError",
    "Unreachable",
    "ValidationFailed",
    "WriteResult",
    "comment_each",
    "group_ref",
    "ref_of",
    "results_so_far",
    "user_ref",
    "write_each",
]
