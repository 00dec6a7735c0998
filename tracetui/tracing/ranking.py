"""Relevance (OLMoTrace section 4): BM25 of each retrieved document against prompt + response."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

K1 = 1.5
B = 0.75
NORMALISER = 0.18  # x response characters
HIGH = 0.7
MEDIUM = 0.5
LEVELS = ("high", "medium", "low")
#: order of the levels (a span's level is the highest of its documents')
LEVEL_RANK = {"high": 2, "medium": 1, "low": 0}


def bm25_scores(docs: list[str], query: str, k1: float = K1, b: float = B) -> np.ndarray:
    """Okapi BM25 of every doc, the docs themselves forming the collection; documents and query
    split on single spaces, as the reference does (a newline or a tab stays inside its term).

    IDF as rank-bm25's BM25Okapi (the reference's library): log((N - df + 0.5) / (df + 0.5)),
    with negative IDFs floored at 0.25 x the mean IDF.
    """
    if not docs:
        return np.zeros(0)
    tokenized = [d.split(" ") for d in docs]
    vocab: dict[str, int] = {}
    for t in query.split(" "):
        vocab.setdefault(t, len(vocab))
    if not vocab:
        return np.zeros(len(docs))
    tf = np.zeros((len(docs), len(vocab)))
    df_all: Counter[str] = Counter()
    for i, toks in enumerate(tokenized):
        counts = Counter(toks)
        df_all.update(counts.keys())
        for t, j in vocab.items():
            tf[i, j] = counts.get(t, 0)
    lens = np.array([len(t) for t in tokenized], dtype=np.float64)
    avgdl = max(lens.mean(), 1e-9)
    n = len(docs)
    idf_all = {t: math.log(n - f + 0.5) - math.log(f + 0.5) for t, f in df_all.items()}
    eps = 0.25 * (sum(idf_all.values()) / len(idf_all)) if idf_all else 0.0
    idf = np.array([(idf_all[t] if idf_all.get(t, 0.0) >= 0 else eps) if t in idf_all else 0.0 for t in vocab])
    qtf = np.zeros(len(vocab))
    for t in query.split(" "):
        qtf[vocab[t]] += 1  # a term repeated in the query counts once per repetition, as rank-bm25
    denom = tf + k1 * (1 - b + b * lens[:, None] / avgdl)
    return ((tf * (k1 + 1) / denom) * idf[None, :] * qtf[None, :]).sum(axis=1)


def relevance(score: float, response_chars: int, normaliser: float = NORMALISER) -> float:
    """BM25 score normalised by the response length, capped at 1 (section 4)."""
    return min(1.0, score / max(1e-9, normaliser * response_chars))


def level_of(rel: float, high: float = HIGH, medium: float = MEDIUM) -> str:
    return "high" if rel >= high else "medium" if rel >= medium else "low"


def highest_level(levels: list[str]) -> str:
    """The highest of some levels ("low" if there are none)."""
    return max(levels, key=LEVEL_RANK.__getitem__) if levels else "low"
