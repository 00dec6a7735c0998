"""Shared pieces of the benchmarks: a synthetic corpus, our index over it, infini-gram's builder.

The corpus is a stream of u16 token ids drawn from a Zipf distribution over a ~50k vocabulary,
cut into documents of ~500 tokens (exponential lengths), with passages copied from elsewhere in
the corpus (so that long matches and repeated n-grams exist). It is written directly in the
infini-gram v4 layout (tokenized.0 / offset.0, plus unigram.0 as our builder writes it), so that
both builders sort exactly the same bytes.

The tokenizer is a word-level `tokenizer.json` whose tokens are written as whitespace-separated
strings: "Ġw<id>" for tokens that begin a word (about 70% of the vocabulary), "x<id>" for
continuation tokens, and "." (a delimiter, frequent). Text <-> ids is exact both ways, so a
response can be handed to `Tracer.trace` as text.

Corpora and indexes are cached under --workdir (default $TMPDIR/tracetui-bench), keyed by size
and seed. infini-gram classifies index files by substrings of their *whole path*, so the workdir
must not contain "table", "offset", "tokenized", "metadata", "metaoff" or "unigram".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from index_tools.format import (  # noqa: E402
    MANIFEST_NAME,
    TOKENIZER_NAME,
    Manifest,
    ShardInfo,
    pointer_width,
    write_manifest,
)

VOCAB = 50_000
ZIPF_S = 1.0
DOC_MEAN = 500
SEP = 0xFFFF
DOT_ID = 1
UNK_ID = 0
IG_WORDS = ("tokenized", "table", "offset", "metadata", "metaoff", "unigram")
READY = "READY"


# -- sizes, stats, printing -------------------------------------------------------------------
def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise ValueError(f"bad size {text!r} (e.g. 500K, 10M, 1G)")
    mult = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def size_label(n: int) -> str:
    for unit, mult in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= mult and n % (mult // 10 or 1) == 0:
            v = n / mult
            return f"{v:g}{unit}"
    return str(n)


def median(xs: list[float]) -> float:
    return float(np.median(xs)) if xs else float("nan")


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def fmt_s(sec: float) -> str:
    if sec != sec:
        return "n/a"
    if sec >= 1:
        return f"{sec:.2f} s"
    if sec >= 1e-3:
        return f"{sec * 1e3:.2f} ms"
    return f"{sec * 1e6:.0f} us"


def ratio(ours: float, theirs: float) -> str:
    if not theirs or theirs != theirs or ours != ours:
        return "n/a"
    return f"{ours / theirs:.2f}x"


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for r in rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    sys.stdout.flush()


def default_workdir() -> Path:
    return Path(os.environ.get("TRACETUI_BENCH_DIR", Path(tempfile.gettempdir()) / "tracetui-bench"))


def check_workdir(workdir: Path) -> Path:
    workdir = workdir.resolve()
    bad = [w for w in IG_WORDS if w in str(workdir)]
    if bad:
        sys.exit(f"workdir {workdir} contains {bad}: infini-gram would misread its files; choose another")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


# -- tokenizer --------------------------------------------------------------------------------
def token_strings(vocab: int = VOCAB, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed + 1000)
    cont = rng.random(vocab) < 0.3
    out = []
    for i in range(vocab):
        if i == UNK_ID:
            out.append("[UNK]")
        elif i == DOT_ID:
            out.append(".")
        else:
            out.append(f"x{i}" if cont[i] else f"Ġw{i}")
    return out


def write_tokenizer(path: Path, vocab: int = VOCAB, seed: int = 0) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab={s: i for i, s in enumerate(token_strings(vocab, seed))}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # "Ġ" is a space in byte-level vocabularies: the decoder says so, and word starts follow from it
    tok.decoder = decoders.ByteLevel()
    tok.save(str(path))


# -- corpus -----------------------------------------------------------------------------------
class Zipf:
    """Token ids by Zipf rank; "." is made the 3rd most frequent token, [UNK] never occurs."""

    def __init__(self, vocab: int = VOCAB, s: float = ZIPF_S, seed: int = 0) -> None:
        rng = np.random.default_rng(seed + 2000)
        ids = np.arange(2, vocab)
        rng.shuffle(ids)
        self.by_rank = np.concatenate([ids[:2], [DOT_ID], ids[2:]]).astype(np.uint16)
        p = 1.0 / np.arange(1, len(self.by_rank) + 1) ** s
        self.cdf = np.cumsum(p / p.sum())
        self.cdf[-1] = 1.0

    def sample(self, rng: np.random.Generator, n: int, out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty(n, dtype=np.uint16) if out is None else out
        step = 1 << 23
        for a in range(0, n, step):
            b = min(n, a + step)
            out[a:b] = self.by_rank[np.searchsorted(self.cdf, rng.random(b - a), side="right")]
        return out


def generate_corpus(n_tokens: int, seed: int = 0, copy_fraction: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """(tokenized u16 array with a separator before each document, byte offsets of the separators)."""
    rng = np.random.default_rng(seed)
    lens: list[np.ndarray] = []
    total = 0
    while total < n_tokens:
        chunk = np.maximum(8, rng.exponential(DOC_MEAN, size=max(16, (n_tokens - total) // DOC_MEAN + 16))).astype(np.int64)
        lens.append(chunk)
        total += int((chunk + 1).sum())
    doc_lens = np.concatenate(lens)
    cum = np.cumsum(doc_lens + 1)
    n_docs = int(np.searchsorted(cum, n_tokens)) + 1
    doc_lens = doc_lens[:n_docs]
    doc_lens[-1] -= int(doc_lens.sum() + n_docs - n_tokens)  # exact total size
    if doc_lens[-1] < 1:
        doc_lens = doc_lens[:-1]
        n_docs -= 1
        doc_lens[-1] += n_tokens - int(doc_lens.sum() + n_docs)
    body = Zipf(seed=seed).sample(rng, int(doc_lens.sum()))
    # repeated passages: copy spans of 20-200 tokens to random places (may cross documents)
    n_copy = int(len(body) * copy_fraction / 110)
    if len(body) > 1000:
        for _ in range(n_copy):
            ln = int(rng.integers(20, 200))
            src = int(rng.integers(0, len(body) - ln))
            dst = int(rng.integers(0, len(body) - ln))
            body[dst : dst + ln] = body[src : src + ln]
    sep_pos = np.concatenate([[0], np.cumsum(doc_lens[:-1] + 1)]).astype(np.int64)
    tokens = np.empty(n_tokens, dtype=np.uint16)
    is_sep = np.zeros(n_tokens, dtype=bool)
    is_sep[sep_pos] = True
    tokens[is_sep] = SEP
    tokens[~is_sep] = body
    return tokens, (sep_pos * 2).astype("<u8")


@dataclass
class Corpus:
    dir: Path
    n_tokens: int
    seed: int

    @property
    def tokenized(self) -> Path:
        return self.dir / "tokenized.0"

    @property
    def tokenizer(self) -> Path:
        return self.dir / TOKENIZER_NAME

    def tokens(self) -> np.ndarray:
        return np.memmap(self.tokenized, dtype="<u2", mode="r")

    def offsets(self) -> np.ndarray:
        return np.fromfile(self.dir / "offset.0", dtype="<u8")


def ensure_corpus(workdir: Path, n_tokens: int, seed: int = 0, log=print) -> Corpus:  # type: ignore[no-untyped-def]
    d = workdir / f"corpus-{size_label(n_tokens)}-s{seed}"
    c = Corpus(d, n_tokens, seed)
    if (d / READY).exists():
        return c
    d.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    tokens, offsets = generate_corpus(n_tokens, seed)
    tokens.astype("<u2").tofile(d / "tokenized.0")
    offsets.tofile(d / "offset.0")
    counts = np.bincount(tokens, minlength=SEP + 1)
    nz = np.flatnonzero(counts)
    (d / "unigram.0").write_text("".join(f"{i} {counts[i]}\n" for i in nz), encoding="utf-8")
    write_tokenizer(d / TOKENIZER_NAME, seed=seed)
    (d / READY).write_text(json.dumps({"tokens": n_tokens, "documents": len(offsets), "seed": seed}))
    log(f"[corpus] generated {size_label(n_tokens)} tokens, {len(offsets):,} documents in {time.perf_counter() - t:.1f} s -> {d}")
    return c


def write_our_manifest(c: Corpus) -> None:
    tb = c.tokenized.stat().st_size
    shard = ShardInfo(documents=(c.dir / "offset.0").stat().st_size // 8, tokens=tb // 2, tokenized_bytes=tb,
                      table_bytes=(tb // 2) * pointer_width(tb), pointer_width=pointer_width(tb))
    write_manifest(c.dir, Manifest(token_width=2, tokenizer=TOKENIZER_NAME, shards=[shard], vocab_size=VOCAB,
                                   eos_id=None, build={"benchmark": True, "seed": c.seed}))


def ensure_our_index(c: Corpus, log=print) -> Path:  # type: ignore[no-untyped-def]
    """Our index in the corpus directory: table.0 by our suffix sort, then our manifest."""
    if not (c.dir / "table.0").exists():
        res = run_our_sort(c)
        log(f"[index] our suffix sort of {size_label(c.n_tokens)} tokens: {res.seconds:.1f} s")
    if not (c.dir / MANIFEST_NAME).exists():
        write_our_manifest(c)
    return c.dir


# -- measured subprocesses --------------------------------------------------------------------
_WRAPPER = r"""
import json, resource, subprocess, sys, time
cmd = json.loads(sys.argv[1])
t = time.perf_counter()
p = subprocess.run(cmd, capture_output=True, text=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": p.returncode, "wall": wall, "maxrss_kb": ru.ru_maxrss,
                  "stdout": p.stdout[-4000:], "stderr": p.stderr[-4000:]}))
