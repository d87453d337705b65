"""Raw Jira JSON -> records: timestamps, fail-closed comment visibility, markers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import Side
from connectors.jira_records import (
    comment_visibility,
    embedded_comments,
    foreign_id_of,
    parse_time,
    to_record,
)


def test_jira_timestamps_without_colon_offsets_become_utc() -> None:
    assert parse_time("2018-12-18T09:44:27.572-0500") == datetime(
        2018, 12, 18, 14, 44, 27, 572000, tzinfo=UTC)
    assert parse_time("2021-01-17T12:34:00.000+0000").tzinfo is not None
    with pytest.raises(ValueError, match="not a Jira timestamp: 'yesterday'"):
        parse_time("yesterday")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"jsdPublic": True}, "public"),
        ({"jsdPublic": False}, "internal"),
        ({"public": True}, "public"),
        ({"properties": [{"key": "sd.public.comment", "value": {"internal": True}}]}, "internal"),
        ({"properties": [{"key": "sd.public.comment", "value": {"internal": False}}]}, "public"),
        ({"properties": [{"key": "sd.public.comment", "value": {}}]}, "internal"),
        ({"properties": []}, "public"),
        ({"jsdPublic": True, "visibility": {"type": "role", "value": "Administrators"}},
         "internal"),
        ({}, "internal"),
        ({"properties": "garbage", "jsdPublic": "yes"}, "internal"),
    ],
)
def test_visibility_is_public_only_when_jira_says_so(raw: dict, expected: str) -> None:
    assert comment_visibility(raw) == expected


def test_visibility_is_stated_only_by_flags_properties_or_restrictions() -> None:
    from connectors.jira_records import visibility_stated

    assert visibility_stated({"jsdPublic": False})
    assert visibility_stated({"properties": []})
    assert visibility_stated({"visibility": {"type": "group", "value": "agents"}})
    assert not visibility_stated({"id": "1", "body": "no hint"})


def test_marker_label_gives_the_foreign_id_and_two_markers_are_ambiguous() -> None:
    assert foreign_id_of({"labels": ["network", "snow-abc"]}, None) == "abc"
    assert foreign_id_of({"labels": ["snow-a%22b"]}, None) == 'a"b'
    assert foreign_id_of({"labels": ["snow-a", "snow-b"]}, None) is None
    assert foreign_id_of({"labels": ["snow-%ff"]}, None) is None
    assert foreign_id_of({"customfield_10100": "abc", "labels": ["snow-x"]},
                         "customfield_10100") == "abc"
    assert foreign_id_of({"customfield_10100": None}, "customfield_10100") is None


def test_embedded_comment_page_knows_when_it_is_incomplete() -> None:
    assert embedded_comments({"comment": {"comments": [{}], "total": 3}}) == ([{}], False)
    assert embedded_comments({"comment": {"comments": [{}], "total": 1}}) == ([{}], True)
    assert embedded_comments({}) == ([], True)


def test_record_keeps_updated_verbatim_as_version_and_sorts_comments() -> None:
    raw = {"key": "OPS-3", "fields": {
        "updated": "2026-01-05T09:00:00.123+0100", "summary": "s", "labels": ["snow-x"],
        "comment": {"total": 2, "comments": [
            {"id": "9", "body": "b", "created": "2026-01-05T08:59:00.000+0000",
             "author": {"emailAddress": "a@example.com"}, "jsdPublic": True},
            {"id": "4", "body": "a", "created": "2026-01-05T08:58:00.000+0000"}]}}}
    record = to_record(raw, base_url="https://j.example", marker_field=None)
    assert record.side is Side.JIRA and record.id == record.display == "OPS-3"
    assert record.version == "2026-01-05T09:00:00.123+0100"
    assert record.updated == datetime(2026, 1, 5, 8, 0, 0, 123000, tzinfo=UTC)
    assert [(c.id, c.visibility, c.author) for c in record.comments] == [
        ("4", "internal", ""), ("9", "public", "a@example.com")]
    assert "comment" not in record.fields and record.foreign_id == "x"
    assert record.url == "https://j.example/browse/OPS-3"
    with pytest.raises(ValueError, match=r"without fields\.updated"):
        to_record({"key": "OPS-4", "fields": {}}, base_url="", marker_field=None)
