"""The Jira connector: Jira Cloud (REST v3, ADF) and Data Center (REST v2, wiki) + JSM.

Contract (what the engine may rely on, beyond :class:`connectors.base.Connector`):
- The only module importing the ``jira`` library. The library's own retries are
  off (``max_retries=0``); every request goes through the shared
  :class:`RetryPolicy` and, when configured, a :class:`RequestBudget` counted per
  HTTP request (a requests adapter mounted on the library's session).
- ``flavor="auto"`` asks ``serverInfo`` once: ``deploymentType == "Cloud"`` means
  Cloud. Cloud speaks REST v3 with ADF bodies and searches ``/search/jql`` with
  ``nextPageToken``; Data Center speaks v2 with wiki strings and searches
  ``/search`` with ``startAt``. :attr:`ServerInfo.text_format` says which
  (``"adf"`` / ``"wiki"``) so the mapping converts accordingly; raw records
  are in that same format.
- Records: id and display = issue key; version = ``fields.updated`` verbatim;
  foreign id = the marker (``marker_field`` custom field, else the label
  ``snow-<sys_id>``). Pulls use ``updated >= watermark - overlap_minutes``
  (rounded down to the minute in the user's time zone), ordered
  ``updated ASC, key ASC``, drop records older than the watermark and never
  yield a key twice. An issue updated during a pull re-sorts to the end and
  slides the ones behind it forward: DC paging re-reads the previous page's
  last issue and steps back when it moved; on Cloud (tokens can't step back)
  the pull searches once more from where the shift began. Comments come
  embedded; only issues with more than the embedded page, or whose embedded
  comments don't state their visibility (Data Center search), are re-read per
  issue with the comment properties.
- Writes: ``status`` in the fields becomes workflow transitions (path found by
  :mod:`connectors.jira_workflow`), ``resolution`` rides on the step entering a
  done status (Jira has no other way to set it). A new resolution for an issue
  already done is written by a transition out of its status (to an
  in-progress one where offered) and one back in with it: two entries in the
  issue's history, and JSM may count a new SLA cycle. An open issue cannot
  hold a resolution: it is left unchanged, with a warning. Everything else is
  one edit (``notifyUsers=false`` when the user may, else without). User refs
  become accountId (Cloud) / name (DC), looked up by email once per run;
  unknown people are left empty with a warning. Labels written always keep the
  marker label.
- Request costs: open = serverInfo + myself + field list. A pull or get_many =
  one search per page (plus, only for an issue with more comments than the 20
  embedded, its comment pages); get_many on Cloud searches the keys the run wrote
  lately (created, edited, transitioned or commented) 50 a search, reconciled by id
  (read-after-write), the others 100 a search.
  A create batch of up to 50 = one bulk POST (the
  marker label/field and the entity property inside it) and one version search
  (none when no record of the batch wants its version: ``NewRecord.version_wanted``,
  which the engine turns off as it reads every created issue back with get_many),
  plus per created issue one remote-link POST only with ``remote_link``, and when
  it must leave the initial status one POST per transition step (on Cloud the
  first step rides in the create once the start status's transitions are known;
  Data Center documents no transition on create); the project/issue-type ids and
  the initial status are read once per run. Steps along a path the run already
  learnt are POSTed without ``GET transitions`` (read only after a refusal).
  ``create``'s ``created`` callback runs on the caller's thread once every bulk
  create answered, while the per-issue steps of the last chunks (transitions,
  remote links) run on the workers: the caller's writes overlap them.
  An update = a read when a version, status or labels are involved, one edit,
  one POST per transition step, and one read for the new version. A mark
  (``mark_foreign_id``: the marker field, else the ``snow-<id>`` label, on an
  issue whose copy we made) = one read, and one edit plus one read unless the
  mark is already there. ``write_many`` = per write one edit carrying its fields
  and its mark together; per batch of 50 written issues on Cloud (the most ids
  ``reconcileIssues`` takes: Cloud's search is read-after-write only for those) or
  100 on Data Center, one ``key in (...)`` search made just before the batch's edits
  for what the writes check (updated, status, labels, the marker field, and the
  entity property when marking) instead of a read each; plus one version search per
  50 written issues whose write wants its version (``RecordWrite.version_wanted``:
  the engine's first writes do not, its settle step reads them back). A write the
  search cannot serve reads its issue itself: on Cloud an issue whose id the run
  has not seen, a key's second write in a batch, an issue the search does not
  return (deleted, moved). ``history`` = per issue
  one read, plus on Cloud one changelog page per 100 histories (Data Center
  embeds the whole changelog in the read), several issues at a time; a change
  counts as the integration user's when its author is the signed-in account.
  Users: one search per distinct email per run (Jira has no batch lookup by email).
- Every library or transport failure leaves as an error of the
  :mod:`connectors.base` tree (see :mod:`connectors.jira_errors`), with no
  credential in its text and no chained library exception (whose text carries
  the request headers).
- What Jira cannot batch (comments, per-issue edits and transitions, remote
  links) runs on up to ``concurrency`` worker threads (:func:`connectors.retry.
  run_per_key`): one issue's writes in order on one worker, results handed back to
  the caller's thread. Every request holds a slot of an
  :class:`connectors.retry.AdaptiveLimit` (halved on a 429, Retry-After honoured,
  raised again after a run of successes) and goes through the one requests session,
  whose pool holds a connection per worker; the per-thread ``_Meter`` keeps each
  thread's last URL for error texts.
- The chunks of one batched call go together (:func:`connectors.retry.run_chunks`,
  within the same limit and budget): the bulk creates of a ``create`` (one at a time
  while a chunk's wanted statuses have no known path yet, since the first chunk
  teaches the next its first step; their payloads built in order on the caller's
  thread), the ``key in (...)`` searches of ``get_many`` and of the version reads after
  creates and writes, and the marker searches of ``find_by_foreign_id``. The requests
  are those of one chunk after another; results keep the input order, and one chunk's
  failure is its own items'. ``write_many``'s check before its edits stays per batch,
  made just before that batch's edits.
- One connector serves one run at a time: its caches (users, workflow, project
  ids) are per run, shared by its workers (the user cache under a lock; the
  workflow map only grows, and a stale edge costs one refused POST); ``close()``
  drops them and ``open()`` starts afresh.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError
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
    FatalError,
    KnownComments,
    NewComment,
    NewRecord,
    NotFound,
    NoTransitionPath,
    PreconditionFailed,
    RecordHistory,
    RecordWrite,
    RemoteComment,
    RemoteRecord,
    RetriableError,
    ServerInfo,
    Side,
    SiteField,
    ValidationFailed,
    WriteResult,
    comment_each,
    ref_of,
    results_so_far,
)
from connectors.jira_config import JiraConfig
from connectors.jira_errors import Account, from_http, from_transport, one_line
from connectors.jira_fields import create_items
from connectors.jira_fields import site_fields as join_site_fields
from connectors.jira_jql import (
    LABEL_PREFIX,
    keys_jql,
    marker_label,
    markers_jql,
    pull_jql,
    quotable,
    quote,
    scope_jql,
    status_probe_jql,
)
from connectors.jira_records import (
    embedded_comments,
    parse_time,
    to_comment,
    to_record,
    visibility_stated,
)
from connectors.jira_workflow import Transition, WorkflowMap, norm, parse_transitions
from connectors.retry import (
    AdaptiveLimit,
    ChunkPool,
    RequestBudget,
    RetryPolicy,
    run_chunks,
    run_per_key,
)
from connectors.session_env import remember_environment

T = TypeVar("T")

BULK_LIMIT = 50                   # Jira's documented maximum per bulk create
# Issues checked by one search before their edits (write_many): Cloud's search takes at
# most 50 ids in reconcileIssues, which its read-after-write consistency needs; Data
# Center's search documents neither that limit nor eventual consistency, so its batch
# is 100, the largest key list the connector puts in one query.
PRE_READ_CLOUD = 50
PRE_READ_DC = 100
RECONCILE_LIMIT = 50              # ids Cloud's search/jql reconciles at most
# Keys a run wrote lately, remembered for reconciled reads: more than a batch (at most
# 1,000 pairs), so the settle step's read of a batch finds them all, and bounded, so a
# run of any size holds no more.
FRESH_KEPT = 2000
BULK_CHANGELOG_ISSUES = 1000      # issues Cloud's changelog/bulkfetch takes at most
BULK_CHANGELOG_PAGE = 1000        # changelogs a page of it (its default; at most 10,000)
COMMENT_PAGE = 100                # Jira's default and maximum comment page
MAX_SHIFTS = 5                    # re-reads of a moving result window before giving up
ENTITY_PROPERTY = "incident-sync"
OWN_FIELDS = ("updated", "created", "status", "labels", "comment")
REQUIRED_PERMISSIONS = (
    "BROWSE_PROJECTS", "CREATE_ISSUES", "EDIT_ISSUES", "TRANSITION_ISSUES", "ADD_COMMENTS",
)


class _Meter(HTTPAdapter):
    """Sits under the library's session: spends the request budget and remembers,
    per thread, the last URL and status so error texts can name them."""

    def __init__(self, budget: RequestBudget | None, pool: int = 10) -> None:
        # One pooled connection per worker that may be in flight (requests' default
        # pool of 10 would drop and reopen connections above that).
        super().__init__(pool_connections=pool, pool_maxsize=pool)
        self.budget = budget
        self.local = threading.local()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if self.budget is not None:
            self.budget.acquire()
        self.local.last = (str(request.url), None)
        response = super().send(request, *args, **kwargs)
        self.local.last = (str(response.url), response.status_code)
        return response

    @property
    def last(self) -> tuple[str, int | None]:
        return getattr(self.local, "last", ("", None))


def _status_name(value: Any) -> str | None:
    """A wanted status as its name: ``"Resolved"`` or ``{"name": "Resolved"}``."""
    if isinstance(value, Mapping):
        value = value.get("name")
    return str(value) if value else None


def _changelog_time(value: Any) -> datetime:
    """A changelog entry's ``created``: a date-time string as the schema documents, or
    a number of seconds since the epoch as the bulk fetch's documented example shows
    (milliseconds when too large to be seconds)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 100_000_000_000 else value
        return datetime.fromtimestamp(seconds, UTC)
    return parse_time(str(value))


def _resolution(value: Any) -> Any:
    """A resolution as Jira takes it on a transition: ``{"name": ...}``."""
    return {"name": value} if isinstance(value, str) else value


