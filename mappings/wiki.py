"""Neutral text <-> Jira wiki markup (REST v2 on Data Center, and v2 on Cloud).

Contract:
- :func:`text_to_wiki` makes text *literal* in wiki markup: every character the
  wiki renderer would read as markup (``* _ { } [ ] | - + ^ ~ ? # ! ( )``, a
  leading ``h1.``/``bq.``) is escaped with a backslash; a literal backslash is
  ``&#92;`` (``\\\\`` is a line break in wiki) and an ``&`` that would start an
  entity is ``&amp;``. URLs are left as they are so Jira still links them.
  The neutral text's own Markdown-ish spans (links, strong, em, strike,
  inline code) become the wiki equivalents when the result reads back exactly.
- :func:`wiki_to_text` reads wiki markup written by people into the neutral
  Markdown-ish text (``*b*`` -> ``**b**``, ``_i_`` -> ``*i*``, ``{{c}}`` ->
  ``` `c` ```, ``[t|url]`` -> ``[t](url)``, ``h2.`` -> ``##``, ``*``/``#``
  lists -> ``-``/``1.``, ``{code}`` -> fenced block, ``[~user]`` -> ``@user``)
  and undoes the escaping above, so ``wiki_to_text(text_to_wiki(t)) == t`` for
  every string. It never raises.
"""

from __future__ import annotations

import html
import re

# Characters that start or end wiki markup somewhere (inline effects, links,
# macros, tables, lists, emoticons). Escaping all of them is simpler and safer
# than working out in which positions each one is special.
_SPECIALS = frozenset("*_{}[]|-+^~?#!()")
# Extra characters wiki_to_text accepts after a backslash: "." is how a leading
# "h1." / "bq." is neutralised.
_UNESCAPABLE = _SPECIALS | {"."}
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
# No backslash, entity or wiki bracket may sit inside a URL we leave unescaped,
# so both directions see the same span; the last character is not punctuation.
_URL = re.compile(
    r"https?://(?:(?!&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);)[^\s\\{}\[\]|<>\"()!^])*"
    r"[^\s\\{}\[\]|<>\"()!^.,;:?'*_+~#&-]"
)
_BLOCK_PREFIX = re.compile(r"(h[1-6]|bq)\.", re.ASCII)


def text_to_wiki(text: str) -> str:
    """Wiki markup that renders (and reads back) as exactly ``text``.

    Markdown-style links, ``**strong**``, ``*em*``, ``~~strike~~`` and
    ``` `code` ``` become wiki markup so Jira shows them as such, but only when
    the whole text still reads back exactly; otherwise everything is literal.
    """
    literal = "\n".join(_escape_line(line, structured=False) for line in text.split("\n"))
    structured = "\n".join(_escape_line(line, structured=True) for line in text.split("\n"))
    if structured != literal and wiki_to_text(structured) == text:
        return structured
    return literal


_MD_LINK = re.compile(r"\[([^\[\]\n]+)\]\((https?://[^\s()\[\]|]+)\)")
# Markdown-ish spans of the neutral text and the wiki markup for each: (pattern, open, close).
_MD_SPANS = (
    (re.compile(r"\*\*([^*\s](?:[^*\n]*[^*\s])?)\*\*"), "*", "*"),
    (re.compile(r"(?<![*\w])\*([^*\s](?:[^*\n]*[^*\s])?)\*(?![*\w])"), "_", "_"),
    (re.compile(r"~~([^~\s](?:[^~\n]*[^~\s])?)~~"), "-", "-"),
    (re.compile(r"`([^`\n]+)`"), "{{", "}}"),
)


def _escape_line(line: str, *, structured: bool) -> str:
    out: list[str] = []
    position = 0
    prefix = _BLOCK_PREFIX.match(line)
    if prefix is not None:
        out.append(prefix.group(1) + "\\.")
        position = prefix.end()
    while position < len(line):
        link = _MD_LINK.match(line, position) if structured else None
        if link is not None:
            out.append(f"[{_escape_line(link.group(1), structured=False)}|{link.group(2)}]")
            position = link.end()
            continue
        span = _span(line, position) if structured else None
        if span is not None:
            match, opening, closing = span
            out.append(opening + _escape_line(match.group(1), structured=False) + closing)
            position = match.end()
            continue
        url = _URL.match(line, position)
        if url is not None and (position == 0 or not line[position - 1].isalnum()):
            out.append(url.group())
            position = url.end()
            continue
        char = line[position]
        if char == "\\":
            out.append("&#92;")
        elif char == "&" and _ENTITY.match(line, position):
            out.append("&amp;")
        elif char in _SPECIALS:
            out.append("\\" + char)
        else:
            out.append(char)
        position += 1
    return "".join(out)


def _span(line: str, position: int) -> tuple[re.Match[str], str, str] | None:
    for pattern, opening, closing in _MD_SPANS:
        match = pattern.match(line, position)
        if match is not None:
            return match, opening, closing
    return None


# --------------------------------------------------------------------------- wiki -> text

_CODE_OPEN = re.compile(r"\{(code|noformat)(?::([^}]*))?\}")
_HEADING = re.compile(r"h([1-6])\.\s+(.*)")
_LIST = re.compile(r"([*#-]+)\s+(.*)")
_QUOTE = re.compile(r"bq\.\s+(.*)")
_RULE = re.compile(r"-{4,}\s*")

