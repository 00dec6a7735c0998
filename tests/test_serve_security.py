"""`tracetui serve` is safe to expose (issue 19, section 1): a bearer token for every request when
one is set (and required off loopback), Host checked against DNS rebinding, JSON-only POST bodies,
no CORS headers, and bounded answers (documents in pages, `find_words_many` budgeted)."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from index_tools.errors import RemoteIndexError
from index_tools.serve_ops import Limits
from tracetui.cli import main
from tracetui.serve import check_request, is_loopback

from .conftest import write_jsonl
from .test_serve import AppServer

uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (starlette, uvicorn) is in the test extra")
pytest.importorskip("starlette")

DOCS = ["the cat sat on the mat today. " * 40, "a dog barked at the moon", "the cat ran"]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sec")
    build_index([write_jsonl(d / "c.jsonl", DOCS)], d / "ix", BuildOptions(tokenizer="bytes", progress=False))
    return d / "ix"


class Server(AppServer):
    """One index served in a thread, with a raw request helper (headers as given)."""

    def __init__(self, directory: Path, **app_options: Any) -> None:
        super().__init__([directory], **app_options)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(raw) if raw else None
        finally:
            conn.close()



COUNT = json.dumps({"query_type": "count", "query": " cat"}).encode()
JSON_CT = {"Content-Type": "application/json"}


def test_check_request_rules() -> None:
    allowed = frozenset({"corpus.lan"})
    ok = {"host": "127.0.0.1:8000", "content-type": "application/json; charset=utf-8"}
    assert check_request("POST", ok, None, allowed) is None
    for host in ("localhost:8000", "[::1]:8000", "10.0.0.7", "corpus.lan:80", "CORPUS.LAN"):
        assert check_request("GET", {"host": host}, None, allowed) is None, host
    for host in ("evil.example:8000", "localhost.evil.example", "corpus.lan.evil.example"):
        assert check_request("GET", {"host": host}, None, allowed)[0] == 403, host
    assert check_request("POST", {"host": "127.0.0.1", "content-type": "text/plain"}, None, allowed)[0] == 415
    assert check_request("POST", {"host": "127.0.0.1"}, None, allowed)[0] == 415
    assert check_request("GET", {"host": "127.0.0.1"}, "s3cret", allowed)[0] == 401
    assert check_request("GET", {"host": "127.0.0.1", "authorization": "Bearer wrong"}, "s3cret", allowed)[0] == 401
    assert check_request("GET", {"host": "127.0.0.1", "authorization": "Bearer s3cret"}, "s3cret", allowed) is None
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("corpus.lan")


def test_a_token_guards_every_request_and_the_client_sends_it(index_dir: Path, monkeypatch) -> None:
    from index_tools.remote import RemoteIndex

    server = Server(index_dir, token="s3cret")
    try:
        for method, path, body in (("GET", "/", None), ("GET", "/indexes", None), ("POST", "/", COUNT),
                                   ("GET", "/indexes/ix/tokenizer.json", None), ("POST", "/indexes/ix/count_words", b"{}")):
            st, headers, answer = server.request(method, path, body, JSON_CT)
            assert st == 401 and headers.get("www-authenticate") == "Bearer" and "token" in answer["error"], path
        st, _, answer = server.request("POST", "/", COUNT, {**JSON_CT, "Authorization": "Bearer s3cret"})
        assert st == 200 and answer["count"] == 41  # 40 in the first document, 1 in the third
        # the client: a one-line error without the token, the same answers as local with it
        monkeypatch.delenv("TRACETUI_TOKEN", raising=False)
        with pytest.raises(RemoteIndexError, match="needs a token"):
            RemoteIndex.open(f"{server.url}/ix")
        monkeypatch.setenv("TRACETUI_TOKEN", "wrong")
        with pytest.raises(RemoteIndexError, match="refused the token"):
            RemoteIndex.open(f"{server.url}/ix")
        monkeypatch.setenv("TRACETUI_TOKEN", "s3cret")
        remote, local = RemoteIndex.open(f"{server.url}/ix"), Index.open(index_dir)
        ids = local.encode(" cat")
        assert remote.count_words(ids) == local.count_words(ids) > 0
        assert remote.document_text(0) == local.document_text(0)
    finally:
        server.stop()


def test_cli_token_option_reaches_a_guarded_server(index_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("TRACETUI_TOKEN", raising=False)
    server = Server(index_dir, token="s3cret")
    try:
        assert main(["count", "--index", f"{server.url}/ix", " cat"]) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "needs a token" in err
        assert main(["count", "--index", f"{server.url}/ix", "--token", "s3cret", " cat", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["results"][0]["count"] == Index.open(index_dir).count_words(Index.open(index_dir).encode(" cat"))
    finally:
        server.stop()


def test_host_content_type_and_no_cors(index_dir: Path) -> None:
    server = Server(index_dir, allowed_hosts=("corpus.lan",))
    try:
        st, _, answer = server.request("POST", "/", COUNT, {**JSON_CT, "Host": "evil.example"})
        assert st == 403 and "not allowed" in answer["error"]  # a rebound name: refused
        st, _, _ = server.request("POST", "/", COUNT, {**JSON_CT, "Host": "corpus.lan:8000"})
        assert st == 200
        st, _, answer = server.request("POST", "/", COUNT, {"Content-Type": "text/plain"})
        assert st == 415 and "JSON" in answer["error"]  # what a web page can send without a preflight
        st, headers, _ = server.request("POST", "/", COUNT, {**JSON_CT, "Origin": "http://evil.example"})
        assert st == 200 and not any(k.startswith("access-control-") for k in headers)
        st, headers, _ = server.request("OPTIONS", "/", None, {"Origin": "http://evil.example",
                                                                "Access-Control-Request-Method": "POST"})
        assert st != 200 and not any(k.startswith("access-control-") for k in headers)
    finally:
        server.stop()


def test_a_document_comes_in_pages_under_the_budget(index_dir: Path) -> None:
    from index_tools.remote import RemoteIndex

    server = Server(index_dir, limits=Limits(window_budget=100))
    try:
        local = Index.open(index_dir)
        size = len(local.document_tokens(0, 0))
        assert size > 1000
        body = json.dumps({"shard": 0, "doc": 0, "tokens": True}).encode()
        st, _, page = server.request("POST", "/indexes/ix/document", body, JSON_CT)
        assert st == 200 and page["size"] == size and page["next"] == 100
        remote = RemoteIndex.open(f"{server.url}/ix")
        assert np.array_equal(remote.document_tokens(0, 0), local.document_tokens(0, 0))
        assert remote.document_text(0) == local.document_text(0)
    finally:
        server.stop()


def test_non_loopback_bind_without_a_token_is_refused_in_one_line(index_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("TRACETUI_TOKEN", raising=False)
    started = time.monotonic()
    assert main(["serve", "--index", str(index_dir), "--host", "0.0.0.0", "--port", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs a token" in err and time.monotonic() - started < 10
