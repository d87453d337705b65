"""Plain text <-> Jira wiki markup (DC and v2): specials survive escaped, people's
markup reads as the neutral Markdown-ish text, and any text round-trips exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.wiki import text_to_wiki, wiki_to_text


@pytest.mark.parametrize(
    ("text", "wiki"),
    [
        ("plain words", "plain words"),
        ("2 * 3 = 6", "2 \\* 3 = 6"),
        ("snake_case_name", "snake\\_case\\_name"),
        ("{code} and {{x}}", "\\{code\\} and \\{\\{x\\}\\}"),
        ("[not a link|x]", "\\[not a link\\|x\\]"),
        ("- not a list", "\\- not a list"),
        ("# not numbered", "\\# not numbered"),
        ("h1. not a heading", "h1\\. not a heading"),
        ("bq. not a quote", "bq\\. not a quote"),
        ("(y) :) !image.png!", "\\(y\\) :\\) \\!image.png\\!"),
        ("C:\\Temp\\logs", "C:&#92;Temp&#92;logs"),
        ("AT&amp;T", "AT&amp;amp;T"),
        ("R&D", "R&D"),
        ("line 1\nline 2\n\npara", "line 1\nline 2\n\npara"),
        ("see https://wiki.example.com/a_b-c?x=1&y=2 now",
         "see https://wiki.example.com/a_b-c?x=1&y=2 now"),
    ],
)
def test_text_is_escaped_so_it_renders_literally(text: str, wiki: str) -> None:
    assert text_to_wiki(text) == wiki
    assert wiki_to_text(wiki) == text


@pytest.mark.parametrize(
    ("wiki", "text"),
    [
        ("*bold* and _em_ and -gone- and +under+", "**bold** and *em* and ~~gone~~ and under"),
        ("use {{ipconfig /all}}", "use `ipconfig /all`"),
        ("[runbook|https://wiki.example.com/vpn]", "[runbook](https://wiki.example.com/vpn)"),
        ("[https://status.example.com]", "https://status.example.com"),
        ("[Local page|Some Wiki Page]", "Local page"),
        ("ask [~chen.wei] or [~accountid:5b10ac8d82e05b22cc7d4ef5]",
         "ask @chen.wei or @5b10ac8d82e05b22cc7d4ef5"),
        ("h2. Impact", "## Impact"),
        ("* one\n** nested\n* two", "- one\n  - nested\n- two"),
        ("# first\n# second\n## sub\n# third", "1. first\n2. second\n  1. sub\n3. third"),
        ("{code:sql}\nSELECT *\nFROM t;\n{code}", "```sql\nSELECT *\nFROM t;\n```"),
        ("{noformat}\n*raw*\n{noformat}", "```\n*raw*\n```"),
        ("bq. quoted", "> quoted"),
        ("----", "---"),
        ("||Site||Users||\n|Lyon|120|", "Site | Users\nLyon | 120"),
        ("first\\\\second", "first\nsecond"),
        ("&copy; 2026 &nbsp;", "© 2026 \xa0"),
        ("a*b*c stays", "a*b*c stays"),
        ("{code}\nnever closed", "{code}\nnever closed"),
    ],
)
def test_wiki_written_by_people_reads_as_neutral_text(wiki: str, text: str) -> None:
    assert wiki_to_text(wiki) == text


_FRAGMENTS = ["a", "Z", "é", "🔥", " ", "\n", "\n\n", "\r\n", "\t", "*", "_", "{", "}", "[",
              "]", "|", "-", "+", "^", "~", "?", "#", "!", "(", ")", ".", ":", ";", "&", "\\",
              "h1. ", "bq. ", "----", "{code}", "{{", "&amp;", "&#92;", "&lt;", "https://",
              "https://ex.com/p_q-r?s=1&t=2", "[x|https://ex.com]", "[~bob]", "*b*", "** "]
texts = st.one_of(st.text(max_size=150),
                  st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map("".join))


@settings(max_examples=500, deadline=None)
@given(texts)
def test_any_text_round_trips_through_wiki(text: str) -> None:
    assert wiki_to_text(text_to_wiki(text)) == text


@settings(max_examples=300, deadline=None)
@given(texts)
def test_wiki_to_text_never_raises(wiki: str) -> None:
    assert isinstance(wiki_to_text(wiki), str)


@pytest.mark.parametrize(
    ("text", "wiki"),
    [
        ("See [runbook](https://wiki.example.com/vpn) now",
         "See [runbook|https://wiki.example.com/vpn] now"),
        ("**VPN** is down", "*VPN* is down"),
        ("an *important* note, ~~old~~ and `ipconfig /all`",
         "an _important_ note, -old- and {{ipconfig /all}}"),
        ("`a_b` in `C:\\Temp`", "{{a\\_b}} in {{C:&#92;Temp}}"),
        ("**a** and [snake_case](https://a.example/c_d)",
         "*a* and [snake\\_case|https://a.example/c_d]"),
        # Would not read back as written: the whole text stays literal.
        ("x**b**y", "x\\*\\*b\\*\\*y"),
        ("[https://x.io](https://x.io)", "\\[https://x.io\\]\\(https://x.io\\)"),
    ],
)
def test_markdown_links_and_strong_become_wiki_markup_when_exact(text: str, wiki: str) -> None:
    assert text_to_wiki(text) == wiki
    assert wiki_to_text(wiki) == text
