"""The on-disk layout: infini-gram v4 files plus our manifest.

Everything that names a file or decides a byte width lives here, so the builder, the
engine and `verify` cannot disagree about the format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import IndexFormatError

FORMAT_VERSION = 4
MANIFEST_NAME = "tracetui-index.json"
TOKENIZER_NAME = "tokenizer.json"
TMP_SUFFIX = ".partial"

#: token width in bytes -> numpy dtype of the little-endian file and of the sort key.
TOKEN_DTYPES = {1: ("u1", "u1"), 2: ("<u2", ">u2"), 4: ("<u4", ">u4")}
TOKEN_WIDTH_NAMES = {1: "u8", 2: "u16", 4: "u32"}
WIDTH_BY_NAME = {v: k for k, v in TOKEN_WIDTH_NAMES.items()}


def separator_id(width: int) -> int:
    """The all-ones token that starts every document."""
    return (1 << (8 * width)) - 1


def shard_file(directory: Path, kind: str, shard: int) -> Path:
    return directory / f"{kind}.{shard}"


def pointer_width(tokenized_bytes: int) -> int:
    """Bytes per suffix-array entry exactly as infini-gram's builder picks them: ceil(log2(size)/8)."""
    if tokenized_bytes <= 1:
        return 1
    return max(1, (int(tokenized_bytes - 1).bit_length() + 7) // 8)


def width_for_vocab(vocab_size: int) -> int:
    """Smallest token width whose all-ones separator stays out of the vocabulary."""
    if vocab_size <= 255:
        return 1
    if vocab_size <= 65535:
        return 2
    if vocab_size <= 0xFFFFFFFF:
        return 4
    raise IndexFormatError(f"vocabulary of {vocab_size} tokens does not fit in 32-bit tokens")


@dataclass
class ShardInfo:
    documents: int
    tokens: int  # tokens including one separator per document
    tokenized_bytes: int
    table_bytes: int
    pointer_width: int


@dataclass
class Manifest:
    """What an index is: written last, so its presence means every shard is complete."""

    token_width: int
    tokenizer: str  # "bytes", or the file name of the HF tokenizer inside the index
    shards: list[ShardInfo]
    vocab_size: int
    eos_id: int | None = None
    format_version: int = FORMAT_VERSION
    build: dict[str, Any] = field(default_factory=dict)
    source: str = "tracetui"

    @property
    def documents(self) -> int:
        return sum(s.documents for s in self.shards)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.shards)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        try:
            shards = [ShardInfo(**s) for s in data["shards"]]
            return cls(
                token_width=int(data["token_width"]),
                tokenizer=str(data["tokenizer"]),
                shards=shards,
                vocab_size=int(data["vocab_size"]),
                eos_id=data.get("eos_id"),
                format_version=int(data.get("format_version", FORMAT_VERSION)),
                build=dict(data.get("build", {})),
                source=str(data.get("source", "tracetui")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"manifest is malformed: {exc}") from None


def read_manifest(directory: Path) -> Manifest | None:
    path = directory / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(f"{path}: manifest is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise IndexFormatError(f"{path}: manifest is not a JSON object")
    manifest = Manifest.from_dict(data)
    if manifest.format_version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path}: format version {manifest.format_version}, expected {FORMAT_VERSION}"
        )
    if manifest.token_width not in TOKEN_DTYPES:
        raise IndexFormatError(f"{path}: token width {manifest.token_width} is not 1, 2 or 4")
    return manifest


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path that is fsynced and renamed onto `final` only on success."""
    tmp = final.with_name(final.name + TMP_SUFFIX)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_manifest(directory: Path, manifest: Manifest) -> None:
    with atomic_path(directory / MANIFEST_NAME) as tmp:
        tmp.write_text(manifest.to_json(), encoding="utf-8")
    fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
