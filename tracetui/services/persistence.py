"""Saving and reopening conversations, where a failure is a notice and never ends the chat.

The store is SQLite on the user's data directory: a full disk or a database locked by another
tracetui must cost the user a warning, not the conversation on screen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..conversation import Conversation
from ..store import ConversationStore
from .events import Emit, Notice

_T = TypeVar("_T")


class Persistence:
    def __init__(self, store: ConversationStore | None, emit: Emit) -> None:
        self.store = store
        self.emit = emit

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def _call(self, fn: Callable[..., _T], *args: object) -> _T | None:
        try:
            return fn(*args)
        except Exception as exc:  # a full disk or a locked database must not end the chat
            self.emit(Notice(f"could not save the conversation: {exc}"))
            return None

    def begin(self, conv: Conversation, first_prompt: str) -> None:
        """Give a conversation its row when its first prompt is sent."""
        if self.store is not None and conv.stored_id is None:
            conv.stored_id = self._call(self.store.create, first_prompt)

    def save(self, conv: Conversation) -> None:
        if self.store is not None and conv.stored_id is not None:
            self._call(self.store.save, conv)

    def load(self, cid: int) -> Conversation | None:
        return None if self.store is None else self._call(self.store.load, cid)
