"""Build, open and query infini-gram v4 suffix-array indexes; usable without the app.

The names below are imported on first use (PEP 562), so `import index_tools.errors` or
`index_tools.opening` costs only what it uses: a one-shot command starts without the engine's
dependencies it does not need (`tracetui.lazy_imports`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Index
    from .errors import CorpusError, IndexFormatError, IndexToolsError, TokenizerError
    from .opening import IndexSet, open_index

_HOME = {"Index": "engine", "IndexSet": "opening", "open_index": "opening", "CorpusError": "errors",
         "IndexFormatError": "errors", "IndexToolsError": "errors", "TokenizerError": "errors"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Index", "IndexSet", "open_index", "CorpusError", "IndexFormatError", "IndexToolsError", "TokenizerError"]
