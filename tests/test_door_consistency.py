"""Every door gives the same answer (issue 17, section 3): a reopened conversation reuses a saved
trace only when a trace made now would equal it; "next in corpus" at the first token answers
from the unigram table, locally and on a served index; the tracer's caches stay bounded and
tracing with them equals tracing from scratch."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

import index_tools.ngram as ng
from index_tools.engine import Index
from index_tools.ngram import DOC_END, infgram_ntd, ntd
from index_tools.opening import IndexSet
from tracetui.conversation import Conversation
from tracetui.store import ConversationStore, restore_traces
from tracetui.tracing import memorization as memo_mod
from tracetui.tracing import pipeline
from tracetui.tracing.pipeline import TraceParams, Tracer

from .conftest import SAMPLE_TEXTS, build_token_index

REPLY = ("The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n"
         "To be, or not to be, that is the question.")

#: a value other than the default for every field of TraceParams (a new field fails the test
#: below until it is listed: it must be part of what decides reuse)
CHANGED = {"delimiters": (".",), "min_len": 2, "max_cnt": 3, "span_density": 0.5, "docs_per_span": 2, "seed": 7,
           "long_context": 20, "snippet_context": 5, "bm25_k1": 1.2, "bm25_b": 0.5, "normaliser": 2.0,
           "high": 0.9, "medium": 0.2, "whole_words": False, "word_rule": 1}


# -- a reopened conversation -------------------------------------------------------------------
def _save(store: ConversationStore, text_index: Path, params: TraceParams, prompt: str = "first") -> int:
    conv = Conversation("chat")
    conv.add_user(prompt)
    msg = conv.add_text(REPLY)
    msg.trace = Tracer(IndexSet.open([text_index]), params).trace(REPLY, prompt=conv.prompt_for(msg))
    assert msg.trace.spans
    conv.stored_id = store.create("saved")
    store.save(conv)
    return conv.stored_id


def test_changed_list_covers_every_trace_parameter() -> None:
    assert set(CHANGED) == {f.name for f in fields(TraceParams)}


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_saved_trace_reused_only_under_the_same_parameters(name: str, text_index: Path, tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = _save(store, text_index, TraceParams())
    indexes = IndexSet.open([text_index])
    same = store.load(cid)
    assert restore_traces(same, indexes, TraceParams()) == 1 and same.messages[-1].trace is not None
    other = store.load(cid)
    changed = replace(TraceParams(), **{name: CHANGED[name]})
    assert restore_traces(other, indexes, changed) == 0 and other.messages[-1].trace is None


def test_saved_trace_missing_a_parameter_is_traced_again(text_index: Path, tmp_path: Path) -> None:
    """A record from a version without some parameter cannot say it was made under today's."""
    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = _save(store, text_index, TraceParams())
    conv = store.load(cid)
    del conv.messages[-1].extra["trace"]["params"]["whole_words"]
    assert restore_traces(conv, IndexSet.open([text_index]), TraceParams()) == 0


def test_saved_trace_of_another_prompt_is_traced_again(text_index: Path, tmp_path: Path) -> None:
    """Ranking reads the prompt: a trace saved with another one is not today's trace."""
    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = _save(store, text_index, TraceParams(), prompt="first")
    conv = store.load(cid)
    conv.messages[0].text = "another prompt"
    assert restore_traces(conv, IndexSet.open([text_index]), TraceParams()) == 0


async def test_app_retraces_a_saved_trace_made_under_other_parameters(text_index: Path, tmp_path: Path) -> None:
    from tracetui.app.app import TraceApp
    from tracetui.model import ScriptedBackend

    from .test_app import wait_idle

    store = ConversationStore(tmp_path / "c.sqlite3")
    _save(store, text_index, TraceParams())
    params = TraceParams(whole_words=False)
    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend(["x"]), intro="t", export_dir=tmp_path,
                   store=store, trace_params=params)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press("enter")
        await wait_idle(app, pilot)
        trace = app.main.views[-1].trace
        assert trace is not None and trace.params == params
        fresh = Tracer(IndexSet.open([text_index]), params).trace(REPLY, prompt="first")
        assert [(s.start, s.end, s.count) for s in trace.spans] == [(s.start, s.end, s.count) for s in fresh.spans]


