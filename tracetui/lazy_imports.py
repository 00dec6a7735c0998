"""Deferred imports for one-shot commands: the interpreter's start is most of their wall time.

numpy's import costs about 140 ms on a small machine, twice a whole minimal infini-gram count
(whose engine is C++). A substring count needs no numpy: the manifest is JSON, the shards are
memory maps searched by bytes comparison (`index_tools.mapping`, `Shard.find_one`) and the
tokenizer gives a list of ids (`Tokenizer.encode_ids`). The modules on that path still say
`import numpy as np` at the top, as everywhere, and keep every numpy use inside functions, so
`defer_numpy` lets them be imported before numpy is: numpy is put in `sys.modules` as a module
that executes on its first attribute access (the standard library's lazy-import recipe,
`importlib.util.LazyLoader`, adapted: see `_DeferredModule`). Anything that does need numpy loads it then, transparently: deferring
changes when numpy is imported, never what a command computes.
"""

from __future__ import annotations

import importlib.util
import sys
import types

#: what the import system reads of a module already in `sys.modules` on every `import numpy`
#: (CPython checks `__spec__._initializing`) and what a repr shows: answered without loading
_PASSIVE = frozenset({"__spec__", "__name__", "__class__", "__repr__", "__dict__"})


class _DeferredModule(types.ModuleType):
    """A module not executed yet: the first attribute read other than `_PASSIVE` executes it in
    place and turns it into an ordinary module. (`importlib.util.LazyLoader` would execute it at
    the next `import numpy` statement already, on Python 3.11, by that `__spec__` read.)"""

    def __getattribute__(self, name: str) -> object:
        if name in _PASSIVE:
            return super().__getattribute__(name)
        _execute(self)
        return getattr(self, name)


def _execute(module: types.ModuleType) -> None:
    spec = object.__getattribute__(module, "__spec__")
    object.__setattr__(module, "__class__", types.ModuleType)  # ordinary from here on, even if exec fails
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(spec.name, None)  # as a failed import leaves it: the next import retries
        raise


def defer_numpy() -> None:
    """Make numpy's import deferred for the rest of this process (nothing if it is imported
    already or cannot be found: then the ordinary import happens, with its error, where it is
    used)."""
    if "numpy" in sys.modules:
        return
    spec = importlib.util.find_spec("numpy")
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _DeferredModule
    sys.modules["numpy"] = module


def numpy_loaded() -> bool:
    """Has numpy actually been executed (not only deferred)?"""
    mod = sys.modules.get("numpy")
    return mod is not None and type(mod) is not _DeferredModule


__all__ = ["defer_numpy", "numpy_loaded"]
