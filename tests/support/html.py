"""Rendered HTML and Markdown as the leaderboard's browser would show them, for escaping tests."""

from __future__ import annotations

from html.parser import HTMLParser

from markdown_it import MarkdownIt


class _Collector(HTMLParser):
    """Tags and the decoded text of rendered HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(rendered: str) -> tuple[list[str], str]:
    """(start tags in order, the visible text) of rendered HTML."""
    collector = _Collector()
    collector.feed(rendered)
    collector.close()
    return collector.tags, "".join(collector.text)


def render_markdown(text: str) -> str:
    """CommonMark + GFM tables, as gr.Markdown's renderer (marked) treats backslash escapes and entities."""
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)
