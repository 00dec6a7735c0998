"""Next in corpus: at a position of a reply, what the corpus says comes next (∞-gram).

The context is the longest suffix of the reply before the position that occurs in the corpus;
the list shows every next token after it with its count and a bar, the token the model actually
produced marked. Left / Right move the position one token, Esc goes back. Queries run in a
worker (a frequent context can take a moment on a large index).
"""

from __future__ import annotations

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from index_tools.contract import IndexLike
from index_tools.ngram import DOC_END, infgram_ntd

from ...sanitize import inert

TOP = 12


class NextTokensScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q", "back", "Back", id="next.back"),
        Binding("left", "move(-1)", "Previous token", id="next.prev"),
        Binding("right", "move(1)", "Next token", id="next.next"),
    ]

    def __init__(self, index: IndexLike, text: str, char_pos: int) -> None:
        super().__init__()
        self.index = index
        self.text = text
        self.ids, offsets = index.tokenizer.encode_with_offsets(text)
        self.starts = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
        # the token at (or after) the character position
        self.pos = int(np.searchsorted(self.starts, char_pos, side="left")) if len(self.ids) else 0
        self.rows: list[tuple[int, str, int, float]] = []  # (token, text, count, prob)
        self.context_len = 0
        self.total = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="next-box"):
            yield Static("", id="next-head")
            yield Static("", id="next-list")

    def on_mount(self) -> None:
        self.refresh_query()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_move(self, step: int) -> None:
        self.pos = max(0, min(len(self.ids), self.pos + step))
        self.refresh_query()

    def refresh_query(self) -> None:
        self.query_one("#next-head", Static).update(Content("…"))
        self.lookup(self.pos)

    @work(thread=True, exclusive=True, group="next-tokens")
    def lookup(self, pos: int) -> None:
        k, dist = infgram_ntd(self.index, self.ids[:pos])
        order = np.argsort(-dist.counts, kind="stable")[:TOP]
        rows = []
        for i in order.tolist():
            tid = int(dist.ids[i])
            label = "<document end>" if tid == DOC_END else self.index.tokenizer.token_text(tid)
            rows.append((tid, label, int(dist.counts[i]), float(dist.counts[i] / max(1, dist.prompt_cnt))))
        self.app.call_from_thread(self.show, pos, k, dist.prompt_cnt, rows)

    def show(self, pos: int, k: int, total: int, rows: list[tuple[int, str, int, float]]) -> None:
        if pos != self.pos or not self.is_attached:
            return  # the user moved on
        self.rows, self.context_len, self.total = rows, k, total
        produced = int(self.ids[pos]) if pos < len(self.ids) else None
        start = int(self.starts[pos - k]) if k and pos - k < len(self.starts) else 0
        end = int(self.starts[pos]) if pos < len(self.starts) else len(self.text)
        head = Content.assemble(
            ("Next in corpus", "bold"), f"  (token {pos} of {len(self.ids)}; ← → move, Esc back)\n",
            "context: ", (inert(self.text[start:end])[-80:], "reverse"),
            f"  ({k} tokens, {total:,} occurrence(s) in {inert(self.index.name)})")
        lines = []
        for tid, label, count, prob in rows:
            bar = "█" * int(round(prob * 20)) + "·" * (20 - int(round(prob * 20)))
            mark = "◀ the model's token" if tid == produced else ""
            lines.append(Content.assemble(f"{bar} {prob:7.2%} {count:>10,}  ", (inert(repr(label)), "bold"),
                                          (f"  {mark}", "bold $accent") if mark else ""))
        if produced is not None and all(tid != produced for tid, *_ in rows):
            lines.append(Content.assemble(("the model's token ", "dim"),
                                          (inert(repr(self.index.tokenizer.token_text(produced))), "bold"),
                                          (" is not among them", "dim")))
        self.query_one("#next-head", Static).update(head)
        self.query_one("#next-list", Static).update(Content("\n").join(lines) if lines else Content("(nothing)"))
