"""What ``incident-sync check`` verifies.

Contract: :func:`offline_checks` validates the files a config points at and
contacts nothing; it returns one ``what: ok`` line per file and raises
ConfigError on the first broken one. :func:`online_results` reaches both tools
and returns a :class:`CheckRow` per check with the exit status (:func:`online_check`
also prints them as a table, cells never cut, :mod:`sync.output`): 3 when
a tool cannot be reached or refuses the credentials, 2 when the mapping
profile names a field, select value or screen the site lacks (every such row
listed with the reason and the closest names the site has; optional rows show
as "skipped"), 1 when another check failed, 0 when all passed.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, NamedTuple

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.base import CheckResult, Connector, ConnectorError, FatalError
from mappings.profile import MappingError
from sync.errors import EXIT_CONFIG, EXIT_ITEMS_FAILED, EXIT_OK, EXIT_UNREACHABLE
from sync.settings import Settings

if TYPE_CHECKING:
    from mappings.mapper import MappingContext
    from mappings.profile import Profile
    from sync.sitecheck import FieldFinding


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


class CheckRow(NamedTuple):
    """One line of the online check: ``result`` is ``ok``, ``FAILED`` or ``skipped``."""

    side: str
    what: str
    result: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.result != "FAILED"


# What a row of the check table says: passed, failed, or an optional row skipped.
_SHOWN = {"ok": "[green]ok[/green]", "FAILED": "[red]FAILED[/red]",
          "skipped": "[yellow]skipped[/yellow]"}


def _site_rows(profile: Profile, connector: Connector) -> tuple[list[tuple[str, str, str]],
                                                                  list[FieldFinding]]:
    """(check, result, detail) rows of the profile against ``connector``'s site fields."""
    from sync.sitecheck import verify_side

    side = str(connector.side)
    mapped = sum(1 for rule in profile.rules.values() if side in rule.sides)
    if not mapped:
        return [], []
    # A ConnectorError here (the tool failing, not the profile) leaves to the caller.
    fields = connector.site_fields()
    if not fields:
        return [("profile fields on the site", "ok",
                 "not verified: the site shows this user no field list")], []
    findings = verify_side(profile, side, fields)
    rows = [(f"field {f.neutral}", "skipped" if f.skipped else "FAILED", f.detail)
            for f in findings]
    rows.insert(0, ("profile fields on the site",
                    "FAILED" if any(not f.skipped for f in findings) else "ok",
                    f"{mapped - len(findings)} of {mapped} mapped fields fit"))
    return rows, findings


def online_check(settings: Settings, console: Console) -> int:
    """:func:`online_results`, printed as a table with a tally; returns the exit status."""
    results, code = online_results(settings)
    print_results(results, console)
    return code


def online_results(settings: Settings) -> tuple[list[CheckRow], int]:
    """Reach both tools and verify access, scope, fields and statuses.

    Exit status: 3 when a tool cannot be reached or refuses the credentials, 2
    when the profile names something the site lacks, 1 when another check
    failed, 0 when every check passed.
    """
    from mappings.mapper import MappingContext
    from sync.factory import build_connectors, build_profile
    from sync.sitecheck import effective_profile

    profile = build_profile(settings)
    results: list[tuple[str, str, str, str]] = []   # side, check, result, detail
    code = EXIT_OK
    profile_broken = False
    for connector in build_connectors(settings):
        side = str(connector.side)

        def add(rows: list[CheckResult], side: str = side) -> None:
            results.extend((side, r.what, "ok" if r.ok else "FAILED", r.detail) for r in rows)

        try:
            try:
                info = connector.open()
            except ConnectorError as error:
                # Fatal (refused, auth) or still failing after the retries: either
                # way this tool cannot be used now.
                advice = getattr(error, "advice", "")
                add([CheckResult(connector.side, "reach and sign in", False,
                                 f"{error}{'; ' + advice if advice else ''}")])
                code = EXIT_UNREACHABLE
                continue
            try:
                site_rows, findings = _site_rows(profile, connector)
            except ConnectorError as error:
                # The tool failed to answer (not the profile's fault): 3 when it refuses
                # or is gone, else 1 like any other failed check.
                site_rows, findings = [("profile fields on the site", "FAILED", str(error))], []
                if isinstance(error, FatalError):
                    code = EXIT_UNREACHABLE
                elif code == EXIT_OK:
                    code = EXIT_ITEMS_FAILED
            profile_broken = profile_broken or any(not f.skipped for f in findings)
            # The rows the site cannot hold get rows of their own; the remaining
            # checks run on the rest, so one bad name does not hide everything else.
            usable = effective_profile(profile, findings)
            ctx = MappingContext(text_format=info.text_format, field_ids=dict(info.field_ids))
            try:
                fields = usable.vendor_fields(side, ctx)
                rows = connector.check(fields, vendor_statuses(usable, side, ctx))
            except FatalError as error:
                rows = [CheckResult(connector.side, "reach and sign in", False, str(error))]
                code = EXIT_UNREACHABLE
            except MappingError as error:
                rows = [CheckResult(connector.side, "mapped fields", False, error.reason)]
                profile_broken = True
            if code != EXIT_UNREACHABLE:
                rows.extend(_rules_groups(settings, connector))
            add(rows)
            results.extend((side, *row) for row in site_rows)
            if any(not row.ok for row in rows) and code == EXIT_OK:
                code = EXIT_ITEMS_FAILED
        finally:
            connector.close()
    if profile_broken and code != EXIT_UNREACHABLE:
        code = EXIT_CONFIG

    return [CheckRow(*row) for row in results], code


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


def print_results(results: list[CheckRow], console: Console) -> None:
    """The check table and the ``N passed, M failed[, K skipped]`` tally."""
    from sync.output import print_table

    table = Table(show_edge=False, pad_edge=False)
    table.add_column("tool")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for row in results:
        table.add_row(row.side, escape(row.what), _SHOWN[row.result], escape(row.detail))
    print_table(console, table)
    failed = sum(1 for row in results if row.result == "FAILED")
    skipped = sum(1 for row in results if row.result == "skipped")
    console.print(f"{len(results) - failed - skipped} passed, {failed} failed"
                  + (f", {skipped} skipped" if skipped else ""), markup=False)
