"""The Jira sandbox's state and rules: issues, comments, changelog, field validation.

Contract:
- :class:`JiraState` holds every issue of the site and applies Jira's rules to
  each write: field validation with Jira's error texts (summary required and
  at most 255 characters, text areas at most 32767, options/priorities/
  components/users must exist on this site's field set, ADF on the v3 API and
  strings on v2; JSM-managed fields and fields the site lacks are refused as
  Jira refuses fields not on the screen), edits
  through ``fields`` and ``update`` operations, transitions only along the
  workflow (resolution set on entering a done status and cleared on leaving),
  a changelog entry per change, and ``updated`` bumped by edits, transitions
  and comments. It is not thread-safe: the server calls it under its lock.
- Every refusal is a :class:`JiraRejected` carrying the HTTP status and the
  ErrorCollection body the real API answers, so the HTTP routes and the
  in-process helpers share one code path.
- Users are referenced as Cloud does (``{"accountId": ...}``) in ``mode="cloud"``
  and as Data Center does (``{"name": ...}`` / ``{"key": ...}``) otherwise.
- ``jira_catalog.py`` exposes the state to the JQL evaluator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.sandbox import jira_site as site
from connectors.sandbox.adf import adf_problem, adf_to_text

MUST_BE_ADF = ("Operation value must be an Atlassian Document (see the Atlassian Document "
               "Format)")
MUST_BE_STRING = "Operation value must be a string"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
ISSUE_MISSING = "Issue does not exist or you do not have permission to see it."


def collection(messages: list[str] | None = None, errors: dict[str, str] | None = None
               ) -> dict[str, Any]:
    """Jira's ErrorCollection body."""
    return {"errorMessages": list(messages or []), "errors": dict(errors or {})}


