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

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from index_tools.tokenizer import ByteTokenizer, HFTokenizer, train_bpe
from index_tools.words import BEGINS, CONTINUES, UNSURE, is_word_char
from tracetui.tracing.pipeline import TraceParams, Tracer
from tracetui.tracing.spans import delimiter_ids, find_spans

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
    assert byte_level.word_boundaries().starts(dash)[0]
    # every token of a text: decoded bytes concatenate to the text, starts match the truth
    for text in TEXTS:
        ids = byte_level.encode(text)
        data, offs = token_offsets(byte_table(byte_level), ids)
        assert data == text.encode("utf-8")
        assert byte_level.word_boundaries().starts(ids).tolist() == [begins_at(data, o) for o in offs[:-1]]


def test_tab_led_word_can_start_a_span(byte_level: HFTokenizer) -> None:
    ids = byte_level.encode("x\tfoo")
    starts = byte_level.word_boundaries().starts(ids)
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
        assert sentencepiece.word_boundaries().starts(ids).tolist() == [begins_at(data, o) for o in offs[:-1]]


def test_wordpiece_continuations(wordpiece: HFTokenizer) -> None:
    vocab = wordpiece._tok.get_vocab()
    cls = wordpiece.word_boundaries().classes
    conts = [i for s, i in vocab.items() if s.startswith("##")]
    heads = [i for s, i in vocab.items() if not s.startswith("##")]
    assert conts and heads
    assert (cls[conts] == CONTINUES).all() and (cls[heads] == BEGINS).all()
    ids = wordpiece.encode("the catalog")
    starts = wordpiece.word_boundaries().starts(ids)
    pieces = [wordpiece._tok.id_to_token(int(i)) for i in ids]
    assert starts.tolist() == [not p.startswith("##") for p in pieces]


def test_bytes_tokenizer_truth() -> None:
    tok = ByteTokenizer()
    for text in TEXTS:
        ids = tok.encode(text)
        data = text.encode("utf-8")
        assert tok.word_boundaries().starts(ids).tolist() == [begins_at(data, i) for i in range(len(data))]


def test_static_set_is_a_superset(byte_level: HFTokenizer, sentencepiece: HFTokenizer) -> None:
    """The token-level set written for infini-gram contains every contextual start."""
    for tok in (byte_level, sentencepiece, ByteTokenizer()):
        for text in TEXTS:
            ids = tok.encode(text)
            starts = tok.word_boundaries().starts(ids)
            assert not (starts & ~tok.word_start_mask()[ids]).any()


# ---------------------------------------------------------------------------------------------
# whole-word span finding vs brute force
# ---------------------------------------------------------------------------------------------
def brute_whole_word_count(docs: list[list[int]], doc_starts: list[list[bool]], q: list[int]) -> int:
    """Occurrences of q in the token docs that end where a word begins (or the doc ends)."""
    n = len(q)
    total = 0
    for d, ws in zip(docs, doc_starts, strict=True):
        for i in range(len(d) - n + 1):
            if d[i : i + n] == q and (i + n == len(d) or ws[i + n]):
                total += 1
    return total


def reference_whole_word_spans(docs: list[list[int]], doc_starts: list[list[bool]], ids: list[int],
                               starts: list[bool], delims: set[int], min_len: int,
                               max_cnt: int) -> list[tuple[int, int, int]]:
    """Section 1 with whole words on both sides, by brute force: for each word start l, the longest
    r (a reply word end, within the delimiter cut) with a whole-word occurrence; then count,
    max_cnt and maximality in the reference's order."""
    L = len(ids)
    out: list[tuple[int, int, int]] = []
    max_r = -1
    for l in range(L):
        if not starts[l]:
            continue
        cut = L
        for p in range(l, L):
            if ids[p] in delims:
                cut = p + 1
                break
        r = l
        for cand in range(cut, l, -1):
            if (cand == L or starts[cand]) and brute_whole_word_count(docs, doc_starts, ids[l:cand]) > 0:
                r = cand
                break
        if r - l < max(1, min_len):
            continue
        c = brute_whole_word_count(docs, doc_starts, ids[l:r])
        if c > max_cnt:
            continue
        if r > max_r:
            out.append((l, r, c))
            max_r = r
    return out


