"""∞-gram queries (infini-gram's `ntd`, `infgram_prob`, `infgram_ntd`), exact and batched.

Definitions follow infini-gram's engine: the next token after an occurrence that ends a document
(or the corpus) is the document end, reported as `DOC_END`; `prompt_cnt` counts every occurrence
of the prompt; the ∞-gram context of a token is the longest suffix of what precedes it that
occurs in the corpus (its length is the *effective n* minus one), and with no such suffix the
estimate is the unigram count over all token positions (separators included).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Protocol, cast, runtime_checkable

import numpy as np

from .contract import IndexLike
from .engine import Index, Shard
from .format import separator_id


@runtime_checkable
class ServesNtd(Protocol):
    """An index that answers `ntd` itself: a served one (its servers walk their own shards) or
    the infini-gram API. `ntd` below asks the index for this capability, not for its class."""

    def ntd(self, prompt: np.ndarray, max_support: int | None = None) -> NextTokens: ...

DOC_END = -1  # "the document ends here": infini-gram reports its eos token id
SCAN = 4096  # ranges at most this long are read rank by rank


@dataclass
class NextTokens:
    """The distribution of the token after a prompt: distinct ids (ascending, DOC_END first) and
    how often each follows; `prompt_cnt` occurrences in all (the counts sum to it)."""

    prompt_cnt: int
    ids: np.ndarray
    counts: np.ndarray
    approx: bool = False  # sampled (a `max_support` below the prompt's count), as infini-gram's

    def prob(self, token: int) -> float:
        i = np.searchsorted(self.ids, token)
        return float(self.counts[i] / self.prompt_cnt) if i < len(self.ids) and self.ids[i] == token else 0.0


_EOF_KEY = -2  # an occurrence at the very end of the file sorts first in its range


def _next_keys(shard: Shard, ranks: np.ndarray, m: int) -> np.ndarray:
    """Sort keys of the tokens after the occurrences (the order they are sorted in)."""
    pos = shard.sa_tokens(ranks) + m
    keys = shard.keys[np.minimum(pos, shard.n_tokens - 1)].astype(np.int64)
    return np.where(pos >= shard.n_tokens, _EOF_KEY, keys)


def _key_to_id(shard: Shard, keys: np.ndarray) -> np.ndarray:
    """Token ids of sort keys; the separator and the end of the file are DOC_END."""
    sep = separator_id(shard.width)
    # a key is the token with its bytes swapped (memcmp order); swapping again gives the id
    ids = keys if shard.width == 1 else np.where(
        keys < 0, 0, keys).astype(f"<u{shard.width}").byteswap().astype(np.int64)
    return np.where((keys < 0) | (keys == sep), DOC_END, ids)


def _scan_ntd(shard: Shard, lo: int, hi: int, m: int, chunk: int = 1 << 21) -> tuple[np.ndarray, np.ndarray]:
    """Every following token of a range read in rank order (the suffix-array slice is contiguous)
    and counted with a histogram over the key space: for 8/16-bit tokens this beats halving when
    the range has tens of thousands of distinct followers."""
    span = 1 << (8 * shard.width)
    hist = np.zeros(span + 2, dtype=np.int64)  # index key + 2: EOF at 0
    for a in range(lo, hi, chunk):
        keys = _next_keys(shard, np.arange(a, min(hi, a + chunk), dtype=np.int64), m)
        hist += np.bincount(keys + 2, minlength=span + 2)
    nz = np.flatnonzero(hist)
    return nz - 2, hist[nz]


def _shard_ntd(shard: Shard, lo: int, hi: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, counts) after the prompt in one shard. The range's following tokens are sorted, so a
    segment whose first and last following tokens agree is one block, counted from its size; the
    rest is halved (lock-step over all segments) down to `SCAN` ranks, read directly. The cost
    grows with the number of distinct following tokens, not with the occurrences.

    Blocks are told apart by sort key, not by reported id: the occurrence at the very end of the
    file sorts first and one before a separator last, yet both are reported as DOC_END. (infini-
    gram compares reported ids and so counts a whole range as document ends when the file ends
    with the prompt; see tests/test_ngram.py.)"""
    if hi <= lo:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # one histogram pass over every occurrence: measured faster in numpy than halving (which
    # reads about distinct followers x log ranks, but in many rounds) up to 8.7M occurrences
    if shard.width <= 2 and hi - lo > SCAN:
        keys, cnt = _scan_ntd(shard, lo, hi, m)
        ids = _key_to_id(shard, keys)
        u, inv = np.unique(ids, return_inverse=True)
        return u, np.bincount(inv, weights=cnt).astype(np.int64)
    return _halving_ntd(shard, lo, hi, m, 1)


def sample_unit(count: int, max_support: int | None) -> int:
    """infini-gram's stride for a prompt of `count` occurrences: the least power of two `unit`
    with count <= unit x max_support (1, i.e. exact, without a `max_support`)."""
    unit = 1
    if max_support is not None:
        if max_support <= 0:
            raise ValueError("max_support must be a positive integer")
        while count > unit * max_support:
            unit <<= 1
    return unit


