"""Interoperability with the reference implementation (the `infini-gram` package, engine and builder).

a) an index built by our builder opens in infini-gram's engine, and both engines agree on count()
   and find() segments for many present and absent n-grams (u16, two shards; and u8 bytes);
b) our table.N is byte-identical to the one infini-gram's own builder writes for the same
   tokenized.N, and the index infini-gram built is adopted by us (`tracetui index adopt`) and
   answers counts exactly as infini-gram's engine does;
c) span finding (OLMoTrace section 1, steps 1-6): infini-gram's `attribute(..., enforce_bow=True)`
   with our word-start ids as its `bow_ids_path` gives the same (l, r, count) lists as our
   `find_spans`. The one known divergence -- the reference's off-by-one at suffix-array rank 0,
   which the spec tells us not to reproduce -- is pinned down by its own test.

Everything is local (no network) and small: the whole module runs in a few seconds.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ig_engine = pytest.importorskip("infini_gram.engine")

from index_tools.adopt import adopt_index  # noqa: E402
from index_tools.builder import BuildOptions, build_index  # noqa: E402
from index_tools.engine import Index  # noqa: E402
from index_tools.tokenizer import train_bpe, write_word_start_ids  # noqa: E402
from tracetui.cli import main as cli_main  # noqa: E402
from tracetui.tracing.spans import delimiter_ids, find_spans  # noqa: E402

LETTERS = list("abcdefghijklmnopqrstuvwxyz")


# ---------------------------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------------------------
def make_texts(seed: int = 0, n_docs: int = 240) -> list[str]:
    """Sentences of Zipf-chosen made-up words, "." endings, newlines, some repeated passages."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(LETTERS, size=int(rng.integers(1, 8)))) for _ in range(160)]
    p = 1.0 / np.arange(1, len(words) + 1) ** 1.1
    p /= p.sum()
    sentences: list[str] = []
    texts: list[str] = []
    for _ in range(n_docs):
        parts: list[str] = []
        for _ in range(int(rng.integers(2, 12))):
            if sentences and rng.random() < 0.15:
                s = sentences[int(rng.integers(len(sentences)))]  # a repeated passage
            else:
                w = [words[i] for i in rng.choice(len(words), size=int(rng.integers(3, 14)), p=p)]
                w[0] = w[0].capitalize()
                s = " ".join(w) + rng.choice([".", ".", ".", ",", "!", ""])
                sentences.append(s)
            parts.append(s)
            parts.append(rng.choice([" ", " ", " ", "\n", "\n\n"]))
        texts.append("".join(parts).strip())
    return texts


#: infini-gram classifies files by these substrings of their *whole path* (directory included), so
#: no directory of ours may contain them: pytest's tmp_path (named after the test) is not used.
IG_WORDS = ("tokenized", "table", "offset", "metadata", "metaoff", "unigram")


@pytest.fixture
def safe_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ig")
    assert not any(w in str(d) for w in IG_WORDS)
    return d


def resolve_nofile() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 20000 if hard == resource.RLIM_INFINITY else min(20000, hard)


def infinigram_build(src: Path, dst: Path, token_dtype: str) -> None:
    """Run infini-gram's builder on a copy of src's tokenized.0/offset.0/metadata.0/metaoff.0."""
    dst.mkdir()
    for kind in ("tokenized", "offset", "metadata", "metaoff"):
        if (src / f"{kind}.0").exists():
            shutil.copyfile(src / f"{kind}.0", dst / f"{kind}.0")
    data = dst.parent / f"{dst.name}-empty-data"  # must exist; tokenization is skipped
    data.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(data.resolve()),
         "--save_dir", str(dst.resolve()), "--token_dtype", token_dtype, "--mem", "1", "--cpus", "1",
         "--ulimit", str(resolve_nofile())],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0 and (dst / "table.0").exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    leftovers = sorted(p.name for p in dst.iterdir() if p.is_dir())
    assert not leftovers, f"infini-gram left temporary dirs {leftovers}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("interop")
    assert not any(w in str(tmp) for w in IG_WORDS)
    texts = make_texts()
    tok = train_bpe(iter(texts), tmp / "tokenizer.json", vocab_size=500)
    docs = [ids for ids in tok.encode_batch(texts) if len(ids)]
    eos = tok.vocab_size  # not a token id: only separates documents in the .npy
    arr = np.concatenate([np.append(d, eos) for d in docs]).astype(np.uint16)
    np.save(tmp / "docs.npy", arr)
    bow_path = tmp / "bow_ids.txt"  # outside every index directory (infini-gram globs file names)
    write_word_start_ids(tok, bow_path)
    return {"tmp": tmp, "tokenizer": tmp / "tokenizer.json", "tok": tok, "docs": docs, "eos": eos,
            "npy": tmp / "docs.npy", "bow": bow_path}


