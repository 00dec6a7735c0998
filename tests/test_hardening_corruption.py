"""Corrupted index files: every corruption is caught when the index opens, or by `verify`, or
provably changes nothing.

Two small good indexes (bytes tokenizer, u8; trained BPE, u16; two shards each). For every file
kind -- tokenized, table, offset, metadata, metaoff, unigram (shard 0 or 1), the manifest
tracetui-index.json and tokenizer.json (BPE only) -- these corruptions of a fresh copy:

    t-1 / t-0    truncated by one byte / to nothing
    e+3 / e+8    3 / 8 random bytes appended (8 keeps every alignment)
    f0..f7       1..8 random bytes XORed with a random non-zero value (seeds 0-7)
    c0..c3       1..4 ASCII letters/digits replaced by another letter/digit (plausible text edits)
    same         the same file from an index of the same documents in another order
                 (same sizes, other contents)
    other        the same file from an index of another corpus (and another tokenizer)

For each one: `tracetui index verify DIR` must exit non-zero with a FAULT line naming the damaged
file (the manifest for manifest damage), and `tracetui count/search/trace --index DIR` must either
exit non-zero with exactly one "tracetui: error:" line or succeed -- never a traceback. A
corruption `verify` does not report is accepted only if it leaves every result unchanged
(counts, search results with metadata, document texts, unigram counts, total tokens,
tokenization): "H" below; none occurred. `test_harmless_manifest_edit_is_not_a_fault` shows
the one known harmless kind: build information in the manifest (source paths, fingerprint).

Where each corruption was caught (both indexes gave the same rows; printed by
`test_corruption_matrix` with pytest -s). O = at open (Index.open raises, every command fails with
one line; one stat per file against sizes recorded in the manifest); V = opens, `verify` reports
it with a specific check; D = opens, only verify's SHA-256 comparison (digests recorded in the
manifest at build time) reports it; - = swapped file is byte-identical (no corruption):

    index file            t-1 t-0 e+3 e+8  f0 f1 f2 f3 f4 f5 f6 f7  c0 c1 c2 c3 same other
    tokenized              O   O   O   O   V  V  V  V  V  V  V  V   V  V  V  V   V    O
    table                  O   O   O   O   V  V  V  V  V  V  V  V   V  V  V  V   V    O
    offset                 O   O   O   O   V  V  O  V  V  V  O  O   V  V  V  V   V    O
    metadata               O   O   O   O   V  V  V  V  V  V  V  V   D  D  D  D   V    O
    metaoff                O   O   O   O   V  V  V  V  V  V  V  V   V  V  V  V   V    O
    unigram                O   O   O   O   V  V  V  V  V  V  V  V   V  V  V  V   -    O
    tracetui-index.json    O   O   O   O   D  O  O  O  O  O  O  O   D  O  O  O   D    O
    tokenizer.json (BPE)   O   O   O   O   O  O  O  O  O  O  O  O   D  O  O  O   -    O

267 corruptions (+3 no-op swaps): 112 caught at open, 155 only by verify (15 of those only by
the digests: metadata text edits that keep valid JSON, manifest digest characters, a manifest of
the same documents in another order, a tokenizer edit that still loads). Offsets flipped
beyond the token file fail at open, the others point away from a separator (verify). Manifest
byte flips mostly break its JSON/UTF-8 (open); a changed size fails at open.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from index_tools.builder import BuildOptions, build_index
from index_tools.engine import Index
from index_tools.errors import IndexToolsError
from index_tools.format import MANIFEST_NAME, SHARD_KINDS, TOKENIZER_NAME
from index_tools.tokenizer import train_bpe
from tracetui.cli import main
from tracetui.tracing.search import search_documents

from .conftest import SAMPLE_TEXTS

QUERIES = ["the", "quick brown", "The quick brown fox", "e", " ", "np.", "zzqx", "return a + b", "\n"]
FLIP_SEEDS = 8
CHAR_SEEDS = 4
CORRUPTIONS = (["truncate-1", "truncate-0", "extend-3", "extend-8"] + [f"flip-s{k}" for k in range(FLIP_SEEDS)]
               + [f"char-s{k}" for k in range(CHAR_SEEDS)] + ["swap-same", "swap-other"])


def _texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    words = ["quick", "brown", "fox", "lazy", "dog", "stitch", "time", "nine", "bird", "worm", "numpy",
             "array", "question", "nobler", "mind", "suffer", "day", "long", "sleeps", "jumps"]
    out = list(SAMPLE_TEXTS)
    while len(out) < n:
        out.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 40))).capitalize() + ".")
    return out


def _write(path: Path, texts: list[str], ids: list[int]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i, t in zip(ids, texts, strict=True):
            fh.write(json.dumps({"text": t, "id": i, "url": f"https://example.org/{i:03d}"}) + "\n")
    return path


def _build(src: Path, out: Path, tokenizer: str) -> Path:
    build_index([src], out, BuildOptions(tokenizer=tokenizer, shards=2, progress=False))
    return out


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory, bpe_tokenizer: Path) -> dict[str, dict[str, Path]]:
    """Per tokenizer: the good index A, B (same documents, other order within each shard), C (other corpus)."""
    tmp = tmp_path_factory.mktemp("corrupt")
    texts = _texts(1, 40)
    ids = list(range(len(texts)))
    # swap documents i and i+2 in blocks of 4: round-robin sharding keeps them in the same shard
    perm = [j for b in range(0, len(texts), 4) for j in (b + 2, b + 3, b, b + 1)]
    src_a = _write(tmp / "a.jsonl", texts, ids)
    src_b = _write(tmp / "b.jsonl", [texts[j] for j in perm], [ids[j] for j in perm])
    other = [t.upper() + " extra words here" for t in _texts(2, 30)]
    src_c = _write(tmp / "c.jsonl", other, list(range(len(other))))
    other_tok = tmp / "other-tokenizer.json"
    train_bpe(iter(other * 10), other_tok, vocab_size=300)
    out: dict[str, dict[str, Path]] = {}
    for name, tok, tok_c in (("bytes", "bytes", "bytes"), ("bpe", str(bpe_tokenizer), str(other_tok))):
        out[name] = {
            "A": _build(src_a, tmp / f"{name}-A", tok),
            "B": _build(src_b, tmp / f"{name}-B", tok),
            "C": _build(src_c, tmp / f"{name}-C", tok_c),
        }
    return out


def _corrupt(path: Path, how: str, donors: dict[str, Path]) -> None:
    data = path.read_bytes()
    seed = int(how.split("-s")[1]) if how.startswith(("flip", "char")) else 99
    rng = np.random.default_rng(seed + 1000 * len(path.name))
    if how == "truncate-1":
        path.write_bytes(data[:-1])
    elif how == "truncate-0":
        path.write_bytes(b"")
    elif how.startswith("extend"):
        k = int(how.split("-")[1])
        path.write_bytes(data + rng.integers(0, 256, size=k, dtype=np.uint8).tobytes())
    elif how.startswith("flip"):
        buf = bytearray(data)
        for pos in rng.choice(len(buf), size=min(len(buf), seed + 1), replace=False):
            buf[int(pos)] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(buf))
    elif how.startswith("char"):
        # plausible edits of text files: a digit becomes another digit, a letter another letter
        buf = bytearray(data)
        candidates = [i for i, b in enumerate(buf) if chr(b).isalnum() and b < 128] or list(range(len(buf)))
        for pos in rng.choice(len(candidates), size=min(len(candidates), seed + 1), replace=False):
            i = candidates[int(pos)]
            pool = b"0123456789" if chr(buf[i]).isdigit() else b"abcdefghijklmnopqrstuvwxyz"
            buf[i] = int(rng.choice([c for c in pool if c != buf[i]]))
        path.write_bytes(bytes(buf))
    elif how == "swap-same":
        shutil.copyfile(donors["B"] / path.name, path)
    elif how == "swap-other":
        shutil.copyfile(donors["C"] / path.name, path)
    else:
        raise AssertionError(how)


def _signature(directory: Path) -> Any:
    """Everything a user can get out of an index (small ones only)."""
    index = Index.open(directory)
    index.name = "ix"  # the directory name is not a result
    docs = int(index._doc_base[-1])
    return {
        "counts": [index.count(index.encode(q)) for q in QUERIES],
        "search": [search_documents([index], q, limit=100, context=10) for q in QUERIES[:4]],
        "texts": [index.document_text(g) for g in range(docs)],
        "metadata": [index.metadata(*index.locate_doc(g)) for g in range(docs)],
        "unigram": index.unigram_counts().tolist(),
        "tokens": index.total_tokens,
        "encode": index.encode("The quick brown fox: numpy! ünïcödé").tolist(),
    }


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except BaseException as exc:  # noqa: BLE001 - anything escaping main() is a traceback for the user
        out, err = capsys.readouterr()
        raise AssertionError(f"tracetui {' '.join(argv)} raised {type(exc).__name__}: {exc}") from exc
    out, err = capsys.readouterr()
    return code, out, err


def _assert_clean(code: int, err: str, what: str) -> None:
    assert "Traceback" not in err, (what, err)
    if code != 0:
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith("tracetui: error:"), (what, err)


def _cases(kind: str) -> list[tuple[str, str]]:
    files = [f"{k}.{i % 2}" for i, k in enumerate(SHARD_KINDS)] + [MANIFEST_NAME]
    if kind == "bpe":
        files.append(TOKENIZER_NAME)
    return [(f, how) for f in files for how in CORRUPTIONS]


def test_corruption_matrix(indexes: dict[str, dict[str, Path]], tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    outcome: dict[tuple[str, str, str], str] = {}
    reply = tmp_path / "reply.txt"
    reply.write_text("I read that the quick brown fox jumps over the lazy dog. import numpy as np", encoding="utf-8")
    failures: list[str] = []
    details: list[str] = []
    n = 0
    for kind, donors in indexes.items():
        pristine = _signature(donors["A"])
        for fname, how in _cases(kind):
            work = tmp_path / f"{kind}-{n}"
            n += 1
            shutil.copytree(donors["A"], work)
            before = (work / fname).read_bytes()
            _corrupt(work / fname, how, donors)
            if (work / fname).read_bytes() == before:
                outcome[(kind, fname, how)] = "-"
                shutil.rmtree(work)
                continue
            what = f"{kind} {fname} {how}"
            vcode, _, verr = _run(capsys, "index", "verify", str(work))
            faults = [l for l in verr.splitlines() if l.startswith("FAULT ")]
            for argv in (("count", "--index", str(work), "quick brown"),
                         ("search", "--index", str(work), "the", "--limit", "50"),
                         ("trace", "--index", str(work), str(reply))):
                code, _, err = _run(capsys, *argv)
                _assert_clean(code, err, f"{what}: {argv[0]}")
            try:
                Index.open(work)
                opened = True
            except IndexToolsError:
                opened = False
            if not opened:
                state = "O"
                code, _, err = _run(capsys, "count", "--index", str(work), "fox")
                assert code != 0, what
            elif vcode != 0:
                semantic = [f for f in faults if "content differs from the SHA-256" not in f]
                state = "V" if semantic else "D"
            else:
                try:
                    same = _signature(work) == pristine
                except Exception as exc:  # noqa: BLE001
                    same, exc_text = False, f"{type(exc).__name__}: {exc}"
                else:
                    exc_text = "results differ"
                state = "H"
                if not same:
                    failures.append(f"{what}: slipped through open and verify ({exc_text})")
            if state in "OVD":
                assert vcode != 0 and faults, what
                named = fname if fname != TOKENIZER_NAME else "tokenizer"
                assert any(named in f for f in faults), (what, faults)
            if fname in (MANIFEST_NAME, TOKENIZER_NAME) and how.startswith(("flip", "char")):
                first = faults[0].split(str(work))[-1] if faults else "(no fault: results unchanged)"
                details.append(f"  {kind} {fname} {how}: {state} {first[:110]}")
            outcome[(kind, fname, how)] = state
            shutil.rmtree(work)
    _print_table(outcome, details)
    assert not failures, "\n".join(failures)
    tried = sum(1 for v in outcome.values() if v != "-")
    assert tried >= 140, tried
    # open-time detection of every size change (truncate / extend) of every file kind
    for (kind, fname, how), state in outcome.items():
        if how.startswith(("truncate", "extend")):
            assert state == "O", (kind, fname, how, state)


def _print_table(outcome: dict[tuple[str, str, str], str], details: list[str]) -> None:
    rows: dict[str, list[str]] = defaultdict(list)
    totals: dict[str, int] = defaultdict(int)
    for (kind, fname, _how), state in outcome.items():
        rows[f"{kind:5} {fname.split('.')[0] if fname[-1].isdigit() else fname}"].append(state)
        totals[state] += 1
    print(f"\ncorruptions: {sum(v for k, v in totals.items() if k != '-')} tried (+{totals['-']} no-op swaps); "
          f"caught at open: {totals['O']}, only by verify: {totals['V'] + totals['D']} "
          f"({totals['D']} of them only by the SHA-256 check), harmless: {totals['H']}")
    short = [c.replace("truncate-", "t-").replace("extend-", "e+").replace("flip-s", "f").replace("char-s", "c")
             .replace("swap-", "") for c in CORRUPTIONS]
    print(f"{'index file':25} " + " ".join(f"{c:>4}" for c in short))
    for name, states in rows.items():
        print(f"{name:25} " + " ".join(f"{s:>4}" for s in states))
    print("flips of the manifest and the tokenizer (first fault):")
    for detail in details:
        print(detail)


def test_harmless_manifest_edit_is_not_a_fault(indexes: dict[str, dict[str, Path]], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Build information (sources, fingerprint) changes no result: not reported, results identical."""
    work = tmp_path / "ix"
    shutil.copytree(indexes["bpe"]["A"], work)
    m = json.loads((work / MANIFEST_NAME).read_text())
    m["build"]["sources"] = ["/elsewhere/\x1b[31mcorpus.jsonl"]
    m["build"]["fingerprint"] = "0" * 24
    (work / MANIFEST_NAME).write_text(json.dumps(m, indent=2))
    code, out, _ = _run(capsys, "index", "verify", str(work))
    assert code == 0 and "OK" in out
    assert _signature(work) == _signature(indexes["bpe"]["A"])


