"""A reply's life on the UI thread: streaming it, tracing it while it grows and once it ends.

The generation and trace services report from their threads; the app routes their events about
replies here (`TraceApp._posted`). Every event names its conversation and generation, and what
no longer belongs to the open conversation is dropped. The conversation and the services stay
the app's, the views the main screen's: this keeps only what the reply streaming now needs
between two events (its stop signal and the live-trace throttle).
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ..conversation import Message
from ..services.events import ReplyChunk, ReplyDone, TraceFailed, TraceProgress, TraceReady
from ..services.generation import ReplyRequest
from ..services.trace_queue import TraceRequest
from . import gc_policy

if TYPE_CHECKING:
    from .app import TraceApp
    from .screens.main import MainScreen

TRACE_INTERVAL = 0.5  # seconds between live traces while a reply streams (CPU shared with llama.cpp)


class Replies:
    """The replies of the main screen's conversation, from the prompt sent to the final trace."""

    def __init__(self, screen: MainScreen) -> None:
        self.screen = screen
        self._stop = threading.Event()  # the streaming reply's stop signal (replaced per reply)
        self._live_pending = False  # a live trace is queued or running: the next waits for it
        self._last_live = 0.0

    @property
    def app(self) -> TraceApp:
        return self.screen.tapp

    # -- streaming --------------------------------------------------------------------------------
    def can_start(self) -> bool:
        """One reply at a time, and only with a model: else the user is told why not."""
        app = self.app
        if app.generating:
            app.notify("a reply is still streaming (Esc stops it)", severity="warning")
            return False
        if app.generation is None:
            app.notify(app.backend_error or "no model loaded", severity="error", markup=False)
            return False
        return True

    def start(self, opening: str) -> None:
        """Stream a reply to the conversation as it stands (chat: its turns; continue: `opening`)."""
        app, screen = self.app, self.screen
        assert app.generation is not None
        conv = app.conversation
        if conv.mode == "chat":
            turns, reply = conv.model_turns(), conv.start_reply()
        else:
            turns, reply = [], conv.start_reply(opening=opening)
        screen.add(reply, app.index_hue)
        screen.focused_view = None
        self._live_pending = False
        gc_policy.streaming(True)
        app.set_status("generating…")
        settings = app.settings if conv.system is None else replace(app.settings, system_prompt=conv.system)
        self._stop = app.generation.start(ReplyRequest(conv.key, reply.gen, conv.mode, turns, opening, settings))

    def stop(self) -> None:
        """Esc: the reply ends after its current piece, and is traced as it stands."""
        self._stop.set()
        self.app.set_status("stopping…")

    def forget(self) -> None:
        """Another conversation is shown: what streams stops, and a live trace of it still under
        way no longer holds back the next one (its result is dropped as stale)."""
        self._stop.set()
        self._live_pending = False
        self._ended_gc()

    def close(self) -> None:
        """The app is closing: the streaming reply, if any, is told to stop."""
        self._stop.set()

    def _ended_gc(self) -> None:
        """A reply stopped streaming: old generations are collected again, one full pass soon."""
        gc_policy.streaming(False)
        self.app.set_timer(0.5, gc.collect)

    # -- what the generation service reports ------------------------------------------------------
    def _current(self, conversation: int, gen: int) -> Message | None:
        """The message an event is about, if it still belongs to the open conversation."""
        conv = self.app.conversation
        if conversation != conv.key:
            return None
        return conv.by_gen(gen)

    def chunk(self, event: ReplyChunk) -> None:
        """The reply so far: shown, and traced live at most every `TRACE_INTERVAL`, one at a time."""
        msg = self._current(event.conversation, event.gen)
        if msg is None or msg.done:
            return
        msg.text = msg.text[: msg.prompt_chars] + event.text
        self._set_reasoning(msg, event.reasoning)
        view = self.screen.view_of(msg)
        if view is not None:
            self.screen.text_changed(view)
        now = time.perf_counter()
        if not self._live_pending and now - self._last_live > TRACE_INTERVAL and msg.text.strip():
            self._last_live = now
            self.request_trace(msg, live=True)

    def done(self, event: ReplyDone) -> None:
        """The reply ended (whole, stopped or failed): shown as it is, and traced once more."""
        app = self.app
        msg = self._current(event.conversation, event.gen)
        if msg is None:
            return
        msg.text = msg.text[: msg.prompt_chars] + event.text
        self._set_reasoning(msg, event.reasoning)
        msg.done = True
        self._ended_gc()
        view = self.screen.view_of(msg)
        if view is not None:
            self.screen.text_changed(view)
        if event.error:
            msg.extra["error"] = event.error  # repeated in the status line once traced (not saved)
            app.notify(event.error, title="Model error", severity="error", markup=False)
        stopped = " (stopped)" if event.stopped else ""
        first = f", first after {event.first_piece:.2f}s" if event.first_piece is not None else ""
        error = f" · {event.error}" if event.error else ""
        app.set_status(f"reply: {event.pieces} pieces in {event.seconds:.1f}s{first}{stopped}{error} · tracing…")
        self.request_trace(msg, live=False)
        if app.trace_reasoning and msg.reasoning.strip():
            self.request_trace(msg, live=False, part="reasoning")

    def _set_reasoning(self, msg: Message, reasoning: str) -> None:
        had = bool(msg.reasoning)
        msg.reasoning = reasoning
        if bool(reasoning) != had:
            self.app.refresh_bindings()  # the reasoning keys show once a reply has reasoning

    # -- tracing ----------------------------------------------------------------------------------
    def request_trace(self, msg: Message, live: bool, part: str = "answer") -> None:
        """Queue a trace of a message's text (or its reasoning) for the trace service; with
        nothing to trace, a final request says so in the status line and saves the chat."""
        app = self.app
        text = msg.reasoning if part == "reasoning" else msg.text
        if app.indexes is None or not text.strip():
            if not live:
                error = msg.extra.get("error")
                app.set_status("no index open: nothing traced" if app.indexes is None else
                               (f"{error} · " if error else "") + "nothing to trace")
                app.persistence.save(app.conversation)
            return
        prompt = "" if msg.prompt_chars else app.conversation.prompt_for(msg)
        if live:
            self._live_pending = True
        app.tracing.put(TraceRequest(app.conversation.key, msg.gen, text, prompt, live, app.indexes, part,
                                     self.screen.show_near))

    def trace_progress(self, event: TraceProgress) -> None:
        """A final trace against served indexes is slow: its progress in the status line."""
        if not event.live and self._current(event.conversation, event.gen) is not None:
            self.app.set_status(f"tracing against the served indexes… {event.requests:,} requests in "
                                f"{event.seconds:.1f} s")

    def trace_failed(self, event: TraceFailed) -> None:
        if event.live:
            self._live_pending = False
        if self._current(event.conversation, event.gen) is None:
            return
        self.app.notify(f"tracing failed: {event.error}", severity="error", markup=False)
        self.app.set_status(f"tracing failed: {event.error}")

    def trace_ready(self, event: TraceReady) -> None:
        """A trace came back: attached to its message and shown, unless stale or overtaken."""
        app, screen = self.app, self.screen
        if event.live:
            self._live_pending = False
        msg = self._current(event.conversation, event.gen)
        if msg is None or (event.live and msg.done):
            return  # stale, or a live result overtaken by the final trace
        result = event.result
        if event.part == "reasoning":
            if msg.reasoning.startswith(result.text):
                msg.reasoning_trace = result
                app.persistence.save(app.conversation)
                screen.reasoning_traced(msg, result)
            return
        if not msg.text.startswith(result.text):
            return  # the text changed under it (cannot happen while streaming only appends)
        old = msg.trace
        msg.trace = result
        view = screen.view_of(msg)
        same = old is not None and [(x.start, x.end, x.level) for x in old.spans] == [
            (x.start, x.end, x.level) for x in result.spans]
        if view is not None and not (same and event.live):
            screen.trace_changed(view, result, event.live)
        t = result.timings_ms.get("total", 0.0)
        if not event.live:
            app.persistence.save(app.conversation)
        error = f" · {msg.extra['error']}" if not event.live and msg.extra.get("error") else ""
        app.set_status(f"{len(result.spans)} spans · {len(result.documents)} documents · {t:.0f} ms "
                       f"({'live' if event.live else 'done'}){error}")
