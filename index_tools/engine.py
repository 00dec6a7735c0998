"""Query engine over memory-mapped infini-gram v4 shards.

All searches are lock-step binary searches over a *batch* of queries: every step gathers the
probed suffix-array entries and compares their tokens with the queries in numpy, so the cost per
step is a handful of vectorised operations, whatever the number of queries. Tokens are compared
through their byte-swapped value (the file viewed big-endian), which orders exactly as memcmp
of the little-endian bytes -- the order infini-gram sorts in.
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import IndexFormatError, IndexToolsError, TokenizerError
from .format import (
    MANIFEST_NAME,
    TOKEN_DTYPES,
    TOKENIZER_NAME,
    Manifest,
    pointer_width,
    read_manifest,
    read_unigrams,
    separator_id,
    shard_file,
)
from .mapping import Buffer, map_file, read_uint
from .normalize import ORIGINAL_KEY, for_manifest
from .tokenizer import Tokenizer, load_tokenizer
from .word_ends import KeyRuns, whole_word_at, word_intervals
from .word_ends import word_counts as shard_word_counts

if TYPE_CHECKING:
    pass

QUERY_END = -1  # a query that runs out: compares as "prefix of the suffix"
SUFFIX_END = -2  # a suffix that runs out at the end of the file: sorts before everything
#: QUERY_END for `np.where` next to an unsigned query buffer (the shard's own keys, as
#: `compare_suffixes` passes) must be a numpy int64 (`np.int64(QUERY_END)`): a Python -1 would be
#: cast to that unsigned type under NumPy 2 and wrap to the separator's key; a numpy scalar
#: promotes to int64 instead. Searches pass int64 keys and keep the Python int, which `np.where`
#: takes faster (0.5 us a call in the loop).
#: token width in bytes -> the `array` type code of one token
_ARRAY_CODES = {1: "B", 2: "H", 4: "I"}
_FIRST_CHUNK = 8
_MAX_CELLS = 1 << 21  # elements per temporary array in _compare (16 MB of int64)


def _array(buf: Buffer) -> np.ndarray:
    """A read-only uint8 view of a mapped file (the map is read-only: a write would fault)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    arr.flags.writeable = False
    return arr


@dataclass
class Hit:
    """One occurrence: where it is and what surrounds it."""

    shard: int
    rank: int
    pointer: int  # byte offset in tokenized.N
    doc: int  # document index within the shard
    doc_start: int  # token index of the document's first token (after the separator)
    doc_end: int  # token index one past its last token
    token: int  # token index of the match start