def _build(tmp: Path, texts: list[str], tokenizer: str, shards: int | None = None) -> Index:
    src = tmp / "c.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    build_index([src], tmp / "ix", BuildOptions(tokenizer=tokenizer, progress=False, force=True, shards=shards))
    return Index.open(tmp / "ix")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=40), min_size=1, max_size=5),
    response=st.text(alphabet=ALPHABET, min_size=1, max_size=30),
    min_len=st.integers(1, 3),
    max_cnt=st.sampled_from([1, 2, 1_000_000]),
)
def test_bytes_whole_word_spans_equal_brute_force_on_text(tmp_path_factory, docs, response, min_len,
                                                          max_cnt) -> None:
    index = _build(tmp_path_factory.mktemp("ww"), docs, "bytes")
    docs = [d for d in docs if d]
    data = [d.encode("utf-8") for d in docs]
    doc_tokens = [list(b) for b in data]
    doc_starts = [[begins_at(b, i) for i in range(len(b))] for b in data]
    reply = response.encode("utf-8")
    ids = index.encode(response)
    starts = [begins_at(reply, i) for i in range(len(reply))]
    delims = set(delimiter_ids(index, (".", "\n")).tolist())
    want = reference_whole_word_spans(doc_tokens, doc_starts, list(reply), starts, delims, min_len, max_cnt)
    got = find_spans(index, ids, min_len=min_len, max_cnt=max_cnt)
    assert [(s.l, s.r, s.count) for s in got] == want
    for s in got:  # on the text: whole words in the reply, and exactly `count` whole-word hits
        piece = reply[s.l : s.r]
        assert begins_at(reply, s.l) and begins_at(reply, s.r)
        hits = sum(1 for b in data for i in range(len(b) - len(piece) + 1)
                   if b[i : i + len(piece)] == piece and begins_at(b, i + len(piece)))
        assert hits == s.count


@pytest.fixture(scope="module")
def oracle_bpe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("obpe") / "tokenizer.json"
    sample = ["".join(ALPHABET[(i * 7 + j * 3) % len(ALPHABET)] for j in range(60)) for i in range(50)]
    train_bpe(iter(sample + TEXTS), path, vocab_size=320)
    return path


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=40), min_size=1, max_size=5),
    response=st.text(alphabet=ALPHABET, min_size=1, max_size=30),
    max_cnt=st.sampled_from([1, 1_000_000]),
)
def test_bpe_whole_word_spans_equal_brute_force(tmp_path_factory, oracle_bpe, docs, response, max_cnt) -> None:
    index = _build(tmp_path_factory.mktemp("wwb"), docs, str(oracle_bpe))
    tok = index.tokenizer
    table = byte_table(tok)
    doc_tokens, doc_starts = [], []
    for d in docs:
        t = tok.encode(d)
        b, offs = token_offsets(table, t)
        doc_tokens.append(t.tolist())
        doc_starts.append([begins_at(b, o) for o in offs[:-1]])
    ids = tok.encode(response)
    b, offs = token_offsets(table, ids)
    starts = [begins_at(b, o) for o in offs[:-1]]
    delims = set(delimiter_ids(index, (".", "\n")).tolist())
    want = reference_whole_word_spans(doc_tokens, doc_starts, ids.tolist(), starts, delims, 1, max_cnt)
    got = find_spans(index, ids, max_cnt=max_cnt)
    assert [(s.l, s.r, s.count) for s in got] == want


