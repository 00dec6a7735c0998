"""Where words begin: one definition for the reply side, the corpus side and every tokenizer family.

A *word character* is a Unicode letter, mark, number or connector punctuation (``_``): what a
reader, and the regular expression ``\\w`` extended with combining marks, would call part of a
word. A token *begins a word* when the first character it decodes to is not a word character
(a space, a newline, a tab, punctuation, a symbol) -- "Ġcat", "\\tfoo", "—", "(" begin words;
"cat", "##at", "alog" continue one. WordPiece keeps no spaces, so there a token begins a word
exactly when it lacks the continuation prefix.

The decision is made on the bytes a token *decodes to*, never on its vocabulary string: byte-level
BPE stores space, tab and newline as "Ġ", "ĉ", "Ċ" and an em dash as "âĢĶ", SentencePiece stores
bytes as "<0xNN>". A token whose bytes open a multi-byte character without completing it (a lone
lead byte of the ``bytes`` tokenizer, a byte-fallback piece) is *unsure*: the character is only
known from the tokens that follow, so such positions are resolved from their context.

The word-boundary rule (one definition, both edges, reply and corpus alike): a position between
two tokens is a *word boundary* when it does not fall inside a character and the character before
it or the character after it is not a word character -- the start and the end of a text or a
document count as "not a word character". An occurrence is *whole words* when both its edges are
word boundaries. `WordBoundaries.boundary` decides it for any positions; most are settled from the
two tokens around them by table lookups (`tail_class`, `head_class`), the rest (a character split
across tokens) from the bytes of up to four tokens on each side.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import numpy as np

#: token classes
CONTINUES = 0  # first character is a word character, or the token starts inside a character
BEGINS = 1  # first character is not a word character (or the token is special / empty)
UNSURE = 2  # opens a multi-byte character that the token does not complete

_WORD_CACHE: dict[int, bool] = {}


def is_word_char(ch: str) -> bool:
    """Letters, marks, numbers and connector punctuation ("_") make words; nothing else does."""
    cat = unicodedata.category(ch)
    return cat[0] in "LMN" or cat == "Pc"


def _is_word_cp(cp: int) -> bool:
    got = _WORD_CACHE.get(cp)
    if got is None:
        got = _WORD_CACHE[cp] = 0 <= cp < 0x110000 and not 0xD800 <= cp < 0xE000 and is_word_char(chr(cp))
    return got


def _utf8_length(b0: int) -> int:
    """Length of the character a lead byte opens; 0 for a continuation byte, -1 if invalid."""
    if b0 < 0x80:
        return 1
    if b0 < 0xC0:
        return 0
    if b0 < 0xE0:
        return 2
    if b0 < 0xF0:
        return 3
    if b0 < 0xF8:
        return 4
    return -1


def classify_bytes(data: bytes) -> int:
    """Class of a token that decodes to `data` (byte-level, SentencePiece and plain vocabularies)."""
    if not data:
        return BEGINS
    n = _utf8_length(data[0])
    if n == 0:
        return CONTINUES
    if n < 0:
        return BEGINS
    if len(data) < n:
        return UNSURE
    try:
        ch = data[:n].decode("utf-8")
    except UnicodeDecodeError:
        return BEGINS  # a broken character is not part of a word
    return CONTINUES if is_word_char(ch) else BEGINS


def _tail_class(data: bytes) -> int:
    """How a token's text ends: BEGINS (its last character is complete and not a word
    character, or the token is empty: a special token stands alone), CONTINUES (complete, a word
    character) or UNSURE (its last character is split with a neighbouring token)."""
    if not data:
        return BEGINS
    k = len(data) - 1
    while k > 0 and k > len(data) - 4 and (data[k] & 0xC0) == 0x80:
        k -= 1
    n = _utf8_length(data[k])
    if n <= 0:
        return UNSURE if n == 0 else BEGINS
    if k + n != len(data):
        return UNSURE
    try:
        ch = data[k:].decode("utf-8")
    except UnicodeDecodeError:
        return BEGINS  # a broken character is not part of a word
    return CONTINUES if is_word_char(ch) else BEGINS


class WordBoundaries:
    """Per token id: its class and the first bytes it decodes to (to resolve unsure positions)."""

    def __init__(self, classes: np.ndarray, token_bytes: list[bytes]) -> None:
        self.classes = np.asarray(classes, dtype=np.int8)
        n = len(self.classes)
        self.head = np.zeros((n + 1, 4), dtype=np.uint8)  # row n: "no token"
        self.head_len = np.zeros(n + 1, dtype=np.int64)
        self.tail_rev = np.zeros((n + 1, 4), dtype=np.uint8)  # last bytes, last one first
        for i, b in enumerate(token_bytes):
            if b:
                k = min(4, len(b))
                self.head[i, :k] = np.frombuffer(b[:k], dtype=np.uint8)
                self.tail_rev[i, :k] = np.frombuffer(b[-k:][::-1], dtype=np.uint8)
                self.head_len[i] = k
        # the fast tables of `boundary`: how a token's text begins and ends, where the token alone
        # tells (an empty token -- a special one, an unknown character -- stands alone: a break)
        self.head_class = self.classes
        self.tail_class = np.array([_tail_class(b) for b in token_bytes], dtype=np.int8)
        #: the token's first byte continues a character: a position before it is inside one
        self.head_inside = np.array([bool(b) and (b[0] & 0xC0) == 0x80 for b in token_bytes], dtype=bool)

    #: the arrays that make a `WordBoundaries` (what `to_arrays` gives and `from_arrays` takes)
    ARRAYS = ("classes", "head", "head_len", "tail_rev", "tail_class", "head_inside")

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> WordBoundaries:
        """The tables as `to_arrays` gave them (a cache of a vocabulary's tables: building them
        walks every token in Python)."""
        self = cls.__new__(cls)
        for k in cls.ARRAYS:
            setattr(self, k, np.asarray(arrays[k]))
        n = len(self.classes)
        if self.head.shape != (n + 1, 4) or self.tail_rev.shape != (n + 1, 4) or len(self.head_len) != n + 1 \
                or len(self.tail_class) != n or len(self.head_inside) != n:
            raise ValueError("word-boundary tables of mismatched sizes")
        self.head_class = self.classes
        return self

    @property
    def static_mask(self) -> np.ndarray:
        """Token-level word starts (unsure counts as a start): the published `bow_ids` set."""
        return self.classes != CONTINUES

    def class_of(self, ids: np.ndarray) -> np.ndarray:
        """Class per id; ids outside the vocabulary (separators, -1 for "end") begin a word."""
        ids = np.asarray(ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self.classes))
        return np.where(inside, self.classes[np.where(inside, ids, 0)], BEGINS).astype(np.int8)

    def first_char_breaks(self, ids: np.ndarray) -> np.ndarray:
        """Per position of a token sequence, is the character that starts there not a word
        character (one half of the rule of `boundary`)? Unsure positions are decided by the
        character the following tokens complete (the sequence's end counts as "no bytes")."""
        ids = np.asarray(ids, dtype=np.int64)
        cls = self.class_of(ids)
        out = cls == BEGINS
        unsure = np.flatnonzero(cls == UNSURE)
        if len(unsure):
            L = len(ids)
            cols = unsure[:, None] + np.arange(4)[None, :]
            mat = np.where(cols < L, ids[np.minimum(cols, L - 1)], -1)
            out[unsure] = self.begins_at(mat)
        return out

    def _first_bytes(self, rows: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first four bytes of each row's tokens laid end to end (by `table`), and how many
        there are; a row stops at its first -1, separator or out-of-vocabulary id."""
        m, k = rows.shape
        n_vocab = len(self.classes)
        ended = np.cumsum(rows < 0, axis=1) > 0
        safe = np.where(ended | (rows >= n_vocab), n_vocab, rows)
        stop = np.cumsum(safe == n_vocab, axis=1) > 0
        lens = np.where(stop, 0, self.head_len[safe])
        raw = table[safe].reshape(m, 4 * k)
        valid = (np.arange(4)[None, None, :] < lens[:, :, None]).reshape(m, 4 * k)
        rank = np.cumsum(valid, axis=1) - 1
        take = valid & (rank < 4)
        first = np.zeros((m, 4), dtype=np.int64)
        r, c = np.nonzero(take)
        first[r, rank[r, c]] = raw[r, c]
        return first, np.minimum(valid.sum(axis=1), 4)

    def last_char(self, preceding: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row of preceding tokens (nearest first): is the last character not a word
        character (nothing there and broken bytes count as not one), does the row end inside a
        character (a lead byte still waiting for its continuation bytes), and is that last
        character complete within the row?"""
        rows = np.asarray(preceding, dtype=np.int64)
        m = len(rows)
        if m == 0:
            z = np.zeros(0, dtype=bool)
            return z, z, z
        rev, have = self._first_bytes(rows, self.tail_rev)  # rev[:, 0] is the last byte
        # the last character starts at the first byte (going backwards) that is not a continuation
        is_cont = ((rev & 0xC0) == 0x80) & (np.arange(4)[None, :] < have[:, None])
        start = np.argmin(is_cont, axis=1)  # index of the first non-continuation byte
        found = ~is_cont[np.arange(m), start] & (start < have)
        lead = rev[np.arange(m), start]
        n = np.select([lead < 0x80, lead < 0xC0, lead < 0xE0, lead < 0xF0, lead < 0xF8], [1, 0, 2, 3, 4], -1)
        ok = found & (have > 0) & (n == start + 1)
        open_char = found & (have > 0) & (n > start + 1)
        cp = np.select([n == 2, n == 3, n == 4], [lead & 0x1F, lead & 0x0F, lead & 0x07], lead)
        for j in (1, 2, 3):  # continuation bytes sit at start-1, start-2, ... in `rev`
            idx = np.clip(start - j, 0, 3)
            cp = np.where(n > j, (cp << 6) | (rev[np.arange(m), idx] & 0x3F), cp)
        return self._not_word(cp, ok), open_char, ok

    def _not_word(self, cp: np.ndarray, decodable: np.ndarray) -> np.ndarray:
        out = np.ones(len(cp), dtype=bool)  # nothing there, or broken bytes: a boundary
        idx = np.flatnonzero(decodable)
        if len(idx):
            uniq, inv = np.unique(cp[idx], return_inverse=True)
            word = np.array([_is_word_cp(int(c)) for c in uniq], dtype=bool)
            out[idx] = ~word[inv]
        return out

    def boundary(self, before: np.ndarray, after: np.ndarray,
                 rows: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """The word-boundary rule at many positions: `before` / `after` are the ids of the token
        just before / just after each position (-1: the text or document ends there). A position
        is a boundary unless it falls inside a character, or the characters on both sides of it
        are word characters. Where the two tokens do not settle it (a character split across
        tokens, an empty token), `rows(idx)` gives those positions' four tokens before (nearest
        first) and after (in order), -1 past an edge, and the bytes decide."""
        before = np.asarray(before, dtype=np.int64)
        after = np.asarray(after, dtype=np.int64)
        n_vocab = len(self.classes)
        b_in = (before >= 0) & (before < n_vocab)
        a_in = (after >= 0) & (after < n_vocab)
        tail = np.where(b_in, self.tail_class[np.where(b_in, before, 0)], BEGINS)
        head = np.where(a_in, self.head_class[np.where(a_in, after, 0)], BEGINS)
        inside = a_in & self.head_inside[np.where(a_in, after, 0)]
        # a complete non-word character on either side settles it (bytes that continue no
        # character are broken, and broken bytes are not word characters)
        out = (tail == BEGINS) | (head == BEGINS)
        open_ = ~out & ((tail == UNSURE) | (head == UNSURE) | inside)
        idx = np.flatnonzero(open_)
        if len(idx):
            prev_rows, next_rows = rows(idx)
            out[idx] = self.boundary_of_rows(prev_rows, next_rows)
        return out

    def boundary_of_rows(self, prev_rows: np.ndarray, next_rows: np.ndarray) -> np.ndarray:
        """`boundary` from the bytes: four tokens before (nearest first) and after each position."""
        next_rows = np.asarray(next_rows, dtype=np.int64)
        if len(next_rows) == 0:
            return np.zeros(0, dtype=bool)
        first, have = self._first_bytes(next_rows, self.head)
        before_breaks, open_char, _ = self.last_char(prev_rows)
        inside = open_char & (have > 0) & ((first[:, 0] & 0xC0) == 0x80)
        after_breaks = self.begins_at(next_rows)
        # a continuation byte that continues no character is broken: not a word character
        after_breaks |= ~open_char & (have > 0) & ((first[:, 0] & 0xC0) == 0x80)
        return ~inside & (before_breaks | after_breaks)

    def boundaries(self, ids: np.ndarray) -> np.ndarray:
        """The rule at every position 0..len(ids) of one text (its start and end are edges)."""
        ids = np.asarray(ids, dtype=np.int64)
        L = len(ids)
        ext = np.concatenate([np.full(4, -1), ids, np.full(4, -1)])

        def rows(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            k = np.arange(4)
            return ext[idx[:, None] + 3 - k[None, :]], ext[idx[:, None] + 4 + k[None, :]]

        return self.boundary(ext[3 : L + 4], ext[4 : L + 5], rows)

    def opens_with_break(self, first_ids: np.ndarray) -> np.ndarray:
        """Does a text that starts with each of these tokens start with a complete non-word
        character? Then its left edge is a boundary wherever it occurs."""
        ids = np.asarray(first_ids, dtype=np.int64)
        ok = (ids >= 0) & (ids < len(self.classes))
        return ok & (self.head_class[np.where(ok, ids, 0)] == BEGINS)

    def closes_with_break(self, last_ids: np.ndarray) -> np.ndarray:
        """Does a text that ends with each of these tokens end with a complete non-word
        character? Then its right edge is a boundary wherever it occurs."""
        ids = np.asarray(last_ids, dtype=np.int64)
        ok = (ids >= 0) & (ids < len(self.classes))
        return ok & (self.tail_class[np.where(ok, ids, 0)] == BEGINS)

    def begins_at(self, following: np.ndarray) -> np.ndarray:
        """For rows of token ids (-1: the text ends there), does the first character begin a word
        (it is not a word character; an empty row, a document end, and a broken character are
        boundaries; a row that starts inside a character is not)?"""
        return self.first_char(following)[0]

    def first_char(self, following: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row of token ids (-1: the text ends there): `begins_at`, and whether the first
        character is complete within the row.

        Fully vectorised: the first four bytes of each row's concatenation are gathered, the first
        character decoded."""
        mat = np.asarray(following, dtype=np.int64)
        m = len(mat)
        if m == 0:
            z = np.zeros(0, dtype=bool)
            return z, z
        first, have = self._first_bytes(mat, self.head)
        b0 = first[:, 0]
        n = np.select([b0 < 0x80, b0 < 0xC0, b0 < 0xE0, b0 < 0xF0, b0 < 0xF8], [1, 0, 2, 3, 4], -1)
        cont_ok = np.ones(m, dtype=bool)
        for j in (1, 2, 3):
            need = n > j
            bj = first[:, j]
            cont_ok &= ~need | ((bj & 0xC0) == 0x80)
        lead_bits = np.select([n == 2, n == 3, n == 4], [b0 & 0x1F, b0 & 0x0F, b0 & 0x07], b0)
        cp = lead_bits
        for j in (1, 2, 3):
            cp = np.where(n > j, (cp << 6) | (first[:, j] & 0x3F), cp)
        decodable = (have > 0) & (n >= 1) & (have >= n) & cont_ok
        out = self._not_word(cp, decodable)
        out[(have > 0) & (n == 0)] = False  # starts inside a character
        return out, decodable


__all__ = ["WordBoundaries", "classify_bytes", "is_word_char", "CONTINUES", "BEGINS", "UNSURE"]
