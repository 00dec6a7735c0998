"""End to end with the real embedded model (Gemma 3 270M through llama.cpp) and a real index."""

from __future__ import annotations

from pathlib import Path

from index_tools.engine import IndexSet
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
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.click("#prompt")
        await pilot.press(*"Complete the sentence: The quick brown fox", "enter")
        await wait_idle(app, pilot)
        reply = app.messages[-1]
        assert reply.role == "assistant"
        assert len(reply.text.strip()) > 0, "the real model produced text"
        assert reply.trace is not None and reply.trace.text == reply.text
        assert "documents" in app.last_status
        # the trace in the app is exactly what the library computes for that text
        from tracetui.tracing.pipeline import Tracer

        fresh = Tracer(IndexSet.open([text_index])).trace(reply.text, prompt="Complete the sentence: The quick brown fox")
        assert [(s.start, s.end) for s in fresh.spans] == [(s.start, s.end) for s in reply.trace.spans]
