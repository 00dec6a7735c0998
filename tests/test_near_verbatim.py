"""Near-verbatim spans (`tracetui.tracing.near`) against brute force over the documents' text.

The oracle never asks the index nor near.py: documents and reply are viewed as the tokenizer
library's tokens with word boundaries read off the text (`tests/word_oracle.py`), the exact spans
are section 1 by brute force, and every pair of them is looked for in every document at every
position with every gap. The definition it implements, written out from the module docstring:
sides are exact spans without whitespace-only edge tokens, each holding a word character; the
right side starts 0..max_gap tokens after the left one ends, the reply's gap holding at most one
run of word characters; in a document, a whole-word occurrence of the left side followed, after
0..max_gap tokens holding at most one run of word characters and differing from the reply's gap,
by a whole-word occurrence of the right side.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from index_tools.engine import Index
from index_tools.tokenizer import train_bpe
from tracetui.tracing.near import NearParams
from tracetui.tracing.pipeline import TraceParams, Tracer, TraceResult

from . import word_oracle as oracle
from .conftest import build_texts_index
from .test_whole_words import (  # noqa: F401  (fixtures)
    RULE_ALPHABET,
    WORDPIECE_ALPHABET,
    byte_level,
    sentencepiece,
    tokenizers_dir,
    wordpiece,
)

FAMILIES = ["bytes", "byte-level", "sentencepiece", "wordpiece"]
ALL = TraceParams(span_density=1.0)  # every exact span kept: the oracle's spans are all of them




# -- the oracle ----------------------------------------------------------------------------------
def runs(text: str) -> int:
    """Maximal runs of word characters (word characters by Python's Unicode database)."""
    return sum(1 for k, ch in enumerate(text) if oracle.is_word(ch) and (k == 0 or not oracle.is_word(text[k - 1])))


def _text_of(v: oracle.View, a: int, b: int) -> str:
    """The text of tokens [a, b) of a view (empty when a == b)."""
    return v.text[v.chars[a][0] : v.chars[b - 1][1]] if b > a else ""


def _side(v: oracle.View, l: int, r: int) -> tuple[int, int]:
    def space(k: int) -> bool:
        a, b = v.chars[k]
        return b > a and v.text[a:b].isspace()

    while l < r and space(l):
        l += 1
    while r > l and space(r - 1):
        r -= 1
    return l, r


def brute_near(docs: list[oracle.View], reply: oracle.View, spans: list[tuple[int, int]],
               max_gap: int) -> set[tuple[int, int, int, int, int]]:
    """(left span, right span, document, left start, right start) of every near-verbatim hit."""
    sides = [_side(reply, l, r) for l, r in spans]
    worded = [any(oracle.is_word(ch) for ch in _text_of(reply, l, r)) for l, r in sides]
    out = set()
    for i, (l1, r1) in enumerate(sides):
        for j, (l2, r2) in enumerate(sides):
            if i == j or not (worded[i] and worded[j]) or not 0 <= l2 - r1 <= max_gap:
                continue
            gap = reply.ids[r1:l2]
            if runs(_text_of(reply, r1, l2)) > 1:
                continue
            left, right = reply.ids[l1:r1], reply.ids[l2:r2]
            for k, d in enumerate(docs):
                for p in range(len(d.ids) - len(left) + 1):
                    e = p + len(left)
                    if d.ids[p:e] != left or not (d.bnd[p] and d.bnd[e]):
                        continue
                    for q in range(e, min(e + max_gap, len(d.ids) - len(right)) + 1):
                        f = q + len(right)
                        if d.ids[q:f] != right or not (d.bnd[q] and d.bnd[f]):
                            continue
                        if d.ids[e:q] == gap or runs(_text_of(d, e, q)) > 1:
                            continue
                        out.add((i, j, k, p, q))
    return out


def got_near(result: TraceResult) -> set[tuple[int, int, int, int, int]]:
    assert result.near is not None
    out = set()
    for n in result.near:
        assert n.hits and not n.capped
        for h in n.hits:
            assert h.doc_tokens is not None
            out.add((n.left, n.right, h.doc, h.doc_tokens[0], h.doc_tokens[2]))
    return out


@pytest.fixture(scope="module")
def tokenizer_paths(request: pytest.FixtureRequest) -> dict[str, str]:
    """The tokenizer of each family (trained in test_whole_words' fixtures)."""
    return {"bytes": "bytes", **{family: str(request.getfixturevalue(name).path) for family, name in
                                 (("byte-level", "byte_level"), ("sentencepiece", "sentencepiece"),
                                  ("wordpiece", "wordpiece"))}}


#: enough words that an edited word and what follows it rarely occur elsewhere too (else the
#: span from the edit swallows the right side, which is then no exact span of its own)
WORDS = ["ab", "a", "b", "ba", "1_", "é", "日本", "😀", "cab", "dé", "ee", "f1", "_g", "hh", "i日", "jj"]
SEPS = [" ", " ", " ", "\t", "\n", ". ", "—", "“", "”", "'", "(", ")"]
#: words the small WordPiece vocabulary holds (an unknown word is [UNK], whose text no index
#: keeps: the oracle, reading the text, would see words the tokens do not)
WP_WORDS = ["the", "cat", "sat", "on", "mat", "catalog", "anon", "text", "with", "an", "em", "dash", "hi",
            "of", "high", "to", "me", "word", "42nd", "1"]
WP_SEPS = [" ", " ", " ", "\t", "\n", ". ", "—", "“", "”", ", "]


@st.composite
def corpus_and_reply(draw: st.DrawFn, family: str) -> tuple[list[str], str]:
    """A few short documents of words and separators, and a reply that is mostly a run of one
    of them with one word replaced, added or dropped (or, sometimes, random text of its own)."""
    words, seps = (WP_WORDS, WP_SEPS) if family == "wordpiece" else (WORDS, SEPS)
    alphabet = WORDPIECE_ALPHABET if family == "wordpiece" else RULE_ALPHABET
    piece = st.tuples(st.sampled_from(words), st.sampled_from(seps))
    docs_pieces = draw(st.lists(st.lists(piece, min_size=1, max_size=12), min_size=1, max_size=4), label="docs")
    docs_pieces[0] = docs_pieces[0] + draw(st.lists(piece, min_size=6, max_size=10), label="long")
    docs = ["".join(w + s for w, s in d) for d in docs_pieces]
    if draw(st.integers(0, 5), label="own") == 0:
        return docs, draw(st.text(alphabet=alphabet, min_size=1, max_size=30), label="reply")
    d = docs_pieces[draw(st.integers(0, len(docs_pieces) - 1))]
    a = draw(st.integers(0, len(d) - 1))
    b = draw(st.integers(min(len(d), a + 5), len(d)))
    run = list(d[a:b])
    k = draw(st.integers(0, len(run)))
    edit = draw(st.sampled_from(["substitute", "substitute", "insert", "delete", "none"]))
    if edit == "substitute" and k < len(run):
        run[k] = (draw(st.sampled_from(words)), run[k][1])
    elif edit == "insert":
        run.insert(k, draw(piece))
    elif edit == "delete" and k < len(run) and len(run) > 1:
        del run[k]
    return docs, "".join(w + s for w, s in run)


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), max_gap=st.sampled_from([2, 16]))
def test_near_verbatim_equals_brute_force(tmp_path_factory, tokenizer_paths, family, data, max_gap) -> None:
    docs, response = data.draw(corpus_and_reply(family), label="case")
    tokenizer = tokenizer_paths[family]
    index = build_texts_index(tmp_path_factory.mktemp("near"), docs, tokenizer)
    view = oracle.viewer(tokenizer)
    doc_views = [view(d) for d in docs]
    reply = view(response)
    assert index.encode(response).tolist() == reply.ids
    result = Tracer([index], ALL).trace(response, near=NearParams(cap=10_000, max_gap=max_gap))
    # the exact spans near.py starts from are section 1's, by brute force
    want_spans = oracle.reference_spans(doc_views, reply, oracle.delimiter_tokens(tokenizer), 1, ALL.max_cnt)
    assert [(s.token_start, s.token_end) for s in result.spans] == [(l, r) for l, r, _ in want_spans]
    want = brute_near(doc_views, reply, [(l, r) for l, r, _ in want_spans], max_gap)
    assert got_near(result) == want
    event(f"near-verbatim hits: {'some' if want else 'none'}")
    for n in result.near or []:
        assert n.start < n.end and response[n.diff[0] : n.diff[1]] == n.diff_text
        for h in n.hits:
            assert h.kind in ("substitution", "insertion", "deletion")
            assert h.window[h.diff[0] : h.diff[1]] == h.diff_text
            assert h.left[1] <= h.diff[0] <= h.diff[1] <= h.right[0]
            if family != "wordpiece":  # wordpiece decodes lowercased, its own spacing
                assert h.window[h.left[0] : h.left[1]] == response[n.start : n.start + h.left[1] - h.left[0]]
                assert response[n.end - (h.right[1] - h.right[0]) : n.end] == h.window[h.right[0] : h.right[1]]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1])
