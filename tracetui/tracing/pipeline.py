"""The whole trace: spans -> top-K -> documents -> BM25 -> levels -> highlights.

`Tracer.trace` is stateless from the caller's view, but it keeps content-keyed caches (longest
prefixes per token position, counts, sampled documents), so tracing a growing reply only
searches the tail again; the result always equals a from-scratch trace of the same text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from index_tools.contract import IndexLike
from index_tools.engine import Window
from index_tools.opening import IndexSet

from .lru import LRU
from .memorization import LensCache, memorization
from .merge import Highlight, merge_spans
from .near import NearParams, NearSpan, near_from_json, near_spans, near_to_json
from .occurrences import char_range, occurrence_runs, sample_runs
from .ranking import (
    HIGH,
    K1,
    LEVEL_RANK,
    MEDIUM,
    NORMALISER,
    B,
    bm25_scores,
    highest_level,
    level_of,
    relevance,
)
from .spans import RawSpan, find_spans, lowest_logprob, still_valid, word_starts


@dataclass(frozen=True)
class TraceParams:
    """Every constant of the published pipeline, named."""

    delimiters: tuple[str, ...] = (".", "\n")
    min_len: int = 1
    max_cnt: int = 1_000_000
    span_density: float = 0.05  # K = ceil(density x response tokens)
    docs_per_span: int = 10
    seed: int = 42
    long_context: int = 250  # tokens each side: document view and BM25 text
    snippet_context: int = 40  # tokens each side: list snippet
    bm25_k1: float = K1
    bm25_b: float = B
    normaliser: float = NORMALISER
    high: float = HIGH
    medium: float = MEDIUM
    #: Count only corpus occurrences that are whole words (a word boundary at both edges, as
    #: `index_tools.words` defines it). False reproduces the published pipeline, where "Hi" may be
    #: found inside "History".
    whole_words: bool = True
    #: Version of the word-boundary rule the spans were found under (2: both edges, on both
    #: sides): a saved trace made under another rule is traced again, not reused.
    word_rule: int = 2


@dataclass
class Span:
    index: str
    start: int  # character offsets into the response, [start, end)
    end: int
    text: str
    token_start: int
    token_end: int
    count: int
    unigram_logprob: float
    level: str = "low"
    documents: list[str] = field(default_factory=list)


@dataclass
class DocHit:
    span: int  # index into TraceResult.spans
    snippet: str
    snippet_match: tuple[int, int]
    window: str
    window_match: tuple[int, int]


@dataclass
class Document:
    id: str  # "<index>:<global doc id>"
    index: str
    shard: int
    doc: int
    metadata: dict[str, Any]
    hits: list[DocHit] = field(default_factory=list)
    score: float = 0.0
    relevance: float = 0.0
    level: str = "low"

    @property
    def spans(self) -> list[int]:
        return sorted({h.span for h in self.hits})

    @property
    def source(self) -> str:
        meta = self.metadata
        src = meta.get("path") or meta.get("metadata", {}).get("url") if isinstance(meta, dict) else None
        line = meta.get("linenum") if isinstance(meta, dict) else None
        return f"{src}:{line}" if src and line else str(src or f"doc {self.doc}")


@dataclass
class TraceResult:
    text: str
    prompt: str
    spans: list[Span]
    documents: list[Document]
    highlights: list[Highlight]
    timings_ms: dict[str, float]
    params: TraceParams
    #: index name -> fingerprint of the indexes traced against (a saved trace is reused only
    #: while they are unchanged)
    indexes: dict[str, str] = field(default_factory=dict)
    #: the memorization lens of the text against the first index (`Tracer.trace(lens=True)`):
    #: index, covered_share, mean_effective_n, min_tokens, tokens as [start, end, effective n, prob]
    memorization: dict[str, Any] | None = None
    #: near-verbatim spans (`Tracer.trace(near=...)`, `tracing.near`): None when not asked for
    near: list[NearSpan] | None = None
    near_params: NearParams | None = None

    def documents_for_span(self, span: int) -> list[Document]:
        return [d for d in self.documents if span in d.spans]

    def to_json(self) -> dict[str, Any]:
        out = {
            "schema": "tracetui.trace/1",
            "text": self.text,
            "prompt": self.prompt,
            "spans": [asdict(s) for s in self.spans],
            "documents": [
                {
                    "id": d.id, "index": d.index, "shard": d.shard, "doc": d.doc, "source": d.source,
                    "metadata": d.metadata, "score": d.score, "relevance": d.relevance, "level": d.level,
                    "spans": d.spans,
                    "hits": [
                        {"span": h.span, "snippet": h.snippet, "snippet_match": list(h.snippet_match),
                         "window": h.window, "window_match": list(h.window_match),
                         "window_spans": _spans_in(h.window, self.spans)}
                        for h in d.hits
                    ],
                }
                for d in self.documents
            ],
            "highlights": [asdict(h) for h in self.highlights],
            "timings_ms": self.timings_ms,
            "params": asdict(self.params),
            "indexes": self.indexes,
            "memorization": self.memorization,
        }
        if self.near is not None:  # a key of its own, only when asked for: the rest is unchanged
            out["near"] = {"params": asdict(self.near_params) if self.near_params else None,
                           "spans": near_to_json(self.near)}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TraceResult:
        """The inverse of `to_json` (a saved conversation's trace); KeyError/TypeError/ValueError
        on a record that is not one."""
        fields: dict[str, Any] = {k: tuple(v) if k == "delimiters" else v for k, v in data["params"].items()
                                  if k in TraceParams.__dataclass_fields__}
        params = TraceParams(**fields)
        spans = [Span(**{k: s[k] for k in Span.__dataclass_fields__}) for s in data["spans"]]
        docs = []
        for d in data["documents"]:
            doc = Document(d["id"], d["index"], int(d["shard"]), int(d["doc"]), d["metadata"],
                           score=float(d["score"]), relevance=float(d["relevance"]), level=d["level"])
            doc.hits = [DocHit(int(h["span"]), h["snippet"], tuple(h["snippet_match"]), h["window"],
                               tuple(h["window_match"])) for h in d["hits"]]
            docs.append(doc)
        highlights = [Highlight(int(h["start"]), int(h["end"]), list(h["spans"])) for h in data["highlights"]]
        result = cls(data["text"], data["prompt"], spans, docs, highlights, dict(data["timings_ms"]), params,
                     dict(data.get("indexes", {})), data.get("memorization"))
        if isinstance(data.get("near"), dict):
            near = data["near"]
            result.near = near_from_json(near["spans"])
            result.near_params = NearParams(**near["params"]) if near.get("params") else None
        return result


def _spans_in(window: str, spans: list[Span]) -> list[dict[str, int]]:
    """Offsets of every traced span's text inside a window."""
    out = []
    for i, s in enumerate(spans):
        start = window.find(s.text) if s.text.strip() else -1
        while start >= 0:
            out.append({"span": i, "start": start, "end": start + len(s.text)})
            start = window.find(s.text, start + 1)
    return out


@dataclass
class _Fetched:
    hits: list[tuple[int, int, dict[str, Any], str, tuple[int, int], str, tuple[int, int]]]


#: entries kept per index across traces (least recently used dropped first): span counts, and
#: spans' sampled documents (each up to docs_per_span windows of text). A reply's own spans fit
#: many times over, so tracing a growing reply still only searches its tail.
COUNTS_CAP = 65_536
FETCHED_CAP = 1_024


class _IndexState:
    """Per-index caches that make tracing a growing text cheap (bounded: `COUNTS_CAP`,
    `FETCHED_CAP`; content-keyed, so a dropped entry is searched again, with the same answer)."""

    def __init__(self) -> None:
        self.ids = np.zeros(0, dtype=np.int64)
        self.lengths = np.zeros(0, dtype=np.int64)  # longest prefix per position (-1: not computed)
        self.witnessed = np.zeros(0, dtype=bool)  # the longest match seen as whole words
        self.counts: LRU[bytes, int] = LRU(COUNTS_CAP)
        self.fetched: LRU[bytes, _Fetched] = LRU(FETCHED_CAP)


class Tracer:
    """Traces texts against one or more indexes with the published OLMoTrace pipeline."""

    def __init__(self, indexes: IndexSet | Sequence[IndexLike], params: TraceParams | None = None) -> None:
        self.indexes = list(indexes)
        self.params = params or TraceParams()
        self._state = {ix.name: _IndexState() for ix in self.indexes}
        self._lens = LensCache()  # the lens of the first index, kept across updates of a text

    def reset(self) -> None:
        self._state = {ix.name: _IndexState() for ix in self.indexes}
        self._lens = LensCache()

    def _lengths(self, index: IndexLike, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Longest prefixes at every position (and whether each was seen as whole words), reusing
        positions whose match ended before the first changed token (their answer cannot change)."""
        st = self._state[index.name]
        keep = np.flatnonzero(still_valid(st.ids, st.lengths, ids))
        lengths = np.full(len(ids), -1, dtype=np.int64)
        witnessed = np.zeros(len(ids), dtype=bool)
        lengths[keep], witnessed[keep] = st.lengths[keep], st.witnessed[keep]
        bow = word_starts(index, ids, self.params.whole_words)
        todo = np.flatnonzero((lengths < 0) & bow)
        if len(todo):
            lengths[todo], witnessed[todo] = index.longest_prefixes_witnessed(ids, todo)
        st.ids, st.lengths, st.witnessed = ids, lengths, witnessed
        return np.maximum(lengths, 0), witnessed

    def trace(self, text: str, prompt: str = "", lens: bool = False,
              near: bool | NearParams = False) -> TraceResult:
        """Trace `text`; with `lens`, also its memorization lens against the first index; with
        `near` (True, or the `NearParams` to use), also its near-verbatim spans (`tracing.near`),
        built on the exact spans found here, which stay exactly as they are."""
        p = self.params
        encoded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        t0 = time.perf_counter()
        timings = {"tokenize": 0.0, "spans": 0.0, "documents": 0.0, "rank": 0.0}
        spans: list[Span] = []
        fetched_by_span: list[_Fetched] = []
        for index in self.indexes:
            a = time.perf_counter()
            ids, offsets = index.tokenizer.encode_with_offsets(text)
            encoded[index.name] = (ids, offsets)
            b = time.perf_counter()
            timings["tokenize"] += (b - a) * 1000
            st = self._state[index.name]
            lengths, witnessed = self._lengths(index, ids)
            kept = find_spans(index, ids, delimiters=p.delimiters, min_len=p.min_len, max_cnt=p.max_cnt,
                              lengths=lengths, witnessed=witnessed, count_cache=st.counts,
                              whole_words=p.whole_words, keep_lowest=math.ceil(p.span_density * len(ids)))
            c = time.perf_counter()
            timings["spans"] += (c - b) * 1000
            fetched_by_span += self._fetch_many(index, [ids[rs.l : rs.r] for rs in kept])
            for rs in kept:
                start, end = char_range(text, offsets, rs.l, rs.r)
                spans.append(Span(index.name, start, end, text[start:end], rs.l, rs.r, rs.count, rs.logprob))
            timings["documents"] += (time.perf_counter() - c) * 1000
        c = time.perf_counter()
        documents = self._documents(spans, fetched_by_span)
        self._rank(documents, spans, text, prompt)
        highlights = merge_spans([(s.start, s.end) for s in spans])
        timings["rank"] = (time.perf_counter() - c) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        timings = {k: round(v, 3) for k, v in timings.items()}
        result = TraceResult(text, prompt, spans, documents, highlights, timings, p,
                             {ix.name: ix.fingerprint for ix in self.indexes})
        if lens and self.indexes and text:
            a = time.perf_counter()
            m = memorization(self.indexes[0], text, cache=self._lens)
            result.memorization = {"index": self.indexes[0].name, "covered_share": m.covered_share,
                                   "mean_effective_n": m.mean_effective_n, "min_tokens": m.min_tokens,
                                   "tokens": [[t.start, t.end, t.effective_n, t.prob] for t in m.tokens]}
            result.timings_ms["lens"] = round((time.perf_counter() - a) * 1000, 3)
        if near is not False:
            a = time.perf_counter()
            self._near(result, encoded, near)
            result.timings_ms["near"] = round((time.perf_counter() - a) * 1000, 3)
        return result

    def _near(self, result: TraceResult, encoded: dict[str, tuple[np.ndarray, np.ndarray]],
              near: bool | NearParams) -> None:
        """The near-verbatim spans of a trace, per index from that index's exact spans."""
        params = replace(near if isinstance(near, NearParams) else NearParams(), whole_words=self.params.whole_words)
        result.near, result.near_params = [], params
        for index in self.indexes:
            mine = [k for k, s in enumerate(result.spans) if s.index == index.name]
            if len(mine) < 2:
                continue
            ids, offsets = encoded[index.name]
            spans = [(result.spans[k].token_start, result.spans[k].token_end) for k in mine]
            counts = [result.spans[k].count for k in mine]
            result.near += near_spans(index, result.text, ids, offsets, spans, counts, params, numbers=mine)

    def _fetch(self, index: IndexLike, span_ids: np.ndarray) -> _Fetched:
        """Sample up to docs_per_span occurrences of one span and cut their windows."""
        return self._fetch_many(index, [span_ids])[0]

    def _fetch_many(self, index: IndexLike, seqs: list[np.ndarray]) -> list[_Fetched]:
        """Sample up to docs_per_span occurrences (fixed seed) of every span and cut their windows:
        one search for the runs of the spans not fetched yet and one `Index.windows` call for all
        their samples, so a served index answers a trace's documents in two round trips."""
        st = self._state[index.name]
        p = self.params
        # this call's answers held here: the bounded cache may drop some while it fills
        have: dict[bytes, _Fetched] = {}
        new: dict[bytes, np.ndarray] = {}
        for s in seqs:
            key = s.tobytes()
            if key in have or key in new:
                continue
            if key in st.fetched:
                have[key] = st.fetched[key]
            else:
                new[key] = s
        # the occurrence runs of every span not fetched yet, in one batched search
        runs = occurrence_runs(index, list(new.values()), p.whole_words) if new else []
        todo = {key: (len(s), sample_runs(r, p.docs_per_span, p.seed))
                for (key, s), r in zip(new.items(), runs, strict=True)}
        wanted = [(shard, rank, n) for n, picks in todo.values() for shard, rank in picks]
        found = iter(index.windows(wanted, (p.snippet_context, p.long_context)) if wanted else [])
        for key, (_, picks) in todo.items():
            hits = []
            for _ in picks:
                o = next(found)
                snippet, smatch = decode_window(index, o.windows[0])
                window, wmatch = decode_window(index, o.windows[1])
                hits.append((o.hit.shard, o.doc_id, o.metadata, snippet, smatch, window, wmatch))
            have[key] = st.fetched[key] = _Fetched(hits)
        return [have[s.tobytes()] for s in seqs]

    def _documents(self, spans: list[Span], fetched: list[_Fetched]) -> list[Document]:
        docs: dict[str, Document] = {}
        for si, (span, f) in enumerate(zip(spans, fetched, strict=True)):
            for shard, gid, meta, snip, smatch, win, wmatch in f.hits:
                did = f"{span.index}:{gid}"
                doc = docs.get(did)
                if doc is None:
                    doc = docs[did] = Document(did, span.index, shard, gid, meta)
                doc.hits.append(DocHit(si, snip, smatch, win, wmatch))
                if did not in span.documents:
                    span.documents.append(did)
        return list(docs.values())

    def _rank(self, documents: list[Document], spans: list[Span], text: str, prompt: str) -> None:
        p = self.params
        query = f"{prompt} {text}"  # the reference: prompt + " " + response, split on single spaces
        scores = bm25_scores([" ".join(h.window for h in d.hits) for d in documents], query, p.bm25_k1, p.bm25_b)
        for d, s in zip(documents, scores, strict=True):
            d.score = float(s)
            d.relevance = relevance(d.score, len(text), p.normaliser)
            d.level = level_of(d.relevance, p.high, p.medium)
        by_id = {d.id: d for d in documents}
        for s in spans:
            s.level = highest_level([by_id[i].level for i in s.documents])
        documents.sort(key=lambda d: (-LEVEL_RANK[d.level], -d.score, d.id))


def decode_window(index: IndexLike, w: Window) -> tuple[str, tuple[int, int]]:
    """A window's text, decoded as one piece as a reader sees it, and the character range of its
    match in that text (`Tokenizer.decode_span`: right for decoders that strip a leading space
    and for token boundaries inside a character, where the three parts decoded separately and
    put together are not the text). A character the window's edges cut is left out
    (`Tokenizer.whole_characters`) rather than shown as U+FFFD."""
    tok = index.tokenizer
    lo, hi = tok.whole_characters(w.tokens, w.match_start, w.match_end)
    text, (start, end) = tok.decode_span(w.tokens[lo:hi], w.match_start - lo, w.match_end - lo)
    # the marked range excludes the whitespace a word-start token carries
    while start < end and text[start].isspace():
        start += 1
    return text, (start, end)


def top_k(spans: list[RawSpan], n_tokens: int, density: float) -> list[RawSpan]:
    """Section 2: the ceil(density x L) spans with the lowest unigram log-probability, by position."""
    return lowest_logprob(spans, math.ceil(density * n_tokens))


__all__ = ["Tracer", "TraceParams", "TraceResult", "Span", "Document", "DocHit", "top_k", "level_of", "relevance"]
