"""The mapping's fast paths read exactly what the plain paths read: per-site field ids,
ServiceNow date-times, empty values, and the generated reader of a read plan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.mapper import (
    _CUSTOM,
    _SKIP,
    MappingContext,
    RecordError,
    _map_from,
    _read_plan,
    _record_reader,
    to_incident,
)
from mappings.model import Impact, Status
from mappings.profile import Profile, load_profile
from mappings.transforms import MISSING, Transform


def test_each_jira_site_reads_its_own_field_ids_with_one_profile() -> None:
    profile = load_profile("default")
    one = MappingContext(field_ids={"Impact": "customfield_10004", "Urgency": "customfield_10005"})
    two = MappingContext(field_ids={"Impact": "customfield_20001", "Urgency": "customfield_20002"})
    fields = {"summary": "VPN down", "customfield_10004": {"value": "Extensive / Widespread"},
              "customfield_20001": {"value": "Minor / Localized"}}
    for _ in range(2):   # the second read of each site comes from its remembered plan
        assert to_incident("jira", fields, profile, one).impact is Impact.HIGH
        assert to_incident("jira", fields, profile, two).impact is Impact.LOW


@pytest.mark.parametrize("text", ["2026-03-02T09:00:00",
                                  "2026-02-30 09:00:00", "2026-03-02 09:00:0x",
                                  "2026-03-02 09:00:00+01:00"])
def test_servicenow_date_times_other_than_the_table_api_shape_are_refused(text: str) -> None:
    profile = load_profile("default")
    with pytest.raises(RecordError, match="not a servicenow date-time"):
        to_incident("servicenow", {"opened_at": text}, profile)


def test_servicenow_date_times_and_empty_values_read_as_before() -> None:
    profile = load_profile("default")
    incident = to_incident("servicenow", {
        "short_description": "", "state": "", "impact": "1", "opened_at": "2026-03-02 09:05:07",
        "sys_updated_on": "", "hold_reason": "", "resolved_at": "2026-03-02 9:00:00"},
        profile)
    assert incident.opened_at == datetime(2026, 3, 2, 9, 5, 7, tzinfo=UTC)
    assert incident.updated_at is None
    # A shape only strptime takes (an hour of one digit) still reads as strptime reads it.
    assert incident.resolved_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert (incident.title, incident.status, incident.impact) == ("", Status.NEW, Impact.HIGH)
    assert incident.custom == {} and incident.labels == []


def _outcome(call: Callable[[], object]) -> object:
    try:
        return ("value", call())
    except ValueError as error:
        return ("error", str(error))


_STAMPS = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S").rjust(19, "0")),
    st.text(alphabet="0123456789-: T\t\n\x1fZ+", min_size=17, max_size=21),
    st.sampled_from(["", " 2026-03-02 09:00:00", "2026-03-02 09:00:00 ", "2026-02-30 09:00:00",
                     "2026-03-02 24:00:00", "\u0662026-03-02 09:00:00"]),
)


@pytest.mark.parametrize("name", ["opened_at", "impact", "short_description"])
@given(text=_STAMPS)
def test_one_call_reads_give_what_the_generic_read_gives(name: str, text: str) -> None:
    # DateTime, IntString and Identity read plain strings in one call; the generic
    # path (Transform.read: unwrap, then decode) must say exactly the same.
    profile = load_profile("default")
    (rule,) = [r for r in profile.rules.values()
               if "servicenow" in r.sides and r.sides["servicenow"].field == name]
    transform = rule.sides["servicenow"].transform
    ctx = MappingContext()
    record = {name: text}
    assert _outcome(lambda: transform.read(record, name, "servicenow", ctx)) == _outcome(
        lambda: Transform.read(transform, record, name, "servicenow", ctx))


def _loop_over_the_plan(side: str, fields: dict[str, Any], profile: Profile,
                        ctx: MappingContext) -> dict[str, Any]:
    """What to_incident handed the model before its reads were generated: the plain
    loop over the read plan, kept here as the reference the generated reader must equal."""
    data: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for neutral, key, read, direct, empty, table, rule in _read_plan(profile, side, ctx):
        try:
            raw = read(fields, key, side, ctx)
        except ValueError as error:
            raise RecordError(f"{side} field {key}: {error}") from None
        if raw is MISSING:
            continue
        if raw is None or not direct:
            value = table[raw] if table is not None and raw.__class__ is str and raw in table \
                else _map_from(rule, side, raw, key)
        else:
            value = raw
        if value is None:
            if empty is _SKIP or empty is _CUSTOM:
                continue
            value = [] if empty == [] else empty
        elif empty is _CUSTOM:
            custom[neutral] = value
            continue
        data[neutral] = value
    if custom:
        data["custom"] = custom
    return data


_VALUES = st.sampled_from([
    "", "1", "2", "3", "7", " 2 ", "x", "2026-03-02 09:05:07", "2026-02-30 09:00:00",
    "2026-03-02T09:05:07", "a@b.c", "Kim@Example.com", None, 3, 2.0, True,
    {"value": "2"}, {"value": ""}, {"name": "x"}, {"display_value": "y"}, ["a", "b"],
    "network", "Ölé", "snow-x,category-net", {"$user": "a@b.c"}, {"emailAddress": "k@x.y"},
    {"$group": "Ops"}, {"name": "Service Desk"}, {"accountId": "abc"}])
_KEYS = {
    "servicenow": ["short_description", "description", "state", "impact", "urgency",
                   "priority", "category", "subcategory", "assignment_group",
                   "assignment_group.name", "assigned_to.email", "caller_id.email",
                   "close_code", "close_notes", "escalation", "opened_at", "sys_updated_on",
                   "resolved_at", "hold_reason", "assigned_to", "u_team"],
    "jira": ["summary", "description", "status", "priority", "labels", "assignee",
             "reporter", "resolution", "created", "updated", "resolutiondate",
             "customfield_10004", "customfield_10005", "customfield_10006",
             "customfield_10007", "customfield_10008", "customfield_10009", "components"],
}


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["default", "jsm-extended"]),
       side=st.sampled_from(["servicenow", "jira"]),
       text_format=st.sampled_from(["plain", "adf", "wiki"]), data=st.data())
def test_the_generated_reader_gives_what_the_loop_over_the_plan_gives(
        name: str, side: str, text_format: str, data: st.DataObject) -> None:
    profile = load_profile(name)
    ctx = MappingContext(text_format=text_format, field_ids={
        "Impact": "customfield_10004", "Urgency": "customfield_10005",
        "Subcategory": "customfield_10006", "Assignment group": "customfield_10007",
        "Resolution notes": "customfield_10008", "Escalation": "customfield_10009"})
    keys = data.draw(st.lists(st.sampled_from(_KEYS[side]), unique=True))
    record = {key: data.draw(_VALUES) for key in keys}
    reader = _record_reader(profile, side, ctx)
    assert _outcome(lambda: reader(record, side, ctx)) == _outcome(
        lambda: _loop_over_the_plan(side, record, profile, ctx))
