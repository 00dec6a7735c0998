"""The embedded model in a child process, behind the same `Backend` interface.

llama.cpp releases the GIL while it evaluates, but the Python around each token (sampling glue,
detokenising, the stream's dictionaries) runs under the UI interpreter's lock and competes with
rendering and tracing. Here the model lives in its own interpreter: the UI process only reads the
pieces from a pipe. The child speaks a small streaming protocol, the same shape as a model
server's (a request, then pieces, then an end or an error):

    parent -> child   ("stream", turns, settings) | ("continue", opening, settings) | ("quit",)
    child -> parent   ("ready", name, has_template) | ("error", text) once at start;
                      ("piece", str | Reasoning)* then ("done",) or ("error", text) per request

Stopping is a shared `multiprocessing.Event` the child's stream checks between tokens. A child
that dies (a crash, the OOM killer) ends the reply with one error; the next reply starts a new
child. The child exits when the parent does: its pipe reaches end of file, and on Linux the
kernel signals it when the parent dies (PR_SET_PDEATHSIG), so no model process outlives the app.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from ..model import Backend, LlamaBackend, ModelError, ModelSettings, StopFlag, Turn, check_gguf
from .children import die_with_parent, quiet_stderr, start_resource_tracker, stop_child

START_TIMEOUT = 300.0  # seconds for the child to load the model (a large GGUF from a cold disk)
POLL = 0.05  # seconds between checks of the stop signal and the child's life while waiting


def serve_model(conn: Connection, path: str, settings: ModelSettings, stop: MpEvent) -> None:
    """The child's main loop: load the model, then answer requests until "quit" or end of file."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C belongs to the UI
    quiet_stderr()
    try:
        backend = LlamaBackend(path, settings)
    except ModelError as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("ready", backend.name, backend.has_template))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "quit":
            return
        kind, payload, req_settings = msg
        try:
            pieces = (backend.continue_text(payload, req_settings, stop) if kind == "continue"
                      else backend.stream(payload, req_settings, stop))
            for piece in pieces:
                conn.send(("piece", piece))
            conn.send(("done",))
        except ModelError as exc:
            conn.send(("error", str(exc)))
        except (BrokenPipeError, EOFError):
            return
        except Exception as exc:  # reported as the reply's error; the child serves the next one
            conn.send(("error", f"model failed: {exc}"))


class ChildModel(Backend):
    """A GGUF model generating in a child process (one request at a time, like llama.cpp)."""

    def __init__(self, path: str | Path, settings: ModelSettings, start_timeout: float = START_TIMEOUT) -> None:
        path = check_gguf(path)  # the clear errors of LlamaBackend, without starting a process
        self.path, self.settings, self.start_timeout = path, settings, start_timeout
        self._ctx = mp.get_context("spawn")  # fork would copy the UI's threads' locks
        start_resource_tracker()
        self._stop: MpEvent = self._ctx.Event()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.name = path.name
        self._start()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=serve_model, args=(child, str(self.path), self.settings, self._stop),
                                 name="tracetui-model", daemon=True)
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        msg = self._recv(self.start_timeout, starting=True)
        if msg[0] == "error":
            self.close()
            raise ModelError(str(msg[1]))
        _, self.name, self.has_template = msg

    def _recv(self, timeout: float, starting: bool = False) -> tuple[Any, ...]:
        """The child's next message; a child that died or stays silent is a ModelError."""
        assert self._conn is not None and self._proc is not None
        waited = 0.0
        while not self._conn.poll(POLL):
            waited += POLL
            if not self._proc.is_alive() or waited >= timeout:
                self._lost()
                raise ModelError("the model process failed to start" if starting else
                                 "the model process stopped (it is restarted for the next reply)")
        try:
            msg: tuple[Any, ...] = self._conn.recv()
        except (EOFError, OSError):
            self._lost()
            raise ModelError("the model process stopped (it is restarted for the next reply)") from None
        return msg

    def _lost(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        if self._proc is not None:
            self._proc.join(0.5)
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = None

    def _pieces(self, kind: str, payload: object, settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._start()  # the last child died: a fresh one for this reply
            assert self._conn is not None
            self._stop.clear()
            self._conn.send((kind, payload, settings))
            stopped = False
            while True:
                if stop_event.is_set() and not stopped:
                    self._stop.set()  # the child finishes its current token and ends the reply
                    stopped = True
                if self._conn is None or not self._conn.poll(POLL):
                    if self._proc is None or not self._proc.is_alive():
                        self._lost()
                        raise ModelError("the model process stopped (it is restarted for the next reply)")
                    continue
                msg = self._recv(POLL)
                if msg[0] == "piece":
                    yield msg[1]
                elif msg[0] == "done":
                    return
                else:
                    raise ModelError(str(msg[1]))

    def stream(self, turns: list[Turn], settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        return self._pieces("stream", list(turns), settings, stop_event)

    def continue_text(self, opening: str, settings: ModelSettings, stop_event: StopFlag) -> Iterator[str]:
        return self._pieces("continue", opening, settings, stop_event)

    def close(self) -> None:
        """Stop the child (the app is closing): asked first, then terminated, then killed."""
        self._stop.set()
        stop_child(self._proc, self._conn)
        self._proc, self._conn = None, None
