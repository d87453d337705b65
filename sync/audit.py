"""Cross-tool comparison: read both tools and the link table, report what differs.

Contract:
- :func:`build_audit` reads only: a full pull of each side's scope, the linked
  records that fell out of scope fetched in batches, the link table and the
  open conflicts. It writes nothing to either tool or to the state store, and
  takes no lock, so an auditor can run it beside a scheduled sync.
- Every linked pair is mapped to the neutral model with the configured
  profile and compared on every field both tools hold that the profile carries
  in either direction (:func:`sync.audit_report.compare_pair`); a linked record that no longer
  exists is reported as missing, a record in scope without a link as an orphan.
- Each finding carries the URLs a person opens the records at (the
  connectors' own record links), and the report carries when its reads began
  (the session's clock) and, when given, the :class:`ReportContext` saying what
  it is of: :func:`report_context` builds that from the settings.
- :func:`profile_sha256` fingerprints a profile's effective rows (after
  ``extends``), so two reports made with the same mapping show the same hash
  whatever file layout produced it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from connectors.base import RemoteRecord
from mappings.model import Incident
from mappings.profile import Profile
from sync import __version__
from sync.audit_report import (
    REPORT_SIDES,
    AuditedRecord,
    AuditReport,
    OpenConflict,
    Orphan,
    PairAudit,
    ReportContext,
    compare_pair,
    public_url,
)
from sync.conflict_settle import conflict_state
from sync.engine_core import projection
from sync.link_view import LinkView, conflict_values
from sync.session import Session
from sync.settings import Settings
from sync.state import StateStore


def profile_sha256(profile: Profile) -> str:
    """SHA-256 of the profile's rows as one canonical JSON document."""
    rows = {name: row.model_dump(mode="json") for name, row in profile.rows.items()}
    canonical = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def report_context(settings: Settings, configured: Profile, used: Profile) -> ReportContext:
    """What a report made with ``settings`` is of.

    ``configured`` is the profile as the config names it (its hash is what an
    auditor compares with the reviewed file); ``used`` the one the sites could
    hold, so optional rows left out on these sites are named.
    """
    sn, jira = settings.servicenow, settings.jira
    skipped = tuple(name for name in configured.rows if name not in used.rows)
    return ReportContext(
        servicenow_url=public_url(sn.instance_url), servicenow_table=sn.table,
        servicenow_query=sn.query, jira_url=public_url(jira.url), jira_project=jira.project,
        jira_issue_type=jira.issue_type, jira_jql=jira.jql, mapping=configured.name,
        mapping_source=configured.source, mapping_sha256=profile_sha256(configured),
        tool_version=__version__, skipped_rows=skipped,
    )


class Reader(Protocol):
    """What an audit reads through: a session and a state store (a
    :class:`sync.factory.Reading`, or an engine, which holds both)."""

    @property
    def session(self) -> Session: ...

    @property
    def store(self) -> StateStore: ...


def _pull_scope(session: Session, side: str) -> dict[str, RemoteRecord]:
    connector = session.connectors[side]
    return {r.id: r for r in connector.pull(None, session.vendor_fields[side])}


def compared_fields(session: Session) -> list[str]:
    """Neutral fields both tools hold and the profile carries one way or both, comments last.

    A field only one tool has (ServiceNow's hold reason, Jira's labels) cannot differ.
    """
    fields = []
    for name in session.profile.neutral_fields():
        rule = session.profile.rule(name)
        if rule is None or set(rule.sides) != set(session.sides):
            continue
        if any(session.profile.travels(name, side) for side in session.sides):
            fields.append(name)
    return [*fields, "comments"]


