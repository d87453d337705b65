"""The fixed configuration of the Jira sandbox site: project, workflow, fields, users.

Contract:
- Everything here is fixed data: project OPS (id "10000"), issue types Incident
  ("10001") and Task, the JSM incident workflow with string transition ids,
  priorities Highest..Lowest ("1".."5"), resolutions, the Jira system fields.
- The custom fields and components are per site (:func:`site_fields`): a
  "stock" site has exactly what a JSM project made from the IT service
  management template has (JSM's own fields, Impact customfield_10004 and
  Urgency customfield_10005 among them, and no components); an "extended"
  site adds what an admin creates for the ``jsm-extended`` profile (Assignment
  group, Subcategory, Resolution notes, Escalation: customfield_10006..10009,
  a "ServiceNow ID" marker field customfield_10100, and five components).
- Users are the shared seed people; Cloud identifies them by a deterministic
  24-hex accountId derived from the email, Data Center by name and a
  ``JIRAUSER1xxxx`` key.
- :func:`workflow_path` finds the shortest chain of transitions between two
  statuses; :func:`jira_time` formats timestamps the way Jira does
  (``2024-01-01T12:00:00.000+0000``, no colon in the offset).
- No I/O and no state: the sandbox keeps its state elsewhere.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from connectors.sandbox.seed import USERS, SeedUser

PROJECT_ID = "10000"
PROJECT_NAME = "Operations"
SERVICE_DESK_ID = "1"


@dataclass(frozen=True)
class IssueType:
    id: str
    name: str
    description: str


ISSUE_TYPES: list[IssueType] = [
    IssueType("10001", "Incident", "For system outages or incidents."),
    IssueType("10002", "Task", "A small piece of work."),
]


@dataclass(frozen=True)
class StatusCategory:
    id: int
    key: str
    name: str
    color: str


CATEGORIES: dict[str, StatusCategory] = {
    "new": StatusCategory(2, "new", "To Do", "blue-gray"),
    "indeterminate": StatusCategory(4, "indeterminate", "In Progress", "yellow"),
    "done": StatusCategory(3, "done", "Done", "green"),
}


@dataclass(frozen=True)
class Status:
    id: str
    name: str
    category: str  # key into CATEGORIES

    @property
    def is_done(self) -> bool:
        return self.category == "done"


STATUSES: list[Status] = [
    Status("1", "Open", "new"),
    Status("3", "Work in progress", "indeterminate"),
    Status("10002", "Pending", "indeterminate"),
    Status("5", "Resolved", "done"),
    Status("6", "Closed", "done"),
    Status("10003", "Canceled", "done"),
]
INITIAL_STATUS = "1"


@dataclass(frozen=True)
class Transition:
    id: str
    name: str
    source: str  # status id
    target: str  # status id


def _status_id(name: str) -> str:
    return next(s.id for s in STATUSES if s.name == name)


TRANSITIONS: list[Transition] = [
    Transition(tid, name, _status_id(source), _status_id(target))
    for tid, name, source, target in [
        ("11", "Start work", "Open", "Work in progress"),
        ("21", "To Pending", "Open", "Pending"),
        ("31", "To Canceled", "Open", "Canceled"),
        ("41", "Pause", "Work in progress", "Pending"),
        ("51", "Resolve", "Work in progress", "Resolved"),
        ("61", "Resume", "Pending", "Work in progress"),
        ("71", "To Resolved", "Pending", "Resolved"),
        ("81", "Close", "Resolved", "Closed"),
        ("91", "Reopen", "Resolved", "Work in progress"),
        ("32", "To Canceled", "Work in progress", "Canceled"),
    ]
]


@dataclass(frozen=True)
class Named:
    """A simple named value with a string id (priority, resolution, component, option)."""

    id: str
    name: str
    description: str = ""


PRIORITIES: list[Named] = [
    Named("1", "Highest", "This problem will block progress."),
    Named("2", "High", "Serious problem that could block progress."),
    Named("3", "Medium", "Has the potential to affect progress."),
    Named("4", "Low", "Minor problem or easily worked around."),
    Named("5", "Lowest", "Trivial problem with little or no impact on progress."),
]
DEFAULT_PRIORITY = "3"

RESOLUTIONS: list[Named] = [
    Named("10000", "Done", "Work has been completed on this issue."),
    Named("10001", "Fixed", "A fix for this issue is checked in and tested."),
    Named("10002", "Won't Do", "This issue won't be actioned."),
    Named("10003", "Duplicate", "The problem is a duplicate of an existing issue."),
    Named("10004", "Cannot Reproduce", "All attempts at reproducing this issue failed."),
    Named("10005", "Known Error", "A known error with a documented workaround."),
]
DEFAULT_RESOLUTION = "10000"

# The components an admin adds on the extended site (a stock project has none).
EXTENDED_COMPONENTS: tuple[Named, ...] = (
    Named("10100", "Inquiry"),
    Named("10101", "Software"),
    Named("10102", "Hardware"),
    Named("10103", "Network"),
    Named("10104", "Database"),
)

_TYPES = "com.atlassian.jira.plugin.system.customfieldtypes:"
_SD = "com.atlassian.servicedesk:"


@dataclass(frozen=True)
class CustomField:
    """A custom field as ``GET /field`` shows it, and how the sandbox stores it.

    ``kind`` is "select", "text" (single line) or "textarea" for fields the
    sandbox stores and validates; "service" for JSM-managed fields (request
    type, participants, organizations, satisfaction, SLAs, affected services)
    that the sandbox lists, shows empty and refuses to write: no profile writes
    them, and their write formats are JSM's own.
    """

    id: str            # customfield_NNNNN
    name: str
    kind: str          # "select" | "text" | "textarea" | "service"
    options: tuple[Named, ...] = ()
    custom_type: str = ""               # the custom type key
    schema: tuple[tuple[str, str], ...] = ()   # extra schema keys (type, items)

    @property
    def number(self) -> int:
        return int(self.id.removeprefix("customfield_"))

    @property
    def writable(self) -> bool:
        return self.kind != "service"

    def schema_json(self) -> dict[str, object]:
        schema: dict[str, object] = dict(self.schema)
        schema.setdefault("type", "option" if self.kind == "select" else "string")
        schema["custom"] = self.custom_type
        schema["customId"] = self.number
        return schema


def _select(fid: str, name: str, first_option: int, values: list[str]) -> CustomField:
    options = tuple(Named(str(first_option + i), value) for i, value in enumerate(values))
    return CustomField(fid, name, "select", options, _TYPES + "select")


def _service(fid: str, name: str, custom_type: str, kind: str,
             items: str | None = None) -> CustomField:
    schema = (("type", kind),) + ((("items", items),) if items else ())
    return CustomField(fid, name, "service", (), custom_type, schema)


def stock_custom_fields(mode: str) -> tuple[CustomField, ...]:
    """The custom fields a JSM project made from the IT service management template has.

    Atlassian, "Default configurations for Jira Service Management"
    (https://support.atlassian.com/jira-cloud-administration/docs/default-configurations-for-jira-service-management/):
    a service project brings only JSM's own fields (request type, SLA fields,
    request participants, organizations, satisfaction; ITSM templates add
    Impact, Urgency, Pending reason and Affected services) and no components.
    Impact and Urgency values are the ones Atlassian documents for its
    impact x urgency matrix ("How do I create a matrix using impact and urgency
    values?", https://support.atlassian.com/jira-service-management-cloud/docs/how-do-i-create-a-matrix-using-impact-and-urgency-values/).
    Pending reason's options could not be checked against an Atlassian page
    here: the three below are the commonly seen ones; no shipped profile maps
    the field, so nothing depends on the exact list.
    Field ids are per site on real Jira; here they are fixed so tests can name
    them. Data Center calls the request type field "Customer Request Type".
    """
    request_type = "Request Type" if mode == "cloud" else "Customer Request Type"
    return (
        _select("customfield_10004", "Impact", 10200, [
            "Extensive / Widespread", "Significant / Large", "Moderate / Limited",
            "Minor / Localized"]),
        _select("customfield_10005", "Urgency", 10210, ["Critical", "High", "Medium", "Low"]),
        _service("customfield_10010", request_type, _SD + "vp-origin",
                 "sd-customerrequesttype"),
        _service("customfield_10011", "Request participants",
                 _SD + "sd-request-participants", "array", "user"),
        _service("customfield_10012", "Organizations", _SD + "sd-customer-organizations",
                 "array", "sd-customerorganization"),
        _service("customfield_10013", "Satisfaction", _SD + "sd-request-feedback",
                 "sd-feedback"),
        _service("customfield_10014", "Time to resolution", _SD + "sd-sla-field",
                 "sd-servicelevelagreement"),
        _service("customfield_10015", "Time to first response", _SD + "sd-sla-field",
                 "sd-servicelevelagreement"),
        _select("customfield_10016", "Pending reason", 10230, [
            "More info required", "Awaiting approval", "Waiting on vendor"]),
        _service("customfield_10017", "Affected services",
                 "com.atlassian.jira.plugins.service-entity:service-entity-field-cftype",
                 "array", "service-entity-field"),
    )


# What an admin adds for the ``jsm-extended`` mapping profile (its header says how).
EXTENDED_CUSTOM_FIELDS: tuple[CustomField, ...] = (
    CustomField("customfield_10006", "Assignment group", "text", (), _TYPES + "textfield"),
    CustomField("customfield_10007", "Subcategory", "text", (), _TYPES + "textfield"),
    CustomField("customfield_10008", "Resolution notes", "textarea", (), _TYPES + "textarea"),
    _select("customfield_10009", "Escalation", 10220, ["Normal", "Moderate", "High", "Overdue"]),
    CustomField("customfield_10100", "ServiceNow ID", "text", (), _TYPES + "textfield"),
)

# Single-line text fields (summary, text custom fields) hold at most this many
# characters; multi-line ones (description, textareas) at most TEXTAREA_LIMIT.
TEXTFIELD_LIMIT = 255
TEXTAREA_LIMIT = 32767


@dataclass(frozen=True)
class SystemField:
    id: str
    name: str
    schema: dict[str, str]
    clause_names: tuple[str, ...]
    navigable: bool = True
    settable: bool = False   # through create/edit "fields"


SYSTEM_FIELDS: list[SystemField] = [
    SystemField("summary", "Summary", {"type": "string", "system": "summary"},
                ("summary",), settable=True),
    SystemField("description", "Description", {"type": "string", "system": "description"},
                ("description",), settable=True),
    SystemField("environment", "Environment", {"type": "string", "system": "environment"},
                ("environment",), settable=True),
    SystemField("issuetype", "Issue Type", {"type": "issuetype", "system": "issuetype"},
                ("issuetype", "type"), settable=True),
    SystemField("project", "Project", {"type": "project", "system": "project"},
                ("project",), settable=True),
    SystemField("status", "Status", {"type": "status", "system": "status"}, ("status",)),
    SystemField("priority", "Priority", {"type": "priority", "system": "priority"},
                ("priority",), settable=True),
    SystemField("resolution", "Resolution", {"type": "resolution", "system": "resolution"},
                ("resolution",)),
    SystemField("resolutiondate", "Resolved",
                {"type": "datetime", "system": "resolutiondate"},
                ("resolutiondate", "resolved")),
    SystemField("duedate", "Due date", {"type": "date", "system": "duedate"},
                ("due", "duedate"), settable=True),
    SystemField("labels", "Labels", {"type": "array", "items": "string", "system": "labels"},
                ("labels",), settable=True),
    SystemField("components", "Components",
                {"type": "array", "items": "component", "system": "components"},
                ("component",), settable=True),
    SystemField("assignee", "Assignee", {"type": "user", "system": "assignee"},
                ("assignee",), settable=True),
    SystemField("reporter", "Reporter", {"type": "user", "system": "reporter"},
                ("reporter",), settable=True),
    SystemField("creator", "Creator", {"type": "user", "system": "creator"}, ("creator",)),
    SystemField("created", "Created", {"type": "datetime", "system": "created"},
                ("created", "createdDate")),
    SystemField("updated", "Updated", {"type": "datetime", "system": "updated"},
                ("updated", "updatedDate")),
    SystemField("comment", "Comment",
                {"type": "comments-page", "system": "comment"}, ("comment",),
                navigable=False),
    SystemField("issuekey", "Key", {"type": "string", "system": "issuekey"},
                ("id", "issue", "issuekey", "key")),
]
SYSTEM_BY_ID: dict[str, SystemField] = {f.id: f for f in SYSTEM_FIELDS}

FIELD_SETS = ("stock", "extended")


class SiteFields:
    """One sandbox site's fields and components: stock JSM, or stock plus admin-made ones.

    Every part of the sandbox that knows fields (store, renderer, JQL catalog,
    createmeta, seed) asks the site's instance, so two sandboxes in one process
    can differ.
    """

    def __init__(self, kind: str, custom_fields: tuple[CustomField, ...],
                 components: tuple[Named, ...]) -> None:
        self.kind = kind
        self.custom_fields = custom_fields
        self.components = list(components)
        self._custom_by_id = {f.id: f for f in custom_fields}
        self._custom_by_name = {f.name.casefold(): f for f in custom_fields}
        self.all_field_ids: list[str] = [
            f.id for f in SYSTEM_FIELDS if f.id != "issuekey"] + [f.id for f in custom_fields]
        self.navigable_field_ids: list[str] = [
            f.id for f in SYSTEM_FIELDS if f.navigable and f.id != "issuekey"
        ] + [f.id for f in custom_fields]

    @property
    def extended(self) -> bool:
        return self.kind == "extended"

    def custom(self, field_id: str) -> CustomField | None:
        return self._custom_by_id.get(field_id)

    def custom_named(self, name: str) -> CustomField | None:
        return self._custom_by_name.get(name.casefold())

    def field_name(self, field_id: str) -> str:
        if field_id in SYSTEM_BY_ID:
            return SYSTEM_BY_ID[field_id].name
        return self._custom_by_id[field_id].name

    def field_list(self) -> list[dict[str, object]]:
        """What ``GET /rest/api/N/field`` returns (the jira library needs clauseNames)."""
        result: list[dict[str, object]] = []
        for system in SYSTEM_FIELDS:
            result.append({
                "id": system.id, "key": system.id, "name": system.name, "custom": False,
                "orderable": system.settable, "navigable": system.navigable,
                "searchable": True, "clauseNames": list(system.clause_names),
                "schema": system.schema,
            })
        for custom in self.custom_fields:
            result.append({
                "id": custom.id, "key": custom.id, "name": custom.name, "custom": True,
                "orderable": True, "navigable": True, "searchable": True,
                "clauseNames": [f"cf[{custom.number}]", custom.name],
                "schema": custom.schema_json(),
            })
        return result


def site_fields(kind: str = "stock", mode: str = "cloud") -> SiteFields:
    """The field set of a sandbox site: "stock" (what a new ITSM project has) or
    "extended" (plus the fields and components the ``jsm-extended`` profile needs)."""
    if kind not in FIELD_SETS:
        raise ValueError(f"fields must be 'stock' or 'extended', got {kind!r}")
    custom = stock_custom_fields(mode)
    if kind == "stock":
        return SiteFields(kind, custom, ())
    return SiteFields(kind, custom + EXTENDED_CUSTOM_FIELDS, EXTENDED_COMPONENTS)


# ------------------------------------------------------------------ lookups


def status_by_id(status_id: str) -> Status:
    return next(s for s in STATUSES if s.id == status_id)


def find_status(name_or_id: str) -> Status | None:
    wanted = name_or_id.casefold()
    return next((s for s in STATUSES if s.id == name_or_id or s.name.casefold() == wanted),
                None)


def find_named(items: list[Named], ref: object) -> Named | None:
    """An item by ``{"id": ...}`` / ``{"name": ...}`` reference, or by plain id/name."""
    if isinstance(ref, dict):
        if "id" in ref:
            return next((i for i in items if i.id == str(ref["id"])), None)
        if "name" in ref:
            return next((i for i in items if i.name == ref["name"]), None)
        return None
    if isinstance(ref, str):
        wanted = ref.casefold()
        return next((i for i in items if i.id == ref or i.name.casefold() == wanted), None)
    return None


def transitions_from(status_id: str) -> list[Transition]:
    return [t for t in TRANSITIONS if t.source == status_id]


def workflow_path(source: str, target: str) -> list[Transition] | None:
    """The shortest chain of transitions from status id ``source`` to ``target``."""
    if source == target:
        return []
    queue: deque[tuple[str, list[Transition]]] = deque([(source, [])])
    seen = {source}
    while queue:
        status, path = queue.popleft()
        for transition in transitions_from(status):
            if transition.target in seen:
                continue
            if transition.target == target:
                return [*path, transition]
            seen.add(transition.target)
            queue.append((transition.target, [*path, transition]))
    return None


# ------------------------------------------------------------------ users


@dataclass(frozen=True)
class SiteUser:
    seed: SeedUser
    account_id: str    # Cloud
    key: str           # Data Center

    @property
    def name(self) -> str:
        return self.seed.user_name

    @property
    def email(self) -> str:
        return self.seed.email

    @property
    def display_name(self) -> str:
        return self.seed.name


def account_id_for(email: str) -> str:
    """Deterministic 24-hex Cloud accountId, so tests can predict it."""
    return hashlib.sha256(email.casefold().encode("utf-8")).hexdigest()[:24]


SITE_USERS: list[SiteUser] = [
    SiteUser(user, account_id_for(user.email), f"JIRAUSER1{index:04d}")
    for index, user in enumerate(USERS)
]


def user_by_email(email: str) -> SiteUser | None:
    wanted = email.casefold()
    return next((u for u in SITE_USERS if u.email.casefold() == wanted), None)


# ------------------------------------------------------------------ time


def jira_time(moment: datetime) -> str:
    """``2024-01-01T12:00:00.000+0000``: milliseconds, offset without a colon."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def truncate_ms(moment: datetime) -> datetime:
    """Jira keeps millisecond precision; so does the sandbox, so comparisons agree."""
    return moment.astimezone(UTC).replace(microsecond=(moment.microsecond // 1000) * 1000)
