"""Suffix sort of one shard's token file with libdivsufsort (through pydivsufsort).

Sorting the raw bytes and keeping the offsets that fall on token boundaries gives exactly
infini-gram's memcmp order, so the table is byte-identical to its builder's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .format import pointer_width

_CHUNK = 1 << 24


def suffix_array(data: np.ndarray, width: int) -> np.ndarray:
    """Byte offsets of the token-aligned suffixes of `data` (uint8, writable) in memcmp order."""
    from pydivsufsort import divsufsort

    if len(data) == 0:
        return np.zeros(0, dtype=np.int64)
    sa = divsufsort(data, force64=len(data) > np.iinfo(np.int32).max)
    if width == 1:
        return sa
    # Filter in chunks: a full-size boolean temporary would cost a byte per byte of corpus.
    out = np.empty(len(data) // width, dtype=sa.dtype)
    filled = 0
    for start in range(0, len(sa), _CHUNK):
        part = sa[start : start + _CHUNK]
        kept = part[(part & (width - 1)) == 0]
        out[filled : filled + len(kept)] = kept
        filled += len(kept)
    del sa
    assert filled == len(out)
    return out


def write_table(sa: np.ndarray, tokenized_bytes: int, path: Path) -> int:
    """Write suffix-array entries with infini-gram's pointer width; returns that width."""
    pw = pointer_width(tokenized_bytes)
    with open(path, "wb") as fh:
        for start in range(0, len(sa), _CHUNK):
            part = sa[start : start + _CHUNK]
            # fh.write, not ndarray.tofile: a failed write (disk full) raises OSError with its errno.
            if pw in (1, 2, 4, 8):
                fh.write(np.ascontiguousarray(part.astype(f"<u{pw}")).data)
            else:
                fh.write(np.ascontiguousarray(part.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :pw]).reshape(-1).data)
    return pw


def sort_shard(tokenized: Path, table: Path, width: int) -> int:
    """Build `table` from `tokenized`; returns the pointer width."""
    data = np.fromfile(tokenized, dtype=np.uint8)
    sa = suffix_array(data, width)
    del data
    return write_table(sa, tokenized.stat().st_size, table)
