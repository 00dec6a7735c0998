"""Span finding (OLMoTrace section 1): maximal, self-contained, whole-word verbatim matches.

Every step is vectorised over all start positions; the only per-position work is inside the
engine's lock-step binary search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index_tools.engine import Index
from index_tools.words import UNSURE


@dataclass
class RawSpan:
    """A verbatim match: tokens [l, r) of the response."""

    l: int
    r: int
    count: int
    logprob: float  # sum of log(count(t)/N) over its tokens


def delimiter_ids(index: Index, delimiters: tuple[str, ...]) -> np.ndarray:
    """Token ids whose text is exactly one of the delimiters (e.g. "." and newline)."""
    tok = index.tokenizer
    found: set[int] = set()
    for d in delimiters:
        ids = tok.encode(d)
        if len(ids) == 1:
            found.add(int(ids[0]))
    # Also tokens like "Ġ." are not delimiters; tokens that decode to exactly a delimiter are.
    return np.array(sorted(found), dtype=np.int64)


def candidate_spans(
    lengths: np.ndarray, positions: np.ndarray, ids: np.ndarray, bow: np.ndarray, delim: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 2-3: cut at the first inner delimiter, then shrink to whole words. Returns (l, r)."""
    L = len(ids)
    is_delim = np.isin(ids, delim)
    # next_delim[i] = smallest p >= i with a delimiter at p (L if none)
    idx = np.where(is_delim, np.arange(L), L)
    next_delim = np.minimum.accumulate(idx[::-1])[::-1] if L else idx
    next_delim = np.append(next_delim, L)
    l = positions
    r = l + lengths
    has = lengths > 0
    cut = np.where(has, np.minimum(r, next_delim[np.minimum(l, L)] + 1), l)
    r = np.where(has, cut, l)
    # whole words: the largest b <= r with b == L or bow at b
    is_boundary = np.append(bow, True)  # position L counts as a boundary
    bidx = np.where(is_boundary, np.arange(L + 1), -1)
    prev_boundary = np.maximum.accumulate(bidx)
    r = np.where(r > l, prev_boundary[r], l)
    r = np.maximum(r, l)
    return l, r


def word_starts(index: Index, ids: np.ndarray, whole_words: bool = True) -> np.ndarray:
    """Per position of a reply, does a word begin there? Whole-word mode decides tokens that open
    an incomplete character from the tokens after them; the published mode uses the token-level
    set (what infini-gram's `bow_ids` holds)."""
    words = index.tokenizer.word_boundaries()
    if whole_words:
        return words.starts(ids)
    mask = words.static_mask
    return (ids < len(mask)) & mask[np.minimum(ids, len(mask) - 1)]


def find_spans(
    index: Index,
    ids: np.ndarray,
    *,
    delimiters: tuple[str, ...] = (".", "\n"),
    min_len: int = 1,
    max_cnt: int = 1_000_000,
    lengths: np.ndarray | None = None,
    count_cache: dict[bytes, int] | None = None,
    whole_words: bool = True,
) -> list[RawSpan]:
    """Steps 1-7 of the reference. `lengths` (per position) may be passed in by incremental tracing.

    With `whole_words` (the default) a span is whole words on the corpus side too: its count and
    its existence are those of occurrences followed by a word start or a document end, and a span
    whose longest match ends inside corpus words is shortened to its longest whole-word match.
    Without it, occurrences inside longer words count, as in the published pipeline.
    """
    ids = np.asarray(ids, dtype=np.int64)
    L = len(ids)
    if L == 0:
        return []
    bow = word_starts(index, ids, whole_words)
    positions = np.flatnonzero(bow)
    if lengths is None:
        lengths = index.longest_prefixes(ids, positions)
    else:
        lengths = lengths[positions]
    l, r = candidate_spans(lengths, positions, ids, bow, delimiter_ids(index, delimiters))
    if whole_words:
        r = _corpus_word_ends(index, ids, bow, l, r, positions + lengths, count_cache)
    keep = (r - l) >= max(1, min_len)
    l, r = l[keep], r[keep]
    # Maximal only (step 6), applied before counting: a candidate whose r does not pass every
    # earlier candidate's r lies inside an earlier one, which was either kept (so this one is
    # not maximal) or dropped for its count (and a sub-span occurs at least as often, so this
    # one would be dropped too). Same result as the reference order, far fewer counts.
    prev_max = np.maximum.accumulate(np.concatenate([[-1], r[:-1]])) if len(r) else r
    keep = r > prev_max
    l, r = l[keep], r[keep]
    counts = _counts(index, ids, l, r, count_cache, whole_words)
    keep = counts <= max_cnt
    l, r, counts = l[keep], r[keep], counts[keep]
    logp = unigram_logprob(index, ids, l, r)
    return [RawSpan(int(a), int(b), int(c), float(p)) for a, b, c, p in zip(l, r, counts, logp, strict=True)]


