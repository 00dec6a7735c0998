"""The on-disk layout: infini-gram v4 files plus our manifest.

Everything that names a file or decides a byte width lives here, so the builder, the
engine and `verify` cannot disagree about the format.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from .errors import IndexFormatError

FORMAT_VERSION = 4
MANIFEST_NAME = "tracetui-index.json"
TOKENIZER_NAME = "tokenizer.json"
TMP_SUFFIX = ".partial"
SHARD_KINDS = ("tokenized", "table", "offset", "metadata", "metaoff", "unigram")

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


def read_unigrams(path: Path) -> np.ndarray:
    """unigram.N as an (n, 2) array of (token id, count): the one parser of that file.

    Checked and parsed with numpy over the whole file at once (a Python loop over its lines cost
    a fresh process about 0.1 s per 50,000-token vocabulary): only digits and blanks, two fields
    on every line that is not blank, none longer than 18 digits (so every value fits int64).
    Raises IndexFormatError naming the file when it is not such "id count" lines."""
    import numpy as np

    data = path.read_bytes()
    raw = np.frombuffer(data, dtype=np.uint8)
    digit = (raw >= 0x30) & (raw <= 0x39)
    blank = (raw == 0x20) | (raw == 0x09) | (raw == 0x0D)
    newline = raw == 0x0A
    starts = np.flatnonzero(digit & ~np.concatenate([[False], digit[:-1]]))
    ends = np.flatnonzero(digit & ~np.concatenate([digit[1:], [False]])) + 1
    fields_per_line = np.bincount(np.cumsum(newline)[starts]) if len(starts) else np.zeros(0, np.int64)
    if not bool(np.all(digit | blank | newline)) or bool(np.any((fields_per_line != 0) & (fields_per_line != 2))) \
            or (len(starts) and int((ends - starts).max()) > 18):
        raise IndexFormatError(f"{path}: not 'token count' lines")
    if len(starts) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    return np.fromstring(data.decode("ascii"), dtype=np.int64, sep=" ").reshape(-1, 2)


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
    #: file name -> {"bytes": size, "sha256": hex digest} of every index file (shard files and the
    #: tokenizer). Sizes are checked when the index opens (cheap); digests by `verify`. Empty for
    #: manifests written by older versions: both checks are then skipped.
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

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
            for s in shards:
                for value in vars(s).values():
                    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                        raise ValueError(f"shard field {value!r} is not a non-negative integer")
            files = _files_from_json(data.get("files", {}))
            tokenizer = data["tokenizer"]
            if not isinstance(tokenizer, str) or not tokenizer or "/" in tokenizer or tokenizer.startswith("."):
                raise ValueError(f"tokenizer {tokenizer!r} is not 'bytes' or a file of the index")
            return cls(
                token_width=int(data["token_width"]),
                tokenizer=str(data["tokenizer"]),
                shards=shards,
                vocab_size=int(data["vocab_size"]),
                eos_id=data.get("eos_id"),
                format_version=int(data.get("format_version", FORMAT_VERSION)),
                build=dict(data.get("build", {})),
                source=str(data.get("source", "tracetui")),
                files=files,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexFormatError(f"{MANIFEST_NAME}: manifest is malformed: {exc}") from None


def _files_from_json(files: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(files, dict):
        raise ValueError("'files' is not an object")
    out = {}
    for name, rec in files.items():
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"'files' names {name!r}, not a file of the index")
        if (not isinstance(rec, dict) or not isinstance(rec.get("bytes"), int) or rec["bytes"] < 0
                or not isinstance(rec.get("sha256"), str)):
            raise ValueError(f"'files' entry of {name} is not {{bytes, sha256}}")
        out[name] = {"bytes": rec["bytes"], "sha256": rec["sha256"]}
    return out


def file_record(path: Path) -> dict[str, Any]:
    """What the manifest records of one index file: its size and SHA-256."""
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return {"bytes": path.stat().st_size, "sha256": digest}


def record_files(directory: Path, names: list[str], workers: int = 1) -> dict[str, dict[str, Any]]:
    """`file_record` of each named file of `directory` (hashed in parallel threads)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(names) or 1))) as pool:
        records = list(pool.map(lambda name: file_record(directory / name), names))
    return dict(zip(names, records, strict=True))


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
