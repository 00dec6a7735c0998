"""The one trace worker: owns the `Tracer` (and its caches), serves `TraceRequest`s in order.

Tracing yields the CPU to generation (a lower thread priority on Linux) and the lens of a
streaming reply, which costs generation speed (measured: 9.3% tracing cost without it, 11-12%
with it every 2 s), follows the stream only while the heat view shows it, every
`lens_interval`; a live trace in between carries the last lens (its character ranges still fall
inside the grown text). Final traces always get a fresh one.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..tracing.pipeline import TraceParams, Tracer
from .events import Emit, Notice, TraceFailed, TraceProgress, TraceReady
from .trace_queue import TraceQueue, TraceRequest

LENS_INTERVAL = 2.0  # heat view on: seconds between lens updates of a streaming reply
PROGRESS = 0.5  # seconds between two progress reports of a trace against served indexes


def lower_thread_priority() -> None:
    """On Linux a thread has its own nice value: tracing gives way to llama.cpp."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


class TraceService:
    """`put` requests from the UI thread; results come back through `emit`."""

    def __init__(self, params: TraceParams, emit: Emit, heat: Callable[[], bool] = lambda: False,
                 lens_interval: float = LENS_INTERVAL) -> None:
        self.params = params
        self.emit = emit
        self.heat = heat  # the heat view shows (the lens then follows a streaming reply)
        self.lens_interval = lens_interval
        self.queue = TraceQueue()
        self._thread: threading.Thread | None = None
        self._tracer: Tracer | None = None
        self._traced_for: tuple[int, int] | None = None
        self._missing: set[str] = set()
        self._lens_for: tuple[tuple[int, int], int] | None = None  # the reply the last lens belongs to
        self._lens_at = 0.0
        self._last_lens: dict[str, Any] | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tracer", daemon=True)
        self._thread.start()

    def put(self, request: TraceRequest) -> None:
        self.queue.put(request)

    @property
    def busy(self) -> bool:
        return self.queue.busy

    def close(self) -> None:
        self.queue.close()

    def _loop(self) -> None:
        lower_thread_priority()
        while not self.queue.closed:
            req = self.queue.get(timeout=0.2)
            if req is None:
                continue
            try:
                self.emit(self.serve(req))
            finally:
                self.queue.done()

    def _progress(self, req: TraceRequest, done: threading.Event) -> None:
        """While a trace against served indexes runs: its requests so far, every `PROGRESS` s."""
        start, base = time.monotonic(), req.indexes.requests() or 0
        while not done.wait(PROGRESS):
            made = (req.indexes.requests() or 0) - base
            self.emit(TraceProgress(req.conversation, req.gen, made, time.monotonic() - start, req.live))

    def serve(self, req: TraceRequest) -> TraceReady | TraceFailed:
        """Trace one request with the tracer of its indexes and conversation (fresh caches for
        new indexes or a new chat)."""
        key = (id(req.indexes), req.conversation)
        if self._tracer is None or self._traced_for != key:
            self._tracer = Tracer(req.indexes, self.params)
            self._traced_for = key
        for name, gone in req.indexes.vanished():
            if gone and name not in self._missing:
                self._missing.add(name)
                self.emit(Notice(f"index {name} disappeared from its directory; tracing continues on the copy "
                                 "still open, reopen the app after restoring it"))
        now = time.monotonic()
        fresh_lens = req.part == "answer" and (not req.live or (self.heat() and (
            self._lens_for != (key, req.gen) or now - self._lens_at >= self.lens_interval)))
        done = threading.Event()
        if req.indexes.requests() is not None:
            threading.Thread(target=self._progress, args=(req, done), name="trace-progress", daemon=True).start()
        try:
            result = self._tracer.trace(req.text, prompt=req.prompt, lens=fresh_lens, near=req.near)
        except Exception as exc:  # an index that vanished or broke: say so, keep running
            return TraceFailed(req.conversation, req.gen, str(exc), req.live, req.part)
        finally:
            done.set()
        if fresh_lens:
            self._lens_for, self._lens_at, self._last_lens = (key, req.gen), now, result.memorization
        elif self._lens_for == (key, req.gen) and req.part == "answer":
            result.memorization = self._last_lens
        return TraceReady(req.conversation, req.gen, result, req.live, req.part)
