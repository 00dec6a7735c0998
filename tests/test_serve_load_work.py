"""Bounded work in `tracetui serve` (`index_tools.serve_work`): the pieces give the engine's answers
(brute force and the engine as oracles); exact answers past the work budget are a clear 413 on
tracetui's endpoints and sampled with `approx` in infini-gram's API; work past its deadline, or
whose client went away, is stopped (its worker is free again), and cheap requests are answered
while a costly one computes. Real uvicorn in a thread, real indexes."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index_tools import serve_work as work
from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from index_tools.ngram import DOC_END
from index_tools.wire import pack, pack_seqs, unpack

from .conftest import write_jsonl
from .test_serve import AppServer, needs_server

WORDS = ["the", "there", "other", "then", "ethereal", "seethe", "he", "theme", "rather", "ethic", "hen", "eh"]


@pytest.fixture(scope="module")
def letters(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bytes index of about 240k tokens: "e" and "h" are word characters, so their left edge is
    decided occurrence by occurrence (tens of thousands of them)."""
    rng = np.random.default_rng(7)
    texts = [" ".join(rng.choice(WORDS, size=200).tolist()) + "." for _ in range(200)]
    d = tmp_path_factory.mktemp("letters")
    out = d / "letters"
    build_index([write_jsonl(d / "t.jsonl", texts)], out, BuildOptions(tokenizer="bytes", shards=2, progress=False))
    return out


@pytest.fixture(scope="module")
def index(letters: Path) -> Iterator[Index]:
    ix = Index.open(letters)
    yield ix
    ix.close()


def brute_ntd(index: Index, prompt: np.ndarray) -> dict[int, int]:
    """Next-token counts after `prompt` by scanning every shard's tokens (a document end and the
    end of the file: DOC_END)."""
    out: dict[int, int] = {}
    m = len(prompt)
    sep = (1 << (8 * index.width)) - 1
    for shard in index.shards:
        toks = np.asarray(shard.ids, dtype=np.int64)
        n = len(toks)
        win = np.lib.stride_tricks.sliding_window_view(toks, m)
        hits = np.flatnonzero((win == prompt).all(axis=1))
        for p in hits.tolist():
            t = int(toks[p + m]) if p + m < n else DOC_END
            t = DOC_END if t == sep else t
            out[t] = out.get(t, 0) + 1
    return out


