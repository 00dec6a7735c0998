"""Pilot tests of the app with a scripted model and a real index."""

from __future__ import annotations

import json
from pathlib import Path

from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.app.screens.document import DocumentScreen
from tracetui.app.screens.help import HelpScreen
from tracetui.app.widgets.documents import DocumentPanel
from tracetui.app.widgets.message import MessageView
from tracetui.model import ScriptedBackend

REPLY = ("Sure. The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n"
         "To be, or not to be, that is the question.")


async def wait_idle(app: TraceApp, pilot, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Until no reply streams, no trace is queued or running and the UI has handled every
    result (the long-lived trace worker itself never completes)."""
    import time

    end = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < end:
        await pilot.pause(0.02)
        quiet = quiet + 1 if not app.busy else 0
        if quiet >= 3:
            return
    raise AssertionError("app did not become idle")


def make_app(text_index: Path, tmp_path: Path, reply: str = REPLY, **kw) -> TraceApp:  # type: ignore[no-untyped-def]
    return TraceApp(IndexSet.open([text_index]), ScriptedBackend([reply], **kw), intro="test", export_dir=tmp_path)


async def test_chat_trace_tab_documents_and_back(text_index: Path, tmp_path: Path) -> None:
    app = make_app(text_index, tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.click("#prompt")
        await pilot.press(*"tell me a proverb")
        await pilot.press("enter")
        await wait_idle(app, pilot)
        reply = app.messages[-1]
        assert reply.text == REPLY
        assert reply.trace is not None and reply.trace.text == REPLY
        assert "spans" in app.last_status and "documents" in app.last_status and "ms" in app.last_status
        highlights = reply.trace.highlights
        assert len(highlights) >= 2
        panel = app.query_one(DocumentPanel)
        all_docs = len(panel.documents)
        assert all_docs == len(reply.trace.documents) > 0
        # Tab selects the first highlight; the panel follows it
        await pilot.press("tab")
        assert reply.selected == 0
        first = highlights[0]
        assert {s for d in panel.documents for s in d.spans} & set(first.spans)
        assert all(set(d.spans) & set(first.spans) for d in panel.documents)
        await pilot.press("tab")
        assert reply.selected == 1
        await pilot.press("shift+tab")
        assert reply.selected == 0
        await pilot.press("shift+tab")
        assert reply.selected == len(highlights) - 1
        # open the current document
        await pilot.press("ctrl+o")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DocumentScreen)
        doc_screen = app.screen
        assert doc_screen.marks, "the document shows the traced spans"
        await pilot.press("n")
        assert doc_screen.current == 1 % len(doc_screen.marks)
        await pilot.press("N")
        assert doc_screen.current == 0
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DocumentScreen)
        # Esc clears the selection and shows every document again
        await pilot.press("escape")
        assert reply.selected is None
        assert len(panel.documents) == all_docs
        # help
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        # export
        await pilot.press("ctrl+e")
        exported = list(tmp_path.glob("tracetui-*.json"))
        assert len(exported) == 1
        data = json.loads(exported[0].read_text())
        assert data["turns"][1]["trace"]["spans"]
        assert (exported[0].with_suffix(".md")).read_text().count("occurs") >= 2


async def test_escape_stops_streaming_and_ui_stays_responsive(text_index: Path, tmp_path: Path) -> None:
    app = make_app(text_index, tmp_path, reply="word " * 400, delay=0.01, piece=5)
    statuses: list[str] = []
    set_status = app.set_status

    def record(text: str) -> None:
        statuses.append(text)
        set_status(text)

    app.set_status = record  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#prompt")
        await pilot.press(*"go", "enter")
        await pilot.pause(0.3)
        assert app.generating
        await pilot.press("escape")
        await wait_idle(app, pilot)
        reply = app.messages[-1]
        assert 0 < len(reply.text) < len("word " * 400) and ("word " * 400).startswith(reply.text)
        # the reply is reported as stopped, then the part received is traced
        done = [s for s in statuses if s.startswith("reply: ")]
        assert len(done) == 1 and done[0].endswith("(stopped) · tracing…"), statuses
        assert reply.trace is not None and reply.trace.text == reply.text
        trace = reply.trace
        assert app.last_status.startswith(f"{len(trace.spans)} spans · {len(trace.documents)} documents · ")
        assert app.last_status.endswith("(done)") and statuses.index(done[0]) < len(statuses) - 1


async def test_model_dying_mid_reply_is_reported(text_index: Path, tmp_path: Path) -> None:
    app = make_app(text_index, tmp_path, fail_after=20)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#prompt")
        await pilot.press(*"hi", "enter")
        await wait_idle(app, pilot)
        assert not app.generating
        assert app.messages[-1].text == REPLY[:20]
        # the app still works: a second prompt goes through
        app.backend = ScriptedBackend(["The quick brown fox."])
        await pilot.press(*"again", "enter")
        await wait_idle(app, pilot)
        assert app.messages[-1].text == "The quick brown fox."


async def test_untrusted_text_is_inert(text_index: Path, tmp_path: Path) -> None:
    hostile = "[bold red]x[/] \x1b[31mred\x1b]52;c;AAAA\x07 \u202eevil [link=http://x]y[/link] The quick brown fox"
    app = make_app(text_index, tmp_path, reply=hostile)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.click("#prompt")
        await pilot.press(*"x", "enter")
        await wait_idle(app, pilot)
        view: MessageView = app.messages[-1]
        plain = view.build_content().plain
        assert "[bold red]x[/]" in plain and "[link=http://x]y[/link]" in plain  # shown, not interpreted
        assert "\x1b" not in plain and "\x07" not in plain and "\u202e" not in plain


async def test_click_on_highlight_selects_it_and_markdown_keeps_offsets(text_index: Path, tmp_path: Path) -> None:
    reply = "# Title\n\nSome **bold** text: The quick brown fox jumps over the lazy dog.\n\n```\nimport numpy as np\n```\n"
    app = make_app(text_index, tmp_path, reply=reply)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.click("#prompt")
        await pilot.press(*"md", "enter")
        await wait_idle(app, pilot)
        view = app.messages[-1]
        assert view.build_content().plain.endswith(reply)  # markdown styled, not re-flowed
        assert view.trace is not None and len(view.trace.highlights) >= 1
        code_span = [h for h in view.trace.highlights if "numpy" in reply[h.start : h.end]]
        assert code_span, "a span inside the code block is highlighted"
        target = len(view.trace.highlights) - 1
        await pilot.pause()
        app.screen.action_pick_highlight(view.number, target)  # what the @click meta on the range calls
        assert view.selected == target
        h = view.trace.highlights[target]
        # a real mouse click on the first highlighted cell selects the first highlight
        first = view.trace.highlights[0]
        line = reply[: first.start].count("\n") + 1  # +1 for the role label line
        col = first.start - (reply.rfind("\n", 0, first.start) + 1)
        await pilot.click(view, offset=(col + 2, line))
        assert view.selected == 0, (h, first)


async def test_conversations_persist_reopen_delete(text_index: Path, tmp_path: Path) -> None:
    from tracetui.app.screens.conversations import ConversationsScreen
    from tracetui.store import ConversationStore

    store = ConversationStore(tmp_path / "c.sqlite3")
    app = TraceApp(IndexSet.open([text_index]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path, store=store)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.click("#prompt")
        await pilot.press(*"first chat", "enter")
        await wait_idle(app, pilot)
        spans = [(s.start, s.end) for s in app.messages[-1].trace.spans]
        assert store.list()[0].title == "first chat" and store.list()[0].messages == 2
        await pilot.press("ctrl+n")
        assert app.messages == []
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert isinstance(app.screen, ConversationsScreen)
        await pilot.press("enter")
        await wait_idle(app, pilot)
        assert [m.text for m in app.messages] == ["first chat", REPLY]
        assert [(s.start, s.end) for s in app.messages[-1].trace.spans] == spans
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert store.list() == []
        await pilot.press("escape")


async def test_index_removed_and_tiny_terminal_keep_working(text_index: Path, tmp_path: Path) -> None:
    import shutil

    moved = tmp_path / "index-copy"
    shutil.copytree(text_index, moved)
    app = TraceApp(IndexSet.open([moved]), ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        shutil.rmtree(moved)  # the index vanishes while the app runs
        await pilot.resize_terminal(40, 12)
        await pilot.pause()
        assert app.screen.has_class("-narrow") or app.has_class("-narrow")
        app.query_one("#prompt").focus()
        await pilot.press(*"hi", "enter")
        await wait_idle(app, pilot)
        reply = app.messages[-1]
        assert reply.text == REPLY and reply.trace is not None and reply.trace.spans
        # traced on the copy still open: the status reports that trace, not a failure
        trace = reply.trace
        assert app.last_status.startswith(f"{len(trace.spans)} spans · {len(trace.documents)} documents · ")
        assert app.last_status.endswith("(done)") and trace.documents
        assert any("disappeared" in str(n.message) for n in app._notifications)
        await pilot.press("tab")
        assert reply.selected == 0
        await pilot.resize_terminal(120, 36)
        await pilot.pause()
        assert app.has_class("-wide") or app.screen.has_class("-wide")


async def test_index_built_behind_a_progress_screen(text_index: Path, tmp_path: Path) -> None:
    import threading

    from tracetui.app.screens.indexing import IndexingScreen

    release = threading.Event()

    def loader() -> IndexSet:
        release.wait(5)  # stands for a build in progress
        return IndexSet.open([text_index])

    app = TraceApp(None, ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path, index_loader=loader)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, IndexingScreen)
        release.set()
        await wait_idle(app, pilot)
        assert not isinstance(app.screen, IndexingScreen)
        assert "index ready" in app.last_status
        app.query_one("#prompt").focus()
        await pilot.press(*"hi", "enter")
        await wait_idle(app, pilot)
        assert app.messages[-1].trace is not None and app.messages[-1].trace.spans


async def test_failing_index_loader_is_reported(tmp_path: Path) -> None:
    def loader() -> IndexSet:
        raise OSError("No space left on device")

    app = TraceApp(None, ScriptedBackend([REPLY]), intro="t", export_dir=tmp_path, index_loader=loader)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_idle(app, pilot)
        assert "no index" in app.last_status
        app.query_one("#prompt").focus()
        await pilot.press(*"hi", "enter")
        await wait_idle(app, pilot)
        assert app.messages[-1].text == REPLY  # chatting still works
