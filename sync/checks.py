"""What ``incident-sync check`` verifies.

Contract: :func:`offline_checks` validates the files a config points at and
contacts nothing; it returns one ``what: ok`` line per file and raises
ConfigError on the first broken one. :func:`online_results` reaches both tools
and returns what passed and failed with the exit status; :func:`online_check`
also prints them as a table (cells never cut, :mod:`sync.output`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.base import CheckResult, ConnectorError, FatalError
from sync.errors import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_UNREACHABLE
from sync.settings import Settings

if TYPE_CHECKING:
    from mappings.mapper import MappingContext
    from mappings.profile import Profile


def offline_checks(settings: Settings) -> list[str]:
    """Validate config (already loaded), mapping and rules without any I/O but file reads."""
    return [f"config {settings.source}: ok", _mapping_check(settings), _rules_check(settings)]


def _rules_check(settings: Settings) -> str:
    from sync.factory import build_rules

    rules = build_rules(settings)  # ConfigError naming the key when it cannot be honoured
    return f"rules: {len(rules)} configured" if rules else "rules: none configured"


def _mapping_check(settings: Settings) -> str:
    """Load the configured mapping profile; a broken one is a ConfigError naming its key."""
    from mappings.profile import MappingError, load_profile
    from sync.errors import ConfigError

    base_dir = settings.source.parent if settings.source is not None else None
    try:
        profile = load_profile(settings.sync.mapping, base_dir=base_dir)
    except MappingError as error:
        where = f"{error.key} (line {error.line})" if error.line else error.key
        raise ConfigError(error.source, [f"{where}: {error.reason}"]) from None
    return f"mapping {profile.name}: ok ({len(profile.neutral_fields())} fields)"


def vendor_statuses(profile: Profile, side: str, ctx: MappingContext) -> list[str]:
    """The status values the mapping writes on ``side``, one per neutral status.

    Found by writing each neutral status through the mapping: the vendor field
    that is always written and holds a different string for each status is the
    status field (ServiceNow ``state``, Jira ``status``), whatever the profile
    calls it. Extra fields written along (close codes, resolutions) are not.
    """
    from mappings.mapper import to_fields
    from mappings.model import Incident, Status

    if not profile.travels("status", side):
        return []
    written = [to_fields(side, Incident(status=status), profile, ctx, only=["status"]).fields
               for status in Status]
    common = set.intersection(*(set(fields) for fields in written)) if written else set()
    values: list[str] = []
    for key in sorted(common):
        seen = [fields[key] for fields in written]
        if all(isinstance(v, str) for v in seen) and len({json.dumps(v) for v in seen}) > 1:
            values.extend(v for v in seen if v not in values)
    return values


def online_check(settings: Settings, console: Console) -> int:
    """:func:`online_results`, printed as a table with a tally; returns the exit status."""
    results, code = online_results(settings)
    print_results(results, console)
    return code


def online_results(settings: Settings) -> tuple[list[CheckResult], int]:
    """Reach both tools and verify access, scope, fields and statuses.

    Exit status: 3 when a tool cannot be reached or refuses the credentials, 1
    when something the mapping needs is missing, 0 when every check passed.
    """
    from mappings.mapper import MappingContext
    from sync.factory import build_connectors, build_profile

    profile = build_profile(settings)
    results: list[CheckResult] = []
    code = EXIT_OK
    for connector in build_connectors(settings):
        side = str(connector.side)
        try:
            try:
                info = connector.open()
            except ConnectorError as error:
                # Fatal (refused, auth) or still failing after the retries: either
                # way this tool cannot be used now.
                advice = getattr(error, "advice", "")
                results.append(CheckResult(connector.side, "reach and sign in", False,
                                           f"{error}{'; ' + advice if advice else ''}"))
                code = EXIT_UNREACHABLE
                continue
            ctx = MappingContext(text_format=info.text_format,
                                 field_ids=dict(getattr(connector, "field_ids", None) or {}))
            fields = profile.vendor_fields(side, ctx)
            try:
                rows = connector.check(fields, vendor_statuses(profile, side, ctx))
            except FatalError as error:
                rows = [CheckResult(connector.side, "reach and sign in", False, str(error))]
                code = EXIT_UNREACHABLE
            if code != EXIT_UNREACHABLE:
                rows.extend(_rules_groups(settings, connector))
            results.extend(rows)
            if any(not row.ok for row in rows) and code == EXIT_OK:
                code = EXIT_ITEMS_FAILED
        finally:
            connector.close()

    return results, code


def _rules_groups(settings: Settings, connector: object) -> list[CheckResult]:
    """Every group the rules assign to or notify exists on the tool that holds groups.

    Only ServiceNow keeps assignment groups on a stock site (the connector has
    ``group_ids``); a side without it has nothing to check.
    """
    from sync.factory import build_rules
    from sync.rules import rule_groups

    group_ids = getattr(connector, "group_ids", None)
    names = rule_groups(build_rules(settings)) if settings.sync.rules else []
    if group_ids is None or not names:
        return []
    found = group_ids(names)
    missing = [name for name in names if not found.get(name)]
    side = connector.side  # type: ignore[attr-defined]
    if missing:
        return [CheckResult(side, "rules: groups exist", False,
                            f"{settings.sync.rules}: no group named "
                            + ", ".join(repr(m) for m in missing)
                            + " (create it, or change the rule)")]
    return [CheckResult(side, "rules: groups exist", True, ", ".join(names))]


def print_results(results: list[CheckResult], console: Console) -> None:
    """The check table and the ``N passed, M failed`` tally."""
    from sync.output import print_table

    table = Table(show_edge=False, pad_edge=False)
    table.add_column("tool")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for row in results:
        table.add_row(str(row.side), row.what, "[green]ok[/green]" if row.ok
                      else "[red]FAILED[/red]", escape(row.detail))
    print_table(console, table)
    failed = sum(1 for row in results if not row.ok)
    console.print(f"{len(results) - failed} passed, {failed} failed", markup=False)
