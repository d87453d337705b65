"""Atlassian Document Format (Jira Cloud REST v3 rich text) <-> neutral text.

Contract:
- :func:`adf_to_text` renders any ADF document as Markdown-ish plain text and
  never raises: paragraphs are separated by a blank line, ``hardBreak`` is a
  newline, lists become ``- item`` / ``1. item`` (nested by two spaces), code
  blocks are fenced with three backticks, headings get ``#`` marks, links are
  ``[text](url)`` (a bare ``url`` when the text is the url), mentions are
  ``@Display Name``, emoji their text, inline marks ``**strong**``, ``*em*``,
  ``~~strike~~`` and ``` `code` ```. Tables, panels, expands and unknown nodes
  degrade to their text.
- :func:`text_to_adf` builds valid ADF (``doc``/version 1/``content``) from
  neutral text and is exact in the direction the sync needs:
  ``adf_to_text(text_to_adf(t)) == t`` for every string ``t``. Structure
  (headings, lists, code blocks, links, strong, em, strike, inline code) is recognised only
  when rendering it back reproduces the source exactly; anything else stays
  literal text, so Markdown-looking characters always survive.
- :func:`validate_adf` checks the structural rules Jira enforces and raises
  ``ValueError`` naming the offending node's path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Node = dict[str, Any]

EMPTY_DOC: Node = {"type": "doc", "version": 1, "content": []}

# Blocks are separated by exactly one blank line; text_to_adf splits on the same
# separator, which is what makes the round trip exact for any run of newlines.
_BLOCK_SEPARATOR = "\n\n"
_INDENT = "  "


def is_adf(value: Any) -> bool:
    """True for a dict that claims to be an ADF document."""
    return isinstance(value, dict) and value.get("type") == "doc"


# --------------------------------------------------------------------------- ADF -> text


def adf_to_text(doc: Any) -> str:
    """Render an ADF document (or any ADF node) as neutral text; never raises."""
    if doc is None:
        return ""
    if isinstance(doc, str):
        return doc
    if not isinstance(doc, dict):
        return ""
    if _kind(doc) == "doc":
        return _BLOCK_SEPARATOR.join(_render_blocks(_children(doc)))
    if _kind(doc) in _INLINE_RENDERERS or _kind(doc) == "text":
        return _render_inline([doc])
    return _BLOCK_SEPARATOR.join(_render_blocks([doc]))


def _children(node: Node) -> list[Node]:
    content = node.get("content")
    if not isinstance(content, list):
        return []
    return [child for child in content if isinstance(child, dict)]


def _kind(node: Node) -> str:
    kind = node.get("type")
    return kind if isinstance(kind, str) else ""


def _attrs(node: Node) -> dict[str, Any]:
    attrs = node.get("attrs")
    return attrs if isinstance(attrs, dict) else {}


def _render_blocks(nodes: list[Node]) -> list[str]:
    out: list[str] = []
    for node in nodes:
        kind = _kind(node)
        if kind == "paragraph":
            # Empty paragraphs are kept: they carry runs of blank lines.
            out.append(_render_inline(_children(node)))
            continue
        rendered = _render_block(node)
        if rendered:
            out.append(rendered)
    return out


def _render_block(node: Node) -> str:
    kind = _kind(node)
    attrs = _attrs(node)
    if kind == "heading":
        level = attrs.get("level")
        level = level if isinstance(level, int) and 1 <= level <= 6 else 1
        return "#" * level + " " + _render_inline(_children(node))
    if kind in ("bulletList", "orderedList"):
        return "\n".join(_render_list(node, 0))
    if kind == "codeBlock":
        language = attrs.get("language")
        language = language if isinstance(language, str) else ""
        return f"```{language}\n{_plain_text(node)}\n```"
    if kind == "blockquote":
        inner = _BLOCK_SEPARATOR.join(_render_blocks(_children(node)))
        return "\n".join("> " + line if line else ">" for line in inner.split("\n"))
    if kind == "rule":
        return "---"
    if kind == "table":
        return "\n".join(_render_row(row) for row in _children(node))
    if kind in ("mediaSingle", "mediaGroup", "media", "mediaInline", "extension"):
        return ""
    if kind == "expand" or kind == "nestedExpand":
        title = attrs.get("title")
        parts = [title] if isinstance(title, str) and title else []
        parts.extend(_render_blocks(_children(node)))
        return _BLOCK_SEPARATOR.join(parts)
    if kind in _INLINE_RENDERERS or kind == "text":
        return _render_inline([node])
    # panel, layoutSection, bodiedExtension, decisionList, taskList and nodes
    # Atlassian adds later: their text is what a reader needs.
    children = _children(node)
    if children and all(_kind(c) in _INLINE_RENDERERS or _kind(c) == "text"
                        for c in children):
        return _render_inline(children)
    if children:
        return _BLOCK_SEPARATOR.join(_render_blocks(children))
    text = attrs.get("text")
    return text if isinstance(text, str) else ""


def _render_row(row: Node) -> str:
    cells = []
    for cell in _children(row):
        cells.append(" ".join(b.replace("\n", " ") for b in _render_blocks(_children(cell))))
    return " | ".join(cells)


def _render_list(node: Node, depth: int) -> list[str]:
    ordered = _kind(node) == "orderedList"
    start = _attrs(node).get("order", 1)
    number = start if isinstance(start, int) and start >= 0 else 1
    lines: list[str] = []
    indent = _INDENT * depth
    for item in _children(node):
        marker = f"{number}. " if ordered else "- "
        number += 1
        first = True
        for child in _children(item):
            if _kind(child) in ("bulletList", "orderedList"):
                lines.extend(_render_list(child, depth + 1))
                continue
            text = _BLOCK_SEPARATOR.join(_render_blocks([child]))
            for line in text.split("\n"):
                lines.append((indent + marker if first else indent + " " * len(marker)) + line)
                first = False
        if first:  # an item with nothing in it still shows its marker
            lines.append(indent + marker.rstrip())
    return lines


def _plain_text(node: Node) -> str:
    parts = []
    for child in _children(node):
        if _kind(child) == "text" and isinstance(child.get("text"), str):
            parts.append(child["text"])
        elif _kind(child) == "hardBreak":
            parts.append("\n")
        else:
            parts.append(_plain_text(child))
    return "".join(parts)


def _render_inline(nodes: list[Node]) -> str:
    return "".join(_render_inline_node(node) for node in nodes)


def _render_inline_node(node: Node) -> str:
    kind = _kind(node)
    if kind == "text":
        text = node.get("text")
        return _apply_marks(text if isinstance(text, str) else "", node.get("marks"))
    renderer = _INLINE_RENDERERS.get(kind)
    if renderer is not None:
        return renderer(_attrs(node))
    text = _attrs(node).get("text")
    if isinstance(text, str):
        return text
    return _render_inline(_children(node))


def _mention(attrs: dict[str, Any]) -> str:
    name = attrs.get("text") or attrs.get("id") or ""
    return "@" + str(name).lstrip("@")


def _date(attrs: dict[str, Any]) -> str:
    try:
        stamp = int(attrs.get("timestamp", ""))
    except (TypeError, ValueError):
        return ""
    return datetime.fromtimestamp(stamp / 1000, tz=UTC).strftime("%Y-%m-%d")


_INLINE_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "hardBreak": lambda attrs: "\n",
    "mention": _mention,
    "emoji": lambda attrs: str(attrs.get("text") or attrs.get("shortName") or ""),
    "inlineCard": lambda attrs: str(attrs.get("url") or ""),
    "status": lambda attrs: str(attrs.get("text") or ""),
    "date": _date,
    "placeholder": lambda attrs: "",
}


def _apply_marks(text: str, marks: Any) -> str:
    if not text or not isinstance(marks, list):
        return text
    kinds = {_kind(m): m for m in marks if isinstance(m, dict)}
    if "code" in kinds:
        text = f"`{text}`"
    if "em" in kinds:
        text = f"*{text}*"
    if "strong" in kinds:
        text = f"**{text}**"
    if "strike" in kinds:
        text = f"~~{text}~~"
    link = kinds.get("link")
    if link is not None:
        href = _attrs(link).get("href")
        if isinstance(href, str) and href:
            text = href if text == href else f"[{text}]({href})"
    return text


# --------------------------------------------------------------------------- text -> ADF


def text_to_adf(text: str) -> Node:
    """Valid ADF for ``text``; ``adf_to_text`` of the result gives ``text`` back."""
    if not text:
        return {"type": "doc", "version": 1, "content": []}
    content = [_block_from_text(block) for block in text.split(_BLOCK_SEPARATOR)]
    return {"type": "doc", "version": 1, "content": content}


def _block_from_text(block: str) -> Node:
    for parser in (_parse_code_block, _parse_heading, _parse_list):
        node = parser(block)
        # Structure is only worth having when it renders back to the same text.
        if node is not None and _render_blocks([node]) == [block]:
            return node
    return _paragraph(block)


def _paragraph(block: str) -> Node:
    content: list[Node] = []
    for index, line in enumerate(block.split("\n")):
        if index:
            content.append({"type": "hardBreak"})
        content.extend(_inline_from_text(line))
    return {"type": "paragraph", "content": content}


_CODE_FENCE = re.compile(r"```([A-Za-z0-9_+#.-]*)\n(.*)\n```", re.DOTALL)
_HEADING = re.compile(r"(#{1,6}) (\S.*)")
_LIST_LINE = re.compile(r"((?:  )*)(- |\d{1,9}\. )(.*)")


def _parse_code_block(block: str) -> Node | None:
    match = _CODE_FENCE.fullmatch(block)
    if match is None:
        return None
    node: Node = {"type": "codeBlock", "content": []}
    if match.group(1):
        node["attrs"] = {"language": match.group(1)}
    if match.group(2):
        node["content"] = [{"type": "text", "text": match.group(2)}]
    return node


def _parse_heading(block: str) -> Node | None:
    match = _HEADING.fullmatch(block)
    if match is None:
        return None
    return {
        "type": "heading",
        "attrs": {"level": len(match.group(1))},
        "content": _inline_from_text(match.group(2)),
    }


def _parse_list(block: str) -> Node | None:
    entries = []
    for line in block.split("\n"):
        match = _LIST_LINE.fullmatch(line)
        if match is None or not match.group(3):
            return None
        entries.append((len(match.group(1)) // len(_INDENT), match.group(2), match.group(3)))
    if entries[0][0] != 0:
        return None
    node, rest = _build_list(entries, 0)
    return node if not rest else None


def _build_list(entries: list[tuple[int, str, str]], depth: int) -> tuple[Node, list]:
    ordered = entries[0][1] != "- "
    node: Node = {"type": "orderedList" if ordered else "bulletList", "content": []}
    if ordered:
        node["attrs"] = {"order": int(entries[0][1][:-2])}
    while entries and entries[0][0] == depth and (entries[0][1] != "- ") == ordered:
        _, _, text = entries.pop(0)
        item: Node = {"type": "listItem", "content": [
            {"type": "paragraph", "content": _inline_from_text(text)}
        ]}
        while entries and entries[0][0] == depth + 1:
            child, entries = _build_list(entries, depth + 1)
            item["content"].append(child)
        node["content"].append(item)
    return node, entries


# Inline structure: inline code, [text](url), bare urls, **strong**, *em* and
# ~~strike~~. Each recognised span renders back to exactly its source (checked
# per line).
_INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?P<link>\[(?P<ltext>[^\[\]\n]+)\]\((?P<href>https?://[^\s()]+)\))"
    r"|(?P<url>https?://[^\s<>()\[\]`*]*[^\s<>()\[\]`*.,;:!?'\"])"
    r"|(?P<strong>\*\*(?P<stext>[^*\s](?:[^*\n]*[^*\s])?)\*\*)"
    r"|(?P<em>(?<![*\w])\*(?P<etext>[^*\s](?:[^*\n]*[^*\s])?)\*(?![*\w]))"
    r"|(?P<strike>~~(?P<ktext>[^~\s](?:[^~\n]*[^~\s])?)~~)"
)


def _inline_from_text(line: str) -> list[Node]:
    nodes: list[Node] = []
    position = 0
    for match in _INLINE.finditer(line):
        if match.start() > position:
            nodes.append({"type": "text", "text": line[position:match.start()]})
        nodes.append(_inline_node(match))
        position = match.end()
    if position < len(line):
        nodes.append({"type": "text", "text": line[position:]})
    if _render_inline(nodes) != line:
        return [{"type": "text", "text": line}] if line else []
    return nodes


def _inline_node(match: re.Match[str]) -> Node:
    if match.group("code"):
        return {"type": "text", "text": match.group("code")[1:-1], "marks": [{"type": "code"}]}
    if match.group("link"):
        return {"type": "text", "text": match.group("ltext"),
                "marks": [{"type": "link", "attrs": {"href": match.group("href")}}]}
    if match.group("url"):
        url = match.group("url")
        return {"type": "text", "text": url,
                "marks": [{"type": "link", "attrs": {"href": url}}]}
    for group, mark in (("stext", "strong"), ("etext", "em"), ("ktext", "strike")):
        if match.group(group):
            return {"type": "text", "text": match.group(group), "marks": [{"type": mark}]}
    raise AssertionError("every alternative of _INLINE is handled above")  # pragma: no cover


# --------------------------------------------------------------------------- validation

_BLOCK_TYPES = frozenset({
    "paragraph", "heading", "bulletList", "orderedList", "codeBlock", "blockquote", "rule",
    "table", "panel", "mediaSingle", "mediaGroup", "expand", "decisionList", "taskList",
    "layoutSection", "bodiedExtension", "extension", "blockCard", "embedCard",
})


def validate_adf(doc: Any) -> None:
    """Raise ValueError naming the first structural problem (``content[2].content[0]: ...``)."""
    if not isinstance(doc, dict) or doc.get("type") != "doc":
        raise ValueError("doc: top-level node must be {'type': 'doc', ...}")
    if doc.get("version") != 1:
        raise ValueError(f"doc.version: must be 1 (got {doc.get('version')!r})")
    content = doc.get("content")
    if not isinstance(content, list):
        raise ValueError("doc.content: must be a list")
    for index, node in enumerate(content):
        if not isinstance(node, dict) or _kind(node) not in _BLOCK_TYPES:
            kind = node.get("type") if isinstance(node, dict) else node
            raise ValueError(f"content[{index}]: not a block node (got {kind!r})")
        _validate_node(node, f"content[{index}]")


def _validate_node(node: Node, path: str) -> None:
    kind = _kind(node)
    if not kind:
        raise ValueError(f"{path}: node without a type")
    if kind == "text":
        text = node.get("text")
        if not isinstance(text, str) or not text:
            raise ValueError(f"{path}: text nodes need non-empty text")
        marks = node.get("marks", [])
        if not isinstance(marks, list) or not all(
            isinstance(m, dict) and isinstance(m.get("type"), str) for m in marks
        ):
            raise ValueError(f"{path}.marks: must be a list of {{'type': ...}}")
        for mark in marks:
            if mark["type"] == "link" and not _attrs(mark).get("href"):
                raise ValueError(f"{path}.marks: link without href")
        return
    if "content" in node:
        if not isinstance(node["content"], list):
            raise ValueError(f"{path}.content: must be a list")
        for index, child in enumerate(node["content"]):
            if not isinstance(child, dict):
                raise ValueError(f"{path}.content[{index}]: not a node")
            _validate_node(child, f"{path}.content[{index}]")
