"""Tests that kill the mutants of the word rule that outlived the other oracle tests (issue 17,
section 4: a mutation run over `index_tools.words`, `index_tools.word_ends` and
`tracetui.tracing.spans`).

What those tests never drew, and what these add, always judged by the text oracle
(tests/word_oracle.py) and never by the project's own tables:

- a lead byte shared by a word character and a non-word one ("é" and "×" both open with C3,
  "ℕ" and "—" both with E2), so a character split across tokens really has to be completed from
  the bytes that follow;
- the rule at every position of a text, its end included (`WordBoundaries.boundaries`);
- counts of token sequences that start or end inside a character;
- a candidate span that has to be shortened because its longest match ends inside a corpus word,
  and one whose reply boundary is decided by a split character that the corpus completes
  differently;
- a right-edge count by halving, where the suffix just past the range holds a different token;
- a special token (empty bytes) inside a text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from index_tools.tokenizer import ByteTokenizer, HFTokenizer, train_bpe
from tracetui.tracing.spans import find_spans

from . import word_oracle as oracle
from .conftest import build_texts_index
from .test_whole_words import sentencepiece, tokenizers_dir  # noqa: F401  (fixtures)

#: word characters "é", "ℕ" (U+2115), "¹" (U+00B9), "𝐀" (U+1D400) share their lead byte with
#: non-word ones: "×" (U+00D7), "—", "“", "§" (U+00A7), "😀"
ALPHABET = "ab1_ \n.—“é×ℕ§¹日😀𝐀"
SAMPLE = ["the cat× saw ℕ numbers§ and ¹ a—b “é” ×é ℕ— 日本 😀 𝐀b x_y 1.5"] * 30




@pytest.fixture(scope="module")
def byte_level_extra(tmp_path_factory: pytest.TempPathFactory) -> HFTokenizer:
    """A byte-level BPE whose merges split the shared-lead characters in several ways."""
    return train_bpe(iter(SAMPLE), tmp_path_factory.mktemp("blx") / "bl.json", vocab_size=330)


@pytest.fixture(scope="module")
def with_special(tmp_path_factory: pytest.TempPathFactory) -> HFTokenizer:
    """A byte-level BPE with a special token: the literal text "<|endoftext|>" encodes to it."""
    from tokenizers import Tokenizer as HF
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HF(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(SAMPLE, trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        special_tokens=["<|endoftext|>"]))
    path = tmp_path_factory.mktemp("special") / "sp.json"
    path.write_text(tok.to_str(), encoding="utf-8")
    return HFTokenizer(path)


def _tokenizer(name: str, byte_level_extra: HFTokenizer, sentencepiece: HFTokenizer):  # noqa: F811
    return {"bytes": ByteTokenizer(), "byte-level": byte_level_extra, "sentencepiece": sentencepiece}[name]


# ---------------------------------------------------------------------------------------------
# the rule at every position of a text, end included
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["bytes", "byte-level", "sentencepiece"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=ALPHABET, min_size=1, max_size=30))
@example(text="a×b")
@example(text="cat")
@example(text="ℕ—é×§¹")
@example(text="a𝐀 😀b")
@example(text="𝐀a×b")
def test_boundaries_at_every_position_equal_the_text(family, byte_level_extra, sentencepiece, text) -> None:  # noqa: F811
    tok = _tokenizer(family, byte_level_extra, sentencepiece)
    view = oracle.view_bytes(text) if family == "bytes" else oracle.viewer(tok.path)(text)
    ids = tok.encode(text)
    assert ids.tolist() == view.ids
    got = tok.word_boundaries().boundaries(ids)
    assert got.tolist() == view.bnd, (text, ids.tolist())


def test_two_byte_non_word_character_is_a_break() -> None:
    """"×" (C3 97) is a symbol, "é" (C3 A9) a letter: only the bytes after the lead tell."""
    words = ByteTokenizer().word_boundaries()
    ids = ByteTokenizer().encode("a×b é")
    assert words.first_char_breaks(ids).tolist() == [False, True, False, False, True, False, False]
    assert words.boundaries(ids).tolist() == [True, True, False, True, True, True, False, True]


@pytest.mark.parametrize("text", ["ab", "a b", "ba", "aé", "é×a", "a×b é", "𝐀a", "a¹"])
def test_rule_does_not_depend_on_token_ids(text: str) -> None:
    """One token per byte, as the `bytes` tokenizer, but in another order: id 0 is a continuation
    byte (not "no token") and the last id a letter (not "past the end"). The rule at every
    position, the end of the text included, is still the text's."""
    from index_tools.words import WordBoundaries, classify_bytes

    order = [0xA9, 0x97, 0xB9, 0x80, 0x90, 0x9D, 0xC3, 0xC2, 0xF0, ord(" "), ord("b"), ord("a")]
    vocab = [bytes([v]) for v in order]
    words = WordBoundaries(np.array([classify_bytes(v) for v in vocab]), vocab)
    ids = np.array([order.index(c) for c in text.encode()], dtype=np.int64)
    assert words.boundaries(ids).tolist() == oracle.view_bytes(text).bnd


