"""Text as a reader sees it (issue 17, section 2).

(a) Windows, snippets and search hits are decoded as one piece and the match is located in them
    by offsets, with tokenizer configurations built offline that mirror the real `tokenizer.json`
    pipelines (normalizer, pre-tokenizer, model options, decoder) of
    - Llama-2: SentencePiece BPE with byte fallback, normalizer Prepend("▁") + Replace(" ", "▁"),
      no pre-tokenizer, decoder Replace("▁", " ") / ByteFallback / Fuse / Strip(" ", 1, 0);
    - OLMo-2 (dolma2, cl100k-style): byte-level BPE, pre-tokenizer Split(the cl100k regex,
      isolated) + ByteLevel(use_regex=False), ByteLevel decoder;
    - GPT-2: ByteLevel pre-tokenizer (its own regex) and ByteLevel decoder.
    Each is trained with the `tokenizers` trainer on an ASCII sample (so accents, CJK and emoji
    are split into byte tokens, and token boundaries fall inside characters), saved as
    tokenizer.json and indexed with the project's builder. The oracle is the document text and
    the tokenizer's own encoding offsets (which characters each token covers), not the decoder.
(b) Terminal safety from character classes: every code point is checked against
    `unicodedata.category`, not against a copy of the sanitiser's pattern.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HF

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from index_tools.opening import IndexSet
from tracetui.sanitize import inert, is_inert
from tracetui.tracing.pipeline import decode_window
from tracetui.tracing.search import search_documents

from .conftest import write_jsonl

DOCS = [
    "the cat sat on the mat today and the dog sat on the log",
    "Return a new set with elements from the set and all others.\nThe cat sat on the mat today.",
    "  two leading spaces, a\ttab and  double  spaces\n\nthen a blank line",
    "café au lait, naïve résumé — “quoted” 日本語のテキスト 🦊 fox 😀 end",
    "🦊 first is an emoji; é then: on the mat today 日本",
    "def add(a, b):\n    return a + b\n",
]
#: an ASCII-only training sample: everything else is split into byte tokens
SAMPLE = [d.encode("ascii", "ignore").decode() for d in DOCS] * 30

CL100K = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def llama2(path: Path) -> Path:
    """Llama-2's pipeline. Trained with a "▁"-splitting pre-tokenizer (as SentencePiece learns
    pieces that begin with "▁"), saved without one as Llama-2's file is; ids as Llama-2's:
    <unk>, <s>, </s>, the 256 byte pieces <0x00>..<0xFF>, then the learned pieces."""
    tok = HF(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator(SAMPLE, trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>", "</s>"],
                                                        show_progress=False))
    spec = json.loads(tok.to_str())
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for piece, _ in sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))
    spec["model"]["vocab"] = vocab
    spec["pre_tokenizer"] = None
    spec["added_tokens"] = [dict(t, id=vocab[t["content"]]) for t in spec["added_tokens"]]
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return path


def olmo2(path: Path) -> Path:
    """OLMo-2's dolma2 pipeline (cl100k-style): no normalizer, the cl100k split regex, then
    byte-level without its own regex; ByteLevel decoder."""
    tok = HF(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CL100K), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.train_from_iterator(SAMPLE, trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        special_tokens=["<|endoftext|>", "<|pad|>"]))
    path.write_text(tok.to_str(), encoding="utf-8")
    return path


def gpt2(path: Path) -> Path:
    """GPT-2's pipeline: ByteLevel pre-tokenizer (GPT-2's regex) and decoder, <|endoftext|>."""
    tok = HF(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(SAMPLE, trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        special_tokens=["<|endoftext|>"]))
    path.write_text(tok.to_str(), encoding="utf-8")
    return path


PIPELINES = {"llama2": llama2, "olmo2": olmo2, "gpt2": gpt2}


@pytest.fixture(scope="module", params=sorted(PIPELINES))
def index(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Index:
    d = tmp_path_factory.mktemp(f"view-{request.param}")
    tok = PIPELINES[request.param](d / "tokenizer.json")
    out = d / "index"
    build_index([write_jsonl(d / "corpus.jsonl", DOCS)], out, BuildOptions(tokenizer=str(tok), progress=False))
    return Index.open(out)


def strips_leading_space(index: Index) -> bool:
    """Does the tokenizer's decoder end with a Strip of one leading space (Llama-2's)?"""
    spec = index.tokenizer._spec  # type: ignore[attr-defined]
    steps = (spec.get("decoder") or {}).get("decoders", [])
    return any(s.get("type") == "Strip" and s.get("start") for s in steps)


def doc_hit(index: Index, doc: str):  # type: ignore[no-untyped-def]
    """A hit at the first token of `doc` in the index (every document is distinct)."""
    ids = index.encode(doc)
    runs = [(k, lo) for k, (lo, hi) in enumerate(index.find(ids)) if hi > lo]
    assert len(runs) == 1
    hit = index.hit(*runs[0])
    assert hit.token == hit.doc_start and hit.doc_end - hit.doc_start == len(ids)
    return hit


# -- (a) windows --------------------------------------------------------------------------------
def test_the_pipelines_split_characters_and_strip(index: Index) -> None:
    """The configurations do what the real ones do: byte tokens inside characters, and Llama-2's
    decoder drops the leading space of what it decodes (the cause of "onthe mattoday")."""
    tok = index.tokenizer
    ids, offs = tok.encode_with_offsets(DOCS[3])
    assert (np.diff(offs[:, 0]) == 0).any()  # two tokens of one character
    assert tok.decode(ids) == DOCS[3]
    mid = tok.encode("the cat sat on the mat")[2:]
    if strips_leading_space(index):
        assert tok.decode(mid) == "sat on the mat"
        assert tok.decode(mid[:1]) + tok.decode(mid[1:]) == "saton the mat"
    else:
        assert tok.decode(mid) == " sat on the mat"


@pytest.mark.parametrize("context", [0, 1, 2, 5])
def test_every_window_is_the_document_text_and_marks_its_match(index: Index, context: int) -> None:
    """Every match of 1-4 tokens at every position of every document, in windows of `context`
    tokens: the window text is the document's text from the first to the last character the
    window holds whole (a character its edges cut is left out, not shown as U+FFFD), and the
    marked range is exactly the characters of the match's tokens (a boundary inside a character
    takes in the whole character; leading whitespace is not marked). A decoder that strips a
    leading space (Llama-2's) strips it from a window that starts mid-document: that space only
    may be missing."""
    tok = index.tokenizer
    strip = strips_leading_space(index)
    checked = 0
    for doc in DOCS:
        ids, offs = tok.encode_with_offsets(doc)
        if strip and tok._tok.id_to_token(int(ids[0])) == "▁" and offs[0, 1] > offs[1, 0]:  # type: ignore[attr-defined]
            offs[0] = (0, 0)  # Llama-2's dummy prefix alone: its offsets overlap the first character's
        first = doc_hit(index, doc)
        assert np.array_equal(index.document_tokens(first.shard, first.doc), ids)
        n = len(ids)
        for i in range(n):
            for j in range(i + 1, min(n, i + 4) + 1):
                w = index.window(dataclasses.replace(first, token=first.doc_start + i), j - i, context)
                text, (s, e) = decode_window(index, w)
                a, b = i - w.match_start, i - w.match_start + len(w.tokens)  # the window's tokens
                # the window's characters: those whose every byte it holds
                # (two tokens share a character: a byte-split one, or Llama-2's prepended "▁")
                cut_left = a > 0 and offs[a, 0] < offs[a - 1, 1] and not doc[offs[a, 0]].isascii()
                cut_right = b < n and offs[b, 0] < offs[b - 1, 1] and not doc[offs[b - 1, 1] - 1].isascii()
                lo, hi = int(offs[a, 0]) + cut_left, int(offs[b - 1, 1]) - cut_right
                ms, me = int(offs[i, 0]), int(offs[j - 1, 1])  # the match's characters
                if ms < lo or me > hi:
                    # U+FFFD for the cut character
                    assert text[s:e] and text[s:e].strip("\ufffd") in doc[ms:me], (doc, i, j, context, text, s, e)
                    continue  # the window cuts the match's own first or last character
                expected = doc[lo:hi]
                dropped = int(strip and a > 0 and expected.startswith(" "))
                assert text == expected[dropped:], (doc, i, j, context, text)
                # the match: its tokens' characters, whitespace at its start unmarked
                want_s, want_e = max(0, ms - lo - dropped), me - lo - dropped
                while want_s < want_e and text[want_s].isspace():
                    want_s += 1
                if want_s == want_e:  # whitespace only: nothing to mark
                    assert s == e
                else:
                    assert (s, e) == (want_s, want_e), (doc, i, j, context, text, text[s:e], text[want_s:want_e])
                checked += 1
    assert checked > 300


def test_a_window_reads_on_the_mat_today(index: Index) -> None:
    """The issue's example: context before and after a match that begins with a space."""
    doc = DOCS[0]
    ids = index.encode(doc)
    k = len(index.encode("the cat sat"))
    m = len(index.encode("the cat sat on the mat")) - k
    first = doc_hit(index, doc)
    text, (s, e) = decode_window(index, index.window(dataclasses.replace(first, token=first.doc_start + k), m, 12))
    assert len(ids) > k + m
    assert "sat on the mat today" in text and text in doc
    assert text[s:e] == "on the mat"


@pytest.mark.parametrize("whole_words", [True, False])
@pytest.mark.parametrize("words", ["on the mat today", "the set", "日本", "🦊", "naïve résumé", "return a +",
                                   " double ", "fox"])
def test_search_snippets_read_as_the_document(index: Index, words: str, whole_words: bool) -> None:
    """`tracetui search`: every snippet is a stretch of its document (a character its ends cut
    aside) and its marked range is the query as typed, at the place it occurs. (The query is
    typed as the corpus tokenizes it mid-text: with the space before it on byte-level BPE, whose
    words carry their space; without on Llama-2, whose normalizer prepends one.)"""
    query = words if strips_leading_space(index) else " " + words
    found = search_documents(IndexSet([index]), query, limit=10, context=3, whole_words=whole_words)
    assert found["documents"], query
    for d in found["documents"]:
        snippet, (s, e) = d["snippet"], d["match"]
        doc = DOCS[d["doc_id"]]
        assert snippet in doc, (query, snippet)
        assert snippet[s:e] == words.lstrip(), (query, snippet, snippet[s:e])
        # and the marked range is where the query is in the document
        places = [k for k in range(len(doc)) if doc.startswith(snippet, k)]
        assert any(doc[k + s : k + e] == words.lstrip() for k in places)


def test_decode_span_edge_cases(index: Index) -> None:
    tok = index.tokenizer
    ids = tok.encode(DOCS[4])
    text = tok.decode(ids)
    assert tok.decode_span(ids, 0, len(ids)) == (text, (0, len(text)))
    assert tok.decode_span(ids, 0, 0) == (text, (0, 0))
    assert tok.decode_span(ids, len(ids), len(ids)) == (text, (len(text), len(text)))
    assert tok.decode_span([], 0, 0) == ("", (0, 0))
    # the emoji's bytes, one by one: each of its tokens marks the whole emoji
    _, offs = tok.encode_with_offsets(DOCS[4])
    fox = [k for k in range(len(ids)) if offs[k, 0] == 0 and offs[k, 1] == 1 and tok.decode(ids[k : k + 1]) == "\ufffd"]
    assert len(fox) > 1
    for k in fox:
        assert tok.decode_span(ids, k, k + 1)[1] == (0, 1)


# -- (b) terminal safety ------------------------------------------------------------------------
#: what must be made visible: controls (but tab and newline), format characters (zero-width,
#: bidi, soft hyphen, BOM, tags...), lone surrogates, line and paragraph separators, and code
#: points this Python's Unicode does not assign (a terminal's newer tables may not agree on them)
UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp", "Cn"}


def must_go(ch: str) -> bool:
    return unicodedata.category(ch) in UNSAFE_CATEGORIES and ch not in "\t\n"


def test_inert_on_every_code_point() -> None:
    """All 1,114,112 code points through `inert` at once: one for one, every character of those
    categories replaced by a visible one, every other character kept, idempotent."""
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    safe = inert(every)
    assert len(safe) == len(every)
    changed = [ord(a) for a, b in zip(every, safe, strict=True) if a != b]
    wanted = [cp for cp in range(sys.maxunicode + 1) if must_go(chr(cp))]
    assert changed == wanted
    assert not any(must_go(c) for c in safe)  # the placeholders themselves are visible
    assert is_inert(safe) and not is_inert(every)
    assert inert(safe) == safe
    safe.encode("utf-8")


@pytest.mark.parametrize("ch", ["\u2028", "\u2029", "\u200b", "\u200d", "\u2060", "\u00ad", "\ufeff",
                                "\U000e0041", "\U000e0001", "\U000e007f", "\u202e", "\x1b", "\x85", "\ud800"])
def test_invisible_characters_are_made_visible(ch: str) -> None:
    text = f"a{ch}b"
    out = inert(text)
    assert len(out) == 3 and out[0] == "a" and out[2] == "b"
    assert out[1] != ch and out[1].isprintable() and not out[1].isspace()
    assert not is_inert(text) and is_inert(out)


@pytest.mark.parametrize("text", ["tab\tand\nnewline", "café 日本語 🦊 😀", "\u00a0nbsp\u3000", "e\u0301",
                                  "\ue000 private use \U000f0000", "👨\u200d👩", "\ufffd"])
def test_visible_text_is_kept_where_it_is_visible(text: str) -> None:
    """Tab, newline, spaces, combining marks and private-use characters are left alone (a ZWJ
    inside an emoji sequence is a format character: made visible)."""
    out = inert(text)
    assert len(out) == len(text)
    for a, b in zip(text, out, strict=True):
        assert (a == b) != must_go(a)


def test_a_token_alone_keeps_its_leading_space(index: Index) -> None:
    """Next-in-corpus labels (`Tokenizer.token_text`): " the" as a token keeps its space with every
    pipeline (decoding it alone gives "the" with Llama-2's Strip decoder); the text of a whole
    tokenized sentence is the concatenation of its tokens' labels, where no character is split."""
    tok = index.tokenizer
    text = "the cat sat on the mat today"
    ids = tok.encode(text)
    labels = [tok.token_text(int(t)) for t in ids]
    assert "".join(labels).lstrip(" ") == text
    assert any(lab.startswith(" ") and lab.strip() for lab in labels)
    if strips_leading_space(index):
        assert any(tok.decode([int(t)]) != lab for t, lab in zip(ids, labels, strict=True))
