"""Build, open and query infini-gram v4 suffix-array indexes; usable without the app."""

from .engine import Index
from .errors import CorpusError, IndexFormatError, IndexToolsError, TokenizerError
from .opening import IndexSet, open_index

__all__ = ["Index", "IndexSet", "open_index", "CorpusError", "IndexFormatError", "IndexToolsError", "TokenizerError"]
