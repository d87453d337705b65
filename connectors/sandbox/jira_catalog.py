"""The Jira sandbox's issues as the JQL evaluator sees them.

Contract: :class:`SearchCatalog` implements :class:`connectors.sandbox.jql.Catalog`
for one searching user over a :class:`~connectors.sandbox.jira_store.JiraState`:
it resolves clause names (system names and aliases, ``cf[NNNNN]``,
``customfield_NNNNN``, a custom field's name in any case) against the site's
own field set, so a field the site lacks is an unknown field, checks literal values
against the site (statuses, priorities, options, users, keys and projects that
don't exist raise :class:`~connectors.sandbox.jql.JqlError` with Jira's text,
flagged as warnings so ``validateQuery=warn`` can drop them) and gives each
issue's values in the same normalized form. Users are matched by accountId or
email on Cloud, by name, key or email on Data Center. ``Unresolved`` means an
empty resolution.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from connectors.sandbox import jira_site as site
from connectors.sandbox.jira_store import JiraState, StoredIssue, StoredText
from connectors.sandbox.jql import EMPTY_VALUE, Field, JqlError, cf_number

_KEY = re.compile(r"([A-Z][A-Z0-9_]*)-(\d+)", re.IGNORECASE)


class SearchCatalog:
    """The state as the JQL evaluator sees it, for one searching user."""

    def __init__(self, state: JiraState, user_email: str) -> None:
        self.state = state
        self.user_email = user_email

    def field(self, name: str) -> Field | None:
        folded = name.strip().casefold()
        simple = {
            "project": "project", "key": "key", "issuekey": "key", "id": "key",
            "issue": "key", "labels": "multi", "component": "multi", "status": "equality",
            "statuscategory": "equality", "priority": "equality", "resolution": "equality",
            "issuetype": "equality", "type": "equality", "assignee": "user",
            "reporter": "user", "creator": "user", "created": "date", "createddate": "date",
            "updated": "date", "updateddate": "date", "resolutiondate": "date",
            "resolved": "date", "summary": "text", "description": "text", "comment": "text",
            "environment": "text", "due": "date", "duedate": "date",
            "text": "text",
        }
        canonical = {"issuekey": "key", "id": "key", "issue": "key", "type": "issuetype",
                     "createddate": "created", "updateddate": "updated",
                     "resolved": "resolutiondate", "component": "components",
                     "due": "duedate"}
        if folded in simple:
            kind = simple[folded]
            if kind == "project":
                kind = "equality"
            return Field(canonical.get(folded, folded), name, kind)
        number = cf_number(name)
        fields = self.state.fields
        if number is not None:
            custom = fields.custom(f"customfield_{number}")
        elif folded.startswith("customfield_"):
            custom = fields.custom(folded)
        else:
            custom = fields.custom_named(folded)
        # A field the site lacks is unknown to JQL (Jira answers 400 "Field 'x' does not
        # exist or you do not have permission to view it.").
        if custom is None:
            return None
        # JSM-managed fields are never set on the sandbox: searchable as always empty.
        kind = {"select": "equality", "text": "string", "textarea": "text",
                "service": "string"}[custom.kind]
        return Field(custom.id, name, kind)

    def _absent(self, value: str, target: Field) -> JqlError:
        return JqlError(f"The value '{value}' does not exist for the field '{target.name}'.",
                        warning=True)

    def normalize(self, target: Field, value: str) -> Any:
        fid = target.id
        if fid == "key":
            if value.isdigit():
                issue = self.state.issues.get(int(value))
                if issue is None:
                    raise JqlError(f"An issue with key '{value}' does not exist for field "
                                   f"'{target.name}'.", warning=True)
                return issue.key
            if not _KEY.fullmatch(value):
                raise JqlError(f"The issue key '{value}' for field '{target.name}' is invalid.")
            if self.state.by_key(value) is None:
                raise JqlError(f"An issue with key '{value.upper()}' does not exist for field "
                               f"'{target.name}'.", warning=True)
            return value.upper()
        if fid == "project":
            if value.casefold() in (self.state.project.casefold(), site.PROJECT_ID,
                                    site.PROJECT_NAME.casefold()):
                return self.state.project
            raise self._absent(value, target)
        if fid == "status":
            status = site.find_status(value)
            if status is None:
                raise self._absent(value, target)
            return status.id
        if fid == "statuscategory":
            for category in site.CATEGORIES.values():
                if value.casefold() in (category.key, category.name.casefold(),
                                        str(category.id)):
                    return category.key
            raise self._absent(value, target)
        if fid == "resolution":
            if value.casefold() == "unresolved":
                return EMPTY_VALUE
            found = site.find_named(site.RESOLUTIONS, value)
            if found is None:
                raise self._absent(value, target)
            return found.id
        tables = {"priority": site.PRIORITIES, "components": self.state.fields.components}
        if fid in tables:
            found = site.find_named(tables[fid], value)
            if found is None:
                raise self._absent(value, target)
            return found.id
        if fid == "issuetype":
            issue_type = next((t for t in site.ISSUE_TYPES if value.casefold() in (
                t.id, t.name.casefold())), None)
            if issue_type is None:
                raise self._absent(value, target)
            return issue_type.id
        if fid == "labels":
            return value.casefold()
        if target.kind == "user":
            user = self._user(value)
            if user is None:
                raise self._absent(value, target)
            return user.email.casefold()
        custom = self.state.fields.custom(fid)
        if custom is not None:
            if custom.kind == "select":
                option = next((o for o in custom.options if value.casefold() in (
                    o.id, o.name.casefold())), None)
                if option is None:
                    raise JqlError(f"The option '{value}' for field '{target.name}' does not "
                                   "exist.", warning=True)
                return option.id
            return value.casefold() if target.kind == "string" else value
        return value

    def _user(self, value: str) -> site.SiteUser | None:
        folded = value.casefold()
        for user in site.SITE_USERS:
            idents = {user.email.casefold()}
            idents |= ({user.account_id} if self.state.cloud
                       else {user.name.casefold(), user.key.casefold()})
            if folded in idents:
                return user
        return None

    def values(self, issue: StoredIssue, target: Field) -> list[Any]:
        fid = target.id
        if fid == "key":
            return [issue.key]
        if fid == "project":
            return [self.state.project]
        if fid == "status":
            return [issue.status]
        if fid == "statuscategory":
            return [site.status_by_id(issue.status).category]
        if fid == "priority":
            return [issue.priority]
        if fid == "resolution":
            return [issue.resolution] if issue.resolution else []
        if fid == "issuetype":
            return [issue.issuetype]
        if fid == "labels":
            return [label.casefold() for label in issue.labels]
        if fid == "components":
            return list(issue.components)
        if fid in ("assignee", "reporter", "creator"):
            email = getattr(issue, fid)
            return [email.casefold()] if email else []
        if fid in ("created", "updated", "resolutiondate"):
            moment = getattr(issue, fid)
            return [moment] if moment else []
        if fid == "summary":
            return [issue.summary]
        if fid in ("description", "environment"):
            text = getattr(issue, fid)
            return [text.text] if text else []
        if fid == "duedate":
            # A due date is a day; JQL compares it as that day's start (UTC here).
            return [datetime.fromisoformat(issue.duedate).replace(tzinfo=UTC)] if (
                issue.duedate) else []
        if fid == "comment":
            return [c.body.text for c in issue.comments]
        if fid == "text":
            texts = [issue.summary]
            if issue.description:
                texts.append(issue.description.text)
            texts += [c.body.text for c in issue.comments]
            for custom in self.state.fields.custom_fields:
                stored = issue.custom.get(custom.id)
                if custom.kind != "select" and stored is not None:
                    texts.append(stored.text if isinstance(stored, StoredText) else stored)
            return texts
        stored = issue.custom.get(fid)
        if stored is None:
            return []
        if isinstance(stored, StoredText):
            return [stored.text]
        return [stored.casefold() if target.kind == "string" else stored]

    def current_user(self) -> Any:
        return self.user_email.casefold()

    def now(self) -> datetime:
        return self.state.now()

    def sort_value(self, issue: StoredIssue, target: Field) -> Any:
        if target.id == "key":
            return issue.id
        if target.id == "priority":
            return -int(issue.priority)
        if target.id == "status":
            return site.status_by_id(issue.status).name.casefold()
        values = self.values(issue, target)
        if not values:
            return None
        value = values[0]
        return value.casefold() if isinstance(value, str) else value
