"""Span finding (OLMoTrace section 1): maximal, self-contained, whole-word verbatim matches.

Every step is vectorised over all start positions; the only per-position work is inside the
engine's lock-step binary search.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

import numpy as np

from index_tools.contract import IndexLike
from index_tools.words import BEGINS, CONTINUES


@dataclass
class RawSpan:
    """A verbatim match: tokens [l, r) of the response."""

    l: int
    r: int
    count: int
    logprob: float  # sum of log(count(t)/N) over its tokens


def delimiter_ids(index: IndexLike, delimiters: tuple[str, ...]) -> np.ndarray:
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


def still_valid(old_ids: np.ndarray, old_lengths: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Which positions of `ids` keep the longest match computed for `old_ids` (a growing or
    edited text): those before the first changed token whose match ended before it -- a match
    that reached the change could now be longer or shorter. `old_lengths` < 0: not computed."""
    m = min(len(old_ids), len(ids))
    diff = np.flatnonzero(old_ids[:m] != ids[:m]) if m else np.zeros(0, dtype=np.int64)
    common = int(diff[0]) if len(diff) else m
    keep = np.zeros(len(ids), dtype=bool)
    prev = old_lengths[:common]
    keep[:common] = (prev >= 0) & (np.arange(common) + prev < common)
    return keep


