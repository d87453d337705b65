"""What a Jira site offers to write: ``GET /field`` joined with the create and edit screens.

Contract:
- :func:`site_fields` turns the raw answers of ``GET /rest/api/N/field``, the
  project + issue type create metadata (``GET issue/createmeta/{project}/
  issuetypes/{typeId}``, Cloud key ``fields``, Data Center key ``values``) and
  one issue's edit metadata (``GET issue/{key}/editmeta``, a dict keyed by field
  id) into :class:`connectors.base.SiteField` rows, in the order of the field list.
- ``allowed`` comes from the screens' ``allowedValues`` (option ``value`` for
  custom selects, ``name`` for priorities, components, resolutions...);
  disabled options are left out, since Jira refuses them on create and edit.
- A screen that could not be read (``None``) leaves ``on_create`` / ``on_edit``
  unknown (None) rather than claiming the field is missing. ``status`` and
  ``resolution`` change through workflow transitions, never through the
  screens, so the question does not apply to them (None as well).
- ``note`` names the screen a field is missing from, with ``where`` (the
  project and issue type, ``OPS / Incident``).
- Pure: no I/O, no ``jira`` library import; :mod:`connectors.jira` fetches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connectors.base import SiteField


def field_type(schema: Mapping[str, Any] | None) -> str:
    """A short type name: ``string``, ``option (select)``, ``array<component>``."""
    if not schema:
        return "unknown"
    kind = str(schema.get("type") or "unknown")
    if kind == "array" and schema.get("items"):
        kind = f"array<{schema['items']}>"
    custom = schema.get("custom")
    if custom:
        # "com.atlassian.jira.plugin.system.customfieldtypes:select" -> "select"
        kind = f"{kind} ({str(custom).rsplit(':', 1)[-1]})"
    return kind


def allowed_labels(values: Iterable[Any] | None) -> tuple[str, ...] | None:
    """The labels of a screen's ``allowedValues``; None when the screen lists none."""
    if values is None:
        return None
    labels: list[str] = []
    for value in values:
        if not isinstance(value, Mapping) or value.get("disabled") is True:
            continue
        label = value.get("value", value.get("name"))
        if label is not None and str(label) not in labels:
            labels.append(str(label))
    return tuple(labels)


def create_items(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The field entries of one create-metadata page (Cloud ``fields``, DC ``values``)."""
    items = page.get("fields")
    if not isinstance(items, list):
        items = page.get("values")
    return [item for item in items or [] if isinstance(item, dict)]


def _meta_id(item: Mapping[str, Any]) -> str:
    return str(item.get("fieldId") or item.get("key") or item.get("id") or "")


# Set through workflow transitions (a resolution rides on the step into a done status).
TRANSITION_FIELDS = frozenset({"status", "resolution"})


def _note(on_create: bool | None, on_edit: bool | None, where: str) -> str:
    of = f" of {where}" if where else ""
    if on_create is False and on_edit is False:
        return f"on neither the create nor the edit screen{of}"
    if on_create is False:
        return f"not on the create screen{of}"
    if on_edit is False:
        return f"not on the edit screen{of}"
    return ""


def site_fields(
    field_list: Sequence[Mapping[str, Any]],
    create_meta: Sequence[Mapping[str, Any]] | None,
    edit_meta: Mapping[str, Mapping[str, Any]] | None,
    where: str = "",
) -> list[SiteField]:
    """``GET /field`` rows, each with what the create / edit screens say about it."""
    create = {_meta_id(item): item for item in create_meta or ()}
    edit = {str(key): item for key, item in (edit_meta or {}).items()}
    out: list[SiteField] = []
    for raw in field_list:
        if "id" not in raw or "name" not in raw:
            continue
        field_id = str(raw["id"])
        screen = create.get(field_id) or edit.get(field_id) or {}
        allowed = allowed_labels(screen.get("allowedValues"))
        on_create = None if create_meta is None else field_id in create
        on_edit = None if edit_meta is None else field_id in edit
        if field_id in TRANSITION_FIELDS:
            on_create = on_edit = None
        out.append(SiteField(
            id=field_id,
            name=str(raw["name"]),
            type=field_type(raw.get("schema") or screen.get("schema")),
            custom=bool(raw.get("custom")),
            allowed=allowed,
            on_create=on_create,
            on_edit=on_edit,
            note=_note(on_create, on_edit, where),
        ))
    return out


__all__ = ["TRANSITION_FIELDS", "allowed_labels", "create_items", "field_type", "site_fields"]
