"""Scale: build and query synthetic indexes of 10M, 100M and 1B tokens with OUR builder, end to end.

For each size (synthetic Zipf u16 tokens as in _common.py, ~500-token documents, 3% copied passages):
  1. the corpus is generated in chunks of 50M tokens straight into a raw `corpus.u16` file, every
     document followed by an eos id (0, the tokenizer's [UNK], which the Zipf sampler never emits);
  2. `index_tools.builder.build_index([corpus.u16], out, BuildOptions(tokenizer=<word-level
     tokenizer.json from _common>, eos_id=0, workers=2))` (default --memory: shards sized by the
     available RAM) runs in a child process. Its tokenize and sort phases are timed inside the
     child (wrapping builder._tokenize_phase / _sort_phase); "other" is the rest (tokenizer copy,
     SHA-256 of every file for the manifest). Memory: the child's rusage from os.wait4 (ru_maxrss
     = the largest single process of the tree: the child or one sort worker, which it waits for),
     and the tree's summed PSS / anonymous memory sampled from /proc every 0.5 s (the sort
     workers run concurrently, so the sum is the real peak). Exit status, SwapTotal, swap-outs and
     OOM kills (from /proc/vmstat) and the lowest MemAvailable during the build are printed;
  3. index size: all files of the index directory per token, and the core files (tokenized +
     table + offset) per token;
  4. queries on the page-cache-warm index: Index.open + first count; one count (median over 200
     random corpus n-grams of 1-10 tokens); Index.longest_prefixes over all positions of a
     500-token sequence (half corpus passages, median of 5); Tracer.trace of a 500-token response
     decoded to text (fresh Tracer each, median of 3).

    python benchmarks/bench_scale.py                       # 10M, 100M, 1B (1B: ~20-30 min, ~11 GB disk)
    python benchmarks/bench_scale.py --sizes 10M,100M      # what run_all.py runs
    python benchmarks/bench_scale.py --sizes 10M,100M
    python benchmarks/bench_scale.py --workdir /big/disk --keep

The corpus and index of each size are deleted once it is measured (unless --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

EOS = C.UNK_ID  # the document terminator in corpus.u16: [UNK] never occurs in the synthetic corpus
CHUNK = 50_000_000
CORE_FILES = ("tokenized", "table", "offset")


# -- sizes ------------------------------------------------------------------------------------
def parse_size(text: str) -> int:
    t = text.strip()
    if t[-1:] in "bB":  # 1B = one billion
        t = t[:-1] + "G"
    return C.parse_size(t)


def label(n: int) -> str:
    return C.size_label(n).replace("G", "B")


def fmt_bytes(n: float) -> str:
    for unit, mult in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= mult:
            return f"{n / mult:.2f} {unit}" if unit == "GiB" else f"{n / mult:.0f} {unit}"
    return f"{n:.0f} B"


# -- corpus -----------------------------------------------------------------------------------
def write_corpus(path: Path, n_tokens: int, seed: int, chunk: int = CHUNK) -> int:
    """n_tokens u16 ids (eos included) into `path`, generated `chunk` tokens at a time; returns #docs.

    Document lengths are exponential (mean C.DOC_MEAN, at least 8); a document may straddle two
    chunks. In each chunk 3% of the tokens are overwritten by passages of 20-200 tokens copied
    from elsewhere in the chunk (repeated n-grams and long matches), before the eos ids go in.
    """
    rng = np.random.default_rng(seed)
    zipf = C.Zipf(seed=seed)
    tmp = path.with_name(path.name + ".partial")
    docs = 0
    written = 0
    # global positions of the eos ids still to be written, ascending (one document: len >= 8, then eos)
    upcoming = np.array([max(8, int(rng.exponential(C.DOC_MEAN)))], dtype=np.int64)
    with open(tmp, "wb") as fh:
        while written < n_tokens:
            m = min(chunk, n_tokens - written)
            buf = zipf.sample(rng, m)
            for _ in range(int(m * 0.03 / 110) if m > 1000 else 0):
                ln = int(rng.integers(20, 200))
                src, dst = (int(x) for x in rng.integers(0, m - ln, size=2))
                buf[dst : dst + ln] = buf[src : src + ln]
            while upcoming[-1] < written + m:
                lens = np.maximum(8, rng.exponential(C.DOC_MEAN, size=m // C.DOC_MEAN + 16)).astype(np.int64)
                upcoming = np.concatenate([upcoming, upcoming[-1] + np.cumsum(lens + 1)])
            k = int(np.searchsorted(upcoming, written + m))
            p = upcoming[:k] - written
            upcoming = upcoming[k:]
            buf[p] = EOS
            docs += len(p)
            if written + m == n_tokens and buf[-1] != EOS:  # terminate the last document
                if m >= 2 and buf[-2] == EOS:  # ... without leaving an empty one
                    buf[-2] = 2
                    docs -= 1
                buf[-1] = EOS
                docs += 1
            fh.write(buf.astype("<u2").tobytes())
            written += m
    os.replace(tmp, path)
    return docs


def sample_ngrams(tokens: np.ndarray, rng: np.random.Generator, n: int, lo: int = 1, hi: int = 10) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    while len(out) < n:
        ln = int(rng.integers(lo, hi + 1))
        p = int(rng.integers(0, len(tokens) - ln))
        q = np.asarray(tokens[p : p + ln], dtype=np.int64)
        if not np.any(q == EOS):
            out.append(q)
    return out


# -- the build, in a child process ------------------------------------------------------------
def child_build(argv: list[str]) -> int:
    """--child-build INPUT OUT TOKENIZER EOS WORKERS MEMORY_GB|-: build, print one JSON line."""
    import resource

    import index_tools.builder as B

    src, out, tok, eos, workers, mem = argv
    times: dict[str, float] = {}

    def timed(name, fn):  # type: ignore[no-untyped-def]
        def run(*a, **k):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                times[name] = times.get(name, 0.0) + time.perf_counter() - t
        return run

    B._tokenize_phase = timed("tokenize", B._tokenize_phase)  # type: ignore[assignment]
    B._sort_phase = timed("sort", B._sort_phase)  # type: ignore[assignment]
    opts = B.BuildOptions(tokenizer=tok, eos_id=int(eos), workers=int(workers),
                          memory_gb=None if mem == "-" else float(mem), force=True)
    capacity = B.shard_capacity_bytes(opts.memory_gb, opts.workers)
    t = time.perf_counter()
    m = B.build_index([src], out, opts)
    total = time.perf_counter() - t
    print(json.dumps({
        "total": total, "tokenize": times.get("tokenize", 0.0), "sort": times.get("sort", 0.0),
        "shards": len(m.shards), "tokens": sum(s.tokens for s in m.shards), "docs": sum(s.documents for s in m.shards),
        "shard_tokens": [s.tokens for s in m.shards], "capacity": capacity,
        "self_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "children_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }), flush=True)
    return 0


def _meminfo(key: str) -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return -1


def _vmstat() -> dict[str, int]:
    out = {}
    with open("/proc/vmstat") as fh:
        for line in fh:
            k, v = line.split()
            out[k] = int(v)
    return out


def _tree(root: int) -> list[int]:
    """root and its descendants (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _mem_of(pid: int) -> tuple[int, int, int]:
    """(Rss, Pss, Pss_Anon or Anonymous) in bytes; zeros if the process is gone."""
    vals = {"Rss": 0, "Pss": 0, "Pss_Anon": -1, "Anonymous": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                k, _, rest = line.partition(":")
                if k in vals:
                    vals[k] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        return 0, 0, 0
    anon = vals["Pss_Anon"] if vals["Pss_Anon"] >= 0 else vals["Anonymous"]
    return vals["Rss"], vals["Pss"], anon


class TreeSampler(threading.Thread):
    """Every `period` s: summed Rss / Pss / anonymous memory of a process tree, and MemAvailable."""

    def __init__(self, root: int, period: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.period = root, period
        self.stop = threading.Event()
        self.peak_rss = self.peak_pss = self.peak_anon = self.peak_proc_rss = 0
        self.peak_procs = 0
        self.min_avail = _meminfo("MemAvailable")
        self.samples = 0

    def run(self) -> None:
        while not self.stop.is_set():
            pids = _tree(self.root)
            mems = [_mem_of(p) for p in pids]
            self.peak_rss = max(self.peak_rss, sum(m[0] for m in mems))
            self.peak_pss = max(self.peak_pss, sum(m[1] for m in mems))
            self.peak_anon = max(self.peak_anon, sum(m[2] for m in mems))
            self.peak_proc_rss = max([self.peak_proc_rss] + [m[0] for m in mems])
            self.peak_procs = max(self.peak_procs, sum(1 for m in mems if m[0]))
            self.min_avail = min(self.min_avail, _meminfo("MemAvailable"))
            self.samples += 1
            self.stop.wait(self.period)


def run_build(src: Path, out: Path, tokenizer: Path, workers: int, memory: float | None, log: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-build", str(src), str(out), str(tokenizer),
           str(EOS), str(workers), "-" if memory is None else str(memory)]
    vm0 = _vmstat()
    t = time.perf_counter()
    with open(log, "w") as out_fh, open(log.with_suffix(".err"), "w") as err_fh:
        proc = subprocess.Popen(cmd, stdout=out_fh, stderr=err_fh)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    sampler.stop.set()
    sampler.join()
    vm1 = _vmstat()
    res = {"rc": proc.returncode, "wall": wall, "ru_maxrss": ru.ru_maxrss * 1024,
           "tree_rss": sampler.peak_rss, "tree_pss": sampler.peak_pss, "tree_anon": sampler.peak_anon,
           "proc_rss": sampler.peak_proc_rss, "procs": sampler.peak_procs, "min_avail": sampler.min_avail,
           "samples": sampler.samples, "pswpout": vm1.get("pswpout", 0) - vm0.get("pswpout", 0),
           "oom_kill": vm1.get("oom_kill", 0) - vm0.get("oom_kill", 0)}
    lines = log.read_text().strip().splitlines()
    if proc.returncode == 0 and lines:
        res.update(json.loads(lines[-1]))
    res["stderr"] = log.with_suffix(".err").read_text()[-3000:]
    return res


def warm_files(directory: Path) -> int:
    """Read the core index files once (into the page cache); returns the bytes read."""
    buf = bytearray(1 << 24)
    total = 0
    for p in sorted(directory.iterdir()):
        if p.name.split(".")[0] in CORE_FILES:
            with open(p, "rb", buffering=0) as fh:
                while n := fh.readinto(buf):
                    total += n
    return total


# -- one size ---------------------------------------------------------------------------------
def bench_size(n: int, args: argparse.Namespace) -> dict:
    from index_tools.engine import Index
    from tracetui.tracing.pipeline import Tracer

    base = args.workdir / f"scale-{label(n)}-s{args.seed}"
    if base.exists():
        shutil.rmtree(base)
    (base / "input").mkdir(parents=True)
    src = base / "input" / "corpus.u16"
    tok = base / "input" / "tokenizer.json"
    C.write_tokenizer(tok, seed=args.seed)
    t = time.perf_counter()
    n_docs = write_corpus(src, n, args.seed)
    res: dict = {"n": n, "gen": time.perf_counter() - t, "gen_docs": n_docs}
    print(f"[{label(n)}] corpus: {n:,} tokens, {n_docs:,} documents in {res['gen']:.1f} s", flush=True)

    out = base / "index"
    b = run_build(src, out, tok, args.workers, args.memory, base / "build.log")
    res.update(b)
    print(f"[{label(n)}] build: rc {b['rc']}, {b['wall']:.1f} s wall"
          + (f", {b['shards']} shard(s) of {b['shard_tokens']} tokens (capacity {b['capacity']:,} B/shard)"
             if b["rc"] == 0 else ""), flush=True)
    if b["rc"] != 0:
        print(b["stderr"], file=sys.stderr)
        return res
    if b["tokens"] != n:
        print(f"  WARNING: index has {b['tokens']:,} tokens, corpus {n:,} (+1 separator per document expected)")

    files = [p for p in out.iterdir() if p.is_file()]
    res["bpt_all"] = sum(p.stat().st_size for p in files) / n
    res["bpt_core"] = sum(p.stat().st_size for p in files if p.name.split(".")[0] in CORE_FILES) / n
    res["disk"] = sum(p.stat().st_size for p in files)

    # This VM's page cache drains within minutes (virtio balloon), so the core files are read
    # once right before the queries; "1st" = first run of each query (pages in the page cache
    # but not yet mapped into this process), "rep" = the same inputs again (pages mapped).
    a = time.perf_counter()
    res["warm_bytes"] = warm_files(out)
    res["warm_s"] = time.perf_counter() - a
    tokens = np.memmap(src, dtype="<u2", mode="r")
    rng = np.random.default_rng(args.seed + 7)
    queries = sample_ngrams(tokens, rng, args.counts)
    warmup = sample_ngrams(tokens, rng, 20)
    a = time.perf_counter()
    index = Index.open(out)
    index.count(warmup[0])
    res["first"] = time.perf_counter() - a
    for q in warmup:
        index.count(q)
    for tag in ("1st", "rep"):
        lat = []
        for q in queries:
            a = time.perf_counter()
            index.count(q)
            lat.append(time.perf_counter() - a)
        res[f"count_{tag}"] = C.median(lat)
        res[f"count_p95_{tag}"] = C.pct(lat, 95)

    zipf = C.Zipf(seed=args.seed)
    seqs = [C.mixed_response(tokens, zipf, rng, EOS, args.length) for _ in range(args.seqs)]
    for tag in ("1st", "rep"):
        lat = []
        for ids in seqs:
            a = time.perf_counter()
            index.longest_prefixes(ids)
            lat.append(time.perf_counter() - a)
        res[f"lp_{tag}"] = C.median(lat)

    strings = C.token_strings(seed=args.seed)
    lat1, lat2, n_spans = [], [], []
    for ids in [C.mixed_response(tokens, zipf, rng, EOS, args.length) for _ in range(args.traces)]:
        text = " ".join(strings[int(i)] for i in ids)
        assert np.array_equal(index.encode(text), ids), "tokenizer round trip broken"
        for lat in (lat1, lat2):  # a fresh Tracer each time: its caches are always cold
            tracer = Tracer([index])
            a = time.perf_counter()
            r = tracer.trace(text)
            lat.append(time.perf_counter() - a)
        n_spans.append(len(r.spans))
    res["trace_1st"], res["trace_rep"] = C.median(lat1), C.median(lat2)
    res["trace_spans"] = C.median(n_spans)
    del index, tokens
    if not args.keep:
        shutil.rmtree(base)
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-build"]:
        return child_build(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10M,100M,1B", help="corpus sizes in tokens (K/M/B or G), comma-separated")
    p.add_argument("--workdir", type=Path, default=C.default_workdir().with_name("tracetui-bench-scale"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="build --workers (default 2)")
    p.add_argument("--memory", type=float, default=None, help="build --memory GiB (default: the builder's, 60%% of MemAvailable)")
    p.add_argument("--counts", type=int, default=200)
    p.add_argument("--seqs", type=int, default=5)
    p.add_argument("--traces", type=int, default=3)
    p.add_argument("--length", type=int, default=500)
    p.add_argument("--keep", action="store_true", help="keep each size's corpus and index")
    C.add_json_out(p)
    args = p.parse_args(argv)
    out = C.JsonOut("scale", args.json_out)
    args.workdir = C.check_workdir(args.workdir)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]

    du = shutil.disk_usage(args.workdir)
    print(f"bench_scale: sizes {', '.join(label(s) for s in sizes)}; {os.cpu_count()} CPUs, "
          f"MemTotal {fmt_bytes(_meminfo('MemTotal'))}, MemAvailable {fmt_bytes(_meminfo('MemAvailable'))}, "
          f"SwapTotal {fmt_bytes(_meminfo('SwapTotal'))}; workdir {args.workdir} ({fmt_bytes(du.free)} free); "
          f"build --workers {args.workers}, --memory {args.memory or 'default'}", flush=True)
    results = []
    t0 = time.perf_counter()
    for n in sizes:
        t = time.perf_counter()
        results.append(bench_size(n, args))
        print(f"[{label(n)}] done in {time.perf_counter() - t:.1f} s", flush=True)

    rows = []
    for r in results:
        if r["rc"] != 0:
            rows.append([label(r["n"]), f"FAILED rc {r['rc']}"] + [""] * 14)
            continue
        other = r["total"] - r["tokenize"] - r["sort"]
        rows.append([
            label(r["n"]), f"{r['docs']:,}", str(r["shards"]), C.fmt_s(r["wall"]), C.fmt_s(r["tokenize"]),
            C.fmt_s(r["sort"]), C.fmt_s(other), fmt_bytes(r["tree_pss"]), fmt_bytes(r["tree_anon"]),
            fmt_bytes(r["ru_maxrss"]), f"{r['bpt_all']:.2f}", f"{r['bpt_core']:.2f}",
            C.fmt_s(r["first"]), f"{C.fmt_s(r['count_1st'])} / {C.fmt_s(r['count_rep'])}",
            f"{C.fmt_s(r['lp_1st'])} / {C.fmt_s(r['lp_rep'])}", f"{C.fmt_s(r['trace_1st'])} / {C.fmt_s(r['trace_rep'])}",
        ])
    C.print_table(
        f"our builder end to end (raw .u16 + eos, --workers {args.workers}, --memory {args.memory or 'default'}) "
        "and queries (index files read just before; 1st run / repeat)",
        ["size", "docs", "shards", "build wall", "tokenize", "sort", "other", "peak PSS tree", "peak anon tree",
         "ru_maxrss", "B/tok all", "B/tok core", "open+1st", "count med 1st/rep", f"lp{args.length} med 1st/rep",
         "trace med 1st/rep"],
        rows)
    print("\nbuild health (swap / OOM / memory) and the rusage check:")
    for r in results:
        print(f"  {label(r['n'])}: exit status {r['rc']}; SwapTotal {fmt_bytes(_meminfo('SwapTotal'))}, "
              f"pswpout +{r['pswpout']}, oom_kill +{r['oom_kill']}; min MemAvailable {fmt_bytes(r['min_avail'])}; "
              f"peak summed RSS {fmt_bytes(r['tree_rss'])} over <= {r['procs']} processes ({r['samples']} samples); "
              f"largest sampled process RSS {fmt_bytes(r['proc_rss'])} vs wait4 ru_maxrss {fmt_bytes(r['ru_maxrss'])}"
              + (f" (child itself {fmt_bytes(r['self_maxrss_kb'] * 1024)}, its workers "
                 f"{fmt_bytes(r['children_maxrss_kb'] * 1024)})" if r["rc"] == 0 else ""))
    for r in results:
        if r["rc"] == 0:
            print(f"  {label(r['n'])}: corpus generation {r['gen']:.1f} s; index {fmt_bytes(r['disk'])}; "
                  f"read {fmt_bytes(r['warm_bytes'])} of core files in {r['warm_s']:.1f} s before the queries; "
                  f"count p95 {C.fmt_s(r['count_p95_1st'])} / {C.fmt_s(r['count_p95_rep'])}; "
                  f"trace kept {r['trace_spans']:.0f} spans")
    print(f"total wall time {time.perf_counter() - t0:.1f} s")
    out.write(args, results, swap_total=_meminfo("SwapTotal"))
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
