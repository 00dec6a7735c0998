"""Progress while a trace against served indexes runs (issue 19 §4): the trace service reports
the requests made so far about twice a second, and the final result equals a local trace."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("uvicorn")

from index_tools.engine import Index  # noqa: E402
from index_tools.opening import IndexSet  # noqa: E402
from tracetui.services.events import Event, TraceProgress, TraceReady  # noqa: E402
from tracetui.services.trace_queue import TraceRequest  # noqa: E402
from tracetui.services.tracing import TraceService  # noqa: E402
from tracetui.tracing.pipeline import TraceParams, Tracer  # noqa: E402

from .test_infinigram_api import index_dir  # noqa: E402, F401  (the index fixture)
from .test_infinigram_api_index import replies, servers, tok_env  # noqa: E402, F401


def test_a_remote_trace_reports_its_requests(servers: dict[str, str], tok_env: Path,  # noqa: F811
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tracetui.services.tracing.PROGRESS", 0.02)  # reports every 20 ms here
    local = Index.open(tok_env.parent / "corp")
    reply = " ".join(replies(local, 2, tokens=250))
    events: list[Event] = []
    service = TraceService(TraceParams(), events.append)
    remote = IndexSet.open([f"{servers['api']}/corp"])
    before = remote.requests()  # opening asked the server what it serves
    assert before is not None and IndexSet([local]).requests() is None
    result = service.serve(TraceRequest(1, 7, reply, "", False, remote))
    progress = [e for e in events if isinstance(e, TraceProgress)]
    assert isinstance(result, TraceReady)
    made = (remote.requests() or 0) - before
    assert made > 0 and progress, "no progress reported while a remote trace ran"
    assert all(e.gen == 7 and not e.live and 0 <= e.requests <= made for e in progress)
    assert [e.requests for e in progress] == sorted(e.requests for e in progress)
    want = Tracer([local]).trace(reply)
    assert [(s.start, s.end, s.count) for s in result.result.spans] == [(s.start, s.end, s.count) for s in want.spans]
    remote.close()
