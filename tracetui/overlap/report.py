"""Overlap reports: items in, one verdict per item and a summary per benchmark out, streaming.

Verdicts (defaults quoted in the README): an item's *score* is the larger of its n-gram share and
its coverage (`measure`), over all the indexes given (n-gram share: the best index; coverage: the
union of covered characters). `contaminated` when the score reaches `contaminated` (0.5),
`suspicious` when it is above `suspicious` (0: any whole-word n-gram, or any match of at least
`min_span` tokens), `clean` otherwise. Near-verbatim coverage (`measure`) is reported next to
coverage, in its own column; it does not enter the verdict, which stays the reports' measure.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from index_tools.contract import IndexLike

from ..tracing.near import NearParams
from .items import Item
from .measure import IndexOverlap, Where, measure, merge_ranges

VERDICTS = ("clean", "suspicious", "contaminated")
BINS = 10  # coverage histogram: [0, 10%), ..., [90%, 100%]


@dataclass
class OverlapParams:
    n: int = 13  # word n-grams, as the GPT-3 and OLMo contamination reports
    min_span: int = 13  # tokens: the shortest match that counts toward coverage
    suspicious: float = 0.0
    contaminated: float = 0.5
    docs: int = 3  # documents reported per item (where its longest match occurs)
    batch: int = 256  # items per batched search
    normalize_space: bool = False
    near: bool = True  # near-verbatim coverage (its own column)
    near_cap: int = 32  # occurrences of a pair's rarer side looked at

    def verdict(self, score: float) -> str:
        if score >= self.contaminated:
            return "contaminated"
        return "suspicious" if score > self.suspicious else "clean"


@dataclass
class ItemReport:
    benchmark: str
    line: int
    id: str
    text: str
    words: int
    ngrams: int
    ngrams_found: int
    ngram_share: float
    coverage: float
    covered: list[tuple[int, int]]
    longest_tokens: int
    longest_chars: int
    longest_text: str
    longest_index: str
    longest_count: int
    where: list[Where]
    verdict: str
    near_coverage: float = 0.0  # coverage by exact matches or near-verbatim regions (measure.py)
    near_covered: list[tuple[int, int]] = field(default_factory=list)

    @property
    def score(self) -> float:
        return max(self.ngram_share, self.coverage)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["covered"] = [list(c) for c in self.covered]
        d["near_covered"] = [list(c) for c in self.near_covered]
        d["score"] = self.score
        return d


@dataclass
class BenchmarkSummary:
    benchmark: str
    items: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    coverage_histogram: list[int] = field(default_factory=lambda: [0] * BINS)
    ngram_share_sum: float = 0.0
    coverage_sum: float = 0.0
    near_coverage_sum: float = 0.0

    def add(self, r: ItemReport) -> None:
        self.items += 1
        self.verdicts[r.verdict] += 1
        self.coverage_histogram[min(BINS - 1, int(r.coverage * BINS))] += 1
        self.ngram_share_sum += r.ngram_share
        self.coverage_sum += r.coverage
        self.near_coverage_sum += r.near_coverage

    def share(self, verdict: str) -> float:
        return self.verdicts[verdict] / self.items if self.items else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "items": self.items, "verdicts": self.verdicts,
                "shares": {v: self.share(v) for v in VERDICTS},
                "mean_ngram_share": self.ngram_share_sum / self.items if self.items else 0.0,
                "mean_coverage": self.coverage_sum / self.items if self.items else 0.0,
                "mean_near_coverage": self.near_coverage_sum / self.items if self.items else 0.0,
                "coverage_histogram": self.coverage_histogram}


def _union(parts: list[list[tuple[int, int]]], one_chars: int,
           prefix: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """The union of the indexes' character ranges and its non-space characters: one index's own
    count, or, as ranges of different indexes may overlap, the union's (`prefix`: non-space
    characters before each position)."""
    merged = merge_ranges([c for part in parts for c in part])
    if len(parts) == 1:
        return merged, one_chars
    return merged, sum(int(prefix[b] - prefix[a]) for a, b in merged)


def _combine(item: Item, per_index: list[IndexOverlap], p: OverlapParams) -> ItemReport:
    text = item.text
    prefix = per_index[0].nonspace
    merged, inside = _union([o.covered for o in per_index], per_index[0].covered_chars, prefix)
    coverage = inside / max(1, int(prefix[-1]))
    near, near_inside = _union([o.near_covered for o in per_index], per_index[0].near_covered_chars, prefix)
    best_ngram = max(per_index, key=lambda o: (o.ngram_share, o.ngrams))
    longest = max(per_index, key=lambda o: o.longest_span[1] - o.longest_span[0])
    a, b = longest.longest_span
    share = best_ngram.ngram_share
    return ItemReport(item.benchmark, item.line, item.id, text, best_ngram.words, best_ngram.ngrams,
                      best_ngram.ngrams_found, share, coverage, merged, longest.longest_tokens, b - a, text[a:b],
                      longest.index if b > a else "", longest.longest_count, longest.where,
                      p.verdict(max(share, coverage)), near_inside / max(1, int(prefix[-1])), near)


def run_overlap(indexes: list[IndexLike], items: Iterable[Item], params: OverlapParams) -> Iterator[ItemReport]:
    """Reports in item order, `params.batch` items per batched search: memory follows the batch,
    not the number of items."""
    batch: list[Item] = []

    def flush() -> Iterator[ItemReport]:
        near = NearParams(cap=params.near_cap) if params.near else None
        per = [measure(ix, [it.text for it in batch], params.n, params.min_span, params.docs, near=near)
               for ix in indexes]
        for k, it in enumerate(batch):
            yield _combine(it, [m[k] for m in per], params)

    for item in items:
        batch.append(item)
        if len(batch) >= params.batch:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


class TopItems:
    """The `k` items of highest score seen so far (ties: first seen), for reports and the app."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._heap: list[tuple[float, int, ItemReport]] = []
        self._seen = 0

    def add(self, r: ItemReport) -> None:
        self._seen += 1
        entry = (r.score, -self._seen, r)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, entry)
        elif entry[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, entry)

    def sorted(self) -> list[ItemReport]:
        return [e[2] for e in sorted(self._heap, key=lambda e: (-e[0], -e[1]))]


