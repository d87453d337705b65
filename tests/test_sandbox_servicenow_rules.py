"""The ServiceNow sandbox's record rules, through its in-process API (same code as HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from connectors.sandbox.servicenow import ServiceNowApiError, ServiceNowSandbox
from connectors.sandbox.sn_tables import PRIORITY_MATRIX


class Clock:
    """A controllable clock: every call returns the current time, tests advance it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 2, 3, 9, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: int = 60) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sn(clock: Clock) -> Iterator[ServiceNowSandbox]:
    yield ServiceNowSandbox(clock=clock)  # in-process only: never started


def new_incident(sn: ServiceNowSandbox, **values: str) -> dict[str, str]:
    return sn.insert("incident", {"short_description": "Printer on fire", **values})


def test_insert_applies_the_documented_defaults(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn)
    assert record["number"] == "INC0010001"
    assert len(record["sys_id"]) == 32 and int(record["sys_id"], 16) >= 0
    assert {k: record[k] for k in ("state", "incident_state", "category", "severity",
                                   "escalation", "contact_type", "active", "sys_mod_count",
                                   "correlation_id", "correlation_display", "comments")} == {
        "state": "1", "incident_state": "1", "category": "inquiry", "severity": "3",
        "escalation": "0", "contact_type": "phone", "active": "true", "sys_mod_count": "0",
        "correlation_id": "", "correlation_display": "", "comments": "",
    }
    assert record["opened_at"] == record["sys_created_on"] == "2026-02-03 09:00:00"
    assert record["opened_by"] == sn.user_sys_id("admin")
    assert all(isinstance(v, str) for v in record.values())


def test_numbers_increase_per_insert(sn: ServiceNowSandbox) -> None:
    assert [new_incident(sn)["number"] for _ in range(3)] == [
        "INC0010001", "INC0010002", "INC0010003"]


@pytest.mark.parametrize(("impact", "urgency"), sorted(PRIORITY_MATRIX))
def test_priority_matrix_on_insert_and_update(
    sn: ServiceNowSandbox, impact: str, urgency: str
) -> None:
    record = new_incident(sn, impact=impact, urgency=urgency, priority="1")
    assert record["priority"] == PRIORITY_MATRIX[(impact, urgency)]
    flipped = sn.update("incident", record["sys_id"], {"impact": urgency, "urgency": impact})
    assert flipped["priority"] == PRIORITY_MATRIX[(urgency, impact)]


def test_writes_to_priority_are_ignored(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn, impact="2", urgency="2")
    updated = sn.update("incident", record["sys_id"], {"priority": "1"})
    assert updated["priority"] == "3"
    assert updated["sys_mod_count"] == "0"  # nothing changed, so nothing saved


def test_update_bumps_mod_count_and_stamps(sn: ServiceNowSandbox, clock: Clock) -> None:
    record = new_incident(sn)
    clock.tick(90)
    updated = sn.update("incident", record["sys_id"], {"description": "Smoke everywhere"},
                        as_user="alice.smith")
    assert updated["sys_mod_count"] == "1"
    assert updated["sys_updated_on"] == "2026-02-03 09:01:30"
    assert updated["sys_updated_by"] == "alice.smith"
    assert updated["sys_created_on"] == "2026-02-03 09:00:00"


def test_unknown_fields_are_ignored(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn, u_no_such_field="x")
    assert "u_no_such_field" not in record


def test_state_outside_the_model_is_rejected(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn)
    with pytest.raises(ServiceNowApiError) as caught:
        sn.update("incident", record["sys_id"], {"state": "4"})
    assert caught.value.status == 400 and "state" in caught.value.detail


def test_resolve_without_close_code_is_rejected(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn)
    with pytest.raises(ServiceNowApiError) as caught:
        sn.update("incident", record["sys_id"], {"state": "6"})
    assert caught.value.status == 403
    assert caught.value.message == "Operation Failed"
    assert caught.value.detail == ("Data Policy Exception: \n Close code is mandatory\n"
                                   " Close notes is mandatory")
    assert sn.get("incident", record["sys_id"])["state"] == "1"  # nothing was saved


