"""The tracer in a child process over the same memory-mapped indexes.

Tracing is numpy over maps, but the pipeline around it (spans, ranking, documents, the lens) is
Python that holds the interpreter's lock for milliseconds at a time: in the UI's interpreter it
delays key presses and frames while a reply streams. Here the UI process keeps the queue (live
traces superseded, finals in order) and a thread that hands each request to a child, which owns
the `Tracer` and its caches and opens the indexes from their paths or URLs: the kernel shares
the mapped pages between the two processes, nothing is copied or rebuilt.

    parent -> child   ("trace", fields of the request, index specs, id of the parent's set, heat)
    child -> parent   ("notice", Notice)* then ("result", TraceReady | TraceFailed)

Indexes not opened from paths or URLs (built in memory by a test) are traced in-process, as the
threaded service does. A child that dies fails the request it had with one message and is
started again for the next; it exits with its parent (end of file on its pipe, a watch on its parent).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from index_tools.opening import IndexSet

from ..tracing.pipeline import TraceParams
from .children import die_with_parent, start_resource_tracker, stop_child
from .events import Emit, Event, Notice, TraceFailed, TraceReady
from .trace_queue import TraceRequest
from .tracing import LENS_INTERVAL, TraceService


def serve_traces(conn: Connection, params: TraceParams, lens_interval: float) -> None:
    """The child's loop: one `TraceService` answering the parent's requests in order."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(10)  # tracing gives way to generation, as the threaded tracer's thread does
    except OSError:
        pass
    heat = [False]

    def emit(event: Event) -> None:
        conn.send(("notice", event))

    service = TraceService(params, emit, heat=lambda: heat[0], lens_interval=lens_interval)
    opened: dict[int, IndexSet] = {}  # the parent's set (by id) -> the same indexes opened here
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if msg[0] == "quit":
            break
        _, fields, specs, parent_set, heat[0] = msg
        try:
            if parent_set not in opened:
                for old in opened.values():
                    old.close()
                opened = {parent_set: IndexSet.open(specs)}
            result: TraceReady | TraceFailed = service.serve(TraceRequest(**fields, indexes=opened[parent_set]))
        except Exception as exc:  # an index that cannot be opened here: the request fails, the child goes on
            result = TraceFailed(fields["conversation"], fields["gen"], str(exc), fields["live"], fields["part"])
        try:
            conn.send(("result", result))
        except (BrokenPipeError, OSError):
            break
    for ix in opened.values():
        ix.close()


class ChildTraceService(TraceService):
    """A `TraceService` whose tracing runs in a child process (see the module docstring)."""

    def __init__(self, params: TraceParams, emit: Emit, heat: Callable[[], bool] = lambda: False,
                 lens_interval: float = LENS_INTERVAL) -> None:
        super().__init__(params, emit, heat=heat, lens_interval=lens_interval)
        self._ctx = mp.get_context("spawn")
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._in_process = False  # no child could be started: traced here, as the threaded service does
        start_resource_tracker()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        try:
            self._spawn()  # the child imports and opens while the UI starts
        except (OSError, ValueError) as exc:
            self._in_process = True
            self.emit(Notice(f"the tracer runs in the UI's process: no child process could be started ({exc})"))
        super().start()

    def _spawn(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=serve_traces, args=(child, self.params, self.lens_interval),
                                 name="tracetui-tracer", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent

    def serve(self, req: TraceRequest) -> TraceReady | TraceFailed:
        specs = req.indexes.specs
        if specs is None or self._in_process:
            return super().serve(req)  # indexes without paths: traced here
        # a child that died since the last answer: its end of the pipe reads as ready (end of
        # file) even before the process is reaped, so poll(0) sees it where is_alive may not yet
        if self._proc is None or self._conn is None or not self._proc.is_alive() or self._conn.poll(0):
            self._stop_child()
            try:
                self._spawn()
            except (OSError, ValueError) as exc:
                return TraceFailed(req.conversation, req.gen, f"cannot start the tracer process: {exc}", req.live,
                                   req.part)
        assert self._conn is not None and self._proc is not None
        fields = {k: getattr(req, k) for k in ("conversation", "gen", "text", "prompt", "live", "part", "near")}
        try:
            self._conn.send(("trace", fields, specs, id(req.indexes), bool(self.heat())))
            while True:
                while not self._conn.poll(0.2):
                    if not self._proc.is_alive():
                        raise EOFError
                kind, event = self._conn.recv()
                if kind == "notice":
                    self.emit(event)
                    continue
                result: TraceReady | TraceFailed = event
                return result
        except (EOFError, OSError):
            self._stop_child()
            return TraceFailed(req.conversation, req.gen, "the tracer process stopped (it is restarted for the next "
                               "trace)", req.live, req.part)

    def _stop_child(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc, self._conn = None, None
        stop_child(proc, conn)

    def close(self) -> None:
        super().close()
        self._stop_child()
