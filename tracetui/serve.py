"""`tracetui serve`: indexes over HTTP, read-only (Starlette on uvicorn; `pip install 'tracetui[serve]'`).

Two families of endpoints, both JSON over POST, both answering `{"error": "..."}` with a 4xx
status on bad input (5xx only for a fault of the server itself), and never taking the server
down:

- `POST /` and `GET /`: infini-gram's public API, answered as infini-gram's own server answers it
  (fields, limits, statuses: `index_tools.infinigram_serve`); tracetui's additions there are
  `"whole_words": true` on `count`, `"exact": true` on `ntd`, and the `attribute` query type.
  `--infinigram-api-only` serves this API alone, without the additions or the endpoints below.
- `GET /indexes`, `GET /indexes/NAME`, `GET /indexes/NAME/tokenizer.json` and `POST
  /indexes/NAME/OP`: the index-level operations of `engine.Index` that `RemoteIndex`
  (index_tools/remote.py) forwards, batched (a whole trace is a handful of requests) and with
  arrays as base64 of little-endian int64.

This module is the HTTP application only: the operations themselves, their input checks and
limits are `index_tools.serve_ops`, beside the wire format they speak. Each
request runs on a worker thread under a time limit: a 504 at the deadline, and its work stopped
within one bounded engine call (`index_tools.serve_work`: a thread cannot be killed, so costly work
is cut into pieces with a deadline check between them; a client that goes away stops its work
the same way). The cost of a request is predicted from counts before its expensive part: an
exact answer that would read more than `max_work` suffixes is a 413, and a costly one computes
in the heavy lane (one at a time, yielding to cheap requests; too many waiting: a 503) while
WORKERS cheap ones compute in the light lane. Bodies are bounded (413), and every size a
request can ask for is bounded too, the whole answer included (`windows`: at most
WINDOW_BUDGET tokens of windows per request). The limits are published in `GET /indexes`
("limits"): `RemoteIndex` splits a bigger batch into requests under them. More than MAX_PENDING
requests at once get a JSON 503; idle connections cost nothing (no uvicorn `limit_concurrency`)
and are closed after KEEP_ALIVE seconds.

Safe to expose (`guard`, in front of every route): a bind that is not loopback needs a bearer token
(`--token` or TRACETUI_TOKEN), and then every request without `Authorization: Bearer TOKEN` is a
401; a `Host` that is neither an IP address, `localhost`, the bound name nor an `--allow-host`
name is a 403 (DNS rebinding: a web page's requests carry the page's own host name); a POST body
must be declared `application/json` (415: a page can send text/plain without a preflight); no
CORS headers are ever sent. Everything is read-only, and every answer is bounded: a document's
tokens come in pages of at most `window_budget` tokens, `find_words_many` answers at most
MAX_RUNS runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from index_tools import serve_work as work
from index_tools.contract import IndexLike
from index_tools.engine import Index
from index_tools.errors import IndexToolsError
from index_tools.opening import IndexSet, is_index_url
from index_tools.serve_ops import (
    DEFAULT_LIMITS,
    MAX_BODY,
    NTD_MAX_SUPPORT,
    OPS,
    BadRequest,
    Limits,
)
from index_tools.serve_work import Budget, Deadline, TooCostly
from index_tools.wire import API_VERSION, TOKEN_ENV

TIMEOUT = 60.0  # seconds of work per request
WORKERS = 4  # requests computed at once (the light lane; costly ones one at a time: `serve_work`)
THREADS = 32  # worker threads: computing, or waiting for a lane
MAX_PENDING = 256  # requests computing or waiting for a worker; beyond, a JSON 503
KEEP_ALIVE = 5  # seconds an idle kept-alive connection stays open


def uvicorn_options() -> dict[str, Any]:
    """uvicorn's settings for `serve` (the tests start their servers with the same): no
    `limit_concurrency` (it counts idle connections too, so a few dozen idle clients would make
    every request a plain-text 503; work is bounded by the thread pool and MAX_PENDING), and a
    short keep-alive (the client reconnects once when an idle connection was closed)."""
    return {"timeout_keep_alive": KEEP_ALIVE}


# -- who may ask ----------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    """Does a bind address accept connections from this machine only?"""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name in a Host header, without its port (IPv6 literals keep their brackets off)."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def check_request(method: str, headers: dict[str, str], token: str | None,
                  allowed_hosts: frozenset[str]) -> tuple[int, str] | None:
    """Why a request is refused, as (status, message), or None: the Host check (DNS rebinding),
    the bearer token, and JSON-only POST bodies. `headers` have lower-case names."""
    host = headers.get("host")
    if host is not None:
        name = _host_name(host)
        try:
            ipaddress.ip_address(name)
            literal = True
        except ValueError:
            literal = False
        if not (literal or name == "localhost" or name in allowed_hosts):
            return 403, f"host {name!r} not allowed (serve --allow-host NAME)"
    if token is not None:
        got = headers.get("authorization", "")
        want = f"Bearer {token}"
        if not hmac.compare_digest(got.encode("utf-8", "surrogateescape"), want.encode("utf-8", "surrogateescape")):
            return 401, "a bearer token is needed (Authorization: Bearer TOKEN)"
    if method == "POST":
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            return 415, "POST bodies must be JSON (Content-Type: application/json)"
    return None


def guard(app: Any, token: str | None, allowed_hosts: frozenset[str]) -> Any:
    """The ASGI application `app` behind `check_request`: refused requests never reach it."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refused = check_request(scope.get("method", "GET"), headers, token, allowed_hosts)
        if refused is None:
            await app(scope, receive, send)
            return
        status, message = refused
        body = json.dumps({"error": message}).encode("ascii")
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *extra]})
        await send({"type": "http.response.body", "body": body})

    return guarded


