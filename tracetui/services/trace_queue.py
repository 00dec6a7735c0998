"""Requests from the UI thread to the one trace worker.

Final traces (a reply finished, a conversation reopened, pasted text) are all kept, in order;
of the live traces of a streaming reply only the newest matters, so a newer one replaces an
older one still waiting. The worker owns the tracer and its caches; nothing else touches them.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from index_tools.opening import IndexSet


@dataclass(frozen=True)
class TraceRequest:
    conversation: int
    gen: int
    text: str
    prompt: str
    live: bool
    indexes: IndexSet
    part: str = "answer"  # or "reasoning": a reply's reasoning, traced as a piece of its own
    near: bool = False  # near-verbatim spans too (`tracing.near`)


class TraceQueue:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._finals: deque[TraceRequest] = deque()
        self._live: TraceRequest | None = None
        self._closed = False
        self._working = 0  # requests taken and not yet answered

    def put(self, request: TraceRequest) -> None:
        with self._cond:
            if request.live:
                self._live = request
            else:
                if self._live is not None and self._live.gen == request.gen and request.part == "answer":
                    self._live = None  # the final trace of that reply supersedes it
                self._finals.append(request)
            self._cond.notify()

    def get(self, timeout: float) -> TraceRequest | None:
        """The next request, or None after `timeout` seconds or once closed."""
        with self._cond:
            if not self._finals and self._live is None and not self._closed:
                self._cond.wait(timeout)
            if self._finals:
                self._working += 1
                return self._finals.popleft()
            live, self._live = self._live, None
            if live is not None:
                self._working += 1
            return live

    def done(self) -> None:
        """The worker answered the request it took last."""
        with self._cond:
            self._working = max(0, self._working - 1)

    @property
    def busy(self) -> bool:
        """Requests waiting or being traced (for tests and benchmarks that wait for quiet)."""
        with self._cond:
            return bool(self._finals or self._live is not None or self._working)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._finals.clear()
            self._live = None
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
