"""Overlap reports: items per second, ours vs counting every word n-gram with infini-gram, one run;
exact vs normalized vs near-verbatim on the same items; the cost of near-verbatim spans per
500-token reply next to the exact trace.

    python benchmarks/bench_overlap.py                  # 100M tokens, 1,000 items of ~100 words
    python benchmarks/bench_overlap.py --sizes 10M --items 200
    python benchmarks/bench_overlap.py --parts variants,trace   # the near-verbatim parts only

Parts (`--parts`, all by default):

* `ig`: the comparison below, ours timed with and without near-verbatim coverage;
* `variants`: items cut from the default corpus (the standard library's sources and pydoc
  topics: wrapped, indented text), each in five versions -- verbatim, re-flowed onto one line,
  re-flowed and lowercased, one word in ten changed, and the same words shuffled (novel) --
  measured on a verbatim index (exact coverage, near-verbatim coverage) and on a `words`-normalized
  index of the same files (coverage over normalized words), verdicts per version;
* `trace`: 500-token replies against the 100M-token index (half corpus passages, as in
  bench_trace.py; and corpus passages with one word in fifty changed), a fresh `Tracer` each:
  `trace(text)` vs `trace(text, near=True)`, median over the replies.

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
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from index_tools.builder import BuildOptions, build_index  # noqa: E402
from index_tools.engine import Index  # noqa: E402
from index_tools.opening import open_index  # noqa: E402
from tracetui.overlap.items import Item  # noqa: E402
from tracetui.overlap.report import OverlapParams, run_overlap  # noqa: E402
from tracetui.tracing.pipeline import Tracer  # noqa: E402
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
    a = time.perf_counter()
    list(run_overlap([index], items, OverlapParams(n=args.n, near=False)))
    t_exact = time.perf_counter() - a
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
    return {"n": n_tokens, "ours": t_ours, "ours_exact": t_exact, "ig": t_ig,
            "near_coverage": float(np.mean([r.near_coverage for r in reports])),
            "coverage": float(np.mean([r.coverage for r in reports])), "ig_all": t_ig_all, "ig_distinct": len(distinct),
            "ig_distinct_found": len(found_set), "items": len(items), "ours_found": ours_found,
            "ours_total": ours_total, "ig_found": ig_found, "ig_total": ig_total, "verdicts": verdicts,
            "words": float(np.mean([r.words for r in reports]))}


VARIANTS = ("verbatim", "re-flowed", "re-cased", "word changed", "novel")


def _default_indexes(workdir: Path) -> tuple[Index, Index]:
    """A verbatim and a `words`-normalized index of the default corpus, built once into the workdir."""
    from tracetui.defaults import default_corpus_files

    files = default_corpus_files()
    out = []
    for mode in (None, "words"):
        target = workdir / f"default-{mode or 'verbatim'}"
        if not (target / "tracetui-index.json").exists():
            a = time.perf_counter()
            build_index(files, target, BuildOptions(tokenizer="bytes", progress=False, normalize=mode, force=True))
            print(f"[variants] built the {mode or 'verbatim'} index of the default corpus in {time.perf_counter() - a:.1f} s")
        out.append(open_index(target))
    return out[0], out[1]  # type: ignore[return-value]


def make_variants(index: Index, n_items: int, seed: int, words: int = 40) -> dict[str, list[str]]:
    """`n_items` passages of about `words` words from random documents, in every version."""
    rng = np.random.default_rng(seed)
    n_docs = index.manifest.documents
    out: dict[str, list[str]] = {v: [] for v in VARIANTS}
    tries = 0
    while len(out["verbatim"]) < n_items and tries < 100 * n_items:
        tries += 1
        text = index.document_text(int(rng.integers(n_docs)))
        lines = text.splitlines(keepends=True)
        if len(text.split()) < words + 5 or len(lines) < 3:
            continue
        k = int(rng.integers(0, max(1, len(lines) - 3)))
        piece = "".join(lines[k:])
        toks = piece.split()
        if len(toks) < words:
            continue
        # the first `words` words as they stand in the document (its line breaks and indents kept)
        end, seen = 0, 0
        for m in re.finditer(r"\S+", piece):
            seen += 1
            end = m.end()
            if seen == words:
                break
        verbatim = piece[:end].strip("\n")
        flat = " ".join(verbatim.split())
        changed = flat.split()
        for j in range(5, len(changed), 10):
            changed[j] = "zqx" + changed[j][::-1]
        shuffled = flat.split()
        rng.shuffle(shuffled)
        for v, t in zip(VARIANTS, (verbatim, flat, flat.lower(), " ".join(changed), " ".join(shuffled)), strict=True):
            out[v].append(t)
    return out


def bench_variants(args: argparse.Namespace) -> list[dict]:
    verbatim, words = _default_indexes(args.workdir)
    items = make_variants(verbatim, args.variant_items, args.seed)
    rows = []
    for v in VARIANTS:
        its = [Item(v, k + 1, str(k), t) for k, t in enumerate(items[v])]
        a = time.perf_counter()
        exact = list(run_overlap([verbatim], its, OverlapParams(near=False)))
        t_exact = time.perf_counter() - a
        a = time.perf_counter()
        near = list(run_overlap([verbatim], its, OverlapParams()))
        t_near = time.perf_counter() - a
        norm = list(run_overlap([words], its, OverlapParams()))

        def verdicts(reports: list) -> dict:  # type: ignore[type-arg]
            return {x: sum(r.verdict == x for r in reports) for x in ("clean", "suspicious", "contaminated")}

        rows.append({"variant": v, "items": len(its), "exact_coverage": float(np.mean([r.coverage for r in exact])),
                     "exact_ngram_share": float(np.mean([r.ngram_share for r in exact])),
                     "near_coverage": float(np.mean([r.near_coverage for r in near])),
                     "near_covered_80": sum(r.near_coverage >= 0.8 for r in near),
                     "normalized_coverage": float(np.mean([r.coverage for r in norm])),
                     "normalized_ngram_share": float(np.mean([r.ngram_share for r in norm])),
                     "normalized_near_coverage": float(np.mean([r.near_coverage for r in norm])),
                     "exact_verdicts": verdicts(exact), "normalized_verdicts": verdicts(norm),
                     "seconds_exact": t_exact, "seconds_near": t_near})
    return rows


def bench_trace_cost(n_tokens: int, args: argparse.Namespace) -> dict:
    """Exact trace vs exact trace + near-verbatim spans of 500-token replies, fresh tracers."""
    c = C.ensure_corpus(args.workdir, n_tokens, args.seed)
    C.ensure_our_index(c)
    index = Index.open(c.dir)
    rng = np.random.default_rng(args.seed + 23)
    zipf = C.Zipf(seed=c.seed)
    words = index.tokenizer.word_boundaries().static_mask
    replies: dict[str, list[str]] = {"half corpus passages": [], "passages, 1 word in 50 changed": []}
    for _ in range(args.replies):
        replies["half corpus passages"].append(C.decode(c, C.make_response(c, rng, 500, copied=0.5)))
        ids = C.make_response(c, rng, 500, copied=1.0)
        starts = np.flatnonzero(words[ids])
        for p in starts[np.unique(np.minimum(np.searchsorted(starts, np.arange(25, len(ids), 50)), len(starts) - 1))]:
            new = zipf.sample(rng, 1)[0]
            while not words[new]:
                new = zipf.sample(rng, 1)[0]
            ids[p] = new
        replies["passages, 1 word in 50 changed"].append(C.decode(c, ids))
    Tracer([index]).trace(replies["half corpus passages"][0], near=True)  # warm: tables, page cache
    out: dict = {"n": n_tokens}
    for kind, texts in replies.items():
        exact, near, near_part, found, hits = [], [], [], [], []
        for t in texts:
            Tracer([index]).trace(t)  # untimed: this reply's pages in, for both timed runs alike
            a = time.perf_counter()
            Tracer([index]).trace(t)
            exact.append(time.perf_counter() - a)
            a = time.perf_counter()
            r = Tracer([index]).trace(t, near=True)
            near.append(time.perf_counter() - a)
            near_part.append(r.timings_ms["near"] / 1000)
            found.append(len(r.near or []))
            hits.append(sum(len(n.hits) for n in r.near or []))
        out[kind] = {"exact": C.median(exact), "with_near": C.median(near), "near_part": C.median(near_part),
                     "near_part_max": max(near_part), "near_spans": C.median(found), "near_hits": C.median(hits),
                     "replies": len(texts)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100M")
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--tokens", type=int, default=140, help="tokens per item (~100 words)")
    p.add_argument("-n", type=int, default=13)
    p.add_argument("--parts", default="ig,variants,trace", help="which parts to run (see above)")
    p.add_argument("--variant-items", type=int, default=200, help="passages per version (variants part)")
    p.add_argument("--replies", type=int, default=5, help="500-token replies of each kind (trace part)")
    C.add_json_out(p)
    args = p.parse_args(argv)
    out = C.JsonOut("overlap", args.json_out)
    args.workdir = C.check_workdir(args.workdir)
    parts = {x.strip() for x in args.parts.split(",") if x.strip()}
    sizes = [C.parse_size(s) for s in args.sizes.split(",") if s.strip()]
    results = C.run_sizes(sizes, bench_size, args) if "ig" in parts else []
    variants = bench_variants(args) if "variants" in parts else []
    costs = [bench_trace_cost(n, args) for n in sizes] if "trace" in parts else []
    rows = []
    for r in results:
        lab = C.size_label(r["n"])
        rows += [
            [f"{lab}  {r['items']:,} items of ~{r['words']:.0f} words: time", C.fmt_s(r["ours"]), C.fmt_s(r["ig"]),
             C.ratio(r["ours"], r["ig"])],
            [f"{lab}    items per second", f"{r['items'] / r['ours']:,.0f}", f"{r['items'] / r['ig']:,.0f}", ""],
            [f"{lab}    ours without near-verbatim coverage: time", C.fmt_s(r["ours_exact"]), "",
             C.ratio(r["ours"], r["ours_exact"])],
            [f"{lab}    mean coverage / near-verbatim coverage",
             f"{r['coverage']:.1%} / {r['near_coverage']:.1%}", "", ""],
            [f"{lab}    infini-gram count calls: distinct n-grams (of all)", "", f"{r['ig_distinct']:,} ({r['ig_total']:,})", ""],
            [f"{lab}    infini-gram, every n-gram counted (duplicates too)", "", C.fmt_s(r["ig_all"]),
             C.ratio(r["ours"], r["ig_all"])],
            [f"{lab}    {args.n}-grams found (ours: whole words; infini-gram: substrings)",
             f"{r['ours_found']:,} of {r['ours_total']:,}", f"{r['ig_found']:,} of {r['ig_total']:,}", ""],
            [f"{lab}    verdicts clean / suspicious / contaminated",
             " / ".join(str(r["verdicts"][v]) for v in ("clean", "suspicious", "contaminated")), "", ""],
        ]
    if rows:
        C.print_table("overlap reports: ours (everything per item) vs infini-gram count of every n-gram "
                      "(ratio = ours / infini-gram)", ["measure", "ours", "infini-gram", "ratio"], rows)
    if variants:
        vrows = []
        for v in variants:
            ev, nv = v["exact_verdicts"], v["normalized_verdicts"]
            vrows.append([v["variant"], f"{v['exact_ngram_share']:.1%}", f"{v['normalized_ngram_share']:.1%}",
                          f"{v['exact_coverage']:.1%}", f"{v['normalized_coverage']:.1%}",
                          f"{v['near_coverage']:.1%}", f"{v['normalized_near_coverage']:.1%}",
                          f"{ev['contaminated']}/{ev['suspicious']}/{ev['clean']}",
                          f"{nv['contaminated']}/{nv['suspicious']}/{nv['clean']}",
                          f"{v['near_covered_80']}", C.ratio(v["seconds_near"], v["seconds_exact"])])
        C.print_table(f"the same {variants[0]['items']} passages of the default corpus in five versions: mean "
                      "13-gram share exact / normalized; coverage exact (verbatim index) / normalized (words index) / near-verbatim (verbatim index) / "
                      "both; verdicts contaminated/suspicious/clean; items >= 80% near-verbatim; time near / exact",
                      ["version", "13-grams exact", "13-grams norm.", "exact", "normalized", "near-verbatim",
                       "norm.+near", "verdicts exact",
                       "verdicts norm.", ">=80% near", "time"], vrows)
    if costs:
        trows = []
        for r in costs:
            for kind in ("half corpus passages", "passages, 1 word in 50 changed"):
                k = r[kind]
                trows.append([f"{C.size_label(r['n'])}  {kind} ({k['replies']} replies)", C.fmt_s(k["exact"]),
                              C.fmt_s(k["with_near"]), C.ratio(k["with_near"], k["exact"]), C.fmt_s(k["near_part"]),
                              C.fmt_s(k["near_part_max"]), f"{k['near_spans']:.0f} ({k['near_hits']:.0f} hits)"])
        C.print_table("a 500-token reply, fresh Tracer: exact trace vs with near-verbatim spans (medians)",
                      ["reply", "exact trace", "with near", "ratio", "near part", "near max", "near spans"], trows)
    out.write(args, results, variants=variants, trace_cost=costs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
