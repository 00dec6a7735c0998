"""Make untrusted text (corpus documents, metadata, model output) inert for a terminal.

Control characters would be interpreted by the terminal (escape sequences, cursor moves, OSC 52
clipboard writes); bidirectional overrides reorder what the user reads. Both are replaced by
visible placeholders, one character for one, so span offsets still apply. Markup is never an issue as long as text reaches Textual as `Content(text)`
or `Text(text)`, never as a markup string.
"""

from __future__ import annotations

import re

_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# C0 except \t and \n, DEL, C1, bidi controls, lone surrogates.
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")


def _placeholder(m: re.Match[str]) -> str:
    ch = m.group(0)
    code = ord(ch)
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode "control pictures" block: ␛ for ESC, ␍ for CR ...
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"  # one character for one: offsets into the text stay valid


def inert(text: str) -> str:
    """Text safe to print to a terminal: control and bidi characters become visible symbols."""
    return _UNSAFE.sub(_placeholder, text)


def is_inert(text: str) -> bool:
    return _UNSAFE.search(text) is None
