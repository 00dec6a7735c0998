"""The prompt: several lines, Enter sends, Shift+Enter or Ctrl+J breaks a line, history on Up/Down.

A TextArea, because prompts people paste are paragraphs and code; Enter still sends (what every
chat app does), and a line break is Shift+Enter where the terminal reports it, Ctrl+J everywhere.
Up on the first line and Down on the last walk the prompts sent before (the text being written
is kept and comes back after the newest).
"""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import TextArea


class PromptArea(TextArea):
    DEFAULT_CSS = """
    PromptArea { height: auto; min-height: 3; max-height: 10; }
    """

    class Submitted(Message):
        def __init__(self, prompt: PromptArea, value: str) -> None:
            super().__init__()
            self.prompt, self.value = prompt, value

        @property
        def control(self) -> PromptArea:
            return self.prompt

    def __init__(self, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id, soft_wrap=True, show_line_numbers=False,
                         tab_behavior="focus", compact=True)
        self.sent: list[str] = []
        self._at: int | None = None  # position in the history while walking it
        self._draft = ""

    @property
    def value(self) -> str:
        return self.text

    @value.setter
    def value(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    def remember(self, text: str) -> None:
        """A sent prompt joins the history (not twice in a row)."""
        if text.strip() and (not self.sent or self.sent[-1] != text):
            self.sent.append(text)
        self._at = None

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        if key in ("shift+enter", "ctrl+j"):
            event.stop()
            event.prevent_default()
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        row = self.cursor_location[0]
        if key == "up" and row == 0 and self.sent:
            event.stop()
            event.prevent_default()
            self._walk(-1)
            return
        if key == "down" and row == self.document.line_count - 1 and self._at is not None:
            event.stop()
            event.prevent_default()
            self._walk(1)
            return
        await super()._on_key(event)

    def _walk(self, step: int) -> None:
        if self._at is None:
            self._draft, self._at = self.text, len(self.sent)
        self._at = max(0, min(len(self.sent), self._at + step))
        self.value = self._draft if self._at == len(self.sent) else self.sent[self._at]
        if self._at == len(self.sent):
            self._at = None
