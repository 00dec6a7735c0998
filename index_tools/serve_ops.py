"""The server side of the wire format (`index_tools.wire`): each index-level operation that
`RemoteIndex` forwards, as a function of a local `Index` and a decoded JSON body (infini-gram's
own API on one index is `infinigram_serve`). `tracetui serve` is only the HTTP application
around these.

Every operation parses and checks its input (`BadRequest`: a 4xx status and a one-line message),
bounds what it may ask for (`Limits`, published so that clients split bigger batches), predicts
its cost before its expensive part and computes in bounded pieces (`serve_work`): no engine logic
lives here, only calls of `Index` methods and of `serve_work`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from . import serve_work as work
from .engine import Index, rank_chunk
from .normalize import ORIGINAL_KEY
from .wire import hit_to_json, pack, unpack, unpack_seqs, window_to_json

MAX_BODY = 8 << 20  # bytes of one request body
MAX_TOKENS = 200_000  # token ids in one request (all sequences together)
MAX_SEQS = 100_000  # sequences in one batched request
MAX_WINDOWS = 10_000  # occurrences in one `windows` request
MAX_CONTEXT = 10_000  # tokens of context each side of a window
MAX_DOCS = 100  # documents of one `search_docs`
WINDOW_BUDGET = 2_000_000  # tokens of windows one `windows` request may ask for (all together)
NTD_MAX_SUPPORT = 1000  # infini-gram's default: `ntd` samples a prompt with more occurrences
MAX_RUNS = 1_000_000  # (shard, start, end) runs in one `find_words_many` answer



@dataclass(frozen=True)
class Limits:
    """What one request may ask for; published in `GET /indexes` so that `RemoteIndex` splits
    bigger batches into requests under them."""

    max_body: int = MAX_BODY
    max_tokens: int = MAX_TOKENS
    max_seqs: int = MAX_SEQS
    max_windows: int = MAX_WINDOWS
    max_context: int = MAX_CONTEXT
    window_budget: int = WINDOW_BUDGET
    max_work: int = work.MAX_WORK  # suffixes an exact answer may read (`serve_work`): beyond, a 413

    def to_json(self) -> dict[str, int]:
        return asdict(self)


DEFAULT_LIMITS = Limits()


class BadRequest(Exception):
    """Input the server refuses: answered with `status` and {"error": message}."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# -- input checks ---------------------------------------------------------------------------------
def _int(body: dict[str, Any], key: str, default: int | None = None, lo: int = 0, hi: int = 1 << 62) -> int:
    value = body.get(key, default)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key}: expected an integer")
    if not lo <= value <= hi:
        raise BadRequest(f"{key}: {value} out of range ({lo}..{hi})")
    return value


def _array(body: dict[str, Any], key: str, lim: Limits | None = None) -> np.ndarray:
    try:
        arr = unpack(body.get(key), key)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if lim is not None and len(arr) > lim.max_tokens:
        raise BadRequest(f"{key}: {len(arr)} values, at most {lim.max_tokens} per request", 413)
    return arr


def _check_ids(index: Index, ids: np.ndarray, lim: Limits, what: str = "ids") -> np.ndarray:
    if len(ids) > lim.max_tokens:
        raise BadRequest(f"{what}: {len(ids)} tokens, at most {lim.max_tokens} per request", 413)
    if len(ids) and (ids.min() < 0 or ids.max() >= index.tokenizer.vocab_size):
        raise BadRequest(f"{what}: token ids must be in 0..{index.tokenizer.vocab_size - 1}")
    return ids


def _seqs(index: Index, body: dict[str, Any], lim: Limits) -> list[np.ndarray]:
    try:
        seqs = unpack_seqs(body)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if len(seqs) > lim.max_seqs:
        raise BadRequest(f"{len(seqs)} sequences, at most {lim.max_seqs} per request", 413)
    _check_ids(index, np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.int64), lim)
    return seqs


