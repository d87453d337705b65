"""Atlassian Document Format inside the Jira sandbox: validate, to text, from text.

Contract:
- :func:`adf_problem` says why a value is not an acceptable ADF document (the
  Cloud v3 API answers 400 for a plain string or a malformed document), or
  returns None. It checks the structure the ADF spec fixes: ``doc`` root with
  ``version`` 1, known block/inline node types, ``text`` nodes with non-empty
  text, known marks.
- :func:`adf_to_text` renders a document to the wiki-ish plain text the v2 API
  shows (paragraphs separated by a blank line, hardBreak as a newline);
  :func:`text_to_adf` is its inverse for plain text, so text written through v2
  reads back through v3 as paragraphs and hard breaks, as Jira does.
- :func:`text_to_html` is the minimal HTML the ``renderedFields`` expand shows.
- Pure functions, no I/O.
"""

from __future__ import annotations

import html
import re
from typing import Any

BLOCK_NODES = frozenset({
    "paragraph", "heading", "bulletList", "orderedList", "listItem", "codeBlock",
    "blockquote", "rule", "panel", "table", "tableRow", "tableHeader", "tableCell",
    "mediaSingle", "mediaGroup", "media", "expand", "nestedExpand", "taskList", "taskItem",
    "decisionList", "decisionItem",
})
INLINE_NODES = frozenset({
    "text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status",
    "mediaInline", "placeholder",
})
MARKS = frozenset({
    "strong", "em", "code", "link", "strike", "underline", "subsup", "textColor",
    "backgroundColor", "alignment", "indentation", "border",
})
_MAX_DEPTH = 30


def adf_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid ADF document, or None when it is."""
    if not isinstance(value, dict):
        return "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    if value.get("type") != "doc" or value.get("version") != 1:
        return "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    content = value.get("content")
    if not isinstance(content, list):
        return "ADF document content must be an array"
    for node in content:
        problem = _node_problem(node, depth=1, inline_allowed=False)
        if problem:
            return problem
    return None


def _node_problem(node: Any, *, depth: int, inline_allowed: bool) -> str | None:
    if depth > _MAX_DEPTH:
        return "ADF document is nested too deeply"
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        return "ADF node must be an object with a 'type'"
    kind = node["type"]
    if kind in INLINE_NODES:
        if not inline_allowed:
            return f"ADF node '{kind}' is not allowed at block level"
        if kind == "text":
            text = node.get("text")
            if not isinstance(text, str) or text == "":
                return "ADF text node must have non-empty 'text'"
            for mark in node.get("marks", []) or []:
                if not isinstance(mark, dict) or mark.get("type") not in MARKS:
                    return f"ADF mark {mark!r} is not supported"
        return None
    if kind not in BLOCK_NODES:
        return f"ADF node type '{kind}' is not supported"
    children = node.get("content", [])
    if not isinstance(children, list):
        return f"ADF node '{kind}' content must be an array"
    holds_inline = kind in ("paragraph", "heading", "codeBlock", "taskItem", "decisionItem")
    for child in children:
        problem = _node_problem(child, depth=depth + 1, inline_allowed=holds_inline)
        if problem:
            return problem
    return None


def adf_to_text(doc: dict[str, Any] | None) -> str:
    """The document's text: blocks separated by a blank line, hard breaks as newlines."""
    if not doc:
        return ""
    blocks = [_block_text(node) for node in doc.get("content", [])]
    return "\n\n".join(block for block in blocks if block is not None)


def _block_text(node: dict[str, Any]) -> str | None:
    kind = node.get("type")
    children = node.get("content", []) or []
    if kind in ("paragraph", "codeBlock", "taskItem", "decisionItem"):
        return "".join(_inline_text(child) for child in children)
    if kind == "heading":
        level = (node.get("attrs") or {}).get("level", 1)
        return f"h{level}. " + "".join(_inline_text(child) for child in children)
    if kind in ("bulletList", "orderedList"):
        bullet = "*" if kind == "bulletList" else "#"
        items = []
        for item in children:
            text = "\n".join(filter(None, (_block_text(c) for c in item.get("content", []))))
            items.append(f"{bullet} {text}")
        return "\n".join(items)
    if kind == "rule":
        return "----"
    texts = [_block_text(child) for child in children]
    return "\n".join(text for text in texts if text)


def _inline_text(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "hardBreak":
        return "\n"
    attrs = node.get("attrs") or {}
    if kind == "mention":
        return str(attrs.get("text") or "@" + str(attrs.get("id", "")))
    if kind == "emoji":
        return str(attrs.get("text") or attrs.get("shortName", ""))
    if kind == "inlineCard":
        return str(attrs.get("url", ""))
    return ""


def text_to_adf(text: str) -> dict[str, Any]:
    """Plain text as ADF: blank-line-separated paragraphs, newlines as hardBreaks."""
    content: list[dict[str, Any]] = []
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        if not paragraph:
            continue
        inline: list[dict[str, Any]] = []
        for index, line in enumerate(paragraph.split("\n")):
            if index:
                inline.append({"type": "hardBreak"})
            if line:
                inline.append({"type": "text", "text": line})
        content.append({"type": "paragraph", "content": inline})
    return {"type": "doc", "version": 1, "content": content}


def text_to_html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p]
    return "".join(
        "<p>" + html.escape(p).replace("\n", "<br/>\n") + "</p>" for p in paragraphs
    )
