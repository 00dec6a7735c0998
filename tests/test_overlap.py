"""Overlap reports: planted items get the expected verdicts; n-gram shares and coverage equal a
brute-force search over the documents' tokens (bytes and byte-level BPE); bad item files are one
line naming the file and the line; the JSON stream stays valid when a run is interrupted."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from tracetui.cli import main
from tracetui.overlap.command import run
from tracetui.overlap.items import Item, read_items
from tracetui.overlap.measure import measure
from tracetui.overlap.report import OverlapParams, run_overlap

from . import word_oracle as oracle
from .conftest import write_jsonl

WORDS = ("river stone light morning garden window silver quiet north paper candle orange winter "
         "harbor meadow thunder violet copper lantern valley ember forest island marble cedar").split()


def _passage(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS, size=n).tolist())


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(7)
    d = tmp_path_factory.mktemp("planted")
    docs = [_passage(rng, 120) + "." for _ in range(30)]
    verbatim = " ".join(docs[3].split()[20:60])
    words = docs[5].split()[10:50]
    words[20] = "zebra"
    changed = " ".join(words)
    items = [
        {"id": "verbatim", "question": "Recite:", "answer": verbatim},
        {"id": "changed", "question": "Recite:", "answer": changed},
        {"id": "paraphrase", "question": "Say:", "answer": "a brook of pebbles glows at dawn beside the "
                                                         "hushed allotment and its pane of gleaming argent"},
        {"id": "novel", "question": "Q:", "answer": "xylophones quarrel with jubilant kumquats yesterday"},
    ]
    src = write_jsonl(d / "corpus.jsonl", docs)
    out = d / "index"
    build_index([src], out, BuildOptions(tokenizer="bytes", progress=False))
    bench = d / "bench.jsonl"
    bench.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return {"index": out, "bench": bench, "docs": docs}


def test_planted_items_get_the_expected_verdicts(planted: dict) -> None:
    index = Index.open(planted["index"])
    items = list(read_items(planted["bench"], ["question", "answer"]))
    got = {r.id: r for r in run_overlap([index], items, OverlapParams(batch=3))}
    # 41 words ("Recite:" and the passage): 29 13-grams, of which only the one that starts at
    # "Recite:" is not in the corpus; the one that starts at the passage's first word, after the
    # line break, is (its left edge is a boundary on both sides: a newline here, a space there)
    assert got["verbatim"].verdict == "contaminated"
    assert (got["verbatim"].ngrams_found, got["verbatim"].ngrams) == (28, 29)
    assert got["verbatim"].coverage > 0.85
    assert got["verbatim"].longest_text == " ".join(planted["docs"][3].split()[20:60])  # from the line's first word
    assert any(w.doc == 3 for w in got["verbatim"].where)
    # one changed word: the 13 n-grams through it are lost too; coverage stays high
    assert got["changed"].verdict == "contaminated"
    assert (got["changed"].ngrams_found, got["changed"].ngrams) == (15, 29)  # 29 - 13 - "Recite:"
    assert got["changed"].coverage > 0.8
    assert got["paraphrase"].verdict == "clean" and got["paraphrase"].ngrams_found == 0
    assert got["novel"].verdict == "clean" and got["novel"].coverage == 0.0


# -- brute force (on the text: tests/word_oracle.py, no production word code) ------------------
def _tokenizer_of(index: Index) -> str:
    return "bytes" if index.manifest.tokenizer == "bytes" else str(index.directory / index.manifest.tokenizer)


def brute(index: Index, docs: list[str], text: str, n: int, min_span: int) -> tuple[int, int, int]:
    """n-grams found, n-grams, covered non-space characters: an item's words are its reply
    boundaries whose run up to the next boundary holds a word character; an n-gram is n words
    in a row with what trails the last; coverage is every maximal whole-word match of at least
    min_span tokens from a boundary."""
    view = oracle.viewer(_tokenizer_of(index))
    doc_views = [view(d) for d in docs]
    v = view(text)
    ids, L = v.ids, len(v.ids)
    cuts = [p for p in range(L) if v.bnd[p]]
    W = []
    for k, p in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else L
        if any(oracle.is_word(c) for c in text[v.chars[p][0] : v.chars[end - 1][1]]):
            W.append(p)
    ends = W[1:] + [L]
    if not W:
        grams = []
    elif len(W) >= n:
        grams = [(W[i], ends[i + n - 1]) for i in range(len(W) - n + 1)]
    else:
        grams = [(W[0], ends[-1])]
    found = sum(oracle.count(doc_views, ids[a:b]) > 0 for a, b in grams)
    covered = np.zeros(len(text), dtype=bool)
    stops = [k for k in range(1, L + 1) if v.bnd[k]]
    prev_r = -1
    for p in cuts:
        best = p
        for r in stops:
            if r > p and oracle.count(doc_views, ids[p:r]) > 0:
                best = r
            elif r > p:
                break  # a longer match contains this one
        if best - p >= min_span and best > prev_r:
            covered[v.chars[p][0] : v.chars[best - 1][1]] = True
        prev_r = max(prev_r, best)
    nonspace = np.array([not c.isspace() for c in text], dtype=bool)
    return found, len(grams), int(np.count_nonzero(covered & nonspace))


chars = st.sampled_from(list("ab  c.\n_(") + ["é", "—", "日"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.text(chars, min_size=1, max_size=80), min_size=1, max_size=4),
       items=st.lists(st.text(chars, min_size=1, max_size=50), min_size=1, max_size=4),
       n=st.integers(1, 4), min_span=st.integers(1, 6))
def test_ngram_share_and_coverage_equal_brute_force(tmp_path_factory, docs, items, n, min_span) -> None:
    docs = [d for d in docs if d.strip()] or ["a b"]
    d = tmp_path_factory.mktemp("ovb")
    build_index([write_jsonl(d / "c.jsonl", docs)], d / "ix", BuildOptions(tokenizer="bytes", progress=False))
    index = Index.open(d / "ix")
    for text, got in zip(items, measure(index, items, n=n, min_span=min_span, docs=0), strict=True):
        found, total, covered = brute(index, docs, text, n, min_span)
        assert (got.ngrams_found, got.ngrams) == (found, total), text
        assert got.covered_chars == covered, text


def test_oracle_case_with_matches(tmp_path: Path) -> None:
    """A fixed case of the oracle above where n-grams are found and characters covered (so the
    comparison is not only between empty results)."""
    docs = ["a b c. ab c\né—a b", "c ab a b c"]
    build_index([write_jsonl(tmp_path / "c.jsonl", docs)], tmp_path / "ix", BuildOptions(tokenizer="bytes", progress=False))
    index = Index.open(tmp_path / "ix")
    items = ["a b c", "x a b c. ab", "é—a b zz"]
    got = measure(index, items, n=2, min_span=2, docs=0)
    want = [brute(index, docs, t, 2, 2) for t in items]
    assert [(g.ngrams_found, g.ngrams, g.covered_chars) for g in got] == want
    assert sum(w[0] for w in want) > 0 and sum(w[2] for w in want) > 0


def test_bpe_ngram_share_equals_brute_force(text_index: Path) -> None:
    """The same oracle with a trained byte-level BPE (word starts carry their space)."""
    from .conftest import SAMPLE_TEXTS

    index = Index.open(text_index)
    items = ["The quick brown fox jumps over the lazy dog all day long.", "To be, or not to be, that is the",
             "return a + b\nimport numpy as np", "the early bird catches the worm. A stitch in time"]
    for n in (2, 4, 13):
        for text, got in zip(items, measure(index, items, n=n, min_span=3, docs=0), strict=True):
            found, total, covered = brute(index, SAMPLE_TEXTS, text, n, 3)
            assert (got.ngrams_found, got.ngrams) == (found, total), (text, n)
            assert got.covered_chars == covered, (text, n)


# -- input files and CLI -------------------------------------------------------------------
@pytest.mark.parametrize("name,content,expect", [
    ("bad.jsonl", '{"text": "a"}\n{"text": "b"}\n{"text": \n', "bad.jsonl:3: invalid JSON"),
    ("nofield.jsonl", '{"text": "a"}\n{"body": "b"}\n', "nofield.jsonl:2: no field 'text'"),
    ("notobj.jsonl", '["a"]\n', "notobj.jsonl:1: record is not a JSON object"),
    ("bad.csv", 'id,text\n1,hello\n2,"world,x\n', "bad.csv"),
    ("cols.csv", 'id,text\n1,hello,extra\n', "cols.csv:2: more values than header columns"),
    ("latin1.txt", b"ok line\ncaf\xe9\n", "latin1.txt:2: invalid UTF-8"),
    ("missing.jsonl", None, "missing.jsonl: no such file"),
])
def test_bad_item_files_are_one_line_naming_file_and_line(planted: dict, tmp_path: Path, capsys, name, content,
                                                           expect) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["overlap", str(path), "--index", str(planted["index"])]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and expect in err, err


def test_cli_json_markdown_csv_and_text(planted: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    csv_path = tmp_path / "b.csv"
    csv_path.write_text('id,text\nx1,"' + " ".join(planted["docs"][4].split()[:30]) + '"\nx2,kumquat zebra\n',
                        encoding="utf-8")
    txt = tmp_path / "lines.txt"
    txt.write_text(" ".join(planted["docs"][6].split()[5:25]) + "\n\nnothing here at all\n", encoding="utf-8")
    md = tmp_path / "r.md"
    assert main(["overlap", str(csv_path), str(txt), "--index", str(planted["index"]), "--json",
                 "--markdown", str(md)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "tracetui.overlap/1" and not doc["interrupted"]
    verdicts = {(i["benchmark"], i["id"]): i["verdict"] for i in doc["items"]}
    assert verdicts == {("b.csv", "x1"): "contaminated", ("b.csv", "x2"): "clean",
                        ("lines.txt", "1"): "contaminated", ("lines.txt", "3"): "clean"}
    bench = {b["benchmark"]: b for b in doc["benchmarks"]}
    assert bench["b.csv"]["items"] == 2 and bench["b.csv"]["verdicts"]["contaminated"] == 1
    assert sum(bench["lines.txt"]["coverage_histogram"]) == 2
    report = md.read_text(encoding="utf-8")
    assert "| b.csv | 2 |" in report and "Items of highest score" in report
    assert main(["overlap", str(csv_path), "--index", str(planted["index"])]) == 0
    out = capsys.readouterr().out
    assert "b.csv" in out and "contaminated" in out


def test_interrupted_run_keeps_valid_json_and_counts(planted: dict) -> None:
    index = Index.open(planted["index"])
    doc = planted["docs"][0]

    def items():  # type: ignore[no-untyped-def]
        for k in range(5):
            yield Item("b", k + 1, str(k), doc[k * 10 : k * 10 + 200])
        raise KeyboardInterrupt

    import tracetui.overlap.command as command

    buf = io.StringIO()
    real = command._items
    command._items = lambda files, fields, normalize: items()
    try:
        outcome = run([index], ["x"], None, OverlapParams(batch=2), json_out=buf)
    finally:
        command._items = real
    data = json.loads(buf.getvalue())
    assert outcome.interrupted and data["interrupted"]
    assert len(data["items"]) == 4 == outcome.items  # the 5th item's batch was never searched


# -- the Overlap screen ----------------------------------------------------------------------
async def test_overlap_screen_from_the_chat(planted: dict) -> None:
    """F7, an items file and Enter: the items sorted by score; the first traced like a reply; Tab
    walks its spans, Ctrl+O and Enter open a document; Escape clears, then goes back."""
    from index_tools.opening import IndexSet
    from tracetui.app.app import TraceApp
    from tracetui.app.screens.document import DocumentScreen
    from tracetui.app.screens.main import MainScreen
    from tracetui.app.screens.overlap import OverlapScreen
    from tracetui.model import ScriptedBackend

    app = TraceApp(IndexSet.open([planted["index"]]), ScriptedBackend(["hi"]), intro="t",
                   export_dir=planted["index"].parent)
    async with app.run_test(size=(140, 36)) as pilot:
        await pilot.pause()
        await pilot.press("f7")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, OverlapScreen)
        path = screen.query_one("#overlap-path")
        path.value = f"{planted['bench']} question,answer"
        await pilot.press("enter")
        for _ in range(100):
            if screen.reports and screen.view is not None and screen.view.trace is not None:
                break
            await pilot.pause(0.05)
        scores = [r.score for r in screen.reports]
        assert scores == sorted(scores, reverse=True) and len(scores) == 4
        assert screen.reports[0].id == "verbatim" and screen.view.text == screen.reports[0].text
        assert screen.view.trace.highlights, "a verbatim item is highlighted like a reply"
        # keys faster than traces: one trace at a time, the last item chosen is the one shown
        screen.query_one("#overlap-items").focus()
        await pilot.press("down", "down", "down", "up", "up", "up")
        for _ in range(100):
            if screen.view is not None and screen.view.text == screen.reports[0].text:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        assert screen.current == 0 and screen.view.text == screen.reports[0].text
        assert "failed" not in str(screen.query_one("#overlap-status").render())
        await pilot.press("tab")
        assert screen.view.selected == 0
        await pilot.press("shift+tab")
        assert screen.view.selected == len(screen.view.trace.highlights) - 1
        await pilot.press("ctrl+o", "enter")
        await pilot.pause()
        assert isinstance(app.screen, DocumentScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen
        await pilot.press("escape")  # clears the selection
        assert screen.view.selected is None
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_overlap_screen_reports_a_bad_file_and_stays(planted: dict, tmp_path: Path) -> None:
    from index_tools.opening import IndexSet
    from tracetui.app.screens.overlap import OverlapApp

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{oops\n', encoding="utf-8")
    app = OverlapApp(list(IndexSet.open([planted["index"]])), [], OverlapParams())
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#overlap-path").value = str(bad)
        await pilot.press("enter")
        for _ in range(50):
            if "bad.jsonl:2" in str(screen.query_one("#overlap-status").render()):
                break
            await pilot.pause(0.05)
        assert "bad.jsonl:2: invalid JSON" in str(screen.query_one("#overlap-status").render())
        assert app.is_running and app.screen is screen  # the screen stays, ready for another file


def test_files_of_the_same_name_are_two_benchmarks(planted: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    for bench in ("mmlu", "gsm8k"):
        (tmp_path / bench).mkdir()
        (tmp_path / bench / "test.jsonl").write_text('{"text": "kumquat zebra"}\n', encoding="utf-8")
    files = [str(tmp_path / "mmlu" / "test.jsonl"), str(tmp_path / "gsm8k" / "test.jsonl")]
    assert main(["overlap", *files, "--index", str(planted["index"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(b["benchmark"] for b in doc["benchmarks"]) == sorted(files)
    assert all(b["items"] == 1 for b in doc["benchmarks"])
