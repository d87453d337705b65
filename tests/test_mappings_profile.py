"""Loading and validating mapping profiles: the shipped default, extends, and every kind
of broken profile giving one line that names the file, key path, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from mappings.mapper import MappingContext, to_fields, to_incident
from mappings.profile import MappingError, load_profile, shipped_profiles

PROFILES = Path(__file__).parent / "data" / "profiles"
SITE_FIELDS = {
    "Impact": "customfield_10004", "Urgency": "customfield_10005",
    "Assignment group": "customfield_10006", "Subcategory": "customfield_10007",
    "Resolution notes": "customfield_10008", "Escalation": "customfield_10009",
}


def _error(name: str) -> MappingError:
    with pytest.raises(MappingError) as caught:
        load_profile(str(PROFILES / name))
    assert "\n" not in str(caught.value)
    return caught.value


def test_default_profile_is_shipped_and_loads_by_name() -> None:
    assert "default" in shipped_profiles()
    profile = load_profile("default")
    assert profile.name == "default"
    assert profile.source == "profiles/default.toml"
    assert profile.neutral_fields()[:3] == ["title", "description", "status"]
    assert "custom.hold_reason" in profile.neutral_fields()


def test_default_profile_directions_and_owners() -> None:
    profile = load_profile("default")
    assert profile.travels("title", "jira") and profile.travels("title", "servicenow")
    # ServiceNow computes priority: it only ever travels to Jira.
    assert profile.travels("priority", "jira")
    assert not profile.travels("priority", "servicenow")
    assert profile.owner("priority") == "servicenow"
    assert profile.owner("title") is None
    # Labels exist only on Jira; timestamps are never written.
    assert profile.travels("labels", "jira") and not profile.travels("labels", "servicenow")
    assert not profile.travels("opened_at", "jira")
    assert not profile.travels("opened_at", "servicenow")
    assert not profile.travels("not_a_field", "jira")


def test_servicenow_vendor_fields_use_dot_walks_for_people_and_groups() -> None:
    fields = load_profile("default").vendor_fields("servicenow")
    assert {"caller_id.email", "assigned_to.email", "assignment_group.name"} <= set(fields)
    assert "caller_id" not in fields and "assigned_to" not in fields
    assert {"short_description", "state", "close_code", "close_notes", "sys_updated_on"} <= set(
        fields
    )
    assert len(fields) == len(set(fields))


def test_jira_vendor_fields_are_ids_after_name_resolution() -> None:
    fields = load_profile("default").vendor_fields("jira", MappingContext(field_ids=SITE_FIELDS))
    assert "customfield_10004" in fields and "Impact" not in fields
    assert {"summary", "description", "status", "priority", "assignee",
            "reporter", "resolution", "labels", "created", "updated", "resolutiondate"} <= set(
        fields
    )


def test_field_names_resolve_case_insensitively() -> None:
    ctx = MappingContext(field_ids={name.upper(): fid for name, fid in SITE_FIELDS.items()})
    assert "customfield_10005" in load_profile("default").vendor_fields("jira", ctx)


def test_unknown_jira_field_name_is_a_mapping_error_naming_the_row() -> None:
    with pytest.raises(MappingError, match=r"fields\.impact\.jira: .*'Impact'"):
        load_profile("default").vendor_fields("jira", MappingContext(field_ids={}))


def test_extends_overrides_only_the_keys_a_row_sets() -> None:
    profile = load_profile(str(PROFILES / "team_override.toml"))
    assert profile.name == "team"
    assert profile.owner("assignee") == "jira"
    # The assignee row kept the default's fields and transforms.
    assert profile.rules["assignee"].sides["servicenow"].field == "assigned_to"
    assert profile.travels("title", "jira") and not profile.travels("title", "servicenow")
    assert profile.rules["title"].sides["jira"].transform.name == "prefix"
    assert profile.rules["custom.business_unit"].sides["servicenow"].field == "u_business_unit"
    # A replaced map is replaced whole: the default's extra JSM statuses are gone.
    status_from = profile.rules["status"].from_maps["jira"]
    assert status_from["Escalated"] == "in_progress"
    assert "Waiting for customer" not in status_from
    assert status_from["Pending"] == "on_hold"  # still the inverse of to_jira


def test_relative_path_is_resolved_against_base_dir() -> None:
    profile = load_profile("team_override.toml", base_dir=PROFILES)
    assert profile.name == "team"


def test_missing_file_names_the_path() -> None:
    with pytest.raises(MappingError, match=r"nope\.toml: mapping: file not found"):
        load_profile("nope.toml", base_dir=PROFILES)


def test_unknown_shipped_profile_lists_the_shipped_ones() -> None:
    with pytest.raises(MappingError, match=r"no shipped profile 'corporate' \(shipped: default"):
        load_profile("corporate")


def test_unknown_key_is_rejected_with_its_line() -> None:
    error = _error("unknown_key.toml")
    assert error.key == "fields.title.directon"
    assert error.line == 6
    assert str(error) == (
        f"{PROFILES / 'unknown_key.toml'}: fields.title.directon (line 6): unknown key"
    )


def test_unknown_neutral_field_is_rejected() -> None:
    error = _error("unknown_field.toml")
    assert error.key == "fields.severity"
    assert error.line == 4
    assert "unknown neutral field" in error.reason and "custom.<name>" in error.reason


def test_unknown_transform_is_rejected_with_the_known_ones() -> None:
    error = _error("unknown_transform.toml")
    assert error.key == "fields.title.jira.transform"
    assert error.line == 5
    assert "unknown transform 'shorten'" in error.reason and "rich_text" in error.reason


def test_status_map_that_is_not_total_is_rejected() -> None:
    error = _error("non_total_map.toml")
    assert error.key == "fields.status.to_jira"
    assert error.line == 16
    assert error.reason == "map is not total: no mapping for 'canceled'"


def test_bad_toml_names_the_line() -> None:
    error = _error("bad_toml.toml")
    assert error.key == "toml"
    assert error.line == 4
    assert error.reason.startswith("not valid TOML")


def test_parameter_a_transform_does_not_take_is_rejected() -> None:
    error = _error("bad_transform_param.toml")
    assert error.key == "fields.assignee.servicenow.limit"
    assert error.reason == "not a parameter of this transform"


def test_map_value_outside_the_neutral_enum_is_rejected() -> None:
    error = _error("bad_map_value.toml")
    assert error.key == "fields.impact.from_jira.Significant / Large"
    assert "not a valid impact value: 4" in error.reason


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[fields.title]\ndirection = "both"\n', "fields.title",
         "maps to neither servicenow nor jira"),
        ('[fields.title]\nservicenow = "short_description"\ndirection = "to-jira"\n',
         "fields.title.direction", "to-jira but no jira field"),
        ('[fields.title]\njira = "summary"\nowner = "servicenow"\n',
         "fields.title.owner", "servicenow owns it but it has no servicenow field"),
        ('[fields.title]\njira = "summary"\ndirection = "sideways"\n',
         "fields.title.direction", "Input should be"),
        ('[fields.urgency]\nservicenow = "urgency"\njira = "Urgency"\n',
         "fields.urgency.to_servicenow", "choice field: it needs a value map"),
        ('[fields.status]\nservicenow = "state"\nto_servicenow = { new = "1", done = "6" }\n',
         "fields.status.to_servicenow.done", "not a valid status value: 'done'"),
        ('[fields.impact]\njira = "Impact"\nto_jira = { 1 = "A", 2 = "A", 3 = "B" }\n',
         "fields.impact.to_jira", "'A' is the target of '1' and '2'"),
        ('[fields.impact]\njira = "Impact"\nto_jira = { 1 = "A", 2 = "B", 3 = "C" }\n'
         'from_jira = { "A" = 2 }\n', "fields.impact.from_jira",
         "'A' reads back as '2', which is written as 'B': the value would flip"),
        ('[fields.title]\njira = "summary"\nto_servicenow = { a = "b" }\n',
         "fields.title.to_servicenow", "a value map for servicenow"),
        ('[fields.title]\nservicenow = "Short Description"\n',
         "fields.title.servicenow.field", "not a ServiceNow column name"),
        ('[fields.title]\njira = { field = "summary", transform = "truncate" }\n',
         "fields.title.jira.limit", "Field required"),
        ('[fields.title]\njira = { field = "summary", transform = "truncate", limit = 3,'
         ' marker = "[cut]" }\n', "fields.title.jira", "marker must be shorter than limit"),
        ('[fields.resolution_code]\nservicenow = "close_code"\nrequired_for = ["done"]\n'
         'fallback = "x"\n', "fields.resolution_code.required_for.0", "not a status: 'done'"),
        ('[fields.resolution_code]\nservicenow = "close_code"\nrequired_for = ["resolved"]\n',
         "fields.resolution_code.fallback", "required_for needs a fallback"),
        ('[fields.custom."bad-name"]\nservicenow = "u_x"\n', "fields.custom.bad-name",
         "letters, digits and _"),
        ('extends = "nothing_here.toml"\n', "extends", "file not found"),
        ('colour = "blue"\n', "colour", "unknown key"),
    ],
)
def test_invalid_rows_are_one_line_errors(tmp_path: Path, text: str, key: str,
                                          reason: str) -> None:
    with pytest.raises(MappingError) as caught:
        load_profile(str(_write(tmp_path, text)))
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(str(tmp_path / "p.toml") + ": " + key)


def test_extends_cycle_is_detected(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n', encoding="utf-8")
    with pytest.raises(MappingError, match="cycle"):
        load_profile(str(tmp_path / "a.toml"))


def test_custom_field_rows_accept_both_spellings(tmp_path: Path) -> None:
    path = _write(tmp_path, '[fields."custom.team"]\nservicenow = "u_team"\n'
                            '[fields.custom.site]\njira = "customfield_10300"\n')
    assert load_profile(str(path)).neutral_fields() == ["custom.team", "custom.site"]


def test_two_rows_writing_one_vendor_field_are_an_error_naming_both() -> None:
    error = _error("two_rows_one_field.toml")
    assert error.key == "fields.custom.headline.servicenow"
    assert "fields.title writes too" in str(error)
    assert "'short_description'" in str(error)


def test_two_rows_on_one_jira_field_after_extends_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text('extends = "default"\n[fields.custom.sev]\nservicenow = "u_sev"\n'
                    'jira = "impact"\n', encoding="utf-8")
    # Jira field names are matched without case: "impact" is the default's "Impact".
    with pytest.raises(MappingError, match=r"fields\.custom\.sev\.jira.*fields\.impact"
                                           r" writes too"):
        load_profile(str(path))


def test_label_rows_with_disjoint_excluded_prefixes_share_the_labels_field() -> None:
    profile = load_profile(str(PROFILES / "labels_partitioned.toml"))
    ctx = MappingContext(field_ids=SITE_FIELDS)
    incident = to_incident("jira", {"labels": ["site-Lyon", "category-network", "vip"]},
                           profile, ctx)
    assert (incident.custom, incident.category, incident.labels) == (
        {"site": "Lyon"}, "network", ["vip"])
    assert to_fields("jira", incident, profile, ctx, only=["custom.site"]).fields == {
        "labels": ["category-network", "site-Lyon", "vip"]}


def test_label_prefix_rows_must_be_excluded_from_the_labels_row() -> None:
    error = _error("labels_prefix_not_excluded.toml")
    assert error.key == "fields.labels.jira"
    assert "exclude_prefix must include 'site-'" in str(error)
    assert "fields.custom.site" in str(error)


def test_label_prefix_rows_must_not_overlap() -> None:
    error = _error("labels_prefix_overlap.toml")
    assert "overlaps" in str(error) and "fields.category" in str(error)
    assert error.key in ("fields.custom.cat.jira", "fields.category.jira")


def test_label_prefix_is_only_for_the_jira_labels_field(tmp_path: Path) -> None:
    path = tmp_path / "team.toml"
    path.write_text('extends = "default"\n[fields.custom.site]\nservicenow = "u_site"\n'
                    'jira = { field = "summary", transform = "label_prefix", prefix = "s-" }\n',
                    encoding="utf-8")
    with pytest.raises(MappingError, match=r"fields\.custom\.site\.jira\.transform.*labels"):
        load_profile(str(path))


def test_shipped_profiles_partition_labels_and_load() -> None:
    assert {"default", "jsm-extended"} <= set(shipped_profiles())
    extended = load_profile("jsm-extended")
    assert extended.rule("category").sides["jira"].field == "components"
    assert extended.rule("escalation").sides["jira"].field == "Escalation"
    default = load_profile("default")
    assert "jira" not in default.rule("assignment_group").sides
    assert "jira" not in default.rule("resolution_notes").sides