def test_resolve_with_close_code_but_no_notes_is_rejected(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn)
    with pytest.raises(ServiceNowApiError) as caught:
        sn.update("incident", record["sys_id"], {"state": "7", "close_code": "Duplicate"})
    assert caught.value.detail.endswith("Close notes is mandatory")
    assert "Close code" not in caught.value.detail


def test_unknown_close_code_is_rejected(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn)
    with pytest.raises(ServiceNowApiError) as caught:
        sn.update("incident", record["sys_id"],
                  {"state": "6", "close_code": "Fixed it", "close_notes": "done"})
    assert caught.value.status == 403 and "Fixed it" in caught.value.detail


def test_resolving_sets_resolution_stamps_and_closing_deactivates(
    sn: ServiceNowSandbox, clock: Clock
) -> None:
    record = new_incident(sn)
    clock.tick(600)
    resolved = sn.update("incident", record["sys_id"], {
        "state": "6", "close_code": "Solution provided", "close_notes": "Replaced toner"},
        as_user="bob.jones")
    # Resolved stays active until closed: only the close states 7 and 8 deactivate.
    assert resolved["active"] == "true" and resolved["incident_state"] == "6"
    assert resolved["resolved_at"] == "2026-02-03 09:10:00"
    assert resolved["resolved_by"] == sn.user_sys_id("bob.jones")
    clock.tick(600)
    closed = sn.update("incident", record["sys_id"], {"state": "7"})
    assert closed["active"] == "false"
    assert closed["closed_at"] == "2026-02-03 09:20:00"
    assert closed["resolved_at"] == "2026-02-03 09:10:00"  # kept from the resolve
    assert closed["closed_by"] == sn.user_sys_id("admin")


def test_clearing_close_notes_on_a_resolved_incident_is_rejected(
    sn: ServiceNowSandbox,
) -> None:
    record = new_incident(sn, state="6", close_code="Duplicate", close_notes="see INC1")
    with pytest.raises(ServiceNowApiError):
        sn.update("incident", record["sys_id"], {"close_notes": ""})


def test_reopen_clears_resolution_and_counts(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn, state="6", close_code="Duplicate", close_notes="dup")
    reopened = sn.update("incident", record["sys_id"], {"state": "2"})
    assert reopened["active"] == "true"
    assert reopened["resolved_at"] == "" and reopened["resolved_by"] == ""
    assert reopened["reopen_count"] == "1"


def test_on_hold_needs_a_reason_and_leaving_clears_it(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn)
    with pytest.raises(ServiceNowApiError) as caught:
        sn.update("incident", record["sys_id"], {"state": "3"})
    assert "On hold reason is mandatory" in caught.value.detail
    held = sn.update("incident", record["sys_id"], {"state": "3", "hold_reason": "4"})
    assert held["hold_reason"] == "4"
    resumed = sn.update("incident", record["sys_id"], {"state": "2"})
    assert resumed["hold_reason"] == ""


def test_canceled_is_inactive(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn)
    assert sn.update("incident", record["sys_id"], {"state": "8"})["active"] == "false"


def test_comments_append_journal_rows_and_read_back_empty(
    sn: ServiceNowSandbox, clock: Clock
) -> None:
    record = new_incident(sn, comments="First public note")
    clock.tick(5)
    updated = sn.update("incident", record["sys_id"], {"work_notes": "Internal: check logs"},
                        as_user="chen.wei")
    assert updated["comments"] == "" and updated["work_notes"] == ""
    assert updated["sys_mod_count"] == "1"  # a journal entry alone is a save
    journal = sn.journal(record["sys_id"])
    assert [(j["element"], j["value"], j["sys_created_by"]) for j in journal] == [
        ("comments", "First public note", "admin"),
        ("work_notes", "Internal: check logs", "chen.wei"),
    ]
    assert all(j["name"] == "incident" and j["element_id"] == record["sys_id"]
               for j in journal)
    assert journal[1]["sys_created_on"] == "2026-02-03 09:00:05"


def test_blank_comment_adds_nothing(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn)
    unchanged = sn.update("incident", record["sys_id"], {"comments": "   "})
    assert unchanged["sys_mod_count"] == "0" and sn.journal(record["sys_id"]) == []


