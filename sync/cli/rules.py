"""``incident-sync rules``: try the rules on a sample record, contacting nothing.

Contract:
- ``rules test --record FILE.json --side servicenow|jira [--now ISO]
  [--rules FILE] [--profile P] [--config C] [--format text|json]`` maps the
  record to the neutral incident (as ``mappings test`` does: same record
  shapes, same profile choice), runs the rules on it at ``now`` and prints the
  incident before, every rule in file order with whether it fires, why, and
  each field it changes old -> new, and the incident after.
- The rules file is ``--rules``, else the config's ``[sync] rules``; with
  neither, a usage error. ``--now`` is an ISO 8601 time (UTC when it has no
  offset); without it, the current time (so SLA and age tests can be tried on
  old records with a fixed clock).
- Nothing is contacted and nothing is written. Bad input (file, record,
  ``--now``, a broken rules file) is one line on stderr with exit status 2.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from mappings.mapper import MappingContext, RecordError, to_incident
from mappings.model import Incident
from mappings.profile import MappingError
from sync.cli.app import ConfigOption, fail, reported_errors, settings_from, stdout
from sync.cli.mappings import ProfileOption, SideChoice
from sync.errors import EXIT_CONFIG, ConfigError
from sync.rules import NOTE_FIELD, Outcome, RuleSet, evaluate, load_rules
from sync.rules_model import RulesFileError
from sync.settings import DEFAULT_CONFIG


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        fail(f"--now: not an ISO 8601 time: {text!r} (e.g. 2026-03-01T09:30:00Z)",
             EXIT_CONFIG)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ruleset(rules: Path | None, config: Path) -> RuleSet:
    if rules is None:
        if config == Path(DEFAULT_CONFIG) and not config.exists():
            fail("no rules file: pass --rules FILE, or --config with [sync] rules set",
                 EXIT_CONFIG)
        settings = settings_from(config, need_secrets=False)
        if not settings.sync.rules:
            fail(f"{settings.source}: [sync] rules is not set: pass --rules FILE", EXIT_CONFIG)
        rules = settings.resolve_path(settings.sync.rules)
    try:
        return load_rules(rules)
    except RulesFileError as error:
        raise ConfigError("rules", [str(error)]) from None


def _incident(record: Path, side: str, profile: str | None, config: Path) -> Incident:
    # The same profile choice and record shapes as `mappings test`.
    from sync.cli.mappings import _profile, _read_json, _record_fields, config_error

    loaded = _profile(profile, config)
    raw, names = _record_fields(_read_json(record, "record"), side, record)
    # As in `mappings test`: Jira fields nobody resolved to ids are read by their names.
    for rule in loaded.rules.values():
        jira = rule.sides.get("jira")
        if jira is not None:
            names.setdefault(jira.field, jira.field)
    fmt = "wiki" if side == "jira" and isinstance(raw.get("description"), str) else "adf"
    ctx = MappingContext(text_format=fmt, field_ids=names, origin=f"{side} record")
    try:
        return to_incident(side, raw, loaded, ctx)
    except RecordError as error:
        fail(f"{record}: {error}", EXIT_CONFIG)
    except MappingError as error:
        raise config_error(error) from None


def report(before: Incident, ruleset: RuleSet, outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The JSON form of a trial: before, every rule in order, after."""
    by_rule = {m.rule: m for m in outcome.matches}
    rows = []
    for rule in ruleset.rules:
        match = by_rule.get(rule.name)
        rows.append({
            "rule": rule.name,
            "fires": match is not None,
            "why": match.reason if match is not None else None,
            "changes": [f.to_json() for f in outcome.firings if f.rule == rule.name],
            "kept_by_person": list(match.kept_by_person) if match is not None else [],
        })
    return {
        "rules_file": ruleset.source,
        "now": now.isoformat(),
        "before": before.model_dump(mode="json"),
        "rules": rows,
        "after": outcome.incident.model_dump(mode="json"),
        "unstable": outcome.unstable,
    }


def _print_text(data: dict[str, Any]) -> None:
    lines = [f"rules {data['rules_file']} at {data['now']}", "", "incident before:",
             json.dumps(data["before"], indent=2, ensure_ascii=False), "", "rules:"]
    for row in data["rules"]:
        if not row["fires"]:
            lines.append(f"  {row['rule']}: does not fire")
            continue
        lines.append(f"  {row['rule']}: fires because {row['why']}")
        for change in row["changes"]:
            if change["field"] == NOTE_FIELD:
                lines.append(f"    adds internal note: {change['new']}")
            else:
                lines.append(f"    {change['field']}: {change['old']!r} -> {change['new']!r}")
        if not row["changes"]:
            lines.append("    changes nothing (already so)")
    if data["unstable"]:
        lines.append(f"warning: rules {', '.join(data['unstable'])} keep undoing each other;"
                     " the result is where they stopped")
    lines += ["", "incident after:", json.dumps(data["after"], indent=2, ensure_ascii=False)]
    stdout.print("\n".join(lines), markup=False)


def test(
    record: Annotated[Path, typer.Option("--record", "-r", help="Raw record (JSON) as the"
                                         " vendor's API returns it.")],
    side: Annotated[SideChoice, typer.Option("--side", "-s", help="Which tool the record"
                                             " comes from.")],
    now: Annotated[str | None, typer.Option("--now", help="The time to evaluate at (ISO"
                                            " 8601; default: now).")] = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="Rules file. Default: the"
                                               " config's [sync] rules.")] = None,
    profile: ProfileOption = None,
    output: Annotated[OutputFormat, typer.Option("--format", "-f", help="text or json.")]
    = OutputFormat.text,
    config: ConfigOption = Path(DEFAULT_CONFIG),
) -> None:
    """Show the neutral incident, each rule that fires and why, and the result."""
    with reported_errors():
        moment = _parse_now(now)
        ruleset = _ruleset(rules, config)
        before = _incident(record, str(side.value), profile, config)
        outcome = evaluate(before, ruleset, moment, explain=True)
        data = report(before, ruleset, outcome, moment)
        if output is OutputFormat.json:
            stdout.print(json.dumps(data, indent=2, ensure_ascii=False), markup=False)
        else:
            _print_text(data)
