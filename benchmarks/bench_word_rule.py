"""What the word-boundary rule at both edges costs: today's engine vs the current one vs infini-gram, one run.

  (a) "old": the engine of commit 962d4e9 (before the rule at both edges), extracted with
      `git archive` into a temporary tree and imported from there (PYTHONPATH) in its own process;
  (b) "new": HEAD (the current engine), extracted and imported the same way, in its own process;
  (c) infini-gram's `attribute` (no prefetch, the same max_cnt, our word-start ids as
      bow_ids_path), in this process, on the same index.

Old and new run in two long-lived worker processes that the driver asks in turn (old, new,
infini-gram, then again for the next round), so that both see the same page cache and the same
machine load. Per item the median over the rounds is kept.

Semantics differ and are not hidden:
  - old whole words: right edge only (the next corpus token begins a word); a reply position
    starts a span only where its own token begins with a non-word character;
  - new whole words: the rule of `index_tools.words` at both edges, reply and corpus; a reply
    position right after a non-word character (or the reply's start) starts a span even if its
    token starts with a word character, and then every corpus occurrence's left edge is checked
    (`index_tools.word_ends`: a scan of its suffix-array range, chunk by chunk);
  - infini-gram `attribute(..., enforce_bow=True)`: reply-side word starts from bow_ids, corpus
    occurrences counted as substrings; it also gathers document pointers (up to max_cnt per span).
    Our published mode (`whole_words=False`) gives the same spans; that is checked.

The corpus is `_common.py`'s synthetic one (Zipf u16 tokens, word-level tokenizer: "Ġw<id>"
tokens begin with a space, "x<id>" tokens begin with a word character, "." is frequent). An
"x" token right after "." or at a document start is this vocabulary's analogue of the first word
of a line ("\\nThe" in byte-level BPE: a word character right after a non-word one): the case
the old rule missed and the new one scans for.

    python benchmarks/bench_word_rule.py                # 100M tokens, writes benchmarks/results/word_rule.json
    python benchmarks/bench_word_rule.py --size 10M --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OLD_COMMIT = "962d4e9"
DELIMS = (".", "\n")


# -- worker (runs in a child, with index_tools / tracetui from PYTHONPATH) ----------------------
def worker(index_dir: str, workload: str) -> None:
    import index_tools
    from index_tools.engine import Index
    from tracetui.tracing.spans import find_spans

    data = np.load(workload)
    replies = np.split(data["replies"], data["reply_cuts"])
    qsets = {name: np.split(data[f"q_{name}"], data[f"q_{name}_cuts"]) for name in ("word", "space")}
    freq = [np.array([t], dtype=np.int64) for t in data["freq"].tolist()]
    index = Index.open(index_dir)
    find_spans(index, replies[0], delimiters=DELIMS)  # first-token table, unigram counts, word tables
    index.count_words(qsets["word"][0])
    out = sys.stdout
    out.write(json.dumps({"ready": True, "index_tools": index_tools.__file__}) + "\n")
    out.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        res: dict = {}
        if op == "spans":
            times, spans = [], []
            for ids in replies:
                a = time.perf_counter()
                got = find_spans(index, ids, delimiters=DELIMS, min_len=1, max_cnt=cmd["max_cnt"],
                                 whole_words=cmd["whole_words"])
                times.append(time.perf_counter() - a)
                spans.append([(s.l, s.r, s.count) for s in got])
            res = {"times": times, "spans": spans}
        elif op == "count_words":
            times, counts = [], []
            for q in qsets[cmd["set"]]:
                a = time.perf_counter()
                counts.append(int(index.count_words(q)))
                times.append(time.perf_counter() - a)
            res = {"times": times, "counts": counts}
        elif op == "count_many":
            a = time.perf_counter()
            got = (index.count_words_many(freq, cap=cmd["cap"]) if hasattr(index, "count_words_many")
                   else index.count_many(freq, whole_words=True, cap=cmd["cap"]))  # a tree from before the rename
            res = {"seconds": time.perf_counter() - a, "counts": [int(x) for x in got]}
        elif op == "quit":
            return
        out.write(json.dumps(res) + "\n")
        out.flush()


class Worker:
    def __init__(self, name: str, tree: Path, index_dir: Path, workload: Path) -> None:
        env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
        self.name = name
        self.p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(index_dir), str(workload)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd="/")
        hello = self._read()
        self.module = hello["index_tools"]
        want = str(tree.resolve())
        if not self.module.startswith(want):
            raise SystemExit(f"{name} worker imported {self.module}, not from {want}")

    def _read(self) -> dict:
        line = self.p.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise SystemExit(f"{self.name} worker died (rc {self.p.wait()})")
        return json.loads(line)

    def ask(self, **cmd) -> dict:  # type: ignore[no-untyped-def]
        self.p.stdin.write(json.dumps(cmd) + "\n")  # type: ignore[union-attr]
        self.p.stdin.flush()  # type: ignore[union-attr]
        return self._read()

    def close(self) -> None:
        try:
            self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")  # type: ignore[union-attr]
            self.p.stdin.close()  # type: ignore[union-attr]
        finally:
            self.p.wait(timeout=30)


# -- workload ---------------------------------------------------------------------------------
def word_char_ids(C, c) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Per token id: does the token's text begin with a word character ("x<id>")?"""
    return np.array([s.startswith("x") for s in C.token_strings(seed=c.seed)] + [False] * (C.SEP + 1 - C.VOCAB))


