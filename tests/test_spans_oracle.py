"""Span finding, top-K, merging and levels against direct implementations of the reference."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from tracetui.tracing.merge import merge_spans
from tracetui.tracing.pipeline import Tracer, top_k
from tracetui.tracing.ranking import level_of, relevance
from tracetui.tracing.spans import RawSpan, delimiter_ids, find_spans

from .test_engine_oracle import brute_count


def reference_spans(docs: list[np.ndarray], ids: np.ndarray, bow: np.ndarray, delims: set[int],
                    min_len: int, max_cnt: int) -> list[tuple[int, int, int]]:
    """Section 1 of the reference, literally, with brute-force search."""
    L = len(ids)
    out: list[tuple[int, int, int]] = []
    max_r = -1
    for l in range(L):
        if not bow[ids[l]]:
            continue
        n = 0
        while l + n < L and brute_count(docs, ids[l : l + n + 1]) > 0:
            n += 1
        r = l + n
        for p in range(l, r - 1):  # a delimiter anywhere but last: cut right after it
            if ids[p] in delims:
                r = p + 1
                break
        while r > l and r < L and not bow[ids[r]]:
            r -= 1
        if r - l < max(1, min_len):
            continue
        c = brute_count(docs, ids[l:r])
        if c > max_cnt:
            continue
        if r > max_r:
            out.append((l, r, c))
            max_r = r
    return out


ALPHABET = "ab c.\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.text(alphabet=ALPHABET, min_size=0, max_size=40), min_size=1, max_size=5),
    response=st.text(alphabet=ALPHABET, min_size=1, max_size=30),
    min_len=st.integers(1, 3),
    max_cnt=st.sampled_from([1, 2, 5, 1_000_000]),
)
def test_spans_equal_reference_section_1(tmp_path_factory, docs, response, min_len, max_cnt) -> None:
    tmp = tmp_path_factory.mktemp("spans")
    src = tmp / "c.jsonl"
    src.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    build_index([src], tmp / "ix", BuildOptions(tokenizer="bytes", progress=False))
    index = Index.open(tmp / "ix")
    ids = index.encode(response)
    token_docs = [index.encode(d) for d in docs]
    bow = index.tokenizer.word_start_mask()
    delims = set(delimiter_ids(index, (".", "\n")).tolist())
    assert delims == {ord("."), ord("\n")}
    got = find_spans(index, ids, min_len=min_len, max_cnt=max_cnt, whole_words=False)
    want = reference_spans(token_docs, ids, bow, delims, min_len, max_cnt)
    assert [(s.l, s.r, s.count) for s in got] == want
    # unigram log-probability: sum(log(count(t) / N)) over the span's tokens
    counts = np.bincount(np.concatenate(token_docs + [np.zeros(0, dtype=np.int64)]).astype(np.int64), minlength=256)
    n = index.manifest.tokens
    for s in got:
        assert math.isclose(s.logprob, sum(math.log(counts[t] / n) for t in ids[s.l : s.r]), rel_tol=1e-9)


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 10), st.floats(-50, 0)), max_size=30), st.integers(1, 400))
def test_top_k_is_lowest_logprob_in_position_order(raw, n_tokens) -> None:
    spans = [RawSpan(l, l + w, 1, lp) for l, w, lp in raw]
    k = math.ceil(0.05 * n_tokens)
    got = top_k(spans, n_tokens, 0.05)
    by_prob = sorted(spans, key=lambda s: (s.logprob, s.l))[:k]
    assert sorted(got, key=lambda s: (s.logprob, s.l)) == by_prob
    assert [s.l for s in got] == sorted(s.l for s in got)


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(1, 15)), max_size=20))
def test_merge_overlapping_keeps_members(raw) -> None:
    ranges = [(s, s + w) for s, w in raw]
    hls = merge_spans(ranges)
    covered = set()
    for i, (s, e) in enumerate(ranges):
        covered.update(range(s, e))
        assert sum(i in h.spans for h in hls) == 1  # every span in exactly one highlight
    got = set()
    for a, b in zip(hls, hls[1:], strict=False):
        assert a.end <= b.start  # disjoint, touching allowed
    for h in hls:
        got.update(range(h.start, h.end))
        for i in h.spans:
            assert h.start <= ranges[i][0] and ranges[i][1] <= h.end
    assert got == covered


def test_relevance_levels() -> None:
    """The level thresholds (BM25 itself is checked against rank_bm25 in test_bm25_oracle.py)."""
    assert level_of(relevance(0.7 * 0.18 * 100, 100)) == "high"
    assert level_of(relevance(0.69 * 0.18 * 100, 100)) == "medium"
    assert level_of(relevance(0.5 * 0.18 * 100, 100)) == "medium"
    assert level_of(relevance(0.49 * 0.18 * 100, 100)) == "low"
    assert relevance(1e9, 10) == 1.0


def test_incremental_trace_equals_from_scratch(text_index: Path) -> None:
    index = Index.open(text_index)
    reply = ("Well, the quick brown fox jumps over the lazy dog. To be, or not to be, that is the question.\n"
             "def add(a, b):\n    return a + b\n")
    live = Tracer([index])
    step = 3
    for end in range(step, len(reply) + step, step):
        live_result = live.trace(reply[:end], prompt="fox")
    fresh = Tracer([index]).trace(reply, prompt="fox")
    assert live_result.to_json()["spans"] == fresh.to_json()["spans"]
    assert live_result.to_json()["documents"] == fresh.to_json()["documents"]
    assert len(fresh.spans) >= 2
    assert any("quick brown fox" in s.text for s in fresh.spans)
    for s in fresh.spans:
        assert reply[s.start : s.end] == s.text
        assert s.start == 0 or not reply[s.start - 1].isalnum()  # never cuts a word
        assert s.end == len(reply) or not (reply[s.end - 1].isalnum() and reply[s.end].isalnum())