def test_special_token_stands_alone(with_special: HFTokenizer) -> None:
    """An empty-bytes (special) token is a break on both of its sides, as the text says: the
    literal "<|endoftext|>" it stands for opens and closes with punctuation."""
    view = oracle.viewer(with_special.path)
    for text in ("x<|endoftext|>y", "the<|endoftext|>cat", "é<|endoftext|>é"):
        ids = with_special.encode(text)
        special = with_special._tok.token_to_id("<|endoftext|>")
        assert special in ids.tolist()
        assert with_special.word_boundaries().boundaries(ids).tolist() == view(text).bnd, text


# ---------------------------------------------------------------------------------------------
# counts of any token sequence, including ones that start or end inside a character
# ---------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), docs=st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=60), min_size=1, max_size=4),
       cap=st.sampled_from([0, 1, 5]))
def test_counts_of_any_byte_slice_equal_the_text(tmp_path_factory, data, docs, cap) -> None:
    index = build_texts_index(tmp_path_factory.mktemp("slices"), docs, "bytes")
    views = [oracle.view_bytes(d) for d in docs]
    seqs = []
    for _ in range(8):
        d = data.draw(st.sampled_from(views))
        a = data.draw(st.integers(0, len(d.ids) - 1))
        b = data.draw(st.integers(a + 1, min(len(d.ids), a + 6)))
        seqs.append(np.array(d.ids[a:b], dtype=np.int64))
    want = [oracle.count(views, s.tolist()) for s in seqs]
    assert index.count_words_many(seqs).tolist() == want
    assert index.count_words_many(seqs, cap=cap).tolist() == [min(w, cap + 1) for w in want]
    for s, w in zip(seqs, want, strict=True):
        assert sum(b - a for shard in index.find_words(s) for a, b in shard) == w


def test_sequences_cut_inside_a_character_are_never_whole_words(tmp_path: Path) -> None:
    """A sequence that ends on a lead byte (or starts on a continuation byte) has that edge
    inside a character wherever it occurs: no whole-word occurrence, however it is counted."""
    docs = ["a café here", "café", "café×", "caf"]
    index = build_texts_index(tmp_path, docs, "bytes")
    views = [oracle.view_bytes(d) for d in docs]
    lead, cont = index.encode("é")[:1], index.encode("é")[1:]
    cases = [(np.concatenate([index.encode("caf"), lead]), 3), (np.concatenate([index.encode(" caf"), lead]), 1),
             (lead, 4), (cont, 3), (np.concatenate([cont, index.encode(" here")]), 1)]
    for ids, n in cases:
        assert index.count(ids) == n
        assert oracle.count(views, ids.tolist()) == 0
        assert index.count_words(ids) == 0
        assert index.count_words_many([ids], cap=0).tolist() == [0]
        assert sum(b - a for shard in index.find_words(ids) for a, b in shard) == 0


