"""Reasoning apart from the answer: `<think>…</think>` in the content, or a separate stream field.

Backends yield `str` pieces of the answer and `Reasoning` pieces (a `str` subclass) of what a
server sends as `reasoning_content` / `reasoning`. `ReplySplitter` takes both and keeps the
answer and the reasoning apart, cutting `<think>` blocks out of the content as it streams (a tag
split over two pieces included). A closing `</think>` with no opening one (DeepSeek-R1 style
templates open the block inside the prompt) makes everything before it reasoning.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


class Reasoning(str):
    """A piece of a model's reasoning, not of its answer."""


def _partial_tag(text: str, *tags: str) -> int:
    """Length of the longest end of `text` that could be the start of one of `tags`."""
    best = 0
    for tag in tags:
        for k in range(min(len(tag) - 1, len(text)), best, -1):
            if text.endswith(tag[:k]):
                best = k
                break
    return best


class ReplySplitter:
    def __init__(self) -> None:
        self._answer: list[str] = []
        self._reasoning: list[str] = []
        self._inside = False  # within a <think> block
        self._held = ""  # the end of the last piece, possibly the start of a tag
        self._blocks = 0  # think blocks seen (and reasoning fields): a stray </think> is then text

    @property
    def answer(self) -> str:
        return "".join(self._answer)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    def add_reasoning(self, piece: str) -> None:
        self._blocks += 1
        self._reasoning.append(piece)

    def feed(self, piece: str) -> None:
        data, self._held = self._held + piece, ""
        while data:
            if self._inside:
                i = data.find(CLOSE)
                if i < 0:
                    keep = _partial_tag(data, CLOSE)
                    self._emit(data[: len(data) - keep])
                    self._held = data[len(data) - keep:]
                    return
                self._emit(data[:i])
                data, self._inside = data[i + len(CLOSE):], False
                continue
            i, j = data.find(OPEN), data.find(CLOSE)
            if i < 0 and j < 0:
                keep = _partial_tag(data, OPEN, CLOSE)
                self._emit(data[: len(data) - keep])
                self._held = data[len(data) - keep:]
                return
            if j >= 0 and (i < 0 or j < i):  # a closing tag first
                if self._blocks:
                    self._emit(data[: j + len(CLOSE)])  # a stray tag after real blocks: text
                else:  # the block was opened by the template: what came so far is reasoning
                    self._reasoning = self._answer + [data[:j]]
                    self._answer = []
                    self._blocks += 1
                data = data[j + len(CLOSE):]
                continue
            self._emit(data[:i])
            data, self._inside = data[i + len(OPEN):], True
            self._blocks += 1

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self._inside:
            self._reasoning.append(text)
        elif self._answer or not self._blocks or text.strip():
            # the blank lines a model puts between its reasoning and its answer are not the answer
            self._answer.append(text.lstrip() if self._blocks and not self._answer else text)

    def finish(self) -> None:
        """The stream ended: a held partial tag was text after all."""
        held, self._held = self._held, ""
        self._emit(held)
