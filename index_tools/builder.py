"""Build an infini-gram v4 index from corpus files, crash-safely and resumably.

Phases: read+tokenize (documents streamed into shard files), suffix sort (one process per shard,
up to --workers), manifest. With `shard_by="files"` (the Ray build's sharding, see ray_build.py)
each shard is a run of whole input files balanced by bytes, and one job per shard tokenizes and
sorts it (`run_shard_job`): the same function runs in-process here and as a Ray task there. Every file is written under a temporary name and renamed when
complete; the manifest is written last, so a directory is an index only once everything is in place.
A state file remembers finished shards so that a rerun after Ctrl+C or a crash resumes.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CorpusError, IndexFormatError, IndexWriteError, TokenizerError
from .format import (
    MANIFEST_NAME,
    SHARD_KINDS,
    TMP_SUFFIX,
    TOKEN_DTYPES,
    TOKENIZER_NAME,
    WIDTH_BY_NAME,
    Manifest,
    ShardInfo,
    atomic_path,
    fsync_dir,
    pointer_width,
    read_manifest,
    record_files,
    separator_id,
    shard_file,
    width_for_vocab,
    write_manifest,
)
from .normalize import MODES, ORIGINAL_KEY, normalize
from .progress import Progress
from .readers import TextDoc, TokenDoc, list_sources, read_documents
from .suffix_sort import INT32_LIMIT, sort_bytes_per_byte, sort_shard
from .tokenizer import Tokenizer, load_tokenizer, train_bpe

STATE_NAME = "build-state.json"
BATCH_DOCS = 512
TRAIN_SAMPLE_CHARS = 50_000_000
PARALLEL_SORT_MIN_BYTES = 32 << 20


@dataclass
class BuildOptions:
    tokenizer: str | None = None  # None = train a BPE, "bytes", or a tokenizer.json path
    text_field: str = "text"
    shards: int | None = None  # None = as many as --memory requires
    workers: int = 1
    memory_gb: float | None = None
    eos_id: int | None = None
    raw_dtype: str = "u16"
    token_width: str | None = None  # force u8/u16/u32
    vocab_size: int = 32000
    progress: bool = True
    force: bool = False
    #: "documents": round-robin (or fill-to-capacity) over the document stream, one reader;
    #: "files": shard k = a run of whole input files balanced by bytes, tokenized independently
    #: (what a distributed build needs: no shard depends on another's documents).
    shard_by: str = "documents"
    #: None, or "space" / "words" (`index_tools.normalize`): the index holds the normalized text,
    #: each document's original text kept in its metadata, and every query is normalized alike
    normalize: str | None = None


def available_memory_bytes() -> int:
    """Memory the machine can give a sort without swapping, on every OS psutil supports.

    psutil's `available` is the kernel's own estimate (Linux's MemAvailable, the free plus
    reclaimable pages elsewhere), so a 64 GB Mac plans shards for its memory rather than for a
    fixed guess. Imported here: psutil costs 25 ms at import and only a build plans memory.
    """
    import psutil  # type: ignore[import-untyped]  # no types shipped (types-psutil is not a dependency)

    return int(psutil.virtual_memory().available)


def shard_capacity_bytes(memory_gb: float | None, workers: int) -> int:
    """Largest token file one worker may sort within the memory budget.

    Shards stay below 2 GiB (32-bit suffix-array entries, the cheapest sort per byte) unless the
    budget affords a larger shard even at the 64-bit sort's cost: fewer, larger shards make
    every query search fewer tables.
    """
    budget = memory_gb * (1 << 30) if memory_gb else available_memory_bytes() * 0.6
    per_worker = budget / max(1, workers)
    large = per_worker / sort_bytes_per_byte(INT32_LIMIT + 1)
    if large > INT32_LIMIT:
        return int(large)
    return int(max(1 << 20, min(per_worker / sort_bytes_per_byte(INT32_LIMIT), INT32_LIMIT - 16)))


def planned_shards(files: list[Path], opts: BuildOptions, capacity: int) -> int | None:
    """How many equal (round-robin) shards to write, or None to fill shards up to `capacity`.

    With uncompressed inputs the file sizes bound the token file sizes from above (text is at
    least one byte per token byte for u8 and more for BPE; token arrays are exact), so the corpus
    is split into equal shards that each fit the memory budget -- and into at least --workers
    shards when it is large enough for a parallel sort to pay. Compressed inputs give no bound:
    they fill shards up to the capacity as they stream.
    """
    if opts.shards is not None:
        return opts.shards
    if any(f.name.lower().endswith((".gz", ".zst")) for f in files):
        return None
    estimate = sum(f.stat().st_size for f in files)
    n = -(-estimate // capacity)
    if opts.workers > 1 and estimate >= PARALLEL_SORT_MIN_BYTES:
        n = max(n, opts.workers)
    return n if n > 1 else None


def _fingerprint(files: list[Path], opts: BuildOptions, capacity: int) -> str:
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    tok = opts.tokenizer
    if tok and tok != "bytes":
        p = Path(tok)
        p = p / TOKENIZER_NAME if p.is_dir() else p
        h.update(hashlib.sha256(p.read_bytes()).digest() if p.exists() else tok.encode())
    params = {k: v for k, v in asdict(opts).items() if k not in ("progress", "force", "workers", "tokenizer")}
    if opts.shard_by == "documents":
        del params["shard_by"]  # the fingerprints of indexes built before the option stay valid
    if opts.normalize is None:
        del params["normalize"]
    # The memory budget (and the free memory it defaults to) matters only through the plan it
    # makes, so the plan is fingerprinted, not the budget: a rerun while other processes hold
    # more or less memory must find the same index, not rebuild it. A files-sharded build keeps
    # its plan in the state file (a Ray cluster that grew or shrank resumes); compressed inputs
    # fill shards up to the capacity as they stream, so there the capacity is the plan.
    params.pop("memory_gb")
    if opts.shards is not None or opts.shard_by == "files":
        params["plan"] = None
    elif any(f.name.lower().endswith((".gz", ".zst")) for f in files):
        params["plan"] = capacity
    else:
        params["plan"] = planned_shards(files, opts, capacity) or 1
    params["tokenizer_kind"] = "bytes" if tok == "bytes" else ("file" if tok else "trained")
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:24]


def _clean(directory: Path) -> None:
    """Remove every file a build of ours may have written (and nothing else)."""
    for p in directory.iterdir():
        base = p.name[: -len(TMP_SUFFIX)] if p.name.endswith(TMP_SUFFIX) else p.name
        kind = base.split(".")[0]
        if kind in SHARD_KINDS or base in (MANIFEST_NAME, STATE_NAME, TOKENIZER_NAME):
            p.unlink()


def _load_state(directory: Path, fingerprint: str) -> dict[str, Any] | None:
    path = directory / STATE_NAME
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("fingerprint") == fingerprint else None


def _save_state(directory: Path, state: dict[str, Any]) -> None:
    with atomic_path(directory / STATE_NAME) as tmp:
        tmp.write_text(json.dumps(state), encoding="utf-8")


class _ShardWriter:
    """Streams documents of one shard into `.partial` files; `finish` renames them into place."""

    def __init__(self, directory: Path, shard: int, width: int, vocab_size: int) -> None:
        self.directory, self.shard, self.width = directory, shard, width
        self.dtype = TOKEN_DTYPES[width][0]
        self.sep = np.array([separator_id(width)], dtype=self.dtype).tobytes()
        self.tok_fh = open(self._tmp("tokenized"), "wb")
        self.meta_fh = open(self._tmp("metadata"), "wb")
        self.offsets = array("Q")
        self.metaoffs = array("Q")
        self.tok_bytes = 0
        self.meta_bytes = 0
        self.counts = np.zeros(min(vocab_size, separator_id(width)), dtype=np.int64)

    def _tmp(self, kind: str) -> Path:
        return shard_file(self.directory, kind, self.shard).with_name(f"{kind}.{self.shard}{TMP_SUFFIX}")

    def add(self, ids: np.ndarray, meta: dict[str, Any]) -> None:
        self.offsets.append(self.tok_bytes)
        data = self.sep + ids.astype(self.dtype).tobytes()
        self.tok_fh.write(data)
        self.tok_bytes += len(data)
        line = (json.dumps(meta, ensure_ascii=False) + "\n").encode("utf-8")
        self.metaoffs.append(self.meta_bytes)
        self.meta_fh.write(line)
        self.meta_bytes += len(line)
        if len(ids):
            self.counts += np.bincount(ids, minlength=len(self.counts))[: len(self.counts)]

    def abort(self) -> None:
        """Drop the partial files; never raises (it runs while another error propagates)."""
        for fh in (self.tok_fh, self.meta_fh):
            try:
                fh.close()  # flushes: fails again on a full disk
            except OSError:
                pass
        for kind in ("tokenized", "metadata"):
            try:
                self._tmp(kind).unlink(missing_ok=True)
            except OSError:
                pass

    def finish(self) -> dict[str, int]:
        for fh in (self.tok_fh, self.meta_fh):
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        # write_bytes, not ndarray.tofile: a failed write raises OSError with its errno.
        with atomic_path(shard_file(self.directory, "offset", self.shard)) as tmp:
            tmp.write_bytes(np.frombuffer(self.offsets, dtype="<u8").tobytes())
        with atomic_path(shard_file(self.directory, "metaoff", self.shard)) as tmp:
            tmp.write_bytes(np.frombuffer(self.metaoffs, dtype="<u8").tobytes())
        with atomic_path(shard_file(self.directory, "unigram", self.shard)) as tmp:
            # as infini-gram's builder: sparse "id count" lines, the separator included (last).
            nz = np.flatnonzero(self.counts)
            lines = "".join(f"{i} {self.counts[i]}\n" for i in nz)
            lines += f"{separator_id(self.width)} {len(self.offsets)}\n"
            tmp.write_text(lines, encoding="utf-8")
        os.replace(self._tmp("metadata"), shard_file(self.directory, "metadata", self.shard))
        # tokenized last: its final name marks the tokenize phase of this shard done.
        os.replace(self._tmp("tokenized"), shard_file(self.directory, "tokenized", self.shard))
        fsync_dir(self.directory)
        return {"documents": len(self.offsets), "tokenized_bytes": self.tok_bytes}


def _text_sample(docs: Iterable[TextDoc | TokenDoc], limit: int) -> Iterator[str]:
    total = 0
    for doc in docs:
        if isinstance(doc, TokenDoc):
            raise TokenizerError("pre-tokenized input needs --tokenizer (the tokenizer that made it)")
        yield doc.text
        total += len(doc.text)
        if total >= limit:
            return


def _prepare_tokenizer(directory: Path, files: list[Path], opts: BuildOptions, resumed: bool) -> tuple[Tokenizer, str]:
    if opts.tokenizer == "bytes":
        return load_tokenizer("bytes"), "bytes"
    target = directory / TOKENIZER_NAME
    if opts.tokenizer:
        tok = load_tokenizer(opts.tokenizer)
        if not resumed or not target.exists():
            with atomic_path(target) as tmp:
                shutil.copyfile(tok.path, tmp)  # type: ignore[attr-defined]
        return load_tokenizer(target), TOKENIZER_NAME
    if resumed and target.exists():
        return load_tokenizer(target), TOKENIZER_NAME
    sample = _text_sample(read_documents(files, opts.text_field, opts.eos_id, opts.raw_dtype), TRAIN_SAMPLE_CHARS)
    if opts.normalize is not None:  # trained on the text the index will hold
        sample = (normalize(t, opts.normalize) for t in sample)
    with atomic_path(target) as tmp:
        train_bpe(sample, tmp, opts.vocab_size)
    return load_tokenizer(target), TOKENIZER_NAME


def _batches(docs: Iterator[TextDoc | TokenDoc], tokenizer: Tokenizer, size: int,
             normalization: str | None = None) -> Iterator[list[tuple[np.ndarray, dict[str, Any]]]]:
    batch: list[TextDoc | TokenDoc] = []

    def meta_of(d: TextDoc | TokenDoc) -> dict[str, Any]:
        if normalization is None or not isinstance(d, TextDoc):
            return d.meta
        return {**d.meta, ORIGINAL_KEY: d.text}  # what the document views show

    def encode(b: list[TextDoc | TokenDoc]) -> list[tuple[np.ndarray, dict[str, Any]]]:
        texts = [d.text if normalization is None else normalize(d.text, normalization)
                 for d in b if isinstance(d, TextDoc)]
        encoded = iter(tokenizer.encode_batch(texts)) if texts else iter(())
        return [(next(encoded) if isinstance(d, TextDoc) else d.ids, meta_of(d)) for d in b]

    for doc in docs:
        batch.append(doc)
        if len(batch) >= size:
            yield encode(batch)
            batch = []
    if batch:
        yield encode(batch)


@dataclass
class ShardJob:
    """One shard of a files-sharded build: everything a worker needs (picklable, paths absolute)."""

    directory: str
    shard: int
    files: list[str]
    tokenizer: str  # "bytes", or the tokenizer.json inside the index directory
    width: int
    opts: BuildOptions

    def input_bytes(self) -> int:
        """Estimated bytes of the shard's token file (what its sort's memory follows)."""
        return sum(estimated_bytes(Path(f)) for f in self.files)


#: Runs the unfinished jobs of a files-sharded build (in-process here, as Ray tasks in
#: ray_build) and returns what `run_shard_job` returned for each.
JobRunner = Callable[[list[ShardJob]], list[dict[str, Any]]]


def estimated_bytes(path: Path) -> int:
    """An input file's share of a token file: its size, 4x for .gz / .zst (a typical text ratio)."""
    return path.stat().st_size * (4 if path.name.lower().endswith((".gz", ".zst")) else 1)


