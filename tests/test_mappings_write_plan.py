"""``to_fields`` on its remembered write plan writes exactly what the plain loop over
the profile's rules wrote: the same fields, values, key order and losses, for random
incidents on every side and text format, with and without ``only``."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mappings_roundtrip import CONTEXTS, PROFILE, incidents

from mappings.mapper import (
    MappingContext,
    VendorFields,
    _fallback,
    _field_key,
    _map_to,
    _side,
    to_fields,
)
from mappings.model import Incident, Status
from mappings.profile import WILDCARD, MappingError, Profile, load_profile, shipped_profiles


def plain_to_fields(side: Any, incident: Incident, profile: Profile,
                    ctx: MappingContext | None = None, *,
                    only: Collection[str] | None = None) -> VendorFields:
    """``to_fields`` as it was before its write plan: every look-up per rule and call."""
    side = _side(side)
    ctx = ctx or MappingContext()
    wanted = None if only is None else set(only)
    if wanted is not None and side == "jira":
        sharing = {rule.neutral for rule in profile.rules.values()
                   if rule.writes_to(side) and rule.sides[side].field == "labels"}
        if wanted & sharing:
            wanted |= sharing
    out: dict[str, Any] = {}
    losses: list[str] = []
    for rule in profile.rules.values():
        if not rule.writes_to(side):
            continue
        by_status = incident.status.value in rule.required_for
        required = by_status or WILDCARD in rule.required_for
        if wanted is not None and rule.neutral not in wanted and not (
            by_status and "status" in wanted
        ):
            continue
        if rule.neutral.startswith("custom."):
            value = incident.custom.get(rule.neutral[len("custom."):])
        else:
            value = getattr(incident, rule.neutral)
        if rule.neutral == "priority" and value is None:
            value = incident.effective_priority
            losses.append(f"priority: unset; wrote the impact x urgency value {int(value)}")
        if required and (value is None or (isinstance(value, str) and not value.strip())):
            value = _fallback(rule, ctx)
            when = f" on a {incident.status.value} incident" if by_status else ""
            losses.append(f"{rule.neutral}: empty{when}; wrote the fallback {value!r} to {side}")
        mapped, lost = _map_to(rule, side, value)
        losses.extend(lost)
        raw, lost = rule.sides[side].transform.write(mapped, side, ctx)
        losses.extend(f"{rule.neutral}: {reason}" for reason in lost)
        key = _field_key(profile, rule, side, ctx)
        if key in out and isinstance(out[key], list) and isinstance(raw, list):
            raw = sorted(set(out[key]) | set(raw))
        out[key] = raw
    return VendorFields(fields=out, losses=losses)


FIELDS = [*PROFILE.neutral_fields(), "status", "nothing.mapped"]
ORIGINS = ["", "Jira OPS-7", "ServiceNow INC0010001"]


def _same(one: VendorFields, two: VendorFields) -> None:
    assert one == two
    assert list(one.fields) == list(two.fields)   # the order sent, too


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incident=incidents, which=st.sampled_from(range(len(CONTEXTS))),
       only=st.none() | st.lists(st.sampled_from(FIELDS), max_size=5),
       origin=st.sampled_from(ORIGINS))
def test_the_write_plan_writes_what_the_plain_loop_wrote(
    incident: Incident, which: int, only: list[str] | None, origin: str
) -> None:
    side, ctx = CONTEXTS[which]
    ctx = MappingContext(text_format=ctx.text_format, field_ids=ctx.field_ids, origin=origin)
    for _ in range(2):   # the second call comes from the remembered plan
        _same(to_fields(side, incident, PROFILE, ctx, only=only),
              plain_to_fields(side, incident, PROFILE, ctx, only=only))


@pytest.mark.parametrize("name", shipped_profiles())
def test_every_shipped_profile_writes_every_status_as_before(name: str) -> None:
    profile = load_profile(name)
    for side, ctx in CONTEXTS:
        for status in Status:
            incident = Incident(title="t", status=status)
            for only in (None, ["status"], ["title"]):
                _same(to_fields(side, incident, profile, ctx, only=only),
                      plain_to_fields(side, incident, profile, ctx, only=only))


def test_a_field_name_the_site_lacks_is_refused_only_when_written() -> None:
    # Without the site's ids the named Jira fields (Impact, Urgency) cannot be looked up:
    # a write that carries them fails as before, one that does not goes through.
    bare = MappingContext(text_format="adf")
    incident = Incident(title="VPN down")
    with pytest.raises(MappingError):
        plain_to_fields("jira", incident, PROFILE, bare)
    with pytest.raises(MappingError):
        to_fields("jira", incident, PROFILE, bare)
    _same(to_fields("jira", incident, PROFILE, bare, only=["title"]),
          plain_to_fields("jira", incident, PROFILE, bare, only=["title"]))