def _build(corpus: dict, name: str, shards: int | None) -> Path:
    out = corpus["tmp"] / name
    build_index([corpus["npy"]], out, BuildOptions(tokenizer=str(corpus["tokenizer"]), eos_id=corpus["eos"],
                                                   shards=shards, progress=False))
    return out


@pytest.fixture(scope="module")
def one_shard(corpus: dict) -> Path:
    return _build(corpus, "idx1", None)


@pytest.fixture(scope="module")
def two_shards(corpus: dict) -> Path:
    return _build(corpus, "idx2", 2)


def ig_open(directory: Path, corpus: dict | None = None, dtype: str = "u16", eos: int | None = None,
            bow: Path | None = None):  # type: ignore[no-untyped-def]
    if dtype == "u8":
        return ig_engine.InfiniGramEngine(index_dir=str(directory), eos_token_id=eos or 0, vocab_size=255,
                                          token_dtype="u8", bow_ids_path=str(bow) if bow else None)
    assert corpus is not None
    return ig_engine.InfiniGramEngine(index_dir=str(directory), eos_token_id=corpus["eos"], vocab_size=65535,
                                      token_dtype="u16", bow_ids_path=str(bow) if bow else None)


def ngrams(docs: list[np.ndarray], vocab: int, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Present n-grams (corpus slices, incl. long ones), absent ones (random tokens), and mixtures."""
    out: list[np.ndarray] = []
    for k in range(n):
        d = docs[int(rng.integers(len(docs)))]
        kind = k % 4
        if kind in (0, 1):
            length = int(rng.integers(1, 4 if kind == 0 else 40))
            a = int(rng.integers(0, max(1, len(d) - length + 1)))
            out.append(d[a : a + length].astype(np.int64))
        elif kind == 2:
            out.append(rng.integers(0, vocab, size=int(rng.integers(1, 5))).astype(np.int64))
        else:
            a = int(rng.integers(0, len(d)))
            out.append(np.append(d[a : a + int(rng.integers(1, 6))], rng.integers(0, vocab)).astype(np.int64))
    return out


# ---------------------------------------------------------------------------------------------
# a) count / find parity on our index
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["one_shard", "two_shards"])
def test_count_and_find_agree_with_infinigram_engine(corpus: dict, which: str, request) -> None:
    directory = request.getfixturevalue(which)
    ours = Index.open(directory)
    ig = ig_open(directory, corpus)
    rng = np.random.default_rng(1)
    queries = ngrams(corpus["docs"], corpus["tok"].vocab_size, rng, 800)
    present = absent = 0
    for q in queries:
        want = ig.count(q.tolist())
        assert want["approx"] is False
        assert ours.count(q) == want["count"], q.tolist()
        found = ig.find(q.tolist())
        assert [tuple(s) for s in found["segment_by_shard"]] == [tuple(s) for s in ours.find(q)], q.tolist()
        present += want["count"] > 0
        absent += want["count"] == 0
    assert present > 300 and absent > 100  # both kinds really exercised
    # batched counting is the same engine path, but check it too
    counts = ours.count_many(queries)
    assert counts.tolist() == [ig.count(q.tolist())["count"] for q in queries]
    # the total number of documents and tokens
    assert ig.get_total_doc_cnt() == ours.manifest.documents


# ---------------------------------------------------------------------------------------------
# b) byte-identical table; infini-gram-built index adopted by us
# ---------------------------------------------------------------------------------------------
def test_suffix_array_byte_identical_and_adopted_index_agrees(corpus: dict, one_shard: Path, safe_tmp: Path) -> None:
    ig_dir = safe_tmp / "ig-index"
    infinigram_build(one_shard, ig_dir, "u16")
    assert (ig_dir / "table.0").read_bytes() == (one_shard / "table.0").read_bytes()

    # adopt through the CLI, as a user would
    code = cli_main(["index", "adopt", str(ig_dir), "--tokenizer", str(corpus["tokenizer"]),
                     "--token-width", "u16", "--eos-id", str(corpus["eos"])])
    assert code == 0
    adopted = Index.open(ig_dir)
    assert adopted.manifest.source == "infini-gram"
    assert adopted.manifest.tokens == Index.open(one_shard).manifest.tokens
    # doc metadata written by our builder is readable after adoption
    assert adopted.metadata(0, 0).get("path", "").endswith("docs.npy")

    ig = ig_open(ig_dir, corpus)  # our manifest and tokenizer.json must not disturb infini-gram
    rng = np.random.default_rng(2)
    for q in ngrams(corpus["docs"], corpus["tok"].vocab_size, rng, 400):
        assert adopted.count(q) == ig.count(q.tolist())["count"], q.tolist()
        assert [tuple(s) for s in ig.find(q.tolist())["segment_by_shard"]] == [tuple(s) for s in adopted.find(q)]


def test_adopt_index_api_without_metadata(corpus: dict, one_shard: Path, safe_tmp: Path) -> None:
    """An infini-gram index built without --add_metadata (no metadata.N/metaoff.N) is adoptable."""
    src = safe_tmp / "src"
    src.mkdir()
    for kind in ("tokenized", "offset"):
        shutil.copyfile(one_shard / f"{kind}.0", src / f"{kind}.0")
    ig_dir = safe_tmp / "ig-nometa"
    infinigram_build(src, ig_dir, "u16")
    manifest = adopt_index(ig_dir, str(corpus["tokenizer"]), "u16", corpus["eos"])
    assert manifest.documents == len(corpus["docs"])
    adopted = Index.open(ig_dir)
    assert adopted.metadata(0, 0) == {}
    ig = ig_open(ig_dir, corpus)
    rng = np.random.default_rng(3)
    for q in ngrams(corpus["docs"], corpus["tok"].vocab_size, rng, 100):
        assert adopted.count(q) == ig.count(q.tolist())["count"]


# ---------------------------------------------------------------------------------------------
# c) span finding parity with infini-gram's attribute()
# ---------------------------------------------------------------------------------------------
def reference_rank0_affected(index: Index, ids: np.ndarray, positions: np.ndarray) -> bool:
    """Would the reference's rank-0 off-by-one change the longest prefix at any of `positions`?

    infini-gram inspects the neighbours rank-1 and rank of the insertion point but skips both when
    the insertion point is 0, so it reports 0 where the correct answer is the LCP with rank 0.
    """
    keys = index.keys_of(ids)
    qlen = len(ids) - positions
    ours = index.longest_prefixes(ids, positions)
    ref = np.zeros(len(positions), dtype=np.int64)
    for shard in index.shards:
        lo, hi = shard.find_many(keys, positions, qlen)
        lp, _ = shard.longest_prefix(keys, positions, qlen)
        ref = np.maximum(ref, np.where((lo == 0) & (hi == 0), 0, lp))
    return bool(np.any(ref != ours))


def make_response(docs: list[np.ndarray], vocab: int, rng: np.random.Generator, length: int) -> np.ndarray:
    """Corpus excerpts (some long) interleaved with random tokens."""
    parts: list[np.ndarray] = []
    total = 0
    while total < length:
        if rng.random() < 0.6:
            d = docs[int(rng.integers(len(docs)))]
            n = int(rng.integers(3, 60))
            a = int(rng.integers(0, max(1, len(d) - n)))
            piece = d[a : a + n]
        else:
            piece = rng.integers(0, vocab, size=int(rng.integers(1, 12)))
        parts.append(np.asarray(piece, dtype=np.int64))
        total += len(piece)
    return np.concatenate(parts)[:length]


@pytest.mark.parametrize("which", ["one_shard", "two_shards"])
@pytest.mark.parametrize("min_len,max_cnt", [(1, 1_000_000), (2, 1_000_000), (1, 3), (4, 50)])
def test_span_finding_matches_infinigram_attribute(corpus: dict, which: str, min_len: int, max_cnt: int,
                                                   request) -> None:
    directory = request.getfixturevalue(which)
    index = Index.open(directory)
    ig = ig_open(directory, corpus, bow=corpus["bow"])
    delims = delimiter_ids(index, (".", "\n"))
    assert len(delims) == 2  # "." and "\n" are single tokens of the byte-level BPE
    mask = index.tokenizer.word_start_mask()
    rng = np.random.default_rng(10 * min_len + max_cnt % 7 + (which == "two_shards"))
    compared = skipped = 0
    n_spans = cut_by_delim = 0
    while compared < 12:
        ids = make_response(corpus["docs"], corpus["tok"].vocab_size, rng, int(rng.integers(20, 300)))
        bow_pos = np.flatnonzero(mask[ids])
        if reference_rank0_affected(index, ids, bow_pos):
            skipped += 1  # covered by test_reference_rank0_off_by_one
            assert skipped < 50
            continue
        want = ig.attribute(ids.tolist(), delims.tolist(), min_len, max_cnt, True)["spans"]
        got = find_spans(index, ids, delimiters=(".", "\n"), min_len=min_len, max_cnt=max_cnt,
                         whole_words=False)
        assert [(s.l, s.r, s.count) for s in got] == [(s["l"], s["r"], s["count"]) for s in want], (
            f"response {ids.tolist()}")
        compared += 1
        n_spans += len(got)
        cut_by_delim += sum(1 for s in got if ids[s.r - 1] in delims)
    assert n_spans > 20
    if max_cnt > 100:
        assert cut_by_delim > 0  # the delimiter rule was exercised


NAMES = ["Ada Lovelace", "Basho", "Oscar Wilde", "Murasaki Shikibu", "Zhuangzi", "Rumi", "Anon"]
CJK_RUNS = ["日本語のテキスト", "東京都", "漢字かな交じり文", "中文文本", "你好世界", "한국어", "テスト"]
CJK_CHARS = list("日本語のテキスト東京都漢字中文你好世界山川海空月花")
EMOJI = ["😀", "🎉", "👍", "🚀", "❤️", "🌸"]


def make_rich_texts(seed: int = 7, n_docs: int = 300) -> list[str]:
    """Documents rich in what word boundaries trip over: tab-indented lines, "\\t-- Name"
    attributions, em dashes, curly quotes, CJK runs and emoji, with "." and newlines."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(LETTERS, size=int(rng.integers(1, 8)))) for _ in range(120)]
    p = 1.0 / np.arange(1, len(words) + 1) ** 1.1
    p /= p.sum()

    def pick(seq: list[str]) -> str:
        return seq[int(rng.integers(len(seq)))]

    def word() -> str:
        return words[int(rng.choice(len(words), p=p))]

    def sentence() -> str:
        text = word().capitalize()
        for _ in range(int(rng.integers(2, 13))):
            u = rng.random()
            if u < 0.08:
                piece = " “" + " ".join(word() for _ in range(int(rng.integers(1, 4)))) + "”"
            elif u < 0.14:
                cjk = "".join(rng.choice(CJK_CHARS, size=int(rng.integers(1, 6))))
                piece = pick(["", " "]) + (pick(CJK_RUNS) if rng.random() < 0.6 else cjk)
            elif u < 0.18:
                piece = " " + pick(EMOJI)
            elif u < 0.25:
                piece = pick(["—", " — ", " —", "— "]) + word()  # em dash, glued or spaced
            else:
                piece = " " + word()
            text += piece
        return text + pick([".", ".", ".", "", "!", "。", " 😀"])

    sentences: list[str] = []
    texts: list[str] = []
    for _ in range(n_docs):
        lines: list[str] = []
        for _ in range(int(rng.integers(2, 9))):
            if sentences and rng.random() < 0.2:
                s = sentences[int(rng.integers(len(sentences)))]  # a repeated passage
            else:
                s = " ".join(sentence() for _ in range(int(rng.integers(1, 4))))
                sentences.append(s)
            u = rng.random()
            if u < 0.3:
                s = "\t" * int(rng.integers(1, 3)) + s  # tab-indented line
            elif u < 0.4:
                s = s + "\t" + pick(EMOJI)
            lines.append(s)
            if rng.random() < 0.25:
                lines.append(pick(["\t-- ", "\t—", "\t– ", "\t-- "]) + pick(NAMES))  # attribution
        texts.append("\n".join(lines) + pick(["", "\n", "\n\n"]))
    return texts


def test_span_finding_matches_infinigram_attribute_on_tabs_dashes_cjk_emoji(safe_tmp: Path) -> None:
    """Parity of the published span finding with infini-gram's attribute on text whose word starts
    are tabs, em dashes, curly quotes, CJK and emoji (tokens the old "Ġ/Ċ" rule did not cover)."""
    import json

    texts = make_rich_texts()
    tok_path = safe_tmp / "rich-tokenizer.json"
    tok = train_bpe(iter(texts), tok_path, vocab_size=600)
    docs = [ids for ids in tok.encode_batch(texts) if len(ids)]
    assert tok.decode(np.concatenate(docs[:3])) == "".join(texts[:3])  # lossless byte-level BPE
    eos = tok.vocab_size
    npy = safe_tmp / "rich.npy"
    np.save(npy, np.concatenate([np.append(d, eos) for d in docs]).astype(np.uint16))
    out = safe_tmp / "rich-idx"
    build_index([npy], out, BuildOptions(tokenizer=str(tok_path), eos_id=eos, progress=False))
    bow = safe_tmp / "rich_bow.txt"
    write_word_start_ids(tok, bow)
    written = {int(line) for line in bow.read_text(encoding="utf-8").split()}

    # the written word starts include the tab ("ĉ") and the em dash, which the old rule missed
    vocab = json.loads(tok_path.read_text(encoding="utf-8"))["model"]["vocab"]
    assert vocab["ĉ"] in written
    assert tok.encode("\t").tolist() == [vocab["ĉ"]]
    assert all(i in written for t, i in vocab.items() if t.startswith(("ĉ", "Ċ", "Ġ")))
    if "âĢĶ" in vocab:  # "—" as one token (E2 80 94 in byte-level stand-ins)
        assert vocab["âĢĶ"] in written
    for t, i in vocab.items():  # tokens whose text starts with a tab/dash/quote/emoji begin words
        if tok.decode([i])[:1] in ("\t", "—", "“", "”", "😀"):
            assert i in written, t
    assert any(tok.decode([i]).startswith("—") for i in written)

    index = Index.open(out)
    ig = ig_engine.InfiniGramEngine(index_dir=str(out), eos_token_id=eos, vocab_size=65535,
                                    token_dtype="u16", bow_ids_path=str(bow))
    delims = delimiter_ids(index, (".", "\n"))
    assert len(delims) == 2
    mask = index.tokenizer.word_start_mask()
    assert set(np.flatnonzero(mask).tolist()) == written
    rng = np.random.default_rng(11)
    compared = skipped = n_spans = 0
    starts_text: list[str] = []
    while compared < 12:
        ids = make_response(docs, tok.vocab_size, rng, int(rng.integers(60, 400)))
        if reference_rank0_affected(index, ids, np.flatnonzero(mask[ids])):
            skipped += 1  # covered by test_reference_rank0_off_by_one
            assert skipped < 50
            continue
        want = ig.attribute(ids.tolist(), delims.tolist(), 1, 1_000_000, True)["spans"]
        got = find_spans(index, ids, delimiters=(".", "\n"), whole_words=False)
        assert [(s.l, s.r, s.count) for s in got] == [(s["l"], s["r"], s["count"]) for s in want], (
            f"response {ids.tolist()}")
        compared += 1
        n_spans += len(got)
        starts_text += [tok.decode(ids[s.l : s.l + 1]) for s in got]
    assert n_spans > 100
    # spans start at the word starts the old rule missed: a tab, a glued em dash, a curly quote
    assert sum(t.startswith("\t") for t in starts_text) >= 10
    assert any(t.startswith("—") for t in starts_text)
    assert any(t.startswith(("“", "”")) for t in starts_text)


def test_reference_rank0_off_by_one(corpus: dict, one_shard: Path) -> None:
    """Known, deliberate divergence: infini-gram never inspects rank 0 as a neighbour.

    Query [t0, x] where t0 starts the smallest suffix and [t0, x] sorts before every suffix:
    the insertion point is 0, the correct longest matching prefix is 1 ([t0] occurs), the
    reference reports 0 (`max((U64)0, start - 1)` underflows, so the neighbour loop is empty).
    """
    index = Index.open(one_shard)
    ig = ig_open(one_shard, corpus)
    shard = index.shards[0]
    t0 = int(shard.ids[shard.sa_tokens(np.array([0]))[0]])
    found = None
    for x in range(corpus["tok"].vocab_size):
        q = np.array([t0, x])
        lo, hi = index.find(q)[0]
        if lo == hi == 0 and index.count(np.array([x])) > 0:
            found = q
            break
    assert found is not None, "the fixed corpus has a query that sorts before rank 0"
    assert index.count(found[:1]) > 0
    assert index.longest_prefixes(found).tolist() == [1, 1]
    spans = ig.attribute(found.tolist(), [], 1, 1_000_000, False)["spans"]
    assert [(s["l"], s["r"]) for s in spans] == [(1, 2)]  # the reference misses the match at l=0


# ---------------------------------------------------------------------------------------------
# u8 (bytes tokenizer)
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bytes_index(corpus: dict) -> Path:
    tmp = corpus["tmp"]
    src = tmp / "bytes.jsonl"
    import json

    with open(src, "w", encoding="utf-8") as fh:
        for t in make_texts(seed=5, n_docs=120):
            fh.write(json.dumps({"text": t}) + "\n")
    out = tmp / "idx-bytes"
    build_index([src], out, BuildOptions(tokenizer="bytes", progress=False))
    return out


def test_u8_count_and_spans_agree_with_infinigram(corpus: dict, bytes_index: Path) -> None:
    index = Index.open(bytes_index)
    assert index.width == 1
    bow = corpus["tmp"] / "bow_bytes.txt"
    write_word_start_ids(index.tokenizer, bow)
    ig = ig_open(bytes_index, dtype="u8", bow=bow)
    docs = [index.document_tokens(0, d) for d in range(index.shards[0].n_docs)]
    rng = np.random.default_rng(4)
    queries = ngrams(docs, 128, rng, 400)
    assert sum(index.count(q) > 0 for q in queries) > 150
    for q in queries:
        assert index.count(q) == ig.count(q.tolist())["count"], q.tolist()
        assert [tuple(s) for s in ig.find(q.tolist())["segment_by_shard"]] == [tuple(s) for s in index.find(q)]
    delims = delimiter_ids(index, (".", "\n"))
    mask = index.tokenizer.word_start_mask()
    compared = 0
    while compared < 8:
        ids = make_response(docs, 128, rng, int(rng.integers(50, 400)))
        if reference_rank0_affected(index, ids, np.flatnonzero(mask[ids])):
            continue
        want = ig.attribute(ids.tolist(), delims.tolist(), 1, 1_000_000, True)["spans"]
        got = find_spans(index, ids, delimiters=(".", "\n"), whole_words=False)
        assert [(s.l, s.r, s.count) for s in got] == [(s["l"], s["r"], s["count"]) for s in want]
        compared += 1


def test_u8_suffix_array_byte_identical(bytes_index: Path, safe_tmp: Path) -> None:
    ig_dir = safe_tmp / "ig-bytes"
    infinigram_build(bytes_index, ig_dir, "u8")
    assert (ig_dir / "table.0").read_bytes() == (bytes_index / "table.0").read_bytes()
    adopt_index(ig_dir, "bytes", "u8")
    adopted = Index.open(ig_dir)
    ig = ig_open(ig_dir, dtype="u8")
    for text in ["the", "e.", "a b", "zzzq", "\n"]:
        q = adopted.encode(text)
        assert adopted.count(q) == ig.count(q.tolist())["count"]