def _halving_ntd(shard: Shard, lo: int, hi: int, m: int, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """Halving over segments of the range, lock-step: a segment whose first and last following
    tokens agree is counted whole; a short one is read every `unit` ranks, each read standing for
    the `unit` ranks around it (the last for what is left); the rest is halved.

    unit 1 is exact, with short meaning at most `SCAN` ranks (read directly). unit > 1 is
    infini-gram's approximation (`max_support`): short means under 4 x unit, and the segments,
    reads and weights are its engine's, so the counts are too (they still sum to the prompt's)."""
    short = SCAN + 1 if unit == 1 else 4 * unit
    got_keys: list[np.ndarray] = []
    got_cnt: list[np.ndarray] = []
    seg_lo, seg_hi = np.array([lo], dtype=np.int64), np.array([hi], dtype=np.int64)
    while len(seg_lo):
        small = seg_hi - seg_lo < short
        if small.any():
            a, b = seg_lo[small], seg_hi[small]
            n = (b - a + unit - 1) // unit
            starts = np.repeat(a, n) + unit * (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
            ends = np.repeat(b, n)
            full = starts + unit <= ends
            mid = np.where(full, starts + (unit >> 1), (starts + ends) >> 1)
            got_keys.append(_next_keys(shard, mid, m))
            got_cnt.append(np.where(full, unit, ends - starts))
        seg_lo, seg_hi = seg_lo[~small], seg_hi[~small]
        if not len(seg_lo):
            break
        first, last = _next_keys(shard, seg_lo, m), _next_keys(shard, seg_hi - 1, m)
        one = first == last
        got_keys.append(first[one])
        got_cnt.append((seg_hi - seg_lo)[one])
        seg_lo, seg_hi = seg_lo[~one], seg_hi[~one]
        mid = (seg_lo + seg_hi) >> 1
        seg_lo, seg_hi = np.concatenate([seg_lo, mid]), np.concatenate([mid, seg_hi])
    ids = _key_to_id(shard, np.concatenate(got_keys))
    u, inv = np.unique(ids, return_inverse=True)
    return u, np.bincount(inv, weights=np.concatenate(got_cnt)).astype(np.int64)


def ntd(index: IndexLike, prompt: np.ndarray, max_support: int | None = None) -> NextTokens:
    """Next-token distribution after `prompt` over every shard (an empty prompt: the unigram
    distribution of all positions). Exact by default; with `max_support`, a prompt that occurs
    more than that many times gets infini-gram's sampled approximation (`sample_unit`,
    `_halving_ntd`): same counts as its `ntd(prompt, max_support)`, `approx` set."""
    prompt = np.asarray(prompt, dtype=np.int64)
    if not len(prompt) and sample_unit(index.total_tokens, max_support) == 1:
        whole = unigram_ntd(index)  # every position: the unigram table, not a pass over the corpus
        if whole is not None:
            return whole
    if isinstance(index, ServesNtd):  # its servers run `ntd_with_unit` on their shards
        return index.ntd(prompt, max_support)
    local = cast(Index, index)  # the one kind that does not: its shards are here
    ranges = _prompt_ranges(local, prompt)
    return ntd_with_unit(local, prompt, sample_unit(sum(b - a for a, b in ranges), max_support), ranges)


def unigram_ntd(index: IndexLike) -> NextTokens | None:
    """`ntd` of the empty prompt from the unigram table (`Index.unigram_counts`, also a served
    index's): every token position once, each separator as DOC_END, `prompt_cnt` all positions
    (`total_tokens`), as infini-gram's engine answers it. None when the table does not account for
    every position but one separator per document (tokens outside the vocabulary): then only
    reading the corpus is exact."""
    uni = np.asarray(index.unigram_counts(), dtype=np.int64)
    ids = np.flatnonzero(uni).astype(np.int64)
    counts = uni[ids]
    total = int(index.total_tokens)
    ends = total - int(counts.sum())
    if ends != int(index.manifest.documents):
        return None
    if ends:
        ids, counts = np.concatenate([[DOC_END], ids]), np.concatenate([[ends], counts])
    return NextTokens(total, ids, counts)


def _prompt_ranges(index: Index, prompt: np.ndarray) -> list[tuple[int, int]]:
    if len(prompt):
        return index.find(prompt)  # one query: the scalar search beats a lock-step batch of one
    return [(0, s.n_tokens) for s in index.shards]


def ntd_with_unit(index: Index, prompt: np.ndarray, unit: int,
                  ranges: list[tuple[int, int]] | None = None) -> NextTokens:
    """`ntd` with the sampling stride given (1: exact). The stride depends on the prompt's count
    over *every* shard, so an index split over servers has its client choose it and each server
    compute its shards' part with it: the sum is then the single-index answer."""
    prompt = np.asarray(prompt, dtype=np.int64)
    m = len(prompt)
    if ranges is None:
        ranges = _prompt_ranges(index, prompt)
    ids_all, cnt_all = [], []
    for shard, (a, b) in zip(index.shards, ranges, strict=True):
        if unit > 1 and b > a:
            u, c = _halving_ntd(shard, a, b, m, unit)
        else:
            u, c = _shard_ntd(shard, a, b, m)
        ids_all.append(u)
        cnt_all.append(c)
    ids = np.concatenate(ids_all)
    cnt = np.concatenate(cnt_all)
    u, inv = np.unique(ids, return_inverse=True)
    counts = np.bincount(inv, weights=cnt).astype(np.int64) if len(u) else np.zeros(0, dtype=np.int64)
    return NextTokens(int(counts.sum()), u, counts, unit > 1)


@dataclass
class InfgramRow:
    """The ∞-gram estimate of one token: its context suffix length, the counts, the probability."""

    suffix_len: int  # tokens of context used (effective n - 1)
    prompt_cnt: int  # occurrences of that context (all positions when suffix_len is 0)
    cont_cnt: int  # occurrences of context + token
    prob: float


def infgram_suffix_lengths(index: IndexLike, ids: np.ndarray, longest: np.ndarray | None = None) -> np.ndarray:
    """For every position t of `ids`, the longest suffix of ids[:t] that occurs in the corpus.

    From the longest match starting at each position s (n_s, one batched search, or given):
    ids[s:t] occurs iff s + n_s >= t, so the answer is t minus the first s whose match reaches t.
    """
    ids = np.asarray(ids, dtype=np.int64)
    L = len(ids)
    if L == 0:
        return np.zeros(0, dtype=np.int64)
    n = index.longest_prefixes(ids) if longest is None else np.asarray(longest, dtype=np.int64)
    reach = np.maximum.accumulate(np.arange(L) + n)  # furthest end reached by a match from <= s
    t = np.arange(L)
    first = np.searchsorted(reach, t, side="left")  # first s with reach[s] >= t
    return t - np.minimum(first, t)


def infgram_probs(index: IndexLike, ids: np.ndarray, longest: np.ndarray | None = None,
                  cache: MutableMapping[bytes, int] | None = None) -> list[InfgramRow]:
    """The ∞-gram probability of every token of `ids` given what precedes it: all positions in
    two batched searches (the longest matches, then the counts of every context and context +
    token), instead of one engine call per token. `cache` (sequence bytes -> count) keeps counts
    across calls, so a growing text only counts its new contexts."""
    ids = np.asarray(ids, dtype=np.int64)
    L = len(ids)
    if L == 0:
        return []
    k = infgram_suffix_lengths(index, ids, longest)
    t = np.arange(L)
    with_ctx = np.flatnonzero(k > 0)
    seqs = [ids[i - k[i] : i] for i in with_ctx] + [ids[i - k[i] : i + 1] for i in with_ctx]
    counts = _cached_counts(index, seqs, cache)
    uni = index.unigram_counts()
    total = index.total_tokens
    prompt_cnt = np.full(L, total, dtype=np.int64)
    cont_cnt = uni[np.clip(ids, 0, len(uni) - 1)] * (ids < len(uni))
    prompt_cnt[with_ctx] = counts[: len(with_ctx)]
    cont_cnt = cont_cnt.astype(np.int64)
    cont_cnt[with_ctx] = counts[len(with_ctx) :]
    return [InfgramRow(int(k[i]), int(prompt_cnt[i]), int(cont_cnt[i]),
                       float(cont_cnt[i] / prompt_cnt[i]) if prompt_cnt[i] else 0.0) for i in t]


def _cached_counts(index: IndexLike, seqs: list[np.ndarray], cache: MutableMapping[bytes, int] | None) -> np.ndarray:
    if cache is None:
        return index.count_many(seqs) if seqs else np.zeros(0, dtype=np.int64)
    keys = [s.tobytes() for s in seqs]
    # this call's counts held here: a bounded cache may drop some while it fills
    have = {k: cache[k] for k in keys if k in cache}
    todo = list(dict.fromkeys(k for k in keys if k not in have))
    if todo:
        at = {k: i for i, k in enumerate(keys)}
        got = index.count_many([seqs[at[k]] for k in todo])
        have.update(zip(todo, got.tolist(), strict=True))
        cache.update(zip(todo, got.tolist(), strict=True))
    return np.array([have[k] for k in keys], dtype=np.int64)


def infgram_ntd(index: IndexLike, context: np.ndarray, max_support: int | None = None) -> tuple[int, NextTokens]:
    """The next-token distribution after the longest suffix of `context` that occurs: (its
    length, the distribution; exact, or sampled as `ntd` with a `max_support`)."""
    context = np.asarray(context, dtype=np.int64)
    if not len(context):
        return 0, ntd(index, context, max_support)
    k = int(infgram_suffix_lengths(index, np.append(context, 0))[-1])
    return k, ntd(index, context[len(context) - k :], max_support)


__all__ = ["DOC_END", "NextTokens", "sample_unit", "InfgramRow", "ntd", "ntd_with_unit", "unigram_ntd", "infgram_probs", "infgram_suffix_lengths", "infgram_ntd"]
