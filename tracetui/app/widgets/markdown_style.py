"""Markdown styling that keeps every source character in place.

Replies are shown as their own text with markdown *styled* (headings, emphasis, inline code,
fenced code blocks) rather than re-flowed by a markdown renderer. Character offsets of traced
spans therefore map 1:1 onto the screen: a highlight can never break the markdown, never be
duplicated by re-rendering, and works inside code blocks.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?(?:^\1[ \t]*$|\Z)", re.M | re.S)
_HEADING = re.compile(r"^#{1,6} [^\n]*", re.M)
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![*\w])([*_])(?=\S)([^*_\n]+?)(?<=\S)\1(?![*\w])")
_CODE = re.compile(r"`[^`\n]+`")
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+\.) ", re.M)


def markdown_styles(text: str) -> list[tuple[int, int, str]]:
    """(start, end, style) ranges for `text`; later ranges are applied over earlier ones."""
    out: list[tuple[int, int, str]] = []
    fenced: list[tuple[int, int]] = []
    for m in _FENCE.finditer(text):
        fenced.append((m.start(), m.end()))
        out.append((m.start(), m.end(), "on #161b22"))

    def outside(a: int) -> bool:
        return not any(s <= a < e for s, e in fenced)

    for rx, style in ((_HEADING, "bold underline"), (_BOLD, "bold"), (_ITALIC, "italic"),
                      (_CODE, "#e3b341"), (_BULLET, "bold #58a6ff")):
        for m in rx.finditer(text):
            if outside(m.start()):
                out.append((m.start(), m.end(), style))
    return out