# ---------------------------------------------------------------------------------------------
# span finding: shortening to corpus words, split characters completed differently
# ---------------------------------------------------------------------------------------------
SPAN_CASES = [
    # the longest match " cat" ends inside "catalog": shortened to " " (the only whole-word prefix)
    ([" catalog"], " cat"),
    ([" catalog", "a cat."], " cat sat"),
    # the reply's "—" and the corpus's "ℕ" share the lead byte E2: " cat" is whole words in the
    # reply, not in the corpus, although the match goes on into the lead byte
    ([" catℕ"], " cat— x"),
    ([" caté", " cat×"], " cat× y"),
    ([" ab×", " abé"], " abé."),
]


@pytest.mark.parametrize("tokenizer", ["bytes", "byte-level"])
@pytest.mark.parametrize(("docs", "reply"), SPAN_CASES)
def test_spans_equal_reference_on_split_characters(tmp_path: Path, byte_level_extra, tokenizer, docs, reply) -> None:
    tok = "bytes" if tokenizer == "bytes" else str(byte_level_extra.path)
    index = build_texts_index(tmp_path, docs, tok)
    view = oracle.viewer(tok)
    want = oracle.reference_spans([view(d) for d in docs], view(reply), oracle.delimiter_tokens(tok), 1, 1_000_000)
    got = find_spans(index, np.array(view(reply).ids, dtype=np.int64))
    assert [(s.l, s.r, s.count) for s in got] == want
    assert all(s.count > 0 for s in got)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.text(alphabet=" ab.—ℕé×", min_size=1, max_size=30), min_size=1, max_size=4),
       reply=st.text(alphabet=" ab.—ℕé×", min_size=1, max_size=20))
def test_spans_equal_reference_with_shared_lead_bytes(tmp_path_factory, docs, reply) -> None:
    index = build_texts_index(tmp_path_factory.mktemp("spans"), docs, "bytes")
    views = [oracle.view_bytes(d) for d in docs]
    want = oracle.reference_spans(views, oracle.view_bytes(reply), oracle.delimiter_tokens("bytes"), 1, 1_000_000)
    got = find_spans(index, index.encode(reply))
    assert [(s.l, s.r, s.count) for s in got] == want


# ---------------------------------------------------------------------------------------------
# a capped right-edge count that goes on by halving
# ---------------------------------------------------------------------------------------------
#: " a" many times, followed first by "1" (never whole words: the first chunk of a capped count
#: reads those), then by what the halving has to decide; " b1" is the suffix just past the range
HALVING_CORPORA = [
    " a1" * 70 + " a{" * 3 + " b1 b1",  # the suffix past the range is followed by "1" again
    " a1" * 200 + " a{" * 3 + " b1 b1",  # a whole segment of "1" (no boundary) inside the rest
    " a1" * 64 + " a{" * 100 + " b1",  # a whole segment of "{" (all boundaries)
    " a1" * 64 + " a×" * 3 + " b1 b1",  # a segment of lead bytes: decided by the bytes after them
    " a1" * 64 + " a×" * 3 + " aé" * 3 + " b1",
]


@pytest.mark.parametrize("doc", HALVING_CORPORA)
def test_capped_count_by_halving_equals_the_text(tmp_path: Path, doc: str) -> None:
    """A count capped low reads the first ranks, then halves the rest by the class of the
    following tokens: exact up to the cap, as the text says, whatever the segments hold."""
    index = build_texts_index(tmp_path, [doc], "bytes")
    q = index.encode(" a")
    want = oracle.count([oracle.view_bytes(doc)], q.tolist())
    assert index.count(q) == doc.count(" a")
    for cap in (0, 2, 3, 5, 20, 40):
        assert index.count_words_many([q], cap=cap).tolist() == [min(want, cap + 1)], cap
    assert index.count_words_many([q]).tolist() == [want]
    assert sum(b - a for shard in index.find_words(q) for a, b in shard) == want