class _CreatePlan:
    """One bulk-create chunk: its records and results (by index in the chunk), the
    payloads sent and which item each is, and what the answer told."""

    def __init__(self, records: Sequence[NewRecord], results: list[WriteResult]) -> None:
        self.records = records
        self.results = results
        self.payloads: list[dict[str, Any]] = []
        self.positions: list[int] = []                      # payload number -> item index
        self.moves: dict[int, tuple[str, Any]] = {}         # item -> (status, resolution)
        self.first_steps: dict[int, Transition] = {}        # item -> step inside the create
        self.created: dict[int, tuple[str, str]] = {}       # item -> (key, numeric id)
        self.here: dict[int, str | None] = {}               # item -> status after the create
        self.initial: str | None = None                     # initial status when planned

    def settle(self, outcome: Mapping[str, Any] | ConnectorError) -> None:
        """The bulk answer (or the request's error) mapped back to this chunk's items."""
        if isinstance(outcome, ConnectorError):
            for index in self.positions:
                self.results[index].error = outcome
            return
        failed = {int(e.get("failedElementNumber", -1)): e for e in outcome.get("errors") or []
                  if isinstance(e, dict)}
        issues = [i for i in outcome.get("issues") or [] if isinstance(i, dict)]
        for number, index in enumerate(self.positions):
            if number not in failed and not issues:
                self.results[index].error = RetriableError(
                    "Jira bulk create answered with fewer issues than it was sent",
                    side="jira")
                continue
            if number in failed:
                element = (failed.get(number) or {}).get("elementErrors") or {}
                errors = {str(k): str(v) for k, v in (element.get("errors") or {}).items()}
                text = "; ".join([*(f"{k}: {v}" for k, v in errors.items()),
                                  *map(str, element.get("errorMessages") or [])]) or "rejected"
                self.results[index].error = ValidationFailed(
                    f"Jira create refused: {text}", fields=errors, side="jira")
                continue
            issue = issues.pop(0)
            self.created[index] = (str(issue.get("key")), str(issue.get("id")))
            step = self.first_steps.get(index)
            nested = issue.get("transition") if isinstance(issue.get("transition"), dict) else {}
            if step is not None and 200 <= int(nested.get("status") or 0) < 300:
                self.here[index] = step.to  # the create's transition took its first step
            else:
                self.here[index] = self.initial
        for index, (key, _) in self.created.items():
            self.results[index].id = key
            self.results[index].display = key