# -- next in corpus at the first token ---------------------------------------------------------
EOS = 0
DOCS = [[1, 2, 3, 258, 300, 2, 2], [300, 300, 1], [2], [258, 1, 2, 3, 3, 3, 3, 1]]


@pytest.fixture()
def no_corpus_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any read of the suffix array for a distribution fails the test."""
    def refuse(*_a, **_k):  # type: ignore[no-untyped-def]
        raise AssertionError("the empty prompt read the corpus instead of the unigram table")

    for name in ("ntd_with_unit", "_shard_ntd", "_scan_ntd", "_halving_ntd"):
        monkeypatch.setattr(ng, name, refuse)


def _brute_unigrams(docs: list[list[int]]) -> dict[int, int]:
    """Every token of the corpus once, each document's separator as a document end."""
    flat = np.concatenate([np.array(d, dtype=np.int64) for d in docs])
    counts = np.bincount(flat)
    out = {int(t): int(counts[t]) for t in np.flatnonzero(counts)}
    return {DOC_END: len(docs), **out}


def _as_dict(dist) -> dict[int, int]:  # type: ignore[no-untyped-def]
    return {int(i): int(c) for i, c in zip(dist.ids, dist.counts, strict=True)}


@pytest.fixture(scope="module")
def token_index(tmp_path_factory: pytest.TempPathFactory, bpe_tokenizer: Path) -> Path:
    return build_token_index(tmp_path_factory.mktemp("uni"), [np.array(d) for d in DOCS], str(bpe_tokenizer),
                             "u16", 2, eos=EOS)


def test_empty_prompt_ntd_is_the_unigram_table(token_index: Path, no_corpus_pass: None) -> None:
    index = Index.open(token_index)
    assert len(index.shards) == 2
    want = _brute_unigrams(DOCS)
    dist = ntd(index, np.zeros(0, dtype=np.int64))
    assert _as_dict(dist) == want and not dist.approx
    assert dist.prompt_cnt == sum(want.values()) == index.total_tokens
    assert dist.ids.tolist() == sorted(want)  # ascending, DOC_END first
    # "next in corpus" at the first token, and where no suffix of the context occurs
    for context in ([], [999]):
        k, d = infgram_ntd(index, np.array(context, dtype=np.int64))
        assert k == 0 and _as_dict(d) == want and d.prompt_cnt == index.total_tokens
    # a max_support the corpus fits in is exact too
    assert _as_dict(ntd(index, np.zeros(0, dtype=np.int64), max_support=10**6)) == want


def test_empty_prompt_ntd_equals_infinigram(token_index: Path) -> None:
    engine = pytest.importorskip("infini_gram.engine")
    ref = engine.InfiniGramEngine(index_dir=str(token_index), eos_token_id=EOS, vocab_size=65535,
                                  token_dtype="u16", max_support=10**9).ntd([])
    dist = ntd(Index.open(token_index), np.zeros(0, dtype=np.int64))
    assert dist.prompt_cnt == ref["prompt_cnt"]
    assert {EOS if t == DOC_END else t: c for t, c in _as_dict(dist).items()} == \
        {int(t): v["cont_cnt"] for t, v in ref["result_by_token_id"].items()}


