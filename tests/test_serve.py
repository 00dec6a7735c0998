"""`tracetui serve` and `RemoteIndex`: a served index answers exactly as the same index opened
locally (real uvicorn on a free port, real indexes), also when its shards are split over two
servers; bad requests get 4xx JSON errors and the server stays up; a server that goes away is
one line of `RemoteIndexError`."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

try:
    import starlette  # noqa: F401
    import uvicorn
except ImportError:  # the serve extra: only the tests that start a server need it
    uvicorn = None

needs_server = pytest.mark.skipif(uvicorn is None, reason="needs starlette and uvicorn (the serve extra, in the test extra)")

from index_tools.builder import BuildOptions, build_index  # noqa: E402
from index_tools.engine import Index  # noqa: E402
from index_tools.errors import RemoteIndexError  # noqa: E402
from index_tools.format import MANIFEST_NAME, read_manifest, shard_file, write_manifest  # noqa: E402
from index_tools.ngram import infgram_ntd, infgram_probs, ntd  # noqa: E402
from index_tools.opening import IndexSet  # noqa: E402
from index_tools.remote import RemoteIndex  # noqa: E402
from index_tools.serve_ops import Limits, window_cost  # noqa: E402
from index_tools.wire import pack  # noqa: E402
from tracetui import serve as serve_mod  # noqa: E402
from tracetui.cli import main  # noqa: E402
from tracetui.overlap.measure import measure  # noqa: E402
from tracetui.serve import create_app, uvicorn_options  # noqa: E402
from tracetui.tracing.memorization import memorization  # noqa: E402
from tracetui.tracing.pipeline import TraceParams, Tracer  # noqa: E402
from tracetui.tracing.search import search_documents  # noqa: E402

from .conftest import SAMPLE_TEXTS, write_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REPLY = ("The quick brown fox jumps over the lazy dog. A stitch in time saves nine.\n"
         "To be, or not to be, that is the question. def add(a, b):\n    return a + b\n"
         "The lazy dog sleeps all day long, quick as a fox.")
PROBES = ["The quick", " the lazy dog", " quick", "Hi", " to be", "return a + b", "nothing like this at all"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppServer:
    """uvicorn serving `create_app(indexes, **app_options)` in a thread of the test process (the
    options of the security guard, the infini-gram-only mode...)."""

    def __init__(self, directories: list[Path], uvicorn_extra: dict[str, Any] | None = None,
                 **app_options: Any) -> None:
        self.port = free_port()
        app = create_app(IndexSet([Index.open(d) for d in directories]), **app_options)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                **{**uvicorn_options(), **(uvicorn_extra or {})})  # as `tracetui serve` runs it
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ThreadServer(AppServer):
    """`AppServer` with the server's time limit and request limits; other keywords go to uvicorn."""

    def __init__(self, directories: list[Path], timeout: float = 60.0, limits: Limits | None = None,
                 **options: Any) -> None:
        super().__init__(directories, uvicorn_extra=options, timeout=timeout, limits=limits)


