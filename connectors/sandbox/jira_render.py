"""JSON views of the Jira sandbox's state, as each API version and deployment shows them.

Contract:
- A :class:`Renderer` is bound to one request: the base URL, the mode ("cloud" or
  "datacenter"), the REST version ("2" or "3") and the site's field set. Rich text comes out as a
  string on v2 and as ADF on v3; users as Cloud shows them (accountId,
  emailAddress) or as Data Center does (name, key); timestamps as
  ``2024-01-01T12:00:00.000+0000``; every ``self`` is a URL the client can GET.
- :meth:`Renderer.issue` honours Jira's ``fields`` selection (``*all``,
  ``*navigable``, ids, ``-id`` exclusions) and the ``renderedFields``,
  ``names``, ``changelog`` expands and requested ``properties``.
- Pure: reads the state, never changes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.sandbox import jira_site as site
from connectors.sandbox.adf import text_to_adf, text_to_html
from connectors.sandbox.jira_store import History, StoredComment, StoredIssue, StoredText

SEARCH_EMBED_LIMIT = 20  # comments / changelog histories embedded per issue in search


def parse_field_selection(values: Iterable[str], default: str,
                          fields: site.SiteFields) -> list[str]:
    """Field ids the request asks for: repeated and comma-joined values, ``*all``,
    ``*navigable``, ``-id`` exclusions; unknown ids (and field names, which Jira
    does not accept here) are ignored, as Jira does."""
    requested = [part.strip() for value in values for part in str(value).split(",")]
    requested = [part for part in requested if part]
    if not requested:
        requested = [default]
    chosen: list[str] = []
    excluded: set[str] = set()
    for item in requested:
        if item == "*all":
            chosen += fields.all_field_ids
        elif item == "*navigable":
            chosen += fields.navigable_field_ids
        elif item.startswith("-"):
            excluded.add(item[1:])
        elif item in fields.all_field_ids or item in ("id", "key"):
            chosen.append(item)
    return [f for f in dict.fromkeys(chosen) if f not in excluded]


@dataclass
class Renderer:
    base: str
    mode: str
    version: str
    project_key: str
    fields: site.SiteFields

    @property
    def api(self) -> str:
        return f"{self.base}/rest/api/{self.version}"

    @property
    def cloud(self) -> bool:
        return self.mode == "cloud"

    # ---------------------------------------------------------------- simple values

    def time(self, moment: datetime | None) -> str | None:
        return site.jira_time(moment) if moment else None

    def text(self, stored: StoredText | None) -> Any:
        if stored is None:
            return None
        if self.version == "3":
            return stored.adf if stored.adf is not None else text_to_adf(stored.text)
        return stored.text

    def user(self, email: str | None, *, full: bool = False) -> dict[str, Any] | None:
        user = site.user_by_email(email) if email else None
        if user is None:
            return None
        avatars = {size: f"{self.base}/secure/useravatar?size={size}"
                   for size in ("48x48", "24x24", "16x16", "32x32")}
        data: dict[str, Any]
        if self.cloud:
            data = {"self": f"{self.api}/user?accountId={user.account_id}",
                    "accountId": user.account_id, "accountType": "atlassian",
                    "emailAddress": user.email}
        else:
            data = {"self": f"{self.api}/user?username={user.name}", "key": user.key,
                    "name": user.name, "emailAddress": user.email}
        data.update({"avatarUrls": avatars, "displayName": user.display_name,
                     "active": True, "timeZone": "UTC"})
        if full:
            data["locale"] = "en_US"
        return data

    def named(self, kind: str, item: site.Named | None) -> dict[str, Any] | None:
        if item is None:
            return None
        data = {"self": f"{self.api}/{kind}/{item.id}", "id": item.id, "name": item.name}
        if kind == "priority":
            data["iconUrl"] = f"{self.base}/images/icons/priorities/{item.name.lower()}.svg"
        if kind == "resolution":
            data["description"] = item.description
        return data

    def status(self, status: site.Status) -> dict[str, Any]:
        category = site.CATEGORIES[status.category]
        return {
            "self": f"{self.api}/status/{status.id}", "description": "",
            "iconUrl": f"{self.base}/images/icons/statuses/generic.png",
            "name": status.name, "id": status.id,
            "statusCategory": {
                "self": f"{self.api}/statuscategory/{category.id}", "id": category.id,
                "key": category.key, "colorName": category.color, "name": category.name,
            },
        }

    def issue_type(self, issue_type: site.IssueType) -> dict[str, Any]:
        return {"self": f"{self.api}/issuetype/{issue_type.id}", "id": issue_type.id,
                "description": issue_type.description,
                "iconUrl": f"{self.base}/images/icons/issuetypes/{issue_type.id}.svg",
                "name": issue_type.name, "subtask": False, "hierarchyLevel": 0}

    def project_ref(self) -> dict[str, Any]:
        return {"self": f"{self.api}/project/{site.PROJECT_ID}", "id": site.PROJECT_ID,
                "key": self.project_key, "name": site.PROJECT_NAME,
                "projectTypeKey": "service_desk", "simplified": False}

    def project(self) -> dict[str, Any]:
        data = self.project_ref()
        data.update({
            "description": "IT operations service desk", "lead": self.user("admin@example.com"),
            "components": [{"self": f"{self.api}/component/{c.id}", "id": c.id,
                            "name": c.name} for c in self.fields.components],
            "assigneeType": "UNASSIGNED", "isPrivate": False, "style": "classic",
            "issueTypes": [self.issue_type(t) for t in site.ISSUE_TYPES],
            "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
        })
        return data

    # ---------------------------------------------------------------- comments

    def comment(self, issue: StoredIssue, comment: StoredComment, *,
                with_properties: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "self": f"{self.api}/issue/{issue.id}/comment/{comment.id}",
            "id": str(comment.id), "author": self.user(comment.author),
            "body": self.text(comment.body), "updateAuthor": self.user(comment.author),
            "created": self.time(comment.created), "updated": self.time(comment.updated),
            "jsdPublic": not comment.internal,
        }
        if comment.visibility:
            data["visibility"] = comment.visibility
        if with_properties:
            data["properties"] = [{"key": k, "value": v} for k, v in comment.properties.items()]
        return data

    def comment_page(self, issue: StoredIssue, comments: list[StoredComment], *,
                     start: int, limit: int, total: int, with_properties: bool = False
                     ) -> dict[str, Any]:
        return {
            "comments": [self.comment(issue, c, with_properties=with_properties)
                         for c in comments],
            "self": f"{self.api}/issue/{issue.id}/comment",
            "maxResults": limit, "total": total, "startAt": start,
        }

    # ---------------------------------------------------------------- changelog

    def history(self, history: History) -> dict[str, Any]:
        return {
            "id": str(history.id), "author": self.user(history.author),
            "created": self.time(history.created),
            "items": [_drop_none({
                "field": item.field, "fieldtype": item.fieldtype, "fieldId": item.field_id,
                "from": item.from_id, "fromString": item.from_string,
                "to": item.to_id, "toString": item.to_string,
            }) for item in history.items],
        }

    # ---------------------------------------------------------------- issues

    def field_value(self, issue: StoredIssue, field_id: str, *, in_search: bool) -> Any:
        if field_id == "summary":
            return issue.summary
        if field_id in ("description", "environment"):
            return self.text(getattr(issue, field_id))
        if field_id == "duedate":
            return issue.duedate
        if field_id == "issuetype":
            return self.issue_type(next(t for t in site.ISSUE_TYPES if t.id == issue.issuetype))
        if field_id == "project":
            return self.project_ref()
        if field_id == "status":
            return self.status(site.status_by_id(issue.status))
        if field_id == "priority":
            return self.named("priority", site.find_named(site.PRIORITIES, {"id": issue.priority}))
        if field_id == "resolution":
            if issue.resolution is None:
                return None
            return self.named("resolution",
                              site.find_named(site.RESOLUTIONS, {"id": issue.resolution}))
        if field_id in ("resolutiondate", "created", "updated"):
            return self.time(getattr(issue, field_id))
        if field_id == "labels":
            return list(issue.labels)
        if field_id == "components":
            return [{"self": f"{self.api}/component/{c}", "id": c,
                     "name": site.find_named(self.fields.components, {"id": c}).name}  # type: ignore[union-attr]
                    for c in issue.components]
        if field_id in ("assignee", "reporter", "creator"):
            return self.user(getattr(issue, field_id))
        if field_id == "comment":
            comments = issue.comments
            shown = comments[:SEARCH_EMBED_LIMIT] if in_search else comments
            return self.comment_page(issue, shown, start=0, limit=len(shown) if not in_search
                                     else SEARCH_EMBED_LIMIT, total=len(comments))
        stored = issue.custom.get(field_id)
        custom = self.fields.custom(field_id)
        if stored is None or custom is None:
            return None
        if custom.kind == "select":
            option = next(o for o in custom.options if o.id == stored)
            return {"self": f"{self.api}/customFieldOption/{option.id}", "value": option.name,
                    "id": option.id}
        if custom.kind == "textarea":
            return self.text(stored)
        return stored

    def issue(self, issue: StoredIssue, *, fields: list[str], expand: Iterable[str] = (),
              properties: Iterable[str] = (), in_search: bool = False) -> dict[str, Any]:
        expand = {e.strip() for e in expand if e.strip()}
        data: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,"
                      "versionedRepresentations",
            "id": str(issue.id), "self": f"{self.api}/issue/{issue.id}", "key": issue.key,
        }
        shown = [f for f in fields if f not in ("id", "key")]
        if shown or not in_search:
            data["fields"] = {f: self.field_value(issue, f, in_search=in_search)
                              for f in shown}
        if "renderedFields" in expand:
            rendered: dict[str, Any] = {}
            for f in shown:
                value = (getattr(issue, f) if f in ("description", "environment")
                         else issue.custom.get(f))
                if isinstance(value, StoredText):
                    rendered[f] = text_to_html(value.text)
                elif f in ("created", "updated", "resolutiondate"):
                    rendered[f] = self.time(getattr(issue, f))
                else:
                    rendered[f] = None
            data["renderedFields"] = rendered
        if "names" in expand:
            data["names"] = {f: self.fields.field_name(f) for f in shown}
        if "changelog" in expand:
            histories = issue.history
            if in_search:
                histories = histories[-SEARCH_EMBED_LIMIT:]
            data["changelog"] = {
                "startAt": len(issue.history) - len(histories),
                "maxResults": len(histories), "total": len(issue.history),
                "histories": [self.history(h) for h in histories],
            }
        wanted = [p for p in properties if p]
        if wanted:
            data["properties"] = {p: issue.properties[p] for p in wanted
                                  if p in issue.properties}
        return data


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    # Jira sends null for absent from/to; the spec types them as plain strings, so
    # the sandbox leaves them out rather than break schema validation.
    return {k: v for k, v in data.items() if v is not None}
