"""Read-only memory maps of index files that hold no file descriptor while they live.

Python's `mmap.mmap` duplicates the descriptor of the file it maps and keeps it open until the
map is closed, so an index of five files per shard held five descriptors per shard for its whole
life: a 200-shard index passes Linux's default limit of 1024 open files. POSIX keeps a mapping
valid after its descriptor is closed, so on POSIX systems the file is mapped through libc's own
`mmap` (ctypes), its descriptor closed at once, and the region unmapped when the last object
over it is freed (a finalizer on the buffer: numpy views and slices keep the buffer alive, so
nothing can read an unmapped page). Elsewhere (Windows, where handles are not so scarce) the
standard `mmap` module maps it.

The buffer returned slices to `bytes` (a `bytes` comparison of two slices is exactly memcmp,
the order of a suffix array), supports the buffer protocol (numpy views) and `len`. numpy is not
imported here: a one-shot query opens an index without it (`tracetui.lazy_imports`).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref
from pathlib import Path
from typing import Any

#: a mapped file: the libc-mapped ctypes array, an `mmap.mmap`, or b"" for an empty file
Buffer = Any

_libc: Any = None


def _posix_libc() -> Any:
    """libc with `mmap`, `munmap` and `madvise` typed, or None where there is no such libc."""
    global _libc
    if _libc is None:
        _libc = False
        if os.name == "posix":
            try:
                # the process's own symbols: libc is linked into every POSIX Python (and
                # `ctypes.util.find_library` would run ldconfig or a compiler to find it)
                lib = ctypes.CDLL(None, use_errno=True)
                lib.mmap.restype = ctypes.c_void_p
                lib.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                     ctypes.c_int64]
                lib.munmap.restype = ctypes.c_int
                lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
                lib.madvise.restype = ctypes.c_int
                lib.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                _libc = lib
            except (OSError, AttributeError):
                _libc = False
    return _libc or None


_MAP_FAILED = ctypes.c_void_p(-1).value


def map_file(path: Path, random_access: bool = True) -> Buffer:
    """Map `path` read-only. `random_access` advises the kernel not to read ahead (a binary
    search touches scattered pages)."""
    size = os.stat(path).st_size
    if size == 0:
        return b""
    libc = _posix_libc()
    with open(path, "rb") as fh:
        if libc is None:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            if random_access and hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
                mm.madvise(mmap.MADV_RANDOM)
            return mm
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fh.fileno(), 0)
    if addr is None or addr == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot map {path}: {os.strerror(err)}")
    if random_access and hasattr(mmap, "MADV_RANDOM"):
        libc.madvise(addr, size, mmap.MADV_RANDOM)
    buf = (ctypes.c_char * size).from_address(addr)
    # not at exit: the process's end unmaps everything, and a thread still reading a map while
    # the interpreter shuts down must not find it gone
    weakref.finalize(buf, libc.munmap, addr, size).atexit = False
    return buf


def read_uint(buf: Buffer, offset: int, width: int) -> int:
    """The little-endian unsigned integer of `width` bytes at `offset`."""
    return int.from_bytes(buf[offset : offset + width], "little")


__all__ = ["Buffer", "map_file", "read_uint"]
