"""ADF <-> neutral text: fixtures of what Jira Cloud stores, exact text round trips,
valid ADF out, and no exception for any input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.adf import adf_to_text, text_to_adf, validate_adf

FIXTURES = json.loads(
    (Path(__file__).parent / "data" / "records" / "adf_fixtures.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", FIXTURES, ids=[case["name"] for case in FIXTURES])
def test_fixture_renders_to_expected_text(case: dict[str, Any]) -> None:
    assert adf_to_text(case["adf"]) == case["text"]


def test_nested_lists_keep_their_numbering_and_depth() -> None:
    case = next(c for c in FIXTURES if c["name"] == "nested_lists")
    assert case["text"].splitlines() == [
        "- Check the VPN gateway", "  3. vpn-1", "  4. vpn-2", "    - firmware 7.2",
        "- Tell the users",
    ]


def test_unknown_nodes_degrade_to_their_text() -> None:
    case = next(c for c in FIXTURES if c["name"] == "unknown_and_degraded_nodes")
    for piece in ("Payroll affected", "Site | Users", "Lyon | 120", "still readable",
                  "leaf text", "> Customer: it is slow"):
        assert piece in case["text"]


def test_minimal_documents() -> None:
    assert adf_to_text({"type": "doc", "version": 1, "content": []}) == ""
    assert adf_to_text(None) == ""
    assert text_to_adf("") == {"type": "doc", "version": 1, "content": []}
    assert text_to_adf("Hello") == {"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "Hello"}]}]}


def test_newlines_become_hard_breaks_and_blank_lines_paragraphs() -> None:
    doc = text_to_adf("a\nb\n\nc")
    assert doc["content"] == [
        {"type": "paragraph", "content": [{"type": "text", "text": "a"}, {"type": "hardBreak"},
                                          {"type": "text", "text": "b"}]},
        {"type": "paragraph", "content": [{"type": "text", "text": "c"}]},
    ]


def test_markdown_links_become_link_marks_and_back() -> None:
    text = "See [runbook](https://wiki.example.com/vpn) or https://status.example.com."
    doc = text_to_adf(text)
    validate_adf(doc)
    nodes = doc["content"][0]["content"]
    assert nodes[1] == {"type": "text", "text": "runbook", "marks": [
        {"type": "link", "attrs": {"href": "https://wiki.example.com/vpn"}}]}
    assert nodes[3]["marks"][0]["attrs"]["href"] == "https://status.example.com"
    assert adf_to_text(doc) == text
    # And a link Jira users made reads back as the same ADF.
    assert text_to_adf(adf_to_text(doc)) == doc


def test_structure_is_recognised_only_when_it_renders_back_exactly() -> None:
    doc = text_to_adf("## Steps\n\n1. one\n2. two\n  - detail\n\n```sql\nSELECT 1;\n```")
    assert [node["type"] for node in doc["content"]] == ["heading", "orderedList", "codeBlock"]
    # "1. a" then "1. b" would render as "2. b": it stays a paragraph.
    assert text_to_adf("1. a\n1. b")["content"][0]["type"] == "paragraph"
    assert text_to_adf("#hashtag")["content"][0]["type"] == "paragraph"


def test_inline_marks_are_recognised_when_they_render_back() -> None:
    nodes = text_to_adf("an *important* and **urgent** ~~old~~ `x`")["content"][0]["content"]
    assert [(n["text"], [m["type"] for m in n.get("marks", [])]) for n in nodes] == [
        ("an ", []), ("important", ["em"]), (" and ", []), ("urgent", ["strong"]),
        (" ", []), ("old", ["strike"]), (" ", []), ("x", ["code"]),
    ]
    # Arithmetic is not emphasis.
    assert text_to_adf("2 * 3 * 4")["content"][0]["content"] == [
        {"type": "text", "text": "2 * 3 * 4"}]


def test_validate_adf_names_the_bad_node() -> None:
    with pytest.raises(ValueError, match=r"content\[0\]\.content\[0\]: text nodes need"):
        validate_adf({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": ""}]}]})
    with pytest.raises(ValueError, match=r"doc\.version"):
        validate_adf({"type": "doc", "version": 2, "content": []})
    with pytest.raises(ValueError, match=r"content\[0\]: not a block node"):
        validate_adf({"type": "doc", "version": 1, "content": [{"type": "text", "text": "x"}]})


_FRAGMENTS = ["a", "é", "🔥", " ", "\n", "\n\n", "\r", "*", "**", "`", "```", "#", "# ", "- ",
              "  - ", "1. ", "3. ", "[", "]", "(", ")", "[t](https://x.io/p)",
              "https://ex.com/a_b?c=1&d=2", ".", "~~", "_", ">", "---", "|", "@Chen Wei"]
texts = st.one_of(st.text(max_size=150), st.lists(st.sampled_from(_FRAGMENTS), max_size=40)
                  .map("".join))


@settings(max_examples=400, deadline=None)
@given(texts)
def test_text_round_trips_exactly_through_valid_adf(text: str) -> None:
    doc = text_to_adf(text)
    validate_adf(doc)
    assert adf_to_text(doc) == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["type", "content", "text", "attrs", "marks", "level",
                                       "order", "href", "x"]), inner, max_size=4),
    max_leaves=25,
)
node_types = st.sampled_from(["doc", "paragraph", "text", "heading", "bulletList",
                              "orderedList", "listItem", "codeBlock", "mention", "emoji",
                              "hardBreak", "table", "tableRow", "panel", "mystery"])
nodes = st.recursive(
    st.fixed_dictionaries({"type": node_types}, optional={"text": json_values,
                                                          "attrs": json_values,
                                                          "marks": json_values}),
    lambda inner: st.fixed_dictionaries(
        {"type": node_types, "content": st.lists(inner, max_size=3)},
        optional={"attrs": json_values},
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(nodes, json_values))
def test_adf_to_text_never_raises(value: Any) -> None:
    assert isinstance(adf_to_text(value), str)


@settings(max_examples=200, deadline=None)
@given(st.one_of(nodes, json_values))
def test_validate_adf_only_ever_raises_value_error(value: Any) -> None:
    try:
        validate_adf(value)
    except ValueError as error:
        assert "\n" not in str(error)
