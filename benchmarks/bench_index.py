"""Index build and query speed: ours (index_tools) vs the reference (infini-gram 2.6), side by side.

For each corpus size (synthetic Zipf u16 tokens, see _common.py), on the very same tokenized.0:
  (a) suffix sort: index_tools.suffix_sort.sort_shard vs infini-gram's builder (rust_indexing through
      `python -m infini_gram.indexing`, --cpus 2 when its parts are large enough); both tables are
      compared byte for byte;
  (b) one count: median latency over ~200 random corpus n-grams of 1-10 tokens, Index.count vs
      InfiniGramEngine.count (and our batched count_many, per query);
  (c) longest matching prefix at every position of a 500-token sequence (half corpus passages,
      half random): Index.longest_prefixes vs infini-gram attribute(ids, [], 1, max_cnt, False),
      median over several sequences;
  (d) index bytes per token (tokenized + table + offset: the same files for both);
  (e) peak RSS per token of the sort: of the whole process tree (the summed RSS of every
      descendant, sampled every 5 ms: what the machine must hold), and of the largest single
      process (ru_maxrss, RUSAGE_CHILDREN). infini-gram's builder sorts its parts in `--cpus`
      concurrent processes, so its largest process holds only a part: the tree is the fair figure.

    python benchmarks/bench_index.py                 # 10M and 100M tokens
    python benchmarks/bench_index.py --sizes 10M     # one size
    python benchmarks/bench_index.py --quick         # 1M tokens, a smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from index_tools.engine import Index  # noqa: E402


class TreePeak:
    """Peak of the summed RSS of all descendants of this process while the block runs.

    Sampled from /proc every `interval` seconds by a thread; a peak shorter than that may be
    missed, so the figure is a lower bound (the sorts hold their peak for most of their run).
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> int:
        parent: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as fh:
                        fields = fh.read().rsplit(b")", 1)[1].split()
                    parent[int(entry)] = int(fields[1])
                except (OSError, IndexError, ValueError):
                    continue
        me = os.getpid()
        total = 0
        for pid in parent:
            q, hops = pid, 0
            while q in parent and q != me and hops < 64:
                q, hops = parent[q], hops + 1
            if q == me and pid != me:
                try:
                    with open(f"/proc/{pid}/statm", "rb") as fh:
                        total += int(fh.read().split()[1]) * self._page
                except (OSError, IndexError, ValueError):
                    continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> TreePeak:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def parallel_sort(c, out: Path, shards: int = 2) -> float:  # type: ignore[no-untyped-def]
    """Split the corpus into `shards` shards at document boundaries, sort them in parallel.

    This is what `tracetui index build --shards 2 --workers 2` does; queries answer the same
    (counts are sums over shards), only the table is split in two.
    """
    from concurrent.futures import ProcessPoolExecutor

    from index_tools.suffix_sort import sort_shard

    out.mkdir(parents=True, exist_ok=True)
    tokens = np.fromfile(c.tokenized, dtype=np.uint8)
    offsets = np.fromfile(c.dir / "offset.0", dtype="<u8")
    cut = int(offsets[len(offsets) // 2])
    parts = [tokens[:cut], tokens[cut:]] if shards == 2 else [tokens]
    for n, part in enumerate(parts):
        part.tofile(out / f"tokenized.{n}")
    del tokens, parts
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=shards) as pool:
        list(pool.map(sort_shard, [out / f"tokenized.{n}" for n in range(shards)],
                      [out / f"table.{n}" for n in range(shards)], [2] * shards))
    elapsed = time.perf_counter() - t
    shutil.rmtree(out)
    return elapsed


def bench_size(n_tokens: int, args: argparse.Namespace) -> dict:
    workdir: Path = args.workdir
    c = C.ensure_corpus(workdir, n_tokens, args.seed)
    tb = c.tokenized.stat().st_size
    res: dict = {"n": n_tokens, "docs": (c.dir / "offset.0").stat().st_size // 8}

    # (a) + (e): sort, each in a fresh child process (page cache warm for both: same file)
    ours_table = c.dir / "table.0"
    ours_table.unlink(missing_ok=True)
    with TreePeak() as tree_ours:
        ours = C.run_our_sort(c, ours_table)
    C.write_our_manifest(c)
    cpus = C.infinigram_cpus(tb, args.ig_cpus)
    ig_dir = workdir / f"ig-{C.size_label(n_tokens)}-s{args.seed}"
    with TreePeak() as tree_ig:
        ig = C.run_infinigram_build(c, ig_dir, cpus, args.ig_mem)
    res.update(sort_ours=ours.seconds, sort_ours_wall=ours.wall, sort_ig=ig.seconds, sort_ig_wall=ig.wall,
               rss_ours=ours.peak_rss, rss_ig=ig.peak_rss, ig_cpus=cpus,
               tree_ours=max(tree_ours.peak, ours.peak_rss), tree_ig=max(tree_ig.peak, ig.peak_rss),
               identical=C.files_equal(ours_table, ig_dir / "table.0"))

    # (a') the builder's answer for 2 cores: 2 shards (split by documents) sorted in parallel
    res["sort_par"] = parallel_sort(c, workdir / f"par-{C.size_label(n_tokens)}")

    # (d) bytes per token
    files = ("tokenized.0", "table.0", "offset.0")
    res["bpt_ours"] = sum((c.dir / f).stat().st_size for f in files) / n_tokens
    res["bpt_ig"] = sum((ig_dir / f).stat().st_size for f in files) / n_tokens
    shutil.rmtree(ig_dir)
    shutil.rmtree(workdir / f"{ig_dir.name}-nodata", ignore_errors=True)

    rng = np.random.default_rng(args.seed + 7)
    queries = C.sample_ngrams(c, rng, args.counts)
    a = time.perf_counter()
    index = Index.open(c.dir)
    index.count(queries[0])  # the first query also builds the per-shard first-token rank table
    b = time.perf_counter()
    eng = C.open_infinigram(c.dir)
    eng.count(queries[0].tolist())
    e = time.perf_counter()
    res["first_ours"], res["first_ig"] = b - a, e - b
    eng0 = C.open_infinigram(c.dir, prefetch=False)

    # (b) single count latency
    for q in queries[:20]:  # warm all (page cache, lazy state)
        index.count(q)
        eng.count(q.tolist())
        eng0.engine.count(input_ids=q.tolist())
    t_ours, t_ig, t_ig0 = [], [], []
    for q in queries:
        a = time.perf_counter()
        n1 = index.count(q)
        b = time.perf_counter()
        n2 = eng.count(q.tolist())["count"]
        e = time.perf_counter()
        eng0.engine.count(input_ids=q.tolist())  # no prefetch, its C++ engine without the Python-side checks
        f = time.perf_counter()
        if n1 != n2:
            raise SystemExit(f"count mismatch on {q.tolist()}: ours {n1}, infini-gram {n2}")
        t_ours.append(b - a)
        t_ig.append(e - b)
        t_ig0.append(f - e)
    a = time.perf_counter()
    index.count_many(queries)
    res["count_batch"] = (time.perf_counter() - a) / len(queries)
    res["count_ours"], res["count_ig"], res["count_ig0"] = C.median(t_ours), C.median(t_ig), C.median(t_ig0)

    # (c) longest prefixes at all positions of a 500-token sequence
    seqs = [C.make_response(c, rng, args.length) for _ in range(args.seqs)]
    lp_ours, lp_ig, lp_ig_cap, lp_ig0, lp_ig0_full, ptrs, ptrs_cap = [], [], [], [], [], [], []
    for ids in seqs:
        a = time.perf_counter()
        lens = index.longest_prefixes(ids)
        b = time.perf_counter()
        spans = eng.attribute(ids.tolist(), [], 1, args.max_cnt, False)["spans"]
        e = time.perf_counter()
        eng.attribute(ids.tolist(), [], 1, 1000, False)
        f = time.perf_counter()
        capped = eng0.attribute(ids.tolist(), [], 1, 1000, False)["spans"]
        g = time.perf_counter()
        eng0.attribute(ids.tolist(), [], 1, args.max_cnt, False)
        lp_ig0_full.append(time.perf_counter() - g)
        ptrs.append(sum(len(s["docs"]) for s in spans))
        ptrs_cap.append(sum(len(s["docs"]) for s in capped))
        lp_ours.append(b - a)
        lp_ig.append(e - b)
        lp_ig_cap.append(f - e)
        lp_ig0.append(g - f)
        # same answer: the reference's maximal spans are (l, l + longest prefix at l)
        ends = np.arange(len(ids)) + lens
        best = np.maximum.accumulate(np.concatenate([[0], ends]))[:-1]
        ours_spans = [(l, int(ends[l])) for l in range(len(ids)) if lens[l] >= 1 and ends[l] > best[l]]
        theirs = [(s["l"], s["r"]) for s in spans]
        if ours_spans != theirs:
            diff = sorted(set(ours_spans) ^ set(theirs))[:5]
            print(f"  note: maximal spans differ at {diff} (rank-0 off-by-one of the reference?)")
    res["lp_ours"], res["lp_ig"], res["lp_ig_cap"] = C.median(lp_ours), C.median(lp_ig), C.median(lp_ig_cap)
    res["lp_ig0"], res["lp_ig0_full"] = C.median(lp_ig0), C.median(lp_ig0_full)
    res["lp_ptrs"], res["lp_ptrs_cap"] = C.median(ptrs), C.median(ptrs_cap)
    res["lp_ours_per_pos"] = res["lp_ours"] / args.length
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10M,100M", help="corpus sizes in tokens, comma-separated (default 10M,100M)")
    p.add_argument("--quick", action="store_true", help="one 1M-token corpus (smoke run)")
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--counts", type=int, default=200, help="n-grams for the count latency")
    p.add_argument("--seqs", type=int, default=5, help="500-token sequences for the longest-prefix batch")
    p.add_argument("--length", type=int, default=500)
    p.add_argument("--max-cnt", type=int, default=2**62, help="attribute max_cnt for (c) (default: huge)")
    p.add_argument("--ig-cpus", type=int, default=2)
    p.add_argument("--ig-mem", type=int, default=None, help="infini-gram --mem GiB (default: one batch)")
    C.add_json_out(p)
    args = p.parse_args(argv)
    out = C.JsonOut("index", args.json_out)
    args.workdir = C.check_workdir(args.workdir)
    sizes = [C.parse_size("1M")] if args.quick else [C.parse_size(s) for s in args.sizes.split(",") if s.strip()]

    import platform

    import infini_gram

    print(f"bench_index: sizes {', '.join(C.size_label(s) for s in sizes)}; {platform.processor() or platform.machine()}, "
          f"{__import__('os').cpu_count()} CPUs; infini-gram {getattr(infini_gram, '__version__', '2.6')}; workdir {args.workdir}")
    results = C.run_sizes(sizes, bench_size, args)

    rows = []
    for r in results:
        lab = C.size_label(r["n"])
        rows += [
            [f"{lab}  (a) suffix sort", C.fmt_s(r["sort_ours"]), C.fmt_s(r["sort_ig"]) + f" ({r['ig_cpus']} cpu)",
             C.ratio(r["sort_ours"], r["sort_ig"])],
            [f"{lab}      incl. process start", C.fmt_s(r["sort_ours_wall"]), C.fmt_s(r["sort_ig_wall"]),
             C.ratio(r["sort_ours_wall"], r["sort_ig_wall"])],
            [f"{lab}      2 shards, 2 workers (build --workers 2)", C.fmt_s(r["sort_par"]), C.fmt_s(r["sort_ig"]),
             C.ratio(r["sort_par"], r["sort_ig"])],
            [f"{lab}      tables byte-identical", "yes" if r["identical"] else "NO", "", ""],
            [f"{lab}  (b) open + first count", C.fmt_s(r["first_ours"]), C.fmt_s(r["first_ig"]),
             C.ratio(r["first_ours"], r["first_ig"])],
            [f"{lab}      count, median of {args.counts}", C.fmt_s(r["count_ours"]), C.fmt_s(r["count_ig"]),
             C.ratio(r["count_ours"], r["count_ig"])],
            [f"{lab}      infini-gram without prefetch, C++ engine direct", "", C.fmt_s(r["count_ig0"]),
             C.ratio(r["count_ours"], r["count_ig0"])],
            [f"{lab}      count_many, per query", C.fmt_s(r["count_batch"]), "-", C.ratio(r["count_batch"], r["count_ig"])],
            [f"{lab}  (c) longest prefixes, {args.length} pos", C.fmt_s(r["lp_ours"]), C.fmt_s(r["lp_ig"]),
             C.ratio(r["lp_ours"], r["lp_ig"])],
            [f"{lab}      no prefetch (same spans; {r['lp_ptrs']:,.0f} doc pointers)", "", C.fmt_s(r["lp_ig0_full"]),
             C.ratio(r["lp_ours"], r["lp_ig0_full"])],
            [f"{lab}      attribute max_cnt=1000", "", C.fmt_s(r["lp_ig_cap"]), C.ratio(r["lp_ours"], r["lp_ig_cap"])],
            [f"{lab}      max_cnt=1000, no prefetch ({r['lp_ptrs_cap']:,.0f} ptrs)", "", C.fmt_s(r["lp_ig0"]),
             C.ratio(r["lp_ours"], r["lp_ig0"])],
            [f"{lab}  (d) index bytes / token", f"{r['bpt_ours']:.3f}", f"{r['bpt_ig']:.3f}", C.ratio(r["bpt_ours"], r["bpt_ig"])],
            [f"{lab}  (e) sort peak RSS / token, process tree", f"{r['tree_ours'] / r['n']:.1f} B",
             f"{r['tree_ig'] / r['n']:.1f} B", C.ratio(r["tree_ours"], r["tree_ig"])],
            [f"{lab}      sort peak RSS, process tree", f"{r['tree_ours'] / 2**20:.0f} MiB",
             f"{r['tree_ig'] / 2**20:.0f} MiB", ""],
            [f"{lab}      largest process / token (ru_maxrss)", f"{r['rss_ours'] / r['n']:.1f} B",
             f"{r['rss_ig'] / r['n']:.1f} B", C.ratio(r["rss_ours"], r["rss_ig"])],
        ]
    C.print_table("ours vs infini-gram (ratio = ours / infini-gram; < 1 means ours is faster/smaller)",
                  ["measure", "ours", "infini-gram", "ratio"], rows)
    out.write(args, results)
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
