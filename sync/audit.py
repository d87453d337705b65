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

from connectors.base import RemoteRecord
from mappings.mapper import comment_from_remote
from mappings.model import Incident
from sync.audit_report import AuditReport, OpenConflict, Orphan, PairAudit, compare_pair
from sync.conflict_settle import conflict_state
from sync.engine import Engine


def _pull_scope(engine: Engine, side: str) -> dict[str, RemoteRecord]:
    connector = engine.connectors[side]
    return {r.id: r for r in connector.pull(None, engine.vendor_fields[side])}


def _neutral(engine: Engine, record: RemoteRecord) -> Incident:
    incident = engine.incident(record)
    side = str(record.side)
    incident.comments = [
        comment_from_remote(side, comment, engine.ctx[side]) for comment in record.comments
    ]
    return incident


def compared_fields(engine: Engine) -> list[str]:
    """Neutral fields both tools hold and the profile carries one way or both, comments last.

    A field only one tool has (ServiceNow's hold reason, Jira's labels) cannot differ.
    """
    fields = []
    for name in engine.profile.neutral_fields():
        rule = engine.profile.rule(name)
        if rule is None or set(rule.sides) != set(engine.sides):
            continue
        if any(engine.profile.travels(name, side) for side in engine.sides):
            fields.append(name)
    return [*fields, "comments"]


def build_audit(engine: Engine) -> AuditReport:
    """Compare every linked pair, list orphans on each side and open conflicts."""
    engine.open()
    sn_side, jira_side = "servicenow", "jira"
    records = {side: _pull_scope(engine, side) for side in (sn_side, jira_side)}
    links = engine.store.all_links()

    # Linked records outside the scope are still part of the audit: one batched read.
    for side in (sn_side, jira_side):
        missing = [link.id_on(side) for link in links if link.id_on(side) not in records[side]]
        if missing:
            connector = engine.connectors[side]
            records[side].update(connector.get_many(missing, engine.vendor_fields[side]))

    fields = compared_fields(engine)
    report = AuditReport()
    linked_ids: dict[str, set[str]] = {sn_side: set(), jira_side: set()}
    for link in sorted(links, key=lambda item: item.id):
        linked_ids[sn_side].add(link.servicenow_id)
        linked_ids[jira_side].add(link.jira_key)
        left = records[sn_side].get(link.servicenow_id)
        right = records[jira_side].get(link.jira_key)
        pair = PairAudit(
            link.servicenow_id, link.jira_key,
            left.display if left else link.servicenow_display,
            right.display if right else link.jira_display,
        )
        if left is None or right is None:
            pair.missing = sn_side if left is None else jira_side
            present = left or right
            if present is not None:
                pair.title = engine.incident(present).title
        else:
            incidents = (_neutral(engine, left), _neutral(engine, right))
            pair.differences = compare_pair(*incidents, fields)
            pair.title = incidents[0].title
            statuses = [str(incident.status) for incident in incidents]
            pair.status = statuses[0] if statuses[0] == statuses[1] else " / ".join(statuses)
        report.pairs.append(pair)

    for side in (sn_side, jira_side):
        report.orphans.extend(_orphans(engine, side, records[side].values(), linked_ids[side]))

    for conflict in engine.store.open_conflicts():
        link = engine.store.link_by_id(conflict.link_id)
        report.conflicts.append(OpenConflict(
            link.servicenow_display or link.servicenow_id if link else "?",
            link.jira_display or link.jira_key if link else "?",
            conflict.field, conflict.base, conflict.servicenow_value, conflict.jira_value,
            conflict_state(conflict),  # "open", or "chosen: take jira" (written next run)
        ))
    return report


def _orphans(
    engine: Engine, side: str, records: Iterable[RemoteRecord], linked: set[str]
) -> list[Orphan]:
    orphans = []
    for record in sorted(records, key=lambda r: r.display):
        if record.id in linked:
            continue
        title = engine.incident(record).title
        orphans.append(Orphan(side, record.id, record.display, title))
    return orphans
