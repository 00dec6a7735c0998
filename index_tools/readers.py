"""Corpus readers: turn the files a user already has into a stream of documents.

Text records yield `TextDoc`; pre-tokenized arrays yield `TokenDoc`. Every error names the file
and, for line-oriented formats, the line.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorpusError

TEXT_SUFFIXES = (".txt", ".md", ".py", ".rst")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)
TOKEN_SUFFIXES = (".npy", ".u16", ".u32", ".bin")
ALL_SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES + TOKEN_SUFFIXES


@dataclass
class TextDoc:
    text: str
    meta: dict[str, Any]


@dataclass
class TokenDoc:
    ids: np.ndarray
    meta: dict[str, Any]


def _matches(path: Path, suffixes: tuple[str, ...]) -> bool:
    name = path.name.lower()
    return any(name.endswith(s) for s in suffixes)


def list_sources(sources: list[str | Path]) -> list[Path]:
    """Expand files and folders (recursively) into a sorted list of readable corpus files."""
    files: list[Path] = []
    for src in sources:
        path = Path(src)
        if not path.exists():
            raise CorpusError(path, "no such file or directory")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _matches(p, ALL_SUFFIXES))
            files.extend(found)
        elif _matches(path, ALL_SUFFIXES):
            files.append(path)
        else:
            raise CorpusError(path, f"unsupported file type (expected one of {', '.join(ALL_SUFFIXES)})")
    if not files:
        raise CorpusError(", ".join(str(s) for s in sources), "no corpus files found")
    return files


def is_token_file(path: Path) -> bool:
    return _matches(path, TOKEN_SUFFIXES)


def open_lines(path: Path) -> io.BufferedIOBase:
    """A binary stream of a file, decompressed on the fly when it ends in .gz or .zst."""
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".zst"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"))  # type: ignore[return-value]
    return open(path, "rb")


def jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record) of a JSON Lines file (.gz / .zst too), blank lines skipped; every fault --
    bad UTF-8, bad JSON, a non-object, a lone surrogate, a corrupt archive -- is a `CorpusError`
    naming the file and the line."""
    try:
        with open_lines(path) as raw:
            for lineno, line in enumerate(io.BufferedReader(raw), start=1):
                if not line.strip():
                    continue
                try:
                    decoded = line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise CorpusError(path, f"invalid UTF-8 at byte {exc.start}", lineno) from None
                try:
                    record = json.loads(decoded)
                except json.JSONDecodeError as exc:
                    raise CorpusError(path, f"invalid JSON ({exc.msg})", lineno) from None
                except RecursionError:
                    raise CorpusError(path, "invalid JSON (nested too deeply)", lineno) from None
                if not isinstance(record, dict):
                    raise CorpusError(path, "record is not a JSON object", lineno)
                if "\\u" in decoded:  # only \uXXXX escapes can smuggle in a lone surrogate
                    _check_surrogates(path, record, lineno)
                yield lineno, record
    except (OSError, EOFError) as exc:
        raise CorpusError(path, f"cannot read ({exc})") from None
    except Exception as exc:
        if isinstance(exc, CorpusError):
            raise
        # zstandard raises its own ZstdError on corrupt frames
        raise CorpusError(path, f"cannot decompress ({exc})") from None


def read_jsonl(path: Path, text_field: str) -> Iterator[TextDoc]:
    for lineno, record in jsonl_records(path):
        if text_field not in record:
            raise CorpusError(path, f"record has no field {text_field!r}", lineno)
        text = record.pop(text_field)
        if not isinstance(text, str):
            raise CorpusError(path, f"field {text_field!r} is not a string", lineno)
        yield TextDoc(text, {"path": str(path), "linenum": lineno, "metadata": record})


def _check_surrogates(path: Path, record: dict[str, Any], lineno: int) -> None:
    """JSON escapes such as "\\ud800" decode to lone surrogates, which no UTF-8 tokenizer can
    encode: reject them as invalid UTF-8 is rejected, naming the line."""
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(exc.object[exc.start])
        raise CorpusError(path, f"invalid Unicode: lone surrogate \\u{code:04x} (a \\u escape without its pair)",
                          lineno) from None


def read_text_file(path: Path) -> Iterator[TextDoc]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(path, f"cannot read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CorpusError(path, f"invalid UTF-8 at byte {exc.start}", line) from None
    yield TextDoc(text, {"path": str(path), "linenum": 0, "metadata": {}})


def parquet_records(path: Path, columns: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row, record) of a Parquet file, rows numbered from 1, after checking that `columns` exist;
    every failure is a `CorpusError` naming the file."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError(path, "reading Parquet needs pyarrow: pip install 'tracetui[parquet]'") from None
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise CorpusError(path, f"not a readable Parquet file ({exc})") from None
    missing = [c for c in columns if c not in pf.schema_arrow.names]
    if missing:
        raise CorpusError(path, f"no column {missing[0]!r} (columns: {', '.join(pf.schema_arrow.names)})")
    row = 0
    for batch in pf.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def read_parquet(path: Path, text_field: str) -> Iterator[TextDoc]:
    for row, record in parquet_records(path, [text_field]):
        text = record.pop(text_field)
        if not isinstance(text, str):
            raise CorpusError(path, f"column {text_field!r} is not a string", row)
        meta = json.loads(json.dumps(record, default=str))
        yield TextDoc(text, {"path": str(path), "linenum": row, "metadata": meta})


def read_token_file(path: Path, eos_id: int, raw_dtype: str = "u16") -> Iterator[TokenDoc]:
    """Pre-tokenized arrays (OLMo's published form): documents separated by `eos_id`."""
    try:
        if path.name.lower().endswith(".npy"):
            arr = np.load(path, mmap_mode="r")
            if arr.ndim != 1 or arr.dtype.kind not in "ui":
                raise CorpusError(path, f"expected a 1-D integer array, found {arr.dtype} {arr.shape}")
        else:
            dtype = "<u4" if path.name.lower().endswith(".u32") or raw_dtype == "u32" else "<u2"
            size = path.stat().st_size
            if size % np.dtype(dtype).itemsize:
                raise CorpusError(path, f"size {size} is not a multiple of {np.dtype(dtype).itemsize}")
            arr = np.memmap(path, dtype=dtype, mode="r") if size else np.zeros(0, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise CorpusError(path, f"cannot read token array ({exc})") from None
    # every eos-terminated segment is a document (even an empty one); a trailing segment too.
    ends = np.flatnonzero(np.asarray(arr) == eos_id).tolist()
    if not ends or ends[-1] != len(arr) - 1:
        ends.append(len(arr))
    start = 0
    for n, end in enumerate(ends):
        if end == len(arr) and start >= len(arr):
            break
        yield TokenDoc(np.asarray(arr[start:end], dtype=np.int64), {"path": str(path), "linenum": n, "metadata": {}})
        start = int(end) + 1


def read_documents(
    files: list[Path], text_field: str = "text", eos_id: int | None = None, raw_dtype: str = "u16"
) -> Iterator[TextDoc | TokenDoc]:
    for path in files:
        if is_token_file(path):
            if eos_id is None:
                raise CorpusError(path, "pre-tokenized input needs --eos-id (the end-of-text token id)")
            yield from read_token_file(path, eos_id, raw_dtype)
        elif _matches(path, JSONL_SUFFIXES):
            yield from read_jsonl(path, text_field)
        elif _matches(path, PARQUET_SUFFIXES):
            yield from read_parquet(path, text_field)
        else:
            yield from read_text_file(path)
