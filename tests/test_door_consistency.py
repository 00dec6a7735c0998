"""Every door gives the same answer (issue 17, section 3): a reopened conversation reuses a saved
trace only when a trace made now would equal it; "next in corpus" at the first token answers
from the unigram table, locally and on a served index; the tracer's caches stay bounded and
tracing with them equals tracing from scratch."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest

from index_tools.engine import IndexSet
from tracetui.conversation import Conversation
from tracetui.store import ConversationStore, restore_traces
from tracetui.tracing.pipeline import TraceParams, Tracer

REPLY = ("The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n"
         "To be, or not to be, that is the question.")

#: a value other than the default for every field of TraceParams (a new field fails the test
#: below until it is listed: it must be part of what decides reuse)
CHANGED = {"delimiters": (".",), "min_len": 2, "max_cnt": 3, "span_density": 0.5, "docs_per_span": 2, "seed": 7,
           "long_context": 20, "snippet_context": 5, "bm25_k1": 1.2, "bm25_b": 0.5, "normaliser": 2.0,
           "high": 0.9, "medium": 0.2, "whole_words": False}


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
