"""A served index (`tracetui serve`) used like a local one: `RemoteIndex`.

`RemoteIndex` implements the index-level interface of `engine.Index` that the tracer, span
finding, `count`, `search`, `ntd` and `infgram` use, by asking the server: the searches run
next to the suffix arrays, only small arrays cross the network. The tokenizer is downloaded once
(tokenizing and decoding stay local: the same bytes give the same tokens), and so are the
unigram counts.

A URL names one index: `http://host:port/NAME` (NAME may be omitted when the server serves only
one). Several URLs joined with commas are *one* index whose shards are spread over servers
(`http://a:8000/web,http://b:8000/web`): the shard axes are concatenated in the order given,
every query goes to all servers concurrently, counts are summed and longest matches maximised,
exactly as the local engine merges its own shards.

Arrays travel in the wire format of `index_tools.wire` (shared with the server). The transport
is `httpx` (`_HTTP`, shared with the infini-gram API client): a thread-safe pool of kept-alive
connections per server, so concurrent queries (a tracer's threads, the shards of several
servers) do not queue behind one lock held across a whole request; connect and read timeouts;
answers read up to MAX_ANSWER bytes; the bearer token as a header. httpx is imported on first
use, so opening a local index never pays for it. A batch bigger than a server takes in one
request (its "limits" in `GET /indexes`: tokens, sequences, occurrences, tokens of windows, body
bytes) is sent as several requests and the answers joined: the same results as one local call.
Any answer that is not what the server's API sends (missing keys, wrong types, truncated,
nested too deeply) is one line of `RemoteIndexError`, never a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import numpy as np

from .engine import DocumentIds, Hit, Occurrence, RangeCounts, Window, rank_chunks
from .errors import RemoteIndexError
from .format import Manifest
from .ngram import NextTokens, sample_unit
from .normalize import for_manifest
from .tokenizer import Tokenizer, load_tokenizer
from .wire import (
    API_VERSION,
    TOKEN_ENV,
    pack,
    pack_seqs,
    unpack,
    unpack_seqs,
    window_from_json,
)

TIMEOUT = 120.0  # seconds the client waits for one answer (the server's own limit is lower)
CONNECT_TIMEOUT = 10.0  # seconds to open a connection
MAX_ANSWER = 256 << 20  # bytes of one answer read at most (a server's biggest is about 50 MB)
KEEP_ALIVE = 4.0  # seconds an idle connection is kept: under the server's 5 (no stale reuse)
# what a server that does not publish its limits (`GET /indexes` "limits") is assumed to take
DEFAULT_LIMITS = {"max_body": 8 << 20, "max_tokens": 200_000, "max_seqs": 100_000, "max_windows": 10_000,
                  "window_budget": 2_000_000}


# -- transport ------------------------------------------------------------------------------------
class TransportError(RemoteIndexError):
    """The server could not be reached or did not answer in time (`timed_out`): worth a retry,
    unlike an answer the server gave."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _HTTP:
    """An `httpx.Client` for one server: a thread-safe pool of at most `connections` kept-alive
    connections, timeouts, and answers read to at most MAX_ANSWER bytes. One retry when a kept-
    alive connection turns out closed by the server (every request here is read-only)."""

    def __init__(self, url: str, timeout: float, connections: int) -> None:
        import httpx  # here, not at import: a local index never needs it

        self.url = url
        self._httpx = httpx
        self.client = httpx.Client(
            base_url=url, follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections,
                                keepalive_expiry=KEEP_ALIVE))

    def request(self, method: str, path: str, body: dict[str, Any] | None,
                headers: dict[str, str]) -> tuple[int, bytes, bool]:
        """(status, body bytes, did the server ask for a bearer token); `TransportError` when the
        server was not reached, timed out or broke off its answer."""
        httpx = self._httpx
        data = json.dumps(body).encode("utf-8") if body is not None else None
        hdrs = {"Content-Type": "application/json", **headers} if data is not None else dict(headers)
        for attempt in (0, 1):
            try:
                with self.client.stream(method, path, content=data, headers=hdrs) as resp:
                    size = resp.headers.get("content-length", "")
                    if size.isdigit() and int(size) > MAX_ANSWER:
                        raise RemoteIndexError(f"{self.url}{path}: an answer of {int(size):,} bytes, more than "
                                               f"{MAX_ANSWER:,}")
                    chunks, total = [], 0
                    for chunk in resp.iter_bytes():
                        total += len(chunk)
                        if total > MAX_ANSWER:
                            raise RemoteIndexError(f"{self.url}{path}: an answer of more than {MAX_ANSWER:,} bytes")
                        chunks.append(chunk)
                    asks = "bearer" in resp.headers.get("www-authenticate", "").lower()
                    return resp.status_code, b"".join(chunks), asks
            except httpx.TimeoutException as exc:
                raise TransportError(f"{self.url}: index server timed out ({type(exc).__name__})", True) from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if attempt == 0:
                    continue  # a kept-alive connection the server had closed: once more, on a fresh one
                raise TransportError(f"{self.url}: index server broke off the answer ({type(exc).__name__}: "
                                     f"{_one_line(exc)})") from None
            except httpx.HTTPError as exc:
                raise TransportError(f"{self.url}: index server unreachable ({type(exc).__name__}: "
                                     f"{_one_line(exc)})") from None
        raise TransportError(f"{self.url}: index server unreachable")  # not reached: the loop returns or raises

    def close(self) -> None:
        self.client.close()


