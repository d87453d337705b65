"""Pure functions between raw vendor records and the neutral incident, driven by a profile.

Contract:
- :func:`to_incident` reads every field the profile maps on ``side`` from a raw
  record (ServiceNow ``display_value=false`` or ``all``, references bare or as
  ``{"link", "value"}``, dot-walked people/groups; Jira v2 or v3 ``fields``)
  and returns a validated :class:`~mappings.model.Incident`. Fields the record
  does not carry keep the model's defaults. A value the profile cannot map or
  the model rejects raises :class:`RecordError` (one line, field and value).
- :func:`to_fields` returns the vendor fields for the neutral fields that
  travel to ``side`` (or only those named in ``only``) plus ``losses``: one
  line per value that will not read back exactly (cut text, lossy value map,
  fallback written). Same input, same output; writing what was read back
  changes nothing (every transform is idempotent on its own output). Rows
  sharing the Jira labels field by prefix are written together, as one list.
- Status-dependent musts are data: a row with ``required_for`` (ServiceNow
  close_code/close_notes on resolve) is always written with the status, using
  its fallback when the neutral value is empty.
- :func:`comment_from_remote` / :func:`comment_to_remote` convert one comment;
  the written body carries an attribution line, visibility is the comment's own.
- No I/O, no global state: everything comes from the arguments. (A profile
  remembers, per side and Jira field-id table, the list of reads ``to_incident``
  makes and one generated function making them, and the rows ``to_fields`` writes:
  derived from the profile alone, they only save redoing the look-ups and the
  per-row choices.)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, NamedTuple

from pydantic import ValidationError

from mappings.adf import adf_to_text, is_adf, text_to_adf
from mappings.context import MappingContext
from mappings.model import Comment, Incident, Visibility, describe_error
from mappings.profile import CHOICE_FIELDS, WILDCARD, FieldRule, Profile, _neutral_key
from mappings.transforms import JIRA, MISSING, SERVICENOW, Identity, unwrap
from mappings.wiki import text_to_wiki, wiki_to_text


@dataclass
class VendorFields:
    """Fields to write to one side, and what will not read back exactly."""

    fields: dict[str, Any]
    losses: list[str] = field(default_factory=list)


class RecordError(ValueError):
    """A raw record holds a value the profile cannot map or the model rejects."""


def _side(side: Any) -> str:
    if side.__class__ is str and (side == SERVICENOW or side == JIRA):
        return side   # already a side's name (to_incident's usual call)
    value = str(side.value if hasattr(side, "value") else side)
    if value not in (SERVICENOW, JIRA):
        raise ValueError(f"side must be servicenow or jira (got {side!r})")
    return value


def _field_key(profile: Profile, rule: FieldRule, side: str, ctx: MappingContext) -> str:
    if side == JIRA:
        return profile.jira_id(rule, ctx)
    return rule.sides[side].field


# --------------------------------------------------------------------------- vendor -> neutral


# What an empty vendor value becomes in the neutral incident (see _read_plan).
_SKIP: Any = object()   # an empty choice keeps the model's default
_CUSTOM: Any = object()   # a custom field: an empty value is an absent one


class _Read(NamedTuple):
    """One field read of :func:`to_incident`, its look-ups done once per profile
    (a tuple: the loop unpacks it, no attribute look-ups per field and record)."""

    neutral: str         # the neutral field, or the custom field's name for _CUSTOM
    key: str
    read: Any            # the transform's bound ``read``
    direct: bool         # a vendor value passes through without a value map
    empty: Any           # what None becomes: None, "", [], _SKIP or _CUSTOM
    table: Mapping[str, Any] | None   # the value map read from this side, if any
    rule: FieldRule


_PLANS_KEPT = 16
_VALIDATE = Incident.__pydantic_validator__.validate_python


def _read_plan(profile: Profile, side: str, ctx: MappingContext) -> list[_Read]:
    """The reads of ``side``'s record (per Jira field-id table: ids come from ``ctx``)."""
    ids = ctx.field_ids if side == JIRA else None
    plans: dict[Any, tuple[Any, list[_Read]]] = profile.__dict__.setdefault("_read_plans", {})
    held = plans.get((side, id(ids)))
    if held is not None and held[0] is ids:
        return held[1]
    plan = []
    for rule in profile.rules.values():
        mapping = rule.sides.get(side)
        if mapping is None:
            continue
        neutral = rule.neutral
        if neutral.startswith("custom."):
            empty = _CUSTOM
            neutral = neutral[len("custom."):]
        else:
            default = Incident.model_fields[rule.neutral].default
            empty = (_SKIP if rule.neutral in CHOICE_FIELDS and default is not None
                     else "" if default == "" else [] if rule.neutral == "labels" else None)
        plan.append(_Read(neutral, _field_key(profile, rule, side, ctx),
                          mapping.transform.read, side not in rule.from_maps, empty,
                          rule.from_maps.get(side), rule))
    if len(plans) >= _PLANS_KEPT:
        plans.clear()   # field-id tables of sessions long gone
    plans[(side, id(ids))] = (ids, plan)
    return plan


