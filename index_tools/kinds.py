"""Every kind of index, held to the one contract (`contract.IndexLike`) by the type checker: a
kind whose methods drift from the contract fails `mypy` here, not at a caller's run time."""

from __future__ import annotations

from .contract import IndexLike
from .engine import Index
from .infinigram_api import InfiniGramAPIIndex
from .remote import RemoteIndex


def local(index: Index) -> IndexLike:
    return index


def served(index: RemoteIndex) -> IndexLike:
    return index


def infinigram_api(index: InfiniGramAPIIndex) -> IndexLike:
    return index


KINDS = (Index, RemoteIndex, InfiniGramAPIIndex)

__all__ = ["KINDS"]
