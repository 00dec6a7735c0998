"""SVG snapshots of the main screen with highlights, the document screen and the help screen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from index_tools.builder import BuildOptions, build_index
from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.model import ScriptedBackend

from .conftest import SAMPLE_TEXTS, write_jsonl
from .test_app import REPLY, wait_idle


@pytest.fixture(scope="module")
def snap_index(tmp_path_factory: pytest.TempPathFactory, bpe_tokenizer: Path) -> Path:
    d = tmp_path_factory.mktemp("snap")
    old = os.getcwd()
    os.chdir(d)  # relative source path: metadata (shown on screen) is the same on every machine
    try:
        write_jsonl(Path("corpus.jsonl"), SAMPLE_TEXTS)
        build_index(["corpus.jsonl"], d / "index", BuildOptions(tokenizer=str(bpe_tokenizer), progress=False))
    finally:
        os.chdir(old)
    return d / "index"


def make(snap_index: Path) -> TraceApp:
    return TraceApp(IndexSet.open([snap_index]), ScriptedBackend([REPLY]),
                    intro="Model: scripted test model\nIndexes: index", export_dir=Path("/nonexistent"))


async def _chat(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    for _ in range(100):  # app.run's auto-pilot may start before the main screen has composed
        if app.main.is_mounted and app.main.query("#prompt"):
            break
        await pilot.pause(0.02)
    prompt = app.main.query_one("#prompt")
    prompt.focus()
    prompt.value = "tell me a proverb"
    await pilot.pause()
    await pilot.press("enter")
    await wait_idle(app, pilot)
    assert [m.role for m in app.messages] == ["user", "assistant"]
    app.set_status("fixed status for the snapshot")  # timings vary from run to run


def test_main_screen_with_highlights(snap_compare, snap_index: Path) -> None:
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _chat(pilot)
        await pilot.press("tab")
        pilot.app.set_status("fixed status for the snapshot")

    assert snap_compare(make(snap_index), terminal_size=(120, 32), run_before=run_before)


def test_main_screen_at_80_columns(snap_compare, snap_index: Path) -> None:
    """The narrow layout (documents under the chat) and a footer of whole keys at 80 columns."""
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _chat(pilot)
        await pilot.press("tab")
        pilot.app.set_status("fixed status for the snapshot")

    assert snap_compare(make(snap_index), terminal_size=(80, 32), run_before=run_before)


def test_document_screen(snap_compare, snap_index: Path) -> None:
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _chat(pilot)
        await pilot.press("tab", "ctrl+o", "enter")
        await pilot.pause()

    assert snap_compare(make(snap_index), terminal_size=(120, 32), run_before=run_before)


def test_help_screen(snap_compare, snap_index: Path) -> None:
    assert snap_compare(make(snap_index), terminal_size=(120, 32), press=["f1"])


def test_heat_view(snap_compare, snap_index: Path) -> None:
    """F5: every token shaded by its ∞-gram effective n (the memorization lens)."""
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _chat(pilot)
        await pilot.press("f5")
        pilot.app.set_status("fixed status for the snapshot")

    assert snap_compare(make(snap_index), terminal_size=(120, 32), run_before=run_before)


def test_next_in_corpus_view(snap_compare, snap_index: Path) -> None:
    """F6 at the end of the first highlight: what the corpus says comes next, the model's token marked."""
    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _chat(pilot)
        await pilot.press("tab", "f6")
        for _ in range(100):  # the distribution is computed in a worker
            if getattr(pilot.app.screen, "rows", None):
                break
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(make(snap_index), terminal_size=(120, 32), run_before=run_before)


def test_overlap_screen(snap_compare, snap_index: Path) -> None:
    """The Overlap screen: items by score, the first traced with its spans, a span selected."""
    from index_tools.engine import Index
    from tracetui.app.screens.overlap import OverlapApp
    from tracetui.overlap.items import Item
    from tracetui.overlap.report import OverlapParams, run_overlap

    index = Index.open(snap_index)
    params = OverlapParams(n=4, min_span=4)
    texts = ["The quick brown fox jumps over the lazy dog all day long.",
             "A stitch in time saves nine, said the early bird.",
             "Colourless green ideas sleep furiously."]
    reports = sorted(run_overlap([index], [Item("bench.jsonl", k + 1, str(k), t) for k, t in enumerate(texts)],
                                 params), key=lambda r: -r.score)

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        for _ in range(100):
            screen = pilot.app.screen
            if getattr(screen, "view", None) is not None and screen.view.trace is not None:
                break
            await pilot.pause(0.05)
        await pilot.press("tab")
        await pilot.pause()

    assert snap_compare(OverlapApp([index], reports, params), terminal_size=(140, 30), run_before=run_before)


def test_reasoning_shown_and_traced(snap_compare, snap_index: Path) -> None:
    """A reasoning model's reply: the reasoning under the answer, shown (F9) and traced as its own
    piece (Ctrl+G); the answer traced alone."""
    from tracetui.reasoning import Reasoning

    thought = [Reasoning("The user wants a proverb. "), Reasoning("A stitch in time saves nine is one.")]
    app = TraceApp(IndexSet.open([snap_index]), ScriptedBackend([thought + [REPLY]]),
                   intro="Model: scripted reasoning model\nIndexes: index", export_dir=Path("/nonexistent"))

    async def run_before(pilot) -> None:  # type: ignore[no-untyped-def]
        await _chat(pilot)
        await pilot.press("ctrl+g")
        await wait_idle(pilot.app, pilot)
        pilot.app.set_status("fixed status for the snapshot")

    assert snap_compare(app, terminal_size=(120, 32), run_before=run_before)
