"""The conversation's system prompt: Enter keeps it, Esc leaves it as it was, empty means the
settings' default (`system_prompt` in the config)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from ...sanitize import inert
from ..widgets.prompt import PromptArea


class SystemPromptScreen(ModalScreen["str | None"]):
    """Dismisses with the new system prompt ("" for the default), or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Back", id="system.back")]

    def __init__(self, current: str, default: str) -> None:
        super().__init__()
        self.current, self.default = current, default

    def compose(self) -> ComposeResult:
        with Vertical(id="system-box"):
            yield Static(Content(inert("System prompt of this conversation — Enter keeps it (Ctrl+J: new line), "
                                       "Esc goes back, empty: the default")))
            yield Static(Content.styled(inert(f"default: {self.default}")[:300], "dim"))
            yield PromptArea(id="system-text")

    def on_mount(self) -> None:
        area = self.query_one(PromptArea)
        area.value = self.current
        area.focus()

    def on_prompt_area_submitted(self, event: PromptArea.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
