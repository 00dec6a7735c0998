"""The document screen: the long window with every traced span marked; n / N between them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from index_tools.contract import IndexLike
from index_tools.normalize import normalize, normalize_with_map, original_range

from ...sanitize import inert
from ...tracing.pipeline import Document, TraceResult

WINDOW_SEP = "\n[…]\n"  # between two windows of a document shown without its whole text


class DocumentScreen(Screen[int | None]):
    """Dismisses with the span to locate in the reply (or None)."""

    BINDINGS = [
        Binding("escape,q", "back", "Back", id="doc.back"),
        Binding("n", "next_mark", "Next span", id="doc.next"),
        Binding("N", "prev_mark", "Previous span", id="doc.prev"),
        Binding("l", "locate", "Locate in reply", id="doc.locate"),
        Binding("w", "whole", "Whole document", id="doc.whole"),
        Binding("y", "copy", "Copy", id="doc.copy"),
    ]

    def __init__(self, trace: TraceResult, document: Document, whole_text: str | None = None) -> None:
        super().__init__()
        self.trace = trace
        self.document = document
        self.whole_text = whole_text
        self.show_whole = False
        self.marks: list[tuple[int, int, int]] = []  # (start, end, span)
        self.current = 0

    @classmethod
    def read(cls, trace: TraceResult, doc: Document, indexes: Iterable[IndexLike]) -> DocumentScreen:
        """The screen for a document, with its whole text when its index is open and readable
        (else the windows only). It reads from disk or a server: call it off the UI thread."""
        whole = None
        index = next((ix for ix in indexes if ix.name == doc.index), None)
        if index is not None:
            try:
                whole = index.document_text(doc.doc)
            except Exception:  # a damaged or unreachable index: the windows still show
                whole = None
        return cls(trace, doc, whole)

    def compose(self) -> ComposeResult:
        d = self.document
        yield Static(Content.styled(f"[{inert(d.index)}] {inert(d.source)} · {d.level} · score {d.score:.2f}", "bold"), id="doc-title")
        meta = json.dumps(d.metadata, ensure_ascii=True)[:400]
        yield Static(Content(inert(meta)), id="doc-meta")
        with VerticalScroll(id="doc-scroll"):
            yield Static(id="doc-body")
        yield Footer()

    def on_mount(self) -> None:
        self.render_body()

    def _text_and_marks(self) -> tuple[str, list[tuple[int, int, int]]]:
        """The text shown and its marks (start, end, span), from the hits' own match offsets:
        each hit knows where its span sits in its window, and a window is found once in the
        whole document. A span text searched for would also mark its other occurrences, which
        are not what the trace found; the search is only the fallback for a hit whose window is
        not in the text as shown (a normalized index shows the original text)."""
        hits = self.document.hits
        marks: list[tuple[int, int, int]] = []
        unplaced = []
        if self.show_whole and self.whole_text is not None:
            text = self.whole_text
            for h in hits:
                at = text.find(h.window) if h.window else -1
                if at >= 0 and h.window_match[1] > h.window_match[0]:
                    marks.append((at + h.window_match[0], at + h.window_match[1], h.span))
                else:
                    unplaced.append(h.span)
        else:
            text = WINDOW_SEP.join(h.window for h in hits)
            at = 0
            for h in hits:
                a, b = h.window_match
                if b > a and h.window[a:b].strip():
                    marks.append((at + a, at + b, h.span))
                else:
                    unplaced.append(h.span)
                at += len(h.window) + len(WINDOW_SEP)
        if unplaced:
            marks += self._searched(text, sorted(set(unplaced)))
        return text, sorted(set(marks))

    def _searched(self, text: str, spans: list[int]) -> list[tuple[int, int, int]]:
        """Marks found by searching the spans' text (verbatim, else as normalized words)."""
        marks = []
        folded: tuple[str, Any] | None = None
        for i in spans:
            s = self.trace.spans[i]
            if not s.text.strip():
                continue
            start = text.find(s.text)
            found = start >= 0
            while start >= 0:
                marks.append((start, start + len(s.text), i))
                start = text.find(s.text, start + 1)
            if not found:  # a normalized index: the span as its words, located in this text
                if folded is None:
                    folded = normalize_with_map(text, "words")
                norm, where = folded
                piece = normalize(s.text, "words")
                start = norm.find(piece) if piece else -1
                while start >= 0:
                    a, b = original_range(text, where, start, start + len(piece))
                    marks.append((a, b, i))
                    start = norm.find(piece, start + 1)
        return marks

    def render_body(self) -> None:
        text, self.marks = self._text_and_marks()
        content = Content(inert(text))
        for k, (a, b, _) in enumerate(self.marks):
            content = content.stylize("bold #ffffff on #2f81f7" if k == self.current else "on #1f3a5f", a, b)
        self.query_one("#doc-body", Static).update(content)

    def _jump(self, step: int) -> None:
        if not self.marks:
            self.notify("no traced span in this text", severity="warning")
            return
        self.current = (self.current + step) % len(self.marks)
        self.render_body()
        line = self._text_and_marks()[0][: self.marks[self.current][0]].count("\n")
        self.query_one("#doc-scroll", VerticalScroll).scroll_to(y=max(0, line - 3), animate=False)

    def action_next_mark(self) -> None:
        self._jump(1)

    def action_prev_mark(self) -> None:
        self._jump(-1)

    def action_whole(self) -> None:
        if self.whole_text is None:
            self.notify("whole document not available", severity="warning")
            return
        self.show_whole = not self.show_whole
        self.current = 0
        self.render_body()

    def action_locate(self) -> None:
        span = self.marks[self.current][2] if self.marks else (self.document.spans[0] if self.document.spans else None)
        self.dismiss(span)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self._text_and_marks()[0])
        self.notify("document text copied")

    def action_back(self) -> None:
        self.dismiss(None)


def open_document(host: Screen[Any], trace: TraceResult | None, doc: Document | None, indexes: Iterable[IndexLike],
                  dismissed: Callable[[int | None], None] | None = None) -> None:
    """Open a document of a trace without blocking the UI: its whole text is read in a thread
    worker (a served index can take up to its request timeout), the screen is pushed when it is
    read, unless another document was asked for meanwhile (the worker group is exclusive)."""
    if trace is None or doc is None:
        return
    app = host.app
    chosen = list(indexes)

    def read() -> None:
        screen = DocumentScreen.read(trace, doc, chosen)
        if not get_current_worker().is_cancelled:
            app.call_from_thread(app.push_screen, screen, dismissed)

    host.run_worker(read, thread=True, exclusive=True, group="document", name="open document")