class JiraConnector:
    """Connector for one Jira project (Cloud or Data Center, with JSM)."""

    side = Side.JIRA

    def __init__(
        self,
        url: str,
        *,
        email: str,
        token: str,
        flavor: str = "auto",
        project: str,
        issue_type: str = "Incident",
        jql: str = "",
        service_desk_id: str | None = None,
        marker_field: str | None = None,
        page_size: int = 100,
        timeout: float = 30.0,
        requests_per_minute: int | None = None,
        overlap_minutes: int = 2,
        remote_link: bool = False,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
    ) -> None:
        config = JiraConfig.from_options(
            url=url, email=email, flavor=flavor, project=project, issue_type=issue_type,
            jql=jql, service_desk_id=service_desk_id, marker_field=marker_field,
            page_size=page_size, timeout=timeout, requests_per_minute=requests_per_minute,
            overlap_minutes=overlap_minutes, remote_link=remote_link, concurrency=concurrency,
        )
        self._setup(config, token, retry)

    @classmethod
    def from_config(
        cls, config: JiraConfig, *, token: str, retry: RetryPolicy | None = None
    ) -> JiraConnector:
        """The connector for a validated ``config``; nothing is checked again."""
        connector = cls.__new__(cls)
        connector._setup(config, token, retry)
        return connector

    def _setup(self, config: JiraConfig, token: str, retry: RetryPolicy | None) -> None:
        # What the model cannot know: the secret, and what it means for the flavor.
        if config.flavor == "cloud" and not config.email:
            raise ValueError("email: Jira Cloud needs the account email that owns the API token")
        if not token:
            raise ValueError("token: missing (API token on Cloud, personal access token on DC)")
        self.config = config
        self.url = config.url
        self.email = email = config.email
        self._token = token
        self.flavor = config.flavor
        self.project = project = config.project
        self.issue_type = config.issue_type
        self.jql = config.jql
        self.service_desk_id = config.service_desk_id
        self.marker_field = config.marker_field
        self.page_size = config.page_size
        self.timeout = config.timeout
        self.overlap_minutes = config.overlap_minutes
        self.remote_link = config.remote_link
        self.concurrency = config.concurrency
        self.retry = retry or RetryPolicy()
        rpm = config.requests_per_minute
        self._budget = RequestBudget(rpm) if rpm else None
        self.field_ids: dict[str, str] = {}
        # GET /field as the site answered it at open(), kept for site_fields().
        self._field_list: list[dict[str, Any]] = []
        self._me = ""   # the signed-in account (accountId / DC user name), set by open()
        self._jira: JIRA | None = None
        self._meter = _Meter(self._budget, max(10, config.concurrency))
        self._limit = AdaptiveLimit(config.concurrency, max_pause=self.retry.max_wait,
                                    sleep=self.retry.sleep)
        # The chunks' helper threads, kept for the run (bounded like the requests in
        # flight), ended by close().
        self._pool = ChunkPool(config.concurrency, name="incident-sync-jira")
        self._cache_lock = threading.Lock()  # the per-run caches, shared by the workers
        # Stale entity properties found by marks inside write_many, set in one go after.
        self._property_sink: list[tuple[str, str, dict[str, str]]] | None = None
        self._info: ServerInfo | None = None
        self._zone: tzinfo = UTC
        self._users: dict[str, dict[str, str] | None] = {}
        self._workflow = WorkflowMap()
        # The status every issue of the configured type is born in, read once per run:
        # a create whose wanted status is that one then costs no status read.
        self._initial_status: str | None = None
        self._project_ids: tuple[str, str] | None = None
        # Issue key -> numeric id of every issue this run searched or created: Cloud's
        # search reconciles only ids, and write_many's pre-write search needs them.
        self._issue_ids: dict[str, str] = {}
        # The keys this run wrote last (at most FRESH_KEPT): on Cloud a get_many
        # reconciles them by id, being the read-after-write of our writes.
        self._fresh: OrderedDict[str, None] = OrderedDict()
        # Whether the site has Cloud's bulk changelog fetch; False once it answered 404.
        self._bulk_changelog = True
        self._notify_flag = True
        self._account = Account(email=email, project=project)

    def __repr__(self) -> str:  # never show the token
        return f"JiraConnector(url={self.url!r}, project={self.project!r}, flavor={self.flavor!r})"

    # ------------------------------------------------------------ plumbing

    @property
    def cloud(self) -> bool:
        return self._require().deploymentType == "Cloud"

    def _require(self) -> JIRA:
        if self._jira is None:
            raise RuntimeError("JiraConnector used before open()")
        return self._jira

    def _who(self) -> str:
        return self._account.who

    def _translate(self, exc: BaseException, what: str) -> ConnectorError:
        """A library/transport failure as an error of our tree (never with credentials)."""
        last_url, last_status = self._meter.last
        if isinstance(exc, JIRAError):
            if exc.status_code is None:  # refused by the library itself, before any request
                return ValidationFailed(f"Jira {what}: {one_line(exc.text)}", side="jira")
            response = exc.response if isinstance(exc.response, requests.Response) else None
            return from_http(what, exc.status_code, str(exc.url or last_url or self.url),
                             response, str(exc.text or ""), self._account)
        return from_transport(exc, what, base_url=self.url, last_url=last_url,
                              last_status=last_status, timeout=self.timeout)

    def _call(self, what: str, request: Callable[[], T], *, idempotent: bool) -> T:
        """Run one library call under the retry policy with errors translated."""

        def attempt() -> T:
            try:
                return request()
            except (JIRAError, requests.exceptions.RequestException,
                    json.JSONDecodeError) as exc:
                # ``from None``: the library's exception text includes the request
                # headers (Authorization), so it must not travel as __cause__.
                raise self._translate(exc, what) from None
            except (KeyError, IndexError, TypeError) as exc:
                # The library indexing into an answer without the expected shape
                # (a proxy's JSON, a half-written body): not a bug of ours to crash on.
                last_url, last_status = self._meter.last
                raise RetriableError(
                    f"Jira {what}: unexpected answer from {last_url.split('?')[0] or self.url} "
                    f"(HTTP {last_status}): {type(exc).__name__} {one_line(exc, 80)}",
                    side="jira", status=last_status, url=last_url or self.url) from None

        # Each attempt holds one of the bounded slots; a 429 halves them (the retry
        # policy then waits out Retry-After, and new requests pause as long).
        return self.retry.call(lambda: self._limit.call(attempt), idempotent=idempotent)

    def _api(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
             payload: Any = None) -> Any:
        """A REST call the library has no fitting method for, on its session and URL scheme."""
        jira = self._require()
        response = jira._session.request(
            method, jira._get_url(path), params=dict(params or {}),
            data=json.dumps(payload) if payload is not None else None,
        )
        return response.json() if response.content else {}

    # ------------------------------------------------------------ lifecycle

    def open(self) -> ServerInfo:
        if self._jira is not None:
            self.close()  # reopening starts a fresh run: new session, empty caches

        def connect() -> JIRA:
            auth: dict[str, Any] = (
                {"basic_auth": (self.email, self._token)} if self.email
                else {"token_auth": self._token}
            )
            # The library's own serverInfo read is sent after our adapter is mounted,
            # so the sign-in is metered, logged at -vv and counted like any request.
            jira = JIRA(server=self.url, max_retries=0, timeout=self.timeout,
                        get_server_info=False, **auth)
            self._meter = _Meter(self._budget, max(10, self.concurrency))
            jira._session.mount("http://", self._meter)
            jira._session.mount("https://", self._meter)
            http_log.attach(jira._session, "jira")  # -vv request lines, per-run counts
            remember_environment(jira._session)     # proxies read once per run, not per request
            info = jira.server_info()
            jira._version = tuple(info["versionNumbers"])
            jira.deploymentType = info.get("deploymentType")
            return jira

        try:
            jira = self._call("serverInfo", connect, idempotent=True)
        except KeyError:
            raise FatalError(f"Jira serverInfo at {self.url} lacks versionNumbers: not Jira?",
                             side="jira", url=self.url) from None
        if self.flavor != "auto":
            # The operator's word wins; the library switches its own Cloud/DC
            # behaviour (search endpoint, user payloads) on this attribute.
            jira.deploymentType = "Cloud" if self.flavor == "cloud" else "Server"
        cloud = jira.deploymentType == "Cloud"
        # The library speaks v2 everywhere by default; Cloud gets v3 so rich
        # text travels as ADF, the format Cloud keeps (DC has no v3).
        jira._options["rest_api_version"] = "3" if cloud else "2"
        self._jira = jira
        me = self._call("myself", jira.myself, idempotent=True)
        # Who we are in changelog authors: accountId on Cloud, user name on DC.
        self._me = str(me.get("accountId") or me.get("name") or "")
        self._zone = self._zone_of(me.get("timeZone"))
        self._load_fields()
        version = ".".join(str(n) for n in getattr(jira, "_version", ()) or ())
        self._info = ServerInfo(
            side=Side.JIRA, base_url=self.url, flavor="cloud" if cloud else "datacenter",
            version=version, user=str(me.get("emailAddress") or me.get("name") or ""),
            text_format="adf" if cloud else "wiki", field_ids=dict(self.field_ids),
        )
        return self._info

    @staticmethod
    def _zone_of(name: Any) -> tzinfo:
        try:
            return ZoneInfo(str(name)) if name else UTC
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return UTC  # an unknown zone name: UTC is what Jira stores

    def _load_fields(self) -> None:
        jira = self._require()
        raw = self._call("list fields", jira.fields, idempotent=True)
        self.field_ids = {str(f["name"]): str(f["id"]) for f in raw if "name" in f and "id" in f}
        self._field_list = [dict(f) for f in raw if isinstance(f, dict)]
        # Prime the library's clause-name cache from the same answer; left empty,
        # it would fetch GET /field again before every search.
        jira._fields_cache_value = {
            name: str(f["id"]) for f in raw for name in f.get("clauseNames") or ()
        }

    def close(self) -> None:
        self._pool.close()
        if self._jira is not None:
            self._jira.close()
        self._jira = None
        self._info = None
        self._users.clear()
        self._workflow = WorkflowMap()
        self._initial_status = None
        self._project_ids = None
        self._issue_ids.clear()
        self._fresh.clear()
        self._bulk_changelog = True
        self._notify_flag = True

    def __enter__(self) -> JiraConnector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ reading

    def _fields_param(self, fields: Sequence[str]) -> list[str]:
        wanted = [f for f in fields if f]
        own = [*OWN_FIELDS, *([self.marker_field] if self.marker_field else [])]
        return list(dict.fromkeys([*wanted, *own]))

    def _search_pages(self, jql: str, fields: Sequence[str], reconcile: Sequence[int] = (),
                      *, lenient: bool = False,
                      properties: Sequence[str] = ()) -> Iterator[list[dict[str, Any]]]:
        """Every page of a search, following tokens (Cloud) or offsets (DC).

        ``lenient``: on DC, ``validateQuery=warn`` makes Jira drop values that
        don't exist (e.g. a deleted key) instead of refusing the whole query.
        ``properties``: entity properties each issue carries back (both searches
        take the parameter, Cloud up to 5).
        """
        jira = self._require()
        wanted = ",".join(properties) or None
        if self.cloud:
            token: str | None = None
            seen_tokens: set[str] = set()
            while True:
                page = self._call(
                    "search",
                    lambda t=token: jira.enhanced_search_issues(
                        jql, nextPageToken=t, maxResults=self.page_size, fields=list(fields),
                        reconcileIssues=list(reconcile) or None, properties=wanted,
                        json_result=True,
                    ),
                    idempotent=True,
                )
                yield list(page.get("issues") or [])
                token = page.get("nextPageToken")
                if page.get("isLast", not token) or not token:
                    return
                if token in seen_tokens:
                    raise RetriableError(f"Jira search repeated page token {token!r}: "
                                         "pagination loop", side="jira")
                seen_tokens.add(token)
        else:
            yield from self._offset_pages(jql, fields, lenient, wanted)

    def _offset_pages(self, jql: str, fields: Sequence[str], lenient: bool,
                      properties: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """DC ``startAt`` paging that notices when results shift under it.

        An issue updated during the pull re-sorts to the end and moves every
        later one a slot forward, so plain offsets would skip one. Each page
        therefore re-reads the previous page's last issue; when another issue
        sits there, the window is read again from one page earlier (callers drop
        repeated keys).
        """
        jira = self._require()
        validate: Any = "warn" if lenient else True
        offset = 0                  # where the first unseen issue should be
        expect: str | None = None   # the key that should sit just before it
        shifts = 0
        while True:
            overlap = 1 if expect is not None else 0
            page = self._call(
                "search",
                lambda s=offset - overlap, n=self.page_size + overlap: jira.search_issues(
                    jql, startAt=s, maxResults=n, fields=list(fields), properties=properties,
                    json_result=True, validate_query=validate),
                idempotent=True,
            )
            issues = list(page.get("issues") or [])
            if expect is not None:
                if issues and issues[0].get("key") == expect:
                    issues = issues[1:]
                else:
                    shifts += 1
                    if shifts > MAX_SHIFTS:
                        raise RetriableError("Jira search results kept moving during the pull",
                                             side="jira")
                    offset, expect = max(offset - self.page_size, 0), None
                    continue
            yield issues
            offset += len(issues)
            if issues:
                expect = str(issues[-1].get("key"))
            total = page.get("total")
            if not issues or page.get("isLast") or (isinstance(total, int) and offset >= total):
                return

    def _records(self, issues: Sequence[Mapping[str, Any]]) -> list[RemoteRecord]:
        """Issues of one page as records, completing truncated comment lists."""
        self._remember_ids(issues)
        records = []
        for raw in issues:
            comments, complete = embedded_comments(raw.get("fields") or {})
            if not complete or not all(visibility_stated(c) for c in comments):
                comments = self._all_comments(str(raw["key"]))
            try:
                records.append(to_record(raw, base_url=self.url, marker_field=self.marker_field,
                                         comments=comments))
            except (KeyError, ValueError) as exc:
                raise RetriableError(f"Jira search returned a malformed issue: {exc}",
                                     side="jira") from None
        return records

    def _remember_ids(self, issues: Sequence[Mapping[str, Any]]) -> None:
        """Keep each issue's numeric id by key, for reconciling later searches (Cloud)."""
        found = {str(raw.get("key")): str(raw.get("id")) for raw in issues
                 if isinstance(raw, Mapping) and raw.get("key")
                 and str(raw.get("id") or "").isdigit()}
        if found:
            with self._cache_lock:
                self._issue_ids.update(found)

    def _remember_fresh(self, keys: Sequence[str]) -> None:
        """Keep these keys, just created or written, among the last FRESH_KEPT (see
        :meth:`get_many`)."""
        with self._cache_lock:
            for key in keys:
                self._fresh[key] = None
                self._fresh.move_to_end(key)
            while len(self._fresh) > FRESH_KEPT:
                self._fresh.popitem(last=False)

    def _all_comments(self, key: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        while True:
            offset = len(result)
            page = self._call(
                f"comments of {key}",
                lambda s=offset: self._api(
                    "GET", f"issue/{key}/comment",
                    params={"startAt": s, "maxResults": COMMENT_PAGE, "expand": "properties"}),
                idempotent=True,
            )
            batch = list(page.get("comments") or [])
            result.extend(batch)
            total = page.get("total")
            if not batch or (isinstance(total, int) and len(result) >= total):
                return result

    def pull(self, since: datetime | None, fields: Sequence[str]) -> Iterator[RemoteRecord]:
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)  # both vendors keep UTC; naive means UTC
        seen: dict[str, datetime] = {}
        window, overlap = since, self.overlap_minutes
        for _ in range(MAX_SHIFTS + 1):
            jql = pull_jql(self.project, self.jql, window, overlap, self._zone)
            moved_from: datetime | None = None
            for issues in self._search_pages(jql, self._fields_param(fields)):
                for record in self._records(issues):
                    if record.id in seen:
                        if record.updated > seen[record.id]:
                            # Updated during this pull and re-sorted to the end:
                            # issues behind its old place slid one slot forward.
                            old, seen[record.id] = seen[record.id], record.updated
                            moved_from = old if moved_from is None else min(moved_from, old)
                        continue
                    # The JQL literal was rounded down and shifted by the overlap.
                    if since is not None and record.updated < since:
                        continue
                    seen[record.id] = record.updated
                    yield record
            if moved_from is None or not self.cloud:
                return  # DC paging re-checks its window itself (_offset_pages)
            # Cloud page tokens can't step back: search again from where the
            # shift began; what was yielded already is skipped above.
            window, overlap = moved_from, 0
        raise RetriableError("Jira search results kept moving during the pull", side="jira")

    def _by_keys(self, keys: Sequence[str], fields: Sequence[str],
                 reconcile: Sequence[int] = ()) -> dict[str, RemoteRecord]:
        """The issues of these keys, one ``key in (...)`` search per chunk of keys; the
        chunks are independent, so they are sent together (:func:`run_chunks`) and
        their issues taken in chunk order."""
        wanted = list(dict.fromkeys(keys))
        step = min(self.page_size, 100)
        return self._search_chunks(
            [(wanted[start:start + step], reconcile)
             for start in range(0, len(wanted), step)], fields)

    def _search_chunks(self, chunks: Sequence[tuple[Sequence[str], Sequence[int]]],
                       fields: Sequence[str]) -> dict[str, RemoteRecord]:
        """One ``key in (...)`` search per (keys, ids to reconcile) chunk, sent together,
        their issues taken in chunk order."""
        found: dict[str, RemoteRecord] = {}
        searched = self._fields_param(fields)

        def read(number: int) -> list[RemoteRecord]:
            keys, reconcile = chunks[number]
            return [record for issues in self._key_pages(keys, searched, reconcile)
                    for record in self._records(issues)]

        for records in run_chunks(len(chunks), read, self.concurrency, pool=self._pool):
            found.update((r.id, r) for r in records)
        return found

    def _key_pages(self, keys: Sequence[str], fields: Sequence[str],
                   reconcile: Sequence[int] = (),
                   properties: Sequence[str] = ()) -> Iterator[list[dict[str, Any]]]:
        """The pages of one ``key in (...)`` search (every key quoted; keys that cannot be
        issue keys left out) with exactly ``fields``; an issue that does not exist is
        simply not among them."""
        batch = list(keys)
        while batch:
            try:
                jql = keys_jql(batch)
            except ValueError:
                return  # none of these can be an issue key
            try:
                pages = list(self._search_pages(jql, fields, reconcile, lenient=True,
                                                properties=properties))
            except ValidationFailed as exc:
                # Jira Cloud refuses a whole `key in (...)` query when one key
                # does not exist; drop the keys it names and ask again.
                text = " ".join(getattr(exc, "messages", None) or [str(exc)]).upper()
                missing = [k for k in batch if f"'{k.upper()}'" in text]
                if not missing:
                    raise
                batch = [k for k in batch if k not in missing]
                continue
            yield from pages
            return

    def get_many(self, ids: Sequence[str], fields: Sequence[str], *,
                 comments_at: Mapping[str, KnownComments] | None = None
                 ) -> dict[str, RemoteRecord]:
        """The issues of these keys (``key in (...)`` searches of up to 100 keys; the
        comments come embedded, so ``comments_at`` spares nothing and is unused). On
        Cloud, the keys this run wrote lately (created, edited, transitioned,
        commented) are searched apart, 50 a search, reconciled by id: Cloud's search
        is read-after-write only for reconciled issues, and this read (the engine's
        settle step) must see what our writes made, never the issue from before them
        (a create answers no version; an edit read back stale would be taken for what
        the tool made of it)."""
        if not ids:
            return {}
        wanted = list(dict.fromkeys(ids))
        fresh: dict[str, int] = {}
        if self.cloud:
            with self._cache_lock:
                for key in wanted:
                    ident = self._issue_ids.get(key, "")
                    if key in self._fresh and ident.isdigit():
                        fresh[key] = int(ident)
        rest = [key for key in wanted if key not in fresh]
        step = min(self.page_size, 100)
        fresh_keys = list(fresh)
        chunks: list[tuple[Sequence[str], Sequence[int]]] = [
            (part, [fresh[key] for key in part])
            for part in (fresh_keys[start:start + RECONCILE_LIMIT]
                         for start in range(0, len(fresh_keys), RECONCILE_LIMIT))]
        chunks += [(rest[start:start + step], ()) for start in range(0, len(rest), step)]
        found = self._search_chunks(chunks, fields)
        return {key: found[key] for key in wanted if key in found}

    def find_by_foreign_id(
        self, foreign_ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, RemoteRecord]:
        # Labels percent-encode any id; a text marker field can only be searched
        # for values JQL can quote (no raw control characters).
        wanted = [fid for fid in dict.fromkeys(foreign_ids)
                  if fid and (self.marker_field is None or quotable(fid))]
        result: dict[str, RemoteRecord] = {}
        step = min(self.page_size, 50)
        chunks = [wanted[start:start + step] for start in range(0, len(wanted), step)]
        searched = self._fields_param(fields)

        def read(number: int) -> list[RemoteRecord]:
            jql = markers_jql(chunks[number], self.marker_field)
            return [record for issues in self._search_pages(jql, searched)
                    for record in self._records(issues)]

        # Independent searches, sent together; taken in chunk order, and a chunk's ids
        # are its own, so the first exact match wins as one search after another did.
        for batch, records in zip(chunks, run_chunks(len(chunks), read, self.concurrency,
                                                     pool=self._pool),
                                  strict=True):
            for record in records:
                # Label search may ignore case and text search is fuzzy:
                # only an exact marker counts.
                if record.foreign_id in batch and record.foreign_id not in result:
                    result[record.foreign_id] = record
        return result

    def history(self, ids: Sequence[str]) -> dict[str, RecordHistory]:
        keys = list(dict.fromkeys(i for i in ids if i))
        if not keys:
            return {}
        if self.cloud and self._bulk_changelog:
            try:
                return self._bulk_histories(keys)
            except NotFound:
                # A site without the bulk fetch: one issue at a time from now on.
                self._bulk_changelog = False

        def one(index: int) -> RecordHistory | None:
            return self._history_of(keys[index])

        # Independent reads (an issue, then its changelog pages): several issues at a
        # time on the workers, as the engine asks for a batch's histories at once.
        found = run_chunks(len(keys), one, self.concurrency, pool=self._pool)
        return {key: history for key, history in zip(keys, found, strict=True)
                if history is not None}

    def _bulk_histories(self, keys: Sequence[str]) -> dict[str, RecordHistory]:
        """Cloud: the issues' creation times from one search per 100 keys (reconciled
        where this run wrote them, as any get_many), then their changelogs from
        ``changelog/bulkfetch``, up to 1,000 issues and 1,000 changelogs a request,
        instead of two requests per issue. NotFound: the site has no bulk fetch."""
        found = self.get_many(keys, ["created"])
        if not found:
            return {}
        with self._cache_lock:
            by_id = {self._issue_ids.get(key, ""): key for key in found}
        changes: dict[str, list[Any]] = {key: [] for key in found}
        wanted = list(found)
        for start in range(0, len(wanted), BULK_CHANGELOG_ISSUES):
            chunk = wanted[start:start + BULK_CHANGELOG_ISSUES]
            token: str | None = None
            while True:
                entries, following = self._changelog_page(chunk, token)
                for ident, histories in entries:
                    key = by_id.get(ident) or (ident if ident in changes else None)
                    if key is not None:
                        changes[key].extend(histories)
                if following is not None and following == token:
                    raise RetriableError("Jira's bulk changelog fetch answered the same page "
                                         "token twice", side="jira")
                token = following
                if token is None:
                    break
        return {key: self._record_history(key, record.fields.get("created"), changes[key])
                for key, record in found.items()}

    def _changelog_page(self, keys: Sequence[str], token: str | None
                        ) -> tuple[list[tuple[str, list[Any]]], str | None]:
        """One page of ``changelog/bulkfetch``: (issue id, its changelogs) per entry, and
        the next page's token (None on the last). An answer of another shape is a
        retriable error, as any unexpected answer is (:meth:`_call`)."""
        payload: dict[str, Any] = {"issueIdsOrKeys": list(keys),
                                   "maxResults": BULK_CHANGELOG_PAGE}
        if token:
            payload["nextPageToken"] = token

        def fetch() -> tuple[list[tuple[str, list[Any]]], str | None]:
            page = self._api("POST", "changelog/bulkfetch", payload=payload)
            if not isinstance(page, Mapping):
                raise TypeError("the page is not an object")
            logs = page.get("issueChangeLogs")
            if not isinstance(logs, list | None) or not all(
                    isinstance(entry, Mapping) for entry in logs or []):
                raise TypeError("issueChangeLogs is not a list of objects")
            entries = [(str(entry.get("issueId") or ""), list(entry.get("changeHistories") or []))
                       for entry in logs or []]
            return entries, (str(page["nextPageToken"]) if page.get("nextPageToken") else None)

        return self._call(f"changelogs of {len(keys)} issues", fetch, idempotent=True)

    def _history_of(self, key: str) -> RecordHistory | None:
        """One issue's creation time and changes, oldest first; None when it is gone."""
        # Cloud: the issue's creation time, then its changelog pages (oldest
        # first, 100 a page), since an issue read or a search embeds only part
        # of a long changelog. Data Center has no changelog resource and
        # returns the whole changelog with the issue.
        params = {"fields": "created"} if self.cloud else {"fields": "created",
                                                           "expand": "changelog"}
        try:
            raw = self._call(f"read {key}", lambda: self._api(
                "GET", f"issue/{key}", params=params), idempotent=True)
        except NotFound:
            return None
        histories = (self._changelog(key) if self.cloud
                     else list((raw.get("changelog") or {}).get("histories") or []))
        return self._record_history(key, (raw.get("fields") or {}).get("created"), histories)

    def _record_history(self, key: str, created: Any,
                        histories: Sequence[Any]) -> RecordHistory:
        """A RecordHistory from an issue's ``created`` and its changelog entries."""
        try:
            edits = [Edit(field=self._changed_field(item), at=_changelog_time(h["created"]),
                          by_us=self._is_me(h.get("author")))
                     for h in histories for item in h.get("items") or []]
            return RecordHistory(parse_time(str(created or "")),
                                 tuple(sorted(edits, key=lambda e: e.at)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RetriableError(f"Jira returned a malformed changelog of {key}: {exc}",
                                 side="jira") from None

    def _changelog(self, key: str) -> list[dict[str, Any]]:
        histories: list[dict[str, Any]] = []
        while True:
            params = {"startAt": len(histories), "maxResults": 100}
            page = self._call(f"changelog of {key}", lambda p=params: self._api(
                "GET", f"issue/{key}/changelog", params=p), idempotent=True)
            batch = list(page.get("values") or [])
            histories.extend(batch)
            if not batch or page.get("isLast") or len(histories) >= int(page.get("total") or 0):
                return histories

    def _changed_field(self, item: Mapping[str, Any]) -> str:
        """A changelog item's field id (Data Center items may name the field only)."""
        name = str(item.get("field") or "")
        return str(item.get("fieldId") or self.field_ids.get(name) or name.lower())

    def _is_me(self, author: Any) -> bool:
        if not isinstance(author, Mapping) or not self._me:
            return False
        return self._me in (author.get("accountId"), author.get("name"))

    # ------------------------------------------------------------ people

    def _user(self, email: str) -> dict[str, str] | None:
        """The user payload for an email (accountId / name), cached for the run."""
        key = email.casefold()
        with self._cache_lock:
            if key in self._users:
                return self._users[key]
        jira = self._require()
        params = {"query": email} if self.cloud else {"username": email}
        found = self._call(f"user search for {email}",
                           lambda: self._api("GET", "user/search",
                                             params={**params, "maxResults": 20}),
                           idempotent=True)
        candidates = [u for u in found or [] if isinstance(u, dict)]
        exact = [u for u in candidates
                 if str(u.get("emailAddress", "")).casefold() == key]
        if not exact and len(candidates) == 1 and not candidates[0].get("emailAddress"):
            exact = candidates  # Cloud hides emails by privacy setting; one hit is the person
        payload: dict[str, str] | None = None
        if len(exact) == 1:
            user = exact[0]
            if jira.deploymentType == "Cloud" and user.get("accountId"):
                payload = {"accountId": str(user["accountId"])}
            elif user.get("name"):
                payload = {"name": str(user["name"])}
        with self._cache_lock:
            self._users[key] = payload
        return payload

    def _resolve_refs(self, fields: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Replace ``{"$user": email}`` / ``{"$group": name}`` values by Jira values."""
        resolved: dict[str, Any] = {}
        warnings: list[str] = []
        for name, value in fields.items():
            ref = ref_of(value)
            if ref is None:
                resolved[name] = value
                continue
            kind, target = ref
            if kind == GROUP_REF:
                # Groups live in a text custom field (or a component) on Jira.
                resolved[name] = target
            elif kind == USER_REF and target:
                user = self._user(target)
                if user is None:
                    warnings.append(f"{name}: no Jira user with email {target}; left empty")
                resolved[name] = user
            else:
                resolved[name] = None
        return resolved, warnings

    # ------------------------------------------------------------ writing

    def _ids(self) -> tuple[str, str]:
        """(project id, issue type id), looked up once so creates cost no extra requests."""
        if self._project_ids is None:
            jira = self._require()
            project = self._call(
                f"project {self.project}",
                lambda: jira.project(self.project, expand="issueTypes").raw, idempotent=True)
            names = {str(t.get("name")): str(t.get("id")) for t in project.get("issueTypes") or []}
            types = {name.casefold(): ident for name, ident in names.items()}
            if self.issue_type.casefold() not in types:
                raise ValidationFailed(
                    f"Jira project {self.project} has no issue type {self.issue_type!r} "
                    f"(has: {', '.join(sorted(names)) or 'none'})", side="jira")
            self._project_ids = (str(project["id"]), types[self.issue_type.casefold()])
        return self._project_ids

    def _with_marker(self, labels: Any, marker_labels: Sequence[str]) -> list[str]:
        """Labels as the engine wants them, never losing the sync's marker labels."""
        wanted = [str(label) for label in labels or [] if not str(label).startswith(LABEL_PREFIX)]
        return list(dict.fromkeys([*wanted, *marker_labels]))

    def create(self, records: Sequence[NewRecord], *,
               created: Callable[[list[WriteResult]], None] | None = None
               ) -> list[WriteResult]:
        """Bulk creates of up to 50 issues each. While a chunk's issues must reach a status
        the run has no known path to yet (the first chunks of a run), chunks go one at a
        time, as what one learns (the initial status, the workflow) changes what the next
        sends: its first step inside the create, transitions POSTed without asking. Once
        every wanted status has a known path, the remaining chunks go together (their
        requests overlap; the same requests as one at a time).

        ``created`` (see :meth:`connectors.base.Connector.create`) is called once every
        bulk create has answered, with copies of the results then, while the last
        chunks' per-issue steps (transitions, remote links) run on the workers."""
        results = [WriteResult() for _ in records]
        chunks = [(records[start:start + BULK_LIMIT], results[start:start + BULK_LIMIT])
                  for start in range(0, len(records), BULK_LIMIT)]
        told = False

        def tell() -> Callable[[], None]:
            """The results as they are now (every create answered, no per-issue step
            started yet), and the call that tells the caller them: what the caller is
            told does not depend on how far the steps got before it runs."""
            nonlocal told
            told = True
            now = results_so_far(results)
            return lambda: None if created is None else created(now)

        done = 0
        while done < len(chunks) and not self._paths_known(chunks[done][0]):
            # The last chunk's steps overlap the caller's work: every create has answered.
            self._create_chunks(chunks[done:done + 1],
                                tell if done == len(chunks) - 1 else None)
            done += 1
        if done < len(chunks):
            self._create_chunks(chunks[done:], tell)
        if not told:
            tell()()   # nothing to create, or the project could not be read
        return results

    def _paths_known(self, records: Sequence[NewRecord]) -> bool:
        """Whether creating these issues can learn nothing a later chunk's create would
        use: every status they must reach has a known path from the initial status."""
        statuses = {_status_name(r.fields.get("status")) for r in records} - {None}
        if not statuses:
            return True
        start = self._initial_status
        return start is not None and all(self._workflow.path(start, str(status)) is not None
                                         for status in statuses)

    def _create_chunks(self, chunks: Sequence[tuple[Sequence[NewRecord], list[WriteResult]]],
                       tell: Callable[[], Callable[[], None]] | None = None) -> None:
        """Create these chunks: payloads built in order on this thread (user lookups
        cached as one at a time), the bulk POSTs sent together, each chunk's answer
        mapped back to its own items by index, then the per-issue steps of all chunks on
        the workers (one issue's steps in order) while this thread tells the caller
        (``tell``: the results as the creates left them, taken before the first step
        starts, then the caller's ``created`` run), then the version searches together
        (one per chunk: Cloud reconciles at most 50 ids per search)."""
        try:
            project_id, type_id = self._ids()
        except ConnectorError as exc:
            for _, results in chunks:
                for result in results:
                    result.error = exc
            return
        plans = [self._plan_create(records, results, project_id, type_id)
                 for records, results in chunks]

        def send(number: int) -> dict[str, Any] | ConnectorError | None:
            payloads = plans[number].payloads
            if not payloads:
                return None
            try:
                return self._call("bulk create", lambda: self._bulk_create(payloads),
                                  idempotent=False)
            except ConnectorError as exc:  # this chunk's items fail, the others go on
                return exc

        outcomes = run_chunks(len(plans), send, self.concurrency, pool=self._pool)
        for plan, outcome in zip(plans, outcomes, strict=True):
            if outcome is not None:
                plan.settle(outcome)
                self._remember_ids([{"key": key, "id": ident}
                                    for key, ident in plan.created.values()])
                self._remember_fresh([key for key, _ in plan.created.values()])
        moving = [(plan, i) for plan in plans for i in plan.moves if i in plan.created]
        if moving and self._initial_status is None:
            # Read once per run, from the first issue that must move: every issue of
            # the type is born in it.
            plan, index = moving[0]
            try:
                self._initial_status = self._status_of(plan.created[index][0])
            except ConnectorError as exc:
                for plan, index in moving:
                    plan.results[index].error = exc
                    plan.moves.pop(index)
                moving = []
            for plan, index in moving:
                plan.here[index] = plan.here.get(index) or self._initial_status

        def after_create(plan: _CreatePlan, index: int) -> None:
            """What Jira cannot batch, per issue: the remote link, the workflow steps."""
            key = plan.created[index][0]
            if self.remote_link:
                plan.results[index].warnings.extend(self._link_back(key, plan.records[index]))
            if index in plan.moves:
                status, resolution = plan.moves[index]
                try:
                    self._move(key, plan.here.get(index) or self._initial_status, status,
                               resolution)
                except ConnectorError as exc:
                    plan.results[index].error = exc

        busy = [(plan, i) for plan in plans for i in plan.created
                if self.remote_link or i in plan.moves]
        run_per_key([plan.created[i][0] for plan, i in busy],
                    lambda n: after_create(*busy[n]), self.concurrency, pool=self._pool,
                    meanwhile=None if tell is None else tell())

        def versions(number: int) -> dict[str, RemoteRecord] | ConnectorError:
            plan = plans[number]
            # Only for the issues whose caller wants the version from the create; the
            # engine reads every issue it created back anyway (get_many, reconciled).
            created = [plan.created[i] for i in plan.created
                       if plan.records[i].version_wanted]
            if not created:
                return {}
            try:
                return self._by_keys(
                    [k for k, _ in created], ["updated"],
                    reconcile=[int(i) for _, i in created if i.isdigit()])
            except ConnectorError as exc:
                return exc

        for plan, found in zip(plans, run_chunks(len(plans), versions, self.concurrency,
                                                 pool=self._pool),
                               strict=True):
            for index, (key, _) in plan.created.items():
                if not plan.records[index].version_wanted:
                    continue   # left None: the caller reads the issue back itself
                if isinstance(found, ConnectorError):
                    # The issues exist: report their keys (so they get linked) rather
                    # than an error that would make the engine create them again.
                    plan.results[index].warnings.append(
                        f"version not read after create: {found}")
                elif key in found:
                    plan.results[index].version = found[key].version

    def _plan_create(self, records: Sequence[NewRecord], results: list[WriteResult],
                     project_id: str, type_id: str) -> _CreatePlan:
        """One chunk's bulk-create payloads; an item that cannot be sent gets its error."""
        plan = _CreatePlan(records, results)
        for index, record in enumerate(records):
            if not record.foreign_id:
                results[index].error = ValidationFailed(
                    "Jira create: the record carries no foreign id to mark it with", side="jira")
                continue
            fields = dict(record.fields)
            status = _status_name(fields.pop("status", None))
            resolution = _resolution(fields.pop("resolution", None))
            try:
                fields, results[index].warnings = self._resolve_refs(fields)
            except ConnectorError as exc:  # the user lookup failed: this item only
                results[index].error = exc
                continue
            fields = {k: v for k, v in fields.items() if v is not None}
            fields["project"] = {"id": project_id}
            fields["issuetype"] = {"id": type_id}
            # The marker goes into the create itself, so a search after a crash
            # finds the issue even if nothing after this request happened.
            if self.marker_field:
                fields[self.marker_field] = record.foreign_id
                fields["labels"] = self._with_marker(fields.get("labels"), [])
            else:
                fields["labels"] = self._with_marker(fields.get("labels"),
                                                     [marker_label(record.foreign_id)])
            # The entity property rides in the create too (IssueUpdateDetails.properties):
            # no PUT per created issue.
            update: dict[str, Any] = {"fields": fields, "properties": [
                {"key": ENTITY_PROPERTY, "value": self._property_value(record.foreign_id,
                                                                       record.foreign_url)}]}
            if status:
                plan.moves[index] = (status, resolution)
                step = self._create_step(status, resolution)
                if step is not None:
                    update["transition"] = {"id": step.id}
                    plan.first_steps[index] = step
            elif resolution is not None:
                results[index].warnings.append(
                    "resolution: Jira sets it only on a transition into a done status; "
                    "not set on an issue created open")
            plan.payloads.append(update)
            plan.positions.append(index)
        plan.initial = self._initial_status
        return plan

    def _bulk_create(self, payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``POST issue/bulk`` with whole IssueUpdateDetails (the library's create_issues
        sends ``fields`` only). Jira answers 400 with the same body when every item
        failed; that is an answer, not an error."""
        jira = self._require()
        try:
            response = jira._session.post(jira._get_url("issue/bulk"),
                                          data=json.dumps({"issueUpdates": list(payloads)}))
        except JIRAError as exc:
            response = exc.response if isinstance(exc.response, requests.Response) else None
            if exc.status_code != 400 or response is None:
                raise
        data = response.json()
        if not isinstance(data, dict) or not isinstance(data.get("issues"), list):
            # Caught by _call as an answer of the wrong shape: retriable.
            raise KeyError("issues")
        return data

    def _create_step(self, status: str, resolution: Any) -> Transition | None:
        """The workflow step a create can take by itself: Cloud only (Data Center documents
        no transition on create), once the start status and its transitions are known,
        and not a step into a done status that must carry a resolution (a create sets
        no resolution)."""
        start = self._initial_status
        if not self.cloud or start is None or not self._workflow.known(start):
            return None
        path = self._workflow.path(start, status)
        if not path:
            return None
        step = path[0]
        if step.enters_done and resolution is not None:
            return None
        return step

    @staticmethod
    def _property_value(foreign_id: str, foreign_url: str) -> dict[str, str]:
        return {"servicenow_sys_id": foreign_id, "servicenow_url": foreign_url}

    def _link_back(self, key: str, record: NewRecord) -> list[str]:
        """The remote link to the ServiceNow record (``[jira] remote_link``): one request;
        a failure is a warning."""
        if not record.foreign_url:
            return []
        parts = urlsplit(record.foreign_url)
        link = {
            "globalId": f"system={parts.scheme}://{parts.netloc}&id={record.foreign_id}",
            "application": {"type": "com.servicenow", "name": "ServiceNow"},
            "relationship": "mirrored by",
            "object": {"url": record.foreign_url,
                       "title": record.foreign_display or record.foreign_id},
        }
        try:
            # Remote links upsert by globalId, so a repeat is harmless.
            self._call(f"remote link of {key}",
                       lambda: self._api("POST", f"issue/{key}/remotelink", payload=link),
                       idempotent=True)
        except ConnectorError as exc:
            return [f"{key}: remote link not set: {exc}"]
        return []

    def _current(self, key: str) -> dict[str, Any]:
        return dict(self._read(key).get("fields") or {})

    def _checked_fields(self) -> list[str]:
        """What a write checks before its edit: the version, status, labels, marker."""
        return ["updated", "status", "labels", *([self.marker_field] if self.marker_field
                                                 else [])]

    def _read(self, key: str, *, with_property: bool = False) -> dict[str, Any]:
        """The issue's id and the fields writes check (and its entity property)."""
        params = {"fields": ",".join(self._checked_fields())}
        if with_property:
            params["properties"] = ENTITY_PROPERTY
        raw = self._call(f"read {key}", lambda: self._api("GET", f"issue/{key}", params=params),
                         idempotent=True)
        return dict(raw) if isinstance(raw, dict) else {}

    @staticmethod
    def _needs_read(fields: Mapping[str, Any], expected_version: str | None,
                    foreign_id: str | None) -> bool:
        """Whether a write must see the issue first: a version to check, a status to
        compare, labels to merge with the marker, or a mark to compare."""
        return (expected_version is not None or bool(_status_name(fields.get("status")))
                or "labels" in fields or foreign_id is not None)

    def _pre_read(self, writes: Sequence[RecordWrite]
                  ) -> tuple[dict[int, dict[str, Any]], dict[int, ConnectorError]]:
        """The issues of these writes as each write's check needs them, in one
        ``key in (...)`` search made now, just before their edits (never the pulled
        values: a person may have edited since). Per write index: the issue as
        :meth:`_read` returns it, or the search's error. Only a key's first write of the
        batch is served (a later one must see what the first wrote: it reads itself), and
        on Cloud only issues whose id is known (the search is eventually consistent;
        ``reconcileIssues`` makes it read-after-write for those ids). A write served
        neither way, or whose issue the search did not return (deleted, moved, not
        a key), reads its issue itself as before."""
        wanted: dict[str, int] = {}
        seen: set[str] = set()
        for index, write in enumerate(writes):
            key = write.record_id
            if key not in seen and self._needs_read(write.fields, write.expected_version,
                                                    write.foreign_id):
                wanted[key] = index
            seen.add(key)
        reconcile: list[int] = []
        if self.cloud:
            with self._cache_lock:
                ids = {key: self._issue_ids.get(key, "") for key in wanted}
            wanted = {key: index for key, index in wanted.items() if ids[key]}
            reconcile = [int(ids[key]) for key in wanted]
        if not wanted:
            return {}, {}
        marks = any(writes[index].foreign_id is not None for index in wanted.values())
        found: dict[int, dict[str, Any]] = {}
        try:
            for issues in self._key_pages(list(wanted), self._checked_fields(), reconcile,
                                          [ENTITY_PROPERTY] if marks else []):
                self._remember_ids(issues)
                for raw in issues:
                    index = wanted.get(str(raw.get("key"))) if isinstance(raw, dict) else None
                    if index is not None:
                        found[index] = dict(raw)
        except ConnectorError as exc:
            if isinstance(exc, FatalError):
                raise
            return {}, {index: exc for index in wanted.values()}
        return found, {}

    def update(
        self, record_id: str, fields: Mapping[str, Any], expected_version: str | None = None
    ) -> WriteResult:
        result, _ = self._write(record_id, fields, expected_version, None)
        return self._with_version(record_id, result)

    def mark_foreign_id(
        self, record_id: str, foreign_id: str, expected_version: str | None = None
    ) -> WriteResult:
        """Mark an issue with the ServiceNow id of its copy, where :meth:`create` marks
        a copy: the marker field when configured, else the ``snow-<id>`` label (any
        other marker label replaced, so the issue names one record). One read, and
        one edit plus a read for the new version unless the mark is already there.

        An entity property naming *another* ServiceNow record (an issue re-linked) is
        brought up to date too: one PUT here; inside :meth:`write_many`, Cloud's
        ``issue/properties/multi`` for up to 100 issues at once (Data Center: a PUT
        each). An issue without the property gets none: a mark costs no extra request."""
        result, _ = self._write(record_id, {}, expected_version, foreign_id)
        return self._with_version(record_id, result)

    def _with_version(self, key: str, result: WriteResult) -> WriteResult:
        if result.version is None:  # written: read the version the write left
            result.version = str(self._current(key).get("updated"))
        return result

    def _write(
        self, record_id: str, fields: Mapping[str, Any], expected_version: str | None,
        foreign_id: str | None, *, read: dict[str, Any] | None = None,
    ) -> tuple[WriteResult, str]:
        """Write ``fields`` (and the mark of ``foreign_id``, in the same edit) after the
        version check; the result's version is None when something was written (the
        caller reads it, one by one or in a batch), and the issue's numeric id when the
        issue was read first ("" otherwise). ``read``: the issue as :meth:`_pre_read`
        found it just before this batch's edits, used instead of reading it again."""
        changes = dict(fields)
        status = _status_name(changes.pop("status", None))
        resolution = _resolution(changes.pop("resolution", None))
        raw: dict[str, Any] | None = None
        if self._needs_read(fields, expected_version, foreign_id):
            raw = read if read is not None else self._read(
                record_id, with_property=foreign_id is not None)
        current = dict(raw.get("fields") or {}) if raw is not None else None
        if expected_version is not None and current is not None:
            if str(current.get("updated")) != expected_version:
                # Jira has no conditional write; this check narrows the race to
                # the time between this read and the edit below.
                raise PreconditionFailed(
                    f"Jira {record_id} moved: version {current.get('updated')} "
                    f"!= expected {expected_version}")
        if status and current is not None:
            now = str((current.get("status") or {}).get("name", ""))
            if norm(now) == norm(status):
                status = None  # already there: nothing to transition
        payload, warnings = self._resolve_refs(changes)
        if "labels" in payload and current is not None:
            markers = [str(label) for label in current.get("labels") or []
                       if str(label).startswith(LABEL_PREFIX)]
            payload["labels"] = self._with_marker(payload["labels"], markers)
        if foreign_id is not None and raw is not None and current is not None:
            self._refresh_property(record_id, raw, foreign_id)
            payload.update(self._mark_payload(current, payload, foreign_id))
        reresolve: str | None = None
        if resolution is not None and not status:
            # Jira keeps the resolution off edit screens: it is set only by the
            # transition into a done status. An issue already done gets it by
            # leaving that status and entering it again; an open one cannot hold it.
            here_status = ((current or self._current(record_id)).get("status") or {})
            category = str((here_status.get("statusCategory") or {}).get("key") or "")
            if category == "done":
                reresolve = str(here_status.get("name") or "")
            else:
                warnings.append("resolution: Jira sets it only on a transition into a done "
                                "status; left unchanged on an open issue")
        wrote = False
        if payload or status or reresolve:
            # About to change: a later search of it (the settle step's) must be
            # reconciled on Cloud, even when a step after the first one fails.
            self._remember_fresh([record_id])
        if payload:
            self._edit(record_id, payload)
            wrote = True
        if status:
            here = ((current or {}).get("status") or {}).get("name")
            wrote = self._move(record_id, here, status, resolution) or wrote
        elif reresolve:
            wrote = self._reresolve(record_id, reresolve, resolution)
        version = None if wrote else str((current or self._current(record_id)).get("updated"))
        issue_id = str((raw or {}).get("id") or "")
        return WriteResult(id=record_id, version=version, display=record_id,
                           warnings=warnings), issue_id

    def _mark_payload(self, current: Mapping[str, Any], payload: Mapping[str, Any],
                      foreign_id: str) -> dict[str, Any]:
        """The edit that makes the issue carry ``foreign_id``; empty when it already does.
        The marker field when configured, else the ``snow-<id>`` label replacing any
        other marker label (on top of the labels the same write sets, if any)."""
        if self.marker_field:
            if str(current.get(self.marker_field) or "") == foreign_id:
                return {}
            return {self.marker_field: foreign_id}
        labels = [str(label) for label in current.get("labels") or []]
        base = list(payload["labels"]) if "labels" in payload else labels
        wanted = self._with_marker(base, [marker_label(foreign_id)])
        if "labels" not in payload and wanted == labels:
            return {}
        return {"labels": wanted}

    def _refresh_property(self, key: str, raw: Mapping[str, Any], foreign_id: str) -> None:
        """Re-point a stale entity property at ``foreign_id`` (now, or batched later
        when :meth:`write_many` collects them)."""
        value = (raw.get("properties") or {}).get(ENTITY_PROPERTY)
        if not isinstance(value, dict):
            return
        old_id = str(value.get("servicenow_sys_id") or "")
        if old_id in ("", foreign_id):
            return
        old_url = str(value.get("servicenow_url") or "")
        fresh = self._property_value(
            foreign_id, old_url.replace(old_id, foreign_id) if old_id in old_url else "")
        with self._cache_lock:
            sink = self._property_sink
            if sink is not None:
                sink.append((key, str(raw.get("id") or ""), fresh))
                return
        self._put_properties([(key, str(raw.get("id") or ""), fresh)])

    def _put_properties(self, items: Sequence[tuple[str, str, dict[str, str]]]) -> None:
        """Set the entity property on these (key, id, value) issues: Cloud in one
        ``issue/properties/multi`` request per 100 (asynchronous: the 303 to its task is
        not followed), Data Center one PUT per issue."""
        jira = self._require()
        if self.cloud and all(i.isdigit() for _, i, _ in items):
            for start in range(0, len(items), 100):
                chunk = items[start:start + 100]
                body = {"issues": [{"issueID": int(i), "properties": {ENTITY_PROPERTY: value}}
                                   for _, i, value in chunk]}
                self._call("set issue properties", lambda b=body: jira._session.post(
                    jira._get_url("issue/properties/multi"), data=json.dumps(b),
                    allow_redirects=False), idempotent=True)
            return
        run_per_key([k for k, _, _ in items], lambda n: self._call(
            f"property of {items[n][0]}",
            lambda: jira.add_issue_property(items[n][0], ENTITY_PROPERTY, items[n][2]),
            idempotent=True), self.concurrency, pool=self._pool)

    def _edit(self, key: str, payload: Mapping[str, Any]) -> None:
        body = {"fields": dict(payload)}
        if self._notify_flag:
            try:
                self._call(f"edit {key}",
                           lambda: self._api("PUT", f"issue/{key}",
                                             params={"notifyUsers": "false"}, payload=body),
                           idempotent=True)
                return
            except (AuthError, ValidationFailed) as exc:
                # notifyUsers=false needs (project) admin rights; without them,
                # edit with notifications rather than not at all.
                if "notif" not in str(exc).lower() and exc.status != 403:
                    raise
                self._notify_flag = False
        self._call(f"edit {key}", lambda: self._api("PUT", f"issue/{key}", payload=body),
                   idempotent=True)

    # ------------------------------------------------------------ workflow

    def _transitions(self, key: str) -> list[Transition]:
        jira = self._require()
        raw = self._call(f"transitions of {key}", lambda: jira.transitions(key), idempotent=True)
        return parse_transitions(raw)

    def _status_of(self, key: str) -> str:
        return str(((self._current(key).get("status")) or {}).get("name", ""))

    def _learn_frontier(self, start: str, target: str) -> None:
        """Learn transitions of statuses on the way, read-only, from other issues."""
        jira = self._require()
        search = jira.enhanced_search_issues if self.cloud else jira.search_issues
        while self._workflow.path(start, target) is None:
            frontier = self._workflow.frontier(start)
            if not frontier:
                return
            status = frontier[0]
            probe = self._call(
                f"find an issue in {status}",
                lambda s=status: search(
                    status_probe_jql(self.project, s), maxResults=1, fields=["status"],
                    json_result=True),
                idempotent=True,
            )
            issues = probe.get("issues") or []
            if issues:
                self._workflow.learn(status, self._transitions(str(issues[0]["key"])))
            else:
                self._workflow.mark_unlearnable(status)

    def _reresolve(self, key: str, done: str, resolution: Any) -> bool:
        """Give a done issue another resolution: out of ``done`` (to an in-progress
        status where the workflow offers one) and back in with ``resolution``."""
        available = self._transitions(key)
        self._workflow.learn(done, available)
        out = sorted((t for t in available if not t.enters_done),
                     key=lambda t: t.to_category != "indeterminate")
        if not out:
            raise NoTransitionPath(f"Jira {key}: no transition out of {done!r} to change its "
                                   "resolution", side="jira")
        self._call(f"transition {key} to {out[0].to}", lambda: self._api(
            "POST", f"issue/{key}/transitions", payload={"transition": {"id": out[0].id}}),
            idempotent=False)
        self._move(key, out[0].to, done, resolution)
        return True

    def _move(self, key: str, current: str | None, target: str, resolution: Any) -> bool:
        """Transition ``key`` to ``target``; True when at least one transition ran.

        A step along a path the run's WorkflowMap already knows is POSTed without
        asking ``GET transitions`` first; only when Jira refuses it (conditions can
        differ per issue) are the issue's transitions read and the step chosen again."""
        status = current or self._status_of(key)
        visited = [status]
        moved = False
        asked: set[str] = set()   # statuses whose transitions were read for this issue
        for _ in range(32):  # far more steps than any incident workflow has
            if norm(status) == norm(target):
                return moved
            known = self._workflow.path(status, target) if self._workflow.known(status) \
                else None
            if known and norm(status) not in asked:
                step = known[0]
                try:
                    self._post_transition(key, status, step, resolution)
                except ValidationFailed:
                    # Refused: this issue may not be where we thought (a create's
                    # transition whose answer we could not read) or a condition differs.
                    # Read its status, then what it offers, before learning anything.
                    status = self._status_of(key)
                    asked.add(norm(status))
                    if norm(status) == norm(target):
                        return moved
                    available = self._transitions(key)
                    self._workflow.learn(status, available)
                    path = self._workflow.path(status, target)
                    if path is None or path[0].id not in {t.id for t in available}:
                        continue  # the general path below explains or explores
                    self._post_transition(key, status, path[0], resolution)
                    moved = True
                    status = path[0].to
                    visited.append(status)
                    continue
                moved = True
                status = step.to
                visited.append(status)
                continue
            available = self._transitions(key)
            asked.add(norm(status))
            self._workflow.learn(status, available)
            path = self._workflow.path(status, target)
            if path is None:
                self._learn_frontier(status, target)
                path = self._workflow.path(status, target)
            step = path[0] if path else self._workflow.exploratory_step(available, visited)
            if step is None or step.id not in {t.id for t in available}:
                reachable = self._workflow.reachable(status)
                unknown = [s for s in reachable if not self._workflow.known(s)]
                hint = (f"; transitions out of {', '.join(unknown)} are unknown until an issue "
                        "is in that status (done statuses are never entered just to explore)"
                        if unknown else "")
                raise NoTransitionPath(
                    f"Jira {key}: no workflow path from {status!r} to status {target!r} "
                    f"(reachable: {', '.join(reachable) or 'none'}{hint})", side="jira")
            self._post_transition(key, status, step, resolution)
            moved = True
            status = step.to
            visited.append(status)
        raise NoTransitionPath(f"Jira {key}: gave up reaching {target!r}", side="jira")

    def _post_transition(self, key: str, status: str, step: Transition, resolution: Any) -> None:
        fields: dict[str, Any] = {}
        if resolution is not None and step.enters_done and \
                self._workflow.category(status) != "done":
            fields["resolution"] = resolution
        self._call(
            f"transition {key} to {step.to}",
            lambda: self._api(
                "POST", f"issue/{key}/transitions",
                payload={"transition": {"id": step.id}, **({"fields": fields} if fields else {})}),
            idempotent=False,
        )

    # ------------------------------------------------------------ comments

    def add_comment(self, record_id: str, body: Any, visibility: str) -> RemoteComment:
        if visibility not in ("public", "internal"):
            raise ValueError(f"visibility: must be public or internal (got {visibility!r})")
        jira = self._require()
        internal = visibility != "public"
        comment = self._call(
            f"comment on {record_id}",
            lambda: jira.add_comment(record_id, body, is_internal=internal),
            idempotent=False,
        )
        raw = dict(comment.raw)
        if not isinstance(raw.get("jsdPublic"), bool) and not raw.get("visibility"):
            # Jira's own verdict (jsdPublic, a restriction) wins; otherwise the
            # visibility is what we just asked for, not a guess from the echo.
            raw["jsdPublic"] = not internal
        return to_comment(raw)

    # ------------------------------------------------------------ site fields

    def site_fields(self) -> list[SiteField]:
        """GET /field joined with the create screen of the configured project and issue
        type and the edit screen of one open issue in scope (none: edit unknown), with
        the site's resolutions as the resolution field's values.

        Costs: the project read (once per run), one createmeta page per 50 fields, one
        search for an issue, one editmeta and one resolution list."""
        jira = self._require()
        fields = join_site_fields(self._field_list, self._create_meta(), self._edit_meta(),
                                  where=f"{self.project} / {self.issue_type}")
        # Resolutions are set on transitions, so no screen lists them; the site's list
        # is what a transition accepts. Priority likewise when the create screen lacks it.
        lists: dict[str, Callable[[], list[Any]]] = {
            "resolution": jira.resolutions, "priority": jira.priorities}
        for index, site_field in enumerate(fields):
            if site_field.id in lists and site_field.allowed is None:
                names = self._call(f"list {site_field.id} values", lists[site_field.id],
                                   idempotent=True)
                fields[index] = replace(site_field, allowed=tuple(
                    str(getattr(item, "name", "")) for item in names
                    if getattr(item, "name", None)))
        return fields

    def _create_meta(self) -> list[dict[str, Any]] | None:
        """The create screen's fields ("Get create field metadata for a project and issue
        type id", GET /rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/
        {issueTypeId}, paged); None when the site has no such endpoint (Jira Server /
        Data Center before 8.4 answers 404: Atlassian, "createmeta REST endpoint to be
        removed", confluence.atlassian.com/jiracore/createmeta-rest-endpoint-to-be-
        removed-975040986.html)."""
        _, type_id = self._ids()
        items: list[dict[str, Any]] = []
        path = f"issue/createmeta/{self.project}/issuetypes/{type_id}"
        start = 0
        while True:
            try:
                page = self._call("create metadata", lambda s=start: self._api(
                    "GET", path, params={"startAt": s, "maxResults": 50}), idempotent=True)
            except NotFound:
                return None
            found = create_items(page)
            items.extend(found)
            start += len(found)
            total = page.get("total")
            if (not found or page.get("isLast") is True
                    or (isinstance(total, int) and start >= total)):
                return items

    def _edit_meta(self) -> dict[str, dict[str, Any]] | None:
        """The edit screen of the newest open issue in scope; None when there is none.

        Jira has edit metadata per issue only ("Get edit issue metadata",
        GET /rest/api/3/issue/{issueIdOrKey}/editmeta), and answers ``{"fields": {}}``
        for an issue whose status is not editable (jira.issue.editable = false, common
        on Closed; Atlassian JRASERVER-63664): so a done issue is not asked, and an
        empty answer means "cannot tell", not "nothing is editable"."""
        jira = self._require()
        jql = f"{scope_jql(self.project, self.jql)} AND statusCategory != Done " \
              "ORDER BY updated DESC"
        first = next(iter(self._search_pages(jql, ["updated"])), [])
        if not first:
            return None
        key = str(first[0].get("key") or first[0].get("id"))
        meta = self._call(f"edit metadata of {key}", lambda: jira.editmeta(key),
                          idempotent=True)
        fields = meta.get("fields") if isinstance(meta, dict) else None
        found = {str(k): v for k, v in (fields or {}).items() if isinstance(v, dict)}
        return found or None

    # ------------------------------------------------------------ check

    def write_many(self, writes: Sequence[RecordWrite]) -> list[WriteResult]:
        """Jira has no batch edit: each write is one edit (its fields and its mark
        together), up to ``concurrency`` issues at a time, one issue's writes in order on
        one worker. Batch by batch (50 issues on Cloud, 100 on Data Center), the issues
        the writes check are read in one search just before the batch's edits
        (:meth:`_pre_read`); a version that moved refuses that write only. The new
        versions are then read in one search per 50 issues (reconciled by id on Cloud,
        whose search is eventually consistent), and the stale entity properties the
        marks found set in one go."""
        sink: list[tuple[str, str, dict[str, str]]] = []
        step = PRE_READ_CLOUD if self.cloud else PRE_READ_DC
        outcomes: list[tuple[WriteResult, str]] = []

        def batch(chunk: Sequence[RecordWrite]) -> list[tuple[WriteResult, str]]:
            found, failed = self._pre_read(chunk)

            def one(index: int) -> tuple[WriteResult, str]:
                write = chunk[index]
                if index in failed:
                    return WriteResult(id=write.record_id, error=failed[index]), ""
                try:
                    return self._write(write.record_id, write.fields, write.expected_version,
                                       write.foreign_id, read=found.get(index))
                except FatalError:
                    raise
                except (ConnectorError, PreconditionFailed) as error:
                    return WriteResult(id=write.record_id, error=error), ""

            return run_per_key([w.record_id for w in chunk], one, self.concurrency,
                               pool=self._pool)

        with self._cache_lock:
            self._property_sink = sink
        try:
            for start in range(0, len(writes), step):
                outcomes.extend(batch(writes[start:start + step]))
        finally:
            with self._cache_lock:
                self._property_sink = None
        results = [result for result, _ in outcomes]
        # Only where the caller wants it: the engine's settle step reads the issues of
        # its first writes back anyway (the same search, reconciled), so asking here
        # too would be one more search per 50 issues and one more round trip.
        self._read_versions([outcome for outcome, write in zip(outcomes, writes, strict=True)
                             if write.version_wanted])
        if sink:
            try:
                self._put_properties(sink)
            except ConnectorError as exc:
                if isinstance(exc, FatalError):
                    raise
                for result in results:
                    if result.ok and any(result.id == key for key, _, _ in sink):
                        result.warnings.append(f"entity property not updated: {exc}")
        return results

    def _read_versions(self, outcomes: Sequence[tuple[WriteResult, str]]) -> None:
        """Fill in the versions writes left: one ``key in (...)`` search per 50 issues
        whose id is known (read first, or seen earlier in the run; Cloud reconciles them:
        read-after-write), one read each (on the workers) for the others on Cloud. A
        version that cannot be read is a warning, not an error: the write happened."""
        with self._cache_lock:  # an issue written unread may still be known by its id
            pending = [(r, i or self._issue_ids.get(str(r.id), "")) for r, i in outcomes
                       if r.ok and r.version is None and r.id]
        batchable = [(r, i) for r, i in pending if i.isdigit() or not self.cloud]
        single = [r for r, i in pending if not (i.isdigit() or not self.cloud)]
        chunks = [batchable[start:start + 50] for start in range(0, len(batchable), 50)]

        def search(number: int) -> dict[str, RemoteRecord]:
            chunk = chunks[number]
            keys = list(dict.fromkeys(str(r.id) for r, _ in chunk))
            try:
                return self._by_keys(keys, ["updated"],
                                     reconcile=[int(i) for _, i in chunk if i.isdigit()])
            except ConnectorError as exc:
                if isinstance(exc, FatalError):
                    raise
                return {}

        # The writes are done: the searches are independent reads, sent together.
        for chunk, found in zip(chunks, run_chunks(len(chunks), search, self.concurrency,
                                                   pool=self._pool),
                                strict=True):
            for result, _ in chunk:
                record = found.get(str(result.id))
                if record is not None:
                    result.version = record.version
                else:
                    single.append(result)
        def read_one(index: int) -> None:
            result = single[index]
            try:
                self._with_version(str(result.id), result)
            except ConnectorError as exc:
                if isinstance(exc, FatalError):
                    raise
                result.warnings.append(f"version not read after the write: {exc}")

        run_per_key([str(r.id) for r in single], read_one, self.concurrency, pool=self._pool)

    def add_comments(self, comments: Sequence[NewComment]) -> list[CommentResult]:
        """One POST per comment (Jira has no bulk comment call), up to ``concurrency``
        issues at a time, one issue's comments in order on one worker."""
        results = run_per_key([c.record_id for c in comments],
                              lambda i: comment_each(self, [comments[i]])[0], self.concurrency,
                              pool=self._pool)
        # A comment moves its issue too: a later read of it must be reconciled (Cloud).
        self._remember_fresh([c.record_id for c, r in zip(comments, results, strict=True)
                              if r.ok])
        return results

    def check(self, fields: Sequence[str], statuses: Sequence[str]) -> list[CheckResult]:
        rows: list[CheckResult] = []

        def row(what: str, ok: bool, detail: str = "") -> None:
            rows.append(CheckResult(Side.JIRA, what, ok, detail))

        try:
            info = self._info or self.open()
        except ConnectorError as exc:
            row("connect and authenticate", False, str(exc))
            return rows
        jira = self._require()
        row("connect and authenticate", True,
            f"{info.flavor} {info.version} as {info.user or self._who()}, text {info.text_format}")
        checks: list[tuple[str, Callable[[], str]]] = [
            ("permissions", lambda: self._check_permissions(jira)),
            (f"project {self.project} / issue type {self.issue_type}",
             lambda: "ids {} / {}".format(*self._ids())),
            ("scope query", lambda: self._check_scope()),
            ("mapped fields", lambda: self._check_fields(fields)),
            ("statuses", lambda: self._check_statuses(statuses)),
            ("service desk (internal comments)", lambda: self._check_service_desk(jira)),
        ]
        for what, probe in checks:
            try:
                row(what, True, probe())
            except ConnectorError as exc:
                row(what, False, str(exc))
        return rows

    def _check_permissions(self, jira: JIRA) -> str:
        try:
            answer = self._call("my permissions", lambda: jira.my_permissions(
                projectKey=self.project, permissions=",".join(REQUIRED_PERMISSIONS)),
                idempotent=True)
        except NotFound:
            # Sites without /mypermissions: the create metadata lists issue types
            # only to users who may create issues in the project.
            meta = self._call("create metadata", lambda: self._api(
                "GET", f"issue/createmeta/{self.project}/issuetypes"), idempotent=True)
            types = meta.get("issueTypes") or meta.get("values") or []
            if not any(str(t.get("name", "")).casefold() == self.issue_type.casefold()
                       for t in types):
                raise AuthError(
                    f"{self._who()} may not create {self.issue_type} issues in {self.project}",
                    advice="grant Create issues in the project", side="jira") from None
            return "create (from create metadata; edit/transition not verifiable read-only)"
        granted = answer.get("permissions") or {}
        missing = [p for p in REQUIRED_PERMISSIONS
                   if not (granted.get(p) or {}).get("havePermission")]
        if missing:
            raise AuthError(f"{self._who()} lacks {', '.join(missing)} in {self.project}",
                            advice="ask a Jira admin to grant them", side="jira")
        return "browse, create, edit, transition, comment"

    def _check_scope(self) -> str:
        jql = scope_jql(self.project, self.jql)
        next(iter(self._search_pages(jql, ["updated"])))
        return jql

    def _check_fields(self, fields: Sequence[str]) -> str:
        known = set(self.field_ids.values()) | set(self.field_ids)
        wanted = [f for f in dict.fromkeys(fields) if f]
        missing = [f for f in wanted if f not in known]
        if missing:
            raise ValidationFailed(f"unknown Jira fields: {', '.join(missing)}", side="jira")
        return f"{len(wanted)} fields exist"

    def _check_service_desk(self, jira: JIRA) -> str:
        desks = self._call("service desks", lambda: [d.raw for d in jira.service_desks()],
                           idempotent=True)
        mine = [d for d in desks if str(d.get("projectKey")) == self.project]
        if self.service_desk_id is not None:
            mine = [d for d in mine if str(d.get("id")) == self.service_desk_id]
        if not mine:
            wanted = f" with id {self.service_desk_id}" if self.service_desk_id else ""
            raise ValidationFailed(
                f"no JSM service desk{wanted} for project {self.project}: internal comments "
                "need Jira Service Management", side="jira")
        return f"service desk {mine[0].get('id')}"

    def _check_statuses(self, statuses: Sequence[str]) -> str:
        wanted = [str(s) for s in dict.fromkeys(statuses) if s]
        if not wanted:
            return "no statuses mapped"
        # JQL refuses a status value that does not exist and names it: one
        # request checks them all, on every flavor.
        jql = f"{scope_jql(self.project)} AND status in ({', '.join(quote(s) for s in wanted)})"
        try:
            next(iter(self._search_pages(jql, ["status"])))
        except ValidationFailed as exc:
            missing = [s for s in wanted if f"'{s}'".casefold() in str(exc).casefold()]
            raise ValidationFailed(
                f"unknown Jira statuses: {', '.join(missing) or str(exc)}", side="jira"
            ) from None
        return f"{len(wanted)} statuses exist"


__all__ = ["JiraConnector"]
