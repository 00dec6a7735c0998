"""Resources (issue 18): an index closes (context manager), holds no file descriptor for the
files it maps (a 200-shard index would otherwise pass Linux's default limit of 1024), and
opening, querying and closing a many-shard index again and again keeps the number of open file
descriptors stable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from index_tools.errors import IndexToolsError
from index_tools.opening import IndexSet

FD_DIR = Path("/proc/self/fd")


def _fds() -> int:
    return len(os.listdir(FD_DIR))


@pytest.mark.skipif(not FD_DIR.exists(), reason="counting descriptors needs /proc (Linux)")
def test_many_shard_index_opened_and_closed_keeps_descriptors_stable(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text("".join(json.dumps({"text": f"doc {i}: the cat sat on the mat", "n": i}) + "\n"
                           for i in range(600)), encoding="utf-8")
    build_index([src], tmp_path / "ix", BuildOptions(tokenizer="bytes", progress=False, shards=8))
    before = _fds()
    with Index.open(tmp_path / "ix") as ix:
        assert len(ix.shards) == 8 and all(s.metadata is not None for s in ix.shards)  # 5 maps a shard
        want = ix.count_words(ix.encode("cat"))
        assert ix.document_text(599).startswith("doc 599:")
        assert _fds() == before  # 40 files mapped, not one descriptor held for them
    after_one = _fds()
    assert want == 600
    for query in (lambda: ix.count(ix.encode("cat")), lambda: ix.count_words(ix.encode("cat")),
                  lambda: ix.document_text(0)):  # closed: an error, never an empty answer
        with pytest.raises(IndexToolsError, match="index ix is closed"):
            query()
    kept = []  # closed indexes still referenced: their maps must be released by close() itself
    for _ in range(30):
        with Index.open(tmp_path / "ix") as ix:
            assert ix.count_words(ix.encode("cat")) == want
            assert ix.document_text(599).startswith("doc 599:")
        with IndexSet.open([tmp_path / "ix", tmp_path / "ix"]) as both:
            assert [i.count(i.encode(" sat")) for i in both] == [600, 600]
        kept += [ix, both]
    assert _fds() <= after_one  # none kept open
