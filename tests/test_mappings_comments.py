"""Comments between the tools: neutral ids, bodies in each vendor's format, an
attribution line on copies, visibility never widened."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.base import RemoteComment
from mappings.adf import adf_to_text, text_to_adf, validate_adf
from mappings.mapper import (
    MappingContext,
    comment_from_remote,
    comment_to_remote,
    to_incident,
)
from mappings.model import Comment, Visibility
from mappings.profile import load_profile
from mappings.wiki import wiki_to_text

WHEN = datetime(2026, 1, 4, 10, 30, tzinfo=UTC)
ADF = MappingContext(text_format="adf")
WIKI = MappingContext(text_format="wiki")


def test_servicenow_work_note_becomes_an_internal_neutral_comment() -> None:
    raw = RemoteComment(id="a1b2", body="Rebooted *the* gateway", created=WHEN,
                        visibility="internal", author="chen.wei@example.com")
    comment = comment_from_remote("servicenow", raw)
    assert comment == Comment(id="servicenow:a1b2", author="chen.wei@example.com",
                              body="Rebooted *the* gateway", created=WHEN,
                              visibility=Visibility.INTERNAL)


def test_jira_bodies_are_read_in_their_format() -> None:
    adf = RemoteComment(id="10000", body=text_to_adf("Fixed in **v2**"), created=WHEN,
                        visibility="public")
    assert comment_from_remote("jira", adf, ADF).body == "Fixed in **v2**"
    wiki = RemoteComment(id="10001", body="Fixed in *v2*", created=WHEN, visibility="public")
    assert comment_from_remote("jira", wiki, WIKI).body == "Fixed in **v2**"
    assert comment_from_remote("jira", wiki, WIKI).visibility is Visibility.PUBLIC


def test_unknown_visibility_stays_internal() -> None:
    raw = RemoteComment(id="7", body="x", created=WHEN, visibility="jsd-unknown")
    assert comment_from_remote("jira", raw, ADF).visibility is Visibility.INTERNAL


def test_copied_comment_carries_attribution_in_each_format() -> None:
    comment = Comment(id="servicenow:a1b2", author="chen.wei@example.com",
                      body="Gateway *restarted*\n\nWatching it.", created=WHEN,
                      visibility=Visibility.PUBLIC)
    header = "[ServiceNow INC0010002] chen.wei@example.com, 2026-01-04 10:30 UTC:"
    plain = comment_to_remote("servicenow", comment, origin="ServiceNow INC0010002")
    assert plain == header + "\n\nGateway *restarted*\n\nWatching it."
    adf = comment_to_remote("jira", comment, ADF, origin="ServiceNow INC0010002")
    validate_adf(adf)
    assert adf_to_text(adf) == plain
    wiki = comment_to_remote("jira", comment, WIKI, origin="ServiceNow INC0010002")
    assert isinstance(wiki, str) and "Gateway _restarted_" in wiki
    assert wiki_to_text(wiki) == plain
    assert comment.visibility is Visibility.PUBLIC  # the copy's visibility is the caller's


def test_to_incident_maps_comments_with_the_record() -> None:
    raw = RemoteComment(id="a1", body="Caller confirms", created=WHEN, visibility="public")
    fields = {"short_description": "VPN", "state": "2"}
    incident = to_incident("servicenow", fields, load_profile("default"), comments=[raw])
    assert [c.id for c in incident.comments] == ["servicenow:a1"]
    assert incident.comments[0].visibility is Visibility.PUBLIC
