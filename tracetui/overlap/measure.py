"""How much of each test item sits verbatim in an index, for many items at once.

The items of a batch are tokenized and laid end to end, and every word start of every item gets its
longest match in one lock-step search (each match stopped at its item's end), then its longest
*whole-word* match by the span finder's own rule (`tracing.spans`): an occurrence counts only when
the corpus continues with a word start, the document ends, or the corpus ends. From those:

- words: an item's words are its word starts (as the tracer sees them: tokens that begin with a
  non-word character, and the item's first token) whose run up to the next word start holds a word
  character; punctuation and spaces stay with the word before them. A word n-gram is n words in a
  row, as tokens, with what trails the last word;
- `ngram_share`: the share of the item's word n-grams that occur as whole words in the corpus (an
  item of fewer than n words is one n-gram: all its words);
- `coverage`: the share of the item's non-space characters inside whole-word matches of at least
  `min_span` tokens;
- `longest`: the longest whole-word match (tokens, characters, text) and where it occurs;
- `near_coverage`: coverage where a match may also be two maximal whole-word matches one word
  apart that a document holds together with that word changed, added or dropped (near-verbatim,
  `tracing.near`), the two of at least `min_span` tokens together: the share of non-space
  characters inside exact matches of `coverage` or inside such regions. A passage copied with
  one word changed every dozen tokens has no exact match of 13 tokens, and is covered here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from index_tools.contract import IndexLike
from index_tools.words import is_word_char
from tracetui.tracing.near import NearParams, Pair, candidate_pairs, find_near
from tracetui.tracing.occurrences import occurrence_runs, sample_runs
from tracetui.tracing.spans import whole_word_matches, word_starts

_ASCII_WORD = np.array([is_word_char(chr(c)) for c in range(128)], dtype=bool)


@dataclass
class Where:
    """A document holding an item's longest match."""

    index: str
    doc: int
    source: str


@dataclass
class IndexOverlap:
    """One item against one index."""

    index: str
    tokens: int
    words: int
    ngrams: int
    ngrams_found: int
    covered: list[tuple[int, int]]  # character ranges of the item inside matches >= min_span tokens
    covered_chars: int  # non-space characters among them
    # prefix sums of the item's non-space characters (to unite indexes); not part of equality
    nonspace: np.ndarray = field(compare=False, repr=False)
    longest_tokens: int = 0
    longest_span: tuple[int, int] = (0, 0)  # characters of the item
    longest_count: int = 0  # whole-word occurrences (capped at `count_cap` + 1)
    where: list[Where] = field(default_factory=list)
    #: exact coverage united with the near-verbatim regions (`near_coverage` above): ranges and
    #: their non-space characters; the regions alone, each (start, end) of the item
    near_covered: list[tuple[int, int]] = field(default_factory=list)
    near_covered_chars: int = 0
    near_regions: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ngram_share(self) -> float:
        return self.ngrams_found / self.ngrams if self.ngrams else 0.0


#: near-verbatim spans as overlap looks for them (the tracer's constants)
NEAR = NearParams()

_SPACES = np.array([9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x2028, 0x2029, 0x3000])