def _one_line(exc: BaseException) -> str:
    """A message from elsewhere (a server's error, an exception about its answer) as one short
    line that is safe to print: whitespace runs as one space, other control characters escaped
    (a server could send terminal escape sequences)."""
    text = " ".join(str(exc).split())[:300]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def parse_json(url: str, raw: bytes, status: int) -> Any:
    """An answer's JSON; RemoteIndexError for one that is not JSON (a proxy's or the ASGI
    server's own page, a truncated body) or is nested too deeply to parse."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise RemoteIndexError(f"{url}: HTTP {status}, an answer nested too deeply") from None
    except (UnicodeDecodeError, ValueError):
        if status >= 500:  # a proxy's or the ASGI server's own page, e.g. a 503 of a full server
            raise RemoteIndexError(f"{url}: server busy or overloaded (HTTP {status})") from None
        raise RemoteIndexError(f"{url}: HTTP {status}, not a JSON answer (not a tracetui server?)") from None


class _Server:
    """One server: its `_HTTP` pool (no lock across a request: concurrent queries use several
    connections), the bearer token once the server asked for one."""

    def __init__(self, base: str, timeout: float = TIMEOUT, connections: int = 8) -> None:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RemoteIndexError(f"{base}: not an http(s) URL of a served index")
        try:
            parts.port  # noqa: B018 (a bad port raises here)
        except ValueError:
            raise RemoteIndexError(f"{base}: bad port") from None
        self.url = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout
        self.requests = 0  # round trips made (the benchmark reports them per trace)
        self._count = threading.Lock()
        self._http = _HTTP(self.url, timeout, connections)
        self._auth: str | None = None  # sent once this server asked for a bearer token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer of one request; RemoteIndexError (one line) for any failure."""
        raw, status, asks_token = self._request(method, path, body)
        if status == 401 and asks_token and self._auth is None:
            # the token goes only to a server that asks for one (a 401 with WWW-Authenticate: Bearer)
            token = os.environ.get(TOKEN_ENV)
            if not token:
                raise RemoteIndexError(f"{self.url}: the server needs a token: --token TOKEN or {TOKEN_ENV}=TOKEN")
            self._auth = f"Bearer {token}"
            raw, status, asks_token = self._request(method, path, body)
            if status == 401:
                raise RemoteIndexError(f"{self.url}: the server refused the token ({TOKEN_ENV} or --token)")
        return self._answer(path, raw, status)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[bytes, int, bool]:
        with self._count:
            self.requests += 1
        headers = {"Authorization": self._auth} if self._auth is not None else {}
        status, raw, asks = self._http.request(method, path, body, headers)
        return raw, status, asks

    def _answer(self, path: str, raw: bytes, status: int) -> Any:
        answer = parse_json(f"{self.url}{path}", raw, status)
        if status != 200 or (isinstance(answer, dict) and "error" in answer):
            err = answer.get("error") if isinstance(answer, dict) else answer
            raise RemoteIndexError(f"{self.url}{path}: HTTP {status}: {_one_line(Exception(err))}")
        return answer

    def close(self) -> None:
        self._http.close()


class _BadShard(IndexError):
    """A shard number out of range given by the caller (not a malformed answer)."""


F = TypeVar("F", bound=Callable[..., Any])
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError)


