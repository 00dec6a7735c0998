"""Property tests of `tracetui serve`: random JSON bodies and random bytes at every endpoint, in
both modes (tracetui's own endpoints with infini-gram's API, and infini-gram's API alone), never
give a traceback, every answer is JSON, and none is a 500 except infini-gram's own designed ones
(its server answers a query whose method cannot take the parameters given, or that names an
engine attribute that is no query, with "[Flask] Internal server error"). A real server in a
thread, a real index; one kept-alive connection per test."""

from __future__ import annotations

import http.client
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index_tools.wire import pack, pack_seqs

from .test_serve import AppServer, needs_server

pytestmark = needs_server

OPS = ["find_ranges", "word_counts", "find_words_many", "word_occurrences", "count_words", "longest_prefixes",
       "ntd", "unigram_counts", "windows", "document", "nope"]
OWN_KEYS = ["ids", "lengths", "lo", "hi", "m", "cap", "positions", "stops", "word_ends", "unit", "occurrences",
            "contexts", "shard", "doc", "tokens", "start", "length", "original", "chunk", "skip"]
API_TYPES = ["count", "prob", "ntd", "infgram_prob", "infgram_ntd", "find", "find_cnf", "get_doc_by_rank",
             "get_doc_by_ptr", "search_docs", "attribute", "creativity", "get_total_doc_cnt", "max_support", "nope"]
API_KEYS = ["max_support", "maxnum", "max_disp_len", "s", "rank", "ptr", "max_clause_freq", "max_diff_tokens",
            "exact", "whole_words", "delimiters", "min_len", "max_cnt", "bogus"]
# infini-gram's designed 500s: a Processor method called with parameters it does not take or
# without the ones it needs, or a query type that names no Processor method
DESIGNED_500 = re.compile(r"^\[Flask\] Internal server error: (.*unexpected keyword argument|.*missing \d+ required "
                          r"(positional|keyword-only) argument|'Processor' object has no attribute)")

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=20))
json_any = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=5),
                                                         st.dictionaries(st.text(max_size=8), kids, max_size=5)),
                        max_leaves=20)
ints = st.lists(st.integers(-2**63, 2**63 - 1) | st.integers(-5, 500), max_size=40)
packed = ints.map(lambda xs: pack(np.array(xs, dtype=np.int64)))
small_ints = st.lists(st.integers(-3, 400), max_size=30)
value = st.one_of(json_any, packed, small_ints, st.integers(-5, 10**6),
                  st.lists(st.lists(st.integers(-3, 10**6), max_size=4), max_size=4))
query_ids = st.one_of(small_ints, st.lists(st.lists(st.lists(st.integers(-3, 400), max_size=4), max_size=4), max_size=4),
                      st.lists(st.lists(small_ints, max_size=5), max_size=5), json_any)  # simple, CNF, anything


@pytest.fixture(scope="module")
def servers(text_index: Path) -> Iterator[dict[str, AppServer]]:
    both, api = AppServer([text_index], timeout=10), AppServer([text_index], timeout=10, infinigram_api_only=True)
    yield {"both": both, "api": api}
    both.stop()
    api.stop()


