"""Shared fixtures: small real indexes built with the real builder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from index_tools.tokenizer import train_bpe

SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A stitch in time saves nine. The early bird catches the worm.",
    "def add(a, b):\n    return a + b\n",
    "To be, or not to be, that is the question.\nWhether 'tis nobler in the mind to suffer",
    "The quick brown fox is quick. The lazy dog sleeps all day long.",
    "import numpy as np\nx = np.arange(10)\nprint(x.sum())\n",
]


@pytest.fixture(scope="session")
def bpe_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny byte-level BPE (vocab ~400, u16 tokens) trained on sample text."""
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    corpus = SAMPLE_TEXTS * 20 + ["abc def ghi jkl mno pqr stu vwx yz 0123456789 .,;:!?\n"] * 5
    train_bpe(iter(corpus), path, vocab_size=400)
    return path


def write_jsonl(path: Path, texts: list[str], extra: bool = True) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i, t in enumerate(texts):
            rec = {"text": t, "id": i, "url": f"https://example.org/{i}"} if extra else {"text": t}
            fh.write(json.dumps(rec) + "\n")
    return path


def build_token_index(tmp: Path, docs: list[np.ndarray], tokenizer: str, width: str | None, shards: int | None,
                      eos: int = 0) -> Path:
    """Index of pre-tokenized docs: written as one .npy with `eos` between documents."""
    parts: list[np.ndarray] = []
    for d in docs:
        parts.append(np.asarray(d, dtype=np.int64))
        parts.append(np.array([eos], dtype=np.int64))
    arr = np.concatenate(parts).astype(np.uint32)
    src = tmp / "docs.npy"
    np.save(src, arr)
    out = tmp / "index"
    build_index([src], out, BuildOptions(tokenizer=tokenizer, eos_id=eos, shards=shards, token_width=width,
                                         progress=False, force=True))
    return out


@pytest.fixture(scope="session")
def text_index(tmp_path_factory: pytest.TempPathFactory, bpe_tokenizer: Path) -> Path:
    d = tmp_path_factory.mktemp("textidx")
    src = write_jsonl(d / "corpus.jsonl", SAMPLE_TEXTS)
    out = d / "index"
    build_index([src], out, BuildOptions(tokenizer=str(bpe_tokenizer), progress=False))
    return out


def build_texts_index(tmp: Path, texts: list[str], tokenizer: str) -> Index:
    """An index of `texts` (one document each) under `tmp/ix`, rebuilt if it exists."""
    tmp.mkdir(parents=True, exist_ok=True)
    src = tmp / "c.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    build_index([src], tmp / "ix", BuildOptions(tokenizer=tokenizer, progress=False, force=True))
    return Index.open(tmp / "ix")
