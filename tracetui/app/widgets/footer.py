"""The footer, rebuilt only when the keys it shows change.

Textual's Footer recomposes itself on every bindings signal (each focus change sends two), even
when the shown keys are the same; `bench_app.py --profile` measured 15-50 ms per rebuild on the
event loop while a reply streams. The app keeps its shown bindings the same whatever has focus,
so most signals change nothing.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class StableFooter(Footer):
    _shown: frozenset[tuple[object, ...]] | None = None

    def bindings_changed(self, screen: Screen) -> None:
        shown = frozenset((b.key, b.description, b.action, enabled, tooltip)
                          for (_, b, enabled, tooltip) in screen.active_bindings.values() if b.show)
        if self._bindings_ready and shown == self._shown:
            return
        self._shown = shown
        super().bindings_changed(screen)
