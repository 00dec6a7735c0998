"""Streaming one reply at a time from a model backend, off the UI thread.

The generation thread never waits for the UI: it reports the text so far at most every
`chunk_interval` seconds and goes on, so generation speed does not depend on rendering or
tracing. A lock keeps the backend to one generation at a time (a reply stopped by Ctrl+N
finishes its current token while the next one waits).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..model import Backend, ModelError, ModelSettings, Turn
from ..reasoning import Reasoning, ReplySplitter
from .events import Emit, ReplyChunk, ReplyDone

CHUNK_INTERVAL = 1 / 10  # seconds between two reports of a streaming reply


@dataclass(frozen=True)
class ReplyRequest:
    """One reply to generate: chat turns (chat mode) or an opening to continue (continue mode)."""

    conversation: int
    gen: int
    mode: str
    turns: Sequence[Turn]
    opening: str
    settings: ModelSettings


class GenerationService:
    """Runs `Backend.stream` / `Backend.continue_text` in a thread per reply."""

    def __init__(self, backend: Backend, emit: Emit, chunk_interval: float = CHUNK_INTERVAL) -> None:
        self.backend = backend
        self.emit = emit
        self.chunk_interval = chunk_interval
        self._lock = threading.Lock()
        self._running = 0
        self._count = threading.Lock()
        self._stops: set[threading.Event] = set()

    @property
    def busy(self) -> bool:
        with self._count:
            return self._running > 0

    def start(self, request: ReplyRequest) -> threading.Event:
        """Start streaming; the returned event stops this reply when set."""
        stop = threading.Event()
        with self._count:
            self._running += 1
            self._stops.add(stop)
        threading.Thread(target=self._run, args=(request, stop), name="generate", daemon=True).start()
        return stop

    def close(self) -> None:
        """Stop every reply still streaming (the app is closing)."""
        with self._count:
            for stop in self._stops:
                stop.set()

    def _run(self, req: ReplyRequest, stop: threading.Event) -> None:
        try:
            self.emit(self.generate(req, stop))
        finally:
            with self._count:
                self._running -= 1
                self._stops.discard(stop)

    def generate(self, req: ReplyRequest, stop: threading.Event) -> ReplyDone:
        """Stream one reply to its end (or its stop), reporting chunks; returns the final event."""
        n, error, first = 0, None, None
        split = ReplySplitter()  # the answer apart from the reasoning (<think> blocks, reasoning fields)
        start = time.perf_counter()
        with self._lock:  # llama.cpp: one generation at a time
            if stop.is_set():
                return ReplyDone(req.conversation, req.gen, "", 0, 0.0, None, True)
            last = 0.0
            try:
                pieces = (self.backend.continue_text(req.opening, req.settings, stop) if req.mode == "continue"
                          else self.backend.stream(list(req.turns), req.settings, stop))
                for piece in pieces:
                    if isinstance(piece, Reasoning):
                        split.add_reasoning(piece)
                    else:
                        split.feed(piece)
                    n += 1
                    now = time.perf_counter()
                    if first is None:
                        first = now - start
                    if now - last >= self.chunk_interval:
                        last = now
                        self.emit(ReplyChunk(req.conversation, req.gen, split.answer, split.reasoning))
            except ModelError as exc:
                error = str(exc)
            except Exception as exc:  # a dying model must never take the app down
                error = f"model failed: {exc}"
            split.finish()
        return ReplyDone(req.conversation, req.gen, split.answer, n, time.perf_counter() - start, error,
                         stop.is_set(), reasoning=split.reasoning, first_piece=first)
