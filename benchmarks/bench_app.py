"""App benchmark: generation speed with live tracing off vs on, and key-press latency while streaming.

Runs the real app headless (Textual's run_test) with the real embedded model (Gemma 3 270M,
llama.cpp) and the default index (Python standard library, ~10M byte tokens), in chat mode with
the same prompt and settings for every run (temperature 0, no stop strings, --tokens tokens):

    python benchmarks/bench_app.py [--tokens 160] [--runs 2] [--profile]

Generation speed: tokens sampled by llama.cpp (counted at `Llama.sample`) over the time the
generation thread spends in the backend's stream. Each run does one reply with tracing off and one
with tracing on (the order alternates); tokens/s is the median over the runs, the tracing cost the
median over the runs of the per-run slowdown.

Key latency: while a reply streams, a thread of the benchmark presses keys at random moments
(0.05-0.15 s after the previous press showed), through the driver's `process_message` as the
terminal driver's input thread does, so a press may land while the event loop is busy: it types
into the prompt (a, b, Backspace, Backspace) and moves the focus to the document list and back
(Ctrl+O, Ctrl+L). A press is timed from its injection to the first frame the screen composes
(`App._display`) once the key's effect is in the app's state, with the affected widget repainted
in that frame. Headless Textual skips turning a frame into terminal bytes: the benchmark does that
work in the frame hook, as a real terminal would, before stopping the clock. Every press is
recorded; one with no frame within 2 s counts as a timeout.

Each run starts from a collected heap and a fresh thread pool (Textual's thread workers leave the
last app referenced from the pool's threads), so that runs do not inherit earlier apps' objects.

--profile also times, on the event loop, every callback (asyncio handle), every message dispatch,
call_next / after-refresh callbacks, a few app and Textual methods and every garbage collection,
and prints where the time of the slow presses went (the instrumentation adds some overhead).

Exit status 1 when something was not measured: no key press recorded, a press timed out, a reply
without tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import bisect
import functools
import gc
import math
import os
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from textual import events
from textual._compositor import Compositor, CompositorUpdate
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.widget import Widget

import tracetui.app.widgets.message as message_module
from index_tools.opening import IndexSet
from tracetui.app.app import TraceApp
from tracetui.app.screens.main import MainScreen
from tracetui.app.widgets.documents import DocumentPanel
from tracetui.app.widgets.message import MessageView
from tracetui.app.widgets.prompt import PromptArea
from tracetui.defaults import default_index_dir, default_model_path
from tracetui.model import Backend, LlamaBackend, ModelSettings
from tracetui.model_server import ServerBackend
from tracetui.services.child_model import ChildModel
from tracetui.tracing.pipeline import Tracer

PROMPT = "Write a Python function that reads a file and returns its lines"
SIZE = (120, 36)  # wide layout: chat and document panel side by side
# While the prompt has the focus the probe types into it (a, b, Backspace, Backspace: the prompt
# ends empty again), then moves the focus to the document list (Ctrl+O) and back (Ctrl+L).
TYPING = [("a", "a"), ("b", "b"), ("backspace", "\x7f"), ("backspace", "\x7f")]
TO_DOCS, TO_PROMPT = ("ctrl+o", "\x0f"), ("ctrl+l", "\x0c")  # (key, what a terminal sends)
KINDS = ("typing", "focus change")
PRESS_GAP = (0.05, 0.15)  # seconds from a press's frame to the next press (random): a quick typist
PRESS_TIMEOUT = 2.0  # a press with no frame after this long is recorded as a timeout
SLOW_PRESS_MS = 50.0  # --profile: presses slower than this are analysed
TARGET_MEDIAN_MS, TARGET_P95_MS, TARGET_COST_PCT = 50.0, 100.0, 10.0


def ms(seconds: float) -> float:
    return seconds * 1000.0


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


# -- key presses ----------------------------------------------------------------------------------
@dataclass
class Press:
    kind: str  # one of KINDS
    t_key: float
    shown: Callable[[], bool]  # the key's effect is in the app's state
    widget: Widget  # ... and on screen once a frame repaints this widget
    t_frame: float | None = None

    @property
    def latency_ms(self) -> float | None:
        return None if self.t_frame is None else ms(self.t_frame - self.t_key)


class KeyProbe:
    """Presses keys from its own thread while a reply streams; times each to its frame."""

    def __init__(self, app: TraceApp, rng: random.Random, on_frame: Callable[[float], None] | None = None):
        self.app = app
        self.rng = rng
        self.prompt = app.main.query_one("#prompt", PromptArea)
        self.docs = app.main.query_one(DocumentPanel)
        self.presses: list[Press] = []
        self._pending: Press | None = None
        self._shown = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-probe", daemon=True)
        display = app._display

        def timed_display(screen: Screen, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is None or app._batch_count or screen is not app.screen:
                return
            if app.is_headless and isinstance(renderable, CompositorUpdate):
                t = time.perf_counter()
                renderable.render_segments(app.console)  # what a real driver writes to the terminal
                if on_frame is not None:
                    on_frame(t)
            now = time.perf_counter()
            press = self._pending
            if press is None:
                return
            dirty = screen._dirty_widgets  # the widgets repainted in this frame (cleared after it)
            if press.shown() and (press.widget in dirty or screen in dirty):
                press.t_frame = now
                self._pending = None
                self._shown.set()

        app._display = timed_display  # type: ignore[method-assign]

    def start(self) -> None:
        self._thread.start()

    async def stop(self) -> None:
        """No new press; the one in flight still gets its frame (the loop must keep running)."""
        self._stop.set()
        deadline = time.perf_counter() + PRESS_TIMEOUT + 1
        while self._thread.is_alive() and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)

    def _next(self, typed: int) -> tuple[tuple[str, str], str, Callable[[], bool], Widget]:
        """The next key: (key, char), kind, its effect, the widget showing it."""
        app, prompt, docs = self.app, self.prompt, self.docs
        if app.focused is not prompt:
            return TO_PROMPT, "focus change", lambda: app.focused is prompt, prompt
        if typed % (len(TYPING) + 1) == len(TYPING):
            return TO_DOCS, "focus change", lambda: app.focused is docs, docs
        key, char = TYPING[typed % (len(TYPING) + 1)]
        value = prompt.value
        if key == "backspace" and value:
            expected = value[:-1]
        else:
            key, char = (key, char) if key != "backspace" else TYPING[0]
            expected = value + char
        return (key, char), "typing", lambda: app.focused is prompt and prompt.value == expected, prompt

    def _run(self) -> None:
        driver = self.app._driver
        assert driver is not None
        step = 0
        while not self._stop.wait(self.rng.uniform(*PRESS_GAP)):
            (key, char), kind, shown, widget = self._next(step)
            if key != TO_PROMPT[0]:
                step += 1
            self._shown.clear()
            press = Press(kind, time.perf_counter(), shown, widget)
            self._pending = press
            driver.process_message(events.Key(key, char))  # as the terminal driver's input thread
            self.presses.append(press)
            if not self._shown.wait(PRESS_TIMEOUT):
                self._pending = None  # a timeout: recorded with t_frame None


# -- event-loop profile (--profile) ---------------------------------------------------------------
Interval = tuple[float, float, str]  # (start, end, label), perf_counter seconds


THREAD_ROLES: dict[int, str] = {}  # native thread id -> role, filled by the wrappers that run there


def thread_cpu() -> dict[int, float]:
    """CPU seconds of each thread of this process, by native id (Linux /proc; empty elsewhere)."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return out


