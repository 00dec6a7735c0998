"""The OpenAI-compatible backend against a real server started here (llama-cpp-python's own,
`python -m llama_cpp.server` with the embedded Gemma 3 270M), in chat and continue modes, and its
failures: server killed mid-stream, wrong model name, bad key, unreachable, and (scripted with
httpx's MockTransport) HTTP errors and malformed or truncated events. Each failure is one status
line; the reply keeps what arrived and is traced; the app goes on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.app.screens.models import ModelPickerScreen
from tracetui.cli import main as cli_main
from tracetui.defaults import default_model_path
from tracetui.model import ModelError, ModelSettings, Turn
from tracetui.model_server import ServerBackend, sse_data

from .test_app import wait_idle

KEY = "test-key-123"
#: small and fast: CI's 2 cores run the whole suite
SETTINGS = dict(n_ctx=512, max_tokens=16, temperature=0.0, seed=42, threads=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, tmp: Path, api_key: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = tmp / f"server-{self.port}.log"
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
               "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "512", "--n_threads", "2",
               "--n_threads_batch", "2", "--verbose", "False",
               # the GGUF (a base model) has no chat template: Gemma's turn format for chat
               "--chat_format", "gemma"]
        if api_key:
            cmd += ["--api_key", api_key]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.url + "/models", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("llama_cpp.server did not start in 120 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module, checking its API key."""
    s = Server(tmp_path_factory.mktemp("llama-server"), api_key=KEY)
    yield s
    s.stop()


def server_app(text_index: Path, tmp_path: Path, backend: ServerBackend, **settings) -> TraceApp:  # type: ignore[no-untyped-def]
    return TraceApp(IndexSet.open([text_index]), backend, settings=ModelSettings(**(SETTINGS | settings)),
                    intro="server test", export_dir=tmp_path)


