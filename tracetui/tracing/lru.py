"""A mapping that keeps at most `cap` entries, dropping the least recently used first.

The tracer's and the lens's caches are content-keyed (the same key always has the same value),
so dropping an entry costs a search again later, never a different answer; a long session no
longer grows them without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(MutableMapping[K, V]):
    """Reading (`[]`, `get`) or writing a key makes it the most recent; writing past `cap`
    entries drops the least recent. `in` does not count as a use."""

    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("an LRU holds at least one entry")
        self.cap = cap
        self._data: OrderedDict[K, V] = OrderedDict()

    def __getitem__(self, key: K) -> V:
        value = self._data[key]
        self._data.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.cap:
            self._data.popitem(last=False)

    def __delitem__(self, key: K) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"LRU(cap={self.cap}, {len(self._data)} entries)"
