"""The ServiceNow sandbox's tables: column schemas, choice lists and how rows render.

Contract:
- :data:`TABLES` describes the tables the sandbox serves (``incident``,
  ``sys_user``, ``sys_user_group``, ``sys_journal_field``, ``sys_audit``, ``sys_choice``,
  ``sys_dictionary``, ``sys_db_object``): each column's kind (string, integer,
  boolean, datetime, choice, reference, journal), its referenced table, its
  choice labels and whether clients may write it.
- :func:`dictionary_rows` / :func:`db_object_rows` describe the incident table
  the way a stock instance's ``sys_dictionary`` and ``sys_db_object`` do: the
  incident table extends ``task``, so the columns it inherits (``short_description``,
  ``state``, ``assigned_to``...) have their dictionary entry under ``name=task``
  and only incident's own (``caller_id``, ``category``, ``close_code``...) under
  ``name=incident``.
- Rows are stored as ``dict[str, str]`` of raw values: every value a string, ``""``
  when empty, references as bare sys_ids, datetimes UTC ``YYYY-MM-DD HH:MM:SS``.
- :class:`Renderer` turns a stored row into what the Table API returns for a
  given ``sysparm_fields`` / ``sysparm_display_value`` /
  ``sysparm_exclude_reference_link``, shapes as in docs/vendor-notes.md (query parameters),
  including one-level dot-walks (``caller_id.email``) returned as flat keys and
  journal fields rendered from ``sys_journal_field`` under display values.
- The module holds no state of its own; the sandbox passes its store in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Value -> label lists of the base system (docs/vendor-notes.md, "Incident fields").
STATE_LABELS = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved",
                "7": "Closed", "8": "Canceled"}
HOLD_REASON_LABELS = {"1": "Awaiting Caller", "3": "Awaiting Problem", "4": "Awaiting Vendor",
                      "5": "Awaiting Change"}
IMPACT_LABELS = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
PRIORITY_LABELS = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low",
                   "5": "5 - Planning"}
CATEGORY_LABELS = {"inquiry": "Inquiry / Help", "software": "Software",
                   "hardware": "Hardware", "network": "Network", "database": "Database"}
ESCALATION_LABELS = {"0": "Normal", "1": "Moderate", "2": "High", "3": "Overdue"}
CONTACT_TYPE_LABELS = {"phone": "Phone", "email": "Email", "self-service": "Self-service",
                       "walk-in": "Walk-in", "chat": "Chat", "virtual_agent": "Virtual Agent"}
NOTIFY_LABELS = {"1": "Do Not Notify", "2": "Send Email"}
APPROVAL_LABELS = {"not requested": "Not Yet Requested", "requested": "Requested",
                   "approved": "Approved", "rejected": "Rejected"}
CLOSE_CODES = [
    "Duplicate", "Known error", "No resolution provided", "Resolved by caller",
    "Resolved by change", "Resolved by problem", "Resolved by request", "Solution provided",
    "Workaround provided", "User error",
]
CLOSE_CODE_LABELS = {code: code for code in CLOSE_CODES}

# ITIL default impact x urgency -> priority (the calculatePriority data lookup).
PRIORITY_MATRIX = {
    ("1", "1"): "1", ("1", "2"): "2", ("1", "3"): "3",
    ("2", "1"): "2", ("2", "2"): "3", ("2", "3"): "4",
    ("3", "1"): "3", ("3", "2"): "4", ("3", "3"): "5",
}

JOURNAL_LABELS = {"comments": "Additional comments", "work_notes": "Work notes"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str = "string"  # string|integer|boolean|datetime|choice|reference|journal
    reference: str | None = None
    choices: Mapping[str, str] | None = None
    writable: bool = True
    max_length: int | None = None
    numeric_choice: bool = False  # choice values compare as integers (state, priority...)

    @property
    def query_kind(self) -> str:
        """How the query engine compares this column's values."""
        if self.kind == "choice":
            return "integer" if self.numeric_choice else "string"
        if self.kind in ("reference", "journal"):
            return "string"
        return self.kind


@dataclass(frozen=True)
class Table:
    name: str
    columns: Mapping[str, Column]
    display_column: str
    # Writable over HTTP? sys_journal_field and sys_choice are read-only there.
    http_writable: bool = True
    defaults: Mapping[str, str] = field(default_factory=dict)


def _columns(*columns: Column) -> dict[str, Column]:
    return {c.name: c for c in columns}


def _system_columns() -> list[Column]:
    return [
        Column("sys_id", writable=False),
        Column("sys_created_on", "datetime", writable=False),
        Column("sys_created_by", writable=False),
        Column("sys_updated_on", "datetime", writable=False),
        Column("sys_updated_by", writable=False),
        Column("sys_mod_count", "integer", writable=False),
    ]


