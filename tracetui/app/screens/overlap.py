"""The Overlap screen: benchmark items sorted by score; the selected item is traced and shown with
its spans highlighted exactly like a reply; Tab / Shift+Tab walk them, Enter on a document opens it.

Reached with F7 from the chat (type an items file, Enter runs the report in a worker) or with
`tracetui overlap ... --open` (the report's items of highest score). Item text and corpus text are
shown as plain `Content`, never parsed as markup.
"""

from __future__ import annotations

import shlex
import threading

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Header, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from index_tools.contract import IndexLike

from ...conversation import Message
from ...overlap.items import read_items
from ...overlap.report import ItemReport, OverlapParams, TopItems, run_overlap
from ...sanitize import inert
from ...tracing.pipeline import TraceParams, Tracer, TraceResult
from ..span_walk import highlight_status, step_highlight
from ..widgets.documents import DocumentPanel
from ..widgets.footer import StableFooter
from ..widgets.message import MessageView, index_hues
from .document import open_document

KEEP = 500  # items kept for browsing (those of highest score)
VERDICT_STYLE = {"contaminated": "bold #f85149", "suspicious": "bold #d29922", "clean": "#3fb950"}


class OverlapScreen(Screen[None]):
    BINDINGS = [
        Binding("tab", "walk(1)", "Next span", priority=True, id="overlap.next"),
        Binding("shift+tab", "walk(-1)", "Prev span", priority=True, id="overlap.prev"),
        Binding("ctrl+o", "focus_docs", "Documents", id="overlap.docs"),
        Binding("ctrl+l", "focus_items", "Items", id="overlap.items"),
        Binding("escape", "back", "Back", id="overlap.back"),
    ]

    def __init__(self, indexes: list[IndexLike], reports: list[ItemReport] | None = None,
                 params: OverlapParams | None = None, standalone: bool = False) -> None:
        super().__init__()
        self.indexes = list(indexes)
        self.params = params or OverlapParams()
        self.reports: list[ItemReport] = list(reports or [])
        self.standalone = standalone
        self.view: MessageView | None = None
        self.current: int | None = None  # index into reports
        self._tracer = Tracer(self.indexes, TraceParams())
        # a thread worker runs to its end even when superseded: one trace at a time on the tracer
        # (its caches are not thread-safe), and results of a superseded run are dropped
        self._trace_lock = threading.Lock()
        self._run = 0  # generation of the report shown
        self._hue = index_hues([ix.name for ix in self.indexes])

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="overlap-main"):
            with Vertical(id="overlap-left"):
                yield Input(placeholder="items file [field,field] · Enter runs the report", id="overlap-path")
                yield OptionList(id="overlap-items")
            yield VerticalScroll(Static("select an item", id="overlap-empty"), id="overlap-text")
            yield DocumentPanel(id="overlap-docs")
        yield Static("", id="overlap-status")
        yield StableFooter()

    def on_mount(self) -> None:
        self._fill()
        if self.reports:
            self.query_one("#overlap-items", OptionList).focus()
        else:
            self.query_one("#overlap-path", Input).focus()

    # -- the list -------------------------------------------------------------------------------
    def _fill(self) -> None:
        items = self.query_one("#overlap-items", OptionList)
        items.clear_options()
        for k, r in enumerate(self.reports):
            head = Content.assemble((f"{r.verdict:<12}", VERDICT_STYLE[r.verdict]),
                                    f" {r.score:6.1%}  ", (inert(f"{r.benchmark}:{r.line}"), "dim"))
            body = " ".join(r.text.split())
            items.add_option(Option(Content.assemble(head, "\n", inert(body[:70])), id=f"item-{k}"))
        if self.reports:
            items.highlighted = 0
            self.set_status(f"{len(self.reports)} items by score · ↑↓ choose · Tab walks spans · "
                            "Ctrl+O documents · Enter opens one")

    def set_status(self, text: str) -> None:
        self.query_one("#overlap-status", Static).update(Content(inert(text)))

    @on(OptionList.OptionHighlighted, "#overlap-items")
    def _item_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        k = int(str(event.option.id).split("-")[1])
        if k != self.current:
            self.current = k
            self._trace_item(k, self.reports[k].text)

    @work(thread=True, exclusive=True, group="overlap-trace")
    def _trace_item(self, k: int, text: str) -> None:
        """Trace the item as the chat traces a reply (one tracer, its caches kept)."""
        worker = get_current_worker()
        with self._trace_lock:
            if worker.is_cancelled or k != self.current:
                return  # another item was chosen while this one waited
            try:
                result = self._tracer.trace(text)
            except Exception as exc:  # an index that broke: say so, keep the screen
                self.app.call_from_thread(self.set_status, f"tracing failed: {exc}")
                return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show, k, result)

    def _show(self, k: int, result: TraceResult) -> None:
        if k != self.current:
            return  # another item was chosen meanwhile
        r = self.reports[k]
        box = self.query_one("#overlap-text", VerticalScroll)
        box.remove_children()
        self.view = MessageView(Message("text", r.text, trace=result), index_hue=self._hue, classes="message")
        box.mount(self.view)
        self.query_one(DocumentPanel).show(result)
        where = ", ".join(f"{w.index}:{w.doc}" for w in r.where)
        self.set_status(f"{r.verdict} · n-grams {r.ngrams_found}/{r.ngrams} ({r.ngram_share:.0%}) · coverage "
                        f"{r.coverage:.0%} · longest {r.longest_tokens} tokens in {where or '-'} · "
                        f"{len(result.highlights)} highlighted span(s)")

    # -- spans and documents ----------------------------------------------------------------------
    def walk_spans(self, step: int) -> None:
        k = step_highlight(self.view, step)
        if k is None:
            self.notify("no highlighted spans in this item", severity="information")
            return
        self.pick_highlight(k)

    def pick_highlight(self, nxt: int) -> None:
        view = self.view
        if view is None or view.trace is None or not 0 <= nxt < len(view.trace.highlights):
            return
        view.select(nxt)
        self.query_one(DocumentPanel).show(view.trace, view.trace.highlights[nxt].spans)
        self.set_status(highlight_status(view, nxt))

    def action_pick_highlight(self, _message: int, highlight: int) -> None:
        """A click on a highlight (the message view's link): select it."""
        self.pick_highlight(highlight)

    def action_walk(self, step: int) -> None:
        self.walk_spans(step)

    def action_focus_docs(self) -> None:
        self.query_one(DocumentPanel).focus()

    def action_focus_items(self) -> None:
        self.query_one("#overlap-items", OptionList).focus()

    def action_back(self) -> None:
        if self.view is not None and self.view.selected is not None:
            self.view.select(None)
            self.query_one(DocumentPanel).show(self.view.trace)
        elif self.standalone:
            self.app.exit()
        else:
            self.dismiss(None)

    @on(OptionList.OptionSelected, "#overlap-docs")
    def _open_document(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        panel = self.query_one(DocumentPanel)
        open_document(self, panel.trace, panel.document(event.option.id), self.indexes)

    @on(OptionList.OptionSelected, "#overlap-items")
    def _item_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.walk_spans(1)

    # -- running a report from the screen ---------------------------------------------------------
    @on(Input.Submitted, "#overlap-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            parts = shlex.split(event.value)
        except ValueError as exc:
            self.notify(f"cannot read that line: {exc}", severity="error", markup=False)
            return
        if not parts:
            return
        fields = [f for f in ",".join(parts[1:]).split(",") if f] or None
        self.set_status(f"running the overlap report on {parts[0]}…")
        self._run += 1
        self._report(parts[0], fields, self._run)

    @work(thread=True, exclusive=True, group="overlap-report")
    def _report(self, path: str, fields: list[str] | None, run: int) -> None:
        top = TopItems(KEEP)
        done = 0
        worker = get_current_worker()
        try:
            for r in run_overlap(self.indexes, read_items(path, fields, self.params.normalize_space), self.params):
                if worker.is_cancelled or run != self._run:
                    return  # a newer report, or the screen closed: stop reading
                top.add(r)
                done += 1
                if done % 100 == 0:
                    self.app.call_from_thread(self.set_status, f"{done:,} items…")
        except Exception as exc:  # a bad file is one line, as in the CLI
            if run == self._run and not worker.is_cancelled:
                self.app.call_from_thread(self.notify, f"overlap: {exc}", severity="error", markup=False)
                self.app.call_from_thread(self.set_status, f"overlap: {exc}")
            return
        self.app.call_from_thread(self._loaded, top.sorted(), done, run)

    def _loaded(self, reports: list[ItemReport], done: int, run: int) -> None:
        if run != self._run:
            return  # a newer report was asked for meanwhile
        self.reports, self.current = reports, None
        self._fill()
        self.query_one("#overlap-items", OptionList).focus()
        self.notify(f"overlap report: {done:,} items, the {len(reports)} of highest score listed", markup=False)


class OverlapApp(App[None]):
    """`tracetui overlap ... --open`: the Overlap screen on its own."""

    CSS_PATH = "../tracetui.tcss"
    TITLE = "tracetui overlap"

    def __init__(self, indexes: list[IndexLike], reports: list[ItemReport], params: OverlapParams) -> None:
        super().__init__()
        self._screen_args: tuple[list[IndexLike], list[ItemReport], OverlapParams] = (indexes, reports, params)

    def on_mount(self) -> None:
        self.push_screen(OverlapScreen(*self._screen_args, standalone=True))


def run_overlap_app(indexes: list[IndexLike], reports: list[ItemReport], params: OverlapParams) -> None:
    OverlapApp(indexes, reports, params).run()