def _agreeing(session: Session, incidents: Mapping[str, Incident],
              displays: Mapping[str, str], fields: Sequence[str]) -> set[str]:
    """Fields whose values differ but agree the way the engine judges them.

    A lossy value map (Jira's "Done" reads back as ServiceNow's "Solution
    provided", never as "Resolved by caller") leaves values that can never be
    equal, yet writing either side's value across would change nothing: the
    sync treats those as in step, so the audit must not call them drift.
    """
    view = session.fields
    names = [name for name in fields if name in set(view.merged_fields)]
    if not names:
        return set()
    a, b = session.sides
    current = {side: projection(incidents[side], view.merged_fields) for side in (a, b)}
    across = {side: view.readback(session.other(side), incidents[side], displays)
              for side in (a, b)}
    return {name for name in names
            if across[a][name] == current[b][name] or across[b][name] == current[a][name]}


def build_audit(reader: Reader, context: ReportContext | None = None) -> AuditReport:
    """Compare every linked pair, list orphans on each side and open conflicts."""
    session, store = reader.session, reader.store
    made_at = session.clock()
    session.open()
    first, second = REPORT_SIDES
    records = {side: _pull_scope(session, side) for side in session.sides}
    links = [LinkView(link) for link in store.all_links()]

    # Linked records outside the scope are still part of the audit: one batched read.
    for side in session.sides:
        missing = [link.side(side).id for link in links
                   if link.side(side).id not in records[side]]
        if missing:
            connector = session.connectors[side]
            records[side].update(connector.get_many(missing, session.vendor_fields[side]))

    fields = compared_fields(session)
    report = AuditReport(made_at=made_at, context=context)
    linked_ids: dict[str, set[str]] = {side: set() for side in session.sides}
    for link in sorted(links, key=lambda item: item.id):
        ends = {side: link.side(side) for side in session.sides}
        for side in session.sides:
            linked_ids[side].add(ends[side].id)
        left = records[first].get(ends[first].id)
        right = records[second].get(ends[second].id)
        audited: dict[str, AuditedRecord] = {}
        for side, record in ((first, left), (second, right)):
            audited[side] = (AuditedRecord(ends[side].id, record.display, record.url) if record
                             else AuditedRecord(ends[side].id, ends[side].display))
        pair = PairAudit(audited)
        if left is None or right is None:
            pair.missing = first if left is None else second
            present = left or right
            if present is not None:
                pair.title = session.incident(present).title
        else:
            incidents = (session.neutral(left), session.neutral(right))
            agreeing = _agreeing(session, dict(zip(REPORT_SIDES, incidents, strict=True)),
                                 {first: left.display, second: right.display}, fields)
            pair.differences = compare_pair(*incidents, fields, agreeing=agreeing)
            pair.title = incidents[0].title
            statuses = [str(incident.status) for incident in incidents]
            pair.status = statuses[0] if statuses[0] == statuses[1] else " / ".join(statuses)
        report.pairs.append(pair)

    for side in session.sides:
        report.orphans.extend(_orphans(session, side, records[side].values(), linked_ids[side]))

    for conflict in store.open_conflicts():
        stored = store.link_by_id(conflict.link_id)
        view = LinkView(stored) if stored is not None else None
        names = [(view.side(side).display or view.side(side).id) if view else "?"
                 for side in REPORT_SIDES]
        values = conflict_values(conflict)
        urls = [records[side].get(view.side(side).id) if view else None
                for side in REPORT_SIDES]
        report.conflicts.append(OpenConflict(
            dict(zip(REPORT_SIDES, names, strict=True)), conflict.field, conflict.base,
            {side: values[side] for side in REPORT_SIDES},
            conflict_state(conflict),  # "open", or "chosen: take jira" (written next run)
            {side: url.url if url else "" for side, url in zip(REPORT_SIDES, urls, strict=True)},
        ))
    return report


def _orphans(
    session: Session, side: str, records: Iterable[RemoteRecord], linked: set[str]
) -> list[Orphan]:
    orphans = []
    for record in sorted(records, key=lambda r: r.display):
        if record.id in linked:
            continue
        title = session.incident(record).title
        orphans.append(Orphan(side, record.id, record.display, title, record.url))
    return orphans
