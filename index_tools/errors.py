"""Errors that end up as one line on the terminal: each says what and where."""

from __future__ import annotations


class IndexToolsError(Exception):
    """Base class: the CLI prints str(error) on one line and exits non-zero."""

    def __str__(self) -> str:
        # one line, whatever the message quotes (a file name may hold a newline): ␊ instead
        return super().__str__().replace("\r\n", "\u240a").replace("\n", "\u240a")


class CorpusError(IndexToolsError):
    """The input corpus cannot be read: names the file and, where known, the line."""

    def __init__(self, path: object, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class IndexFormatError(IndexToolsError):
    """An index directory is missing, incomplete, corrupt or of another format."""


class TokenizerError(IndexToolsError):
    """A tokenizer cannot be loaded or does not fit the index."""


class IndexWriteError(IndexToolsError):
    """Writing an index failed (disk full, file-size limit, permissions): the build can be resumed."""


class RemoteIndexError(IndexToolsError):
    """A served index cannot be reached or answered with an error: names the server and the cause,
    on one line, so the app's status line and the CLI report it like any other index fault."""
