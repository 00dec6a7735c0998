"""Relevance scores against `rank_bm25.BM25Okapi`, the library OLMoTrace's backend calls (section 4
of docs: Okapi, k1=1.5, b=0.75, epsilon 0.25; documents and query split on single spaces).

The oracle is the library itself, not a retyped formula: on random corpora and queries every score
of `bm25_scores` equals `BM25Okapi(docs).get_scores(query)`, and a trace's documents carry those
scores (query = prompt + " " + response), their relevance and level, in level-then-score order.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from tracetui.tracing.pipeline import TraceParams, Tracer
from tracetui.tracing.ranking import bm25_scores

from .conftest import write_jsonl

#: few words, so that terms repeat across documents (document frequency above half the collection
#: makes rank_bm25's idf negative and brings in its epsilon floor; exactly half makes it 0)
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "a", "Fox", "fox", "fox.", "ünï", "日本", "x_1", "(b)"]
word = st.sampled_from(WORDS)
absent = st.sampled_from(["zebra", "Cat", "fo"])  # in no document


def reference(docs: list[str], query: str, **kw: float) -> np.ndarray:
    """What OLMoTrace computes: BM25Okapi over the documents, both sides split on single spaces."""
    return np.asarray(BM25Okapi([d.split(" ") for d in docs], **kw).get_scores(query.split(" ")))


@settings(max_examples=300, deadline=None)
@given(docs=st.lists(st.lists(word, min_size=1, max_size=25), min_size=1, max_size=8),
       query=st.lists(st.one_of(word, absent), min_size=1, max_size=12),
       params=st.one_of(st.just({}), st.fixed_dictionaries({"k1": st.floats(0.1, 3.0), "b": st.floats(0.0, 1.0)})))
def test_bm25_scores_equal_rank_bm25(docs: list[list[str]], query: list[str], params: dict[str, float]) -> None:
    texts = [" ".join(d) for d in docs]
    q = " ".join(query)
    got = bm25_scores(texts, q, **params)
    want = reference(texts, q, **params)
    assert got.shape == want.shape == (len(docs),)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_negative_idf_takes_the_epsilon_floor_as_rank_bm25() -> None:
    """A fixed case through both branches of the idf: "the" in 3 of 4 documents (idf < 0, floored
    at 0.25 x the mean idf), "sat" in 2 of 4 (idf exactly 0), "cat" in 1, "zebra" in none; a
    query term repeated counts once per repetition."""
    docs = ["the cat sat on the mat", "the dog sat", "the the the", "a b c d e f"]
    model = BM25Okapi([d.split(" ") for d in docs])
    assert model.idf["the"] > 0 > math.log(4 - 3 + 0.5) - math.log(3 + 0.5)  # floored, positive
    assert model.idf["sat"] == 0.0
    for query in ["the", "the the cat", "sat", "cat zebra", "zebra", "the cat sat"]:
        got = bm25_scores(docs, query)
        np.testing.assert_allclose(got, model.get_scores(query.split(" ")), rtol=1e-12, atol=1e-15)
    assert bm25_scores(docs, "the the cat")[0] > bm25_scores(docs, "the cat")[0]
    assert bm25_scores(docs, "zebra").tolist() == [0.0] * 4
    assert bm25_scores([], "the").shape == (0,)


def test_documents_with_newlines_and_double_spaces_score_as_rank_bm25() -> None:
    docs = ["the fox.\nThe dog", "a  cat\tsat", "The dog sat on the mat"]
    query = "fox. The cat"
    np.testing.assert_allclose(bm25_scores(docs, query), reference(docs, query), rtol=1e-9, atol=1e-12)


CORPUS = [  # single spaces only, each document shorter than a long window: window == document
    "the quick brown fox jumps over the lazy dog",
    "a stitch in time saves nine and the early bird catches the worm",
    "the quick brown fox is quick and the lazy dog sleeps all day long",
    "to be or not to be that is the question",
    "brown bread and quick lunches for the lazy afternoon",
]


@pytest.mark.parametrize("prompt", ["", "tell me about the lazy dog"])
def test_trace_documents_carry_rank_bm25_scores(tmp_path: Path, prompt: str) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", CORPUS)
    build_index([src], tmp_path / "ix", BuildOptions(tokenizer="bytes", progress=False))
    index = Index.open(tmp_path / "ix")
    reply = "I heard the quick brown fox jumps over the lazy dog and that to be or not to be is the question"
    # more spans than K = 5%: documents to rank against each other; thresholds that give all 3 levels
    params = TraceParams(span_density=0.5, high=0.4, medium=0.2)
    result = Tracer([index], params).trace(reply, prompt=prompt)
    docs = result.documents
    assert len(docs) >= 3 and len({d.doc for d in docs}) == len(docs)
    texts = []
    for d in docs:
        whole = index.document_text(d.doc)
        assert all(h.window == whole for h in d.hits)  # the window is the whole (short) document
        texts.append(" ".join(h.window for h in d.hits))
    query = prompt + " " + reply  # the reference: prompt + " " + response, an empty prompt too
    want = reference(texts, query)
    np.testing.assert_allclose([d.score for d in docs], want, rtol=1e-9, atol=1e-12)
    assert len(set(np.round(want, 9))) > 1  # scores that tell documents apart
    rank = {"high": 2, "medium": 1, "low": 0}
    for d, s in zip(docs, want, strict=True):
        rel = min(1.0, s / (0.18 * len(reply)))
        assert d.relevance == pytest.approx(rel, rel=1e-9, abs=1e-12)
        assert d.level == ("high" if rel >= 0.4 else "medium" if rel >= 0.2 else "low")
    assert {d.level for d in docs} == {"high", "medium", "low"}
    keys = [(-rank[d.level], -d.score) for d in docs]
    assert keys == sorted(keys)  # by level, then by score
    for span in result.spans:
        assert span.level == max((next(d.level for d in docs if d.id == i) for i in span.documents),
                                 key=rank.__getitem__)