def split_shard(whole: Path, n: int, out: Path) -> Path:
    """Shard n of an index as an index of its own (what one machine of a split corpus holds)."""
    out.mkdir(parents=True)
    m = read_manifest(whole)
    assert m is not None
    files = {}
    for kind in ("tokenized", "table", "offset", "metadata", "metaoff", "unigram"):
        src = shard_file(whole, kind, n)
        if src.exists():
            shutil.copyfile(src, shard_file(out, kind, 0))
            if src.name in m.files:
                files[shard_file(out, kind, 0).name] = m.files[src.name]
    shutil.copyfile(whole / m.tokenizer, out / m.tokenizer)
    if m.tokenizer in m.files:
        files[m.tokenizer] = m.files[m.tokenizer]
    write_manifest(out, replace(m, shards=[m.shards[n]], files=files))
    assert (out / MANIFEST_NAME).exists()
    return out


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Downloaded tokenizers go to a cache of the tests' own, not the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, bpe_tokenizer: Path) -> dict[str, Path]:
    """A two-shard index, its shards as two indexes, and a second index to mix with."""
    d = tmp_path_factory.mktemp("served")
    texts = [f"{t} Note {i}." for i, t in enumerate(SAMPLE_TEXTS * 6)]
    whole = d / "corpus"
    build_index([write_jsonl(d / "c.jsonl", texts)], whole,
                BuildOptions(tokenizer=str(bpe_tokenizer), shards=2, progress=False))
    assert len(read_manifest(whole).shards) == 2  # type: ignore[union-attr]
    other = d / "other"
    # metadata JSON may hold NaN (Python's json writes it)
    lines = [json.dumps({"text": t, "score": float("nan")}) for t in SAMPLE_TEXTS[:3]]
    (d / "o.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    build_index([d / "o.jsonl"], other, BuildOptions(tokenizer=str(bpe_tokenizer), progress=False))
    return {"whole": whole, "a": split_shard(whole, 0, d / "a" / "corpus"), "b": split_shard(whole, 1, d / "b" / "corpus"),
            "other": other}


@pytest.fixture(scope="module")
def servers(corpus: dict[str, Path]) -> Iterator[dict[str, str]]:
    """One server with the whole index and the other one; two servers with a shard each."""
    full, a, b = ThreadServer([corpus["whole"], corpus["other"]]), ThreadServer([corpus["a"]]), ThreadServer([corpus["b"]])
    yield {"full": full.url, "split": f"{a.url}/corpus,{b.url}/corpus"}
    for s in (full, a, b):
        s.stop()


def _trace_json(indexes: Any, text: str = REPLY) -> dict[str, Any]:
    out = Tracer(indexes).trace(text, prompt="a fox?", lens=True).to_json()
    out.pop("timings_ms")
    out.pop("indexes")
    return out


def _same_queries(local: Index, remote: RemoteIndex) -> None:
    """Every index-level query the tracer and the CLI use gives the same answer."""
    assert remote.total_tokens == local.total_tokens
    assert np.array_equal(remote.unigram_counts(), local.unigram_counts())
    seqs = [local.encode(p) for p in PROBES]
    for lo_r, lo_l in zip(remote.find_ranges(seqs), local.find_ranges(seqs), strict=True):
        assert np.array_equal(lo_r, lo_l)
    assert remote.count_many(seqs).tolist() == local.count_many(seqs).tolist()
    assert remote.count_words_many(seqs).tolist() == local.count_words_many(seqs).tolist()
    assert remote.count_words_many(seqs, cap=3).tolist() == local.count_words_many(seqs, cap=3).tolist()
    assert remote.find_words_many(seqs) == local.find_words_many(seqs)
    sampled = False
    for p, ids in zip(PROBES, seqs, strict=True):
        assert remote.count(ids) == local.count(ids), p
        assert remote.count_words(ids) == local.count_words(ids), p
        assert remote.find(ids) == local.find(ids), p
        a, b = ntd(remote, ids), ntd(local, ids)
        assert (a.prompt_cnt, a.ids.tolist(), a.counts.tolist()) == (b.prompt_cnt, b.ids.tolist(), b.counts.tolist())
        a, b = ntd(remote, ids, max_support=2), ntd(local, ids, max_support=2)  # infini-gram's sampling
        assert (a.approx, a.ids.tolist(), a.counts.tolist()) == (b.approx, b.ids.tolist(), b.counts.tolist())
        sampled |= b.approx
        ka, da = infgram_ntd(remote, ids)
        kb, db = infgram_ntd(local, ids)
        assert (ka, da.counts.tolist()) == (kb, db.counts.tolist())
    assert sampled
    ids = local.encode(REPLY)
    for positions in (None, np.arange(0, len(ids), 3)):
        got, want = remote.longest_prefixes_witnessed(ids, positions), local.longest_prefixes_witnessed(ids, positions)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert infgram_probs(remote, ids) == infgram_probs(local, ids)
    assert memorization(remote, REPLY) == memorization(local, REPLY)
    for text in ("quick", " the lazy dog", "Hi"):
        for whole in (True, False):
            assert search_documents([remote], text, whole_words=whole) == search_documents([local], text, whole_words=whole)  # type: ignore[list-item]
    assert remote.document_text(3) == local.document_text(3)
    assert remote.metadata(1, 2) == local.metadata(1, 2)
    # overlap reports: the same per-item figures and documents
    items = [REPLY, "The quick brown fox jumps over the lazy dog. Note 3.", "nothing like the corpus at all"]
    assert measure(remote, items, n=3, min_span=4) == measure(local, items, n=3, min_span=4)


@needs_server
def test_served_index_answers_as_local(corpus: dict[str, Path], servers: dict[str, str]) -> None:
    local = Index.open(corpus["whole"])
    remote = RemoteIndex.open(f"{servers['full']}/corpus")
    _same_queries(local, remote)
    assert remote.fingerprint == local.fingerprint
    assert _trace_json([remote]) == _trace_json([local])


@needs_server
def test_two_servers_one_index_answers_as_local(corpus: dict[str, Path], servers: dict[str, str]) -> None:
    """Shards on two servers, queried concurrently and merged: the same as the two-shard index."""
    local = Index.open(corpus["whole"])
    remote = RemoteIndex.open(servers["split"])
    assert remote.n_shards == 2 and remote.manifest.documents == local.manifest.documents
    _same_queries(local, remote)
    got, want = _trace_json([remote]), _trace_json([local])
    assert got["spans"] and got["documents"]
    assert {d["shard"] for d in want["documents"]} == {0, 1}  # documents come from both servers
    assert got == want


@needs_server
def test_trace_mixes_local_and_remote_and_few_round_trips(corpus: dict[str, Path], servers: dict[str, str]) -> None:
    mixed = IndexSet.open([str(corpus["other"]), f"{servers['full']}/corpus"])
    local = IndexSet.open([str(corpus["other"]), str(corpus["whole"])])
    assert [ix.name for ix in mixed] == [ix.name for ix in local]
    assert _trace_json(mixed) == _trace_json(local)
    odd = RemoteIndex.open(f"{servers['full']}/other")
    got, want = odd.metadata(0, 1), Index.open(corpus["other"]).metadata(0, 1)
    assert json.dumps(got) == json.dumps(want) and "NaN" in json.dumps(got)
    remote = RemoteIndex.open(f"{servers['full']}/corpus")
    before = remote.requests
    Tracer([remote]).trace(REPLY)
    assert remote.requests - before <= 12  # a handful of batched requests, not one per token or document


@needs_server
def test_cli_accepts_urls(corpus: dict[str, Path], servers: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    out = {}
    for where in (str(corpus["whole"]), f"{servers['full']}/corpus"):
        assert main(["count", "--index", where, "The quick brown", "--json"]) == 0
        out[where] = json.loads(capsys.readouterr().out)
    a, b = out.values()
    assert a == b and a["results"][0]["count"] > 0


def _post(url: str, body: Any, raw: bytes | None = None, method: str = "POST") -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data if method == "POST" else None, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@needs_server
def test_infinigram_api_conventions(corpus: dict[str, Path], servers: dict[str, str]) -> None:
    """`POST /` as infini-gram's server (a byte-level tokenizer: a space goes before the query);
    tracetui's additions (`whole_words`, `attribute`) beside it. The full parity is
    tests/test_infinigram_api.py."""
    url, local = servers["full"] + "/", Index.open(corpus["whole"])
    ids = local.encode(" the lazy dog")
    st, r = _post(url, {"index": "corpus", "query_type": "count", "query": "the lazy dog"})
    assert st == 200 and r["count"] == local.count(ids) > 0 and r["token_ids"] == ids.tolist() and "latency" in r
    st, r = _post(url, {"index": "corpus", "query_type": "count", "query_ids": ids.tolist(), "whole_words": True})
    assert r["count"] == local.count_words(ids)
    st, r = _post(url, {"index": "corpus", "query_type": "find", "query_ids": ids.tolist()})
    assert r["segment_by_shard"] == [list(x) for x in local.find(ids)] and r["cnt"] == local.count(ids)
    q = local.encode("The quick")
    st, r = _post(url, {"index": "corpus", "query_type": "ntd", "query_ids": q.tolist()})
    d = ntd(local, q)
    assert r["prompt_cnt"] == d.prompt_cnt
    assert {int(k): v["cont_cnt"] for k, v in r["result_by_token_id"].items()} == \
        {65535 if t == -1 else t: c for t, c in zip(d.ids.tolist(), d.counts.tolist(), strict=True)}
    st, r = _post(url, {"index": "corpus", "query_type": "infgram_prob", "query": "the lazy dog"})
    row = infgram_probs(local, ids)[-1]
    assert (r["prompt_cnt"], r["cont_cnt"], r["suffix_len"]) == (row.prompt_cnt, row.cont_cnt, row.suffix_len)
    st, r = _post(url, {"index": "corpus", "query_type": "search_docs", "query": "lazy dog", "maxnum": 2})
    assert st == 200 and r["cnt"] > 0 and len(r["documents"]) == 2
    assert [" lazy dog", "0"] in r["documents"][0]["spans"]
    st, r = _post(url, {"index": "corpus", "query_type": "attribute", "query": REPLY})
    assert st == 200 and r["spans"] and all(s["r"] > s["l"] for s in r["spans"])


@needs_server
def test_bad_requests_get_4xx_json_and_server_stays_up(servers: dict[str, str]) -> None:
    base = servers["full"]
    bad: list[tuple[str, Any, bytes | None, str, int]] = [
        ("/", None, b"{not json", "POST", 400),
        ("/", [1, 2], None, "POST", 400),
        ("/", {"index": "corpus", "query_type": "nonsense", "query": "x"}, None, "POST", 400),
        # infini-gram's statuses: 400 for the route's checks; the query's own are 200 + "error"
        ("/", {"index": "nope", "query_type": "count", "query": "x"}, None, "POST", 400),
        ("/", {"query_type": "count", "query": "x"}, None, "POST", 400),  # two indexes served: name one
        ("/", {"index": "corpus", "query_type": "count"}, None, "POST", 400),
        ("/", {"index": "corpus", "query_type": "count", "query_ids": [1, "a"]}, None, "POST", 200),
        ("/", {"index": "corpus", "query_type": "count", "query_ids": [10**9]}, None, "POST", 200),
        ("/", {"index": "corpus", "query_type": "count", "query_ids": [-1]}, None, "POST", 200),
        ("/", {"index": "corpus", "query_type": "prob", "query_ids": []}, None, "POST", 200),
        ("/indexes/corpus/longest_prefixes", {"ids": "!!!"}, None, "POST", 400),
        ("/indexes/corpus/longest_prefixes", {"ids": pack([1, 2]), "positions": pack([5])}, None, "POST", 400),
        ("/indexes/corpus/find_ranges", {"ids": pack([1, 2]), "lengths": pack([3])}, None, "POST", 400),
        ("/indexes/corpus/word_counts", {"lo": pack([0]), "hi": pack([5]), "m": pack([1])}, None, "POST", 400),
        ("/indexes/corpus/word_counts", {"lo": pack([5, 0]), "hi": pack([1, 1]), "m": pack([1])}, None, "POST", 400),
        ("/indexes/corpus/windows", {"occurrences": [[7, 0, 1]], "contexts": [5]}, None, "POST", 400),
        ("/indexes/corpus/windows", {"occurrences": [[0, 10**12, 1]], "contexts": [5]}, None, "POST", 400),
        ("/indexes/corpus/windows", {"occurrences": "x"}, None, "POST", 400),
        ("/indexes/corpus/document", {"shard": 0, "doc": 10**9}, None, "POST", 400),
        ("/indexes/corpus/drop_table", {}, None, "POST", 404),
        ("/indexes/nope/find_ranges", {}, None, "POST", 404),
        ("/indexes/corpus/find_ranges", None, None, "GET", 405),
        ("/nowhere", None, None, "GET", 404),
    ]
    for path, body, raw, method, status in bad:
        st, r = _post(base + path, body, raw, method)
        assert (st, isinstance(r.get("error"), str)) == (status, True), (path, body, r)
    # a body over the limit is refused from its Content-Length, before it is read
    conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=30)
    conn.putrequest("POST", "/")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(9 << 20))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and "error" in json.loads(resp.read())
    conn.close()
    st, r = _post(base + "/", {"index": "corpus", "query_type": "count", "query": "quick"})
    assert st == 200 and r["count"] > 0


