"""Escaping: text from a results file renders as itself, never as a tag, link, emphasis or table cell break."""

from __future__ import annotations

import html
import re

import pytest

from capbench.leaderboard.escape import escape_markdown, plotly_text
from tests.support.html import parse_html, render_markdown

PAYLOADS: tuple[str, ...] = (
    "<script>alert(1)</script>",
    "[click](http://evil.example)",
    "**bold**",
    "<img src=x onerror=alert(1)>",
    "`code` and ``double``",
    "a | b | c",
    "line one\nline two\r\nline three",
    "# heading\n- item\n> quote\n1. first",
    "_under_ ~~strike~~ ![img](x.png) <http://auto.example> www.evil.example a@b.example",
    'Tom & Jerry\'s "quote" &lt; &amp; &#x27;',
    "back\\slash \\* {braces} +plus !bang",
)


def one_line(text: str) -> str:
    """What escaping does to line breaks: each (\\r\\n counts as one) becomes a space."""
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


# --- escape_markdown ---------------------------------------------------------------------------------------


def test_escape_markdown_exact_examples() -> None:
    # Expected strings written by hand: HTML entities for & < > " ', a backslash before other punctuation.
    assert escape_markdown("**bold**") == r"\*\*bold\*\*"
    assert escape_markdown("[click](http://evil.example)") == r"\[click\]\(http\:\/\/evil\.example\)"
    assert escape_markdown("<script>alert(1)</script>") == r"&lt;script&gt;alert\(1\)&lt;\/script&gt;"
    assert escape_markdown("a|b") == r"a\|b"
    assert escape_markdown("`x`") == r"\`x\`"
    assert escape_markdown("it's") == "it&#x27;s"  # the entity's # is not backslashed (one pass)
    assert escape_markdown("a\nb\r\nc") == "a b c"
    assert escape_markdown("plain words 123") == "plain words 123"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escape_markdown_structure(payload: str) -> None:
    escaped = escape_markdown(payload)
    assert "\n" not in escaped and "\r" not in escaped
    assert "<" not in escaped and ">" not in escaped
    # Every markdown-significant character is preceded by a backslash (entities are the only bare & # ;).
    without_entities = re.sub(r"&(?:amp|lt|gt|quot|#x27);", "", escaped)
    for match in re.finditer(r"[\\`*_{}\[\]()#+\-.!|~:/@]", without_entities):
        start = match.start()
        preceding = len(without_entities[:start]) - len(without_entities[:start].rstrip("\\"))
        if match.group() == "\\":
            continue  # checked through its pair below
        assert preceding % 2 == 1, f"unescaped {match.group()!r} at {start} in {escaped!r}"
    assert "://" not in escaped and "www." not in escaped  # no GFM autolink


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escape_markdown_renders_as_literal_text(payload: str) -> None:
    rendered = render_markdown(escape_markdown(payload))
    tags, text = parse_html(rendered)
    assert tags == ["p"], rendered  # one paragraph: no script, img, a, strong, em, code, heading, list, table
    assert text.strip() == one_line(payload).strip()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escape_markdown_inside_table_cell_keeps_one_cell(payload: str) -> None:
    source = f"| name | value |\n|---|---|\n| {escape_markdown(payload)} | x |\n"
    rendered = render_markdown(source)
    tags, _ = parse_html(rendered)
    assert tags.count("td") == 2, rendered  # the pipe did not split the cell
    assert not {"a", "img", "script", "strong", "em", "code"} & set(tags)
    cell = re.search(r"<td>(.*?)</td>", rendered, re.DOTALL)
    assert cell is not None
    assert html.unescape(cell.group(1)).strip() == one_line(payload).strip()


def test_unescaped_payload_would_render_tags() -> None:
    # The renderer used above does turn these payloads into tags: the checks are able to fail.
    assert "a" in parse_html(render_markdown("[click](http://evil.example)"))[0]
    assert "strong" in parse_html(render_markdown("**bold**"))[0]
    assert "code" in parse_html(render_markdown("`code`"))[0]
    assert "<script>" in render_markdown("<script>alert(1)</script>")


# --- plotly_text -------------------------------------------------------------------------------------------


def test_plotly_text_exact() -> None:
    assert plotly_text("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    assert plotly_text('<a href="http://evil.example">x</a>') == '&lt;a href="http://evil.example"&gt;x&lt;/a&gt;'
    assert plotly_text("a\nb\r\nc") == "a b c"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_plotly_text_has_no_raw_tag(payload: str) -> None:
    escaped = plotly_text(payload)
    assert "<" not in escaped and ">" not in escaped and "\n" not in escaped
    assert html.unescape(escaped) == one_line(payload)
