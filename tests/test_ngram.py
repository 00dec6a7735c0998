"""∞-gram queries against infini-gram's own engine (same u16 index) and against brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index_tools.engine import Index
from index_tools.ngram import DOC_END, infgram_ntd, infgram_probs, ntd

from .conftest import build_token_index

try:
    import infini_gram.engine as ig_engine
except ImportError:  # only the comparisons with the reference need it; brute force runs anyway
    ig_engine = None

needs_infini_gram = pytest.mark.skipif(ig_engine is None, reason="needs the infini-gram package (test extra)")

EOS = 0  # the id between documents in the .npy source: infini-gram reports it for a document end
TOKENS = [1, 2, 3, 258, 300]  # byte order differs from numeric order for 258 (the memcmp trap)


def _ours(dist) -> dict[int, int]:  # type: ignore[no-untyped-def]
    return {(EOS if int(i) == DOC_END else int(i)): int(c) for i, c in zip(dist.ids, dist.counts, strict=True)}


def brute_ntd(docs: list[list[int]], prompt: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    n = len(prompt)
    for d in docs:
        for i in range(len(d) - n + 1):
            if d[i : i + n] == prompt:
                nxt = d[i + n] if i + n < len(d) else EOS
                out[nxt] = out.get(nxt, 0) + 1
    return out


tok = st.sampled_from(TOKENS)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.lists(tok, min_size=1, max_size=60), min_size=1, max_size=5),
       prompts=st.lists(st.lists(tok, min_size=1, max_size=4), min_size=1, max_size=6),
       shards=st.sampled_from([1, 2]), scan=st.sampled_from([1, 2, 4096]))
def test_ntd_equals_brute_force(tmp_path_factory, bpe_tokenizer: Path, docs, prompts, shards, scan) -> None:
    """Needs no reference engine: every next-token distribution (scan 1 or 2 forces the halving
    path) equals the one counted by brute force, and its total is the prompt's count."""
    import index_tools.ngram as ng

    ng.SCAN = scan
    try:
        tmp = tmp_path_factory.mktemp("ngb")
        wanted = shards if sum(map(len, docs)) > 4 else 1
        directory = build_token_index(tmp, [np.array(d) for d in docs], str(bpe_tokenizer), "u16", wanted, eos=EOS)
        index = Index.open(directory)
        assert len(index.shards) == min(wanted, len(docs))  # two shards whenever there are two documents
        for q in prompts:
            ours = ntd(index, np.array(q, dtype=np.int64))
            want = brute_ntd(docs, q)
            assert _ours(ours) == want, q
            assert ours.prompt_cnt == sum(want.values()) and not ours.approx
    finally:
        ng.SCAN = 4096


@needs_infini_gram
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.lists(tok, min_size=1, max_size=60), min_size=1, max_size=5),
       prompts=st.lists(st.lists(tok, min_size=0, max_size=4), min_size=1, max_size=6),
       reply=st.lists(tok, min_size=1, max_size=40),
       shards=st.sampled_from([1, 2]), scan=st.sampled_from([1, 2, 4096]))
def test_ntd_and_infgram_match_infinigram_and_brute_force(tmp_path_factory, bpe_tokenizer: Path, docs, prompts,
                                                          reply, shards, scan) -> None:
    """scan 1 or 2 forces the halving path (blocks of one following token found from their ends)."""
    import index_tools.ngram as ng

    ng.SCAN = scan
    try:
        tmp = tmp_path_factory.mktemp("ng")
        directory = build_token_index(tmp, [np.array(d) for d in docs], str(bpe_tokenizer), "u16",
                                      shards if sum(map(len, docs)) > 4 else 1, eos=EOS)
        index = Index.open(directory)
        eng = ig_engine.InfiniGramEngine(index_dir=str(directory), eos_token_id=EOS, vocab_size=65535,
                                         token_dtype="u16", max_support=10**9)
        for q in prompts:
            ours = ntd(index, np.array(q, dtype=np.int64))
            ref = eng.ntd(q)
            assert ours.prompt_cnt == ref["prompt_cnt"]
            if q:
                assert _ours(ours) == brute_ntd(docs, q)
            if not reference_misreads_file_end(index, q):
                assert _ours(ours) == {int(k): v["cont_cnt"] for k, v in ref["result_by_token_id"].items()}
                # infini-gram's sampled mode: same strides, same reads, same counts
                for support in (1, 3):
                    approx = ntd(index, np.array(q, dtype=np.int64), max_support=support)
                    sref = eng.ntd(q, max_support=support)
                    assert approx.approx == sref["approx"] and approx.prompt_cnt == sref["prompt_cnt"]
                    assert _ours(approx) == {int(k): v["cont_cnt"] for k, v in sref["result_by_token_id"].items()}
        ids = np.array(reply, dtype=np.int64)
        rows = infgram_probs(index, ids)
        for t, row in enumerate(rows):
            ref = eng.infgram_prob(reply[:t], reply[t])
            assert (row.suffix_len, row.prompt_cnt, row.cont_cnt) == (ref["suffix_len"], ref["prompt_cnt"], ref["cont_cnt"])
            assert row.prob == pytest.approx(ref["prob"], rel=1e-12, abs=1e-15)
        k, dist = infgram_ntd(index, ids)
        ref = eng.infgram_ntd(reply)
        assert k == ref["suffix_len"] and dist.prompt_cnt == ref["prompt_cnt"]
        if not reference_misreads_file_end(index, reply[len(reply) - k :]):
            assert _ours(dist) == {int(t): v["cont_cnt"] for t, v in ref["result_by_token_id"].items()}
    finally:
        ng.SCAN = 4096


