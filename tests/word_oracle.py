"""The independent oracle of the word-boundary rule: decisions on the *text*, never on the
project's token tables.

The rule a reader applies (issue 17): an occurrence is whole words when, at each edge, the
character just inside it or the character just outside it is not a word character, the start and
end of a text or document counting as "not a word character". A word character is a letter, a
digit or other number, a mark, or connector punctuation ("_"): asked of Python's own string
methods and Unicode database here, not of `index_tools.words`.

A tokenized text is viewed as its token ids plus, per token boundary 0..L, whether the rule holds
there -- read off the text at the character offsets the tokenizer library itself reports (a
boundary that falls inside a character, as byte-level BPE may split one, is never a word
boundary). Occurrences of token sequences are then found by plain list comparison.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer as HF


def is_word(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return ch.isalnum() or ch == "_" or cat.startswith("M") or cat == "Pc"


def breaks_at(text: str, c: int) -> bool:
    """Is character offset c of `text` a word boundary (either neighbour a non-word character)?"""
    return c <= 0 or c >= len(text) or not is_word(text[c - 1]) or not is_word(text[c])


@dataclass
class View:
    text: str
    ids: list[int]
    bnd: list[bool]  # per token boundary 0..len(ids)
    chars: list[tuple[int, int]]  # character range of each token


def view_bytes(text: str) -> View:
    """The `bytes` tokenizer: one token per UTF-8 byte."""
    data = text.encode("utf-8")
    char_of: list[int] = []
    for k, ch in enumerate(text):
        char_of += [k] * len(ch.encode("utf-8"))
    bnd = []
    for i in range(len(data) + 1):
        if 0 < i < len(data) and data[i] & 0xC0 == 0x80:
            bnd.append(False)  # inside a character
        else:
            bnd.append(breaks_at(text, char_of[i] if i < len(data) else len(text)))
    return View(text, list(data), bnd, [(c, c + 1) for c in char_of])


def view_hf(tok: HF, text: str) -> View:
    enc = tok.encode(text, add_special_tokens=False)
    offs = [tuple(o) for o in enc.offsets]
    L = len(enc.ids)
    bnd = []
    for p in range(L + 1):
        if p == 0 or p == L:
            bnd.append(True)
        elif offs[p][0] < offs[p - 1][1] and not (p == 1 and enc.tokens[0] == "\u2581"):
            # both tokens hold part of one character (SentencePiece's prepended "▁", alone as
            # the first token, is reported over the first character: it holds none of it)
            bnd.append(False)
        else:
            bnd.append(breaks_at(text, offs[p][0]))
    return View(text, list(enc.ids), bnd, offs)  # type: ignore[arg-type]


def viewer(tokenizer: str | Path):  # type: ignore[no-untyped-def]
    if str(tokenizer) == "bytes":
        return view_bytes
    tok = HF.from_file(str(tokenizer))
    return lambda text: view_hf(tok, text)


def occurrences(docs: list[View], q: list[int]) -> list[tuple[int, int]]:
    """(document, token position) of every whole-word occurrence of q."""
    m = len(q)
    out = []
    for k, d in enumerate(docs):
        for i in range(len(d.ids) - m + 1):
            if d.ids[i : i + m] == q and d.bnd[i] and d.bnd[i + m]:
                out.append((k, i))
    return out


def count(docs: list[View], q: list[int]) -> int:
    return len(occurrences(docs, q))


def reference_spans(docs: list[View], reply: View, delims: set[int], min_len: int,
                    max_cnt: int) -> list[tuple[int, int, int]]:
    """Section 1 with whole words on both sides, by brute force: for each reply boundary l, the
    longest r (a reply boundary, within the delimiter cut) with a whole-word occurrence; then
    count, max_cnt and maximality in the reference's order."""
    ids, bnd = reply.ids, reply.bnd
    L = len(ids)
    out: list[tuple[int, int, int]] = []
    max_r = -1
    for l in range(L):
        if not bnd[l]:
            continue
        cut = L
        for p in range(l, L):
            if ids[p] in delims:
                cut = p + 1
                break
        r = l
        for cand in range(cut, l, -1):
            if bnd[cand] and count(docs, ids[l:cand]) > 0:
                r = cand
                break
        if r - l < max(1, min_len):
            continue
        c = count(docs, ids[l:r])
        if c > max_cnt:
            continue
        if r > max_r:
            out.append((l, r, c))
            max_r = r
    return out


def delimiter_tokens(tokenizer: str | Path, delimiters: tuple[str, ...] = (".", "\n")) -> set[int]:
    """Ids of tokens that are exactly a delimiter, by the tokenizer library (or the byte)."""
    if str(tokenizer) == "bytes":
        return {d.encode()[0] for d in delimiters if len(d.encode()) == 1}
    tok = HF.from_file(str(tokenizer))
    out = set()
    for d in delimiters:
        ids = tok.encode(d, add_special_tokens=False).ids
        if len(ids) == 1:
            out.add(ids[0])
    return out
