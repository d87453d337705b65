"""A mapping profile checked against what the connected sites really offer.

Contract:
- :func:`verify_side` compares every row of a profile that maps to one side
  with that side's :class:`connectors.base.SiteField` list and returns one
  :class:`FieldFinding` per problem: the field is not on the site (by id, or
  by display name on the sides where profiles may use names), a value the row
  writes is not among the select / choice values the field offers, or a field
  the row writes cannot be set on create or edit (the connector's ``note`` says
  why: a screen it is missing from, a read-only column). Each finding names
  the closest names or values the site does have (difflib). Pure: no I/O, and
  no vendor knowledge: that comes with the site fields and the profile.
- The status row is left to the connectors' own status check.
- A row with ``optional = true`` is *skipped* instead of failing:
  :meth:`FieldFinding.skipped` is True and :func:`effective_profile` drops it.
- :func:`site_checked_profile` is what ``plan`` and ``run`` call before anything
  is written: it reads both sites' fields, raises :class:`sync.errors.ConfigError`
  (exit status 2, ONE line naming the profile file, the row and the field) when
  a required row cannot work, and otherwise returns the profile to run with,
  minus the skipped optional rows, each skip logged as one warning.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from connectors.base import Connector, SiteField
from mappings.profile import NAMED_FIELD_SIDES, FieldRule, Profile
from sync.actions import side_title
from sync.errors import ConfigError

logger = logging.getLogger(__name__)

_SIMILAR = 3


@dataclass(frozen=True)
class FieldFinding:
    """One profile row that the connected site cannot honour."""

    side: str
    neutral: str
    field: str                     # as the profile names it
    problem: str                   # "not on this site", "does not offer 'Sevre'", ...
    similar: tuple[str, ...] = ()
    optional: bool = False

    @property
    def skipped(self) -> bool:
        return self.optional

    @property
    def key(self) -> str:
        """The profile key of the row's side: ``fields.subcategory.jira``,
        ``fields.custom.severity.servicenow``."""
        return f"fields.{self.neutral}.{self.side}"

    @property
    def detail(self) -> str:
        """``Subcategoryy: not on this site; similar: Subcategory (customfield_10007)``."""
        text = f"{self.field}: {self.problem}"
        if self.similar:
            text += "; similar: " + ", ".join(self.similar)
        if self.optional:
            text += "; optional row skipped"
        return text

    def line(self, source: str) -> str:
        """One line naming the profile file, the row and the field."""
        return (f"{source}: {self.key}: {side_title(self.side)} field "
                f"{self.field!r}: {self.problem}"
                + (f"; similar: {', '.join(self.similar)}" if self.similar else ""))


def _label(site_field: SiteField) -> str:
    """``Sub-category (customfield_10231)``: what people read, then what a profile writes."""
    if site_field.name == site_field.id:
        return site_field.id
    return f"{site_field.name} ({site_field.id})"


def find_field(side: str, name: str, fields: Sequence[SiteField]) -> SiteField | None:
    """The site field a profile names: by id; on a side whose profiles may use display
    names, by name too (exact, then in any case, as the mapping resolves it)."""
    for site_field in fields:
        if site_field.id == name:
            return site_field
    if side not in NAMED_FIELD_SIDES:
        return None
    for site_field in fields:
        if site_field.name == name:
            return site_field
    folded = name.casefold()
    return next((f for f in fields if f.name.casefold() == folded), None)


def similar_fields(name: str, fields: Sequence[SiteField]) -> tuple[str, ...]:
    """The closest names or ids the site has, as ``Name (id)``."""
    keys: dict[str, SiteField] = {}
    for site_field in fields:
        keys.setdefault(site_field.id.casefold(), site_field)
        keys.setdefault(site_field.name.casefold(), site_field)
    out: list[str] = []
    for match in difflib.get_close_matches(name.casefold(), list(keys), n=_SIMILAR * 2,
                                           cutoff=0.6):
        label = _label(keys[match])
        if label not in out:
            out.append(label)
    return tuple(out[:_SIMILAR])


def similar_values(value: str, allowed: Sequence[str]) -> tuple[str, ...]:
    folded = {v.casefold(): v for v in allowed}
    matches = difflib.get_close_matches(value.casefold(), list(folded), n=_SIMILAR, cutoff=0.5)
    return tuple(repr(folded[m]) for m in matches)


def written_values(rule: FieldRule, side: str) -> list[str]:
    """The vendor values a row can write to ``side`` as given in the profile.

    The ``to_<side>`` map's values (its ``"*"`` entry included); without a map, a
    plain fallback is written as it is. Other values come from records, which a
    profile cannot know."""
    to_map = rule.to_maps.get(side)
    values: list[object] = list(to_map.values()) if to_map else []
    if not to_map and rule.fallback is not None and "{" not in str(rule.fallback):
        values.append(rule.fallback)
    return list(dict.fromkeys(str(v) for v in values))


def verify_side(profile: Profile, side: str,
                fields: Sequence[SiteField]) -> list[FieldFinding]:
    """Every problem of ``profile``'s ``side`` against the site's ``fields`` (in row order).

    An empty ``fields`` means the site could not be read: nothing is claimed.
    """
    if not fields:
        return []
    findings: list[FieldFinding] = []
    for rule in profile.rules.values():
        mapping = rule.sides.get(side)
        if mapping is None:
            continue

        def found(problem: str, similar: Iterable[str] = (), *, name: str = mapping.field,
                  rule: FieldRule = rule) -> None:
            findings.append(FieldFinding(side, rule.neutral, name, problem, tuple(similar),
                                         rule.optional))

        site_field = find_field(side, mapping.field, fields)
        if site_field is None:
            found("not on this site", similar_fields(mapping.field, fields))
            continue
        if rule.neutral == "status" or not rule.writes_to(side):
            continue  # statuses have their own check; read-only rows need no screen
        problem = _unsettable(site_field)
        if problem:
            found(problem)
            continue
        if site_field.allowed is not None:
            allowed = list(site_field.allowed)
            for value in written_values(rule, side):
                if value not in allowed:
                    offers = ", ".join(repr(v) for v in allowed[:12]) or "nothing"
                    more = ", ..." if len(allowed) > 12 else ""
                    found(f"does not offer {value!r} (offers: {offers}{more})",
                          similar_values(value, allowed))
                    break
    return findings


def _unsettable(site_field: SiteField) -> str:
    """Why a written field cannot take our writes ("" when it can, or nobody can tell)."""
    if site_field.on_create is False:
        return f"{site_field.note or 'cannot be set on create'}, so it cannot be set"
    if site_field.on_edit is False:
        return f"{site_field.note or 'cannot be set on edit'}, so it cannot be changed"
    return ""


def effective_profile(profile: Profile, findings: Iterable[FieldFinding]) -> Profile:
    """The profile minus every row with a finding (skipped optional ones and failed ones)."""
    return profile.without({f.neutral for f in findings})


def failure_line(source: str, findings: Sequence[FieldFinding]) -> str:
    """ONE line for ``plan`` / ``run``: the first failing row, and how many more."""
    failed = [f for f in findings if not f.skipped]
    text = failed[0].line(source)
    if len(failed) > 1:
        text += f" (and {len(failed) - 1} more: run incident-sync check)"
    return text


def site_checked_profile(
    profile: Profile, connectors: Mapping[str, Connector],
    read_fields: Callable[[str, Connector], Sequence[SiteField]] | None = None,
) -> tuple[Profile, list[str]]:
    """Read each site's fields and check ``profile`` against them, before any write.

    Returns the profile to run with and one warning per skipped optional row
    (each also logged). Raises ConfigError naming the first row that cannot work.
    The connectors must be open already: the engine signs in first
    (and turns a tool that cannot be reached into exit 3), so this module needs
    nothing of the engine and the two do not import each other.
    ``read_fields(side, connector)`` replaces ``connector.site_fields()`` (a
    session reads them through its store's cache).
    """
    findings: list[FieldFinding] = []
    for side, connector in connectors.items():
        if not any(side in rule.sides for rule in profile.rules.values()):
            continue
        fields = (read_fields(side, connector) if read_fields is not None
                  else connector.site_fields())
        findings.extend(verify_side(profile, side, fields))
    if any(not f.skipped for f in findings):
        # ConfigError prefixes the source: the one line is "<profile>: <row>: ...".
        raise ConfigError(profile.source, [failure_line(profile.source, findings)
                                           .removeprefix(f"{profile.source}: ")])
    warnings = [f"{profile.source}: {f.key}: {f.detail}" for f in findings]
    for warning in warnings:
        logger.warning("%s", warning)
    return effective_profile(profile, findings), warnings


__all__ = [
    "FieldFinding",
    "effective_profile",
    "failure_line",
    "find_field",
    "similar_fields",
    "site_checked_profile",
    "verify_side",
]