class _Counter:
    """Counts of the reply's spans in one index: each distinct span is searched once per call
    (its suffix-array ranges serve its substring, capped and exact whole-word counts), and
    results are kept in the caller's content-keyed cache across calls (incremental tracing)."""

    def __init__(self, index: IndexLike, ids: np.ndarray, cache: MutableMapping[bytes, int] | None) -> None:
        self.index, self.ids = index, ids
        self.cache = cache if cache is not None else {}
        self._ranges: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _ranges_of(self, pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        todo = sorted({p for p in pairs if p not in self._ranges})
        if todo:
            lo, hi = self.index.find_ranges([self.ids[a:b] for a, b in todo])
            for j, p in enumerate(todo):
                self._ranges[p] = (lo[:, j], hi[:, j])
        return (np.stack([self._ranges[p][0] for p in pairs], axis=1),
                np.stack([self._ranges[p][1] for p in pairs], axis=1))

    def prefetch(self, l: np.ndarray, r: np.ndarray) -> None:
        """Search the ranges of many spans in one batch (one lock-step search for all)."""
        pairs = [p for p in zip(l.tolist(), r.tolist(), strict=True)
                 if p[1] > p[0] and b"s" + self.ids[p[0] : p[1]].tobytes() not in self.cache]
        if pairs:
            self._ranges_of(pairs)

    def counts(self, l: np.ndarray, r: np.ndarray, mode: str, cap: int | None = None) -> np.ndarray:
        """mode "s": substring counts; "w": whole-word counts, exact, or up to cap + 1 with a cap."""
        tag = (mode if cap is None else f"{mode}{cap}:").encode()
        pairs = list(zip(l.tolist(), r.tolist(), strict=True))
        keys = [tag + self.ids[a:b].tobytes() for a, b in pairs]
        exact = [b"w" + k[len(tag):] for k in keys] if cap is not None else keys
        out = np.zeros(len(pairs), dtype=np.int64)
        todo: list[int] = []
        for i, (k, e) in enumerate(zip(keys, exact, strict=True)):
            if k in self.cache:
                out[i] = self.cache[k]
            elif e in self.cache:  # an exact count answers a capped one
                out[i] = min(self.cache[e], (cap or 0) + 1)
            else:
                todo.append(i)
        if todo:
            lo, hi = self._ranges_of([pairs[i] for i in todo])
            if mode == "s":
                got = (hi - lo).sum(axis=0)
            else:
                m = np.array([pairs[i][1] - pairs[i][0] for i in todo], dtype=np.int64)
                got = self.index.word_counts(lo, hi, m, cap)
            out[todo] = got
            for i, c in zip(todo, got.tolist(), strict=True):
                self.cache[keys[i]] = c
        return out


def word_starts(index: IndexLike, ids: np.ndarray, whole_words: bool = True) -> np.ndarray:
    """Per position of a reply, can a span start (and the span before end) there? Whole-word
    mode: where the word-boundary rule holds (`WordBoundaries.boundaries`: the reply's start, or
    a non-word character just before or just after); the published mode uses the token-level
    set (what infini-gram's `bow_ids` holds)."""
    words = index.tokenizer.word_boundaries()
    if whole_words:
        return words.boundaries(ids)[: len(ids)]
    mask = words.static_mask
    return (ids < len(mask)) & mask[np.minimum(ids, len(mask) - 1)]


def find_spans(
    index: IndexLike,
    ids: np.ndarray,
    *,
    delimiters: tuple[str, ...] = (".", "\n"),
    min_len: int = 1,
    max_cnt: int = 1_000_000,
    lengths: np.ndarray | None = None,
    witnessed: np.ndarray | None = None,
    count_cache: MutableMapping[bytes, int] | None = None,
    whole_words: bool = True,
    keep_lowest: int | None = None,
) -> list[RawSpan]:
    """Steps 1-7 of the reference. `lengths` (per position) may be passed in by incremental tracing,
    with `witnessed` (per position: the longest match is known to occur as whole words).

    `keep_lowest=K` returns only the K spans of lowest unigram log-probability (section 2's top-K,
    in position order), with the same result as filtering all and then keeping K, but lazily: a
    whole-word count of a very frequent span (needed to decide `max_cnt`, or to report it) costs
    a walk over the changes of class among its following tokens, so only spans that can be shown
    pay for one -- and the frequent ones, of high log-probability, are the last to be considered.

    With `whole_words` (the default) a span is whole words on the corpus side too: its count and
    its existence are those of occurrences whose two edges are word boundaries there, and a span
    whose longest match starts or ends inside corpus words is shortened to its longest whole-word
    match.
    Without it, occurrences inside longer words count, as in the published pipeline.
    """
    ids = np.asarray(ids, dtype=np.int64)
    L = len(ids)
    if L == 0:
        return []
    bow = word_starts(index, ids, whole_words)
    positions = np.flatnonzero(bow)
    if lengths is None:
        if whole_words:
            lengths, witnessed = index.longest_prefixes_witnessed(ids, positions)
        else:
            lengths, witnessed = index.longest_prefixes(ids, positions), np.zeros(len(positions), dtype=bool)
    else:
        lengths = lengths[positions]
        witnessed = witnessed[positions] if witnessed is not None else np.zeros(len(positions), dtype=bool)
    delim = delimiter_ids(index, delimiters)
    counter = _Counter(index, ids, count_cache)
    if whole_words:
        l, r = whole_word_matches(index, ids, bow, positions, lengths, witnessed, delim, counter)
    else:
        l, r = candidate_spans(lengths, positions, ids, bow, delim)
    keep = (r - l) >= max(1, min_len)
    l, r = l[keep], r[keep]
    # Maximal only (step 6), applied before counting: a candidate whose r does not pass every
    # earlier candidate's r lies inside an earlier one, which was either kept (so this one is
    # not maximal) or dropped for its count (and a sub-span occurs at least as often, so this
    # one would be dropped too). Same result as the reference order, far fewer counts.
    prev_max = np.maximum.accumulate(np.concatenate([[-1], r[:-1]])) if len(r) else r
    keep = r > prev_max
    l, r = l[keep], r[keep]
    counts = counter.counts(l, r, "s")
    logp = unigram_logprob(index, ids, l, r)
    if not whole_words:
        keep = counts <= max_cnt
        spans = [RawSpan(int(a), int(b), int(c), float(p))
                 for a, b, c, p in zip(l[keep], r[keep], counts[keep], logp[keep], strict=True)]
        return lowest_logprob(spans, keep_lowest)
    # Whole words: substring counts bound whole-word counts from above, so a span at or under
    # max_cnt survives the filter for sure; one over it needs a whole-word count capped at
    # max_cnt. Spans are decided in the order section 2 takes them (lowest log-probability
    # first) until K survive; survivors then get their exact whole-word counts.
    order = np.lexsort((l, logp)) if keep_lowest is not None else np.arange(len(l))
    survivors: list[int] = []
    known: dict[int, int] = {}  # capped counts at or under max_cnt are exact
    pending = list(order.tolist())
    want = len(pending) if keep_lowest is None else keep_lowest
    while pending and len(survivors) < want:
        batch, pending = pending[: want - len(survivors)], pending[want - len(survivors) :]
        over = [i for i in batch if counts[i] > max_cnt]
        if over:
            idx = np.array(over)
            capped = counter.counts(l[idx], r[idx], "w", cap=max_cnt)
            dropped = {i for i, c in zip(over, capped.tolist(), strict=True) if c > max_cnt}
            known.update({i: c for i, c in zip(over, capped.tolist(), strict=True) if c <= max_cnt})
            batch = [i for i in batch if i not in dropped]
        survivors += batch
    survivors.sort()
    todo = np.array([i for i in survivors if i not in known], dtype=np.int64)
    if len(todo):
        known.update(zip(todo.tolist(), counter.counts(l[todo], r[todo], "w").tolist(), strict=True))
    return [RawSpan(int(l[i]), int(r[i]), int(known[i]), float(logp[i])) for i in survivors]


def whole_word_matches(index: IndexLike, ids: np.ndarray, bow: np.ndarray, positions: np.ndarray,
                       lengths: np.ndarray, witnessed: np.ndarray, delim: np.ndarray | None = None,
                       counter: _Counter | None = None) -> tuple[np.ndarray, np.ndarray]:
    """From each word start, its longest match that is whole words in the text and in the corpus
    (cut at the first inner delimiter of `delim`, if any): steps 2-3 and `_corpus_word_ends`.
    The span finder and the overlap reports both start from these (l, r)."""
    delim = np.zeros(0, dtype=np.int64) if delim is None else delim
    l, r = candidate_spans(lengths, positions, ids, bow, delim)
    counter = counter if counter is not None else _Counter(index, ids, None)
    return l, _corpus_word_ends(index, ids, bow, l, r, positions + lengths, witnessed, counter)


def lowest_logprob(spans: list[RawSpan], k: int | None) -> list[RawSpan]:
    """Section 2: the k spans of lowest log-probability (ties: leftmost), in position order."""
    if k is None:
        return spans
    chosen = sorted(range(len(spans)), key=lambda i: (spans[i].logprob, spans[i].l))[:k]
    return [spans[i] for i in sorted(chosen, key=lambda i: spans[i].l)]


def _corpus_word_ends(index: IndexLike, ids: np.ndarray, bow: np.ndarray, l: np.ndarray, r: np.ndarray,
                      match_end: np.ndarray, witnessed: np.ndarray, counter: _Counter) -> np.ndarray:
    """Shorten each candidate [l, r) to its longest prefix that is whole words in the corpus too.

    No search is needed for a candidate that stops before the end of its longest match
    (r < match_end) when its own tokens settle both edges -- its first character is a non-word
    one and the two tokens around r decide the boundary there: the occurrence that matched
    further holds those same tokens. Nor for one whose longest match was seen whole words by the
    longest-prefix search itself (`witnessed`). The rest is checked for a whole-word occurrence,
    and moved back one reply boundary at a time while it has none.
    """
    L = len(ids)
    words = index.tokenizer.word_boundaries()
    opens = words.opens_with_break(ids)
    tail = words.tail_class[np.clip(ids, 0, len(words.tail_class) - 1)]
    head = words.head_class[np.clip(ids, 0, len(words.head_class) - 1)]
    # per position p (0 < p < L): the boundary there is settled by ids[p-1] and ids[p] alone
    settled = np.zeros(L + 1, dtype=bool)
    settled[1:L] = (tail[:-1] == BEGINS) | (head[1:] == BEGINS) | (
        (tail[:-1] == CONTINUES) & (head[1:] == CONTINUES) & ~words.head_inside[np.clip(ids[1:], 0, len(words.head_inside) - 1)])
    bidx = np.where(np.append(bow, True), np.arange(L + 1), -1)
    prev_boundary = np.maximum.accumulate(bidx)
    r = r.copy()

    def safe_of(todo: np.ndarray) -> np.ndarray:
        rt = r[todo]
        return (rt < match_end[todo]) & opens[l[todo]] & settled[np.minimum(rt, L)]

    todo = np.flatnonzero(r > l)
    safe = safe_of(todo) | ((r[todo] == match_end[todo]) & witnessed[todo])
    # one search for everything counted next: the candidates to check, their next-shorter
    # variants, and every candidate that can end up maximal (only checked candidates can
    # shrink, so a candidate is a contender unless a safe earlier one already reaches as far)
    check = todo[~safe]
    fixed_r = r.copy()
    fixed_r[check] = l[check]
    prev_fixed = np.maximum.accumulate(np.concatenate([[-1], fixed_r[:-1]])) if len(r) else r
    likely = (r > prev_fixed) & (r > l)
    likely[check] = True
    shorter = prev_boundary[np.maximum(r[check] - 1, 0)]
    keep_short = shorter > l[check]
    counter.prefetch(np.concatenate([l[likely], l[check][keep_short]]),
                     np.concatenate([r[likely], shorter[keep_short]]))
    todo = check
    while len(todo):
        found = counter.counts(l[todo], r[todo], "w", cap=0) > 0
        todo = todo[~found]
        # the previous reply boundary; a shorter candidate is re-checked only if it is not safe
        r[todo] = np.where(r[todo] - 1 > l[todo], prev_boundary[np.maximum(r[todo] - 1, 0)], l[todo])
        r[todo] = np.maximum(r[todo], l[todo])
        todo = todo[r[todo] > l[todo]]
        todo = todo[~safe_of(todo)]
    return r


def unigram_logprob(index: IndexLike, ids: np.ndarray, l: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Sum of log(count(t)/N) over each span's tokens, via a prefix sum."""
    counts = index.unigram_counts()
    n = max(1, index.total_tokens)
    c = counts[np.minimum(ids, len(counts) - 1)].astype(np.float64)
    lp = np.log(np.maximum(c, 1.0) / n)
    prefix = np.concatenate([[0.0], np.cumsum(lp)])
    return prefix[r] - prefix[l]