def malformed(spec: str, exc: BaseException) -> RemoteIndexError:
    """The one-line error of an answer from the server at `spec` that is not what was asked
    for (a missing key, a wrong type, a bad array: one of MALFORMED)."""
    return RemoteIndexError(f"{spec}: a malformed answer from the server ({type(exc).__name__}: {_one_line(exc)})")


def answers_checked(spec_of: Callable[[Any], str]) -> Callable[[F], F]:
    """A method (or generator method) whose use of the server's answers may meet anything: a
    missing key, a wrong type, a bad array is one line of `RemoteIndexError` naming the server.
    `spec_of(self)` names it."""

    def convert(self: Any, exc: BaseException) -> RemoteIndexError:
        return malformed(spec_of(self), exc)

    def deco(fn: F) -> F:
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen(self: Any, *args: Any, **kwargs: Any) -> Any:
                try:
                    yield from fn(self, *args, **kwargs)
                except (RemoteIndexError, _BadShard):
                    raise
                except MALFORMED as exc:
                    raise convert(self, exc) from None
            return gen  # type: ignore[return-value]

        @functools.wraps(fn)
        def plain(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except (RemoteIndexError, _BadShard):
                raise
            except MALFORMED as exc:
                raise convert(self, exc) from None
        return plain  # type: ignore[return-value]

    return deco


def check_answers(cls: type, names: tuple[str, ...], spec_of: Callable[[Any], str]) -> None:
    """`answers_checked` on the named methods of `cls`."""
    deco = answers_checked(spec_of)
    for name in names:
        setattr(cls, name, deco(getattr(cls, name)))


class _Part:
    """One server's index within a (possibly multi-server) RemoteIndex."""

    def __init__(self, server: _Server, name: str, info: dict[str, Any], limits: dict[str, Any] | None = None) -> None:
        self.server, self.name, self.info = server, name, info
        self.limits = dict(DEFAULT_LIMITS)
        for k, v in (limits or {}).items():
            if k in self.limits and isinstance(v, int) and not isinstance(v, bool) and v > 0:
                self.limits[k] = v
        self.manifest = Manifest.from_dict(info["manifest"])
        self.n_shards = len(self.manifest.shards)
        self.path = "/indexes/" + quote(name, safe="")

    def post(self, op: str, body: dict[str, Any]) -> Any:
        return self.server.call("POST", f"{self.path}/{op}", body)


def _cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("tracetui")) / "remote-tokenizers"


def _local_tokenizer(part: _Part) -> Tokenizer:
    """The served index's tokenizer: downloaded once, kept by content digest (tokenizing and
    decoding run on the client, so a trace needs no round trip for them)."""
    if part.manifest.tokenizer == "bytes":
        return load_tokenizer("bytes")
    digest = part.info.get("tokenizer_sha256", "")
    if not isinstance(digest, str) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
        raise RemoteIndexError(f"{part.server.url}: index {part.name} reports no tokenizer digest")
    path = _cache_dir() / digest / "tokenizer.json"
    if not path.exists():
        answer = part.server.call("GET", f"{part.path}/tokenizer.json")
        raw = answer.get("tokenizer", "").encode("utf-8") if isinstance(answer, dict) else b""
        if hashlib.sha256(raw).hexdigest() != digest:
            raise RemoteIndexError(f"{part.server.url}: tokenizer of {part.name} does not match its digest")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tokenizer.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(raw)
        os.replace(tmp, path)
    return load_tokenizer(path)


