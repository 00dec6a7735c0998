"""Typed messages from the workers to the UI thread.

Workers never call the app's methods or share its attributes: they post one of these (posting is
thread-safe) and the UI thread decides. Each carries the conversation key and the generation id of
the reply it is about; the UI drops it when that reply is no longer part of the open conversation.
"""

from __future__ import annotations

from textual.message import Message

from ..tracing.pipeline import TraceResult


class ReplyChunk(Message):
    """The text of a streaming reply so far (posted at most ~20 times a second), and its
    reasoning so far (kept apart)."""

    def __init__(self, conversation: int, gen: int, text: str, reasoning: str = "") -> None:
        super().__init__()
        self.conversation, self.gen, self.text, self.reasoning = conversation, gen, text, reasoning


class ReplyDone(Message):
    """A reply finished: completely, stopped by the user, or with a model error."""

    def __init__(self, conversation: int, gen: int, text: str, pieces: int, seconds: float,
                 error: str | None, stopped: bool, reasoning: str = "", first_piece: float | None = None) -> None:
        super().__init__()
        self.conversation, self.gen, self.text, self.reasoning = conversation, gen, text, reasoning
        self.pieces, self.seconds, self.error, self.stopped = pieces, seconds, error, stopped
        self.first_piece = first_piece  # seconds from the request to the first piece


class TraceReady(Message):
    """part: "answer" (the reply's text) or "reasoning" (its reasoning, traced on request)."""

    def __init__(self, conversation: int, gen: int, result: TraceResult, live: bool, part: str = "answer") -> None:
        super().__init__()
        self.conversation, self.gen, self.result, self.live, self.part = conversation, gen, result, live, part


class TraceFailed(Message):
    def __init__(self, conversation: int, gen: int, error: str, live: bool, part: str = "answer") -> None:
        super().__init__()
        self.conversation, self.gen, self.error, self.live, self.part = conversation, gen, error, live, part