class JiraRejected(ValueError):
    """A request Jira refuses: ``status`` and the ErrorCollection ``body`` it answers."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        parts = list(body.get("errorMessages", [])) + [
            f"{k}: {v}" for k, v in body.get("errors", {}).items()
        ]
        super().__init__(f"HTTP {status}: " + "; ".join(parts))
        self.status = status
        self.body = body


def bad_request(message: str | None = None, **errors: str) -> JiraRejected:
    return JiraRejected(400, collection([message] if message else [], errors))


def not_found(message: str = ISSUE_MISSING) -> JiraRejected:
    return JiraRejected(404, collection([message]))


# ------------------------------------------------------------------ stored data


@dataclass
class StoredText:
    """Rich text as written: the plain/wiki text, and the ADF when written through v3."""

    text: str
    adf: dict[str, Any] | None = None


@dataclass
class StoredComment:
    id: int
    author: str                 # email
    body: StoredText
    created: datetime
    updated: datetime
    internal: bool = False
    visibility: dict[str, Any] | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChangeItem:
    field: str
    fieldtype: str
    field_id: str
    from_id: str | None
    from_string: str | None
    to_id: str | None
    to_string: str | None


@dataclass
class History:
    id: int
    author: str                 # email
    created: datetime
    items: list[ChangeItem]


@dataclass
class StoredIssue:
    id: int
    key: str
    issuetype: str              # issue type id
    summary: str
    created: datetime
    updated: datetime
    reporter: str | None        # email
    creator: str                # email
    status: str = site.INITIAL_STATUS
    description: StoredText | None = None
    environment: StoredText | None = None
    duedate: str | None = None  # YYYY-MM-DD
    priority: str = site.DEFAULT_PRIORITY
    resolution: str | None = None
    resolutiondate: datetime | None = None
    labels: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)  # component ids
    assignee: str | None = None  # email
    custom: dict[str, Any] = field(default_factory=dict)  # option id | str | StoredText
    comments: list[StoredComment] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    remote_links: list[dict[str, Any]] = field(default_factory=list)
    history: list[History] = field(default_factory=list)


# ------------------------------------------------------------------ the state


class JiraState:
    """All issues of the sandbox site, and the rules every write goes through."""

    def __init__(self, *, mode: str, project: str, clock: Callable[[], datetime],
                 fields: site.SiteFields | None = None) -> None:
        self.mode = mode
        self.project = project
        self.clock = clock
        self.fields = fields if fields is not None else site.site_fields("stock", mode)
        self.issues: dict[int, StoredIssue] = {}
        self._ids_by_key: dict[str, int] = {}  # so key lookups stay O(1) on big seeds
        # Label -> issue ids: the marker-label searches (`labels in (snow-...)`) of a big
        # sync read candidates from here instead of evaluating every issue.
        self._ids_by_label: dict[str, set[int]] = {}
        self._next_issue_id = 10001
        self._next_number = 1
        self._next_comment_id = 10000
        self._next_history_id = 10000
        self._next_link_id = 10000

    @property
    def cloud(self) -> bool:
        return self.mode == "cloud"

    def now(self) -> datetime:
        return site.truncate_ms(self.clock())

    # ---------------------------------------------------------------- lookups

    def find(self, id_or_key: str) -> StoredIssue:
        if id_or_key.isdigit():
            issue = self.issues.get(int(id_or_key))
        else:
            issue = self.by_key(id_or_key)
        if issue is None:
            raise not_found()
        return issue

    def by_key(self, key: str) -> StoredIssue | None:
        issue_id = self._ids_by_key.get(key.upper())
        return None if issue_id is None else self.issues.get(issue_id)

    def user_ref(self, value: Any, field_id: str) -> site.SiteUser | None:
        """The user a request's ``{"accountId"}`` / ``{"name"}`` refers to (None = nobody)."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise bad_request(**{field_id: "expected Object"})
        if self.cloud:
            if "name" in value and "accountId" not in value:
                raise bad_request(**{field_id: "'name' is not supported on Jira Cloud; use "
                                                "'accountId'"})
            ident = value.get("accountId", value.get("id"))
            if ident is None:
                return None
            user = next((u for u in site.SITE_USERS if u.account_id == ident), None)
        elif value.get("name") is not None:
            user = next((u for u in site.SITE_USERS if u.name == value["name"]), None)
        elif value.get("key") is not None:
            user = next((u for u in site.SITE_USERS if u.key == value["key"]), None)
        else:
            return None
        if user is None:
            if self.cloud:
                raise bad_request(**{field_id: "Specified user does not exist or you do not "
                                               "have required permissions"})
            who = value.get("name") or value.get("key")
            raise bad_request(**{field_id: f"User '{who}' does not exist."})
        return user

    # ---------------------------------------------------------------- writes

    def create(self, body: dict[str, Any], *, version: str, actor: str) -> StoredIssue:
        if not isinstance(body, dict):
            raise bad_request("Can not deserialize the request body.")
        fields = dict(body.get("fields") or {})
        update = body.get("update") or {}
        errors: dict[str, str] = {}
        project = fields.pop("project", None)
        if not isinstance(project, dict) or not (
            str(project.get("id")) == site.PROJECT_ID or project.get("key") == self.project
        ):
            errors["project"] = "Specify a valid project ID or key"
        issuetype = fields.pop("issuetype", None)
        issue_type_id = None
        if not isinstance(issuetype, dict):
            errors["issuetype"] = "Specify an issue type"
        else:
            found = next((t for t in site.ISSUE_TYPES
                          if t.id == str(issuetype.get("id")) or t.name == issuetype.get("name")),
                         None)
            if found is None:
                errors["issuetype"] = "The issue type selected is invalid."
            else:
                issue_type_id = found.id
        summary = fields.get("summary")
        if summary is None and not _sets(update, "summary"):
            errors["summary"] = "You must specify a summary of the issue."
        now = self.now()
        issue = StoredIssue(
            id=self._next_issue_id, key=f"{self.project}-{self._next_number}",
            issuetype=issue_type_id or "", summary="", created=now, updated=now,
            reporter=actor, creator=actor,
        )
        changes, comments = self._prepare(issue, fields, update, version=version,
                                          creating=True, errors=errors)
        if errors:
            raise bad_request(**errors)
        for apply in changes:
            apply()
        self._next_issue_id += 1
        self._next_number += 1
        self.issues[issue.id] = issue
        self._ids_by_key[issue.key] = issue.id
        for key_value in body.get("properties") or []:
            issue.properties[str(key_value["key"])] = key_value.get("value")
        for comment_body in comments:
            self.add_comment(issue, comment_body, version=version, actor=actor)
        return issue

    def create_transition(self, issue: StoredIssue, body: dict[str, Any], *, version: str,
                          actor: str) -> dict[str, Any] | None:
        """Apply a create payload's ``transition`` (Cloud: "A transition may be applied,
        to move the issue ... to a workflow step other than the default start step");
        the nested response Cloud reports per created issue, or None when none was
        asked. A refused transition leaves the issue created, in its start status."""
        transition = body.get("transition") if isinstance(body, dict) else None
        if not isinstance(transition, dict):
            return None
        try:
            self.transition(issue, {"transition": transition}, version=version, actor=actor)
        except JiraRejected as exc:
            return {"status": exc.status, "errorCollection": exc.body}
        return {"status": 200, "errorCollection": collection()}

    def edit(self, issue: StoredIssue, body: dict[str, Any], *, version: str, actor: str
             ) -> None:
        """PUT issue: ``fields`` and ``update``; a ``transition`` in the body is ignored."""
        if not isinstance(body, dict):
            raise bad_request("Can not deserialize the request body.")
        fields = dict(body.get("fields") or {})
        update = body.get("update") or {}
        errors: dict[str, str] = {}
        for name in ("project", "issuetype"):
            if name in fields:
                wanted = fields.pop(name)
                current = ({"id": site.PROJECT_ID, "key": self.project} if name == "project"
                           else {"id": issue.issuetype})
                if not isinstance(wanted, dict) or not any(
                        str(wanted.get(k)) == v for k, v in current.items()):
                    errors[name] = f"Field '{name}' cannot be changed by editing the issue."
        both = set(fields) & set(update)
        for name in sorted(both):
            errors[name] = f"Field '{name}' cannot be set in both 'fields' and 'update'."
        before = _snapshot(issue)
        changes, comments = self._prepare(issue, fields, update, version=version,
                                          creating=False, errors=errors)
        if errors:
            raise bad_request(**errors)
        for apply in changes:
            apply()
        for key_value in body.get("properties") or []:
            issue.properties[str(key_value["key"])] = key_value.get("value")
        items = self._diff(before, issue)
        if items:
            self._record(issue, actor, items)
        for comment_body in comments:
            self.add_comment(issue, comment_body, version=version, actor=actor)

    def _prepare(self, issue: StoredIssue, fields: dict[str, Any], update: Any, *,
                 version: str, creating: bool, errors: dict[str, str]
                 ) -> tuple[list[Callable[[], None]], list[Any]]:
        """Validate writes; returns closures that apply them and comment bodies to add."""
        if not isinstance(update, dict):
            errors["update"] = "expected Object"
            return [], []
        fields = dict(fields)
        comments: list[Any] = []
        for name, operations in update.items():
            if not isinstance(operations, list):
                errors[name] = "Field operations must be an array"
                continue
            if name == "comment":
                for op in operations:
                    if isinstance(op, dict) and isinstance(op.get("add"), dict):
                        comments.append(op["add"].get("body"))
                    else:
                        errors["comment"] = "Comment operations support 'add' only"
                continue
            value = _apply_operations(issue, name, operations, errors, self.fields)
            if name not in errors:
                fields[name] = value
        applies: list[Callable[[], None]] = []
        for name, value in fields.items():
            try:
                applies.append(self._field_setter(issue, name, value, version=version,
                                                  creating=creating))
            except JiraRejected as exc:
                errors.update(exc.body.get("errors", {}))
        return applies, comments

    def _field_setter(self, issue: StoredIssue, name: str, value: Any, *, version: str,
                      creating: bool) -> Callable[[], None]:
        def fail(message: str) -> JiraRejected:
            return bad_request(**{name: message})

        if name == "summary":
            if not isinstance(value, str) or not value.strip():
                raise fail("You must specify a summary of the issue.")
            if "\n" in value or "\r" in value:
                raise fail("The summary is invalid because it contains newline characters.")
            if len(value) > site.TEXTFIELD_LIMIT:
                raise fail("Summary must be less than 255 characters.")
            return lambda: setattr(issue, "summary", value)
        if name in ("description", "environment"):
            text = self._rich_text(value, name, version)
            return lambda: setattr(issue, name, text)
        if name == "duedate":
            if value is not None and not (isinstance(value, str) and _DATE.fullmatch(value)):
                raise fail("Error parsing date string: " + str(value))
            return lambda: setattr(issue, "duedate", value or None)
        if name == "priority":
            found = site.find_named(site.PRIORITIES, value) if isinstance(value, dict) else None
            if found is None:
                raise fail("Specify a valid 'id' or 'name' for Priority")
            return lambda: setattr(issue, "priority", found.id)
        if name == "labels":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail("Labels must be an array of strings")
            for label in value:
                if not label or re.search(r"\s", label):
                    raise fail(f"The label '{label}' contains spaces which is invalid.")
                if len(label) > site.TEXTFIELD_LIMIT:
                    raise fail("The label must not exceed 255 characters.")
            labels = list(dict.fromkeys(value))
            return lambda: self._set_labels(issue, labels)
        if name == "components":
            if not isinstance(value, list):
                raise fail("Components must be an array")
            ids = []
            for ref in value:
                found = (site.find_named(self.fields.components, ref) if isinstance(ref, dict)
                         else None)
                if found is None:
                    shown = ref.get("name", ref.get("id")) if isinstance(ref, dict) else ref
                    raise fail(f"Component name '{shown}' is not valid")
                ids.append(found.id)
            ids = list(dict.fromkeys(ids))
            return lambda: setattr(issue, "components", ids)
        if name in ("assignee", "reporter"):
            user = self.user_ref(value, name)
            email = user.email if user else None
            return lambda: setattr(issue, name, email)
        custom = self.fields.custom(name)
        if custom is not None and custom.writable:
            return self._custom_setter(issue, custom, value, version)
        raise fail(f"Field '{name}' cannot be set. It is not on the appropriate screen, or "
                   "unknown.")

    def _custom_setter(self, issue: StoredIssue, custom: site.CustomField, value: Any,
                       version: str) -> Callable[[], None]:
        def put(stored: Any) -> Callable[[], None]:
            def apply() -> None:
                if stored is None:
                    issue.custom.pop(custom.id, None)
                else:
                    issue.custom[custom.id] = stored
            return apply

        if value is None:
            return put(None)
        if custom.kind == "select":
            option = None
            if isinstance(value, dict) and "id" in value:
                option = next((o for o in custom.options if o.id == str(value["id"])), None)
                shown = f"id '{value['id']}'"
            elif isinstance(value, dict) and "value" in value:
                option = next((o for o in custom.options if o.name == value["value"]), None)
                shown = f"value '{value['value']}'"
            else:
                shown = repr(value)
            if option is None:
                raise bad_request(**{custom.id: f"Option {shown} is not valid"})
            return put(option.id)
        if custom.kind == "textarea":
            return put(self._rich_text(value, custom.id, version))
        if not isinstance(value, str):
            raise bad_request(**{custom.id: MUST_BE_STRING})
        if len(value) > site.TEXTFIELD_LIMIT:
            raise bad_request(**{custom.id: "The entered text is too long. It exceeds the "
                                            "allowed limit of 255 characters."})
        return put(value or None)

    def _rich_text(self, value: Any, name: str, version: str) -> StoredText | None:
        if value is None:
            return None
        if version == "3":
            problem = adf_problem(value)
            if problem:
                raise bad_request(**{name: problem})
            text = adf_to_text(value)
            stored = StoredText(text, value)
        else:
            if not isinstance(value, str):
                raise bad_request(**{name: MUST_BE_STRING})
            text, stored = value, StoredText(value)
        if len(text) > site.TEXTAREA_LIMIT:
            raise bad_request(**{name: "The entered text is too long. It exceeds the allowed "
                                       "limit of 32,767 characters."})
        return stored if text else None

    def transition(self, issue: StoredIssue, body: dict[str, Any], *, version: str,
                   actor: str) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("transition"), dict):
            raise bad_request("Missing 'transition' identifier")
        ident = body["transition"].get("id")
        if ident is None:
            raise bad_request("Missing 'transition' identifier")
        transition = next((t for t in site.transitions_from(issue.status)
                           if t.id == str(ident)), None)
        if transition is None:
            raise bad_request(f"Transition id '{ident}' is not valid for this issue.")
        target = site.status_by_id(transition.target)
        fields = body.get("fields") or {}
        resolution: str | None = None
        for name, value in fields.items():
            if name == "resolution" and target.is_done:
                found = site.find_named(site.RESOLUTIONS, value)
                if found is None:
                    raise bad_request(**{"resolution": "Specify a valid 'id' or 'name' for "
                                                       "Resolution"})
                resolution = found.id
            else:
                raise bad_request(**{name: f"Field '{name}' cannot be set. It is not on the "
                                           "appropriate screen, or unknown."})
        update = body.get("update") or {}
        comments: list[Any] = []
        for name, operations in update.items():
            if name != "comment" or not isinstance(operations, list):
                raise bad_request(**{name: f"Field '{name}' cannot be set. It is not on the "
                                           "appropriate screen, or unknown."})
            for op in operations:
                if not isinstance(op, dict) or not isinstance(op.get("add"), dict):
                    raise bad_request(**{"comment": "Comment operations support 'add' only"})
                comments.append(op["add"].get("body"))
        for comment_body in comments:  # validate before changing anything
            self.comment_text(comment_body, version)
        self.move(issue, target, resolution=resolution, actor=actor)
        for comment_body in comments:
            self.add_comment(issue, comment_body, version=version, actor=actor)

    def move(self, issue: StoredIssue, target: site.Status, *, resolution: str | None,
             actor: str) -> None:
        """Enter ``target``: resolution set on entering a done status, cleared on leaving."""
        before = _snapshot(issue)
        now = self.now()
        issue.status = target.id
        if target.is_done:
            if issue.resolution is None or resolution is not None:
                issue.resolution = resolution or site.DEFAULT_RESOLUTION
            if issue.resolutiondate is None:
                issue.resolutiondate = now
        else:
            issue.resolution = None
            issue.resolutiondate = None
        self._record(issue, actor, self._diff(before, issue))

    def comment_text(self, body: Any, version: str) -> StoredText:
        if version == "3":
            problem = adf_problem(body)
            if problem:
                raise bad_request(**{"comment": "Comment body is not valid! " + problem})
            text = adf_to_text(body)
            stored = StoredText(text, body)
        else:
            if not isinstance(body, str) or not body.strip():
                raise bad_request(**{"comment": "Comment body can not be empty!"})
            text, stored = body, StoredText(body)
        if not text.strip():
            raise bad_request(**{"comment": "Comment body can not be empty!"})
        if len(text) > site.TEXTAREA_LIMIT:
            raise bad_request(**{"comment": "The entered text is too long. It exceeds the "
                                            "allowed limit of 32,767 characters."})
        return stored

    def add_comment(self, issue: StoredIssue, body: Any, *, version: str, actor: str,
                    internal: bool = False, visibility: dict[str, Any] | None = None,
                    properties: list[Any] | None = None, created: datetime | None = None
                    ) -> StoredComment:
        stored = self.comment_text(body, version)
        props: dict[str, Any] = {}
        for prop in properties or []:
            if not isinstance(prop, dict) or "key" not in prop:
                raise bad_request("Comment properties must be objects with a 'key'")
            props[str(prop["key"])] = prop.get("value")
        flag = props.get("sd.public.comment")
        if isinstance(flag, dict) and flag.get("internal") is True:
            internal = True
        if internal:
            props["sd.public.comment"] = {"internal": True}
        if visibility is not None and (not isinstance(visibility, dict) or visibility.get(
                "type") not in ("role", "group") or not visibility.get("value")):
            raise bad_request(**{"visibility": "Visibility must have a 'type' (role or group) "
                                               "and a 'value'"})
        now = created or self.now()
        comment = StoredComment(self._next_comment_id, actor, stored, now, now, internal,
                                visibility, props)
        self._next_comment_id += 1
        issue.comments.append(comment)
        issue.updated = max(issue.updated, now)
        return comment

    def delete(self, issue: StoredIssue) -> None:
        del self.issues[issue.id]
        self._ids_by_key.pop(issue.key, None)
        self._set_labels(issue, [])

    def _set_labels(self, issue: StoredIssue, labels: list[str]) -> None:
        # Keyed case-folded: JQL compares labels ignoring case.
        for label in issue.labels:
            self._ids_by_label.get(label.casefold(), set()).discard(issue.id)
        issue.labels = labels
        for label in labels:
            self._ids_by_label.setdefault(label.casefold(), set()).add(issue.id)

    def ids_with_labels(self, labels: Iterable[str]) -> set[int]:
        """Ids of the issues carrying any of these labels (ignoring case, as JQL does)."""
        found: set[int] = set()
        for label in labels:
            found |= self._ids_by_label.get(label.casefold(), set())
        return found

    def ids_with_keys(self, keys: Iterable[str]) -> set[int]:
        """Ids of the issues with these keys (case-insensitive, as Jira resolves keys)."""
        return {self._ids_by_key[k.upper()] for k in keys if k.upper() in self._ids_by_key}

    def set_property(self, issue: StoredIssue, key: str, raw: bytes) -> bool:
        """Store an issue property; True when it was created (201), False updated (200)."""
        if not key or len(key) > 255:
            raise bad_request("The property key must be between 1 and 255 characters long.")
        if not raw.strip():
            raise bad_request("The property value must not be empty.")
        if len(raw.decode("utf-8")) > 32768:
            raise bad_request("The property value is too long: it exceeds 32768 characters.")
        try:
            value = json.loads(raw)
        except ValueError:
            raise bad_request("The property value must be valid JSON.") from None
        created = key not in issue.properties
        issue.properties[key] = value
        return created

    def upsert_remote_link(self, issue: StoredIssue, body: Any) -> tuple[dict[str, Any], bool]:
        """Create, or replace by ``globalId`` (omitted fields nulled); True when created."""
        if not isinstance(body, dict) or not isinstance(body.get("object"), dict):
            raise bad_request(**{"object": "'object' is required."})
        obj = body["object"]
        if not obj.get("title"):
            raise bad_request(**{"title": "'title' is required."})
        if not obj.get("url"):
            raise bad_request(**{"url": "'url' is required."})
        link = {k: body[k] for k in ("globalId", "application", "relationship")
                if body.get(k) is not None}
        link["object"] = obj
        global_id = body.get("globalId")
        existing = next((old for old in issue.remote_links
                         if global_id and old.get("globalId") == global_id), None)
        if existing is not None:
            link["id"] = existing["id"]
            issue.remote_links[issue.remote_links.index(existing)] = link
            return link, False
        link["id"] = self._next_link_id
        self._next_link_id += 1
        issue.remote_links.append(link)
        return link, True

    # ---------------------------------------------------------------- changelog

    def _record(self, issue: StoredIssue, actor: str, items: list[ChangeItem]) -> None:
        if not items:
            return
        now = self.now()
        issue.history.append(History(self._next_history_id, actor, now, items))
        self._next_history_id += 1
        issue.updated = max(issue.updated, now)

    def _user_id(self, email: str | None) -> str | None:
        user = site.user_by_email(email) if email else None
        if user is None:
            return None
        return user.account_id if self.cloud else user.name

    def _diff(self, before: dict[str, Any], issue: StoredIssue) -> list[ChangeItem]:
        after = _snapshot(issue)
        items: list[ChangeItem] = []
        for name in ("status", "resolution", "priority"):
            if before[name] != after[name]:
                table = {"status": site.STATUSES, "resolution": site.RESOLUTIONS,
                         "priority": site.PRIORITIES}[name]
                items.append(ChangeItem(name, "jira", name, before[name],
                                        _name_of(table, before[name]), after[name],
                                        _name_of(table, after[name])))
        for name in ("summary", "description", "environment", "duedate"):
            if before[name] != after[name]:
                items.append(ChangeItem(name, "jira", name, None, before[name], None,
                                        after[name]))
        for name in ("assignee", "reporter"):
            if before[name] != after[name]:
                items.append(ChangeItem(name, "jira", name, self._user_id(before[name]),
                                        _display(before[name]), self._user_id(after[name]),
                                        _display(after[name])))
        if before["labels"] != after["labels"]:
            items.append(ChangeItem("labels", "jira", "labels", None,
                                    " ".join(before["labels"]), None, " ".join(after["labels"])))
        for component in before["components"]:
            if component not in after["components"]:
                items.append(ChangeItem("Component", "jira", "components", component,
                                        _name_of(self.fields.components, component), None,
                                        None))
        for component in after["components"]:
            if component not in before["components"]:
                items.append(ChangeItem("Component", "jira", "components", None, None,
                                        component,
                                        _name_of(self.fields.components, component)))
        for custom in self.fields.custom_fields:
            old, new = before["custom"].get(custom.id), after["custom"].get(custom.id)
            if old == new:
                continue
            if custom.kind == "select":
                items.append(ChangeItem(custom.name, "custom", custom.id, old,
                                        _name_of(custom.options, old), new,
                                        _name_of(custom.options, new)))
            else:
                items.append(ChangeItem(custom.name, "custom", custom.id, None, old, None, new))
        return items


