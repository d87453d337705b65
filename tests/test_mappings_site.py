"""The shipped profiles fit the sandbox sites they are written for: ``default`` the stock
JSM site, ``jsm-extended`` the site an admin prepared. Every value a profile writes
exists there, and every value a site can hold reads back as something that writes the
same value again."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.sandbox import jira_site, sn_tables
from mappings.mapper import MappingContext, to_fields, to_incident
from mappings.model import Escalation, Impact, Incident, Status, Urgency
from mappings.profile import MappingError, Profile, load_profile

PROFILE = load_profile("default")
STOCK = jira_site.site_fields("stock")
EXTENDED = jira_site.site_fields("extended")
CTX = MappingContext(text_format="adf",
                     field_ids={f.name: f.id for f in STOCK.custom_fields})
OPTIONS = {f.name: [o.name for o in f.options] for f in EXTENDED.custom_fields}
EXTENDED_PROFILE = load_profile("jsm-extended")
EXTENDED_CTX = MappingContext(text_format="adf",
                              field_ids={f.name: f.id for f in EXTENDED.custom_fields})


@pytest.mark.parametrize(("profile", "fields"), [(PROFILE, STOCK),
                                                 (EXTENDED_PROFILE, EXTENDED)])
def test_every_jira_field_the_profile_names_exists_on_its_site(
        profile: Profile, fields: jira_site.SiteFields) -> None:
    ctx = MappingContext(field_ids={f.name: f.id for f in fields.custom_fields})
    site = {f.id for f in fields.custom_fields} | set(jira_site.SYSTEM_BY_ID)
    assert set(profile.vendor_fields("jira", ctx)) <= site


def test_the_default_profile_needs_no_field_an_admin_creates() -> None:
    with pytest.raises(MappingError, match="not among the site's fields"):
        EXTENDED_PROFILE.vendor_fields("jira", CTX)
    assert "customfield_10007" not in PROFILE.vendor_fields("jira", CTX)
    assert "components" not in PROFILE.vendor_fields("jira", CTX)


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


@pytest.mark.parametrize(("profile", "ctx", "field", "enum", "sn_choices"), [
    (PROFILE, CTX, "Impact", Impact, sn_tables.IMPACT_LABELS),
    (PROFILE, CTX, "Urgency", Urgency, sn_tables.IMPACT_LABELS),
    (EXTENDED_PROFILE, EXTENDED_CTX, "Escalation", Escalation, sn_tables.ESCALATION_LABELS),
])
def test_select_options_exist_both_ways(profile: Profile, ctx: MappingContext, field: str,
                                        enum: Any, sn_choices: Any) -> None:
    neutral = field.lower()
    for value in enum:
        incident = Incident(**{neutral: value})
        jira = to_fields("jira", incident, profile, ctx, only=[neutral]).fields
        assert jira[ctx.field_ids[field]]["value"] in OPTIONS[field]
        sn = to_fields("servicenow", incident, profile, ctx, only=[neutral]).fields
        assert sn[neutral] in sn_choices
    for option in OPTIONS[field]:
        read = to_incident("jira", {ctx.field_ids[field]: {"value": option}}, profile, ctx)
        again = to_fields("jira", read, profile, ctx, only=[neutral]).fields
        assert again[ctx.field_ids[field]]["value"] in OPTIONS[field]


def test_escalation_stays_on_servicenow_with_the_default_profile() -> None:
    incident = Incident(escalation=Escalation.HIGH)
    assert to_fields("jira", incident, PROFILE, CTX, only=["escalation"]).fields == {}
    assert to_fields("servicenow", incident, PROFILE, CTX,
                     only=["escalation"]).fields == {"escalation": "2"}


def test_categories_travel_as_labels_on_a_stock_site() -> None:
    for category in sn_tables.CATEGORY_LABELS:
        incident = Incident(category=category, labels=["vip"])
        written = to_fields("jira", incident, PROFILE, CTX, only=["category"])
        assert written.fields["labels"] == sorted(["vip", f"category-{category}"])
        assert written.losses == []
        assert to_incident("jira", written.fields, PROFILE, CTX).category == category


def test_categories_are_components_of_the_extended_project() -> None:
    components = {c.name for c in EXTENDED.components}
    for category in sn_tables.CATEGORY_LABELS:
        written = to_fields("jira", Incident(category=category), EXTENDED_PROFILE,
                            EXTENDED_CTX, only=["category"])
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
