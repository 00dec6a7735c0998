"""Start the app: resolve the model and indexes (defaults if none), load the model, run."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Any

from index_tools.errors import IndexToolsError
from index_tools.opening import IndexSet

from ..conversation import MODES
from ..defaults import config_dir, data_dir, default_index_dir, default_model_path
from ..model import Backend, LlamaBackend, ModelError, ModelSettings
from ..model_server import ServerBackend, is_model_url
from ..openings import load_openings
from ..tracing.pipeline import TraceParams


def load_config(path: str | None) -> dict[str, Any]:
    """The TOML config file (default: <user config dir>/config.toml); missing means defaults."""
    p = Path(path) if path else config_dir() / "config.toml"
    if not p.exists():
        if path:
            raise IndexToolsError(f"{p}: config file not found")
        return {}
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise IndexToolsError(f"{p}: invalid TOML ({exc})") from None


def intro_text(model: str, indexes: list[str], default_model: bool, default_index: bool,
               openings: list[str] | None = None) -> str:
    parts = [f"Model: {model}" + (" (embedded default: Gemma 3 270M base, Q4_K_M)" if default_model else
                                   " (an OpenAI-compatible server: F8 picks its model)" if is_model_url(model) else "")]
    parts.append("Indexes: " + ", ".join(indexes) + (
        " (default: this Python's standard library sources and pydoc topics)" if default_index else ""))
    parts.append("Use your own: tracetui --model FILE.gguf --index DIR  ·  build one: tracetui index build DATA -o DIR")
    parts.append("Type a prompt and press Enter. Tab / Shift+Tab walk the highlighted spans; F1 for help.")
    parts.append("F3 switches chat / continue mode (a base model continues the opening of a text); "
                 "F4 puts a demo opening into the prompt.")
    if openings:
        parts.append("Demo openings (F4 cycles): " + "  ·  ".join(
            repr(o.strip().splitlines()[0])[1:-1] for o in openings))
    return "\n".join(parts)


def run_app(model: str | None, indexes: list[str] | None, config_path: str | None = None,
            model_name: str | None = None, api_key: str | None = None, in_process: bool = False) -> int:
    config = load_config(config_path)
    # the model and the tracer run in child processes unless asked otherwise: the UI's
    # interpreter then only renders and routes (bench_app.py --design compares both)
    processes = not in_process and bool(config.get("processes", True))
    settings = ModelSettings(**{k: v for k, v in config.get("model", {}).items() if k in ModelSettings.__dataclass_fields__})
    model = model or config.get("model_url") or config.get("model_path")
    model_name = model_name or config.get("model_name")
    indexes = indexes or config.get("indexes")
    default_index = not indexes
    # the default index is checked (or built, the first time) by the app behind a progress screen
    index_set = IndexSet.open(indexes) if indexes else None
    names = ["python-stdlib"] if index_set is None else [ix.name for ix in index_set]
    default_model = not model
    backend: Backend | None = None
    error = None
    try:
        if is_model_url(model):
            # nothing to load: the app asks the server for its models once it runs
            backend = ServerBackend(str(model), model=model_name, api_key=api_key)
        else:
            if not model:
                print("tracetui: preparing the embedded model…", file=sys.stderr)
                model = str(default_model_path())
            if processes:
                from ..services.child_model import ChildModel

                backend = ChildModel(model, settings)  # its own process, its own stderr
            else:
                # loaded before the UI owns the terminal: llama.cpp writes to fd 2 while loading
                backend = LlamaBackend(model, settings)
    except ModelError as exc:
        error = str(exc)
    from ..store import ConversationStore
    from .app import TraceApp

    def load_default() -> IndexSet:
        return IndexSet.open([default_index_dir(build_if_missing=True, progress=False)])

    app = TraceApp(index_set, backend, settings=settings, backend_error=error,
                   intro=intro_text(str(model), names, default_model, default_index, load_openings()),
                   index_loader=load_default if default_index else None,
                   export_dir=data_dir() / "exports", store=ConversationStore(data_dir() / "conversations.sqlite3"),
                   theme=config.get("theme"),
                   trace_params=TraceParams(whole_words=bool(config.get("whole_words", True))),
                   mode=config.get("mode") if config.get("mode") in MODES else None,
                   openings=load_openings(), trace_reasoning=bool(config.get("trace_reasoning", False)),
                   trace_process=processes, near_verbatim=bool(config.get("near_verbatim", False)))
    try:
        app.run()
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()  # the model's child process, if any: none outlives the app
    return 0