def _record_reader(profile: Profile, side: str, ctx: MappingContext) -> Callable[..., Any]:
    """The reads of :func:`_read_plan` as one generated function, kept with the plan.

    ``reader(fields, side, ctx)`` returns the model's input for a raw record: what
    the generic loop over the plan built (the same reads, in the same order, the
    same values, errors and messages), with each row's choices (value map or not,
    what an empty value becomes) made once here instead of per record, and the
    identity transform's read inlined. The source holds only the plan's structure:
    field names, keys and tables are closure variables, never text in the source.
    """
    ids = ctx.field_ids if side == JIRA else None
    readers: dict[Any, tuple[Any, Callable[..., Any]]] = profile.__dict__.setdefault(
        "_readers", {})
    held = readers.get((side, id(ids)))
    if held is not None and held[0] is ids:
        return held[1]
    plan = _read_plan(profile, side, ctx)
    bound: dict[str, Any] = {"RecordError": RecordError, "MISSING": MISSING,
                             "map_from": _map_from, "unwrap": unwrap}

    def bind(value: Any) -> str:
        name = f"c{len(bound)}"
        bound[name] = value
        return name

    lines = ["    def reader(fields, side, ctx):", "        data = {}", "        custom = {}"]
    for row in plan:
        key, neutral = bind(row.key), bind(row.neutral)
        target = "custom" if row.empty is _CUSTOM else "data"
        fail = (f"            raise RecordError(f\"{{side}} field {{{key}}}: {{error}}\")"
                " from None")
        if type(row.rule.sides[side].transform) is Identity:
            # Identity.read, inlined: the most common read.
            lines += [f"        if {key} in fields:",
                      f"          raw = fields[{key}]",
                      "          if raw.__class__ is not str or not raw:",
                      "            try:",
                      "              raw = unwrap(raw)",
                      "            except ValueError as error:",
                      "  " + fail]
        else:
            lines += ["        try:",
                      f"          raw = {bind(row.read)}(fields, {key}, side, ctx)",
                      "        except ValueError as error:",
                      fail.replace("            ", "          ", 1),
                      "        if raw is not MISSING:"]
        if row.empty is _SKIP or row.empty is _CUSTOM:
            empty = "            pass"
        elif row.empty == []:
            empty = f"            data[{neutral}] = []"
        else:
            empty = f"            data[{neutral}] = {bind(row.empty)}"
        if row.direct:
            # A value passes as it is; None is what an empty value becomes.
            lines += ["          if raw is None:", empty, "          else:",
                      f"            {target}[{neutral}] = raw"]
            continue
        mapped = f"map_from({bind(row.rule)}, side, raw, {key})"
        if row.table is not None:
            # A string the value map holds is a plain look-up (_map_from's first case).
            table = bind(row.table)
            mapped = (f"{table}[raw] if raw.__class__ is str and raw in {table}"
                      f" else {mapped}")
        lines += [f"          value = {mapped}", "          if value is None:", empty,
                  "          else:", f"            {target}[{neutral}] = value"]
    lines += ["        if custom:", '            data["custom"] = custom', "        return data",
              "    return reader"]
    source = f"def make({', '.join(bound)}):\n" + "\n".join(lines) + "\n"
    namespace: dict[str, Any] = {}
    exec(compile(source, "<record reader>", "exec"), namespace)
    reader: Callable[..., Any] = namespace["make"](**bound)
    if len(readers) >= _PLANS_KEPT:
        readers.clear()   # field-id tables of sessions long gone
    readers[(side, id(ids))] = (ids, reader)
    return reader


def to_incident(
    side: Any,
    fields: Mapping[str, Any],
    profile: Profile,
    ctx: MappingContext | None = None,
    comments: Iterable[Any] = (),
) -> Incident:
    """The neutral incident a raw record of ``side`` describes."""
    side = _side(side)
    ctx = ctx or MappingContext()
    data = _record_reader(profile, side, ctx)(fields, side, ctx)
    data["comments"] = [comment_from_remote(side, c, ctx) for c in comments]
    try:
        # The model validates every value: its validator, called as model_validate
        # calls it (Incident(**data) without the keyword-argument round trip and
        # model_validate's own argument checks, a hot path).
        return _VALIDATE(data)
    except ValidationError as error:
        raise RecordError(f"{side} record: " + "; ".join(describe_error(error))) from None