def test_planted_edits_equal_brute_force(tmp_path: Path, tokenizer_paths, family, seed) -> None:  # type: ignore[no-untyped-def]
    """A larger corpus of random sentences, a reply of several passages from it, each with one
    word changed, added or dropped: near.py finds what brute force finds, and finds some."""
    rng = random.Random(seed)
    words, seps = (WP_WORDS, WP_SEPS) if family == "wordpiece" else (WORDS, SEPS)
    vocab = sorted({a + b for a in words for b in words})[:60]  # two-word compounds: rarer words
    docs = ["".join(rng.choice(vocab) + rng.choice(seps) for _ in range(rng.randint(10, 30))) for _ in range(12)]
    parts = []
    for _ in range(4):
        pieces = [(w, sp) for w, sp in zip(*[iter(_split(docs[rng.randrange(len(docs))], seps))] * 2, strict=False)]
        a = rng.randrange(max(1, len(pieces) - 8))
        run = pieces[a : a + 8]
        k = rng.randrange(len(run))
        edit = rng.choice(["substitute", "insert", "delete"])
        if edit == "substitute":
            run[k] = (rng.choice(vocab), run[k][1])
        elif edit == "insert":
            run.insert(k, (rng.choice(vocab), " "))
        else:
            del run[k]
        parts.append("".join(w + sp for w, sp in run))
    response = "\n".join(parts)
    tokenizer = tokenizer_paths[family]
    index = build_texts_index(tmp_path, docs, tokenizer)
    view = oracle.viewer(tokenizer)
    doc_views, reply = [view(d) for d in docs], view(response)
    result = Tracer([index], ALL).trace(response, near=NearParams(cap=10_000))
    want = brute_near(doc_views, reply, [(s.token_start, s.token_end) for s in result.spans], 16)
    assert want  # the planted edits are found
    assert got_near(result) == want


