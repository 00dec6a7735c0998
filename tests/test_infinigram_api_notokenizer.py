"""An infini-gram API index without its tokenizer file (issue 19, section 4: "it needs no local
files"): the server tokenizes (`count` of a `query` answers `token_ids` and `tokens`), the
tokens' bytes -- and so the word-boundary rule -- come from the names the server gives them,
documents from its `spans`. The oracle is the same index opened locally, with its own
tokenizer: encodings, spans and counts of traces must be equal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn")

from index_tools.engine import Index  # noqa: E402
from index_tools.infinigram_api import SERVER_TOKENIZER, InfiniGramAPIIndex, ServerVocabulary  # noqa: E402
from tracetui.tracing.pipeline import Tracer  # noqa: E402
from tracetui.tracing.spans import find_spans  # noqa: E402

from .test_infinigram_api import Server, index_dir  # noqa: E402, F401  (the index fixture)
from .test_infinigram_api_index import replies  # noqa: E402


@pytest.fixture(scope="module")
def api_url(index_dir: Path) -> Iterator[str]:  # noqa: F811
    s = Server([index_dir], infinigram_api_only=True)
    yield s.url
    s.stop()


@pytest.fixture
def no_tok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACETUI_TOKENIZER", raising=False)


def test_opens_without_a_tokenizer(api_url: str, index_dir: Path, no_tok: None) -> None:  # noqa: F811
    local = Index.open(index_dir)
    api = InfiniGramAPIIndex.open(f"{api_url}/corp")
    assert isinstance(api.tokenizer, ServerVocabulary) and api.manifest.tokenizer == SERVER_TOKENIZER
    assert api.tokenizer.vocab_size == local.tokenizer.vocab_size  # found by the server's range check
    assert api.width == 2 and api.total_tokens == local.total_tokens
    assert api.tokenizer.family == "byte-level"


def test_server_encoding_equals_the_local_tokenizer(api_url: str, index_dir: Path, no_tok: None) -> None:  # noqa: F811
    local = Index.open(index_dir)
    api = InfiniGramAPIIndex.open(f"{api_url}/corp")
    texts = replies(local, 3, 400, seed=4) + ["qnhibb lzu", " e said", "\nThe zorp.", "x", "a  b\n\n c"]
    for text in texts:
        ids, offs = api.tokenizer.encode_with_offsets(text)
        want, want_offs = local.tokenizer.encode_with_offsets(text)
        assert ids.tolist() == want.tolist(), text
        assert offs.tolist() == want_offs.tolist(), text
        assert api.tokenizer.decode(ids) == local.tokenizer.decode(want)
    assert max(len(t) for t in texts) > 1000  # sent in pieces: the API takes 1000 characters a query


def test_traces_equal_the_local_index(api_url: str, index_dir: Path, no_tok: None) -> None:  # noqa: F811
    local = Index.open(index_dir)
    api = InfiniGramAPIIndex.open(f"{api_url}/corp")
    for reply in replies(local, 3):
        ids = local.encode(reply)
        assert api.encode(reply).tolist() == ids.tolist()
        want = [(s.l, s.r, s.count) for s in find_spans(local, ids)]
        assert [(s.l, s.r, s.count) for s in find_spans(api, ids)] == want and want
        a, b = Tracer([api]).trace(reply), Tracer([local]).trace(reply)
        assert [(s.start, s.end, s.count) for s in a.spans] == [(s.start, s.end, s.count) for s in b.spans]
        for doc in a.documents:  # documents decoded from the API's spans, the match where it is
            for h in doc.hits:
                assert h.snippet[h.snippet_match[0] : h.snippet_match[1]].strip() == a.spans[h.span].text.strip()
    seqs = [local.encode(t) for t in (" qnhibb", " qnhibb lzu", "The", " e chmk")]
    assert api.count_many(seqs).tolist() == local.count_many(seqs).tolist()
    exact = [s.tobytes() not in api.approximate for s in seqs]
    got, want2 = api.count_words_many(seqs).tolist(), local.count_words_many(seqs).tolist()
    assert [g for g, e in zip(got, exact, strict=True) if e] == [w for w, e in zip(want2, exact, strict=True) if e]
    assert any(exact)
    # tokens seen are learnt once: the same trace again asks the server nothing
    before = api.requests
    Tracer([api]).trace(replies(local, 1)[0])
    assert api.requests == before
    assert np.all(api.tokenizer._known[np.unique(ids)])