def _lookup_from(rule: FieldRule, side: str, value: Any) -> Any:
    """The neutral value for a vendor value, or MISSING when nothing maps it."""
    table = rule.from_maps.get(side)
    if table is None:
        return MISSING  # no map on this side: the value is taken as it is
    lookup = str(value)
    if lookup in table:
        return table[lookup]
    if WILDCARD in table:
        return table[WILDCARD]
    if rule.default is not None:
        return rule.default
    return MISSING


def _map_from(rule: FieldRule, side: str, value: Any, key: str) -> Any:
    if value is None or isinstance(value, list):
        return value
    found = _lookup_from(rule, side, value)
    if found is not MISSING:
        return found
    if rule.is_choice and side in rule.from_maps:
        raise RecordError(
            f"{side} field {key}: {value!r} has no mapping in fields.{rule.neutral}.from_{side}"
            " and the row has no default"
        )
    return value


# --------------------------------------------------------------------------- neutral -> vendor


class _Write(NamedTuple):
    """One row of :func:`to_fields`, its look-ups done once per profile and side (a
    tuple, like :class:`_Read`: unpacked in the loop, no attribute look-ups per row)."""

    neutral: str
    custom: str | None          # the custom field's name of a ``custom.x`` row
    key: str | None             # the vendor key; None: worked out (or refused) when written
    write: Any                  # the transform's bound ``write``
    table: Mapping[str, Any] | None   # the value map written to this side, if any
    required_for: frozenset[str]
    always: bool                # required whatever the status (``*``)
    rule: FieldRule
    # What _map_to answers per neutral key the map holds: the key alone decides it
    # (the vendor value and the losses naming the key), so it is worked out once per
    # plan; bounded by the map's keys (a key it lacks is never kept).
    known: dict[str, tuple[Any, list[str]]]


def _write_plan(profile: Profile, side: str, ctx: MappingContext
                ) -> tuple[list[_Write], frozenset[str]]:
    """The rows written to ``side`` in profile order, and the rows sharing the Jira
    labels field; per Jira field-id table, like :func:`_read_plan`."""
    ids = ctx.field_ids if side == JIRA else None
    plans: dict[Any, tuple[Any, tuple[list[_Write], frozenset[str]]]] = (
        profile.__dict__.setdefault("_write_plans", {}))
    held = plans.get((side, id(ids)))
    if held is not None and held[0] is ids:
        return held[1]
    rows = []
    for rule in profile.rules.values():
        if not rule.writes_to(side):
            continue
        try:
            key: str | None = _field_key(profile, rule, side, ctx)
        except Exception:
            # A Jira field name the site lacks: refused when (and only when) the row
            # is written, by the same look-up, as without a plan.
            key = None
        neutral = rule.neutral
        rows.append(_Write(
            neutral, neutral[len("custom."):] if neutral.startswith("custom.") else None,
            key, rule.sides[side].transform.write, rule.to_maps.get(side),
            rule.required_for, WILDCARD in rule.required_for, rule, {}))
    sharing = frozenset(
        rule.neutral for rule in profile.rules.values()
        if side == JIRA and rule.writes_to(side) and rule.sides[side].field == "labels")
    if len(plans) >= _PLANS_KEPT:
        plans.clear()   # field-id tables of sessions long gone
    plans[(side, id(ids))] = (ids, (rows, sharing))
    return rows, sharing


