"""Shown while the default index is checked or built on first start (a few seconds, once)."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import LoadingIndicator, Static

from index_tools.opening import IndexSet

MESSAGE = (
    "Preparing the default index: this Python's standard library sources and pydoc topics\n"
    "(about 10M bytes, indexed once into the user cache directory, then checked at every start).\n"
    "Use your own corpus with: tracetui index build DATA -o DIR, then tracetui --index DIR"
)


class IndexingScreen(ModalScreen["tuple[IndexSet | None, str, float]"]):
    """Runs the loader in a worker; dismisses with (the indexes or None, the error, seconds)."""

    def __init__(self, loader: Callable[[], IndexSet]) -> None:
        super().__init__()
        self.loader = loader

    def compose(self) -> ComposeResult:
        with Vertical(id="indexing-box"):
            yield Static(MESSAGE)
            yield LoadingIndicator()
            yield Static("", id="indexing-elapsed")

    def on_mount(self) -> None:
        self.started = time.perf_counter()
        self.set_interval(0.2, self._tick)
        self.load()

    @work(thread=True, exclusive=True, group="indexes")
    def load(self) -> None:
        """Check or build the default index off the event loop."""
        start = time.perf_counter()
        try:
            indexes = self.loader()
        except Exception as exc:  # a broken cache or a full disk: said by the app, the model still chats
            self.app.call_from_thread(self.dismiss, (None, str(exc), time.perf_counter() - start))
            return
        self.app.call_from_thread(self.dismiss, (indexes, "", time.perf_counter() - start))

    def _tick(self) -> None:
        self.query_one("#indexing-elapsed", Static).update(f"{time.perf_counter() - self.started:.1f} s")
