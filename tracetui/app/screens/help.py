"""Help: every key of the app, from the live bindings (so remapped keys show as remapped)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = (
    "tracetui chats with a local model and highlights the parts of each reply that occur verbatim "
    "in your indexes (OLMoTrace). Stronger colour = more relevant documents."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.rows = bindings

    def compose(self) -> ComposeResult:
        lines = [Content.styled("tracetui — keys\n", "bold"), Content(INTRO + "\n\n")]
        for key, desc in self.rows:
            lines.append(Content.assemble((f"{key:>14}", "bold"), f"  {desc}\n"))
        with VerticalScroll(id="help-box"):
            yield Static(Content.assemble(*lines))
