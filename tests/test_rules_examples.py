"""The shipped rules.example.toml on realistic incident texts, hits and near misses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rules_helpers import NOW, example, run

from mappings.model import Escalation, Impact, Incident, Priority, Status, Urgency


def fired(incident: Incident) -> list[str]:
    return sorted({f.rule for f in run(example(), incident).firings})


@pytest.mark.parametrize("title", [
    "Password reset for timesheet app",
    "I am locked out of my laptop after too many attempts",
    "Access request: HR portal for new starter",
    "Please grant access to the finance share",
    "Forgot my passwords for Jira and Confluence",
])
def test_access_requests_become_low_impact_inquiries(title: str) -> None:
    outcome = run(example(), Incident(title=title, impact=Impact.MEDIUM))
    incident = outcome.incident
    assert (incident.category, incident.subcategory) == ("inquiry", "Access")
    assert incident.impact is Impact.LOW and "access-request" in incident.labels


@pytest.mark.parametrize("title", [
    "Passwordless sign-in fails on the kiosk",            # a different word
    "The password-protected PDF will not open",           # a compound is one word
    "Unable to print the access badge list",              # "access" alone is not a request
])
def test_near_misses_are_not_access_requests(title: str) -> None:
    assert "access-requests" not in fired(Incident(title=title))


def test_a_stolen_password_is_security_not_a_service_request() -> None:
    outcome = run(example(), Incident(title="Password stolen in a phishing mail",
                                      impact=Impact.HIGH))
    assert outcome.incident.category is None
    assert outcome.incident.assignment_group == "Security Operations"


@pytest.mark.parametrize(("title", "description"), [
    ("Mail server down", ""),
    ("Outage: payroll", "Payroll is unavailable for everyone."),
    ("SAP crashed at 09:12", ""),
    ("Billing", "The billing database is down since the patch."),
    ("Web shop", "All web servers are down in Lyon."),
])
def test_outages_get_high_urgency(title: str, description: str) -> None:
    outcome = run(example(), Incident(title=title, description=description,
                                      impact=Impact.MEDIUM, urgency=Urgency.LOW))
    assert outcome.incident.urgency is Urgency.HIGH
    assert outcome.incident.effective_priority is Priority.HIGH          # 2 x 1 by the matrix


@pytest.mark.parametrize("title", [
    "Crashpad logs fill the disk",            # not the word "crash"
    "Server downgrade planned for Friday",    # "downgrade" is not "down"
    "Is the VPN down-time window tonight?",   # a compound
])
def test_outage_near_misses_keep_their_urgency(title: str) -> None:
    assert "outage-urgency" not in fired(Incident(title=title))


@pytest.mark.parametrize("text", [
    "Ransomware note on file server FS01",
    "Phishing mail with a fake invoice link",
    "Possible data breach: customer list on a paste site",
    "Malware found on the reception PC",
])
def test_security_incidents_go_to_security_operations(text: str) -> None:
    outcome = run(example(), Incident(title=text, impact=Impact.LOW))
    assert outcome.incident.assignment_group == "Security Operations"
    assert outcome.incident.urgency is Urgency.HIGH and "security" in outcome.incident.labels
    assert outcome.incident.escalation is Escalation.NORMAL     # P3: no managers involved


def test_high_priority_security_incidents_are_escalated_to_incident_managers() -> None:
    outcome = run(example(), Incident(title="Ransomware on FS01", impact=Impact.MEDIUM))
    assert outcome.incident.effective_priority is Priority.HIGH          # 2 x 1
    assert outcome.incident.escalation is Escalation.HIGH
    (note,) = outcome.incident.comments
    assert note.body.startswith("For Incident Managers: escalated to high by rule"
                                " 'security-major-escalation'")


@pytest.mark.parametrize("text", [
    "Our backups are ransomware-free, please confirm",
    "Anti-phishing training invitation",
    "Breach of the SLA for ticket 123",
])
def test_security_near_misses(text: str) -> None:
    assert "security-to-secops" not in fired(Incident(title=text))


@pytest.mark.parametrize(("priority", "response", "resolution"), [
    (1, 15, 4 * 60), (2, 30, 8 * 60), (3, 4 * 60, 24 * 60), (4, 8 * 60, 72 * 60),
    (5, 24 * 60, 5 * 24 * 60),
])
def test_sla_targets_per_priority(priority: int, response: int, resolution: int) -> None:
    def labels(minutes: int, status: Status) -> list[str]:
        incident = Incident(title="x", priority=Priority(priority), status=status,
                            opened_at=NOW - timedelta(minutes=minutes))
        return run(example(), incident).incident.labels

    assert labels(response - 1, Status.NEW) == []
    assert labels(response + 1, Status.NEW) == ["sla-response-breached"]
    assert labels(resolution + 1, Status.IN_PROGRESS) == ["sla-breached"]
    assert labels(resolution - 1, Status.IN_PROGRESS) == []


def test_an_incident_open_past_resolution_is_overdue_with_a_note() -> None:
    incident = Incident(title="Printer jam", priority=Priority.CRITICAL,
                        status=Status.IN_PROGRESS, opened_at=NOW - timedelta(hours=5))
    outcome = run(example(), incident)
    assert outcome.incident.escalation is Escalation.OVERDUE
    (note,) = outcome.incident.comments
    assert "P1 resolution target 4h breached (open for 5h)" in note.body