@dataclass
class Step:
    """One callback run by the event loop (a task step, a timer, a call_soon)."""
    start: float
    end: float
    cpu: float  # CPU time of the loop thread in it: wall - cpu is time waiting for the CPU or the GIL


@dataclass
class Profile:
    steps: list[Step] = field(default_factory=list)  # loop callbacks longer than 0.2 ms
    items: list[Interval] = field(default_factory=list)  # handlers and methods, on the loop thread
    gcs: list[Interval] = field(default_factory=list)  # garbage collections, any thread (they hold the GIL)
    presses: list[Press] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # CPU seconds by thread role
    seconds: float = 0.0  # streaming time profiled


class LoopProfiler:
    """Times every asyncio callback, every Textual message dispatch, some named methods and every
    garbage collection, while a reply streams."""

    def __init__(self) -> None:
        self.profile: Profile | None = None  # recording into it when set
        self._patches: list[tuple[Any, str, Any]] = []
        self._gc_start = (0.0, False)
        self._loop_thread = threading.get_ident()
        self._cpu0: dict[int, float] = {}
        self._t0 = 0.0

    def start(self, profile: Profile) -> None:
        self.profile = profile
        self._cpu0, self._t0 = thread_cpu(), time.monotonic()

    def stop(self) -> None:
        if self.profile is not None:
            loop_tid = threading.main_thread().native_id
            for tid, cpu in thread_cpu().items():
                role = "event loop (UI)" if tid == loop_tid else THREAD_ROLES.get(tid, "llama.cpp workers, other")
                self.profile.cpu[role] += cpu - self._cpu0.get(tid, 0.0)
            self.profile.seconds += time.monotonic() - self._t0
        self.profile = None

    def record(self, label: str, start: float, end: float | None = None) -> None:
        if self.profile is not None:
            self.profile.items.append((start, time.perf_counter() if end is None else end, label))

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = (time.perf_counter(), threading.get_ident() == self._loop_thread)
        elif self.profile is not None:
            t0, on_loop = self._gc_start
            where = "" if on_loop else " in another thread"
            self.profile.gcs.append((t0, time.perf_counter(), f"gc generation {info['generation']}{where}"))

    def _patch(self, owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
        orig = owner.__dict__[name]
        setattr(owner, name, wrap(orig))
        self._patches.append((owner, name, orig))

    def uninstall(self) -> None:
        for owner, name, orig in reversed(self._patches):
            setattr(owner, name, orig)
        self._patches.clear()
        gc.callbacks.remove(self._on_gc)

    def install(self) -> None:
        prof = self
        gc.callbacks.append(self._on_gc)

        def callback_name(cb: Any) -> str:
            cb = getattr(cb, "callback", cb)  # an events.Callback
            cb = getattr(cb, "func", cb)  # a partial
            return getattr(cb, "__qualname__", type(cb).__name__)

        def wrap_run(orig: Any) -> Any:
            def _run(handle: asyncio.events.Handle) -> None:
                if prof.profile is None:
                    return orig(handle)
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    return orig(handle)
                finally:
                    t1 = time.perf_counter()
                    if t1 - t0 > 0.0002 and prof.profile is not None:
                        prof.profile.steps.append(Step(t0, t1, time.thread_time() - c0))
            return _run

        def wrap_dispatch(orig: Any) -> Any:
            async def _dispatch_message(pump: MessagePump, message: Any) -> None:
                if prof.profile is None:
                    return await orig(pump, message)
                t0 = time.perf_counter()
                try:
                    return await orig(pump, message)
                finally:
                    label = f"{type(pump).__name__}.{message.handler_name}"
                    if isinstance(message, events.Callback):
                        label += f" {callback_name(message)}"
                    prof.record(label, t0)
            return _dispatch_message

        def timed(label: str) -> Callable[[Any], Any]:
            def wrap(orig: Any) -> Any:
                @functools.wraps(orig)
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    if prof.profile is None:
                        return orig(*args, **kwargs)
                    t0 = time.perf_counter()
                    try:
                        return orig(*args, **kwargs)
                    finally:
                        prof.record(label, t0)
                return wrapper
            return wrap

        def wrap_callbacks(kind: str, pending: Callable[[Any], list[Any]]) -> Callable[[Any], Any]:
            def wrap(orig: Any) -> Any:
                @functools.wraps(orig)
                async def run_callbacks(pump: Any) -> None:
                    todo = pending(pump)
                    if prof.profile is None or not todo:
                        return await orig(pump)
                    t0 = time.perf_counter()
                    try:
                        return await orig(pump)
                    finally:
                        names = ", ".join(sorted({callback_name(cb) for cb in todo}))
                        prof.record(f"{kind} {names}", t0)
                return run_callbacks
            return wrap

        def wrap_trace(orig: Any) -> Any:
            @functools.wraps(orig)
            def trace(*args: Any, **kwargs: Any) -> Any:
                THREAD_ROLES[threading.get_native_id()] = "trace worker"
                return orig(*args, **kwargs)
            return trace

        self._patch(asyncio.events.Handle, "_run", wrap_run)
        self._patch(MessagePump, "_dispatch_message", wrap_dispatch)
        self._patch(Tracer, "trace", wrap_trace)
        self._patch(MessagePump, "_flush_next_callbacks",
                    wrap_callbacks("call_next:", lambda pump: list(pump._next_callbacks)))
        self._patch(Screen, "_invoke_and_clear_callbacks",
                    wrap_callbacks("after refresh:", lambda screen: [cb for cb, _ in screen._callbacks]))
        for owner, name, label in [
            (MainScreen, "text_changed", "MainScreen.text_changed"),
            (MainScreen, "trace_changed", "MainScreen.trace_changed"),
            (MainScreen, "set_status", "MainScreen.set_status"),
            (MessageView, "refresh_content", "MessageView.refresh_content"),
            (MessageView, "build_content", "MessageView.build_content"),
            (message_module, "markdown_styles", "markdown_styles (in build_content)"),
            (DocumentPanel, "show", "DocumentPanel.show"),
            (Screen, "_on_timer_update", "Screen._on_timer_update (a frame)"),
            (Screen, "_refresh_layout", "Screen._refresh_layout (layout)"),
            (Compositor, "render_update", "Compositor.render_update"),
        ]:
            self._patch(owner, name, timed(label))


def overlap(intervals: list[Interval], starts: list[float], s: float, e: float) -> float:
    """Seconds of [s, e] covered by `intervals` (disjoint, sorted by start; `starts` their starts)."""
    total, j = 0.0, bisect.bisect_left(starts, e) - 1
    while j >= 0 and intervals[j][1] > s:
        total += min(e, intervals[j][1]) - max(s, intervals[j][0])
        j -= 1
    return total


def attribute(prof: Profile, gcs: list[Interval], k: float, f: float) -> dict[str, float]:
    """Where the loop thread's time went in [k, f], in seconds: each instant goes to the garbage
    collection running then (it holds the GIL), else to the innermost timed handler or method, else
    to an untimed loop callback, else to waiting (the loop had nothing to run)."""
    items = [(max(s, k), min(e, f), label) for s, e, label in prof.items if e > k and s < f]
    steps = [(max(st.start, k), min(st.end, f)) for st in prof.steps if st.end > k and st.start < f]
    gcw = [(max(s, k), min(e, f), label) for s, e, label in gcs if e > k and s < f]
    bounds = sorted({k, f, *(x for it in items + gcw for x in it[:2]), *(x for st in steps for x in st)})
    out: dict[str, float] = defaultdict(float)
    for a, b in zip(bounds, bounds[1:], strict=False):
        m = (a + b) / 2
        label = next((g[2] for g in gcw if g[0] <= m < g[1]), None)
        if label is None:
            inner = [it for it in items if it[0] <= m < it[1]]
            if inner:
                label = max(inner, key=lambda it: (it[0], -it[1]))[2]
            elif any(s0 <= m < s1 for s0, s1 in steps):
                label = "loop: other callbacks (idle handlers, ...)"
            else:
                label = "loop: waiting (frame timer, wake-up)"
        out[label] += b - a
    return out


def stat_row(label: str, d: list[float], count_width: int = 7) -> str:
    return (f"  {label[:58]:58}{len(d):{count_width}d}{statistics.median(d):8.1f}{p95(d):8.1f}{max(d):8.1f}"
            f"{sum(d):9.0f}")


def report_profile(name: str, prof: Profile, full: bool) -> None:
    gcs = sorted(prof.gcs)
    gc_starts = [g[0] for g in gcs]
    header = f"{'calls':>7}{'median':>8}{'p95':>8}{'max':>8}{'total':>9}"
    presses = [p for p in prof.presses if p.t_frame is not None]
    slow = [p for p in presses if (p.latency_ms or 0.0) > SLOW_PRESS_MS]
    print(f"\n{name}, instrumented: {len(slow)} of {len(presses)} presses slower than {SLOW_PRESS_MS:.0f} ms")
    if full:
        by_label: dict[str, list[float]] = defaultdict(list)
        for s, e, label in prof.items:
            by_label[label].append(ms(e - s - overlap(gcs, gc_starts, s, e)))
        print(f"{'event-loop work while streaming, ms (gc excluded)':60}{header}")
        for label, d in sorted(by_label.items(), key=lambda kv: -sum(kv[1]))[:14]:
            print(stat_row(label, d))
    if full and prof.steps:
        wall = sum(st.end - st.start for st in prof.steps)
        off_cpu = wall - sum(st.cpu for st in prof.steps)
        print(f"  (loop callbacks: {ms(wall):.0f} ms in all, {ms(off_cpu):.0f} ms of it off the CPU: the loop "
              "thread waiting for a core or for the GIL)")
    if prof.seconds > 0:
        cores = ", ".join(f"{role} {cpu / prof.seconds:.2f}" for role, cpu in sorted(prof.cpu.items()))
        print(f"  CPU while streaming, in cores: {cores} (the machine has {os.cpu_count()})")
    by_gen: dict[str, list[float]] = defaultdict(list)
    for s, e, label in gcs:
        by_gen[label].append(ms(e - s))
    print(f"{'garbage collections while streaming, ms':60}{header}")
    for label, d in sorted(by_gen.items()):
        print(stat_row(label, d))

    # each slow press: where the loop thread's time went between the key's injection and its frame
    blame: dict[str, list[float]] = defaultdict(list)
    details: list[tuple[float, str]] = []
    for p in slow:
        assert p.t_frame is not None
        k, f = p.t_key, p.t_frame
        parts = attribute(prof, gcs, k, f)
        for label, d in parts.items():
            if d >= 0.001:
                blame[label].append(ms(d))
        key_at = next((s for s, e, label in prof.items if label == "TraceApp.on_key" and k <= s < f), None)
        running = sum(st.cpu * (min(st.end, f) - max(st.start, k)) / (st.end - st.start)
                      for st in prof.steps if st.end > k and st.start < f)
        wait = f"key handled after {ms(key_at - k):.0f} ms" if key_at else "key handled before"
        what = ", ".join(f"{label} {ms(d):.0f}" for label, d in sorted(parts.items(), key=lambda x: -x[1])[:4])
        details.append((ms(f - k), f"{p.kind}, {wait}, loop thread on CPU {ms(running):.0f} ms; {what}"))
    if blame:
        print(f"{f'where the time of the {len(slow)} slow presses went, ms':60}{'presses':>7}{'median':>8}"
              f"{'p95':>8}{'max':>8}{'total':>9}")
        for label, d in sorted(blame.items(), key=lambda kv: -sum(kv[1]))[:10 if full else 5]:
            print(stat_row(label, d))
    if full and details:
        print("slowest presses, ms:")
        for latency, text in sorted(details, reverse=True)[:6]:
            print(f"  {latency:4.0f}: {text}")


# -- one run ----------------------------------------------------------------------------------------
@dataclass
class RunResult:
    tokens: int
    seconds: float
    presses: list[Press]
    status: str

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class Counter:
    """Pieces streamed by the backend (one per sampled token: llama.cpp and llama-cpp-python's
    server stream a token per piece) and the time the generation thread spends in its stream.
    The same measure whatever generates: llama.cpp in this process, in a child, or a server."""

    def __init__(self, backend: Backend) -> None:
        self.sampled = 0
        self.seconds = 0.0
        stream = backend.stream

        def timed_stream(*args: Any, **kwargs: Any) -> Iterator[str]:
            THREAD_ROLES[threading.get_native_id()] = "generation thread"
            start = time.perf_counter()
            try:
                for piece in stream(*args, **kwargs):
                    self.sampled += 1
                    yield piece
            finally:
                self.seconds = time.perf_counter() - start

        backend.stream = timed_stream  # type: ignore[method-assign]

    def reset(self) -> None:
        self.sampled, self.seconds = 0, 0.0


async def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


async def one_run(backend: Backend, counter: Counter, indexes: IndexSet | None, settings: ModelSettings,
                  rng: random.Random, profiler: LoopProfiler | None = None,
                  profile: Profile | None = None, heat: bool = False, trace_process: bool = False) -> RunResult:
    # Every run starts from the same state: Textual's thread workers leave the last app referenced
    # from their executor threads' contexts, so a fresh executor per run lets the old apps go, and
    # their garbage is collected now rather than during the measurement.
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="bench-worker")
    loop.set_default_executor(executor)
    gc.collect()
    counter.reset()
    app = TraceApp(indexes, backend, settings=settings, intro="bench", mode="chat", trace_process=trace_process)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.main.heat = heat  # the heat view: the lens follows the streaming reply too
        on_frame = None
        if profiler is not None:
            on_frame = functools.partial(profiler.record, "frame write (render_segments)")
        probe = KeyProbe(app, rng, on_frame)
        prompt = app.main.query_one("#prompt", PromptArea)
        prompt.value = PROMPT
        prompt.focus()
        await pilot.pause()
        assert app._driver is not None
        app._driver.process_message(events.Key("enter", "\r"))  # pilot.press would wait for idle
        await wait_until(lambda: any(v.role == "assistant" for v in app.messages), 10, "the reply to start")
        if profiler is not None and profile is not None:
            profiler.start(profile)
        probe.start()
        try:
            await wait_until(lambda: not app.generating, 30 + 2 * settings.max_tokens, "the reply to finish")
        finally:
            await probe.stop()
            if profiler is not None and profile is not None:
                profiler.stop()
                profile.presses += probe.presses
        await wait_until(lambda: not app.busy, 60, "the final trace")
        await pilot.pause()
        status = app.last_status
    executor.shutdown(wait=False)
    return RunResult(counter.sampled, counter.seconds, probe.presses, status)


