"""The prompt people expect (issue 20 §4): several lines, history, regenerate, a system prompt per
conversation, the settings in the header, and a footer of whole keys at 80 and 120 columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.app.widgets.footer import StableFooter
from tracetui.app.widgets.prompt import PromptArea
from tracetui.model import ModelSettings, ScriptedBackend
from tracetui.store import ConversationStore

from .test_app import wait_idle

REPLIES = ["The quick brown fox jumps over the lazy dog.", "A stitch in time saves nine.", "To be, or not to be."]


def make(text_index: Path, tmp_path: Path, **kw) -> tuple[TraceApp, ScriptedBackend]:  # type: ignore[no-untyped-def]
    backend = ScriptedBackend(REPLIES)
    app = TraceApp(IndexSet.open([text_index]), backend, intro="t", export_dir=tmp_path,
                   settings=ModelSettings(temperature=0.3, top_p=0.9, max_tokens=77, seed=5), **kw)
    return app, backend


async def test_multiline_prompt_and_history(text_index: Path, tmp_path: Path) -> None:
    app, backend = make(text_index, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        prompt = app.main.query_one("#prompt", PromptArea)
        prompt.focus()
        await pilot.press(*"first line", "ctrl+j", *"second line", "enter")
        await wait_idle(app, pilot)
        assert app.messages[0].message.text == "first line\nsecond line"  # Ctrl+J broke the line, Enter sent
        assert backend.seen[0][-1].text == "first line\nsecond line"  # type: ignore[union-attr]
        prompt.insert("pasted\nmany\nlines")  # a paste: several lines at once, not sent
        await pilot.pause()
        assert prompt.value == "pasted\nmany\nlines" and len(app.messages) == 2
        prompt.value = ""
        await pilot.press(*"third", "enter")
        await wait_idle(app, pilot)
        await pilot.press(*"draft")
        await pilot.press("up")  # the newest sent prompt
        assert prompt.value == "third"
        await pilot.press("up")  # then the one before, multi-line
        assert prompt.value == "first line\nsecond line"
        prompt.move_cursor(prompt.document.end)
        await pilot.press("down")
        assert prompt.value == "third"
        await pilot.press("down")  # past the newest: the draft comes back
        assert prompt.value == "draft"
        # edit a previous prompt and send it again
        await pilot.press("up", *" again", "enter")
        await wait_idle(app, pilot)
        assert app.messages[-2].message.text == "third again"


async def test_regenerate_replaces_the_last_reply(text_index: Path, tmp_path: Path) -> None:
    app, backend = make(text_index, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        app.main.query_one("#prompt", PromptArea).focus()
        await pilot.press(*"tell me", "enter")
        await wait_idle(app, pilot)
        assert [m.text for m in app.conversation.messages] == ["tell me", REPLIES[0]]
        await pilot.press("ctrl+b")
        await wait_idle(app, pilot)
        assert [m.text for m in app.conversation.messages] == ["tell me", REPLIES[1]]
        assert [v.message.text for v in app.messages] == ["tell me", REPLIES[1]]
        assert backend.seen[1] == backend.seen[0]  # the same turns went to the model
        assert app.messages[-1].trace is not None and app.messages[-1].trace.text == REPLIES[1]


async def test_system_prompt_per_conversation_is_used_stored_and_shown(text_index: Path, tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    app, backend = make(text_index, tmp_path, store=store)
    async with app.run_test(size=(120, 36)) as pilot:
        assert "T 0.3 · top-p 0.9 · max 77 · seed 5" in app.sub_title  # the settings, visible
        app.main.query_one("#prompt", PromptArea).focus()
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press(*"You are a pirate.", "enter")
        await pilot.pause()
        assert app.conversation.system == "You are a pirate." and "system prompt" in app.sub_title
        await pilot.press(*"ahoy", "enter")
        await wait_idle(app, pilot)
        assert backend.seen_settings[-1].system_prompt == "You are a pirate."
        assert backend.seen_settings[-1].temperature == 0.3
        cid = app.conversation.stored_id
        assert cid is not None and store.load(cid).system == "You are a pirate."
        await pilot.press("ctrl+n", *"plain", "enter")  # a new chat: the default again
        await wait_idle(app, pilot)
        assert backend.seen_settings[-1].system_prompt == ModelSettings().system_prompt


@pytest.mark.parametrize("width", [80, 120])
async def test_footer_shows_whole_keys_in_order_of_use(text_index: Path, tmp_path: Path, width: int) -> None:
    app, _ = make(text_index, tmp_path)
    async with app.run_test(size=(width, 30)) as pilot:
        await pilot.pause()
        footer = app.main.query_one(StableFooter)
        line = footer.render().plain
        assert len(line) <= width
        shown = footer.fitted(width)
        assert shown and line == "  ".join(f"{k} {d}" for k, d in shown)  # every key shown is whole
        every = footer.shown_keys()
        assert shown == every[: len(shown)]  # a prefix of the keys in order of use: none skipped
        assert [d for _, d in shown[:3]] == ["Help", "Next span", "Prev span"]
        if len(shown) < len(every):
            nxt = every[len(shown)]
            assert len(line) + 2 + len(nxt[0]) + 1 + len(nxt[1]) > width  # the next one would not fit
        assert ("F5", "Heat view") in shown or width < 120
