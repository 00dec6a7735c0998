"""A model behind an OpenAI-compatible server (llama.cpp's llama-server, vLLM, Ollama, LM Studio,
SGLang, llama-cpp-python's own): chat mode streams `/v1/chat/completions`, continue mode
`/v1/completions`, both as server-sent events.

The client is httpx with a small SSE reader (below): streaming is one `POST` read line by line,
and the few event shapes these servers send are simpler to check here than through a typed SDK
that would hide a malformed event or a missing `[DONE]`. Esc (the `stop_event`) shuts the socket
down at once, so a server stuck in prompt processing is left immediately and notices the client
went away. Every failure is a `ModelError` with one line of text; the caller keeps what arrived.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from .model import Backend, ModelError, ModelSettings, StopFlag, Turn
from .reasoning import Reasoning

API_KEY_ENV = "OPENAI_API_KEY"
REASONING_FIELDS = ("reasoning_content", "reasoning")


def is_model_url(model: str | None) -> bool:
    return bool(model) and str(model).lower().startswith(("http://", "https://"))


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The `data` of each server-sent event (its `data:` lines joined by newlines); comments,
    `event:`, `id:` and `retry:` fields are skipped. An event cut off by the end of the stream
    (no blank line after it) is still given: its JSON then tells whether it is whole."""
    data: list[str] = []
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _error_text(body: Any) -> str:
    """The message of an OpenAI-style error body ({"error": {"message"}} or {"detail"}), if any."""
    if isinstance(body, dict):
        err = body.get("error", body.get("detail"))
        if isinstance(err, dict):
            err = err.get("message") or err.get("msg") or json.dumps(err)[:200]
        if isinstance(err, list) and err:  # FastAPI validation errors
            first = err[0]
            err = first.get("msg") if isinstance(first, dict) else str(first)
        if err:
            return " ".join(str(err).split())[:300]  # one line, whatever the server put in it
    return ""