# -- the application ------------------------------------------------------------------------------
def create_app(indexes: IndexSet, timeout: float = TIMEOUT, max_body: int = MAX_BODY,
               limits: Limits | None = None, max_pending: int = MAX_PENDING, token: str | None = None,
               allowed_hosts: tuple[str, ...] = (), infinigram_api_only: bool = False) -> Any:
    """The Starlette application serving `indexes` (by name, as `IndexSet` made them unique),
    behind `guard` (`token`: the bearer token every request must carry; `allowed_hosts`: Host
    names accepted besides IP addresses and localhost). `limits` bound each request (published in
    `GET /indexes`); more than `max_pending` requests computing or waiting for a worker at once
    are answered with a JSON 503. `infinigram_api_only`: only infini-gram's API (`POST /`, `GET /`
    listing the index names), none of tracetui's own endpoints or additions."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def render(content: Any) -> bytes:
        """ASCII-only JSON that also carries what corpus metadata may hold: NaN (Python's json
        writes it) and lone surrogates (escaped), either of which would make a 500 otherwise."""
        return json.dumps(content, ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode("ascii")

    class JSON(JSONResponse):
        def render(self, content: Any) -> bytes:
            return render(content)

    lim = limits if limits is not None else replace(DEFAULT_LIMITS, max_body=max_body)
    max_body = lim.max_body
    # "running": requests computing or queued, counted until their work ends (also after a 504);
    # "stopped": work stopped past its deadline. The event loop is one thread: no lock needed.
    stats = {"running": 0, "stopped": 0}
    by_name = {ix.name: _local(ix) for ix in indexes}
    pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="tracetui-serve")
    lanes = work.Lanes(light=WORKERS)

    def info(ix: Index) -> dict[str, Any]:
        tok = "" if ix.manifest.tokenizer == "bytes" else hashlib.sha256(
            (ix.directory / ix.manifest.tokenizer).read_bytes()).hexdigest()
        return {"name": ix.name, "fingerprint": ix.fingerprint, "manifest": json.loads(ix.manifest.to_json()),
                "tokenizer_sha256": tok}

    infos = {name: info(ix) for name, ix in by_name.items()}  # read once: the files are immutable

    def error(status: int, message: str) -> JSONResponse:
        return JSON({"error": message}, status_code=status)

    def index_of(name: str | None) -> Index:
        if name is None and len(by_name) == 1:
            return next(iter(by_name.values()))
        if not isinstance(name, str) or name not in by_name:
            raise BadRequest(f"no index named {name!r} (served: {', '.join(by_name)})", 404)
        return by_name[name]

    async def body_of(request: Request) -> dict[str, Any]:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > max_body):
            raise BadRequest(f"request body over {max_body} bytes", 413)
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > max_body:
                raise BadRequest(f"request body over {max_body} bytes", 413)
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("body: not JSON") from None
        except RecursionError:
            raise BadRequest("body: JSON nested too deeply") from None
        if not isinstance(body, dict):
            raise BadRequest("body: expected a JSON object")
        return body

    def finished(f: asyncio.Future[Any]) -> None:
        stats["running"] -= 1
        if not f.cancelled():
            f.exception()  # retrieved: the work of an answered request may end in Deadline

    async def watch(request: Request, budget: Budget) -> None:
        """Cancel the budget when the client goes away (its answer would be thrown away)."""
        while True:
            message = await request.receive()
            if message.get("type") == "http.disconnect":
                budget.cancel("the client went away", client_gone=True)
                return

    async def run(fn: Callable[[], Any], request: Request, stamp: bool = True) -> Response:
        """fn on a worker under a `Budget` of `timeout` seconds. The answer is a 504 at the
        deadline; the work itself stops at its next check (`serve_work`), and only then is its
        worker counted free (`stats["running"]` counts work, not answers)."""
        if stats["running"] >= max_pending:
            return error(503, f"server busy: {stats['running']} requests under way, try again")
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        budget = Budget(timeout)
        stats["running"] += 1
        def rendered() -> tuple[int, bytes]:
            """The answer computed and written as JSON on the worker: a large answer's encoding
            would otherwise hold the event loop, and every other client with it."""
            out = work.within(budget, fn, lanes)
            status = 200
            if isinstance(out, tuple):  # (status, answer): infini-gram's API sets both
                status, out = out
            if stamp:
                out["latency"] = round((time.perf_counter() - t0) * 1000, 3)
            return status, render(out)

        fut = loop.run_in_executor(pool, rendered)
        fut.add_done_callback(finished)
        watcher = asyncio.ensure_future(watch(request, budget))
        try:
            both: set[asyncio.Future[Any]] = {fut, watcher}
            await asyncio.wait(both, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not fut.done():
                budget.cancel(f"the query took longer than {timeout:g} s")
                stats["stopped"] += 1
                return error(499 if budget.client_gone else 504,
                             f"{budget.reason} (its work is stopped)")
            status, body = fut.result()
        except Deadline as exc:
            stats["stopped"] += 1
            return error(504, f"{exc} (its work is stopped)")
        except TooCostly as exc:
            return error(413, str(exc))
        except work.Busy as exc:
            return error(503, str(exc))
        except BadRequest as exc:
            return error(exc.status, str(exc))
        except (IndexToolsError, ValueError, IndexError, OverflowError, RecursionError) as exc:
            return error(400, f"{type(exc).__name__}: {exc}")  # an input the checks let through
        finally:
            watcher.cancel()
        return Response(body, status_code=status, media_type="application/json")

    from index_tools.infinigram_serve import Processor, answer

    from .tracing.spans import find_spans

    # infini-gram's API (`POST /`): its Processor per index, as its server answers
    processors = {name: Processor(ix, extras=not infinigram_api_only, default_max_support=NTD_MAX_SUPPORT,
                                  span_finder=find_spans)
                  for name, ix in by_name.items()}

    async def api(request: Request) -> Response:
        try:
            body = await body_of(request)
        except BadRequest as exc:
            return error(exc.status, str(exc))
        for p in processors.values():  # read at each request (tests lower it)
            p.engine.max_support = NTD_MAX_SUPPORT
        return await run(lambda: answer(processors, body, infinigram_api_only), request, stamp=False)

    async def names(request: Request) -> Response:
        return JSON(list(by_name))

    async def listing(request: Request) -> Response:
        return JSON({"api": API_VERSION, "limits": lim.to_json(), "indexes": [
            {"name": n, "fingerprint": i["fingerprint"], "tokens": by_name[n].manifest.tokens,
             "documents": by_name[n].manifest.documents} for n, i in infos.items()]})

    async def index_info(request: Request) -> Response:
        try:
            return JSON(infos[index_of(request.path_params["name"]).name])
        except BadRequest as exc:
            return error(exc.status, str(exc))

    async def tokenizer(request: Request) -> Response:
        try:
            ix = index_of(request.path_params["name"])
        except BadRequest as exc:
            return error(exc.status, str(exc))
        if ix.manifest.tokenizer == "bytes":
            return error(404, "this index uses the bytes tokenizer (no tokenizer.json)")
        # decoded as is (no newline translation): the client checks the digest of these bytes
        text = (ix.directory / ix.manifest.tokenizer).read_bytes().decode("utf-8")
        return JSON({"tokenizer": text})

    async def operation(request: Request) -> Response:
        try:
            ix = index_of(request.path_params["name"])
            op = OPS.get(request.path_params["op"])
            if op is None:
                raise BadRequest(f"no operation {request.path_params['op']!r} (one of {', '.join(OPS)})", 404)
            body = await body_of(request)
        except BadRequest as exc:
            return error(exc.status, str(exc))
        return await run(lambda: op(ix, body, lim), request)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else f"internal error: {type(exc).__name__}"
        return error(status, str(detail))

    routes = [
        Route("/", api, methods=["POST"]),
        Route("/", names, methods=["GET"]),  # infini-gram's: the index names
        Route("/indexes", listing, methods=["GET"]),
        Route("/indexes/{name}", index_info, methods=["GET"]),
        Route("/indexes/{name}/tokenizer.json", tokenizer, methods=["GET"]),
        Route("/indexes/{name}/{op}", operation, methods=["POST"]),
    ][: 2 if infinigram_api_only else None]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: http_error})
    guarded = guard(app, token or None, frozenset(h.lower() for h in allowed_hosts))
    guarded.stats = stats  # read by tests: work still running, work stopped
    return guarded


def bound_heap() -> bool:
    """Keep the server's heap from growing with the largest temporaries it ever held (glibc only;
    False elsewhere). glibc raises its mmap threshold to the size of each large block freed, up to
    32 MB, so after a few costly requests arrays of that size come from the heap and are kept
    there when freed, in each of up to 8 x cores arenas (one per worker thread): a server's heap
    grew to about 1 GB under the load benchmark. A fixed threshold of 1 MB gives large arrays
    back to the system when freed; four arenas bound the rest."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_mmap_threshold, m_arena_max = -3, -8  # malloc.h
        return bool(libc.mallopt(m_mmap_threshold, 1 << 20)) and bool(libc.mallopt(m_arena_max, 4))
    except (OSError, AttributeError):  # not glibc (musl): nothing to tune
        return False


