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
  (the engine's clock) and, when given, the :class:`ReportContext` saying what
  it is of: :func:`report_context` builds that from the settings.
- :func:`profile_sha256` fingerprints a profile's effective rows (after
  ``extends``), so two reports made with the same mapping show the same hash
  whatever file layout produced it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from connectors.base import RemoteRecord
from mappings.mapper import comment_from_remote
from mappings.model import Incident
from mappings.profile import Profile
from sync import __version__
from sync.audit_report import (
    AuditReport,
    OpenConflict,
    Orphan,
    PairAudit,
    ReportContext,
    compare_pair,
    public_url,
)
from sync.conflict_settle import conflict_state
from sync.engine import Engine
from sync.settings import Settings


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


def build_audit(engine: Engine, context: ReportContext | None = None) -> AuditReport:
    """Compare every linked pair, list orphans on each side and open conflicts."""
    made_at = engine.clock()
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
    report = AuditReport(made_at=made_at, context=context)
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
            servicenow_url=left.url if left else "", jira_url=right.url if right else "",
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
        left = records[sn_side].get(link.servicenow_id) if link else None
        right = records[jira_side].get(link.jira_key) if link else None
        report.conflicts.append(OpenConflict(
            link.servicenow_display or link.servicenow_id if link else "?",
            link.jira_display or link.jira_key if link else "?",
            conflict.field, conflict.base, conflict.servicenow_value, conflict.jira_value,
            conflict_state(conflict),  # "open", or "chosen: take jira" (written next run)
            servicenow_url=left.url if left else "", jira_url=right.url if right else "",
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
        orphans.append(Orphan(side, record.id, record.display, title, record.url))
    return orphans
