"""Regenerate the README's benchmark tables and the figures of its benchmark prose from one results file.

Every region of README.md between `<!-- bench:NAME -->` and `<!-- /bench -->` is generated from
`benchmarks/results/all.json` (written by `benchmarks/run_all.py`): nothing inside is typed by
hand. Regions whose benchmark is missing or failed in the results say so.

    python benchmarks/readme_tables.py            # rewrite README.md's regions
    python benchmarks/readme_tables.py --check    # exit 1 if README.md differs from what all.json gives
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REGION = re.compile(r"(<!-- bench:([a-z_]+) -->\n)(.*?)(<!-- /bench -->)", re.S)


# -- formatting -------------------------------------------------------------------------------
def t(sec: float | None) -> str:
    """A duration as the README writes it: 3 significant figures, µs / ms / s."""
    if sec is None or sec != sec:
        return "n/a"
    if sec >= 10:
        return f"{sec:.1f} s"
    if sec >= 1:
        return f"{sec:.2f} s"
    ms = sec * 1e3
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{sec * 1e6:.0f} µs"


def ms(x: float | None) -> str:
    """Milliseconds (given in ms), 3 significant figures."""
    return "n/a" if x is None else t(x / 1e3)


def faster(ours: float, theirs: float) -> str:
    """'6.2x faster' / '1.3x slower' (ours against theirs, times)."""
    if not ours or not theirs:
        return "n/a"
    r = theirs / ours
    return f"{r:.1f}x faster" if r >= 1 else f"{1 / r:.1f}x slower"


def size(n: int) -> str:
    for unit, mult in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= mult:
            return f"{n / mult:g}{unit}"
    return str(n)


def mib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def yes(b: object) -> str:
    return "yes" if b else "**no**"


def load_span(entry: dict) -> str:
    return f"{entry['load_before'][0]:.1f} → {entry['load_after'][0]:.1f}"


class Missing(Exception):
    pass


# -- the results ------------------------------------------------------------------------------
class Results:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.meta = data.get("meta", {})
        self.benches = data.get("benchmarks", {})

    def entry(self, name: str) -> dict:
        e = self.benches.get(name)
        if not e or e.get("data") is None:
            raise Missing(f"_`{name}` was not measured in this run"
                          + (f" (exit status {e['rc']})" if e else "") + "._")
        return e

    def data_of(self, name: str) -> dict:
        return self.entry(name)["data"]

    def by_size(self, name: str) -> dict[int, dict]:
        return {r["n"]: r for r in self.data_of(name)["results"]}

    def settings(self, name: str) -> dict:
        return self.data_of(name)["meta"]["settings"]


def run_label(R: Results, name: str) -> str:
    """`benchmarks/bench_x.py ARGS` as run, and the load during it."""
    e = R.entry(name)
    cmd = re.sub(r" --(workdir|old-tree|new-tree|new|json-out) \S+", "", e["command"])
    return f"`{cmd}`, load {load_span(e)}"


# -- regions ----------------------------------------------------------------------------------
def intro(R: Results) -> str:
    m = R.meta
    v, mach = m.get("versions", {}), m.get("machine", {})
    benches = R.benches
    loads = ", ".join(f"{k} {load_span(e)}" for k, e in benches.items() if "load_after" in e)
    quick = (" **This is a quick smoke run (`--quick`: corpora of about 1M tokens, few repetitions): its figures "
             "say nothing about speed; the full run replaces them.**") if m.get("quick") else ""
    commits = {e["data"]["meta"].get("commit") or e["data"]["meta"].get("new_commit")
               for e in benches.values() if e.get("data")}
    mixed = (f" Entries come from {len(commits)} different commits (partial reruns with `--only`): see "
             "`all.json`.") if len(commits) > 1 else ""
    dirty = " The engine had uncommitted changes." if m.get("engine_dirty") else ""
    extracted = (" (`index_tools`, `tracetui` and `benchmarks` extracted with `git archive`: edits to the working "
                 "tree could not leak in)") if m.get("rev") else ""
    failed = m.get("failed") or []
    note = f" {m['note']}" if m.get("note") else ""
    return (
        f"Figures from one run, `python benchmarks/{m.get('command', 'run_all.py')}`, of commit "
        f"`{m.get('commit', '?')[:9]}`{extracted}, {m.get('date', '?')[:16].replace('T', ' ')} UTC, {m.get('seconds', 0) / 60:.0f} "
        f"min, on this project's CI machine ({mach.get('cpus')} cores, {mach.get('mem_total', 0) / 2**30:.0f} GiB, "
        f"{mach.get('machine')}), shared with other work: 1-minute load average per benchmark (before → after) "
        f"{loads}. Python {v.get('python')}, numpy {v.get('numpy')}, infini-gram {v.get('infini-gram')} from PyPI in "
        f"the same run; synthetic Zipf corpora of u16 tokens (`benchmarks/_common.py`).{dirty}{mixed}{note}"
        + (f" Failed: {', '.join(failed)}." if failed else "")
        + (f" Not run (out of time): {', '.join(m['skipped'])}." if m.get("skipped") else "") + quick + "\n\n"
        "Like for like: infini-gram runs in its fastest fair setting, without prefetch (its `madvise` "
        "prefetching is made for indexes on disk and only costs system calls on a page-cached one); "
        "`attribute` gets the same `max_cnt` as ours and also gathers a document pointer per occurrence "
        "(up to `max_cnt` per span; the counts are quoted), which ours leaves to a later step; its "
        "`enforce_bow` only chooses where spans may start in the reply, its counts stay substring "
        "counts, while our whole-word mode also checks both edges of every corpus occurrence: only "
        "the substring rows are the same semantics. Every table and figure below is written by "
        "`python benchmarks/readme_tables.py` from `benchmarks/results/all.json`; "
        "`python benchmarks/readme_tables.py --check` fails when this README differs from the results file.\n"
    )


def index_table(R: Results) -> str:
    ix, tr = R.by_size("index"), R.by_size("trace")
    si, st = R.settings("index"), R.settings("trace")
    sizes = sorted(set(ix) | set(tr))
    head = "| measure | " + " | ".join(f"{size(n)} tokens" for n in sizes) + " |\n|---|" + "---|" * len(sizes) + "\n"

    def row(label: str, fn: Callable[[dict], str], src: dict[int, dict]) -> str:
        return f"| {label} | " + " | ".join(fn(src[n]) if n in src else "-" for n in sizes) + " |\n"

    cap, mc = st["cap"], st["max_cnt"]
    L = st["length"]
    cpus = {r["ig_cpus"] for r in ix.values()}
    out = [f"{run_label(R, 'index')}; {run_label(R, 'trace')}. Times are ours / infini-gram.\n\n", head]
    out.append(row(f"suffix sort, one shard (ours 1 core, infini-gram {'/'.join(map(str, sorted(cpus)))} cores)",
                   lambda r: f"{t(r['sort_ours'])} / {t(r['sort_ig'])} ({faster(r['sort_ours'], r['sort_ig'])})", ix))
    out.append(row("same corpus, `build --shards 2 --workers 2`",
                   lambda r: f"{t(r['sort_par'])} / {t(r['sort_ig'])} ({faster(r['sort_par'], r['sort_ig'])})", ix))
    out.append(row("tables byte-identical to infini-gram's", lambda r: yes(r["identical"]), ix))
    out.append(row(f"single `count`, median of {si['counts']} (infini-gram's C++ engine called directly)",
                   lambda r: f"{t(r['count_ours'])} / {t(r['count_ig0'])} ({faster(r['count_ours'], r['count_ig0'])})", ix))
    out.append(row(f"longest matching prefix at all {si['length']} positions (infini-gram has no such call: `attribute` "
                   "with no cap, the same maximal spans, plus every document pointer)",
                   lambda r: f"{t(r['lp_ours'])} / {t(r['lp_ig0_full'])} ({r['lp_ptrs']:,.0f} pointers)", ix))
    for c in (cap, mc):
        out.append(row(f"span finding, substrings (published; same spans as `attribute`, max_cnt {c:,})",
                       lambda r, c=c: (lambda o, i: f"{t(o)} / {t(i)} ({faster(o, i)})")(
                           r["spans_ours_c" if c == cap else "spans_ours"], r["spans_ig0_c" if c == cap else "spans_ig0"]), tr))
    for c in (cap, mc):
        out.append(row(f"span finding, whole words (default; does more: both word edges of every corpus occurrence) "
                       f"vs the same `attribute`, max_cnt {c:,}",
                       lambda r, c=c: (lambda o, i: f"{t(o)} / {t(i)} ({faster(o, i)})")(
                           r["spans_ww_c" if c == cap else "spans_ww"], r["spans_ig0_c" if c == cap else "spans_ig0"]), tr))
    out.append(row(f"document pointers `attribute` gathers per reply, max_cnt {cap:,} / {mc:,}",
                   lambda r: f"{r['n_ptrs_c']:,.0f} / {r['n_ptrs']:,.0f}", tr))
    out.append(row(f"whole pipeline `Tracer.trace` (whole words, spans, 10 docs/span, BM25), {L} tokens, fresh tracer",
                   lambda r: t(r["trace_cold"]), tr))
    out.append(row(f"streaming: {L} updates token by token, median / p95 per update",
                   lambda r: f"{t(r['inc_median'])} / {t(r['inc_p95'])}", tr))
    out.append(row("index size, bytes per token (tokenized + table + offset)", lambda r: f"{r['bpt_ours']:.2f}", ix))
    out.append(row("peak RSS of the sort, largest process, bytes per token (ours / infini-gram)",
                   lambda r: f"{r['rss_ours'] / r['n']:.1f} / {r['rss_ig'] / r['n']:.1f}", ix))
    out.append(row("peak RSS of the sort, whole process tree (infini-gram sorts its parts in parallel processes)",
                   lambda r: f"{r['tree_ours'] / r['n']:.1f} / {r['tree_ig'] / r['n']:.1f}", ix))
    return "".join(out)


def word_rule(R: Results) -> str:
    e = R.entry("word_rule")
    d = e["data"]
    m = d["meta"]
    mc, cap = m["max_cnt"], m["cap"]
    S, Sc = d[f"spans_max_cnt_{mc}"], d[f"spans_max_cnt_{cap}"]
    W, Sp = d["count_words_word"], d["count_words_space"]
    K, X = d[f"count_many_frequent_cap_{cap}"], d["count_many_frequent_exact"]
    loads = [x[0] for x in m["machine"]["loadavg_during"]]
    n = m["replies"]

    def mp(s: dict) -> str:
        return f"{ms(s['median_ms'])} / {ms(s['p90_ms'])}"

    ig = "ig" in S
    top = m.get("top_word_char_token", {})
    share = top["line_initial"] / top["occurrences"] if top.get("occurrences") else 0
    text = [
        f"{run_label(R, 'word_rule')}: the engine before the rule (commit `{m['old_commit'][:7]}`, \"old\": right edge "
        "only, and a reply position starts a span only where its own token begins with a non-word character) and "
        f"HEAD (`{m['new_commit'][:7]}`, \"new\": both edges, reply and corpus), each extracted with `git archive` and "
        "run in its own process, asked in turn; infini-gram "
        f"{m.get('infinigram') or '(not run)'} `attribute(..., enforce_bow=True)` without prefetch, same `max_cnt`, our "
        "word starts as `bow_ids_path` (its counts are substring counts: less work than either of ours; it also "
        f"gathers document pointers). {size(m['tokens'])}-token synthetic corpus of `_common.py` ({m['documents']:,} "
        f"documents); {n} replies of {m['reply_tokens']} tokens (half corpus passages; each opens with a corpus "
        f"passage that starts at a line's first word), median of {m['rounds']} round(s) per item ({m['scan_rounds']} "
        "for the word-character `count_words`); in this vocabulary a word-character token right after \".\" or a "
        "document start plays the first word of a line. 1-minute load average during it: "
        f"{min(loads):.1f}-{max(loads):.1f} on {m['machine']['cpus']} cores: small differences are within noise.\n\n",
        f"| measure ({size(m['tokens'])} tokens) | old | new | infini-gram |\n|---|---|---|---|\n",
    ]
    for c, s in ((mc, S), (cap, Sc)):
        lab = (f"span finding, whole words, max_cnt {c:,}, ms per reply, median / p90" if c == mc
               else f"the same, max_cnt {c:,}")
        igc = f"{mp(s['ig'])} ({s['ig']['doc_pointers_per_reply']:,.0f} doc pointers)" if ig else "-"
        text.append(f"| {lab} | {mp(s['old'])} | {mp(s['new'])} | {igc} |\n")
    ig_spans = f"{S['ig']['spans_per_reply']:g}" if ig else "-"
    text.append(f"| spans per reply (max_cnt {mc:,}); replies whose first word starts a span | "
                f"{S['old']['spans_per_reply']:g}; {S['old']['replies_first_span_at_0']}/{n} | "
                f"{S['new']['spans_per_reply']:g}; {S['new']['replies_first_span_at_0']}/{n} | {ig_spans} |\n")
    same = (f", same spans as infini-gram {S['new_substring'].get('identical_to_ig', '-')}/{n} and "
            f"{Sc['new_substring'].get('identical_to_ig', '-')}/{n}") if ig else ""
    text.append(f"| span finding, substrings (published mode), max_cnt {mc:,} / {cap:,}, median | | "
                f"{ms(S['new_substring']['median_ms'])} / {ms(Sc['new_substring']['median_ms'])}{same} | |\n")
    for lab, s in (("starting with a word character", W), ("starting with a space", Sp)):
        text.append(f"| `count_words`, {m['queries_per_kind']} queries {lab}, median / p90 / total | "
                    f"{mp(s['old'])} / {ms(s['old']['total_ms'])} | {mp(s['new'])} / {ms(s['new']['total_ms'])} | |\n")
    lo, hi = K["occurrences_min_max"]
    text.append(f"| `count_many` of the {m['frequent_words']} most frequent line-initial words ({lo:,}-{hi:,} "
                f"occurrences), cap {cap:,} | {ms(K['old']['batch_ms'])} | {ms(K['new']['batch_ms'])} | |\n")
    text.append(f"| the same, exact | {ms(X['old']['batch_ms'])} | {ms(X['new']['batch_ms'])} | |\n")
    slow_new = ", ".join(ms(x) for x in S["new"].get("slowest_replies_ms", []))
    slow_old = ", ".join(ms(x) for x in S["old"].get("slowest_replies_ms", []))
    text.append(
        "\nWhere it costs: a span or count that starts with a frequent word at a line start. The most frequent "
        f"word-character token occurs {top.get('occurrences', 0):,} times, {top.get('line_initial', 0):,} of them "
        f"line-initial ({share:.1%}). With max_cnt {mc:,} the three slowest replies took {slow_new} (new) against "
        f"{slow_old} (old): a span starting at such a word has a substring count over max_cnt and a capped "
        "whole-word count that may never reach the cap, so its whole suffix-array range is read; old never "
        "starts a span there. A capped count of such a word reads about cap / (its line-initial share) ranks: "
        f"`count_many` with cap {cap:,} takes {K['new']['batch_ms'] / max(K['old']['batch_ms'], 1e-9):.0f}x old's time, "
        "which checked the right edge only. Old `count_words` already checked the left edge of word-character "
        f"queries, by one pass over all their occurrences: {ms(W['old']['total_ms'])} in total against "
        f"{ms(W['new']['total_ms'])} for the chunked scan.\n")
    return "".join(text)


def app(R: Results) -> str:
    d = R.data_of("app")
    r = d["results"]
    others = r.get("other_cores")
    rows = ["| configuration | tokens/s, tracing off | tokens/s, live tracing | tracing cost | key press to frame "
            "while streaming: median / p95 / max (presses) |\n|---|---|---|---|---|\n"]
    names = {"embedded/threads": "embedded model, threads (before)", "embedded/processes":
             "embedded model, child processes (default)", "server/threads": "local server, tracer thread",
             "server/processes": "local server, tracer child process (default)"}
    for label, f in r["configurations"].items():
        st = f["settings"]
        k = st["tracing on"]["keys"]
        rows.append(f"| {names.get(label, label)} | {st['tracing off']['tokens_per_s']:.1f} | "
                    f"{st['tracing on']['tokens_per_s']:.1f} | {f['cost_pct']:.1f}% | {ms(k['median_ms'])} / "
                    f"{ms(k['p95_ms'])} / {ms(k['max_ms'])} ({k['timed']}) |\n")
    return (
        f"App ({run_label(R, 'app')}: the real app headless, chat mode, {r['tokens']} tokens per reply on "
        f"{r['threads']} threads, default index ({r['index_tokens']:,} tokens); the embedded Gemma 3 270M, or "
        "llama-cpp-python's OpenAI-compatible server on the same GGUF; keys injected from a thread as a terminal "
        "driver does, each timed to the first frame that shows its effect; "
        f"{r['runs']} run(s) per setting, order alternating"
        + (f"; processes other than the UI's used {others:.2f} CPU cores on average meanwhile, the model and "
           "tracer children and the server included" if others is not None else "")
        + "). Tracing cost: the slowdown of generation with live tracing every 0.5 s, median over pairs of runs. "
        "Goals: cost < 5%, key press to frame p95 < 50 ms with the child processes.\n\n" + "".join(rows))


def ngram(R: Results) -> str:
    out = [f"∞-gram queries ({run_label(R, 'ngram')}; infini-gram without prefetch):\n\n"]
    s = R.settings("ngram")
    for n, r in sorted(R.by_size("ngram").items()):
        out.append(f"| measure ({size(n)} tokens) | ours | infini-gram |\n|---|---|---|\n")
        out.append(f"| `ntd` of the most frequent token ({r['f_count']:,} occurrences, {r['f_distinct']:,} next), both "
                   f"sampled (max_support 1000; identical counts: {yes(r['f_approx_equal'])}) | {t(r['f_approx'])} | "
                   f"{t(r['f_ig'])} ({faster(r['f_approx'], r['f_ig'])}) |\n")
        out.append(f"| the same, ours exact (equal to brute force: {yes(r['f_equal'])}) | {t(r['f_ours'])} | (its exact "
                   "mode, max_support above the count, is not run: it aborts on this machine) |\n")
        out.append(f"| `ntd` of a rare 5-token prefix, median of {r['r_equal'].split('/')[1]} (identical: {r['r_equal']}) | "
                   f"{t(r['r_ours'])} | {t(r['r_ig'])} ({faster(r['r_ours'], r['r_ig'])}) |\n")
        out.append(f"| ∞-gram probability of every token of a {s['length']}-token reply (identical: {r['i_equal']}); "
                   "infini-gram has no batched call: one `infgram_prob` of its C++ engine per token, the prompt "
                   f"lists built before the clock | {t(r['i_ours'])} batched | {t(r['i_ig'])} in {s['length']} calls "
                   f"({faster(r['i_ours'], r['i_ig'])}) |\n")
        out.append(f"| the same through its Python wrapper, each prompt's list built inside the clock (the earlier "
                   "figure) | | "
                   f"{t(r['i_ig_loop'])} |\n")
        out.append(f"| the app's lens while a reply streams, per update (median / p95) | {t(r['s_median'])} / "
                   f"{t(r['s_p95'])} | - |\n")
    return "".join(out)


def overlap(R: Results) -> str:
    s = R.settings("overlap")
    out = []
    for n, r in sorted(R.by_size("overlap").items()):
        out.append(
            f"Overlap reports ({run_label(R, 'overlap')}, {size(n)} tokens, {r['items']:,} items of ~{r['words']:.0f} "
            "words, a third new, a third partly copied, a third copied): ours "
            f"{t(r['ours'])} for everything per item (n-gram share, coverage, longest match, its count and three "
            f"documents), {r['items'] / r['ours']:,.0f} items/s. infini-gram has no batched count: one `count` call "
            f"per distinct {s['n']}-gram, deduplicated before the clock starts ({r['ig_distinct']:,} of "
            f"{r['ig_total']:,} n-grams), without prefetch, its C++ engine called directly, took {t(r['ig'])} ({r['items'] / r['ig']:,.0f} items/s): "
            f"ours is **{faster(r['ours'], r['ig'])}** while doing more per item. Counting every n-gram of every "
            f"item, duplicates included (the earlier headline): {t(r['ig_all'])}. Whole-word n-grams found: "
            f"{r['ours_found']:,}; substring n-grams (infini-gram): {r['ig_found']:,}.\n")
    return "".join(out)


def served(R: Results) -> str:
    out = ["| measure | figure |\n|---|---|\n"]
    try:
        sv = R.by_size("serve")
        ss = R.settings("serve")
        for n, r in sorted(sv.items()):
            out.append(f"| trace of a {ss['length']}-token reply, {size(n)} tokens, fresh tracer: local / served on "
                       f"localhost (median of {ss['responses']}; requests) | {t(r['cold_local'])} / {t(r['cold_remote'])} "
                       f"({r['cold_remote'] / r['cold_local']:.2f}x; {r['requests']:g}) |\n")
            out.append(f"| the same text again | {t(r['warm_local'])} / {t(r['warm_remote'])} ({r['requests_warm']:g}) |\n")
            out.append(f"| served trace JSON identical to local | {yes(r['equal'])} |\n")
        lab = run_label(R, "serve")
    except Missing as exc:
        out.append(f"| served index | {exc} |\n")
        lab = "`bench_serve.py`: not run"
    try:
        r = R.data_of("ray")["results"]
        out.append(f"| index build, {size(r['n'])} tokens in {r['files']} files, 2 shards, 2 workers: local | {t(r['local'])} |\n")
        out.append(f"| local build, the same file shards as Ray | {t(r['local_files'])} |\n")
        out.append(f"| Ray build (local runtime) | {t(r['ray'])}, plus {t(r['ray_start'])} to start Ray |\n")
        out.append(f"| Ray index identical to the file-sharded local one, every file | {yes(r['identical'])} |\n")
        lab += "; " + run_label(R, "ray")
    except Missing as exc:
        out.append(f"| Ray build | {exc} |\n")
    return f"A served index and a Ray build ({lab}):\n\n" + "".join(out)


def scale(R: Results) -> str:
    rs = R.data_of("scale")["results"]
    s = R.settings("scale")
    memory = "default memory" if s["memory"] is None else f"`--memory {s['memory']}`"
    out = [f"Scale ({run_label(R, 'scale')}: our builder end to end with `--workers {s['workers']}`, "
           f"{memory}; query latencies warm, medians):\n\n",
           f"| tokens | shards | build | peak RAM (process tree, PSS) | disk / token | count | longest prefix, "
           f"{s['length']} pos | `Tracer.trace`, {s['length']} tokens |\n|---|---|---|---|---|---|---|---|\n"]
    for r in rs:
        if r.get("rc") != 0:
            out.append(f"| {size(r['n'])} | failed (exit status {r.get('rc')}) | | | | | | |\n")
            continue
        out.append(f"| {size(r['n'])} | {r['shards']} | {t(r['wall'])} | {mib(r['tree_pss'])} | {r['bpt_all']:.2f} B | "
                   f"{t(r['count_rep'])} | {t(r['lp_rep'])} | {t(r['trace_rep'])} |\n")
    ok = [r for r in rs if r.get("rc") == 0]
    if ok:
        out.append(f"\nSwap-outs during the builds: {sum(r['pswpout'] for r in ok)}, OOM kills: "
                   f"{sum(r['oom_kill'] for r in ok)}; lowest MemAvailable {mib(min(r['min_avail'] for r in ok))}. "
                   "1B tokens (`--sizes 1B`, about half an hour and 11 GB of disk here) is not part of the one-run set.\n")
    return "".join(out)


def startup(R: Results) -> str:
    d = R.data_of("startup")
    r = d["results"]
    rows = "".join(f"| {name} | {ms(v['median_s'] * 1000)} | {ms(v['min_s'] * 1000)} |\n" for name, v in r.items())
    return (
        f"Start-up of a fresh process ({run_label(R, 'startup')}; each command alternately, its first run apart): "
        f"a substring count, like for like with a minimal script over infini-gram's C++ engine (both print "
        f"{d['counts']['minimal infini-gram count']}), is **{d['ratio']:.2f}x** its time (goal 1.5x): it never "
        "imports numpy. The default whole-word count pays numpy's import for the word-boundary rule "
        f"({d['whole_words_ratio']:.2f}x; numpy's import alone is {d['numpy_floor_ratio']:.2f}x the minimal "
        f"script). A 500-token reply traced in a fresh process: {ms(r['tracetui trace (500 tokens)']['median_s'] * 1000)} "
        "(goal under 0.5 s).\n\n| command | median | min |\n|---|---|---|\n" + rows)


REGIONS: dict[str, Callable[[Results], str]] = {
    "intro": intro, "index": index_table, "word_rule": word_rule, "app": app, "ngram": ngram,
    "overlap": overlap, "served": served, "scale": scale, "startup": startup,
}


def render(readme: str, R: Results) -> str:
    seen: set[str] = set()

    def sub(m: re.Match) -> str:
        name = m.group(2)
        if name not in REGIONS:
            raise SystemExit(f"README region bench:{name} has no generator (known: {', '.join(REGIONS)})")
        seen.add(name)
        try:
            body = REGIONS[name](R)
        except Missing as exc:
            body = f"{exc}\n"
        return m.group(1) + "\n" + body + "\n" + m.group(4)

    out = REGION.sub(sub, readme)
    missing = set(REGIONS) - seen
    if missing:
        raise SystemExit(f"README has no region for {', '.join(sorted(missing))} (<!-- bench:NAME --> ... <!-- /bench -->)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=HERE / "results" / "all.json")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--check", action="store_true", help="exit 1 if the README differs from what the results give")
    args = p.parse_args(argv)
    R = Results(json.loads(args.results.read_text(encoding="utf-8")))
    old = args.readme.read_text(encoding="utf-8")
    new = render(old, R)
    if args.check:
        if new != old:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), str(args.readme),
                                                       f"{args.readme} from {args.results.name}", n=1))
            print(f"\n{args.readme} differs from {args.results}: run benchmarks/readme_tables.py", file=sys.stderr)
            return 1
        print(f"{args.readme} matches {args.results}")
        return 0
    if new != old:
        args.readme.write_text(new, encoding="utf-8")
        print(f"{args.readme}: benchmark regions rewritten from {args.results}")
    else:
        print(f"{args.readme}: already up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
