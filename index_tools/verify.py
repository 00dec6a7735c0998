"""Deep consistency checks of an index: what `tracetui index verify` reports.

Opening an index checks sizes only (cheap: one stat per file). This reads everything:

* offsets: increasing, token-aligned, each at a document separator; separators = documents;
* tokens: every id below the tokenizer's vocabulary (separators aside);
* suffix array: entries in range and token-aligned, a permutation of the token positions, and
  the order of a sample of adjacent suffix pairs (all of them with `full`);
* metadata: metaoff offsets fit, every record ends with a newline and is a JSON object;
* unigram counts: equal to a recount of the tokens;
* tokenizer: produces ids inside its vocabulary;
* and, when the manifest records them (indexes built or adopted by this version), the SHA-256 of
  every file: any byte changed since the build is reported, naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .engine import Index, Shard
from .errors import IndexFormatError, IndexToolsError
from .format import MANIFEST_NAME, file_record, read_unigrams, separator_id, shard_file

_CHUNK = 1 << 22
#: metadata records parsed as JSON: all of them up to this many documents per shard (or with
#: `full`), else a random sample of `sample` records (the digests still cover every byte).
_ALL_RECORDS = 200_000


def verify_index(directory: str | Path, sample: int = 20000, full: bool = False, seed: int = 0) -> list[str]:
    """Faults found, one line each; an empty list means the index is sound."""
    try:
        index = Index.open(directory)
    except IndexToolsError as exc:
        return [str(exc)]
    faults: list[str] = []
    rng = np.random.default_rng(seed)
    for shard in index.shards:
        faults += _verify_shard(index, shard, rng, sample, full)
    if index.manifest.tokenizer != "bytes":
        try:
            probe = index.tokenizer.encode("The quick brown fox.")
            if len(probe) and int(probe.max()) >= index.tokenizer.vocab_size:
                faults.append(f"{index.directory / index.manifest.tokenizer}: tokenizer produces ids beyond its vocabulary")
        except Exception as exc:  # a broken tokenizer file may fail in many ways
            faults.append(f"{index.directory / index.manifest.tokenizer}: tokenizer fails to encode ({exc})")
    faults += _verify_digests(index)
    return faults


def _verify_shard(index: Index, shard: Shard, rng: np.random.Generator, sample: int, full: bool) -> list[str]:
    faults: list[str] = []
    d = index.directory
    sep = separator_id(index.width)
    vocab = index.tokenizer.vocab_size
    tok_path = shard_file(d, "tokenized", shard.n)
    off_path = shard_file(d, "offset", shard.n)
    n = shard.n_tokens
    offs = shard.doc_token_starts
    if np.any(np.diff(offs) <= 0):
        return [f"{off_path}: offsets are not increasing"]
    if np.any(np.asarray(shard.offsets) % index.width):
        return [f"{off_path}: offsets not aligned to tokens"]
    if np.any(shard.ids[offs] != sep):
        faults.append(f"{off_path}: an offset does not point at a document separator")
    n_sep = 0
    counts = np.zeros(vocab, dtype=np.int64)
    beyond = None
    for a in range(0, n, _CHUNK):
        ids = np.asarray(shard.ids[a : a + _CHUNK])
        is_sep = ids == sep
        n_sep += int(np.count_nonzero(is_sep))
        ids = ids[~is_sep]
        bad = np.flatnonzero(ids >= vocab)
        if len(bad) and beyond is None:
            beyond = int(ids[bad[0]])
        counts += np.bincount(ids[ids < vocab], minlength=vocab)[:vocab]
    if n_sep != shard.n_docs:
        faults.append(f"{tok_path}: {n_sep} separators for {shard.n_docs} documents")
    if beyond is not None:
        faults.append(f"{tok_path}: token id {beyond} is beyond the tokenizer's vocabulary ({vocab} tokens)")
    faults += _verify_table(index, shard, rng, sample, full)
    faults += _verify_metadata(index, shard, rng, sample, full)
    faults += _verify_unigram(index, shard, counts, n_sep)
    return faults


def _verify_table(index: Index, shard: Shard, rng: np.random.Generator, sample: int, full: bool) -> list[str]:
    d = index.directory
    n = shard.n_tokens
    tok_path = shard_file(d, "tokenized", shard.n)
    table_path = shard_file(d, "table", shard.n)
    seen = np.zeros(n, dtype=bool)
    for a in range(0, n, _CHUNK):
        ranks = np.arange(a, min(n, a + _CHUNK), dtype=np.int64)
        ptr = shard.sa_pointers(ranks)
        if np.any(ptr % index.width) or np.any(ptr >= shard.tokenized_bytes):
            return [f"{table_path}: entries outside {tok_path} or not at token boundaries"]
        seen[ptr // index.width] = True
    if not seen.all():
        return [f"{table_path}: not a permutation of the token positions ({int((~seen).sum())} missing)"]
    del seen
    if n > 1:
        if full:
            ranks = np.arange(n - 1, dtype=np.int64)
        else:
            ranks = np.unique(rng.integers(0, n - 1, size=min(sample, n - 1)))
        for a in range(0, len(ranks), 1 << 16):
            r = ranks[a : a + (1 << 16)]
            sign = shard.compare_suffixes(shard.sa_tokens(r), shard.sa_tokens(r + 1))
            if np.any(sign >= 0):
                bad = int(r[np.argmax(sign >= 0)])
                return [f"{table_path}: suffixes at ranks {bad} and {bad + 1} are out of order"]
    return []


def _verify_metadata(index: Index, shard: Shard, rng: np.random.Generator, sample: int, full: bool) -> list[str]:
    d = index.directory
    meta_path = shard_file(d, "metadata", shard.n)
    metaoff_path = shard_file(d, "metaoff", shard.n)
    if shard.metadata is None and metaoff_path.exists():
        return [f"{metaoff_path}: exists without {meta_path.name}"]
    if shard.metadata is None or shard.metaoff is None:
        if meta_path.exists():
            return [f"{meta_path}: exists without {metaoff_path.name}"]
        return []
    mo = np.asarray(shard.metaoff, dtype=np.int64)
    size = len(shard.metadata)
    if (len(mo) and mo[0] != 0) or np.any(np.diff(mo) <= 0) or (len(mo) and mo[-1] >= size):
        return [f"{metaoff_path}: offsets do not fit {meta_path.name}"]
    ends = np.append(mo[1:], size) - 1
    if np.any(shard.metadata[ends] != ord("\n")):
        return [f"{meta_path}: a record does not end where {metaoff_path.name} says"]
    docs = np.arange(len(mo)) if full or len(mo) <= _ALL_RECORDS else np.unique(rng.integers(0, len(mo), size=sample))
    for doc in docs.tolist():
        raw = bytes(shard.metadata[int(mo[doc]) : int(ends[doc])])
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return [f"{meta_path}: record {doc} is not valid UTF-8 JSON ({exc})"]
        if not isinstance(record, dict):
            return [f"{meta_path}: record {doc} is not a JSON object"]
    return []


def _verify_unigram(index: Index, shard: Shard, counts: np.ndarray, n_sep: int) -> list[str]:
    uni = shard_file(index.directory, "unigram", shard.n)
    if not uni.exists():
        return []
    sep = separator_id(index.width)
    vocab = len(counts)
    try:
        table = read_unigrams(uni)
    except IndexFormatError as exc:
        return [str(exc)]
    ids, cnt = table[:, 0], table[:, 1]
    is_sep = ids == sep
    stray = ids[~is_sep & (ids >= vocab)]
    if len(stray):
        return [f"{uni}: token id {int(stray[0])} is beyond the tokenizer's vocabulary ({vocab} tokens)"]
    recorded = np.zeros(vocab, dtype=np.int64)
    np.add.at(recorded, ids[~is_sep], cnt[~is_sep])
    diff = np.flatnonzero(recorded != counts)
    if len(diff):
        t = int(diff[0])
        return [f"{uni}: counts differ from the tokens (token {t}: file says {int(recorded[t])}, "
                f"tokenized.{shard.n} holds {int(counts[t])})"]
    if is_sep.any() and int(cnt[is_sep].sum()) != n_sep:
        return [f"{uni}: {int(cnt[is_sep].sum())} separators counted, tokenized.{shard.n} holds {n_sep}"]
    return []


def _verify_digests(index: Index) -> list[str]:
    """Files whose SHA-256 differs from the manifest's record (sizes were checked at open)."""
    faults = []
    for name, rec in index.manifest.files.items():
        path = index.directory / name
        try:
            actual = file_record(path)["sha256"]
        except OSError as exc:
            faults.append(f"{path}: cannot read ({exc.strerror})")
            continue
        if actual != rec["sha256"]:
            faults.append(f"{path}: content differs from the SHA-256 recorded in {MANIFEST_NAME} "
                          f"({actual[:12]}… vs {str(rec['sha256'])[:12]}…): changed after the build")
    return faults
