"""Mapping profiles: TOML files that say how each neutral field meets each vendor.

Contract:
- :func:`load_profile` reads a shipped profile by name (``"default"``, through
  importlib.resources, so it works installed) or a TOML file by path (relative
  paths against ``base_dir``), resolves ``extends`` (a child row's keys replace
  the base row's keys), validates everything strictly and returns a
  :class:`Profile`. It reads files and nothing else.
- Any problem raises :class:`MappingError` whose ``str()`` is one line:
  ``<file>: <key path> (line N): <reason>``, e.g.
  ``team.toml: fields.status.to_jira (line 12): map is not total: no mapping
  for 'closed'``.
- Lossy maps must settle: a vendor value a written value reads back as must
  write that same vendor value again, or the profile is rejected (else every
  sync would flip the value).
- A row (``[fields.<neutral>]``, ``[fields.custom.<name>]`` for custom fields)
  holds: ``servicenow`` / ``jira`` (a field name, or an inline table
  ``{field = ..., transform = ..., <params>}``), ``direction`` (both |
  to-jira | to-servicenow | none), ``owner`` (servicenow | jira), value maps
  ``to_<side>`` (neutral -> vendor, used on write) and ``from_<side>`` (vendor
  -> neutral, used on read; defaults to the inverse of ``to_<side>``, explicit
  entries added on top), ``default`` (neutral value for a vendor value that has
  no mapping), ``required_for`` + ``fallback`` (statuses for which the field
  must be written, ``"*"`` for all, and the neutral value written when it is
  empty; ``{origin}`` in the fallback becomes the other record's name),
  ``optional`` (true: when the connected site lacks the row's field, the row is
  skipped with a warning instead of stopping the run). A map key ``"*"``
  matches any value without an entry of its own.
- Choice fields (status, impact, urgency, priority, escalation) that travel to
  a side need a *total* ``to_<side>`` map (every neutral value, or ``"*"``)
  unless the side's transform is ``int_string``.
- Reading a field happens for every mapped side; writing only where
  ``direction`` lets the field travel (:meth:`Profile.travels`).
- Two rows writing one vendor field is an error naming both (checked on the
  merged profile, after ``extends``), except rows that share the Jira
  ``labels`` field by disjoint prefixes: ``label_prefix`` rows, each owning
  its prefix, and one ``labels`` row whose ``exclude_prefix`` lists them all.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from mappings.model import Escalation, Impact, Incident, Priority, Status, Urgency
from mappings.transforms import (
    TRANSFORMS,
    IntString,
    LabelPrefix,
    Labels,
    Transform,
    make_transform,
)

if TYPE_CHECKING:
    from mappings.context import MappingContext

SIDES = ("servicenow", "jira")
DIRECTIONS = ("both", "to-jira", "to-servicenow", "none")
CHOICE_FIELDS: dict[str, type[Enum]] = {
    "status": Status,
    "impact": Impact,
    "urgency": Urgency,
    "priority": Priority,
    "escalation": Escalation,
}
# Fields the neutral model has that a profile cannot map: comments have their
# own path (comment_from_remote / comment_to_remote); custom is addressed per key.
_UNMAPPABLE = frozenset({"comments", "custom"})
NEUTRAL_FIELDS: tuple[str, ...] = tuple(
    name for name in Incident.model_fields if name not in _UNMAPPABLE
)
WILDCARD = "*"

_JIRA_SYSTEM_FIELDS = frozenset({
    "summary", "description", "status", "priority", "labels", "components", "assignee",
    "reporter", "resolution", "created", "updated", "resolutiondate", "duedate",
    "environment", "issuetype", "project", "fixVersions", "versions", "security",
    "timetracking", "parent", "creator", "statuscategorychangedate", "lastViewed",
})
# Sides whose fields a profile may name by display name ("Impact"), looked up on the
# site; elsewhere a field is named by its id (a ServiceNow column name).
NAMED_FIELD_SIDES = frozenset({"jira"})
_CUSTOMFIELD = re.compile(r"customfield_\d+")
_SN_FIELD = re.compile(r"[a-z][a-z0-9_]*")
_CUSTOM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Scalar = str | int | float | bool
# Builds the MappingError for a key under the current row: fail("to_jira", "reason").
Fail = Callable[[str, str], "MappingError"]


class MappingError(ValueError):
    """A profile is wrong. ``str()`` is one line naming the file, key path and reason."""

    def __init__(self, source: str, key: str, reason: str, line: int | None = None) -> None:
        # One line, always: a reason quoted from a parser may carry newlines.
        reason = " ".join(reason.split())
        self.source = source
        self.key = key
        self.reason = reason
        self.line = line
        where = f"{key} (line {line})" if line else key
        super().__init__(f"{source}: {where}: {reason}")


# --------------------------------------------------------------------------- TOML schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SideSpec(_Strict):
    """Where a neutral field lives on one side, and how its value is converted."""

    field: str = Field(min_length=1)
    transform: str | None = None
    limit: int | None = None
    marker: str | None = None
    single_line: bool | None = None
    prefix: str | None = None
    suffix: str | None = None
    format: str | None = None
    exclude_prefix: str | list[str] | None = None

    def transform_params(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in self.model_fields_set
            if name not in ("field", "transform")
        }


class RowSpec(_Strict):
    servicenow: SideSpec | None = None
    jira: SideSpec | None = None
    direction: Literal["both", "to-jira", "to-servicenow", "none"] = "both"
    owner: Literal["servicenow", "jira"] | None = None
    to_servicenow: dict[str, Scalar] | None = None
    from_servicenow: dict[str, Scalar] | None = None
    to_jira: dict[str, Scalar] | None = None
    from_jira: dict[str, Scalar] | None = None
    default: Scalar | None = None
    required_for: list[str] = Field(default_factory=list)
    fallback: Scalar | None = None
    # Strict: TOML has booleans, and "no" must not quietly read as true.
    optional: StrictBool = False

    @field_validator("servicenow", "jira", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"field": value} if isinstance(value, str) else value


class ProfileSpec(_Strict):
    name: str | None = None
    description: str = ""
    extends: str | None = None
    fields: dict[str, RowSpec] = Field(default_factory=dict)

    @field_validator("fields", mode="before")
    @classmethod
    def _flatten_custom(cls, value: Any) -> Any:
        # [fields.custom.severity] arrives nested; the neutral name is custom.severity.
        if isinstance(value, dict) and isinstance(value.get("custom"), dict):
            value = dict(value)
            for name, row in value.pop("custom").items():
                value[f"custom.{name}"] = row
        return value


# --------------------------------------------------------------------------- compiled profile


@dataclass(frozen=True)
class SideMapping:
    """A neutral field's place on one side."""

    field: str           # ServiceNow column, or Jira id / field name
    transform: Transform

    def jira_id(self, ctx: MappingContext | None) -> str:
        """The Jira field id: system ids and customfield_N as they are, names via ctx."""
        if self.field in _JIRA_SYSTEM_FIELDS or _CUSTOMFIELD.fullmatch(self.field):
            return self.field
        ids = ctx.field_ids if ctx is not None else {}
        if self.field in ids:
            return ids[self.field]
        folded = {name.casefold(): fid for name, fid in ids.items()}
        if self.field.casefold() in folded:
            return folded[self.field.casefold()]
        raise KeyError(self.field)