def _split(doc: str, seps: list[str]) -> list[str]:
    """A document drawn as word, separator, word, ... back into those pieces."""
    out, k = [], 0
    by_len = sorted(set(seps), key=len, reverse=True)
    word = ""
    while k < len(doc):
        sep = next((sp for sp in by_len if doc.startswith(sp, k)), None)
        if sep is None:
            word += doc[k]
            k += 1
        else:
            out += [word, sep]
            word, k = "", k + len(sep)
    return out


# -- targeted cases ------------------------------------------------------------------------------
CORPUS = ["The quick brown fox jumps over the lazy dog near the old river bank today.",
          "A stitch in time saves nine, as the proverb says about small repairs.",
          "Completely unrelated words live in this third document of the corpus."]


@pytest.fixture(scope="module", params=["bytes", "bpe"])
def corpus_index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Index:
    tmp = tmp_path_factory.mktemp("near-corpus")
    tok = "bytes"
    if request.param == "bpe":
        tok = str(train_bpe(iter(CORPUS * 20), tmp / "bpe.json", vocab_size=300).path)
    return build_texts_index(tmp, CORPUS, tok)


def _near(index: Index, reply: str, **kw: Any) -> TraceResult:
    return Tracer([index], ALL).trace(reply, near=NearParams(**kw))