def _choice(name: str, labels: Mapping[str, str], numeric: bool = True) -> Column:
    return Column(name, "choice", choices=labels, numeric_choice=numeric)


_USER = "sys_user"
_GROUP = "sys_user_group"

_INCIDENT_COLUMNS = _columns(
    *_system_columns(),
    Column("number", writable=False),
    Column("short_description", max_length=160),
    Column("description"),
    _choice("state", STATE_LABELS),
    Column("incident_state", "choice", choices=STATE_LABELS, numeric_choice=True,
           writable=False),
    _choice("hold_reason", HOLD_REASON_LABELS),
    _choice("impact", IMPACT_LABELS),
    _choice("urgency", IMPACT_LABELS),
    Column("priority", "choice", choices=PRIORITY_LABELS, numeric_choice=True, writable=False),
    _choice("severity", IMPACT_LABELS),
    _choice("category", CATEGORY_LABELS, numeric=False),
    Column("subcategory"),
    _choice("escalation", ESCALATION_LABELS),
    _choice("contact_type", CONTACT_TYPE_LABELS, numeric=False),
    _choice("notify", NOTIFY_LABELS),
    _choice("approval", APPROVAL_LABELS, numeric=False),
    _choice("close_code", CLOSE_CODE_LABELS, numeric=False),
    Column("close_notes"),
    Column("active", "boolean", writable=False),
    Column("caller_id", "reference", reference=_USER),
    Column("assigned_to", "reference", reference=_USER),
    Column("assignment_group", "reference", reference=_GROUP),
    Column("opened_by", "reference", reference=_USER),
    Column("resolved_by", "reference", reference=_USER),
    Column("closed_by", "reference", reference=_USER),
    Column("reopened_by", "reference", reference=_USER),
    Column("sys_domain", "reference", reference=_GROUP, writable=False),
    Column("location", "reference", reference="cmn_location"),
    Column("cmdb_ci", "reference", reference="cmdb_ci"),
    Column("business_service", "reference", reference="cmdb_ci_service"),
    Column("problem_id", "reference", reference="problem"),
    Column("rfc", "reference", reference="change_request"),
    Column("caused_by", "reference", reference="change_request"),
    Column("parent_incident", "reference", reference="incident"),
    Column("parent", "reference", reference="task"),
    Column("company", "reference", reference="core_company"),
    Column("opened_at", "datetime"),
    Column("resolved_at", "datetime"),
    Column("closed_at", "datetime"),
    Column("reopened_time", "datetime"),
    Column("sla_due", "datetime"),
    Column("due_date", "datetime"),
    Column("follow_up", "datetime"),
    Column("correlation_id", max_length=100),
    Column("correlation_display", max_length=100),
    Column("comments", "journal"),
    Column("work_notes", "journal"),
    Column("comments_and_work_notes", "journal", writable=False),
    Column("reassignment_count", "integer", writable=False),
    Column("reopen_count", "integer", writable=False),
    Column("child_incidents", "integer", writable=False),
    Column("knowledge", "boolean"),
    Column("made_sla", "boolean"),
    Column("upon_approval"),
    Column("upon_reject"),
    Column("watch_list"),
    Column("work_notes_list"),
    Column("additional_assignee_list"),
    Column("calendar_stc", "integer", writable=False),
    Column("business_stc", "integer", writable=False),
    Column("sys_class_name", writable=False),
    Column("sys_domain_path", writable=False),
    Column("order", "integer"),
    Column("user_input"),
)

# Insert defaults of the base incident table (docs/vendor-notes.md, "Incident fields").
INCIDENT_DEFAULTS = {
    "state": "1", "impact": "3", "urgency": "3", "severity": "3", "category": "inquiry",
    "escalation": "0", "contact_type": "phone", "notify": "1", "approval": "not requested",
    "sys_mod_count": "0", "reopen_count": "0", "reassignment_count": "0",
    "child_incidents": "0", "knowledge": "false", "made_sla": "true", "active": "true",
    "upon_approval": "proceed", "upon_reject": "cancel", "sys_class_name": "incident",
    "sys_domain": "global", "sys_domain_path": "/", "calendar_stc": "", "business_stc": "",
    "order": "",
}

