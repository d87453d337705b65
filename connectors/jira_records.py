"""Raw Jira JSON -> the connector protocol's records and comments, without I/O.

Contract:
- :func:`parse_time` reads Jira timestamps (``2021-01-17T12:34:00.000+0000``,
  offset without a colon) into aware UTC datetimes; a bad one raises
  ``ValueError`` naming it.
- :func:`comment_visibility` says ``"public"`` only when Jira states it:
  ``jsdPublic`` (Cloud), the ``sd.public.comment`` property (what agents and the
  jira library set; a listed property set without it is JSM's public
  default), or the JSM request-comment ``public`` flag. A comment restricted
  to a role or group, or one nobody described, is ``"internal"`` (fail closed:
  an agents-only note must never leak to the caller);
  :func:`visibility_stated` tells the connector when to re-read comments
  with their properties instead of guessing.
- :func:`foreign_id_of` reads the ServiceNow id an issue carries: the marker
  custom field when configured, else the ``snow-<id>`` label; two different
  marker labels on one issue are ambiguous and yield None.
- :func:`to_record` builds a :class:`RemoteRecord` keyed by issue key, version =
  ``fields.updated`` exactly as Jira wrote it, comments parsed, the embedded
  ``comment`` container removed from ``fields``.

No ``jira`` library here: the connector module is the only one importing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.base import RemoteComment, RemoteRecord, Side
from connectors.jira_jql import foreign_id_from_label

SD_PUBLIC_PROPERTY = "sd.public.comment"
COMMENT_FIELD = "comment"


def parse_time(value: str) -> datetime:
    """A Jira timestamp as aware UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a Jira timestamp: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def comment_visibility(raw: Mapping[str, Any]) -> str:
    """``"public"`` or ``"internal"`` as Jira states it; ``"internal"`` when it doesn't."""
    if raw.get("visibility"):
        return "internal"
    for flag in ("jsdPublic", "public"):
        if isinstance(raw.get(flag), bool):
            return "public" if raw[flag] else "internal"
    properties = raw.get("properties")
    if isinstance(properties, list):
        for prop in properties:
            if isinstance(prop, Mapping) and prop.get("key") == SD_PUBLIC_PROPERTY:
                internal = (prop.get("value") or {}).get("internal")
                return "public" if internal is False else "internal"
        # Properties were listed and JSM's flag is not among them: JSM shows
        # such a comment to the customer (its platform-API default).
        return "public"
    return "internal"


def visibility_stated(raw: Mapping[str, Any]) -> bool:
    """Whether the comment JSON carries anything that tells its visibility.

    Data Center search results embed comments without ``jsdPublic`` or
    properties; those must be re-read with ``expand=properties``.
    """
    return bool(raw.get("visibility")) or isinstance(raw.get("properties"), list) or any(
        isinstance(raw.get(flag), bool) for flag in ("jsdPublic", "public"))


def _person(raw: Any) -> str:
    if not isinstance(raw, Mapping):
        return ""
    for key in ("emailAddress", "displayName", "name", "accountId"):
        if raw.get(key):
            return str(raw[key])
    return ""


def _created(raw: Mapping[str, Any]) -> datetime:
    created = raw.get("created")
    if isinstance(created, Mapping):  # JSM request comments: {"iso8601": ..., "epochMillis": ...}
        created = created.get("iso8601") or created.get("jira")
    return parse_time(str(created))


def to_comment(raw: Mapping[str, Any]) -> RemoteComment:
    return RemoteComment(
        id=str(raw["id"]),
        body=raw.get("body", ""),
        created=_created(raw),
        visibility=comment_visibility(raw),
        author=_person(raw.get("author")),
    )


def embedded_comments(fields: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], bool]:
    """The comments embedded in a search result and whether they are all of them."""
    container = fields.get(COMMENT_FIELD)
    if not isinstance(container, Mapping):
        return [], container is None
    comments = list(container.get("comments") or [])
    total = container.get("total")
    complete = not isinstance(total, int) or total <= len(comments)
    return comments, complete


def foreign_id_of(fields: Mapping[str, Any], marker_field: str | None) -> str | None:
    """The ServiceNow id this issue carries, or None."""
    if marker_field:
        value = fields.get(marker_field)
        return str(value) if value else None
    found = {
        fid
        for label in fields.get("labels") or ()
        if isinstance(label, str) and (fid := _label_id(label)) is not None
    }
    return found.pop() if len(found) == 1 else None


def _label_id(label: str) -> str | None:
    try:
        return foreign_id_from_label(label)
    except UnicodeDecodeError:
        return None


def to_record(
    raw: Mapping[str, Any],
    *,
    base_url: str,
    marker_field: str | None,
    comments: Iterable[Mapping[str, Any]] | None = None,
) -> RemoteRecord:
    """One search/issue JSON object as a RemoteRecord (comments: override the embedded ones)."""
    fields = dict(raw.get("fields") or {})
    key = str(raw["key"])
    updated = fields.get("updated")
    if not updated:
        raise ValueError(f"issue {key} came without fields.updated")
    embedded, _ = embedded_comments(fields)
    fields.pop(COMMENT_FIELD, None)
    chosen = list(comments) if comments is not None else embedded
    return RemoteRecord(
        side=Side.JIRA,
        id=key,
        display=key,
        version=str(updated),
        updated=parse_time(str(updated)),
        fields=fields,
        comments=sorted((to_comment(c) for c in chosen), key=lambda c: (c.created, c.id)),
        foreign_id=foreign_id_of(fields, marker_field),
        url=f"{base_url}/browse/{key}",
    )
