"""The main screen: the conversation, the prompt, the document panel and the status line.

It shows the conversation and owns what acts on it: sending a prompt, regenerating a reply,
opening another conversation, its system prompt and export, and on what it shows: walking the
highlights, the heat and reasoning views, the document panel, the next-token view. A reply's
life, from the request to its final trace, is `Replies`' (`tracetui.app.replies`). The App owns
the conversation, the services and the global keys, and routes the services' events here. Every
method runs on the UI thread; reading a document runs in a worker.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Header, OptionList, Static

from ...conversation import Conversation, Message
from ...export import export_conversation
from ...sanitize import inert
from ...store import restore_traces
from ...tracing.pipeline import TraceResult
from ..replies import Replies
from ..span_walk import highlight_status, step_highlight
from ..widgets.documents import DocumentPanel
from ..widgets.footer import StableFooter
from ..widgets.message import MessageView
from ..widgets.prompt import PromptArea
from .conversations import ConversationsScreen
from .document import open_document
from .next_tokens import NextTokensScreen
from .system_prompt import SystemPromptScreen
from .trace_text import TraceTextScreen

if TYPE_CHECKING:
    from ..app import TraceApp


class MainScreen(Screen[None]):
    # priority where the prompt (a TextArea) binds the same key: F6 select line, Ctrl+Y redo
    BINDINGS = [
        Binding("tab", "walk(1)", "Next span", priority=True, id="span.next"),
        Binding("shift+tab", "walk(-1)", "Prev span", priority=True, id="span.prev"),
        Binding("escape", "escape", "Stop / clear", id="escape"),
        Binding("ctrl+o", "focus_docs", "Documents", id="docs.focus"),
        Binding("f4", "demo_opening", "Demo opening", id="demo.opening"),
        Binding("f5", "toggle_heat", "Heat view", id="heat.toggle"),
        Binding("f6", "next_in_corpus", "Next in corpus", priority=True, id="next.open"),
        # shown only when they apply (`check_action`): replies with reasoning
        Binding("f9", "toggle_reasoning", "Reasoning", id="reasoning.toggle"),
        Binding("ctrl+g", "trace_reasoning", "Trace reasoning", id="reasoning.trace"),
        Binding("f10", "toggle_near", "Near-verbatim", id="near.toggle"),
        Binding("ctrl+y", "copy_span", "Copy span", priority=True, id="copy.span"),
        Binding("ctrl+b", "regenerate", "Regenerate", priority=True, id="prompt.regenerate"),
        Binding("ctrl+s", "system_prompt", "System prompt", priority=True, id="prompt.system"),
        # priority: the prompt would take Ctrl+E as "end of line"
        Binding("ctrl+e", "export", "Export", priority=True, id="export"),
        Binding("ctrl+l", "focus_prompt", "Prompt", show=False, id="prompt.focus"),
    ]

    def __init__(self, intro: Content | str) -> None:
        super().__init__()
        self.intro = intro
        self.views: list[MessageView] = []
        self.focused_view: MessageView | None = None  # the reply last clicked
        self.heat = False  # tokens shaded by effective n instead of span highlights
        self.show_reasoning = False  # reasoning under the replies shown (else one line each)
        self.show_near = False  # near-verbatim spans traced and marked (F10)
        self.replies = Replies(self)
        self._openings_given = 0  # demo openings put into the prompt so far (F4 cycles through them)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="chat-col"):
                yield VerticalScroll(Static(self.intro, id="intro"), id="chat")
                yield PromptArea(placeholder="Ask the model… (Enter sends, Ctrl+J new line, Up: earlier prompts)",
                                 id="prompt")
            yield DocumentPanel(id="docs")
        yield Static("ready", id="status")
        yield StableFooter()

    def on_mount(self) -> None:
        self.query_one("#prompt", PromptArea).focus()

    # -- messages ---------------------------------------------------------------------------------
    def add(self, message: Message, index_hue: dict[str, str]) -> MessageView:
        view = MessageView(message, number=len(self.views), index_hue=index_hue, classes="message")
        view.heat = self.heat
        view.show_reasoning = self.show_reasoning
        view.show_near = self.show_near
        self.views.append(view)
        chat = self.query_one("#chat", VerticalScroll)
        chat.mount(view)
        chat.scroll_end(animate=False)
        return view

    def view_of(self, message: Message) -> MessageView | None:
        return next((v for v in self.views if v.message is message), None)

    def drop_view(self, view: MessageView) -> None:
        """One message gone (a reply regenerated): its view, and its documents if shown."""
        if view in self.views:
            self.views.remove(view)
            view.remove()
        if self.focused_view is view:
            self.focused_view = None
        panel = self.query_one(DocumentPanel)
        if view.trace is not None and panel.trace is view.trace:
            panel.show(None)

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
            v.show_near = self.show_near
            v.refresh_content()
        panel = self.query_one(DocumentPanel)
        if panel.show_near != self.show_near:
            panel.show_near = self.show_near
            panel.show(panel.trace, panel.span_filter)

    # -- the conversation -------------------------------------------------------------------------
    @on(PromptArea.Submitted, "#prompt")
    def send(self, event: PromptArea.Submitted) -> None:
        """Enter: the prompt (chat) or the opening (continue, kept as typed) starts a reply."""
        app = self.tapp
        conv = app.conversation
        text = event.value if conv.mode == "continue" else event.value.strip()
        if not text.strip() or not self.replies.can_start():
            return
        event.prompt.remember(event.value)
        event.prompt.value = ""
        app.persistence.begin(conv, text.strip())
        if conv.mode == "chat":
            self.add(conv.add_user(text), app.index_hue)
        self.replies.start(text)

    def action_regenerate(self) -> None:
        """The last reply again: dropped, and generated anew from the same prompt (or opening)."""
        if self.app.screen is not self or not self.replies.can_start():
            return
        old = self.tapp.conversation.drop_last_reply()
        if old is None:
            self.notify("no finished reply to regenerate", severity="information")
            return
        view = self.view_of(old)
        if view is not None:
            self.drop_view(view)
        self.replies.start(old.text[: old.prompt_chars] if old.mode == "continue" else "")

    def action_system_prompt(self) -> None:
        """This conversation's system prompt (kept with it); empty restores the default."""
        if self.app.screen is not self:
            return
        app = self.tapp
        conv = app.conversation

        def chosen(text: str | None) -> None:
            if text is None or conv is not app.conversation:
                return  # cancelled, or another conversation opened meanwhile
            conv.system = text or None
            app.persistence.save(conv)
            app.show_mode()
            self.set_status("system prompt: " + ("this chat's own, from the next reply on" if text else "the default"))

        self.app.push_screen(SystemPromptScreen(conv.system or "", app.settings.system_prompt), chosen)

    def action_export(self) -> Path | None:
        """The conversation as Markdown and JSON in the export directory; the base path written."""
        app = self.tapp
        if not app.conversation.messages:
            self.notify("nothing to export yet", severity="warning")
            return None
        try:
            base = export_conversation(app.conversation, app.export_dir)
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error", markup=False)
            return None
        self.notify(f"exported to {base}.md and .json", markup=False)
        return base

    def show_conversation(self, conv: Conversation, status: str = "new chat") -> None:
        """Stop what streams, forget the old conversation (late results for it are dropped), and
        show `conv`, reusing its saved traces while the indexes and parameters match."""
        app = self.tapp
        self.replies.forget()
        app.conversation = conv
        self.clear()
        app.show_mode()
        app.refresh_bindings()
        if not conv.messages:
            self.set_status(status)
            return
        reused = restore_traces(conv, app.indexes, app.trace_params)
        for msg in conv.messages:
            self.add(msg, app.index_hue)
            if msg.traced and msg.trace is None:
                self.replies.request_trace(msg, live=False)
            if app.trace_reasoning and msg.reasoning.strip() and msg.reasoning_trace is None:
                self.replies.request_trace(msg, live=False, part="reasoning")
        last = next((v for v in reversed(self.views) if v.trace is not None), None)
        if last is not None and last.trace is not None:
            self.trace_changed(last, last.trace, live=False)
        self.set_status(f"{status}: {reused} saved trace(s) reused")

    # the chat keys bound app-wide (Ctrl+N, Ctrl+R, Ctrl+T: they work over any screen) land here
    def new_chat(self) -> None:
        self.show_conversation(Conversation(self.tapp.conversation.mode))

    def pick_conversation(self) -> None:
        """The saved conversations: the one picked is shown here."""
        app = self.tapp
        store = app.persistence.store
        if store is None:
            self.notify("conversations are not saved in this session", severity="warning")
            return

        def opened(cid: int | None) -> None:
            conv = None if cid is None else app.persistence.load(cid)
            if conv is not None:
                self.show_conversation(conv, f"reopened conversation {cid}")

        app.push_screen(ConversationsScreen(store), opened)

    def trace_text(self) -> None:
        """Text pasted or loaded from a file, traced like a reply (once back on this screen)."""
        def done(text: str | None) -> None:
            if text and self.app.screen is self:
                msg = self.tapp.conversation.add_text(text)
                self.add(msg, self.tapp.index_hue)
                self.replies.request_trace(msg, live=False)

        self.app.push_screen(TraceTextScreen(), done)

    def show_mode(self, mode: str) -> None:
        """The prompt's placeholder says what Enter does in this mode."""
        self.query_one("#prompt", PromptArea).placeholder = (
            "Type the opening of a text; the model continues it (F3: chat mode)" if mode == "continue" else
            "Ask the model… (Enter sends, Ctrl+J new line, Up: earlier prompts, F1: help)")

    # -- spans ------------------------------------------------------------------------------------
    def focused_reply(self) -> MessageView | None:
        """The reply last clicked, else the latest one with highlights."""
        f = self.focused_view
        if f is not None and f in self.views and f.trace is not None and f.trace.highlights:
            return f
        traced = [v for v in self.views if v.message.traced and v.trace and v.trace.highlights]
        return traced[-1] if traced else None

    def select_highlight(self, view: MessageView, nxt: int | None) -> None:
        """Select a highlight (None: clear it): its documents in the panel, its line in sight."""
        for other in self.views:
            if other is not view and other.selected is not None:
                other.select(None)
        view.select(nxt)
        panel = self.query_one(DocumentPanel)
        if nxt is None or view.trace is None:
            panel.show(view.trace)
            return
        h = view.trace.highlights[nxt]
        panel.show(view.trace, h.spans)
        line = view.text[: h.start].count("\n") + 1
        self.query_one("#chat", VerticalScroll).scroll_to(y=view.virtual_region.y + line - 2, animate=False)
        self.set_status(highlight_status(view, nxt))

    @property
    def tapp(self) -> TraceApp:
        return cast("TraceApp", self.app)

    def action_walk(self, step: int) -> None:
        view = self.focused_reply()
        k = step_highlight(view, step)
        if view is None or k is None:
            self.notify("no highlighted spans yet", severity="information")
            return
        self.select_highlight(view, k)

    def action_pick_highlight(self, message: int, highlight: int) -> None:
        """A click on a highlight: select it, as Tab would."""
        if 0 <= message < len(self.views):
            view = self.views[message]
            if view.trace is not None and 0 <= highlight < len(view.trace.highlights):
                self.focused_view = view
                self.select_highlight(view, highlight)

    def action_escape(self) -> None:
        if self.tapp.generating:
            self.replies.stop()
            return
        view = self.focused_reply()
        if view is not None and view.selected is not None:
            self.select_highlight(view, None)
            self.set_status("selection cleared: all documents")

    def action_focus_docs(self) -> None:
        self.query_one(DocumentPanel).focus()

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", PromptArea).focus()

    @on(OptionList.OptionSelected, "#docs")
    def _open_document(self, event: OptionList.OptionSelected) -> None:
        panel = self.query_one(DocumentPanel)
        view, trace = self.focused_reply(), panel.trace

        def locate(span: int | None) -> None:
            if span is None or view is None or trace is None or view.trace is not trace or view not in self.views:
                return
            hl = next((k for k, h in enumerate(trace.highlights) if span in h.spans), None)
            self.select_highlight(view, hl)

        open_document(self, trace, panel.document(event.option.id), self.tapp.indexes or [], locate)

    def action_demo_opening(self) -> None:
        """Put the next demo opening into the prompt, switching to continue mode (none: nothing)."""
        app = self.tapp
        if not app.openings:
            return
        if app.conversation.mode != "continue":
            app.action_toggle_mode()
        text = app.openings[self._openings_given % len(app.openings)]
        self._openings_given += 1
        prompt = self.query_one("#prompt", PromptArea)
        prompt.value = text
        prompt.focus()

    def action_toggle_heat(self) -> None:
        """Shade every token of the replies by its ∞-gram effective n instead of the spans."""
        self.heat = not self.heat
        self.restyle()
        self.set_status("heat view: tokens shaded by effective n (darker: longer context found in the corpus)"
                        if self.heat else "span view")

    def action_toggle_near(self) -> None:
        """Near-verbatim spans (two exact spans one word apart, together in a document) marked in
        the replies and listed in the panel; replies traced without them are traced again."""
        self.show_near = not self.show_near
        self.restyle()
        if self.show_near:
            for v in self.views:
                if v.message.done and v.message.traced and v.trace is not None and v.trace.near is None:
                    self.replies.request_trace(v.message, live=False)
        self.set_status("near-verbatim spans shown (underlined; the differing word marked)" if self.show_near
                        else "near-verbatim spans hidden (F10 shows them)")

    def action_next_in_corpus(self) -> None:
        """What the corpus says comes next at the end of the selected span (else at the end of
        the latest traced reply): the ∞-gram next tokens, the model's own token marked."""
        indexes = self.tapp.indexes
        if not indexes:
            return
        view = self.focused_reply()
        if view is None:
            traced = [v for v in self.views if v.message.traced and v.text]
            view = traced[-1] if traced else None
        if view is None:
            self.notify("no reply yet", severity="information")
            return
        pos = len(view.text)
        if view.selected is not None and view.trace is not None:
            pos = view.trace.highlights[view.selected].end
        self.app.push_screen(NextTokensScreen(indexes.indexes[0], view.text, pos))

    def action_next_at(self, message: int, char_pos: int) -> None:
        """A click on a token in the heat view: the corpus's next tokens where that token stands."""
        indexes = self.tapp.indexes
        if not indexes or not 0 <= message < len(self.views):
            return
        view = self.views[message]
        if 0 <= char_pos <= len(view.text):
            self.app.push_screen(NextTokensScreen(indexes.indexes[0], view.text, char_pos))

    def action_copy_span(self) -> None:
        view = self.focused_reply()
        if view is None or view.selected is None or view.trace is None:
            self.notify("select a span first (Tab)", severity="warning")
            return
        h = view.trace.highlights[view.selected]
        self.app.copy_to_clipboard(view.text[h.start : h.end])
        self.notify("span copied to the clipboard")

    # -- reasoning --------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The reasoning keys are hidden (footer and help) until a reply has reasoning."""
        if action in ("toggle_reasoning", "trace_reasoning"):
            return any(v.message.reasoning for v in self.views)
        return True

    def reasoning_reply(self) -> Message | None:
        """The reply the reasoning keys act on: the one last clicked, else the latest with reasoning."""
        f = self.focused_view
        if f is not None and f in self.views and f.message.reasoning:
            return f.message
        return next((v.message for v in reversed(self.views) if v.message.reasoning), None)

    def action_toggle_reasoning(self) -> None:
        """Show the reasoning under every reply, or fold it back to one line each."""
        self.show_reasoning = not self.show_reasoning
        self.restyle()
        self.set_status("reasoning shown under the replies" if self.show_reasoning
                        else "reasoning folded (F9 shows it)")

    def action_trace_reasoning(self) -> None:
        """Trace a reply's reasoning as a piece of its own (its spans and documents)."""
        msg = self.reasoning_reply()
        if msg is None:
            self.notify("no reply with reasoning yet", severity="information")
            return
        if not msg.done:
            self.notify("the reply is still streaming: its reasoning is traced once it ends", severity="warning")
            return
        if not self.show_reasoning:
            self.action_toggle_reasoning()
        if msg.reasoning_trace is not None:
            self.reasoning_traced(msg, msg.reasoning_trace)
            return
        self.set_status("tracing the reasoning…")
        self.replies.request_trace(msg, live=False, part="reasoning")

    def reasoning_traced(self, msg: Message, result: TraceResult) -> None:
        """A reply's reasoning traced: highlighted in its shown block, its documents in the panel."""
        view = self.view_of(msg)
        if view is not None:
            view.refresh_content()
            self.query_one(DocumentPanel).show(result)
        t = result.timings_ms.get("total", 0.0)
        self.set_status(f"reasoning: {len(result.spans)} spans · {len(result.documents)} documents · {t:.0f} ms "
                        "(documents of the reasoning in the panel; Tab goes back to the answer's)")

    # -- status -----------------------------------------------------------------------------------
    def set_status(self, text: str) -> None:
        """The status line is the app's (it keeps the last one for tools and tests)."""
        self.tapp.set_status(text)

    def show_status(self, text: str) -> None:
        if self.is_mounted:
            self.query_one("#status", Static).update(Content(inert(text)))
