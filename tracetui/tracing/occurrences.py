"""Occurrences of token sequences as the tracer, near-verbatim spans and overlap read them:
runs of suffix-array ranks per sequence, a fixed-seed sample of them, and the characters a span
of tokens covers in the text it was encoded from. Shared below `pipeline`, `near` and
`overlap`, so none of them reaches into another's helpers."""

from __future__ import annotations

import numpy as np

from index_tools.contract import IndexLike


def occurrence_runs(index: IndexLike, seqs: list[np.ndarray], whole_words: bool) -> list[list[tuple[int, int, int]]]:
    """Per sequence, its (shard, first rank, end rank) runs of occurrences (whole-word ones, or
    every substring occurrence), in shard then rank order: one batched search for all."""
    if whole_words:
        return index.find_words_many(seqs)
    lo, hi = index.find_ranges(seqs)
    return [[(k, int(lo[k, j]), int(hi[k, j])) for k in range(lo.shape[0]) if hi[k, j] > lo[k, j]]
            for j in range(len(seqs))]


def sample_runs(runs: list[tuple[int, int, int]], k: int, seed: int) -> list[tuple[int, int]]:
    """Up to k occurrences (shard, rank) of some runs, drawn without replacement, fixed seed."""
    sizes = np.array([b - a for _, a, b in runs], dtype=np.int64)
    total = int(sizes.sum())
    if not total:
        return []
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(total, size=min(k, total), replace=False))
    bounds = np.cumsum(sizes)
    out = []
    for g in picks.tolist():
        i = int(np.searchsorted(bounds, g, side="right"))
        shard, a, _ = runs[i]
        out.append((shard, int(a + g - (bounds[i] - sizes[i]))))
    return out


def char_range(text: str, offsets: np.ndarray, l: int, r: int) -> tuple[int, int]:
    """Characters covered by tokens [l, r), without leading/trailing whitespace."""
    start = int(offsets[l][0])
    end = int(offsets[r - 1][1])
    end = min(max(end, start), len(text))
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


__all__ = ["char_range", "occurrence_runs", "sample_runs"]