def _local(ix: IndexLike) -> Index:
    """The server's operations read shards: it serves local index directories only."""
    if not isinstance(ix, Index):
        raise IndexToolsError(f"{ix.name}: serve takes index directories, not a served or remote index")
    return ix


def open_served(directories: list[str]) -> IndexSet:
    """The indexes to serve: directories only (a server in front of another server adds nothing)."""
    for d in directories:
        if is_index_url(d):
            raise IndexToolsError(f"{d}: serve takes index directories, not URLs")
    return IndexSet([Index.open(Path(d)) for d in directories])


def serve(directories: list[str], host: str = "127.0.0.1", port: int = 8000, timeout: float = TIMEOUT,
          token: str | None = None, allow_hosts: tuple[str, ...] = (), infinigram_api_only: bool = False) -> None:
    """Open the indexes and serve them until interrupted. A bind other than loopback needs a
    token (`token`, else TRACETUI_TOKEN): a corpus is never served to anyone who asks.
    `infinigram_api_only`: infini-gram's API alone (`POST /`, `GET /`), as its own server."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        raise IndexToolsError(f"serve: listening on {host} (not loopback) needs a token: --token TOKEN or "
                              f"{TOKEN_ENV}=TOKEN (clients then send it the same way)")
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise IndexToolsError("serving needs Starlette and uvicorn: pip install 'tracetui[serve]'") from None
    bound_heap()
    indexes = open_served(directories)
    names = tuple(allow_hosts) + ((host,) if host not in ("0.0.0.0", "::", "") else ())
    app = create_app(indexes, timeout=timeout, token=token, allowed_hosts=names,
                     infinigram_api_only=infinigram_api_only)
    shown = f"[{host}]" if ":" in host else host
    for ix in indexes:
        print(f"tracetui: serving {ix.name} ({ix.manifest.tokens:,} tokens) at http://{shown}:{port}/{quote(ix.name, safe='')}",
              file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="info", **uvicorn_options())


__all__ = ["check_request", "guard", "is_loopback", "create_app", "serve", "open_served", "uvicorn_options"]
