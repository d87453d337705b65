"""The default profile fits the sandbox sites it is written for (interfaces.md): every
value it writes exists there, and every value a site can hold reads back as something
that writes the same value again."""

from __future__ import annotations

import pytest

from connectors.sandbox import jira_site, sn_tables
from mappings.mapper import MappingContext, to_fields, to_incident
from mappings.model import Escalation, Impact, Incident, Status, Urgency
from mappings.profile import load_profile

PROFILE = load_profile("default")
CTX = MappingContext(text_format="adf",
                     field_ids={f.name: f.id for f in jira_site.CUSTOM_FIELDS})
OPTIONS = {f.name: [o.name for o in f.options] for f in jira_site.CUSTOM_FIELDS}


def test_every_jira_field_the_profile_names_exists_on_the_site() -> None:
    site = {f.id for f in jira_site.CUSTOM_FIELDS} | set(jira_site.SYSTEM_BY_ID)
    assert set(PROFILE.vendor_fields("jira", CTX)) <= site


def test_every_status_is_written_as_one_the_sites_know() -> None:
    jira_statuses = {s.name for s in jira_site.STATUSES}
    for status in Status:
        incident = Incident(status=status)
        assert to_fields("jira", incident, PROFILE, CTX, only=["status"]).fields["status"] in (
            jira_statuses)
        assert to_fields("servicenow", incident, PROFILE, CTX,
                         only=["status"]).fields["state"] in sn_tables.STATE_LABELS


@pytest.mark.parametrize("status", [s.name for s in jira_site.STATUSES])
def test_every_jira_status_reads_and_writes_back_unchanged(status: str) -> None:
    incident = to_incident("jira", {"status": {"name": status}}, PROFILE, CTX)
    assert to_fields("jira", incident, PROFILE, CTX, only=["status"]).fields["status"] == status


@pytest.mark.parametrize("resolution", [r.name for r in jira_site.RESOLUTIONS])
def test_every_jira_resolution_reads_as_a_servicenow_close_code(resolution: str) -> None:
    incident = to_incident("jira", {"resolution": {"name": resolution}}, PROFILE, CTX)
    assert incident.resolution_code in sn_tables.CLOSE_CODES
    written = to_fields("jira", incident, PROFILE, CTX, only=["resolution_code"])
    assert written.fields["resolution"] == {"name": resolution}


@pytest.mark.parametrize("code", sn_tables.CLOSE_CODES)
def test_every_close_code_is_written_as_a_jira_resolution(code: str) -> None:
    written = to_fields("jira", Incident(resolution_code=code), PROFILE, CTX,
                        only=["resolution_code"])
    assert written.fields["resolution"]["name"] in {r.name for r in jira_site.RESOLUTIONS}


def test_select_options_exist_both_ways() -> None:
    for field, enum, sn_choices in (("Impact", Impact, sn_tables.IMPACT_LABELS),
                                    ("Urgency", Urgency, sn_tables.IMPACT_LABELS),
                                    ("Escalation", Escalation, sn_tables.ESCALATION_LABELS)):
        neutral = field.lower()
        for value in enum:
            incident = Incident(**{neutral: value})
            jira = to_fields("jira", incident, PROFILE, CTX, only=[neutral]).fields
            assert jira[CTX.field_ids[field]]["value"] in OPTIONS[field]
            sn = to_fields("servicenow", incident, PROFILE, CTX, only=[neutral]).fields
            assert sn[neutral] in sn_choices
        for option in OPTIONS[field]:
            read = to_incident("jira", {CTX.field_ids[field]: {"value": option}}, PROFILE, CTX)
            again = to_fields("jira", read, PROFILE, CTX, only=[neutral]).fields
            assert again[CTX.field_ids[field]]["value"] in OPTIONS[field]


def test_categories_are_components_of_the_project() -> None:
    components = {c.name for c in jira_site.COMPONENTS}
    for category in sn_tables.CATEGORY_LABELS:
        written = to_fields("jira", Incident(category=category), PROFILE, CTX,
                            only=["category"])
        assert written.fields["components"][0]["name"] in components
        assert written.losses == []


def test_on_hold_fallback_is_a_hold_reason_servicenow_accepts() -> None:
    fields = to_fields("servicenow", Incident(status=Status.ON_HOLD), PROFILE, CTX,
                       only=["status"]).fields
    assert fields["hold_reason"] in sn_tables.HOLD_REASON_LABELS


def test_priorities_are_the_sites_priorities_and_read_back() -> None:
    names = [p.name for p in jira_site.PRIORITIES]
    for name in names:
        incident = to_incident("jira", {"priority": {"name": name}}, PROFILE, CTX)
        assert to_fields("jira", incident, PROFILE, CTX,
                         only=["priority"]).fields["priority"] == {"name": name}
