"""Benchmark items for overlap reports: read lazily from JSONL (also .gz/.zst), Parquet, CSV or
plain text (one item per line), one or more fields joined. Every error names the file and the line
(or row), on one line, like the corpus readers'.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from index_tools.errors import CorpusError
from index_tools.readers import jsonl_records, open_lines, parquet_records

FIELD_JOIN = "\n"  # fields of one item (question, answer) are joined by a newline
_SPACE = re.compile(r"\s+")


@dataclass
class Item:
    """One test item: which benchmark (file), where in it (line or row), its id and its text."""

    benchmark: str
    line: int
    id: str
    text: str


def normalize_space(text: str) -> str:
    """Runs of whitespace become one space, ends stripped (`--normalize-space`). An index built
    from unnormalised text still matches only what it holds verbatim: a double space or a line
    break in the corpus is not matched by the single space of a normalised item."""
    return _SPACE.sub(" ", text).strip()


def _pick(path: Path, record: dict[str, Any], fields: list[str], where: int) -> str:
    parts = []
    for f in fields:
        if f not in record:
            raise CorpusError(path, f"no field {f!r} (fields: {', '.join(sorted(map(str, record))) or 'none'})", where)
        value = record[f]
        if isinstance(value, list | tuple):  # e.g. multiple-choice options
            value = FIELD_JOIN.join(str(v) for v in value)
        elif not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
        parts.append(value)
    return FIELD_JOIN.join(parts)


def _item_id(record: dict[str, Any], where: int) -> str:
    for key in ("id", "idx", "question_id", "task_id", "_id", "uid"):
        if key in record and isinstance(record[key], str | int):
            return str(record[key])
    return str(where)


def _read_jsonl(path: Path, fields: list[str]) -> Iterator[tuple[int, str, str]]:
    for lineno, record in jsonl_records(path):
        yield lineno, _item_id(record, lineno), _pick(path, record, fields, lineno)


def _read_csv(path: Path, fields: list[str]) -> Iterator[tuple[int, str, str]]:
    with open_lines(path) as raw:
        # typeshed's TextIOWrapper wants a buffer declaring `name`, which BufferedIOBase (what
        # open_lines is typed to return) does not; TextIOWrapper reads it only when asked
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")  # type: ignore[type-var]
        reader = csv.DictReader(text, strict=True)
        try:
            for record in reader:
                row = reader.line_num
                if None in record:
                    raise CorpusError(path, "more values than header columns", row)
                yield row, _item_id(record, row), _pick(path, record, fields, row)
        except UnicodeDecodeError as exc:
            raise CorpusError(path, f"invalid UTF-8 at byte {exc.start}", reader.line_num + 1) from None
        except csv.Error as exc:
            raise CorpusError(path, f"invalid CSV ({exc})", reader.line_num) from None


def _read_parquet(path: Path, fields: list[str]) -> Iterator[tuple[int, str, str]]:
    for row, record in parquet_records(path, fields):
        yield row, _item_id(record, row), _pick(path, record, fields, row)


def _read_lines(path: Path) -> Iterator[tuple[int, str, str]]:
    with open_lines(path) as raw:
        for lineno, line in enumerate(io.BufferedReader(raw), start=1):
            try:
                text = line.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise CorpusError(path, f"invalid UTF-8 at byte {exc.start}", lineno) from None
            if text.strip():
                yield lineno, str(lineno), text


def benchmark_names(paths: list[str]) -> list[str]:
    """What each file is called in reports: its file name, or the path as given when two files
    share a name (mmlu/test.jsonl and gsm8k/test.jsonl are two benchmarks)."""
    names = [Path(p).name for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths, strict=True)]


def read_items(path: str | Path, fields: list[str] | None = None, normalize: bool = False,
               benchmark: str | None = None) -> Iterator[Item]:
    """Items of one benchmark file, streamed. `fields` (default ["text"]) are joined by a newline;
    plain text files have one item per non-empty line and no fields."""
    p = Path(path)
    if not p.is_file():
        raise CorpusError(p, "no such file" if not p.exists() else "not a file")
    name = p.name.lower()
    for suffix in (".gz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    fields = fields or ["text"]
    if name.endswith((".jsonl", ".ndjson", ".json")):
        rows = _read_jsonl(p, fields)
    elif name.endswith(".csv"):
        rows = _read_csv(p, fields)
    elif name.endswith(".parquet"):
        rows = _read_parquet(p, fields)
    else:
        rows = _read_lines(p)
    bench = benchmark or p.name
    try:
        for line, item_id, text in rows:
            if "\x00" in text:
                raise CorpusError(p, "item holds a NUL character", line)
            text = normalize_space(text) if normalize else text
            if text.strip():
                yield Item(bench, line, item_id, text)
    except (OSError, EOFError) as exc:
        raise CorpusError(p, f"cannot read ({exc})") from None
    except CorpusError:
        raise
    except Exception as exc:  # zstandard's and gzip's own errors on corrupt data
        raise CorpusError(p, f"cannot decompress ({exc})") from None
