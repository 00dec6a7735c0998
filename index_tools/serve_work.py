"""Bounded work for `tracetui serve`: every request's cost is predicted from counts before the
expensive part, and work past its deadline is stopped.

A Python thread cannot be killed, so a request that overran its time limit used to keep one of
the server's few workers busy after its 504 (a few expensive requests a minute starved
everyone). Here each request runs under a `Budget` (its deadline, and a flag the event loop sets
when it answers 504 or the client goes away), and the costly operations are cut into bounded
engine calls with a `check()` between them: once the budget is spent, the next check raises
`Deadline` and the worker is free again within one call (at most CHUNK suffixes read).

Why chunks are exact: the occurrences of a token sequence are one suffix-array range, and
whole-word counting and next-token counting decide each occurrence on its own, so the answer
over a range is the sum of the answers over any partition of it (a capped count: the capped sum
of capped counts). Where the sum of the pieces would differ (infini-gram's sampled `ntd`, whose
segments depend on the whole range) the work is bounded by `max_support` instead.

Predicted costs also schedule: a request starts in the light lane (LIGHT workers computing at
once) and one whose predicted reads pass HEAVY moves to the heavy lane (one at a time, at most
HEAVY_WAITING waiting: beyond, a 503) before its expensive part, so a few costly queries cannot
hold every worker while cheap ones (a trace's requests) wait behind them; and while light
requests are computing, the heavy one pauses after each piece for twice as long as the piece
took (it gets about a third of a core: on a machine of two, the light lane keeps the rest).

What a prediction refuses (`TooCostly`, a 413 on tracetui's own endpoints) is an exact answer
that would read more than `max_work` suffixes; infini-gram's API gets a sampled answer flagged
`approx` instead, as infini-gram's own server does past its limits.

The one step this module cannot cut is the engine's one-time build of a shard's left-edge bits
(`index_tools.word_ends.LeftBits`, about 16 s at 100M tokens on 2 busy cores), which runs inside
whichever whole-word request first crosses the engine's threshold; it is cached on disk after.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from .engine import Index
from .ngram import NextTokens, ntd_with_unit, sample_unit

CHUNK = 1 << 19  # suffixes one engine call of a costly query may read (about 0.3 s at worst)
QUERY_BATCH = 4096  # sequences or positions per engine call of a batched request
MAX_WORK = 1 << 24  # suffixes an exact answer may read in one request (about 10 s)
# occurrences a whole-word *runs* answer (`find_words_many`, `word_occurrences`) may check: the
# engine computes those in one call, about 4 us an occurrence for a left-open sequence (a Python
# step per run of LeftBits ranks), so it is kept to about 2 s; the pieces above cannot be used
FIND_WORK = 1 << 19
SAMPLES = 8192  # occurrences looked at by a sampled whole-word count
HEAVY = 1 << 18  # predicted reads past which a request computes in the heavy lane
LIGHT = 4  # requests computing at once in the light lane
HEAVY_WAITING = 8  # requests waiting for the heavy lane; beyond, Busy (a 503)
SEARCH_READS = 32  # reads a binary search is counted as (a sequence's, a position's)
HEAD = 1 << 13  # ranks of each range a capped whole-word count reads first

T = TypeVar("T")


class Deadline(Exception):
    """The request's budget is spent (its time limit passed, or its client went away)."""


class TooCostly(Exception):
    """An exact answer that would read more than the request's work budget."""


class Busy(Exception):
    """Too many costly requests already waiting for the heavy lane."""


class Lanes:
    """The light and heavy lanes of one server: a slot is held while computing."""

    def __init__(self, light: int = LIGHT, heavy: int = 1, heavy_waiting: int = HEAVY_WAITING) -> None:
        self.light = threading.Semaphore(light)
        self.heavy = threading.Semaphore(heavy)
        self.heavy_waiting = heavy_waiting
        self.waiting = 0
        self.light_active = 0  # light slots held (read without the lock: a hint for `yield_to_light`)
        self._lock = threading.Lock()

    @staticmethod
    def _acquire(sem: threading.Semaphore, budget: Budget) -> None:
        while not sem.acquire(timeout=0.05):  # waiting, but stopped with its budget
            budget.check()

    def enter(self, budget: Budget) -> None:
        self._acquire(self.light, budget)
        with self._lock:
            self.light_active += 1

    def leave_light(self) -> None:
        """Give the light slot back to wait for the heavy one (Busy, keeping it, when too many
        wait already)."""
        with self._lock:
            if self.waiting >= self.heavy_waiting:
                raise Busy(f"server busy with costly queries ({self.waiting} waiting), try again")
            self.waiting += 1
            self.light_active -= 1
        self.light.release()

    def wait_heavy(self, budget: Budget) -> None:
        """After `leave_light`: the heavy slot, or Deadline."""
        try:
            self._acquire(self.heavy, budget)
        finally:
            with self._lock:
                self.waiting -= 1

    def leave(self, slot: str) -> None:
        if slot == "light":
            with self._lock:
                self.light_active -= 1
        (self.heavy if slot == "heavy" else self.light).release()