def file_shard_count(files: list[Path], opts: BuildOptions, capacity: int) -> int:
    """Shards of a files-sharded build: --shards, else enough for `capacity` (and >= workers when
    a parallel sort pays), from `estimated_bytes`."""
    if opts.shards is not None:
        return max(1, opts.shards)
    estimate = sum(estimated_bytes(f) for f in files)
    n = -(-estimate // capacity)
    if opts.workers > 1 and estimate >= PARALLEL_SORT_MIN_BYTES:
        n = max(n, opts.workers)
    return max(1, n)


def plan_file_shards(files: list[Path], shards: int) -> list[list[int]]:
    """Split the inputs, in order, into at most `shards` runs of whole files of about equal bytes.

    Cut k falls at the file boundary nearest to k/shards of the total bytes (boundaries that
    coincide merge), so the plan depends on file sizes only: the same on every machine and on rerun.
    """
    cum = np.cumsum([f.stat().st_size for f in files])
    total = int(cum[-1]) if len(cum) else 0
    cuts = {int(np.argmin(np.abs(cum - total * k / shards))) + 1 for k in range(1, max(1, shards))}
    bounds = [0] + sorted(c for c in cuts if 0 < c < len(files)) + [len(files)]
    return [list(range(a, b)) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _add_document(writer: _ShardWriter, ids: np.ndarray, meta: dict[str, Any]) -> None:
    if len(ids) and int(ids.max()) >= separator_id(writer.width):
        raise CorpusError(meta["path"], f"token id {int(ids.max())} does not fit the token width", meta["linenum"])
    writer.add(ids, meta)


def _shard_info(directory: Path, shard: int) -> dict[str, int]:
    """What the state file records of a tokenized shard, read back from its files."""
    return {"documents": shard_file(directory, "offset", shard).stat().st_size // 8,
            "tokenized_bytes": shard_file(directory, "tokenized", shard).stat().st_size}


def tokenize_shard(job: ShardJob) -> None:
    """Tokenize the files of one shard into its `.partial` files, renamed into place when complete."""
    directory = Path(job.directory)
    tokenizer = load_tokenizer(job.tokenizer)
    docs = read_documents([Path(f) for f in job.files], job.opts.text_field, job.opts.eos_id, job.opts.raw_dtype)
    writer = _ShardWriter(directory, job.shard, job.width, tokenizer.vocab_size)
    try:
        for batch in _batches(docs, tokenizer, BATCH_DOCS, job.opts.normalize):
            for ids, meta in batch:
                _add_document(writer, ids, meta)
        if not writer.offsets:
            raise CorpusError(", ".join(job.files), "no documents in these files (an index has no empty shard)")
        writer.finish()
    except BaseException:
        writer.abort()
        raise


def run_shard_job(job: ShardJob) -> dict[str, Any]:
    """Tokenize (unless done) and suffix-sort (unless done) one shard; returns its state entry
    and the manifest records (size, SHA-256) of its files.

    A step is done when its final file exists: every file is renamed into place only once
    complete, so a job killed at any point and run again redoes exactly the unfinished steps.
    The digests are taken here, where the files were just written, so that the driver of a
    cluster build does not read the whole index back from shared storage to hash it.
    """
    directory = Path(job.directory)
    if not shard_file(directory, "tokenized", job.shard).exists():
        tokenize_shard(job)
    if not shard_file(directory, "table", job.shard).exists():
        _sort_one(job.directory, job.shard, job.width)
    records = record_files(directory, [f"{kind}.{job.shard}" for kind in SHARD_KINDS])
    return {"shard": job.shard, **_shard_info(directory, job.shard), "files": records}


def _run_jobs_locally(jobs: list[ShardJob]) -> list[dict[str, Any]]:
    opts = jobs[0].opts
    progress = Progress("shards", len(jobs), "shards", opts.progress)
    results: list[dict[str, Any]] = []
    try:
        if opts.workers > 1 and len(jobs) > 1:
            # spawn, not fork: this process may have used the (multi-threaded) HF tokenizer
            # already, and a forked child that tokenizes can deadlock on its inherited locks.
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(opts.workers, len(jobs)), mp_context=ctx) as pool:
                for result in pool.map(run_shard_job, jobs):
                    results.append(result)
                    progress.update(1)
        else:
            for job in jobs:
                results.append(run_shard_job(job))
                progress.update(1)
    finally:
        progress.close()
    return results


def _files_phase(directory: Path, files: list[Path], opts: BuildOptions, tokenizer_name: str, width: int,
                 capacity: int, state: dict[str, Any], run_jobs: JobRunner) -> None:
    """Plan (once, kept in the state file), then run the unfinished shard jobs, then record them."""
    if state.get("plan") is None:
        state["plan"] = plan_file_shards(files, file_shard_count(files, opts, capacity))
        _save_state(directory, state)
    plan: list[list[int]] = state["plan"]
    root = directory.resolve()
    tok = "bytes" if tokenizer_name == "bytes" else str(root / TOKENIZER_NAME)
    jobs = [ShardJob(str(root), n, [str(files[i].resolve()) for i in group], tok, width, opts)
            for n, group in enumerate(plan)
            if not (shard_file(directory, "tokenized", n).exists() and shard_file(directory, "table", n).exists())]
    if jobs:
        for result in run_jobs(jobs):
            state.setdefault("digests", {}).update(result["files"])
    state["shards"] = [_shard_info(directory, n) for n in range(len(plan))]
    state["tokenized"] = True
    _save_state(directory, state)


def build_index(sources: Sequence[str | Path], output: str | Path, opts: BuildOptions | None = None,
                run_jobs: JobRunner | None = None) -> Manifest:
    """Build (or resume building) an index in `output`; returns its manifest.

    `run_jobs` runs the shard jobs of a `shard_by="files"` build (default: in this process, or
    --workers processes); ray_build passes one that runs them as Ray tasks.
    An OSError while building (disk full, file-size limit, permissions) becomes one
    IndexWriteError naming the directory; finished work is kept, so a rerun resumes.
    """
    opts = opts or BuildOptions()
    if opts.normalize is not None and opts.normalize not in MODES:
        raise CorpusError(str(output), f"--normalize {opts.normalize!r}: one of {', '.join(MODES)}")
    directory = Path(output)
    files = list_sources(list(sources))
    try:
        return _build(files, directory, opts, run_jobs or _run_jobs_locally)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename else ""
        raise IndexWriteError(
            f"{directory}: cannot write the index{where}: {reason}; no index was written "
            "(fix the cause, e.g. free disk space, and rerun the same command to resume)"
        ) from None


def _build(files: list[Path], directory: Path, opts: BuildOptions, run_jobs: JobRunner) -> Manifest:
    if directory.exists() and not directory.is_dir():
        raise IndexFormatError(f"{directory}: exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    capacity = shard_capacity_bytes(opts.memory_gb, opts.workers)
    fingerprint = _fingerprint(files, opts, capacity)

    try:
        existing = read_manifest(directory)
    except IndexFormatError:
        existing = None
    if existing is not None:
        if existing.build.get("fingerprint") == fingerprint and not opts.force:
            # a build killed between writing the manifest and removing its state file is complete
            (directory / STATE_NAME).unlink(missing_ok=True)
            return existing
        if not opts.force:
            raise IndexFormatError(f"{directory}: already holds a different index (use --force to replace it)")
    # From here on the directory must not look like an index until we finish.
    (directory / MANIFEST_NAME).unlink(missing_ok=True)
    state = _load_state(directory, fingerprint)
    if state is None or opts.force:
        _clean(directory)
        state = {"fingerprint": fingerprint, "shards": [], "docs_done": 0, "tokenized": False}
        _save_state(directory, state)

    resumed = bool(state["shards"]) or state.get("plan") is not None
    tokenizer, tokenizer_name = _prepare_tokenizer(directory, files, opts, resumed=resumed)
    width = WIDTH_BY_NAME[opts.token_width] if opts.token_width else width_for_vocab(tokenizer.vocab_size)
    if tokenizer.vocab_size > separator_id(width):
        raise TokenizerError(
            f"{tokenizer.name}: vocabulary of {tokenizer.vocab_size} tokens does not fit in "
            f"{opts.token_width} tokens (at most {separator_id(width)})"
        )

    if opts.shard_by == "files":
        if not state["tokenized"]:
            _files_phase(directory, files, opts, tokenizer_name, width, capacity, state, run_jobs)
    elif not state["tokenized"]:
        _tokenize_phase(directory, files, opts, tokenizer, width, capacity, state,
                        planned_shards(files, opts, capacity))
    _sort_phase(directory, state, width, opts)

    shards = []
    for n, s in enumerate(state["shards"]):
        tb = s["tokenized_bytes"]
        shards.append(ShardInfo(documents=s["documents"], tokens=tb // width, tokenized_bytes=tb,
                                table_bytes=(tb // width) * pointer_width(tb), pointer_width=pointer_width(tb)))
        assert shard_file(directory, "table", n).stat().st_size == shards[-1].table_bytes
    names = [f"{kind}.{n}" for n in range(len(shards)) for kind in SHARD_KINDS]
    names += [tokenizer_name] if tokenizer_name != "bytes" else []
    manifest = Manifest(
        token_width=width, tokenizer=tokenizer_name, shards=shards, vocab_size=tokenizer.vocab_size,
        eos_id=opts.eos_id,
        build={"fingerprint": fingerprint, "sources": [str(f) for f in files], "text_field": opts.text_field,
               **({"normalize": opts.normalize} if opts.normalize else {}),
               # a files-sharded plan follows the memory of wherever it was made: the plan (the
               # shards' sources) is what the index records, so a Ray and a local build agree
               "shard_capacity_bytes": capacity if opts.shards is None and opts.shard_by == "documents" else None,
               "shards_requested": opts.shards,
               **({"shard_by": "files"} if opts.shard_by == "files" else {})},
        files=_file_records(directory, names, state.get("digests") or {}, opts.workers),
    )
    write_manifest(directory, manifest)
    (directory / STATE_NAME).unlink(missing_ok=True)
    return manifest


def _file_records(directory: Path, names: list[str], known: dict[str, Any], workers: int) -> dict[str, Any]:
    """Size and digest of every index file: those the shard jobs recorded, the rest hashed here."""
    threads = min(os.cpu_count() or 2, max(2, workers))
    return {**record_files(directory, [n for n in names if n not in known], threads),
            **{n: known[n] for n in names if n in known}}


def _tokenize_phase(directory: Path, files: list[Path], opts: BuildOptions, tokenizer: Tokenizer,
                    width: int, capacity: int, state: dict[str, Any], shards: int | None) -> None:
    progress = Progress("tokenize", None, "tok", opts.progress)
    docs = read_documents(files, opts.text_field, opts.eos_id, opts.raw_dtype)
    skip = state["docs_done"]
    seen = 0
    writers: list[_ShardWriter] = []
    round_robin = shards is not None
    try:
        if round_robin:
            writers = [_ShardWriter(directory, n, width, tokenizer.vocab_size) for n in range(shards or 1)]
        current = None
        for batch in _batches(_skip(docs, skip), tokenizer, BATCH_DOCS, opts.normalize):
            for ids, meta in batch:
                if round_robin:
                    _add_document(writers[(skip + seen) % len(writers)], ids, meta)
                else:
                    if current is None:
                        current = _ShardWriter(directory, len(state["shards"]), width, tokenizer.vocab_size)
                    _add_document(current, ids, meta)
                    if current.tok_bytes >= capacity:
                        state["shards"].append(current.finish())
                        state["docs_done"] = skip + seen + 1
                        _save_state(directory, state)
                        current = None
                seen += 1
                progress.update(len(ids) + 1)
        if skip + seen == 0:
            raise CorpusError(", ".join(str(f) for f in files), "corpus is empty: no documents")
        if round_robin:
            # more shards than documents: the empty ones are dropped (an index has no empty shard)
            for w in writers:
                if w.offsets:
                    state["shards"].append(w.finish())
                else:
                    w.abort()
            writers = []
        elif current is not None:
            state["shards"].append(current.finish())
            current = None
        state["docs_done"] = skip + seen
        state["tokenized"] = True
        _save_state(directory, state)
    except BaseException:
        for w in writers:
            w.abort()  # never raises: the original error is the one reported
        if not round_robin and "current" in locals() and current is not None:
            current.abort()
        raise
    finally:
        progress.close()


def _skip(docs: Iterator[TextDoc | TokenDoc], n: int) -> Iterator[TextDoc | TokenDoc]:
    for i, d in enumerate(docs):
        if i >= n:
            yield d


def _sort_one(directory: str, shard: int, width: int) -> int:
    d = Path(directory)
    final = shard_file(d, "table", shard)
    with atomic_path(final) as tmp:
        sort_shard(shard_file(d, "tokenized", shard), tmp, width)
    return shard


def _sort_phase(directory: Path, state: dict[str, Any], width: int, opts: BuildOptions) -> None:
    todo = [n for n in range(len(state["shards"])) if not shard_file(directory, "table", n).exists()]
    if not todo:
        return
    total = sum(state["shards"][n]["tokenized_bytes"] // width for n in todo)
    progress = Progress("sort", total, "tok", opts.progress)
    try:
        if opts.workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=min(opts.workers, len(todo))) as pool:
                for shard in pool.map(_sort_one, [str(directory)] * len(todo), todo, [width] * len(todo)):
                    progress.update(state["shards"][shard]["tokenized_bytes"] // width)
        else:
            for shard in todo:
                _sort_one(str(directory), shard, width)
                progress.update(state["shards"][shard]["tokenized_bytes"] // width)
    finally:
        progress.close()
    fsync_dir(directory)