def reference_misreads_file_end(index: Index, prompt: list[int]) -> bool:
    """infini-gram decides a range by the next tokens of its first and last suffixes, mapping
    both the end of the file and a separator to eos; when a shard's token file ends with the
    prompt, that occurrence sorts first, so a range that also ends before a separator is taken
    as all document ends. Our `ntd` compares sort keys and is exact (checked by brute force)."""
    for shard in index.shards:
        tail = np.asarray(shard.ids[max(0, shard.n_tokens - len(prompt)) :], dtype=np.int64).tolist()
        if prompt and tail == list(prompt):
            return True
    return False


@needs_infini_gram
def test_reference_misreads_a_range_that_starts_at_the_file_end(tmp_path: Path, bpe_tokenizer: Path) -> None:
    """The known divergence, pinned: docs [1], [1 1 1] -- "1" is followed by 1 twice and by a
    document end twice; infini-gram reports four document ends."""
    directory = build_token_index(tmp_path, [np.array([1]), np.array([1, 1, 1])], str(bpe_tokenizer), "u16", 1,
                                  eos=EOS)
    index = Index.open(directory)
    eng = ig_engine.InfiniGramEngine(index_dir=str(directory), eos_token_id=EOS, vocab_size=65535,
                                     token_dtype="u16")
    assert reference_misreads_file_end(index, [1])
    assert _ours(ntd(index, np.array([1]))) == {1: 2, EOS: 2} == brute_ntd([[1], [1, 1, 1]], [1])
    assert {int(k): v["cont_cnt"] for k, v in eng.ntd([1])["result_by_token_id"].items()} == {EOS: 4}


def test_cli_ntd_and_infgram_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json as _json

    from index_tools.builder import BuildOptions, build_index
    from tracetui.cli import main

    from .conftest import SAMPLE_TEXTS, write_jsonl

    src = write_jsonl(tmp_path / "c.jsonl", SAMPLE_TEXTS)
    build_index([src], tmp_path / "bix", BuildOptions(tokenizer="bytes", progress=False))
    assert main(["ntd", "--index", str(tmp_path / "bix"), "The quick", "--json"]) == 0
    out = _json.loads(capsys.readouterr().out)
    (res,) = out["results"]
    assert out["schema"] == "tracetui.ntd/1" and res["prompt_count"] == 2
    assert [(r["text"], r["count"]) for r in res["next"]] == [(" ", 2)]
    text = "The quick brown fox is lazy. Xq"
    (tmp_path / "r.txt").write_text(text, encoding="utf-8")
    assert main(["infgram", "--index", str(tmp_path / "bix"), str(tmp_path / "r.txt"), "--json"]) == 0
    got = _json.loads(capsys.readouterr().out)["results"][0]
    assert "".join(t["text"] for t in got["tokens"]) == text
    # covered_share by brute force: characters inside a corpus substring of >= 8 bytes
    covered = [False] * len(text)
    for a in range(len(text)):
        for b in range(a + 8, len(text) + 1):
            if any(text[a:b] in d for d in SAMPLE_TEXTS):
                for i in range(a, b):
                    covered[i] = True
    assert 0 < got["covered_share"] == sum(covered) / len(text)
    assert got["tokens"][-2]["count"] == 0 and got["tokens"][-2]["prob"] == 0.0  # "X" never follows ". "


@settings(max_examples=30, deadline=None)
@given(pieces=st.lists(st.sampled_from(["The quick", " brown fox", " jumps over", " the lazy dog.", " is quick",
                                         "\n", " To be", ", or not", " zebra", "x"]), min_size=1, max_size=12),
       cut=st.integers(0, 40))
def test_streamed_lens_equals_lens_of_the_whole_text(text_index: Path, pieces: list[str], cut: int) -> None:
    """The lens of a reply updated piece by piece (its cache kept between updates, one update
    also rewriting the tail) equals the lens computed afresh at every step."""
    from tracetui.tracing.memorization import LensCache, memorization

    index = Index.open(text_index)
    cache = LensCache()
    text = ""
    for k, piece in enumerate(pieces):
        text += piece
        if k == len(pieces) // 2:  # an edit behind the end: positions after it are searched again
            text = text[: min(cut, len(text))] + piece
        assert memorization(index, text, cache=cache) == memorization(index, text)
