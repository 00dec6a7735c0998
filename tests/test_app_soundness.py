"""The app under any key at any moment: a scripted model with delays, a real index, keys pressed
while a reply streams and while a trace runs. No exception, no text of an old reply in a new
chat, no worker thread left at exit; continue mode, saved traces, traced text kept from the model.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.app.screens.main import MainScreen
from tracetui.app.widgets.message import HUES, STRENGTH, mix
from tracetui.model import ScriptedBackend, Turn
from tracetui.store import ConversationStore

from .test_app import REPLY, wait_idle

OLD = "OLDREPLY " * 60  # a long reply whose words must never appear in a new chat
NEW = "The quick brown fox jumps over the lazy dog."


def worker_threads() -> set[str]:
    """Threads (other than this one) currently running tracetui or index_tools code: idle pool
    threads of the event loop's executor do not count, a worker still inside our code does."""
    import sys

    out = set()
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        f = frame
        while f is not None:
            path = f.f_code.co_filename
            if "/tracetui/" in path or "/index_tools/" in path:
                out.add(f"{names.get(ident, ident)}: {f.f_code.co_name}")
                break
            f = f.f_back
    return out


def assert_consistent(app: TraceApp) -> None:
    """Every view shows a message of the open conversation, in order; no stale text."""
    conv = app.conversation
    assert [v.message for v in app.main.views] == conv.messages
    for v in app.main.views:
        if v.trace is not None:
            assert v.text.startswith(v.trace.text)


async def start_reply(app: TraceApp, pilot, prompt: str = "go") -> None:  # type: ignore[no-untyped-def]
    app.main.query_one("#prompt").focus()
    await pilot.press(*prompt, "enter")


async def test_ctrl_n_while_streaming_leaves_no_old_text(text_index: Path, tmp_path: Path) -> None:
    backend = ScriptedBackend([OLD, NEW], delay=0.01, piece=3)
    app = TraceApp(IndexSet.open([text_index]), backend, intro="t", export_dir=tmp_path)
    before = worker_threads()
    async with app.run_test(size=(100, 30)) as pilot:
        await start_reply(app, pilot)
        await pilot.pause(0.3)
        assert app.generating and "OLDREPLY" in app.main.views[-1].text
        await pilot.press("ctrl+n")
        assert app.main.views == [] and not app.generating
        await start_reply(app, pilot, "again")
        await wait_idle(app, pilot)
        await pilot.pause(0.3)  # late chunks of the stopped reply would arrive now
        texts = [v.text for v in app.main.views]
        assert texts == ["again", NEW]
        assert all("OLDREPLY" not in t for t in texts)
        assert app.main.views[-1].trace is not None and app.main.views[-1].trace.text == NEW
        assert_consistent(app)
    await asyncio.sleep(0.5)
    assert not (worker_threads() - before), "a worker thread outlived the app"


KEYS = ["ctrl+n", "escape", "f2", "tab", "shift+tab", "ctrl+t", "ctrl+r", "f3", "resize", "send", "ctrl+o",
        "ctrl+e", "f1", "ctrl+y"]


async def settle(app: TraceApp, pilot) -> None:  # type: ignore[no-untyped-def]
    """Back to the main screen, everything answered, and the app consistent."""
    while not isinstance(app.screen, MainScreen):
        await pilot.press("escape")
        await pilot.pause()
    await wait_idle(app, pilot)
    assert_consistent(app)


async def _drive(app: TraceApp, pilot, keys: list[str], gaps: list[float]) -> None:  # type: ignore[no-untyped-def]
    sizes = [(100, 30), (60, 20), (140, 40)]
    for i, (key, gap) in enumerate(zip(keys, gaps, strict=False)):
        if not isinstance(app.screen, MainScreen):
            await pilot.press("escape")  # leave a modal or the document screen
            await pilot.pause()
        if key == "resize":
            await pilot.resize_terminal(*sizes[i % len(sizes)])
        elif key == "send":
            await start_reply(app, pilot, f"q{i}")
        else:
            await pilot.press(key)
        await pilot.pause(gap)
        assert_consistent(app)


