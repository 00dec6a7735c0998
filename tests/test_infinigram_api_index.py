"""Any infini-gram API server as an index (issue 19, section 4): `InfiniGramAPIIndex` against
`tracetui serve --infinigram-api-only` (started in this process, localhost only), which section 3
makes answer as infini-gram's server. Spans, traces, counts, ∞-gram answers, search and overlap
equal those of the same index opened locally, up to what the API can tell exactly (sequences
whose whole-word count is an estimate are listed in `approximate`, and left out of the
comparison); `open_index` tells the server apart by its answers; retries and the cache.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn")

from index_tools.engine import Index  # noqa: E402
from index_tools.errors import RemoteIndexError  # noqa: E402
from index_tools.infinigram_api import MAX_QUERY_TOKENS, APIClient, InfiniGramAPIIndex  # noqa: E402
from index_tools.ngram import infgram_probs, ntd  # noqa: E402
from index_tools.opening import IndexSet, open_index
from index_tools.remote import RemoteIndex  # noqa: E402
from tracetui.cli import main  # noqa: E402
from tracetui.overlap.measure import measure  # noqa: E402
from tracetui.tracing.pipeline import Tracer  # noqa: E402
from tracetui.tracing.search import search_documents  # noqa: E402
from tracetui.tracing.spans import find_spans  # noqa: E402

from .test_infinigram_api import Server, index_dir  # noqa: E402, F401  (the index fixture)


@pytest.fixture(scope="module")
def servers(index_dir: Path) -> Iterator[dict[str, str]]:  # noqa: F811
    api, full = Server([index_dir], infinigram_api_only=True), Server([index_dir])
    yield {"api": api.url, "full": full.url}
    api.stop()
    full.stop()


@pytest.fixture
def tok_env(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    path = index_dir.parent / "tok.json"
    monkeypatch.setenv("TRACETUI_TOKENIZER", str(path))
    return path


def replies(local: Index, n: int = 3, tokens: int = 160, seed: int = 0) -> list[str]:
    """Corpus passages mixed with made-up words, cut at `tokens` tokens; lines start unspaced."""
    rng = np.random.default_rng(seed)
    docs = [local.tokenizer.decode(local.document_tokens(s, i)) for s in range(len(local.shards)) for i in range(20)]
    out = []
    for _ in range(n):
        parts: list[str] = []
        while len(local.encode(" ".join(parts))) < tokens:
            d = docs[int(rng.integers(len(docs)))]
            a = int(rng.integers(0, max(1, len(d) - 120)))
            parts.append(d[a : a + int(rng.integers(30, 120))])
            parts.append(rng.choice(["\nThe zorp", " qnhibb blick.", "\nQnhibb lzu", " e said"]))
        out.append(local.tokenizer.decode(local.encode(" ".join(parts))[:tokens]))
    return out


def test_open_index_tells_the_servers_apart(servers: dict[str, str], tok_env: Path) -> None:
    api = open_index(f"{servers['api']}/corp")
    assert isinstance(api, InfiniGramAPIIndex) and api.name == "corp" and api.width == 2
    assert isinstance(open_index(f"{servers['full']}/corp"), RemoteIndex)
    local = Index.open(Path(tok_env).parent / "corp")
    assert api.manifest.documents == local.manifest.documents and api.total_tokens == local.total_tokens
    assert [s.documents for s in api.manifest.shards] == [s.n_docs for s in local.shards]
    with pytest.raises(RemoteIndexError, match="without an index named .nope."):
        open_index(f"{servers['api']}/nope")


def test_a_tokenizer_given_is_checked(servers: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: Path) -> None:
    """Without one the server tokenizes (tests/test_infinigram_api_notokenizer.py); one given
    must be the index's."""
    monkeypatch.delenv("TRACETUI_TOKENIZER", raising=False)
    assert open_index(f"{servers['api']}/corp").manifest.tokenizer == "server"
    from index_tools.tokenizer import train_bpe

    other = tmp_path / "other.json"
    train_bpe(iter(["zzz yyy xxx www " * 50, "completely other words here " * 40]), other, vocab_size=300)
    with pytest.raises(RemoteIndexError, match="vocabulary"):
        InfiniGramAPIIndex.open(f"{servers['api']}/corp", tokenizer=other)