class OtherLoad:
    """CPU used by other processes while the benchmark runs, in cores (Linux: /proc/stat)."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as fh:
                v = [int(x) for x in fh.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        mine = os.times()
        return time.monotonic(), busy, mine.user + mine.system

    def cores(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None or end[0] <= self.start[0]:
            return None
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, others / (end[0] - self.start[0]))


def latency_cells(presses: list[Press]) -> str:
    done = [p.latency_ms for p in presses if p.latency_ms is not None]
    if not done:
        return f"{'-':>8}{'-':>8}{'-':>8}{0:>9d}"
    return f"{statistics.median(done):8.1f}{p95(done):8.1f}{max(done):8.1f}{len(done):9d}"


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server on the embedded model, on a free local port."""

    def __init__(self, settings: ModelSettings) -> None:
        import socket
        import subprocess
        import tempfile

        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", str(settings.n_ctx), "--n_threads", str(settings.threads),
             "--n_threads_batch", str(settings.threads), "--verbose", "False", "--chat_format", "gemma"],
            stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 180
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("llama_cpp.server exited (pip install -e '.[test]' installs its dependencies)")
            try:
                httpx.get(self.url + "/models", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("llama_cpp.server did not start in 180 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()


def make_backend(kind: str, design: str, settings: ModelSettings) -> tuple[Backend, Callable[[], None]]:
    """The model for a configuration and how to release it: the embedded GGUF in this process
    (threads) or in a child process (processes), or a local server (either design: the design
    then only moves the tracer)."""
    if kind == "server":
        server = LlamaServer(settings)
        backend = ServerBackend(server.url)
        backend.select_model(backend.list_models()[0])  # the server's one model, as the app picks it
        return backend, server.stop
    if design == "processes":
        child = ChildModel(default_model_path(), settings)
        return child, child.close
    return LlamaBackend(default_model_path(), settings), lambda: None


def summarize(label: str, results: dict[str, list[RunResult]], tokens: int, failures: list[str]) -> dict[str, Any]:
    """Print one configuration's table (speed and key latency, tracing off and on); returns its
    figures for the side-by-side table and the JSON."""
    print(f"{label:16}{'tokens/s':>9}   key press -> frame, ms:{'median':>8}{'p95':>8}{'max':>8}{'presses':>9}")
    speed: dict[str, float] = {}
    for name, rs in results.items():
        speed[name] = statistics.median(r.tokens_per_s for r in rs)
        presses = [p for r in rs for p in r.presses]
        print(f"{name:16}{speed[name]:9.1f}   {'':23}{latency_cells(presses)}")
        for kind in KINDS:
            print(f"  {kind:14}{'':9}   {'':23}{latency_cells([p for p in presses if p.kind == kind])}")
        lost = sum(p.t_frame is None for p in presses)
        if lost:
            failures.append(f"{label} {name}: {lost} of {len(presses)} key presses showed no frame within "
                            f"{PRESS_TIMEOUT:.0f} s")
        if not any(p.t_frame is not None for p in presses):
            failures.append(f"{label} {name}: no key press was measured")
        short = [r.tokens for r in rs if r.tokens != tokens]
        if short:
            print(f"  warning: {name}: runs generated {short} tokens, not {tokens} (end of text?)")
        if any(r.tokens == 0 for r in rs):
            failures.append(f"{label} {name}: a run generated no token")
    # the cost per pair of runs (one run of each setting, next to each other), median over the pairs
    costs = [100 * (off.tokens_per_s - on.tokens_per_s) / off.tokens_per_s
             for off, on in zip(results["tracing off"], results["tracing on"], strict=True) if off.tokens_per_s > 0]
    cost = statistics.median(costs) if costs else math.nan
    lat = [p.latency_ms for r in results["tracing on"] for p in r.presses if p.latency_ms is not None]

    def lat_stats(presses: list[Press]) -> dict[str, Any]:
        done = [p.latency_ms for p in presses if p.latency_ms is not None]
        return {"presses": len(presses), "timed": len(done), "median_ms": statistics.median(done) if done else None,
                "p95_ms": p95(done) if done else None, "max_ms": max(done) if done else None}

    print(f"{label}: tracing cost {cost:.1f}% of generation speed; key press to frame while streaming with "
          f"tracing on: median {statistics.median(lat) if lat else math.nan:.1f} ms, "
          f"p95 {p95(lat) if lat else math.nan:.1f} ms ({len(lat)} presses)"
          + (" (few: raise --runs or --tokens)" if len(lat) < 40 else ""))
    print(f"last trace status: {results['tracing on'][-1].status}\n")
    return {"settings": {name: {"tokens_per_s": speed[name], "runs_tokens_per_s": [r.tokens_per_s for r in rs],
                                "runs_tokens": [r.tokens for r in rs],
                                "keys": lat_stats([p for r in rs for p in r.presses]),
                                "keys_by_kind": {k: lat_stats([p for r in rs for p in r.presses if p.kind == k])
                                                 for k in KINDS}}
                         for name, rs in results.items()},
            "cost_pct": cost, "cost_pct_runs": costs,
            "keys_on_median_ms": statistics.median(lat) if lat else None, "keys_on_p95_ms": p95(lat) if lat else None,
            "last_status": results["tracing on"][-1].status}


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=160, help="tokens per reply (default 160)")
    ap.add_argument("--runs", type=int, default=2, help="runs per setting (default 2)")
    ap.add_argument("--profile", action="store_true", help="print the top event-loop blockers while streaming")
    ap.add_argument("--seed", type=int, default=1, help="seed of the key-press timing")
    ap.add_argument("--heat", action="store_true",
                    help="heat view on: live traces also refresh the memorization lens (every 2 s)")
    ap.add_argument("--design", default="threads,processes",
                    help="comma-separated: threads (model and tracer in the UI's process, the design before "
                    "issue 20) and/or processes (each in a child process, the app's default)")
    ap.add_argument("--backend", default="embedded,server",
                    help="comma-separated: embedded (the GGUF through llama.cpp) and/or server "
                    "(llama-cpp-python's OpenAI-compatible server on the same GGUF, started here)")
    C.add_json_out(ap)
    args = ap.parse_args()
    out = C.JsonOut("app", args.json_out)
    # no stop strings: every run generates exactly --tokens tokens, so the speeds compare
    settings = ModelSettings(max_tokens=args.tokens, temperature=0.0, seed=42, n_ctx=2048, stop=[])
    indexes = IndexSet.open([default_index_dir(progress=False)])
    rng = random.Random(args.seed)
    configs = [(b, d) for b in args.backend.split(",") for d in args.design.split(",")]
    print(f"index {indexes.indexes[0].name} ({indexes.indexes[0].manifest.tokens:,} tokens), {args.tokens} tokens "
          f"per reply, {settings.threads} threads, {args.runs} runs per setting, configurations: "
          + ", ".join(f"{b}/{d}" for b, d in configs) + "\n")
    profiler = LoopProfiler() if args.profile else None
    if profiler is not None:
        profiler.install()
    settings_order = [("tracing off", None), ("tracing on", indexes)]
    failures: list[str] = []
    figures: dict[str, dict[str, Any]] = {}
    other_load = OtherLoad()
    try:
        for kind, design in configs:
            label = f"{kind}/{design}"
            backend, release = make_backend(kind, design, settings)
            counter = Counter(backend)
            procs = design == "processes"
            results: dict[str, list[RunResult]] = {name: [] for name, _ in settings_order}
            profiles = {name: Profile() for name, _ in settings_order}
            try:
                await one_run(backend, counter, indexes, settings, rng, trace_process=procs)  # warm-up
                for run in range(args.runs):
                    for name, ix in settings_order if run % 2 == 0 else settings_order[::-1]:
                        results[name].append(await one_run(backend, counter, ix, settings, rng, profiler,
                                                           profiles[name], heat=args.heat, trace_process=procs))
            finally:
                release()
            figures[label] = summarize(label, results, args.tokens, failures)
            if profiler is not None:
                for name, _ in settings_order:
                    report_profile(f"{label} {name}", profiles[name], full=name == "tracing on")
    except TimeoutError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if profiler is not None:
            profiler.uninstall()
    others = other_load.cores()

    print("side by side (tracing on, while a reply streams):")
    print(f"{'configuration':22}{'tokens/s off':>13}{'tokens/s on':>12}{'tracing cost':>13}{'keys median':>12}"
          f"{'keys p95':>10}")
    for label, f in figures.items():
        st = f["settings"]
        print(f"{label:22}{st['tracing off']['tokens_per_s']:13.1f}{st['tracing on']['tokens_per_s']:12.1f}"
              f"{f['cost_pct']:12.1f}%{f['keys_on_median_ms'] or math.nan:12.1f}{f['keys_on_p95_ms'] or math.nan:10.1f}")
    print(f"goals (processes): tracing cost < 5%, key press to frame p95 < 50 ms; "
          f"before issue 20 (threads): cost < {TARGET_COST_PCT:.0f}%, p95 < {TARGET_P95_MS:.0f} ms")
    if others is not None:
        busy = others > 0.1
        print(f"other processes used {others:.2f} CPU cores on average during the runs"
              + (": the machine was busy, the figures are unreliable (rerun when it is idle)" if busy else ""))
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    out.write(args, {
        "index": indexes.indexes[0].name, "index_tokens": indexes.indexes[0].manifest.tokens,
        "threads": settings.threads, "tokens": args.tokens, "runs": args.runs,
        "configurations": figures, "other_cores": others, "failures": failures,
    })
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
