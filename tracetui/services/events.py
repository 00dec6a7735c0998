"""What the services report, as plain data (no Textual): the app routes each to its handler.

Every event names the conversation key and the generation id of the reply it is about; the UI
drops it when that reply is no longer part of the open conversation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..tracing.pipeline import TraceResult


@dataclass(frozen=True)
class ReplyChunk:
    """The text of a streaming reply so far (posted at most ~10 times a second), and its
    reasoning so far (kept apart)."""

    conversation: int
    gen: int
    text: str
    reasoning: str = ""


@dataclass(frozen=True)
class ReplyDone:
    """A reply finished: completely, stopped by the user, or with a model error."""

    conversation: int
    gen: int
    text: str
    pieces: int
    seconds: float
    error: str | None
    stopped: bool
    reasoning: str = ""
    first_piece: float | None = None  # seconds from the request to the first piece


@dataclass(frozen=True)
class TraceReady:
    """part: "answer" (the reply's text) or "reasoning" (its reasoning, traced on request)."""

    conversation: int
    gen: int
    result: TraceResult
    live: bool
    part: str = "answer"


@dataclass(frozen=True)
class TraceFailed:
    conversation: int
    gen: int
    error: str
    live: bool
    part: str = "answer"


@dataclass(frozen=True)
class TraceProgress:
    """A trace against served indexes still running: the requests made so far (sent about
    twice a second; a remote trace of a 500-token reply takes hundreds of requests)."""

    conversation: int
    gen: int
    requests: int
    seconds: float
    live: bool


@dataclass(frozen=True)
class Notice:
    """Something the user should read that belongs to no reply (an index that vanished, a
    conversation that could not be saved)."""

    text: str
    severity: str = "warning"


Event = ReplyChunk | ReplyDone | TraceReady | TraceFailed | TraceProgress | Notice
Emit = Callable[[Event], None]
