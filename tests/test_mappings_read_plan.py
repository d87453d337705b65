"""The mapping's fast paths read exactly what the plain paths read: per-site field ids,
ServiceNow date-times, empty values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mappings.mapper import MappingContext, RecordError, to_incident
from mappings.model import Impact, Status
from mappings.profile import load_profile


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
