"""Fidelity: word starts from what tokens decode to, for every tokenizer family, and whole-word
span finding against brute force on the text (bytes) and on the tokens (a trained BPE).

The truth used throughout: a word begins at a byte offset that starts a character which is not a
word character (`index_tools.words.is_word_char`); an occurrence is whole words when it starts at
such an offset and the text after it is such an offset or the end of its document.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HF
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

from index_tools import word_ends
from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from index_tools.tokenizer import ByteTokenizer, HFTokenizer, train_bpe
from index_tools.words import BEGINS, CONTINUES, UNSURE, is_word_char
from tracetui.tracing.pipeline import TraceParams, Tracer
from tracetui.tracing.spans import find_spans

from . import word_oracle as oracle

#: tabs, newlines, punctuation, em dash, curly quotes, accents, CJK and emoji
ALPHABET = "ab c.\n\t—“”é日😀,'_"
TEXTS = [
    "The cat sat on the mat.\tThe catalog\t-- Anon.\n“Quoted” text — with an em dash.",
    "Hi there. History of High Hindi. Say Hi\tto me.\n日本語のテキスト 😀 emoji, café au lait.",
    "word\tword\nword — word “word” naïve co\u0301operate under_score 42nd 3.14",
]


# ---------------------------------------------------------------------------------------------
# truth on bytes
# ---------------------------------------------------------------------------------------------
def begins_at(data: bytes, i: int) -> bool:
    """Truth: does a word begin at byte offset i of UTF-8 `data` (the end counts as a boundary)?"""
    if i >= len(data):
        return True
    if data[i] & 0xC0 == 0x80:
        return False  # inside a character
    n = 1 if data[i] < 0x80 else 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
    try:
        ch = data[i : i + n].decode("utf-8")
    except UnicodeDecodeError:
        return True
    return not is_word_char(ch)


def token_offsets(table: list[bytes], ids: np.ndarray) -> tuple[bytes, list[int]]:
    data = b"".join(table[int(i)] for i in ids)
    offs = np.concatenate([[0], np.cumsum([len(table[int(i)]) for i in ids])]).astype(int).tolist()
    return data, offs


def byte_table(tok) -> list[bytes]:  # type: ignore[no-untyped-def]
    w = tok.word_boundaries()
    # the full decoded bytes per id, from the tokenizer module's own mapping
    from index_tools.tokenizer import _byte_level_decoder, _token_bytes

    if isinstance(tok, ByteTokenizer):
        return [bytes([b]) for b in range(tok.vocab_size)]
    fam = tok.family
    to_byte = _byte_level_decoder() if fam == "byte-level" else {}
    out = [b""] * tok.vocab_size
    for s, i in tok._tok.get_vocab(with_added_tokens=True).items():
        if fam == "wordpiece":
            out[i] = s[2:].encode() if s.startswith("##") else s.encode()
        else:
            out[i] = _token_bytes(s, fam, to_byte)
    assert len(out) == len(w.classes)
    return out


# ---------------------------------------------------------------------------------------------
# tiny tokenizers of each family, trained offline
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("toks")


@pytest.fixture(scope="module")
def byte_level(tokenizers_dir: Path) -> HFTokenizer:
    return train_bpe(iter(TEXTS * 30), tokenizers_dir / "bl.json", vocab_size=400)


@pytest.fixture(scope="module")
def sentencepiece(tokenizers_dir: Path) -> HFTokenizer:
    """Llama-style: "▁" for spaces, BPE over characters of an ASCII-only sample, byte fallback
    (<0xNN>) for everything else."""
    tok = HF(models.BPE(unk_token=None, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    sample = [t.encode("ascii", "ignore").decode() for t in TEXTS] * 30
    tok.train_from_iterator(sample, trainers.BpeTrainer(vocab_size=300, show_progress=False))
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for b in range(256):
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    path = tokenizers_dir / "sp.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return HFTokenizer(path)


@pytest.fixture(scope="module")
def wordpiece(tokenizers_dir: Path) -> HFTokenizer:
    tok = HF(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(TEXTS * 30, trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[UNK]"],
                                                                  show_progress=False))
    path = tokenizers_dir / "wp.json"
    tok.save(str(path))
    return HFTokenizer(path)


def test_families_detected(byte_level: HFTokenizer, sentencepiece: HFTokenizer, wordpiece: HFTokenizer) -> None:
    assert byte_level.family == "byte-level"
    assert sentencepiece.family == "sentencepiece"
    assert wordpiece.family == "wordpiece"


def test_byte_level_vocabulary_strings_decoded(byte_level: HFTokenizer) -> None:
    vocab = byte_level._tok.get_vocab()
    cls = byte_level.word_boundaries().classes
    assert cls[vocab["Ġ"]] == BEGINS and cls[vocab["ĉ"]] == BEGINS and cls[vocab["Ċ"]] == BEGINS
    assert cls[vocab["â"]] == UNSURE  # 0xE2 alone opens a three-byte character
    assert cls[vocab["Ģ"]] == CONTINUES  # 0x80: inside a character
    # the em dash as one token (trained from the sample): bytes E2 80 94 -> punctuation
    dash = byte_level.encode("—")
    assert byte_level.word_boundaries().first_char_breaks(dash)[0]
    # every token of a text: decoded bytes concatenate to the text, starts match the truth
    for text in TEXTS:
        ids = byte_level.encode(text)
        data, offs = token_offsets(byte_table(byte_level), ids)
        assert data == text.encode("utf-8")
        assert byte_level.word_boundaries().first_char_breaks(ids).tolist() == [begins_at(data, o) for o in offs[:-1]]


def test_tab_led_word_can_start_a_span(byte_level: HFTokenizer) -> None:
    ids = byte_level.encode("x\tfoo")
    starts = byte_level.word_boundaries().first_char_breaks(ids)
    tab = [i for i in range(len(ids)) if byte_level.decode(ids[i : i + 1]).startswith("\t")]
    assert tab and all(starts[i] for i in tab)


def test_sentencepiece_spaces_and_byte_fallback(sentencepiece: HFTokenizer) -> None:
    vocab = sentencepiece._tok.get_vocab()
    cls = sentencepiece.word_boundaries().classes
    assert cls[vocab["<0x0A>"]] == BEGINS and cls[vocab["<0x09>"]] == BEGINS
    assert cls[vocab["<0xE6>"]] == UNSURE and cls[vocab["<0x97>"]] == CONTINUES
    assert any(cls[i] == BEGINS for s, i in vocab.items() if s.startswith("▁") and len(s) > 1)
    for text in TEXTS:
        ids = sentencepiece.encode(text)
        data, offs = token_offsets(byte_table(sentencepiece), ids)
        assert data.decode("utf-8") == " " + text.replace("\u0301", "\u0301")  # "▁" prepended
        assert sentencepiece.word_boundaries().first_char_breaks(ids).tolist() == [begins_at(data, o) for o in offs[:-1]]


def test_wordpiece_continuations(wordpiece: HFTokenizer) -> None:
    vocab = wordpiece._tok.get_vocab()
    cls = wordpiece.word_boundaries().classes
    conts = [i for s, i in vocab.items() if s.startswith("##")]
    heads = [i for s, i in vocab.items() if not s.startswith("##")]
    assert conts and heads
    assert (cls[conts] == CONTINUES).all() and (cls[heads] == BEGINS).all()
    ids = wordpiece.encode("the catalog")
    starts = wordpiece.word_boundaries().first_char_breaks(ids)
    pieces = [wordpiece._tok.id_to_token(int(i)) for i in ids]
    assert starts.tolist() == [not p.startswith("##") for p in pieces]


def test_bytes_tokenizer_truth() -> None:
    tok = ByteTokenizer()
    for text in TEXTS:
        ids = tok.encode(text)
        data = text.encode("utf-8")
        assert tok.word_boundaries().first_char_breaks(ids).tolist() == [begins_at(data, i) for i in range(len(data))]


def test_static_set_is_a_superset(byte_level: HFTokenizer, sentencepiece: HFTokenizer) -> None:
    """The token-level set written for infini-gram contains every contextual start."""
    for tok in (byte_level, sentencepiece, ByteTokenizer()):
        for text in TEXTS:
            ids = tok.encode(text)
            starts = tok.word_boundaries().first_char_breaks(ids)
            assert not (starts & ~tok.word_start_mask()[ids]).any()


# ---------------------------------------------------------------------------------------------
# whole-word span finding, counts and search vs brute force on the text (tests/word_oracle.py)
# ---------------------------------------------------------------------------------------------
def _build(tmp: Path, texts: list[str], tokenizer: str, shards: int | None = None) -> Index:
    tmp.mkdir(parents=True, exist_ok=True)
    src = tmp / "c.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    build_index([src], tmp / "ix", BuildOptions(tokenizer=tokenizer, progress=False, force=True, shards=shards))
    return Index.open(tmp / "ix")


#: letters, digits, "_", spaces, tabs, newlines, ".", brackets, em dash, quotes, accents, CJK, emoji
RULE_ALPHABET = "ab1_ \t\n.()—“”'é日😀"
#: WordPiece keeps no spaces: a token that lacks "##" begins a pre-token, and the tokens cannot
#: tell a space before it from the pre-tokenizer's split between two CJK characters or before a
#: "_" (BERT splits both off; by the rule "1_" and "日本" are one word) -- neither is drawn there
WORDPIECE_ALPHABET = "ab1 \t\n.()—“”'é"
FAMILIES = ["bytes", "byte-level", "sentencepiece", "wordpiece"]


@pytest.fixture(scope="module")
def family_tokenizers(byte_level: HFTokenizer, sentencepiece: HFTokenizer, wordpiece: HFTokenizer) -> dict[str, str]:
    return {"bytes": "bytes", "byte-level": str(byte_level.path), "sentencepiece": str(sentencepiece.path),
            "wordpiece": str(wordpiece.path)}


def _texts(family: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=WORDPIECE_ALPHABET if family == "wordpiece" else RULE_ALPHABET,
                   min_size=min_size, max_size=max_size)


@pytest.fixture(params=["scan", "bits"])
def left_edge_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the left edge is checked: a direct scan of the ranks (small ranges), and the
    shard's rank-ordered left-edge bits (`LeftBits`, for large ranges: forced here)."""
    if request.param == "bits":
        monkeypatch.setattr(word_ends, "_BIG", 0)
        monkeypatch.setattr(word_ends, "_BUILD_SHARE", 1 << 62)  # built at the first large range
    return request.param


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), min_len=st.integers(1, 3), max_cnt=st.sampled_from([1, 2, 1_000_000]))
def test_spans_counts_search_equal_brute_force_on_text(tmp_path_factory, family_tokenizers, family, left_edge_path,
                                                      data, min_len, max_cnt) -> None:
    """Every span (with its count), every span's count, find_words, capped counts and `search`
    equal brute force on the text with the rule at both edges, for each tokenizer family."""
    from tracetui.tracing.search import search_documents

    docs = data.draw(st.lists(_texts(family, 1, 40), min_size=1, max_size=5), label="docs")
    response = data.draw(_texts(family, 1, 30), label="response")
    tokenizer = family_tokenizers[family]
    index = _build(tmp_path_factory.mktemp("rule"), docs, tokenizer)
    view = oracle.viewer(tokenizer)
    doc_views = [view(d) for d in docs]
    reply = view(response)
    assert index.encode(response).tolist() == reply.ids
    want = oracle.reference_spans(doc_views, reply, oracle.delimiter_tokens(tokenizer), min_len, max_cnt)
    got = find_spans(index, np.array(reply.ids, dtype=np.int64), min_len=min_len, max_cnt=max_cnt)
    assert [(s.l, s.r, s.count) for s in got] == want
    # counts of every reply piece between two reply boundaries (spans or not), exact and capped
    cuts = [p for p, b in enumerate(reply.bnd) if b]
    pieces = [reply.ids[a:b] for a in cuts for b in cuts if b > a][:40]
    if pieces:
        seqs = [np.array(q, dtype=np.int64) for q in pieces]
        truth = [oracle.count(doc_views, q) for q in pieces]
        assert index.count_words_many(seqs).tolist() == truth
        assert index.count_words_many(seqs, cap=1).tolist() == [min(t, 2) for t in truth]
        for q, t in zip(seqs[:8], truth[:8], strict=True):
            assert index.count_words(q) == t
            assert sum(b - a for shard in index.find_words(q) for a, b in shard) == t
    # search: the documents that hold a whole-word occurrence of a text
    query = response[: max(1, len(response) // 2)]
    qv = view(query)
    if not qv.ids:
        return
    hits = oracle.occurrences(doc_views, qv.ids)
    found = search_documents([index], query, limit=50)
    assert found["counts"][0]["count"] == len(hits)
    assert sorted({d["doc_id"] for d in found["documents"]}) == sorted({k for k, _ in hits})


# ---------------------------------------------------------------------------------------------
# documents, snippets, count and search follow the rule
# ---------------------------------------------------------------------------------------------
def test_hi_is_not_found_inside_longer_words(tmp_path: Path) -> None:
    texts = ["History is long.", "High and Hindi.", "Hier.", "Well Hi there.", "Hi", "He said Hi\tthen left."]
    index = _build(tmp_path, texts, "bytes")
    ids = index.encode(" Hi")
    assert index.count(ids) == 3  # " Hi" in "Well Hi", " Hindi", "said Hi\t"
    assert index.count_words(ids) == 2
    ww = Tracer([index]).trace(" Hi")
    assert [s.count for s in ww.spans] == [2]
    sources = {d.doc for d in ww.documents}
    assert sources == {3, 5}
    for d in ww.documents:
        for h in d.hits:
            a, b = h.window_match
            assert h.window[a:b] == "Hi" and (b == len(h.window) or not is_word_char(h.window[b]))
    published = Tracer([index], TraceParams(whole_words=False)).trace(" Hi")
    assert [s.count for s in published.spans] == [3]


def test_dog_not_found_inside_doghouse_with_bpe(tmp_path: Path, byte_level: HFTokenizer) -> None:
    texts = ["I saw the doghouse", "and the dog sat down", "see the dogma", "so the dog."]
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    build_index([src], tmp_path / "ix", BuildOptions(tokenizer=str(byte_level.path), progress=False))
    index = Index.open(tmp_path / "ix")
    ids = index.encode(" the dog")
    got = find_spans(index, ids)
    assert [(s.l, s.r) for s in got] == [(0, len(ids))]
    assert got[0].count == 2
    substrings = index.count(ids)
    assert substrings > 2  # "dog" is not one token of this BPE: "doghouse" holds its tokens
    assert find_spans(index, ids, whole_words=False)[0].count == substrings


def test_trust_cases_from_the_issue(tmp_path: Path, byte_level: HFTokenizer) -> None:
    """The cases of issue 17, section 1, each of which failed before the rule covered both edges."""
    # a match that ends with its own newline, where the next line starts with a letter
    texts = ["the ancient\nwalls stood", "an ancient\nroad", "ancient\n", "the ancients\nwere"]
    index = _build(tmp_path / "nl", texts, "bytes")
    ids = index.encode(" ancient\n")
    assert index.count_words(ids) == 2 and index.count_words(ids) == 2
    assert index.count_words(index.encode("ancient\n")) == 3  # and at a document's start
    # the first word of a reply and of a line start spans, on bytes and on a byte-level BPE
    line = "Return a new set with elements from the set and all others."
    corpus = ["Some words first.\n" + line + "\nMore after.", "Unrelated text here."]
    for tok in ("bytes", str(byte_level.path)):
        ix = _build(tmp_path / f"first{len(tok)}", corpus, tok)
        for reply in (line, "Well.\n" + line):
            got = Tracer([ix]).trace(reply)
            start = reply.index("Return")
            assert any(s.start == start and s.end == start + len(line) for s in got.spans), (tok, reply, got.spans)
    # the left edge in the corpus: "cat sat on the mat" is not inside "Zcat sat on the mat"
    ix = _build(tmp_path / "zcat", ["Zcat sat on the mat", "a dog"], "bytes")
    assert ix.count_words(ix.encode("cat sat on the mat")) == 0
    assert ix.count(ix.encode("cat sat on the mat")) == 1
    assert find_spans(ix, ix.encode("cat sat on the mat")) == [] or all(
        s.l > 0 for s in find_spans(ix, ix.encode("cat sat on the mat")))


def test_default_stdlib_index_short_words_never_inside_longer_words(tmp_path: Path, monkeypatch) -> None:
    """The embedded default index (bytes): a reply of common short words is traced, and no
    document it offers holds a span inside a longer word -- in the published mode some do."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from tracetui.defaults import default_index_dir

    index = Index.open(default_index_dir(progress=False))
    reply = " It is a list of the names in it, and if it is not in the list, it is an error to use it as a key."
    ww = Tracer([index]).trace(reply)
    published = Tracer([index], TraceParams(whole_words=False)).trace(reply)
    assert ww.spans and ww.documents

    def inside_word(window: str, a: int, b: int) -> bool:
        cut_start = a > 0 and is_word_char(window[a - 1]) and is_word_char(window[a])
        cut_end = b < len(window) and is_word_char(window[b - 1]) and is_word_char(window[b])
        return cut_start or cut_end

    hits = [(h.window, *h.window_match) for d in ww.documents for h in d.hits]
    assert hits and not any(inside_word(*h) for h in hits)
    for s in ww.spans:  # every count is a whole-word count of the span's tokens
        ids = index.encode(reply)[s.token_start : s.token_end]
        assert s.count == index.count_words(ids) <= index.count(ids)
    assert published.spans
    # what the rule removes: " is" is found inside " isinstance" etc. only in the published mode
    short_pub = Tracer([index], TraceParams(whole_words=False)).trace(" is")
    assert any(inside_word(h.window, *h.window_match) for d in short_pub.documents for h in d.hits)
    short = Tracer([index]).trace(" is")
    assert short.documents
    assert not any(inside_word(h.window, *h.window_match) for d in short.documents for h in d.hits)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.text(alphabet="ab c.é\n", min_size=100, max_size=400), min_size=2, max_size=5),
    queries=st.lists(st.text(alphabet="ab c.é\n", min_size=1, max_size=4), min_size=1, max_size=12),
    cap=st.sampled_from([0, 1, 3, 20, 100, 5000]),
    shards=st.sampled_from([1, 2]),
)
def test_exact_and_capped_whole_word_counts(tmp_path_factory, left_edge_path, docs, queries, cap, shards) -> None:
    """Large ranges (hundreds of occurrences) go through every path: edges settled by the query,
    right edges by halving and rank scans, left edges by scans, unsure lead bytes ("é"), two
    shards; capped counts are exact up to the cap."""
    index = _build(tmp_path_factory.mktemp("cap"), docs, "bytes", shards)
    assert len(index.shards) == shards
    doc_views = [oracle.view_bytes(d) for d in docs]
    seqs = [index.encode(q) for q in queries]
    want = [oracle.count(doc_views, s.tolist()) for s in seqs]
    assert index.count_words_many(seqs).tolist() == want
    assert index.count_words_many(seqs, cap=cap).tolist() == [min(w, cap + 1) for w in want]
    for s, w in zip(seqs, want, strict=True):
        runs = index.find_words(s)
        assert sum(b - a for shard in runs for a, b in shard) == w
        assert sum(len(r) for _, r in index.word_occurrences(s, chunk=7)) == w


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.text(alphabet="ab c.é", min_size=50, max_size=300), min_size=1, max_size=4),
    response=st.text(alphabet="ab c.é", min_size=1, max_size=60),
    max_cnt=st.sampled_from([0, 2, 10, 1_000_000]),
    k=st.integers(1, 6),
)
def test_lazy_top_k_equals_filter_then_select(tmp_path_factory, docs, response, max_cnt, k) -> None:
    """`keep_lowest` decides max_cnt lazily, in log-probability order: same spans and counts as
    counting everything, filtering, then taking the K of lowest log-probability."""
    from tracetui.tracing.spans import lowest_logprob

    index = _build(tmp_path_factory.mktemp("lazy"), docs, "bytes")
    ids = index.encode(response)
    everything = find_spans(index, ids, max_cnt=max_cnt)
    lazy = find_spans(index, ids, max_cnt=max_cnt, keep_lowest=k)
    assert [(s.l, s.r, s.count) for s in lazy] == [(s.l, s.r, s.count) for s in lowest_logprob(everything, k)]


def test_left_edge_bits_are_cached_and_a_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch) -> None:
    """`LeftBits` is built once per index (kept in the user's cache dir), read back equal, and a
    truncated or foreign cache file is never used: it is rebuilt."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(word_ends, "_BIG", 0)
    monkeypatch.setattr(word_ends, "_BUILD_SHARE", 1 << 62)
    texts = ["the cat\nsat. cat\tcat", "cat", "(cat) concat cats"]
    index = _build(tmp_path / "ix", texts, "bytes")
    words = index.tokenizer.word_boundaries()
    shard = index.shards[0]
    ids = index.encode("cat")
    want = oracle.count([oracle.view_bytes(t) for t in texts], ids.tolist())
    assert want == 5 and index.count_words(ids) == want
    files = list((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == 1
    fresh = word_ends.LeftBits.build(shard, words)
    loaded = word_ends.LeftBits.load(files[0], shard.n_tokens)
    assert loaded is not None and np.array_equal(loaded.words, fresh.words) and np.array_equal(loaded.before, fresh.before)
    for damage in (lambda b: b[:-8], lambda b: b[:-8] + b"\xff" * 8, lambda b: b"junk"):
        files[0].write_bytes(damage(files[0].read_bytes()))
        assert word_ends.LeftBits.load(files[0], shard.n_tokens) is None
        again = Index.open(tmp_path / "ix" / "ix")  # a new session: nothing kept in memory
        assert again.count_words(ids) == want


def test_left_edge_bits_are_built_only_once_direct_reads_add_up(tmp_path: Path, monkeypatch) -> None:
    """A one-off query reads its range directly; `LeftBits` is built once the ranges read on a
    shard pass an eighth of it, and answers stay those of the oracle either way."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(word_ends, "_BIG", 4)
    texts = ["cat. cat,cat\ncat concat cat_s " + "lorem ipsum dolor sit amet " * 20] * 10
    index = _build(tmp_path / "ix", texts, "bytes")
    shard, ids = index.shards[0], index.encode("cat")
    want = oracle.count([oracle.view_bytes(t) for t in texts], ids.tolist())
    n_occ = index.count(ids)
    assert n_occ > 4 and n_occ * 3 < shard.n_tokens // 8  # a few direct reads stay under the share
    assert index.count_words(ids) == want and shard.memo.get("left_bits") is None
    for _ in range(shard.n_tokens // 8 // n_occ + 1):
        assert index.count_words(ids) == want
    assert shard.memo.get("left_bits") is not None  # built, and then used
    assert index.count_words(ids) == want


def test_token_tables_are_cached_and_a_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch,
                                                                byte_level: HFTokenizer) -> None:
    """A fresh process reads a tokenizer's token bytes and word tables from the cache (keyed by
    the file's digest) instead of walking the vocabulary; the cached tables equal the built ones,
    and a damaged cache file is rebuilt, never used."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fresh = HFTokenizer(byte_level.path)
    built = fresh.word_boundaries().to_arrays()
    files = list((tmp_path / "cache").rglob("*.npz"))
    assert len(files) == 1
    again = HFTokenizer(byte_level.path)
    assert again.token_bytes() == fresh.token_bytes()
    for k, v in again.word_boundaries().to_arrays().items():
        assert np.array_equal(v, built[k]), k
    files[0].write_bytes(files[0].read_bytes()[:100])
    third = HFTokenizer(byte_level.path)
    assert third.token_bytes() == fresh.token_bytes()
    assert np.array_equal(third.word_boundaries().tail_class, built["tail_class"])
    assert len(files[0].read_bytes()) > 100  # rewritten whole
