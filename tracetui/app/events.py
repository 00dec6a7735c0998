"""The one Textual message the services' events travel in, from their threads to the UI thread.

The services report plain events (`tracetui.services.events`) through a callback; the app's
callback wraps each in `Posted` (posting is thread-safe) and routes it on the UI thread.
"""

from __future__ import annotations

from textual.message import Message

from ..services.events import Event


class Posted(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event