async def send(app: TraceApp, pilot, text: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    app.main.query_one("#prompt").focus()
    await pilot.press(*text, "enter")
    await wait_idle(app, pilot, timeout=timeout)


def one_line(status: str) -> bool:
    return "\n" not in status and len(status) < 600


# -- against the real server ---------------------------------------------------------------------
async def test_chat_and_continue_modes_against_a_real_server(server: Server, text_index: Path,
                                                             tmp_path: Path) -> None:
    backend = ServerBackend(server.url, api_key=KEY)
    app = server_app(text_index, tmp_path, backend)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_idle(app, pilot)
        # the first listed model is used, shown in the header and the status line
        assert backend.model == str(default_model_path())
        assert f"model: {backend.model}" in app.sub_title and "1 model(s)" in app.last_status
        assert app.conversation.mode == "chat"  # the server applies the chat template
        ask = "Tell me about the quick brown fox."
        await send(app, pilot, ask)
        answer = app.conversation.messages[-1]
        assert answer.role == "assistant" and answer.done and answer.text.strip()
        assert answer.trace is not None and answer.trace.text == answer.text
        assert "(done)" in app.last_status and "error" not in app.last_status
        await pilot.press("f3")
        opening = "The quick brown fox"
        await send(app, pilot, opening)
        cont = app.conversation.messages[-1]
        assert cont.text.startswith(opening) and len(cont.text) > len(opening)
        assert cont.trace is not None and cont.trace.text == cont.text and cont.trace.spans
        # continue mode is a plain completion: the same text the server gives for the opening
        direct = httpx.post(server.url + "/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
                            json={"prompt": opening, "max_tokens": 16, "temperature": 0.0, "seed": 42})
        assert cont.text == opening + direct.json()["choices"][0]["text"]


def test_settings_reach_the_server(server: Server) -> None:
    """The embedded model's settings go with every request: max tokens (8 pieces from the real
    server), temperature, top-p and seed (the request bodies, as sent)."""
    s = ModelSettings(**(SETTINGS | {"max_tokens": 8, "temperature": 0.3, "top_p": 0.5, "seed": 7}))
    stop = threading.Event()
    assert len(list(ServerBackend(server.url, api_key=KEY).continue_text("Once upon a time", s, stop))) == 8
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m1"}, {"id": "m2"}]})
        bodies.append((request.url.path, json.loads(request.content)))
        return httpx.Response(200, content=chunk("", "stop") + b"data: [DONE]\n\n")

    backend = ServerBackend("http://scripted.test/v1", transport=httpx.MockTransport(handler))
    list(backend.continue_text("Once", s, stop))
    list(backend.stream([Turn("user", "hi")], s, stop))
    common = {"model": "m1", "stream": True, "max_tokens": 8, "temperature": 0.3, "top_p": 0.5, "seed": 7}
    assert bodies == [("/v1/completions", common | {"prompt": "Once"}),
                      ("/v1/chat/completions", common | {"messages": [
                          {"role": "system", "content": s.system_prompt}, {"role": "user", "content": "hi"}]})]


async def test_escape_closes_the_stream(server: Server, text_index: Path, tmp_path: Path) -> None:
    backend = ServerBackend(server.url, api_key=KEY)
    app = server_app(text_index, tmp_path, backend, max_tokens=400)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("f3")
        app.main.query_one("#prompt").focus()
        await pilot.press(*"The quick brown fox", "enter")
        msg = app.conversation.messages[-1]
        end = time.monotonic() + 120
        while len(msg.text) <= len("The quick brown fox") and time.monotonic() < end:
            await pilot.pause(0.02)
        await pilot.press("escape")
        stopped_at = time.monotonic()
        while app.generating and time.monotonic() < stopped_at + 10:
            await pilot.pause(0.01)
        assert not app.generating and time.monotonic() - stopped_at < 2.0, "Esc ends the reply at once"
        await wait_idle(app, pilot)
        assert msg.trace is not None and msg.trace.text == msg.text
        assert "error" not in app.last_status
        # the server is free again: the next reply comes (and it is short)
        app.settings.max_tokens = 16
        began = time.monotonic()
        await send(app, pilot, "A stitch in time")
        print(f"next reply after Esc: {time.monotonic() - began:.2f} s")
        assert app.conversation.messages[-1].text.startswith("A stitch in time")
        assert len(app.conversation.messages[-1].text) > len("A stitch in time")


async def test_server_killed_mid_stream(text_index: Path, tmp_path: Path) -> None:
    own = Server(tmp_path)  # this one dies
    try:
        backend = ServerBackend(own.url)
        app = server_app(text_index, tmp_path, backend, max_tokens=400)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("f3")
            opening = "The quick brown fox"
            app.main.query_one("#prompt").focus()
            await pilot.press(*opening, "enter")
            msg = app.conversation.messages[-1]
            end = time.monotonic() + 120
            while len(msg.text) <= len(opening) and time.monotonic() < end:
                await pilot.pause(0.02)
            own.stop()
            await wait_idle(app, pilot, timeout=60)
            # what arrived is kept and traced; one status line says what happened
            assert msg.done and len(msg.text) > len(opening) and msg.trace is not None
            assert msg.trace.text == msg.text
            assert "closed the connection mid-reply" in app.last_status and one_line(app.last_status)
            # the app goes on: the next prompt finds nobody there, and says so
            await send(app, pilot, "again")
            assert "unreachable" in app.last_status and one_line(app.last_status)
            assert app.conversation.messages[-1].text == "again"
    finally:
        own.stop()


async def test_wrong_model_name_then_pick_one(server: Server, text_index: Path, tmp_path: Path) -> None:
    backend = ServerBackend(server.url, model="no-such-model", api_key=KEY)
    app = server_app(text_index, tmp_path, backend)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_idle(app, pilot)
        assert "does not list the model 'no-such-model'" in app.last_status
        await pilot.press("f3")
        await send(app, pilot, "The quick brown fox")
        assert "does not serve 'no-such-model'" in app.last_status and one_line(app.last_status)
        assert app.conversation.messages[-1].text == "The quick brown fox"  # nothing arrived
        # F8: the server's models, Enter takes the highlighted one
        await pilot.press("f8")
        await wait_idle(app, pilot)
        assert isinstance(app.screen, ModelPickerScreen)
        await pilot.press("enter")
        await pilot.pause()
        assert backend.model == str(default_model_path()) and backend.model in app.sub_title
        await send(app, pilot, "The quick brown fox")
        assert len(app.conversation.messages[-1].text) > len("The quick brown fox")


async def test_bad_key_and_key_from_the_environment(server: Server, text_index: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    backend = ServerBackend(server.url, api_key="wrong-key")
    app = server_app(text_index, tmp_path, backend)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_idle(app, pilot)
        assert "HTTP 401" in app.last_status and "--api-key" in app.last_status and one_line(app.last_status)
        await send(app, pilot, "hello")
        assert "HTTP 401" in app.last_status and one_line(app.last_status)
        assert app.conversation.messages[-1].text == "" and not app.generating
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert ServerBackend(server.url).list_models() == [str(default_model_path())]


def test_unreachable_server_is_one_line() -> None:
    backend = ServerBackend(f"http://127.0.0.1:{free_port()}/v1", model="m")
    with pytest.raises(ModelError, match="unreachable") as err:
        list(backend.stream([Turn("user", "hi")], ModelSettings(), threading.Event()))
    assert "\n" not in str(err.value)


# -- scripted answers: errors and broken streams ------------------------------------------------------
def scripted(status: int, body: bytes, content_type: str = "text/event-stream") -> ServerBackend:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        return httpx.Response(status, content=iter([body[i : i + 5] for i in range(0, len(body), 5)]),
                              headers={"content-type": content_type})

    return ServerBackend("http://scripted.test/v1", transport=httpx.MockTransport(handler))


def chunk(text: str, finish: str | None = None) -> bytes:
    return f"data: {json.dumps({'choices': [{'text': text, 'finish_reason': finish}]})}\n\n".encode()


def collect(backend: ServerBackend) -> tuple[list[str], str | None]:
    got: list[str] = []
    try:
        for piece in backend.continue_text("x", ModelSettings(), threading.Event()):
            got.append(piece)
    except ModelError as exc:
        assert "\n" not in str(exc)
        return got, str(exc)
    return got, None


@pytest.mark.parametrize(("body", "want"), [
    (chunk("a") + chunk("b") + b"data: {\"choices\": [{\"te\n\n", "malformed or truncated event"),
    (chunk("a") + chunk("b") + b"data: {\"choices\": [{\"text\": \"c", "malformed or truncated event"),
    (chunk("a") + chunk("b"), "without finishing the reply"),
    (chunk("a") + chunk("b") + b'data: {"error": {"message": "out of memory\\nat layer 3"}}\n\n', "out of memory"),
    (chunk("a") + chunk("b") + b"data: [1, 2]\n\n", "not an object"),
])
def test_broken_streams_keep_what_arrived(body: bytes, want: str) -> None:
    got, error = collect(scripted(200, body))
    assert got == ["a", "b"] and error is not None and want in error


def test_whole_streams_and_sse_details() -> None:
    body = b": keep-alive comment\n\nevent: message\nid: 1\n" + chunk("a") + chunk("b", "stop") + b"data: [DONE]\n\n"
    assert collect(scripted(200, body)) == (["a", "b"], None)
    assert collect(scripted(200, chunk("a", "length"))) == (["a"], None)  # finished, no [DONE]: fine
    assert list(sse_data(["data: a", "data:b", "", "data: c\r"])) == ["a\nb", "c"]


@pytest.mark.parametrize(("status", "body", "ctype", "want"), [
    (500, b'{"error": {"message": "model crashed"}}', "application/json", "HTTP 500: model crashed"),
    (404, b'{"detail": "Not Found"}', "application/json", "HTTP 404: Not Found"),
    (502, b"<html>\n<b>Bad gateway</b>\n</html>", "text/html", "HTTP 502: <html> <b>Bad gateway</b> </html>"),
    (401, b'{"detail": "Invalid API key"}', "application/json", "--api-key"),
])
def test_http_errors_are_one_line(status: int, body: bytes, ctype: str, want: str) -> None:
    got, error = collect(scripted(status, body, ctype))
    assert got == [] and error is not None and want in error


def test_cli_options(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen = {}

    def fake_run_app(**kw):  # type: ignore[no-untyped-def]
        seen.update(kw)
        return 0

    monkeypatch.setattr("tracetui.app.main.run_app", fake_run_app)
    assert cli_main(["--model", "http://127.0.0.1:1/v1", "--model-name", "m", "--api-key", "k"]) == 0
    assert seen == {"model": "http://127.0.0.1:1/v1", "indexes": None, "config_path": None, "model_name": "m",
                    "api_key": "k", "in_process": False}
    assert cli_main(["--in-process"]) == 0 and seen["in_process"] is True
    assert cli_main(["--model-name", "m", "count", "x", "--index", "nowhere"]) == 1
    assert "--model-name applies to the app only" in capsys.readouterr().err


def test_run_app_builds_a_server_backend_from_the_config(tmp_path: Path, text_index: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tracetui.app import app as app_module
    from tracetui.app import main as main_module

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'model_url = "http://127.0.0.1:9/v1"\nmodel_name = "m"\ntrace_reasoning = true\n'
                   f'indexes = ["{text_index}"]\n[model]\nmax_tokens = 7\n')
    made = {}
    monkeypatch.setattr(app_module.TraceApp, "run", lambda self: made.setdefault("app", self))
    monkeypatch.setattr(main_module, "data_dir", lambda: tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main_module.run_app(None, None, str(cfg), api_key="k") == 0
    app = made["app"]
    assert isinstance(app.backend, ServerBackend) and app.backend.model == "m" and app.backend_error is None
    assert app.backend.client.headers["authorization"] == "Bearer k"
    assert app.settings.max_tokens == 7 and app.trace_reasoning
    assert os.environ.get("OPENAI_API_KEY") is None


def test_escape_leaves_a_stalled_server_at_once() -> None:
    """A server that answers the headers and then nothing (a long prompt being processed): the
    stop signal shuts the socket, the stream ends without waiting for the read timeout."""
    import socketserver

    class Stall(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = b""  # the whole request (it may arrive in pieces), then nothing but the headers
            while b"\r\n\r\n" not in data:
                data += self.request.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += self.request.recv(65536)
            self.request.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                 b"transfer-encoding: chunked\r\n\r\n")
            self.request.settimeout(30)
            try:
                self.request.recv(1)  # until the client goes away
            except OSError:
                pass

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Stall)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        backend = ServerBackend(f"http://127.0.0.1:{srv.server_address[1]}/v1", model="m", read_timeout=60)
        backend._checked = "m"  # no /models on this server
        stop = threading.Event()
        result: list[object] = []

        def consume() -> None:
            try:
                result.append(list(backend.continue_text("x", ModelSettings(), stop)))
            except Exception as exc:  # noqa: BLE001 - the test reports it
                result.append(exc)

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.5)
        assert t.is_alive(), "the stream waits for the stalled server"
        began = time.monotonic()
        stop.set()
        t.join(5)
        assert not t.is_alive() and time.monotonic() - began < 1.0
        assert result == [[]], "a stream closed by Esc ends quietly"
    finally:
        srv.shutdown()
        srv.server_close()


class PickableScripted:
    """A test double of a server backend for the picker's UI: scripted replies, three models."""

    @staticmethod
    def make():  # type: ignore[no-untyped-def]
        from tracetui.model import ScriptedBackend

        class Double(ScriptedBackend):
            can_pick_model = True

            def __init__(self) -> None:
                super().__init__(["The quick brown fox."])
                self.model = None

            def list_models(self) -> list[str]:
                return ["alpha", "beta", "gamma"]

            def select_model(self, model: str) -> None:
                self.model = model

        return Double()


async def test_model_picker_ui_with_a_test_double(text_index: Path, tmp_path: Path) -> None:
    from tracetui.app.screens.help import HelpScreen
    from tracetui.model import ScriptedBackend

    backend = PickableScripted.make()
    app = TraceApp(IndexSet.open([text_index]), backend, intro="t", export_dir=tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_idle(app, pilot)
        assert backend.model == "alpha" and "using alpha" in app.last_status and "F8" in app.last_status
        assert "model: alpha" in app.sub_title
        assert any(b.action == "pick_model" for _, b, enabled, _ in app.screen.active_bindings.values() if enabled)
        await pilot.press("f8")
        await wait_idle(app, pilot)
        assert isinstance(app.screen, ModelPickerScreen)
        await pilot.press("down", "enter")
        await pilot.pause()
        assert backend.model == "beta" and "model: beta" in app.sub_title
        await pilot.press("f8")
        await wait_idle(app, pilot)
        await pilot.press("escape")  # Esc keeps the model
        await pilot.pause()
        assert backend.model == "beta" and not isinstance(app.screen, ModelPickerScreen)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen) and ("f8", "Model") in app.screen.rows
        await pilot.press("escape")
    # an embedded model: no F8, in the footer or the help
    plain = TraceApp(IndexSet.open([text_index]), ScriptedBackend(["x"]), intro="t", export_dir=tmp_path)
    async with plain.run_test(size=(120, 36)) as pilot:
        assert not any(b.action == "pick_model" for _, b, _, _ in plain.screen.active_bindings.values())
        await pilot.press("f8")
        await pilot.pause()
        assert not isinstance(plain.screen, ModelPickerScreen)
        await pilot.press("f1")
        await pilot.pause()
        assert all(key != "f8" for key, _ in plain.screen.rows)


def test_a_server_that_does_not_stream_or_list_models() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(404, json={"detail": "Not Found"})
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": "Answer.",
                                                                      "reasoning_content": "Hm."}}]})
        return httpx.Response(200, json={"choices": [{"text": " jumps"}]})

    backend = ServerBackend("http://scripted.test/v1", transport=httpx.MockTransport(handler))
    stop = threading.Event()
    with pytest.raises(ModelError, match="HTTP 404.*--model-name"):
        list(backend.continue_text("fox", ModelSettings(), stop))
    backend.select_model("m")  # named: no list needed, the server decides
    assert list(backend.continue_text("fox", ModelSettings(), stop)) == [" jumps"]
    pieces = list(backend.stream([Turn("user", "q")], ModelSettings(), stop))
    assert pieces == ["Hm.", "Answer."] and type(pieces[0]).__name__ == "Reasoning"
