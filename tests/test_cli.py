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


# -- every door gives the same answer: options before the subcommand ----------------------------
@pytest.fixture()
def no_default_index(monkeypatch: pytest.MonkeyPatch, hostile_index: Path) -> None:
    """The built-in index replaced by `hostile_index` (named "ix"): an answer from it is the
    default index answering instead of the one asked for."""
    import tracetui.defaults

    monkeypatch.setattr(tracetui.defaults, "default_index_dir", lambda **_: hostile_index)


def _names(command: str, out: dict) -> list[str]:  # type: ignore[type-arg]
    if command == "search":
        return [r["index"] for r in out["counts"]]
    if command == "trace":
        return list(out["indexes"])
    return [r["index"] for r in out["results"]]


@pytest.mark.parametrize("command", ["count", "search", "ntd", "infgram", "trace"])
def test_index_before_the_subcommand_is_the_one_queried(command: str, text_index: Path, no_default_index: None,
                                                        capsys, tmp_path: Path) -> None:
    text = "The quick brown fox"
    args = [text] if command in ("count", "search", "ntd") else [str(tmp_path / "t.txt")]
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    assert main(["--index", str(text_index), command, *args, "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert _names(command, before) == ["index"]  # text_index, not the default ("ix")
    assert main([command, "--index", str(text_index), *args, "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    if command == "trace":
        before.pop("timings_ms"), after.pop("timings_ms")
    assert before == after


def test_index_before_and_after_the_subcommand_are_merged(text_index: Path, hostile_index: Path,
                                                          no_default_index: None, capsys) -> None:
    assert main(["--index", str(text_index), "count", "--index", str(hostile_index), "quick", "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in both["results"]] == ["index", "ix"]
    assert main(["count", "--index", str(text_index), "--index", str(hostile_index), "quick", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == both


def test_serve_takes_the_index_given_before_it(text_index: Path, hostile_index: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import tracetui.serve

    got: list[list[str]] = []
    monkeypatch.setattr(tracetui.serve, "serve", lambda indexes, **_: got.append(list(indexes)))
    assert main(["--index", str(text_index), "serve", "--index", str(hostile_index), "--port", "1"]) == 0
    assert got == [[str(text_index), str(hostile_index)]]


@pytest.mark.parametrize("argv", [
    ["--model", "m.gguf", "count", "quick"],
    ["--config", "c.toml", "count", "quick", "--index", "IX"],
    ["--index", "IX", "index", "info", "IX"],
])
def test_a_global_option_a_subcommand_would_ignore_is_refused_in_one_line(argv: list[str], hostile_index: Path,
                                                                          no_default_index: None, capsys) -> None:
    """Each of these runs (and answers without the option) on a main that ignores it."""
    assert main([str(hostile_index) if a == "IX" else a for a in argv]) != 0
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("tracetui: error: ")
    assert argv[0] in err