class Budget:
    """One request's deadline; `cancel` is called from the event loop (504 answered, client
    gone) and seen by the worker at its next `check`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.reason: str | None = None
        #: stopped because its client went away (not at its deadline): the first cause stands
        self.client_gone = False

    def cancel(self, reason: str, client_gone: bool = False) -> None:
        if self.reason is None:
            self.reason, self.client_gone = reason, client_gone

    def check(self) -> None:
        if self.reason is None and time.monotonic() > self.deadline:
            self.reason = f"the query took longer than {self.seconds:g} s"
        if self.reason is not None:
            raise Deadline(self.reason)


_local = threading.local()


def within(budget: Budget, fn: Callable[[], T], lanes: Lanes | None = None) -> T:
    """Run fn in this (worker) thread under `budget`, holding a slot of `lanes` (the light one
    first: `costs` moves it): a request that waited past its deadline does not start at all."""
    _local.budget, _local.lanes, _local.slot = budget, lanes, None
    try:
        budget.check()
        if lanes is not None:
            lanes.enter(budget)
            _local.slot = "light"
        return fn()
    finally:
        if lanes is not None and _local.slot is not None:
            lanes.leave(_local.slot)
        _local.budget, _local.lanes, _local.slot = None, None, None


def costs(reads: int) -> None:
    """The current request is predicted to read `reads` suffixes: past HEAVY it continues in the
    heavy lane. Also a deadline check."""
    check()
    lanes: Lanes | None = getattr(_local, "lanes", None)
    if lanes is None or reads <= HEAVY or getattr(_local, "slot", None) != "light":
        return
    budget: Budget = _local.budget
    lanes.leave_light()
    _local.slot = None  # given back: nothing to release if the wait ends in Deadline
    lanes.wait_heavy(budget)
    _local.slot = "heavy"
    _local.since = time.monotonic()


def check() -> None:
    """Raise `Deadline` if the current request's budget is spent (no budget: never). In the heavy
    lane, first pause while light requests compute (twice the time since the last check)."""
    budget: Budget | None = getattr(_local, "budget", None)
    if budget is None:
        return
    budget.check()
    lanes: Lanes | None = getattr(_local, "lanes", None)
    if lanes is not None and getattr(_local, "slot", None) == "heavy":
        now = time.monotonic()
        ran = now - getattr(_local, "since", now)
        if lanes.light_active > 0 and ran > 0:
            time.sleep(min(0.5, 2 * ran, max(0.0, budget.deadline - now)))
            budget.check()
        _local.since = time.monotonic()


def batches(n: int, size: int = QUERY_BATCH) -> list[slice]:
    """[0, n) in slices of at most `size`, for engine calls with a `check` between them."""
    return [slice(a, min(n, a + size)) for a in range(0, n, size)] or [slice(0, 0)]


def find_ranges(index: Index, seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """`Index.find_ranges` in batches of QUERY_BATCH sequences (each a binary search per shard)."""
    costs(SEARCH_READS * len(seqs) * len(index.shards))
    if len(seqs) <= QUERY_BATCH:
        check()
        return index.find_ranges(seqs)
    los, his = [], []
    for sl in batches(len(seqs)):
        check()
        lo, hi = index.find_ranges(seqs[sl])
        los.append(lo)
        his.append(hi)
    return np.concatenate(los, axis=1), np.concatenate(his, axis=1)


def left_open(index: Index, lo: np.ndarray, hi: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per query (ranges shards x n, lengths m): is its left edge not settled by its own first
    token? Then the engine decides it occurrence by occurrence, and the query costs up to its
    range's size; a query that starts with a complete non-word character costs a few range
    tests whatever its size. The first token is read at one occurrence (they all share it)."""
    n = len(m)
    out = np.zeros(n, dtype=bool)
    nonempty = hi > lo
    has = nonempty.any(axis=0) & (m > 0)
    if not has.any():
        return out
    first_shard = np.argmax(nonempty, axis=0)
    first = np.zeros(n, dtype=np.int64)
    for k, shard in enumerate(index.shards):
        sel = np.flatnonzero(has & (first_shard == k))
        if len(sel):
            first[sel] = np.asarray(shard.ids[shard.sa_tokens(lo[k, sel])], dtype=np.int64)
    opens = index.tokenizer.word_boundaries().opens_with_break(first)
    out[has] = ~opens[has]
    return out


