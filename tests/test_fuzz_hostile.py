"""Hypothesis fuzz: hostile text never reaches the terminal raw, never crashes, never becomes markup.

Hostile strings mix terminal escape sequences (CSI, OSC 52 clipboard writes, OSC 8 links, DCS),
C0/C1 controls, NUL, DEL, bidi overrides and isolates, Rich/Textual markup ("[bold]",
"[link=...]", "[@click=app.quit]", "[/]"), "$variables", non-ASCII, random code points and
10,000-character lines.

(a) CLI: hostile documents, metadata keys/values, corpus file names and index names are built
    into a bytes index (`tracetui index build`), then `search` and `trace` (plain and --json, with
    hostile queries, replies and prompts) run through `tracetui.cli.main`: no ESC/BEL/C0/C1/bidi
    character (nor DEL) in stdout or stderr, no exception.
    Lone surrogates (JSON "\\udXXX" escapes) must fail the build with one clean error line.
(b) App widgets: `MessageView.build_content()` (with a trace, highlights, a selected one) and
    `DocumentPanel._prompt` over hostile replies, index names, sources and snippets: the plain
    text holds no control character and the hostile text (markup included) appears literally.
(c) `sanitize.inert` on arbitrary code points, lone surrogates included: one character for one,
    nothing unsafe left, idempotent, safe text untouched. "Unsafe" is decided here from
    `unicodedata.category` (controls, format characters, surrogates, line and paragraph
    separators, unassigned), not from a copy of the sanitiser's pattern.

Two findings of this fuzzing, now fixed and tested: the CLI echoed a directory argument raw,
and the app's status line parsed markup.

Examples per run: TRACETUI_FUZZ_SCALE (default 1) multiplies them; examples are derandomized
(the same every run) unless TRACETUI_FUZZ_RANDOM=1.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from index_tools.opening import IndexSet
from tracetui.app.widgets.documents import DocumentPanel
from tracetui.app.widgets.message import HUES, MessageView
from tracetui.cli import main
from tracetui.conversation import Message
from tracetui.sanitize import inert, is_inert
from tracetui.tracing.merge import merge_spans
from tracetui.tracing.pipeline import DocHit, Document, Span, TraceParams, Tracer, TraceResult

SCALE = float(os.environ.get("TRACETUI_FUZZ_SCALE", "1"))
DERANDOMIZE = os.environ.get("TRACETUI_FUZZ_RANDOM") != "1"
STATS: Counter[str] = Counter()

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: what must never reach a terminal, by character class (not the sanitiser's pattern): controls
#: but \t and \n (C0, DEL, C1), format characters (bidi, zero-width, BOM, soft hyphen, tags),
#: surrogates, line/paragraph separators, unassigned code points.
UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"}


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in UNSAFE_CATEGORIES and ch not in "\t\n"

PIECES = [
    "\x1b[31m", "\x1b[2J", "\x1b[?1049h", "\x1b[6n", "\x1b]52;c;SGVsbG8=\x07", "\x1b]0;title\x1b\\",
    "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\", "\x1bP1$r0m\x1b\\", "\x1bPq#0;2;0;0;0\x1b\\",
    "\x9b31m", "\x9d52;c;QUJD\x9c", "\x90q\x9c", "\x85", "\x00", "\x07", "\x08", "\r", "\x7f", "\x1b",
    "\u202e", "\u202d", "\u2066", "\u2067", "\u2069", "\u200f", "\u061c",
    "[bold]", "[/]", "[/bold]", "[/foo]", "[link=https://evil.example]x[/link]", "[@click=app.quit]q[/]",
    "[red on blue]", "[b]", "$foo", "$bar.baz", "{x}", "\\[not]", "[", "]", "\\", "\t", "\n", "\n\n",
    "ü", "日本語", "🦊", "\u0301", "\ufeff", "\u2028", "\u2029", "\u200b", "\u200d", "\u00ad", "\U000e0041",
    "\ufffe", "\U0010ffff", "The quick brown fox", " the ", ".", "import numpy",
]
CONTROLS = [chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7F, 0xA0)] + list(BIDI)

piece = st.one_of(
    st.sampled_from(PIECES),
    st.sampled_from(PIECES),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),  # no surrogates: utf-8 codec
    st.text(alphabet=st.sampled_from(CONTROLS), min_size=1, max_size=6),
)
hostile = st.lists(piece, max_size=10).map("".join)
huge = st.tuples(st.sampled_from(PIECES), hostile).map(lambda t: ((t[0] + t[1] + " ") * 10_000)[:10_000])
document = st.one_of(hostile, hostile, hostile, huge)
with_surrogate = st.tuples(hostile, st.integers(0xD800, 0xDFFF), hostile).map(lambda t: t[0] + chr(t[1]) + t[2])
name_text = st.lists(st.sampled_from(PIECES + ["a", "b", "-"]), min_size=1, max_size=4).map("".join)


def _safe_name(text: str) -> str:
    """A file name carrying the hostile characters the file system allows."""
    name = text.replace("/", "").replace("\x00", "")
    while len(name.encode("utf-8")) > 60:
        name = name[:-1]
    return "c_" + name


def _leaks(text: str) -> list[str]:
    return sorted({f"U+{ord(c):04X}" for c in text if _unsafe(c)})


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))  # an exception here fails the test with its traceback
    out, err = capsys.readouterr()
    return code, out, err


# -- (a) CLI ------------------------------------------------------------------------------------
@settings(max_examples=int(150 * SCALE), deadline=None, derandomize=DERANDOMIZE, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(docs=st.lists(document, min_size=1, max_size=4),
       meta_key=name_text, meta_value=hostile, file_name=name_text, index_name=name_text,
       reply_head=hostile, reply_len=st.integers(0, 400),
       prompt=hostile, query_len=st.integers(0, 30),
       surrogate=st.one_of(st.none(), st.none(), st.none(), with_surrogate))
# every run tries these two, whatever hypothesis draws: a corpus with a lone surrogate (rejected in
# one line) and a reply that is a whole hostile document (traced: spans that carry hostile text)
@example(docs=["The cat\x1b[31m sat\u202e on the mat.\n"], meta_key="k", meta_value="\x1b]52;c;x\x07", file_name="f",
         index_name="i", reply_head="", reply_len=400, prompt="p", query_len=7, surrogate=None)
@example(docs=["plain text"], meta_key="k", meta_value="v", file_name="f", index_name="i", reply_head="",
         reply_len=0, prompt="", query_len=0, surrogate="a\udc80b")
def test_cli_outputs_stay_inert(tmp_path_factory, capsys, docs, meta_key, meta_value, file_name, index_name,
                                reply_head, reply_len, prompt, query_len, surrogate) -> None:
    STATS["cli examples"] += 1
    # The reply quotes part of a document so that spans and snippets carry hostile text. It stays
    # short: tracing a long *repetitive* text is quadratic (see the hardening report).
    reply = reply_head + docs[0][:reply_len]
    base = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    src = base / (_safe_name(file_name) + ".jsonl")
    records = [{"text": d, "k" + meta_key: meta_value, "url": meta_value + str(i)} for i, d in enumerate(docs)]
    bad_line = len(records) // 2 + 1
    if surrogate is not None:  # json.dumps writes it as a "\udXXX" escape: valid JSON, invalid Unicode
        records.insert(bad_line - 1, {"text": surrogate})
    src.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = base / _safe_name(index_name)
    code, stdout, stderr = _run(capsys, "index", "build", str(src), "-o", str(out), "--tokenizer", "bytes", "-q")
    # known issue (test_cli_echoes_output_path_raw): "built DIR: ..." echoes DIR as typed
    stdout = stdout.replace(f"built {out}:", "built DIR:")
    for stream in (stdout, stderr):
        assert not _leaks(stream), (_leaks(stream), stream[:300])
    if surrogate is not None:
        STATS["lone surrogate corpora rejected"] += 1
        lines = stderr.rstrip("\n").split("\n")  # terminal lines: U+2028 is not a line break
        assert code != 0 and len(lines) == 1 and lines[0].startswith("tracetui: error:"), stderr
        assert "lone surrogate" in lines[0] and f".jsonl:{bad_line}:" in lines[0]
        return
    assert code == 0, stderr
    query = docs[0][:query_len] or "the"
    resp = base / "reply.txt"
    resp.write_text(reply, encoding="utf-8")
    for argv, is_json in (
        (("search", "--index", str(out), query, "--limit", "20", "--context", "15"), False),
        (("search", "--index", str(out), query, "--limit", "20", "--json"), True),
        (("trace", "--index", str(out), "--prompt", prompt, str(resp)), False),
        (("trace", "--index", str(out), "--prompt", prompt, str(resp), "--json"), True),
        (("count", "--index", str(out), query), False),
        (("index", "info", str(out)), False),
    ):
        code, stdout, stderr = _run(capsys, *argv)
        assert code == 0, (argv[0], stderr)
        assert stderr == "", stderr
        assert not _leaks(stdout), (argv[0], _leaks(stdout))
        STATS["cli outputs checked"] += 1
        if is_json:
            json.loads(stdout)
        if argv[0] == "search" and not is_json and '"count": 0' not in stdout:
            STATS["search outputs with matches"] += not stdout.startswith("0 ")
    # (b) on real traces of this index: the widgets show the hostile text literally
    result = Tracer(IndexSet.open([out]), TraceParams()).trace(reply, prompt=prompt)
    STATS["real traces with spans"] += bool(result.spans)
    if reply == docs[0] and any(ch.isalnum() for ch in reply):
        assert result.spans  # a reply that is a whole document is traced to it
    _check_widgets(result)


def test_cli_echoes_output_path_raw(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"text": "The quick brown fox."}) + "\n", encoding="utf-8")
    out = tmp_path / "ix\x1b]52;c;SGVsbG8=\x07"
    code, stdout, stderr = _run(capsys, "index", "build", str(src), "-o", str(out), "--tokenizer", "bytes", "-q")
    assert code == 0, stderr
    code, verify_out, _ = _run(capsys, "index", "verify", str(out))
    assert code == 0
    assert not _leaks(stdout) and not _leaks(verify_out)


async def test_status_line_shows_span_text_literally(tmp_path: Path) -> None:
    from textual.widgets import Static

    from tracetui.app.app import TraceApp

    app = TraceApp(None, None, intro="x", export_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        for text in ("[bold]x[/bold]", "[@click=app.quit]q[/]", "[/foo] x", "a [link=http://x]y[/link]"):
            app.set_status(f"span 1/1: {text}")
            await pilot.pause()
            assert text in app.query_one("#status", Static).render().plain


# -- (b) widgets --------------------------------------------------------------------------------
def _check_widgets(result: TraceResult) -> None:
    text = result.text
    hue = {name: HUES[i % len(HUES)] for i, name in enumerate(sorted({s.index for s in result.spans}))}
    for role in ("user", "assistant", "text"):
        msg = Message(role, text, trace=result if role != "user" else None,
                      prompt_chars=len(text) // 3 if role == "assistant" else 0)
        view = MessageView(msg, index_hue=hue)
        for selected in [None] + ([0, len(result.highlights) - 1] if role != "user" and result.highlights else []):
            view.selected = selected
            plain = view.build_content().plain
            assert not _leaks(plain), _leaks(plain)
            assert inert(text) in plain  # literal: no markup consumed, nothing dropped
            STATS["MessageView renders"] += 1
    panel = DocumentPanel()
    for d in result.documents:
        for spans in (None, d.spans[:1]):
            plain = panel._prompt(result, d, spans).plain
            assert not _leaks(plain), _leaks(plain)
            hit = next((h for h in d.hits if spans is None or h.span in spans), d.hits[0])
            assert inert(d.index) in plain and inert(d.source) in plain
            assert inert(hit.snippet).replace("\n", " ") in plain
            STATS["DocumentPanel prompts"] += 1


@st.composite
def synthetic_traces(draw: st.DrawFn) -> TraceResult:
    """A trace of hostile text with hostile index names, sources, metadata and snippets."""
    text = draw(document)
    index = draw(name_text)
    n = len(text)
    spans: list[Span] = []
    for _ in range(draw(st.integers(0, 4)) if n else 0):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, min(n, a + 200)))
        spans.append(Span(index, a, b, text[a:b], 0, 1, draw(st.integers(1, 10**6)), -5.0,
                          draw(st.sampled_from(["high", "medium", "low"]))))
    documents = []
    for k in range(draw(st.integers(0, 3)) if spans else 0):
        snippet = draw(document)
        s = draw(st.integers(0, len(snippet)))
        e = draw(st.integers(s, len(snippet)))
        meta = {"path": draw(hostile), "linenum": draw(st.integers(0, 5)), "metadata": {draw(hostile): draw(hostile)}}
        hits = [DocHit(draw(st.integers(0, len(spans) - 1)), snippet, (s, e), snippet, (s, e))]
        doc = Document(f"{index}:{k}", index, 0, k, meta, hits, score=1.0, level=draw(st.sampled_from(["high", "low"])))
        documents.append(doc)
        for h in hits:
            spans[h.span].documents.append(doc.id)
    return TraceResult(text, draw(hostile), spans, documents, merge_spans([(s.start, s.end) for s in spans]),
                       {"total": 1.0}, TraceParams())


@settings(max_examples=int(300 * SCALE), deadline=None, derandomize=DERANDOMIZE, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(result=synthetic_traces())
def test_widgets_show_hostile_text_literally(result: TraceResult) -> None:
    STATS["widget examples"] += 1
    _check_widgets(result)


# -- (c) sanitize.inert ---------------------------------------------------------------------------
@settings(max_examples=int(500 * SCALE), deadline=None, derandomize=DERANDOMIZE, database=None)
@given(text=st.one_of(st.text(), st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFFFF)),
                      st.lists(st.one_of(st.sampled_from(PIECES), st.integers(0xD800, 0xDFFF).map(chr)))
                      .map("".join)))
def test_inert_on_any_code_point(text: str) -> None:
    STATS["inert examples"] += 1
    STATS["inert examples with lone surrogates"] += bool(re.search("[\ud800-\udfff]", text))
    safe = inert(text)
    assert len(safe) == len(text)  # one for one: span offsets stay valid
    assert not _leaks(safe) and is_inert(safe)
    assert inert(safe) == safe
    for a, b in zip(text, safe, strict=True):
        assert (a == b) != _unsafe(a)  # exactly the unsafe characters are replaced
    safe.encode("utf-8")  # printable: no surrogate left
