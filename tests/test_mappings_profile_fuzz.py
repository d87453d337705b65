"""Whatever a profile file holds, loading it gives a Profile or ONE MappingError line;
never another exception (hypothesis over generated TOML)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mappings.profile import MappingError, Profile, load_profile

ROW_KEYS = ["servicenow", "jira", "direction", "owner", "to_jira", "from_jira",
            "to_servicenow", "from_servicenow", "default", "required_for", "fallback", "colour"]
SIDE_KEYS = ["field", "transform", "limit", "marker", "single_line", "prefix", "format",
             "exclude_prefix", "bogus"]
NEUTRAL = ["title", "status", "impact", "priority", "labels", "opened_at", "assignee",
           "custom.team", "severity"]

scalars = st.one_of(
    st.sampled_from(["", "both", "to-jira", "none", "jira", "servicenow", "summary",
                     "short_description", "Impact", "truncate", "rich_text", "int_string",
                     "select_option", "nope", "resolved", "new", "jira", "1", "*"]),
    st.text(max_size=8), st.integers(min_value=-3, max_value=300), st.booleans(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from([*SIDE_KEYS, "1", "new", "*", "Open"]), inner,
                      max_size=4),
    max_leaves=8,
)
rows = st.dictionaries(st.sampled_from(ROW_KEYS), values, max_size=6)
profiles = st.dictionaries(st.sampled_from(NEUTRAL), rows, max_size=4)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _toml(fields: dict[str, dict[str, Any]]) -> str:
    lines = ['name = "fuzz"']
    for neutral, row in fields.items():
        lines.append(f"[fields.{json.dumps(neutral)}]")
        lines.extend(f"{json.dumps(key)} = {_toml_value(value)}" for key, value in row.items())
    return "\n".join(lines) + "\n"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profiles)
def test_any_profile_loads_or_fails_with_one_line(fields: dict[str, dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_text(_toml(fields), encoding="utf-8")
        try:
            profile = load_profile(str(path))
        except MappingError as error:
            assert "\n" not in str(error)
            assert str(error).startswith(f"{path}: ")
        else:
            assert isinstance(profile, Profile)
            assert set(profile.neutral_fields()) <= set(fields)