async def test_keys_at_random_moments_while_streaming_and_tracing(text_index: Path, tmp_path: Path) -> None:
    import random

    rng = random.Random(7)
    store = ConversationStore(tmp_path / "c.sqlite3")
    backend = ScriptedBackend([REPLY * 3, OLD, NEW], delay=0.005, piece=2)
    app = TraceApp(IndexSet.open([text_index]), backend, intro="t", export_dir=tmp_path, store=store)
    before = worker_threads()
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(4):
            await start_reply(app, pilot)
            keys = [rng.choice(KEYS) for _ in range(12)]
            gaps = [rng.choice([0.0, 0.01, 0.05, 0.2]) for _ in keys]
            await _drive(app, pilot, keys, gaps)
        await settle(app, pilot)
        assert app._exception is None
    await asyncio.sleep(0.5)
    assert not (worker_threads() - before), "a worker thread outlived the app"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.sampled_from(KEYS), min_size=3, max_size=14),
       gaps=st.lists(st.sampled_from([0.0, 0.02, 0.1]), min_size=14, max_size=14))
def test_any_key_sequence_keeps_the_app_consistent(text_index: Path, tmp_path: Path, keys, gaps) -> None:
    async def run() -> None:
        store = ConversationStore(tmp_path / f"h{time.monotonic_ns()}.sqlite3")
        app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([OLD, NEW, REPLY], delay=0.003, piece=3),
                       intro="t", export_dir=tmp_path, store=store)
        async with app.run_test(size=(100, 30)) as pilot:
            await start_reply(app, pilot)
            await _drive(app, pilot, keys, gaps)
            await settle(app, pilot)
            for v in app.main.views:  # a reply shows only its own text (after its opening)
                if v.role == "assistant":
                    own = v.text[v.message.prompt_chars :]
                    assert any(r.startswith(own) for r in (OLD, NEW, REPLY)), v.text

    asyncio.run(run())


async def test_traced_text_is_never_sent_to_the_model(text_index: Path, tmp_path: Path) -> None:
    backend = ScriptedBackend([NEW])
    app = TraceApp(IndexSet.open([text_index]), backend, intro="t", export_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+t")
        await pilot.pause()
        area = app.screen.query_one("#trace-area")
        area.text = "To be, or not to be, that is the question."
        await pilot.press("ctrl+s")
        await wait_idle(app, pilot)
        assert app.main.views[-1].role == "text" and app.main.views[-1].trace is not None
        await start_reply(app, pilot, "hello")
        await wait_idle(app, pilot)
        assert backend.seen[-1] == [Turn("user", "hello")]


async def test_continue_mode_for_models_without_template(text_index: Path, tmp_path: Path) -> None:
    cont = " jumps over the lazy dog. A stitch in time saves nine."
    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([cont], has_template=False), intro="t",
                   export_dir=tmp_path, openings=["The quick brown fox"])
    async with app.run_test(size=(120, 36)) as pilot:
        assert app.conversation.mode == "continue" and "continue" in app.sub_title
        await pilot.pause()
        assert "opening" in app.main.query_one("#prompt").placeholder
        await pilot.press("f4")
        assert app.main.query_one("#prompt").value == "The quick brown fox"
        await pilot.press("enter")
        await wait_idle(app, pilot)
        view = app.main.views[-1]
        assert [v.role for v in app.main.views] == ["assistant"]
        assert view.text == "The quick brown fox" + cont and view.message.prompt_chars == len("The quick brown fox")
        assert view.trace is not None and view.trace.text == view.text  # traced as one piece
        assert any(s.start < view.message.prompt_chars < s.end for s in view.trace.spans)  # across the seam
        assert app.backend.seen == ["The quick brown fox"]
        plain = view.build_content()
        assert "continues your opening" in plain.plain
        await pilot.press("f3")
        assert app.conversation.mode == "chat" and "chat" in app.sub_title


