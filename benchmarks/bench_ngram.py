"""∞-gram queries: ours (exact, batched) vs infini-gram's engine, in one run, same index.

    python benchmarks/bench_ngram.py                 # 100M tokens (synthetic, see _common.py)
    python benchmarks/bench_ngram.py --sizes 10M

Measures, medians over several queries:
  1. `ntd` of the most frequent 1-token prefix (millions of occurrences) and of rare 5-token
     prefixes: ours exact, and ours with infini-gram's own sampling (max_support=1000, its
     default: a prompt that occurs more often is read at a stride; its exact setting, max_support
     above the count, aborts on this machine). Exact is checked against a brute-force count over
     the tokens, sampled against infini-gram's counts (identical, like for like);
  2. the ∞-gram probability of every token of a 500-token reply: ours in one batched call
     (`infgram_probs`), infini-gram called per token (`infgram_prob`); results compared;
  3. the app's lens while a reply streams: one update per token with its cache kept (what the
     trace worker pays per live trace), against one fresh lens of the whole reply.
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
from index_tools.ngram import infgram_probs, ntd  # noqa: E402
from tracetui.tracing.memorization import LensCache, memorization  # noqa: E402


def timed(fn, reps: int):  # type: ignore[no-untyped-def]
    out, ts = None, []
    for _ in range(reps):
        a = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - a)
    return out, C.median(ts)


def bench_size(n_tokens: int, args: argparse.Namespace) -> dict:
    c = C.ensure_corpus(args.workdir, n_tokens, args.seed)
    C.ensure_our_index(c)
    index = Index.open(c.dir)
    # infini-gram in its fastest fair setting on a page-cached index: no prefetch (see _common)
    eng = C.open_infinigram(c.dir, prefetch=False)
    rng = np.random.default_rng(args.seed + 5)
    res: dict = {"n": n_tokens}
    uni = index.unigram_counts()
    top = int(np.argmax(uni))
    q1 = np.array([top])
    ours, t_ours = timed(lambda: ntd(index, q1), 3)
    ref, t_ig = timed(lambda: eng.ntd(q1.tolist()), 3)
    # exact check by brute force over the token array (infini-gram's exact mode, max_support
    # above the count, aborts here: "Resource temporarily unavailable" from its threads)
    toks = np.asarray(c.tokens())
    after = toks[np.flatnonzero(toks[:-1] == top) + 1].astype(np.int64)
    after[after == C.SEP] = -1
    truth = dict(zip(*np.unique(after, return_counts=True), strict=True))
    if toks[-1] == top:
        truth[-1] = truth.get(-1, 0) + 1
    approx, t_approx = timed(lambda: ntd(index, q1, max_support=1000), 3)
    res.update(f_approx=t_approx, f_approx_equal=approx.approx == bool(ref.get("approx")) and sorted(
        (int(k), v["cont_cnt"]) for k, v in ref["result_by_token_id"].items()) == sorted(
        (C.UNK_ID if int(i) < 0 else int(i), int(n)) for i, n in zip(approx.ids, approx.counts, strict=True)))
    res.update(f_count=ours.prompt_cnt, f_distinct=len(ours.ids), f_ours=t_ours, f_ig=t_ig,
               f_ig_approx=ref.get("approx"), f_ig_support=sum(v["cont_cnt"] for v in ref["result_by_token_id"].values()),
               f_equal={int(k): int(v) for k, v in truth.items()}
               == {int(i): int(n) for i, n in zip(ours.ids, ours.counts, strict=True)})
    # rare 5-token prefixes: corpus passages
    t_o, t_i, eq = [], [], 0
    for _ in range(args.queries):
        a = int(rng.integers(0, len(toks) - 6))
        q = np.asarray(toks[a : a + 5], dtype=np.int64)
        if (q == C.SEP).any():
            continue
        o, to = timed(lambda q=q: ntd(index, q), 3)
        r, ti = timed(lambda q=q: eng.ntd(q.tolist()), 3)
        t_o.append(to)
        t_i.append(ti)
        eq += sorted((int(k), v["cont_cnt"]) for k, v in r["result_by_token_id"].items()) == sorted(
            (C.UNK_ID if int(i) < 0 else int(i), int(n)) for i, n in zip(o.ids, o.counts, strict=True))
    res.update(r_ours=C.median(t_o), r_ig=C.median(t_i), r_equal=f"{eq}/{len(t_o)}")
    # per-token ∞-gram probabilities of a reply
    reply = C.make_response(c, rng, args.length)
    rows, t_batch = timed(lambda: infgram_probs(index, reply), 3)
    # infini-gram has no batched ∞-gram call: one infgram_prob per token. The fair counterpart:
    # its C++ engine called directly (no Python-side argument check, which walks the whole prompt
    # in Python), with every prompt (the reply so far) converted to a list before the clock starts;
    # each call still hands its whole prompt, up to `length` ids, to C++: that is its API.
    prompts = [(reply[:t].tolist(), int(reply[t])) for t in range(len(reply))]
    # the earlier loop, for the record: the Python wrapper, list conversions inside the clock
    a = time.perf_counter()
    for t in range(len(reply)):
        eng.infgram_prob(reply[:t].tolist(), int(reply[t]))
    t_loop = time.perf_counter() - a
    raw = eng.engine
    got, t_per = timed(lambda: [raw.infgram_prob(prompt_ids=q, cont_id=t) for q, t in prompts], 3)  # median of 3
    refs = [{"suffix_len": x.suffix_len, "prompt_cnt": x.prompt_cnt, "cont_cnt": x.cont_cnt} for x in got]
    same = sum((r.suffix_len, r.prompt_cnt, r.cont_cnt) == (x["suffix_len"], x["prompt_cnt"], x["cont_cnt"])
               for r, x in zip(rows, refs, strict=True))
    res.update(i_ours=t_batch, i_ig=t_per, i_ig_loop=t_loop, i_equal=f"{same}/{len(reply)}",
               mean_n=float(np.mean([r.suffix_len + 1 for r in rows])))
    # the lens of a reply while it streams: one update per token, its cache kept between them
    cache, lat = LensCache(), []
    for k in range(1, len(reply) + 1):
        text = C.decode(c, reply[:k])
        a = time.perf_counter()
        last = memorization(index, text, cache=cache)
        lat.append(time.perf_counter() - a)
    fresh, t_fresh = timed(lambda: memorization(index, C.decode(c, reply)), 1)
    res.update(s_median=C.median(lat), s_p95=C.pct(lat, 95), s_sum=float(np.sum(lat)), s_fresh=t_fresh,
               s_equal=last == fresh)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100M")
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queries", type=int, default=20, help="rare 5-token prefixes")
    p.add_argument("--length", type=int, default=500, help="reply length in tokens")
    C.add_json_out(p)
    args = p.parse_args(argv)
    out = C.JsonOut("ngram", args.json_out)
    args.workdir = C.check_workdir(args.workdir)
    sizes = [C.parse_size(s) for s in args.sizes.split(",") if s.strip()]
    results = C.run_sizes(sizes, bench_size, args)
    rows = []
    for r in results:
        lab = C.size_label(r["n"])
        rows += [
            [f"{lab}  ntd, most frequent token ({r['f_count']:,} occ., {r['f_distinct']:,} next)",
             C.fmt_s(r["f_ours"]) + " exact", C.fmt_s(r["f_ig"]) + (" approx" if r["f_ig_approx"] else ""),
             C.ratio(r["f_ours"], r["f_ig"])],
            [f"{lab}    exact (= brute force over the tokens) / infini-gram counted", "yes" if r["f_equal"] else "NO",
             f"{r['f_ig_support']:,} of {r['f_count']:,}", ""],
            [f"{lab}  ntd, most frequent token, both sampled (max_support 1000)", C.fmt_s(r["f_approx"]) + " approx",
             C.fmt_s(r["f_ig"]) + " approx", C.ratio(r["f_approx"], r["f_ig"])],
            [f"{lab}    identical sampled distributions", "yes" if r["f_approx_equal"] else "NO", "", ""],
            [f"{lab}  ntd, rare 5-token prefix (median)", C.fmt_s(r["r_ours"]), C.fmt_s(r["r_ig"]),
             C.ratio(r["r_ours"], r["r_ig"])],
            [f"{lab}    identical distributions", r["r_equal"], "", ""],
            [f"{lab}  ∞-gram prob of every token, {args.length}-token reply", C.fmt_s(r["i_ours"]) + " batched",
             C.fmt_s(r["i_ig"]) + " per-token calls", C.ratio(r["i_ours"], r["i_ig"])],
            [f"{lab}    infini-gram, the same loop with each prompt's list built inside the clock", "",
             C.fmt_s(r["i_ig_loop"]), C.ratio(r["i_ours"], r["i_ig_loop"])],
            [f"{lab}    identical (suffix_len, counts); mean effective n {r['mean_n']:.1f}", r["i_equal"], "", ""],
            [f"{lab}  lens while streaming, per token update (median / p95)",
             f"{C.fmt_s(r['s_median'])} / {C.fmt_s(r['s_p95'])}", "", ""],
            [f"{lab}    all {args.length} updates / one fresh lens of the whole reply",
             f"{C.fmt_s(r['s_sum'])} / {C.fmt_s(r['s_fresh'])}", "", ""],
            [f"{lab}    last update == fresh lens", "yes" if r["s_equal"] else "NO", "", ""],
        ]
    C.print_table("∞-gram queries: ours vs infini-gram without prefetch (ratio = ours / infini-gram)",
                  ["measure", "ours", "infini-gram", "ratio"], rows)
    out.write(args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
