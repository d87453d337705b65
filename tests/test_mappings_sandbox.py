"""What the default profile writes is accepted by the vendor stand-ins (their data
policies, choice lists, workflow and length limits) and reads back as the same
neutral values. Uses the sandboxes' in-process API, resolving person and group
references by email and name the way the connectors do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.sandbox import jira_site
from connectors.sandbox.jira import JiraSandbox
from connectors.sandbox.seed import GROUPS, USERS
from connectors.sandbox.servicenow import ServiceNowSandbox
from mappings.mapper import MappingContext, to_fields, to_incident
from mappings.model import Escalation, Impact, Incident, Status, Urgency
from mappings.profile import Profile, load_profile

PROFILE = load_profile("default")
# The profile each Jira field set is prepared for: default on a stock site.
PROFILES = {"stock": PROFILE, "extended": load_profile("jsm-extended")}
WIKI = MappingContext(text_format="wiki", field_ids={
    f.name: f.id for f in jira_site.site_fields("extended").custom_fields})
SETTLE = settings(max_examples=25, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])

texts = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(["VPN", " ", "Kraków 🔥", "*", "[a](https://ex.com/x)", "_",
                              "{code}", "\n", "\n\n", "h1. ", "- ", "\\", "&amp;", "|"]),
             max_size=20).map("".join),
)
incidents = st.builds(
    Incident,
    title=texts.map(lambda t: t.strip() or "Untitled"),
    description=texts,
    status=st.sampled_from(Status),
    impact=st.sampled_from(Impact),
    urgency=st.sampled_from(Urgency),
    category=st.none() | st.sampled_from(["inquiry", "software", "hardware", "network"]),
    subcategory=st.none() | st.sampled_from(["VPN", "Oracle", "Email", "MS SQL Server",
                                             "100% CPU"]),
    assignment_group=st.none() | st.sampled_from(GROUPS),
    assignee=st.none() | st.sampled_from([u.email for u in USERS[1:6]]),
    caller=st.none() | st.sampled_from([u.email for u in USERS[5:]]),
    resolution_code=st.none() | st.sampled_from(["Workaround provided", "Duplicate",
                                                 "Resolved by change"]),
    resolution_notes=st.none() | texts.filter(bool),
    escalation=st.sampled_from(Escalation),
    labels=st.lists(st.sampled_from(["vpn", "month-end", "vip"]), unique=True).map(sorted),
)


def _lossless(side: str, losses: list[str], profile: Profile = PROFILE) -> list[str]:
    lossy = {loss.split(":", 1)[0] for loss in losses}
    return [n for n in profile.neutral_fields() if profile.travels(n, side) and n not in lossy]


def _same(before: Incident, after: Incident, names: list[str]) -> None:
    for name in names:
        key = name[len("custom."):] if name.startswith("custom.") else None
        old = before.custom.get(key) if key else getattr(before, name)
        new = after.custom.get(key) if key else getattr(after, name)
        assert new == old, name


@pytest.fixture(scope="module")
def servicenow() -> Iterator[ServiceNowSandbox]:
    with ServiceNowSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module", params=[("cloud", "stock"), ("datacenter", "stock"),
                                        ("cloud", "extended")], ids=lambda p: "-".join(p))
def jira(request: pytest.FixtureRequest) -> Iterator[JiraSandbox]:
    mode, fields = request.param
    with JiraSandbox(mode=mode, fields=fields) as sandbox:
        yield sandbox


def _servicenow_values(sandbox: ServiceNowSandbox, fields: dict[str, Any]) -> dict[str, Any]:
    users = {u["email"]: u["sys_id"] for u in sandbox.rows("sys_user")}
    groups = {g["name"]: g["sys_id"] for g in sandbox.rows("sys_user_group")}
    values = {}
    for key, value in fields.items():
        if isinstance(value, dict) and "$user" in value:
            value = users[value["$user"]] if value["$user"] else ""
        elif isinstance(value, dict) and "$group" in value:
            value = groups[value["$group"]] if value["$group"] else ""
        values[key] = value
    return values


def _servicenow_raw(sandbox: ServiceNowSandbox, row: dict[str, Any]) -> dict[str, Any]:
    """The row as the connector pulls it: with the dot-walks the profile asks for."""
    users = {u["sys_id"]: u["email"] for u in sandbox.rows("sys_user")}
    groups = {g["sys_id"]: g["name"] for g in sandbox.rows("sys_user_group")}
    raw = dict(row)
    for name in PROFILE.vendor_fields("servicenow"):
        if "." in name:
            field, _ = name.split(".")
            table = groups if field == "assignment_group" else users
            raw[name] = table.get(row[field], "")
    return raw


@SETTLE
@given(incident=incidents)
def test_servicenow_accepts_the_write_and_reads_it_back(
    servicenow: ServiceNowSandbox, incident: Incident
) -> None:
    written = to_fields("servicenow", incident, PROFILE)
    row = servicenow.insert("incident", _servicenow_values(servicenow, written.fields))
    back = to_incident("servicenow", _servicenow_raw(servicenow, row), PROFILE)
    _same(incident, back, _lossless("servicenow", written.losses))
    # ServiceNow's own priority is what the neutral matrix says.
    assert back.priority == incident.effective_priority


def _jira_fields(sandbox: JiraSandbox, fields: dict[str, Any]) -> dict[str, Any]:
    by_email = {u.seed.email: u for u in jira_site.SITE_USERS}
    out = {}
    for key, value in fields.items():
        if isinstance(value, dict) and "$user" in value:
            user = by_email.get(value["$user"] or "")
            if user is None:
                value = None
            elif sandbox.mode == "cloud":
                value = {"accountId": user.account_id}
            else:
                value = {"name": user.seed.user_name}
        out[key] = value
    return out


@SETTLE
@given(incident=incidents)
def test_jira_accepts_the_write_and_reads_it_back(jira: JiraSandbox, incident: Incident) -> None:
    profile = PROFILES[jira.fields.kind]
    written = to_fields("jira", incident, profile, WIKI)
    fields = _jira_fields(jira, written.fields)
    status = fields.pop("status")
    resolution = fields.pop("resolution")
    key = jira.create_issue(fields)
    if status != "Open":
        jira.transition_issue(key, status, resolution=resolution["name"] if resolution else None)
    back = to_incident("jira", jira.issue(key)["fields"], profile, WIKI)
    lossless = _lossless("jira", written.losses, profile)
    if incident.status not in (Status.RESOLVED, Status.CLOSED) and (
        "resolution_code" in lossless
    ):
        lossless.remove("resolution_code")  # Jira keeps a resolution only on done statuses
    _same(incident, back, lossless)


def test_jira_accepts_a_description_cut_to_fit_once_escaped(jira: JiraSandbox) -> None:
    incident = Incident(title="Core dump attached", description="x*" * 17000)
    written = to_fields("jira", incident, PROFILE, WIKI)
    fields = _jira_fields(jira, written.fields)
    fields.pop("status"), fields.pop("resolution")
    key = jira.create_issue(fields)
    back = to_incident("jira", jira.issue(key)["fields"], PROFILE, WIKI)
    assert back.description == to_incident("jira", written.fields, PROFILE, WIKI).description
    assert back.description.endswith("…")
