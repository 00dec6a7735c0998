"""infini-gram's HTTP API (`POST /`), answered over our indexes as infini-gram's own server answers.

The behaviour followed is that of infini-gram's `api/api_server.py` (the `Processor` and the Flask
route) in front of `pkg/infini_gram/engine.py` (`InfiniGramEngine`, its C++ engine underneath);
the map is in ../shared/reference/infini-gram-api.md. What a client sees:

- The body: `index` (or `corpus`), `query_type`, exactly one of `query` (text) and `query_ids`
  (ids, or for a CNF a list of clauses of terms of ids); every other key is a parameter of the
  query (`engine`, `source`, `timestamp` are dropped).
- A text with " AND " or " OR " is a CNF: split on " AND " into clauses, each on " OR " into
  terms, each term tokenized alone. Tokenization follows the server's per-tokenizer rules by the
  index's tokenizer family: byte-level BPE (GPT-2, OLMo, NeoX) gets a space before a non-empty
  query; SentencePiece (Llama-2) drops the lone leading "▁" token; the bytes tokenizer reads
  `\\xNN` as one byte (and decodes control characters as `\\xNN`).
- Status 400 for a missing field, not exactly one of query/query_ids, an unknown index or an
  unknown query type (messages start with "[Flask]"); 500 for an exception inside the query (an
  unexpected parameter, a missing `s`/`rank`, ...); everything the query itself checks is a 200
  with an `error` key -- with `latency`, `token_ids` and `tokens` when the check is the engine's
  or a parameter's, without them when it is the query's length or ids.
- Limits: 1000 characters or 500 tokens per query, at most 4 clauses of at most 4 terms,
  max_support 1..1000, max_clause_freq 1..500000, max_diff_tokens 1..1000, maxnum 1..10,
  max_disp_len 1..10000; the engine's defaults are max_support 1000, max_clause_freq 50000,
  max_diff_tokens 100, maxnum 1, max_disp_len 1000. Token ids must be below the vocabulary size,
  except 65535.
- Every answer has `latency` (ms), `token_ids` and `tokens` (vocabulary strings); ntd's
  `result_by_token_id` has string keys and each entry a `token`; the next token after an
  occurrence that ends a document is the index's eos id (as infini-gram's engine reports it).

Where this differs from infini-gram's server, on purpose: a body that is not a JSON object is a
JSON 400 (Flask answers an HTML 400/500); the subsampling of a CNF clause above max_clause_freq
and the documents `search_docs` picks use our random numbers (both are random samples in
infini-gram too: its approximate counts agree in expectation, not digit for digit). `GET /` lists
the index names. tracetui's additions (not in `api_only` mode): the `index` may be left out when
one index is served, `count` takes `whole_words`, `ntd`/`infgram_ntd` take `exact`, and the
`attribute` query type (OLMoTrace's span finding) is answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np

from . import serve_work as work
from .engine import Index
from .format import separator_id
from .ngram import DOC_END, infgram_suffix_lengths, ntd, sample_unit

# the server's limits (api_server.py's defaults)
MAX_QUERY_CHARS = 1000
MAX_QUERY_TOKENS = 500
MAX_CLAUSES_PER_CNF = 4
MAX_TERMS_PER_CLAUSE = 4
MAX_SUPPORT = 1000
MAX_CLAUSE_FREQ = 500_000
MAX_DIFF_TOKENS = 1000
MAXNUM = 10
MAX_DISP_LEN = 10_000
# the engine's defaults (InfiniGramEngine's constructor)
DEFAULT_MAX_SUPPORT = 1000
DEFAULT_MAX_CLAUSE_FREQ = 50_000
DEFAULT_MAX_DIFF_TOKENS = 100
DEFAULT_MAXNUM = 1
DEFAULT_MAX_DISP_LEN = 1000
CNF_SEED = 19260817  # infini-gram seeds its clause subsampling so; our generator is numpy's

#: query types infini-gram's Processor answers (a CNF `count` / `search_docs` goes to *_cnf)
PROCESSED = ("count", "count_cnf", "prob", "ntd", "infgram_prob", "infgram_ntd", "search_docs",
             "search_docs_cnf", "find", "find_cnf", "get_doc_by_rank", "get_doc_by_ptr")
#: further names its engine has: the route accepts them (hasattr on the engine), the Processor
#: has no such method, so they fail inside the query (500)
ENGINE_ONLY = ("get_docs_by_ranks", "get_docs_by_ptrs", "get_doc_by_ix", "get_docs_by_ixs", "get_doc_by_rank_2",
               "get_docs_by_ranks_2", "get_doc_by_ptr_2", "get_docs_by_ptrs_2", "get_doc_by_ix_2",
               "get_docs_by_ixs_2", "get_total_doc_cnt", "creativity", "attribute", "compute_unigram_counts",
               "get_new_shards_by_index_dir", "check_query_ids", "check_cnf", "engine", "max_support",
               "max_clause_freq", "max_diff_tokens", "maxnum", "max_disp_len", "token_id_max")
DROPPED = ("query_type", "corpus", "index", "engine", "source", "timestamp")


def _is_int(v: Any) -> bool:
    return type(v) is int  # as the server's `type(x) == int`: True and False are not integers


class Vocabulary:
    """The index's tokenizer as infini-gram's server uses it: tokenize a query, name the tokens
    (`convert_ids_to_tokens`), decode (no special tokens skipped, no clean-up)."""

    def __init__(self, index: Index) -> None:
        tok = index.tokenizer
        self.tokenizer = tok
        self.bytes = index.manifest.tokenizer == "bytes"
        self.vocab_size = 255 if self.bytes else int(tok.vocab_size)
        base = getattr(tok, "base", tok)  # a normalizing tokenizer (normalized index) wraps the real one
        self.family = "bytes" if self.bytes else getattr(base, "family", "sentencepiece")
        self._names: list[str | None] | None = None
        self._space: int | None = None  # SentencePiece's lone "▁"
        self._hf = hf = getattr(base, "_tok", None)
        if self.family == "sentencepiece" and hf is not None:
            self._space = hf.token_to_id("▁")

    def tokenize(self, query: str) -> list[int]:
        if self.bytes:  # infini-gram's ByteTokenizer: "\xNN" is one byte
            out: list[int] = []
            pos = 0
            hexd = "0123456789abcdefABCDEF"
            while pos < len(query):
                if query[pos : pos + 2] == "\\x" and pos + 4 <= len(query) and query[pos + 2] in hexd \
                        and query[pos + 3] in hexd:
                    out.append(int(query[pos + 2 : pos + 4], 16))
                    pos += 4
                else:
                    out += list(query[pos].encode("utf-8", errors="surrogatepass"))
                    pos += 1
            return out
        if self.family == "byte-level" and query != "":
            query = " " + query
        ids = [int(i) for i in self.tokenizer.encode(query)]
        if self.family == "sentencepiece" and ids and self._space is not None and ids[0] == self._space:
            ids = ids[1:]
        return ids

    def names(self) -> list[str | None]:
        if self._names is None:
            names: list[str | None] = [None] * self.vocab_size
            hf = self._hf
            if hf is not None:
                for token, i in hf.get_vocab(with_added_tokens=True).items():
                    if 0 <= i < self.vocab_size:
                        names[i] = token
            self._names = names
        return self._names

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str | None]:
        if self.bytes:
            return [chr(i) for i in ids]
        names = self.names()
        return [names[i] if 0 <= i < len(names) else None for i in ids]

    def decode(self, ids: list[int]) -> str:
        if self.bytes:
            s = bytes(i & 0xFF for i in ids).decode("utf-8", errors="backslashreplace")
            return "".join(f"\\x{ord(c):02x}" if ord(c) < 32 and ord(c) not in (9, 10) else c for c in s)
        return self.tokenizer.decode([i for i in ids if 0 <= i < self.vocab_size])


class Engine:
    """`InfiniGramEngine`'s query methods over our `Index`: the same checks (answered as
    {"error": ...}), the same answers."""

    def __init__(self, index: Index, default_max_support: int = DEFAULT_MAX_SUPPORT) -> None:
        self.index = index
        self.width = index.width
        self.token_id_max = (1 << (8 * self.width)) - 1
        eos = index.manifest.eos_id
        self.eos = int(eos) if eos is not None else separator_id(self.width)
        self.max_support = default_max_support
        self.sep = b"\xff" * self.width

    # -- checks ---------------------------------------------------------------------------------
    def check_query_ids(self, q: Any, allow_empty: bool) -> bool:
        return isinstance(q, list) and (allow_empty or len(q) > 0) and \
            all(_is_int(i) and 0 <= i <= self.token_id_max for i in q)

    def check_cnf(self, cnf: Any) -> bool:
        if not (isinstance(cnf, list) and cnf):
            return False
        for clause in cnf:
            if not (isinstance(clause, list) and clause):
                return False
            for term in clause:
                if not (isinstance(term, list) and term) or not all(
                        _is_int(i) and 0 <= i <= self.token_id_max for i in term):
                    return False
        return True

    def _ids_error(self, what: str = "input_ids") -> dict[str, Any]:
        return {"error": f"{what} must be a list of integers in range [0, {self.token_id_max}]"}

    @staticmethod
    def _positive(name: str, v: Any) -> dict[str, Any] | None:
        return None if _is_int(v) and v > 0 else {"error": f"{name} must be a positive integer"}

    def _arr(self, ids: list[int]) -> np.ndarray:
        return np.asarray(ids, dtype=np.int64)

    # -- counting -------------------------------------------------------------------------------
    def find(self, input_ids: Any) -> dict[str, Any]:
        if not self.check_query_ids(input_ids, allow_empty=True):
            return self._ids_error()
        segs = self.index.find(self._arr(input_ids))
        return {"cnt": int(sum(b - a for a, b in segs)), "segment_by_shard": [[int(a), int(b)] for a, b in segs]}

    def count(self, input_ids: Any) -> dict[str, Any]:
        if not self.check_query_ids(input_ids, allow_empty=True):
            return self._ids_error()
        return {"count": int(self.index.count(self._arr(input_ids))), "approx": False}

    def _find_disj(self, clause: list[list[int]], max_clause_freq: int, rng: np.random.Generator
                   ) -> tuple[int, list[int], list[list[tuple[int, int]]], list[float]]:
        """A disjunction's occurrences: per shard its count, the terms' rank ranges (each cut to
        a random part of its share when the clause occurs more than max_clause_freq / shards
        times in the shard), and the subsampling factor."""
        shards = self.index.shards
        per_term = [self.index.find(self._arr(t)) for t in clause]
        cap = (max_clause_freq + len(shards) - 1) // len(shards)
        cnt_by_shard, segs_by_shard, factor_by_shard = [], [], []
        for s in range(len(shards)):
            segs = [per_term[t][s] for t in range(len(clause))]
            cnt = sum(b - a for a, b in segs)
            factor = 1.0
            if cnt > cap:
                new_cnt, new = 0, []
                for a, b in segs:
                    n = b - a
                    m = (n * cap + cnt - 1) // cnt
                    start = a + int(rng.integers(0, n - m + 1))
                    new.append((start, start + m))
                    new_cnt += m
                factor = cnt / new_cnt
                segs = new
            cnt_by_shard.append(cnt)
            segs_by_shard.append(segs)
            factor_by_shard.append(factor)
        return sum(cnt_by_shard), cnt_by_shard, segs_by_shard, factor_by_shard

    def _ptrs(self, s: int, segs: list[tuple[int, int]]) -> np.ndarray:
        """Byte pointers of the occurrences in rank ranges `segs` of shard s (each range at most
        max_clause_freq / shards long: `_find_disj` subsampled it)."""
        sizes = np.array([b - a for a, b in segs], dtype=np.int64)
        if not len(sizes) or int(sizes.sum()) == 0:
            return np.zeros(0, dtype=np.int64)
        work.check()
        starts = np.array([a for a, _ in segs], dtype=np.int64)
        ranks = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()), dtype=np.int64)
        return self.index.shards[s].sa_tokens(ranks) * self.width

    def _no_separator(self, s: int, lo_p: np.ndarray, hi_p: np.ndarray) -> np.ndarray:
        """Per byte range [lo_p, hi_p) of shard s: does it hold no document separator? infini-
        gram searches the bytes; with every token below 0xFF << 8 (w - 1) (all but the separator)
        a run of w 0xFF bytes can only be a separator token, so counting the separators (one at
        each document's start, `offsets`) between the two token positions is the same answer."""
        shard, w = self.index.shards[s], self.width
        if w > 1 and self.index.manifest.vocab_size > (0xFF << (8 * (w - 1))):  # such tokens exist: the bytes
            ids = shard.ids
            return np.array([self.sep not in ids[a // w : b // w].tobytes() for a, b in
                             zip(lo_p.tolist(), hi_p.tolist(), strict=True)], dtype=bool)
        starts = shard.doc_token_starts
        first = np.searchsorted(starts, lo_p // w, side="left")
        last = np.searchsorted(starts, hi_p // w, side="left")  # separators at positions < hi // w
        return last == first

    def _cnf(self, cnf: list[list[list[int]]], max_clause_freq: int, max_diff_tokens: int
             ) -> tuple[int, bool, list[list[int]]]:
        """infini-gram's CNF search per shard, over arrays: the rarest clause's occurrences, each
        widened to the nearest occurrence of every further clause within max_diff_tokens (left
        or right, as its engine does: the pair when both are near, else the one that is), then
        the ranges that cross a document separator dropped."""
        rng = np.random.default_rng(CNF_SEED)
        clauses = [self._find_disj(c, max_clause_freq, rng) for c in cnf]
        if any(c[0] == 0 for c in clauses):
            return 0, False, []
        # every occurrence kept after subsampling is read (its pointer), then searched
        work.costs(work.SEARCH_READS * sum(b - a for c in clauses for segs in c[2] for a, b in segs))
        reach = max_diff_tokens * self.width
        total, approx, ptrs_by_shard = 0, False, []
        for s in range(len(self.index.shards)):
            order = sorted(clauses, key=lambda c: c[1][s])  # the rarest clause in this shard first
            first = order[0]
            lo_p = self._ptrs(s, first[2][s])
            hi_p = lo_p.copy()
            factor = first[3][s]
            for c in order[1:]:
                arr = np.sort(self._ptrs(s, c[2][s]))
                work.check()
                i = np.searchsorted(arr, hi_p, side="left") - 1  # the last match < hi_p
                j = np.searchsorted(arr, lo_p, side="left")  # the first match >= lo_p
                has_l = i >= 0
                has_r = j < len(arr)
                new_l = np.minimum(lo_p, arr[np.maximum(i, 0)]) if len(arr) else lo_p
                new_r = np.maximum(hi_p, arr[np.minimum(j, len(arr) - 1)]) if len(arr) else hi_p
                has_l &= ~(new_l + reach < lo_p)  # too far left
                has_r &= ~(new_r > hi_p + reach)  # too far right
                keep = has_l | has_r  # one range each: both sides, or the one near enough
                lo_p = np.where(has_l, new_l, lo_p)[keep]
                hi_p = np.where(has_r, new_r, hi_p)[keep]
                factor *= c[3][s]
            ok = self._no_separator(s, lo_p, hi_p) if len(lo_p) else np.zeros(0, dtype=bool)
            total += int(int(ok.sum()) * factor)
            approx = approx or factor != 1.0
            ptrs_by_shard.append(lo_p[ok].tolist())
        return total, approx, ptrs_by_shard

    def _cnf_args(self, cnf: Any, max_clause_freq: Any, max_diff_tokens: Any) -> dict[str, Any] | None:
        return (self._positive("max_clause_freq", max_clause_freq) or self._positive("max_diff_tokens", max_diff_tokens)
                or (None if self.check_cnf(cnf) else
                    {"error": f"cnf must be a non-empty, triply-nested list of integers in range [0, {self.token_id_max}]"}))

    def find_cnf(self, cnf: Any, max_clause_freq: Any = None, max_diff_tokens: Any = None) -> dict[str, Any]:
        mcf = DEFAULT_MAX_CLAUSE_FREQ if max_clause_freq is None else max_clause_freq
        mdt = DEFAULT_MAX_DIFF_TOKENS if max_diff_tokens is None else max_diff_tokens
        bad = self._cnf_args(cnf, mcf, mdt)
        if bad:
            return bad
        cnt, approx, ptrs = self._cnf(cnf, mcf, mdt)
        return {"cnt": cnt, "approx": approx, "ptrs_by_shard": ptrs}

    def count_cnf(self, cnf: Any, max_clause_freq: Any = None, max_diff_tokens: Any = None) -> dict[str, Any]:
        got = self.find_cnf(cnf, max_clause_freq, max_diff_tokens)
        return got if "error" in got else {"count": got["cnt"], "approx": got["approx"]}

    # -- probabilities ----------------------------------------------------------------------------
    def _prob(self, prompt: list[int], cont: int) -> dict[str, Any]:
        prompt_cnt = int(self.index.count(self._arr(prompt)))
        if prompt_cnt == 0:
            return {"prompt_cnt": 0, "cont_cnt": 0, "prob": -1.0}
        cont_cnt = int(self.index.count(self._arr([*prompt, cont])))
        return {"prompt_cnt": prompt_cnt, "cont_cnt": cont_cnt, "prob": cont_cnt / prompt_cnt}

    def _prob_args(self, prompt_ids: Any, cont_id: Any) -> dict[str, Any] | None:
        if not self.check_query_ids(prompt_ids, allow_empty=True):
            return {"error": f"prompt_ids must be a non-empty list of integers in range [0, {self.token_id_max}]"}
        if not (_is_int(cont_id) and 0 <= cont_id <= self.token_id_max):
            return {"error": f"cont_id must be an integer in range [0, {self.token_id_max}]"}
        return None

    def prob(self, prompt_ids: Any, cont_id: Any) -> dict[str, Any]:
        return self._prob_args(prompt_ids, cont_id) or self._prob(prompt_ids, cont_id)

    def _suffix_len(self, prompt: list[int]) -> int:
        """The longest suffix of the prompt that occurs (0 when none does)."""
        if not prompt:
            return 0
        return int(infgram_suffix_lengths(self.index, self._arr([*prompt, 0]))[-1])

    def infgram_prob(self, prompt_ids: Any, cont_id: Any) -> dict[str, Any]:
        bad = self._prob_args(prompt_ids, cont_id)
        if bad:
            return bad
        k = self._suffix_len(prompt_ids)
        return {**self._prob(prompt_ids[len(prompt_ids) - k :], cont_id), "suffix_len": k}

    def _bounded_ntd(self, prompt: np.ndarray, max_support: int) -> Any:
        """`ntd` in bounded work: infini-gram's sampling past max_support (about 4 reads a
        stride); an exact answer (tracetui's `exact`) in pieces, or, past the work budget,
        sampled at the stride that fits it, flagged `approx` as infini-gram flags its own."""
        if not len(prompt):
            return ntd(self.index, prompt, max_support)  # the unigram table, or a bounded sample
        ranges = self.index.find(prompt)
        unit = sample_unit(sum(b - a for a, b in ranges), max_support)
        return work.ntd(self.index, prompt, unit, work.MAX_WORK, resample=True, ranges=ranges)

    def _ntd(self, prompt: list[int], max_support: int) -> dict[str, Any]:
        d = self._bounded_ntd(self._arr(prompt), max_support)
        if d.prompt_cnt == 0:
            return {"prompt_cnt": 0, "result_by_token_id": {}, "approx": False}
        by_id: dict[int, dict[str, Any]] = {}
        for t, c in zip(d.ids.tolist(), d.counts.tolist(), strict=True):
            t = self.eos if t == DOC_END else t
            c = by_id.get(t, {"cont_cnt": 0})["cont_cnt"] + c
            by_id[t] = {"cont_cnt": c, "prob": c / d.prompt_cnt}
        return {"prompt_cnt": int(d.prompt_cnt), "result_by_token_id": dict(sorted(by_id.items())), "approx": bool(d.approx)}

    def _ntd_args(self, prompt_ids: Any, max_support: Any) -> dict[str, Any] | None:
        return self._positive("max_support", max_support) or (
            None if self.check_query_ids(prompt_ids, allow_empty=True) else self._ids_error("prompt_ids"))

    def ntd(self, prompt_ids: Any, max_support: Any = None) -> dict[str, Any]:
        ms = self.max_support if max_support is None else max_support
        return self._ntd_args(prompt_ids, ms) or self._ntd(prompt_ids, ms)

    def infgram_ntd(self, prompt_ids: Any, max_support: Any = None) -> dict[str, Any]:
        ms = self.max_support if max_support is None else max_support
        bad = self._ntd_args(prompt_ids, ms)
        if bad:
            return bad
        k = self._suffix_len(prompt_ids)
        return {**self._ntd(prompt_ids[len(prompt_ids) - k :], ms), "suffix_len": k}

    # -- documents ----------------------------------------------------------------------------------
    def _doc_by_ptr(self, s: int, ptr: int, max_disp_len: int) -> dict[str, Any]:
        """The document around byte `ptr` of shard s, `max_disp_len` tokens of it shown (half
        before the pointer); unsigned arithmetic as the engine's (a pointer at a separator has
        its `needle_offset` wrap around)."""
        shard, w = self.index.shards[s], self.width
        offsets = shard.offsets
        doc = int(np.searchsorted(offsets, ptr, side="right")) - 1
        doc_ix = int(sum(x.n_docs for x in self.index.shards[:s])) + doc
        start = int(offsets[doc]) + w
        end = int(offsets[doc + 1]) if doc + 1 < shard.n_docs else shard.tokenized_bytes
        before, after = max_disp_len // 2, (max_disp_len + 1) // 2
        disp_start = max(start, 0 if ptr < w * before else ptr - w * before)
        disp_end = min(end, ptr + w * after)
        meta = ""
        if shard.metadata is not None and shard.metaoff is not None:
            a = int(shard.metaoff[doc])
            b = int(shard.metaoff[doc + 1]) if doc + 1 < shard.n_docs else len(shard.metadata)
            meta = bytes(shard.metadata[a:b]).decode("utf-8", errors="replace")
        tokens = shard.token_ids(disp_start // w, disp_end // w).tolist() if disp_end > disp_start else []
        return {"doc_ix": doc_ix, "doc_len": (end - start) // w, "disp_len": max(0, disp_end - disp_start) // w,
                "needle_offset": ((ptr - disp_start) % (1 << 64)) // w, "metadata": meta, "token_ids": tokens,
                "blocked": False}

    def _doc_args(self, s: Any, max_disp_len: Any) -> tuple[Any, dict[str, Any] | None]:
        """The display length asked for (or the default) and the error of a bad one or of a bad
        shard number, as infini-gram checks them first."""
        mdl = DEFAULT_MAX_DISP_LEN if max_disp_len is None else max_disp_len
        bad = self._positive("max_disp_len", mdl)
        if bad:
            return mdl, bad
        n = len(self.index.shards)
        if not (_is_int(s) and 0 <= s < n):
            return mdl, {"error": f"s must be an integer in range [0, {n})"}
        return mdl, None

    def get_doc_by_rank(self, s: Any, rank: Any, max_disp_len: Any = None) -> dict[str, Any]:
        mdl, bad = self._doc_args(s, max_disp_len)
        if bad:
            return bad
        tok_cnt = self.index.shards[s].n_tokens
        if not (_is_int(rank) and 0 <= rank < tok_cnt):
            return {"error": f"rank must be an integer in range [0, {tok_cnt})"}
        ptr = int(self.index.shards[s].sa_tokens(np.array([rank], dtype=np.int64))[0]) * self.width
        return self._doc_by_ptr(s, ptr, mdl)

    def get_doc_by_ptr(self, s: Any, ptr: Any, max_disp_len: Any = None) -> dict[str, Any]:
        mdl, bad = self._doc_args(s, max_disp_len)
        if bad:
            return bad
        size = self.index.shards[s].tokenized_bytes
        if not (_is_int(ptr) and 0 <= ptr < size and ptr % self.width == 0):
            return {"error": f"ptr must be an integer in range [0, {size}) and a multiple of {self.width}"}
        return self._doc_by_ptr(s, ptr, mdl)

    def _docs_args(self, maxnum: Any, max_disp_len: Any) -> tuple[int, int, dict[str, Any] | None]:
        mn = DEFAULT_MAXNUM if maxnum is None else maxnum
        mdl = DEFAULT_MAX_DISP_LEN if max_disp_len is None else max_disp_len
        return mn, mdl, self._positive("maxnum", mn) or self._positive("max_disp_len", mdl)

    def search_docs(self, input_ids: Any, maxnum: Any = None, max_disp_len: Any = None) -> dict[str, Any]:
        mn, mdl, bad = self._docs_args(maxnum, max_disp_len)
        if bad:
            return bad
        if not self.check_query_ids(input_ids, allow_empty=True):
            return self._ids_error()
        segs = self.index.find(self._arr(input_ids))
        sizes = np.array([b - a for a, b in segs], dtype=np.int64)
        cnt = int(sizes.sum())
        if cnt == 0:
            return {"cnt": 0, "approx": False, "idxs": [], "documents": []}
        rng = np.random.default_rng()
        idxs, docs = [], []
        for _ in range(mn):  # with replacement, as the engine draws them
            s = int(rng.choice(len(segs), p=sizes / cnt))
            rank = int(rng.integers(segs[s][0], segs[s][1]))
            idxs.append(int(sizes[:s].sum()) + rank - segs[s][0])
            ptr = int(self.index.shards[s].sa_tokens(np.array([rank], dtype=np.int64))[0]) * self.width
            docs.append(self._doc_by_ptr(s, ptr, mdl))
        return {"cnt": cnt, "approx": False, "idxs": idxs, "documents": docs}

    def search_docs_cnf(self, cnf: Any, maxnum: Any = None, max_disp_len: Any = None, max_clause_freq: Any = None,
                        max_diff_tokens: Any = None) -> dict[str, Any]:
        mn, mdl, bad = self._docs_args(maxnum, max_disp_len)
        mcf = DEFAULT_MAX_CLAUSE_FREQ if max_clause_freq is None else max_clause_freq
        mdt = DEFAULT_MAX_DIFF_TOKENS if max_diff_tokens is None else max_diff_tokens
        bad = bad or self._cnf_args(cnf, mcf, mdt)
        if bad:
            return bad
        cnt, approx, ptrs = self._cnf(cnf, mcf, mdt)
        if cnt == 0:
            return {"cnt": 0, "approx": False, "idxs": [], "documents": []}
        sizes = np.array([len(p) for p in ptrs], dtype=np.int64)
        n = int(sizes.sum())
        rng = np.random.default_rng()
        idxs, docs = [], []
        for _ in range(mn):
            s = int(rng.choice(len(ptrs), p=sizes / n))
            i = int(rng.integers(0, len(ptrs[s])))
            idxs.append(int((int(sizes[:s].sum()) + i) / n * cnt))
            docs.append(self._doc_by_ptr(s, ptrs[s][i], mdl))
        return {"cnt": cnt, "approx": approx, "idxs": idxs, "documents": docs}


def _replace(haystack: list[int], needle: list[Any], label: str) -> list[tuple[list[int], str | None]]:
    """`haystack` cut into pieces, every (leftmost, non-overlapping) occurrence of `needle`
    labelled: the marking of infini-gram's document `spans`. The matches are found at once (a
    sliding window over the document's tokens); an empty needle marks nothing (infini-gram's
    loop would never end on one)."""
    n = len(needle)
    if n == 0 or n > len(haystack):
        return [(haystack, None)] if haystack else []
    win = np.lib.stride_tricks.sliding_window_view(np.asarray(haystack, dtype=np.int64), n)
    hits = np.flatnonzero((win == np.asarray(needle, dtype=np.int64)).all(axis=1))
    out: list[tuple[list[int], str | None]] = []
    pos = 0
    for p in hits.tolist():  # the matches only, leftmost first
        if p < pos:
            continue
        if p > pos:
            out.append((haystack[pos:p], None))
        out.append((haystack[p : p + n], label))
        pos = p + n
    if pos < len(haystack):
        out.append((haystack[pos:], None))
    return out


class Processor:
    """infini-gram's `Processor` for one index: parameter checks against the server's limits,
    the engine's answer, and what the server adds (tokens, spans, messages)."""

    def __init__(self, index: Index, extras: bool = True, default_max_support: int = DEFAULT_MAX_SUPPORT,
                 span_finder: Callable[..., list[Any]] | None = None) -> None:
        """`span_finder`: OLMoTrace's span finding for the `attribute` addition (the tracing
        pipeline's `find_spans`, handed in by the HTTP application: index_tools knows no
        tracing); without it `attribute` answers an error."""
        self.index = index
        self.span_finder = span_finder
        self.vocab = Vocabulary(index)
        self.engine = Engine(index, default_max_support)
        self.extras = extras  # tracetui's additions (whole_words, exact, attribute)

    def tokenize(self, query: str) -> list[int]:
        return self.vocab.tokenize(query)

    def process(self, query_type: str, query: Any, query_ids: Any, **kwargs: Any) -> dict[str, Any]:
        if query is not None:
            if not isinstance(query, str):
                return {"error": "query must be a string!"}
            if len(query) > MAX_QUERY_CHARS:
                return {"error": f"Please limit your input to <= {MAX_QUERY_CHARS} characters!"}
            if " AND " not in query and " OR " not in query:
                query_ids = self.tokenize(query)
            else:
                query_ids = [[self.tokenize(t) for t in clause.split(" OR ")] for clause in query.split(" AND ")]
        vocab = self.vocab.vocab_size

        def bad_id(i: int) -> bool:
            return i < 0 or (i >= vocab and i != 65535)

        if isinstance(query_ids, list) and all(_is_int(i) for i in query_ids):
            if len(query_ids) > MAX_QUERY_TOKENS:
                return {"error": f"Please limit your input to <= {MAX_QUERY_TOKENS} tokens!"}
            if any(bad_id(i) for i in query_ids):
                return {"error": "Some item(s) in your query_ids are out-of-range!"}
            tokens: Any = self.vocab.convert_ids_to_tokens(query_ids)
            is_cnf = False
        elif isinstance(query_ids, list) and all(
                isinstance(c, list) and all(isinstance(t, list) and all(_is_int(i) for i in t) for t in c)
                for c in query_ids):
            if sum(sum(len(t) for t in c) for c in query_ids) > MAX_QUERY_TOKENS:
                return {"error": f"Please limit your input to <= {MAX_QUERY_TOKENS} tokens!"}
            if len(query_ids) > MAX_CLAUSES_PER_CNF:
                return {"error": f"Please enter at most {MAX_CLAUSES_PER_CNF} disjunctive clauses!"}
            for c in query_ids:
                if len(c) > MAX_TERMS_PER_CLAUSE:
                    return {"error": f"Please enter at most {MAX_TERMS_PER_CLAUSE} terms in each disjunctive clause!"}
                if any(bad_id(i) for t in c for i in t):
                    return {"error": "Some item(s) in your query_ids are out-of-range!"}
            tokens = [[self.vocab.convert_ids_to_tokens(t) for t in c] for c in query_ids]
            is_cnf = True
        else:
            return {"error": "query_ids must be a list of integers, or a triply-nested list of integers!"}
        t0 = time.perf_counter()
        name = f"{query_type}_cnf" if is_cnf and query_type in ("count", "search_docs") else query_type
        method = getattr(self, name, None) if name in PROCESSED or (self.extras and name == "attribute") else None
        if method is None:
            raise AttributeError(f"'Processor' object has no attribute '{name}'")
        result = method(query_ids, **kwargs)
        result["latency"] = (time.perf_counter() - t0) * 1000
        result["token_ids"] = query_ids
        result["tokens"] = tokens
        return result

    # -- parameter checks of the server ------------------------------------------------------------
    @staticmethod
    def _in(name: str, v: Any, hi: int) -> dict[str, Any] | None:
        if v is not None and not (_is_int(v) and 0 < v <= hi):
            return {"error": f"{name} must be an integer in [1, {hi}]!"}
        return None

    def _unexpected(self, method: str, kwargs: dict[str, Any]) -> None:
        if kwargs:
            raise TypeError(f"Processor.{method}() got an unexpected keyword argument '{next(iter(kwargs))}'")

    def count(self, query_ids: Any, **extra: Any) -> dict[str, Any]:
        whole = extra.pop("whole_words", None) if self.extras else None
        self._unexpected("count", extra)
        if whole and isinstance(query_ids, list) and query_ids:
            got = self.engine.count(query_ids)
            if "error" not in got:  # exact within the work budget, else sampled (`approx`)
                got["count"], exact = work.sampled_word_count(self.index, np.asarray(query_ids, dtype=np.int64))
                got["approx"] = not exact
            return got
        return self.engine.count(query_ids)

    def count_cnf(self, query_ids: Any, max_clause_freq: Any = None, max_diff_tokens: Any = None) -> dict[str, Any]:
        return self._in("max_clause_freq", max_clause_freq, MAX_CLAUSE_FREQ) or \
            self._in("max_diff_tokens", max_diff_tokens, MAX_DIFF_TOKENS) or \
            self.engine.count_cnf(query_ids, max_clause_freq, max_diff_tokens)

    def prob(self, query_ids: Any) -> dict[str, Any]:
        if len(query_ids) == 0:
            return {"error": "Please provide a non-empty query!"}
        return self.engine.prob(query_ids[:-1], query_ids[-1])

    def _named(self, result: dict[str, Any]) -> dict[str, Any]:
        if "result_by_token_id" in result:  # Flask writes the int keys as strings
            named = {}
            for t, r in result["result_by_token_id"].items():
                name = self.vocab.convert_ids_to_tokens([t])[0]
                r["token"] = name.replace("Ġ", " ") if name is not None else None
                named[str(t)] = r
            result["result_by_token_id"] = named
        return result

    def _exact(self, extra: dict[str, Any], method: str, max_support: Any) -> Any:
        exact = extra.pop("exact", None) if self.extras else None
        self._unexpected(method, extra)
        return 10**18 if exact else max_support

    def ntd(self, query_ids: Any, max_support: Any = None, **extra: Any) -> dict[str, Any]:
        bad = self._in("max_support", max_support, MAX_SUPPORT)
        ms = self._exact(extra, "ntd", max_support)
        return bad or self._named(self.engine.ntd(query_ids, ms))

    def infgram_prob(self, query_ids: Any) -> dict[str, Any]:
        if len(query_ids) == 0:
            return {"error": "Please provide a non-empty query!"}
        result = self.engine.infgram_prob(query_ids[:-1], query_ids[-1])
        if "suffix_len" in result:
            k = result["suffix_len"]
            result["longest_suffix"] = self.vocab.decode(query_ids[-k - 1 : -1])
        return result

    def infgram_ntd(self, query_ids: Any, max_support: Any = None, **extra: Any) -> dict[str, Any]:
        bad = self._in("max_support", max_support, MAX_SUPPORT)
        ms = self._exact(extra, "infgram_ntd", max_support)
        if bad:
            return bad
        result = self._named(self.engine.infgram_ntd(query_ids, ms))
        if "suffix_len" in result:
            # as the server slices it: with suffix_len 0, [-0:] is the whole prompt
            result["longest_suffix"] = self.vocab.decode(query_ids[-result["suffix_len"] :])
        return result

    def _spans(self, token_ids: list[int], cnf: list[Any]) -> list[list[Any]]:
        spans: list[tuple[list[int], str | None]] = [(token_ids, None)]
        for d, clause in enumerate(cnf):
            for needle in clause:
                new: list[tuple[list[int], str | None]] = []
                for piece in spans:
                    new += [piece] if piece[1] is not None else _replace(piece[0], needle, f"{d}")
                spans = new
        return [[self.vocab.decode(t), d] for t, d in spans]

    def _message(self, result: dict[str, Any]) -> None:
        if result["cnt"] == 0:
            result["message"] = "0 occurrences found"
        else:
            approx = "Approximately " if result["approx"] else ""
            result["message"] = (f"{approx}{result['cnt']} occurrences found. Displaying the documents of "
                                 f"occurrences #{result['idxs']}")

    def search_docs(self, query_ids: Any, maxnum: Any = None, max_disp_len: Any = None) -> dict[str, Any]:
        bad = self._in("maxnum", maxnum, MAXNUM) or self._in("max_disp_len", max_disp_len, MAX_DISP_LEN)
        if bad:
            return bad
        result = self.engine.search_docs(query_ids, maxnum, max_disp_len)
        if "error" in result:
            return result
        self._message(result)
        for doc in result["documents"]:
            doc["spans"] = self._spans(doc["token_ids"], [[query_ids]] if len(query_ids) else [])
        return result

    def search_docs_cnf(self, query_ids: Any, maxnum: Any = None, max_disp_len: Any = None,
                        max_clause_freq: Any = None, max_diff_tokens: Any = None) -> dict[str, Any]:
        bad = self._in("maxnum", maxnum, MAXNUM) or self._in("max_disp_len", max_disp_len, MAX_DISP_LEN) or \
            self._in("max_clause_freq", max_clause_freq, MAX_CLAUSE_FREQ) or \
            self._in("max_diff_tokens", max_diff_tokens, MAX_DIFF_TOKENS)
        if bad:
            return bad
        result = self.engine.search_docs_cnf(query_ids, maxnum, max_disp_len, max_clause_freq, max_diff_tokens)
        if "error" in result:
            return result
        self._message(result)
        for doc in result["documents"]:
            doc["spans"] = self._spans(doc["token_ids"], query_ids)
        return result

    def find(self, query_ids: Any) -> dict[str, Any]:
        return self.engine.find(query_ids)

    def find_cnf(self, query_ids: Any, max_clause_freq: Any = None, max_diff_tokens: Any = None) -> dict[str, Any]:
        return self._in("max_clause_freq", max_clause_freq, MAX_CLAUSE_FREQ) or \
            self._in("max_diff_tokens", max_diff_tokens, MAX_DIFF_TOKENS) or \
            self.engine.find_cnf(query_ids, max_clause_freq, max_diff_tokens)

    def get_doc_by_rank(self, query_ids: Any, s: Any, rank: Any, max_disp_len: Any = None) -> dict[str, Any]:
        bad = self._in("max_disp_len", max_disp_len, MAX_DISP_LEN)
        if bad:
            return bad
        result = self.engine.get_doc_by_rank(s, rank, max_disp_len)
        if "error" not in result:
            result["spans"] = self._spans(result["token_ids"], [[query_ids]] if len(query_ids) else [])
        return result

    def get_doc_by_ptr(self, query_ids: Any, s: Any, ptr: Any, max_disp_len: Any = None) -> dict[str, Any]:
        bad = self._in("max_disp_len", max_disp_len, MAX_DISP_LEN)
        if bad:
            return bad
        result = self.engine.get_doc_by_ptr(s, ptr, max_disp_len)
        if "error" not in result:
            result["spans"] = self._spans(result["token_ids"], query_ids)  # a simple query: 500, as there
        return result

    # -- tracetui's addition -----------------------------------------------------------------------
    def attribute(self, query_ids: Any, delimiters: Any = (".", "\n"), min_len: Any = 1, max_cnt: Any = 1_000_000,
                  whole_words: Any = True) -> dict[str, Any]:
        """OLMoTrace's span finding (steps 1-6) on the query, our whole-word rule by default."""
        if self.span_finder is None:
            return {"error": "attribute: span finding is not served here"}
        if not isinstance(delimiters, (list, tuple)) or not all(isinstance(d, str) for d in delimiters):
            return {"error": "delimiters: expected a list of strings"}
        if not (_is_int(min_len) and min_len >= 0) or not (_is_int(max_cnt) and max_cnt > 0):
            return {"error": "min_len must be a non-negative integer and max_cnt a positive integer"}
        if not (isinstance(query_ids, list) and all(_is_int(i) for i in query_ids)):
            return {"error": "attribute: expected a simple query"}
        spans = self.span_finder(cast(Any, _Bounded(self.index)), np.asarray(query_ids, dtype=np.int64),
                           delimiters=tuple(delimiters),
                           min_len=min_len, max_cnt=max_cnt, whole_words=bool(whole_words))
        return {"spans": [{"l": s.l, "r": s.r, "length": s.r - s.l, "count": s.count,
                           "unigram_logprob_sum": s.logprob} for s in spans]}


class _Bounded:
    """An index whose counting calls go through `serve_work` (bounded pieces, deadline checks):
    what `attribute`'s span finding is given. Everything else is the index's own."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)

    def find_ranges(self, seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return work.find_ranges(self._index, seqs)

    def word_counts(self, lo: np.ndarray, hi: np.ndarray, m: np.ndarray, cap: int | None = None) -> np.ndarray:
        return work.word_counts(self._index, lo, hi, m, cap)

    def longest_prefixes_witnessed(self, ids: np.ndarray, positions: np.ndarray | None = None,
                                   stops: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        work.check()
        return self._index.longest_prefixes_witnessed(ids, positions, stops)


def answer(processors: dict[str, Processor], data: Any, api_only: bool = False) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) of one `POST /` body, as infini-gram's route answers it."""
    if not isinstance(data, dict):
        return 400, {"error": "[Flask] The request body must be a JSON object!"}
    data = dict(data)
    if "query_type" not in data:
        return 400, {"error": "[Flask] Missing required field: 'query_type'"}
    query_type = data["query_type"]
    if "corpus" in data:
        index = data["corpus"]
    elif "index" in data:
        index = data["index"]
    elif not api_only and len(processors) == 1:  # tracetui's addition: the one index served
        index = next(iter(processors))
    else:
        return 400, {"error": "[Flask] Missing required field: 'index'"}
    for key in DROPPED:
        data.pop(key, None)
    if ("query" in data) == ("query_ids" in data):
        return 400, {"error": "[Flask] Exactly one of query and query_ids must be present!"}
    query, query_ids = data.pop("query", None), data.pop("query_ids", None)
    proc = processors.get(index) if isinstance(index, str) else None
    if proc is None:
        return 400, {"error": f"[Flask] Invalid index: {index}"}
    known = PROCESSED + ENGINE_ONLY
    if not isinstance(query_type, str) or query_type not in known:
        return 400, {"error": f"[Flask] Invalid query_type: {query_type}"}
    try:
        return 200, proc.process(query_type, query, query_ids, **data)
    except (work.Deadline, work.TooCostly, work.Busy):
        raise  # the server's own answers (504, 413), not a fault of the query
    except Exception as exc:  # what the server answers for any fault inside a query
        return 500, {"error": f"[Flask] Internal server error: {exc}"}


__all__ = ["Processor", "Engine", "Vocabulary", "answer", "MAX_QUERY_TOKENS", "MAX_QUERY_CHARS"]