@dataclass(frozen=True)
class FieldRule:
    """One compiled row of a profile."""

    neutral: str
    sides: dict[str, SideMapping]
    direction: str = "both"
    owner: str | None = None
    to_maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    from_maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    default: Any = None
    required_for: frozenset[str] = frozenset()
    fallback: Any = None
    optional: bool = False   # skipped (with a warning) when the site lacks its field

    def writes_to(self, side: str) -> bool:
        if side not in self.sides:
            return False
        return self.direction == "both" or self.direction == f"to-{side}"

    @property
    def is_choice(self) -> bool:
        return self.neutral in CHOICE_FIELDS


class Profile:
    """A validated mapping profile. Immutable after loading."""

    def __init__(self, name: str, source: str, rules: Mapping[str, FieldRule],
                 description: str = "", rows: Mapping[str, RowSpec] | None = None) -> None:
        self.name = name
        self.source = source
        self.description = description
        self.rules: dict[str, FieldRule] = dict(rules)
        # The validated rows as written, kept so a profile can extend this one.
        self.rows: dict[str, RowSpec] = dict(rows or {})

    def __repr__(self) -> str:
        return f"Profile({self.name!r}, {len(self.rules)} fields)"

    def rule(self, neutral_field: str) -> FieldRule | None:
        return self.rules.get(neutral_field)

    def without(self, neutral_fields: Iterable[str]) -> Profile:
        """This profile minus some rows (optional rows the connected site cannot hold)."""
        dropped = set(neutral_fields)
        if not dropped:
            return self
        return Profile(
            self.name, self.source,
            {name: rule for name, rule in self.rules.items() if name not in dropped},
            self.description,
            {name: row for name, row in self.rows.items() if name not in dropped},
        )

    def neutral_fields(self) -> list[str]:
        """Every mapped neutral field, in profile order."""
        return list(self.rules)

    def travels(self, neutral_field: str, to_side: str) -> bool:
        """True when the field is mapped on ``to_side`` and its direction lets it go there."""
        rule = self.rules.get(neutral_field)
        return rule is not None and rule.writes_to(str(to_side))

    def owner(self, neutral_field: str) -> str | None:
        rule = self.rules.get(neutral_field)
        return rule.owner if rule is not None else None

    def vendor_fields(self, side: str, ctx: MappingContext | None = None) -> list[str]:
        """Raw fields a connector must fetch for this side (dot-walks and ids resolved)."""
        side = str(side)
        out: list[str] = []
        for rule in self.rules.values():
            mapping = rule.sides.get(side)
            if mapping is None:
                continue
            name = self.jira_id(rule, ctx) if side == "jira" else mapping.field
            for raw in mapping.transform.read_fields(name, side):
                if raw not in out:
                    out.append(raw)
        return out

    def neutral_by_vendor_field(self, side: str, ctx: MappingContext | None = None
                                ) -> dict[str, list[str]]:
        """Vendor field (as a record's history names it: no dot-walk) -> the neutral
        fields read from it on ``side``; what turns a tool's audit trail into neutral terms."""
        side = str(side)
        out: dict[str, list[str]] = {}
        for rule in self.rules.values():
            mapping = rule.sides.get(side)
            if mapping is None:
                continue
            name = self.jira_id(rule, ctx) if side == "jira" else mapping.field
            for raw in mapping.transform.read_fields(name, side):
                neutral = out.setdefault(raw.split(".", 1)[0], [])
                if rule.neutral not in neutral:
                    neutral.append(rule.neutral)
        return out

    def jira_id(self, rule: FieldRule, ctx: MappingContext | None) -> str:
        """The Jira field id of a rule; MappingError when a field name is unknown."""
        mapping = rule.sides["jira"]
        try:
            return mapping.jira_id(ctx)
        except KeyError:
            raise MappingError(
                self.source, f"fields.{rule.neutral}.jira",
                f"Jira field {mapping.field!r} is not among the site's fields"
                " (use its id, e.g. customfield_10004, or check the name)",
            ) from None


