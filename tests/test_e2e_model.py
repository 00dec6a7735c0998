"""End to end with the real embedded model (Gemma 3 270M through llama.cpp) and a real index."""

from __future__ import annotations

from pathlib import Path

from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.defaults import default_model_path
from tracetui.model import LlamaBackend, ModelError, ModelSettings

from .test_app import wait_idle


def test_missing_and_broken_model_files(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ModelError, match="not found"):
        LlamaBackend(tmp_path / "nope.gguf", ModelSettings())
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelError, match="not a GGUF"):
        LlamaBackend(bad, ModelSettings())


async def test_real_model_reply_is_traced_in_the_app(text_index: Path, tmp_path: Path) -> None:
    settings = ModelSettings(n_ctx=1024, max_tokens=40, temperature=0.0, seed=42, threads=2)
    backend = LlamaBackend(default_model_path(), settings)
    app = TraceApp(IndexSet.open([text_index]), backend, settings=settings, intro="e2e", export_dir=tmp_path)
    opening = "The quick brown fox"
    async with app.run_test(size=(120, 36)) as pilot:
        # a base model without a chat template starts in continue mode
        assert not backend.has_template and app.conversation.mode == "continue"
        await pilot.click("#prompt")
        await pilot.press(*opening, "enter")
        await wait_idle(app, pilot, timeout=600)  # a loaded 2-core machine can be slow
        reply = app.messages[-1]
        assert reply.role == "assistant" and reply.text.startswith(opening)
        assert len(reply.text) > len(opening), "the real model produced a continuation"
        assert reply.trace is not None and reply.trace.text == reply.text
        assert "documents" in app.last_status
        # the trace in the app is exactly what the library computes for that text
        from tracetui.tracing.pipeline import Tracer

        fresh = Tracer(IndexSet.open([text_index])).trace(reply.text)
        assert [(s.start, s.end) for s in fresh.spans] == [(s.start, s.end) for s in reply.trace.spans]
        assert fresh.spans, "the continuation of a sample sentence is found in the sample corpus"
        # chat mode with the same model: labelled turns, an answer traced against the prompt
        await pilot.press("f3")
        ask = "Tell me about the quick brown fox."  # words of the corpus: they weigh in the ranking
        await pilot.press(*ask, "enter")
        await wait_idle(app, pilot, timeout=600)
        assert [m.role for m in app.messages] == ["assistant", "user", "assistant"]
        answer = app.messages[-1]
        assert answer.text.strip(), "greedy decoding with a fixed seed answers something"
        assert answer.trace is not None and answer.trace.text == answer.text
        # traced against its prompt: the same spans, and documents ranked with the prompt in the query
        want = Tracer(IndexSet.open([text_index])).trace(answer.text, prompt=ask)
        assert [(s.start, s.end) for s in answer.trace.spans] == [(s.start, s.end) for s in want.spans]
        assert [(d.id, d.score) for d in answer.trace.documents] == [(d.id, d.score) for d in want.documents]
        assert want.documents, "the answer has spans found in the sample corpus"
        unprompted = Tracer(IndexSet.open([text_index])).trace(answer.text)
        assert [d.score for d in unprompted.documents] != [d.score for d in want.documents]  # the prompt counted