@pytest.mark.parametrize("reply, kind, mine, theirs", [
    ("The quick brown fox leaps over the lazy dog near the old river bank today.", "substitution", "leaps", "jumps"),
    ("The quick brown fox jumps high over the lazy dog near the old river bank today.", "insertion", "high", ""),
    ("The quick brown fox over the lazy dog near the old river bank today.", "deletion", "", "jumps"),
    ("A stitch in time saves ten, as the proverb says about small repairs.", "substitution", "ten", "nine"),
])
def test_substitution_insertion_deletion(corpus_index: Index, reply: str, kind: str, mine: str, theirs: str) -> None:
    result = _near(corpus_index, reply)
    assert result.near, result.spans
    best = max(result.near, key=lambda n: n.end - n.start)
    assert (best.start, best.end) == (0, len(reply))  # the whole sentence, one word apart
    assert best.diff_text == mine and reply[best.diff[0] : best.diff[1]] == mine
    (hit,) = [h for h in best.hits if h.kind == kind]
    assert hit.diff_text == theirs and hit.doc == (0 if "fox" in reply else 1)
    left, right = result.spans[best.left], result.spans[best.right]
    assert hit.window[hit.left[0] : hit.left[1]] == left.text
    assert hit.window[hit.right[0] : hit.right[1]] == right.text
    assert hit.window[hit.diff[0] : hit.diff[1]] == theirs
    if not theirs:  # an insertion: the document's word is missing, marked where it would be
        assert hit.diff[0] == hit.left[1]


def test_two_changes_are_not_near_verbatim(corpus_index: Index) -> None:
    reply = "The quick brown fox leaps far over the lazy dog near the old river bank today."
    result = _near(corpus_index, reply)
    assert not [n for n in result.near or [] if n.start == 0 and n.end == len(reply)]


def test_never_hides_an_exact_span(corpus_index: Index) -> None:
    """Exact spans, documents and highlights are the same with near-verbatim spans asked for; a
    near-verbatim region never lies inside one exact span; an exact span inside a near-verbatim
    region (here the reply's own word is an exact match elsewhere) stays listed."""
    reply = "A stitch in time saves nine, as the proverb about small repairs. The quick brown fox leaps over the lazy dog."
    plain = Tracer([corpus_index], ALL).trace(reply).to_json()
    near = _near(corpus_index, reply)
    got = near.to_json()
    assert set(got) - set(plain) == {"near"}
    for key in plain:
        if key != "timings_ms":
            assert got[key] == plain[key], key
    assert near.near
    for n in near.near:
        assert not any(s.start <= n.start and n.end <= s.end for s in near.spans)
        assert near.spans[n.left].start == n.start and near.spans[n.right].end == n.end
    assert TraceResult.from_json(got).to_json() == got  # a saved trace keeps its near-verbatim spans


def test_exact_span_inside_the_region_stays(tmp_path: Path) -> None:
    docs = ["alpha beta gamma one delta epsilon zeta", "xx two delta yy"]
    index = build_texts_index(tmp_path, docs, "bytes")
    reply = "alpha beta gamma two delta epsilon zeta"
    result = _near(index, reply)
    texts = [s.text for s in result.spans]
    assert "two delta" in texts and "alpha beta gamma" in texts
    assert result.near
    (n,) = [n for n in result.near if n.start == 0 and n.end == len(reply)]
    assert result.spans[n.left].text == "alpha beta gamma" and result.spans[n.right].text.startswith("delta")
    assert n.diff_text == "two" and n.hits[0].diff_text == "one" and n.hits[0].kind == "substitution"
    inside = [s for s in result.spans if n.start < s.start and s.end < n.end]
    assert [s.text for s in inside] == ["two delta"]  # the exact one inside is still there


def test_off_by_default(corpus_index: Index) -> None:
    result = Tracer([corpus_index]).trace(CORPUS[0].replace("jumps", "leaps"))
    assert result.near is None and "near" not in result.to_json()


