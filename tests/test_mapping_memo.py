"""The run's mapping memo (:class:`sync.decide.MappingMemo`): reuse without staleness.

A record object is mapped once; a record re-read after a write (a new object,
even with the same id and version) is mapped anew; readbacks are shared by
equal neutral values only; what a caller gets is its own to change; nothing
the memo holds outlives a run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sync_helpers import sn_incident

from connectors.base import RemoteRecord, Side
from mappings.mapper import MappingContext, to_fields, to_incident
from mappings.profile import load_profile
from sync.decide import FieldView
from sync.engine_core import EngineOptions, projection

SIDES = ("servicenow", "jira")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def view() -> FieldView:
    ids = {"Impact": "customfield_10004", "Urgency": "customfield_10005"}
    ctx = {side: MappingContext(text_format="plain", field_ids=ids) for side in SIDES}
    return FieldView(SIDES, load_profile("default"), ctx, EngineOptions())


def record(title: str, version: str = "1") -> RemoteRecord:
    return RemoteRecord(side=Side.SERVICENOW, id="sn1", display="INC0010001",
                        version=version, updated=T0,
                        fields={"short_description": title, "state": "2"})


def test_a_record_object_is_mapped_once_and_a_reread_anew() -> None:
    fields = view()
    first = record("VPN down")
    assert fields.incident(first) is fields.incident(first)
    # The same id and version, read again after our write: a new object, new values.
    again = record("VPN down since 9:00")
    assert fields.incident(again).title == "VPN down since 9:00"
    assert fields.incident(first).title == "VPN down"


def test_projections_and_readbacks_are_the_callers_own() -> None:
    fields = view()
    incident = fields.incident(record("VPN down"))
    held = fields.current(incident)
    held["title"] = "changed by a caller"
    assert fields.current(incident)["title"] == "VPN down"
    back = fields.readback("jira", incident, {"servicenow": "INC0010001", "jira": ""})
    back["title"] = "changed by a caller"
    assert fields.readback("jira", incident,
                           {"servicenow": "INC0010001", "jira": ""})["title"] == "VPN down"
    sent = fields.vendor_fields("jira", incident, {"servicenow": "INC0010001", "jira": ""})
    sent.fields.clear()
    assert fields.vendor_fields("jira", incident,
                                {"servicenow": "INC0010001", "jira": ""}).fields


def test_memoised_results_equal_the_mappers_own() -> None:
    fields = view()
    displays = {"servicenow": "INC0010001", "jira": "OPS-1"}
    for title in ("VPN down", "VPN down again", "VPN down"):
        incident = fields.incident(record(title))
        ctx = fields.ctx_for("jira", displays)
        written = to_fields("jira", incident, fields.profile, ctx)
        assert fields.vendor_fields("jira", incident, displays) == written
        assert fields.readback("jira", incident, displays) == projection(
            to_incident("jira", written.fields, fields.profile, ctx), fields.merged_fields)
        assert fields.current(incident) == projection(incident, fields.merged_fields)
    # The origin named in fallback texts is part of the key.
    resolved = fields.incident(RemoteRecord(
        side=Side.SERVICENOW, id="sn2", display="INC0010002", version="1", updated=T0,
        fields={"short_description": "Printer", "state": "6"}))
    one = fields.vendor_fields("jira", resolved, {"servicenow": "INC0010002", "jira": ""})
    other = fields.vendor_fields("jira", resolved, {"servicenow": "INC0099999", "jira": ""})
    assert one == to_fields("jira", resolved, fields.profile,
                            fields.ctx_for("jira", {"servicenow": "INC0010002"}))
    assert other == to_fields("jira", resolved, fields.profile,
                              fields.ctx_for("jira", {"servicenow": "INC0099999"}))


def test_the_memo_is_bounded() -> None:
    fields = view()
    for n in range(fields.memo.limit + 50):
        fields.incident(record(f"title {n}"))
    assert len(fields.memo.records) == fields.memo.limit


def test_nothing_mapped_outlives_a_run(sandboxes: Any, sync_config: Any,
                                      make_engine: Any) -> None:
    servicenow, _ = sandboxes
    sn_incident(servicenow, "VPN drops every 5 minutes")
    engine = make_engine(sync_config())
    assert engine.run().created == 1
    memo = engine.session.fields.memo
    assert not (memo.records or memo.by_incident or memo.vendor or memo.readbacks
                or memo.contexts)


def test_the_fields_travelling_to_a_side_are_those_travels_allows() -> None:
    for direction in ("both", "servicenow-to-jira", "jira-to-servicenow"):
        ids = {"Impact": "customfield_10004", "Urgency": "customfield_10005"}
        fields = FieldView(SIDES, load_profile("default"),
                           {side: MappingContext(field_ids=ids) for side in SIDES},
                           EngineOptions(direction=direction))
        for side in SIDES:
            assert fields.travelling(side) == tuple(
                name for name in fields.merged_fields if fields.travels(name, side))
