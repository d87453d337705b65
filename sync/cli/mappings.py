"""``incident-sync mappings``: look at a mapping profile and try it on a sample record.

Contract:
- ``mappings show [--profile P] [--config C] [--format table|json|csv]`` prints
  the effective profile (after ``extends``): neutral field, ServiceNow field,
  Jira field, direction, owner, transforms and the value maps, every entry of
  every map (never a summary, never a cut cell, see :mod:`sync.output`).
- ``mappings test --record FILE.json --side servicenow|jira [--profile P]
  [--text-format adf|wiki] [--field-ids FILE.json]`` maps a sample raw record
  to the neutral incident and on to the other side's fields, and prints both
  as JSON (``incident``, ``<other side>`` with ``fields`` and ``losses``).
  Nothing is contacted, so people and groups are not looked up: ``losses``
  names every reference the preview could not resolve (one the record holds
  but offline mapping cannot read, and one the run would look up on the other
  side), instead of a bare ``null``.
- Without ``--profile`` the profile is the config's ``[sync] mapping``; when no
  config file exists at the default place, the shipped "default".
- Bad input is one line on stderr with exit status 2 (MappingError becomes a
  ConfigError through :func:`config_error`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from mappings.mapper import MappingContext, RecordError, VendorFields, to_fields, to_incident
from mappings.model import Incident
from mappings.profile import FieldRule, MappingError, Profile, load_profile
from mappings.transforms import GroupByName, UserByEmail, unwrap
from sync.cli.app import ConfigOption, fail, reported_errors, settings_from, stdout
from sync.errors import EXIT_CONFIG, ConfigError
from sync.output import TableFormat, TableFormatOption, print_csv, print_json, print_table
from sync.settings import DEFAULT_CONFIG


class SideChoice(StrEnum):
    servicenow = "servicenow"
    jira = "jira"


class TextFormat(StrEnum):
    adf = "adf"
    wiki = "wiki"
    plain = "plain"


ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="Shipped profile name or TOML path. Default: the"
                 " config's [sync] mapping."),
]


def config_error(error: MappingError) -> ConfigError:
    """The CLI's error for a broken profile; its text is the MappingError's one line."""
    where = f"{error.key} (line {error.line})" if error.line else error.key
    return ConfigError(error.source, [f"{where}: {error.reason}"])


def _profile(profile: str | None, config: Path) -> Profile:
    if profile is not None:
        name, base_dir = profile, Path.cwd()
    elif config == Path(DEFAULT_CONFIG) and not config.exists():
        name, base_dir = "default", None
    else:
        settings = settings_from(config, need_secrets=False)
        name = settings.sync.mapping
        base_dir = settings.source.parent if settings.source is not None else None
    try:
        return load_profile(name, base_dir=base_dir)
    except MappingError as error:
        raise config_error(error) from None


# --------------------------------------------------------------------------- show


def _side_cell(rule: FieldRule, side: str) -> str:
    mapping = rule.sides.get(side)
    return mapping.field if mapping is not None else "-"


def _transforms(rule: FieldRule) -> str:
    parts = []
    for side, mapping in rule.sides.items():
        described = mapping.transform.describe()
        if described:
            parts.append(f"{'SN' if side == 'servicenow' else 'Jira'}: {described}")
    return "\n".join(parts) or "-"


def _pairs(table: dict[str, Any]) -> str:
    return ", ".join(f"{k}→{v}" for k, v in table.items())


def _maps(rule: FieldRule) -> str:
    """Every value-map entry: the write map in full, and read entries it does not imply."""
    parts = []
    for side in rule.sides:
        label = "SN" if side == "servicenow" else "Jira"
        to_map = rule.to_maps.get(side, {})
        from_map = rule.from_maps.get(side, {})
        if to_map:
            parts.append(f"to {label}: {_pairs(to_map)}")
        # Read entries that merely invert the write map say nothing new.
        extra = {k: v for k, v in from_map.items() if to_map.get(str(v)) != k}
        if extra:
            parts.append(f"also read from {label}: {_pairs(extra)}")
    if rule.default is not None:
        parts.append(f"default {rule.default!s}")
    if rule.required_for:
        parts.append(f"required for {', '.join(sorted(rule.required_for))}:"
                     f" {rule.fallback!s}")
    return "\n".join(parts) or "-"


def rule_json(rule: FieldRule) -> dict[str, Any]:
    """One row of the effective profile for scripts: every map entry, JSON values."""
    sides = {}
    for side in ("servicenow", "jira"):
        mapping = rule.sides.get(side)
        sides[side] = None if mapping is None else {
            "field": mapping.field,
            "transform": mapping.transform.describe() or None,
            "to_map": _jsonable(rule.to_maps.get(side, {})),
            "from_map": _jsonable(rule.from_maps.get(side, {})),
        }
    return {
        "neutral": rule.neutral,
        **sides,
        "direction": rule.direction,
        "owner": rule.owner,
        "default": _jsonable(rule.default),
        "required_for": sorted(rule.required_for),
        "fallback": _jsonable(rule.fallback),
    }


SHOW_COLUMNS = ["neutral", "servicenow", "jira", "direction", "owner", "transform",
                "value_maps"]


def show(profile: ProfileOption = None, config: ConfigOption = Path(DEFAULT_CONFIG),
         output: TableFormatOption = TableFormat.TABLE) -> None:
    """Print the effective mapping (after extends): a table, or json / csv."""
    with reported_errors():
        loaded = _profile(profile, config)
    rules = list(loaded.rules.values())
    if output is TableFormat.JSON:
        print_json(stdout, {"profile": loaded.name, "source": str(loaded.source),
                            "fields": [rule_json(rule) for rule in rules]})
        return
    rows = [
        {"neutral": rule.neutral, "servicenow": _side_cell(rule, "servicenow"),
         "jira": _side_cell(rule, "jira"), "direction": rule.direction,
         "owner": rule.owner or "-", "transform": _transforms(rule), "value_maps": _maps(rule)}
        for rule in rules
    ]
    if output is TableFormat.CSV:
        print_csv(stdout, SHOW_COLUMNS, rows)
        return
    table = Table(title=f"mapping {loaded.name} ({loaded.source})", show_lines=True)
    for column in ("neutral", "ServiceNow", "Jira", "direction", "owner", "transform",
                   "value maps"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text(row[column]) for column in SHOW_COLUMNS))
    print_table(stdout, table)


# --------------------------------------------------------------------------- test


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        fail(f"{path}: {what} not found", EXIT_CONFIG)
    except (OSError, UnicodeDecodeError) as error:
        fail(f"{path}: cannot read {what}: {error}", EXIT_CONFIG)
    except json.JSONDecodeError as error:
        fail(f"{path}: {what} is not JSON: {error.msg} (line {error.lineno})", EXIT_CONFIG)


def _record_fields(data: Any, side: str, path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """(raw fields, Jira field name -> id) from the shapes the vendors' APIs return."""
    names: dict[str, str] = {}
    if isinstance(data, dict) and "result" in data:  # ServiceNow Table API envelope
        data = data["result"]
        if isinstance(data, list):
            if not data:
                fail(f"{path}: record: 'result' is an empty list", EXIT_CONFIG)
            data = data[0]
    if isinstance(data, dict) and isinstance(data.get("fields"), dict):  # a Jira issue
        if isinstance(data.get("names"), dict):
            names = {str(n): str(i) for i, n in data["names"].items()}
        data = data["fields"]
    if not isinstance(data, dict):
        fail(f"{path}: record: expected a JSON object of {side} fields", EXIT_CONFIG)
    return data, names