def test_empty_prompt_ntd_on_a_served_index_asks_for_the_unigram_table(token_index: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    from index_tools.remote import RemoteIndex

    from .test_serve import ThreadServer

    server = ThreadServer([token_index])
    try:
        remote = RemoteIndex.open(f"{server.url}/{token_index.name}")
        local = Index.open(token_index)
        ids = local.encode("x")
        assert _as_dict(ntd(remote, ids)) == _as_dict(ntd(local, ids))  # the server op still answers the rest

        def refuse(*_a, **_k):  # type: ignore[no-untyped-def]
            raise AssertionError("the empty prompt asked the servers to read their corpus")

        monkeypatch.setattr(RemoteIndex, "ntd", refuse)
        dist = ntd(remote, np.zeros(0, dtype=np.int64))
        assert _as_dict(dist) == _brute_unigrams(DOCS) and dist.prompt_cnt == local.total_tokens
        k, d = infgram_ntd(remote, np.zeros(0, dtype=np.int64))
        assert k == 0 and _as_dict(d) == _as_dict(dist)
    finally:
        server.stop()


# -- bounded tracer caches ---------------------------------------------------------------------
def test_lru_drops_the_least_recently_used() -> None:
    from tracetui.tracing.lru import LRU

    c: LRU[str, int] = LRU(2)
    c["a"], c["b"] = 1, 2
    assert c["a"] == 1  # a read is a use: "b" is now the oldest
    c["c"] = 3
    assert dict(c) == {"a": 1, "c": 3} and len(c) == 2
    assert c.get("b") is None and "b" not in c
    c.update({"d": 4})
    assert list(c) == ["c", "d"]
    with pytest.raises(ValueError):
        LRU(0)


def _texts() -> list[str]:
    """Many different texts, and the growing prefixes of one (a streaming reply)."""
    out = [f"{SAMPLE_TEXTS[i % 6]} {SAMPLE_TEXTS[(i * 5 + 1) % 6]} item {i}." for i in range(18)]
    out += [REPLY[:n] for n in range(8, len(REPLY) + 1, 11)] + [REPLY]
    return out


def _same(a: pipeline.TraceResult, b: pipeline.TraceResult) -> None:
    ja, jb = a.to_json(), b.to_json()
    ja.pop("timings_ms"), jb.pop("timings_ms")
    assert ja == jb


@pytest.mark.parametrize("caps", [(3, 1), (16, 8)])
def test_tracer_caches_stay_bounded_and_answers_unchanged(caps: tuple[int, int], text_index: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Caps far below one text's needs (entries dropped while a trace fills them) and above."""
    counts_cap, fetched_cap = caps
    indexes = IndexSet.open([text_index])
    reference = [Tracer(indexes).trace(t, prompt="first", lens=True) for t in _texts()]  # unbounded
    monkeypatch.setattr(pipeline, "COUNTS_CAP", counts_cap)
    monkeypatch.setattr(pipeline, "FETCHED_CAP", fetched_cap)
    monkeypatch.setattr(memo_mod, "COUNTS_CAP", counts_cap)
    tracer = Tracer(indexes)
    state = tracer._state["index"]
    spans, most = 0, [0, 0, 0]
    for text, want in zip(_texts(), reference, strict=True):
        got = tracer.trace(text, prompt="first", lens=True)
        _same(got, want)
        spans = max(spans, len(got.spans))
        sizes = [len(state.counts), len(state.fetched), len(tracer._lens.counts)]
        assert sizes[0] <= counts_cap and sizes[1] <= fetched_cap and sizes[2] <= counts_cap
        most = [max(a, b) for a, b in zip(most, sizes, strict=True)]
    assert most == [counts_cap, fetched_cap, counts_cap]  # every cap was reached: the bound held
    if fetched_cap == 1:
        assert spans > 1  # entries were dropped while one trace filled the cache
    assert not hasattr(state, "runs")  # runs are only ever held within one call


def test_bounded_caches_are_still_used(text_index: Path) -> None:
    """Tracing the same text again searches nothing: its counts and documents are cache hits."""
    from tracetui.tracing.lru import LRU

    index = Index.open(text_index)
    calls: dict[str, int] = {}
    for name in ("windows", "find_words_many", "find_ranges", "longest_prefixes", "count_many", "word_counts"):
        real = getattr(index, name)

        def counted(*a, _real=real, _name=name, **k):  # type: ignore[no-untyped-def]
            calls[_name] = calls.get(_name, 0) + 1
            return _real(*a, **k)

        setattr(index, name, counted)
    tracer = Tracer([index])
    first = tracer.trace(REPLY, lens=True)
    assert first.spans and calls.get("windows") and calls.get("longest_prefixes")
    calls.clear()
    again = tracer.trace(REPLY, lens=True)
    _same(again, first)
    assert not calls.get("windows") and not calls.get("find_words_many") and not calls.get("count_many")
    assert isinstance(tracer._state[index.name].counts, LRU) and isinstance(tracer._lens.counts, LRU)
