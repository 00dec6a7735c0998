"""Saved conversations: Enter reopens, d deletes, Esc goes back."""

from __future__ import annotations

import time

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ...sanitize import inert
from ...store import ConversationStore


class ConversationsScreen(ModalScreen[int | None]):
    BINDINGS = [
        Binding("escape", "cancel", "Back", id="convs.back"),
        Binding("d,delete", "delete", "Delete", id="convs.delete"),
    ]

    def __init__(self, store: ConversationStore) -> None:
        super().__init__()
        self.store = store

    def compose(self) -> ComposeResult:
        with Vertical(id="convs-box"):
            yield Static("Conversations — Enter to open, d to delete, Esc to go back")
            yield OptionList(id="convs-list")

    def on_mount(self) -> None:
        self.reload()
        self.query_one(OptionList).focus()

    def reload(self) -> None:
        ol = self.query_one(OptionList)
        ol.clear_options()
        for c in self.store.list():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated))
            ol.add_option(Option(Content.assemble((when, "dim"), f"  {inert(c.title)}  ", (f"{c.messages} messages", "dim")),
                                 id=str(c.id)))
        if ol.option_count:
            ol.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_delete(self) -> None:
        ol = self.query_one(OptionList)
        if ol.highlighted is None:
            return
        cid = int(ol.get_option_at_index(ol.highlighted).id or 0)
        self.store.delete(cid)
        self.notify("conversation deleted")
        self.reload()

    def action_cancel(self) -> None:
        self.dismiss(None)
