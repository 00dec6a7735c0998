"""Tracing speed: a 500-token response against 10M- and 100M-token indexes (synthetic, see _common.py).

  1. span finding (OLMoTrace section 1, steps 1-6): our find_spans -- with the whole-word rule
     (the default: corpus occurrences must end where a word ends) and without it (the published
     behaviour) -- vs infini-gram's attribute(ids, delim_ids, min_len=1, max_cnt, enforce_bow=True)
     with the same word-start ids (bow_ids_path), delimiters ("." and newline) and limits; the
     published-mode results are compared with infini-gram's;
  2. the whole pipeline, Tracer.trace(text): spans, top-K, documents, BM25, levels, highlights
     (a fresh Tracer per response: cold caches; then the same text again: warm caches);
  3. incremental tracing of a reply streamed token by token: one fresh Tracer, trace(prefix) for
     every growing prefix; total time, median / p95 / max latency per update.

    python benchmarks/bench_trace.py                 # 10M and 100M tokens
    python benchmarks/bench_trace.py --sizes 10M
    python benchmarks/bench_trace.py --quick         # 1M tokens, fewer responses
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
from tracetui.tracing.pipeline import Tracer  # noqa: E402
from tracetui.tracing.spans import delimiter_ids, find_spans  # noqa: E402

DELIMS = (".", "\n")


def bench_size(n_tokens: int, args: argparse.Namespace) -> dict:
    c = C.ensure_corpus(args.workdir, n_tokens, args.seed)
    C.ensure_our_index(c)
    bow = C.write_bow_file(c, args.workdir / f"bow-{C.size_label(n_tokens)}-s{args.seed}.txt")
    a = time.perf_counter()
    index = Index.open(c.dir)
    find_spans(index, C.make_response(c, np.random.default_rng(0), args.length), delimiters=DELIMS)
    res_setup = time.perf_counter() - a  # first-token rank table, unigram counts
    eng = C.open_infinigram(c.dir, bow=bow)
    eng0 = C.open_infinigram(c.dir, bow=bow, prefetch=False)
    delims = delimiter_ids(index, DELIMS).tolist()
    rng = np.random.default_rng(args.seed + 11)
    res: dict = {"n": n_tokens, "setup": res_setup}

    # 1. span finding
    responses = [C.make_response(c, rng, args.length) for _ in range(args.responses)]
    eng.attribute(responses[0].tolist(), delims, 1, args.max_cnt, True)  # warm
    t_ours, t_ig, t_ours_c, t_ig_c, t_ig0_c, n_spans, n_ptrs, n_ptrs_c = [], [], [], [], [], [], [], []
    t_ww, t_ww_c, n_ww, n_ww_c, t_ig0 = [], [], [], [], []
    mismatches = 0
    for ids in responses:
        a = time.perf_counter()
        ww = find_spans(index, ids, delimiters=DELIMS, min_len=1, max_cnt=args.max_cnt)
        t_ww.append(time.perf_counter() - a)
        n_ww.append(len(ww))
        a = time.perf_counter()
        n_ww_c.append(len(find_spans(index, ids, delimiters=DELIMS, min_len=1, max_cnt=args.cap)))
        t_ww_c.append(time.perf_counter() - a)
        a = time.perf_counter()
        got = find_spans(index, ids, delimiters=DELIMS, min_len=1, max_cnt=args.max_cnt, whole_words=False)
        b = time.perf_counter()
        want = eng.attribute(ids.tolist(), delims, 1, args.max_cnt, True)["spans"]
        e = time.perf_counter()
        eng0.attribute(ids.tolist(), delims, 1, args.max_cnt, True)
        t_ig0.append(time.perf_counter() - e)
        t_ours.append(b - a)
        t_ig.append(e - b)
        n_spans.append(len(got))
        n_ptrs.append(sum(len(s["docs"]) for s in want))
        mismatches += [(s.l, s.r, s.count) for s in got] != [(s["l"], s["r"], s["count"]) for s in want]
        # the same with max_cnt capped: infini-gram then returns few document pointers
        a = time.perf_counter()
        got = find_spans(index, ids, delimiters=DELIMS, min_len=1, max_cnt=args.cap, whole_words=False)
        b = time.perf_counter()
        want = eng.attribute(ids.tolist(), delims, 1, args.cap, True)["spans"]
        e = time.perf_counter()
        eng0.attribute(ids.tolist(), delims, 1, args.cap, True)
        f = time.perf_counter()
        t_ours_c.append(b - a)
        t_ig_c.append(e - b)
        t_ig0_c.append(f - e)
        n_ptrs_c.append(sum(len(s["docs"]) for s in want))
        mismatches += [(s.l, s.r, s.count) for s in got] != [(s["l"], s["r"], s["count"]) for s in want]
    res.update(spans_ours=C.median(t_ours), spans_ig=C.median(t_ig), spans_ig0=C.median(t_ig0), spans_ours_c=C.median(t_ours_c),
               spans_ig_c=C.median(t_ig_c), spans_ig0_c=C.median(t_ig0_c),
               spans_ww=C.median(t_ww), spans_ww_c=C.median(t_ww_c), n_ww=C.median(n_ww), n_ww_c=C.median(n_ww_c),
               n_spans=C.median(n_spans), n_ptrs=C.median(n_ptrs), n_ptrs_c=C.median(n_ptrs_c), mismatches=mismatches)

    # 2. the whole pipeline
    texts = [C.decode(c, ids) for ids in responses]
    for ids, text in zip(responses, texts, strict=True):
        assert np.array_equal(index.encode(text), ids), "tokenizer round trip broken"
    cold, warm, parts = [], [], {"spans": [], "documents": [], "rank": []}
    n_kept = []
    for text in texts:
        tracer = Tracer([index])
        a = time.perf_counter()
        r = tracer.trace(text)
        b = time.perf_counter()
        tracer.trace(text)
        e = time.perf_counter()
        cold.append(b - a)
        warm.append(e - b)
        n_kept.append(len(r.spans))
        for k in parts:
            parts[k].append(r.timings_ms.get(k, 0.0) / 1000)
    res.update(trace_cold=C.median(cold), trace_warm=C.median(warm), kept=C.median(n_kept),
               **{f"part_{k}": C.median(v) for k, v in parts.items()})

    # 3. streamed token by token
    ids = responses[0]
    tracer = Tracer([index])
    lat = []
    a0 = time.perf_counter()
    for k in range(1, len(ids) + 1):
        prefix = C.decode(c, ids[:k])
        a = time.perf_counter()
        last = tracer.trace(prefix)
        lat.append(time.perf_counter() - a)
    res["inc_total"] = time.perf_counter() - a0
    res.update(inc_sum=float(np.sum(lat)), inc_median=C.median(lat), inc_p95=C.pct(lat, 95), inc_max=max(lat))
    fresh = Tracer([index]).trace(texts[0])
    res["inc_equal"] = [(s.start, s.end, s.count, s.documents) for s in last.spans] == [
        (s.start, s.end, s.count, s.documents) for s in fresh.spans]
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10M,100M", help="index sizes in tokens, comma-separated (default 10M,100M)")
    p.add_argument("--quick", action="store_true", help="one 1M-token index, 3 responses (smoke run)")
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--responses", type=int, default=5, help="responses for the medians")
    p.add_argument("--length", type=int, default=500, help="response length in tokens")
    p.add_argument("--max-cnt", type=int, default=1_000_000, help="max_cnt for both (production: 1,000,000)")
    p.add_argument("--cap", type=int, default=1000, help="a second, small max_cnt (few document pointers)")
    C.add_json_out(p)
    args = p.parse_args(argv)
    out = C.JsonOut("trace", args.json_out)
    args.workdir = C.check_workdir(args.workdir)
    if args.quick:
        sizes, args.responses = [C.parse_size("1M")], min(args.responses, 3)
    else:
        sizes = [C.parse_size(s) for s in args.sizes.split(",") if s.strip()]
    print(f"bench_trace: sizes {', '.join(C.size_label(s) for s in sizes)}; {args.responses} responses of "
          f"{args.length} tokens (half corpus passages, half random); workdir {args.workdir}")
    results = C.run_sizes(sizes, bench_size, args)

    rows = []
    for r in results:
        lab = C.size_label(r["n"])
        rows += [
            [f"{lab}  span finding, whole words, max_cnt={args.max_cnt:,}", C.fmt_s(r["spans_ww"]),
             C.fmt_s(r["spans_ig0"]), C.ratio(r["spans_ww"], r["spans_ig0"]) + " (vs no prefetch)"],
            [f"{lab}  span finding, whole words, max_cnt={args.cap:,}", C.fmt_s(r["spans_ww_c"]),
             C.fmt_s(r["spans_ig0_c"]), C.ratio(r["spans_ww_c"], r["spans_ig0_c"]) + " (vs no prefetch)"],
            [f"{lab}    spans found, whole words", f"{r['n_ww']:.0f}", "", ""],
            [f"{lab}  span finding, substrings (published), max_cnt={args.max_cnt:,}", C.fmt_s(r["spans_ours"]),
             C.fmt_s(r["spans_ig0"]), C.ratio(r["spans_ours"], r["spans_ig0"]) + " (vs no prefetch)"],
            [f"{lab}    infini-gram with prefetch", "", C.fmt_s(r["spans_ig"]), C.ratio(r["spans_ours"], r["spans_ig"])],
            [f"{lab}    spans / doc pointers returned", f"{r['n_spans']:.0f} / -", f"{r['n_spans']:.0f} / {r['n_ptrs']:,.0f}", ""],
            [f"{lab}  span finding, substrings, max_cnt={args.cap:,}", C.fmt_s(r["spans_ours_c"]), C.fmt_s(r["spans_ig_c"]),
             C.ratio(r["spans_ours_c"], r["spans_ig_c"])],
            [f"{lab}    infini-gram without prefetch", "", C.fmt_s(r["spans_ig0_c"]), C.ratio(r["spans_ours_c"], r["spans_ig0_c"])],
            [f"{lab}    doc pointers returned", "-", f"{r['n_ptrs_c']:,.0f}", ""],
            [f"{lab}  identical (l, r, count), substrings", f"{2 * args.responses - r['mismatches']}/{2 * args.responses}", "", ""],
            [f"{lab}  open + first find_spans", C.fmt_s(r["setup"]), "", ""],
            [f"{lab}  Tracer.trace, fresh tracer", C.fmt_s(r["trace_cold"]), "", ""],
            [f"{lab}    of which spans/docs/rank", " / ".join(C.fmt_s(r[f"part_{k}"]) for k in ("spans", "documents", "rank")), "", ""],
            [f"{lab}    same text again (cached)", C.fmt_s(r["trace_warm"]), "", ""],
            [f"{lab}    kept spans (K = 5% of L)", f"{r['kept']:.0f}", "", ""],
            [f"{lab}  streamed: {args.length} updates, total", C.fmt_s(r["inc_sum"]), "", ""],
            [f"{lab}    per update median / p95", f"{C.fmt_s(r['inc_median'])} / {C.fmt_s(r['inc_p95'])}", "", ""],
            [f"{lab}    per update max", C.fmt_s(r["inc_max"]), "", ""],
            [f"{lab}    final == fresh trace", "yes" if r["inc_equal"] else "NO", "", ""],
        ]
    C.print_table("tracing: ours vs infini-gram attribute (ratio = ours / infini-gram)",
                  ["measure", "ours", "infini-gram", "ratio"], rows)
    ok = all(r["mismatches"] == 0 and r["inc_equal"] for r in results)
    out.write(args, results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