def test_pieces_give_the_engines_word_counts(index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole-word counts in pieces of a few ranks equal the engine's in one call, exact and
    capped (the capped sum of capped counts), for left-open and settled sequences alike."""
    seqs = [index.encode(s) for s in ("e", "h", "he", "the", " the", "th", "er", ".", " e", "ethe", "zzz", "e t")]
    lo, hi = index.find_ranges(seqs)
    m = np.array([len(s) for s in seqs], dtype=np.int64)
    assert work.left_open(index, lo, hi, m)[:2].all() and not work.left_open(index, lo, hi, m)[4]
    monkeypatch.setattr(work, "CHUNK", 97)
    monkeypatch.setattr(work, "HEAD", 13)  # capped counts: a head, then pieces
    for cap in (None, 0, 3, 1000):
        assert work.word_counts(index, lo, hi, m, cap).tolist() == index.word_counts(lo, hi, m, cap).tolist()


def test_pieces_give_the_brute_force_ntd(index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(work, "CHUNK", 101)
    for text in ("e", "th", "he ", "."):
        prompt = index.encode(text)
        got = work.exact_ntd(index, prompt, index.find(prompt))
        assert dict(zip(got.ids.tolist(), got.counts.tolist(), strict=True)) == brute_ntd(index, prompt)
        assert not got.approx and got.prompt_cnt == index.count(prompt)


def test_exact_answers_past_the_budget_are_refused(index: Index) -> None:
    """Refused before anything is read: the prediction is the range's size."""
    e = index.encode("he")
    lo, hi = index.find_ranges([e])
    with pytest.raises(work.TooCostly, match="reads .* occurrences one by one"):
        work.word_counts(index, lo, hi, np.array([2]), None, max_work=100)
    assert work.word_counts(index, lo, hi, np.array([2]), 5, max_work=100).tolist() == [6]  # capped: admitted
    e = index.encode("e")
    with pytest.raises(work.TooCostly, match=r"exact ntd .* \(ask with max_support"):
        work.ntd(index, e, 1, max_work=100)
    with pytest.raises(work.TooCostly, match="exact ntd"):
        work.ntd(index, np.zeros(0, dtype=np.int64), 1, max_work=index.total_tokens - 1)


def test_sampled_whole_word_count_is_flagged_and_close(index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    e = index.encode("he")
    exact = index.count_words(e)
    assert work.sampled_word_count(index, e) == (exact, True)
    monkeypatch.setattr(work, "MAX_WORK", 10)
    got, is_exact = work.sampled_word_count(index, e)
    assert not is_exact and abs(got - exact) <= 0.1 * exact + 20


def test_a_spent_budget_stops_the_work(index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next check after the deadline (or a cancel) raises: at most one piece more is read."""
    monkeypatch.setattr(work, "CHUNK", 16)
    e = index.encode("e")
    lo, hi = index.find_ranges([e])
    budget = work.Budget(0.05)
    t0 = time.monotonic()
    with pytest.raises(work.Deadline, match="longer than 0.05 s"):
        work.within(budget, lambda: work.word_counts(index, lo, hi, np.array([1])))
    assert time.monotonic() - t0 < 1.0
    cancelled = work.Budget(60)
    cancelled.cancel("the client went away")
    with pytest.raises(work.Deadline, match="client went away"):
        work.within(cancelled, lambda: 1)
    assert work.within(work.Budget(60), lambda: 2) == 2


def test_the_heavy_lane_takes_one_and_refuses_a_crowd() -> None:
    lanes = work.Lanes(light=2, heavy=1, heavy_waiting=1)
    inside, release = threading.Event(), threading.Event()
    got: list[str] = []

    def heavy() -> None:
        def body() -> None:
            work.costs(work.HEAVY + 1)
            inside.set()
            release.wait(10)
        work.within(work.Budget(30), body, lanes)

    def second() -> None:
        try:
            work.within(work.Budget(30), lambda: work.costs(work.HEAVY + 1), lanes)
            got.append("ran")
        except work.Busy:
            got.append("busy")

    first = threading.Thread(target=heavy)
    first.start()
    assert inside.wait(10)
    waiter = threading.Thread(target=second)  # waits for the heavy slot
    waiter.start()
    time.sleep(0.2)
    with pytest.raises(work.Busy, match="busy with costly queries"):  # a third is one too many
        work.within(work.Budget(30), lambda: work.costs(work.HEAVY + 1), lanes)
    assert work.within(work.Budget(30), lambda: "light", lanes) == "light"  # light work is not held up
    release.set()
    first.join(10)
    waiter.join(10)
    assert got == ["ran"] and lanes.light_active == 0 and lanes.waiting == 0


# -- through the server ---------------------------------------------------------------------------
def _post(url: str, body: Any, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _stats(server: AppServer) -> dict[str, int]:
    return server.server.config.app.stats  # type: ignore[no-any-return]


def _wait_idle(server: AppServer, limit: float) -> float:
    t0 = time.monotonic()
    while _stats(server)["running"] and time.monotonic() - t0 < limit:
        time.sleep(0.01)
    return time.monotonic() - t0


def _slow_count_seconds(index: Index) -> float:
    """How long the exact whole-word count of "e" takes in pieces of 4 ranks, unbounded."""
    e = index.encode("e")
    lo, hi = index.find_ranges([e])
    t0 = time.monotonic()
    work.word_counts(index, lo, hi, np.array([1]))
    return time.monotonic() - t0


@needs_server
def test_work_past_its_deadline_is_stopped(letters: Path, index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 504 at the deadline, and the worker free right after it, although the whole count takes
    seconds; the next request is answered."""
    monkeypatch.setattr(work, "CHUNK", 4)
    full = _slow_count_seconds(index)
    assert full > 1.0, "the slow count must outlast the deadline by far"
    server = AppServer([letters], timeout=0.3)
    try:
        t0 = time.monotonic()
        st, r = _post(f"{server.url}/indexes/letters/count_words", {"ids": pack(index.encode("e"))})
        answered = time.monotonic() - t0
        assert st == 504 and "longer than 0.3 s" in r["error"] and "stopped" in r["error"]
        idle = _wait_idle(server, 10)
        assert answered + idle < full / 2 and idle < 0.5, (answered, idle, full)
        assert _stats(server)["stopped"] >= 1
        st, r = _post(f"{server.url}/", {"index": "letters", "query_type": "count", "query": "the"})
        assert st == 200 and r["count"] == index.count(index.encode("the"))
    finally:
        server.stop()


@needs_server
def test_a_client_that_goes_away_stops_its_work(letters: Path, index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(work, "CHUNK", 4)
    full = _slow_count_seconds(index)
    server = AppServer([letters], timeout=60)
    try:
        body = json.dumps({"ids": pack(index.encode("e"))}).encode()
        head = (f"POST /indexes/letters/count_words HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(head + body)
            t0 = time.monotonic()
            while not _stats(server)["running"] and time.monotonic() - t0 < 5:
                time.sleep(0.005)
            assert _stats(server)["running"] == 1
        t_closed = time.monotonic()
        idle = _wait_idle(server, 30)
        assert idle < min(1.0, full / 2), (idle, full)
        assert _stats(server)["stopped"] == 1 and time.monotonic() - t_closed < full
    finally:
        server.stop()


@needs_server
def test_cheap_requests_are_answered_while_a_costly_one_computes(letters: Path, index: Index,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(work, "CHUNK", 4)
    monkeypatch.setattr(work, "HEAVY", 100)
    server = AppServer([letters], timeout=60)
    try:
        slow: list[int] = []
        t = threading.Thread(target=lambda: slow.append(
            _post(f"{server.url}/indexes/letters/count_words", {"ids": pack(index.encode("e"))})[0]))
        t.start()
        while not _stats(server)["running"]:
            time.sleep(0.005)
        times = []
        for _ in range(10):
            t0 = time.monotonic()
            st, _ = _post(f"{server.url}/", {"index": "letters", "query_type": "count", "query": "the"})
            times.append(time.monotonic() - t0)
            assert st == 200
        assert t.is_alive() and max(times) < 0.5, times  # all answered while the count computes
        t.join(60)
        assert slow == [200]
    finally:
        server.stop()


@needs_server
def test_predicted_costs_over_the_server(letters: Path, index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    """tracetui's endpoints: 413 with the reason, before the work; a capped count is admitted.
    infini-gram's API: sampled answers flagged approx (ntd's counts still sum to the prompt's)."""
    from index_tools.serve_ops import Limits

    server = AppServer([letters], limits=Limits(max_work=1000))
    e = index.encode("e")
    try:
        st, r = _post(f"{server.url}/indexes/letters/count_words", {"ids": pack(e)})
        assert st == 413 and "one by one" in r["error"]
        st, r = _post(f"{server.url}/indexes/letters/ntd", {"ids": pack([]), "unit": 1})
        assert st == 413 and "max_support" in r["error"]
        st, r = _post(f"{server.url}/indexes/letters/find_words_many", pack_seqs([e]))
        assert st == 413 and "one by one" in r["error"]
        he = index.encode("he")
        lo, hi = index.find_ranges([he])
        st, r = _post(f"{server.url}/indexes/letters/word_counts",
                      {"lo": pack(lo.ravel()), "hi": pack(hi.ravel()), "m": pack([2]), "cap": 10})
        assert st == 200 and unpack(r["counts"]).tolist() == [11]
        st, r = _post(f"{server.url}/indexes/letters/count_words", {"ids": pack(index.encode(" the"))})
        assert st == 200 and r["count"] == index.count_words(index.encode(" the"))  # settled edges: cheap
        monkeypatch.setattr(work, "MAX_WORK", 1000)
        st, r = _post(f"{server.url}/", {"index": "letters", "query_type": "ntd", "query_ids": e.tolist(), "exact": True})
        assert st == 200 and r["approx"] is True and r["prompt_cnt"] == index.count(e)
        assert sum(v["cont_cnt"] for v in r["result_by_token_id"].values()) == r["prompt_cnt"]
        st, r = _post(f"{server.url}/", {"index": "letters", "query_type": "count", "query_ids": he.tolist(),
                                         "whole_words": True})
        exact = index.count_words(he)
        assert st == 200 and r["approx"] is True and abs(r["count"] - exact) <= 0.1 * exact + 20
        listing = json.loads(urllib.request.urlopen(f"{server.url}/indexes", timeout=30).read())
        assert listing["limits"]["max_work"] == 1000
    finally:
        server.stop()