class Client:
    """One kept-alive connection, reopened when the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(self, method: str, path: str, body: bytes | None, ctype: str = "application/json") -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers={"Content-Type": ctype} if body is not None else {})
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("not reached")


def check(status: int, raw: bytes, allow_designed_500: bool) -> Any:
    assert b"Traceback" not in raw and b'File "' not in raw, raw[:500]
    answer = json.loads(raw)  # every answer is JSON
    if status >= 500:
        err = answer.get("error", "") if isinstance(answer, dict) else ""
        assert allow_designed_500 and DESIGNED_500.match(err), (status, raw[:500])
    if status != 200:
        assert isinstance(answer, dict) and isinstance(answer.get("error"), str) and "\n" not in answer["error"]
    return answer


_clients: dict[int, Client] = {}


def client(server: AppServer) -> Client:
    if server.port not in _clients:
        _clients[server.port] = Client(server.port)
    return _clients[server.port]


FEW = settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "200")), deadline=None,  # more: PROPERTY_EXAMPLES=N
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


seqs = st.lists(st.lists(st.integers(0, 399), min_size=0, max_size=6), max_size=5)


@st.composite
def own_body(draw: st.DrawFn, op: str) -> dict[str, Any]:
    """A valid body for `op` (sequences of token ids in the vocabulary, ranges of the index),
    then some of its keys replaced or added with anything."""
    ss = draw(seqs)
    ids = draw(st.lists(st.integers(0, 399), max_size=60))
    base: dict[str, Any] = {
        "find_ranges": pack_seqs([np.array(x, dtype=np.int64) for x in ss]),
        "find_words_many": pack_seqs([np.array(x, dtype=np.int64) for x in ss]),
        "word_counts": {"lo": pack([0] * len(ss)), "hi": pack([draw(st.integers(0, 300)) for _ in ss]),
                        "m": pack([len(x) for x in ss]), "cap": draw(st.one_of(st.none(), st.integers(0, 5)))},
        "word_occurrences": {"ids": pack(ids), "chunk": draw(st.integers(1, 10)), "skip": draw(st.integers(0, 5))},
        "count_words": {"ids": pack(ids)},
        "longest_prefixes": {"ids": pack(ids), "word_ends": draw(st.booleans())},
        "ntd": {"ids": pack(ids[:3]), "unit": draw(st.integers(1, 8))},
        "unigram_counts": {},
        "windows": {"occurrences": [[0, draw(st.integers(0, 300)), draw(st.integers(0, 20))] for _ in ss],
                    "contexts": draw(st.lists(st.integers(0, 50), max_size=3))},
        "document": {"shard": 0, "doc": draw(st.integers(0, 5)), "tokens": draw(st.booleans()),
                     "start": draw(st.integers(0, 20)), "original": draw(st.booleans())},
    }.get(op, {})
    base.update(draw(st.dictionaries(st.sampled_from(OWN_KEYS), value, max_size=3)))
    return base


@FEW
@given(data=st.data(), op=st.sampled_from(OPS))
def test_random_bodies_at_tracetuis_own_endpoints(servers: dict[str, AppServer], data: st.DataObject, op: str) -> None:
    body = data.draw(own_body(op))
    status, raw = client(servers["both"]).send("POST", f"/indexes/index/{op}", json.dumps(body).encode())
    check(status, raw, allow_designed_500=False)


@FEW
@given(mode=st.sampled_from(["both", "api"]), query_type=st.one_of(st.sampled_from(API_TYPES), json_any),
       index=st.sampled_from(["index", "index", "index", "nope", None]),
       query=st.one_of(st.text(max_size=40), st.sampled_from(["a AND b OR c", " AND ", "the quick", "fox OR dog"])),
       ids=query_ids, which=st.sampled_from(["query", "query_ids", "query", "query_ids", "both", "neither"]),
       extra=st.dictionaries(st.sampled_from(API_KEYS), value, max_size=4))
def test_random_bodies_at_infinigrams_api(servers: dict[str, AppServer], mode: str, query_type: Any, index: str | None,
                                          query: str, ids: Any, which: str, extra: dict[str, Any]) -> None:
    body: dict[str, Any] = {"query_type": query_type, **extra}
    if index is not None:
        body["index"] = index
    if which in ("query", "both"):
        body["query"] = query
    if which in ("query_ids", "both"):
        body["query_ids"] = ids
    status, raw = client(servers[mode]).send("POST", "/", json.dumps(body).encode())
    check(status, raw, allow_designed_500=True)


PATHS = ["/", "/indexes", "/indexes/index", "/indexes/index/tokenizer.json", "/indexes/nope",
         *(f"/indexes/index/{op}" for op in OPS), "/indexes/index/ntd/extra", "/%ff", "/indexes/%00"]


@FEW
@given(mode=st.sampled_from(["both", "api"]), method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
       path=st.sampled_from(PATHS), raw=st.one_of(st.binary(max_size=300), st.just(b"[" * 50_000),
                                                   st.just(b'{"a":' * 20_000)),
       ctype=st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1", ""]))
def test_random_bytes_at_every_endpoint(servers: dict[str, AppServer], mode: str, method: str, path: str, raw: bytes,
                                        ctype: str) -> None:
    status, answer = client(servers[mode]).send(method, path, raw if method != "GET" else None, ctype)
    check(status, answer, allow_designed_500=False)


def test_an_empty_cnf_term_does_not_hang(servers: dict[str, AppServer]) -> None:
    """Found by review: a document's `spans` with an empty term to mark looped forever (one worker
    lost per request). Now nothing is marked, at once."""
    body = {"index": "index", "query_type": "get_doc_by_ptr", "query_ids": [[[]]], "s": 0, "ptr": 0}
    status, raw = client(servers["api"]).send("POST", "/", json.dumps(body).encode())
    answer = check(status, raw, allow_designed_500=True)
    assert status == 200 and [t for t, label in answer["spans"] if label is not None] == []
