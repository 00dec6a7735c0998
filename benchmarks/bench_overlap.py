"""Overlap reports: items per second, ours vs counting every word n-gram with infini-gram, one run.

    python benchmarks/bench_overlap.py                  # 100M tokens, 1,000 items of ~100 words
    python benchmarks/bench_overlap.py --sizes 10M --items 200

Items are ~140 tokens (~100 words of the synthetic vocabulary, see _common.py): a third new text,
a third 30% copied from corpus passages, a third copied whole. The index files are read once before
timing (both engines use the same files). Ours: `tracetui overlap`'s engine (`run_overlap`: per item the whole-word
13-gram share, coverage by matches of at least 13 tokens, the longest match, its count and three
documents), batches of 256 items. infini-gram (no prefetch): `count` of every distinct 13-gram of
the items, deduplicated before the clock starts, its C++ engine called directly (it has no
batched count; the usual contamination
check; substring counts, so it can only find as many n-grams as ours or more). Counting every
n-gram, duplicates included, is also timed, for the record.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from index_tools.engine import Index  # noqa: E402
from tracetui.overlap.items import Item  # noqa: E402
from tracetui.overlap.report import OverlapParams, run_overlap  # noqa: E402
from tracetui.tracing.spans import word_starts  # noqa: E402


def bench_size(n_tokens: int, args: argparse.Namespace) -> dict:
    c = C.ensure_corpus(args.workdir, n_tokens, args.seed)
    C.ensure_our_index(c)
    index = Index.open(c.dir)
    eng = C.open_infinigram(c.dir, prefetch=False)  # its fastest fair setting on a page-cached index
    rng = np.random.default_rng(args.seed + 11)
    # a third of the items new text, a third partly copied, a third copied whole
    item_ids = [C.make_response(c, rng, args.tokens, copied=float(rng.choice([0.0, 0.3, 1.0])))
                for _ in range(args.items)]
    for f in sorted(c.dir.glob("*.0")):  # both engines read the same files: page them in first
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    items = [Item("bench", k + 1, str(k), C.decode(c, ids)) for k, ids in enumerate(item_ids)]
    params = OverlapParams(n=args.n)
    run_overlap([index], items[:10], params)  # warm the page cache and the tokenizer
    a = time.perf_counter()
    reports = list(run_overlap([index], items, params))
    t_ours = time.perf_counter() - a
    # infini-gram: count every word n-gram, the same n-grams as ours (words: word starts whose
    # run up to the next one holds a word character), listed before the clock starts
    grams = []
    for item in items:
        ids = index.encode(item.text)
        bow = word_starts(index, ids)
        bow[0] = True
        starts = np.flatnonzero(bow).tolist()
        ends = starts[1:] + [len(ids)]
        words = [(a, b) for a, b in zip(starts, ends, strict=True)
                 if any(ch.isalnum() or ch == "_" for ch in index.tokenizer.decode(ids[a:b]))]
        w_end = [w[0] for w in words[1:]] + [len(ids)]
        for i in range(max(1, len(words) - args.n + 1)):
            j = min(i + args.n, len(words)) - 1
            grams.append(ids[words[i][0] : w_end[j]].tolist())
    # infini-gram has no batched count: one `count` call per n-gram. Fair counterpart: each distinct
    # n-gram counted once (deduplicated before the clock starts), then mapped back to the items.
    distinct = sorted({tuple(g) for g in grams})
    # its C++ engine called directly: no Python-side argument check per call
    raw = eng.engine
    as_lists = [list(g) for g in distinct]
    for g in grams[: 10 * max(1, len(grams) // len(items))]:  # warm-up, as ours had 10 items
        raw.count(input_ids=g)
    a = time.perf_counter()
    found_set = {g for g, q in zip(distinct, as_lists, strict=True) if raw.count(input_ids=q).count > 0}
    t_ig = time.perf_counter() - a
    ig_found = sum(tuple(g) in found_set for g in grams)
    ig_total = len(grams)
    # the earlier headline, for the record: every n-gram of every item counted, duplicates included,
    # through the Python wrapper
    a = time.perf_counter()
    for g in grams:
        eng.count(input_ids=g)
    t_ig_all = time.perf_counter() - a
    ours_found = sum(r.ngrams_found for r in reports)
    ours_total = sum(r.ngrams for r in reports)
    verdicts = {v: sum(r.verdict == v for r in reports) for v in ("clean", "suspicious", "contaminated")}
    return {"n": n_tokens, "ours": t_ours, "ig": t_ig, "ig_all": t_ig_all, "ig_distinct": len(distinct),
            "ig_distinct_found": len(found_set), "items": len(items), "ours_found": ours_found,
            "ours_total": ours_total, "ig_found": ig_found, "ig_total": ig_total, "verdicts": verdicts,
            "words": float(np.mean([r.words for r in reports]))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100M")
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--tokens", type=int, default=140, help="tokens per item (~100 words)")
    p.add_argument("-n", type=int, default=13)
    C.add_json_out(p)
    args = p.parse_args(argv)
    out = C.JsonOut("overlap", args.json_out)
    args.workdir = C.check_workdir(args.workdir)
    results = C.run_sizes([C.parse_size(s) for s in args.sizes.split(",") if s.strip()], bench_size, args)
    rows = []
    for r in results:
        lab = C.size_label(r["n"])
        rows += [
            [f"{lab}  {r['items']:,} items of ~{r['words']:.0f} words: time", C.fmt_s(r["ours"]), C.fmt_s(r["ig"]),
             C.ratio(r["ours"], r["ig"])],
            [f"{lab}    items per second", f"{r['items'] / r['ours']:,.0f}", f"{r['items'] / r['ig']:,.0f}", ""],
            [f"{lab}    infini-gram count calls: distinct n-grams (of all)", "", f"{r['ig_distinct']:,} ({r['ig_total']:,})", ""],
            [f"{lab}    infini-gram, every n-gram counted (duplicates too)", "", C.fmt_s(r["ig_all"]),
             C.ratio(r["ours"], r["ig_all"])],
            [f"{lab}    {args.n}-grams found (ours: whole words; infini-gram: substrings)",
             f"{r['ours_found']:,} of {r['ours_total']:,}", f"{r['ig_found']:,} of {r['ig_total']:,}", ""],
            [f"{lab}    verdicts clean / suspicious / contaminated",
             " / ".join(str(r["verdicts"][v]) for v in ("clean", "suspicious", "contaminated")), "", ""],
        ]
    C.print_table("overlap reports: ours (everything per item) vs infini-gram count of every n-gram "
                  "(ratio = ours / infini-gram)", ["measure", "ours", "infini-gram", "ratio"], rows)
    out.write(args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
