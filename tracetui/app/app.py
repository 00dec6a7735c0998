"""The app: composition, the global keys, and routing between the services and the screens.

Threads and state, by design:
- the UI thread alone reads and writes the `Conversation` and the widgets;
- the generation service streams each reply in its own thread (one at a time on the model) and
  the trace service owns the `Tracer` and its caches in one long-lived thread; both report plain
  events (`tracetui.services.events`) that arrive here as `Posted` messages;
- every event names its conversation and generation: the UI drops what is stale.
The screens own what acts on what they show: the main screen the chat itself (sending, regenerating,
opening conversations) and, through `replies.Replies`, each reply from its request to its final
trace; this routes the services' events about replies there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from index_tools.opening import IndexSet

from ..conversation import MODES, Conversation
from ..model import Backend, ModelSettings
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
from ..services.generation import GenerationService
from ..services.persistence import Persistence
from ..services.tracing import TraceService
from ..store import ConversationStore
from ..tracing.pipeline import TraceParams
from . import gc_policy
from .events import Posted
from .screens.help import HelpScreen
from .screens.indexing import IndexingScreen
from .screens.main import MainScreen
from .screens.models import list_models
from .widgets.message import MessageView, index_hues


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
        self.export_dir = export_dir or Path.cwd()
        self.index_hue = index_hues([ix.name for ix in indexes or []])
        if mode is None:
            mode = "chat" if backend is None or backend.has_template else "continue"
        self.conversation = Conversation(mode)
        self.last_status = ""
        # the tracer in a child process (trace_process) or in a thread of this one
        service = ChildTraceService if trace_process else TraceService
        self.tracing = service(self.trace_params, self._emit, heat=lambda: self._main is not None and self._main.heat)
        self.persistence = Persistence(store, self._emit)

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
            list_models(self, at_start=True)

    def on_unmount(self) -> None:
        self._stop_services()

    def _stop_services(self) -> None:
        if self._main is not None:
            self._main.replies.close()
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
            self.main.show_mode(conv.mode)

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

    # -- routing the services' events ---------------------------------------------------------------
    @on(Posted)
    def _posted(self, message: Posted) -> None:
        """Each service event to its handler, on the UI thread: a reply's to the main screen's."""
        event = message.event
        if isinstance(event, Notice):
            self.notify(event.text, severity=event.severity, markup=False)  # type: ignore[arg-type]
            return
        replies = self.main.replies
        if isinstance(event, ReplyChunk):
            replies.chunk(event)
        elif isinstance(event, ReplyDone):
            replies.done(event)
        elif isinstance(event, TraceReady):
            replies.trace_ready(event)
        elif isinstance(event, TraceFailed):
            replies.trace_failed(event)
        elif isinstance(event, TraceProgress):
            replies.trace_progress(event)

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
            list_models(self, at_start=False)

    def action_help(self) -> None:
        """Every key that applies now, from the live bindings of the screen and the app."""
        rows = [(b.key_display or self.get_key_display(b), b.description)
                for (_, b, enabled, _) in self.screen.active_bindings.values() if b.description and enabled]
        rows += [("Enter", "Send prompt / open document"), ("j / k", "Move in the document list"),
                 ("n / N", "Next / previous span in a document"), ("l", "Locate a document's span in the reply"),
                 ("w", "Whole document / window")]
        self.push_screen(HelpScreen(rows))

    # the chat's own keys, bound here to work over any screen: the main screen acts on them
    def action_trace_text(self) -> None:
        self.main.trace_text()

    def action_new_chat(self) -> None:
        self.main.new_chat()

    def action_conversations(self) -> None:
        self.main.pick_conversation()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme != "textual-light" else "textual-dark"

    def watch_theme(self, theme: str) -> None:
        if self._main_mounted():
            self.main.restyle()

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