async def test_saved_traces_reused_only_while_indexes_match(text_index: Path, tmp_path: Path) -> None:
    import shutil

    from index_tools.engine import Index

    store = ConversationStore(tmp_path / "c.sqlite3")
    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path,
                   store=store)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_reply(app, pilot, "first")
        await wait_idle(app, pilot)
        saved = app.main.views[-1].trace
        assert saved is not None and saved.spans
        await pilot.press("ctrl+n", "ctrl+r")
        await pilot.pause()
        await pilot.press("enter")
        await wait_idle(app, pilot)
        assert "1 saved trace(s) reused" in app.last_status
        reopened = app.main.views[-1].trace
        assert reopened is not None and reopened.to_json() == saved.to_json()
    # the same conversation against another index (another fingerprint): traced again
    other = tmp_path / "other-index"
    shutil.copytree(text_index, other)
    manifest = other / "tracetui-index.json"
    manifest.write_text(manifest.read_text().replace('"source": "tracetui"', '"source": "tracetui-copy"'))
    assert Index.open(other).fingerprint != Index.open(text_index).fingerprint
    app2 = TraceApp(IndexSet.open([other]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path, store=store)
    async with app2.run_test(size=(120, 36)) as pilot:
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press("enter")
        await wait_idle(app2, pilot)
        fresh = app2.main.views[-1].trace
        assert fresh is not None and fresh.spans  # traced again, against the index open now
        assert fresh.indexes == {"other-index": Index.open(other).fingerprint} != saved.indexes


@pytest.mark.parametrize("theme", ["textual-light", "textual-dark"])
async def test_highlights_mix_toward_the_theme_background(text_index: Path, tmp_path: Path, theme: str) -> None:
    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path, theme=theme)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_reply(app, pilot)
        await wait_idle(app, pilot)
        view = app.main.views[-1]
        bg = app.get_css_variables()["background"][:7]
        assert bg == ("#E0E0E0" if theme == "textual-light" else "#121212")
        content = view.build_content()
        styles = " ".join(str(s.style) for s in content.spans)
        level = view.trace.spans[0].level
        assert mix(HUES[0], STRENGTH[level], bg) in styles


@pytest.mark.parametrize("moment", [0.0, 0.05, 0.3])
async def test_quit_while_streaming_or_tracing_leaves_no_thread(text_index: Path, tmp_path: Path,
                                                                moment: float) -> None:
    before = worker_threads()
    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([REPLY * 4], delay=0.005, piece=2), intro="t",
                   export_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await start_reply(app, pilot)
        await pilot.pause(moment)
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_code in (0, None) and app._exception is None
    await asyncio.sleep(0.5)
    assert not (worker_threads() - before), "a worker thread outlived the app"


async def test_memorization_score_heat_view_and_export(text_index: Path, tmp_path: Path) -> None:
    import json

    from index_tools.engine import Index
    from tracetui.tracing.memorization import memorization

    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_reply(app, pilot)
        await wait_idle(app, pilot)
        view = app.main.views[-1]
        lens = view.trace.memorization
        want = memorization(Index.open(text_index), REPLY)
        assert lens["covered_share"] == want.covered_share and lens["mean_effective_n"] == want.mean_effective_n
        assert [t[2] for t in lens["tokens"]] == [t.effective_n for t in want.tokens]
        assert f"memorized {want.covered_share:.0%}" in view.build_content().plain
        spans_view = {str(s.style) for s in view.build_content().spans}
        await pilot.press("f5")
        assert app.main.heat and "heat view" in app.last_status
        heat = [s for s in view.build_content().spans if "on #" in str(s.style)]
        assert len(heat) == sum(1 for t in want.tokens if t.effective_n > 1)  # one shade per token
        assert {str(s.style) for s in view.build_content().spans} != spans_view
        await pilot.press("f5")
        assert not app.main.heat
        await pilot.press("ctrl+e")
        exported = json.loads(next(tmp_path.glob("tracetui-*.json")).read_text())
        assert exported["turns"][-1]["trace"]["memorization"]["covered_share"] == want.covered_share


