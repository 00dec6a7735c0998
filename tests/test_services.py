"""The app's services on their own, without Textual: generation, tracing, persistence.

Each test drives a service through its public calls and reads what it emitted; the expected
values come from the backend's script, from a `Tracer` called directly, and from the store.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from index_tools.errors import IndexToolsError
from index_tools.opening import IndexSet
from tracetui.conversation import Conversation
from tracetui.model import ModelSettings, ScriptedBackend, Turn
from tracetui.services.events import Event, Notice, ReplyChunk, ReplyDone, TraceFailed, TraceReady
from tracetui.services.generation import GenerationService, ReplyRequest
from tracetui.services.persistence import Persistence
from tracetui.services.trace_queue import TraceRequest
from tracetui.services.tracing import TraceService
from tracetui.store import ConversationStore
from tracetui.tracing.pipeline import TraceParams, Tracer


class Sink:
    """Collects events from any thread; `wait` until one of a type arrives."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait(self, kind: type, n: int = 1, timeout: float = 30.0) -> list[Event]:
        end = time.monotonic() + timeout
        with self.cond:
            while len(got := [e for e in self.events if isinstance(e, kind)]) < n:
                left = end - time.monotonic()
                assert left > 0, f"no {kind.__name__} within {timeout} s: {self.events}"
                self.cond.wait(left)
            return got


def request(gen: int = 1, mode: str = "chat") -> ReplyRequest:
    return ReplyRequest(7, gen, mode, [Turn("user", "hi")], "Once upon", ModelSettings())


def test_generation_streams_chunks_then_the_whole_reply() -> None:
    reply = "The quick brown fox jumps over the lazy dog, twice over."
    sink = Sink()
    svc = GenerationService(ScriptedBackend([reply], delay=0.01), sink, chunk_interval=0.0)
    svc.start(request())
    done = sink.wait(ReplyDone)[0]
    assert isinstance(done, ReplyDone)
    assert (done.conversation, done.gen, done.text, done.error, done.stopped) == (7, 1, reply, None, False)
    assert done.pieces == len(range(0, len(reply), 4))
    chunks = [e.text for e in sink.events if isinstance(e, ReplyChunk)]
    assert chunks and all(reply.startswith(c) for c in chunks) and chunks == sorted(chunks, key=len)
    assert not svc.busy


def test_generation_stops_when_asked_and_reports_a_dying_model() -> None:
    sink = Sink()
    svc = GenerationService(ScriptedBackend(["x" * 400], delay=0.02, piece=1), sink)
    stop = svc.start(request())
    time.sleep(0.2)
    stop.set()
    done = sink.wait(ReplyDone)[0]
    assert isinstance(done, ReplyDone) and done.stopped and 0 < len(done.text) < 400

    sink2 = Sink()
    GenerationService(ScriptedBackend(["abcdefghijklmnop"], fail_after=8), sink2).start(request())
    dead = sink2.wait(ReplyDone)[0]
    assert isinstance(dead, ReplyDone) and dead.text == "abcdefgh" and dead.error and "died" in dead.error


def test_generation_runs_one_reply_at_a_time_in_order() -> None:
    sink = Sink()
    backend = ScriptedBackend(["first reply text", "second reply text"], delay=0.01)
    svc = GenerationService(backend, sink)
    svc.start(request(1))
    svc.start(request(2, mode="continue"))
    done = sink.wait(ReplyDone, 2)
    assert sorted((e.gen, e.text) for e in done if isinstance(e, ReplyDone)) == [
        (1, "first reply text"), (2, "second reply text")]
    assert backend.seen[1] == "Once upon" or backend.seen[0] == "Once upon"  # continue mode got the opening


def test_tracing_answers_as_the_tracer_does_and_keeps_order(text_index: Path) -> None:
    indexes = IndexSet.open([text_index])
    texts = ["The quick brown fox jumps over the lazy dog.", "import numpy as np", "nothing at all here"]
    sink = Sink()
    svc = TraceService(TraceParams(), sink)
    svc.start()
    try:
        for g, t in enumerate(texts):
            svc.put(TraceRequest(1, g, t, "", False, indexes))
        got = sink.wait(TraceReady, 3)
    finally:
        svc.close()
    direct = Tracer(indexes, TraceParams())
    assert [e.gen for e in got if isinstance(e, TraceReady)] == [0, 1, 2]
    for e, t in zip(got, texts, strict=True):
        assert isinstance(e, TraceReady)
        want = direct.trace(t)
        assert [(s.start, s.end, s.level) for s in e.result.spans] == [(s.start, s.end, s.level) for s in want.spans]
        assert [d.id for d in e.result.documents] == [d.id for d in want.documents]
        assert e.result.memorization is not None  # a final trace always carries the lens
    indexes.close()


def test_tracing_lens_follows_a_live_reply_only_in_the_heat_view(text_index: Path) -> None:
    indexes = IndexSet.open([text_index])
    heat = [False]
    svc = TraceService(TraceParams(), Sink(), heat=lambda: heat[0], lens_interval=3600)
    text = "The quick brown fox jumps over the lazy dog."
    live = svc.serve(TraceRequest(1, 5, text[:20], "", True, indexes))
    assert isinstance(live, TraceReady) and live.result.memorization is None
    heat[0] = True
    first = svc.serve(TraceRequest(1, 5, text[:30], "", True, indexes))
    assert isinstance(first, TraceReady) and first.result.memorization is not None
    carried = svc.serve(TraceRequest(1, 5, text, "", True, indexes))  # within the interval: the last lens
    assert isinstance(carried, TraceReady) and carried.result.memorization is first.result.memorization
    other = svc.serve(TraceRequest(1, 6, text, "", True, indexes))  # another reply: a fresh lens
    assert isinstance(other, TraceReady) and other.result.memorization is not first.result.memorization
    indexes.close()


