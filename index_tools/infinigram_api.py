"""Any infini-gram API server as an index: `InfiniGramAPIIndex`.

`open_index("http(s)://HOST[:PORT]/NAME")` opens one when the server answers as infini-gram's API
server does (`POST /` with `index`, `query_type`; `GET /` a list of names), not as a tracetui
server (`GET /indexes`): infini-gram's public API (`https://api.infini-gram.io/NAME`, e.g.
`v4_olmo-mix-1124_llama`) or `tracetui serve --infinigram-api-only`. It has the index-level
interface the tracer, span finding, `count`, `search`, `ntd`, `infgram` and `overlap` use, built
from the API's primitives only:

- tokens: with the index's tokenizer given (`--tokenizer PATH`, or TRACETUI_TOKENIZER), locally,
  checked against the server's `tokens` on open; without one, by the server (`ServerVocabulary`:
  `count` of a `query` answers `token_ids` and `tokens`; token bytes from the names the server
  gives, learnt as tokens are seen; the whole vocabulary's names, 500 a request, only when the
  left-edge rule asks which tokens a word may follow);
- longest matches: `infgram_prob` reports the longest suffix of a prompt that occurs, i.e. the
  longest match *ending* at a position, one request per position (at most 500 tokens each:
  matches are seen up to MAX_MATCH tokens). When a prompt's continuation occurs too (its
  `cont_cnt` > 0), the next position's answer is that suffix plus one, without a request;
- counts and suffix-array ranges: `find` (`segment_by_shard`), one request per sequence;
- whole words (the rule of `index_tools.words`, both edges): an edge that the sequence's own
  first or last character settles costs nothing. "Is there one whole-word occurrence?" (what
  the span finder asks of most candidates) is answered by one `ntd` when a token it reports
  after the sequence closes a word (`_at_least`). An exact count with an open right edge: `ntd`,
  exact up to its max_support, else `find` of sequence + token for each token seen after it
  (their occurrences are contiguous sub-ranges). An open left edge: where few tokens can end a
  word (word-level vocabularies: `_breakers`), the occurrences of (breaker, sequence) and
  (document separator, sequence), exactly; otherwise the token before each occurrence, which
  the API only shows inside a document: `get_doc_by_rank` with a 2-token window, one request
  per occurrence, for at most LEFT_BUDGET occurrences; beyond, that many are sampled and the
  count is an estimate. Estimated counts (and `ntd` answers sampled by the server past its
  max_support of 1000) are recorded in `approximate` (sequence bytes), so a caller can flag
  them;
- documents: `get_doc_by_rank` around an occurrence (the document's text from its `spans`,
  re-tokenized locally; the match is the marked span), at most MAX_DISP_LEN tokens of it.

Etiquette: at most `concurrency` requests at once (default 4), each answer cached (content-keyed,
bounded), timeouts, connection errors and 5xx other than a query's own 500 retried with
exponential backoff, and no request over the server's limits (500 tokens, 1000 characters).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from .engine import DocumentIds, Hit, Occurrence, RangeCounts, Window, rank_chunks
from .errors import RemoteIndexError
from .format import Manifest, ShardInfo, width_for_vocab
from .ngram import DOC_END, NextTokens
from .remote import (
    _HTTP,
    MALFORMED,
    TransportError,
    _Location,
    _one_line,
    check_answers,
    malformed,
    parse_json,
)
from .tokenizer import Tokenizer, _byte_level_decoder, _token_bytes, load_tokenizer
from .words import BEGINS, UNSURE, WordBoundaries, classify_bytes, is_word_char

TOKENIZER_ENV = "TRACETUI_TOKENIZER"  # the index's tokenizer.json when it is not given otherwise
MAX_QUERY_TOKENS = 500  # infini-gram's server: tokens per query
MAX_MATCH = MAX_QUERY_TOKENS - 1  # a prompt and its continuation in one query
MAX_DISP_LEN = 10_000
MAX_SUPPORT = 1000
LEFT_BUDGET = 64  # occurrences whose left edge is looked at, per sequence
MAX_BREAKERS = 16  # tokens after which a word may start, asked one by one (`_breakers`)
SEPARATOR = 65535  # the u16 document separator: before every document, a query id the API takes
CONCURRENCY = 4
TIMEOUT = 60.0
RETRIES = 4
CACHE = 200_000  # answers kept


class _Cache:
    """A bounded, thread-safe LRU of answers."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            while len(self._data) > self.cap:
                self._data.popitem(last=False)


