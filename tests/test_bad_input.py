"""Bad input: one-line error naming the file (and line), non-zero exit, no valid-looking index."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from index_tools.format import MANIFEST_NAME
from tracetui.cli import main

from .conftest import SAMPLE_TEXTS, write_jsonl


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith(("tokenize", "sort"))]
    assert len(lines) == 1, err
    assert lines[0].startswith("tracetui: error:")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def build(capsys, tmp: Path, src: Path, *extra: str) -> tuple[int, str, Path]:
    out = tmp / "index"
    code, _, err = run(capsys, "index", "build", str(src), "--output", str(out), "--tokenizer", "bytes", "-q", *extra)
    return code, err, out


def test_empty_corpus(tmp_path, capsys) -> None:
    src = tmp_path / "empty.jsonl"
    src.write_text("")
    code, err, out = build(capsys, tmp_path, src)
    assert_one_line_error(code, err, "empty.jsonl", "empty")
    assert not (out / MANIFEST_NAME).exists()


def test_record_without_text_field(tmp_path, capsys) -> None:
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"body": "no text"}) + "\n")
    code, err, out = build(capsys, tmp_path, src)
    assert_one_line_error(code, err, "c.jsonl:2", "'text'")
    assert not (out / MANIFEST_NAME).exists()


def test_invalid_json_on_line_n(tmp_path, capsys) -> None:
    src = tmp_path / "c.jsonl.gz"
    with gzip.open(src, "wt") as fh:
        fh.write(json.dumps({"text": "a"}) + "\n" + json.dumps({"text": "b"}) + "\n{not json\n")
    code, err, out = build(capsys, tmp_path, src)
    assert_one_line_error(code, err, "c.jsonl.gz:3", "invalid JSON")
    assert not (out / MANIFEST_NAME).exists()


def test_non_utf8_bytes(tmp_path, capsys) -> None:
    src = tmp_path / "c.jsonl"
    src.write_bytes(b'{"text": "ok"}\n{"text": "bad \xff\xfe here"}\n')
    code, err, out = build(capsys, tmp_path, src)
    assert_one_line_error(code, err, "c.jsonl:2", "UTF-8")
    txt = tmp_path / "doc.txt"
    txt.write_bytes(b"line one\nline \xc3\x28 two\n")
    code, err, out = build(capsys, tmp_path / "t", txt)
    assert_one_line_error(code, err, "doc.txt:2", "UTF-8")
    assert not (out / MANIFEST_NAME).exists()


def test_tokenizer_vocab_does_not_fit_width(tmp_path, capsys, bpe_tokenizer) -> None:
    src = write_jsonl(tmp_path / "c.jsonl", SAMPLE_TEXTS)
    out = tmp_path / "index"
    code, _, err = run(capsys, "index", "build", str(src), "-o", str(out), "--tokenizer", str(bpe_tokenizer),
                       "--token-width", "u8", "-q")
    assert_one_line_error(code, err, "tokenizer.json", "does not fit")
    assert not (out / MANIFEST_NAME).exists()


@pytest.fixture
def good_index(tmp_path, capsys) -> Path:
    src = write_jsonl(tmp_path / "c.jsonl", SAMPLE_TEXTS)
    code, err, out = build(capsys, tmp_path, src)
    assert code == 0, err
    return out


def test_truncated_table(good_index, capsys) -> None:
    table = good_index / "table.0"
    data = table.read_bytes()
    table.write_bytes(data[: len(data) - 3])
    for argv in (("count", "--index", str(good_index), "fox"), ("index", "verify", str(good_index))):
        code, _, err = run(capsys, *argv)
        assert code != 0
        assert "table.0" in err and "Traceback" not in err


def test_missing_offset(good_index, capsys) -> None:
    (good_index / "offset.0").unlink()
    code, _, err = run(capsys, "count", "--index", str(good_index), "fox")
    assert_one_line_error(code, err, "offset.0", "missing")
    code, _, err = run(capsys, "index", "verify", str(good_index))
    assert code != 0 and "offset.0" in err


def test_directory_without_manifest_is_not_an_index(good_index, capsys) -> None:
    (good_index / MANIFEST_NAME).unlink()
    code, _, err = run(capsys, "search", "--index", str(good_index), "fox")
    assert_one_line_error(code, err, "no valid manifest")


def test_verify_catches_shuffled_suffix_array(good_index, capsys) -> None:
    import numpy as np

    table = good_index / "table.0"
    raw = np.fromfile(table, dtype=np.uint8)
    info = json.loads((good_index / MANIFEST_NAME).read_text())
    pw = info["shards"][0]["pointer_width"]
    rows = raw.reshape(-1, pw).copy()
    rows[[10, 11]] = rows[[11, 10]]
    rows.tofile(table)
    code, _, err = run(capsys, "index", "verify", str(good_index), "--full")
    assert code != 0 and "out of order" in err


def test_interrupted_build_leaves_no_index_and_rerun_resumes(tmp_path, capsys, monkeypatch) -> None:
    import index_tools.builder as builder

    src = write_jsonl(tmp_path / "c.jsonl", SAMPLE_TEXTS * 50)
    out = tmp_path / "index"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(builder, "sort_shard", boom)
    code, _, err = run(capsys, "index", "build", str(src), "-o", str(out), "--tokenizer", "bytes", "-q", "--shards", "2")
    assert code == 130 and "interrupted" in err
    assert not (out / MANIFEST_NAME).exists()
    assert (out / "tokenized.0").exists()  # the tokenize phase finished and is kept
    monkeypatch.undo()
    code, _, err = run(capsys, "index", "build", str(src), "-o", str(out), "--tokenizer", "bytes", "-q", "--shards", "2")
    assert code == 0, err
    code, _, _ = run(capsys, "index", "verify", str(out))
    assert code == 0
    clean = tmp_path / "clean"
    run(capsys, "index", "build", str(src), "-o", str(clean), "--tokenizer", "bytes", "-q", "--shards", "2")
    for name in ("tokenized.0", "tokenized.1", "table.0", "table.1", "offset.1", "metadata.1"):
        assert (out / name).read_bytes() == (clean / name).read_bytes()


def test_rebuild_refuses_to_clobber_other_index(good_index, tmp_path, capsys) -> None:
    other = write_jsonl(tmp_path / "other.jsonl", ["something else entirely"])
    code, _, err = run(capsys, "index", "build", str(other), "-o", str(good_index), "--tokenizer", "bytes", "-q")
    assert_one_line_error(code, err, "--force")
    shutil.rmtree(good_index)


def test_shard_plan_fits_memory_and_uses_workers(tmp_path) -> None:
    from index_tools.builder import BuildOptions, planned_shards

    def sized(name: str, mib: int) -> Path:
        p = tmp_path / name
        with open(p, "wb") as fh:
            fh.truncate(mib << 20)  # sparse: only the size matters to the plan
        return p

    big = [sized("a.jsonl", 40), sized("b.jsonl", 60)]
    assert planned_shards(big, BuildOptions(workers=1), capacity=30 << 20) == 4  # ceil(100 / 30)
    assert planned_shards(big, BuildOptions(workers=2), capacity=1 << 30) == 2  # one shard per worker
    assert planned_shards(big, BuildOptions(workers=1), capacity=1 << 30) is None  # fits: one shard
    assert planned_shards(big, BuildOptions(shards=3), capacity=1 << 20) == 3  # explicit wins
    small = [sized("c.jsonl", 1)]
    assert planned_shards(small, BuildOptions(workers=2), capacity=1 << 30) is None  # too small to split
    packed = big + [sized("d.jsonl.gz", 1)]
    assert planned_shards(packed, BuildOptions(workers=2), capacity=30 << 20) is None  # no size bound