def _open_reads(index: Index, lo: np.ndarray, hi: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, int]:
    """(`left_open` per query, the suffixes those queries' ranges hold: what they may read)."""
    open_ = left_open(index, lo, hi, m)
    return open_, int((hi - lo)[:, open_].sum()) if open_.any() else 0


def costly_reads(index: Index, lo: np.ndarray, hi: np.ndarray, m: np.ndarray) -> int:
    """Suffixes a whole-word answer for these ranges may read at most (the left-open queries');
    charged to the request (`costs`)."""
    reads = _open_reads(index, lo, hi, m)[1]
    costs(reads)
    return reads


def _pieces(lo: np.ndarray, hi: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, ...]:
    """The ranges of `queries` cut into pieces of at most CHUNK ranks: (query, shard, lo, hi)."""
    k = lo.shape[0]
    q = np.repeat(queries, k)
    s = np.tile(np.arange(k), len(queries))
    a = lo[s, q]
    b = hi[s, q]
    keep = b > a
    q, s, a, b = q[keep], s[keep], a[keep], b[keep]
    n = -(-(b - a) // CHUNK)
    pq, ps = np.repeat(q, n), np.repeat(s, n)
    step = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    pa = np.repeat(a, n) + step * CHUNK
    pb = np.minimum(pa + CHUNK, np.repeat(b, n))
    return pq, ps, pa, pb


def _piece_batches(sizes: np.ndarray) -> list[slice]:
    """Consecutive pieces grouped so that a group reads at most about CHUNK ranks."""
    out, a, total = [], 0, 0
    for i, sz in enumerate(sizes.tolist()):
        if i > a and total + sz > CHUNK:
            out.append(slice(a, i))
            a, total = i, 0
        total += sz
    if a < len(sizes):
        out.append(slice(a, len(sizes)))
    return out


def word_counts(index: Index, lo: np.ndarray, hi: np.ndarray, m: np.ndarray, cap: int | None = None,
                max_work: int | None = None) -> np.ndarray:
    """`Index.word_counts`, the same answers, in bounded calls: queries whose left edge their
    first token settles in batches; the others' ranges cut into CHUNK-rank pieces (a capped
    query stops once past its cap). With `max_work`, an exact count of more than that many
    left-open occurrences is refused (`TooCostly`) before anything is read."""
    lo, hi, m = (np.asarray(x, dtype=np.int64) for x in (lo, hi, m))
    n = len(m)
    out = np.zeros(n, dtype=np.int64)
    if n == 0:
        return out
    open_, reads = _open_reads(index, lo, hi, m)
    if max_work is not None and cap is None and reads > max_work:
        raise TooCostly(f"an exact whole-word count here reads {reads:,} occurrences one by one, more than "
                        f"{max_work:,} per request (count with a cap, or the substring count)")
    if cap is None:
        costs(reads)  # a capped count is charged as it reads (it usually stops within a piece)
    cheap = np.flatnonzero(~open_)
    for sl in batches(len(cheap)):
        sel = cheap[sl]
        if len(sel):
            check()
            out[sel] = index.word_counts(lo[:, sel], hi[:, sel], m[sel], cap)
    costly = np.flatnonzero(open_)
    k = lo.shape[0]
    done = 0
    if len(costly) and cap is not None:
        # first the head of every range: a capped count mostly ends there ("any?", "more than
        # 10?"), so it is charged only for what it reads, not for its whole range
        head = max(HEAD, 4 * (cap + 1))
        top = np.minimum(hi[:, costly], lo[:, costly] + head)
        done = int((top - lo[:, costly]).sum())
        costs(done)
        out[costly] = index.word_counts(lo[:, costly], top, m[costly], cap)
        lo = lo.copy()
        lo[:, costly] = top
        costly = costly[out[costly] <= cap]
    if len(costly):
        pq, ps, pa, pb = _pieces(lo, hi, costly)
        for sl in _piece_batches(pb - pa):
            q, s, a, b = pq[sl], ps[sl], pa[sl], pb[sl]
            if cap is not None:
                live = out[q] <= cap
                q, s, a, b = q[live], s[live], a[live], b[live]
                if not len(q):
                    continue
            done += int((b - a).sum())
            costs(done)  # past HEAVY read so far: on in the heavy lane
            plo = np.zeros((k, len(q)), dtype=np.int64)
            phi = np.zeros((k, len(q)), dtype=np.int64)
            cols = np.arange(len(q))
            plo[s, cols], phi[s, cols] = a, b
            np.add.at(out, q, index.word_counts(plo, phi, m[q], cap))
    return out if cap is None else np.minimum(out, cap + 1)


def sampled_word_count(index: Index, ids: np.ndarray, seed: int = 19) -> tuple[int, bool]:
    """(whole-word count of `ids`, exact?): exact when it costs at most MAX_WORK reads, else
    estimated from SAMPLES occurrences spread evenly over its ranges (each checked at both
    edges, in one engine call of single-rank ranges), scaled to the substring count."""
    ids = np.asarray(ids, dtype=np.int64)
    lo, hi = find_ranges(index, [ids])
    m = np.array([len(ids)], dtype=np.int64)
    if costly_reads(index, lo, hi, m) <= MAX_WORK:  # (costly_reads moves it to the heavy lane)
        return int(word_counts(index, lo, hi, m)[0]), True
    sizes = (hi - lo)[:, 0]
    total = int(sizes.sum())
    flat = np.unique(np.linspace(0, total - 1, SAMPLES).astype(np.int64))
    ends = np.cumsum(sizes)
    shard = np.searchsorted(ends, flat, side="right")
    rank = lo[shard, 0] + flat - (ends - sizes)[shard]
    k = lo.shape[0]
    plo = np.zeros((k, len(flat)), dtype=np.int64)
    phi = np.zeros((k, len(flat)), dtype=np.int64)
    cols = np.arange(len(flat))
    plo[shard, cols], phi[shard, cols] = rank, rank + 1
    check()
    hits = int(index.word_counts(plo, phi, np.full(len(flat), len(ids), dtype=np.int64)).sum())
    return int(round(total * hits / len(flat))), False


def ntd_reads(index: Index, ranges: list[tuple[int, int]], unit: int) -> int:
    """Suffixes an `ntd` with this stride reads at most: all of them exact, about 4 per stride
    sampled (infini-gram's halving reads every stride of segments under 4 strides)."""
    total = sum(b - a for a, b in ranges)
    return total if unit <= 1 else 4 * (total // unit + len(index.shards))


def exact_ntd(index: Index, prompt: np.ndarray, ranges: list[tuple[int, int]]) -> NextTokens:
    """`ntd_with_unit(index, prompt, 1)` over CHUNK-rank pieces of the prompt's ranges, summed
    (exact next-token counts are additive over a partition of the range), with a `check`
    between pieces."""
    prompt = np.asarray(prompt, dtype=np.int64)
    total = sum(b - a for a, b in ranges)
    costs(total)
    if total <= CHUNK:
        return ntd_with_unit(index, prompt, 1, ranges)
    ids_all, cnt_all = [], []
    empty = [(0, 0)] * len(index.shards)
    for k, (a, b) in enumerate(ranges):
        for c in range(a, b, CHUNK):
            check()
            part = list(empty)
            part[k] = (c, min(b, c + CHUNK))
            got = ntd_with_unit(index, prompt, 1, part)
            ids_all.append(got.ids)
            cnt_all.append(got.counts)
    ids, cnt = np.concatenate(ids_all), np.concatenate(cnt_all)
    u, inv = np.unique(ids, return_inverse=True)
    counts = np.bincount(inv, weights=cnt).astype(np.int64) if len(u) else np.zeros(0, dtype=np.int64)
    return NextTokens(int(counts.sum()), u, counts, False)


def ntd(index: Index, prompt: np.ndarray, unit: int, max_work: int = MAX_WORK, resample: bool = False,
        ranges: list[tuple[int, int]] | None = None) -> NextTokens:
    """`ntd_with_unit` with its cost checked first: an exact answer in pieces. More than
    `max_work` reads are refused (`TooCostly`: tracetui's `ntd` operation) or, with `resample`,
    sampled at the stride that fits the budget instead (infini-gram's API, which flags the answer
    `approx` as it flags its own samples). `ranges`: the prompt's, when the caller has them."""
    prompt = np.asarray(prompt, dtype=np.int64)
    check()
    if ranges is None:
        ranges = index.find(prompt) if len(prompt) else [(0, s.n_tokens) for s in index.shards]
    reads = ntd_reads(index, ranges, unit)
    if reads > max_work:
        count = sum(b - a for a, b in ranges)
        if not resample:
            what = "an exact ntd" if unit <= 1 else f"an ntd sampled every {unit} occurrences"
            raise TooCostly(f"{what} of a prompt with {count:,} occurrences reads {reads:,} "
                            f"of them, more than {max_work:,} per request (ask with max_support: sampled)")
        unit = sample_unit(count, max(1, max_work // 8))
        reads = ntd_reads(index, ranges, unit)
    costs(reads)
    if unit <= 1:
        return exact_ntd(index, prompt, ranges)
    return ntd_with_unit(index, prompt, unit, ranges)


__all__ = ["Budget", "Busy", "Lanes", "Deadline", "TooCostly", "within", "check", "costs", "batches", "find_ranges", "word_counts",
           "sampled_word_count", "costly_reads", "left_open", "exact_ntd", "ntd", "ntd_reads", "CHUNK", "MAX_WORK", "FIND_WORK"]
