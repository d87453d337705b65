"""Writes to the ServiceNow sandbox: value coercion, references, choices, incident rules.

Contract:
- :func:`coerce` turns a write body into stored changes (strings) and journal
  entries, the way the Table API does: unknown and read-only fields are ignored;
  JSON numbers/booleans/null become text; ``correlation_id``-like fields are cut to
  their length; references must name an existing record (by sys_id, or by display
  value, or for users also by user_name/email under
  ``sysparm_input_display_value=true``); numeric choice fields (``state``,
  ``impact``, ``urgency``...) must hold one of their values (400); an unknown
  ``close_code`` is a 403. Dates must be ``YYYY-MM-DD HH:MM:SS`` (UTC).
- :func:`incident_rules` applies the base incident business rules and data
  policies to a row about to be saved: priority from impact x urgency,
  ``incident_state``/``active`` from ``state``, resolution/close/reopen stamps,
  ``hold_reason`` only in On Hold, and the 403 ``Data Policy Exception`` when a
  resolved/closed record lacks ``close_code``/``close_notes`` or an On Hold one its
  reason.
- Pure functions over the rows passed in; errors are :class:`ServiceNowApiError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors.sandbox.sn_query import DATETIME_FORMAT
from connectors.sandbox.sn_tables import CLOSE_CODES, PRIORITY_MATRIX, TABLES, Column, Rows

SYS_ID = re.compile(r"^[0-9a-f]{32}$")
RESOLVED_STATES = frozenset({"6", "7"})
# Leaving one of these counts as a reopen.
FINISHED_STATES = frozenset({"6", "7", "8"})
# The incident state's close states (Closed, Canceled): only these clear `active`.
# A Resolved incident stays active until it is closed (by hand or by the
# auto-close job), so an `active=true` scope still sees its resolution.
INACTIVE_STATES = frozenset({"7", "8"})


class ServiceNowApiError(Exception):
    """What the Table API answers with an error: HTTP status, message and detail."""

    def __init__(self, status: int, message: str, detail: str = "") -> None:
        super().__init__(f"{status} {message}: {detail}" if detail else f"{status} {message}")
        self.status = status
        self.message = message
        self.detail = detail


def as_text(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("value"), str):
        return value["value"]  # a reference echoed back as {"link", "value"}
    raise ServiceNowApiError(400, "Invalid value", f"{name}: expected a string")


def is_stamp(text: str) -> bool:
    try:
        datetime.strptime(text, DATETIME_FORMAT)
    except ValueError:
        return False
    return True


def coerce(tables: Rows, table: str, values: Mapping[str, Any], input_display: bool
           ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Stored changes and journal entries from a write body; unknown fields ignored."""
    schema = TABLES[table]
    changes: dict[str, str] = {}
    journal: list[tuple[str, str]] = []
    for name, raw in values.items():
        column = schema.columns.get(name)
        if column is None or not column.writable:
            continue  # unknown and read-only fields are ignored, as on the instance
        text = as_text(name, raw)
        if column.kind == "journal":
            if text.strip():
                journal.append((name, text))
            continue
        changes[name] = _valid_value(tables, column, text, input_display)
    return changes, journal

def _valid_value(tables: Rows, column: Column, text: str, input_display: bool) -> str:
    name = column.name
    if column.max_length is not None:
        text = text[:column.max_length]
    if column.kind == "reference":
        return _reference_value(tables, column, text, input_display)
    if column.kind == "datetime":
        if text and not is_stamp(text):
            raise ServiceNowApiError(
                400, "Invalid value",
                f"{name}: {text!r} is not a date-time 'YYYY-MM-DD HH:MM:SS'")
        return text
    if column.kind == "integer":
        if text and not re.fullmatch(r"-?\d+", text):
            raise ServiceNowApiError(400, "Invalid value",
                                     f"{name}: {text!r} is not an integer")
        return text
    if column.kind == "boolean":
        return {"1": "true", "0": "false", "true": "true", "false": "false"}.get(
            text.lower(), "false" if not text else text)
    if column.kind == "choice" and column.choices is not None:
        return _choice_value(column, text, input_display)
    return text

def _choice_value(column: Column, text: str, input_display: bool) -> str:
    choices = column.choices or {}
    if input_display and text not in choices:
        text = next((v for v, label in choices.items() if label == text), text)
    if text in choices or (text == "" and column.name != "state"):
        return text
    if column.name == "close_code":
        raise ServiceNowApiError(
            403, "Operation Failed",
            f"Invalid close_code {text!r}; choose one of: {', '.join(CLOSE_CODES)}")
    if column.numeric_choice:
        raise ServiceNowApiError(
            400, "Invalid value",
            f"{column.name}: {text!r} is not one of {', '.join(choices)}")
    return text  # free-text choice lists (category, contact_type) store anything

def _reference_value(tables: Rows, column: Column, text: str, input_display: bool) -> str:
    if text == "":
        return ""
    target = column.reference or ""
    rows = tables.get(target)
    if rows is None:
        if SYS_ID.match(text):
            return text
        raise ServiceNowApiError(400, "Invalid value",
                                 f"{column.name}: {text!r} is not a sys_id")
    if text in rows:
        return text
    keys = [TABLES[target].display_column]
    if input_display and target == "sys_user":
        keys += ["user_name", "email"]
    for row in sorted(rows.values(), key=lambda r: r["sys_id"]):
        if any(row.get(key) == text for key in keys):
            return row["sys_id"]
    raise ServiceNowApiError(
        400, "Invalid reference",
        f"{column.name}: no {target} record matches {text!r}")

def incident_rules(before: Mapping[str, str] | None, row: dict[str, str],
                   changes: Mapping[str, str], user_sys_id: str, now: str) -> None:
    """The base incident business rules and data policies (vendor-notes.md, incident fields)."""
    row["priority"] = PRIORITY_MATRIX.get((row["impact"], row["urgency"]), row["priority"])
    state = row["state"]
    old_state = before["state"] if before else None
    row["incident_state"] = state
    row["active"] = "false" if state in INACTIVE_STATES else "true"
    if state != "3":
        row["hold_reason"] = ""
    if before is not None and before["assignment_group"] != row["assignment_group"]:
        row["reassignment_count"] = str(int(row["reassignment_count"] or 0) + 1)
    if state != old_state:
        # 6 -> 7 keeps the resolution stamps; any other move into 6/7 sets them.
        keep = state == "7" and old_state == "6"
        if state in RESOLVED_STATES:
            if not changes.get("resolved_at") and not (keep and row["resolved_at"]):
                row["resolved_at"] = now
            if not changes.get("resolved_by") and not (keep and row["resolved_by"]):
                row["resolved_by"] = user_sys_id
        if state == "7":
            row["closed_at"] = changes.get("closed_at") or now
            row["closed_by"] = changes.get("closed_by") or user_sys_id
        if old_state in FINISHED_STATES and state not in FINISHED_STATES:
            row.update({"resolved_at": "", "resolved_by": "", "closed_at": "",
                        "closed_by": "", "reopened_by": user_sys_id, "reopened_time": now})
            row["reopen_count"] = str(int(row["reopen_count"] or 0) + 1)
    missing = []
    if state in RESOLVED_STATES:
        if not row["close_code"].strip():
            missing.append("Close code")
        if not row["close_notes"].strip():
            missing.append("Close notes")
    if state == "3" and not row["hold_reason"]:
        missing.append("On hold reason")
    if missing:
        raise ServiceNowApiError(
            403, "Operation Failed",
            "Data Policy Exception: \n" + "\n".join(f" {m} is mandatory" for m in missing))
