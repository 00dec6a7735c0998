"""Deep consistency checks of an index: what `tracetui index verify` reports.

Opening an index checks sizes only (cheap); this reads every offset, the whole suffix array's
range and permutation, and the order of a sample of adjacent suffix pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .engine import Index
from .errors import IndexToolsError
from .format import separator_id, shard_file

_CHUNK = 1 << 22


def verify_index(directory: str | Path, sample: int = 20000, full: bool = False, seed: int = 0) -> list[str]:
    """Faults found, one line each; an empty list means the index is sound."""
    try:
        index = Index.open(directory)
    except IndexToolsError as exc:
        return [str(exc)]
    faults: list[str] = []
    rng = np.random.default_rng(seed)
    sep = separator_id(index.width)
    for shard in index.shards:
        tok_path = shard_file(index.directory, "tokenized", shard.n)
        n = shard.n_tokens
        offs = shard.doc_token_starts
        if np.any(np.diff(offs) <= 0):
            faults.append(f"{shard_file(index.directory, 'offset', shard.n)}: offsets are not increasing")
            continue
        if np.any(np.asarray(shard.offsets) % index.width):
            faults.append(f"{shard_file(index.directory, 'offset', shard.n)}: offsets not aligned to tokens")
            continue
        if np.any(shard.ids[offs] != sep):
            faults.append(f"{shard_file(index.directory, 'offset', shard.n)}: an offset does not point at a document separator")
        n_sep = sum(int(np.count_nonzero(shard.ids[a : a + _CHUNK] == sep)) for a in range(0, n, _CHUNK))
        if n_sep != shard.n_docs:
            faults.append(f"{tok_path}: {n_sep} separators for {shard.n_docs} documents")
        table_path = shard_file(index.directory, "table", shard.n)
        seen = np.zeros(n, dtype=bool)
        bad_range = False
        for a in range(0, n, _CHUNK):
            ranks = np.arange(a, min(n, a + _CHUNK), dtype=np.int64)
            ptr = _raw_pointers(shard, ranks)
            if np.any(ptr % index.width) or np.any(ptr >= shard.tokenized_bytes):
                bad_range = True
                break
            seen[ptr // index.width] = True
        if bad_range:
            faults.append(f"{table_path}: entries outside {tok_path} or not at token boundaries")
            continue
        if not seen.all():
            faults.append(f"{table_path}: not a permutation of the token positions ({int((~seen).sum())} missing)")
            continue
        del seen
        if n > 1:
            if full:
                ranks = np.arange(n - 1, dtype=np.int64)
            else:
                ranks = np.unique(rng.integers(0, n - 1, size=min(sample, n - 1)))
            for a in range(0, len(ranks), 1 << 16):
                r = ranks[a : a + (1 << 16)]
                p1, p2 = shard.sa_tokens(r), shard.sa_tokens(r + 1)
                sign, _ = shard._compare(p1, shard.keys, p2, n - p2)
                if np.any(sign >= 0):
                    bad = int(r[np.argmax(sign >= 0)])
                    faults.append(f"{table_path}: suffixes at ranks {bad} and {bad + 1} are out of order")
                    break
        if shard.metaoff is not None and shard.metadata is not None:
            mo = np.asarray(shard.metaoff, dtype=np.int64)
            if (len(mo) and mo[0] != 0) or np.any(np.diff(mo) <= 0) or (len(mo) and mo[-1] >= len(shard.metadata)):
                faults.append(f"{shard_file(index.directory, 'metaoff', shard.n)}: offsets do not fit metadata.{shard.n}")
            else:
                ends = np.append(mo[1:], len(shard.metadata)) - 1
                if np.any(shard.metadata[ends] != ord("\n")):
                    faults.append(f"{shard_file(index.directory, 'metadata', shard.n)}: a record does not end where metaoff says")
        uni = shard_file(index.directory, "unigram", shard.n)
        if uni.exists():
            try:
                table = np.loadtxt(uni, dtype=np.int64, ndmin=2)
                if table.shape[1] != 2 or int(table[:, 1].sum()) != n:
                    faults.append(f"{uni}: counts sum to {int(table[:, 1].sum()) if table.shape[1] == 2 else '?'}, expected {n}")
            except ValueError:
                faults.append(f"{uni}: not 'token count' lines")
    if index.manifest.tokenizer != "bytes":
        probe = index.tokenizer.encode("The quick brown fox.")
        if len(probe) and int(probe.max()) >= index.tokenizer.vocab_size:
            faults.append(f"{index.directory}: tokenizer produces ids beyond its vocabulary")
    return faults


def _raw_pointers(shard, ranks: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    return shard.sa_tokens(ranks) * shard.width + _misalignment(shard, ranks)


def _misalignment(shard, ranks: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """sa_tokens floors pointers to tokens; recover the remainder to catch unaligned entries."""
    if shard.width == 1:
        return np.zeros(len(ranks), dtype=np.int64)
    if shard._table32 is not None:
        return shard._table32[ranks].astype(np.int64) % shard.width
    rows = shard._table[ranks].astype(np.int64)
    return rows[:, 0] % shard.width