def line_starts(C, c, xs: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """n corpus positions of a word-character token right after "." or a document start."""
    toks = c.tokens()
    out: list[int] = []
    while len(out) < n:
        p = rng.integers(1, len(toks) - 200, size=20000)
        ok = xs[np.asarray(toks[p])] & np.isin(np.asarray(toks[p - 1]), [C.DOT_ID, C.SEP])
        out += p[ok].tolist()
    return np.array(out[:n], dtype=np.int64)


def make_replies(C, c, xs: np.ndarray, rng: np.random.Generator, n: int, length: int) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """`_common.make_response` replies (half corpus passages, half Zipf-random), each opening with
    a corpus passage (20-60 tokens) that starts at a line-initial word: the reply's first word
    starts with a word character."""
    toks = c.tokens()
    starts = line_starts(C, c, xs, rng, n)
    out = []
    for p in starts.tolist():
        head = np.asarray(toks[p : p + int(rng.integers(20, 60))], dtype=np.int64)
        head = head[head != C.SEP]
        out.append(np.concatenate([head, C.make_response(c, rng, length - len(head))]))
    return out


def sample_queries(C, c, xs: np.ndarray, rng: np.random.Generator, n: int, first_word: bool) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """n n-grams of 1-4 tokens from random corpus places whose first token begins with a word
    character (first_word) or with a space; unigrams are thus drawn by frequency."""
    toks = c.tokens()
    out: list[np.ndarray] = []
    while len(out) < n:
        ln = int(rng.integers(1, 5))
        p = int(rng.integers(0, len(toks) - ln))
        q = np.asarray(toks[p : p + ln], dtype=np.int64)
        if np.any(q == C.SEP) or bool(xs[q[0]]) != first_word:
            continue
        out.append(q)
    return out


def pack(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate(seqs).astype(np.int64), np.cumsum([len(s) for s in seqs])[:-1]


def extract(rev: str, tree: Path) -> str:
    """`git archive rev index_tools tracetui | tar -x -C tree`; the full commit hash."""
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    arch = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "index_tools", "tracetui"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=arch.stdout, check=True)
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], capture_output=True, text=True, check=True).stdout.strip()


