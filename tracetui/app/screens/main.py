"""The main screen: the conversation, the prompt, the document panel and the status line.

It only shows things: the App owns the conversation, the workers and the bindings, and tells
this screen what changed. Every method runs on the UI thread.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Header, Input, Static

from ...conversation import Message
from ...sanitize import inert
from ...tracing.pipeline import TraceResult
from ..widgets.documents import DocumentPanel
from ..widgets.footer import StableFooter
from ..widgets.message import MessageView


class MainScreen(Screen[None]):
    def __init__(self, intro: Content | str) -> None:
        super().__init__()
        self.intro = intro
        self.views: list[MessageView] = []
        self.focused_view: MessageView | None = None  # the reply last clicked
        self.heat = False  # tokens shaded by effective n instead of span highlights
        self.show_reasoning = False  # reasoning under the replies shown (else one line each)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="chat-col"):
                yield VerticalScroll(Static(self.intro, id="intro"), id="chat")
                yield Input(placeholder="Ask the model… (Enter to send, F1 for help)", id="prompt")
            yield DocumentPanel(id="docs")
        yield Static("ready", id="status")
        yield StableFooter()

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()

    # -- messages ---------------------------------------------------------------------------------
    def add(self, message: Message, index_hue: dict[str, str]) -> MessageView:
        view = MessageView(message, number=len(self.views), index_hue=index_hue, classes="message")
        view.heat = self.heat
        view.show_reasoning = self.show_reasoning
        self.views.append(view)
        chat = self.query_one("#chat", VerticalScroll)
        chat.mount(view)
        chat.scroll_end(animate=False)
        return view

    def view_of(self, message: Message) -> MessageView | None:
        return next((v for v in self.views if v.message is message), None)

    def clear(self) -> None:
        for v in self.views:
            v.remove()
        self.views.clear()
        self.focused_view = None
        self.query_one(DocumentPanel).show(None)

    def text_changed(self, view: MessageView) -> None:
        view.refresh_content()
        self.query_one("#chat", VerticalScroll).scroll_end(animate=False)

    def trace_changed(self, view: MessageView, result: TraceResult, live: bool) -> None:
        """A new trace for a view: redraw it, and show its documents if it is the latest entry
        and nothing is selected."""
        view.trace_changed()
        panel = self.query_one(DocumentPanel)
        if view is self.views[-1] and view.selected is None and (
                not live or [d.id for d in result.documents] != [d.id for d in panel.documents]):
            panel.show(result)

    def restyle(self) -> None:
        """Colours follow the theme: redraw every message."""
        for v in self.views:
            v.heat = self.heat
            v.show_reasoning = self.show_reasoning
            v.refresh_content()

    # -- spans ------------------------------------------------------------------------------------
    def focused_reply(self) -> MessageView | None:
        """The reply last clicked, else the latest one with highlights."""
        f = self.focused_view
        if f is not None and f in self.views and f.trace is not None and f.trace.highlights:
            return f
        traced = [v for v in self.views if v.message.traced and v.trace and v.trace.highlights]
        return traced[-1] if traced else None

    def select_highlight(self, view: MessageView, nxt: int | None) -> str | None:
        """Select a highlight (None: clear); returns the status line to show."""
        for other in self.views:
            if other is not view and other.selected is not None:
                other.select(None)
        view.select(nxt)
        panel = self.query_one(DocumentPanel)
        if nxt is None or view.trace is None:
            panel.show(view.trace)
            return None
        h = view.trace.highlights[nxt]
        panel.show(view.trace, h.spans)
        line = view.text[: h.start].count("\n") + 1
        self.query_one("#chat", VerticalScroll).scroll_to(y=view.virtual_region.y + line - 2, animate=False)
        texts = "; ".join(inert(view.trace.spans[i].text)[:60] for i in h.spans)
        return f"span {nxt + 1}/{len(view.trace.highlights)}: {texts}"

    # -- status -----------------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(Content(inert(text)))
