"""A conversation: the one owner of turns, replies and their traces (no UI, no threads).

Every reply gets a *generation id* when it starts. Workers (the model, the tracer) report results
tagged with that id; a result whose id no longer names a reply of the current conversation (the
chat was cleared, another conversation was opened) is simply dropped, so an old reply can never
write into a new chat. Only the UI thread mutates a Conversation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from .model import Turn
from .tracing.pipeline import TraceResult

#: chat: turns with a chat template (or labelled turns); continue: the prompt is the opening of
#: a text and the reply continues it (what base models are made for)
MODES = ("chat", "continue")

_generation_ids = itertools.count(1)
_conversation_keys = itertools.count(1)


@dataclass
class Message:
    """One entry of a conversation.

    role: "user" (a prompt), "assistant" (a model reply) or "text" (pasted text traced without the
    model: shown and traced like a reply, never sent to the model). In continue mode a reply's
    text starts with the opening it continues: `prompt_chars` characters of it. `reasoning` is
    what a reasoning model thought before answering (a `<think>` block or a reasoning field): kept
    apart from `text`, never sent back to the model, traced only on request (`reasoning_trace`).
    """

    role: str
    text: str
    gen: int = 0
    trace: TraceResult | None = None
    prompt_chars: int = 0
    done: bool = True
    mode: str = "chat"
    extra: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    reasoning_trace: TraceResult | None = None

    @property
    def traced(self) -> bool:
        return self.role in ("assistant", "text")

    def to_json(self) -> dict[str, Any]:
        data = {"role": self.role, "text": self.text, "mode": self.mode, "prompt_chars": self.prompt_chars,
                "trace": self.trace.to_json() if self.trace else None}
        if self.reasoning:
            data["reasoning"] = self.reasoning
            data["reasoning_trace"] = self.reasoning_trace.to_json() if self.reasoning_trace else None
        return data


class Conversation:
    """Messages in order; `key` tells conversations apart in worker results, `stored_id` is the
    row in the conversation store (None until first saved)."""

    def __init__(self, mode: str = "chat", stored_id: int | None = None) -> None:
        self.key = next(_conversation_keys)
        self.mode = mode
        self.stored_id = stored_id
        self.messages: list[Message] = []
        self.system: str | None = None  # this conversation's system prompt (None: the settings' one)

    # -- building --------------------------------------------------------------------------------
    def add_user(self, text: str) -> Message:
        msg = Message("user", text, mode=self.mode)
        self.messages.append(msg)
        return msg

    def start_reply(self, opening: str = "") -> Message:
        """A reply about to stream; in continue mode it starts with the opening it continues."""
        msg = Message("assistant", opening, gen=next(_generation_ids), prompt_chars=len(opening), done=False,
                      mode=self.mode)
        self.messages.append(msg)
        return msg

    def add_text(self, text: str) -> Message:
        msg = Message("text", text, gen=next(_generation_ids), mode=self.mode)
        self.messages.append(msg)
        return msg

    def add_loaded(self, role: str, text: str, mode: str = "chat", prompt_chars: int = 0,
                   reasoning: str = "") -> Message:
        gen = next(_generation_ids) if role in ("assistant", "text") else 0
        msg = Message(role, text, gen=gen, prompt_chars=prompt_chars, mode=mode, reasoning=reasoning)
        self.messages.append(msg)
        return msg

    def drop_last_reply(self) -> Message | None:
        """Remove the last finished reply (to generate it again); returns it, or None when the
        conversation does not end with one."""
        if self.messages and self.messages[-1].role == "assistant" and self.messages[-1].done:
            return self.messages.pop()
        return None

    # -- lookups ---------------------------------------------------------------------------------
    def by_gen(self, gen: int) -> Message | None:
        """The reply with this generation id, or None if it is not (or no longer) ours."""
        if gen <= 0:
            return None
        return next((m for m in self.messages if m.gen == gen), None)

    @property
    def streaming(self) -> Message | None:
        return next((m for m in reversed(self.messages) if not m.done), None)

    def prompt_for(self, msg: Message) -> str:
        """The user prompt a reply answers (used for ranking its documents)."""
        i = self.messages.index(msg)
        return next((m.text for m in reversed(self.messages[:i]) if m.role == "user"), "")

    def model_turns(self) -> list[Turn]:
        """What the model sees in chat mode: prompts and finished replies, never traced text."""
        return [Turn(m.role, m.text) for m in self.messages if m.role in ("user", "assistant") and m.done]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "turns": [m.to_json() for m in self.messages]}
        if self.system is not None:
            out["system"] = self.system
        return out
