"""Deterministic seed data both sandboxes share: people, groups and ITIL incidents.

Contract: the same ``seed`` always yields the same data. People and groups are
the same in both tools (same emails, same group names), as in a real company,
so user-by-email and group-by-name mappings resolve on both sides. Texts are
realistic service-desk language, with a sprinkling of unicode.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class SeedUser:
    user_name: str   # ServiceNow user_name / Jira DC name
    name: str        # display name
    email: str


@dataclass(frozen=True)
class SeedComment:
    author_email: str
    body: str
    internal: bool   # ServiceNow work note / JSM internal comment


@dataclass(frozen=True)
class SeedIncident:
    title: str
    description: str
    impact: int
    urgency: int
    category: str
    subcategory: str
    group: str
    caller_email: str
    assignee_email: str | None
    status: str      # neutral status: new | in_progress | on_hold | resolved
    opened_at: datetime
    comments: list[SeedComment] = field(default_factory=list)


USERS: list[SeedUser] = [
    SeedUser("admin", "System Administrator", "admin@example.com"),
    SeedUser("alice.smith", "Alice Smith", "alice.smith@example.com"),
    SeedUser("bob.jones", "Bob Jones", "bob.jones@example.com"),
    SeedUser("chen.wei", "Chen Wei", "chen.wei@example.com"),
    SeedUser("dana.kowalski", "Dana Kowalski", "dana.kowalski@example.com"),
    SeedUser("elif.yilmaz", "Elif Yılmaz", "elif.yilmaz@example.com"),
    SeedUser("farid.haddad", "Farid Haddad", "farid.haddad@example.com"),
    SeedUser("grace.okafor", "Grace Okafor", "grace.okafor@example.com"),
    SeedUser("hiro.tanaka", "Hiro Tanaka", "hiro.tanaka@example.com"),
    SeedUser("ines.moreau", "Inès Moreau", "ines.moreau@example.com"),
]

# Agents who resolve incidents; the others are callers.
AGENT_EMAILS = [u.email for u in USERS[1:6]]
CALLER_EMAILS = [u.email for u in USERS[5:]]

GROUPS: list[str] = ["Service Desk", "Network", "Database", "Hardware", "Application Support"]

# (category, subcategory, group, title templates, description templates)
_CATALOGUE: list[tuple[str, str, str, list[str], list[str]]] = [
    ("network", "VPN", "Network",
     ["VPN drops every {n} minutes", "Cannot connect to VPN from {site}"],
     ["Since this morning the VPN client disconnects every {n} minutes.\n"
      "Reconnecting works for a while. Affects remote staff in {site}."]),
    ("network", "Wireless", "Network",
     ["Office wifi unavailable on floor {n}", "Wireless very slow in {site} office"],
     ["Laptops on floor {n} see the SSID but fail to get an address.\n"
      "Wired ports work. Started after the weekend maintenance."]),
    ("database", "Oracle", "Database",
     ["Oracle reporting database slow", "ORA-{n}: tablespace full on reporting DB"],
     ["Month-end reports take {n} minutes instead of 2.\n"
      "The DBA on call sees long waits on the reporting schema."]),
    ("database", "MS SQL Server", "Database",
     ["SQL Server job failing nightly", "Deadlocks in billing database"],
     ["The nightly ETL job fails with error {n}.\n"
      "Billing exports for {site} are one day behind."]),
    ("hardware", "Monitor", "Hardware",
     ["Monitor flickering at desk {n}", "Second screen not detected"],
     ["User reports the external monitor flickers and goes black.\n"
      "Cable was replaced; the problem persists."]),
    ("hardware", "Disk", "Hardware",
     ["Laptop disk almost full", "SMART warning on workstation {n}"],
     ["The laptop shows a disk warning at boot.\nBackup of the home folder is needed first."]),
    ("software", "Email", "Application Support",
     ["Outlook crashes when opening attachments", "Mail not syncing on phone"],
     ["Opening any PDF attachment closes Outlook without an error.\n"
      "Reinstalling the add-ins did not help — café team in {site} affected."]),
    ("software", "Operating System", "Application Support",
     ["Windows update stuck at {n}%", "Login takes {n} minutes after update"],
     ["After the latest patch the machine hangs at {n}% on reboot.\n"
      "Safe mode works."]),
    ("inquiry", "Internal Application", "Service Desk",
     ["How do I request access to the HR portal?", "Password reset for timesheet app"],
     ["New starter in {site} needs access to the HR portal.\nManager approval attached."]),
]

_SITES = ["Berlin", "Lagos", "São Paulo", "Osaka", "Toronto", "Lyon", "İzmir"]

_COMMENTS_PUBLIC = [
    "We are looking into this and will update you within the hour.",
    "Could you send a screenshot of the error, please?",
    "A fix has been applied; please confirm it works for you.",
    "Thanks for your patience — engineers are on it.",
]
_COMMENTS_INTERNAL = [
    "Checked the logs: errors started after change CHG0030{n}.",
    "Escalating to the second-line team; the caller is a VIP.",
    "Workaround: restart the service. Root cause still unknown.",
    "Vendor ticket opened, reference {n}.",
]

# Neutral statuses seeded, weighted towards open work.
_STATUSES = ["new"] * 4 + ["in_progress"] * 4 + ["on_hold"] + ["resolved"]


def seed_incidents(
    count: int, seed: int = 1, *, start: datetime | None = None
) -> list[SeedIncident]:
    """``count`` realistic incidents, the same for the same ``seed``."""
    rng = random.Random(seed)
    start = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    incidents = []
    for index in range(count):
        category, subcategory, group, titles, descriptions = rng.choice(_CATALOGUE)
        values = {"n": rng.randint(2, 90), "site": rng.choice(_SITES)}
        status = rng.choice(_STATUSES)
        comments = []
        for _ in range(rng.randint(0, 3)):
            internal = rng.random() < 0.4
            texts = _COMMENTS_INTERNAL if internal else _COMMENTS_PUBLIC
            author = rng.choice(AGENT_EMAILS)
            comments.append(
                SeedComment(author, rng.choice(texts).format(n=rng.randint(100, 999)), internal)
            )
        incidents.append(
            SeedIncident(
                title=rng.choice(titles).format(**values),
                description=rng.choice(descriptions).format(**values),
                impact=rng.randint(1, 3),
                urgency=rng.randint(1, 3),
                category=category,
                subcategory=subcategory,
                group=group,
                caller_email=rng.choice(CALLER_EMAILS),
                assignee_email=None if status == "new" else rng.choice(AGENT_EMAILS),
                status=status,
                opened_at=start + timedelta(minutes=37 * index),
                comments=comments,
            )
        )
    return incidents
