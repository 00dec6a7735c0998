"""Near-verbatim spans in the chat (issue 21 §3): off by default, F10 (or `near_verbatim`) marks
them in their own style with the differing word marked in the reply and in the document panel,
and the exact highlights stay as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from index_tools.builder import BuildOptions, build_index
from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.app.widgets.documents import NEAR_COLOR, DocumentPanel
from tracetui.model import ScriptedBackend

from .conftest import write_jsonl
from .test_app import wait_idle

CORPUS = ["The quick brown fox jumps over the lazy dog near the old river bank today.",
          "A stitch in time saves nine, as the proverb says about small repairs."]
REPLY = "The quick brown fox leaps over the lazy dog near the old river bank today."


@pytest.fixture(scope="module")
def near_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("near-app")
    out = d / "index"
    build_index([write_jsonl(d / "c.jsonl", CORPUS)], out, BuildOptions(tokenizer="bytes", progress=False))
    return out


def styled(view, needle: str) -> list[tuple[int, int, str]]:  # type: ignore[no-untyped-def]
    return [(s.start, s.end, str(s.style)) for s in view.build_content().spans if needle in str(s.style)]


async def test_near_verbatim_off_by_default_then_f10(near_index: Path, tmp_path: Path) -> None:
    app = TraceApp(IndexSet.open([near_index]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        app.main.query_one("#prompt").focus()
        await pilot.press(*"go", "enter")
        await wait_idle(app, pilot)
        view = app.messages[-1]
        assert view.trace is not None and view.trace.near is None  # not traced for it: off by default
        exact = [(h.start, h.end) for h in view.trace.highlights]
        assert not styled(view, NEAR_COLOR)
        await pilot.press("f10")
        await wait_idle(app, pilot)
        view = app.messages[-1]
        assert view.trace is not None and view.trace.near
        assert [(h.start, h.end) for h in view.trace.highlights] == exact  # exact spans unchanged
        label = view.build_content().plain.index(REPLY)  # after the label line
        marks = styled(view, NEAR_COLOR)
        a, b = REPLY.index("leaps"), REPLY.index("leaps") + len("leaps")
        assert (label + a, label + b, f"bold reverse {NEAR_COLOR}") in marks  # the reply's differing word
        assert any(s == label and e == label + len(REPLY) and "underline" in st for s, e, st in marks)
        panel = app.main.query_one(DocumentPanel)
        near_opts = [panel.get_option_at_index(i) for i in range(panel.option_count)
                     if str(panel.get_option_at_index(i).id).startswith("near-")]
        assert near_opts
        body = near_opts[0].prompt
        assert "substitution: jumps" in body.plain
        assert any(body.plain[s.start:s.end] == "jumps" and "reverse" in str(s.style) for s in body.spans)
        await pilot.press("f10")  # off again: the marks go, the spans stay
        await pilot.pause()
        assert not styled(app.messages[-1], NEAR_COLOR)


async def test_near_verbatim_from_the_config_option(near_index: Path, tmp_path: Path) -> None:
    app = TraceApp(IndexSet.open([near_index]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path,
                   near_verbatim=True)
    async with app.run_test(size=(120, 36)) as pilot:
        app.main.query_one("#prompt").focus()
        await pilot.press(*"go", "enter")
        await wait_idle(app, pilot)
        view = app.messages[-1]
        assert view.trace is not None and view.trace.near and styled(view, NEAR_COLOR)
