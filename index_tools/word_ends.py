"""Whole-word occurrences: the part of a suffix-array range whose occurrences are word
boundaries at both edges (the rule of `index_tools.words`).

The occurrences of a token sequence are one suffix-array range sharing its tokens, so each edge
is often settled for the whole range by the sequence itself: a sequence that starts (ends) with a
complete non-word character has a boundary at its left (right) edge wherever it occurs.

- Right edge otherwise: inside the range the suffixes are sorted by the token that follows the
  occurrence. How that token begins, laid out over the sort-key space, is a short list of runs
  (`KeyRuns`), so a range whose first and last following tokens fall in the same run is decided
  in one step, whatever its size; other ranges are halved (lock-step over all queries) until
  their ends agree, or are small enough to check rank by rank.
- Left edge otherwise (a sequence that starts with a word character: the first word of a line or
  of a text, "Hi" in a byte index): the range is not sorted by what precedes it. Whether the left
  edge of a suffix is a word boundary does not depend on the query, though, only on the corpus
  around the suffix's start: so once per shard (`LeftBits`, on first need) it is decided for
  every suffix, one bit per rank, with a cumulative count per 64 ranks. The left-edge
  occurrences of any range, or of any of the right-edge intervals above, are then counted by two
  lookups and a popcount: O(1) per interval, whatever the range's size. Ranges of at most
  `_BIG` ranks are read directly instead, a chunk at a time for all such queries together (each
  rank by two table lookups, `WordBoundaries.boundary`): cheaper than the bits on a first query,
  and a count capped at `cap` stops after cap + 1 whole-word occurrences.

The end of the file and the document separator count as the edge of a text.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .format import shard_file
from .words import BEGINS, CONTINUES, UNSURE, WordBoundaries

if TYPE_CHECKING:
    from .engine import Shard

_EOF_KEY = -1
_SCAN = 512  # ranges at most this long are checked rank by rank
_CELLS = 1 << 20  # ranks read per round of a left-edge scan, over all queries
_BIG = 1 << 13  # a left-edge check of a longer range reads the shard's `LeftBits`
_BUILD_CHUNK = 1 << 22  # suffixes decided per step while building `LeftBits`
_BUILD_SHARE = 8  # `LeftBits` is built once direct reads would pass 1/8 of the shard


class LeftBits:
    """Per rank of one shard's suffix array: is the left edge of that suffix (the corpus position
    it starts at) a word boundary? Bits in rank order, packed 64 to a word, with the number of
    set bits before each word: `count(lo, hi)` is two lookups and a popcount per range.

    Built in two passes: the rule at every corpus position in text order (sequential reads), then
    those bits gathered in suffix-array order (random reads of a bit array n/8 bytes long).
    Kept in the user's cache directory (keyed by the shard's files and the tokenizer's classes), so
    it is built once per index, not once per session."""

    MAGIC = 0x7472616365_4C42  # "trace" "LB"

    def __init__(self, words_: np.ndarray, before: np.ndarray, n: int) -> None:
        self.words, self.before, self.n = words_, before, n

    @classmethod
    def build(cls, shard: Shard, words: WordBoundaries) -> LeftBits:
        n = shard.n_tokens
        text = np.zeros(-(-n // 8), dtype=np.uint8)
        for a in range(0, n, _BUILD_CHUNK):
            b = min(n, a + _BUILD_CHUNK)
            text[a // 8 : a // 8 + -(-(b - a) // 8)] = np.packbits(
                boundary_at(shard, words, np.arange(a, b, dtype=np.int64)), bitorder="little")
        packed = np.zeros(-(-n // 64) * 8, dtype=np.uint8)
        for a in range(0, n, _BUILD_CHUNK):
            b = min(n, a + _BUILD_CHUNK)
            pos = shard.sa_tokens(np.arange(a, b, dtype=np.int64))
            ok = (text[pos >> 3] >> (pos & 7).astype(np.uint8)) & 1
            packed[a // 8 : a // 8 + -(-(b - a) // 8)] = np.packbits(ok.astype(bool), bitorder="little")
        w = packed.view("<u8")
        return cls(w, np.concatenate([[0], np.cumsum(_popcount(w))]).astype(np.int64), n)

    def save(self, path: Path) -> None:
        head = np.array([self.MAGIC, self.n, len(self.words)], dtype=np.uint64)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, np.concatenate([head, self.words, self.before.astype(np.uint64)]), allow_pickle=False)
        os.replace(tmp, path)  # never a half-written file under the real name

    @classmethod
    def load(cls, path: Path, n: int) -> LeftBits | None:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None
        k = -(-n // 64)
        if arr.dtype != np.uint64 or arr.ndim != 1 or len(arr) != 3 + 2 * k + 1:
            return None
        if int(arr[0]) != cls.MAGIC or int(arr[1]) != n or int(arr[2]) != k:
            return None
        got = cls(arr[3 : 3 + k], arr[3 + k :].view(np.int64), n)
        if int(got.before[-1]) != int(_popcount(np.asarray(got.words[-1:])).sum()) + int(got.before[-2]):
            return None  # a damaged tail
        return got

    def _rank(self, x: np.ndarray) -> np.ndarray:
        """Set bits in [0, x)."""
        x = np.asarray(x, dtype=np.int64)
        w = x >> 6
        inside = w < len(self.words)
        word = np.asarray(self.words[np.minimum(w, len(self.words) - 1)])
        mask = (np.uint64(1) << (x & 63).astype(np.uint64)) - np.uint64(1)
        part = np.where(inside, _popcount(word & mask), 0)
        return np.asarray(self.before[np.minimum(w, len(self.before) - 1)]) + part

    def count(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Set bits in each [lo, hi)."""
        return self._rank(hi) - self._rank(lo)

    def ranks_many(self, lo: np.ndarray, hi: np.ndarray, chunk_words: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
        """The set ranks of many intervals [lo[i], hi[i]) at once: (i, rank) pairs, by interval
        then rank. The 64-bit words the intervals touch are gathered and unpacked together, a
        chunk of at most `chunk_words` words (16 MiB of unpacked bits) at a time: one call for a
        million small intervals instead of a million (the per-call cost dominated, ~20 us each)."""
        lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
        wa = lo >> 6
        n = np.where(hi > lo, -(-hi // 64) - wa, 0)
        ends = np.cumsum(n)
        own_out, pos_out = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
        i = 0
        while i < len(lo):
            base = int(ends[i - 1]) if i else 0
            j = max(i + 1, int(np.searchsorted(ends, base + chunk_words, side="right")))
            cnt = n[i:j]
            total = int(cnt.sum())
            if total:
                owner = np.repeat(np.arange(i, j, dtype=np.int64), cnt)
                first = np.repeat(ends[i:j] - cnt - base, cnt)
                widx = np.arange(total, dtype=np.int64) - first + wa[owner]
                bits = np.unpackbits(np.ascontiguousarray(self.words[widx]).view(np.uint8), bitorder="little")
                r = np.flatnonzero(bits)
                own = owner[r >> 6]
                pos = (widx[r >> 6] << 6) + (r & 63)
                ok = (pos >= lo[own]) & (pos < hi[own])
                own_out.append(own[ok])
                pos_out.append(pos[ok])
            i = j
        return np.concatenate(own_out), np.concatenate(pos_out)


def _cache_path(shard: Shard, words: WordBoundaries) -> Path | None:
    try:
        from platformdirs import user_cache_dir

        h = hashlib.sha256()
        for kind in ("tokenized", "table"):
            st = shard_file(shard.directory, kind, shard.n).stat()
            h.update(f"{kind}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino};".encode())
        h.update(str(Path(shard.directory).resolve()).encode())
        for arr in (words.head_class, words.tail_class, words.head_inside):
            h.update(np.ascontiguousarray(arr).tobytes())
        d = Path(user_cache_dir("tracetui")) / "left-edges"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{h.hexdigest()[:32]}.{shard.n}.npy"
    except OSError:
        return None


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    b = np.asarray(x, dtype="<u8").view(np.uint8).reshape(-1, 8)  # numpy < 2.0
    return np.unpackbits(b, axis=1).sum(axis=1).astype(np.int64)


def _known_bits(shard: Shard, words: WordBoundaries) -> LeftBits | None:
    """The shard's `LeftBits` if it is at hand: kept with the shard or in the cache (looked up
    once per shard)."""
    got: LeftBits | None = shard.memo.get("left_bits")
    if got is None and not shard.memo.get("left_bits_looked", False):
        shard.memo["left_bits_looked"] = True
        path = _cache_path(shard, words)
        got = LeftBits.load(path, shard.n_tokens) if path is not None and path.exists() else None
        shard.memo["left_bits"] = got
    return got


def bits_for(shard: Shard, words: WordBoundaries, sizes: np.ndarray) -> LeftBits | None:
    """`LeftBits` for left-edge checks of ranges of these sizes, or None: read them directly.
    Bits at hand are used; they are built once the ranges read directly on this shard would add
    up to an eighth of it (about what building costs), so a one-off query never pays for a
    build and a session of them pays for one at most."""
    got = _known_bits(shard, words)
    if got is not None:
        return got
    work = int(shard.memo.get("left_scanned", 0)) + int(np.sum(sizes))
    if work > shard.n_tokens // _BUILD_SHARE:
        return left_bits(shard, words)
    shard.memo["left_scanned"] = work
    return None


def left_bits(shard: Shard, words: WordBoundaries) -> LeftBits:
    """The shard's `LeftBits`: kept with the shard, else read from the cache, else built (and
    cached)."""
    got = _known_bits(shard, words)
    if got is None:
        got = LeftBits.build(shard, words)
        path = _cache_path(shard, words)
        if path is not None:
            try:
                got.save(path)
            except OSError:
                pass  # a read-only cache: kept in memory for this session only
        shard.memo["left_bits"] = got
    return got


def _after_class(words: WordBoundaries) -> np.ndarray:
    """Per token: does a right edge before it, after a word character, break (BEGINS), not
    break (CONTINUES), or depend on more bytes (UNSURE: split characters, empty tokens)?"""
    cls = words.head_class.copy()
    cls[(cls == CONTINUES) & words.head_inside] = UNSURE
    return cls


class KeyRuns:
    """`_after_class` over the sort-key space: sorted cut points and the class of each run."""

    def __init__(self, words: WordBoundaries, keys_of: Callable[[np.ndarray], np.ndarray], separator_key: int) -> None:
        vocab_keys = keys_of(np.arange(len(words.classes), dtype=np.int64))
        keys = np.concatenate([[_EOF_KEY], vocab_keys, [separator_key]]).astype(np.int64)
        classes = np.concatenate([[BEGINS], _after_class(words), [BEGINS]]).astype(np.int8)
        order = np.argsort(keys, kind="stable")
        keys, classes = keys[order], classes[order]
        cut = np.flatnonzero(classes[1:] != classes[:-1]) + 1
        self.cuts = keys[cut]
        self.run_class = classes[np.concatenate([[0], cut])]
        # a dense table for key spaces up to 16 bits (one gather instead of a binary search)
        top = int(max(separator_key, int(keys.max())))
        self._dense = None
        if top < (1 << 17):
            self._dense = np.searchsorted(self.cuts, np.arange(-1, top + 1), side="right").astype(np.int32)

    def run_of(self, keys: np.ndarray) -> np.ndarray:
        if self._dense is not None:
            return self._dense[np.asarray(keys) + 1]
        return np.searchsorted(self.cuts, keys, side="right")


def _next_keys(shard: Shard, ranks: np.ndarray, m: np.ndarray) -> np.ndarray:
    pos = shard.sa_tokens(ranks) + m
    keys = shard.keys[np.minimum(pos, shard.n_tokens - 1)].astype(np.int64)
    keys[pos >= shard.n_tokens] = _EOF_KEY
    return keys


def _expand(q: np.ndarray, lo: np.ndarray, hi: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, ...]:
    """Every rank of the ranges [lo, hi), with its query and length."""
    sizes = hi - lo
    reps = np.repeat(np.arange(len(q)), sizes)
    offs = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return q[reps], lo[reps] + offs, m[reps]


def _ids_at(shard: Shard, pos: np.ndarray) -> np.ndarray:
    """Token id at each corpus position; -1 outside the file and at document separators."""
    n = shard.n_tokens
    ids = np.asarray(shard.ids[np.clip(pos, 0, n - 1)], dtype=np.int64)
    sep = (1 << (8 * shard.width)) - 1
    return np.where((pos < 0) | (pos >= n) | (ids == sep), -1, ids)


def boundary_at(shard: Shard, words: WordBoundaries, pos: np.ndarray) -> np.ndarray:
    """The word-boundary rule at corpus token positions (before token `pos`): the corpus side
    of `WordBoundaries.boundary`, a document's start and end being edges of a text."""
    pos = np.asarray(pos, dtype=np.int64)

    def rows(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.arange(4)
        p = pos[idx][:, None]
        return _ids_at(shard, p - 1 - k[None, :]), _ids_at(shard, p + k[None, :])

    return words.boundary(_ids_at(shard, pos - 1), _ids_at(shard, pos), rows)


def whole_word_at(shard: Shard, words: WordBoundaries, ranks: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Is the occurrence at each rank, taken m tokens long, whole words (both edges)?"""
    s = shard.sa_tokens(np.asarray(ranks, dtype=np.int64))
    return boundary_at(shard, words, s) & boundary_at(shard, words, s + m)


def _right_ok(shard: Shard, runs: KeyRuns, words: WordBoundaries, ranks: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Right edge of occurrences of a sequence that ends with a word character."""
    c = runs.run_class[runs.run_of(_next_keys(shard, ranks, m))]
    out = c == BEGINS
    u = np.flatnonzero(c == UNSURE)
    if len(u):
        out[u] = boundary_at(shard, words, shard.sa_tokens(ranks[u]) + m[u])
    return out


#: how a sequence's own first / last character settles an edge wherever it occurs
FREE = 0  # a complete non-word character: the edge is a boundary
WORD = 1  # a complete word character: the character outside the edge decides
OPEN = 2  # not complete within the sequence: each occurrence is checked in full


def edges(shard: Shard, words: WordBoundaries, lo: np.ndarray, hi: np.ndarray,
          m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per query (its range and length), the FREE / WORD / OPEN state of its left and right
    edge, read off the sequence's own tokens at its first occurrence (an empty range or
    sequence: FREE at both)."""
    left = np.full(len(lo), FREE, dtype=np.int8)
    right = np.full(len(lo), FREE, dtype=np.int8)
    idx = np.flatnonzero((hi > lo) & (m > 0))
    if len(idx):
        s = shard.sa_tokens(lo[idx])
        mm = m[idx]
        # most are settled by the first / last token alone (the tables of `WordBoundaries`)
        first, last = _ids_at(shard, s), _ids_at(shard, s + mm - 1)
        n_vocab = len(words.classes)
        f_ok, l_ok = (first >= 0) & (first < n_vocab), (last >= 0) & (last < n_vocab)
        head = np.where(f_ok, words.head_class[np.where(f_ok, first, 0)], UNSURE)
        inside = f_ok & words.head_inside[np.where(f_ok, first, 0)]
        tail = np.where(l_ok, words.tail_class[np.where(l_ok, last, 0)], UNSURE)
        lstate = np.where(head == BEGINS, FREE, np.where((head == CONTINUES) & ~inside, WORD, OPEN))
        rstate = np.where(tail == BEGINS, FREE, np.where(tail == CONTINUES, WORD, OPEN))
        # the rest from the bytes of the sequence's own first / last four tokens
        k = np.arange(4)[None, :]
        todo = np.flatnonzero(lstate == OPEN)
        if len(todo):
            heads = np.where(k < mm[todo, None], _ids_at(shard, s[todo, None] + k), -1)
            breaks, done = words.first_char(heads)
            lstate[todo] = np.where(done, np.where(breaks, FREE, WORD), OPEN)
        todo = np.flatnonzero(rstate == OPEN)
        if len(todo):
            tails = np.where(k < mm[todo, None], _ids_at(shard, s[todo, None] + mm[todo, None] - 1 - k), -1)
            breaks, _, done = words.last_char(tails)
            rstate[todo] = np.where(done, np.where(breaks, FREE, WORD), OPEN)
        left[idx], right[idx] = lstate, rstate
    return left, right


def _right_intervals(shard: Shard, runs: KeyRuns, words: WordBoundaries, q: np.ndarray, lo: np.ndarray,
                     hi: np.ndarray, m: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(query, start, end) pieces of the ranks whose right edge is a boundary, by halving."""
    got: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    while len(q):
        rf = runs.run_of(_next_keys(shard, lo, m))
        rl = runs.run_of(_next_keys(shard, hi - 1, m))
        cls = runs.run_class[rf]
        whole = (rf == rl) & (cls != UNSURE)
        ok = whole & (cls == BEGINS)
        got.append((q[ok], lo[ok], hi[ok]))
        small = ~whole & (hi - lo <= _SCAN)
        if small.any():
            sq, sr, sm = _expand(q[small], lo[small], hi[small], m[small])
            good = _right_ok(shard, runs, words, sr, sm)
            got.append((sq[good], sr[good], sr[good] + 1))
        big = ~whole & (hi - lo > _SCAN)
        mid = (lo[big] + hi[big]) // 2
        q = np.concatenate([q[big], q[big]])
        lo, hi = np.concatenate([lo[big], mid]), np.concatenate([mid, hi[big]])
        m = np.concatenate([m[big], m[big]])
    return got


def _scan(shard: Shard, runs: KeyRuns, words: WordBoundaries, q: np.ndarray, lo: np.ndarray, hi: np.ndarray,
          m: np.ndarray, right: np.ndarray, cap: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Read the ranges in rank order, all queries together, a growing chunk per round; yield
    (query, ranks that are whole words) per round. With `cap` (per query), a query stops once
    more than cap of its occurrences are whole words."""
    pos = lo.copy()
    found = np.zeros(len(q), dtype=np.int64)
    act = np.flatnonzero(hi > lo)
    chunk = _SCAN if cap is None else max(_SCAN, 2 * int(cap.max(initial=0)) + 2)
    while len(act):
        step = max(1, min(chunk, _CELLS // len(act)))
        end = np.minimum(hi[act], pos[act] + step)
        which, ranks, mm = _expand(np.arange(len(act)), pos[act], end, m[act])
        s = shard.sa_tokens(ranks)
        ok = boundary_at(shard, words, s)
        state = right[act][which]
        need = np.flatnonzero(ok & (state == WORD))
        if len(need):
            ok[need] = _right_ok(shard, runs, words, ranks[need], mm[need])
        need = np.flatnonzero(ok & (state == OPEN))
        if len(need):
            ok[need] = boundary_at(shard, words, s[need] + mm[need])
        yield q[act][which[ok]], ranks[ok]
        found[act] += np.bincount(which[ok], minlength=len(act))
        pos[act] = end
        live = pos[act] < hi[act]
        if cap is not None:
            live &= found[act] <= cap[act]
        act = act[live]
        chunk = min(chunk * 4, _CELLS)


def _big_right(shard: Shard, runs: KeyRuns, words: WordBoundaries, q: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               m: np.ndarray, right: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(query, start, end) rank intervals whose right edge is a boundary, for queries whose right
    edge is FREE (the whole range) or WORD (halving over the following tokens)."""
    free = right == FREE
    pieces = [(q[free], lo[free], hi[free])]
    word = right == WORD
    if word.any():
        pieces += _right_intervals(shard, runs, words, q[word], lo[word], hi[word], m[word])
    return pieces


def _big_counts(shard: Shard, runs: KeyRuns, words: WordBoundaries, bits: LeftBits, lo: np.ndarray,
                hi: np.ndarray, m: np.ndarray, right: np.ndarray, cap: int | None) -> np.ndarray:
    """Both-edge counts of large ranges from `LeftBits`: the left-edge bits counted over the
    right-edge intervals. Exact: the whole range at once. Capped: in rank order, a growing chunk
    at a time for all queries together, until a query passes its cap (a frequent word's right
    edge then costs about cap / its whole-word share ranks, not its whole range)."""
    acc = np.zeros(len(lo), dtype=np.int64)
    pos = lo.copy()
    act = np.arange(len(lo))
    step = None if cap is None else max(256, 4 * (cap + 1))
    while len(act):
        end = hi[act] if step is None else np.minimum(hi[act], pos[act] + step)
        for bq, ba, bb in _big_right(shard, runs, words, np.arange(len(act)), pos[act], end, m[act], right[act]):
            acc[act] += np.bincount(bq, weights=bits.count(ba, bb), minlength=len(act)).astype(np.int64)
        pos[act] = end
        live = pos[act] < hi[act]
        if cap is not None:
            live &= acc[act] <= cap
        act = act[live]
        step = None if step is None else step * 4
    return acc


def word_intervals(shard: Shard, runs: KeyRuns, words: WordBoundaries, lo: np.ndarray, hi: np.ndarray,
                   m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query i (range [lo[i], hi[i]) of a sequence of length m[i]): the sub-intervals of ranks
    whose occurrence is whole words at both edges.

    Returns (query, start, end) arrays, sorted by query then start, adjacent intervals merged.
    """
    lo, hi, m = (np.asarray(x, dtype=np.int64) for x in (lo, hi, m))
    q = np.arange(len(lo), dtype=np.int64)
    left, right = edges(shard, words, lo, hi, m)
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    both = (hi > lo) & (left == FREE) & (right == FREE)
    pieces.append((q[both], lo[both], hi[both]))
    sel = (hi > lo) & (left == FREE) & (right == WORD)
    pieces += _right_intervals(shard, runs, words, q[sel], lo[sel], hi[sel], m[sel])
    rest = (hi > lo) & ~both & ~sel
    big = rest & (hi - lo > _BIG) & (right != OPEN)
    bits = bits_for(shard, words, (hi - lo)[big]) if big.any() else None
    if bits is None:
        big[:] = False
    scan = np.flatnonzero(rest & ~big)
    if len(scan):
        for sq, sr in _scan(shard, runs, words, q[scan], lo[scan], hi[scan], m[scan], right[scan], None):
            pieces.append((sq, sr, sr + 1))
    if big.any():
        assert bits is not None
        for bq, ba, bb in _big_right(shard, runs, words, q[big], lo[big], hi[big], m[big], right[big]):
            own, r = bits.ranks_many(ba, bb)  # every interval's left-edge ranks in one pass
            pieces.append((bq[own], r, r + 1))
    gq = np.concatenate([p[0] for p in pieces])
    ga = np.concatenate([p[1] for p in pieces])
    gb = np.concatenate([p[2] for p in pieces])
    if len(gq) <= 1:
        return gq, ga, gb
    order = np.lexsort((ga, gq))
    gq, ga, gb = gq[order], ga[order], gb[order]
    # merge an interval into its predecessor when it starts where that one ends
    joins = (gq[1:] == gq[:-1]) & (ga[1:] == gb[:-1])
    starts = np.concatenate([[True], ~joins])
    group = np.cumsum(starts) - 1
    ends = np.zeros(int(group[-1]) + 1, dtype=np.int64)
    np.maximum.at(ends, group, gb)
    return gq[starts], ga[starts], ends


def _halving_counts(shard: Shard, runs: KeyRuns, words: WordBoundaries, lo: np.ndarray, hi: np.ndarray,
                    m: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Right-edge counts up to cap + 1 by halving: a segment whose first and last following
    tokens share a run is counted at once (large blocks of one following token are found within
    a few rounds), a short one is read rank by rank, the rest is split in two; a query stops as
    soon as it passes its cap."""
    acc = np.zeros(len(lo), dtype=np.int64)
    q = np.flatnonzero(hi > lo)
    lo, hi, mm = lo[q], hi[q], m[q]
    while len(q):
        rf = runs.run_of(_next_keys(shard, lo, mm))
        rl = runs.run_of(_next_keys(shard, hi - 1, mm))
        cls = runs.run_class[rf]
        whole = (rf == rl) & (cls != UNSURE)
        ok = whole & (cls == BEGINS)
        acc += np.bincount(q[ok], weights=(hi - lo)[ok], minlength=len(acc)).astype(np.int64)
        small = ~whole & (hi - lo <= _SCAN)
        if small.any():
            sq, sr, sm = _expand(q[small], lo[small], hi[small], mm[small])
            acc += np.bincount(sq[_right_ok(shard, runs, words, sr, sm)], minlength=len(acc))
        split = ~whole & ~small
        mid = (lo[split] + hi[split]) // 2
        q = np.concatenate([q[split], q[split]])
        lo, hi = np.concatenate([lo[split], mid]), np.concatenate([mid, hi[split]])
        mm = np.concatenate([mm[split], mm[split]])
        live = acc[q] <= cap[q]
        q, lo, hi, mm = q[live], lo[live], hi[live], mm[live]
    return np.minimum(acc, cap + 1)


def _right_counts(shard: Shard, runs: KeyRuns, words: WordBoundaries, lo: np.ndarray, hi: np.ndarray,
                  m: np.ndarray, cap: int) -> np.ndarray:
    """Right-edge counts of sequences that end with a word character, up to cap + 1.

    A range whose first and last following tokens share a run is decided at once. Otherwise the
    first ranks are read in order, a chunk large enough to pass `cap` if most occurrences end a
    word, for all queries together: "is there any?" (cap 0) or "at most 1000?" is then settled
    by reading about cap ranks, even for a sequence that occurs millions of times. What a chunk
    does not settle (a large cap, or few occurrences ending a word) is counted by halving.
    """
    acc = np.zeros(len(lo), dtype=np.int64)
    act = np.flatnonzero(hi > lo)
    if len(act):
        rf = runs.run_of(_next_keys(shard, lo[act], m[act]))
        rl = runs.run_of(_next_keys(shard, hi[act] - 1, m[act]))
        cls = runs.run_class[rf]
        whole = (rf == rl) & (cls != UNSURE)
        acc[act[whole & (cls == BEGINS)]] = (hi - lo)[act[whole & (cls == BEGINS)]]
        act = act[~whole]
    pos = lo.copy()
    if len(act) and cap < (1 << 14):
        want = np.maximum(2 * (cap + 1), _SCAN)
        end = np.minimum(hi[act], pos[act] + want)
        q, ranks, mm = _expand(act, pos[act], end, m[act])
        acc += np.bincount(q[_right_ok(shard, runs, words, ranks, mm)], minlength=len(acc))
        pos[act] = end
        act = act[(pos[act] < hi[act]) & (acc[act] <= cap)]
    if len(act):
        left = np.full(len(act), cap, dtype=np.int64) - acc[act]
        acc[act] += _halving_counts(shard, runs, words, pos[act], hi[act], m[act], left)
    return np.minimum(acc, cap + 1)


def word_counts(shard: Shard, runs: KeyRuns, words: WordBoundaries, lo: np.ndarray, hi: np.ndarray,
                m: np.ndarray, cap: int | None) -> np.ndarray:
    """Whole-word occurrences per query (both edges), exact, or up to cap + 1 ("more than
    cap") with a `cap`: then a frequent sequence costs about cap occurrences, not its count."""
    lo, hi, m = (np.asarray(x, dtype=np.int64) for x in (lo, hi, m))
    out = np.zeros(len(lo), dtype=np.int64)
    left, right = edges(shard, words, lo, hi, m)
    both = (hi > lo) & (left == FREE) & (right == FREE)
    out[both] = (hi - lo)[both]
    sel = (hi > lo) & (left == FREE) & (right == WORD)
    idx = np.flatnonzero(sel)
    if len(idx):
        if cap is None:
            got = _right_intervals(shard, runs, words, np.arange(len(idx)), lo[idx], hi[idx], m[idx])
            for q, a, b in got:
                out[idx] += np.bincount(q, weights=b - a, minlength=len(idx)).astype(np.int64)
        else:
            out[idx] = _right_counts(shard, runs, words, lo[idx], hi[idx], m[idx], cap)
    rest = (hi > lo) & ~both & ~sel
    big_mask = rest & (hi - lo > _BIG) & (right != OPEN)
    bits = bits_for(shard, words, (hi - lo)[big_mask]) if big_mask.any() else None
    if bits is None:
        big_mask[:] = False
    big = np.flatnonzero(big_mask)
    if len(big) and bits is not None:
        out[big] = _big_counts(shard, runs, words, bits, lo[big], hi[big], m[big], right[big], cap)
    scan = np.flatnonzero(rest & ~big_mask)
    if len(scan):
        caps = None if cap is None else np.full(len(scan), cap, dtype=np.int64)
        for sq, _ in _scan(shard, runs, words, np.arange(len(scan)), lo[scan], hi[scan], m[scan],
                           right[scan], caps):
            out[scan] += np.bincount(sq, minlength=len(scan))
    return out if cap is None else np.minimum(out, cap + 1)


__all__ = ["KeyRuns", "boundary_at", "edges", "whole_word_at", "word_counts", "word_intervals"]
