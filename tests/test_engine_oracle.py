"""The query engine against brute force on random small corpora: all widths, several shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index_tools.engine import Index

from .conftest import build_token_index


def brute_count(docs: list[np.ndarray], q: np.ndarray) -> int:
    n = len(q)
    total = 0
    for d in docs:
        for i in range(len(d) - n + 1):
            if np.array_equal(d[i : i + n], q):
                total += 1
    return total


def brute_longest(docs: list[np.ndarray], ids: np.ndarray, l: int) -> int:
    best = 0
    for n in range(1, len(ids) - l + 1):
        if brute_count(docs, ids[l : l + n]) == 0:
            break
        best = n
    return best


# Token ids 1..V (0 is the end-of-text id used between documents in the .npy source); values
# are spread so that u16/u32 byte order differs from numeric order (the memcmp trap).
def token_values(width: str) -> list[int]:
    if width == "u8":
        return [1, 2, 3, 7, 200]
    if width == "u16":
        return [1, 2, 256, 257, 300]
    return [1, 2, 256, 65536, 300]


corpora = st.integers(0, 4).flatmap(
    lambda seed: st.tuples(
        st.just(seed),
        st.lists(st.lists(st.integers(0, 4), min_size=0, max_size=30), min_size=1, max_size=6),
        st.lists(st.integers(0, 4), min_size=1, max_size=12),
        st.sampled_from([None, 1, 2, 3]),
    )
)


@pytest.mark.parametrize("width", ["u8", "u16", "u32"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=corpora)
def test_count_find_longest_prefix_match_brute_force(tmp_path_factory, bpe_tokenizer: Path, width: str, data) -> None:
    _, raw_docs, raw_query, shards = data
    values = np.array(token_values(width))
    docs = [values[np.array(d, dtype=np.int64)] if d else np.zeros(0, dtype=np.int64) for d in raw_docs]
    query = values[np.array(raw_query)]
    tmp = tmp_path_factory.mktemp("oracle")
    tokenizer = "bytes" if width == "u8" else str(bpe_tokenizer)
    index = Index.open(build_token_index(tmp, docs, tokenizer, width if width != "u8" else None, shards))
    assert index.width == {"u8": 1, "u16": 2, "u32": 4}[width]
    assert len(index.shards) == min(shards or 1, len(docs))
    # count of every prefix and of every sub-sequence of the query
    for a in range(len(query)):
        for b in range(a + 1, len(query) + 1):
            q = query[a:b]
            assert index.count(q) == brute_count(docs, q), (a, b)
    # find: per shard ranges whose suffixes all start with the query, sizes summing to the count
    ranges = index.find(query)
    total = 0
    for shard, (lo, hi) in zip(index.shards, ranges, strict=True):
        total += hi - lo
        if hi > lo:
            pos = shard.sa_tokens(np.arange(lo, hi))
            for p in pos:
                assert np.array_equal(np.asarray(shard.ids[p : p + len(query)]), query)
    assert total == brute_count(docs, query)
    # batched longest matching prefix at every position
    got = index.longest_prefixes(query)
    want = [brute_longest(docs, query, l) for l in range(len(query))]
    assert got.tolist() == want


def test_many_queries_batched_equal_single(text_index: Path) -> None:
    index = Index.open(text_index)
    texts = ["The quick", " brown fox", "lazy dog", "nothing like this", "the", " to be"]
    seqs = [index.encode(t) for t in texts]
    assert index.count_many(seqs).tolist() == [index.count(s) for s in seqs]
    assert index.count(index.encode("The quick brown fox")) == 2


def test_documents_windows_and_metadata(text_index: Path) -> None:
    index = Index.open(text_index)
    ids = index.encode(" lazy dog")
    (lo, hi), = index.find(ids)
    assert hi - lo == 2
    for rank in range(lo, hi):
        hit = index.hit(0, rank)
        w = index.window(hit, len(ids), 3)
        assert w.tokens[w.match_start : w.match_end].tolist() == ids.tolist()
        meta = index.metadata(0, hit.doc)
        assert meta["metadata"]["id"] in (0, 4)
        assert "lazy dog" in index.document_text(index.global_doc_id(0, hit.doc))
    counts = index.unigram_counts()
    assert counts.sum() == index.manifest.tokens - index.manifest.documents
