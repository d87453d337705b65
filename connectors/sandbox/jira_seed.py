"""Seeding the Jira sandbox from the shared seed incidents.

Contract: :func:`seed_site` creates one issue per
:func:`connectors.sandbox.seed.seed_incidents` entry, through the same
validation as the API: summary, description, priority from the ITIL matrix,
Impact/Urgency, reporter and assignee, and the category and subcategory the
way each site's profile carries them: ``category-``/``subcategory-`` labels on
a stock site (the ``default`` profile), components and the Subcategory and
Assignment group fields on the extended site (``jsm-extended``); the status is reached along the
workflow (resolution "Fixed" when resolved) and the comments are added public
or internal. Times come from the seed (``opened_at``, then a few minutes per
step), not from the sandbox clock.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from connectors.sandbox import jira_site as site
from connectors.sandbox.jira_store import JiraState
from connectors.sandbox.seed import seed_incidents

# The seed's neutral values as this site's options, as the default mapping profile writes
# them, so seeded issues look like ones a sync has already touched.
SEED_IMPACT = {1: "Extensive / Widespread", 2: "Moderate / Limited", 3: "Minor / Localized"}
SEED_URGENCY = {1: "High", 2: "Medium", 3: "Low"}
SEED_STATUS = {"new": "Open", "in_progress": "Work in progress", "on_hold": "Pending",
               "resolved": "Resolved"}
SEED_COMPONENT = {"network": "Network", "database": "Database", "hardware": "Hardware",
                  "software": "Software", "inquiry": "Inquiry"}
PRIORITY_NAMES = ["Highest", "High", "Medium", "Low", "Lowest"]


def itil_priority(impact: int, urgency: int) -> int:
    # The ITIL matrix (as mappings.model.itil_priority); the sandbox does not import
    # mappings, and for 1..3 x 1..3 the matrix is the sum minus one.
    return impact + urgency - 1


def seed_site(state: JiraState, count: int, seed: int, *, actor: str) -> None:
    """Issues from the shared seed, each status reached along the workflow."""
    moment: list[datetime] = []
    real_clock = state.clock
    state.clock = lambda: moment[0]
    try:
        for incident in seed_incidents(count, seed):
            moment[:] = [incident.opened_at]
            fields: dict[str, Any] = {
                "project": {"key": state.project}, "issuetype": {"name": "Incident"},
                "summary": incident.title, "description": incident.description,
                "priority": {"name": PRIORITY_NAMES[
                    itil_priority(incident.impact, incident.urgency) - 1]},
                "customfield_10004": {"value": SEED_IMPACT[incident.impact]},
                "customfield_10005": {"value": SEED_URGENCY[incident.urgency]},
            }
            if state.fields.extended:
                fields["components"] = [{"name": SEED_COMPONENT[incident.category]}]
                fields["customfield_10006"] = incident.group
                fields["customfield_10007"] = incident.subcategory
            else:
                fields["labels"] = [category_label("category-", incident.category),
                                    category_label("subcategory-", incident.subcategory)]
            for name, email in (("reporter", incident.caller_email),
                                ("assignee", incident.assignee_email)):
                user = site.user_by_email(email) if email else None
                if user is not None:
                    fields[name] = _user_ref(state, user)
            issue = state.create({"fields": fields}, version="2", actor=actor)
            target = site.find_status(SEED_STATUS[incident.status])
            assert target is not None, incident.status
            for step in site.workflow_path(issue.status, target.id) or []:
                moment[0] += timedelta(minutes=3)
                body: dict[str, Any] = {"transition": {"id": step.id}}
                if site.status_by_id(step.target).is_done:
                    body["fields"] = {"resolution": {"name": "Fixed"}}
                state.transition(issue, body, version="2", actor=actor)
            for comment in incident.comments:
                moment[0] += timedelta(minutes=5)
                state.add_comment(issue, comment.body, version="2",
                                  actor=comment.author_email, internal=comment.internal)
    finally:
        state.clock = real_clock


def category_label(prefix: str, value: str) -> str:
    """``prefix`` + ``value`` with '%' and whitespace percent-encoded (UTF-8), as the
    ``label_prefix`` transform writes it (the sandbox never imports mappings)."""
    return prefix + re.sub(r"[%\s]", lambda m: "".join(
        f"%{byte:02X}" for byte in m.group().encode("utf-8")), value)


def _user_ref(state: JiraState, user: site.SiteUser) -> dict[str, str]:
    return {"accountId": user.account_id} if state.cloud else {"name": user.name}
