"""The document panel: documents grouped by level, each with source, snippet (span marked) and count."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...sanitize import inert
from ...tracing.pipeline import Document, TraceResult


class DocumentPanel(OptionList):
    """j/k or arrows to move, Enter to open (posts OptionList.OptionSelected)."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="docs.down"),
        Binding("k", "cursor_up", "Up", show=False, id="docs.up"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.documents: list[Document] = []
        self.trace: TraceResult | None = None
        self.span_filter: list[int] | None = None

    def show(self, trace: TraceResult | None, spans: list[int] | None = None) -> None:
        """Every document of the trace, or only those supporting `spans`."""
        self.trace = trace
        self.span_filter = spans
        self.clear_options()
        self.documents = []
        if trace is None:
            return
        docs = trace.documents if spans is None else [d for d in trace.documents if set(d.spans) & set(spans)]
        options: list[Option | None] = []
        last_level = None
        for d in docs:
            if d.level != last_level:
                options.append(Option(Content.styled(f"── {d.level} relevance ──", "bold"), disabled=True, id=f"hdr-{d.level}"))
                last_level = d.level
            options.append(Option(self._prompt(trace, d, spans), id=d.id))
            self.documents.append(d)
        self.add_options(options)
        if self.documents:
            self.highlighted = 1

    def _prompt(self, trace: TraceResult, d: Document, spans: list[int] | None) -> Content:
        hit = next((h for h in d.hits if spans is None or h.span in spans), d.hits[0])
        span = trace.spans[hit.span]
        s, e = hit.snippet_match
        snip = hit.snippet
        head = Content.styled(f"[{inert(d.index)}] {inert(d.source)}", "bold")
        meta = Content.styled(f"  score {d.score:.2f} · span occurs {span.count:,}×", "dim")
        body = Content.assemble(
            inert(snip[:s]).replace("\n", " "),
            (inert(snip[s:e]).replace("\n", " "), "reverse"),
            inert(snip[e:]).replace("\n", " "),
        )
        return Content.assemble(head, meta, "\n", body)

    def current_document(self) -> Document | None:
        if self.highlighted is None:
            return None
        opt = self.get_option_at_index(self.highlighted)
        return next((d for d in self.documents if d.id == opt.id), None)

    def document(self, option_id: str | None) -> Document | None:
        """The document an option of this list stands for."""
        return next((d for d in self.documents if d.id == option_id), None)