@needs_server
def test_server_gone_is_one_line_error(corpus: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A real `tracetui serve` process killed mid-use: the next query raises RemoteIndexError with
    the server's URL on one line (what the app shows in its status line), and the CLI exits 1."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tracetui.cli", "serve", "--index", str(corpus["whole"]),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                remote = RemoteIndex.open(url)
                break
            except RemoteIndexError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        tracer = Tracer([remote])
        assert tracer.trace(REPLY).spans
        proc.kill()
        proc.wait(10)
        with pytest.raises(RemoteIndexError) as info:
            tracer.trace(REPLY + " And more text the quick brown fox.")
        message = str(info.value)
        assert url in message and "unreachable" in message and "\n" not in message
        assert main(["count", "--index", url, "quick"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and url in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@needs_server
def test_time_limit_per_request_is_a_504_json(corpus: dict[str, Path]) -> None:
    """A query over the time limit is answered 504 with a JSON error; the server keeps serving."""
    server = ThreadServer([corpus["whole"]], timeout=0)
    try:
        st, r = _post(server.url + "/", {"query_type": "count", "query": "quick"})
        assert st == 504 and "longer than" in r["error"]
        st, r = _post(server.url + "/indexes", None, method="GET")
        assert st == 200 and r["indexes"][0]["name"] == "corpus"
    finally:
        server.stop()


@needs_server
async def test_app_traces_against_a_served_index_and_survives_its_loss(text_index: Path, tmp_path: Path) -> None:
    """The app with a served index: replies are traced as against the local index; once the
    server is gone, the status line says so on one line and the chat goes on."""
    from tracetui.app.app import TraceApp
    from tracetui.model import ScriptedBackend

    from .test_app import wait_idle

    server = ThreadServer([text_index])
    reply = "Sure. The quick brown fox jumps over the lazy dog. A stitch in time saves nine."
    try:
        app = TraceApp(IndexSet.open([server.url]), ScriptedBackend([reply, reply + " Again."]), intro="t",
                       export_dir=tmp_path)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.click("#prompt")
            await pilot.press(*"a proverb", "enter")
            await wait_idle(app, pilot)
            got = app.messages[-1].trace
            want = Tracer(IndexSet.open([text_index])).trace(reply)
            assert got is not None and got.spans
            assert [(s.start, s.end, s.count, s.documents) for s in got.spans] == [
                (s.start, s.end, s.count, s.documents) for s in want.spans]
            assert not any("disappeared" in str(n.message) for n in app._notifications)
            server.stop()
            await pilot.press(*"again", "enter")
            await wait_idle(app, pilot)
            assert app.messages[-1].text == reply + " Again."  # the chat keeps working
            assert "tracing failed" in app.last_status and server.url in app.last_status
            assert "\n" not in app.last_status
    finally:
        server.stop()


# -- review of issue 12: bounds, limits, paging, connections ---------------------------------------
@needs_server
def test_windows_budget_refuses_a_huge_answer_up_front(servers: dict[str, str]) -> None:
    """A ~180 KB request for 10,000 occurrences x 4 contexts of 10,000 tokens (gigabytes of
    windows) is a 413 JSON error before anything is built; the tracer's normal use is far below."""
    occ = [[0, 0, 200_000]] * 10_000
    t0 = time.perf_counter()
    st, r = _post(servers["full"] + "/indexes/corpus/windows", {"occurrences": occ, "contexts": [10_000] * 4})
    assert st == 413 and "at most" in r["error"] and time.perf_counter() - t0 < 5
    p = TraceParams()
    # a 2,000-token reply: span_density x 2000 spans of 50 tokens, docs_per_span samples each,
    # both contexts: within half the budget (and the client splits bigger batches anyway)
    spans = int(p.span_density * 2000)
    assert window_cost([50] * (spans * p.docs_per_span), [p.snippet_context, p.long_context]) < Limits().window_budget / 2
    st, r = _post(servers["full"] + "/", {"index": "corpus", "query_type": "count", "query": "quick"})
    assert st == 200 and r["count"] > 0


@needs_server
def test_batches_over_the_server_limits_are_split_and_equal_local(corpus: dict[str, Path]) -> None:
    """A server with tiny limits (published in GET /indexes): every batched call of the client
    is split into requests under them, and every answer (trace, overlap report, longest prefixes
    over texts laid end to end, longer than a request may carry) is the local one."""
    limits = Limits(max_tokens=40, max_seqs=3, max_windows=4, window_budget=3000)
    server = ThreadServer([corpus["whole"]], limits=limits)
    try:
        st, r = _post(server.url + "/indexes", None, method="GET")
        assert r["limits"]["max_tokens"] == 40
        local, remote = Index.open(corpus["whole"]), RemoteIndex.open(server.url)
        ids = local.encode(REPLY * 3)
        assert len(ids) > 3 * 40
        st, r = _post(server.url + "/indexes/corpus/longest_prefixes", {"ids": pack(ids)})
        assert st == 413  # the limit holds for one request
        _same_queries(local, remote)
        assert _trace_json([remote]) == _trace_json([local])
        # overlap reports' call: positions and per-text stops over many texts laid end to end
        texts = [local.encode(t) for t in (REPLY, "The quick brown fox jumps over the lazy dog. Note 3.") * 4]
        flat = np.concatenate(texts)
        starts = np.cumsum([0] + [len(t) for t in texts])
        stops = np.repeat(starts[1:], [len(t) for t in texts])
        for positions in (None, np.arange(0, len(flat), 2)[::-1]):  # unsorted too
            st_ = stops if positions is None else stops[positions]
            got = remote.longest_prefixes_witnessed(flat, positions, stops=st_)
            want = local.longest_prefixes_witnessed(flat, positions, stops=st_)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        for positions in (None, np.arange(1, len(flat), 5)):  # no stops: matches may cross pieces
            got, want = remote.longest_prefixes(flat, positions), local.longest_prefixes(flat, positions)
            assert np.array_equal(got, want)
        seqs = [local.encode(p) for p in PROBES] * 5
        assert remote.count_words_many(seqs).tolist() == local.count_words_many(seqs).tolist()
        occ = [(s, r, 3) for s in range(2) for r in range(0, 40, 3)]
        assert [(o.hit, o.doc_id, [w.tokens.tolist() for w in o.windows]) for o in remote.windows(occ, (40, 250))] == \
            [(o.hit, o.doc_id, [w.tokens.tolist() for w in o.windows]) for o in local.windows(occ, (40, 250))]
    finally:
        server.stop()


@needs_server
def test_word_occurrences_pages_by_raw_chunk(corpus: dict[str, Path], servers: dict[str, str]) -> None:
    """A query that starts mid-word is paged by raw chunk number (the server jumps to it): the
    pages give local `word_occurrences`, `next` is skip + 1, past the last chunk is done."""
    local, remote = Index.open(corpus["whole"]), RemoteIndex.open(f"{servers['full']}/corpus")
    opens_with_break = local.tokenizer.word_boundaries().opens_with_break
    tried = []
    for text in ("The", "he", "The quick", "quick", "return", "Note", "def", "A"):
        ids = local.encode(text)
        if opens_with_break(ids[:1])[0]:
            continue
        want = [(n, r.tolist()) for n, r in local.word_occurrences(ids, chunk=2)]
        got = [(n, r.tolist()) for n, r in remote.word_occurrences(ids, chunk=2)]
        assert got == want, text
        tried.append((sum(len(r) for _, r in want), text))
    assert tried and max(tried)[0] > 2
    total, text = max(tried)
    st, r = _post(f"{servers['full']}/indexes/corpus/word_occurrences",
                  {"ids": pack(local.encode(text)), "chunk": 1, "skip": total - 2})
    assert st == 200 and r["next"] == total - 1 and not r["done"]
    st, r = _post(f"{servers['full']}/indexes/corpus/word_occurrences",
                  {"ids": pack(local.encode(text)), "chunk": 1, "skip": total - 1})
    assert st == 200 and r["next"] is None and r["done"] and len(r["shards"]) == 1
    st, r = _post(f"{servers['full']}/indexes/corpus/word_occurrences", {"ids": pack(local.encode(text)), "skip": 10**9})
    assert st == 200 and r["done"] and r["shards"] == []


@needs_server
def test_idle_connections_do_not_block_requests(corpus: dict[str, Path]) -> None:
    """70 idle connections (more than the 64 uvicorn's limit_concurrency allowed) and a request
    still succeeds; a kept-alive connection the server closed while idle is reopened once."""
    server = ThreadServer([corpus["whole"]], timeout_keep_alive=1)
    idle = []
    try:
        for _ in range(70):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        st, r = _post(server.url + "/", {"query_type": "count", "query": "quick"})
        assert st == 200 and r["count"] > 0
        remote = RemoteIndex.open(server.url)
        n = remote.count(remote.encode(" quick"))
        before = remote.requests
        time.sleep(1.6)  # the server closes the idle kept-alive connection
        assert remote.count(remote.encode(" quick")) == n  # reopened, transparently
        assert remote.requests == before + 1
    finally:
        for s in idle:
            s.close()
        server.stop()
    assert serve_mod.uvicorn_options() == {"timeout_keep_alive": serve_mod.KEEP_ALIVE} and serve_mod.KEEP_ALIVE <= 10


def test_non_json_5xx_is_reported_as_busy() -> None:
    """A plain-text 503 (a full ASGI server or a proxy) is one line: server busy or overloaded."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from index_tools.remote import _Server

    class Busy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "19")
            self.end_headers()
            self.wfile.write(b"Service Unavailable")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RemoteIndexError) as info:
            _Server(f"http://127.0.0.1:{httpd.server_address[1]}").call("GET", "/indexes")
        assert "server busy or overloaded (HTTP 503)" in str(info.value) and "\n" not in str(info.value)
    finally:
        httpd.shutdown()
        httpd.server_close()


@needs_server
def test_huge_ids_and_deep_json_are_400(servers: dict[str, str]) -> None:
    base = servers["full"]
    for path in ("/", "/indexes/corpus/count_words"):
        st, r = _post(base + path, None, raw=b"[" * 100_000 + b"]" * 100_000)
        assert st == 400 and "nested" in r["error"]
        st, r = _post(base + path, None, raw=b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
        assert st == 400 and isinstance(r["error"], str)
    st, r = _post(base + "/", {"index": "corpus", "query_type": "count", "query_ids": [2**70]})
    assert st == 200 and "query_ids" in r["error"]  # infini-gram's: a 200 with an error
    st, r = _post(base + "/", {"index": "corpus", "query_type": "count", "query_ids": [-(2**70)]})
    assert st == 200 and "error" in r
    st, r = _post(base + "/", {"index": "corpus", "query_type": "count", "query": "quick"})
    assert st == 200


@needs_server
def test_api_ntd_samples_by_default_unless_exact(corpus: dict[str, Path], servers: dict[str, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """infini-gram's API samples a frequent prompt's continuations (max_support 1000 by
    default); `"exact": true` counts them all. RemoteIndex's own ntd stays exact."""
    monkeypatch.setattr(serve_mod, "NTD_MAX_SUPPORT", 2)
    local = Index.open(corpus["whole"])
    ids = local.encode(" the")
    exact = ntd(local, ids)
    assert exact.prompt_cnt > 2
    url = servers["full"] + "/"
    for qt in ("ntd", "infgram_ntd"):
        st, r = _post(url, {"index": "corpus", "query_type": qt, "query_ids": ids.tolist()})
        assert st == 200 and r["approx"] is True
        st, r = _post(url, {"index": "corpus", "query_type": qt, "query_ids": ids.tolist(), "exact": True})
        assert st == 200 and r["approx"] is False
    assert {int(k): v["cont_cnt"] for k, v in r["result_by_token_id"].items()} == \
        dict(zip(exact.ids.tolist(), exact.counts.tolist(), strict=True))
    got = ntd(RemoteIndex.open(f"{servers['full']}/corpus"), ids)
    assert (got.approx, got.ids.tolist(), got.counts.tolist()) == (False, exact.ids.tolist(), exact.counts.tolist())