TABLES: dict[str, Table] = {
    "incident": Table("incident", _INCIDENT_COLUMNS, "number", defaults=INCIDENT_DEFAULTS),
    _USER: Table(_USER, _columns(
        *_system_columns(),
        Column("user_name"), Column("name"), Column("first_name"), Column("last_name"),
        Column("email"), Column("title"), Column("time_zone"),
        Column("active", "boolean"),
    ), "name", defaults={"active": "true", "sys_mod_count": "0", "time_zone": "GMT"}),
    _GROUP: Table(_GROUP, _columns(
        *_system_columns(),
        Column("name"), Column("description"), Column("email"),
        Column("manager", "reference", reference=_USER), Column("active", "boolean"),
    ), "name", defaults={"active": "true", "sys_mod_count": "0"}),
    "sys_journal_field": Table("sys_journal_field", _columns(
        *_system_columns(),
        Column("element"), Column("element_id"), Column("name"), Column("value"),
    ), "value", http_writable=False, defaults={"sys_mod_count": "0"}),
    # Stock instances audit the incident table: one row per changed field per update,
    # "user" is the user_name (a string, not a reference). Inserts are not audited
    # (glide.sys.audit_inserts is off by default).
    "sys_audit": Table("sys_audit", _columns(
        *_system_columns(),
        Column("tablename"), Column("documentkey"), Column("fieldname"), Column("oldvalue"),
        Column("newvalue"), Column("user"), Column("reason"),
        Column("record_checkpoint", "integer"),
    ), "fieldname", http_writable=False, defaults={"sys_mod_count": "0", "reason": ""}),
    "sys_choice": Table("sys_choice", _columns(
        *_system_columns(),
        Column("name"), Column("element"), Column("value"), Column("label"),
        Column("sequence", "integer"), Column("inactive", "boolean"), Column("language"),
    ), "label", http_writable=False, defaults={"sys_mod_count": "0"}),
    "sys_dictionary": Table("sys_dictionary", _columns(
        *_system_columns(),
        Column("name"), Column("element"), Column("column_label"), Column("internal_type"),
        Column("choice", "integer"), Column("reference"), Column("max_length", "integer"),
        Column("read_only", "boolean"), Column("active", "boolean"),
    ), "column_label", http_writable=False, defaults={"sys_mod_count": "0"}),
    "sys_db_object": Table("sys_db_object", _columns(
        *_system_columns(),
        Column("name"), Column("label"),
        Column("super_class", "reference", reference="sys_db_object"),
    ), "label", http_writable=False, defaults={"sys_mod_count": "0"}),
}


# Columns the incident table inherits from task on a stock instance ("Task [task]" in the
# ServiceNow product documentation's table schema); the rest are incident's own.
_TASK_COLUMNS = frozenset({
    "sys_id", "sys_created_on", "sys_created_by", "sys_updated_on", "sys_updated_by",
    "sys_mod_count", "number", "short_description", "description", "state", "impact",
    "urgency", "priority", "escalation", "contact_type", "approval", "close_notes", "active",
    "assigned_to", "assignment_group", "opened_by", "closed_by", "sys_domain", "location",
    "cmdb_ci", "business_service", "parent", "company", "opened_at", "closed_at", "sla_due",
    "due_date", "follow_up", "correlation_id", "correlation_display", "comments",
    "work_notes", "comments_and_work_notes", "reassignment_count", "knowledge", "made_sla",
    "upon_approval", "upon_reject", "watch_list", "work_notes_list",
    "additional_assignee_list", "sys_class_name", "sys_domain_path", "order", "user_input",
})
# Labels that are not just the column name in sentence case.
_LABELS = {
    "sys_id": "Sys ID", "caller_id": "Caller", "assigned_to": "Assigned to",
    "cmdb_ci": "Configuration item", "close_code": "Resolution code",
    "close_notes": "Resolution notes", "short_description": "Short description",
    "sys_mod_count": "Updates", "sys_created_on": "Created", "sys_updated_on": "Updated",
    "sys_created_by": "Created by", "sys_updated_by": "Updated by", "rfc": "Change Request",
    "problem_id": "Problem", "business_service": "Service", "comments": "Additional comments",
    "hold_reason": "On hold reason", "incident_state": "Incident state",
}


def _internal_type(column: Column) -> str:
    if column.name == "sys_id":
        return "GUID"
    if column.kind == "choice":
        return "integer" if column.numeric_choice else "string"
    return {"datetime": "glide_date_time", "journal": "journal_input"}.get(
        column.kind, column.kind)


def dictionary_rows() -> list[dict[str, str]]:
    """sys_dictionary rows of incident and the columns it inherits from task."""
    rows = []
    for name, column in _INCIDENT_COLUMNS.items():
        rows.append({
            "name": "task" if name in _TASK_COLUMNS else "incident",
            "element": name,
            "column_label": _LABELS.get(name, name.replace("_", " ").capitalize()),
            "internal_type": _internal_type(column),
            # 3 = "Dropdown without -- None --" (numbered lists), 1 = "Dropdown with
            # -- None --", 0 = not a choice field.
            "choice": ("3" if column.numeric_choice else "1") if column.kind == "choice"
            else "0",
            "reference": column.reference or "",
            "max_length": str(column.max_length or (4000 if column.kind == "journal" else 40)),
            "read_only": "false" if column.writable else "true",
            "active": "true",
        })
    return rows