# -- the cap ---------------------------------------------------------------------------------------
def test_cap_bounds_the_occurrences_looked_at(tmp_path: Path) -> None:
    rng = random.Random(3)
    docs = [f"{rng.choice(['one', 'two', 'six'])} alpha beta {w} gamma delta {k}"
            for k, w in enumerate(rng.choice(["red", "blue", "green"]) for _ in range(30))]
    index = build_texts_index(tmp_path, docs, "bytes")
    reply = "alpha beta black gamma delta"
    view = oracle.view_bytes
    doc_views = [view(d) for d in docs]
    spans = Tracer([index], ALL).trace(reply).spans
    want = brute_near(doc_views, view(reply), [(s.token_start, s.token_end) for s in spans], 16)
    assert len(want) == 30
    full = _near(index, reply, cap=1000)
    assert got_near(full) == want
    for cap in (1, 5, 29):
        result = _near(index, reply, cap=cap)
        assert result.near is not None
        (n,) = result.near
        assert n.capped and n.checked == cap and len(n.hits) == cap
        got = {(n.left, n.right, h.doc, h.doc_tokens[0], h.doc_tokens[2]) for h in n.hits if h.doc_tokens}
        assert got <= want
        again = _near(index, reply, cap=cap).near
        assert again is not None and [h.doc for h in again[0].hits] == [h.doc for h in n.hits]  # fixed seed
    (n,) = _near(index, reply, cap=30).near or []
    assert not n.capped and n.checked == 30