def test_tracing_reports_a_vanished_index_once_and_a_closed_one(text_index: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "idx"
    shutil.copytree(text_index, copy)
    indexes = IndexSet.open([copy])
    sink = Sink()
    svc = TraceService(TraceParams(), sink)
    (copy / "tracetui-index.json").unlink()
    first = svc.serve(TraceRequest(1, 1, "The quick brown fox", "", False, indexes))
    assert isinstance(first, TraceReady)  # the open maps still read
    notices = [e for e in sink.events if isinstance(e, Notice)]
    assert len(notices) == 1 and "idx" in notices[0].text and "disappeared" in notices[0].text
    svc.serve(TraceRequest(1, 2, "The quick brown fox", "", False, indexes))
    assert len([e for e in sink.events if isinstance(e, Notice)]) == 1  # said once
    indexes.close()  # closed under it: the next trace fails with one message, never empty spans
    failed = svc.serve(TraceRequest(1, 3, "The quick brown fox", "", False, indexes))
    assert isinstance(failed, TraceFailed) and failed.error == "index idx is closed"


def test_persistence_saves_and_a_failing_store_is_a_notice(tmp_path: Path) -> None:
    sink = Sink()
    store = ConversationStore(tmp_path / "c.sqlite3")
    p = Persistence(store, sink)
    conv = Conversation("chat")
    conv.add_user("hello there")
    p.begin(conv, "hello there")
    assert conv.stored_id is not None
    p.save(conv)
    back = p.load(conv.stored_id)
    assert back is not None and [m.text for m in back.messages] == ["hello there"]
    assert not sink.events

    broken = Persistence(store, sink)
    store.db.close()  # the database gone from under the store: every call fails
    conv2 = Conversation("chat")
    broken.begin(conv2, "x")
    broken.save(conv)
    assert broken.load(12345) is None
    assert sink.events and all(isinstance(e, Notice) and "could not save" in e.text for e in sink.events)


def test_indexset_open_closes_what_it_opened_when_a_later_one_fails(text_index: Path, tmp_path: Path) -> None:
    fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    IndexSet.open([text_index]).close()  # warm caches that keep no descriptor
    before = fds()
    for _ in range(5):
        with pytest.raises(IndexToolsError):
            IndexSet.open([text_index, text_index, tmp_path / "missing"])
    assert fds() == before


def test_document_marks_come_from_the_hits_offsets() -> None:
    """A span whose text occurs twice in a document is marked where the trace found it (the
    hit's offsets), not at every occurrence; whole-document marks are the same places."""
    from tracetui.app.screens.document import WINDOW_SEP, DocumentScreen
    from tracetui.tracing.pipeline import DocHit, Document, Span, TraceResult

    whole = "alpha beta gamma. Then alpha beta gamma again, and the end of the text."
    second = whole.index("alpha beta gamma", 1)
    window = whole[10:]
    match = (second - 10, second - 10 + len("alpha beta gamma"))
    span = Span("ix", 0, 16, "alpha beta gamma", 0, 3, 2, -5.0)
    hit = DocHit(0, window[match[0]: match[1]], (0, 16), window, match)
    doc = Document("ix:0", "ix", 0, 0, {}, hits=[hit])
    trace = TraceResult("alpha beta gamma", "", [span], [doc], [], {}, TraceParams())
    screen = DocumentScreen(trace, doc, whole)
    text, marks = screen._text_and_marks()
    assert text == window and marks == [(match[0], match[1], 0)]
    screen.show_whole = True
    text, marks = screen._text_and_marks()
    assert text == whole and marks == [(second, second + 16, 0)]  # not also at 0
    two = Document("ix:0", "ix", 0, 0, {}, hits=[hit, hit])
    text, marks = DocumentScreen(trace, two, None)._text_and_marks()
    off = len(window) + len(WINDOW_SEP)
    assert text == window + WINDOW_SEP + window and marks == [(match[0], match[1], 0), (off + match[0], off + match[1], 0)]


def test_left_bits_ranks_of_many_intervals_equal_a_bit_by_bit_reading() -> None:
    """`LeftBits.ranks_many` (all intervals' set ranks in one vectorised pass, in chunks) against
    the bits read one by one from a plain Python list."""
    import numpy as np

    from index_tools.word_ends import LeftBits

    rng = np.random.default_rng(5)
    for n, density, chunk in ((1000, 0.3, 3), (5000, 0.01, 1 << 18), (777, 0.9, 1)):
        flags = rng.random(n) < density
        packed = np.packbits(flags, bitorder="little")
        packed = np.concatenate([packed, np.zeros(-len(packed) % 8, dtype=np.uint8)])
        bits = LeftBits(packed.view(np.uint64), np.zeros(len(packed) // 8 + 1, dtype=np.int64), n)
        lo = rng.integers(0, n, 300)
        hi = np.minimum(n, lo + rng.integers(0, 200, 300))
        own, pos = bits.ranks_many(lo, hi, chunk_words=chunk)
        want = [(i, r) for i in range(300) for r in range(int(lo[i]), int(hi[i])) if flags[r]]
        assert list(zip(own.tolist(), pos.tolist(), strict=True)) == want
