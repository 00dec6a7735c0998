"""The models a server offers: asked for off the UI thread, at start and on F8; Enter uses the
highlighted one, Esc keeps the current one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ...model import Backend, ModelError
from ...sanitize import inert

if TYPE_CHECKING:
    from ..app import TraceApp


class ModelPickerScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Back", id="models.back")]

    def __init__(self, server: str, models: list[str], current: str | None) -> None:
        super().__init__()
        self.server, self.models, self.current = server, models, current

    def compose(self) -> ComposeResult:
        with Vertical(id="models-box"):
            yield Static(Content(inert(f"Models of {self.server} — Enter to use one, Esc to go back")))
            yield OptionList(*[Option(Content.assemble(inert(m), (" (in use)" if m == self.current else "", "dim")),
                                      id=str(i)) for i, m in enumerate(self.models)], id="models-list")

    def on_mount(self) -> None:
        ol = self.query_one(OptionList)
        ol.highlighted = self.models.index(self.current) if self.current in self.models else 0
        ol.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.models[int(event.option.id or 0)])

    def action_cancel(self) -> None:
        self.dismiss(None)


def models_listed(app: TraceApp, backend: Backend, models: list[str], at_start: bool) -> None:
    """What to do with a server's list of models: at start, pick the default (the first) or check
    the configured one; on F8, let the user pick (from the next prompt on)."""
    if app.backend is not backend:
        return
    if not models:
        app.set_status("the model server lists no model")
        return
    if at_start:
        if backend.model is None:
            backend.select_model(models[0])
        elif backend.model not in models:
            app.set_status(f"the server does not list the model {backend.model!r} (F8 picks one of {len(models)})")
            return
        app.show_mode()
        app.set_status(f"model server: {len(models)} model(s), using {backend.model}"
                       + (" · F8 picks another" if len(models) > 1 else ""))
        return

    def chosen(model: str | None) -> None:
        if model is not None and app.backend is backend:
            backend.select_model(model)
            app.show_mode()
            app.set_status(f"model: {model} (from the next prompt on)")

    if app.screen is app.main:
        app.push_screen(ModelPickerScreen(getattr(backend, "url", backend.name), models, backend.model), chosen)


def list_models(app: TraceApp, at_start: bool) -> None:
    """Ask the server for its models in a worker thread (a request, never on the UI thread);
    the answer goes to `models_listed` on the UI thread. A newer request replaces a running one."""

    def ask() -> None:
        backend = app.backend
        assert backend is not None
        try:
            models = backend.list_models()
        except ModelError as exc:
            using = f" — asking for {backend.model!r} anyway; the next prompt tries again" if at_start and backend.model else ""
            app.call_from_thread(app.set_status, f"{exc}{using}")
            return
        app.call_from_thread(models_listed, app, backend, models, at_start)

    app.run_worker(ask, name="list_models", group="models", description=f"list_models(at_start={at_start!r})",
                   exclusive=True, thread=True)