def test_verify_catches_semantic_faults_without_digests(indexes: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    """Indexes without recorded digests (older manifests, hand-made ones) still get the semantic checks."""
    from index_tools.verify import verify_index

    def strip_digests(d: Path) -> None:
        m = json.loads((d / MANIFEST_NAME).read_text())
        m.pop("files")
        (d / MANIFEST_NAME).write_text(json.dumps(m))

    good = tmp_path / "good"
    shutil.copytree(indexes["bpe"]["A"], good)
    strip_digests(good)
    assert verify_index(good) == []
    cases = {
        # a token id beyond the vocabulary (u16 little-endian 0x7777 = 30583 > ~400)
        "tokenized.0": lambda p: p.write_bytes(p.read_bytes()[:3] + b"\x77\x77" + p.read_bytes()[5:]),
        # a metadata record that is not JSON, same length
        "metadata.1": lambda p: p.write_bytes(b"[" + p.read_bytes()[1:]),
        # a unigram count moved from one token to another: same total
        "unigram.0": lambda p: p.write_text(_move_count(p.read_text())),
    }
    expect = {"tokenized.0": "beyond the tokenizer's vocabulary", "metadata.1": "not valid UTF-8 JSON",
              "unigram.0": "counts differ from the tokens"}
    for name, damage in cases.items():
        work = tmp_path / name
        shutil.copytree(good, work)
        damage(work / name)
        faults = verify_index(work)
        assert any(name in f and expect[name] in f for f in faults), (name, faults)


def _move_count(text: str) -> str:
    rows = [l.split() for l in text.splitlines()]
    rows[0][1] = str(int(rows[0][1]) - 1)
    rows[1][1] = str(int(rows[1][1]) + 1)
    return "".join(f"{a} {b}\n" for a, b in rows)


def test_manifest_records_every_file(indexes: dict[str, dict[str, Path]]) -> None:
    for kind, donors in indexes.items():
        m = json.loads((donors["A"] / MANIFEST_NAME).read_text())
        expected = {f"{k}.{n}" for k in SHARD_KINDS for n in range(2)} | ({TOKENIZER_NAME} if kind == "bpe" else set())
        assert set(m["files"]) == expected
        for name, rec in m["files"].items():
            assert rec["bytes"] == (donors["A"] / name).stat().st_size
            assert len(rec["sha256"]) == 64