def test_spans_and_traces_equal_the_local_index(servers: dict[str, str], tok_env: Path) -> None:
    local = Index.open(tok_env.parent / "corp")
    api = open_index(f"{servers['api']}/corp")
    for reply in replies(local):
        ids = local.encode(reply)
        assert np.array_equal(api.longest_prefixes(ids), local.longest_prefixes(ids))
        want = [(s.l, s.r, s.count) for s in find_spans(local, ids)]
        got = [(s.l, s.r, s.count) for s in find_spans(api, ids)]
        assert got == want and want
        a, b = Tracer([api]).trace(reply), Tracer([local]).trace(reply)
        assert [(s.start, s.end, s.count) for s in a.spans] == [(s.start, s.end, s.count) for s in b.spans]
        # documents: real occurrences of the spans, their match marked where it is
        for doc in a.documents:
            for h in doc.hits:
                span = a.spans[h.span]
                assert h.snippet[h.snippet_match[0] : h.snippet_match[1]].strip() == span.text.strip()
    # mixed with a local index and a tracetui-served one, in one trace
    full = open_index(f"{servers['full']}/corp")
    mixed = Tracer(IndexSet([local, api, full])).trace(replies(local, 1)[0])
    per = {}
    for s in mixed.spans:
        per.setdefault(s.index, []).append((s.start, s.end, s.count))
    assert len(per) == 3 and per["corp#0"] == per["corp#1"] == per["corp#2"]


def test_counts_equal_up_to_the_apis_exact_range(servers: dict[str, str], tok_env: Path) -> None:
    local = Index.open(tok_env.parent / "corp")
    api = open_index(f"{servers['api']}/corp")
    rng = np.random.default_rng(3)
    seqs = []
    for _ in range(60):
        s, d = int(rng.integers(2)), int(rng.integers(50))
        toks = local.document_tokens(s, d)
        a = int(rng.integers(0, max(1, len(toks) - 6)))
        seqs.append(toks[a : a + int(rng.integers(1, 6))])
    seqs += [local.encode(t) for t in (" qnhibb", "qnhibb", " e", "The", " zzqx", "\n")]
    assert api.count_many(seqs).tolist() == local.count_many(seqs).tolist()
    got = api.count_words_many(seqs)
    want = local.count_words_many(seqs)
    exact = [s.tobytes() not in api.approximate for s in seqs]
    assert sum(exact) > 50
    assert [g for g, e in zip(got.tolist(), exact, strict=True) if e] == \
        [w for w, e in zip(want.tolist(), exact, strict=True) if e]
    assert api.count_words_many(seqs, cap=0).tolist() == np.minimum(got, 1).tolist()
    for s in seqs[:10]:
        assert api.count(s) == local.count(s)
    # the CLI, as a user runs it
    assert main(["count", "--index", f"{servers['api']}/corp", "--tokenizer", str(tok_env), "qnhibb lzu"]) == 0


def test_ngram_answers_equal_the_local_index(servers: dict[str, str], tok_env: Path) -> None:
    local = Index.open(tok_env.parent / "corp")
    api = open_index(f"{servers['api']}/corp")
    ids = local.encode(replies(local, 1, 60, seed=5)[0])
    assert infgram_probs(api, ids) == infgram_probs(local, ids)
    for prompt in (ids[:3], local.encode(" qnhibb lzu"), local.encode(" zzqx")):
        a, b = ntd(api, prompt), ntd(local, prompt)
        assert (a.prompt_cnt, a.ids.tolist(), a.counts.tolist(), a.approx) == \
            (b.prompt_cnt, b.ids.tolist(), b.counts.tolist(), False)
    big = ntd(api, local.encode(" qnhibb"))  # over the API's max_support: sampled, flagged
    assert big.approx and big.prompt_cnt == local.count(local.encode(" qnhibb"))


