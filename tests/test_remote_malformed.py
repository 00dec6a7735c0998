"""Client side (`RemoteIndex`, `InfiniGramAPIIndex`): any malformed server answer -- wrong types,
missing keys, huge or deeply nested JSON, truncated bodies, bytes that are no JSON, any status --
is one line of `RemoteIndexError`, never another exception or a traceback.

A real tiny HTTP server in a thread stands in front of a real `tracetui serve` (also in a thread):
while an index is opened it passes requests through (so the index opens for real), then it
answers garbage drawn by hypothesis for every query."""

from __future__ import annotations

import http.client
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index_tools.builder import BuildOptions, build_index
from index_tools.errors import RemoteIndexError
from index_tools.infinigram_api import InfiniGramAPIIndex
from index_tools.remote import MAX_ANSWER, RemoteIndex

from .conftest import SAMPLE_TEXTS, write_jsonl
from .test_serve import AppServer, needs_server

pytestmark = needs_server

# what a garbage answer is made of: (status, headers, body, bytes actually sent or None for all)
Answer = tuple[int, dict[str, str], bytes, int | None]


class Garbage(http.server.ThreadingHTTPServer):
    """Passes requests to `upstream` while `passing`, else answers `answer(method, path, body)`."""

    daemon_threads = True

    def __init__(self, upstream: int) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.upstream = upstream
        self.passing = True
        self.answer: Callable[[str, str, bytes], Answer] = lambda m, p, b: (500, {}, b"", None)


class Handler(http.server.BaseHTTPRequestHandler):
    server: Garbage

    def log_message(self, *args: Any) -> None:
        pass

    def _any(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.server.passing:
            conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=30)
            conn.request(self.command, self.path, body=body or None,
                         headers={k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")})
            resp = conn.getresponse()
            status, data, headers = resp.status, resp.read(), {"Content-Type": "application/json"}
            conn.close()
            sent = None
        else:
            status, headers, data, sent = self.server.answer(self.command, self.path, body)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(data if sent is None else data[:sent])
        except OSError:
            pass
        self.close_connection = True

    do_GET = do_POST = _any


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppServer, AppServer]]:
    d = tmp_path_factory.mktemp("malformed")
    out = d / "index"
    build_index([write_jsonl(d / "c.jsonl", SAMPLE_TEXTS * 3)], out, BuildOptions(tokenizer="bytes", shards=2,
                                                                                  progress=False))
    both, api = AppServer([out]), AppServer([out], infinigram_api_only=True)
    yield both, api
    both.stop()
    api.stop()


@pytest.fixture(scope="module")
def garbage(served: tuple[AppServer, AppServer]) -> Iterator[tuple[Garbage, Garbage]]:
    servers = (Garbage(served[0].port), Garbage(served[1].port))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    yield servers
    for s in servers:
        s.shutdown()
        s.server_close()


def _url(g: Garbage) -> str:
    return f"http://127.0.0.1:{g.server_address[1]}"


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=12), st.sampled_from(["AAAAAAAAAAA=", "!!", "", "AQAAAAAAAAA="]))
json_any = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                         st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                        max_leaves=12)
# the keys the clients read, so that wrong types inside right shapes are drawn too
KEYS = ["lo", "hi", "counts", "count", "seq", "shard", "start", "end", "lengths", "word_ends", "ids", "occurrences",
        "hit", "metadata", "windows", "tokens", "match", "doc_start", "truncated", "next", "done", "shards", "ranks",
        "segment_by_shard", "cnt", "prompt_cnt", "result_by_token_id", "approx", "suffix_len", "cont_cnt",
        "doc_ix", "needle_offset", "disp_len", "spans", "token_ids", "error", "original", "size"]
shaped = st.dictionaries(st.sampled_from(KEYS), json_any, max_size=8)
special = st.sampled_from([
    b"[" * 200_000 + b"]" * 200_000,  # nested too deeply for json
    b'{"counts": ' * 50_000,
    b"\xff\xfe not utf-8",
    b"<html>502 Bad Gateway</html>",
    b"",
])


@st.composite
def answers(draw: st.DrawFn) -> Answer:
    kind = draw(st.sampled_from(["json", "shaped", "special", "truncated", "huge", "bytes"]))
    status = draw(st.sampled_from([200, 200, 200, 400, 404, 413, 500, 502, 503, 504, 301]))
    ctype = {"Content-Type": "application/json"}
    if kind == "json":
        return status, ctype, json.dumps(draw(json_any)).encode(), None
    if kind == "shaped":
        return status, ctype, json.dumps(draw(shaped)).encode(), None
    if kind == "special":
        return status, ctype, draw(special), None
    if kind == "truncated":  # the connection closes before the body announced is complete
        body = json.dumps(draw(shaped)).encode() + b" " * 64
        return status, ctype, body, draw(st.integers(0, len(body) - 1))
    if kind == "huge":  # announced bigger than a client reads
        return 200, {**ctype, "Content-Length": str(MAX_ANSWER + 1)}, b"{}", 2
    return status, {}, draw(st.binary(max_size=200)), None


