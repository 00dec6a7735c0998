"""Suffix sort of one shard's token file with libdivsufsort (through pydivsufsort).

Sorting the raw bytes and keeping the offsets that fall on token boundaries gives exactly
infini-gram's memcmp order, so the table is byte-identical to its builder's.

Memory is what decides how large a shard one worker can sort, so nothing full-size is held
twice: the byte suffix array is compacted *in place* (the token-aligned entries moved to its
front, chunk by chunk), the token bytes are freed as soon as the sort is done, and the table is
written from the front of the same buffer in chunks. Peak: the tokens (1 byte per byte) plus the
suffix array (4 bytes per byte below 2 GiB, 8 above), i.e. 10 bytes per u16 token with 32-bit
entries (infini-gram's builder measures 12.3) and 18 with 64-bit entries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .format import pointer_width

#: Entries per chunk of the table write (4-8 MiB of temporaries) and of the in-place compaction
#: (smaller: it runs while the whole suffix array is held, so its temporaries add to the peak).
_CHUNK = 1 << 20
_COMPACT_CHUNK = 1 << 16
#: Above this many bytes libdivsufsort needs 64-bit suffix-array entries (divsufsort64).
INT32_LIMIT = int(np.iinfo(np.int32).max)


def sort_bytes_per_byte(tokenized_bytes: int) -> float:
    """Peak RAM per byte of token file while sorting it: data + suffix array + chunk slack."""
    return 5.25 if tokenized_bytes <= INT32_LIMIT else 9.25


def _compact(sa: np.ndarray, width: int) -> int:
    """Move the entries divisible by `width` to the front of `sa`, keeping their order.

    In place, chunk by chunk: the write position never passes the read position, and each
    chunk's kept entries are copied out (at most one chunk) before they are stored, so no
    full-size temporary exists. Returns how many entries were kept.
    """
    filled = 0
    mask = width - 1
    for start in range(0, len(sa), _COMPACT_CHUNK):
        part = sa[start : start + _COMPACT_CHUNK]
        kept = part[(part & mask) == 0]
        sa[filled : filled + len(kept)] = kept
        filled += len(kept)
    return filled


def _byte_suffix_array(data: np.ndarray) -> np.ndarray:
    """All byte suffixes of `data` (uint8, writable) in memcmp order: int32, or int64 above 2 GiB."""
    from pydivsufsort import divsufsort

    if len(data) == 0:
        return np.zeros(0, dtype=np.int64)
    return divsufsort(data, force64=len(data) > INT32_LIMIT)


def _token_aligned(sa: np.ndarray, width: int) -> np.ndarray:
    """The token-aligned entries of a byte suffix array, as a view on its front (its buffer stays
    allocated until the view is dropped: copying them out would cost 4-8 bytes per token more)."""
    if width == 1:
        return sa
    kept = _compact(sa, width)
    assert kept == len(sa) // width
    return sa[:kept]


def suffix_array(data: np.ndarray, width: int) -> np.ndarray:
    """Byte offsets of the token-aligned suffixes of `data` (uint8, writable) in memcmp order."""
    return _token_aligned(_byte_suffix_array(data), width)


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
    """Build `table` from `tokenized`; returns the pointer width.

    The token bytes are released as soon as the sort returns: from then on only the suffix
    array is needed (compacted in place, then written from its front in chunks).
    """
    size = tokenized.stat().st_size
    data = np.fromfile(tokenized, dtype=np.uint8)
    sa = _byte_suffix_array(data)
    del data  # the peak was data + suffix array; the compaction holds the array and one chunk
    return write_table(_token_aligned(sa, width), size, table)