def test_search_and_overlap(servers: dict[str, str], tok_env: Path) -> None:
    local = Index.open(tok_env.parent / "corp")
    api = open_index(f"{servers['api']}/corp")
    for text in (" qnhibb lzu", " e chmk"):
        a, b = search_documents([api], text, limit=3), search_documents([local], text, limit=3)
        assert a["counts"][0]["count"] == b["counts"][0]["count"] > 0
        assert a["documents"] and all(text.strip() in d["snippet"] for d in a["documents"])
    texts = replies(local, 2, 80, seed=9)
    oa, ob = measure(api, texts), measure(local, texts)
    assert [(o.ngrams, o.ngrams_found, o.covered, o.longest_tokens) for o in oa] == \
        [(o.ngrams, o.ngrams_found, o.covered, o.longest_tokens) for o in ob]


def test_queries_stay_under_the_servers_limits(servers: dict[str, str], tok_env: Path) -> None:
    """A 500-token reply never needs a query over 500 tokens (the server would refuse it)."""
    local = Index.open(tok_env.parent / "corp")
    api = open_index(f"{servers['api']}/corp")
    seen: list[int] = []
    query = api.client.query

    def spy(query_type: str, **params: object) -> dict:
        q = params.get("query_ids")
        if isinstance(q, list):
            seen.append(len(q))
        return query(query_type, **params)

    api.client.query = spy  # type: ignore[method-assign]
    ids = local.encode(replies(local, 1, MAX_QUERY_TOKENS, seed=2)[0])
    assert len(ids) == MAX_QUERY_TOKENS
    find_spans(api, ids)
    assert seen and max(seen) <= MAX_QUERY_TOKENS
    # requests for the whole reply, once: about one per token, then cached
    before = api.requests
    find_spans(api, ids)
    assert api.requests == before


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Answers 503 to every other request, then as infini-gram would."""

    calls = 0
    auth: list[str | None] = []

    def do_POST(self) -> None:  # noqa: N802
        type(self).calls += 1
        type(self).auth.append(self.headers.get("Authorization"))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body = (503, b"busy") if type(self).calls % 2 else (200, json.dumps({"count": 7}).encode())
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_retries_with_backoff_and_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACETUI_TOKEN", "s3cret")  # never sent to a server that does not ask
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        client = APIClient(f"http://127.0.0.1:{srv.server_address[1]}/x", backoff=0.01)
        assert client.query("count", query_ids=[1]) == {"count": 7}
        assert client.requests == 2 and _Flaky.calls == 2  # a 503, then the answer
        assert _Flaky.auth == [None, None]
        assert client.query("count", query_ids=[1]) == {"count": 7} and client.requests == 2  # cached
        client.close()
        dead = APIClient("http://127.0.0.1:9/x", retries=1, backoff=0.01)
        with pytest.raises(RemoteIndexError, match="unreachable"):
            dead.query("count", query_ids=[1])
    finally:
        srv.shutdown()


def test_a_token_goes_only_to_a_server_that_asks(index_dir: Path, tok_env: Path,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    s = Server([index_dir], infinigram_api_only=True, token="s3cret")
    try:
        monkeypatch.delenv("TRACETUI_TOKEN", raising=False)
        with pytest.raises(RemoteIndexError):
            InfiniGramAPIIndex.open(f"{s.url}/corp")
        monkeypatch.setenv("TRACETUI_TOKEN", "s3cret")
        api = open_index(f"{s.url}/corp")
        assert isinstance(api, InfiniGramAPIIndex) and api.count(api.encode(" qnhibb")) > 0
    finally:
        s.stop()
