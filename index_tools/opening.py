"""Opening: the one place that knows every kind of index. A path opens a local index
(`engine.Index`); an `http(s)://` URL a served one (`remote.RemoteIndex`), or, when the server
answers as infini-gram's API does, `infinigram_api.InfiniGramAPIIndex`. Every kind is held to the
one contract, `contract.IndexLike`, by the type checker (the functions at the end). The layers
below import nothing from here: the import graph has no cycle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from .contract import IndexLike
from .engine import Index
from .errors import RemoteIndexError
from .format import MANIFEST_NAME

if TYPE_CHECKING:  # imported where a URL is opened: a local query never loads the HTTP side
    from .infinigram_api import InfiniGramAPIIndex
    from .remote import RemoteIndex


class IndexSet:
    """Several indexes open at once (e.g. pre-training and fine-tuning data)."""

    def __init__(self, indexes: Sequence[IndexLike]) -> None:
        indexes = list(indexes)
        names = [i.name for i in indexes]
        for k, idx in enumerate(indexes):  # make names unique
            if names.count(idx.name) > 1:
                idx.name = f"{idx.name}#{k}"
        self.indexes = indexes
        #: the paths or URLs the set was opened from (`open`): another process opens the same
        #: indexes from them (a local index's pages are then shared through the page cache)
        self.specs: list[str] | None = None

    @classmethod
    def open(cls, directories: Sequence[str | Path]) -> IndexSet:
        """Each entry a directory or a served index's URL (see `open_index`); they mix freely.
        When one fails to open, those opened before it are closed again (no maps or
        connections are left behind by an error)."""
        opened: list[IndexLike] = []
        try:
            for d in directories:
                opened.append(open_index(d))
        except BaseException:
            cls(opened).close()
            raise
        out = cls(opened)
        out.specs = [str(d) for d in directories]
        return out

    def __iter__(self) -> Iterator[IndexLike]:
        return iter(self.indexes)

    def close(self) -> None:
        """Close every index (maps released, connections closed)."""
        for ix in self.indexes:
            close = getattr(ix, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> IndexSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.indexes)

    def requests(self) -> int | None:
        """Round trips made so far to the served indexes of the set (tracetui's server or an
        infini-gram API), for progress while a trace runs; None when every index is local."""
        served = [ix for ix in self.indexes if not isinstance(ix, Index)]
        if not served:
            return None
        return sum(int(getattr(ix, "requests", 0)) for ix in served)

    def vanished(self) -> list[tuple[str, bool]]:
        """(name, gone) for every local index: gone when its directory no longer holds its
        manifest (deleted or moved while open; the maps still read the old files). Served
        indexes report their own faults, so they are not listed."""
        return [(ix.name, not (ix.directory / MANIFEST_NAME).exists())
                for ix in self.indexes if isinstance(ix, Index)]


def is_index_url(spec: str | Path) -> bool:
    """An `http(s)://` URL (or a comma-joined list of them) names a served index, not a directory."""
    return isinstance(spec, str) and spec.strip().lower().startswith(("http://", "https://"))


def open_index(spec: str | Path) -> IndexLike:
    """An index directory (`Index`) or a served one, same index-level interface: a tracetui
    server's (`index_tools.remote.RemoteIndex`), or, when the server answers as infini-gram's API
    server does instead, `index_tools.infinigram_api.InfiniGramAPIIndex`: everything that takes
    an index directory takes a URL too."""
    if is_index_url(spec):
        from .infinigram_api import InfiniGramAPIIndex, speaks_infinigram
        from .remote import RemoteIndex

        try:
            return RemoteIndex.open(str(spec))
        except RemoteIndexError:
            url = str(spec).strip()
            names = speaks_infinigram(url) if "," not in url else None
            if names is None:
                raise
            name = url.rstrip("/").rsplit("/", 1)[-1] if url.count("/") > 2 else ""
            if unquote(name) not in names:
                raise RemoteIndexError(f"{url}: an infini-gram API server without an index named {unquote(name)!r} "
                                       f"(it serves: {', '.join(names[:20])})") from None
            return InfiniGramAPIIndex.open(url)
    return Index.open(spec)


# -- every kind, held to the contract (a kind whose methods drift fails mypy here) -------------
def _local(index: Index) -> IndexLike:
    return index


def _served(index: RemoteIndex) -> IndexLike:
    return index


def _infinigram_api(index: InfiniGramAPIIndex) -> IndexLike:
    return index


__all__ = ["IndexSet", "is_index_url", "open_index"]