class _Location:
    """What `RemoteIndex.directory` is: where the index lives, for messages (`str` is the URL).
    `location / name` answers `exists()` with True: the files are the server's to check, and a
    server that is gone shows up as the `RemoteIndexError` of the next query instead."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __truediv__(self, name: str) -> _Location:
        return _Location(f"{self.url}/{name}")

    def exists(self) -> bool:
        return True

    def __str__(self) -> str:
        return self.url


class RemoteIndex(RangeCounts, DocumentIds):
    """A served index (one URL) or one index split over several servers (URLs joined by commas),
    with the index-level interface of `engine.Index`. Open with `RemoteIndex.open(url)`."""

    def __init__(self, spec: str, parts: list[_Part]) -> None:
        self.spec = spec
        self.parts = parts
        first = parts[0]
        for p in parts[1:]:
            m, f = p.manifest, first.manifest
            if (m.token_width, m.vocab_size, m.tokenizer) != (f.token_width, f.vocab_size, f.tokenizer) or \
                    p.info.get("tokenizer_sha256") != first.info.get("tokenizer_sha256"):
                raise RemoteIndexError(f"{p.server.url}: index {p.name} has another tokenizer than "
                                       f"{first.server.url}/{first.name}: not shards of one corpus")
        self.name = first.name
        self.directory = _Location(spec)
        self.width = first.manifest.token_width
        self.tokenizer = for_manifest(_local_tokenizer(first), first.manifest.build)  # normalized alike
        # one manifest for all: the shards of every server, in the order given
        f = first.manifest
        self.manifest = Manifest(token_width=f.token_width, tokenizer=f.tokenizer,
                                 shards=[s for p in parts for s in p.manifest.shards], vocab_size=f.vocab_size,
                                 eos_id=f.eos_id, source=f.source, build=dict(f.build))
        self.shard_base = np.cumsum([0] + [p.n_shards for p in parts])
        docs = [s.documents for s in self.manifest.shards]
        self._doc_base = list(accumulate(docs, initial=0))
        self._unigram: np.ndarray | None = None
        # the servers' limits per request (the strictest of them): bigger batches are split
        self.limits = {k: min(p.limits[k] for p in parts) for k in DEFAULT_LIMITS}
        # values of one array per request: a longest-prefix request carries three arrays of
        # base64 int64 (about 10.7 bytes a value) and must stay under the body limit
        self._cap = max(1, min(self.limits["max_tokens"], (self.limits["max_body"] - (64 << 10)) // 36))
        self._pool = ThreadPoolExecutor(max_workers=len(parts)) if len(parts) > 1 else None

    @classmethod
    def open(cls, spec: str, timeout: float = TIMEOUT) -> RemoteIndex:
        """`http(s)://host:port[/NAME]`, or several joined by commas (one index, shards spread)."""
        urls = [u.strip() for u in spec.split(",") if u.strip()]
        if not urls:
            raise RemoteIndexError(f"{spec!r}: no URL")
        servers: list[_Server] = []
        try:
            return cls(spec, cls._parts(urls, timeout, servers))
        except BaseException as exc:
            for server in servers:  # what was opened is closed: no pool left behind
                server.close()
            if isinstance(exc, MALFORMED):
                raise malformed(spec, exc) from None
            raise

    @staticmethod
    def _parts(urls: list[str], timeout: float, servers: list[_Server]) -> list[_Part]:
        parts = []
        for url in urls:
            split = urlsplit(url)
            server = _Server(url, timeout)
            servers.append(server)
            name = unquote(split.path.strip("/"))
            listing = server.call("GET", "/indexes")
            if not isinstance(listing, dict) or listing.get("api") != API_VERSION:
                raise RemoteIndexError(f"{server.url}: not a tracetui index server of API version {API_VERSION}")
            names = [str(i["name"]) for i in listing.get("indexes", [])]
            if not name:
                if len(names) != 1:
                    raise RemoteIndexError(f"{server.url} serves {len(names)} indexes ({', '.join(names)}): "
                                           "add /NAME to the URL")
                name = names[0]
            elif name not in names:
                raise RemoteIndexError(f"{server.url}: no index named {name!r} (served: {', '.join(names)})")
            limits = listing.get("limits") if isinstance(listing.get("limits"), dict) else None
            info = server.call("GET", "/indexes/" + quote(name, safe=""))
            if not isinstance(info, dict) or not isinstance(info.get("fingerprint"), str):
                raise RemoteIndexError(f"{server.url}: index {name}: no fingerprint in its description")
            parts.append(_Part(server, name, info, limits))
        return parts

    def __repr__(self) -> str:
        return f"RemoteIndex({self.spec!r})"

    # -- plumbing ------------------------------------------------------------------------------
    def _all(self, op: str, bodies: list[dict[str, Any]] | dict[str, Any]) -> list[Any]:
        """`op` on every server (concurrently when there are several), answers in server order."""
        per = bodies if isinstance(bodies, list) else [bodies] * len(self.parts)
        if self._pool is None:
            return [self.parts[0].post(op, per[0])]
        futures = [self._pool.submit(p.post, op, b) for p, b in zip(self.parts, per, strict=True)]
        return [f.result() for f in futures]

    def _part_of(self, shard: int) -> tuple[_Part, int]:
        if not 0 <= shard < int(self.shard_base[-1]):
            raise _BadShard(f"shard {shard} out of range (0..{int(self.shard_base[-1]) - 1})")
        k = int(np.searchsorted(self.shard_base, shard, side="right")) - 1
        return self.parts[k], shard - int(self.shard_base[k])

    @property
    def requests(self) -> int:
        """Round trips made so far (all servers)."""
        return sum(p.server.requests for p in self.parts)

    def close(self) -> None:
        for p in self.parts:
            p.server.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    @cached_property
    def fingerprint(self) -> str:
        fps = [p.info["fingerprint"] for p in self.parts]
        return fps[0] if len(fps) == 1 else hashlib.sha256(",".join(fps).encode()).hexdigest()[:16]

    @property
    def total_tokens(self) -> int:
        return int(self.manifest.tokens)

    @property
    def n_shards(self) -> int:
        return int(self.shard_base[-1])

    def encode(self, text: str) -> np.ndarray:
        return self.tokenizer.encode(text)

    # -- queries (the same answers as engine.Index) ----------------------------------------------
    def find(self, ids: np.ndarray) -> list[tuple[int, int]]:
        lo, hi = self.find_ranges([np.asarray(ids, dtype=np.int64)])
        return [(int(a), int(b)) for a, b in zip(lo[:, 0], hi[:, 0], strict=True)]

    def _seq_groups(self, seqs: list[np.ndarray]) -> list[tuple[int, int]]:
        """[a, b) slices of `seqs` that each fit one request (tokens and sequences under the
        servers' limits). A single sequence over the token limit cannot be asked for."""
        groups: list[tuple[int, int]] = []
        a, tokens = 0, 0
        most = min(self.limits["max_seqs"], self._cap)
        for i, s in enumerate(seqs):
            n = len(s)
            if n > self._cap:
                raise RemoteIndexError(f"{self.spec}: a query of {n} tokens, the server takes at most "
                                       f"{self._cap} per request")
            if i > a and (tokens + n > self._cap or i - a >= most):
                groups.append((a, i))
                a, tokens = i, 0
            tokens += n
        if a < len(seqs):
            groups.append((a, len(seqs)))
        return groups

    def find_ranges(self, seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if not seqs:
            z = np.zeros((self.n_shards, 0), dtype=np.int64)
            return z, z.copy()
        los, his = [], []
        for a, b in self._seq_groups(seqs):
            lo_k, hi_k = [], []
            for ans in self._all("find_ranges", pack_seqs(seqs[a:b])):
                lo_k.append(unpack(ans["lo"]).reshape(-1, b - a))
                hi_k.append(unpack(ans["hi"]).reshape(-1, b - a))
            los.append(np.concatenate(lo_k))
            his.append(np.concatenate(hi_k))
        return np.concatenate(los, axis=1), np.concatenate(his, axis=1)

    def count(self, ids: np.ndarray | Sequence[int]) -> int:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return self.total_tokens
        return int(self.count_many([ids])[0])

    def word_counts(self, lo: np.ndarray, hi: np.ndarray, m: np.ndarray, cap: int | None = None) -> np.ndarray:
        """Each server counts its shards (capped at `cap` itself); the sum capped again is the
        same answer as the local shard-by-shard count (exact up to cap, cap + 1 beyond)."""
        n = len(m)
        # per request: n counts, and each server's shards' lo and hi for them
        step = max(1, min(self.limits["max_seqs"], self._cap // (2 * max(p.n_shards for p in self.parts) + 1)))
        out = []
        for c in range(0, max(n, 1), step):
            sl = slice(c, min(n, c + step))
            bodies = []
            for k in range(len(self.parts)):
                a, b = int(self.shard_base[k]), int(self.shard_base[k + 1])
                bodies.append({"lo": pack(lo[a:b, sl].ravel()), "hi": pack(hi[a:b, sl].ravel()), "m": pack(m[sl]),
                               "cap": cap})
            total = sum(unpack(ans["counts"]) for ans in self._all("word_counts", bodies))
            out.append(np.minimum(total, cap + 1) if cap is not None else np.asarray(total, dtype=np.int64))
        return np.concatenate(out).astype(np.int64)[:n]

    def find_words(self, ids: np.ndarray) -> list[list[tuple[int, int]]]:
        out: list[list[tuple[int, int]]] = [[] for _ in range(self.n_shards)]
        for k, a, b in self.find_words_many([np.asarray(ids, dtype=np.int64)])[0]:
            out[k].append((a, b))
        return out

    def find_words_many(self, seqs: list[np.ndarray]) -> list[list[tuple[int, int, int]]]:
        out: list[list[tuple[int, int, int]]] = [[] for _ in seqs]
        if not seqs:
            return out
        for lo_q, hi_q in self._seq_groups(seqs):
            for k, ans in enumerate(self._all("find_words_many", pack_seqs(seqs[lo_q:hi_q]))):
                q, s, a, b = (unpack(ans[f]) for f in ("seq", "shard", "start", "end"))
                base = int(self.shard_base[k])
                for qi, si, ai, bi in zip(q.tolist(), s.tolist(), a.tolist(), b.tolist(), strict=True):
                    out[lo_q + qi].append((base + si, ai, bi))
        return out

    def word_occurrences(self, ids: np.ndarray, chunk: int = 1 << 18) -> Iterator[tuple[int, np.ndarray]]:
        """As `Index.word_occurrences`. A query that starts with a non-word character has its
        whole-word occurrences as long rank runs: one request for the runs, no ranks shipped. One
        that starts with a word character has them scattered (the left edge is checked per
        occurrence): fetched a chunk per request (memory stays bounded), by raw chunk number: the
        server jumps to the chunk asked for from the runs' lengths."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        if self.tokenizer.word_boundaries().opens_with_break(ids[:1])[0]:
            yield from rank_chunks(self.find_words(ids), chunk)
            return
        for k, p in enumerate(self.parts):
            n = 0
            while True:
                ans = p.post("word_occurrences", {"ids": pack(ids), "chunk": chunk, "skip": n})
                for shard, ranks in zip(ans["shards"], ans["ranks"], strict=True):
                    r = unpack(ranks)
                    if len(r):  # a chunk none of whose occurrences starts a word is skipped, as locally
                        yield int(self.shard_base[k]) + int(shard), r
                if ans["done"]:
                    break
                nxt = ans.get("next")
                if nxt is None and "next" not in ans:  # a server of before raw-chunk paging
                    nxt = n + len(ans["shards"])
                if not isinstance(nxt, int) or nxt <= n:
                    raise RemoteIndexError(f"{p.server.url}: word_occurrences paging did not advance")
                n = nxt

    def count_words(self, ids: np.ndarray | Sequence[int]) -> int:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return self.total_tokens
        answers = self._all("count_words", {"ids": pack(ids)})
        return sum((int(a["count"]) for a in answers), 0)

    def _longest_request(self, piece: np.ndarray, positions: np.ndarray, stops: np.ndarray | None,
                         word_ends: bool) -> tuple[np.ndarray, np.ndarray]:
        """One `longest_prefixes` request to every server, merged as the engine merges its shards."""
        body: dict[str, Any] = {"ids": pack(piece), "word_ends": bool(word_ends), "positions": pack(positions)}
        if stops is not None:
            body["stops"] = pack(stops)
        n = len(positions)
        best = np.zeros(n, dtype=np.int64)
        ends = np.zeros(n, dtype=bool)
        for ans in self._all("longest_prefixes", body):
            got = unpack(ans["lengths"])
            e = unpack(ans["word_ends"]).astype(bool) if word_ends else np.zeros(n, dtype=bool)
            ends = np.where(got > best, e, ends | (e & (got == best)))
            best = np.maximum(best, got)
        return best, ends

    def _longest_batch(self, ids: np.ndarray, pos: np.ndarray, end: np.ndarray, word_ends: bool,
                       with_stops: bool) -> tuple[np.ndarray, np.ndarray]:
        """Longest prefixes of ids[p:end_p] for sorted positions `pos`, in requests under the
        servers' limits: each request carries at most `_cap` positions and the piece of text
        they need, ids[first position : at most first + _cap]. A text longer than that is split
        into pieces that let every position see at least _cap / 2 tokens; a match that reaches
        its piece's end may be longer, and is asked again from its own position."""
        cap, L, n = self._cap, len(ids), len(pos)
        best = np.zeros(n, dtype=np.int64)
        ends = np.zeros(n, dtype=bool)
        again: list[int] = []
        i = 0
        while i < n:
            a = int(pos[i])
            j = min(n, i + cap)
            if L - a > cap:  # the text does not fit from here: positions near the start only
                j = max(i + 1, min(j, int(np.searchsorted(pos, a + cap // 2, side="left"))))
            e = min(L, max(min(a + cap, int(end[i:j].max())), int(pos[j - 1]) + 1))
            stops = np.minimum(end[i:j], e) - a if with_stops else None
            got, ends[i:j] = self._longest_request(ids[a:e], pos[i:j] - a, stops, word_ends)
            best[i:j] = got
            cut = np.flatnonzero((got == e - pos[i:j]) & (e < end[i:j]))  # reached the piece's end
            for c in cut:
                if got[c] >= cap:
                    raise RemoteIndexError(f"{self.spec}: a match of more than {cap} tokens, the most the "
                                           "server takes per request")
                again.append(i + int(c))
            i = j
        if again:
            sel = np.array(again, dtype=np.int64)
            best[sel], ends[sel] = self._longest_batch(ids, pos[sel], end[sel], word_ends, with_stops)
        return best, ends

    def longest_prefixes(self, ids: np.ndarray, positions: np.ndarray | None = None,
                         stops: np.ndarray | None = None) -> np.ndarray:
        """As `Index.longest_prefixes`."""
        return self._longest_prefixes(ids, positions, False, stops)[0]

    def longest_prefixes_witnessed(self, ids: np.ndarray, positions: np.ndarray | None = None,
                                   stops: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As `Index.longest_prefixes_witnessed`."""
        return self._longest_prefixes(ids, positions, True, stops)

    def _longest_prefixes(self, ids: np.ndarray, positions: np.ndarray | None, word_ends: bool,
                          stops: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(`stops`, where given, forwarded: per position, where its match must end.) A batch over
        the servers' limits is split into several requests (see `_longest_batch`), with the same
        answers."""
        ids = np.asarray(ids, dtype=np.int64)
        L = len(ids)
        pos = np.arange(L, dtype=np.int64) if positions is None else np.asarray(positions, dtype=np.int64)
        n = len(pos)
        end = np.full(n, L, dtype=np.int64) if stops is None else np.minimum(np.asarray(stops, dtype=np.int64), L)
        best = np.zeros(n, dtype=np.int64)
        ends = np.zeros(n, dtype=bool)
        if L and n:
            if L <= self._cap and n <= self._cap:  # one request, as the engine's call
                best, ends = self._longest_request(ids, pos, None if stops is None else np.asarray(stops, dtype=np.int64),
                                                   word_ends)
            else:
                order = np.argsort(pos, kind="stable")
                ok = (pos[order] >= 0) & (pos[order] < L)  # as the server, which refuses others
                if not ok.all():
                    raise RemoteIndexError(f"{self.spec}: positions must be positions of ids")
                got, e = self._longest_batch(ids, pos[order], np.maximum(end[order], pos[order]), word_ends,
                                             stops is not None)
                best[order], ends[order] = got, e
        return best, ends

    def ntd(self, prompt: np.ndarray, max_support: int | None = None) -> NextTokens:
        """`index_tools.ngram.ntd`: the sampling stride chosen here from the prompt's count over
        all servers (one more request, only with a `max_support`), each server's shards counted
        with it (`ntd_with_unit`), the distributions summed: the single-index answer."""
        prompt = np.asarray(prompt, dtype=np.int64)
        unit = 1
        if max_support is not None:
            unit = sample_unit(self.count(prompt), max_support)
        ids_all, cnt_all = [], []
        for ans in self._all("ntd", {"ids": pack(prompt), "unit": unit}):
            ids_all.append(unpack(ans["ids"]))
            cnt_all.append(unpack(ans["counts"]))
        ids, cnt = np.concatenate(ids_all), np.concatenate(cnt_all)
        u, inv = np.unique(ids, return_inverse=True)
        counts = np.bincount(inv, weights=cnt).astype(np.int64) if len(u) else np.zeros(0, dtype=np.int64)
        return NextTokens(int(counts.sum()), u, counts, unit > 1)

    def unigram_counts(self) -> np.ndarray:
        if self._unigram is None:
            parts = [unpack(a["counts"]) for a in self._all("unigram_counts", {})]
            self._unigram = np.sum(parts, axis=0).astype(np.int64)
        return self._unigram

    # -- documents (global ids: `DocumentIds`) ------------------------------------------------------

    def windows(self, occurrences: list[tuple[int, int, int]], contexts: tuple[int, ...]) -> list[Occurrence]:
        """As `Index.windows`: one request per server holding some of them, concurrently; more
        than a request may ask for (`max_windows` occurrences, `window_budget` tokens of windows)
        are asked for in several, one after the other."""
        most, budget = self.limits["max_windows"], self.limits["window_budget"]
        out: list[Occurrence] = []
        batch: list[tuple[int, int, int]] = []
        cost = 0
        for o in occurrences:
            c = 2 * sum(contexts) + len(contexts) * int(o[2])  # as the server counts it (`window_cost`)
            if batch and (len(batch) >= most or cost + c > budget):
                out += self._windows(batch, contexts)
                batch, cost = [], 0
            batch.append(o)
            cost += c
        if batch or not occurrences:
            out += self._windows(batch, contexts)
        return out

    def _windows(self, occurrences: list[tuple[int, int, int]], contexts: tuple[int, ...]) -> list[Occurrence]:
        by_part: list[list[int]] = [[] for _ in self.parts]
        local: list[list[list[int]]] = [[] for _ in self.parts]
        for i, (shard, rank, length) in enumerate(occurrences):
            part, n = self._part_of(int(shard))
            k = self.parts.index(part)
            by_part[k].append(i)
            local[k].append([n, int(rank), int(length)])
        out: list[Occurrence | None] = [None] * len(occurrences)
        busy = [k for k in range(len(self.parts)) if by_part[k]]

        def one(k: int) -> Any:
            return self.parts[k].post("windows", {"occurrences": local[k], "contexts": list(contexts)})

        answers = list(self._pool.map(one, busy)) if self._pool is not None and len(busy) > 1 else [one(k) for k in busy]
        for k, ans in zip(busy, answers, strict=True):
            base = int(self.shard_base[k])
            for i, o in zip(by_part[k], ans["occurrences"], strict=True):
                h = o["hit"]
                if len(h) != 7 or not isinstance(o["metadata"], dict):
                    raise ValueError("an occurrence is not [7 integers] with its metadata object")
                hit = Hit(base + int(h[0]), *(int(v) for v in h[1:]))
                out[i] = Occurrence(hit, self.global_doc_id(hit.shard, hit.doc), o["metadata"],
                                    [window_from_json(w) for w in o["windows"]])
        return [o for o in out if o is not None]

    def hit(self, shard: int, rank: int) -> Hit:
        return self.windows([(shard, rank, 0)], ())[0].hit

    def window(self, hit: Hit, length: int, context: int) -> Window:
        return self.windows([(hit.shard, hit.rank, length)], (context,))[0].windows[0]

    def metadata(self, shard: int, doc: int) -> dict[str, Any]:
        part, n = self._part_of(shard)
        meta = part.post("document", {"shard": n, "doc": doc, "tokens": False})["metadata"]
        if not isinstance(meta, dict):
            raise TypeError(f"document metadata is a {type(meta).__name__}, not an object")
        return meta

    def document_tokens(self, shard: int, doc: int) -> np.ndarray:
        """The document's tokens, page by page (a server answers at most its windows budget of
        tokens at once); a server of before paging sends them whole, without `next`."""
        part, n = self._part_of(shard)
        pages, start = [], 0
        while True:
            ans = part.post("document", {"shard": n, "doc": doc, "tokens": True, "start": start})
            pages.append(unpack(ans["tokens"]))
            nxt = ans.get("next")
            if nxt is None:
                break
            if not isinstance(nxt, int) or nxt <= start:
                raise RemoteIndexError(f"{part.server.url}: document paging did not advance")
            start = nxt
        return np.concatenate(pages) if len(pages) > 1 else pages[0]

    def document_text(self, global_id: int) -> str:
        """As `Index.document_text`: a normalized index's original text where the server sends
        it, else the tokens decoded."""
        shard, doc = self.locate_doc(global_id)
        if self.manifest.build.get("normalize"):
            part, n = self._part_of(shard)
            original = part.post("document", {"shard": n, "doc": doc, "tokens": False, "original": True}).get("original")
            if isinstance(original, str):
                return original
        return self.tokenizer.decode(self.document_tokens(shard, doc))


__all__ = ["RemoteIndex", "pack", "unpack", "pack_seqs", "unpack_seqs"]


check_answers(RemoteIndex, ("find", "find_ranges", "count", "count_many", "word_counts", "find_words",
                            "find_words_many", "word_occurrences", "count_words", "longest_prefixes",
                            "longest_prefixes_witnessed", "ntd", "unigram_counts", "windows", "hit", "window",
                            "metadata", "document_tokens", "document_text"), lambda self: self.spec)
