"""Text normalization for indexes that match what contamination reports count (issue 21).

Two modes, each a function of the text alone (so a corpus and every query are normalized the same
way):

- ``space``: Unicode NFKC, and every run of whitespace (a newline, a tab, an indent) one space;
  leading and trailing whitespace dropped.
- ``words``: also lowercase, and punctuation (Unicode category P*) removed as a word separator:
  what the GPT-3 and OLMo reports' 13-gram measure compares ("Hello, World!" and "hello world"
  are the same words).

`normalize_with_map` also returns, for each character of the normalized text, the index of the
original character it came from (and one more entry for the end), so a range found in the
normalized text is located in the original: highlights of a reply and of a document stay on the
text the reader wrote or stored. NFKC and lowercasing are applied per base character with its
combining marks, so every output character maps to the original cluster it came from.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from .tokenizer import Tokenizer
from .words import WordBoundaries

MODES = ("space", "words")
#: the metadata key under which a normalized index keeps each document's original text (what its
#: document views show, the match located through `normalize_with_map`)
ORIGINAL_KEY = "tracetui_original_text"


def _clusters(text: str) -> list[tuple[int, str]]:
    """(start, cluster) for each base character with the combining marks that follow it."""
    out: list[tuple[int, str]] = []
    start = 0
    for i in range(1, len(text) + 1):
        if i == len(text) or not unicodedata.category(text[i]).startswith("M"):
            out.append((start, text[start:i]))
            start = i
    return [c for c in out if c[1]]


#: separators of ASCII text per mode (whitespace; and, for words, the ASCII punctuation P*)
_ASCII_WORDS = {
    "space": re.compile(r"[^\t\n\x0b\x0c\r\x1c-\x1f ]+"),
    "words": re.compile("[^\t\n\x0b\x0c\r\x1c-\x1f " + re.escape("".join(
        chr(c) for c in range(128) if unicodedata.category(chr(c)).startswith("P"))) + "]+"),
}


def _ascii(text: str, mode: str, with_map: bool) -> tuple[str, np.ndarray | None]:
    """The same normalization for ASCII text at C speed (NFKC leaves ASCII as it is)."""
    runs = [(m.start(), m.end()) for m in _ASCII_WORDS[mode].finditer(text.lower() if mode == "words" else text)]
    src = text.lower() if mode == "words" else text
    norm = " ".join(src[a:b] for a, b in runs)
    if not with_map:
        return norm, None
    where = np.empty(len(norm) + 1, dtype=np.int64)
    k = 0
    for j, (a, b) in enumerate(runs):
        if j:
            where[k] = runs[j - 1][1]  # the separator: where the removed run began
            k += 1
        where[k : k + b - a] = np.arange(a, b)
        k += b - a
    where[k] = len(text)
    return norm, where


def normalize_with_map(text: str, mode: str) -> tuple[str, np.ndarray]:
    """The normalized text and, per normalized character (plus the end), its original index."""
    if mode not in MODES:
        raise ValueError(f"normalization {mode!r}: one of {', '.join(MODES)}")
    if text.isascii():
        norm, where = _ascii(text, mode, True)
        assert where is not None
        return norm, where
    return _by_clusters(text, mode)


def _by_clusters(text: str, mode: str) -> tuple[str, np.ndarray]:
    """`normalize_with_map` of any text, one base character and its marks at a time."""
    chars: list[str] = []
    where: list[int] = []
    pending_space = -1  # original index of a whitespace run not written yet
    for start, cluster in _clusters(text):
        piece = unicodedata.normalize("NFKC", cluster)
        if mode == "words":
            piece = piece.lower()
        for ch in piece:
            if ch.isspace() or (mode == "words" and unicodedata.category(ch).startswith("P")):
                if pending_space < 0:
                    pending_space = start
                continue
            if pending_space >= 0:
                if chars:  # no leading space
                    chars.append(" ")
                    where.append(pending_space)
                pending_space = -1
            chars.append(ch)
            where.append(start)
    where.append(len(text))
    return "".join(chars), np.asarray(where, dtype=np.int64)


def normalize(text: str, mode: str) -> str:
    if mode in MODES and text.isascii():
        return _ascii(text, mode, False)[0]
    return normalize_with_map(text, mode)[0]


def original_range(text: str, where: np.ndarray, start: int, end: int) -> tuple[int, int]:
    """The characters [a, b) of the original `text` that normalized characters [start, end) came
    from (their first cluster's start to their last cluster's end; nothing removed around them)."""
    if end <= start:
        a = int(where[min(start, len(where) - 1)])
        return a, a
    a = int(where[start])
    b = int(where[end - 1]) + 1
    while b < len(text) and unicodedata.category(text[b]).startswith("M"):
        b += 1
    return a, b




class NormalizingTokenizer(Tokenizer):
    """A tokenizer behind a normalization: what an index of normalized text queries with. Every
    text is normalized before it is encoded, and `encode_with_offsets` gives offsets into the
    *original* text, so spans, highlights and overlap coverage stay on what the reader sees.
    Decoding gives the normalized text (what the index holds)."""

    def __init__(self, base: Tokenizer, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"normalization {mode!r}: one of {', '.join(MODES)}")
        self.base, self.mode = base, mode
        self.name, self.vocab_size = base.name, base.vocab_size

    def encode_ids(self, text: str) -> list[int]:
        return self.base.encode_ids(normalize(text, self.mode))

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self.base.encode_batch([normalize(t, self.mode) for t in texts])

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        norm, where = normalize_with_map(text, self.mode)
        ids, offs = self.base.encode_with_offsets(norm)
        offs = np.asarray(offs, dtype=np.int64).reshape(-1, 2)
        out = np.zeros_like(offs)
        for k, (a, b) in enumerate(offs.tolist()):
            out[k] = original_range(text, where, a, b)
        return ids, out

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self.base.decode(ids)

    def decode_span(self, ids: Sequence[int] | np.ndarray, start: int, end: int) -> tuple[str, tuple[int, int]]:
        return self.base.decode_span(ids, start, end)

    def token_bytes(self) -> list[bytes]:
        return self.base.token_bytes()

    def token_text(self, token: int) -> str:
        return self.base.token_text(token)

    def whole_characters(self, ids: Sequence[int] | np.ndarray, start: int, end: int) -> tuple[int, int]:
        return self.base.whole_characters(ids, start, end)

    def word_boundaries(self) -> WordBoundaries:
        return self.base.word_boundaries()

    def fingerprint(self) -> str:
        return f"{self.base.fingerprint()}+{self.mode}"

    def __getattr__(self, name: str) -> Any:  # family, path, ... of the tokenizer behind
        return getattr(self.base, name)


def for_manifest(tokenizer: Tokenizer, build: dict[str, Any]) -> Tokenizer:
    """The tokenizer an index queries with: behind its normalization, if it was built with one."""
    mode = build.get("normalize") if isinstance(build, dict) else None
    return NormalizingTokenizer(tokenizer, mode) if mode else tokenizer


__all__ = ["MODES", "ORIGINAL_KEY", "NormalizingTokenizer", "for_manifest", "normalize", "normalize_with_map", "original_range"]