def db_object_rows() -> list[dict[str, str]]:
    """sys_db_object rows: task (a base table) and incident, which extends it."""
    return [
        {"name": "task", "label": "Task", "super_class": ""},
        {"name": "incident", "label": "Incident", "super_class": "task"},
    ]


def choice_rows() -> list[dict[str, str]]:
    """sys_choice rows for the incident choice lists the connectors may look up."""
    rows = []
    for element in ("state", "incident_state", "close_code", "hold_reason", "impact",
                    "urgency", "priority", "category", "escalation"):
        labels = _INCIDENT_COLUMNS[element].choices or {}
        for sequence, (value, label) in enumerate(labels.items()):
            rows.append({"name": "incident", "element": element, "value": value,
                         "label": label, "sequence": str(sequence), "inactive": "false",
                         "language": "en"})
    return rows


def column_of(table: str, path: str) -> Column | None:
    """The column a (possibly one-level dot-walked) name ends on; None if unknown."""
    schema = TABLES.get(table)
    if schema is None:
        return None
    head, _, rest = path.partition(".")
    column = schema.columns.get(head)
    if column is None or not rest:
        return column
    if column.kind != "reference" or column.reference not in TABLES or "." in rest:
        return None
    return TABLES[column.reference].columns.get(rest)


# --------------------------------------------------------------------------- rendering

Rows = Mapping[str, Mapping[str, Mapping[str, str]]]  # table -> sys_id -> row
JournalOf = Callable[[str, Sequence[str]], list[Mapping[str, str]]]  # newest first


@dataclass(frozen=True)
class View:
    """The response-shaping sysparms of one request."""

    fields: tuple[str, ...] = ()          # empty = every column
    display: str = "false"                # false | true | all
    exclude_link: bool = False


class Renderer:
    """Renders stored rows as the Table API returns them."""

    def __init__(self, rows: Rows, base_url: Callable[[], str], journal_of: JournalOf,
                 user_names: Callable[[str], str]) -> None:
        self._rows = rows
        self._base_url = base_url
        self._journal_of = journal_of
        self._user_names = user_names  # user_name -> display name, for journal headers

    def render(self, table: str, row: Mapping[str, str], view: View) -> dict[str, Any]:
        schema = TABLES[table]
        names = view.fields or tuple(schema.columns)
        out: dict[str, Any] = {}
        for name in names:
            column = column_of(table, name)
            if column is None:
                continue  # invalid fields are ignored, as on the instance
            if "." in name:
                head, _, rest = name.partition(".")
                target_table = schema.columns[head].reference or ""
                target = self.lookup(target_table, row.get(head, ""))
                value = target.get(rest, "") if target else ""
                out[name] = self._field(target_table, column, value, target or {}, view)
            else:
                out[name] = self._field(table, column, row.get(name, ""), row, view)
        return out

    def lookup(self, table: str, sys_id: str) -> Mapping[str, str] | None:
        return self._rows.get(table, {}).get(sys_id) if sys_id else None

    def display_of(self, table: str, sys_id: str) -> str:
        target = self.lookup(table, sys_id)
        if target is None:
            return ""
        return target.get(TABLES[table].display_column, "")

    def journal_text(self, row: Mapping[str, str], elements: Sequence[str]) -> str:
        """The journal as display values show it: newest first, §1.6 format."""
        entries = self._journal_of(row.get("sys_id", ""), elements)
        return "".join(
            f"{e['sys_created_on']} - {self._user_names(e['sys_created_by'])} "
            f"({JOURNAL_LABELS.get(e['element'], e['element'])})\n{e['value']}\n\n"
            for e in entries
        )

    def _field(self, table: str, column: Column, value: str, row: Mapping[str, str],
               view: View) -> Any:
        if column.kind == "journal":
            elements = (["comments", "work_notes"] if column.name == "comments_and_work_notes"
                        else [column.name])
            if view.display == "false":
                return ""  # journal_input fields read back empty (§1.6)
            text = self.journal_text(row, elements) if table == "incident" else ""
            return text if view.display == "true" else {"display_value": text, "value": ""}
        if column.kind == "reference":
            return self._reference(column, value, view)
        display = value
        if column.kind == "choice" and column.choices:
            display = column.choices.get(value, value)
        if view.display == "false":
            return value
        if view.display == "true":
            return display
        return {"display_value": display, "value": value}

    def _reference(self, column: Column, value: str, view: View) -> Any:
        target = column.reference or ""
        link = f"{self._base_url()}/api/now/table/{target}/{value}"
        if view.display == "false":
            if value == "" or view.exclude_link:
                return value
            return {"link": link, "value": value}
        display = self.display_of(target, value) if target in TABLES else value
        if view.display == "true":
            if value == "" or view.exclude_link:
                return display
            return {"display_value": display, "link": link}
        if value == "" or view.exclude_link:
            return {"display_value": display, "value": value}
        return {"display_value": display, "link": link, "value": value}
