"""Tracing against a served index: a 500-token reply traced against a 100M-token index served by
`tracetui serve` on localhost (a separate process, as in use) vs the same index opened locally,
and vs the same index behind `tracetui serve --infinigram-api-only` (infini-gram's API, traced
with `InfiniGramAPIIndex`: what tracing against infini-gram's public indexes costs, without the
network).

Prints, per size: the median time of a trace with a fresh Tracer (cold caches) and of the same
text again (warm caches), both ways, their ratio (goal: served under 2x local), the HTTP requests
per trace, and whether the served trace JSON equals the local one. The one-time costs of opening
(the tokenizer download, the unigram counts) are reported apart: they are paid once per session.
The index files are read once before measuring, so both sides start from the same page cache, and
the side that goes first alternates.

    python benchmarks/bench_serve.py                   # 100M tokens
    python benchmarks/bench_serve.py --sizes 10M --responses 3
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from index_tools.engine import Index  # noqa: E402
from index_tools.errors import RemoteIndexError  # noqa: E402
from index_tools.remote import RemoteIndex  # noqa: E402
from tracetui.tracing.pipeline import Tracer  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(directory: Path, api_only: bool = False) -> tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tracetui.cli", "serve", "--index", str(directory),
                             "--port", str(port)] + (["--infinigram-api-only"] if api_only else []),
                            cwd=C.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def open_api(proc: subprocess.Popen, url: str, name: str, tokenizer: Path) -> Any:  # type: ignore[type-arg]
    """The index behind an infini-gram API server, with the index's tokenizer (as a user of the
    public indexes gives theirs with --tokenizer)."""
    import os

    from index_tools.opening import open_index

    os.environ["TRACETUI_TOKENIZER"] = str(tokenizer)
    deadline = time.monotonic() + 60
    while True:
        try:
            return open_index(f"{url}/{name}")
        except RemoteIndexError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def open_remote(proc: subprocess.Popen, url: str) -> tuple[RemoteIndex, float]:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while True:
        try:
            a = time.perf_counter()
            return RemoteIndex.open(url), time.perf_counter() - a
        except RemoteIndexError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def read_through(directory: Path) -> float:
    """Read every index file once, so that both sides start from the same warm page cache
    (otherwise whichever side runs first pays the disk reads for the other)."""
    a = time.perf_counter()
    for f in sorted(directory.iterdir()):
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    return time.perf_counter() - a


def comparable(result: Any) -> dict[str, Any]:
    out = result.to_json()
    out.pop("timings_ms")
    return out


def bench_size(n_tokens: int, args: argparse.Namespace) -> dict[str, Any]:
    c = C.ensure_corpus(args.workdir, n_tokens, args.seed)
    C.ensure_our_index(c)
    rng = np.random.default_rng(args.seed + 23)
    texts = [C.decode(c, C.make_response(c, rng, args.length)) for _ in range(args.responses + 1)]
    warmup, texts = texts[0], texts[1:]
    t_read = read_through(c.dir)
    local = Index.open(c.dir)
    proc, url = start_server(c.dir)
    try:
        remote, t_open = open_remote(proc, url)
        # first-use costs on both sides (first-token tables, unigram counts, word runs), not per trace
        a = time.perf_counter()
        Tracer([local]).trace(warmup)
        t_first_local = time.perf_counter() - a
        a = time.perf_counter()
        Tracer([remote]).trace(warmup)
        t_first_remote = time.perf_counter() - a
        res: dict[str, Any] = {"n": n_tokens, "open": t_open, "first_local": t_first_local, "first_remote": t_first_remote,
                               "read": t_read}
        cold_l, warm_l, cold_r, warm_r, reqs, reqs_warm, equal = [], [], [], [], [], [], True

        def run_local(text: str) -> Any:
            tl = Tracer([local])
            a = time.perf_counter()
            rl = tl.trace(text)
            b = time.perf_counter()
            tl.trace(text)
            cold_l.append(b - a)
            warm_l.append(time.perf_counter() - b)
            return rl

        def run_remote(text: str) -> Any:
            tr = Tracer([remote])
            n0 = remote.requests
            a = time.perf_counter()
            rr = tr.trace(text)
            b = time.perf_counter()
            n1 = remote.requests
            tr.trace(text)
            cold_r.append(b - a)
            warm_r.append(time.perf_counter() - b)
            reqs.append(n1 - n0)
            reqs_warm.append(remote.requests - n1)
            return rr

        for i, text in enumerate(texts):  # alternate which side goes first (CPU caches, the other engineers' load)
            if i % 2:
                rr = run_remote(text)
                rl = run_local(text)
            else:
                rl = run_local(text)
                rr = run_remote(text)
            equal &= comparable(rl) == comparable(rr)
        res.update(cold_local=C.median(cold_l), cold_remote=C.median(cold_r), warm_local=C.median(warm_l),
                   warm_remote=C.median(warm_r), requests=C.median(reqs), requests_max=max(reqs),
                   requests_warm=C.median(reqs_warm), equal=equal, spans=len(rl.spans), documents=len(rl.documents),
                   p99_local=float(np.percentile(cold_l, 99)), p99_remote=float(np.percentile(cold_r, 99)))
        remote.close()
    finally:
        proc.terminate()
        proc.wait(30)
    # the infini-gram API mode: the same replies, a fresh tracer each (its client caches answers)
    proc, url = start_server(c.dir, api_only=True)
    try:
        tok = c.dir / "tokenizer.json" if (c.dir / "tokenizer.json").exists() else Path(str(c.tokenizer))
        api = open_api(proc, url, local.name, tok)
        Tracer([api]).trace(warmup)
        cold_a, reqs_a, same = [], [], True
        for text in texts:
            n0 = api.requests
            a = time.perf_counter()
            ra = Tracer([api]).trace(text)
            cold_a.append(time.perf_counter() - a)
            reqs_a.append(api.requests - n0)
            rl = Tracer([local]).trace(text)
            same &= [(x.start, x.end, x.count) for x in ra.spans] == [(x.start, x.end, x.count) for x in rl.spans]
        res.update(cold_api=C.median(cold_a), p99_api=float(np.percentile(cold_a, 99)), requests_api=C.median(reqs_a),
                   requests_api_max=max(reqs_a), api_spans_equal=same)
        api.close()
    finally:
        proc.terminate()
        proc.wait(30)
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100M", help="comma-separated corpus sizes (default 100M)")
    p.add_argument("--responses", type=int, default=5, help="replies traced per size (median reported)")
    p.add_argument("--length", type=int, default=500, help="tokens per reply")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    C.add_json_out(p)
    args = p.parse_args()
    out = C.JsonOut("serve", args.json_out)
    args.workdir = C.check_workdir(args.workdir)
    results = C.run_sizes([C.parse_size(s) for s in args.sizes.split(",")], bench_size, args)
    rows = []
    for r in results:
        lab = C.size_label(r["n"])
        rows.append([f"{lab}  trace, fresh tracer", C.fmt_s(r["cold_local"]), C.fmt_s(r["cold_remote"]),
                     C.ratio(r["cold_remote"], r["cold_local"]), f"{r['requests']:g} (max {r['requests_max']})"])
        rows.append([f"{lab}  same text again", C.fmt_s(r["warm_local"]), C.fmt_s(r["warm_remote"]),
                     C.ratio(r["warm_remote"], r["warm_local"]), f"{r['requests_warm']:g}"])
        rows.append([f"{lab}  first trace of a session", C.fmt_s(r["first_local"]), C.fmt_s(r["first_remote"]),
                     C.ratio(r["first_remote"], r["first_local"]), ""])
    C.print_table(f"Trace of a {args.length}-token reply: local index vs served on localhost (median of {args.responses})",
                  ["", "local", "served", "served/local", "requests per trace"], rows)
    side = []
    for r in results:
        lab = C.size_label(r["n"])
        side.append([f"{lab}  median", C.fmt_s(r["cold_local"]), C.fmt_s(r["cold_remote"]), C.fmt_s(r["cold_api"])])
        side.append([f"{lab}  p99 (of {args.responses})", C.fmt_s(r["p99_local"]), C.fmt_s(r["p99_remote"]),
                     C.fmt_s(r["p99_api"])])
        side.append([f"{lab}  requests per trace", "0", f"{r['requests']:g}", f"{r['requests_api']:g} (max "
                     f"{r['requests_api_max']})"])
        side.append([f"{lab}  spans equal to local", "-", str(r["equal"]), str(r["api_spans_equal"])])
    C.print_table("The same replies, fresh tracer: local vs tracetui serve vs tracetui serve --infinigram-api-only",
                  ["", "local", "tracetui serve", "infini-gram API mode"], side)
    for r in results:
        print(f"[{C.size_label(r['n'])}] index files read once beforehand (same page cache both ways): "
              f"{C.fmt_s(r['read'])}; opening the served index (listing, info, tokenizer): {C.fmt_s(r['open'])}; "
              f"{r['spans']} spans, {r['documents']} documents in the last trace; served trace JSON == local: {r['equal']}")
    out.write(args, results)
    return 0 if all(r["equal"] and r["api_spans_equal"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
