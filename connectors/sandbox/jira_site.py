"""The fixed configuration of the Jira sandbox site: project, workflow, fields, users.

Contract:
- Everything here is data fixed by the project's interfaces document (the default
  mapping profile relies on it): project OPS (id "10000"), issue types Incident
  ("10001") and Task, the JSM incident workflow with string transition ids,
  priorities Highest..Lowest ("1".."5"), resolutions, components, and the
  custom fields customfield_10004..10009 and customfield_10100.
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
from dataclasses import dataclass, field
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

COMPONENTS: list[Named] = [
    Named("10100", "Inquiry"),
    Named("10101", "Software"),
    Named("10102", "Hardware"),
    Named("10103", "Network"),
    Named("10104", "Database"),
]


@dataclass(frozen=True)
class CustomField:
    id: str            # customfield_NNNNN
    name: str
    kind: str          # "select" | "text" (single line) | "textarea"
    options: list[Named] = field(default_factory=list)

    @property
    def number(self) -> int:
        return int(self.id.removeprefix("customfield_"))

    @property
    def custom_type(self) -> str:
        return "com.atlassian.jira.plugin.system.customfieldtypes:" + {
            "select": "select", "text": "textfield", "textarea": "textarea",
        }[self.kind]


def _options(first_id: int, values: list[str]) -> list[Named]:
    return [Named(str(first_id + i), value) for i, value in enumerate(values)]


CUSTOM_FIELDS: list[CustomField] = [
    CustomField("customfield_10004", "Impact", "select", _options(10200, [
        "Extensive / Widespread", "Significant / Large", "Moderate / Limited",
        "Minor / Localized",
    ])),
    CustomField("customfield_10005", "Urgency", "select",
                _options(10210, ["Critical", "High", "Medium", "Low"])),
    CustomField("customfield_10006", "Assignment group", "text"),
    CustomField("customfield_10007", "Subcategory", "text"),
    CustomField("customfield_10008", "Resolution notes", "textarea"),
    CustomField("customfield_10009", "Escalation", "select",
                _options(10220, ["Normal", "Moderate", "High", "Overdue"])),
    CustomField("customfield_10100", "ServiceNow ID", "text"),
]
CUSTOM_BY_ID: dict[str, CustomField] = {f.id: f for f in CUSTOM_FIELDS}

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

ALL_FIELD_IDS: list[str] = [f.id for f in SYSTEM_FIELDS if f.id != "issuekey"] + [
    f.id for f in CUSTOM_FIELDS
]
NAVIGABLE_FIELD_IDS: list[str] = [
    f.id for f in SYSTEM_FIELDS if f.navigable and f.id != "issuekey"
] + [f.id for f in CUSTOM_FIELDS]


def field_name(field_id: str) -> str:
    if field_id in SYSTEM_BY_ID:
        return SYSTEM_BY_ID[field_id].name
    return CUSTOM_BY_ID[field_id].name


def field_list() -> list[dict[str, object]]:
    """What ``GET /rest/api/N/field`` returns (the jira library needs clauseNames)."""
    result: list[dict[str, object]] = []
    for system in SYSTEM_FIELDS:
        result.append({
            "id": system.id, "key": system.id, "name": system.name, "custom": False,
            "orderable": system.settable, "navigable": system.navigable, "searchable": True,
            "clauseNames": list(system.clause_names), "schema": system.schema,
        })
    for custom in CUSTOM_FIELDS:
        schema: dict[str, object] = {
            "type": "option" if custom.kind == "select" else "string",
            "custom": custom.custom_type, "customId": custom.number,
        }
        result.append({
            "id": custom.id, "key": custom.id, "name": custom.name, "custom": True,
            "orderable": True, "navigable": True, "searchable": True,
            "clauseNames": [f"cf[{custom.number}]", custom.name], "schema": schema,
        })
    return result


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