class ServerBackend(Backend):
    """An OpenAI-compatible endpoint, `http(s)://HOST:PORT/v1`."""

    has_template = True  # the server applies the model's chat template
    can_pick_model = True

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None,
                 connect_timeout: float = 5.0, read_timeout: float = 120.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        url = url.rstrip("/")
        if not is_model_url(url):
            raise ModelError(f"{url}: a model server URL starts with http:// or https://")
        self.url = url
        self.model = model or None  # None: the first model the server lists
        self.name = f"{url} ({model})" if model else url
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=url, headers=headers, transport=transport,
                                   timeout=httpx.Timeout(read_timeout, connect=connect_timeout))
        self._served: list[str] | None = None  # the last GET /models answer
        self._checked: str | None = None  # the model name that answer was checked against

    # -- requests ----------------------------------------------------------------------------------
    def _fail(self, exc: Exception) -> ModelError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ModelError(f"model server {self.url} unreachable ({exc})")
        if isinstance(exc, httpx.ReadTimeout):
            return ModelError(f"model server {self.url} sent nothing for {self.client.timeout.read:.0f} s")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return ModelError(f"model server {self.url} closed the connection mid-reply ({exc})")
        return ModelError(f"model server {self.url}: {type(exc).__name__}: {exc}")

    def _status_error(self, response: httpx.Response) -> ModelError:
        try:
            response.read()
        except httpx.HTTPError:
            detail = ""
        else:
            try:
                detail = _error_text(response.json())
            except ValueError:
                detail = " ".join(response.text[:200].split())
        hint = " (check --api-key or $OPENAI_API_KEY)" if response.status_code in (401, 403) else ""
        what = f"{response.request.method} {response.request.url.path}"
        return ModelError(f"model server answered {what} with HTTP {response.status_code}"
                          + (f": {detail}" if detail else "") + hint)

    def list_models(self) -> list[str]:
        """The ids `GET /models` lists (the server's order)."""
        try:
            response = self.client.get("/models")
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        if response.status_code != 200:
            raise self._status_error(response)
        try:
            ids = [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"model server {self.url}: GET /models answered no model list") from None
        self._served = ids
        return ids

    def select_model(self, model: str) -> None:
        self.model = model
        self.name = f"{self.url} ({model})"

    def _model_for_request(self) -> str:
        """The model to ask for: the chosen one, checked once against the server's list (many
        servers answer with whatever model they have instead of refusing a wrong name), else
        the first one listed."""
        if self.model is not None and self._checked == self.model:
            return self.model
        try:
            served = self.list_models()
        except ModelError as exc:
            if self.model is None:
                raise ModelError(f"{exc} (--model-name names the model to ask for)") from None
            return self.model  # no usable list (some servers lack /models): the server decides
        if self.model is None:
            if not served:
                raise ModelError(f"model server {self.url} serves no model")
            self.select_model(served[0])
        elif served and self.model not in served:
            shown = ", ".join(served[:5]) + (" …" if len(served) > 5 else "")
            raise ModelError(f"model server {self.url} does not serve {self.model!r} (it serves {shown}; "
                             "F8 picks one)")
        self._checked = self.model
        assert self.model is not None
        return self.model

    def _payload(self, settings: ModelSettings) -> dict[str, Any]:
        return {"model": self._model_for_request(), "stream": True, "max_tokens": settings.max_tokens,
                "temperature": settings.temperature, "top_p": settings.top_p, "seed": settings.seed}

    def stream(self, turns: list[Turn], settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        msgs = [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else []
        msgs += [{"role": t.role, "content": t.text} for t in turns]
        body = self._payload(settings) | {"messages": msgs}
        yield from self._events("/chat/completions", body, stop_event, chat=True)

    def continue_text(self, opening: str, settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        body = self._payload(settings) | {"prompt": opening}
        yield from self._events("/completions", body, stop_event, chat=False)

    # -- the stream ----------------------------------------------------------------------------------
    def _events(self, path: str, body: dict[str, Any], stop: StopFlag, chat: bool) -> Iterator[str]:
        if stop.is_set():
            return
        try:
            request = self.client.build_request("POST", path, json=body)
            response = self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._fail(exc) from None
        closed = threading.Event()
        watcher = threading.Thread(target=_close_on_stop, args=(response, stop, closed), daemon=True,
                                   name="model-server-stop")
        watcher.start()
        try:
            if response.status_code != 200:
                raise self._status_error(response)
            if response.headers.get("content-type", "").startswith("application/json"):
                yield from self._whole(response, chat)  # a server that does not stream
            else:
                yield from self._pieces(response, stop, chat)
        except httpx.HTTPError as exc:
            if not stop.is_set():  # a stream Esc closed ends quietly
                raise self._fail(exc) from None
        finally:
            closed.set()
            response.close()

    def _whole(self, response: httpx.Response, chat: bool) -> Iterator[str]:
        """A whole completion in one JSON answer (the server ignored `stream`)."""
        response.read()
        try:
            choice = response.json()["choices"][0]
            part = choice["message"] if chat else choice
            for name in REASONING_FIELDS if chat else ():
                if isinstance(part.get(name), str) and part[name]:
                    yield Reasoning(part[name])
            text = part["content"] if chat else part["text"]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ModelError(f"model server {self.url} answered JSON that is no completion: "
                             f"{' '.join(response.text[:80].split())!r}") from None
        if isinstance(text, str) and text:
            yield text

    def _pieces(self, response: httpx.Response, stop: StopFlag, chat: bool) -> Iterator[str]:
        finished = False
        for data in sse_data(response.iter_lines()):
            if stop.is_set():
                return
            if data.strip() == "[DONE]":
                return
            try:
                event = json.loads(data)
            except ValueError:
                raise ModelError(f"model server {self.url} sent a malformed or truncated event: "
                                 f"{data[:80]!r}") from None
            if not isinstance(event, dict):
                raise ModelError(f"model server {self.url} sent an event that is not an object: {data[:80]!r}")
            if "error" in event:
                raise ModelError(f"model server {self.url} reported an error mid-reply: "
                                 f"{_error_text(event) or data[:120]}")
            choices = event.get("choices") or []
            if not isinstance(choices, list):
                raise ModelError(f"model server {self.url} sent an event without choices: {data[:80]!r}")
            for choice in choices[:1]:
                if not isinstance(choice, dict):
                    continue
                if chat:
                    delta = choice.get("delta") or {}
                    for name in REASONING_FIELDS:
                        if isinstance(delta.get(name), str) and delta[name]:
                            yield Reasoning(delta[name])
                    piece = delta.get("content")
                else:
                    piece = choice.get("text")
                if isinstance(piece, str) and piece:
                    yield piece
                if choice.get("finish_reason"):
                    finished = True
        if not finished and not stop.is_set():
            raise ModelError(f"model server {self.url} ended the stream without finishing the reply "
                             "(no [DONE]): truncated")


def _close_on_stop(response: httpx.Response, stop: StopFlag, closed: threading.Event) -> None:
    """Esc: shut the socket down so that a read blocked on it returns now, then close."""
    while not closed.is_set():
        if stop.wait(0.05):
            break
    if closed.is_set():
        return
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