def _char_prefixes(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums over the text's characters of word characters (the one definition in
    index_tools.words) and of non-space characters, from one pass over its code points."""
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    flags = np.zeros(len(cps), dtype=bool)
    low = cps < 128
    flags[low] = _ASCII_WORD[cps[low]]
    high = np.flatnonzero(~low)
    if len(high):
        u, inv = np.unique(cps[high], return_inverse=True)
        flags[high] = np.array([is_word_char(chr(int(c))) for c in u], dtype=bool)[inv]
    zero = np.zeros(1, dtype=np.int64)
    return np.concatenate([zero, np.cumsum(flags)]), np.concatenate([zero, np.cumsum(~np.isin(cps, _SPACES))])


def _source(meta: dict) -> str:
    path = str(meta.get("path", ""))
    line = meta.get("linenum")
    return f"{path}:{line}" if path and line else path


def measure(index: IndexLike, texts: list[str], n: int = 13, min_span: int = 13, docs: int = 3,
            seed: int = 0, count_cap: int = 1000, near: NearParams | None = NEAR) -> list[IndexOverlap]:
    """Overlap of every text with `index`, in one batched search for all of them (and, with
    `near`, one batched lookup of the near-verbatim pairs of all of them; None: none looked for,
    the near-verbatim figures are the exact ones)."""
    tok = index.tokenizer
    encoded = [tok.encode_with_offsets(t) for t in texts]
    sizes = np.array([len(ids) for ids, _ in encoded], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    L = int(starts[-1])
    out = []
    if L == 0:
        return [IndexOverlap(index.name, 0, 0, 0, 0, [], 0, _char_prefixes(t)[1]) for t in texts]
    ids = np.concatenate([np.asarray(e[0], dtype=np.int64) for e in encoded if len(e[0])])
    item_of = np.repeat(np.arange(len(texts)), sizes)
    # per item: an unsure last token is decided by its own item's end, not by the next item
    bow = np.concatenate([word_starts(index, np.asarray(e[0], dtype=np.int64)) for e in encoded if len(e[0])])
    bow[starts[:-1][sizes > 0]] = True  # every item starts a word (and stops the one before)
    positions = np.flatnonzero(bow)
    ends = starts[1:][item_of[positions]]
    lengths, witnessed = index.longest_prefixes_witnessed(ids, positions, stops=ends)
    l, r = whole_word_matches(index, ids, bow, positions, lengths, witnessed)
    # one batch for the longest match of every item: its count and where it occurs
    best: list[tuple[int, int] | None] = []
    for k in range(len(texts)):
        a, b = np.searchsorted(positions, [starts[k], starts[k + 1]])
        if b > a and (r[a:b] - l[a:b]).max() > 0:
            j = a + int(np.argmax(r[a:b] - l[a:b]))
            best.append((int(l[j]), int(r[j])))
        else:
            best.append(None)
    seqs = [ids[x:y] for x, y in (b for b in best if b is not None)]
    counts = index.count_words_many(seqs, cap=count_cap) if seqs else np.zeros(0, dtype=np.int64)
    runs = occurrence_runs(index, seqs, True) if seqs and docs > 0 else [[] for _ in seqs]
    # where: the sampled occurrences of every item's longest match, looked up in one call (a
    # served index answers it in one round trip)
    samples = [sample_runs(run, docs, seed) for run in runs]
    flat = [(shard, rank, 0) for sample in samples for shard, rank in sample]
    looked = iter(index.windows(flat, ()) if flat else [])
    found = iter(zip(counts.tolist(), samples, strict=True))
    regions = _near_regions(index, texts, encoded, starts, positions, l, r, min_span, near)
    for k, text in enumerate(texts):
        t0, t1 = int(starts[k]), int(starts[k + 1])
        offs = np.asarray(encoded[k][1], dtype=np.int64).reshape(-1, 2)
        a, b = np.searchsorted(positions, [t0, t1])
        pos, rl, rr = positions[a:b] - t0, l[a:b] - t0, r[a:b] - t0
        words_pre, nonspace = _char_prefixes(text)
        # words: word starts whose run up to the next word start holds a word character
        nxt = np.append(pos[1:], t1 - t0)
        cs = offs[pos, 0] if len(pos) else pos
        ce = offs[np.maximum(nxt - 1, 0), 1] if len(pos) else pos
        has_word = (words_pre[np.minimum(ce, len(text))] - words_pre[np.minimum(cs, len(text))]) > 0
        wi = np.flatnonzero(has_word)  # indexes into pos
        n_words = len(wi)
        if n_words == 0:
            grams, hits = 0, 0
        else:
            w_end = np.append(pos[wi[1:]], t1 - t0)  # token end of each word (what trails it included)
            reach = rr[wi]  # whole-word match from each word start reaches here
            if n_words >= n:
                last = np.arange(n - 1, n_words)
                grams, hits = len(last), int(np.count_nonzero(reach[last - (n - 1)] >= w_end[last]))
            else:
                grams, hits = 1, int(reach[0] >= w_end[-1])
        # coverage: maximal whole-word matches of at least min_span tokens
        keep = (rr - rl) >= max(1, min_span)
        prev = np.maximum.accumulate(np.concatenate([[-1], rr[:-1]])) if len(rr) else rr
        keep &= rr > prev
        diff = np.zeros(len(text) + 1, dtype=np.int64)
        spans = []
        for x, y in zip(rl[keep].tolist(), rr[keep].tolist(), strict=True):
            c0, c1 = int(offs[x, 0]), int(offs[y - 1, 1])
            while c0 < c1 and text[c0].isspace():
                c0 += 1
            spans.append((c0, c1))
            diff[c0] += 1
            diff[c1] -= 1
        inside = np.cumsum(diff)[: len(text)] > 0
        covered_chars = int(np.count_nonzero(inside & (np.diff(nonspace) > 0)))
        res = IndexOverlap(index.name, t1 - t0, n_words, grams, hits, merge_ranges(spans), covered_chars, nonspace)
        res.near_regions = regions[k]
        res.near_covered = merge_ranges(spans + regions[k])
        res.near_covered_chars = covered_chars if not regions[k] else sum(
            int(nonspace[b] - nonspace[a]) for a, b in res.near_covered)
        if (pair := best[k]) is not None:
            x, y = pair
            c0, c1 = int(offs[x - t0, 0]), int(offs[y - 1 - t0, 1])
            while c0 < c1 and text[c0].isspace():
                c0 += 1
            cnt, sample = next(found)
            res.longest_tokens, res.longest_span, res.longest_count = y - x, (c0, c1), int(cnt)
            for _ in sample:
                occ = next(looked)
                res.where.append(Where(index.name, occ.doc_id, _source(occ.metadata)))
        out.append(res)
    return out


def _near_regions(index: IndexLike, texts: list[str], encoded: list[tuple[np.ndarray, np.ndarray]],
                  starts: np.ndarray, positions: np.ndarray, l: np.ndarray, r: np.ndarray, min_span: int,
                  near: NearParams | None) -> list[list[tuple[int, int]]]:
    """Per item, the character ranges of its near-verbatim regions: pairs of its maximal
    whole-word matches (of at least `min_span` tokens together) one word apart, looked up for all
    items at once (`tracing.near.find_near`: one count, one search, one `windows` call)."""
    out: list[list[tuple[int, int]]] = [[] for _ in texts]
    if near is None:
        return out
    pairs: list[tuple[int, Pair]] = []
    for k, text in enumerate(texts):
        t0, t1 = int(starts[k]), int(starts[k + 1])
        a, b = np.searchsorted(positions, [t0, t1])
        rl, rr = l[a:b] - t0, r[a:b] - t0
        prev = np.maximum.accumulate(np.concatenate([[-1], rr[:-1]])) if len(rr) else rr
        keep = (rr > rl) & (rr > prev)
        if np.count_nonzero(keep) < 2:
            continue
        spans = list(zip(rl[keep].tolist(), rr[keep].tolist(), strict=True))
        ids, offs = encoded[k]
        pairs += [(k, p) for p in candidate_pairs(text, ids, offs, spans, near,
                                                  min_total=max(1, min_span))]
    for (k, p), f in zip(pairs, find_near(index, [p for _, p in pairs], near), strict=True):
        if f.hits:
            out[k].append((p.start, p.end))
    return out


def merge_ranges(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
