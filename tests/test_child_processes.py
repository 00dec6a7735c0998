"""The embedded model and the tracer in child processes (issue 20 §3): the same answers as in
the UI's process, stopping, a child that crashes, shutdown leaving no process behind.

The oracles are the in-process components: `LlamaBackend` for the model's reply (greedy
decoding, the same settings) and `TraceService` in a thread for the traces.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.defaults import default_model_path
from tracetui.model import LlamaBackend, ModelError, ModelSettings, Turn
from tracetui.services.child_model import ChildModel
from tracetui.services.child_tracer import ChildTraceService
from tracetui.services.events import Event, TraceFailed, TraceReady
from tracetui.services.trace_queue import TraceRequest
from tracetui.services.tracing import TraceService
from tracetui.tracing.pipeline import TraceParams

from .test_app import wait_idle

SETTINGS = ModelSettings(n_ctx=512, max_tokens=24, temperature=0.0, seed=42, threads=2)


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int | None, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def child_model() -> Iterator[ChildModel]:
    model = ChildModel(default_model_path(), SETTINGS)
    yield model
    model.close()


def test_child_model_continues_exactly_as_the_in_process_model(child_model: ChildModel) -> None:
    opening = "The quick brown fox"
    here = LlamaBackend(default_model_path(), SETTINGS)
    want = "".join(here.continue_text(opening, SETTINGS, threading.Event()))
    del here
    got = "".join(child_model.continue_text(opening, SETTINGS, threading.Event()))
    assert got == want and got.strip()
    assert child_model.has_template is False and child_model.name.endswith(".gguf")
    chat = "".join(child_model.stream([Turn("user", "Hello")], SETTINGS, threading.Event()))
    assert chat.strip()


def test_child_model_stops_and_survives_being_killed(child_model: ChildModel) -> None:
    long = ModelSettings(**{**SETTINGS.__dict__, "max_tokens": 400})
    stop = threading.Event()
    pieces = []
    for piece in child_model.continue_text("Once upon a time", long, stop):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()
    assert 3 <= len(pieces) < 20  # the child ended the reply within a token or two

    pid = child_model.pid
    gen = child_model.continue_text("Once upon a time", long, threading.Event())
    next(gen)
    os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="model process stopped"):
        for _ in gen:
            pass
    got: list[str] = []  # the next reply restarts the child, from a worker thread as the app does
    worker = threading.Thread(target=lambda: got.append(
        "".join(child_model.continue_text("The quick brown fox", SETTINGS, threading.Event()))))
    worker.start()
    worker.join()
    assert got[0].strip() and child_model.pid != pid  # a fresh child for the next reply
    time.sleep(1.0)
    assert alive(child_model.pid)  # and it outlives the thread that started it


def test_child_model_bad_file_is_one_error_and_no_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)  # the magic, then nothing a loader can read
    before = {p.pid for p in multiprocessing.active_children()}
    with pytest.raises(ModelError, match="cannot load|failed to start"):
        ChildModel(bad, SETTINGS, start_timeout=60)
    assert {p.pid for p in multiprocessing.active_children()} <= before
    with pytest.raises(ModelError, match="not found"):
        ChildModel(tmp_path / "nope.gguf", SETTINGS)


class Sink(list[Event]):
    def __call__(self, e: Event) -> None:
        self.append(e)


def test_child_tracer_answers_as_the_threaded_one_and_restarts(text_index: Path) -> None:
    indexes = IndexSet.open([text_index])
    texts = ["The quick brown fox jumps over the lazy dog.", "import numpy as np\nx = np.arange(10)"]
    child = ChildTraceService(TraceParams(), Sink())
    child._spawn()
    here = TraceService(TraceParams(), Sink())
    try:
        for g, t in enumerate(texts):
            a = child.serve(TraceRequest(1, g, t, "", False, indexes))
            b = here.serve(TraceRequest(1, g, t, "", False, indexes))
            assert isinstance(a, TraceReady) and isinstance(b, TraceReady)
            assert a.result.spans and [(s.start, s.end, s.level, s.count) for s in a.result.spans] == [
                (s.start, s.end, s.level, s.count) for s in b.result.spans]
            assert [(d.id, d.score) for d in a.result.documents] == [(d.id, d.score) for d in b.result.documents]
            assert a.result.memorization == b.result.memorization
        pid = child.pid
        os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]  # died between two traces
        assert wait_dead(pid)
        end = time.monotonic() + 10
        while child._proc is not None and child._proc.is_alive() and time.monotonic() < end:
            time.sleep(0.05)  # until the parent sees it gone (a death mid-request is the case below)
        back = child.serve(TraceRequest(1, 6, texts[0], "", False, indexes))
        assert isinstance(back, TraceReady) and back.result.spans and child.pid != pid
        # died in the middle of a trace: that trace fails with one message, the next one works
        mid = child.pid
        long = " ".join(texts * 1500)
        killer = threading.Timer(0.3, os.kill, (mid, signal.SIGKILL))
        killer.start()
        failed = child.serve(TraceRequest(1, 7, long, "", False, indexes))
        killer.join()
        assert isinstance(failed, TraceFailed) and "tracer process stopped" in failed.error
        again = child.serve(TraceRequest(1, 8, texts[1], "", False, indexes))
        assert isinstance(again, TraceReady) and again.result.spans and child.pid not in (pid, mid)
    finally:
        child.close()
        indexes.close()
    assert not alive(pid) and child.pid is None


def test_children_die_with_their_parent(text_index: Path) -> None:
    """Even a parent killed by SIGKILL (no cleanup ran) leaves no child behind."""
    script = textwrap.dedent("""
        import sys, time
        from tracetui.services.child_tracer import ChildTraceService
        from tracetui.tracing.pipeline import TraceParams
        s = ChildTraceService(TraceParams(), print)
        s.start()
        print(s.pid, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    assert alive(pid)
    proc.kill()
    proc.wait()
    assert wait_dead(pid), "the tracer child outlived its parent"


async def test_app_with_both_children_end_to_end(text_index: Path, tmp_path: Path, child_model: ChildModel) -> None:
    app = TraceApp(IndexSet.open([text_index]), child_model, settings=SETTINGS, intro="e2e", export_dir=tmp_path,
                   trace_process=True)
    async with app.run_test(size=(120, 36)) as pilot:
        tracer_pid = app.tracing.pid  # type: ignore[attr-defined]
        assert alive(tracer_pid)
        await pilot.click("#prompt")
        await pilot.press(*"The quick brown fox", "enter")
        await wait_idle(app, pilot, timeout=600)
        reply = app.messages[-1]
        assert reply.text.startswith("The quick brown fox") and len(reply.text) > len("The quick brown fox")
        assert reply.trace is not None and reply.trace.text == reply.text and reply.trace.spans
        # Ctrl+N while a reply streams: the old reply stops, the new chat works
        await pilot.press(*"Once upon a time", "enter")
        await pilot.pause(0.3)
        await pilot.press("ctrl+n")
        await wait_idle(app, pilot, timeout=600)
        assert app.messages == [] and not app.generating
        await pilot.press("ctrl+q")
    assert wait_dead(tracer_pid), "the tracer child outlived the app"