def _sets(update: Any, name: str) -> bool:
    return isinstance(update, dict) and name in update


def _name_of(items: list[Any], ident: str | None) -> str | None:
    if ident is None:
        return None
    return next((i.name for i in items if i.id == ident), None)


def _display(email: str | None) -> str | None:
    user = site.user_by_email(email) if email else None
    return user.display_name if user else None


def _snapshot(issue: StoredIssue) -> dict[str, Any]:
    def text(value: Any) -> Any:
        return value.text if isinstance(value, StoredText) else value

    return {
        "status": issue.status, "resolution": issue.resolution, "priority": issue.priority,
        "summary": issue.summary,
        "description": text(issue.description), "environment": text(issue.environment),
        "duedate": issue.duedate,
        "assignee": issue.assignee, "reporter": issue.reporter,
        "labels": list(issue.labels), "components": list(issue.components),
        "custom": {k: text(v) for k, v in issue.custom.items()},
    }


def _apply_operations(issue: StoredIssue, name: str, operations: list[Any],
                      errors: dict[str, str], fields: site.SiteFields) -> Any:
    """The value ``update`` operations (set/add/remove) leave a field with."""
    multi = name in ("labels", "components")
    current: Any
    if name == "labels":
        current = list(issue.labels)
    elif name == "components":
        current = [{"id": c} for c in issue.components]
    else:
        current = None
    for op in operations:
        if not isinstance(op, dict) or len(op) != 1:
            errors[name] = "Each operation must be an object with one of set, add, remove"
            return None
        (verb, value), = op.items()
        if verb == "set":
            current = list(value) if multi and isinstance(value, list) else value
        elif verb in ("add", "remove") and multi:
            if verb == "add":
                current.append(value)
            else:
                current = [c for c in current
                           if not _same_item(c, value, fields.components)]
        else:
            errors[name] = f"Field '{name}' does not support the '{verb}' operation"
            return None
    return current


def _same_item(current: Any, value: Any, components: list[site.Named]) -> bool:
    if isinstance(current, str) or isinstance(value, str):
        return current == value
    if isinstance(current, dict) and isinstance(value, dict):
        mine = site.find_named(components, current)
        theirs = site.find_named(components, value)
        return mine is not None and mine == theirs
    return False