# ---------------------------------------------------------------------------------------------
# documents, snippets, count and search follow the rule
# ---------------------------------------------------------------------------------------------
def test_hi_is_not_found_inside_longer_words(tmp_path: Path) -> None:
    texts = ["History is long.", "High and Hindi.", "Hier.", "Well Hi there.", "Hi", "He said Hi\tthen left."]
    index = _build(tmp_path, texts, "bytes")
    ids = index.encode(" Hi")
    assert index.count(ids) == 3  # " Hi" in "Well Hi", " Hindi", "said Hi\t"
    assert index.count(ids, whole_words=True) == 2
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


def brute_text_word_count(docs: list[bytes], q: bytes) -> int:
    """Whole-word occurrences of q on the text: a word start before it (or q starts with a
    non-word character) and a word start, or the document end, after it."""
    total = 0
    for b in docs:
        for i in range(len(b) - len(q) + 1):
            if b[i : i + len(q)] != q:
                continue
            before = i == 0 or not is_word_char(b[:i].decode("utf-8", "replace")[-1])
            if (before or begins_at(q, 0)) and begins_at(b, i + len(q)):
                total += 1
    return total


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=40), min_size=1, max_size=5),
    query=st.text(alphabet=ALPHABET, min_size=1, max_size=6).filter(lambda q: begins_at(q.encode(), len(q.encode()))),
)
def test_count_and_search_whole_words_equal_brute_force(tmp_path_factory, docs, query) -> None:
    """`count` / `search` of any text, including one that starts inside a word's characters."""
    from tracetui.tracing.search import search_documents

    index = _build(tmp_path_factory.mktemp("cw"), docs, "bytes")
    want = brute_text_word_count([d.encode("utf-8") for d in docs], query.encode("utf-8"))
    assert index.count_words(index.encode(query)) == want
    found = search_documents([index], query, limit=50)
    assert found["counts"][0]["count"] == want
    for d in found["documents"]:
        a, b = d["match"]
        text = d["snippet"]
        assert b == len(text) or not is_word_char(text[b]) or not is_word_char(text[b - 1])


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
        assert s.count == index.count(ids, whole_words=True) <= index.count(ids)
    assert published.spans
    # what the rule removes: " is" is found inside " isinstance" etc. only in the published mode
    short_pub = Tracer([index], TraceParams(whole_words=False)).trace(" is")
    assert any(inside_word(h.window, *h.window_match) for d in short_pub.documents for h in d.hits)
    short = Tracer([index]).trace(" is")
    assert short.documents
    assert not any(inside_word(h.window, *h.window_match) for d in short.documents for h in d.hits)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.text(alphabet="ab c.é", min_size=100, max_size=400), min_size=2, max_size=5),
    queries=st.lists(st.text(alphabet="ab c.é", min_size=1, max_size=4), min_size=1, max_size=12),
    cap=st.sampled_from([0, 1, 3, 20, 100, 5000]),
    shards=st.sampled_from([1, 2]),
)
def test_exact_and_capped_whole_word_counts(tmp_path_factory, docs, queries, cap, shards) -> None:
    """Large ranges (hundreds of occurrences) go through every path: one-run ranges, halving, rank
    scans, unsure lead bytes ("é"), two shards; capped counts are exact up to the cap."""
    index = _build(tmp_path_factory.mktemp("cap"), docs, "bytes", shards)
    assert len(index.shards) == shards
    data = [d.encode("utf-8") for d in docs]
    doc_tokens = [list(b) for b in data]
    doc_starts = [[begins_at(b, i) for i in range(len(b))] for b in data]
    seqs = [index.encode(q) for q in queries]
    want = [brute_whole_word_count(doc_tokens, doc_starts, s.tolist()) for s in seqs]
    assert index.count_many(seqs, whole_words=True).tolist() == want
    assert index.count_many(seqs, whole_words=True, cap=cap).tolist() == [min(w, cap + 1) for w in want]
    for s, w in zip(seqs, want, strict=True):
        runs = index.find_words(s)
        assert sum(b - a for shard in runs for a, b in shard) == w


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
