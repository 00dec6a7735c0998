"""One conversation entry on screen; replies and traced text carry their trace highlights.

The text is shown as `Content(text)` (never parsed as markup) with styles applied by range, so a
reply can contain `[bold]`, escape sequences or code fences and still only ever show as text.
Highlight colours are mixed toward the current theme's background, so they read on light and
dark themes alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.content import Content
from textual.widgets import Static

from ...conversation import Message
from ...sanitize import inert
from ...tracing.pipeline import TraceResult
from ...tracing.ranking import highest_level
from .documents import NEAR_COLOR
from .markdown_style import markdown_styles

# three strengths of one hue per index (reference: 50% / 25% / 10% background)
HUES = ["#2f81f7", "#d29922", "#3fb950", "#db61a2"]
STRENGTH = {"high": 0.5, "medium": 0.25, "low": 0.1}
HEAT = "#f85149"  # heat view: effective n 1 (no context in the corpus) unshaded, 16+ full
LABELS = {"user": "You", "assistant": "Model", "text": "Traced text"}


def index_hues(names: list[str]) -> dict[str, str]:
    """One hue per index, in order (the chat and the Overlap screen colour alike)."""
    return {name: HUES[i % len(HUES)] for i, name in enumerate(names)}


def mix(hue: str, alpha: float, base: str) -> str:
    """`hue` at `alpha` over `base` (both #rrggbb)."""
    h = [int(hue[i : i + 2], 16) for i in (1, 3, 5)]
    b = [int(base[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(b[k] + (h[k] - b[k]) * alpha):02x}" for k in range(3))


_BACKGROUNDS: dict[str, str] = {}


def theme_background(theme: str, variables: Callable[[], dict[str, str]]) -> str:
    """`$background` of a theme, cached per theme name (computing the variables is not free)."""
    if theme not in _BACKGROUNDS:
        from textual.color import Color

        try:
            _BACKGROUNDS[theme] = Color.parse(variables().get("background", "#0d1117")).hex[:7]
        except Exception:
            _BACKGROUNDS[theme] = "#0d1117"
    return _BACKGROUNDS[theme]


class MessageView(Static):
    """Shows one `Message`; the selected highlight is drawn solid."""

    def __init__(self, message: Message, number: int = 0, index_hue: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.message = message
        self.number = number  # position in the conversation: clicks name it
        self.selected: int | None = None  # index into trace.highlights
        self.heat = False  # shade tokens by ∞-gram effective n (the memorization lens)
        self.show_reasoning = False  # the reasoning under the reply: collapsed to one line, or shown
        self.show_near = False  # near-verbatim spans (one word apart from the corpus) marked too
        self.index_hue = index_hue or {}
        self.add_class(f"-{message.role}")

    def on_mount(self) -> None:
        self.refresh_content()

    # the message's fields, read through the view (tests and screens use them)
    @property
    def role(self) -> str:
        return self.message.role

    @property
    def text(self) -> str:
        return self.message.text

    @property
    def trace(self) -> TraceResult | None:
        return self.message.trace

    def select(self, highlight: int | None) -> None:
        self.selected = highlight
        self.refresh_content()

    def trace_changed(self) -> None:
        trace = self.trace
        if trace is None or self.selected is not None and self.selected >= len(trace.highlights):
            self.selected = None
        self.refresh_content()

    def _background(self) -> str:
        """The theme's background colour (#rrggbb), as the app computes it for `$background`."""
        try:
            app = self.app
        except Exception:  # not mounted in an app (unit use)
            return "#0d1117"
        return theme_background(app.theme, app.get_css_variables)

    def build_content(self) -> Content:
        msg = self.message
        label = LABELS.get(msg.role, msg.role)
        if msg.role == "assistant" and msg.prompt_chars:
            label += " (continues your opening)"
        lens = msg.trace.memorization if msg.trace is not None else None
        if lens:
            label += f" · memorized {lens['covered_share']:.0%} · n̄ {lens['mean_effective_n']:.1f}"
        text = inert(msg.text)
        content = Content(text)
        if msg.traced:
            for a, b, style in markdown_styles(text):
                content = content.stylize(style, a, b)
        if msg.prompt_chars:
            content = content.stylize("italic dim", 0, min(msg.prompt_chars, len(text)))
        trace = msg.trace
        if self.heat and lens and trace is not None and trace.text == msg.text[: len(trace.text)]:
            base = self._background()
            for a, b, n, _prob in lens["tokens"]:
                # a click opens "next in corpus" where this token stands
                click = f"@click=screen.next_at({self.number},{a})"
                shade = f"on {mix(HEAT, min(1.0, (n - 1) / 15), base)} " if n > 1 else ""
                content = content.stylize(shade + click, a, b)
            return Content.assemble((f"{label}\n", "bold"), content, *self._reasoning_content())
        if trace is not None and trace.text == msg.text[: len(trace.text)]:
            base = self._background()
            if self.show_near and trace.near:
                # under the exact highlights (applied after, so an exact span is never hidden): the
                # region underlined, the reply's differing word marked
                for n in trace.near:
                    content = content.stylize(f"underline {NEAR_COLOR}", n.start, n.end)
                    if n.diff[1] > n.diff[0]:
                        content = content.stylize(f"bold reverse {NEAR_COLOR}", *n.diff)
            for i, h in enumerate(trace.highlights):
                spans = [trace.spans[k] for k in h.spans]
                level = highest_level([s.level for s in spans])
                hue = self.index_hue.get(spans[0].index, HUES[0])
                if i == self.selected:
                    style = f"bold #ffffff on {hue}"
                else:
                    style = f"on {mix(hue, STRENGTH[level], base)}"
                style += f" @click=screen.pick_highlight({self.number},{i})"
                content = content.stylize(style, h.start, h.end)
        return Content.assemble((f"{label}\n", "bold"), content, *self._reasoning_content())

    def _reasoning_content(self) -> list[Content | tuple[str, str]]:
        """Under the reply: one line while collapsed; the reasoning itself, dimmed (with its own
        highlights once traced), when shown."""
        msg = self.message
        if not msg.reasoning:
            return []
        traced = msg.reasoning_trace
        state = f" · traced: {len(traced.spans)} spans" if traced is not None else ""
        if not self.show_reasoning:
            return [(f"\n▸ reasoning hidden · {len(msg.reasoning):,} characters{state}", "dim italic")]
        text = inert(msg.reasoning)
        content = Content(text).stylize("dim italic", 0, len(text))
        if traced is not None and traced.text == msg.reasoning[: len(traced.text)]:
            base = self._background()
            for h in traced.highlights:
                spans = [traced.spans[k] for k in h.spans]
                hue = self.index_hue.get(spans[0].index, HUES[0])
                level = highest_level([s.level for s in spans])
                content = content.stylize(f"on {mix(hue, STRENGTH[level], base)}", h.start, h.end)
        return [(f"\n▾ reasoning{state}\n", "dim bold"), content]

    def refresh_content(self) -> None:
        self.update(self.build_content())
