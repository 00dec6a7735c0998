"""Walking a view's highlights with Tab / Shift+Tab: one definition for every screen that shows
spans (the chat and the Overlap screen)."""

from __future__ import annotations

from ..sanitize import inert
from .widgets.message import MessageView


def step_highlight(view: MessageView | None, step: int) -> int | None:
    """The highlight after (`step` > 0) or before the selected one, wrapping around; the first or
    last when none is selected; None when the view has no highlights."""
    if view is None or view.trace is None or not view.trace.highlights:
        return None
    n = len(view.trace.highlights)
    cur = view.selected
    return (0 if step > 0 else n - 1) if cur is None else (cur + step) % n


def highlight_status(view: MessageView, k: int) -> str:
    """The status line of a selected highlight: its number and its spans' text (made inert)."""
    assert view.trace is not None
    texts = "; ".join(inert(view.trace.spans[i].text)[:60] for i in view.trace.highlights[k].spans)
    return f"span {k + 1}/{len(view.trace.highlights)}: {texts}"
