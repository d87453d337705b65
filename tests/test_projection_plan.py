"""``projection`` on its per-name-list plan (only the fields asked for dumped) gives
exactly what the dump of the whole incident gave, for random incidents and name lists
(merged fields, custom fields, labels, comments, names the model lacks)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mappings_roundtrip import PROFILE, incidents

from mappings.model import Incident
from sync.engine_core import projection, snapshot_hash


def whole_dump_projection(incident: Incident, names: list[str]) -> dict[str, Any]:
    """``projection`` as it was: the whole incident dumped, then each name picked."""
    data = incident.model_dump(mode="json",
                               exclude=None if "comments" in names else {"comments"})
    out: dict[str, Any] = {}
    for name in names:
        if name.startswith("custom."):
            out[name] = data["custom"].get(name[len("custom."):])
        elif name == "labels":
            out[name] = sorted(set(data["labels"]))
        else:
            out[name] = data.get(name)
    return out


NAMES = [*PROFILE.neutral_fields(), *Incident.model_fields, "custom.hold_reason",
         "custom.nothing", "not_a_field"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incident=incidents, names=st.lists(st.sampled_from(NAMES), max_size=25))
def test_projection_is_what_the_whole_dump_gave(incident: Incident, names: list[str]) -> None:
    for asked in (names, tuple(names), iter(names)):
        got = projection(incident, asked)
        assert got == whole_dump_projection(incident, names)
        assert list(got) == list(dict.fromkeys(names))


def test_the_merged_fields_of_a_commented_incident_leave_the_comments_out() -> None:
    incident = Incident.model_validate({
        "title": "t", "labels": ["b", "a", "b"], "custom": {"hold_reason": "3"},
        "comments": [{"id": "servicenow:1", "body": "x", "created": "2026-03-02T09:00:00Z"}]})
    assert projection(incident, ["labels", "custom.hold_reason", "comments"]) == {
        "labels": ["a", "b"], "custom.hold_reason": "3",
        "comments": incident.model_dump(mode="json")["comments"]}
    assert "comments" not in projection(incident, PROFILE.neutral_fields())


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(snapshots=st.dictionaries(st.sampled_from(["servicenow", "jira"]),
                                 st.dictionaries(st.text(), _JSON, max_size=6)))
def test_snapshot_hash_is_the_sha256_of_the_sorted_dump(snapshots: dict[str, Any]) -> None:
    payload = json.dumps(snapshots, sort_keys=True, ensure_ascii=False, default=str)
    assert snapshot_hash(snapshots) == hashlib.sha256(payload.encode("utf-8")).hexdigest()
