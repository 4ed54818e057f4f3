"""Escape text that comes from a results file before it reaches HTML, Markdown or a plotly label.

Every string in a CSV (model names, run ids, sources, file names) is untrusted: a model called
``<script>…</script>`` or ``[click](http://evil.example)`` must show up as that literal text, never as a tag or
a link, and a ``|`` must not break a Markdown table.

* :func:`escape_markdown`: one pass over the text, character by character: ``& < > " '`` become the HTML entities
  ``&amp; &lt; &gt; &quot; &#x27;`` (so no raw tag or blockquote ``>`` survives), every other ASCII punctuation
  character (``\\ ` * _ { } [ ] ( ) # + - . ! | ~`` and the rest, ``: @ = $ %`` … included, which also stops GFM
  autolinks such as ``http://…`` and ``www.…``) gets a backslash, which CommonMark defines as "this character
  literally"; line breaks become spaces (a value stays on its line, inside its list item or table cell). A single
  pass matters: escaping HTML first and Markdown second would backslash the ``#`` of ``&#x27;``.
* :func:`plotly_text`: plotly renders a subset of HTML in text (``<b>``, ``<br>``, ``<a href>``), so
  ``& < >`` become entities and line breaks become spaces.
* :func:`visible_text` (applied by both, and by the table): characters that change how text *looks* without
  being seen (bidirectional overrides and isolates such as U+202E, zero-width and other format characters,
  control characters) are shown as ``⟨U+202E⟩``, so a name displays as what is stored, not as a reordered or
  hidden variant of it. Tabs and line breaks become spaces. The stored value (and the CSV download) is unchanged.
"""

from __future__ import annotations

import string
import unicodedata

_LINE_BREAKS = "\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029"
"""Everything :meth:`str.splitlines` splits on; each becomes a space ("\\r\\n" becomes one space)."""

_HTML_ENTITIES: dict[str, str] = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}

_MARKDOWN_TABLE: dict[int, str] = {
    **{ord(char): "\\" + char for char in string.punctuation},
    **{ord(char): entity for char, entity in _HTML_ENTITIES.items()},
    **{ord(char): " " for char in _LINE_BREAKS},
}

_PLOTLY_TABLE: dict[int, str] = {
    **{ord(char): _HTML_ENTITIES[char] for char in "&<>"},
    **{ord(char): " " for char in _LINE_BREAKS},
}


def _hidden(char: str) -> bool:
    """A character that is not drawn as itself: controls (Cc), format characters (Cf: bidi overrides, isolates,
    zero-width joiners, BOM), unassigned (Cn), surrogates and private use (Cs, Co)."""
    return unicodedata.category(char) in ("Cc", "Cf", "Cn", "Cs", "Co")


def visible_text(text: str) -> str:
    """``text`` with every hidden character shown as ``⟨U+XXXX⟩`` and tabs and line breaks as spaces."""
    if text.isprintable():
        return text
    out = []
    for char in text.replace("\r\n", "\n"):
        if char == "\t" or char in _LINE_BREAKS:
            out.append(" ")
        elif _hidden(char):
            out.append(f"⟨U+{ord(char):04X}⟩")
        else:
            out.append(char)
    return "".join(out)


def _single_line(text: str) -> str:
    return visible_text(text)


def escape_markdown(text: str) -> str:
    """``text`` that renders as itself in (GitHub-flavoured) Markdown: no tag, link, emphasis or table cell break.

    HTML-significant ``& < > " '`` become entities, every other ASCII punctuation character is
    backslash-escaped, line breaks become spaces. Do not put the result inside a code span (backslashes
    show there literally).
    """
    return _single_line(text).translate(_MARKDOWN_TABLE)


def plotly_text(text: str) -> str:
    """``text`` for a plotly label, legend entry or hover text: ``& < >`` as entities, line breaks as spaces."""
    return _single_line(text).translate(_PLOTLY_TABLE)