def _ranges(index: Index, body: dict[str, Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Suffix-array ranges (shards x n) as `find_ranges` gives them, checked against the shards."""
    k = len(index.shards)
    lo, hi = _array(body, "lo"), _array(body, "hi")
    if len(lo) != k * n or len(hi) != k * n:
        raise BadRequest(f"lo and hi: expected {k} shards x {n} ranges")
    lo, hi = lo.reshape(k, n), hi.reshape(k, n)
    sizes = np.array([s.n_tokens for s in index.shards], dtype=np.int64)[:, None]
    if np.any(lo < 0) or np.any(hi < lo) or np.any(hi > sizes):
        raise BadRequest("lo and hi: not ranges of the shards' suffix arrays")
    return lo, hi


def _shard_doc(index: Index, body: dict[str, Any]) -> tuple[int, int]:
    shard = _int(body, "shard", hi=len(index.shards) - 1)
    return shard, _int(body, "doc", hi=index.shards[shard].n_docs - 1)


# -- the index-level operations (what RemoteIndex forwards) ----------------------------------------
def op_find_ranges(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    seqs = _seqs(index, body, lim)
    lo, hi = work.find_ranges(index, seqs)
    return {"lo": pack(lo.ravel()), "hi": pack(hi.ravel())}


def op_word_counts(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    m = _array(body, "m")
    if len(m) > lim.max_seqs or np.any(m < 0) or np.any(m > lim.max_tokens):
        raise BadRequest("m: lengths out of range")
    lo, hi = _ranges(index, body, len(m))
    cap = None if body.get("cap") is None else _int(body, "cap")
    return {"counts": pack(work.word_counts(index, lo, hi, m, cap, lim.max_work))}


def _too_many_runs(total: int) -> BadRequest:
    return BadRequest(f"find_words_many: {total:,} runs of whole-word occurrences, at most {MAX_RUNS:,} per "
                      "answer (page them with word_occurrences)", 413)


def _check_runs_work(index: Index, lo: np.ndarray, hi: np.ndarray, m: np.ndarray, lim: Limits, what: str) -> None:
    """A whole-word *runs* answer's cost, refused (413) before the search: the engine checks a
    left-open sequence's occurrences one by one in one call, so it is bounded by FIND_WORK too.
    `lo`, `hi`: the sequences' ranges; `m`: their lengths."""
    reads = work.costly_reads(index, lo, hi, m)
    most = min(lim.max_work, work.FIND_WORK)
    if reads > most:
        raise BadRequest(f"{what}: {reads:,} occurrences to check one by one, at most {most:,} per request", 413)


def op_find_words_many(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Refused before the search when the left-open sequences' occurrences (each checked one by
    one) pass the work budget; searched in batches of sequences, stopped once the answer passes
    MAX_RUNS runs."""
    seqs = _seqs(index, body, lim)
    lo, hi = work.find_ranges(index, seqs)  # searched once: for the cost, then for the runs
    m = np.array([len(s) for s in seqs], dtype=np.int64)
    _check_runs_work(index, lo, hi, m, lim, "find_words_many")
    cols_all: list[np.ndarray] = []
    total = 0
    for sl in work.batches(len(seqs)):
        work.check()
        runs = index.find_words_in_ranges(lo[:, sl], hi[:, sl], m[sl])
        total += sum(len(rs) for rs in runs)
        if total > MAX_RUNS:
            raise _too_many_runs(total)
        flat = [(sl.start + q, k, a, b) for q, rs in enumerate(runs) for k, a, b in rs]
        cols_all.append(np.array(flat, dtype=np.int64).reshape(-1, 4))
    cols = np.concatenate(cols_all)
    return {"seq": pack(cols[:, 0]), "shard": pack(cols[:, 1]), "start": pack(cols[:, 2]), "end": pack(cols[:, 3])}


def op_word_occurrences(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Raw chunk number `skip` of `Index.word_occurrences` (`rank_chunks` of the whole-word
    runs); `next` is the chunk to ask for next (`done` when there is none). Each page costs one
    search for the runs and one chunk, whatever `skip`."""
    ids = _check_ids(index, _array(body, "ids"), lim)
    chunk = _int(body, "chunk", 1 << 18, 1, 1 << 18)
    skip = _int(body, "skip", 0)
    if len(ids):
        lo, hi = work.find_ranges(index, [ids])
        _check_runs_work(index, lo, hi, np.array([len(ids)]), lim, "word_occurrences")
    runs = index.find_words(ids) if len(ids) else []
    found = rank_chunk(runs, chunk, skip)
    if found is None:
        return {"shards": [], "ranks": [], "done": True, "next": None}
    n, ranks = found
    done = rank_chunk(runs, chunk, skip + 1) is None
    shards, packed = ([n], [pack(ranks)]) if len(ranks) else ([], [])
    return {"shards": shards, "ranks": packed, "done": done, "next": None if done else skip + 1}


def op_count_words(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    ids = _check_ids(index, _array(body, "ids"), lim)
    if not len(ids):
        return {"count": 0}
    lo, hi = work.find_ranges(index, [ids])
    return {"count": int(work.word_counts(index, lo, hi, np.array([len(ids)]), None, lim.max_work)[0])}


def op_longest_prefixes(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    ids = _check_ids(index, _array(body, "ids"), lim)
    positions = _array(body, "positions", lim) if "positions" in body else None
    if positions is not None and len(positions) and (positions.min() < 0 or positions.max() >= len(ids)):
        raise BadRequest("positions: must be positions of ids")
    extra: dict[str, Any] = {}
    if "stops" in body:  # per position, where its match must end (texts laid end to end)
        extra["stops"] = _array(body, "stops", lim)
        if len(extra["stops"]) != (len(ids) if positions is None else len(positions)):
            raise BadRequest("stops: one per position")
    witnessed = bool(body.get("word_ends"))
    pos = np.arange(len(ids), dtype=np.int64) if positions is None else positions
    work.costs(work.SEARCH_READS * len(pos) * len(index.shards))
    lengths = np.zeros(len(pos), dtype=np.int64)
    ends = np.zeros(len(pos), dtype=bool)
    for sl in work.batches(len(pos)):  # each position's answer is its own: batches, checked between
        work.check()
        part = {k: v[sl] for k, v in extra.items()}
        if witnessed:
            lengths[sl], ends[sl] = index.longest_prefixes_witnessed(ids, pos[sl], **part)
        else:
            lengths[sl] = index.longest_prefixes(ids, pos[sl], **part)
    if witnessed:
        return {"lengths": pack(lengths), "word_ends": pack(ends.astype(np.int64))}
    return {"lengths": pack(lengths)}


def op_ntd(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    ids = _check_ids(index, _array(body, "ids"), lim)
    dist = work.ntd(index, ids, _int(body, "unit", 1, 1, 1 << 40), lim.max_work)
    return {"ids": pack(dist.ids), "counts": pack(dist.counts)}


def op_unigram_counts(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    return {"counts": pack(index.unigram_counts())}


def window_cost(lengths: list[int], contexts: list[int]) -> int:
    """At most how many tokens the windows of occurrences with match `lengths` hold, one window
    per context: each is at most `2 * context + length` (less where the document ends)."""
    return len(lengths) * 2 * sum(contexts) + len(contexts) * sum(lengths)


def op_windows(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The windows of occurrences, refused (413) when what they could hold together passes
    `window_budget` tokens: each occurrence has one window per context, a window can be as
    large as its document, so the sizes' bounds alone would let a small request build gigabytes."""
    occ, contexts = body.get("occurrences"), body.get("contexts", [])
    if not isinstance(occ, list) or not isinstance(contexts, list):
        raise BadRequest("occurrences: expected [[shard, rank, length], ...] and contexts: [tokens, ...]")
    if len(occ) > lim.max_windows or len(contexts) > 4:
        raise BadRequest(f"at most {lim.max_windows} occurrences and 4 contexts per request", 413)
    ctx = [_int({"context": c}, "context", hi=lim.max_context) for c in contexts]
    wanted = []
    for o in occ:
        if not (isinstance(o, list) and len(o) == 3):
            raise BadRequest("occurrences: each is [shard, rank, length]")
        d = dict(zip(("shard", "rank", "length"), o, strict=True))
        shard = _int(d, "shard", hi=len(index.shards) - 1)
        wanted.append((shard, _int(d, "rank", hi=index.shards[shard].n_tokens - 1),
                       _int(d, "length", hi=lim.max_tokens)))
    cost = window_cost([w[2] for w in wanted], ctx)
    if cost > lim.window_budget:
        raise BadRequest(f"windows: up to {cost} tokens asked for, at most {lim.window_budget} per request", 413)
    found = []
    for sl in work.batches(len(wanted), 256):
        work.check()
        found += index.windows(wanted[sl], tuple(ctx))
    return {"occurrences": [{"hit": hit_to_json(o.hit), "doc_id": o.doc_id, "metadata": o.metadata,
                             "windows": [window_to_json(w) for w in o.windows]} for o in found]}


def op_document(index: Index, body: dict[str, Any], lim: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A document's metadata and, with `tokens`, a page of its tokens: `start` (default 0) and at
    most `length` (default and bound: the windows budget) tokens; `size` is the document's length
    and `next` the start of the next page (None after the last)."""
    shard, doc = _shard_doc(index, body)
    out: dict[str, Any] = {"metadata": index.metadata(shard, doc)}
    if body.get("original"):  # a normalized index's original text, under the same budget
        text = index.shards[shard].doc_metadata(doc).get(ORIGINAL_KEY)
        out["original"] = text if isinstance(text, str) and len(text) <= 4 * lim.window_budget else None
    if body.get("tokens"):
        a, b = index.shards[shard].doc_bounds(doc)
        size = b - a
        start = _int(body, "start", 0, 0, size)
        length = _int(body, "length", lim.window_budget, 1, lim.window_budget)
        end = min(size, start + length)
        out["tokens"] = pack(index.shards[shard].token_ids(a + start, a + end))
        out.update(size=size, start=start, next=end if end < size else None)
    return out


OPS: dict[str, Callable[[Index, dict[str, Any], Limits], dict[str, Any]]] = {
    "find_ranges": op_find_ranges, "word_counts": op_word_counts, "find_words_many": op_find_words_many,
    "word_occurrences": op_word_occurrences, "count_words": op_count_words,
    "longest_prefixes": op_longest_prefixes, "ntd": op_ntd, "unigram_counts": op_unigram_counts,
    "windows": op_windows, "document": op_document,
}


__all__ = ["BadRequest", "DEFAULT_LIMITS", "Limits", "OPS", "window_cost"]