class Shard:
    """One shard's files, memory-mapped; validated cheaply on open."""

    def __init__(self, directory: Path, n: int, width: int, expected: Any | None = None) -> None:
        """Map and check the files; no numpy here (the arrays over the maps are made on first
        use), so a one-shot substring count opens a shard without importing it."""
        self.directory, self.n, self.width = directory, n, width
        paths = {k: shard_file(directory, k, n) for k in ("tokenized", "table", "offset")}
        for kind, p in paths.items():
            if not p.exists():
                raise IndexFormatError(f"{p}: missing {kind} file")
        #: the maps themselves (`index_tools.mapping`): slices are bytes, for the scalar search
        self._tok_buf: Buffer = map_file(paths["tokenized"])
        self.tokenized_bytes = len(self._tok_buf)
        if self.tokenized_bytes % width:
            raise IndexFormatError(f"{paths['tokenized']}: size {self.tokenized_bytes} is not a multiple of {width}")
        self.n_tokens = self.tokenized_bytes // width
        self.per_pack = 8 // width
        if self.n_tokens == 0:
            raise IndexFormatError(f"{paths['tokenized']}: empty token file")
        self._table_buf: Buffer = map_file(paths["table"])
        table_bytes = len(self._table_buf)
        if table_bytes % self.n_tokens:
            raise IndexFormatError(f"{paths['table']}: size {table_bytes} does not match {self.n_tokens} tokens (truncated?)")
        self.ptr_width = table_bytes // self.n_tokens
        if self.ptr_width != pointer_width(self.tokenized_bytes):
            raise IndexFormatError(
                f"{paths['table']}: {self.ptr_width}-byte entries, expected {pointer_width(self.tokenized_bytes)} "
                f"for {self.tokenized_bytes} bytes of tokens (truncated or from another index?)")
        self._off_buf: Buffer = map_file(paths["offset"])
        if len(self._off_buf) % 8 or len(self._off_buf) == 0:
            raise IndexFormatError(f"{paths['offset']}: size {len(self._off_buf)} is not a positive multiple of 8")
        self.n_docs = len(self._off_buf) // 8
        if read_uint(self._off_buf, 0, 8) != 0 or read_uint(self._off_buf, len(self._off_buf) - 8, 8) >= self.tokenized_bytes:
            raise IndexFormatError(f"{paths['offset']}: offsets do not fit {paths['tokenized']}")
        if expected is not None:
            for path, what, got, want in (
                (paths["tokenized"], "bytes", self.tokenized_bytes, expected.tokenized_bytes),
                (paths["tokenized"], "tokens", self.n_tokens, expected.tokens),
                (paths["table"], "bytes", table_bytes, expected.table_bytes),
                (paths["table"], "-byte pointers", self.ptr_width, expected.pointer_width),
                (paths["offset"], "documents", self.n_docs, expected.documents),
            ):
                if got != want:
                    raise IndexFormatError(
                        f"{path}: {got}{'' if what.startswith('-') else ' '}{what}, but {MANIFEST_NAME} records "
                        f"{want} (truncated, extended or replaced?)")
        meta, metaoff = shard_file(directory, "metadata", n), shard_file(directory, "metaoff", n)
        self._meta_buf: Buffer | None = map_file(meta) if meta.exists() else None
        self._metaoff_buf: Buffer | None = map_file(metaoff) if metaoff.exists() and self._meta_buf is not None else None
        if self._metaoff_buf is not None and len(self._metaoff_buf) != 8 * self.n_docs:
            raise IndexFormatError(f"{metaoff}: {len(self._metaoff_buf) // 8} entries for {self.n_docs} documents")
        self._first: np.ndarray | None = None
        #: what the layers above keep per shard for its lifetime (word ends' left-edge bits,
        #: how much a shard has been scanned without them): named slots here rather than
        #: attributes set on the shard from outside; emptied at `close`
        self.memo: dict[str, Any] = {}

    # -- the arrays over the maps, made on first use ----------------------------------------
    @cached_property
    def keys(self) -> np.ndarray:
        """Sort keys (the tokens byte-swapped: they order as memcmp of the file's bytes)."""
        return _array(self._tok_buf).view(TOKEN_DTYPES[self.width][1])

    @cached_property
    def ids(self) -> np.ndarray:
        """Token ids."""
        return _array(self._tok_buf).view(TOKEN_DTYPES[self.width][0])

    @cached_property
    def packed(self) -> np.ndarray:
        """The 8 bytes from every token position, read big-endian: one gather compares the first
        8 // width tokens of a suffix in memcmp order (positions too close to the end excluded)."""
        raw = _array(self._tok_buf)
        n_pack = max(0, (len(raw) - 8) // self.width + 1)
        return np.ndarray(shape=(n_pack,), dtype=">u8", buffer=raw, offset=0, strides=(self.width,))

    @cached_property
    def _table32(self) -> np.ndarray | None:
        """The suffix table as integers, where its entries have a numpy width (else `_table`)."""
        return _array(self._table_buf).view(f"<u{self.ptr_width}") if self.ptr_width in (1, 2, 4, 8) else None

    @cached_property
    def _table(self) -> np.ndarray:
        """The suffix table as rows of `ptr_width` bytes."""
        return _array(self._table_buf).reshape(-1, self.ptr_width)

    @cached_property
    def offsets(self) -> np.ndarray:
        """Byte offset of every document's separator."""
        return _array(self._off_buf).view("<u8")

    @cached_property
    def doc_token_starts(self) -> np.ndarray:
        """Token position of every document's separator."""
        return self.offsets.astype(np.int64) // self.width

    @cached_property
    def metadata(self) -> np.ndarray | None:
        return None if self._meta_buf is None else _array(self._meta_buf)

    @cached_property
    def metaoff(self) -> np.ndarray | None:
        return None if self._metaoff_buf is None else _array(self._metaoff_buf).view("<u8")

    def close(self) -> None:
        """Unmap the shard's files. Every array over a map is dropped: a map with a live numpy
        view cannot be closed, and once nothing refers to it, it is freed with the file
        descriptor it holds (one per mapped file)."""
        for name in ("keys", "ids", "packed", "_table32", "_table", "offsets", "doc_token_starts", "metadata",
                     "metaoff", "_tok_buf", "_table_buf", "_off_buf", "_meta_buf", "_metaoff_buf", "_first"):
            if hasattr(self, name):
                setattr(self, name, None)
        self.memo.clear()

    # -- suffix array access -------------------------------------------------------------
    def sa_tokens(self, ranks: np.ndarray) -> np.ndarray:
        """Token positions of the suffixes at `ranks` (the stored byte offsets, floored)."""
        return self.sa_pointers(ranks) // self.width

    def sa_pointers(self, ranks: np.ndarray) -> np.ndarray:
        """Byte offsets into the token file stored at `ranks`, as they are on disk.

        `sa_tokens` floors them to token positions, which is all a search needs; a check of the
        table (`verify`) needs the raw entry, since an entry between two tokens is a fault.
        """
        if self._table32 is not None:
            return self._table32[ranks].astype(np.int64)
        rows = self._table[ranks].astype(np.int64)
        ptr = np.zeros(len(ranks), dtype=np.int64)
        for k in range(self.ptr_width):
            ptr |= rows[:, k] << (8 * k)
        return ptr

    def compare_suffixes(self, pos: np.ndarray, other: np.ndarray) -> np.ndarray:
        """Order of the suffixes at token positions `pos` against those at `other`, pairwise:
        -1 where the first sorts before the second (the order the suffix table must hold for
        adjacent ranks), 0 where the second is a prefix of the first, +1 where it sorts after.

        The search's own comparison (`_compare`), with the shard's tokens as the queries, so a
        check of the table's order uses exactly the order the searches rely on.
        """
        other = np.asarray(other, dtype=np.int64)
        sign, _ = self._compare(np.asarray(pos, dtype=np.int64), self.keys, other, self.n_tokens - other,
                                np.int64(QUERY_END))
        return sign

    def _compare(self, pos: np.ndarray, qbuf: np.ndarray, qstart: np.ndarray, qlen: np.ndarray,
                 end: int | np.int64 = QUERY_END) -> tuple[np.ndarray, np.ndarray]:
        """Compare suffixes at token positions `pos` with queries qbuf[qstart : qstart+qlen].

        Returns (sign, lcp): sign is -1 if suffix < query, 0 if the query is a prefix of the
        suffix, +1 otherwise; lcp is the common prefix length in tokens. `end` marks where a
        query has run out: `np.int64(QUERY_END)` when `qbuf` is unsigned (see `QUERY_END`).
        """
        m = len(pos)
        sign = np.zeros(m, dtype=np.int8)
        lcp = np.zeros(m, dtype=np.int64)
        active = np.arange(m)
        j0 = 0
        chunk = _FIRST_CHUNK
        n_tok = self.n_tokens
        while len(active):
            j = np.arange(j0, j0 + chunk)
            sp = pos[active, None] + j[None, :]
            s = self.keys[np.minimum(sp, n_tok - 1)].astype(np.int64)
            s[sp >= n_tok] = SUFFIX_END
            qi = qstart[active, None] + j[None, :]
            q = np.where(j[None, :] < qlen[active, None], qbuf[np.minimum(qi, len(qbuf) - 1)], end)
            stop = (s != q) | (q == QUERY_END)
            any_stop = stop.any(axis=1)
            first = stop.argmax(axis=1)
            done = active[any_stop]
            f = first[any_stop]
            rows = np.flatnonzero(any_stop)
            sv = s[rows, f]
            qv = q[rows, f]
            sign[done] = np.where(qv == QUERY_END, 0, np.where(sv < qv, -1, 1))
            lcp[done] = j0 + f
            active = active[~any_stop]
            j0 += chunk
            # widen the window, but keep rows x window bounded: long matches over many rows
            # (a repetitive text) would otherwise allocate gigabytes of temporaries
            chunk = max(_FIRST_CHUNK, min(chunk * 4, 4096, _MAX_CELLS // max(1, len(active))))
        return sign, lcp

    def _pack_queries(self, qbuf: np.ndarray, qstart: np.ndarray, qlen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each query's first 8 // width tokens packed as `packed` packs a suffix, and the mask of
        the bits that belong to the query (a shorter query compares only its own tokens)."""
        per, bits = self.per_pack, 8 * self.width
        j = np.arange(per)
        idx = np.minimum(qstart[:, None] + j[None, :], len(qbuf) - 1)
        inside = j[None, :] < qlen[:, None]
        tok = np.where(inside, qbuf[idx], 0).astype(np.uint64)
        shifts = (bits * (per - 1 - j)).astype(np.uint64)
        qpack = np.bitwise_or.reduce(tok << shifts[None, :], axis=1)
        ones = np.uint64(0xFFFFFFFFFFFFFFFF)
        keep = np.minimum(qlen, per).astype(np.uint64)
        mask = np.where(keep >= per, ones, ~(ones >> (keep * np.uint64(bits))))
        return qpack, mask

    def _bound(self, qbuf: np.ndarray, qstart: np.ndarray, qlen: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               upper: bool | np.ndarray) -> np.ndarray:
        """Lock-step binary search: first rank whose suffix compares >= (or >, where `upper`) the
        query. `upper` may differ per query, so both ends of many ranges are one search.

        Each round is a few whole-array operations: one gather of suffix-array entries, one of
        8-byte packed suffixes, two comparisons; rows that tie on the packed tokens (or sit too
        near the end of the file) take the general `_compare`. Finished rows are carried along
        (masked) and dropped only when they are the majority: fewer operations per round.
        """
        out = lo.copy()
        if len(self.packed) == 0 or self._table32 is None:
            return self._bound_general(qbuf, qstart, qlen, lo, hi, upper)
        up = np.broadcast_to(np.asarray(upper, dtype=bool), lo.shape)
        qpack, qmask = self._pack_queries(qbuf, qstart, qlen)
        idx = np.flatnonzero(lo < hi)
        a_lo, a_hi, a_up = lo[idx], hi[idx], up[idx]
        a_qp, a_qm, a_qs, a_ql = qpack[idx], qmask[idx], qstart[idx], qlen[idx]
        per, n_pack, width = self.per_pack, len(self.packed), self.width
        long_q = a_ql > per
        while len(idx):
            live = a_lo < a_hi
            mid = (a_lo + a_hi) >> 1
            pos = self._table32[mid].astype(np.int64) // width
            spack = self.packed[np.minimum(pos, n_pack - 1)].astype(np.uint64) & a_qm
            lt = spack < a_qp
            go = lt | (a_up & (spack <= a_qp))
            hard = ((spack == a_qp) & long_q) | (pos >= n_pack)
            if hard.any():
                h = np.flatnonzero(hard & live)
                if len(h):
                    sign, _ = self._compare(pos[h], qbuf, a_qs[h], a_ql[h])
                    go[h] = np.where(a_up[h], sign <= 0, sign < 0)
            a_lo = np.where(go & live, mid + 1, a_lo)
            a_hi = np.where(~go & live, mid, a_hi)
            live = a_lo < a_hi
            n_live = int(np.count_nonzero(live))
            if n_live * 2 < len(idx):
                out[idx] = a_lo
                if n_live == 0:
                    break
                keep = np.flatnonzero(live)
                idx, a_lo, a_hi, a_up = idx[keep], a_lo[keep], a_hi[keep], a_up[keep]
                a_qp, a_qm, a_qs, a_ql, long_q = a_qp[keep], a_qm[keep], a_qs[keep], a_ql[keep], long_q[keep]
        out[idx] = a_lo
        return out

    def _bound_general(self, qbuf: np.ndarray, qstart: np.ndarray, qlen: np.ndarray, lo: np.ndarray,
                       hi: np.ndarray, upper: bool | np.ndarray) -> np.ndarray:
        """`_bound` for shards too small to pack or with odd pointer widths."""
        lo, hi = lo.copy(), hi.copy()
        up = np.broadcast_to(np.asarray(upper, dtype=bool), lo.shape)
        act = np.flatnonzero(lo < hi)
        while len(act):
            mid = (lo[act] + hi[act]) // 2
            sign, _ = self._compare(self.sa_tokens(mid), qbuf, qstart[act], qlen[act])
            go_right = np.where(up[act], sign <= 0, sign < 0)
            lo[act] = np.where(go_right, mid + 1, lo[act])
            hi[act] = np.where(go_right, hi[act], mid)
            act = act[lo[act] < hi[act]]
        return lo

    def first_token_ranges(self) -> np.ndarray | None:
        """Rank bounds per first token (size vocab+1), computed once: narrows every search."""
        if self._first is None:
            vocab = 1 << (8 * self.width)
            if vocab > (1 << 20):
                return None
            from_unigrams = self._first_from_unigrams(vocab)
            if from_unigrams is not None:
                self._first = from_unigrams
                return self._first
            keys = np.arange(vocab + 1, dtype=np.int64)
            keys[-1] = vocab  # sentinel larger than any key
            qstart = np.arange(vocab + 1, dtype=np.int64)
            qlen = np.ones(vocab + 1, dtype=np.int64)
            lo = np.zeros(vocab + 1, dtype=np.int64)
            hi = np.full(vocab + 1, self.n_tokens, dtype=np.int64)
            self._first = self._bound(keys, qstart, qlen, lo, hi, upper=False)
        return self._first

    def unigram_table(self) -> np.ndarray | None:
        """unigram.N as `read_unigrams` gives it, read once per shard (the first-token table and
        the unigram counts both start from it); None when the shard has no such file."""
        if "unigrams" not in self.memo:
            path = shard_file(self.directory, "unigram", self.n)
            self.memo["unigrams"] = read_unigrams(path) if path.exists() else None
        table: np.ndarray | None = self.memo["unigrams"]
        return table

    def _first_from_unigrams(self, vocab: int) -> np.ndarray | None:
        """The same table from unigram.N in O(vocabulary): suffixes sort by their first token,
        so the bucket of key k starts at the count of all tokens with smaller keys. Every bucket
        boundary is then checked against the suffix array itself, so a wrong file is never used."""
        try:
            table = self.unigram_table()
        except (OSError, IndexFormatError):
            return None
        if table is None:
            return None
        if len(table) == 0 or table[:, 0].min() < 0 or table[:, 0].max() >= vocab or table[:, 1].min() <= 0:
            return None
        ids = table[:, 0]
        keys = ids if self.width == 1 else ids.astype(TOKEN_DTYPES[self.width][0]).byteswap().astype(np.int64)
        by_key = np.zeros(vocab, dtype=np.int64)
        np.add.at(by_key, keys, table[:, 1])
        first = np.concatenate([[0], np.cumsum(by_key)])
        if first[-1] != self.n_tokens:
            return None
        present = np.flatnonzero(by_key)
        starts = first[present]
        if np.any(self.keys[self.sa_tokens(starts)] != present):
            return None
        inner = starts > 0
        if np.any(self.keys[self.sa_tokens(starts[inner] - 1)] >= present[inner]):
            return None
        return first

    def _initial_bounds(self, qbuf: np.ndarray, qstart: np.ndarray, qlen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = len(qstart)
        # the first-token table costs one batched search over the vocabulary: only worth it
        # for large batches (it is then computed once per shard and reused)
        first = self.first_token_ranges() if m >= 64 else None
        if first is None:
            return np.zeros(m, dtype=np.int64), np.full(m, self.n_tokens, dtype=np.int64)
        k = np.where(qlen > 0, qbuf[np.minimum(qstart, len(qbuf) - 1)], 0)
        return first[k], first[k + 1]

    def find_one(self, query: bytes) -> tuple[int, int]:
        """[lo, hi) of one query given as little-endian token bytes.

        A scalar binary search: each step is one C-level memcmp of a slice of the memory map
        (bytes comparison is exactly the index order), which beats numpy's per-call overhead
        when there is only one query.
        """
        tok, table, pw = self._tok_buf, self._table_buf, self.ptr_width
        n, L = self.n_tokens, len(query)
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi) >> 1
            p = int.from_bytes(table[mid * pw : mid * pw + pw], "little")
            if tok[p : p + L] < query:
                lo = mid + 1
            else:
                hi = mid
        start, hi = lo, n
        while lo < hi:
            mid = (lo + hi) >> 1
            p = int.from_bytes(table[mid * pw : mid * pw + pw], "little")
            if tok[p : p + L] <= query:
                lo = mid + 1
            else:
                hi = mid
        return start, lo

    def find_many(self, qbuf: np.ndarray, qstart: np.ndarray, qlen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) suffix-array ranges of every query (key sequences in qbuf)."""
        lo0, hi0 = self._initial_bounds(qbuf, qstart, qlen)
        m = len(qstart)
        # both ends in one lock-step search (half the rounds of searching one end after the other)
        both = self._bound(qbuf, np.tile(qstart, 2), np.tile(qlen, 2), np.tile(lo0, 2), np.tile(hi0, 2),
                           upper=np.repeat([False, True], m))
        return both[:m], both[m:]

    def longest_prefix(self, qbuf: np.ndarray, qstart: np.ndarray, qlen: np.ndarray,
                       word_end: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per query, the length of its longest prefix that occurs in this shard, and whether a
        neighbour with that match is followed by a word start there (`word_end(ranks, m)`; all
        False without it): a free witness that the longest match occurs as whole words."""
        lo0, hi0 = self._initial_bounds(qbuf, qstart, qlen)
        rank = self._bound(qbuf, qstart, qlen, lo0, hi0, upper=False)
        best = np.zeros(len(qstart), dtype=np.int64)
        ends = np.zeros(len(qstart), dtype=bool)
        for nb in (rank - 1, rank):
            ok = np.flatnonzero((nb >= 0) & (nb < self.n_tokens))
            if len(ok):
                _, lcp = self._compare(self.sa_tokens(nb[ok]), qbuf, qstart[ok], qlen[ok])
                if word_end is not None:
                    e = word_end(nb[ok], lcp) & (lcp > 0)
                    longer = lcp > best[ok]
                    ends[ok] = np.where(longer, e, ends[ok] | (e & (lcp == best[ok])))
                best[ok] = np.maximum(best[ok], lcp)
        return best, ends

    # -- documents ----------------------------------------------------------------------------
    def hit(self, rank: int) -> Hit:
        tok = int(self.sa_tokens(np.array([rank], dtype=np.int64))[0])
        doc = int(np.searchsorted(self.doc_token_starts, tok, side="right")) - 1
        start = int(self.doc_token_starts[doc]) + 1
        end = int(self.doc_token_starts[doc + 1]) if doc + 1 < self.n_docs else self.n_tokens
        return Hit(self.n, rank, tok * self.width, doc, start, end, tok)

    def doc_bounds(self, doc: int) -> tuple[int, int]:
        start = int(self.doc_token_starts[doc]) + 1
        end = int(self.doc_token_starts[doc + 1]) if doc + 1 < self.n_docs else self.n_tokens
        return start, end

    def doc_metadata(self, doc: int) -> dict[str, Any]:
        if self.metadata is None or self.metaoff is None:
            return {}
        a = int(self.metaoff[doc])
        b = int(self.metaoff[doc + 1]) if doc + 1 < self.n_docs else len(self.metadata)
        raw = bytes(self.metadata[a:b]).rstrip(b"\n")
        try:
            data = json.loads(raw.decode("utf-8", errors="replace"))
        except json.JSONDecodeError:
            return {"raw": raw.decode("utf-8", errors="replace")}
        return data if isinstance(data, dict) else {"value": data}

    def token_ids(self, start: int, end: int) -> np.ndarray:
        return np.asarray(self.ids[start:end], dtype=np.int64)


@dataclass
class Window:
    """A stretch of a document around a match, with the match's place inside it."""

    tokens: np.ndarray
    match_start: int  # offsets of the match in `tokens`
    match_end: int
    doc_start: int  # token index in the shard of tokens[0]
    truncated_left: bool
    truncated_right: bool


@dataclass
class Occurrence:
    """One sampled occurrence with what the tracer shows of it: its document and the windows
    around it (one per context size asked for)."""

    hit: Hit
    doc_id: int  # global document id (as `global_doc_id`)
    metadata: dict[str, Any]
    windows: list[Window]


class DocumentIds:
    """Global document ids over shards: shard k's documents follow those of shards 0..k-1. One
    definition for a local index and a served one (`_doc_base`: cumulative documents per shard)."""

    _doc_base: list[int]

    def global_doc_id(self, shard: int, doc: int) -> int:
        return int(self._doc_base[shard] + doc)

    def locate_doc(self, global_id: int) -> tuple[int, int]:
        if not 0 <= global_id < int(self._doc_base[-1]):
            raise IndexError(f"document {global_id} out of range (0..{int(self._doc_base[-1]) - 1})")
        shard = bisect_right(self._doc_base, global_id) - 1
        return shard, global_id - int(self._doc_base[shard])


class RangeCounts:
    """The batched counts of every kind of index, from its suffix-array ranges: one definition
    of `count_many` (substrings) and `count_words_many` (whole words at both edges) over the
    `find_ranges` and `word_counts` each kind implements."""

    def find_ranges(self, seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def word_counts(self, lo: np.ndarray, hi: np.ndarray, m: np.ndarray, cap: int | None = None) -> np.ndarray:
        raise NotImplementedError

    def count_many(self, seqs: list[np.ndarray]) -> np.ndarray:
        """`count` of many sequences in one batched search."""
        lo, hi = self.find_ranges(seqs)
        return (hi - lo).sum(axis=0)

    def count_words_many(self, seqs: list[np.ndarray], cap: int | None = None) -> np.ndarray:
        """`count_words` of many sequences in one batched search (`cap`: see `word_counts`)."""
        lo, hi = self.find_ranges(seqs)
        return self.word_counts(lo, hi, np.array([len(s) for s in seqs], dtype=np.int64), cap)


class Index(RangeCounts, DocumentIds):
    """An index directory: manifest, tokenizer and shards. Open with `Index.open`."""

    def __init__(self, directory: Path, manifest: Manifest, tokenizer: Tokenizer, shards: list[Shard]) -> None:
        self.directory = directory
        self.manifest = manifest
        self.tokenizer = tokenizer
        self._shards: list[Shard] | None = shards
        self.width = manifest.token_width
        self.name = directory.name
        self._doc_base = list(accumulate((s.n_docs for s in shards), initial=0))
        self._unigram: np.ndarray | None = None
        self._runs: KeyRuns | None = None

    @classmethod
    def open(cls, directory: str | Path) -> Index:
        d = Path(directory)
        if not d.is_dir():
            raise IndexFormatError(f"{d}: not a directory")
        manifest = read_manifest(d)
        if manifest is None:
            hint = " (an infini-gram index? run `tracetui index adopt` on it first)" if (d / "table.0").exists() else ""
            raise IndexFormatError(f"{d}: not a tracetui index: no valid manifest{hint}")
        width = manifest.token_width
        _check_sizes(d, manifest)
        if manifest.tokenizer == "bytes":
            tokenizer: Tokenizer = load_tokenizer("bytes")
        else:
            tpath = d / manifest.tokenizer
            tokenizer = load_tokenizer(tpath)
        if tokenizer.vocab_size != manifest.vocab_size:
            raise TokenizerError(
                f"{d}: tokenizer has {tokenizer.vocab_size} tokens but the index was built with {manifest.vocab_size}"
            )
        if tokenizer.vocab_size > separator_id(width):
            raise TokenizerError(f"{d}: tokenizer vocabulary does not fit {8 * width}-bit tokens")
        tokenizer = for_manifest(tokenizer, manifest.build)  # a normalized index normalizes queries
        shards = [Shard(d, n, width, info) for n, info in enumerate(manifest.shards)]
        if not shards:
            raise IndexFormatError(f"{d}: manifest lists no shards")
        return cls(d, manifest, tokenizer, shards)

    def close(self) -> None:
        """Release the shards' maps (see `Shard.close`); the index answers nothing after."""
        for shard in self._shards or []:
            shard.close()
        self._shards = None
        self._runs = None
        self._unigram = None

    @property
    def shards(self) -> list[Shard]:
        """The shards; a closed index has none, and any query that reaches for them is one clear
        error, never an empty answer that reads as "not in the corpus"."""
        if self._shards is None:
            raise IndexToolsError(f"index {self.name} is closed")
        return self._shards

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @cached_property
    def fingerprint(self) -> str:
        """Identity of the index contents: a digest of its manifest (sizes and file digests), so
        results saved against it are reused only while it is the same index."""
        return hashlib.sha256(self.manifest.to_json().encode("utf-8")).hexdigest()[:16]

    # -- keys ---------------------------------------------------------------------------------
    def keys_of(self, ids: np.ndarray) -> np.ndarray:
        """Sort keys of token ids (byte-swapped to match memcmp order)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.width == 1:
            return ids
        return ids.astype(TOKEN_DTYPES[self.width][0]).byteswap().astype(np.int64)

    def encode(self, text: str) -> np.ndarray:
        return self.tokenizer.encode(text)

    # -- queries ------------------------------------------------------------------------------
    def _query(self, ids: np.ndarray | Sequence[int]) -> bytes:
        """A token sequence as the little-endian bytes of the token file (what `Shard.find_one`
        compares with): through `array`, so a list of ids needs no numpy."""
        q = array(_ARRAY_CODES[self.width], ids)  # numpy integers convert through __index__
        if sys.byteorder != "little":
            q.byteswap()
        return q.tobytes()

    def find(self, ids: np.ndarray | Sequence[int]) -> list[tuple[int, int]]:
        """Suffix-array range [lo, hi) per shard of the token sequence."""
        if len(ids) == 0:
            return [(0, s.n_tokens) for s in self.shards]
        q = self._query(ids)
        return [s.find_one(q) for s in self.shards]

    def find_many(self, seqs: list[np.ndarray]) -> list[list[tuple[int, int]]]:
        """Per shard, the [lo, hi) ranges of every sequence: result[shard][i]."""
        qbuf, qstart, qlen = self._pack(seqs)
        out = []
        for shard in self.shards:
            lo, hi = shard.find_many(qbuf, qstart, qlen)
            out.append(list(zip(lo.tolist(), hi.tolist(), strict=True)))
        return out

    def count(self, ids: np.ndarray | Sequence[int]) -> int:
        """Occurrences of a token sequence as a substring (`count_words`: as whole words). A list
        of ids is counted without numpy (one scalar search per shard)."""
        return sum(hi - lo for lo, hi in self.find(ids))

    def find_ranges(self, seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Suffix-array ranges of many sequences: (lo, hi), each of shape (shards, sequences)."""
        qbuf, qstart, qlen = self._pack(seqs)
        los, his = [], []
        for shard in self.shards:
            lo, hi = shard.find_many(qbuf, qstart, qlen)
            los.append(lo)
            his.append(hi)
        return np.array(los, dtype=np.int64).reshape(len(self.shards), -1), np.array(his, dtype=np.int64).reshape(len(self.shards), -1)

    def word_counts(self, lo: np.ndarray, hi: np.ndarray, m: np.ndarray, cap: int | None = None) -> np.ndarray:
        """Whole-word counts of sequences of lengths m from their ranges (as `find_ranges` gives).

        With a `cap`, each count is exact up to `cap` and reported as cap + 1 beyond: that reads
        about cap occurrences, where an exact count of a very frequent sequence has to visit every
        change of class among its following tokens (`index_tools.word_ends`)."""
        n = lo.shape[1]
        total = np.zeros(n, dtype=np.int64)
        words, runs = self.tokenizer.word_boundaries(), self.word_runs()
        for k, shard in enumerate(self.shards):
            if cap is None:
                total += shard_word_counts(shard, runs, words, lo[k], hi[k], m, None)
                continue
            left = np.maximum(cap - total, 0)  # what the earlier shards have not reached yet
            sel = np.flatnonzero(total <= cap)
            for c in np.unique(left[sel]):  # one walk per distinct remaining cap
                part = sel[left[sel] == c]
                total[part] += shard_word_counts(shard, runs, words, lo[k][part], hi[k][part], m[part], int(c))
            total = np.minimum(total, cap + 1)
        return total

    def find_words(self, ids: np.ndarray) -> list[list[tuple[int, int]]]:
        """Per shard, the rank intervals of the occurrences of `ids` that are whole words at both
        edges (`index_tools.word_ends`: a few range tests where the sequence's own first or last
        character settles an edge, a scan of the range where it does not)."""
        out: list[list[tuple[int, int]]] = [[] for _ in self.shards]
        for k, a, b in self.find_words_many([np.asarray(ids, dtype=np.int64)])[0]:
            out[k].append((a, b))
        return out

    def word_occurrences(self, ids: np.ndarray, chunk: int = 1 << 18) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (shard, ranks) chunks, in suffix-array order, of the whole-word occurrences of
        a text query (as `find_words`)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        yield from rank_chunks(self.find_words(ids), chunk)

    def count_words(self, ids: np.ndarray | Sequence[int]) -> int:
        """Occurrences of a token sequence that are whole words at both edges (the rule of
        `index_tools.words`; `count`: every occurrence)."""
        if len(ids) == 0:
            return int(sum(s.n_tokens for s in self.shards))
        return int(self.count_words_many([np.asarray(ids, dtype=np.int64)])[0])

    def find_words_many(self, seqs: list[np.ndarray]) -> list[list[tuple[int, int, int]]]:
        """`find_words` of many sequences in one batched search: per sequence, its (shard, first
        rank, end rank) runs of whole-word occurrences, in shard then rank order."""
        if not seqs:
            return []
        lo, hi = self.find_ranges(seqs)
        return self.find_words_in_ranges(lo, hi, np.array([len(s) for s in seqs], dtype=np.int64))

    def find_words_in_ranges(self, lo: np.ndarray, hi: np.ndarray, m: np.ndarray) -> list[list[tuple[int, int, int]]]:
        """`find_words_many` from the sequences' ranges (as `find_ranges` gives them) and
        lengths: for a caller that has searched them already (the server checks a request's cost
        on them first)."""
        out: list[list[tuple[int, int, int]]] = [[] for _ in range(len(m))]
        for k, shard in enumerate(self.shards):
            q, a, b = self._word_ends(shard, lo[k], hi[k], m)
            for qi, ai, bi in zip(q.tolist(), a.tolist(), b.tolist(), strict=True):
                out[qi].append((k, ai, bi))
        return out

    def word_runs(self) -> KeyRuns:
        if self._runs is None:
            self._runs = KeyRuns(self.tokenizer.word_boundaries(), self.keys_of,
                                 int(self.keys_of(np.array([separator_id(self.width)]))[0]))
        return self._runs

    def _word_ends(self, shard: Shard, lo: np.ndarray, hi: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, ...]:
        return word_intervals(shard, self.word_runs(), self.tokenizer.word_boundaries(), lo, hi, m)

    def longest_prefixes(self, ids: np.ndarray, positions: np.ndarray | None = None,
                         stops: np.ndarray | None = None) -> np.ndarray:
        """For each start position l, the longest n such that ids[l:l+n] occurs in the corpus.

        One lock-step binary search over all positions at once, with the whole remaining
        sequence as the query, then the LCP with the two neighbours at the insertion point.
        `stops` (per position) ends each match there: many texts laid end to end are searched in
        one batch, none matching into the next.
        """
        return self._longest_prefixes(ids, positions, False, stops)[0]

    def longest_prefixes_witnessed(self, ids: np.ndarray, positions: np.ndarray | None = None,
                                   stops: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`longest_prefixes`, and per position whether one of the neighbours the search read
        shows a whole-word occurrence of that longest match (both its edges word boundaries):
        then no search is needed to know one exists."""
        return self._longest_prefixes(ids, positions, True, stops)

    def _longest_prefixes(self, ids: np.ndarray, positions: np.ndarray | None, word_ends: bool,
                          stops: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, dtype=np.int64)
        L = len(ids)
        if positions is None:
            positions = np.arange(L, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.int64)
        best = np.zeros(len(positions), dtype=np.int64)
        ends = np.zeros(len(positions), dtype=bool)
        if L and len(positions):
            qbuf = self.keys_of(ids)
            qlen = (L if stops is None else np.minimum(np.asarray(stops, dtype=np.int64), L)) - positions
            for shard in self.shards:
                check = None
                if word_ends:
                    def check(ranks: np.ndarray, m: np.ndarray, shard: Shard = shard) -> np.ndarray:
                        return whole_word_at(shard, self.tokenizer.word_boundaries(), ranks, m)
                got, e = shard.longest_prefix(qbuf, positions, qlen, check)
                ends = np.where(got > best, e, ends | (e & (got == best)))
                best = np.maximum(best, got)
        return best, ends

    def _pack(self, seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lens = np.array([len(s) for s in seqs], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        # one key conversion for all: per-sequence calls cost more than the search for short ones
        joined = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs] + [np.zeros(1, dtype=np.int64)])
        return self.keys_of(joined), starts, lens

    # -- unigrams -----------------------------------------------------------------------------
    def unigram_counts(self) -> np.ndarray:
        """Token counts over all shards (from unigram.N, or counted from the tokens)."""
        if self._unigram is None:
            vocab = self.tokenizer.vocab_size
            counts = np.zeros(vocab, dtype=np.int64)
            for shard in self.shards:
                table = shard.unigram_table()
                if table is not None:
                    if len(table):
                        ok = table[:, 0] < vocab
                        np.add.at(counts, table[ok, 0], table[ok, 1])
                else:
                    ids = np.asarray(shard.ids)
                    ids = ids[ids != separator_id(self.width)]
                    counts += np.bincount(ids, minlength=vocab)[:vocab]
            self._unigram = counts
        return self._unigram

    @property
    def total_tokens(self) -> int:
        """All token positions, separators included: the N of unigram probabilities (as infini-gram)."""
        return int(self.manifest.tokens)

    # -- documents ----------------------------------------------------------------------------
    def hit(self, shard: int, rank: int) -> Hit:
        return self.shards[shard].hit(rank)

    def window(self, hit: Hit, length: int, context: int) -> Window:
        """`context` tokens each side of a `length`-token match, clipped to the document."""
        shard = self.shards[hit.shard]
        a = max(hit.doc_start, hit.token - context)
        b = min(hit.doc_end, hit.token + length + context)
        return Window(shard.token_ids(a, b), hit.token - a, hit.token - a + length, a, a > hit.doc_start, b < hit.doc_end)

    def windows(self, occurrences: list[tuple[int, int, int]], contexts: tuple[int, ...]) -> list[Occurrence]:
        """Every (shard, rank, match length) occurrence with its document and one `window` per
        context size, in one call: the tracer's document step asks for all of a trace's samples
        at once, which a served index answers in one round trip instead of three per sample."""
        out = []
        for shard, rank, length in occurrences:
            hit = self.hit(shard, rank)
            out.append(Occurrence(hit, self.global_doc_id(shard, hit.doc), self.metadata(shard, hit.doc),
                                  [self.window(hit, length, c) for c in contexts]))
        return out

    def document_tokens(self, shard: int, doc: int) -> np.ndarray:
        a, b = self.shards[shard].doc_bounds(doc)
        return self.shards[shard].token_ids(a, b)

    def document_text(self, global_id: int) -> str:
        """The document as stored: its original text where a normalized index kept it, else its
        tokens decoded."""
        shard, doc = self.locate_doc(global_id)
        original = self.shards[shard].doc_metadata(doc).get(ORIGINAL_KEY)
        if isinstance(original, str):
            return original
        return self.tokenizer.decode(self.document_tokens(shard, doc))

    def metadata(self, shard: int, doc: int) -> dict[str, Any]:
        """A document's metadata (without the original text a normalized index keeps in it)."""
        meta = self.shards[shard].doc_metadata(doc)
        meta.pop(ORIGINAL_KEY, None)
        return meta

    def sizes(self) -> dict[str, int]:
        total = 0
        out = {}
        for p in sorted(self.directory.iterdir()):
            if p.is_file():
                out[p.name] = p.stat().st_size
                total += out[p.name]
        out["total"] = total
        return out


def rank_chunk(runs: list[list[tuple[int, int]]], chunk: int, n: int) -> tuple[int, np.ndarray] | None:
    """Chunk number `n` of `rank_chunks(runs, chunk)`, built from the run lengths alone (no
    earlier chunk is built); None past the last one. A served index pages by this number."""
    for shard, shard_runs in enumerate(runs):
        if not shard_runs:
            continue
        a = np.array([x for x, _ in shard_runs], dtype=np.int64)
        b = np.array([y for _, y in shard_runs], dtype=np.int64)
        ends = np.cumsum(b - a)
        k = -(-int(ends[-1]) // chunk)  # chunks of this shard
        if n >= k:
            n -= k
            continue
        lo, hi = n * chunk, min(int(ends[-1]), (n + 1) * chunk)
        # the ranks at flat positions lo..hi of the shard's runs laid end to end
        flat = np.arange(lo, hi, dtype=np.int64)
        run = np.searchsorted(ends, flat, side="right")
        return shard, a[run] + flat - (ends[run] - (b - a)[run])
    return None


def rank_chunks(runs: list[list[tuple[int, int]]], chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """(shard, ranks) chunks of at most `chunk` ranks of per-shard rank runs, in order, runs of
    one shard packed together (scattered whole-word occurrences are many runs of one rank): the
    streaming unit of `word_occurrences`."""
    for shard, shard_runs in enumerate(runs):
        if not shard_runs:
            continue
        a = np.array([x for x, _ in shard_runs], dtype=np.int64)
        b = np.array([y for _, y in shard_runs], dtype=np.int64)
        ranks = _expand_runs(a, b)
        for c in range(0, len(ranks), chunk):
            yield shard, ranks[c : c + chunk]


def _expand_runs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sizes = b - a
    return np.repeat(a - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes) + np.arange(int(sizes.sum()), dtype=np.int64)


def _check_sizes(directory: Path, manifest: Manifest) -> None:
    """Every file the manifest records exists with the recorded size: one stat per file."""
    for name, rec in manifest.files.items():
        path = directory / name
        try:
            size = path.stat().st_size
        except OSError:
            raise IndexFormatError(f"{path}: missing ({MANIFEST_NAME} lists it)") from None
        if size != rec["bytes"]:
            raise IndexFormatError(
                f"{path}: {size} bytes, but {MANIFEST_NAME} records {rec['bytes']} (truncated, extended or replaced?)")


def tokenizer_path(directory: Path) -> Path:
    return directory / TOKENIZER_NAME


__all__ = ["rank_chunk", "rank_chunks", "DocumentIds", "RangeCounts", "Index", "Shard", "Hit", "Window", "Occurrence"]