def test_correlation_id_is_truncated_to_100_characters(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn, correlation_id="OPS-" + "9" * 200, correlation_display="JIRA")
    assert record["correlation_id"] == ("OPS-" + "9" * 200)[:100]


def test_references_accept_sys_ids_and_display_names(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn, caller_id=sn.user_sys_id("grace.okafor"),
                          assignment_group="Network")
    assert record["caller_id"] == sn.user_sys_id("grace.okafor")
    assert record["assignment_group"] == sn.group_sys_id("Network")


def test_reference_to_nobody_is_rejected(sn: ServiceNowSandbox) -> None:
    with pytest.raises(ServiceNowApiError) as caught:
        new_incident(sn, caller_id="nobody@example.com")
    assert caught.value.status == 400 and "caller_id" in caught.value.detail


def test_group_change_counts_a_reassignment(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn, assignment_group="Network")
    moved = sn.update("incident", record["sys_id"], {"assignment_group": "Database"})
    assert moved["reassignment_count"] == "1"


def test_journal_and_choices_are_read_only(sn: ServiceNowSandbox) -> None:
    for table in ("sys_journal_field", "sys_choice"):
        with pytest.raises(ServiceNowApiError) as caught:
            sn.insert(table, {"value": "x"})
        assert caught.value.status == 403


def test_unknown_table_is_rejected(sn: ServiceNowSandbox) -> None:
    with pytest.raises(ServiceNowApiError) as caught:
        sn.rows("incidnet")
    assert caught.value.status == 400 and caught.value.message == "Invalid table incidnet"


def test_delete_removes_the_record_and_its_journal(sn: ServiceNowSandbox) -> None:
    record = new_incident(sn, comments="bye")
    sn.delete("incident", record["sys_id"])
    assert sn.get("incident", record["sys_id"]) is None
    assert sn.journal(record["sys_id"]) == []
    with pytest.raises(ServiceNowApiError) as caught:
        sn.delete("incident", record["sys_id"])
    assert caught.value.status == 404


def test_seed_people_groups_and_choices_exist(sn: ServiceNowSandbox) -> None:
    users = {u["user_name"]: u for u in sn.rows("sys_user")}
    assert users["elif.yilmaz"]["email"] == "elif.yilmaz@example.com"
    assert {g["name"] for g in sn.rows("sys_user_group")} >= {"Service Desk", "Network"}
    codes = {c["value"] for c in sn.rows("sys_choice") if c["element"] == "close_code"}
    assert "Solution provided" in codes
    states = {c["value"]: c["label"] for c in sn.rows("sys_choice") if c["element"] == "state"}
    assert states == {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved",
                      "7": "Closed", "8": "Canceled"}


def test_seeded_incidents_follow_the_neutral_statuses() -> None:
    from connectors.sandbox.seed import seed_incidents

    seeds = seed_incidents(12, 3)
    sn = ServiceNowSandbox(seed_incidents=12, seed=3)
    records = sn.rows("incident")
    assert len(records) == 12
    states = {"new": "1", "in_progress": "2", "on_hold": "3", "resolved": "6"}
    for seeded, record in zip(seeds, records, strict=True):  # default order: created on
        assert record["short_description"] == seeded.title
        assert record["state"] == states[seeded.status]
        assert record["priority"] == PRIORITY_MATRIX[(str(seeded.impact), str(seeded.urgency))]
        if seeded.status == "resolved":
            assert record["close_code"] and record["close_notes"]
        if seeded.status == "on_hold":
            assert record["hold_reason"]
    total_comments = sum(len(s.comments) for s in seeds)
    assert len(sn.rows("sys_journal_field")) == total_comments
    # Same seed, same data (sys_ids included).
    again = ServiceNowSandbox(seed_incidents=12, seed=3)
    assert [r["sys_id"] for r in again.rows("incident")] == [r["sys_id"] for r in records]


def test_a_custom_sandbox_user_exists_as_sys_user() -> None:
    sn = ServiceNowSandbox(username="integration.user")
    assert sn.user_sys_id("integration.user")


def test_refused_insert_uses_no_number(sn: ServiceNowSandbox) -> None:
    with pytest.raises(ServiceNowApiError):
        new_incident(sn, state="6")
    assert new_incident(sn)["number"] == "INC0010001"