def _one_line(exc: BaseException) -> None:
    assert isinstance(exc, RemoteIndexError), f"{type(exc).__name__}: {exc}"
    assert "\n" not in str(exc) and str(exc), repr(exc)


def _calls(ix: Any) -> list[Callable[[], Any]]:
    ids = np.array([84, 104, 101], dtype=np.int64)  # "The"
    lo, hi = np.zeros((ix.n_shards, 1), dtype=np.int64), np.ones((ix.n_shards, 1), dtype=np.int64)
    return [
        lambda: ix.count(ids), lambda: ix.count_words(ids), lambda: ix.find(ids),
        lambda: ix.find_ranges([ids, ids[:1]]), lambda: ix.count_words_many([ids], cap=3),
        lambda: ix.word_counts(lo, hi, np.array([1])), lambda: ix.find_words_many([ids]), lambda: ix.count_words(ids),
        lambda: list(ix.word_occurrences(ids)), lambda: ix.longest_prefixes(ids),
        lambda: ix.longest_prefixes_witnessed(ids), lambda: ix.ntd(ids), lambda: ix.ntd(ids, 10),
        lambda: np.asarray(ix.unigram_counts()[ids]), lambda: ix.windows([(0, 0, 2)], (3, 5)),
        lambda: ix.hit(0, 0), lambda: ix.metadata(0, 0), lambda: ix.document_tokens(0, 0), lambda: ix.document_text(0),
    ]


SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])


def _run_all(ix: Any, g: Garbage, answer: Answer) -> int:
    """Every query against garbage: each answers or raises one line of RemoteIndexError."""
    g.answer = lambda m, p, b: answer
    failures = 0
    for call in _calls(ix):
        try:
            call()
        except Exception as exc:  # noqa: BLE001 (the property: only RemoteIndexError, one line)
            _one_line(exc)
            failures += 1
    return failures


@SETTINGS
@given(answer=answers())
def test_served_index_against_garbage(garbage: tuple[Garbage, Garbage], answer: Answer) -> None:
    g = garbage[0]
    g.passing = True
    ix = RemoteIndex.open(_url(g), timeout=10)
    g.passing = False
    try:
        _run_all(ix, g, answer)
    finally:
        ix.close()


@SETTINGS
@given(answer=answers())
def test_infinigram_api_index_against_garbage(garbage: tuple[Garbage, Garbage], answer: Answer) -> None:
    g = garbage[1]
    g.passing = True
    ix = InfiniGramAPIIndex.open(f"{_url(g)}/index", tokenizer="bytes", timeout=10)
    ix.client.retries, ix.client.backoff = 0, 0.0
    g.passing = False
    try:
        _run_all(ix, g, answer)
    finally:
        ix.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=answers(), which=st.integers(0, 1))
def test_opening_against_garbage(garbage: tuple[Garbage, Garbage], answer: Answer, which: int) -> None:
    """Garbage at the first request of opening (the listing, or infini-gram's `GET /`)."""
    g = garbage[which]
    g.passing = False
    g.answer = lambda m, p, b: answer
    try:
        if which == 0:
            RemoteIndex.open(_url(g), timeout=10).close()
        else:
            InfiniGramAPIIndex.open(f"{_url(g)}/index", tokenizer="bytes", timeout=10).close()
    except Exception as exc:  # noqa: BLE001
        _one_line(exc)


def test_the_garbage_is_seen(garbage: tuple[Garbage, Garbage]) -> None:
    """The property above is not vacuous: a wrong type in a right shape is an error, and names
    the server."""
    g = garbage[0]
    g.passing = True
    ix = RemoteIndex.open(_url(g), timeout=10)
    g.passing = False
    try:
        g.answer = lambda m, p, b: (200, {"Content-Type": "application/json"}, b'{"lo": 5, "hi": "x"}', None)
        with pytest.raises(RemoteIndexError, match="malformed answer from the server"):
            ix.count(np.array([84], dtype=np.int64))
        g.answer = lambda m, p, b: (200, {"Content-Type": "application/json"}, b"[" * 100_000, None)
        with pytest.raises(RemoteIndexError, match="nested too deeply"):
            ix.count(np.array([84], dtype=np.int64))
        g.answer = lambda m, p, b: (200, {"Content-Type": "application/json"}, b'{"counts": "AAAA"}' + b" " * 50, 10)
        with pytest.raises(RemoteIndexError, match="broke off"):
            ix.unigram_counts()
        g.answer = lambda m, p, b: (400, {"Content-Type": "application/json"}, b'{"error": "\\u001b[31mred\\nline"}', None)
        with pytest.raises(RemoteIndexError) as info:
            ix.count(np.array([84], dtype=np.int64))
        assert "\x1b" not in str(info.value) and "\\x1b[31mred line" in str(info.value)
    finally:
        ix.close()
