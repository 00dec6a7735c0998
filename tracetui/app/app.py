"""The app: composition, the global keys, and routing between the services and the screens.

Threads and state, by design:
- the UI thread alone reads and writes the `Conversation` and the widgets;
- the generation service streams each reply in its own thread (one at a time on the model) and
  the trace service owns the `Tracer` and its caches in one long-lived thread; both report plain
  events (`tracetui.services.events`) that arrive here as `Posted` messages;
- every event names its conversation and generation: the UI drops what is stale.
The screens own what acts on what they show (span walking, the document panel, the views).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from index_tools.opening import IndexSet

from ..conversation import MODES, Conversation, Message
from ..export import export_conversation
from ..model import Backend, ModelError, ModelSettings
from ..services.child_tracer import ChildTraceService
from ..services.events import (
    Event,
    Notice,
    ReplyChunk,
    ReplyDone,
    TraceFailed,
    TraceProgress,
    TraceReady,
)
from ..services.generation import GenerationService, ReplyRequest
from ..services.persistence import Persistence
from ..services.trace_queue import TraceRequest
from ..services.tracing import TraceService
from ..store import ConversationStore, restore_traces
from ..tracing.pipeline import TraceParams
from . import gc_policy
from .events import Posted
from .screens.conversations import ConversationsScreen
from .screens.help import HelpScreen
from .screens.indexing import IndexingScreen
from .screens.main import MainScreen
from .screens.models import models_listed
from .screens.system_prompt import SystemPromptScreen
from .screens.trace_text import TraceTextScreen
from .widgets.message import MessageView, index_hues
from .widgets.prompt import PromptArea

TRACE_INTERVAL = 0.5  # seconds between live traces while a reply streams (CPU shared with llama.cpp)


class TraceApp(App[None]):
    CSS_PATH = "tracetui.tcss"
    TITLE = "tracetui"
    # below 90 columns the document panel moves under the chat (see tracetui.tcss)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (90, "-wide")]

    BINDINGS = [
        Binding("f1", "help", "Help", id="help"),
        Binding("question_mark", "help", "Help", show=False, id="help.question"),
        Binding("f3", "toggle_mode", "Chat/continue", id="mode.toggle"),
        Binding("f7", "overlap", "Overlap", priority=True, id="overlap.open"),  # the prompt: F7 selects all
        Binding("f8", "pick_model", "Model", id="model.pick"),  # shown with a model server only
        Binding("ctrl+t", "trace_text", "Trace text", id="trace.text"),
        Binding("ctrl+n", "new_chat", "New chat", id="chat.new"),
        Binding("ctrl+r", "conversations", "Chats", id="chat.list"),
        Binding("f2", "toggle_theme", "Light/dark", show=False, id="theme.toggle"),
    ]

    def __init__(self, indexes: IndexSet | None, backend: Backend | None = None, *,
                 settings: ModelSettings | None = None, backend_error: str | None = None,
                 intro: str = "", export_dir: Path | None = None, store: ConversationStore | None = None,
                 theme: str | None = None, index_loader: Callable[[], IndexSet] | None = None,
                 trace_params: TraceParams | None = None, mode: str | None = None,
                 openings: list[str] | None = None, trace_reasoning: bool = False,
                 trace_process: bool = False, near_verbatim: bool = False) -> None:
        super().__init__()
        self.trace_reasoning = trace_reasoning  # trace every reply's reasoning too (else on Ctrl+G)
        self.near_verbatim = near_verbatim  # near-verbatim spans from the start (else on F10)
        self._main: MainScreen | None = None
        self.trace_params = trace_params or TraceParams()
        self.index_loader = index_loader
        if theme:
            self.theme = theme
        self.indexes = indexes
        self.generation = GenerationService(backend, self._emit) if backend is not None else None
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
        # the tracer in a child process (trace_process) or in a thread of this one
        service = ChildTraceService if trace_process else TraceService
        self.tracing = service(self.trace_params, self._emit, heat=lambda: self._main is not None and self._main.heat)
        self.persistence = Persistence(store, self._emit)
        self._live_pending = False
        self._last_live = 0.0

    def _emit(self, event: Event) -> None:
        """The services' callback, from their threads: onto the UI thread's queue."""
        self.post_message(Posted(event))

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
    def backend(self) -> Backend | None:
        return None if self.generation is None else self.generation.backend

    @backend.setter
    def backend(self, backend: Backend | None) -> None:
        """A new model (tests, a reload): replies from the next prompt on stream from it."""
        if backend is None:
            self.generation = None
        elif self.generation is None:
            self.generation = GenerationService(backend, self._emit)
        else:
            self.generation.backend = backend

    @property
    def store(self) -> ConversationStore | None:
        return self.persistence.store

    @property
    def messages(self) -> list[MessageView]:
        return self.main.views

    @property
    def generating(self) -> bool:
        return self.conversation.streaming is not None

    @property
    def busy(self) -> bool:
        """A reply streams, a trace is queued or running, or a one-off worker runs."""
        return (self.generating or self.tracing.busy or (self.generation is not None and self.generation.busy)
                or any(w.is_running for w in self.workers))

    # -- start and stop -------------------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        return self.main

    def on_mount(self) -> None:
        self.main.show_near = self.near_verbatim
        self.show_mode()
        self.call_after_refresh(self.show_mode)  # again once the main screen has its prompt
        self.call_after_refresh(gc_policy.freeze_heap)
        self.tracing.start()
        if self.index_loader is not None:
            self.push_screen(IndexingScreen(self.index_loader), self._indexes_loaded)
        if self.backend_error:
            self.notify(self.backend_error, title="Model not loaded", severity="error", timeout=10, markup=False)
            self.set_status(f"model: {self.backend_error} — tracing pasted text (Ctrl+T) still works")
        elif self.backend is not None and self.backend.can_pick_model:
            self.list_models(at_start=True)

    def _reply_ended_gc(self) -> None:
        """A reply stopped streaming: old generations are collected again, one full pass soon."""
        gc_policy.streaming(False)
        self.set_timer(0.5, gc.collect)

    def on_unmount(self) -> None:
        self._stop_services()

    def _stop_services(self) -> None:
        self._stop.set()
        if self.generation is not None:
            self.generation.close()
        self.tracing.close()
        gc_policy.streaming(False)
        gc_policy.unfreeze()

    async def action_quit(self) -> None:
        self._stop_services()
        self.exit()

    def set_status(self, text: str) -> None:
        self.last_status = text
        if self._main_mounted():
            self.main.show_status(text)

    def show_mode(self) -> None:
        """The header's second line: the mode, the model and the generation settings in use."""
        st, conv = self.settings, self.conversation
        parts = [f"mode: {conv.mode}"]
        if self.backend is not None and self.backend.can_pick_model and self.backend.model:
            parts.append(f"model: {self.backend.model}")
        parts.append(f"T {st.temperature:g} · top-p {st.top_p:g} · max {st.max_tokens} · seed {st.seed}")
        if conv.system is not None:
            parts.append("system prompt: this chat's")
        self.sub_title = " · ".join(parts)
        if self._main_mounted():
            placeholder = ("Type the opening of a text; the model continues it (F3: chat mode)"
                           if conv.mode == "continue" else
                           "Ask the model… (Enter sends, Ctrl+J new line, Up: earlier prompts, F1: help)")
            self.main.query_one("#prompt", PromptArea).placeholder = placeholder

    def _indexes_loaded(self, loaded: tuple[IndexSet | None, str, float] | None) -> None:
        indexes, error, seconds = loaded or (None, "not loaded", 0.0)
        if indexes is None:
            self.notify(f"default index unavailable: {error}", severity="error", markup=False)
            self.set_status("no index: replies are not traced")
            return
        self.indexes = indexes
        self.index_hue = index_hues([ix.name for ix in indexes])
        self.set_status(f"index ready: {sum(ix.manifest.tokens for ix in indexes):,} tokens ({seconds:.1f} s)")
        self.call_after_refresh(gc_policy.freeze_heap)

    # -- sending ----------------------------------------------------------------------------------
    @on(PromptArea.Submitted, "#prompt")
    def send(self, event: PromptArea.Submitted) -> None:
        text = event.value if self.conversation.mode == "continue" else event.value.strip()
        if not text.strip() or not self._can_generate():
            return
        event.prompt.remember(event.value)
        event.prompt.value = ""
        conv = self.conversation
        self.persistence.begin(conv, text.strip())
        if conv.mode == "chat":
            self.main.add(conv.add_user(text), self.index_hue)
        self._generate(text)

    def _can_generate(self) -> bool:
        if self.generating:
            self.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return False
        if self.generation is None:
            self.notify(self.backend_error or "no model loaded", severity="error", markup=False)
            return False
        return True

    def _generate(self, opening: str) -> None:
        """Stream a reply to the conversation as it stands (chat: its turns; continue: `opening`)."""
        assert self.generation is not None
        conv = self.conversation
        if conv.mode == "chat":
            turns, reply = conv.model_turns(), conv.start_reply()
        else:
            turns, reply = [], conv.start_reply(opening=opening)
        self.main.add(reply, self.index_hue)
        self.main.focused_view = None
        self._live_pending = False
        gc_policy.streaming(True)
        self.set_status("generating…")
        settings = self.settings if conv.system is None else replace(self.settings, system_prompt=conv.system)
        self._stop = self.generation.start(ReplyRequest(conv.key, reply.gen, conv.mode, turns, opening, settings))

    def action_regenerate(self) -> None:
        """The last reply again: dropped, and generated anew from the same prompt (or opening)."""
        if self.screen is not self._main or not self._can_generate():
            return
        conv = self.conversation
        old = conv.drop_last_reply()
        if old is None:
            self.notify("no finished reply to regenerate", severity="information")
            return
        view = self.main.view_of(old)
        if view is not None:
            self.main.drop_view(view)
        self._generate(old.text[: old.prompt_chars] if old.mode == "continue" else "")

    def action_system_prompt(self) -> None:
        """This conversation's system prompt (kept with it); empty restores the default."""
        if self.screen is not self._main:
            return
        conv = self.conversation

        def chosen(text: str | None) -> None:
            if text is None or conv is not self.conversation:
                return
            conv.system = text or None
            self.persistence.save(conv)
            self.show_mode()
            self.set_status("system prompt: " + ("this chat's own, from the next reply on" if text else "the default"))

        self.push_screen(SystemPromptScreen(conv.system or "", self.settings.system_prompt), chosen)

    def stop_reply(self) -> None:
        self._stop.set()
        self.set_status("stopping…")

    def next_opening(self) -> str | None:
        """The next demo opening (switching to continue mode), or None when there are none."""
        if not self.openings:
            return None
        if self.conversation.mode != "continue":
            self.action_toggle_mode()
        self._next_opening += 1
        return self.openings[(self._next_opening - 1) % len(self.openings)]

    # -- routing the services' events ---------------------------------------------------------------
    @on(Posted)
    def _posted(self, message: Posted) -> None:
        event = message.event
        if isinstance(event, ReplyChunk):
            self._reply_chunk(event)
        elif isinstance(event, ReplyDone):
            self._reply_done(event)
        elif isinstance(event, TraceReady):
            self._trace_ready(event)
        elif isinstance(event, TraceFailed):
            self._trace_failed(event)
        elif isinstance(event, TraceProgress):
            if not event.live and self._current(event.conversation, event.gen) is not None:
                self.set_status(f"tracing against the served indexes… {event.requests:,} requests in "
                                f"{event.seconds:.1f} s")
        elif isinstance(event, Notice):
            self.notify(event.text, severity=event.severity, markup=False)  # type: ignore[arg-type]

    def _current(self, conversation: int, gen: int) -> Message | None:
        """The message an event is about, if it still belongs to the open conversation."""
        if conversation != self.conversation.key:
            return None
        return self.conversation.by_gen(gen)

    def _reply_chunk(self, event: ReplyChunk) -> None:
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
            self.request_trace(msg, live=True)

    def _reply_done(self, event: ReplyDone) -> None:
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
        self.request_trace(msg, live=False)
        if self.trace_reasoning and msg.reasoning.strip():
            self.request_trace(msg, live=False, part="reasoning")

    def _set_reasoning(self, msg: Message, reasoning: str) -> None:
        had = bool(msg.reasoning)
        msg.reasoning = reasoning
        if bool(reasoning) != had:
            self.refresh_bindings()  # the reasoning keys show once a reply has reasoning

    def request_trace(self, msg: Message, live: bool, part: str = "answer") -> None:
        text = msg.reasoning if part == "reasoning" else msg.text
        if self.indexes is None or not text.strip():
            if not live:
                error = msg.extra.get("error")
                self.set_status("no index open: nothing traced" if self.indexes is None else
                                (f"{error} · " if error else "") + "nothing to trace")
                self.persistence.save(self.conversation)
            return
        prompt = "" if msg.prompt_chars else self.conversation.prompt_for(msg)
        if live:
            self._live_pending = True
        near = self._main is not None and self._main.show_near
        self.tracing.put(TraceRequest(self.conversation.key, msg.gen, text, prompt, live, self.indexes, part, near))

    def _trace_failed(self, event: TraceFailed) -> None:
        if event.live:
            self._live_pending = False
        if self._current(event.conversation, event.gen) is None:
            return
        self.notify(f"tracing failed: {event.error}", severity="error", markup=False)
        self.set_status(f"tracing failed: {event.error}")

    def _trace_ready(self, event: TraceReady) -> None:
        if event.live:
            self._live_pending = False
        msg = self._current(event.conversation, event.gen)
        if msg is None or (event.live and msg.done):
            return  # stale, or a live result overtaken by the final trace
        result = event.result
        if event.part == "reasoning":
            if msg.reasoning.startswith(result.text):
                msg.reasoning_trace = result
                self.persistence.save(self.conversation)
                self.main.reasoning_traced(msg, result)
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
        if not event.live:
            self.persistence.save(self.conversation)
        error = f" · {msg.extra['error']}" if not event.live and msg.extra.get("error") else ""
        self.set_status(f"{len(result.spans)} spans · {len(result.documents)} documents · {t:.0f} ms "
                        f"({'live' if event.live else 'done'}){error}")

    # -- global actions -------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """F8 applies to a model server only: hidden (footer and help) otherwise."""
        if action == "pick_model":
            return self.backend is not None and self.backend.can_pick_model
        return True

    def action_toggle_mode(self) -> None:
        conv = self.conversation
        conv.mode = MODES[(MODES.index(conv.mode) + 1) % len(MODES)]
        self.show_mode()
        self.notify(f"{conv.mode} mode" + (": type the opening of a text, the model continues it"
                                            if conv.mode == "continue" else ": the model answers your prompts"))

    def action_overlap(self) -> None:
        """The Overlap screen: run a report on a file of test items and browse it like replies."""
        if self.screen is not self._main:
            return
        if not self.indexes:
            self.notify("the indexes are not open yet", severity="warning")
            return
        from .screens.overlap import OverlapScreen

        self.push_screen(OverlapScreen(list(self.indexes)))

    def action_pick_model(self) -> None:
        if self.backend is not None and self.backend.can_pick_model and self.screen is self._main:
            self.set_status("asking the server for its models…")
            self.list_models(at_start=False)

    @work(thread=True, exclusive=True, group="models")
    def list_models(self, at_start: bool) -> None:
        """The server's models, asked off the UI thread (see `models.models_listed`)."""
        backend = self.backend
        assert backend is not None
        try:
            models = backend.list_models()
        except ModelError as exc:
            using = f" — asking for {backend.model!r} anyway; the next prompt tries again" if at_start and backend.model else ""
            self.call_from_thread(self.set_status, f"{exc}{using}")
            return
        self.call_from_thread(models_listed, self, backend, models, at_start)

    def action_help(self) -> None:
        """Every key that applies now, from the live bindings of the screen and the app."""
        rows = [(b.key_display or self.get_key_display(b), b.description)
                for (_, b, enabled, _) in self.screen.active_bindings.values() if b.description and enabled]
        rows += [("Enter", "Send prompt / open document"), ("j / k", "Move in the document list"),
                 ("n / N", "Next / previous span in a document"), ("l", "Locate a document's span in the reply"),
                 ("w", "Whole document / window")]
        self.push_screen(HelpScreen(rows))

    def action_trace_text(self) -> None:
        def done(text: str | None) -> None:
            if text and self.screen is self._main:
                msg = self.conversation.add_text(text)
                self.main.add(msg, self.index_hue)
                self.request_trace(msg, live=False)

        self.push_screen(TraceTextScreen(), done)

    def show_conversation(self, conv: Conversation, status: str = "new chat") -> None:
        """Stop what streams, forget the old conversation (late results for it are dropped), and
        show `conv`, reusing its saved traces while the indexes and parameters match."""
        self._stop.set()
        self._live_pending = False
        self._reply_ended_gc()
        self.conversation = conv
        self.main.clear()
        self.show_mode()
        self.refresh_bindings()
        if not conv.messages:
            self.set_status(status)
            return
        reused = restore_traces(conv, self.indexes, self.trace_params)
        for msg in conv.messages:
            self.main.add(msg, self.index_hue)
            if msg.traced and msg.trace is None:
                self.request_trace(msg, live=False)
            if self.trace_reasoning and msg.reasoning.strip() and msg.reasoning_trace is None:
                self.request_trace(msg, live=False, part="reasoning")
        last = next((v for v in reversed(self.main.views) if v.trace is not None), None)
        if last is not None and last.trace is not None:
            self.main.trace_changed(last, last.trace, live=False)
        self.set_status(f"{status}: {reused} saved trace(s) reused")

    def action_new_chat(self) -> None:
        self.show_conversation(Conversation(self.conversation.mode))

    def action_conversations(self) -> None:
        store = self.persistence.store
        if store is None:
            self.notify("conversations are not saved in this session", severity="warning")
            return

        def opened(cid: int | None) -> None:
            conv = None if cid is None else self.persistence.load(cid)
            if conv is not None:
                self.show_conversation(conv, f"reopened conversation {cid}")

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
        for _, b, enabled, _ in screen.active_bindings.values():
            if b.description and enabled:
                yield SystemCommand(b.description, f"{b.description} ({b.key})",
                                    lambda a=b.action: self.run_action(a, screen))

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """Workers catch their own errors; anything escaping one is reported, never fatal."""
        if event.state == WorkerState.ERROR:
            self.notify(f"{event.worker.name} failed: {event.worker.error}", severity="error", markup=False)