_INLINE = re.compile(
    r"(?P<br>\\\\)"
    r"|(?P<esc>\\(?P<echar>.))"
    r"|(?P<entity>&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);)"
    r"|(?P<mention>\[~(?:accountid:)?(?P<who>[^\]\n]+)\])"
    r"|(?P<link>\[(?:(?P<ltext>[^\]|\n]*)\|)?(?P<target>[^\]|\n]+)\])"
    r"|(?P<mono>\{\{(?P<mtext>.+?)\}\})"
    r"|(?P<strong>(?<![\w*])\*(?P<stext>[^*\s](?:[^*]*?[^*\s])?)\*(?![\w*]))"
    r"|(?P<em>(?<![\w_])_(?P<etext>[^_\s](?:[^_]*?[^_\s])?)_(?![\w_]))"
    r"|(?P<strike>(?<![\w-])-(?P<ktext>[^-\s](?:[^-]*?[^-\s])?)-(?![\w-]))"
    r"|(?P<plain>(?<![\w+^~?])(?P<mark>[+^~]|\?\?)(?P<ptext>[^\s+^~?](?:[^+^~?]*?[^\s+^~?])?)"
    r"(?P=mark)(?![\w+^~?]))"
)


def wiki_to_text(wiki: str) -> str:
    """Neutral text for wiki markup; undoes :func:`text_to_wiki` exactly."""
    if not wiki:
        return ""
    lines = wiki.split("\n")
    out: list[str] = []
    counters: dict[int, int] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        code = _CODE_OPEN.fullmatch(line.strip())
        if code is not None:
            end = _closing(lines, index + 1, code.group(1))
            if end is not None:
                language = (code.group(2) or "").split("|")[0].strip()
                if "=" in language:
                    language = ""
                out.append(f"```{language}")
                out.extend(lines[index + 1:end])
                out.append("```")
                index = end + 1
                counters.clear()
                continue
        out.append(_block_line(line, counters))
        index += 1
    return "\n".join(out)


def _closing(lines: list[str], start: int, macro: str) -> int | None:
    for index in range(start, len(lines)):
        if lines[index].strip() == "{" + macro + "}":
            return index
    return None


def _block_line(line: str, counters: dict[int, int]) -> str:
    heading = _HEADING.fullmatch(line)
    if heading is not None:
        counters.clear()
        return "#" * int(heading.group(1)) + " " + _inline(heading.group(2))
    listed = _LIST.fullmatch(line)
    if listed is not None and not _RULE.fullmatch(line):
        marks = listed.group(1)
        depth = len(marks)
        for deeper in [d for d in counters if d > depth]:
            del counters[deeper]
        indent = "  " * (depth - 1)
        if marks[-1] == "#":
            counters[depth] = counters.get(depth, 0) + 1
            return f"{indent}{counters[depth]}. {_inline(listed.group(2))}"
        return f"{indent}- {_inline(listed.group(2))}"
    counters.clear()
    quote = _QUOTE.fullmatch(line)
    if quote is not None:
        return "> " + _inline(quote.group(1))
    if _RULE.fullmatch(line):
        return "---"
    if line.startswith("||") or (line.startswith("|") and line.rstrip().endswith("|")):
        cells = [c.strip() for c in re.split(r"\|\|?", line.strip().strip("|"))]
        return " | ".join(_inline(cell) for cell in cells)
    return _inline(line)


def _inline(text: str) -> str:
    out: list[str] = []
    position = 0
    while position < len(text):
        url = _URL.match(text, position)
        if url is not None and (position == 0 or not text[position - 1].isalnum()):
            out.append(url.group())
            position = url.end()
            continue
        match = _INLINE.match(text, position)
        if match is None:
            out.append(text[position])
            position += 1
            continue
        out.append(_inline_token(match))
        position = match.end()
    return "".join(out)


_ESCAPES = re.compile(r"\\\\|\\.|&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def _unescape(text: str) -> str:
    """Escapes and entities only: monospace text shows markup characters as they are."""
    def one(match: re.Match[str]) -> str:
        token = match.group()
        if token == "\\\\":
            return "\n"
        if token.startswith("\\"):
            return token[1] if token[1] in _UNESCAPABLE else token
        return html.unescape(token)

    return _ESCAPES.sub(one, text)


def _inline_token(match: re.Match[str]) -> str:
    if match.group("br"):
        return "\n"
    if match.group("esc"):
        char = match.group("echar")
        return char if char in _UNESCAPABLE else match.group("esc")
    if match.group("entity"):
        return html.unescape(match.group("entity"))
    if match.group("mention"):
        return "@" + match.group("who")
    if match.group("link"):
        target = match.group("target").strip()
        label = match.group("ltext")
        if not _URL.fullmatch(target) and not target.startswith("mailto:"):
            return _inline(label) if label else target
        if label is None or label.strip() == target:
            return target
        return f"[{_inline(label)}]({target})"
    if match.group("mono"):
        return f"`{_unescape(match.group('mtext'))}`"
    if match.group("strong"):
        return f"**{_inline(match.group('stext'))}**"
    if match.group("em"):
        return f"*{_inline(match.group('etext'))}*"
    if match.group("strike"):
        return f"~~{_inline(match.group('ktext'))}~~"
    return _inline(match.group("ptext"))
