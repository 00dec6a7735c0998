"""Headless CLI: JSON schemas, text outputs, and hostile corpus text coming out inert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracetui.cli import main

from .conftest import write_jsonl

HOSTILE = "evil \x1b[2J\x1b]52;c;QUJD\x07 [bold]markup[/bold] \u202ereversed\u202c \x9b31m c1 The quick brown fox jumps."


@pytest.fixture(scope="module")
def hostile_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    src = write_jsonl(d / "c.jsonl", [HOSTILE, "A calm document about the quick brown fox jumps."])
    assert main(["index", "build", str(src), "-o", str(d / "ix"), "--tokenizer", "bytes", "-q"]) == 0
    return d / "ix"


def _no_escapes(s: str) -> None:
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in s, repr(bad)


def test_count_search_info_json(hostile_index: Path, capsys) -> None:
    assert main(["count", "--index", str(hostile_index), "quick brown fox", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["results"][0]["count"] == 2
    assert main(["search", "--index", str(hostile_index), "quick brown", "--json", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    _no_escapes(out)
    data = json.loads(out)
    assert len(data["documents"]) == 2
    for d in data["documents"]:
        s, e = d["match"]
        assert d["snippet"][s:e] == "quick brown"
    assert main(["index", "info", str(hostile_index), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["documents"] == 2 and info["token_width"] == "u8"


def test_trace_json_schema_and_plain_output_are_inert(hostile_index: Path, capsys, tmp_path: Path) -> None:
    response = tmp_path / "reply.txt"
    response.write_text("I heard that the quick brown fox jumps. [bold]markup[/bold] \x1b[2J done.", encoding="utf-8")
    assert main(["trace", "--index", str(hostile_index), "--prompt", "fox", str(response), "--json"]) == 0
    out = capsys.readouterr().out
    _no_escapes(out)
    data = json.loads(out)
    assert data["schema"] == "tracetui.trace/1"
    assert {"spans", "documents", "timings_ms", "params", "highlights"} <= set(data)
    span = data["spans"][0]
    assert {"start", "end", "text", "token_start", "token_end", "count", "unigram_logprob", "level", "index", "documents"} <= set(span)
    doc = data["documents"][0]
    assert {"id", "index", "shard", "metadata", "source", "score", "level", "hits"} <= set(doc)
    assert {"snippet", "snippet_match", "window", "window_match", "window_spans"} <= set(doc["hits"][0])
    assert data["params"]["max_cnt"] == 1_000_000 and data["params"]["seed"] == 42
    # plain text: hostile document snippets come out with their control characters neutralised
    assert main(["trace", "--index", str(hostile_index), str(response)]) == 0
    plain = capsys.readouterr().out
    _no_escapes(plain)
    assert "quick brown fox" in plain


def test_search_plain_is_inert(hostile_index: Path, capsys) -> None:
    assert main(["search", "--index", str(hostile_index), "evil"]) == 0
    out = capsys.readouterr().out
    _no_escapes(out)
    assert "[bold]markup[/bold]" in out