async def test_next_in_corpus_view(text_index: Path, tmp_path: Path) -> None:
    from index_tools.engine import Index
    from index_tools.ngram import infgram_ntd
    from tracetui.app.screens.next_tokens import NextTokensScreen

    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_reply(app, pilot)
        await wait_idle(app, pilot)
        await pilot.press("tab", "f6")
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, NextTokensScreen)
        view = app.main.views[-1]
        end = view.trace.highlights[0].end
        index = Index.open(text_index)
        ids, offs = index.tokenizer.encode_with_offsets(REPLY)
        pos = int(np.searchsorted(np.asarray(offs)[:, 0], end))
        assert screen.pos == pos
        k, dist = infgram_ntd(index, ids[:pos])
        assert screen.context_len == k and screen.total == dist.prompt_cnt
        top = np.argsort(-dist.counts, kind="stable")[:12]
        assert [(r[0], r[2]) for r in screen.rows] == [(int(dist.ids[i]), int(dist.counts[i])) for i in top]
        assert screen.rows, "the context occurs in the corpus, so something follows it"
        shown = screen.query_one("#next-list").render().plain
        if int(ids[pos]) in dist.ids.tolist():
            assert "the model's token" in shown
        await pilot.press("right")
        await pilot.pause(0.3)
        assert screen.pos == pos + 1
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_lens_and_heat_view_follow_a_streaming_reply(text_index: Path, tmp_path: Path) -> None:
    """While a reply streams, its live traces carry the lens: the score beside the label and the
    heat view (F5) show for the text so far, before the reply ends."""
    from index_tools.engine import Index
    from tracetui.tracing.memorization import memorization

    slow = " ".join([REPLY] * 3)
    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([slow], delay=0.05, piece=4), intro="t",
                   export_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_reply(app, pilot)
        await pilot.press("f5")
        view = app.main.views[-1]
        deadline = time.monotonic() + 10
        while (view.trace is None or not view.trace.memorization) and time.monotonic() < deadline:
            await pilot.pause(0.1)
        assert app.generating, "the reply should still be streaming"
        trace = view.trace
        assert trace.memorization and len(trace.text) < len(slow)
        want = memorization(Index.open(text_index), trace.text)
        assert [t[2] for t in trace.memorization["tokens"]] == [t.effective_n for t in want.tokens]
        content = view.build_content()
        assert "memorized" in content.plain
        assert sum(1 for s in content.spans if "on #" in str(s.style)) == sum(
            1 for t in want.tokens if t.effective_n > 1)
        await wait_idle(app, pilot)
        assert view.trace.text == slow and view.trace.memorization


async def test_heat_view_token_click_opens_next_in_corpus_there(text_index: Path, tmp_path: Path) -> None:
    """In the heat view every token carries a click action; it opens the next-token view at that
    token (context: the text before it; the model's token: it)."""
    from tracetui.app.screens.next_tokens import NextTokensScreen

    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await start_reply(app, pilot)
        await wait_idle(app, pilot)
        await pilot.press("f5")
        view = app.main.views[-1]
        actions = [str(s.style) for s in view.build_content().spans if "next_at(" in str(s.style)]
        assert len(actions) == len(view.trace.memorization["tokens"])
        a, b = view.trace.memorization["tokens"][5][:2]
        await app.run_action(f"screen.next_at({view.number},{a})")
        await pilot.pause(0.3)
        screen = app.screen
        assert isinstance(screen, NextTokensScreen) and screen.pos == 5