# -- driver -----------------------------------------------------------------------------------
def stats_ms(xs: list[float]) -> dict:
    a = np.asarray(xs) * 1e3
    return {"median_ms": round(float(np.median(a)), 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "total_ms": round(float(a.sum()), 2)}


def per_item_median(rounds: list[list[float]]) -> list[float]:
    return np.median(np.asarray(rounds), axis=0).tolist()


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2])
        return 0
    sys.path.insert(0, str(HERE))
    import _common as C

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="100M", help="corpus size in tokens (default 100M)")
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replies", type=int, default=20)
    p.add_argument("--length", type=int, default=500, help="reply length in tokens")
    p.add_argument("--queries", type=int, default=200, help="count_words queries per kind")
    p.add_argument("--frequent", type=int, default=50, help="frequent line-initial single words for count_many")
    p.add_argument("--rounds", type=int, default=2, help="rounds per measure (old, new, infini-gram in turn)")
    p.add_argument("--scan-rounds", type=int, default=1,
                   help="rounds for count_words of queries starting with a word char (old reads every occurrence)")
    p.add_argument("--max-cnt", type=int, default=1_000_000)
    p.add_argument("--cap", type=int, default=1000, help="the small max_cnt / count_many cap")
    p.add_argument("--old", default=OLD_COMMIT, help="today's commit (default 962d4e9)")
    p.add_argument("--new", default="HEAD", help="the current commit (default HEAD)")
    p.add_argument("--old-tree", type=Path, default=Path("/tmp/old_tree"))
    p.add_argument("--new-tree", type=Path, default=Path("/tmp/new_tree"))
    p.add_argument("--out", "--json-out", dest="out", type=Path, default=HERE / "results" / "word_rule.json")
    p.add_argument("--no-infinigram", action="store_true")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    jo = C.JsonOut("word_rule", None)  # date, commit, versions, load before
    args.workdir = C.check_workdir(args.workdir)
    n_tokens = C.parse_size(args.size)

    # both engines exactly as committed (the working tree may be changing under other work)
    old_rev, head_rev = extract(args.old, args.old_tree), extract(args.new, args.new_tree)

    a = time.perf_counter()
    c = C.ensure_corpus(args.workdir, n_tokens, args.seed)
    C.ensure_our_index(c)
    build_s = time.perf_counter() - a
    bow = C.write_bow_file(c, args.workdir / f"bow-{C.size_label(n_tokens)}-s{args.seed}.txt")

    rng = np.random.default_rng(args.seed + 17)
    xs = word_char_ids(C, c)
    replies = make_replies(C, c, xs, rng, args.replies, args.length)
    q_word = sample_queries(C, c, xs, rng, args.queries, True)
    q_space = sample_queries(C, c, xs, rng, args.queries, False)
    uni = np.bincount(np.asarray(c.tokens()), minlength=C.SEP + 1)[: C.VOCAB]
    xs_v = xs[: C.VOCAB]
    order = np.argsort(-np.where(xs_v, uni, -1))
    freq = order[: args.frequent]
    toks_all = np.asarray(c.tokens())
    top_line_initial = int(np.isin(toks_all[:-1][toks_all[1:] == freq[0]], [C.DOT_ID, C.SEP]).sum())
    top_word = {"occurrences": int(uni[freq[0]]), "line_initial": top_line_initial}
    del toks_all
    wl = args.workdir / f"word-rule-workload-{C.size_label(n_tokens)}.npz"
    rp, rc = pack(replies)
    qw, qwc = pack(q_word)
    qs, qsc = pack(q_space)
    np.savez(wl, replies=rp, reply_cuts=rc, q_word=qw, q_word_cuts=qwc, q_space=qs, q_space_cuts=qsc, freq=freq)
    # reply positions where only the new rule starts a span: a word-character token after "." / at the start
    scan_starts = [int(xs[r[0]]) + int(np.sum(xs[r[1:]] & (r[:-1] == C.DOT_ID))) for r in replies]

    print(f"bench_word_rule: {C.size_label(n_tokens)} tokens ({c.dir}), corpus + index ready in {build_s:.1f} s; "
          f"{args.replies} replies of {args.length} tokens, {args.rounds} rounds; old = {old_rev[:9]}, new = HEAD {head_rev[:9]}"
          f"; load {load_avg()}")
    sys.stdout.flush()
    old = Worker("old", args.old_tree, c.dir, wl)
    new = Worker("new", args.new_tree, c.dir, wl)
    from index_tools.engine import Index
    from tracetui.tracing.spans import delimiter_ids

    ix = Index.open(c.dir)  # substring counts for the labels
    delims = delimiter_ids(ix, DELIMS).tolist()
    eng = None
    if not args.no_infinigram:
        eng = C.open_infinigram(c.dir, bow=bow, prefetch=False)
        eng.attribute(replies[0].tolist(), delims, 1, args.cap, True)  # warm
    loads = [load_avg()]
    R: dict = {}
    sides = {"old": old, "new": new}

    def run_spans(max_cnt: int) -> None:
        t = {k: [] for k in ("old", "new", "new_substring", "ig")}
        got: dict = {}
        for _ in range(args.rounds):
            for k, w in sides.items():
                res = w.ask(op="spans", whole_words=True, max_cnt=max_cnt)
                t[k].append(res["times"])
                got[k] = res["spans"]
            res = new.ask(op="spans", whole_words=False, max_cnt=max_cnt)
            t["new_substring"].append(res["times"])
            got["new_substring"] = res["spans"]
            if eng is not None:
                ts, ig_spans, ptrs = [], [], []
                for ids in replies:
                    a = time.perf_counter()
                    r = eng.attribute(ids.tolist(), delims, 1, max_cnt, True)["spans"]
                    ts.append(time.perf_counter() - a)
                    ig_spans.append([(s["l"], s["r"], s["count"]) for s in r])
                    ptrs.append(sum(len(s["docs"]) for s in r))
                t["ig"].append(ts)
                got["ig"], got["ig_ptrs"] = ig_spans, ptrs
            loads.append(load_avg())
        out: dict = {}
        for k, v in t.items():
            if v:
                out[k] = stats_ms(per_item_median(v)) | {"spans_per_reply": float(np.median([len(s) for s in got[k]]))}
        # spans of the new rule that start at a word-character token (after "." or the reply's start)
        out["new"]["spans_at_word_char_starts_per_reply"] = float(np.median(
            [sum(bool(xs[ids[s[0]]]) for s in sp) for ids, sp in zip(replies, got["new"], strict=True)]))
        if eng is not None:
            out["ig"]["doc_pointers_per_reply"] = float(np.median(got["ig_ptrs"]))
            out["new_substring"]["identical_to_ig"] = sum(
                [tuple(x) for x in a] == [tuple(x) for x in b] for a, b in zip(got["new_substring"], got["ig"], strict=True))
        for k in ("old", "new"):
            out[k]["slowest_replies_ms"] = sorted((round(x * 1e3, 1) for x in per_item_median(t[k])), reverse=True)[:3]
        out["new"]["replies_first_span_at_0"] = sum(bool(sp) and sp[0][0] == 0 for sp in got["new"])
        out["old"]["replies_first_span_at_0"] = sum(bool(sp) and sp[0][0] == 0 for sp in got["old"])
        R[f"spans_max_cnt_{max_cnt}"] = out
        print(f"  spans max_cnt={max_cnt:,} done ({time.perf_counter() - t_start:.0f} s)")
        sys.stdout.flush()

    def run_counts(which: str) -> None:
        t: dict = {"old": [], "new": []}
        counts: dict = {}
        for _ in range(args.scan_rounds if which == "word" else args.rounds):
            for k, w in sides.items():
                res = w.ask(op="count_words", set=which)
                t[k].append(res["times"])
                counts[k] = res["counts"]
            loads.append(load_avg())
        out = {k: stats_ms(per_item_median(v)) | {"sum_of_counts": int(np.sum(counts[k]))} for k, v in t.items()}
        out["queries_with_different_counts"] = int(sum(x != y for x, y in zip(counts["old"], counts["new"], strict=True)))
        qs = q_word if which == "word" else q_space
        occ = np.array([len(q) == 1 for q in qs])
        for k in ("old", "new"):
            med = np.asarray(per_item_median(t[k]))
            slow = int(np.argmax(med))
            out[f"slowest_{k}"] = {"ms": round(float(med[slow]) * 1e3, 2), "tokens": len(qs[slow]),
                                   "occurrences": int(ix.count(qs[slow])), "whole_word_count": counts[k][slow]}
        out["unigram_queries"] = int(occ.sum())
        R[f"count_words_{which}"] = out
        print(f"  count_words ({which}) done ({time.perf_counter() - t_start:.0f} s)")
        sys.stdout.flush()

    def run_capped(cap: int | None) -> None:
        t: dict = {"old": [], "new": []}
        counts: dict = {}
        for _ in range(args.rounds):
            for k, w in sides.items():
                res = w.ask(op="count_many", cap=cap)
                t[k].append(res["seconds"])
                counts[k] = res["counts"]
            loads.append(load_avg())
        occ = [int(x) for x in ix.count_many([np.array([int(f)]) for f in freq])]
        out = {k: {"batch_ms": round(float(np.median(v)) * 1e3, 2), "counts_over_cap": int(np.sum(np.array(counts[k]) > (cap or 1 << 62)))}
               for k, v in t.items()}
        out["occurrences_min_max"] = [min(occ), max(occ)]
        out["occurrences_total"] = int(sum(occ))
        out["new"]["whole_word_total"] = int(np.sum(counts["new"])) if cap is None else None
        R[f"count_many_frequent_{'cap_' + str(cap) if cap is not None else 'exact'}"] = out
        print(f"  count_many (cap {cap}) done ({time.perf_counter() - t_start:.0f} s)")
        sys.stdout.flush()

    try:
        run_spans(args.max_cnt)
        run_spans(args.cap)
        run_counts("word")
        run_counts("space")
        run_capped(args.cap)
        run_capped(None)
    finally:
        old.close()
        new.close()

    from importlib.metadata import version

    meta = {
        "command": "python benchmarks/bench_word_rule.py" + (" " + " ".join(argv) if argv else ""),
        "tokens": n_tokens, "documents": int(len(c.offsets())), "corpus": "benchmarks/_common.py synthetic Zipf, seed "
        f"{args.seed}", "old_commit": old_rev, "new_commit": head_rev,
        "replies": args.replies, "reply_tokens": args.length, "rounds": args.rounds, "scan_rounds": args.scan_rounds, "max_cnt": args.max_cnt, "cap": args.cap,
        "word_char_starts_per_reply_median": float(np.median(scan_starts)),
        "queries_per_kind": args.queries, "frequent_words": args.frequent,
        "infinigram": version("infini-gram") if eng is not None else None,
        "infinigram_settings": "attribute(ids, delims, 1, max_cnt, enforce_bow=True), no prefetch, bow_ids_path = our word starts",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_during": loads},
        "seconds": round(time.perf_counter() - t_start, 1),
        "top_word_char_token": top_word,
        "date": jo.meta["date"], "commit": jo.meta["commit"], "engine_dirty": jo.meta["engine_dirty"],
        "versions": jo.meta["versions"], "load_before": jo.meta["load_before"], "uptime_before": jo.meta["uptime_before"],
        "load_after": C.loadavg(), "uptime_after": C.uptime(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    results = {"meta": meta, **R}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")

    def ms(d: dict) -> str:
        return f"{d['median_ms']:.2f} / {d['p90_ms']:.2f}"

    rows = []
    for mc in (args.max_cnt, args.cap):
        s = R[f"spans_max_cnt_{mc}"]
        ig = s.get("ig")
        rows.append([f"find_spans, whole words, max_cnt={mc:,} (median / p90 ms per reply)", ms(s["old"]), ms(s["new"]),
                     ms(ig) if ig else "-"])
        rows.append(["  spans per reply (new: of which start at a word char)", f"{s['old']['spans_per_reply']:.0f}",
                     f"{s['new']['spans_per_reply']:.0f} ({s['new']['spans_at_word_char_starts_per_reply']:.0f})",
                     f"{ig['spans_per_reply']:.0f}" if ig else "-"])
        rows.append(["  replies whose first span starts at token 0", str(s["old"]["replies_first_span_at_0"]),
                     str(s["new"]["replies_first_span_at_0"]), ""])
        rows.append(["  new, substrings (published mode)", "", ms(s["new_substring"]),
                     f"same spans {s['new_substring'].get('identical_to_ig', '-')}/{args.replies}" if ig else ""])
        if ig:
            rows.append(["  infini-gram doc pointers per reply", "", "", f"{ig['doc_pointers_per_reply']:,.0f}"])
    for which, lab in (("word", "starting with a word char (scan)"), ("space", "starting with a space (fast path)")):
        s = R[f"count_words_{which}"]
        rows.append([f"count_words, {args.queries} queries {lab}, median / p90 ms", ms(s["old"]), ms(s["new"]), ""])
        rows.append(["  total ms; queries whose counts differ", f"{s['old']['total_ms']:.0f}",
                     f"{s['new']['total_ms']:.0f}; {s['queries_with_different_counts']} differ", ""])
        rows.append(["  slowest query: ms (tokens, occurrences)"] + [
            f"{sl['ms']:.1f} ({sl['tokens']} tok, {sl['occurrences']:,} occ)" for sl in (s["slowest_old"], s["slowest_new"])] + [""])
    for key, lab in ((f"count_many_frequent_cap_{args.cap}", f"cap={args.cap}"), ("count_many_frequent_exact", "exact")):
        s = R[key]
        rows.append([f"count_many {args.frequent} frequent line-initial words, {lab}, ms per batch",
                     f"{s['old']['batch_ms']:.1f}", f"{s['new']['batch_ms']:.1f}", ""])
    rows.append(["  their occurrences (min / max per word)", "", f"{s['occurrences_min_max'][0]:,} / {s['occurrences_min_max'][1]:,}", ""])
    C.print_table(f"word rule, {C.size_label(n_tokens)} tokens: old ({old_rev[:7]}, right edge only) vs new (both edges) vs "
                  "infini-gram attribute (substrings, no prefetch)", ["measure", "old", "new", "infini-gram"], rows)
    print(f"\nload average during the run: {loads[0]} -> {loads[-1]} (max 1-min {max(x[0] for x in loads)}); "
          f"total {meta['seconds']} s; results -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