def to_fields(
    side: Any,
    incident: Incident,
    profile: Profile,
    ctx: MappingContext | None = None,
    *,
    only: Collection[str] | None = None,
) -> VendorFields:
    """Vendor fields for ``side`` from the neutral incident, with the losses."""
    side = _side(side)
    ctx = ctx or MappingContext()
    rows, sharing = _write_plan(profile, side, ctx)
    wanted = None if only is None else set(only)
    if wanted is not None and wanted & sharing:
        # Rows sharing the labels field by prefix write one list: a write of any of
        # them must carry all their labels, or it would drop the others' labels.
        wanted |= sharing
    out: dict[str, Any] = {}
    losses: list[str] = []
    status = incident.status.value
    custom_values = incident.custom
    for neutral, custom, key, write, table, required_for, always, rule, known in rows:
        by_status = status in required_for
        # A status write drags its musts along (ServiceNow refuses to resolve without them).
        if wanted is not None and neutral not in wanted and not (
            by_status and "status" in wanted
        ):
            continue
        value = custom_values.get(custom) if custom is not None else getattr(incident, neutral)
        if neutral == "priority" and value is None:
            value = incident.effective_priority
            losses.append(f"priority: unset; wrote the impact x urgency value {int(value)}")
        # Whitespace counts as empty: ServiceNow's data policy trims before it checks.
        if (by_status or always) and (value is None or (isinstance(value, str)
                                                         and not value.strip())):
            value = _fallback(rule, ctx)
            when = f" on a {status} incident" if by_status else ""
            losses.append(f"{neutral}: empty{when}; wrote the fallback {value!r} to {side}")
        if table is None or value is None or isinstance(value, list):
            mapped = value   # _map_to's first case: nothing to map
        else:
            found = _neutral_key(value)
            held = known.get(found)
            if held is None:
                held = _map_to(rule, side, value)
                if found in table:
                    known[found] = held
            mapped, lost = held
            losses.extend(lost)
        raw, lost = write(mapped, side, ctx)
        if lost:
            losses.extend(f"{neutral}: {reason}" for reason in lost)
        if key is None:
            key = _field_key(profile, rule, side, ctx)
        if key in out and isinstance(out[key], list) and isinstance(raw, list):
            # Only label rows share a field (the profile checks it): their lists join.
            raw = sorted(set(out[key]) | set(raw))
        out[key] = raw
    return VendorFields(fields=out, losses=losses)


def _fallback(rule: FieldRule, ctx: MappingContext) -> Any:
    if isinstance(rule.fallback, str):
        return rule.fallback.replace("{origin}", ctx.origin or "the linked record")
    return rule.fallback


def _map_to(rule: FieldRule, side: str, value: Any) -> tuple[Any, list[str]]:
    table = rule.to_maps.get(side)
    if table is None or value is None or isinstance(value, list):
        return value, []
    key = _neutral_key(value)
    if key in table:
        mapped = table[key]
    elif WILDCARD in table:
        mapped = table[WILDCARD]
    else:
        return value, [f"{rule.neutral}: no to_{side} mapping for {key!r}; written as is"]
    back = _lookup_from(rule, side, mapped)
    if back is MISSING and side not in rule.from_maps:
        back = mapped  # no read map: the value reads back as written
    if back is MISSING or _neutral_key(back) != key:
        shown = "nothing" if back is MISSING else repr(_neutral_key(back))
        return mapped, [
            f"{rule.neutral}: {key!r} is written to {side} as {mapped!r},"
            f" which reads back as {shown}"
        ]
    return mapped, []


# --------------------------------------------------------------------------- comments


def comment_from_remote(side: Any, raw: Any, ctx: MappingContext | None = None) -> Comment:
    """A neutral comment from a RemoteComment-like object (id, body, created, ...)."""
    side = _side(side)
    ctx = ctx or MappingContext()
    body = getattr(raw, "body", "")
    if is_adf(body) or isinstance(body, dict):
        text = adf_to_text(body)
    elif body is None:
        text = ""
    elif side == JIRA and ctx.text_format != "plain":
        text = wiki_to_text(str(body))
    else:
        text = str(body)
    visibility = getattr(raw, "visibility", "internal")
    return Comment(
        id=f"{side}:{raw.id}",
        author=getattr(raw, "author", "") or "",
        body=text,
        created=raw.created,
        # Anything but an explicit "public" stays internal (fail closed).
        visibility=Visibility.PUBLIC if visibility == "public" else Visibility.INTERNAL,
    )


def attribution(comment: Comment, origin: str) -> str:
    """The line that tells readers where a copied comment came from."""
    created = comment.created.astimezone(UTC) if comment.created.tzinfo else comment.created
    who = comment.author or "unknown author"
    return f"[{origin}] {who}, {created:%Y-%m-%d %H:%M} UTC:"


def comment_to_remote(side: Any, comment: Comment, ctx: MappingContext | None = None, *,
                      origin: str) -> Any:
    """The comment body in ``side``'s format, headed by an attribution line."""
    side = _side(side)
    ctx = ctx or MappingContext()
    text = attribution(comment, origin)
    if comment.body:
        text += "\n\n" + comment.body
    if side == JIRA and ctx.text_format == "adf":
        return text_to_adf(text)
    if side == JIRA and ctx.text_format == "wiki":
        return text_to_wiki(text)
    return text


__all__ = [
    "MappingContext",
    "RecordError",
    "VendorFields",
    "attribution",
    "comment_from_remote",
    "comment_to_remote",
    "to_fields",
    "to_incident",
]