class APIClient:
    """`POST /` of one infini-gram API server: an httpx pool of `concurrency` connections
    (`remote._HTTP`), at most `concurrency` requests at once, retries with backoff, answers
    cached."""

    def __init__(self, url: str, concurrency: int = CONCURRENCY, timeout: float = TIMEOUT, retries: int = RETRIES,
                 backoff: float = 0.5) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteIndexError(f"{url}: not an http(s) URL")
        try:
            parts.port  # noqa: B018 (a bad port raises here)
        except ValueError:
            raise RemoteIndexError(f"{url}: bad port") from None
        segs = [s for s in parts.path.split("/") if s]
        self.name = unquote(segs[-1]) if segs else ""
        self.root = "/" + "/".join(segs[:-1]) + ("/" if segs[:-1] else "")
        self.url = f"{parts.scheme}://{parts.netloc}{self.root}"
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.concurrency = max(1, concurrency)
        self.pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="infinigram-api")
        self._gate = threading.BoundedSemaphore(max(1, concurrency))
        self._http = _HTTP(f"{parts.scheme}://{parts.netloc}", timeout, self.concurrency)
        self.cache = _Cache(CACHE)
        self.requests = 0  # round trips made
        self._auth: str | None = None  # sent once the server asked for a bearer token
        self.by_type: dict[str, int] = {}  # queries sent (not cached), per query type
        self._count_lock = threading.Lock()

    def raw(self, method: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """(status, parsed JSON or None) of one request, retried on timeouts, lost connections
        and 5xx answers that are not a query's own error."""
        delay = self.backoff
        attempt = -1
        while attempt < self.retries:
            attempt += 1
            headers = {"Authorization": self._auth} if self._auth is not None else {}
            with self._gate:
                with self._count_lock:
                    self.requests += 1
                try:
                    status, raw, asks = self._http.request(method, self.root, body, headers)
                except TransportError as exc:
                    if attempt == self.retries:
                        raise RemoteIndexError(str(exc).replace("index server", "infini-gram API server", 1)) from None
                    time.sleep(delay)
                    delay *= 2
                    continue
            token = os.environ.get("TRACETUI_TOKEN")
            if status == 401 and asks and token and self._auth is None:
                # the bearer token goes only to a server that asks for one (as RemoteIndex)
                self._auth = f"Bearer {token}"
                attempt -= 1  # not a failure: the same request again, with the token
                continue
            try:
                answer = parse_json(self.url, raw, status)
            except RemoteIndexError:
                answer = None
            own_error = isinstance(answer, dict) and str(answer.get("error", "")).startswith("[Flask] Internal")
            if status >= 500 and not own_error and attempt < self.retries:
                time.sleep(delay)
                delay *= 2
                continue
            return status, answer
        raise RemoteIndexError(f"{self.url}: no answer after {self.retries + 1} attempts")

    def query(self, query_type: str, **params: Any) -> dict[str, Any]:
        """One query's answer (cached); RemoteIndexError, one line, for any error."""
        body = {"index": self.name, "query_type": query_type, **params}
        key = json.dumps(body, sort_keys=True, separators=(",", ":"))
        got = self.cache.get(key)
        if got is not None:
            return got
        with self._count_lock:
            self.by_type[query_type] = self.by_type.get(query_type, 0) + 1
        status, answer = self.raw("POST", body)
        if not isinstance(answer, dict):
            raise RemoteIndexError(f"{self.url}: HTTP {status}, not a JSON object (not an infini-gram API server?)")
        if status != 200 or "error" in answer:
            raise RemoteIndexError(f"{self.url}: {query_type}: HTTP {status}: {_one_line(Exception(answer.get('error')))}")
        self.cache.put(key, answer)
        return answer

    def map(self, fn: Any, items: list[Any]) -> list[Any]:
        """fn over items, at most `concurrency` at once (the gate bounds the requests)."""
        if len(items) <= 1 or threading.current_thread().name.startswith("infinigram-api"):
            return [fn(x) for x in items]  # inside a worker: serially (a nested map would deadlock)
        return list(self.pool.map(fn, items))

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self._http.close()


def speaks_infinigram(url: str, timeout: float = 10.0) -> list[str] | None:
    """The index names of the server of `url` if it answers as infini-gram's API server does
    (`GET /`: a JSON list of names; or, where `GET /` is not served, a `count` of the URL's NAME
    answered with `count` and `token_ids`: then [NAME]); None when it does not."""
    try:
        client = APIClient(url, concurrency=1, timeout=timeout, retries=0)
    except RemoteIndexError:
        return None
    try:
        status, names = client.raw("GET")
        if status == 200 and isinstance(names, list) and all(isinstance(n, str) for n in names):
            return names
        if not client.name:
            return None
        status, answer = client.raw("POST", {"index": client.name, "query_type": "count", "query_ids": []})
        ok = status == 200 and isinstance(answer, dict) and "count" in answer and "token_ids" in answer
        return [client.name] if ok else None
    except RemoteIndexError:
        return None
    finally:
        client.close()


SERVER_TOKENIZER = "server"  # the manifest's tokenizer name when the server tokenizes


class ServerVocabulary(Tokenizer):
    """The index's tokenizer without its file: text is tokenized by the server (`count` of a
    `query` answers its `token_ids` and `tokens`), and a token's bytes come from its vocabulary
    string as the server names it (`tokens`, ntd's `token`), learnt as tokens are seen and
    kept; the word-boundary tables hold every token seen so far (unseen ones read as empty,
    which no trace consults: the tables are asked only about tokens of the reply, of what the
    server reported, and -- `_breakers` -- of the whole vocabulary, which this never claims to
    know).

    The server's conventions are infini-gram's: a byte-level vocabulary's query gets a space
    prepended (then a text that does not begin with one is sent after a newline, whose tokens
    are dropped again), SentencePiece's lone leading piece is dropped, 1000 characters and 500
    tokens a query at most (longer texts are sent in pieces cut before a space)."""

    def __init__(self, client: APIClient, vocab_size: int, width: int) -> None:
        self.client = client
        self.name = SERVER_TOKENIZER
        self.vocab_size = vocab_size
        self._to_byte = _byte_level_decoder()
        self._bytes: list[bytes] = [b""] * vocab_size
        self._known = np.zeros(vocab_size, dtype=bool)
        self._names: dict[int, bytes] = {}  # a token's name, where a text writes names (word-level)
        self._words = WordBoundaries(np.full(vocab_size, BEGINS, dtype=np.int8), self._bytes)
        self._lock = threading.Lock()
        self.chunk = 120 if width == 1 else 900  # characters per query (500 tokens, 1000 characters)
        if width == 1:
            self.family, self.prepends = "bytes", False
            return
        # the vocabulary's convention from the names of ids spread over it (one request)
        sample = np.unique(np.linspace(0, vocab_size - 1, min(vocab_size, MAX_QUERY_TOKENS)).astype(np.int64)).tolist()
        got = client.query("count", query_ids=sample).get("tokens")
        names = [n for n in got if isinstance(n, str)] if isinstance(got, list) else []
        self.family = "byte-level" if any("Ġ" in n or "Ċ" in n for n in names) else \
            "sentencepiece" if any("▁" in n for n in names) else "plain"
        self.learn(sample, got)
        probe = client.query("count", query="a b")
        self.learn([int(i) for i in probe["token_ids"]], probe.get("tokens"))
        self.prepends = self.family == "byte-level" and self._join([int(i) for i in probe["token_ids"]]) == b" a b"

    def _bytes_of_name(self, tid: int, name: str) -> bytes:
        if self.family == "bytes":
            return bytes([tid]) if 0 <= tid < 256 else b""
        if self.family == "plain":
            return name.encode("utf-8")
        return _token_bytes(name, self.family, self._to_byte)

    def learn(self, ids: list[int], names: Any) -> None:
        """Record the vocabulary strings of ids (from an answer's `tokens`) and their rows of
        the word-boundary tables."""
        if not isinstance(names, list) or len(names) != len(ids):
            return
        new = [(i, n) for i, n in zip(ids, names, strict=True)
               if isinstance(i, int) and 0 <= i < self.vocab_size and isinstance(n, str) and not self._known[i]]
        if not new:
            return
        idx = np.array([i for i, _ in new], dtype=np.int64)
        data = [self._bytes_of_name(i, n) for i, n in new]
        part = WordBoundaries(np.array([classify_bytes(b) for b in data], dtype=np.int8), data)
        with self._lock:
            w = self._words
            for k in ("classes", "tail_class", "head_inside"):
                getattr(w, k)[idx] = getattr(part, k)
            for k in ("head", "head_len", "tail_rev"):
                getattr(w, k)[idx] = getattr(part, k)[:-1]
            for (i, n), b in zip(new, data, strict=True):
                self._bytes[i] = b
                self._names[i] = n.encode("utf-8")
            self._known[idx] = True

    def ensure(self, ids: Any) -> None:
        """Learn the names of the ids not seen yet: `count` of up to 500 of them at once."""
        arr = np.unique(np.asarray(ids, dtype=np.int64))
        arr = arr[(arr >= 0) & (arr < self.vocab_size)]
        todo = arr[~self._known[arr]].tolist()
        for a in range(0, len(todo), MAX_QUERY_TOKENS):
            part = todo[a : a + MAX_QUERY_TOKENS]
            self.learn(part, self.client.query("count", query_ids=part).get("tokens"))

    def _join(self, ids: list[int]) -> bytes:
        return b"".join(self._bytes[i] if 0 <= i < self.vocab_size else b"" for i in ids)

    def _pieces_of(self, text: str) -> list[str]:
        """The text cut into queries of at most `chunk` characters, each cut just before a space
        that follows a non-space (where pre-tokenizers split anyway)."""
        out: list[str] = []
        while len(text) > self.chunk:
            cut = max((k for k in range(self.chunk // 2, self.chunk) if text[k] == " " and not text[k - 1].isspace()),
                      default=self.chunk)
            out.append(text[:cut])
            text = text[cut:]
        return [*out, text] if text else out

    def _encode_piece(self, piece: str) -> list[int]:
        def ask(q: str) -> list[int]:
            d = self.client.query("count", query=q)
            ids = [int(i) for i in d["token_ids"]]
            self.learn(ids, d.get("tokens"))
            return ids

        if not self.prepends:
            return ask(piece)
        if piece.startswith(" ") and len(piece) > 1:
            return ask(piece[1:])  # the server puts the space back
        # a piece that does not begin with a space: after a newline, whose tokens are dropped
        ids = ask("\n" + piece)
        want = piece.encode("utf-8")
        for k in range(1, min(4, len(ids)) + 1):
            if self._join(ids[:k]) == b" \n" and self._join(ids[k:]) == want:
                return ids[k:]
        return ask(piece)

    def encode_ids(self, text: str) -> list[int]:
        return self.encode_with_offsets(text)[0].tolist()

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        ids: list[int] = []
        for piece in self._pieces_of(text):
            ids += self._encode_piece(piece)
        arr = np.array(ids, dtype=np.int64)
        return arr, self._offsets(text, ids)

    def _offsets(self, text: str, ids: list[int]) -> np.ndarray:
        """[start, end) characters of each token in `text`: its bytes laid along the text's
        (a leading space the tokenizer added, whitespace it dropped and a token's own name where
        its bytes are not in the text are skipped over)."""
        data = text.encode("utf-8")
        char_at = np.cumsum(np.frombuffer(data + b"\0", dtype=np.uint8) & 0xC0 != 0x80) - 1
        out = np.zeros((len(ids), 2), dtype=np.int64)
        pos = 0
        for j, t in enumerate(ids):
            b = self._bytes[t] if 0 <= t < self.vocab_size else b""
            cands = [b, b[1:] if b[:1] == b" " else b"", self._names.get(t, b"")]
            start = pos
            while start < len(data) and data[start : start + 1].isspace() and not any(
                    c and data.startswith(c, start) for c in cands):
                start += 1
            got = next((c for c in cands if c and data.startswith(c, start)), None)
            end = start + len(got) if got is not None else min(len(data), start + max(1, len(b)))
            out[j] = (char_at[min(start, len(data))], char_at[min(end, len(data))])
            pos = end
        return out

    def decode(self, ids: Any) -> str:
        seq = [int(i) for i in np.asarray(ids, dtype=np.int64).tolist()]
        self.ensure(seq)
        text = self._join(seq).decode("utf-8", errors="replace")
        return text[1:] if self.family == "sentencepiece" and text.startswith(" ") else text

    def token_bytes(self) -> list[bytes]:
        return self._bytes

    def word_boundaries(self) -> WordBoundaries:
        return self._words

    def fingerprint(self) -> str:
        return hashlib.sha256(f"server:{self.client.url}{self.client.name}".encode()).hexdigest()[:16]


def _probe_width(client: APIClient, vocab: int | None) -> int:
    """Token width from the server's own check of a pointer (`multiple of W` / `even`); a
    pointer of 1 taken is one-byte tokens; else from the vocabulary's size, when known."""
    try:
        client.query("get_doc_by_ptr", query_ids=[], s=0, ptr=1, max_disp_len=1)
    except RemoteIndexError as exc:
        msg = str(exc)
        for w in (1, 2, 4):
            if f"multiple of {w}" in msg:
                return w
        if "even integer" in msg:
            return 2
        return width_for_vocab(vocab) if vocab is not None else 2
    return width_for_vocab(vocab) if vocab is not None else 1


def _probe_vocab(client: APIClient, width: int) -> int:
    """The vocabulary's size from the server's own check of ids ("out-of-range" above it; 65535,
    the separator, is always taken): a binary search, at most 32 requests, once."""
    if width == 1:
        return 255

    def ok(i: int) -> bool:
        try:
            client.query("count", query_ids=[i])
            return True
        except RemoteIndexError as exc:
            if "out-of-range" in str(exc):
                return False
            raise

    lo, hi = 0, (1 << (8 * width)) - 1  # ok(lo); the answer is in (lo, hi]
    if hi == 65535:
        hi = 65534
    if ok(hi):
        return hi + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo + 1


class UnigramCounts:
    """Token counts asked for as they are needed (`count` of one token; the whole vocabulary
    would be tens of thousands of requests): indexing with ids fetches the missing ones. As an
    array it is what was fetched so far (zeros elsewhere)."""

    def __init__(self, index: InfiniGramAPIIndex, vocab: int) -> None:
        self.index = index
        self.counts = np.zeros(vocab, dtype=np.int64)
        self.known = np.zeros(vocab, dtype=bool)

    def __len__(self) -> int:
        return len(self.counts)

    def __getitem__(self, ids: Any) -> Any:
        sel = np.asarray(ids, dtype=np.int64)
        want = np.unique(sel[(sel >= 0) & (sel < len(self.counts))])
        todo = want[~self.known[want]].tolist()
        if todo:
            got = self.index.client.map(lambda t: self.index.client.query("count", query_ids=[t])["count"], todo)
            self.counts[todo] = got
            self.known[todo] = True
        return self.counts[ids]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.counts if dtype is None else self.counts.astype(dtype)


@dataclass
class _Words:
    """Whole-word occurrences of one sequence: their count, their (shard, start, end) rank runs
    (those known: all of them unless the count is an estimate), exact or estimated."""

    count: int
    runs: list[tuple[int, int, int]] | None  # None: not asked for yet
    exact: bool


class InfiniGramAPIIndex(RangeCounts, DocumentIds):
    """An index served by an infini-gram API server, with the index-level interface of
    `engine.Index`. Open with `InfiniGramAPIIndex.open(url, tokenizer)`."""

    def __init__(self, url: str, client: APIClient, tokenizer: Tokenizer, tokenizer_name: str) -> None:
        self.spec = url
        self.client = client
        self.name = client.name
        self.directory = _Location(url)
        self.tokenizer = tokenizer
        self.approximate: set[bytes] = set()  # sequences whose whole-word count or ntd is an estimate
        self.capped = 0  # matches seen at the most a query can show (MAX_MATCH tokens)
        whole = client.query("find", query_ids=[])
        segs = whole["segment_by_shard"]
        self.width = _probe_width(client, tokenizer.vocab_size)
        tokens = [int(b) - int(a) for a, b in segs]
        # documents per shard: the document of each shard's last token is its last one
        last = client.map(lambda s: client.query("get_doc_by_ptr", query_ids=[], s=s,
                                                 ptr=(tokens[s] - 1) * self.width, max_disp_len=1)["doc_ix"],
                          list(range(len(segs))))
        docs = [int(last[0]) + 1] + [int(last[s]) - int(last[s - 1]) for s in range(1, len(segs))]
        shards = [ShardInfo(documents=d, tokens=t, tokenized_bytes=t * self.width, table_bytes=0, pointer_width=0)
                  for d, t in zip(docs, tokens, strict=True)]
        self.manifest = Manifest(token_width=self.width, tokenizer=tokenizer_name, shards=shards,
                                 vocab_size=tokenizer.vocab_size, source="infini-gram API")
        self._doc_base = list(accumulate(docs, initial=0))
        self._unigram = UnigramCounts(self, tokenizer.vocab_size)
        self._words: dict[bytes, _Words] = {}
        self._proven: dict[bytes, int] = {}  # sequence -> whole-word occurrences proven to exist
        self._breaker_ids: list[int] | None = None  # `_breakers`, found once ([]: too many of them)
        # (length, first rank per shard) -> (sequence, end rank per shard) of every range found
        self._by_ranges: dict[tuple[int, tuple[int, ...]], tuple[list[int], tuple[int, ...]]] = {}
        self._docs: dict[int, tuple[int, int, list[int]]] = {}  # global doc id -> (shard, rank, seq) seen
        self._meta: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(cls, url: str, tokenizer: str | Path | None = None, concurrency: int = CONCURRENCY,
             timeout: float = TIMEOUT) -> InfiniGramAPIIndex:
        path = tokenizer or os.environ.get(TOKENIZER_ENV)
        client = APIClient(url, concurrency=concurrency, timeout=timeout)
        if not client.name:
            raise RemoteIndexError(f"{url}: name the index: {client.url}NAME")
        try:
            if not path:  # the server tokenizes, and names the tokens it shows
                width = _probe_width(client, None)
                return cls(url, client, ServerVocabulary(client, _probe_vocab(client, width), width), SERVER_TOKENIZER)
            tok = load_tokenizer(path)
            index = cls(url, client, tok, "bytes" if str(path) == "bytes" else Path(path).name)
            index._check_tokenizer()
            return index
        except BaseException as exc:
            client.close()
            if isinstance(exc, MALFORMED):
                raise malformed(url, exc) from None
            raise

    def _check_tokenizer(self) -> None:
        """The server's names of a few ids must be the local tokenizer's: another vocabulary
        would give meaningless counts."""
        if not hasattr(self.tokenizer, "_tok"):
            return
        v = self.tokenizer.vocab_size
        ids = sorted({v - 1, v - 2, (2 * v) // 3, v // 2, v // 3, v // 5, 300 % v, 1000 % v})
        try:
            got = self.client.query("count", query_ids=ids)
        except RemoteIndexError as exc:
            raise RemoteIndexError(f"{self.spec}: the server's vocabulary is not that of the tokenizer given "
                                   f"({exc})") from None
        names = [self.tokenizer._tok.id_to_token(i) for i in ids]
        if got.get("tokens") != names:
            raise RemoteIndexError(f"{self.spec}: the server's vocabulary is not that of the tokenizer given "
                                   f"(ids {ids} are {got.get('tokens')} there, {names} here)")

    def __repr__(self) -> str:
        return f"InfiniGramAPIIndex({self.spec!r})"

    @property
    def requests(self) -> int:
        return self.client.requests

    def close(self) -> None:
        self.client.close()

    @property
    def fingerprint(self) -> str:
        key = json.dumps([self.spec, [s.tokens for s in self.manifest.shards]])
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def total_tokens(self) -> int:
        return int(self.manifest.tokens)

    @property
    def n_shards(self) -> int:
        return len(self.manifest.shards)

    def encode(self, text: str) -> np.ndarray:
        return self.tokenizer.encode(text)

    def sizes(self) -> dict[str, int]:
        return {"total": 0}

    # -- counting ------------------------------------------------------------------------------
    def _ids(self, seq: np.ndarray) -> list[int]:
        ids = [int(i) for i in np.asarray(seq, dtype=np.int64)]
        if len(ids) > MAX_QUERY_TOKENS:
            raise RemoteIndexError(f"{self.spec}: a query of {len(ids)} tokens, the API takes at most {MAX_QUERY_TOKENS}")
        return ids

    def find(self, ids: np.ndarray) -> list[tuple[int, int]]:
        seq = self._ids(ids)
        segs = [(int(a), int(b)) for a, b in self.client.query("find", query_ids=seq)["segment_by_shard"]]
        if seq and any(b > a for a, b in segs):  # word_counts and windows get ranges: their sequence
            with self._lock:
                self._by_ranges[(len(seq), tuple(a for a, _ in segs))] = (seq, tuple(b for _, b in segs))
        return segs

    def find_ranges(self, seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        k, n = self.n_shards, len(seqs)
        lo, hi = np.zeros((k, n), dtype=np.int64), np.zeros((k, n), dtype=np.int64)
        for j, segs in enumerate(self.client.map(self.find, list(seqs))):
            lo[:, j] = [a for a, _ in segs]
            hi[:, j] = [b for _, b in segs]
        return lo, hi

    def count(self, ids: np.ndarray | Sequence[int]) -> int:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return self.total_tokens
        return int(self.client.query("count", query_ids=self._ids(ids))["count"])

    # -- whole words ---------------------------------------------------------------------------
    def _left_ok(self, seq: list[int], occ: list[tuple[int, int]]) -> list[bool]:
        """Is the left edge of each (shard, rank) occurrence a word boundary? From the document:
        a 2-token window [token before, first token] (`needle_offset` 0: the document starts)."""

        def one(o: tuple[int, int]) -> bool:
            d = self.client.query("get_doc_by_rank", query_ids=seq[:1], s=o[0], rank=o[1], max_disp_len=2)
            if d["needle_offset"] == 0 or not d["spans"]:
                return True
            before = d["spans"][0][0]
            return before == "" or not is_word_char(before[-1])

        return self.client.map(one, occ)

    def _followers(self, seq: list[int]) -> tuple[dict[str, Any], dict[int, int], set[int]]:
        """`ntd` of a sequence: the answer, its counts per next token, and the tokens after which
        the right edge is a word boundary (a document end, an id outside the vocabulary, is one)."""
        d = self.client.query("ntd", query_ids=seq, max_support=MAX_SUPPORT)
        words = self.tokenizer.word_boundaries()
        vocab = self.tokenizer.vocab_size
        seen = {int(t): int(v["cont_cnt"]) for t, v in d["result_by_token_id"].items()}
        if isinstance(self.tokenizer, ServerVocabulary):  # the followers' names, as ntd gives them
            sv = self.tokenizer
            pairs = [(int(t), str(v.get("token", ""))) for t, v in d["result_by_token_id"].items()]
            sv.learn([t for t, _ in pairs], [n.replace(" ", "Ġ") if sv.family == "byte-level" else n for _, n in pairs])
        nxt = sorted(t for t in seen if t < vocab)
        tail = np.full((len(nxt), 4), -1, dtype=np.int64)
        last = seq[::-1][:4]
        tail[:, : len(last)] = last
        after = np.array(nxt, dtype=np.int64)
        rows_after = np.full((len(nxt), 4), -1, dtype=np.int64)
        rows_after[:, 0] = after
        ok = words.boundary(np.full(len(nxt), seq[-1]), after, lambda idx: (tail[idx], rows_after[idx])) \
            if nxt else np.zeros(0, dtype=bool)
        good = {t for t, g in zip(nxt, ok.tolist(), strict=True) if g} | {t for t in seen if t >= vocab}
        return d, seen, good

    def _sub_ranges(self, seq: list[int], segs: list[tuple[int, int]]) -> tuple[list[list[tuple[int, int]]], int]:
        """Per shard, the rank ranges of the occurrences whose right edge is a word boundary --
        one per token that may follow, contiguous (occurrences are sorted by what follows) --
        and how many occurrences are left unaccounted for (0: exact). The next tokens come from
        `ntd` (sampled by the server past MAX_SUPPORT occurrences: then every token seen is
        counted with `find`, and only those never seen are unaccounted for); a document end is
        asked as the separator (65535, u16 servers)."""
        d, seen, good = self._followers(seq)
        vocab = self.tokenizer.vocab_size
        nxt = sorted(t for t in seen if t < vocab)
        good = {t for t in good if t < vocab}
        ends = 65535 if self.width == 2 else None  # the separator: occurrences that end a document
        ask = set(good) | ({ends} if ends is not None else set())
        if d["approx"]:  # the sampled counts are estimates: count every token seen
            ask |= set(nxt)
        ask_l = sorted(ask)
        found = dict(zip(ask_l, self.client.map(lambda t: self.find(np.array([*seq, t])), ask_l), strict=True))
        ranges: list[list[tuple[int, int]]] = [[] for _ in segs]
        accounted = 0
        for t, segs_t in found.items():
            n_t = sum(b - a for a, b in segs_t)
            accounted += n_t
            if t in good or t == ends:
                for s, (a, b) in enumerate(segs_t):
                    if b > a:
                        ranges[s].append((a, b))
        if not d["approx"]:  # the tokens not asked for: exact counts from ntd
            accounted += sum(c for t, c in seen.items() if t < vocab and t not in ask)
        total = sum(b - a for a, b in segs)
        return [sorted(r) for r in ranges], max(0, total - accounted)

    def _breakers(self) -> list[int] | None:
        """The ids after which any word may start (their text ends with a complete non-word
        character, or they are empty: special tokens stand alone), when there are few of them
        and no token ends inside a character -- then the left edge of an occurrence is a word
        boundary exactly when one of them, or a document start (the u16 separator, 65535, that
        the API takes as a query id), comes before it. A word-level vocabulary has a handful
        ("." and the specials); a BPE vocabulary thousands (None: occurrences are looked at)."""
        if self._breaker_ids is None:
            if isinstance(self.tokenizer, ServerVocabulary):  # the only question about the whole
                self.tokenizer.ensure(np.arange(self.tokenizer.vocab_size))  # vocabulary: once, 500 names a request
            words = self.tokenizer.word_boundaries()
            tail = words.tail_class
            ids = np.flatnonzero(tail == BEGINS)
            ok = self.width == 2 and len(ids) <= MAX_BREAKERS and not bool(np.any(tail == UNSURE))
            self._breaker_ids = [int(i) for i in ids] + [SEPARATOR] if ok else []
        return self._breaker_ids or None

    def _right_words(self, q: list[int], need: int | None) -> tuple[int, str]:
        """Occurrences of q whose right edge is a word boundary (its left edge is settled by
        the caller): (n, "exact"), (n, "estimate") when the server's sample leaves some
        unaccounted for, or (n >= need, "atleast") when `need` are proven by `ntd` alone."""
        key = b"R" + np.asarray(q, dtype=np.int64).tobytes()
        with self._lock:
            known = self._words.get(key)
        if known is not None:
            return known.count, "exact" if known.exact else "estimate"
        segs = self.find(np.array(q, dtype=np.int64))
        total = sum(b - a for a, b in segs)
        words = self.tokenizer.word_boundaries()
        if total == 0 or bool(words.closes_with_break(np.array(q[-1:]))[0]):
            got = _Words(total, None, True)
        else:
            d, seen, good = self._followers(q)
            if not d["approx"]:
                got = _Words(sum(c for t, c in seen.items() if t in good), None, True)
            elif need is not None and len(good) >= need:
                return len(good), "atleast"  # each reported token occurs at least once
            else:
                ranges, rest = self._sub_ranges(q, segs)
                n = sum(b - a for rs in ranges for a, b in rs)
                got = _Words(n + (int(round(rest * n / max(1, total - rest))) if rest else 0), None, rest == 0)
        with self._lock:
            self._words[key] = got
        return got.count, "exact" if got.exact else "estimate"

    def _by_predecessors(self, seq: list[int], need: int | None) -> tuple[int, str] | None:
        """Whole-word occurrences of a sequence whose left edge its first token does not settle,
        counted as the occurrences of (breaker, sequence) for each token after which a word may
        start (`_breakers`) whose right edge is a boundary: exact, in a few requests per
        breaker, where looking at each occurrence's document would take one per occurrence (and
        past LEFT_BUDGET, only estimate). None when the vocabulary has too many breakers."""
        breakers = self._breakers()
        if breakers is None or len(seq) + 1 > MAX_QUERY_TOKENS:
            return None
        words = self.tokenizer.word_boundaries()
        if words.head_inside[seq[0]] if 0 <= seq[0] < len(words.head_inside) else True:
            return None  # a token that starts inside a character: its left edge is never a boundary
        n, kinds = 0, set()
        for p in breakers:
            c, kind = self._right_words([p, *seq], None if need is None else max(1, need - n))
            n += c
            kinds.add(kind)
            if need is not None and n >= need:
                return n, "atleast" if kinds - {"exact"} else "exact"
        return n, "estimate" if "estimate" in kinds else "exact"

    def _whole(self, seq_arr: np.ndarray, with_runs: bool = False) -> _Words:
        """The whole-word occurrences of a sequence (see the module's note on their cost); their
        rank runs only `with_runs` (a count whose left edge is settled and whose next tokens
        the server counted exactly needs no `find` per next token)."""
        key = np.asarray(seq_arr, dtype=np.int64).tobytes()
        with self._lock:
            known = self._words.get(key)
        if known is not None and (known.runs is not None or not with_runs):
            return known
        seq = self._ids(seq_arr)
        segs = self.find(seq_arr)
        total = sum(b - a for a, b in segs)
        words = self.tokenizer.word_boundaries()
        got: _Words | None = None
        if total == 0:
            got = _Words(0, [], True)
        else:
            left = bool(words.opens_with_break(np.array(seq[:1]))[0])
            right = bool(words.closes_with_break(np.array(seq[-1:]))[0])
            pred = None if left or with_runs else self._by_predecessors(seq, None)
            d = None if pred is not None or right or with_runs or not left else self._followers(seq)
            ranges: list[list[tuple[int, int]]] = []
            rest = 0
            if pred is not None:  # the left edge from the tokens before: an exact count
                got = _Words(pred[0], None, pred[1] == "exact")
            elif d is not None and not d[0]["approx"]:  # exact next-token counts: the count alone
                got = _Words(sum(c for t, c in d[1].items() if t in d[2]), None, True)
            elif right:
                ranges = [[(a, b)] if b > a else [] for a, b in segs]
            else:
                ranges, rest = self._sub_ranges(seq, segs)
            exact = rest == 0
            if got is not None:
                pass
            elif left:
                runs = [(s, a, b) for s, rs in enumerate(ranges) for a, b in rs]
                n = sum(b - a for _, a, b in runs)
                # occurrences followed by tokens never seen: counted in the share of those seen
                got = _Words(n + (int(round(rest * n / max(1, total - rest))) if rest else 0), runs, exact)
            else:
                occ = [(s, r) for s, rs in enumerate(ranges) for a, b in rs for r in range(a, b)] \
                    if sum(b - a for rs in ranges for a, b in rs) <= LEFT_BUDGET else None
                if occ is not None:
                    oks = self._left_ok(seq, occ)
                    runs = [(s, r, r + 1) for (s, r), ok in zip(occ, oks, strict=True) if ok]
                    got = _Words(len(runs), runs, exact)
                else:  # too many to look at: an evenly spaced sample, the count scaled
                    flat = [(s, a, b) for s, rs in enumerate(ranges) for a, b in rs]
                    sizes = np.array([b - a for _, a, b in flat], dtype=np.int64)
                    n = int(sizes.sum())
                    picks = np.unique(np.linspace(0, n - 1, LEFT_BUDGET).astype(np.int64))
                    ends = np.cumsum(sizes)
                    occ = []
                    for g in picks.tolist():
                        i = int(np.searchsorted(ends, g, side="right"))
                        s, a, _ = flat[i]
                        occ.append((s, int(a + g - (ends[i] - sizes[i]))))
                    oks = self._left_ok(seq, occ)
                    runs = [(s, r, r + 1) for (s, r), ok in zip(occ, oks, strict=True) if ok]
                    got = _Words(int(round(n * len(runs) / len(occ))), runs, False)
        assert got is not None
        if not got.exact:
            self.approximate.add(key)
        with self._lock:
            self._words[key] = got
        return got

    def _at_least(self, seq_arr: np.ndarray, need: int) -> int:
        """min(whole-word count of a sequence, need), exactly, without counting it where the
        answers at hand prove `need` occurrences already. The span finder asks this with need 1
        (does one whole-word occurrence exist?) for every candidate it cannot settle from the
        token tables; a frequent candidate's exact count would be one `find` per distinct token
        that follows it (thousands: the 11k finds of a word-level trace), where the question is
        answered by one `ntd`: a token it reports after the sequence occurs there, so with a free
        left edge every reported token after which the right edge is a boundary is one proven
        whole-word occurrence -- sampled answer or not. Only when those fall short is the
        sequence counted (`_whole`)."""
        key = np.asarray(seq_arr, dtype=np.int64).tobytes()
        with self._lock:
            known = self._words.get(key)
            proven = self._proven.get(key, 0)
        if known is not None:
            return min(known.count, need) if known.exact or known.count < need else need
        if proven >= need:
            return need
        seq = self._ids(seq_arr)
        segs = self.find(seq_arr)
        total = sum(b - a for a, b in segs)
        if total < need:  # at most `total`: the exact count is wanted
            w = self._whole(seq_arr)
            return min(w.count, need)
        words = self.tokenizer.word_boundaries()
        left = bool(words.opens_with_break(np.array(seq[:1]))[0])
        right = bool(words.closes_with_break(np.array(seq[-1:]))[0])
        if left and right:
            return need  # every occurrence is whole words
        if not left:
            pred = self._by_predecessors(seq, need)
            if pred is not None and pred[1] != "estimate":
                if pred[1] == "exact":
                    with self._lock:
                        self._words.setdefault(key, _Words(pred[0], None, True))
                return min(pred[0], need)
        if left:
            d, seen, good = self._followers(seq)
            if not d["approx"]:  # exact next-token counts: the exact count, no further request
                return min(self._whole(seq_arr).count, need)
            proven = max(proven, len(good))  # each reported token occurs at least once
            with self._lock:
                self._proven[key] = max(self._proven.get(key, 0), proven)
            if proven >= need:
                return need
        w = self._whole(seq_arr)
        return min(w.count, need) if w.exact or w.count < need else need

    def word_counts(self, lo: np.ndarray, hi: np.ndarray, m: np.ndarray, cap: int | None = None) -> np.ndarray:
        """Whole-word counts of sequences from their ranges (as `find_ranges` gave them)."""
        n = len(m)
        out = np.zeros(n, dtype=np.int64)
        todo = []
        for j in range(n):
            if not np.any(hi[:, j] > lo[:, j]) or m[j] == 0:
                continue
            known = self._by_ranges.get((int(m[j]), tuple(lo[:, j].tolist())))
            if known is None:
                raise RemoteIndexError(f"{self.spec}: whole-word counts of ranges not found by this index")
            todo.append((j, np.array(known[0], dtype=np.int64)))
        if cap is not None:  # only "more than cap?" matters: answered from what is proven
            for (j, _), c in zip(todo, self.client.map(lambda x: self._at_least(x[1], cap + 1), todo), strict=True):
                out[j] = c
            return out
        for (j, _), w in zip(todo, self.client.map(lambda x: self._whole(x[1]), todo), strict=True):
            out[j] = w.count
        return out

    def count_words(self, ids: np.ndarray | Sequence[int]) -> int:
        ids = np.asarray(ids, dtype=np.int64)
        return self._whole(ids).count if len(ids) else self.total_tokens

    def find_words_many(self, seqs: list[np.ndarray]) -> list[list[tuple[int, int, int]]]:
        """Per sequence, runs of whole-word occurrences: all of them, or (an estimated count) the
        ones looked at."""
        return [w.runs or [] for w in self.client.map(lambda q: self._whole(q, with_runs=True), list(seqs))]

    def find_words(self, ids: np.ndarray) -> list[list[tuple[int, int]]]:
        out: list[list[tuple[int, int]]] = [[] for _ in range(self.n_shards)]
        for k, a, b in self.find_words_many([np.asarray(ids, dtype=np.int64)])[0]:
            out[k].append((a, b))
        return out

    def word_occurrences(self, ids: np.ndarray, chunk: int = 1 << 18) -> Iterator[tuple[int, np.ndarray]]:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids):
            yield from rank_chunks(self.find_words(ids), chunk)

    # -- longest matches -------------------------------------------------------------------------
    def _suffixes(self, ids: list[int], ends: list[int]) -> dict[int, int]:
        """For each end e (1..len(ids)), the longest suffix of ids[:e] that occurs (capped at
        MAX_MATCH): `infgram_prob` of ids[e - MAX_MATCH : e] with ids[e] as continuation, the
        ends split into `concurrency` runs walked in order, so that an answer whose continuation
        occurs gives the next end's without a request."""
        L = len(ids)
        out: dict[int, int] = {}
        if not ends:
            return out
        want = sorted(set(ends))
        n_runs = min(len(want), self.client.concurrency)
        runs = [want[i * len(want) // n_runs : (i + 1) * len(want) // n_runs] for i in range(n_runs)]

        def walk(run: list[int]) -> dict[int, int]:
            got: dict[int, int] = {}
            for e in run:
                if e in got:  # the previous answer's continuation occurs: its suffix plus one
                    continue
                cont = ids[e] if e < L else 0
                r = self.client.query("infgram_prob", query_ids=[*ids[max(0, e - MAX_MATCH) : e], cont])
                got[e] = min(int(r["suffix_len"]), MAX_MATCH)
                if e < L and int(r["cont_cnt"]) > 0:
                    got[e + 1] = min(got[e] + 1, MAX_MATCH)
            return got

        for part in self.client.map(walk, runs):
            out.update(part)
        return out

    def longest_prefixes_witnessed(self, ids: np.ndarray, positions: np.ndarray | None = None,
                                   stops: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As `Index.longest_prefixes_witnessed`; no whole-word occurrence is ever seen for free
        here (all False): the span finder then asks."""
        best = self.longest_prefixes(ids, positions, stops)
        return best, np.zeros(len(best), dtype=bool)

    def longest_prefixes(self, ids: np.ndarray, positions: np.ndarray | None = None,
                         stops: np.ndarray | None = None) -> np.ndarray:
        """As `Index.longest_prefixes`: for each start p, the longest n with ids[p:p+n] in the
        corpus, from the longest matches *ending* at each position: ids[p:e] occurs iff the
        longest suffix of ids[:e] that occurs is at least e - p. Matches are seen up to
        MAX_MATCH tokens (`capped` counts those that reach it)."""
        arr = [int(i) for i in np.asarray(ids, dtype=np.int64)]
        L = len(arr)
        pos = np.arange(L, dtype=np.int64) if positions is None else np.asarray(positions, dtype=np.int64)
        stop = np.full(len(pos), L, dtype=np.int64) if stops is None else np.minimum(np.asarray(stops, dtype=np.int64), L)
        best = np.zeros(len(pos), dtype=np.int64)
        if L and len(pos):
            need: set[int] = set()
            for p, s in zip(pos.tolist(), stop.tolist(), strict=True):
                need.update(range(p + 1, s + 1))
            suf = self._suffixes(arr, sorted(need))
            for i, (p, s) in enumerate(zip(pos.tolist(), stop.tolist(), strict=True)):
                e = p
                while e < s and (e + 1) - suf[e + 1] <= p:
                    e += 1
                best[i] = e - p
                if e - p >= MAX_MATCH:
                    self.capped += 1
        return best

    # -- ∞-gram --------------------------------------------------------------------------------------
    def unigram_counts(self) -> UnigramCounts:
        return self._unigram

    def ntd(self, prompt: np.ndarray, max_support: int | None = None) -> NextTokens:
        """The server's `ntd` (it samples past its max_support, at most 1000: `approx`); a document
        end it reports as an id outside the vocabulary (a separator) is DOC_END."""
        ms = MAX_SUPPORT if max_support is None else max(1, min(MAX_SUPPORT, int(max_support)))
        d = self.client.query("ntd", query_ids=self._ids(prompt), max_support=ms)
        vocab = self.tokenizer.vocab_size
        items = sorted((DOC_END if int(t) >= vocab else int(t), int(v["cont_cnt"])) for t, v in d["result_by_token_id"].items())
        ids = np.array([t for t, _ in items], dtype=np.int64)
        counts = np.array([c for _, c in items], dtype=np.int64)
        if d["approx"]:
            self.approximate.add(np.asarray(prompt, dtype=np.int64).tobytes())
        return NextTokens(int(d["prompt_cnt"]), ids, counts, bool(d["approx"]))

    # -- documents --------------------------------------------------------------------------------------
    def _window(self, shard: int, rank: int, seq: list[int], context: int) -> dict[str, Any]:
        mdl = max(2, min(MAX_DISP_LEN, 2 * (context + max(1, len(seq)))))
        return self.client.query("get_doc_by_rank", query_ids=seq, s=shard, rank=rank, max_disp_len=mdl)

    def _pieces(self, d: dict[str, Any], seq: list[int]) -> tuple[np.ndarray, int]:
        """The window's tokens (the marked occurrences are the sequence's own tokens, the text
        between re-tokenized) and where our occurrence starts among them."""
        tokens: list[int] = []
        marked: list[int] = []
        sentencepiece = getattr(self.tokenizer, "family", "") == "sentencepiece"
        prev_text = ""
        for text, label in d["spans"]:
            if label is not None:
                marked.append(len(tokens))
                tokens += seq
            else:
                if sentencepiece and prev_text and text and is_word_char(text[0]) and is_word_char(prev_text[-1]):
                    text = " " + text  # a SentencePiece piece decoded alone lost its leading space
                tokens += self.tokenizer.encode(text).tolist()
            prev_text = text
        if not marked:
            return np.array(tokens, dtype=np.int64), min(int(d["needle_offset"]), len(tokens))
        # ours is the marked piece starting nearest to the needle's offset
        at = min(marked, key=lambda m: abs(m - int(d["needle_offset"])))
        return np.array(tokens, dtype=np.int64), at

    def windows(self, occurrences: list[tuple[int, int, int]], contexts: tuple[int, ...]) -> list[Occurrence]:
        """As `Index.windows`, one `get_doc_by_rank` per occurrence (concurrently); positions in
        the shard are not part of infini-gram's answer (`Hit` pointer and token are -1)."""
        if not occurrences:
            return []
        ctx = max(contexts) if contexts else 0

        def one(o: tuple[int, int, int]) -> Occurrence:
            shard, rank, length = (int(v) for v in o)
            seq = self._seq_at(shard, rank, length)
            d = self._window(shard, rank, seq, ctx)
            tokens, at = self._pieces(d, seq)
            mdl = max(2, min(MAX_DISP_LEN, 2 * (ctx + max(1, len(seq)))))
            cut_left = int(d["needle_offset"]) >= mdl // 2
            cut_right = int(d["disp_len"]) - int(d["needle_offset"]) >= (mdl + 1) // 2
            gid = int(d["doc_ix"])
            try:
                meta = json.loads(d["metadata"]) if d["metadata"] else {}
            except ValueError:
                meta = {"raw": d["metadata"]}
            meta = meta if isinstance(meta, dict) else {"value": meta}
            with self._lock:
                self._docs[gid] = (shard, rank, seq)
                self._meta[gid] = meta
            wins = []
            for c in contexts:
                a, b = max(0, at - c), min(len(tokens), at + length + c)
                wins.append(Window(tokens[a:b], at - a, at - a + length, -1, a > 0 or cut_left,
                                   b < len(tokens) or cut_right))
            hit = Hit(shard, rank, -1, gid - int(self._doc_base[shard]), -1, -1, -1)
            return Occurrence(hit, gid, meta, wins)

        return self.client.map(one, list(occurrences))

    def _seq_at(self, shard: int, rank: int, length: int) -> list[int]:
        """The `length` tokens at a rank: from a sequence this index looked up whose range holds it."""
        with self._lock:
            for (m, lo), (seq, hi) in self._by_ranges.items():
                if m == length and lo[shard] <= rank < hi[shard]:
                    return list(seq)
        return []

    def hit(self, shard: int, rank: int) -> Hit:
        return self.windows([(shard, rank, 0)], ())[0].hit

    def window(self, hit: Hit, length: int, context: int) -> Window:
        return self.windows([(hit.shard, hit.rank, length)], (context,))[0].windows[0]

    def metadata(self, shard: int, doc: int) -> dict[str, Any]:
        return self._meta.get(self.global_doc_id(shard, doc), {})

    def document_tokens(self, shard: int, doc: int) -> np.ndarray:
        """The tokens of `document_text` (re-tokenized locally: the API's document answer carries
        the query's ids, not the document's)."""
        return self.tokenizer.encode(self.document_text(self.global_doc_id(shard, doc)))

    def document_text(self, global_id: int) -> str:
        """The document around an occurrence this index has shown: at most MAX_DISP_LEN tokens of
        it (infini-gram's API has no whole document by id)."""
        seen = self._docs.get(int(global_id))
        if seen is None:
            raise RemoteIndexError(f"{self.spec}: document {global_id}: the infini-gram API shows documents "
                                   "only around an occurrence")
        shard, rank, seq = seen
        d = self.client.query("get_doc_by_rank", query_ids=seq, s=shard, rank=rank, max_disp_len=MAX_DISP_LEN)
        return "".join(t for t, _ in d["spans"])


__all__ = ["InfiniGramAPIIndex", "APIClient", "speaks_infinigram", "TOKENIZER_ENV"]


check_answers(InfiniGramAPIIndex, ("find", "find_ranges", "count", "count_many", "word_counts", "count_words",
                                   "find_words_many", "find_words", "word_occurrences", "longest_prefixes",
                                   "longest_prefixes_witnessed", "ntd", "windows", "hit", "window", "metadata",
                                   "document_tokens", "document_text"), lambda self: self.spec)
check_answers(UnigramCounts, ("__getitem__",), lambda self: self.index.spec)
