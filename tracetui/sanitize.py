"""Make untrusted text (corpus documents, metadata, model output) inert for a terminal.

What is replaced is decided by Unicode character class (`unicodedata.category`), not by a list
kept by hand; the pattern is generated from the categories of every code point (about 0.1 s,
once per Unicode version: the ranges are cached) for this Python's Unicode version:

- Cc, controls (but tab and newline, which the views lay out): a terminal interprets them
  (escape sequences, cursor moves, OSC 52 clipboard writes, C1 CSI);
- Cf, format characters: bidirectional overrides and isolates reorder what the user reads; zero
  width spaces and joiners, word joiners, the BOM, soft hyphens, invisible operators and tag
  characters are invisible, so a text that shows the same can differ (and a terminal may draw a
  ZWJ sequence in another width than Textual counted);
- Cs, lone surrogates: not text at all (they cannot even be encoded);
- Zl and Zp, U+2028 and U+2029: some terminals and viewers break the line there, so the lines
  the user sees are not the text's lines;
- Cn, code points this Unicode does not assign (noncharacters such as U+FFFE included): no width
  or meaning is known for them here, and a terminal with newer tables may draw a wide emoji or
  apply a new format character where Textual counted one blank cell.

Left alone: private-use characters (Co) are visible (a font's glyph or a box), one cell wide,
and in real use (icon fonts, some CJK corpora); spaces (Zs), marks (M*) and everything else are
ordinary visible text.

Each replaced character becomes one visible character (one code point for one, so span offsets
still apply): C0 controls their Unicode "control picture" (␛ for ESC, ␍ for CR...), DEL ␡, the
line separator ␤ and the paragraph separator ¶; every other one U+FFFD. Markup is never an issue
as long as text reaches Textual as `Content(text)` or `Text(text)`, never as a markup string.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
import unicodedata
from pathlib import Path

#: the character classes made visible (see the module's docstring)
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"})
_KEPT = "\t\n"
_PICTURES = {"\x7f": "\u2421", "\u2028": "\u2424", "\u2029": "\u00b6"}


def _runs() -> list[tuple[int, int]]:
    """The code-point ranges of UNSAFE_CATEGORIES but tab and newline, from every code point's
    category (0.1 s), cached per Unicode version in the user's cache directory: a fresh CLI
    process reads them back in well under a millisecond."""
    key = f"sanitize-{unicodedata.unidata_version}-{sys.maxunicode}-{''.join(sorted(UNSAFE_CATEGORIES))}-{_KEPT!r}"
    path = None
    try:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("tracetui")) / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
        got = json.loads(path.read_text(encoding="ascii"))
        if got.get("key") == key and all(isinstance(a, int) and isinstance(b, int) and a <= b for a, b in got["runs"]):
            return [(a, b) for a, b in got["runs"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    every = map(chr, range(sys.maxunicode + 1))
    flags = bytearray(map(UNSAFE_CATEGORIES.__contains__, map(unicodedata.category, every)))
    for ch in _KEPT:
        flags[ord(ch)] = 0
    runs = [(m.start(), m.end() - 1) for m in re.finditer(b"\x01+", bytes(flags))]
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": key, "runs": runs}), encoding="ascii")
            os.replace(tmp, path)
        except OSError:
            pass
    return runs


def _pattern() -> re.Pattern[str]:
    """A character class of every code point in UNSAFE_CATEGORIES but tab and newline, as ranges,
    split into the BMP and the planes above (re matches a BMP class with a table, which a class
    holding astral ranges would make a linear scan of ~700 ranges per character)."""
    runs = _runs()

    def cls(pairs: list[tuple[int, int]]) -> str:
        return "[" + "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
                             for a, b in pairs) + "]"

    bmp = [(a, min(b, 0xFFFF)) for a, b in runs if a <= 0xFFFF]
    astral = [(max(a, 0x10000), b) for a, b in runs if b > 0xFFFF]
    return re.compile(cls(bmp) + (f"|(?=[\U00010000-\U0010ffff]){cls(astral)}" if astral else ""))


@functools.cache
def _unsafe() -> re.Pattern[str]:
    """The pattern, made on first use: a one-shot command printing only plain ASCII never pays
    for it (about 10 ms: the cache read and the compile of ~700 ranges)."""
    return _pattern()


def _placeholder(m: re.Match[str]) -> str:
    ch = m.group(0)
    if ch < "\x20":
        return chr(0x2400 + ord(ch))  # the Unicode "control pictures" block: ␛ for ESC, ␍ for CR ...
    return _PICTURES.get(ch, "\ufffd")  # one character for one: offsets into the text stay valid


def inert(text: str) -> str:
    """Text safe to print to a terminal: controls, format characters, separators, surrogates and
    unassigned code points become visible symbols, one for one."""
    if text.isascii() and text.isprintable():  # U+0020..U+007E: letters, digits, punctuation, space
        return text
    return _unsafe().sub(_placeholder, text)


def is_inert(text: str) -> bool:
    return _unsafe().search(text) is None
