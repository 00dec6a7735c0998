"""The footer: the keys that apply now, whole, in order of use, as many as the width holds.

Textual's Footer lays its keys out in a row that is cut at the right edge (at 120 columns the
chat's last visible key read "f▏", F4-F7 hidden) and recomposes on every bindings signal (each
focus change sends two; `bench_app.py --profile` measured 15-50 ms per rebuild while a reply
streams). This one is a single line of text: the keys in `ORDER` first (the ones used most),
then the rest in binding order, each whole or not at all, redrawn only when what it shows changes.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.content import Content
from textual.widget import Widget

# binding ids by how often they are used; keys not listed follow in their binding order
ORDER = ["help", "span.next", "span.prev", "docs.focus", "escape", "mode.toggle", "demo.opening", "heat.toggle",
         "next.open", "overlap.open", "near.toggle", "model.pick", "reasoning.toggle", "reasoning.trace", "prompt.regenerate",
         "prompt.edit", "prompt.system", "trace.text", "chat.new", "chat.list", "copy.span", "export"]
GAP = 2  # columns between two keys


def key_label(key: str) -> str:
    """A key as the footer shows it, short: F5, ^O, ⇧Tab, Esc."""
    out = []
    for part in key.split("+"):
        if part == "ctrl":
            out.append("^")
        elif part == "shift":
            out.append("⇧")
        elif part in ("esc", "escape"):
            out.append("Esc")
        else:
            out.append(part.upper() if len(part) == 1 or (part[0] == "f" and part[1:].isdigit()) else part.title())
    return "".join(out)


class StableFooter(Widget):
    DEFAULT_CSS = """
    StableFooter { dock: bottom; height: 1; background: $footer-background; color: $footer-foreground; }
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: list[tuple[str, str]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: object) -> None:
        keys = self.shown_keys()
        if keys != self._keys:
            self._keys = keys
            self.refresh()

    def shown_keys(self) -> list[tuple[str, str]]:
        """(key as shown, description) of every enabled key the screen and app show, in order of use."""
        seen: dict[str, tuple[int, int, Binding]] = {}
        for n, (_, b, enabled, _) in enumerate(self.screen.active_bindings.values()):
            if b.show and enabled and b.description and b.description not in seen:
                rank = ORDER.index(b.id) if b.id in ORDER else len(ORDER)
                seen[b.description] = (rank, n, b)
        ordered = sorted(seen.values(), key=lambda t: (t[0], t[1]))
        return [(b.key_display or key_label(b.key.split(",")[0]), b.description) for _, _, b in ordered]

    def fitted(self, width: int) -> list[tuple[str, str]]:
        """The keys that fit in `width` columns, whole, in order (the rest are in F1's help)."""
        out: list[tuple[str, str]] = []
        used = 0
        for key, desc in self._keys:
            w = len(key) + 1 + len(desc) + (GAP if out else 0)
            if used + w > width:
                break
            out.append((key, desc))
            used += w
        return out

    def render(self) -> Content:
        parts: list[Content | str | tuple[str, str]] = []
        for i, (key, desc) in enumerate(self.fitted(self.size.width)):
            if i:
                parts.append(" " * GAP)
            parts += [(key, "bold $footer-key-foreground"), " ", desc]
        return Content.assemble(*parts)
