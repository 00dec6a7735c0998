"""Model backends: llama.cpp through llama-cpp-python, and a scripted stand-in for UI tests.

One backend instance is owned by one worker thread at a time (llama.cpp contexts are not
thread-safe). `stream` yields text pieces; the caller stops early by setting `stop_event`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from llama_cpp.llama_types import (
        ChatCompletionRequestMessage,
        ChatCompletionStreamResponseDelta,
        CreateChatCompletionStreamResponse,
        CreateCompletionStreamResponse,
    )


class ModelError(Exception):
    """The model cannot be loaded or failed while generating; shown in the app, never a crash."""


@dataclass
class ModelSettings:
    n_ctx: int = 4096
    threads: int = max(1, (os.cpu_count() or 2))
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int = 42
    system_prompt: str = "The following is a conversation between a curious user and a knowledgeable assistant."
    stop: list[str] = field(default_factory=lambda: ["\nUser:", "\nuser:", "\nUSER:", "<end_of_turn>"])


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    text: str


def plain_prompt(turns: list[Turn], system: str) -> str:
    """A conversation a base model continues well: labelled turns, ending with 'Assistant:'."""
    lines = [system.strip(), ""] if system.strip() else []
    for t in turns:
        lines.append(f"{'User' if t.role == 'user' else 'Assistant'}: {t.text.strip()}")
        lines.append("")
    lines.append("Assistant:")
    return "\n".join(lines)


class StopFlag(Protocol):
    """What a backend reads of the flag that stops a reply: a `threading.Event` in-process, a
    `multiprocessing.Event` in the model's child process (and `wait`, to sleep until it is set)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Backend:
    name = "backend"
    #: a chat template makes "chat" the natural mode; base models start in "continue" mode
    has_template = True
    #: a server offers several models (`list_models`, `select_model`); a GGUF file is one
    can_pick_model = False
    model: str | None = None

    def list_models(self) -> list[str]:
        raise ModelError("this model backend offers no choice of model")

    def select_model(self, model: str) -> None:
        raise ModelError("this model backend offers no choice of model")

    def stream(self, turns: list[Turn], settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        raise NotImplementedError

    def continue_text(self, opening: str, settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        """Pieces of the model's continuation of `opening` (plain completion, no template)."""
        raise NotImplementedError


def check_gguf(path: str | Path) -> Path:
    """The clear one-line errors for a model path before anything loads it: missing, or not a
    GGUF file (its first four bytes)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ModelError(f"{path}: not a GGUF model file")
    return path


class LlamaBackend(Backend):
    """A GGUF model through llama.cpp; uses the GGUF's chat template when it has one."""

    def __init__(self, path: str | Path, settings: ModelSettings) -> None:
        path = check_gguf(path)
        try:
            from llama_cpp import Llama

            self.llm = Llama(model_path=str(path), n_ctx=settings.n_ctx, n_threads=settings.threads,
                             seed=settings.seed, verbose=False)
        except ImportError as exc:
            raise ModelError(f"llama-cpp-python is not installed ({exc})") from None
        except (ValueError, RuntimeError, OSError, MemoryError) as exc:
            raise ModelError(f"{path}: cannot load model ({exc})") from None
        self.name = path.name
        self.has_template = bool(self.llm.metadata.get("tokenizer.chat_template"))

    def stream(self, turns: list[Turn], settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        common: dict[str, Any] = dict(max_tokens=settings.max_tokens, temperature=settings.temperature,
                                      top_p=settings.top_p, seed=settings.seed, stream=True)
        self.llm.reset()  # the same prompt gives the same reply whatever was generated before
        gen: Generator[object, None, None]
        pieces: Iterator[str | None]
        try:
            if self.has_template:
                msgs = ([{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else [])
                msgs += [{"role": t.role, "content": t.text} for t in turns]
                # roles are "system", "user" or "assistant"; with stream=True llama.cpp returns a
                # generator of chunks (typed as a response or an iterator); an empty delta is a
                # delta whose keys are all absent
                chat = cast("Generator[CreateChatCompletionStreamResponse, None, None]", self.llm.create_chat_completion(
                    messages=cast("list[ChatCompletionRequestMessage]", msgs), **common))
                gen, pieces = chat, (cast("ChatCompletionStreamResponseDelta", c["choices"][0]["delta"]).get("content", "")
                                     for c in chat)
            else:
                text = cast("Generator[CreateCompletionStreamResponse, None, None]", self.llm.create_completion(
                    plain_prompt(turns, settings.system_prompt), stop=settings.stop, **common))
                gen, pieces = text, (c["choices"][0]["text"] for c in text)
            for piece in pieces:
                if stop_event.is_set():
                    break
                if piece:
                    yield piece
            gen.close()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"generation failed: {exc}") from None

    def continue_text(self, opening: str, settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        self.llm.reset()
        try:
            # with stream=True llama.cpp returns a generator of chunks (typed as a response or an iterator)
            gen = cast("Generator[CreateCompletionStreamResponse, None, None]", self.llm.create_completion(
                opening, max_tokens=settings.max_tokens, temperature=settings.temperature,
                top_p=settings.top_p, seed=settings.seed, stream=True))
            for chunk in gen:
                if stop_event.is_set():
                    break
                piece = chunk["choices"][0]["text"]
                if piece:
                    yield piece
            gen.close()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"generation failed: {exc}") from None


class ScriptedBackend(Backend):
    """Replies with fixed text, piece by piece: a stand-in for llama.cpp in fast UI tests.

    A reply given as a list is yielded as those very pieces (`Reasoning` pieces among them:
    the shape of a stream with a reasoning field)."""

    name = "scripted"

    def __init__(self, replies: list[str] | list[str | list[str]], delay: float = 0.0, piece: int = 4, fail_after: int | None = None,
                 has_template: bool = True) -> None:
        self.has_template = has_template
        self.replies = replies
        self.delay = delay
        self.piece = piece
        self.fail_after = fail_after
        self.calls = 0
        self.seen: list[list[Turn] | str] = []  # what each call was given (turns, or an opening)
        self.seen_settings: list[ModelSettings] = []

    def stream(self, turns: list[Turn], settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        text = self.replies[self.calls % len(self.replies)]
        self.calls += 1
        if len(self.seen) < self.calls:
            self.seen.append(list(turns))
        self.seen_settings.append(settings)
        pieces = text if isinstance(text, list) else [text[i : i + self.piece] for i in range(0, len(text), self.piece)]
        at = 0
        for piece in pieces:
            if stop_event.is_set():
                return
            if self.fail_after is not None and at >= self.fail_after:
                raise ModelError("the model process died mid-reply")
            if self.delay:
                time.sleep(self.delay)
            at += len(piece)
            yield piece

    def continue_text(self, opening: str, settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        self.seen.append(opening)
        yield from self.stream([Turn("user", opening)], settings, stop_event)