"""


@dataclass
class Measured:
    seconds: float  # the work itself, as timed inside the child (suffix sort / build_sa)
    wall: float  # the whole child process, interpreter start-up included
    peak_rss: int  # bytes: ru_maxrss of the child and its descendants
    stdout: str


def run_measured(cmd: list[str]) -> tuple[dict, float]:
    """Run cmd in a fresh wrapper process so that RUSAGE_CHILDREN sees only cmd's process tree."""
    out = subprocess.run([sys.executable, "-c", _WRAPPER, json.dumps(cmd)], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    if info["rc"] != 0:
        raise RuntimeError(f"{cmd[:4]}... failed ({info['rc']}):\n{info['stdout']}\n{info['stderr']}")
    return info, info["wall"]


_SORT = (
    "import sys, time; from pathlib import Path; from index_tools.suffix_sort import sort_shard; "
    "t = time.perf_counter(); sort_shard(Path(sys.argv[1]), Path(sys.argv[2]), 2); "
    "print('SORT_SECONDS', time.perf_counter() - t)"
)


def run_our_sort(c: Corpus, table: Path | None = None) -> Measured:
    """Our suffix sort (index_tools.suffix_sort.sort_shard) of tokenized.0, in a child process."""
    table = table or c.dir / "table.0"
    tmp = table.with_name(table.name + ".partial")
    info, wall = run_measured([sys.executable, "-c", _SORT, str(c.tokenized), str(tmp)])
    os.replace(tmp, table)
    secs = float(re.search(r"SORT_SECONDS ([0-9.eE+-]+)", info["stdout"]).group(1))  # type: ignore[union-attr]
    return Measured(secs, wall, info["maxrss_kb"] * 1024, info["stdout"])


def nofile_limit() -> int:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 20000 if hard == resource.RLIM_INFINITY else min(20000, hard)


def infinigram_cpus(tokenized_bytes: int, wanted: int = 2) -> int:
    """infini-gram's parts overlap by 100,000 bytes; parts smaller than that corrupt the table."""
    cpus = wanted
    while cpus > 1 and tokenized_bytes // cpus < 400_000:
        cpus -= 1
    return cpus


def run_infinigram_build(c: Corpus, out: Path, cpus: int, mem_gb: int | None = None) -> Measured:
    """infini-gram's builder (rust_indexing via `python -m infini_gram.indexing`) on the same tokenized.0."""
    import shutil

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    os.link(c.tokenized, out / "tokenized.0")  # same bytes, no copy; infini-gram only reads it
    shutil.copyfile(c.dir / "offset.0", out / "offset.0")
    data = out.parent / (out.name + "-nodata")
    data.mkdir(exist_ok=True)
    tb = c.tokenized.stat().st_size
    mem = mem_gb or max(1, -(-tb * 8 // (1 << 30)))  # one batch of `cpus` parts, as a user would set it
    cmd = [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(data), "--save_dir", str(out),
           "--token_dtype", "u16", "--cpus", str(cpus), "--mem", str(mem), "--ulimit", str(nofile_limit())]
    info, wall = run_measured(cmd)
    m = re.search(r"Step 2 \(build_sa\): Done\. Took ([0-9.]+) seconds", info["stdout"])
    secs = float(m.group(1)) if m else wall
    return Measured(secs, wall, info["maxrss_kb"] * 1024, info["stdout"])


def files_equal(a: Path, b: Path, chunk: int = 1 << 24) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(chunk), fb.read(chunk)
            if x != y:
                return False
            if not x:
                return True


# -- queries ----------------------------------------------------------------------------------
def sample_ngrams(c: Corpus, rng: np.random.Generator, n: int, min_len: int = 1, max_len: int = 10) -> list[np.ndarray]:
    """n-grams taken from the corpus at random places (never across a document separator)."""
    toks = c.tokens()
    out: list[np.ndarray] = []
    while len(out) < n:
        ln = int(rng.integers(min_len, max_len + 1))
        p = int(rng.integers(0, len(toks) - ln))
        q = np.asarray(toks[p : p + ln], dtype=np.int64)
        if not np.any(q == SEP):
            out.append(q)
    return out


def make_response(c: Corpus, rng: np.random.Generator, length: int = 500, copied: float = 0.5) -> np.ndarray:
    """About `copied` of the tokens copied from corpus passages (8-80 tokens each), the rest Zipf-random."""
    return mixed_response(c.tokens(), Zipf(seed=c.seed), rng, SEP, length, copied)


def mixed_response(tokens: np.ndarray, zipf: Zipf, rng: np.random.Generator, drop: int, length: int = 500,
                   copied: float = 0.5) -> np.ndarray:
    """Passages of `tokens` (with the `drop` id removed) mixed with Zipf-random pieces."""
    parts: list[np.ndarray] = []
    n_copied = n_random = 0
    while n_copied + n_random < length:
        if n_copied < copied * length and (n_random >= (1 - copied) * length or rng.random() < 0.5):
            ln = int(rng.integers(8, 80))
            p = int(rng.integers(0, len(tokens) - ln))
            piece = np.asarray(tokens[p : p + ln], dtype=np.int64)
            piece = piece[piece != drop]
            n_copied += len(piece)
        else:
            piece = zipf.sample(rng, int(rng.integers(4, 40))).astype(np.int64)
            n_random += len(piece)
        parts.append(piece)
    return np.concatenate(parts)[:length]


def run_sizes(sizes: list[int], bench_size, args) -> list[dict]:  # type: ignore[no-untyped-def]
    """Run one benchmark per corpus size, saying how long each took."""
    results = []
    for n in sizes:
        t = time.perf_counter()
        results.append(bench_size(n, args))
        print(f"[{size_label(n)}] done in {time.perf_counter() - t:.1f} s")
    return results


def decode(c: Corpus, ids: np.ndarray) -> str:
    strings = token_strings(seed=c.seed)
    return " ".join(strings[int(i)] for i in ids)


def write_bow_file(c: Corpus, path: Path) -> Path:
    """Word-start ids for infini-gram's bow_ids_path, from our tokenizer's mask (kept out of the index dir)."""
    from index_tools.tokenizer import load_tokenizer, write_word_start_ids

    write_word_start_ids(load_tokenizer(c.tokenizer), path)
    return path


def open_infinigram(directory: Path, bow: Path | None = None, prefetch: bool = True):  # type: ignore[no-untyped-def]
    """infini-gram's engine; prefetch=False turns off its madvise(WILLNEED) prefetching (made for
    indexes on disk; on a page-cached index it only costs system calls)."""
    from infini_gram.engine import InfiniGramEngine

    depth = {} if prefetch else {"ds_prefetch_depth": 0, "sa_prefetch_depth": 0, "od_prefetch_depth": 0}
    return InfiniGramEngine(index_dir=str(directory), eos_token_id=UNK_ID, vocab_size=65535, token_dtype="u16",
                            bow_ids_path=str(bow) if bow else None, **depth)


# -- results as JSON --------------------------------------------------------------------------
def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def git_commit() -> dict:
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()

    pinned = os.environ.get("TRACETUI_BENCH_COMMIT")  # run_all.py --rev: this tree is `git archive` of it
    if pinned:
        return {"commit": pinned, "subject": git("log", "-1", "--format=%s", pinned)[:120], "engine_dirty": False,
                "extracted": True}

    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "index_tools", "tracetui")
    return {"commit": git("rev-parse", "HEAD"), "subject": git("log", "-1", "--format=%s")[:120],
            "engine_dirty": bool(dirty)}


def versions() -> dict:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for name in ("infini-gram", "ray", "starlette", "uvicorn", "tokenizers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    import platform

    def meminfo(key: str) -> int:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        return -1

    return {"cpus": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine(),
            "mem_total": meminfo("MemTotal")}


class JsonOut:
    """Figures of one benchmark script as JSON: settings, commit, date, machine load before/after."""

    def __init__(self, bench: str, path: Path | None) -> None:
        self.bench, self.path = bench, path
        self.t0 = time.perf_counter()
        self.meta = {"bench": bench, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **git_commit(),
                     "versions": versions(), "machine": machine(), "load_before": loadavg(), "uptime_before": uptime(),
                     "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}

    def write(self, settings: object, results: object, **extra: object) -> None:
        if self.path is None:
            return
        if not isinstance(settings, dict):
            settings = {k: v for k, v in vars(settings).items() if k not in ("json_out",)}
        meta = {**self.meta, "load_after": loadavg(), "uptime_after": uptime(),
                "seconds": round(time.perf_counter() - self.t0, 1), "settings": settings}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".partial")
        tmp.write_text(json.dumps({"meta": meta, "results": results, **extra}, indent=1, default=_json_default) + "\n",
                       encoding="utf-8")
        os.replace(tmp, self.path)


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def add_json_out(p) -> None:  # type: ignore[no-untyped-def]
    p.add_argument("--json-out", type=Path, default=None, help="also write the figures (and settings, commit, load) as JSON")
