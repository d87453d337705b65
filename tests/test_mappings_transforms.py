"""The transform set on its own: raw shapes accepted on read, vendor shapes written,
losses reported, idempotence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.mapper import MappingContext
from mappings.transforms import (
    MISSING,
    TRANSFORMS,
    make_transform,
    unwrap,
    utf16_len,
)

CTX = MappingContext()


def test_the_documented_transform_set() -> None:
    assert set(TRANSFORMS) == {
        "rich_text", "truncate", "prefix", "suffix", "user_by_email", "group_by_name",
        "datetime", "select_option", "name_object", "components", "labels", "label_prefix",
        "int_string",
    }


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("", None),
        ("2", "2"),
        ({"link": "https://x/api/now/table/sys_user/abc", "value": "abc"}, "abc"),
        ({"display_value": "In Progress", "value": "2"}, "2"),
        ({"display_value": "", "value": ""}, None),
        ({"self": "https://x/rest/api/2/customFieldOption/1", "value": "High", "id": "1"}, "High"),
        ({"self": "https://x/rest/api/2/priority/2", "name": "High", "id": "2"}, "High"),
        (None, None),
    ],
)
def test_unwrap_accepts_every_vendor_envelope(raw: object, value: object) -> None:
    assert unwrap(raw) == value


def test_missing_field_is_not_an_empty_one() -> None:
    identity = make_transform(None, {})
    assert identity.read({}, "category", "servicenow", CTX) is MISSING
    assert identity.read({"category": ""}, "category", "servicenow", CTX) is None


def test_user_by_email_reads_dot_walks_and_jira_users() -> None:
    user = make_transform("user_by_email", {})
    assert user.read_fields("caller_id", "servicenow") == ["caller_id.email"]
    assert user.read_fields("reporter", "jira") == ["reporter"]
    assert user.read({"caller_id": "46c6", "caller_id.email": "a@x.io"}, "caller_id",
                     "servicenow", CTX) == "a@x.io"
    assert user.read({"caller_id": "", "caller_id.email": ""}, "caller_id", "servicenow",
                     CTX) is None
    assert user.read({"caller_id": "46c6"}, "caller_id", "servicenow", CTX) is MISSING
    cloud = {"accountId": "5b10", "emailAddress": "b@x.io", "displayName": "B"}
    assert user.read({"assignee": cloud}, "assignee", "jira", CTX) == "b@x.io"
    dc = {"name": "bob", "key": "JIRAUSER10001", "emailAddress": "b@x.io"}
    assert user.read({"assignee": dc}, "assignee", "jira", CTX) == "b@x.io"
    assert user.read({"assignee": None}, "assignee", "jira", CTX) is None
    hidden = {"accountId": "5b10", "displayName": "Bo", "emailAddress": ""}
    with pytest.raises(ValueError, match="user 'Bo' shows no email address"):
        user.read({"assignee": hidden}, "assignee", "jira", CTX)
    assert user.write("b@x.io", "jira", CTX) == ({"$user": "b@x.io"}, [])
    assert user.write(None, "servicenow", CTX) == ({"$user": None}, [])


def test_group_by_name_reads_the_name_dot_walk() -> None:
    group = make_transform("group_by_name", {})
    raw = {"assignment_group": "287e", "assignment_group.name": "Network"}
    assert group.read(raw, "assignment_group", "servicenow", CTX) == "Network"
    assert group.write("Network", "servicenow", CTX) == ({"$group": "Network"}, [])


def test_datetime_formats() -> None:
    moment = datetime(2026, 1, 4, 10, 0, 5, 123456, tzinfo=UTC)
    sn = make_transform("datetime", {"format": "servicenow"})
    assert sn.write(moment, "servicenow", CTX) == (
        "2026-01-04 10:00:05", ["sub-second part dropped on servicenow"])
    assert sn.decode("2026-01-04 10:00:05", "servicenow", CTX) == moment.replace(microsecond=0)
    assert sn.write(None, "servicenow", CTX) == ("", [])
    jira = make_transform("datetime", {"format": "jira"})
    assert jira.write(moment, "jira", CTX)[0] == "2026-01-04T10:00:05.123+0000"
    assert jira.decode("2018-12-18T09:44:27.572-0500", "jira", CTX) == datetime(
        2018, 12, 18, 14, 44, 27, 572000, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a jira date-time: 'yesterday'"):
        jira.decode("yesterday", "jira", CTX)


@settings(max_examples=100, deadline=None)
@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])))
def test_datetimes_round_trip_at_vendor_precision(moment: datetime) -> None:
    for fmt, side, precision in (("servicenow", "servicenow", 1_000_000),
                                 ("jira", "jira", 1000), ("iso", "jira", 1)):
        transform = make_transform("datetime", {"format": fmt})
        raw, _ = transform.write(moment, side, CTX)
        back = transform.decode(raw, side, CTX)
        expected = moment.astimezone(UTC)
        expected = expected.replace(microsecond=expected.microsecond // precision * precision)
        assert back == expected


def test_components_labels_and_objects() -> None:
    components = make_transform("components", {})
    assert components.write("Network", "jira", CTX) == ([{"name": "Network"}], [])
    assert components.write(None, "jira", CTX) == ([], [])
    assert components.decode([{"id": "1", "name": "Network"}, {"name": "Database"}], "jira",
                             CTX) == "Network"
    assert components.decode([], "jira", CTX) is None
    labels = make_transform("labels", {})
    assert labels.read({"labels": ["b", "snow-1", "a", "a"]}, "labels", "jira", CTX) == ["a", "b"]
    assert labels.write(["needs review"], "jira", CTX) == (
        ["needs_review"], ["spaces in labels replaced by '_' on jira"])
    assert make_transform("select_option", {}).write("High", "jira", CTX) == ({"value": "High"}, [])
    assert make_transform("name_object", {}).write(None, "jira", CTX) == (None, [])
    ints = make_transform("int_string", {})
    assert ints.write(3, "servicenow", CTX) == ("3", [])
    assert ints.decode("3", "servicenow", CTX) == 3
    with pytest.raises(ValueError, match="not an integer: 'high'"):
        ints.decode("high", "servicenow", CTX)


def test_prefix_and_suffix_strip_what_they_add() -> None:
    prefix = make_transform("prefix", {"prefix": "[SN] "})
    raw, _ = prefix.write("[SN] VPN", "jira", CTX)
    assert raw == "[SN] [SN] VPN"
    assert prefix.decode(raw, "jira", CTX) == "[SN] VPN"
    suffix = make_transform("suffix", {"suffix": " (synced)"})
    assert suffix.decode(suffix.write("x", "jira", CTX)[0], "jira", CTX) == "x"


def test_truncate_counts_like_java_and_is_idempotent() -> None:
    truncate = make_transform("truncate", {"limit": 10, "marker": "…"})
    raw, losses = truncate.write("😀" * 8, "jira", CTX)
    assert utf16_len(raw) <= 10 and raw.endswith("…")
    assert losses == ["16 characters cut to 10 on jira"]
    assert truncate.write(raw, "jira", CTX) == (raw, [])


def test_rich_text_follows_the_jira_text_format_and_stays_plain_on_servicenow() -> None:
    rich = make_transform("rich_text", {})
    adf = MappingContext(text_format="adf")
    wiki = MappingContext(text_format="wiki")
    assert rich.write("*a*", "jira", adf)[0]["type"] == "doc"
    assert rich.write("a_b [c]", "jira", wiki)[0] == "a\\_b \\[c\\]"
    assert rich.write("*a*", "servicenow", adf)[0] == "*a*"
    assert rich.write(None, "jira", adf) == (None, [])
    assert rich.write("", "servicenow", adf) == ("", [])
    # A v2 string read on a v3 site is wiki markup (the jira library speaks v2).
    assert rich.decode("\\*a\\*", "jira", adf) == "*a*"
    assert rich.decode("*a*", "servicenow", adf) == "*a*"


LABEL_PREFIX = make_transform("label_prefix", {"prefix": "category-"})
# Values a ServiceNow choice may hold: any text, spaces, '%', unicode, odd whitespace.
label_values = st.text(min_size=1, max_size=80).filter(lambda v: v.strip() == v and v)


@settings(max_examples=300, deadline=None)
@given(label_values)
def test_label_prefix_round_trips_any_value_through_one_valid_label(value: str) -> None:
    raw, losses = LABEL_PREFIX.write(value, "jira", CTX)
    assert losses == []
    (label,) = raw
    assert label.startswith("category-") and len(label) <= 255
    assert not any(ch.isspace() for ch in label)  # Jira refuses labels with spaces
    assert LABEL_PREFIX.read({"labels": ["vip", label, "snow-1"]}, "labels", "jira",
                             CTX) == value


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_label_prefix_write_is_idempotent_on_its_own_output(value: str) -> None:
    raw, _ = LABEL_PREFIX.write(value, "jira", CTX)
    back = LABEL_PREFIX.read({"labels": raw}, "labels", "jira", CTX)
    assert LABEL_PREFIX.write(back, "jira", CTX)[0] == raw
    assert all(len(label) <= 255 for label in raw)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), max_size=6))
def test_label_prefix_reads_any_hand_made_labels_stably(labels: list[str]) -> None:
    # Labels typed in Jira (several with the prefix, stray '%'): one value is read,
    # and writing it reads back the same value.
    value = LABEL_PREFIX.read({"labels": [f"category-{x}" for x in labels]}, "labels", "jira",
                              CTX)
    raw, _ = LABEL_PREFIX.write(value, "jira", CTX)
    again = LABEL_PREFIX.read({"labels": raw}, "labels", "jira", CTX)
    assert LABEL_PREFIX.write(again, "jira", CTX)[0] == raw


def test_label_prefix_encoding_is_readable_and_documented() -> None:
    assert LABEL_PREFIX.write("MS SQL Server", "jira", CTX) == (
        ["category-MS%20SQL%20Server"], [])
    assert LABEL_PREFIX.write("100%", "jira", CTX) == (["category-100%25"], [])
    assert LABEL_PREFIX.write("Kraków", "jira", CTX) == (["category-Kraków"], [])
    assert LABEL_PREFIX.write(None, "jira", CTX) == ([], [])
    assert LABEL_PREFIX.read({"labels": ["vip"]}, "labels", "jira", CTX) is None
    assert LABEL_PREFIX.read({}, "labels", "jira", CTX) is MISSING
    # Of two prefixed labels (added by hand) the first in sorted order is read.
    assert LABEL_PREFIX.read({"labels": ["category-z", "category-b"]}, "labels", "jira",
                             CTX) == "b"
    # A stray '%' typed in Jira is kept, not an error.
    assert LABEL_PREFIX.read({"labels": ["category-50%off"]}, "labels", "jira",
                             CTX) == "50%off"


@pytest.mark.parametrize("odd", [3, 2.5, True, {"category-x": 1}, ("category-x",)])
def test_label_prefix_reads_a_labels_value_that_is_no_list_as_no_value_like_the_labels_row(
    odd: object,
) -> None:
    # A proxy or a custom field answering something else: no crash, read as the
    # labels row reads it (no label), never a TypeError through the engine.
    labels = make_transform("labels", {"exclude_prefix": ["category-"]})
    assert LABEL_PREFIX.read({"labels": odd}, "labels", "jira", CTX) is None
    assert labels.read({"labels": odd}, "labels", "jira", CTX) == []


def test_label_prefix_cuts_a_value_too_long_for_a_label_and_says_so() -> None:
    raw, losses = LABEL_PREFIX.write("x " * 200 + "end", "jira", CTX)
    assert len(raw[0]) <= 255 and raw[0].endswith("…")
    assert losses == ["value cut to fit a 255-character label on jira"]


def test_label_prefix_refuses_a_prefix_jira_cannot_hold() -> None:
    with pytest.raises(ValueError, match="spaces"):
        make_transform("label_prefix", {"prefix": "my category-"})


def test_labels_exclude_several_prefixes() -> None:
    labels = make_transform("labels", {"exclude_prefix": ["snow-", "category-"]})
    assert labels.read({"labels": ["vip", "snow-1", "category-network"]}, "labels", "jira",
                       CTX) == ["vip"]
    assert make_transform("labels", {"exclude_prefix": "snow-"}).read(
        {"labels": ["category-network", "snow-1"]}, "labels", "jira", CTX) == [
            "category-network"]
