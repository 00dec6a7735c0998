"""One chat message; assistant replies carry their trace highlights.

The text is shown as `Content(text)` (never parsed as markup) with styles applied by range, so a
reply can contain `[bold]`, escape sequences or code fences and still only ever show as text.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from ...sanitize import inert
from ...tracing.pipeline import TraceResult
from ...tracing.ranking import highest_level
from .markdown_style import markdown_styles

# three strengths of one hue per index (reference: 50% / 25% / 10% background)
HUES = ["#2f81f7", "#d29922", "#3fb950", "#db61a2"]
STRENGTH = {"high": 0.5, "medium": 0.25, "low": 0.1}


def _mix(hue: str, alpha: float, base: str = "#0d1117") -> str:
    h = [int(hue[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(base[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(b[k] + (h[k] - b[k]) * alpha):02x}" for k in range(3))


class MessageView(Static):
    """A user prompt or a model reply; replies show highlights and the selected span solid."""

    DEFAULT_CSS = ""

    def __init__(self, role: str, text: str = "", number: int = 0, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__("", **kwargs)
        self.role = role
        self.number = number  # position in the conversation: clicks name it
        self.text = text
        self.trace: TraceResult | None = None
        self.selected: int | None = None  # index into trace.highlights
        self.index_hue: dict[str, str] = {}
        self.add_class(f"-{role}")
        self.refresh_content()

    def set_text(self, text: str) -> None:
        self.text = text
        self.refresh_content()

    def set_trace(self, trace: TraceResult | None, index_hue: dict[str, str]) -> None:
        self.trace = trace
        self.index_hue = index_hue
        if trace is None or self.selected is not None and self.selected >= len(trace.highlights):
            self.selected = None
        self.refresh_content()

    def select(self, highlight: int | None) -> None:
        self.selected = highlight
        self.refresh_content()

    def build_content(self) -> Content:
        label = "You" if self.role == "user" else "Model"
        text = inert(self.text)
        content = Content(text)
        if self.role == "assistant":
            for a, b, style in markdown_styles(text):
                content = content.stylize(style, a, b)
        trace = self.trace
        if trace is not None and trace.text == self.text[: len(trace.text)]:
            for i, h in enumerate(trace.highlights):
                spans = [trace.spans[k] for k in h.spans]
                level = highest_level([s.level for s in spans])
                hue = self.index_hue.get(spans[0].index, HUES[0])
                if i == self.selected:
                    style = f"bold #ffffff on {hue}"
                else:
                    style = f"on {_mix(hue, STRENGTH[level])}"
                style += f" @click=app.pick_highlight({self.number},{i})"
                content = content.stylize(style, h.start, h.end)
        return Content.assemble((f"{label}\n", "bold"), content)

    def refresh_content(self) -> None:
        self.update(self.build_content())
