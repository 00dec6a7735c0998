"""The document panel: documents grouped by level, each with source, snippet (span marked) and count."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ...sanitize import inert
from ...tracing.near import NearHit
from ...tracing.pipeline import Document, TraceResult

NEAR_COLOR = "#d29922"  # near-verbatim matches: amber, apart from the exact spans' index hues


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
        self.show_near = False  # near-verbatim documents listed after the exact ones

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
        if self.show_near and trace.near:
            near = [(k, n) for k, n in enumerate(trace.near)
                    if spans is None or n.left in spans or n.right in spans]
            if near:
                options.append(Option(Content.styled("── near-verbatim (one word differs) ──", "bold"), disabled=True,
                                      id="hdr-near"))
            for k, n in near:
                for j, hit in enumerate(n.hits[:3]):
                    options.append(Option(self._near_prompt(hit), id=f"near-{k}-{j}"))
        self.add_options(options)
        if self.documents:
            self.highlighted = 1

    @staticmethod
    def _near_prompt(hit: NearHit) -> Content:
        """A near-verbatim document: its two matching sides shaded, its own differing word marked."""
        w = hit.window
        a, b = hit.left[0], hit.right[1]
        head = Content.styled(f"[{inert(hit.index)}] doc {hit.doc}", "bold")
        meta = Content.styled(f"  {hit.kind}: {inert(hit.diff_text).strip() or '(nothing)'}", "dim")
        lo, hi = max(0, a - 40), min(len(w), b + 40)
        cuts = sorted({lo, hi, *[x for x in (*hit.left, *hit.diff, *hit.right) if lo <= x <= hi]})
        parts: list[str | tuple[str, str]] = []
        for x, y in zip(cuts, cuts[1:], strict=False):
            piece = inert(w[x:y]).replace("\n", " ")
            if hit.diff[0] <= x and y <= hit.diff[1] and hit.diff[1] > hit.diff[0]:
                parts.append((piece, f"reverse {NEAR_COLOR}"))
            elif (hit.left[0] <= x and y <= hit.left[1]) or (hit.right[0] <= x and y <= hit.right[1]):
                parts.append((piece, f"underline {NEAR_COLOR}"))
            else:
                parts.append(piece)
        return Content.assemble(head, meta, "\n", *parts)

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