def test_windows_called_once_per_trace(corpus_index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    """All of a trace's pairs are looked up in one `windows` call (after the tracer's own)."""
    calls: list[int] = []
    real = corpus_index.windows

    def counting(occ: list[tuple[int, int, int]], contexts: tuple[int, ...]) -> Any:
        calls.append(len(occ))
        return real(occ, contexts)

    monkeypatch.setattr(corpus_index, "windows", counting)
    reply = ("The quick brown fox leaps over the lazy dog near the old river bank today. "
             "A stitch in time saves ten, as the proverb says about small repairs.")
    tracer = Tracer([corpus_index], ALL)
    tracer.trace(reply)
    before = len(calls)
    result = tracer.trace(reply, near=True)
    assert result.near and len(result.near) >= 2
    assert len(calls) - before == 1  # the documents are cached; near-verbatim: one call


def test_substring_mode(tmp_path: Path) -> None:
    index = build_texts_index(tmp_path, CORPUS, "bytes")
    reply = "The quick brown fox leaps over the lazy dog near the old river bank today."
    result = Tracer([index], TraceParams(span_density=1.0, whole_words=False)).trace(reply, near=True)
    assert result.near_params is not None and not result.near_params.whole_words
    assert any(h.diff_text == "jumps" for n in result.near or [] for h in n.hits)


def test_served_index_gives_the_same_near_verbatim_spans(corpus_index: Index) -> None:
    pytest.importorskip("uvicorn")
    from index_tools.remote import RemoteIndex

    from .test_serve import AppServer

    server = AppServer([corpus_index.directory])
    try:
        remote = RemoteIndex.open(server.url)
        reply = ("The quick brown fox jumps high over the lazy dog near the old river bank today. "
                 "A stitch in time saves ten, as the proverb says about small repairs.")
        a = Tracer([remote], ALL).trace(reply, near=True).to_json()
        b = Tracer([corpus_index], ALL).trace(reply, near=True).to_json()
        for d in (a, b):
            d.pop("timings_ms")
            d.pop("indexes")
        assert a["near"]["spans"] and a == b
    finally:
        server.stop()


def test_near_params_from_numpy_free_json(corpus_index: Index) -> None:
    result = _near(corpus_index, CORPUS[1].replace("nine", "ten"))
    text = json.dumps(result.to_json())
    back = TraceResult.from_json(json.loads(text))
    assert back.near == result.near and back.near_params == result.near_params
    assert np.all([isinstance(h.doc, int) for n in back.near or [] for h in n.hits])


# -- overlap and the CLI -------------------------------------------------------------------------
PASSAGES = ["Return a new set with elements from the set and all others, in the order they were given.",
            "The returned object is a new reference to the same buffer, which must not be freed twice.",
            "Raise a value error when the argument is negative or larger than the length of the list."]


def _overlap_index(tmp: Path) -> Index:
    return build_texts_index(tmp, PASSAGES + ["Unrelated filler about gardens, weather and the price of bread."], "bytes")


def test_overlap_near_verbatim_coverage(tmp_path: Path) -> None:
    """An item with a word changed every few words has little exact coverage (no 13-token match
    through the changes) and full near-verbatim coverage; an unchanged item and a novel one have
    near-verbatim coverage equal to their coverage; the exact figures do not move."""
    from tracetui.overlap.measure import measure

    index = _overlap_index(tmp_path)
    changed = "Return a old set with items from the box and all others, at the order they are given."
    items = [changed, PASSAGES[1], "Nothing here matches the corpus in any way at all, friend."]
    with_near = measure(index, items, n=13, min_span=13, docs=0)
    without = measure(index, items, n=13, min_span=13, docs=0, near=None)
    for a, b in zip(with_near, without, strict=True):
        assert (a.ngrams_found, a.covered, a.covered_chars) == (b.ngrams_found, b.covered, b.covered_chars)
        assert b.near_covered == b.covered and b.near_covered_chars == b.covered_chars and not b.near_regions
        assert a.near_covered_chars >= a.covered_chars
    nonspace = sum(not ch.isspace() for ch in changed)
    got = with_near[0]
    assert got.covered_chars < nonspace // 2
    assert got.near_covered_chars == nonspace and got.near_covered == [(0, len(changed))]
    assert with_near[1].near_covered_chars == with_near[1].covered_chars == sum(not c.isspace() for c in PASSAGES[1])
    assert with_near[2].near_covered_chars == with_near[2].covered_chars == 0


def test_overlap_command_column_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tracetui.cli import main

    index = _overlap_index(tmp_path)
    items = tmp_path / "items.jsonl"
    changed = "Return a old set with items from the box and all others, at the order they are given."
    items.write_text(json.dumps({"text": changed}) + "\n" + json.dumps({"text": "nothing like it, friend"}) + "\n",
                     encoding="utf-8")
    assert main(["overlap", str(items), "--index", str(index.directory), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    first = doc["items"][0]
    assert first["near_coverage"] == 1.0 > first["coverage"] and first["near_covered"] == [[0, len(changed)]]
    assert doc["items"][1]["near_coverage"] == 0.0
    assert doc["benchmarks"][0]["mean_near_coverage"] == 0.5
    assert doc["params"]["near"] is True
    md = tmp_path / "r.md"
    assert main(["overlap", str(items), "--index", str(index.directory), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "near-verbatim" in out and "50.0%" in out
    assert "mean near-verbatim coverage" in md.read_text(encoding="utf-8")


def test_trace_cli_near(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tracetui.cli import main

    index = build_texts_index(tmp_path, CORPUS, "bytes")
    reply = tmp_path / "r.txt"
    reply.write_text(CORPUS[0].replace("jumps", "leaps"), encoding="utf-8")
    assert main(["trace", "--index", str(index.directory), "--json", str(reply)]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["trace", "--index", str(index.directory), "--json", "--near", str(reply)]) == 0
    near = json.loads(capsys.readouterr().out)
    assert set(near) - set(plain) == {"near"}
    assert {k: v for k, v in near.items() if k not in ("near", "timings_ms")} == \
        {k: v for k, v in plain.items() if k != "timings_ms"}
    (span,) = near["near"]["spans"]
    assert span["diff_text"] == "leaps" and span["hits"][0]["diff_text"] == "jumps"
    assert main(["trace", "--index", str(index.directory), "--near", str(reply)]) == 0
    out = capsys.readouterr().out
    assert "1 near-verbatim span" in out and "'leaps' -> 'jumps' (substitution)" in out
