"""Shown while the default index is checked or built on first start (a few seconds, once)."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import LoadingIndicator, Static

MESSAGE = (
    "Preparing the default index: this Python's standard library sources and pydoc topics\n"
    "(about 10M bytes, indexed once into the user cache directory, then checked at every start).\n"
    "Use your own corpus with: tracetui index build DATA -o DIR, then tracetui --index DIR"
)


class IndexingScreen(ModalScreen[None]):
    def compose(self) -> ComposeResult:
        with Vertical(id="indexing-box"):
            yield Static(MESSAGE)
            yield LoadingIndicator()
            yield Static("", id="indexing-elapsed")

    def on_mount(self) -> None:
        self.started = time.perf_counter()
        self.set_interval(0.2, self._tick)

    def _tick(self) -> None:
        self.query_one("#indexing-elapsed", Static).update(f"{time.perf_counter() - self.started:.1f} s")
