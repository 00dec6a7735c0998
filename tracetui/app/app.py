"""The main app: chat pane, live trace of the reply, document panel, keyboard navigation."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, OptionList, Static
from textual.worker import Worker, WorkerState, get_current_worker

from index_tools.engine import IndexSet

from ..model import Backend, ModelError, ModelSettings, Turn
from ..sanitize import inert
from ..store import ConversationStore
from ..tracing.pipeline import TraceParams, Tracer, TraceResult
from .screens.conversations import ConversationsScreen
from .screens.document import DocumentScreen
from .screens.help import HelpScreen
from .screens.indexing import IndexingScreen
from .screens.trace_text import TraceTextScreen
from .widgets.documents import DocumentPanel
from .widgets.message import HUES, MessageView

TRACE_INTERVAL = 0.3  # seconds between live traces while a reply streams (CPU shared with llama.cpp)
PUMP_INTERVAL = 1 / 20  # how often streamed text reaches the screen


def _lower_thread_priority() -> None:
    """Tracing yields the CPU to llama.cpp: on Linux a thread has its own nice value."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class TraceApp(App[None]):
    CSS_PATH = "tracetui.tcss"
    TITLE = "tracetui"
    # below 90 columns the document panel moves under the chat (see tracetui.tcss)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-wide")]

    BINDINGS = [
        Binding("tab", "next_span", "Next span", priority=True, id="span.next"),
        Binding("shift+tab", "prev_span", "Prev span", priority=True, id="span.prev"),
        Binding("escape", "escape", "Stop / clear", id="escape"),
        Binding("f1,question_mark", "help", "Help", id="help"),
        Binding("ctrl+o", "focus_docs", "Documents", id="docs.focus"),
        Binding("ctrl+t", "trace_text", "Trace text", id="trace.text"),
        Binding("ctrl+e", "export", "Export", id="export"),
        Binding("ctrl+y", "copy_span", "Copy span", id="copy.span"),
        Binding("ctrl+n", "new_chat", "New chat", id="chat.new"),
        Binding("ctrl+r", "conversations", "Chats", id="chat.list"),
        Binding("f2", "toggle_theme", "Light/dark", show=False, id="theme.toggle"),
        Binding("ctrl+l", "focus_prompt", "Prompt", show=False, id="prompt.focus"),
    ]

    def __init__(self, indexes: IndexSet | None, backend: Backend | None = None, *,
                 settings: ModelSettings | None = None, backend_error: str | None = None,
                 intro: str = "", export_dir: Path | None = None, store: ConversationStore | None = None,
                 theme: str | None = None, index_loader: Callable[[], IndexSet] | None = None,
                 trace_params: TraceParams | None = None) -> None:
        super().__init__()
        self.trace_params = trace_params or TraceParams()
        self.index_loader = index_loader
        self.store = store
        self.conversation: int | None = None
        if theme:
            self.theme = theme
        self.indexes = indexes
        self.backend = backend
        self.backend_error = backend_error
        self.settings = settings or ModelSettings()
        self.intro = intro
        self.export_dir = export_dir or Path.cwd()
        self.turns: list[Turn] = []
        self.messages: list[MessageView] = []
        self.index_hue = {ix.name: HUES[i % len(HUES)] for i, ix in enumerate(indexes or [])}
        self.stop_event = threading.Event()
        self.generating = False
        self._trace_lock = threading.Lock()
        self._tracer = Tracer(indexes, self.trace_params) if indexes else None
        self.last_status = ""
        self._focused: MessageView | None = None
        self._stream: tuple[MessageView, str] | None = None  # written by the generation thread
        self._trace_busy = False
        self._missing: set[str] = set()
        self._last_live_trace = 0.0

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="chat-col"):
                yield VerticalScroll(Static(self.intro, id="intro"), id="chat")
                yield Input(placeholder="Ask the model… (Enter to send, F1 for help)", id="prompt")
            yield DocumentPanel(id="docs")
        yield Static("ready", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()
        self.set_interval(PUMP_INTERVAL, self._pump)
        if self.index_loader is not None:
            self.push_screen(IndexingScreen())
            self.load_indexes()
        if self.backend_error:
            self.notify(self.backend_error, title="Model not loaded", severity="error", timeout=10, markup=False)
            self.set_status(f"model: {self.backend_error} — tracing pasted text (Ctrl+T) still works")

    def set_status(self, text: str) -> None:
        self.last_status = text
        self.query_one("#status", Static).update(Content(inert(text)))

    @work(thread=True, exclusive=True, group="indexes")
    def load_indexes(self) -> None:
        """Check or build the default index off the event loop, behind the indexing screen."""
        assert self.index_loader is not None
        start = time.perf_counter()
        try:
            indexes = self.index_loader()
        except Exception as exc:  # a broken cache or a full disk: say so, the model still chats
            self.call_from_thread(self._indexes_failed, str(exc))
            return
        self.call_from_thread(self._indexes_ready, indexes, time.perf_counter() - start)

    def _indexes_ready(self, indexes: IndexSet, seconds: float) -> None:
        self.indexes = indexes
        self.index_hue = {ix.name: HUES[i % len(HUES)] for i, ix in enumerate(indexes)}
        self._tracer = Tracer(indexes, self.trace_params)
        if isinstance(self.screen, IndexingScreen):
            self.pop_screen()
        tokens = sum(ix.manifest.tokens for ix in indexes)
        self.set_status(f"index ready: {tokens:,} tokens ({seconds:.1f} s)")

    def _indexes_failed(self, message: str) -> None:
        if isinstance(self.screen, IndexingScreen):
            self.pop_screen()
        self.notify(f"default index unavailable: {message}", severity="error", markup=False)
        self.set_status("no index: replies are not traced")

    # -- chat -------------------------------------------------------------------------------------
    @on(Input.Submitted, "#prompt")
    def send(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.generating:
            self.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return
        if self.backend is None:
            self.notify(self.backend_error or "no model loaded", severity="error", markup=False)
            return
        event.input.value = ""
        if self.store is not None and self.conversation is None:
            self.conversation = self.store.create(text)
        self.turns.append(Turn("user", text))
        self._add_message("user", text)
        reply = self._add_message("assistant", "")
        self._focused = None
        self.generating = True
        self.stop_event.clear()
        self.set_status("generating…")
        self.generate(reply, list(self.turns))

    def _add_message(self, role: str, text: str) -> MessageView:
        view = MessageView(role, text, number=len(self.messages), classes="message")
        self.messages.append(view)
        chat = self.query_one("#chat", VerticalScroll)
        chat.mount(view)
        chat.scroll_end(animate=False)
        return view

    @work(thread=True, exclusive=True, group="generate")
    def generate(self, view: MessageView, turns: list[Turn]) -> None:
        """Owns the model for one reply. It never waits for the UI: it only publishes the text
        so far, which the UI's pump picks up at its own pace (generation speed does not depend
        on how long rendering or tracing takes)."""
        assert self.backend is not None
        text = ""
        start = time.perf_counter()
        n = 0
        error = None
        self._stream = (view, "")
        try:
            for piece in self.backend.stream(turns, self.settings, self.stop_event):
                text += piece
                n += 1
                self._stream = (view, text)  # one reference assignment: atomic
        except ModelError as exc:
            error = str(exc)
        except Exception as exc:  # a dying model must never take the app down
            error = f"model failed: {exc}"
        elapsed = time.perf_counter() - start
        self.call_from_thread(self._reply_done, view, text, n, elapsed, error)

    def _pump(self) -> None:
        """Runs on the event loop a few times a second while a reply streams: shows new text and
        starts a live trace when the previous one has finished."""
        stream = self._stream
        if stream is None:
            return
        view, text = stream
        if text != view.text:
            view.set_text(text)
            self.query_one("#chat", VerticalScroll).scroll_end(animate=False)
        now = time.perf_counter()
        if (text.strip() and now - self._last_live_trace > TRACE_INTERVAL and not self._trace_busy
                and (view.trace is None or view.trace.text != text)):
            self._last_live_trace = now
            self.start_trace(view, text, live=True)

    def _reply_done(self, view: MessageView, text: str, n: int, elapsed: float, error: str | None) -> None:
        self._stream = None
        view.set_text(text)
        self.generating = False
        self.turns.append(Turn("assistant", text))
        if error:
            self.notify(error, title="Model error", severity="error", markup=False)
        stopped = " (stopped)" if self.stop_event.is_set() else ""
        self.set_status(f"reply: {n} pieces in {elapsed:.1f}s{stopped} · tracing…")
        self.start_trace(view, text, live=False)

    # -- tracing ----------------------------------------------------------------------------------
    def start_trace(self, view: MessageView, text: str, live: bool) -> None:
        if self._tracer is None or not text.strip():
            if not live:
                self.set_status("no index open: nothing traced")
            return
        prompt = next((t.text for t in reversed(self.turns) if t.role == "user"), "")
        self.trace_worker(view, text, prompt, live)

    @work(thread=True, exclusive=True, group="trace")
    def trace_worker(self, view: MessageView, text: str, prompt: str, live: bool) -> None:
        _lower_thread_priority()
        self._trace_busy = True
        try:
            self._trace_body(view, text, prompt, live)
        finally:
            self._trace_busy = False

    def _check_indexes(self) -> None:
        """An index directory removed or moved while we run: its memory maps stay readable
        (Linux keeps unlinked files alive while mapped), so tracing goes on; say so once."""
        for ix in self.indexes or []:
            if ix.name not in self._missing and not (ix.directory / "tracetui-index.json").exists():
                self._missing.add(ix.name)
                self.call_from_thread(
                    self.notify, f"index {ix.name} disappeared from {ix.directory}; tracing continues on the "
                    "copy still open, reopen the app after restoring it", severity="warning", markup=False)

    def _trace_body(self, view: MessageView, text: str, prompt: str, live: bool) -> None:
        self._check_indexes()
        with self._trace_lock:
            if get_current_worker().is_cancelled and live:
                return  # a newer trace superseded this one while it waited
            if view.trace is not None and view.trace.text == text and view.trace.prompt == prompt:
                result = view.trace  # already current (the last live trace saw the final text)
            else:
                if len(text) < len(view.trace.text if view.trace else ""):
                    self._tracer.reset()  # type: ignore[union-attr]
                try:
                    result = self._tracer.trace(text, prompt=prompt)  # type: ignore[union-attr]
                except Exception as exc:  # an index that vanished or broke: say so, keep running
                    self.call_from_thread(self._trace_failed, str(exc))
                    return
        self.call_from_thread(self._trace_done, view, result, live)

    def _trace_failed(self, message: str) -> None:
        self.notify(f"tracing failed: {message}", severity="error", markup=False)
        self.set_status(f"tracing failed: {message}")

    def _trace_done(self, view: MessageView, result: TraceResult, live: bool) -> None:
        same_spans = view.trace is not None and [(x.start, x.end, x.level) for x in view.trace.spans] == [
            (x.start, x.end, x.level) for x in result.spans]
        view.trace = result if same_spans else view.trace
        if not same_spans:
            view.set_trace(result, self.index_hue)
        panel = self.query_one(DocumentPanel)
        doc_ids = [d.id for d in result.documents]
        if view is self.messages[-1] and view.selected is None and (
                not live or doc_ids != [d.id for d in panel.documents]):
            panel.show(result)
        t = result.timings_ms.get("total", 0.0)
        state = "live" if live and self.generating else "done"
        if state == "done":
            self.save_conversation()
        self.set_status(f"{len(result.spans)} spans · {len(result.documents)} documents · {t:.0f} ms ({state})")

    # -- span navigation ----------------------------------------------------------------------------
    def _focused_reply(self) -> MessageView | None:
        """The reply last clicked, else the latest reply with highlights."""
        f = self._focused
        if f is not None and f in self.messages and f.trace is not None and f.trace.highlights:
            return f
        replies = [m for m in self.messages if m.role == "assistant" and m.trace and m.trace.highlights]
        return replies[-1] if replies else None

    def _select(self, step: int) -> None:
        view = self._focused_reply()
        if view is None or view.trace is None:
            self.notify("no highlighted spans yet", severity="information")
            return
        count = len(view.trace.highlights)
        cur = view.selected
        nxt = (0 if step > 0 else count - 1) if cur is None else (cur + step) % count
        self.select_highlight(view, nxt)

    def select_highlight(self, view: MessageView, nxt: int | None) -> None:
        view.select(nxt)
        panel = self.query_one(DocumentPanel)
        if nxt is None or view.trace is None:
            panel.show(view.trace)
            return
        h = view.trace.highlights[nxt]
        panel.show(view.trace, h.spans)
        line = view.text[: h.start].count("\n") + 1
        view.scroll_visible(animate=False)
        self.query_one("#chat", VerticalScroll).scroll_to(y=view.virtual_region.y + line - 2, animate=False)
        texts = "; ".join(inert(view.trace.spans[i].text)[:60] for i in h.spans)
        self.set_status(f"span {nxt + 1}/{len(view.trace.highlights)}: {texts}")

    def action_pick_highlight(self, message: int, highlight: int) -> None:
        """A click on a highlight: select it, as Tab would."""
        if 0 <= message < len(self.messages):
            view = self.messages[message]
            for other in self.messages:
                if other is not view and other.selected is not None:
                    other.select(None)
            if view.trace is not None and 0 <= highlight < len(view.trace.highlights):
                self._focused = view
                self.select_highlight(view, highlight)

    def action_next_span(self) -> None:
        if isinstance(self.screen, Screen) and self.screen is not self.screen_stack[0]:
            self.screen.focus_next()
            return
        self._select(1)

    def action_prev_span(self) -> None:
        if self.screen is not self.screen_stack[0]:
            self.screen.focus_previous()
            return
        self._select(-1)

    def action_escape(self) -> None:
        if self.generating:
            self.stop_event.set()
            self.set_status("stopping…")
            return
        view = self._focused_reply()
        if view is not None and view.selected is not None:
            self.select_highlight(view, None)
            self.set_status("selection cleared: all documents")

    # -- documents ------------------------------------------------------------------------------------
    def action_focus_docs(self) -> None:
        self.query_one(DocumentPanel).focus()

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    @on(OptionList.OptionSelected, "#docs")
    def open_document(self, event: OptionList.OptionSelected) -> None:
        panel = self.query_one(DocumentPanel)
        doc = next((d for d in panel.documents if d.id == event.option.id), None)
        view = self._focused_reply()
        if doc is None or view is None or view.trace is None:
            return
        whole = None
        index = next((ix for ix in (self.indexes or []) if ix.name == doc.index), None)
        if index is not None:
            try:
                whole = index.document_text(doc.doc)
            except Exception:
                whole = None

        def locate(span: int | None) -> None:
            if span is None or view.trace is None:
                return
            hl = next((k for k, h in enumerate(view.trace.highlights) if span in h.spans), None)
            self.select_highlight(view, hl)

        self.push_screen(DocumentScreen(view.trace, doc, whole), locate)

    # -- other actions ------------------------------------------------------------------------------
    def action_help(self) -> None:
        rows = [(b.key, b.description) for b in self.BINDINGS if isinstance(b, Binding)]
        rows += [("Enter", "Send prompt / open document"), ("j / k", "Move in the document list"),
                 ("n / N", "Next / previous span in a document"), ("l", "Locate a document's span in the reply"),
                 ("w", "Whole document / window"), ("Ctrl+P", "Command palette")]
        self.push_screen(HelpScreen(rows))

    def action_trace_text(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self.turns.append(Turn("user", "(trace text)"))
                view = self._add_message("assistant", text)
                self.start_trace(view, text, live=False)

        self.push_screen(TraceTextScreen(), done)

    def action_copy_span(self) -> None:
        view = self._focused_reply()
        if view is None or view.selected is None or view.trace is None:
            self.notify("select a span first (Tab)", severity="warning")
            return
        h = view.trace.highlights[view.selected]
        self.copy_to_clipboard(view.text[h.start : h.end])
        self.notify("span copied to the clipboard")

    def action_new_chat(self) -> None:
        if self.generating:
            self.stop_event.set()
        self.turns.clear()
        for m in self.messages:
            m.remove()
        self.messages.clear()
        self.conversation = None
        self._focused = None
        if self._tracer:
            self._tracer.reset()
        self.query_one(DocumentPanel).show(None)
        self.set_status("new chat")

    def save_conversation(self) -> None:
        if self.store is None or self.conversation is None:
            return
        try:
            self.store.save_messages(self.conversation, [
                (m.role, m.text, m.trace.to_json() if m.trace else None) for m in self.messages])
        except Exception as exc:  # a full disk must not end the chat
            self.notify(f"could not save the conversation: {exc}", severity="warning", markup=False)

    def action_conversations(self) -> None:
        if self.store is None:
            self.notify("conversations are not saved in this session", severity="warning")
            return
        if self.generating:
            self.notify("wait for the reply to finish (Esc stops it)", severity="warning")
            return

        def opened(cid: int | None) -> None:
            if cid is None or self.store is None:
                return
            self.action_new_chat()
            self.conversation = cid
            for role, text, _ in self.store.load(cid):
                view = self._add_message(role, text)
                self.turns.append(Turn(role, text))
                if role == "assistant":
                    self.start_trace(view, text, live=False)
            self.set_status(f"reopened conversation {cid}")

        self.push_screen(ConversationsScreen(self.store), opened)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme != "textual-light" else "textual-dark"

    def export_data(self) -> dict[str, Any]:
        return {
            "turns": [{"role": m.role, "text": m.text, "trace": m.trace.to_json() if m.trace else None}
                      for m in self.messages],
        }

    def action_export(self) -> Path | None:
        data = self.export_data()
        if not data["turns"]:
            self.notify("nothing to export yet", severity="warning")
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.export_dir.mkdir(parents=True, exist_ok=True)
        base = self.export_dir / f"tracetui-{stamp}"
        base.with_suffix(".json").write_text(json.dumps(data, ensure_ascii=True, indent=2), encoding="utf-8")
        md = []
        for t in data["turns"]:
            md.append(f"## {'You' if t['role'] == 'user' else 'Model'}\n\n{t['text']}\n")
            if t["trace"]:
                for s in t["trace"]["spans"]:
                    md.append(f"- `{s['text']}` — {s['level']}, occurs {s['count']}×, in {', '.join(s['documents'])}")
                md.append("")
        base.with_suffix(".md").write_text("\n".join(md), encoding="utf-8")
        self.notify(f"exported to {base}.md and .json", markup=False)
        return base

    def get_system_commands(self, screen: Screen):  # type: ignore[no-untyped-def]
        yield from super().get_system_commands(screen)
        for b in self.BINDINGS:
            if isinstance(b, Binding) and b.description:
                yield SystemCommand(b.description, f"{b.description} ({b.key})", lambda a=b.action: self.run_action(a))

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.generating = False
            self.notify(f"{event.worker.name} failed: {event.worker.error}", severity="error", markup=False)
