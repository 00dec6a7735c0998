"""The models a server offers: Enter uses the highlighted one, Esc keeps the current one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ...sanitize import inert


class ModelPickerScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Back", id="models.back")]

    def __init__(self, server: str, models: list[str], current: str | None) -> None:
        super().__init__()
        self.server, self.models, self.current = server, models, current

    def compose(self) -> ComposeResult:
        with Vertical(id="models-box"):
            yield Static(Content(inert(f"Models of {self.server} — Enter to use one, Esc to go back")))
            yield OptionList(*[Option(Content.assemble(inert(m), (" (in use)" if m == self.current else "", "dim")),
                                      id=str(i)) for i, m in enumerate(self.models)], id="models-list")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.highlighted = self.models.index(self.current) if self.current in self.models else 0
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.models[int(event.option.id or 0)])

    def action_cancel(self) -> None:
        self.dismiss(None)
