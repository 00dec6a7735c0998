"""`tracetui serve` under load: K concurrent clients (8, 32, 128) sending a realistic mix for a
duration against a 100M-token index served by `tracetui serve` (a separate process, as in use).

The mix, per client, drawn at random for every operation:
- trace (30%): the HTTP requests a `Tracer` makes for a 500-token reply (recorded once from real
  traces against the same server, replayed in order; the latency is the whole sequence's);
- count (20%, infini-gram's `count` of 1-3 corpus tokens), ntd (10%, infini-gram's sampled
  `ntd`), document (15%, a page of a document and infini-gram's `get_doc_by_rank`), words (10%,
  a whole-word count);
- expensive (15%), deliberately: an exact `ntd` of the commonest token (infini-gram's API with
  tracetui's `exact`), an exact `ntd` of the empty prompt on tracetui's endpoint (the whole index:
  refused by predicted cost), whole-word counts and `find_words_many` of the commonest tokens
  whose left edge is decided occurrence by occurrence, a 4x4-term CNF `search_docs` at
  infini-gram's largest `max_clause_freq`, a `longest_prefixes` of 200k tokens.
While the clients run, three adversaries do too: one sends an expensive request and disconnects
before the answer, one is a slow client (its body a byte every 0.2 s), one floods invalid
requests (bad JSON, wrong types, unknown operations, wrong content type).

Printed per phase: throughput, p50/p99 per operation, answers by status, the server's RSS and open
descriptors at its start and end, and how long the server's CPU stays busy after the last client
stopped (work left running past its answer would show here). First an unloaded phase (one client,
each operation alone) gives the medians the goal is measured against: no 5xx but the designed
503/504, p99 of the trace operation at 32 clients under 10x its unloaded median, RSS and
descriptors flat.

    python benchmarks/bench_serve_load.py                          # 100M tokens, 60 s per phase
    python benchmarks/bench_serve_load.py --tokens 10M --seconds 20 --clients 8,32
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from index_tools.engine import Index  # noqa: E402
from index_tools.errors import RemoteIndexError  # noqa: E402
from index_tools.remote import RemoteIndex  # noqa: E402
from index_tools.wire import pack, pack_seqs  # noqa: E402
from tracetui.tracing.pipeline import Tracer  # noqa: E402

HERE = Path(__file__).resolve().parent
MIX = {"trace": 30, "count": 20, "ntd": 10, "document": 15, "words": 10, "expensive": 15}
Request = tuple[str, str, bytes | None]  # method, path, JSON body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(directory: Path, timeout: float) -> tuple[subprocess.Popen, str, int]:  # type: ignore[type-arg]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tracetui.cli", "serve", "--index", str(directory), "--port",
                             str(port), "--timeout", str(timeout)], cwd=C.ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            RemoteIndex.open(url).close()
            return proc, url, port
        except RemoteIndexError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def record_traces(url: str, texts: list[str]) -> list[list[Request]]:
    """The requests a fresh Tracer makes for each text (after one warm-up trace: the session's
    one-time requests, tokenizer and unigram counts, are not part of a trace)."""
    remote = RemoteIndex.open(url)
    http = remote.parts[0].server._http
    real = http.request
    log: list[Request] = []

    def spy(method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> Any:
        log.append((method, path, json.dumps(body).encode() if body is not None else None))
        return real(method, path, body, headers)

    http.request = spy  # type: ignore[method-assign]
    Tracer([remote]).trace(texts[0])
    out = []
    for text in texts[1:]:
        log.clear()
        Tracer([remote]).trace(text)
        out.append(list(log))
    remote.close()
    return out


class Workload:
    """Request bodies drawn from the corpus (pre-encoded: the clients only send)."""

    def __init__(self, directory: Path, name: str, seed: int) -> None:
        ix = Index.open(directory)
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.tokens = np.asarray(ix.shards[0].ids[: 5_000_000], dtype=np.int64)
        uni = ix.unigram_counts()
        order = np.argsort(-uni)
        wb = ix.tokenizer.word_boundaries()
        self.common = [int(t) for t in order[:16]]
        open_left = [int(t) for t in order[:5000] if not wb.opens_with_break(np.array([t]))[0]]
        self.midword = open_left[:4]
        self.counts = {t: int(uni[t]) for t in self.common[:1] + self.midword[:1]}
        self.n_docs = ix.shards[0].n_docs
        self.n_tokens = ix.shards[0].n_tokens
        ix.close()

    def seq(self, lo: int = 1, hi: int = 3) -> list[int]:
        n = int(self.rng.integers(lo, hi + 1))
        p = int(self.rng.integers(0, len(self.tokens) - n))
        seq = self.tokens[p : p + n]
        if (seq == 65535).any():
            return self.seq(lo, hi)
        return [int(t) for t in seq]

    def api(self, **body: Any) -> Request:
        return ("POST", "/", json.dumps({"index": self.name, **body}).encode())

    def own(self, op: str, body: dict[str, Any]) -> Request:
        return ("POST", f"/indexes/{self.name}/{op}", json.dumps(body).encode())

    def cheap(self, kind: str) -> Request:
        if kind == "count":
            return self.api(query_type="count", query_ids=self.seq())
        if kind == "ntd":
            return self.api(query_type="ntd", query_ids=self.seq(1, 2))
        if kind == "words":
            return self.own("count_words", {"ids": pack(self.seq(1, 3))})
        if self.rng.random() < 0.5:
            return self.own("document", {"shard": 0, "doc": int(self.rng.integers(0, self.n_docs)), "tokens": True,
                                         "length": 2000})
        return self.api(query_type="get_doc_by_rank", query_ids=[], s=0, rank=int(self.rng.integers(0, self.n_tokens)),
                        max_disp_len=1000)

    def expensive(self) -> tuple[str, Request]:
        kinds = ["ntd_exact_common", "ntd_empty_own", "words_midword", "find_words_midword", "cnf_docs",
                 "longest_200k", "api_words_midword"]
        k = kinds[int(self.rng.integers(0, len(kinds)))]
        if k == "ntd_exact_common":
            return k, self.api(query_type="ntd", query_ids=[self.common[0]], exact=True)
        if k == "ntd_empty_own":
            return k, self.own("ntd", {"ids": pack([]), "unit": 1})
        if k == "words_midword":
            return k, self.own("count_words", {"ids": pack([self.midword[0]])})
        if k == "find_words_midword":
            return k, self.own("find_words_many", pack_seqs([np.array([t]) for t in self.midword]))
        if k == "cnf_docs":
            terms = [[[t] for t in self.common[4 * c : 4 * c + 4]] for c in range(4)]
            return k, self.api(query_type="search_docs", query_ids=terms, max_clause_freq=500_000, maxnum=10)
        if k == "longest_200k":
            p = int(self.rng.integers(0, len(self.tokens) - 200_000))
            ids = self.tokens[p : p + 200_000].copy()
            ids[ids == 65535] = self.common[0]  # a text has no document separators
            return k, self.own("longest_prefixes", {"ids": pack(ids)})
        return k, self.api(query_type="count", query_ids=[self.midword[0]], whole_words=True)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lat: dict[str, list[float]] = {}
        self.status: Counter[str] = Counter()
        self.by_op: dict[str, Counter[int]] = {}
        self.traces: list[tuple[int, float]] = []  # (which recorded trace, seconds) of answered traces

    def add(self, op: str, status: int, seconds: float) -> None:
        with self.lock:
            self.lat.setdefault(op, []).append(seconds)
            self.status[str(status)] += 1
            self.by_op.setdefault(op, Counter())[status] += 1


def client(url: str, work: Workload, traces: list[list[Request]], stats: Stats, end: float, seed: int,
           only: str | None = None, think: float = 0.0) -> None:
    import httpx

    rnd = random.Random(seed)
    kinds, weights = list(MIX), list(MIX.values())
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=httpx.Timeout(300.0), trust_env=False) as http:
        def send(req: Request) -> int:
            method, path, body = req
            try:
                return http.request(method, path, content=body, headers=headers if body else None).status_code
            except httpx.HTTPError:
                return -1  # no answer at all (counted apart from HTTP statuses)

        while time.monotonic() < end:
            if think > 0:  # a user's pause between operations (exponential, mean `think`)
                time.sleep(min(rnd.expovariate(1 / think), max(0.0, end - time.monotonic())))
                if time.monotonic() >= end:
                    break
            kind = only or rnd.choices(kinds, weights)[0]
            t0 = time.perf_counter()
            if kind == "trace":
                status = 200
                which = rnd.randrange(len(traces))
                for req in traces[which]:
                    status = send(req)
                    if status != 200:
                        break
                stats.add("trace", status, time.perf_counter() - t0)
                if status == 200:
                    with stats.lock:
                        stats.traces.append((which, time.perf_counter() - t0))
            elif kind == "expensive":
                with work_lock:
                    name, req = work.expensive()
                t0 = time.perf_counter()
                stats.add(f"x:{name}", send(req), time.perf_counter() - t0)
            else:
                with work_lock:
                    req = work.cheap(kind)
                t0 = time.perf_counter()
                stats.add(kind, send(req), time.perf_counter() - t0)


work_lock = threading.Lock()  # the workload's random generator is shared by the clients


def raw_request(port: int, path: str, body: bytes, ctype: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def disconnecter(port: int, work: Workload, end: float, counts: Counter[str]) -> None:
    """An expensive request, then the connection closed before the answer, over and over."""
    while time.monotonic() < end:
        _, path, body = work.api(query_type="ntd", query_ids=[work.common[0]], exact=True)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(raw_request(port, path, body or b""))
                time.sleep(0.05)
            counts["disconnected"] += 1
        except OSError:
            counts["refused"] += 1
        time.sleep(0.2)


def slow_client(port: int, work: Workload, end: float, counts: Counter[str]) -> None:
    """A request whose body comes a byte every 0.2 s (the server must not wait on it)."""
    _, path, body = work.api(query_type="count", query_ids=work.seq())
    data = raw_request(port, path, body or b"")
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                counts["slow_connections"] += 1
                for i in range(len(data)):
                    if time.monotonic() >= end:
                        break
                    s.sendall(data[i : i + 1])
                    time.sleep(0.2)
                else:
                    s.recv(65536)
                    counts["slow_answered"] += 1
        except OSError:
            counts["slow_closed_by_server"] += 1
            time.sleep(0.2)


def flood(port: int, name: str, end: float, counts: Counter[str]) -> None:
    """Invalid requests as fast as one thread sends them; their statuses counted."""
    bodies: list[tuple[str, bytes, str]] = [
        ("/", b"{not json", "application/json"),
        ("/", b'{"index": "%s", "query_type": "count", "query_ids": "x"}' % name.encode(), "application/json"),
        ("/", b'{"index": "nope", "query_type": "count", "query": "a"}', "application/json"),
        ("/", b'{"query_type": 5, "query": [1, [2]]}', "application/json"),
        ("/", b'{"index": "%s", "query_type": "count", "query": "a"}' % name.encode(), "text/plain"),
        (f"/indexes/{name}/nope", b"{}", "application/json"),
        (f"/indexes/{name}/find_ranges", b'{"ids": "!!!", "lengths": 3}', "application/json"),
        (f"/indexes/{name}/windows", b'{"occurrences": [[0, 1e300, -1]], "contexts": [10**9]}', "application/json"),
        (f"/indexes/{name}/document", b'{"shard": 99, "doc": -1}', "application/json"),
        ("/", b"[" * 100_000, "application/json"),
    ]
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while time.monotonic() < end:
        path, body, ctype = bodies[i % len(bodies)]
        i += 1
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            resp.read()
            counts[f"invalid_{resp.status}"] += 1
        except (OSError, http.client.HTTPException):
            counts["invalid_no_answer"] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def server_state(pid: int) -> dict[str, Any]:
    import psutil

    p = psutil.Process(pid)
    mem = p.memory_info()
    # RSS counts the index's memory-mapped pages the queries touched (bounded by the index's
    # size, shared with the page cache); `anon` is the rest: the server's own heap
    return {"rss": mem.rss, "anon": mem.rss - mem.shared, "fds": p.num_fds(), "threads": p.num_threads(),
            "cpu": sum(p.cpu_times()[:2])}


def seconds_to_idle(pid: int, limit: float = 120.0) -> float:
    """From now, how long until the server process uses under 5% of a core over 1 s."""
    import psutil

    p = psutil.Process(pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        a = sum(p.cpu_times()[:2])
        time.sleep(1.0)
        if sum(p.cpu_times()[:2]) - a < 0.05:
            return max(0.0, time.monotonic() - t0 - 1.0)
    return limit


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def phase(url: str, port: int, pid: int, work: Workload, traces: list[list[Request]], k: int, seconds: float,
          adversaries: bool, seed: int, think: float = 0.0) -> dict[str, Any]:
    stats = Stats()
    adv: Counter[str] = Counter()
    before = server_state(pid)
    end = time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=(url, work, traces, stats, end, seed * 1000 + i, None, think),
                                daemon=True) for i in range(k)]
    if adversaries:
        threads += [threading.Thread(target=disconnecter, args=(port, work, end, adv), daemon=True),
                    threading.Thread(target=slow_client, args=(port, work, end, adv), daemon=True),
                    threading.Thread(target=flood, args=(port, work.name, end, adv), daemon=True)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    peak_rss = before["rss"]
    while any(t.is_alive() for t in threads[:k]):
        time.sleep(1.0)
        try:
            peak_rss = max(peak_rss, server_state(pid)["rss"])
        except Exception:  # the server died: reported by its absence below
            break
    for t in threads:  # every client's last request answered (at most the server's time limit)
        t.join()
    wall = time.perf_counter() - t0
    idle = seconds_to_idle(pid)  # after the last answer: work left running past its answer shows here
    after = server_state(pid)
    ops = {op: {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99), "status": dict(stats.by_op[op])}
           for op, xs in sorted(stats.lat.items())}
    total = sum(len(xs) for xs in stats.lat.values())
    return {"clients": k, "think": think, "seconds": wall, "operations": total, "throughput": total / wall, "ops": ops,
            "status": dict(stats.status), "adversaries": dict(adv), "server_before": before, "server_after": after,
            "server_peak_rss": peak_rss, "busy_after_stop": idle, "trace_samples": stats.traces}


def unloaded(url: str, work: Workload, traces: list[list[Request]], seconds: float, seed: int) -> dict[str, Any]:
    """One client, each kind of operation alone for a share of `seconds`: the unloaded medians."""
    out: dict[str, Any] = {}
    for kind in ("trace", "count", "ntd", "document", "words", "expensive"):
        stats = Stats()
        client(url, work, traces, stats, time.monotonic() + max(2.0, seconds / 6), seed, only=kind)
        for op, xs in stats.lat.items():
            out[op] = {"n": len(xs), "p50": pct(xs, 50), "p99": pct(xs, 99), "status": dict(stats.by_op[op])}
        if kind == "trace":  # each recorded trace's own unloaded median (they differ 16x in requests)
            out["trace_each_p50"] = {i: pct([s for w, s in stats.traces if w == i], 50) for i in range(len(traces))}
    return out


def slowdown(base: dict[str, Any], ph: dict[str, Any]) -> tuple[float, float]:
    """p50 and p99 over a phase's answered traces of (latency / that trace's unloaded median)."""
    each = base.get("trace_each_p50", {})
    xs = [s / each[w] for w, s in ph["trace_samples"] if w in each and each[w] > 0]  # NaN > 0 is False
    return pct(xs, 50), pct(xs, 99)


def fmt_ms(s: float) -> str:
    return "-" if s != s else f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def label(p: dict[str, Any]) -> str:
    return f", think {p['think']:g} s" if p.get("think") else ""


def report(base: dict[str, Any], phases: list[dict[str, Any]]) -> None:
    ops = sorted({op for p in phases for op in p["ops"]} | (set(base) - {"trace_each_p50"}))
    header = ["operation", "unloaded p50"] + [f"{p['clients']} clients{label(p)} p50 / p99" for p in phases]
    rows = []
    for op in ops:
        row = [op, fmt_ms(base[op]["p50"]) if op in base else "-"]
        for p in phases:
            o = p["ops"].get(op)
            row.append(f"{fmt_ms(o['p50'])} / {fmt_ms(o['p99'])}  (n {o['n']})" if o else "-")
        rows.append(row)
    C.print_table("Latency per operation", header, rows)
    rows = []
    for p in phases:
        b, a = p["server_before"], p["server_after"]
        fives = {s: n for s, n in p["status"].items() if s.startswith("5") and s not in ("503", "504")}
        rows.append([f"{p['clients']} clients{label(p)}", f"{p['throughput']:.1f}/s", json.dumps(p["status"], sort_keys=True),
                     str(sum(fives.values())), f"{b['rss'] / 2**20:.0f} -> {a['rss'] / 2**20:.0f} MB "
                     f"(peak {p['server_peak_rss'] / 2**20:.0f})",
                     f"{b['anon'] / 2**20:.0f} -> {a['anon'] / 2**20:.0f} MB", f"{b['fds']} -> {a['fds']}",
                     f"{p['busy_after_stop']:.1f} s", "{:.1f}x / {:.1f}x".format(*slowdown(base, p))])
    C.print_table("Load", ["phase", "throughput", "answers by status", "other 5xx", "server RSS", "of it heap",
                           "open fds", "CPU busy after last answer", "trace slowdown p50 / p99"], rows)
    for p in phases:
        print(f"[{p['clients']} clients{label(p)}] adversaries: {json.dumps(p['adversaries'], sort_keys=True)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", default="100M", help="index size (default 100M; built once and cached)")
    p.add_argument("--seconds", type=float, default=60.0, help="duration of each loaded phase")
    p.add_argument("--clients", default="8,32,128", help="comma-separated client counts, one phase each")
    p.add_argument("--replies", type=int, default=6, help="500-token replies whose trace requests are replayed")
    p.add_argument("--length", type=int, default=500)
    p.add_argument("--server-timeout", type=float, default=60.0, help="`tracetui serve --timeout`")
    p.add_argument("--think", default="0",
                   help="comma-separated mean pauses (s) between a client's operations; all phases run for each "
                        "(0: back to back, the server saturated)")
    p.add_argument("--no-adversaries", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    p.add_argument("--json-out", type=Path, default=HERE / "results" / "serve_load.json")
    args = p.parse_args()
    out = C.JsonOut("serve_load", args.json_out)
    args.workdir = C.check_workdir(args.workdir)
    n = C.parse_size(args.tokens)
    c = C.ensure_corpus(args.workdir, n, args.seed)
    C.ensure_our_index(c)
    rng = np.random.default_rng(args.seed + 29)
    texts = [C.decode(c, C.make_response(c, rng, args.length)) for _ in range(args.replies + 1)]
    proc, url, port = start_server(c.dir, args.server_timeout)
    results: dict[str, Any] = {"tokens": n}
    try:
        name = RemoteIndex.open(url).name
        start = server_state(proc.pid)
        traces = record_traces(url, texts)
        work = Workload(c.dir, name, args.seed)
        results.update(requests_per_trace=[len(t) for t in traces], server_start=start,
                       expensive_counts=work.counts)
        print(f"[{C.size_label(n)}] {len(traces)} recorded traces, requests per trace {[len(t) for t in traces]}; "
              f"server at start: RSS {start['rss'] / 2**20:.0f} MB, {start['fds']} fds", flush=True)
        results["unloaded"] = base = unloaded(url, work, traces, min(60.0, args.seconds), args.seed)
        phases = []
        for think in [float(x) for x in args.think.split(",") if x.strip()]:
            for k in [int(x) for x in args.clients.split(",") if x.strip()]:
                print(f"[{C.size_label(n)}] {k} clients, think {think:g} s, for {args.seconds:g} s ...", flush=True)
                phases.append(phase(url, port, proc.pid, work, traces, k, args.seconds, not args.no_adversaries,
                                    args.seed + k, think))
        results["phases"] = phases
        results["server_end"] = end = server_state(proc.pid)
        report(base, phases)
        other5 = sum(n for ph in phases for s, n in ph["status"].items() if s.startswith("5") and s not in ("503", "504"))
        no_answer = sum(ph["status"].get("-1", 0) for ph in phases)
        ratios = {f"{ph['clients']}{label(ph)}": ph["ops"]["trace"]["p99"] / base["trace"]["p50"]
                  for ph in phases if "trace" in ph["ops"] and "trace" in base}
        results["goals"] = {"other_5xx": other5, "no_answer": no_answer, "trace_p99_over_unloaded_p50": ratios,
                            "rss_start_end_mb": [start["rss"] / 2**20, end["rss"] / 2**20],
                            "heap_start_end_mb": [start["anon"] / 2**20, end["anon"] / 2**20],
                            "fds_start_end": [start["fds"], end["fds"]]}
        slow = {f"{ph['clients']}{label(ph)}": slowdown(base, ph)[1] for ph in phases}
        results["goals"]["trace_p99_slowdown_same_trace"] = slow
        shown = ", ".join(f"{k} clients {v:.1f}x (same-trace slowdown {slow[k]:.1f}x)" for k, v in ratios.items())
        print(f"goals: other 5xx {other5} (goal 0); requests without an answer {no_answer}; trace p99 / unloaded "
              f"median: {shown} (goal < 10 at 32 clients); RSS {start['rss'] / 2**20:.0f} -> "
              f"{end['rss'] / 2**20:.0f} MB (heap {start['anon'] / 2**20:.0f} -> {end['anon'] / 2**20:.0f}); "
              f"fds {start['fds']} -> {end['fds']}")
        out.write(args, results)
    finally:
        proc.terminate()
        proc.wait(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
