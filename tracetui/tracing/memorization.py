"""The memorization lens of a text: per token, how strongly the corpus predicts it (∞-gram), and
a score per reply.

Memorization score (defined once, here; the README quotes it):
- `covered_share`: the share of the text's characters inside a verbatim corpus match of at least
  `min_tokens` tokens (default 8; any match, whole words or not -- the ∞-gram view);
- `mean_effective_n`: the mean over tokens of the ∞-gram effective n (1 + the length of the
  longest preceding context that occurs in the corpus).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from index_tools.contract import IndexLike
from index_tools.ngram import infgram_probs

from .lru import LRU
from .spans import still_valid

MIN_TOKENS = 8
COUNTS_CAP = 65_536  # contexts' counts kept across updates (least recently used dropped first)


@dataclass
class TokenRow:
    start: int  # characters of the text, [start, end)
    end: int
    text: str
    effective_n: int
    context_count: int
    count: int
    prob: float


@dataclass
class Memorization:
    tokens: list[TokenRow]
    covered_share: float
    mean_effective_n: float
    min_tokens: int

    def to_json(self) -> dict[str, Any]:
        return {"schema": "tracetui.infgram/1", "covered_share": self.covered_share,
                "mean_effective_n": self.mean_effective_n, "min_tokens": self.min_tokens,
                "tokens": [asdict(t) for t in self.tokens]}


class LensCache:
    """What the lens of a growing text (a streaming reply) can keep between updates: the longest
    match at each position whose match ended before the first changed token (it cannot change),
    and the counts of contexts already counted (the `COUNTS_CAP` most recently used). An
    update then searches only the new tail."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, dtype=np.int64)
        self.longest = np.zeros(0, dtype=np.int64)
        self.counts: LRU[bytes, int] = LRU(COUNTS_CAP)

    def longest_prefixes(self, index: IndexLike, ids: np.ndarray) -> np.ndarray:
        keep = np.flatnonzero(still_valid(self.ids, self.longest, ids))
        longest = np.full(len(ids), -1, dtype=np.int64)
        longest[keep] = self.longest[keep]
        todo = np.flatnonzero(longest < 0)
        if len(todo):
            longest[todo] = index.longest_prefixes(ids, todo)
        self.ids, self.longest = ids, longest
        return longest


def memorization(index: IndexLike, text: str, min_tokens: int = MIN_TOKENS,
                 cache: LensCache | None = None) -> Memorization:
    """All of it from one longest-prefix search and one batched count search (with a `cache`,
    of the positions and contexts not seen at the previous update only)."""
    ids, offsets = index.tokenizer.encode_with_offsets(text)
    if len(ids) == 0:
        return Memorization([], 0.0, 0.0, min_tokens)
    longest = cache.longest_prefixes(index, ids) if cache is not None else index.longest_prefixes(ids)
    rows = infgram_probs(index, ids, longest, cache.counts if cache is not None else None)
    tokens = []
    for i, r in enumerate(rows):
        a, b = int(offsets[i][0]), int(offsets[i][1])
        tokens.append(TokenRow(a, b, text[a:b], r.suffix_len + 1, r.prompt_cnt, r.cont_cnt, r.prob))
    # characters inside some match of >= min_tokens tokens: a difference array over token positions
    L = len(ids)
    cover = np.zeros(L + 1, dtype=np.int64)
    starts = np.flatnonzero(longest >= min_tokens)
    np.add.at(cover, starts, 1)
    np.add.at(cover, np.minimum(starts + longest[starts], L), -1)
    covered_tok = np.cumsum(cover)[:L] > 0
    chars = np.zeros(len(text) + 1, dtype=np.int64)
    for t in np.flatnonzero(covered_tok).tolist():
        chars[offsets[t][0]] += 1
        chars[offsets[t][1]] -= 1
    covered_chars = int(np.count_nonzero(np.cumsum(chars)[: len(text)] > 0))
    share = covered_chars / max(1, len(text))
    return Memorization(tokens, share, float(np.mean([t.effective_n for t in tokens])), min_tokens)