def markdown(summaries: list[BenchmarkSummary], top: list[ItemReport], params: OverlapParams,
             indexes: list[str], interrupted: bool) -> str:
    """A report to keep or paste: parameters, a table per benchmark, the coverage histogram and
    the items of highest score with their longest match."""
    lines = ["# Overlap report", ""]
    lines.append(f"Indexes: {', '.join(f'`{n}`' for n in indexes)}. Word n-grams: n = {params.n}; coverage counts "
                 f"whole-word matches of at least {params.min_span} tokens. Verdicts on score = max(n-gram share, "
                 f"coverage): contaminated at >= {params.contaminated:.0%}, suspicious above {params.suspicious:.0%}.")
    if interrupted:
        lines += ["", "**Interrupted**: the figures cover the items processed before the stop."]
    lines += ["", "| benchmark | items | clean | suspicious | contaminated | mean n-gram share | mean coverage "
              "| mean near-verbatim coverage |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        j = s.to_json()
        lines.append(f"| {_md(s.benchmark)} | {s.items} | " + " | ".join(
            f"{s.verdicts[v]} ({s.share(v):.1%})" for v in VERDICTS)
                     + f" | {j['mean_ngram_share']:.1%} | {j['mean_coverage']:.1%} | {j['mean_near_coverage']:.1%} |")
    for s in summaries:
        lines += ["", f"## {_md(s.benchmark)}: coverage histogram", "", "| coverage | items |", "|---|---:|"]
        for k, c in enumerate(s.coverage_histogram):
            lines.append(f"| {10 * k}-{10 * (k + 1)}% | {c} |")
    if top:
        lines += ["", "## Items of highest score", "",
                  "| benchmark | item | verdict | n-gram share | coverage | near-verbatim coverage "
                  "| longest match (tokens) | where |",
                  "|---|---|---|---:|---:|---:|---|---|"]
        for r in top:
            where = ", ".join(f"{_md(w.index)}:{w.doc}" for w in r.where)
            lines.append(f"| {_md(r.benchmark)} | {_md(r.id)} (line {r.line}) | {r.verdict} | {r.ngram_share:.1%} | "
                         f"{r.coverage:.1%} | {r.near_coverage:.1%} | {_md(_clip(r.longest_text, 80))} ({r.longest_tokens}) | {where} |")
    return "\n".join(lines) + "\n"


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _md(text: str) -> str:
    """Table-safe and inert: no pipes, no HTML, no control characters."""
    out = "".join(ch if ch.isprintable() else " " for ch in text)
    return out.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
