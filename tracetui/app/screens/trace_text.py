"""Trace text without the model: paste or load a file, then trace it like a reply."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static, TextArea


class TraceTextScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("ctrl+s", "submit", "Trace", id="tracetext.submit"),
        Binding("escape", "cancel", "Cancel", id="tracetext.cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="trace-text-box"):
            yield Static("Paste text to trace (Ctrl+S to trace, Esc to cancel), or give a file path:")
            yield Input(placeholder="path/to/file.txt (optional)", id="trace-file")
            yield TextArea(id="trace-area")

    def action_submit(self) -> None:
        path = self.query_one("#trace-file", Input).value.strip()
        if path:
            try:
                self.dismiss(Path(path).expanduser().read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                self.notify(f"cannot read {path}: {exc}", severity="error", markup=False)
            return
        text = self.query_one("#trace-area", TextArea).text
        self.dismiss(text if text.strip() else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
