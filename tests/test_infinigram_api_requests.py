"""Requests per trace against an infini-gram API server, on a word-level corpus (every token a
whole word or a word's continuation, as the benchmark corpus of `benchmarks/_common.py`): the
span finder's whole-word checks must be answered from the token tables and a few answers per
candidate, not one `find` per distinct following token nor one document per occurrence (a
500-token reply once took ~12,000 requests, ~24 a token, against a 10M-token index). The spans
must stay exactly those of the local index, with and without a local tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn")

from index_tools.builder import BuildOptions, build_index  # noqa: E402
from index_tools.engine import Index  # noqa: E402
from index_tools.infinigram_api import InfiniGramAPIIndex  # noqa: E402
from tracetui.tracing.pipeline import Tracer  # noqa: E402

from .conftest import write_jsonl  # noqa: E402
from .test_serve import AppServer as Server  # noqa: E402

VOCAB = 2000


def _names() -> list[str]:
    rng = np.random.default_rng(7)
    cont = rng.random(VOCAB) < 0.3
    return ["[UNK]", "."] + [f"x{i}" if cont[i] else f"Ġw{i}" for i in range(2, VOCAB)]


@pytest.fixture(scope="module")
def word_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    d = tmp_path_factory.mktemp("wordlevel")
    names = _names()
    tok = Tokenizer(models.WordLevel(vocab={s: i for i, s in enumerate(names)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.ByteLevel()
    tok.save(str(d / "tok.json"))
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, VOCAB - 1) ** 1.0
    ids = rng.choice(np.arange(1, VOCAB), size=150_000, p=np.concatenate([[0.05], 0.95 * p / p.sum()]))
    texts = [" ".join(names[i] for i in ids[a : a + 500]) for a in range(0, len(ids), 500)]
    build_index([write_jsonl(d / "c.jsonl", texts)], d / "corp",
                BuildOptions(tokenizer=str(d / "tok.json"), shards=2, progress=False))
    return d / "corp"


@pytest.fixture(scope="module")
def api_url(word_index: Path) -> Iterator[str]:
    s = Server([word_index], infinigram_api_only=True)
    yield s.url
    s.stop()


def _reply(local: Index, n: int, seed: int) -> str:
    """Corpus passages (long matches) with random tokens between them, n tokens, as text."""
    rng = np.random.default_rng(seed)
    out: list[int] = []
    while len(out) < n:
        doc = local.document_tokens(int(rng.integers(2)), int(rng.integers(100)))
        a = int(rng.integers(0, len(doc) - 40))
        out += doc[a : a + int(rng.integers(5, 40))].tolist() + rng.integers(2, VOCAB, 2).tolist()
    names = _names()
    return " ".join(names[i] for i in out[:n])


@pytest.mark.parametrize("with_tokenizer", [True, False])
def test_requests_per_trace_are_bounded(api_url: str, word_index: Path, with_tokenizer: bool,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    local = Index.open(word_index)
    monkeypatch.delenv("TRACETUI_TOKENIZER", raising=False)
    api = InfiniGramAPIIndex.open(f"{api_url}/corp", tokenizer=word_index.parent / "tok.json" if with_tokenizer else None)
    for seed in (1, 2):
        reply = _reply(local, 500, seed)
        assert len(local.encode(reply)) == 500
        n0, f0 = api.requests, api.client.by_type.get("find", 0)
        got = Tracer([api]).trace(reply)
        n, finds = api.requests - n0, api.client.by_type.get("find", 0) - f0
        want = Tracer([local]).trace(reply)
        assert [(s.start, s.end, s.count) for s in got.spans] == [(s.start, s.end, s.count) for s in want.spans]
        assert want.spans and not api.approximate
        print(f"tokenizer={with_tokenizer} seed={seed}: {n} requests, {finds} find, {dict(api.client.by_type)}")
        assert n <= 4 * 500 and finds <= 500  # was ~24 requests a token, ~22 of them find
        api.client.by_type.clear()