# --------------------------------------------------------------------------- loading


def shipped_profiles() -> list[str]:
    """Names of the profiles shipped inside the package."""
    folder = resources.files("mappings") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str, base_dir: Path | None = None) -> Profile:
    """Load, merge (``extends``) and validate a profile by shipped name or path."""
    return _load(str(name_or_path), base_dir, seen=())


def _locate(name_or_path: str, base_dir: Path | None) -> tuple[str, str, Path | None]:
    """(display source, TOML text, directory for relative ``extends``)."""
    looks_like_path = name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path
    if not looks_like_path:
        if name_or_path in shipped_profiles():
            resource = resources.files("mappings") / "profiles" / f"{name_or_path}.toml"
            return f"profiles/{name_or_path}.toml", resource.read_text(encoding="utf-8"), None
        raise MappingError(
            name_or_path, "mapping",
            f"no shipped profile {name_or_path!r} (shipped: {', '.join(shipped_profiles())};"
            " a file path must end in .toml)",
        )
    path = Path(name_or_path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return str(path), path.read_text(encoding="utf-8"), path.parent
    except FileNotFoundError:
        raise MappingError(str(path), "mapping", "file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise MappingError(str(path), "mapping", f"cannot read: {error}") from None


def _load(name_or_path: str, base_dir: Path | None, seen: tuple[str, ...]) -> Profile:
    source, text, folder = _locate(name_or_path, base_dir)
    if source in seen:
        raise MappingError(source, "extends", "profiles extend each other in a cycle")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        # Python < 3.14 only has the position in the message: "... (at line 4, column 33)".
        found = re.search(r"\(at line (\d+)", str(error))
        line = int(found.group(1)) if found else None
        reason = str(error).split(" (at ")[0]
        raise MappingError(source, "toml", f"not valid TOML: {reason}", line) from None

    base: Profile | None = None
    extends = data.get("extends")
    if isinstance(extends, str):
        try:
            base = _load(extends, folder if folder is not None else base_dir, (*seen, source))
        except MappingError as error:
            if error.key == "mapping":
                raise MappingError(
                    source, "extends", error.reason, _line_of(text, ("extends",))
                ) from None
            raise
    try:
        spec = ProfileSpec.model_validate(data)
    except ValidationError as error:
        raise _from_validation(source, text, error) from None

    rows = dict(base.rows) if base is not None else {}
    for neutral, row in spec.fields.items():
        merged = rows[neutral].model_dump(exclude_unset=True) if neutral in rows else {}
        merged.update(row.model_dump(exclude_unset=True))
        rows[neutral] = RowSpec.model_validate(merged)

    rules = {
        neutral: _compile(neutral, row, source, text) for neutral, row in rows.items()
    }
    _check_shared_fields(rules, source, text)
    name = spec.name or (name_or_path if folder is None else Path(source).stem)
    return Profile(name, source, rules, spec.description, rows)


def _from_validation(source: str, text: str, error: ValidationError) -> MappingError:
    first = error.errors()[0]
    loc = tuple(str(part) for part in first["loc"])
    key = ".".join(loc) or "profile"
    kind = first["type"]
    if kind == "extra_forbidden":
        reason = "unknown key"
    else:
        reason = f"{first['msg']} (got {first.get('input')!r})"
    return MappingError(source, key, reason, _line_of(text, loc))


def _compile(neutral: str, row: RowSpec, source: str, text: str) -> FieldRule:
    def fail(key: str, reason: str) -> MappingError:
        path = tuple(["fields", neutral, *key.split(".")]) if key else ("fields", neutral)
        return MappingError(source, ".".join(path), reason, _line_of(text, path))

    if neutral.startswith("custom."):
        if not _CUSTOM_NAME.fullmatch(neutral[len("custom."):]):
            raise fail("", "custom field names are letters, digits and _")
    elif neutral not in NEUTRAL_FIELDS:
        raise fail("", f"unknown neutral field (known: {', '.join(NEUTRAL_FIELDS)},"
                       " custom.<name>)")

    sides: dict[str, SideMapping] = {}
    for side in SIDES:
        spec: SideSpec | None = getattr(row, side)
        if spec is None:
            continue
        if side == "servicenow" and not _SN_FIELD.fullmatch(spec.field):
            raise fail(f"{side}.field", f"not a ServiceNow column name: {spec.field!r}")
        if spec.transform is not None and spec.transform not in TRANSFORMS:
            raise fail(f"{side}.transform",
                       f"unknown transform {spec.transform!r} (known: {', '.join(TRANSFORMS)})")
        try:
            transform = make_transform(spec.transform, spec.transform_params())
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            reason = "not a parameter of this transform" if (
                problem["type"] == "extra_forbidden") else problem["msg"]
            raise fail(f"{side}.{where}" if where else side, reason) from None
        except ValueError as error:
            raise fail(side, str(error)) from None
        if isinstance(transform, LabelPrefix) and (side != "jira" or spec.field != "labels"):
            raise fail(f"{side}.transform", "label_prefix keeps a value in the Jira labels"
                                            " field: use it with jira = { field = \"labels\" }")
        sides[side] = SideMapping(spec.field, transform)

    if not sides:
        raise fail("", "maps to neither servicenow nor jira")
    if row.direction in ("to-jira", "to-servicenow"):
        target = row.direction[3:]
        if target not in sides:
            raise fail("direction", f"{row.direction} but no {target} field")
    if row.owner is not None and row.owner not in sides:
        raise fail("owner", f"{row.owner} owns it but it has no {row.owner} field")

    to_maps: dict[str, dict[str, Any]] = {}
    from_maps: dict[str, dict[str, Any]] = {}
    for side in SIDES:
        to_raw: dict[str, Any] | None = getattr(row, f"to_{side}")
        from_raw: dict[str, Any] | None = getattr(row, f"from_{side}")
        for key_name, given in ((f"to_{side}", to_raw), (f"from_{side}", from_raw)):
            if given is not None and side not in sides:
                raise fail(key_name, f"a value map for {side}, which this field does not map to")
        if side not in sides:
            continue
        to_map: dict[str, Any] = {}
        for key, value in (to_raw or {}).items():
            if key != WILDCARD:
                key = _neutral_key(_coerce(neutral, key, fail, f"to_{side}.{key}"))
            to_map[key] = value
        rule_writes = row.direction in ("both", f"to-{side}")
        if neutral in CHOICE_FIELDS and rule_writes:
            transform = sides[side].transform
            if to_raw is None and not isinstance(transform, IntString):
                raise fail(f"to_{side}", f"{neutral} is a choice field: it needs a value map"
                                         f" for {side} (or transform = \"int_string\")")
            if to_raw is not None and WILDCARD not in to_map:
                missing = [
                    _neutral_key(member) for member in CHOICE_FIELDS[neutral]  # type: ignore[attr-defined]
                    if _neutral_key(member) not in to_map
                ]
                if missing:
                    raise fail(f"to_{side}", "map is not total: no mapping for "
                               + ", ".join(repr(m) for m in missing))
        from_map = _invert(to_map, from_raw or {}, fail, side)
        for key, value in (from_raw or {}).items():
            from_map[key] = _coerce(neutral, value, fail, f"from_{side}.{key}")
        _check_stable(neutral, side, to_map, from_map, row.default, fail)
        if to_map:
            to_maps[side] = to_map
        if from_map:
            from_maps[side] = from_map

    default = None
    if row.default is not None:
        default = _coerce(neutral, row.default, fail, "default")
    statuses = frozenset()
    if row.required_for:
        for index, status in enumerate(row.required_for):
            if status != WILDCARD and status not in {s.value for s in Status}:
                raise fail(f"required_for.{index}",
                           f"not a status: {status!r} (known: {', '.join(s for s in Status)})")
        statuses = frozenset(row.required_for)
        if row.fallback is None:
            raise fail("fallback", "required_for needs a fallback value")
    fallback = None
    if row.fallback is not None:
        if not statuses:
            raise fail("fallback", "a fallback is only used with required_for")
        fallback = (row.fallback if isinstance(row.fallback, str)
                    else _coerce(neutral, row.fallback, fail, "fallback"))
    return FieldRule(
        neutral=neutral, sides=sides, direction=row.direction, owner=row.owner,
        to_maps=to_maps, from_maps=from_maps, default=default,
        required_for=statuses, fallback=fallback, optional=row.optional,
    )


def _check_shared_fields(rules: Mapping[str, FieldRule], source: str, text: str) -> None:
    """Two rows may not write one vendor field: one would silently overwrite the other.

    The one exception is the Jira labels field, shared by prefix: each
    ``label_prefix`` row owns the labels starting with its prefix (prefixes
    disjoint: none starts with another), and the one ``labels`` row excludes
    every such prefix, so no label is read or written by two rows.
    """
    def fail(rule: FieldRule, side: str, reason: str) -> MappingError:
        path = ("fields", rule.neutral, side)
        return MappingError(source, ".".join(path), reason, _line_of(text, path))

    for side in SIDES:
        by_field: dict[str, list[FieldRule]] = {}
        for rule in rules.values():
            mapping = rule.sides.get(side)
            if mapping is None:
                continue
            key = mapping.field if side == "servicenow" else mapping.field.casefold()
            # Label rows partition the field for reading too, so they all count.
            if rule.writes_to(side) or (side == "jira" and key == "labels"):
                by_field.setdefault(key, []).append(rule)
        for key, sharing in by_field.items():
            if len(sharing) < 2:
                continue
            if side == "jira" and key == "labels":
                _check_label_partition(sharing, fail)
                continue
            first, second = sharing[0], sharing[1]
            raise fail(second, side,
                       f"writes the {side} field {second.sides[side].field!r}, which"
                       f" fields.{first.neutral} writes too: one of them would overwrite the"
                       " other (one row per vendor field; only label_prefix rows may share"
                       " the Jira labels field)")


def _check_label_partition(rows: list[FieldRule],
                           fail: Callable[[FieldRule, str, str], MappingError]) -> None:
    owners = [r for r in rows if isinstance(r.sides["jira"].transform, LabelPrefix)]
    others = [r for r in rows if r not in owners]
    for index, row in enumerate(others):
        if not isinstance(row.sides["jira"].transform, Labels):
            other = next(r for r in rows if r is not row)
            raise fail(row, "jira", f"maps the Jira labels field, which fields.{other.neutral}"
                                    " maps too; rows may share it only through label_prefix"
                                    " (one prefix each) and one labels row")
        if index:
            raise fail(row, "jira", f"a second labels row on the Jira labels field (fields."
                                    f"{others[0].neutral} is one): one would overwrite the other")
    for index, row in enumerate(owners):
        prefix = row.sides["jira"].transform.params.prefix  # type: ignore[attr-defined]
        for other in owners[:index]:
            theirs = other.sides["jira"].transform.params.prefix  # type: ignore[attr-defined]
            if prefix.startswith(theirs) or theirs.startswith(prefix):
                raise fail(row, "jira", f"label prefix {prefix!r} overlaps {theirs!r} of fields."
                                        f"{other.neutral}: a label would belong to both rows")
        for labels_row in others:
            excluded = labels_row.sides["jira"].transform.params.exclude_prefix  # type: ignore[attr-defined]
            if not any(prefix.startswith(e) for e in excluded if e):
                raise fail(labels_row, "jira",
                           f"exclude_prefix must include {prefix!r}: fields.{row.neutral} keeps"
                           " its value in the labels starting with it, so they are not"
                           " neutral labels")


def _invert(to_map: Mapping[str, Any], explicit: Mapping[str, Any], fail: Fail,
            side: str) -> dict[str, Any]:
    inverse: dict[str, Any] = {}
    for neutral_key, vendor in to_map.items():
        if neutral_key == WILDCARD:
            continue
        vendor_key = str(vendor)
        if vendor_key in inverse and vendor_key not in explicit:
            raise fail(
                f"to_{side}",
                f"{vendor!r} is the target of {inverse[vendor_key]!r} and {neutral_key!r};"
                f" say which one it reads back as in from_{side}",
            )
        inverse.setdefault(vendor_key, neutral_key)
    return inverse


def _check_stable(neutral: str, side: str, to_map: Mapping[str, Any],
                  from_map: Mapping[str, Any], default: Any, fail: Fail) -> None:
    """A lossy map must settle: what a written value reads back as writes it again.

    Otherwise every sync would flip the vendor value back and forth.
    """
    def write(key: str) -> Any:
        return to_map.get(key, to_map.get(WILDCARD))

    for key, vendor in to_map.items():
        if key == WILDCARD:
            continue
        back = from_map.get(str(vendor), from_map.get(WILDCARD, default))
        if back is None:
            continue
        again = write(_neutral_key(back))
        if again is not None and str(again) != str(vendor):
            raise fail(
                f"from_{side}",
                f"{vendor!r} reads back as {_neutral_key(back)!r}, which is written as"
                f" {again!r}: the value would flip on every sync",
            )


def _neutral_key(value: Any) -> str:
    """The map key of a neutral value: enum values as text ("1", "resolved")."""
    if isinstance(value, Enum):
        value = value.value
    return str(value)


_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(Incident.model_fields[name].annotation)  # type: ignore[arg-type]
    for name in NEUTRAL_FIELDS
}


def _coerce(neutral: str, value: Any, fail: Fail, key: str) -> Any:
    """A TOML value as the neutral field's type; MappingError naming ``key`` otherwise."""
    if neutral.startswith("custom."):
        return value
    enum = CHOICE_FIELDS.get(neutral)
    try:
        if enum is not None:
            if issubclass(enum, int):
                return enum(int(value))
            return enum(value)
        return _ADAPTERS[neutral].validate_python(value)
    except (ValueError, TypeError, ValidationError):
        known = ""
        if enum is not None:
            known = " (known: " + ", ".join(_neutral_key(m) for m in enum) + ")"  # type: ignore[attr-defined]
        raise fail(key, f"not a valid {neutral} value: {value!r}{known}") from None


# --------------------------------------------------------------------------- line numbers

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGNMENT = re.compile(r"^\s*((?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_.\- ]+?)+)\s*=")


def _split_key(key: str) -> list[str]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([^.\s\"']+)", key)
    out: list[str] = []
    for quoted, literal, bare in parts:
        out.extend((quoted or literal or bare).split("."))
    return out


def _line_of(text: str, loc: tuple[str, ...]) -> int | None:
    """1-based line of the TOML line that defines ``loc`` (or its nearest parent)."""
    target: list[str] = []
    for part in loc:
        target.extend(str(part).split("."))
    best: tuple[int, int] | None = None  # (matched length, line)
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header is not None:
            table = _split_key(header.group(1))
            path = table
        else:
            assignment = _ASSIGNMENT.match(line)
            if assignment is None:
                continue
            path = table + _split_key(assignment.group(1))
        if target[: len(path)] == path and (best is None or len(path) > best[0]):
            best = (len(path), number)
    return best[1] if best is not None else None
