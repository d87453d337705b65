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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from connectors.base import RemoteRecord
from sync.audit_report import AuditReport, OpenConflict, Orphan, PairAudit, compare_pair
from sync.conflict_settle import conflict_state
from sync.link_view import LinkView, conflict_values
from sync.session import Session
from sync.state import StateStore

# The report's columns, in its order (sync.audit_report).
REPORT_SIDES = ("servicenow", "jira")


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


def build_audit(reader: Reader) -> AuditReport:
    """Compare every linked pair, list orphans on each side and open conflicts."""
    session, store = reader.session, reader.store
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
    report = AuditReport()
    linked_ids: dict[str, set[str]] = {side: set() for side in session.sides}
    for link in sorted(links, key=lambda item: item.id):
        ends = {side: link.side(side) for side in session.sides}
        for side in session.sides:
            linked_ids[side].add(ends[side].id)
        left = records[first].get(ends[first].id)
        right = records[second].get(ends[second].id)
        pair = PairAudit(
            ends[first].id, ends[second].id,
            left.display if left else ends[first].display,
            right.display if right else ends[second].display,
        )
        if left is None or right is None:
            pair.missing = first if left is None else second
            present = left or right
            if present is not None:
                pair.title = session.incident(present).title
        else:
            incidents = (session.neutral(left), session.neutral(right))
            pair.differences = compare_pair(*incidents, fields)
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
        report.conflicts.append(OpenConflict(
            names[0], names[1], conflict.field, conflict.base, values[first], values[second],
            conflict_state(conflict),  # "open", or "chosen: take jira" (written next run)
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
        orphans.append(Orphan(side, record.id, record.display, title))
    return orphans