def _field_ids(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    data = _read_json(path, "field ids")
    if isinstance(data, list):  # GET /rest/api/2/field
        return {str(f["name"]): str(f["id"]) for f in data
                if isinstance(f, dict) and "name" in f and "id" in f}
    if isinstance(data, dict):
        return {str(k): str(v) for k, v in data.items()}
    fail(f"{path}: field ids: expected a list of fields or a name -> id object", EXIT_CONFIG)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def _reference_kind(rule: FieldRule, side: str) -> tuple[str, str] | None:
    """("user", "email") / ("group", "name") when ``side`` holds a person or a group."""
    mapping = rule.sides.get(side)
    if mapping is None:
        return None
    if isinstance(mapping.transform, UserByEmail):
        return "user", UserByEmail.walk
    if isinstance(mapping.transform, GroupByName):
        return "group", GroupByName.walk
    return None


def _neutral_value(incident: Incident, name: str) -> Any:
    if name.startswith("custom."):
        return incident.custom.get(name.removeprefix("custom."))
    return getattr(incident, name)


def _shown(raw: Any) -> str:
    """A raw reference as the record shows it: display value and sys_id when both."""
    if isinstance(raw, dict):
        display, value = raw.get("display_value"), raw.get("value")
        if display and value and display != value:
            return f"{display!r} (sys_id {value})"
        raw = unwrap(raw)
    return repr(raw)


def reference_losses(profile: Profile, source: str, raw: dict[str, Any], incident: Incident,
                     written: VendorFields, ctx: MappingContext) -> list[str]:
    """What ``mappings test`` could not resolve offline, one line per reference.

    People and groups travel by email and by name; the other side's id is looked
    up by the connector when a run writes. Offline nothing is looked up, so a
    reference the record holds without its email/name (a bare ServiceNow sys_id,
    a display value) maps to nobody, and one that maps is written as a lookup key
    (``{"$user": email}``), not as the other side's id. Both are said here.
    """
    other = "jira" if source == "servicenow" else "servicenow"
    notes: list[str] = []
    for rule in profile.rules.values():
        value = _neutral_value(incident, rule.neutral)
        found = _reference_kind(rule, source)
        if found is not None and value is None:
            kind, walk = found
            field = rule.sides[source].field
            held = raw.get(field)
            if unwrap(held) is not None:
                need = f"{field}.{walk}" if source == "servicenow" else f"the {walk}"
                notes.append(
                    f"{rule.neutral}: {source} {field} holds the {kind} {_shown(held)} but no"
                    f" {need}; {kind}s are matched by {walk}, which offline mapping cannot look"
                    f" up, so this preview maps nobody (a run reads {need} from the tool)"
                )
        found = _reference_kind(rule, other)
        if found is None or value is None:
            continue
        kind, walk = found
        if other == "jira" and kind == "group":
            continue  # Jira takes a group as its name (a text field): nothing to look up
        key = profile.jira_id(rule, ctx) if other == "jira" else rule.sides[other].field
        target = written.fields.get(key)
        if isinstance(target, dict) and len(target) == 1 and next(iter(target.values())):
            notes.append(
                f"{rule.neutral}: {other} {rule.sides[other].field} is the {kind} with {walk}"
                f" {next(iter(target.values()))!r}, not resolved offline; a run looks it up on"
                f" {other} when it writes (one {other} does not know is not assigned, with a"
                " warning)"
            )
    return notes


def test(
    record: Annotated[Path, typer.Option("--record", "-r", help="Raw record (JSON) as the"
                                         " vendor's API returns it.")],
    side: Annotated[SideChoice, typer.Option("--side", "-s", help="Which tool the record"
                                             " comes from.")],
    profile: ProfileOption = None,
    text_format: Annotated[TextFormat | None, typer.Option(
        "--text-format", help="Jira rich text: adf (Cloud v3) or wiki (v2). Default: adf,"
        " or wiki for a Jira record whose description is a string.")] = None,
    field_ids: Annotated[Path | None, typer.Option(
        "--field-ids", help="Jira fields (GET /rest/api/2/field JSON, or name -> id) to"
        " resolve field names; a Jira record's expand=names is used too.")] = None,
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Map a sample record to the neutral incident and to the other side's fields."""
    with reported_errors():
        loaded = _profile(profile, config)
        source = str(side.value)
        raw, names = _record_fields(_read_json(record, "record"), source, record)
        ids = {**names, **_field_ids(field_ids)}
        # Names nobody resolved stay names, so a preview still shows where values go.
        for rule in loaded.rules.values():
            jira = rule.sides.get("jira")
            if jira is not None:
                ids.setdefault(jira.field, jira.field)
        fmt = text_format.value if text_format is not None else (
            "wiki" if source == "jira" and isinstance(raw.get("description"), str) else "adf")
        other = "jira" if source == "servicenow" else "servicenow"
        ctx = MappingContext(text_format=fmt, field_ids=ids, origin=f"{source} record")
        try:
            incident = to_incident(source, raw, loaded, ctx)
            written = to_fields(other, incident, loaded, ctx)
        except RecordError as error:
            fail(f"{record}: {error}", EXIT_CONFIG)
        except MappingError as error:
            raise config_error(error) from None
        losses = [*written.losses,
                  *reference_losses(loaded, source, raw, incident, written, ctx)]
        output = {
            "incident": incident.model_dump(mode="json"),
            other: {"fields": _jsonable(written.fields), "losses": losses},
        }
        stdout.print(json.dumps(output, indent=2, ensure_ascii=False), markup=False)
