"""Whole-word occurrences: the part of a suffix-array range whose next token begins a word.

The occurrences of a token sequence of length m are one suffix-array range, and inside it the
suffixes are sorted by their token at offset m -- the token that follows the occurrence. The
word-start class of a token, laid out over the sort-key space, is a short list of runs (`KeyRuns`),
so a range whose first and last following tokens fall in the same run is decided in one step,
whatever its size. Other ranges are halved (lock-step over all queries) until their ends agree,
or are small enough to classify rank by rank. Only a following token that opens a multi-byte
character without completing it (class "unsure") needs the bytes after it, gathered for just
those occurrences. The end of the file and the document separator count as word boundaries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .words import BEGINS, UNSURE, WordBoundaries

if TYPE_CHECKING:
    from .engine import Shard

_EOF_KEY = -1
_SCAN = 64  # ranges at most this long are classified rank by rank


class KeyRuns:
    """Word-start class over the sort-key space: sorted cut points and the class of each run."""

    def __init__(self, words: WordBoundaries, keys_of: Callable[[np.ndarray], np.ndarray], separator_key: int) -> None:
        vocab_keys = keys_of(np.arange(len(words.classes), dtype=np.int64))
        keys = np.concatenate([[_EOF_KEY], vocab_keys, [separator_key]]).astype(np.int64)
        classes = np.concatenate([[BEGINS], words.classes, [BEGINS]]).astype(np.int8)
        order = np.argsort(keys, kind="stable")
        keys, classes = keys[order], classes[order]
        cut = np.flatnonzero(classes[1:] != classes[:-1]) + 1
        self.cuts = keys[cut]
        #: first key of the next run, per run (the last run never ends)
        self.run_end = np.append(self.cuts, np.iinfo(np.int64).max)
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


def _resolve_unsure(shard: Shard, words: WordBoundaries, ranks: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Decide occurrences followed by an unsure token from the character the next tokens complete."""
    pos = shard.sa_tokens(ranks) + m
    cols = pos[:, None] + np.arange(4)[None, :]
    n = shard.n_tokens
    ids = np.asarray(shard.ids[np.minimum(cols, n - 1)], dtype=np.int64)
    sep = (1 << (8 * shard.width)) - 1
    ids = np.where((cols >= n) | (ids == sep), -1, ids)
    return words.begins_at(ids)


def ends_word(shard: Shard, runs: KeyRuns, words: WordBoundaries, ranks: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Is the occurrence at each rank, taken m tokens long, followed by a word start?"""
    c = runs.run_class[runs.run_of(_next_keys(shard, ranks, m))]
    out = c == BEGINS
    u = np.flatnonzero(c == UNSURE)
    if len(u):
        out[u] = _resolve_unsure(shard, words, ranks[u], m[u])
    return out


def word_end_intervals(shard: Shard, runs: KeyRuns, words: WordBoundaries, lo: np.ndarray, hi: np.ndarray,
                       m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query i (range [lo[i], hi[i]) of a sequence of length m[i]): the sub-intervals of ranks
    whose occurrence is followed by a word start, a separator or the end of the file.

    Returns (query, start, end) arrays, sorted by query then start, adjacent intervals merged.
    """
    q = np.arange(len(lo), dtype=np.int64)
    lo, hi, m = (np.asarray(x, dtype=np.int64) for x in (lo, hi, m))
    sel = hi > lo
    q, lo, hi, m = q[sel], lo[sel], hi[sel], m[sel]
    got_q: list[np.ndarray] = []
    got_a: list[np.ndarray] = []
    got_b: list[np.ndarray] = []
    unsure: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    while len(q):
        rf = runs.run_of(_next_keys(shard, lo, m))
        rl = runs.run_of(_next_keys(shard, hi - 1, m))
        cls = runs.run_class[rf]
        whole = rf == rl
        ok = whole & (cls == BEGINS)
        got_q.append(q[ok])
        got_a.append(lo[ok])
        got_b.append(hi[ok])
        uns = whole & (cls == UNSURE)
        if uns.any():
            unsure.append(_expand(q[uns], lo[uns], hi[uns], m[uns]))
        small = ~whole & (hi - lo <= _SCAN)
        if small.any():
            sq, sr, sm = _expand(q[small], lo[small], hi[small], m[small])
            good = ends_word(shard, runs, words, sr, sm)
            got_q.append(sq[good])
            got_a.append(sr[good])
            got_b.append(sr[good] + 1)
        big = ~whole & (hi - lo > _SCAN)
        mid = (lo[big] + hi[big]) // 2
        q = np.concatenate([q[big], q[big]])
        lo, hi = np.concatenate([lo[big], mid]), np.concatenate([mid, hi[big]])
        m = np.concatenate([m[big], m[big]])
    for uq, ur, um in unsure:
        ok = _resolve_unsure(shard, words, ur, um)
        got_q.append(uq[ok])
        got_a.append(ur[ok])
        got_b.append(ur[ok] + 1)
    if not got_q:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    gq, ga, gb = np.concatenate(got_q), np.concatenate(got_a), np.concatenate(got_b)
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
    """Whole-word counts up to cap + 1 by halving: a segment whose first and last following
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
            acc += np.bincount(sq[ends_word(shard, runs, words, sr, sm)], minlength=len(acc))
        split = ~whole & ~small
        mid = (lo[split] + hi[split]) // 2
        q = np.concatenate([q[split], q[split]])
        lo, hi = np.concatenate([lo[split], mid]), np.concatenate([mid, hi[split]])
        mm = np.concatenate([mm[split], mm[split]])
        live = acc[q] <= cap[q]
        q, lo, hi, mm = q[live], lo[live], hi[live], mm[live]
    return np.minimum(acc, cap + 1)


def word_end_counts(shard: Shard, runs: KeyRuns, words: WordBoundaries, lo: np.ndarray, hi: np.ndarray,
                    m: np.ndarray, cap: int) -> np.ndarray:
    """Whole-word occurrences per query, counted only up to cap + 1 ("more than cap").

    A range whose first and last following tokens share a run is decided at once. Otherwise the
    first ranks are read in order, a chunk large enough to pass `cap` if most occurrences end a
    word, for all queries together: "is there any?" (cap 0) or "at most 1000?" is then settled
    by reading about cap ranks, even for a sequence that occurs millions of times. What a chunk
    does not settle (a large cap, or few occurrences ending a word) is counted by halving.
    """
    lo, hi, m = (np.asarray(x, dtype=np.int64) for x in (lo, hi, m))
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
        acc += np.bincount(q[ends_word(shard, runs, words, ranks, mm)], minlength=len(acc))
        pos[act] = end
        act = act[(pos[act] < hi[act]) & (acc[act] <= cap)]
    if len(act):
        left = np.full(len(act), cap, dtype=np.int64) - acc[act]
        acc[act] += _halving_counts(shard, runs, words, pos[act], hi[act], m[act], left)
    return np.minimum(acc, cap + 1)


__all__ = ["KeyRuns", "ends_word", "word_end_intervals", "word_end_counts"]
