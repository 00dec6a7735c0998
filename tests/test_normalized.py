"""Normalized indexes (issue 21, sections 1-2): `index build --normalize space|words` holds the
normalized text, every query is normalized alike, highlights and documents stay on the original
text, and overlap on a `words` index is the reports' n-gram measure over normalized words."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from index_tools.normalize import normalize, normalize_with_map, original_range
from tracetui.cli import main
from tracetui.overlap.measure import measure
from tracetui.tracing.pipeline import Tracer

from .conftest import write_jsonl
from .test_overlap import brute

#: no Hangul jamo (NFKC composes them across base characters: normalized per cluster here)
TEXT = st.lists(st.sampled_from(list("aB c.,!?;:\n\t  ()'\"—é") + ["e\u0301", "\ufb01", "\u00a0", "Ⅻ", "ß", "\u0301"]),
                max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_normalization_equals_its_definition_and_maps_back(text: str) -> None:
    nfkc = unicodedata.normalize("NFKC", text)
    assert normalize(text, "space") == " ".join(nfkc.split())
    words = "".join(" " if unicodedata.category(c).startswith("P") else c for c in nfkc.lower())
    assert normalize(text, "words") == " ".join(words.split())
    for mode in ("space", "words"):
        norm, where = normalize_with_map(text, mode)
        assert len(where) == len(norm) + 1 and np.all(np.diff(where) >= 0)
        for i, ch in enumerate(norm):  # each character comes from the original cluster it maps to
            a, b = original_range(text, where, i, i + 1)
            piece = unicodedata.normalize("NFKC", text[a:b])
            assert ch == " " or ch in (piece.lower() if mode == "words" else piece), (text, mode, i)
        a, b = original_range(text, where, 0, len(norm))
        if norm:
            assert normalize(text[a:b], mode) == norm  # the whole range holds all of it


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_the_ascii_fast_path_equals_the_general_one(text: str) -> None:
    from index_tools.normalize import _by_clusters

    for mode in ("space", "words"):
        norm, where = normalize_with_map(text, mode)
        slow, slow_where = _by_clusters(text, mode)
        assert norm == slow == normalize(text, mode)
        assert where.tolist() == slow_where.tolist()


PARAGRAPHS = [
    "The quick brown fox,\n    having crossed the river at dawn,\n    rested beneath the old oak tree\n"
    "    while the farmers counted their sheep.",
    "In the beginning of the season the\n\tharvest was poor; nobody knew why\n\tthe rains had failed again.",
    "A completely different passage about\n  engines, pistons and the price of copper wire.",
]


@pytest.fixture(scope="module")
def words_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("norm")
    build_index([write_jsonl(d / "c.jsonl", PARAGRAPHS)], d / "ix",
                BuildOptions(tokenizer="bytes", progress=False, normalize="words"))
    return d / "ix"


def test_a_words_index_holds_normalized_text_and_shows_the_original(words_index: Path) -> None:
    index = Index.open(words_index)
    assert index.manifest.build["normalize"] == "words"
    assert index.tokenizer.decode(index.document_tokens(0, 0)) == normalize(PARAGRAPHS[0], "words")
    assert index.document_text(0) == PARAGRAPHS[0]  # documents as stored
    assert "tracetui_original_text" not in index.metadata(0, 0)
    # queries are normalized alike: case, punctuation and line breaks do not matter
    for query in ("Quick Brown FOX", "quick brown fox,", "quick\n   brown fox"):
        assert index.count_words(index.encode(query)) == 1, query
    assert index.count_words(index.encode("brown fox having")) == 1  # across the comma and the wrap
    assert index.count_words(index.encode("own fox")) == 0  # still whole words


def test_trace_on_a_normalized_index_highlights_the_original_reply(words_index: Path) -> None:
    reply = "Well: THE QUICK BROWN FOX, having crossed the river at DAWN!"
    got = Tracer([Index.open(words_index)]).trace(reply)
    assert got.spans
    longest = max(got.spans, key=lambda s: s.end - s.start)
    assert reply[longest.start : longest.end] == longest.text
    assert longest.text.startswith("THE QUICK") and longest.text.endswith("DAWN")
    assert got.documents and got.documents[0].doc == 0


def test_cli_count_and_build_with_normalize(tmp_path: Path, capsys) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", PARAGRAPHS)
    assert main(["index", "build", str(src), "-o", str(tmp_path / "sp"), "--tokenizer", "bytes", "--normalize", "space",
                 "-q"]) == 0
    capsys.readouterr()
    assert main(["count", "--index", str(tmp_path / "sp"), "--json", "fox,\n  having"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["count"] == 1  # the wrap is a space
    assert main(["count", "--index", str(tmp_path / "sp"), "--json", "Fox, having"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["count"] == 0  # space mode keeps case


@pytest.mark.parametrize("tokenizer", ["bytes", "bpe"])
def test_overlap_on_a_words_index_is_the_reports_measure(tmp_path: Path, bpe_tokenizer: Path, tokenizer: str) -> None:
    """Items re-flowed onto one line, re-cased or re-punctuated are contaminated; a novel one is
    clean; the n-gram share equals brute force over the normalized text."""
    tok = "bytes" if tokenizer == "bytes" else str(bpe_tokenizer)
    build_index([write_jsonl(tmp_path / "c.jsonl", PARAGRAPHS)], tmp_path / "ix",
                BuildOptions(tokenizer=tok, progress=False, normalize="words"))
    index = Index.open(tmp_path / "ix")
    flowed = " ".join(PARAGRAPHS[0].split())
    items = {
        "reflowed": flowed,
        "recased": flowed.upper(),
        "repunctuated": flowed.replace(",", ";").replace(".", "!"),
        "novel": "Seven violet kites drifted over the silent harbour without any wind at all.",
    }
    n = 5
    got = dict(zip(items, measure(index, list(items.values()), n=n, min_span=5, docs=1), strict=True))
    norm_docs = [normalize(p, "words") for p in PARAGRAPHS]
    for name, text in items.items():
        found, total, _ = brute(index, norm_docs, normalize(text, "words"), n, 5)
        assert (got[name].ngrams_found, got[name].ngrams) == (found, total), name
    for name in ("reflowed", "recased", "repunctuated"):
        assert got[name].ngrams and got[name].ngrams_found == got[name].ngrams, name
        assert got[name].where and got[name].where[0].doc == 0
    assert got["novel"].ngrams_found == 0
    # coverage is counted on the item as given: all of it but the final period (punctuation is
    # not in a words index, so no match holds it)
    text = items["recased"]
    assert text.endswith(".") and got["recased"].covered == [(0, len(text) - 1)]
    assert got["recased"].covered_chars == sum(1 for c in text if not c.isspace()) - 1


def test_a_served_normalized_index_normalizes_alike(words_index: Path) -> None:
    pytest.importorskip("uvicorn")
    from index_tools.remote import RemoteIndex

    from .test_serve_security import Server

    server = Server(words_index)
    try:
        remote, local = RemoteIndex.open(f"{server.url}/ix"), Index.open(words_index)
        for query in ("Quick Brown FOX", "the RAINS had failed"):
            assert remote.count_words(remote.encode(query)) == local.count_words(local.encode(query)) == 1
        assert remote.document_text(1) == PARAGRAPHS[1]
    finally:
        server.stop()


def test_the_document_screen_marks_spans_on_the_original_text(words_index: Path) -> None:
    from tracetui.app.screens.document import DocumentScreen

    index = Index.open(words_index)
    reply = "THE HARVEST WAS POOR, nobody knew why!"
    trace = Tracer([index]).trace(reply)
    doc = next(d for d in trace.documents if d.doc == 1)
    screen = DocumentScreen(trace, doc, index.document_text(1))
    screen.show_whole = True
    text, marks = screen._text_and_marks()
    assert text == PARAGRAPHS[1]
    marked = [text[a:b] for a, b, _ in marks]
    assert "the\n\tharvest was poor; nobody knew why" in marked  # on the stored text, its line break and ";"
