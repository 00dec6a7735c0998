"""Build, open and query infini-gram v4 suffix-array indexes; usable without the app."""

from .engine import Index, IndexSet
from .errors import CorpusError, IndexFormatError, IndexToolsError, TokenizerError

__all__ = ["Index", "IndexSet", "CorpusError", "IndexFormatError", "IndexToolsError", "TokenizerError"]
