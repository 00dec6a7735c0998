"""The app: owns the conversation, the workers, the bindings and the screens.

Threads and state, by design:
- the UI thread alone reads and writes the `Conversation` and the widgets;
- one generation worker per reply streams from the model and posts `ReplyChunk` / `ReplyDone`;
  a lock keeps llama.cpp to one generation at a time (a reply stopped by Ctrl+N finishes its
  current token while the next one waits);
- one long-lived trace worker owns the `Tracer` (and its caches), takes `TraceRequest`s from a
  queue and posts `TraceReady` / `TraceFailed`;
- every worker message names its conversation and generation: the UI drops what is stale.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, OptionList
from textual.worker import Worker, WorkerState, get_current_worker

from index_tools.engine import Index
from index_tools.opening import IndexSet

from ..conversation import MODES, Conversation, Message
from ..export import export_conversation
from ..model import Backend, ModelError, ModelSettings
from ..reasoning import Reasoning, ReplySplitter
from ..store import ConversationStore, restore_traces
from ..tracing.pipeline import TraceParams, Tracer, TraceResult
from .events import ReplyChunk, ReplyDone, TraceFailed, TraceReady
from .screens.conversations import ConversationsScreen
from .screens.document import DocumentScreen
from .screens.help import HelpScreen
from .screens.indexing import IndexingScreen
from .screens.main import MainScreen
from .screens.models import ModelPickerScreen
from .screens.next_tokens import NextTokensScreen
from .screens.trace_text import TraceTextScreen
from .trace_queue import TraceQueue, TraceRequest
from .widgets.documents import DocumentPanel
from .widgets.message import MessageView, index_hues

TRACE_INTERVAL = 0.5  # seconds between live traces while a reply streams (CPU shared with llama.cpp)
LENS_INTERVAL = 2.0  # heat view on: seconds between lens updates of a streaming reply
CHUNK_INTERVAL = 1 / 10  # the generation thread posts the text so far at most this often

_T = TypeVar("_T")


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
        Binding("f1", "help", "Help", id="help"),
        Binding("question_mark", "help", "Help", show=False, id="help.question"),
        Binding("ctrl+o", "focus_docs", "Documents", id="docs.focus"),
        Binding("f3", "toggle_mode", "Chat/continue", id="mode.toggle"),
        Binding("f4", "demo_opening", "Demo opening", id="demo.opening"),
        Binding("f5", "toggle_heat", "Heat view", id="heat.toggle"),
        Binding("f6", "next_in_corpus", "Next in corpus", id="next.open"),
        Binding("f7", "overlap", "Overlap", id="overlap.open"),
        # shown only when they apply (`check_action`): a model server; replies with reasoning
        Binding("f8", "pick_model", "Model", id="model.pick"),
        Binding("f9", "toggle_reasoning", "Reasoning", id="reasoning.toggle"),
        Binding("ctrl+g", "trace_reasoning", "Trace reasoning", id="reasoning.trace"),
        Binding("ctrl+t", "trace_text", "Trace text", id="trace.text"),
        # priority: the prompt's Input would take Ctrl+E as "end of line" (and the footer would
        # change with the focus)
        Binding("ctrl+e", "export", "Export", priority=True, id="export"),
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
                 trace_params: TraceParams | None = None, mode: str | None = None,
                 openings: list[str] | None = None, trace_reasoning: bool = False) -> None:
        super().__init__()
        self.trace_reasoning = trace_reasoning  # trace every reply's reasoning too (else on Ctrl+G)
        self._main: MainScreen | None = None
        self.trace_params = trace_params or TraceParams()
        self.index_loader = index_loader
        self.store = store
        if theme:
            self.theme = theme
        self.indexes = indexes
        self.backend = backend
        self.backend_error = backend_error
        self.settings = settings or ModelSettings()
        self.intro = intro
        self.openings = openings or []
        self._next_opening = 0
        self.export_dir = export_dir or Path.cwd()
        self.index_hue = index_hues([ix.name for ix in indexes or []])
        if mode is None:
            mode = "chat" if backend is None or backend.has_template else "continue"
        self.conversation = Conversation(mode)
        self.last_status = ""
        self._stop = threading.Event()  # the streaming reply's stop signal (replaced per reply)
        self._model_lock = threading.Lock()
        self._traces = TraceQueue()
        self._live_pending = False
        self._last_live = 0.0

    @property
    def main(self) -> MainScreen:
        """The main screen (made when the app starts: screens belong to a running app)."""
        if self._main is None:
            self._main = MainScreen(self.intro)
        return self._main

    def _main_mounted(self) -> bool:
        return self._main is not None and self._main.is_mounted

    # -- read-only views for tests and tools ----------------------------------------------------
    @property
    def messages(self) -> list[MessageView]:
        return self.main.views

    @property
    def generating(self) -> bool:
        return self.conversation.streaming is not None

    @property
    def busy(self) -> bool:
        """A reply streams, a trace is queued or running, or a one-off worker runs."""
        return (self.generating or self._traces.busy
                or any(w.is_running for w in self.workers if w.group != "trace"))

    # -- start and stop -------------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        return self.main

    def on_mount(self) -> None:
        self._show_mode()
        self.call_after_refresh(self._show_mode)  # again once the main screen has its prompt
        self.call_after_refresh(self._freeze_heap)
        self.trace_loop()
        if self.index_loader is not None:
            self.push_screen(IndexingScreen())
            self.load_indexes()
        if self.backend_error:
            self.notify(self.backend_error, title="Model not loaded", severity="error", timeout=10, markup=False)
            self.set_status(f"model: {self.backend_error} — tracing pasted text (Ctrl+T) still works")
        elif self.backend is not None and self.backend.can_pick_model:
            self.probe_server()

    # -- garbage collection ----------------------------------------------------------------------
    # A full collection scans ~100k objects (mostly Textual's render caches) and blocked the
    # event loop for 70-200 ms while replies streamed (bench_app.py --profile). Objects alive
    # after startup are frozen out of every later scan, and while a reply streams only young
    # generations are collected; one full collection runs when it ends.
    def _freeze_heap(self) -> None:
        gc.collect()
        gc.freeze()

    @staticmethod
    def _streaming_gc(on: bool) -> None:
        gc.set_threshold(700, 10, 1_000_000 if on else 10)

    def _reply_ended_gc(self) -> None:
        self._streaming_gc(False)
        self.set_timer(0.5, gc.collect)

    def on_unmount(self) -> None:
        self._stop_workers()

    def _stop_workers(self) -> None:
        self._stop.set()
        self._traces.close()
        self._streaming_gc(False)
        gc.unfreeze()  # what the app froze becomes collectable again once it is gone

    async def action_quit(self) -> None:
        self._stop_workers()
        self.exit()

    def set_status(self, text: str) -> None:
        self.last_status = text
        if self._main_mounted():
            self.main.set_status(text)

    def _show_mode(self) -> None:
        self.sub_title = f"mode: {self.conversation.mode}"
        if self.backend is not None and self.backend.can_pick_model and self.backend.model:
            self.sub_title += f" · model: {self.backend.model}"
        if self._main_mounted():
            placeholder = ("Type the opening of a text; the model continues it (F3: chat mode)"
                           if self.conversation.mode == "continue" else "Ask the model… (Enter to send, F1 for help)")
            self.main.query_one("#prompt", Input).placeholder = placeholder

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
        self.index_hue = index_hues([ix.name for ix in indexes])
        if isinstance(self.screen, IndexingScreen):
            self.pop_screen()
        tokens = sum(ix.manifest.tokens for ix in indexes)
        self.set_status(f"index ready: {tokens:,} tokens ({seconds:.1f} s)")
        self.call_after_refresh(self._freeze_heap)

    def _indexes_failed(self, message: str) -> None:
        if isinstance(self.screen, IndexingScreen):
            self.pop_screen()
        self.notify(f"default index unavailable: {message}", severity="error", markup=False)
        self.set_status("no index: replies are not traced")

    # -- sending ----------------------------------------------------------------------------------
    @on(Input.Submitted, "#prompt")
    def send(self, event: Input.Submitted) -> None:
        text = event.value if self.conversation.mode == "continue" else event.value.strip()
        if not text.strip():
            return
        if self.generating:
            self.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return
        if self.backend is None:
            self.notify(self.backend_error or "no model loaded", severity="error", markup=False)
            return
        event.input.value = ""
        conv = self.conversation
        if self.store is not None and conv.stored_id is None:
            conv.stored_id = self._store_call(self.store.create, text.strip())
        if conv.mode == "chat":
            self.main.add(conv.add_user(text), self.index_hue)
            turns = conv.model_turns()
            reply = conv.start_reply()
        else:
            turns = []
            reply = conv.start_reply(opening=text)
        self.main.add(reply, self.index_hue)
        self.main.focused_view = None
        self._stop = threading.Event()
        self._live_pending = False
        self._streaming_gc(True)
        self.set_status("generating…")
        self.generate(conv.key, reply.gen, conv.mode, turns, text, self._stop)

    @work(thread=True, group="generate")
    def generate(self, conversation: int, gen: int, mode: str, turns: list, opening: str,
                 stop: threading.Event) -> None:
        """Streams one reply. Never waits for the UI: it posts the text so far at most 20 times
        a second and goes on (generation speed does not depend on rendering or tracing)."""
        backend = self.backend
        assert backend is not None
        n, error, first = 0, None, None
        split = ReplySplitter()  # the answer apart from the reasoning (<think> blocks, reasoning fields)
        start = time.perf_counter()
        with self._model_lock:  # llama.cpp: one generation at a time
            if stop.is_set():
                self.post_message(ReplyDone(conversation, gen, "", 0, 0.0, None, True))
                return
            last = 0.0
            try:
                pieces = (backend.continue_text(opening, self.settings, stop) if mode == "continue"
                          else backend.stream(turns, self.settings, stop))
                for piece in pieces:
                    if isinstance(piece, Reasoning):
                        split.add_reasoning(piece)
                    else:
                        split.feed(piece)
                    n += 1
                    now = time.perf_counter()
                    if first is None:
                        first = now - start
                    if now - last >= CHUNK_INTERVAL:
                        last = now
                        self.post_message(ReplyChunk(conversation, gen, split.answer, split.reasoning))
            except ModelError as exc:
                error = str(exc)
            except Exception as exc:  # a dying model must never take the app down
                error = f"model failed: {exc}"
            split.finish()
        self.post_message(ReplyDone(conversation, gen, split.answer, n, time.perf_counter() - start, error,
                                    stop.is_set(), reasoning=split.reasoning, first_piece=first))

    def _current(self, conversation: int, gen: int) -> Message | None:
        """The message a worker result is about, if it still belongs to the open conversation."""
        if conversation != self.conversation.key:
            return None
        return self.conversation.by_gen(gen)

    @on(ReplyChunk)
    def reply_chunk(self, event: ReplyChunk) -> None:
        msg = self._current(event.conversation, event.gen)
        if msg is None or msg.done:
            return
        msg.text = msg.text[: msg.prompt_chars] + event.text
        self._set_reasoning(msg, event.reasoning)
        view = self.main.view_of(msg)
        if view is not None:
            self.main.text_changed(view)
        now = time.perf_counter()
        if not self._live_pending and now - self._last_live > TRACE_INTERVAL and msg.text.strip():
            self._last_live = now
            self._request_trace(msg, live=True)

    @on(ReplyDone)
    def reply_done(self, event: ReplyDone) -> None:
        msg = self._current(event.conversation, event.gen)
        if msg is None:
            return
        msg.text = msg.text[: msg.prompt_chars] + event.text
        self._set_reasoning(msg, event.reasoning)
        msg.done = True
        self._reply_ended_gc()
        view = self.main.view_of(msg)
        if view is not None:
            self.main.text_changed(view)
        if event.error:
            msg.extra["error"] = event.error  # repeated in the status line once traced (not saved)
            self.notify(event.error, title="Model error", severity="error", markup=False)
        stopped = " (stopped)" if event.stopped else ""
        first = f", first after {event.first_piece:.2f}s" if event.first_piece is not None else ""
        error = f" · {event.error}" if event.error else ""
        self.set_status(f"reply: {event.pieces} pieces in {event.seconds:.1f}s{first}{stopped}{error} · tracing…")
        self._request_trace(msg, live=False)
        if self.trace_reasoning and msg.reasoning.strip():
            self._request_trace(msg, live=False, part="reasoning")

    def _set_reasoning(self, msg: Message, reasoning: str) -> None:
        had = bool(msg.reasoning)
        msg.reasoning = reasoning
        if bool(reasoning) != had:
            self.refresh_bindings()  # the reasoning keys show once a reply has reasoning

    # -- tracing ----------------------------------------------------------------------------------
    def _request_trace(self, msg: Message, live: bool, part: str = "answer") -> None:
        text = msg.reasoning if part == "reasoning" else msg.text
        if self.indexes is None or not text.strip():
            if not live:
                self.set_status("no index open: nothing traced" if self.indexes is None else
                                f"{self._status_of(msg)}nothing to trace")
                self._save()
            return
        prompt = "" if msg.prompt_chars else self.conversation.prompt_for(msg)
        if live:
            self._live_pending = True
        self._traces.put(TraceRequest(self.conversation.key, msg.gen, text, prompt, live, self.indexes, part))

    @staticmethod
    def _status_of(msg: Message) -> str:
        error = msg.extra.get("error")
        return f"{error} · " if error else ""

    @work(thread=True, group="trace", name="tracer")
    def trace_loop(self) -> None:
        """The one trace worker: owns the tracer, serves requests until the app exits."""
        _lower_thread_priority()
        worker = get_current_worker()
        tracer: Tracer | None = None
        traced_for: tuple[int, int] | None = None
        missing: set[str] = set()
        lens_for: tuple[object, int] | None = None  # the reply the last lens belongs to
        lens_at, last_lens = 0.0, None
        while not worker.is_cancelled and not self._traces.closed:
            req = self._traces.get(timeout=0.2)
            if req is None:
                continue
            key = (id(req.indexes), req.conversation)
            if tracer is None or traced_for != key:
                tracer = Tracer(req.indexes, self.trace_params)  # new indexes or a new chat: fresh caches
                traced_for = key
            for ix in req.indexes:
                if not isinstance(ix, Index):  # a served index: its server reports its own faults
                    continue
                if ix.name not in missing and not (ix.directory / "tracetui-index.json").exists():
                    missing.add(ix.name)
                    self.notify(f"index {ix.name} disappeared from {ix.directory}; tracing continues on the "
                                "copy still open, reopen the app after restoring it", severity="warning",
                                markup=False)
            # the lens of a streaming reply costs generation speed (measured: 9.3% tracing cost
            # without it, 11-12% with it every 2 s), so it follows the stream only while the heat
            # view shows it, every LENS_INTERVAL; a live trace in between carries the last lens
            # (its character ranges still fall inside the grown text). Finals always get one.
            now = time.monotonic()
            heat = self._main is not None and self._main.heat  # a bool read across threads
            fresh_lens = not req.live or (heat and (lens_for != (key, req.gen) or now - lens_at >= LENS_INTERVAL))
            if req.part != "answer":
                fresh_lens = False  # the lens shows the answer only
            try:
                result = tracer.trace(req.text, prompt=req.prompt, lens=fresh_lens)
                if fresh_lens:
                    lens_for, lens_at, last_lens = (key, req.gen), now, result.memorization
                elif lens_for == (key, req.gen) and req.part == "answer":
                    result.memorization = last_lens
            except Exception as exc:  # an index that vanished or broke: say so, keep running
                self.post_message(TraceFailed(req.conversation, req.gen, str(exc), req.live, req.part))
            else:
                self.post_message(TraceReady(req.conversation, req.gen, result, req.live, req.part))
            finally:
                self._traces.done()

    @on(TraceFailed)
    def trace_failed(self, event: TraceFailed) -> None:
        if event.live:
            self._live_pending = False
        if self._current(event.conversation, event.gen) is None:
            return
        self.notify(f"tracing failed: {event.error}", severity="error", markup=False)
        self.set_status(f"tracing failed: {event.error}")

    @on(TraceReady)
    def trace_ready(self, event: TraceReady) -> None:
        if event.live:
            self._live_pending = False
        msg = self._current(event.conversation, event.gen)
        if msg is None or (event.live and msg.done):
            return  # stale, or a live result overtaken by the final trace
        result = event.result
        if event.part == "reasoning":
            self._reasoning_traced(msg, result)
            return
        if not msg.text.startswith(result.text):
            return  # the text changed under it (cannot happen while streaming only appends)
        old = msg.trace
        msg.trace = result
        view = self.main.view_of(msg)
        same = old is not None and [(x.start, x.end, x.level) for x in old.spans] == [
            (x.start, x.end, x.level) for x in result.spans]
        if view is not None and not (same and event.live):
            self.main.trace_changed(view, result, event.live)
        t = result.timings_ms.get("total", 0.0)
        state = "live" if event.live else "done"
        if not event.live:
            self._save()
        error = f" · {msg.extra['error']}" if not event.live and msg.extra.get("error") else ""
        self.set_status(f"{len(result.spans)} spans · {len(result.documents)} documents · {t:.0f} ms ({state}){error}")

    def _reasoning_traced(self, msg: Message, result: TraceResult) -> None:
        """A reply's reasoning traced as its own piece: highlighted in its shown block, its
        documents in the panel."""
        if not msg.reasoning.startswith(result.text):
            return
        msg.reasoning_trace = result
        self._save()
        view = self.main.view_of(msg)
        if view is not None:
            view.refresh_content()
            self.main.query_one(DocumentPanel).show(result)
        t = result.timings_ms.get("total", 0.0)
        self.set_status(f"reasoning: {len(result.spans)} spans · {len(result.documents)} documents · {t:.0f} ms "
                        "(documents of the reasoning in the panel; Tab goes back to the answer's)")

    # -- span navigation ----------------------------------------------------------------------------
    def _select(self, step: int) -> None:
        view = self.main.focused_reply()
        if view is None or view.trace is None:
            self.notify("no highlighted spans yet", severity="information")
            return
        count = len(view.trace.highlights)
        cur = view.selected
        nxt = (0 if step > 0 else count - 1) if cur is None else (cur + step) % count
        self.select_highlight(view, nxt)

    def select_highlight(self, view: MessageView, nxt: int | None) -> None:
        status = self.main.select_highlight(view, nxt)
        if status:
            self.set_status(status)

    def action_pick_highlight(self, message: int, highlight: int) -> None:
        """A click on a highlight: select it, as Tab would."""
        if not self._on_main():
            pick = getattr(self.screen, "pick_highlight", None)
            if pick:
                pick(highlight)
            return
        views = self.main.views
        if 0 <= message < len(views):
            view = views[message]
            if view.trace is not None and 0 <= highlight < len(view.trace.highlights):
                self.main.focused_view = view
                self.select_highlight(view, highlight)

    def _on_main(self) -> bool:
        return self.screen is self.main

    def action_next_span(self) -> None:
        if not self._on_main():
            walk = getattr(self.screen, "walk_spans", None)  # a screen with spans of its own
            if walk:
                walk(1)
            else:
                self.screen.focus_next()
            return
        self._select(1)

    def action_prev_span(self) -> None:
        if not self._on_main():
            walk = getattr(self.screen, "walk_spans", None)
            if walk:
                walk(-1)
            else:
                self.screen.focus_previous()
            return
        self._select(-1)

    def action_escape(self) -> None:
        if not self._on_main():
            return
        if self.generating:
            self._stop.set()
            self.set_status("stopping…")
            return
        view = self.main.focused_reply()
        if view is not None and view.selected is not None:
            self.select_highlight(view, None)
            self.set_status("selection cleared: all documents")

    # -- documents ------------------------------------------------------------------------------------
    def action_focus_docs(self) -> None:
        if self._on_main():
            self.main.query_one(DocumentPanel).focus()

    def action_focus_prompt(self) -> None:
        if self._on_main():
            self.main.query_one("#prompt", Input).focus()

    @on(OptionList.OptionSelected, "#docs")
    def open_document(self, event: OptionList.OptionSelected) -> None:
        panel = self.main.query_one(DocumentPanel)
        screen = DocumentScreen.of_option(panel, event.option.id, self.indexes or [])
        view = self.main.focused_reply()
        trace = panel.trace
        if screen is None or trace is None:
            return

        def locate(span: int | None) -> None:
            if span is None or view is None or view.trace is not trace or view not in self.main.views:
                return
            hl = next((k for k, h in enumerate(trace.highlights) if span in h.spans), None)
            self.select_highlight(view, hl)

        self.push_screen(screen, locate)

    # -- modes and demo openings ----------------------------------------------------------------------
    def action_toggle_mode(self) -> None:
        conv = self.conversation
        conv.mode = MODES[(MODES.index(conv.mode) + 1) % len(MODES)]
        self._show_mode()
        self.notify(f"{conv.mode} mode" + (": type the opening of a text, the model continues it"
                                            if conv.mode == "continue" else ": the model answers your prompts"))

    def action_demo_opening(self) -> None:
        """Put the next demo opening into the prompt (in continue mode)."""
        if not self.openings or not self._on_main():
            return
        if self.conversation.mode != "continue":
            self.action_toggle_mode()
        text = self.openings[self._next_opening % len(self.openings)]
        self._next_opening += 1
        prompt = self.main.query_one("#prompt", Input)
        prompt.value = text
        prompt.focus()

    def action_toggle_heat(self) -> None:
        """Shade every token of the replies by its ∞-gram effective n instead of the spans."""
        self.main.heat = not self.main.heat
        self.main.restyle()
        self.set_status("heat view: tokens shaded by effective n (darker: longer context found in the corpus)"
                        if self.main.heat else "span view")

    def action_next_in_corpus(self) -> None:
        """What the corpus says comes next at the end of the selected span (else at the end of
        the latest traced reply): the ∞-gram next tokens, the model's own token marked."""
        if not self._on_main() or not self.indexes:
            return
        view = self.main.focused_reply()
        if view is None:
            traced = [v for v in self.main.views if v.message.traced and v.text]
            view = traced[-1] if traced else None
        if view is None:
            self.notify("no reply yet", severity="information")
            return
        pos = len(view.text)
        if view.selected is not None and view.trace is not None:
            pos = view.trace.highlights[view.selected].end
        self.push_screen(NextTokensScreen(self.indexes.indexes[0], view.text, pos))

    def action_next_at(self, message: int, char_pos: int) -> None:
        """A click on a token in the heat view: the corpus's next tokens where that token stands."""
        views = self.main.views
        if not self._on_main() or not self.indexes or not 0 <= message < len(views):
            return
        view = views[message]
        if 0 <= char_pos <= len(view.text):
            self.push_screen(NextTokensScreen(self.indexes.indexes[0], view.text, char_pos))

    def action_overlap(self) -> None:
        """The Overlap screen: run a report on a file of test items and browse it like replies."""
        if not self._on_main():
            return
        if not self.indexes:
            self.notify("the indexes are not open yet", severity="warning")
            return
        from .screens.overlap import OverlapScreen

        self.push_screen(OverlapScreen(list(self.indexes)))

    # -- model servers and reasoning ----------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that apply only sometimes are hidden (footer and help) until they do."""
        if action == "pick_model":
            return self.backend is not None and self.backend.can_pick_model
        if action in ("toggle_reasoning", "trace_reasoning"):
            return any(m.reasoning for m in self.conversation.messages)
        return True

    @work(thread=True, exclusive=True, group="models")
    def probe_server(self) -> None:
        """At start: which models the server offers, the one in use (a server that is down is one
        status line; the next prompt tries again)."""
        backend = self.backend
        assert backend is not None
        try:
            models = backend.list_models()
        except ModelError as exc:
            using = f"asking for {backend.model!r} anyway; " if backend.model else ""
            self.call_from_thread(self.set_status, f"{exc} — {using}the next prompt tries again")
            return
        self.call_from_thread(self._server_probed, models)

    def _server_probed(self, models: list[str]) -> None:
        backend = self.backend
        if backend is None:
            return
        if backend.model is None and models:
            backend.select_model(models[0])
        elif backend.model not in models and models:
            self.set_status(f"the server does not list the model {backend.model!r} (F8 picks one of {len(models)})")
            return
        self._show_mode()
        self.set_status(f"model server: {len(models)} model(s), using {backend.model}"
                        + (" · F8 picks another" if len(models) > 1 else ""))

    def action_pick_model(self) -> None:
        if self.backend is None or not self.backend.can_pick_model or not self._on_main():
            return
        self.set_status("asking the server for its models…")
        self.fetch_models()

    @work(thread=True, exclusive=True, group="models")
    def fetch_models(self) -> None:
        backend = self.backend
        assert backend is not None
        try:
            models = backend.list_models()
        except ModelError as exc:
            self.call_from_thread(self.set_status, str(exc))
            return
        self.call_from_thread(self._show_models, models)

    def _show_models(self, models: list[str]) -> None:
        backend = self.backend
        if backend is None or not self._on_main():
            return
        if not models:
            self.set_status("the model server lists no model")
            return

        def chosen(model: str | None) -> None:
            if model is None or self.backend is not backend:
                return
            backend.select_model(model)
            self._show_mode()
            self.set_status(f"model: {model} (from the next prompt on)")

        self.push_screen(ModelPickerScreen(getattr(backend, "url", backend.name), models, backend.model), chosen)

    def _reasoning_reply(self) -> Message | None:
        """The reply the reasoning keys act on: the one last clicked, else the latest with reasoning."""
        f = self.main.focused_view
        if f is not None and f in self.main.views and f.message.reasoning:
            return f.message
        return next((m for m in reversed(self.conversation.messages) if m.reasoning), None)

    def action_toggle_reasoning(self) -> None:
        """Show the reasoning under every reply, or fold it back to one line each."""
        if not self._on_main():
            return
        self.main.show_reasoning = not self.main.show_reasoning
        self.main.restyle()
        self.set_status("reasoning shown under the replies" if self.main.show_reasoning
                        else "reasoning folded (F9 shows it)")

    def action_trace_reasoning(self) -> None:
        """Trace a reply's reasoning as a piece of its own (its spans and documents)."""
        if not self._on_main():
            return
        msg = self._reasoning_reply()
        if msg is None:
            self.notify("no reply with reasoning yet", severity="information")
            return
        if not msg.done:
            self.notify("the reply is still streaming: its reasoning is traced once it ends", severity="warning")
            return
        if not self.main.show_reasoning:
            self.action_toggle_reasoning()
        if msg.reasoning_trace is not None:
            self._reasoning_traced(msg, msg.reasoning_trace)
            return
        self.set_status("tracing the reasoning…")
        self._request_trace(msg, live=False, part="reasoning")

    # -- other actions ------------------------------------------------------------------------------
    def action_help(self) -> None:
        # the keys that apply now (a model server's, a reasoning model's only when they do)
        rows = [(b.key, b.description) for b in self.BINDINGS
                if isinstance(b, Binding) and self.check_action(b.action, ()) is not False]
        rows += [("Enter", "Send prompt / open document"), ("j / k", "Move in the document list"),
                 ("n / N", "Next / previous span in a document"), ("l", "Locate a document's span in the reply"),
                 ("w", "Whole document / window"), ("Ctrl+P", "Command palette")]
        self.push_screen(HelpScreen(rows))

    def action_trace_text(self) -> None:
        def done(text: str | None) -> None:
            if text and self._on_main():
                msg = self.conversation.add_text(text)
                self.main.add(msg, self.index_hue)
                self._request_trace(msg, live=False)

        self.push_screen(TraceTextScreen(), done)

    def action_copy_span(self) -> None:
        view = self.main.focused_reply()
        if view is None or view.selected is None or view.trace is None:
            self.notify("select a span first (Tab)", severity="warning")
            return
        h = view.trace.highlights[view.selected]
        self.copy_to_clipboard(view.text[h.start : h.end])
        self.notify("span copied to the clipboard")

    def _replace_conversation(self, conv: Conversation) -> None:
        """Stop what streams, forget the old conversation (late results for it are dropped)."""
        self._stop.set()
        self._live_pending = False
        self._reply_ended_gc()
        self.conversation = conv
        self.main.clear()
        self._show_mode()
        self.refresh_bindings()

    def action_new_chat(self) -> None:
        self._replace_conversation(Conversation(self.conversation.mode))
        self.set_status("new chat")

    # -- persistence ----------------------------------------------------------------------------------
    def _store_call(self, fn: Callable[..., _T], *args: object) -> _T | None:
        try:
            return fn(*args)
        except Exception as exc:  # a full disk or a locked database must not end the chat
            self.notify(f"could not save the conversation: {exc}", severity="warning", markup=False)
            return None

    def _save(self) -> None:
        conv = self.conversation
        if self.store is None or conv.stored_id is None:
            return
        self._store_call(self.store.save, conv)

    def action_conversations(self) -> None:
        if self.store is None:
            self.notify("conversations are not saved in this session", severity="warning")
            return
        store = self.store

        def opened(cid: int | None) -> None:
            if cid is None:
                return
            conv = self._store_call(store.load, cid)
            if conv is None:
                return
            self._replace_conversation(conv)
            reused = restore_traces(conv, self.indexes, self.trace_params)
            for msg in conv.messages:
                self.main.add(msg, self.index_hue)
                if msg.traced and msg.trace is None:
                    self._request_trace(msg, live=False)
                if self.trace_reasoning and msg.reasoning.strip() and msg.reasoning_trace is None:
                    self._request_trace(msg, live=False, part="reasoning")
            last = next((v for v in reversed(self.main.views) if v.trace is not None), None)
            if last is not None:
                self.main.trace_changed(last, last.trace, live=False)  # type: ignore[arg-type]
            self.set_status(f"reopened conversation {cid}: {reused} saved trace(s) reused")

        self.push_screen(ConversationsScreen(store), opened)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme != "textual-light" else "textual-dark"

    def watch_theme(self, theme: str) -> None:
        if self._main_mounted():
            self.main.restyle()

    def action_export(self) -> Path | None:
        if not self.conversation.messages:
            self.notify("nothing to export yet", severity="warning")
            return None
        try:
            base = export_conversation(self.conversation, self.export_dir)
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error", markup=False)
            return None
        self.notify(f"exported to {base}.md and .json", markup=False)
        return base

    def get_system_commands(self, screen: Screen) -> Iterator[SystemCommand]:
        yield from super().get_system_commands(screen)
        for b in self.BINDINGS:
            if isinstance(b, Binding) and b.description and self.check_action(b.action, ()) is not False:
                yield SystemCommand(b.description, f"{b.description} ({b.key})", lambda a=b.action: self.run_action(a))

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """Workers catch their own errors; anything escaping one is reported, never fatal."""
        if event.state == WorkerState.ERROR:
            if event.worker.group == "generate" and (msg := self.conversation.streaming) is not None:
                msg.done = True  # no ReplyDone will come: the reply ends here
                self._reply_ended_gc()
            self.notify(f"{event.worker.name} failed: {event.worker.error}", severity="error", markup=False)

