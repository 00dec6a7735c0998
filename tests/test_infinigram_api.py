"""`POST /` answered as infini-gram's own API server answers it (issue 19, section 3).

A real uvicorn server (`create_app(..., infinigram_api_only=True)`, what `tracetui serve
--infinigram-api-only` runs) on a two-shard index with metadata; every field that comes from the
engine is compared with infini-gram's `InfiniGramEngine` opened on the same index directory, and
the fields its server adds (`tokens`, `latency`, `result_by_token_id` string keys with `token`,
`longest_suffix`, document `spans`, `message`) with what its `api_server.py` computes. The
representative requests are the table `REQUESTS`: one of each query type, the CNF forms, and
the error cases with their statuses (400 for the route's checks, 200 + "error" for the query's
own, 500 for a fault inside a query).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ig_engine = pytest.importorskip("infini_gram.engine")
uvicorn = pytest.importorskip("uvicorn")

from index_tools.builder import BuildOptions, build_index  # noqa: E402
from index_tools.engine import Index  # noqa: E402
from index_tools.infinigram_serve import Vocabulary  # noqa: E402
from index_tools.tokenizer import train_bpe  # noqa: E402

from .conftest import write_jsonl  # noqa: E402
from .test_interop_infinigram import IG_WORDS, make_texts  # noqa: E402
from .test_serve import AppServer as Server  # noqa: E402

EOS = 500  # the comparison engine's eos id (our index has none: we report the separator, 65535)
SEP = 65535


def call(url: str, body: Any = None, method: str = "POST") -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("igapi")
    assert not any(w in str(d) for w in IG_WORDS)  # infini-gram reads file kinds off the whole path
    texts = make_texts()
    train_bpe(iter(texts), d / "tok.json", vocab_size=500)
    out = d / "corp"
    build_index([write_jsonl(d / "c.jsonl", texts)], out,
                BuildOptions(tokenizer=str(d / "tok.json"), shards=2, progress=False))
    return out


@pytest.fixture(scope="module")
def ig(index_dir: Path):  # type: ignore[no-untyped-def]
    return ig_engine.InfiniGramEngine(index_dir=str(index_dir), eos_token_id=EOS, token_dtype="u16")


@pytest.fixture(scope="module")
def server(index_dir: Path) -> Iterator[Server]:
    s = Server([index_dir], infinigram_api_only=True)
    yield s
    s.stop()


def _eos(d: dict[int, Any]) -> dict[int, Any]:
    return {SEP if k == EOS else k: v for k, v in d.items()}


def _dist(r: dict[str, Any]) -> dict[int, int]:
    return {int(k): v["cont_cnt"] for k, v in r["result_by_token_id"].items()}


def _doc_fields(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("doc_ix", "doc_len", "disp_len", "needle_offset", "metadata", "blocked")}


# (name, body, status, what to check) -- the representative requests of issue 19
REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("count text", {"query_type": "count", "query": "qnhibb lzu"}, 200, "count"),
    ("count ids", {"query_type": "count", "query_ids": "IDS"}, 200, "count"),
    ("count empty", {"query_type": "count", "query": ""}, 200, "count"),
    ("count CNF AND", {"query_type": "count", "query": "qnhibb AND lzu"}, 200, "count_cnf"),
    ("count CNF AND/OR", {"query_type": "count", "query": "qnhibb lzu AND e OR chmk"}, 200, "count_cnf"),
    ("count CNF subsampled", {"query_type": "count", "query": "qnhibb AND e", "max_clause_freq": 10}, 200, "approx"),
    ("prob", {"query_type": "prob", "query": "qnhibb lzu"}, 200, "prob"),
    ("prob absent prompt", {"query_type": "prob", "query_ids": [499, 499, 499, 7]}, 200, "prob"),
    ("ntd exact", {"query_type": "ntd", "query": "qnhibb lzu"}, 200, "ntd"),
    ("ntd sampled by default (> 1000)", {"query_type": "ntd", "query": "qnhibb"}, 200, "ntd"),
    ("ntd sampled", {"query_type": "ntd", "query": "qnhibb", "max_support": 10}, 200, "ntd"),
    ("infgram_prob", {"query_type": "infgram_prob", "query_ids": "LONG"}, 200, "infgram_prob"),
    ("infgram_ntd", {"query_type": "infgram_ntd", "query_ids": "LONG"}, 200, "infgram_ntd"),
    ("find", {"query_type": "find", "query": "qnhibb lzu"}, 200, "find"),
    ("find_cnf", {"query_type": "find_cnf", "query": "qnhibb AND lzu OR zzz AND e"}, 200, "find_cnf"),
    ("get_doc_by_rank", {"query_type": "get_doc_by_rank", "query": "qnhibb", "s": 1, "rank": "RANK",
                         "max_disp_len": 30}, 200, "doc_rank"),
    ("get_doc_by_ptr", {"query_type": "get_doc_by_ptr", "query": "qnhibb AND lzu", "s": 0, "ptr": "PTR",
                        "max_disp_len": 40}, 200, "doc_ptr"),
    ("search_docs", {"query_type": "search_docs", "query": "qnhibb lzu", "maxnum": 3}, 200, "search_docs"),
    ("search_docs CNF", {"query_type": "search_docs", "query": "qnhibb AND lzu", "maxnum": 2}, 200, "search_docs_cnf"),
    ("bad index", {"query_type": "count", "query": "x", "index": "nope"}, 400, "[Flask] Invalid index: nope"),
    ("no index", {"query_type": "count", "query": "x", "index": None}, 400, "[Flask] Missing required field: 'index'"),
    ("no query", {"query_type": "count"}, 400, "[Flask] Exactly one of query and query_ids must be present!"),
    ("query and query_ids", {"query_type": "count", "query": "x", "query_ids": [1]}, 400,
     "[Flask] Exactly one of query and query_ids must be present!"),
    ("bad query_type", {"query_type": "drop", "query": "x"}, 400, "[Flask] Invalid query_type: drop"),
    ("engine-only query_type", {"query_type": "get_doc_by_ix", "query": "x"}, 500,
     "[Flask] Internal server error: 'Processor' object has no attribute 'get_doc_by_ix'"),
    ("attribute (not infini-gram's)", {"query_type": "attribute", "query": "x"}, 500,
     "[Flask] Internal server error: 'Processor' object has no attribute 'attribute'"),
    ("empty prob", {"query_type": "prob", "query": ""}, 200, "=Please provide a non-empty query!"),
    ("too long (chars)", {"query_type": "count", "query": "a " * 501}, 200, "Please limit your input to <= 1000 characters!"),
    ("too long (tokens)", {"query_type": "count", "query_ids": [5] * 501}, 200, "Please limit your input to <= 500 tokens!"),
    ("out-of-range id", {"query_type": "count", "query_ids": [500]}, 200, "Some item(s) in your query_ids are out-of-range!"),
    ("65535 allowed", {"query_type": "count", "query_ids": [65535]}, 200, "count"),
    ("not ids", {"query_type": "count", "query_ids": [1, "a"]}, 200,
     "query_ids must be a list of integers, or a triply-nested list of integers!"),
    ("5 clauses", {"query_type": "count", "query": "a AND b AND c AND d AND e"}, 200,
     "Please enter at most 4 disjunctive clauses!"),
    ("5 terms", {"query_type": "count", "query": "a OR b OR c OR d OR e"}, 200,
     "Please enter at most 4 terms in each disjunctive clause!"),
    ("max_support over 1000", {"query_type": "ntd", "query": "e", "max_support": 1001}, 200,
     "=max_support must be an integer in [1, 1000]!"),
    ("maxnum over 10", {"query_type": "search_docs", "query": "e", "maxnum": 11}, 200,
     "=maxnum must be an integer in [1, 10]!"),
    ("max_disp_len over 10000", {"query_type": "get_doc_by_rank", "query": "e", "s": 0, "rank": 0,
                                 "max_disp_len": 10001}, 200, "=max_disp_len must be an integer in [1, 10000]!"),
    ("rank out of range", {"query_type": "get_doc_by_rank", "query": "e", "s": 0, "rank": 10**9}, 200, "=rank must"),
    ("missing s and rank", {"query_type": "get_doc_by_rank", "query": "e"}, 500,
     "[Flask] Internal server error: Processor.get_doc_by_rank() missing 2 required positional arguments: 's' and 'rank'"),
    ("unexpected parameter", {"query_type": "count", "query": "e", "foo": 1}, 500,
     "[Flask] Internal server error: Processor.count() got an unexpected keyword argument 'foo'"),
    ("whole_words (ours, off here)", {"query_type": "count", "query": "e", "whole_words": True}, 500,
     "[Flask] Internal server error: Processor.count() got an unexpected keyword argument 'whole_words'"),
]


def _fill(body: dict[str, Any], local: Index, ig: Any) -> dict[str, Any]:
    body = {"index": "corp", **body}
    if body["index"] is None:
        del body["index"]
    text_ids = local.encode(" qnhibb lzu").tolist()
    doc = local.shards[0].token_ids(1, 60).tolist()
    if body.get("query_ids") == "IDS":
        body["query_ids"] = text_ids
    if body.get("query_ids") == "LONG":  # a corpus passage, then tokens it does not continue with
        body["query_ids"] = doc[10:40] + [7]
    if body.get("rank") == "RANK":
        seg = ig.find(local.encode(" qnhibb").tolist())["segment_by_shard"][1]
        body["rank"] = (seg[0] + seg[1]) // 2
    if body.get("ptr") == "PTR":
        cnf = [[local.encode(" qnhibb").tolist()], [local.encode(" lzu").tolist()]]
        body["ptr"] = ig.find_cnf(cnf)["ptrs_by_shard"][0][3]
    return body


@pytest.mark.parametrize("name,body,status,check", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_representative_requests_answer_as_infinigram(index_dir: Path, ig: Any, server: Server, name: str,
                                                      body: dict[str, Any], status: int, check: str) -> None:
    local = Index.open(index_dir)
    vocab = Vocabulary(local)
    body = _fill(body, local, ig)
    st, r = call(server.url + "/", body)
    assert st == status, (name, r)
    assert isinstance(r, dict)
    if st != 200 or check.startswith(("=", "Please", "Some", "query_ids")):
        want = check.lstrip("=")
        assert r["error"].startswith(want), (name, r)
        # a query's own parameter checks carry the query's fields, its length/id checks do not
        assert ("latency" in r) == (check.startswith("=") and st == 200), r
        return
    assert "error" not in r, r
    assert isinstance(r["latency"], float) and r["latency"] >= 0
    ids = r["token_ids"]
    # the tokens are the vocabulary's strings of the ids (CNF: nested as the ids)
    if ids and isinstance(ids[0], list):
        assert r["tokens"] == [[vocab.convert_ids_to_tokens(t) for t in c] for c in ids]
    else:
        assert r["tokens"] == vocab.convert_ids_to_tokens(ids)
    if "query" in body and body["query"] and " AND " not in body["query"] and " OR " not in body["query"]:
        assert ids == local.encode(" " + body["query"]).tolist()  # byte-level BPE: a space before
    if check == "count":
        assert {k: r[k] for k in ("count", "approx")} == ig.count(ids)
    elif check == "count_cnf":
        assert body["query"].split(" AND ")[0].split(" OR ")  # OR binds tighter than AND
        assert len(ids) == len(body["query"].split(" AND "))
        want = ig.count_cnf(ids)
        assert {k: r[k] for k in ("count", "approx")} == want and want["count"] > 0
    elif check == "approx":
        assert r["approx"] is True and ig.count_cnf(ids, max_clause_freq=10)["approx"] is True
    elif check == "prob":
        assert {k: r[k] for k in ("prompt_cnt", "cont_cnt", "prob")} == ig.prob(ids[:-1], ids[-1])
    elif check == "ntd":
        want = ig.ntd(ids, max_support=body.get("max_support", 1000))
        assert (r["prompt_cnt"], r["approx"]) == (want["prompt_cnt"], want["approx"])
        assert _dist(r) == _eos({k: v["cont_cnt"] for k, v in want["result_by_token_id"].items()})
        assert all(isinstance(k, str) for k in r["result_by_token_id"])
        for k, v in r["result_by_token_id"].items():
            name_ = vocab.convert_ids_to_tokens([int(k)])[0]
            assert v["token"] == (name_.replace("Ġ", " ") if name_ is not None else None)
            assert v["prob"] == pytest.approx(v["cont_cnt"] / r["prompt_cnt"])
        assert r["approx"] is True or body.get("max_support") != 10  # sampled: the engine's own counts
    elif check == "infgram_prob":
        want = ig.infgram_prob(ids[:-1], ids[-1])
        assert {k: r[k] for k in want} == want and want["suffix_len"] > 0
        assert r["longest_suffix"] == local.tokenizer.decode(ids[-want["suffix_len"] - 1 : -1])
    elif check == "infgram_ntd":
        want = ig.infgram_ntd(ids)
        assert (r["prompt_cnt"], r["approx"], r["suffix_len"]) == (want["prompt_cnt"], want["approx"], want["suffix_len"])
        assert _dist(r) == _eos({k: v["cont_cnt"] for k, v in want["result_by_token_id"].items()})
        assert r["longest_suffix"] == local.tokenizer.decode(ids[-want["suffix_len"] :])
    elif check == "find":
        want = ig.find(ids)
        assert r["cnt"] == want["cnt"] > 0 and r["segment_by_shard"] == [list(s) for s in want["segment_by_shard"]]
    elif check == "find_cnf":
        assert {k: r[k] for k in ("cnt", "approx", "ptrs_by_shard")} == ig.find_cnf(ids) and r["cnt"] > 0
    elif check in ("doc_rank", "doc_ptr"):
        if check == "doc_rank":
            want = ig.get_doc_by_rank(s=body["s"], rank=body["rank"], max_disp_len=body["max_disp_len"])
            needles = [[ids]]
        else:
            want = ig.get_doc_by_ptr(s=body["s"], ptr=body["ptr"], max_disp_len=body["max_disp_len"])
            needles = ids
        assert _doc_fields(r) == _doc_fields(want)
        assert r["token_ids"] == ids  # the server writes the query's ids over the document's
        assert "".join(t for t, _ in r["spans"]) == local.tokenizer.decode(want["token_ids"])
        marked = [(t, lab) for t, lab in r["spans"] if lab is not None]
        assert marked and all(t == local.tokenizer.decode(needles[int(lab)][0]) or
                              any(t == local.tokenizer.decode(n) for n in needles[int(lab)]) for t, lab in marked)
    elif check in ("search_docs", "search_docs_cnf"):
        assert len(r["documents"]) == len(r["idxs"]) == body["maxnum"] and r["approx"] is False
        assert r["message"] == f"{r['cnt']} occurrences found. Displaying the documents of occurrences #{r['idxs']}"
        if check == "search_docs":
            want = ig.find(ids)
            assert r["cnt"] == want["cnt"]
            segs = want["segment_by_shard"]
            for idx, doc in zip(r["idxs"], r["documents"], strict=True):  # the idx-th occurrence's document
                s = 0
                while idx >= segs[s][1] - segs[s][0]:
                    idx -= segs[s][1] - segs[s][0]
                    s += 1
                ref = ig.get_doc_by_rank(s=s, rank=segs[s][0] + idx, max_disp_len=1000)
                assert _doc_fields(doc) == _doc_fields(ref) and doc["token_ids"] == ref["token_ids"]
                assert [local.tokenizer.decode(ids), "0"] in doc["spans"]
        else:
            assert r["cnt"] == ig.count_cnf(ids)["count"]
            for doc in r["documents"]:
                labels = {lab for _, lab in doc["spans"]}
                assert {"0", "1"} <= labels


def test_get_lists_index_names_and_own_endpoints_are_off(server: Server) -> None:
    assert call(server.url + "/", method="GET") == (200, ["corp"])
    st, r = call(server.url + "/indexes", method="GET")
    assert st == 404 and "error" in r
    st, r = call(server.url + "/indexes/corp/find_ranges", {"ids": ""})
    assert st in (404, 405) and "error" in r
    st, r = call(server.url + "/", [1, 2])  # not an object: a JSON 400 (Flask: an HTML error page)
    assert st == 400 and "error" in r
    # "corpus" is the older name of "index"; engine, source and timestamp are ignored
    st, r = call(server.url + "/", {"corpus": "corp", "query_type": "count", "query": "e", "source": "x",
                                    "timestamp": 1, "engine": "c++"})
    assert st == 200 and r["count"] > 0


def test_tracetui_additions_beside_the_api(index_dir: Path, ig: Any) -> None:
    """A server in full mode answers the same API plus tracetui's additions: the index may be left
    out when one is served, `whole_words`, `exact`, `attribute`; GET / still lists the names."""
    s = Server([index_dir])
    try:
        local = Index.open(index_dir)
        ids = local.encode(" qnhibb")
        st, r = call(s.url + "/", {"query_type": "count", "query": "qnhibb", "whole_words": True})
        assert st == 200 and r["count"] == local.count_words(ids) and r["token_ids"] == ids.tolist()
        st, r = call(s.url + "/", {"index": "corp", "query_type": "ntd", "query": "qnhibb", "max_support": 10,
                                   "exact": True})
        assert st == 200 and r["approx"] is False and _dist(r) == _eos(
            {k: v["cont_cnt"] for k, v in ig.ntd(ids.tolist(), max_support=10**6)["result_by_token_id"].items()})
        st, r = call(s.url + "/", {"index": "corp", "query_type": "attribute", "query": "qnhibb lzu e chmk."})
        assert st == 200 and isinstance(r["spans"], list)
        assert call(s.url + "/", method="GET") == (200, ["corp"])
        st, r = call(s.url + "/indexes", method="GET")
        assert st == 200 and r["indexes"][0]["name"] == "corp"
    finally:
        s.stop()


def test_vocabulary_follows_the_servers_tokenizer_rules(index_dir: Path) -> None:
    """bytes: `\\xNN` is one byte, control characters decode escaped; byte-level BPE: a space
    before a non-empty query (the empty one stays empty)."""
    from index_tools.tokenizer import load_tokenizer

    class _Bytes:
        tokenizer = load_tokenizer("bytes")

        class manifest:  # noqa: N801
            tokenizer = "bytes"

    v = Vocabulary(_Bytes())  # type: ignore[arg-type]
    assert v.tokenize("a\\xffb\\x0") == [97, 255, 98, 92, 120, 48]
    assert v.decode([97, 1, 10, 98]) == "a\\x01\nb"
    assert v.convert_ids_to_tokens([97, 255]) == ["a", "\xff"]
    bpe = Vocabulary(Index.open(index_dir))
    assert bpe.tokenize("") == [] and bpe.tokenize("e") == Index.open(index_dir).encode(" e").tolist()
    assert np.all(np.array(bpe.tokenize("qnhibb lzu")) < 500)


def test_serve_option(monkeypatch: pytest.MonkeyPatch, index_dir: Path) -> None:
    """`tracetui serve --infinigram-api-only` reaches the application factory."""
    from tracetui import serve as serve_mod
    from tracetui.cli import main

    seen: dict[str, Any] = {}

    def fake_run(app: Any, **kw: Any) -> None:
        seen["app"] = app

    monkeypatch.setattr(uvicorn, "run", fake_run)
    real = serve_mod.create_app

    def spy(*a: Any, **kw: Any) -> Any:
        seen.update(kw)
        return real(*a, **kw)

    monkeypatch.setattr(serve_mod, "create_app", spy)
    assert main(["serve", "--index", str(index_dir), "--port", "1", "--infinigram-api-only"]) == 0
    assert seen["infinigram_api_only"] is True and "app" in seen
    assert main(["serve", "--index", str(index_dir), "--port", "1"]) == 0
    assert seen["infinigram_api_only"] is False
