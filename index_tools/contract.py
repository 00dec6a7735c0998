"""The one contract of "an index": what the tracer, overlap, the lens, the CLI, the server and
the app call, whatever kind of index answers it.

Three kinds implement it: a local index directory (`engine.Index`), an index served by
`tracetui serve` (`remote.RemoteIndex`) and any infini-gram API server
(`infinigram_api.InfiniGramAPIIndex`). A type checker holds each to it (`opening.py` passes every
kind where an `IndexLike` is expected), so a new kind is one class that implements these
methods. Method names say which rule they apply, one name one rule, no flag: `count`,
`count_many` and `find*` take every occurrence (substrings); `count_words`, `count_words_many`,
`word_counts`, `find_words*` and `word_occurrences` the one word-boundary rule at both edges
(`index_tools.words`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .engine import Hit, Occurrence, Window
from .format import Manifest
from .tokenizer import Tokenizer


class TokenCounts(Protocol):
    """Counts per token id: a numpy array for a local or served index; for the infini-gram API
    an array-like that asks for the counts its indexing needs (the whole table would take one
    request per vocabulary entry)."""

    def __len__(self) -> int: ...

    def __getitem__(self, ids: Any) -> Any: ...


@runtime_checkable
class IndexLike(Protocol):
    """An index, local or remote: counts, ranges, longest matches, documents (see the module)."""

    name: str
    tokenizer: Tokenizer
    manifest: Manifest

    @property
    def fingerprint(self) -> str:
        """Identity of the contents: results saved against an index are reused only while it is
        the same index."""
        ...

    @property
    def total_tokens(self) -> int:
        """All token positions, separators included (the N of unigram probabilities)."""
        ...

    def encode(self, text: str) -> np.ndarray: ...

    # -- counts: substrings, or whole words at both edges ----------------------------------------
    def find(self, ids: np.ndarray) -> list[tuple[int, int]]:
        """Suffix-array range [lo, hi) per shard of a sequence (its substring occurrences)."""
        ...

    def count(self, ids: np.ndarray | Sequence[int]) -> int:
        """Occurrences as a substring."""
        ...

    def count_many(self, seqs: list[np.ndarray]) -> np.ndarray:
        """`count` of each sequence."""
        ...

    def count_words(self, ids: np.ndarray | Sequence[int]) -> int:
        """Occurrences that are whole words at both edges."""
        ...

    def count_words_many(self, seqs: list[np.ndarray], cap: int | None = None) -> np.ndarray:
        """`count_words` of each sequence; with `cap`, exact up to cap and cap + 1 beyond."""
        ...

    def find_ranges(self, seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Suffix-array ranges (lo, hi), each (shards, sequences)."""
        ...

    def word_counts(self, lo: np.ndarray, hi: np.ndarray, m: np.ndarray, cap: int | None = None) -> np.ndarray: ...

    def find_words(self, ids: np.ndarray) -> list[list[tuple[int, int]]]: ...

    def find_words_many(self, seqs: list[np.ndarray]) -> list[list[tuple[int, int, int]]]: ...

    def word_occurrences(self, ids: np.ndarray, chunk: int = 1 << 18) -> Iterator[tuple[int, np.ndarray]]: ...

    # -- longest matches ---------------------------------------------------------------------------
    def longest_prefixes(self, ids: np.ndarray, positions: np.ndarray | None = None,
                         stops: np.ndarray | None = None) -> np.ndarray: ...

    def longest_prefixes_witnessed(self, ids: np.ndarray, positions: np.ndarray | None = None,
                                   stops: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    # -- unigrams and documents --------------------------------------------------------------------
    def unigram_counts(self) -> TokenCounts:
        """Counts per token id (an array, or an array-like of the vocabulary's size)."""
        ...

    def hit(self, shard: int, rank: int) -> Hit: ...

    def window(self, hit: Hit, length: int, context: int) -> Window: ...

    def windows(self, occurrences: list[tuple[int, int, int]], contexts: tuple[int, ...]) -> list[Occurrence]: ...

    def document_tokens(self, shard: int, doc: int) -> np.ndarray: ...

    def document_text(self, global_id: int) -> str: ...

    def metadata(self, shard: int, doc: int) -> dict[str, Any]: ...

    def global_doc_id(self, shard: int, doc: int) -> int: ...

    def locate_doc(self, global_id: int) -> tuple[int, int]: ...

    def close(self) -> None: ...


__all__ = ["IndexLike"]