def _corpus_word_ends(index: Index, ids: np.ndarray, bow: np.ndarray, l: np.ndarray, r: np.ndarray,
                      match_end: np.ndarray, cache: dict[bytes, int] | None) -> np.ndarray:
    """Shorten each candidate [l, r) to its longest prefix that ends a word in the corpus too.

    A candidate that stops before the end of its longest match (r < match_end) is followed, in
    the occurrence that matched further, by the reply's own next token -- a word start -- so it
    needs no search. The rest (the match ends exactly where the reply's word ends) is checked
    against whole-word counts, and moved back one reply word at a time while it has none.
    """
    L = len(ids)
    words = index.tokenizer.word_boundaries()
    unsure = words.class_of(ids) == UNSURE  # decided by the next 4 tokens: they must match too
    bidx = np.where(np.append(bow, True), np.arange(L + 1), -1)
    prev_boundary = np.maximum.accumulate(bidx)
    r = r.copy()
    todo = np.flatnonzero(r > l)
    safe = r[todo] < match_end[todo]
    rr = np.minimum(r[todo], L - 1)
    safe &= ~unsure[rr] | (r[todo] + 4 <= match_end[todo])
    todo = todo[~safe]
    while len(todo):
        counts = _counts(index, ids, l[todo], r[todo], cache, True)
        todo = todo[counts == 0]
        # the previous reply word end; a shorter candidate is re-checked only if it is not safe
        r[todo] = np.where(r[todo] - 1 > l[todo], prev_boundary[np.maximum(r[todo] - 1, 0)], l[todo])
        r[todo] = np.maximum(r[todo], l[todo])
        todo = todo[r[todo] > l[todo]]
        rr = np.minimum(r[todo], L - 1)
        safe = (r[todo] < match_end[todo]) & (~unsure[rr] | (r[todo] + 4 <= match_end[todo]))
        todo = todo[~safe]
    return r


def _counts(index: Index, ids: np.ndarray, l: np.ndarray, r: np.ndarray, cache: dict[bytes, int] | None,
            whole_words: bool) -> np.ndarray:
    out = np.zeros(len(l), dtype=np.int64)
    todo: list[int] = []
    keys: list[bytes] = []
    mode = b"w" if whole_words else b"s"
    for i, (a, b) in enumerate(zip(l.tolist(), r.tolist(), strict=True)):
        key = mode + ids[a:b].tobytes()
        keys.append(key)
        if cache is not None and key in cache:
            out[i] = cache[key]
        else:
            todo.append(i)
    if todo:
        counts = index.count_many([ids[l[i] : r[i]] for i in todo], whole_words=whole_words)
        out[todo] = counts
        if cache is not None:
            for i, c in zip(todo, counts.tolist(), strict=True):
                cache[keys[i]] = c
    return out


def unigram_logprob(index: Index, ids: np.ndarray, l: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Sum of log(count(t)/N) over each span's tokens, via a prefix sum."""
    counts = index.unigram_counts()
    n = max(1, index.total_tokens)
    c = counts[np.minimum(ids, len(counts) - 1)].astype(np.float64)
    lp = np.log(np.maximum(c, 1.0) / n)
    prefix = np.concatenate([[0.0], np.cumsum(lp)])
    return prefix[r] - prefix[l]
