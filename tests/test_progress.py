"""The one progress display (index_tools/progress.py), the memory probe, and the Shard methods
that verify uses instead of the shard's privates.

Builds run for real through the CLI in a child process with stderr on a pipe (CI, logs: one
summary line per phase) and on a pseudo-terminal (a live rich display). Expected counts come
from the corpus itself (bytes tokenizer: one token per UTF-8 byte and one separator per
document), never from the code that prints them. Shard methods are checked against the raw
files read back with plain Python.
"""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index_tools.builder import available_memory_bytes
from index_tools.engine import Index
from index_tools.format import shard_file
from index_tools.progress import Progress
from index_tools.verify import verify_index

from .conftest import SAMPLE_TEXTS, build_token_index, write_jsonl

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
REPO = Path(__file__).resolve().parents[1]


def _corpus(tmp: Path) -> tuple[Path, int]:
    texts = SAMPLE_TEXTS * 2
    tokens = sum(len(t.encode("utf-8")) + 1 for t in texts)  # bytes tokenizer: a byte a token, a separator each
    assert tokens < 1000  # printed without k/M rounding, so the exact figure can be looked for
    return write_jsonl(tmp / "c.jsonl", texts), tokens


def _build_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tracetui.cli", "index", "build", str(src), "-o", str(out),
            "--tokenizer", "bytes", "--shards", "2"]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("TERM", None)  # whatever terminal runs the suite: the display is rich's own
    return env


def test_pipe_gets_one_plain_summary_line_per_phase(tmp_path: Path) -> None:
    src, tokens = _corpus(tmp_path)
    proc = subprocess.run(_build_cmd(src, tmp_path / "ix"), capture_output=True, text=True, timeout=120,
                          env=_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr
    assert len(lines) == 2, proc.stderr
    tok, sort = lines
    assert re.fullmatch(rf"tokenize +{tokens} tok +[\d.]+[kMGT]? tok/s +[\d.]+s", tok), tok
    assert re.fullmatch(rf"sort +{tokens}/{tokens} tok +[\d.]+[kMGT]? tok/s +[\d.]+s", sort), sort
    assert proc.stdout.startswith("built ")


def test_quiet_build_prints_no_progress(tmp_path: Path) -> None:
    src, _ = _corpus(tmp_path)
    proc = subprocess.run(_build_cmd(src, tmp_path / "ix") + ["-q"], capture_output=True, text=True, timeout=120,
                          env=_env(), cwd=REPO)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def _run_on_pty(cmd: list[str]) -> tuple[int, str, str]:
    """Run `cmd` with stderr on a pseudo-terminal (stdout on a pipe); everything the terminal got."""
    master, slave = os.openpty()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, env=_env(), cwd=REPO)
    os.close(slave)
    got = bytearray()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                proc.kill()
                pytest.fail("no output from the build on the terminal for 60 s")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal's last descriptor
                break
            if not chunk:
                break
            got += chunk
    finally:
        os.close(master)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=60), out, got.decode("utf-8", "replace")


def test_terminal_gets_a_live_bar_with_counts_rate_and_eta(tmp_path: Path) -> None:
    src, tokens = _corpus(tmp_path)
    code, out, term = _run_on_pty(_build_cmd(src, tmp_path / "ix"))
    assert code == 0, term
    assert out.startswith("built ")  # stdout stays on its pipe, not drawn into the display
    assert "\x1b[" in term  # drawn, not printed as a log line
    assert term.rstrip().endswith("\x1b[?25h")  # the cursor rich hides while drawing is given back
    # the screen states, each redraw a "\r" or "\n" apart, colours removed
    states = [s.strip() for s in re.split(r"[\r\n]", ANSI.sub("", term)) if s.strip()]
    tok = [s for s in states if s.startswith("tokenize")]
    sort = [s for s in states if s.startswith("sort")]
    assert tok and sort, states
    assert all(len(s) <= 80 for s in states)  # the terminal's default width: no line wrapped into two
    # unknown total: the count and the rate, no bar, no share, no ETA
    assert re.fullmatch(rf"tokenize +{tokens} tok +[\d.]+[kMGT]? tok/s +[\d.]+s", tok[-1]), tok[-1]
    assert not any("━" in s or "%" in s or "ETA" in s for s in tok)
    # known total: a full bar, 100 %, done/total, rate, ETA, elapsed
    assert re.fullmatch(rf"sort +━+ +100% {tokens}/{tokens} tok +[\d.]+[kMGT]? tok/s +ETA +00:00 +[\d.]+s",
                        sort[-1]), sort[-1]


def test_summary_lines_in_process() -> None:
    """Off a terminal: nothing while it runs, then the summary; with a second counter its rate."""
    stream = io.StringIO()
    p = Progress("ray build", 3, "shards", stream=stream, also="tok")
    p.update(1, also=400)
    p.update(2, also=500)
    assert stream.getvalue() == ""
    p.close()
    p.close()  # a second close writes nothing more
    (line,) = stream.getvalue().splitlines()
    assert re.fullmatch(r"ray build +3/3 shards +900 tok +[\d.]+[kMGT]? tok/s +[\d.]+s", line), line
    quiet = io.StringIO()
    with Progress("overlap", None, "items", enabled=False, stream=quiet) as q:
        q.update(5)
    assert quiet.getvalue() == ""


def test_progress_does_not_import_rich_off_a_terminal() -> None:
    code = ("import sys, io; from index_tools.progress import Progress\n"
            "import index_tools.engine, index_tools.builder\n"
            "p = Progress('sort', 10, 'tok', stream=io.StringIO()); p.update(10); p.close()\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'psutil')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_env(),
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="the oracle is Linux's /proc/meminfo")
def test_available_memory_is_the_kernels_estimate() -> None:
    with open("/proc/meminfo") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("MemAvailable:"))
    got = available_memory_bytes()
    # other processes allocate meanwhile: the same figure up to a small drift
    assert abs(got - kib * 1024) < max(256 << 20, kib * 1024 // 10), (got, kib * 1024)


# -- Shard methods verify uses ----------------------------------------------------------------
@pytest.fixture(scope="module")
def wide_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """u16 tokens over more than 64 KiB: 3-byte suffix-array entries, the general (not numpy
    view) path of the table; a four-token alphabet makes long common prefixes."""
    rng = np.random.default_rng(7)
    docs = [rng.integers(1, 5, size=int(rng.integers(200, 3000))) for _ in range(24)]
    docs.append(np.tile(np.array([1, 2]), 500))  # a long repeat: comparisons run past a window
    d = tmp_path_factory.mktemp("wide")
    return build_token_index(d, docs, "bytes", "u16", shards=1)


def test_sa_pointers_are_the_table_entries_on_disk(wide_index: Path) -> None:
    with Index.open(wide_index) as index:
        shard = index.shards[0]
        assert shard.ptr_width == 3 and shard.width == 2
        raw = shard_file(wide_index, "table", 0).read_bytes()
        ranks = np.unique(np.random.default_rng(1).integers(0, shard.n_tokens, size=500))
        want = [int.from_bytes(raw[3 * r : 3 * r + 3], "little") for r in ranks.tolist()]
        assert shard.sa_pointers(ranks).tolist() == want
        assert (shard.sa_tokens(ranks) * 2).tolist() == want  # aligned entries: the same positions


def test_compare_suffixes_is_byte_order_of_the_suffixes(wide_index: Path) -> None:
    with Index.open(wide_index) as index:
        shard = index.shards[0]
        n = shard.n_tokens
        data = shard_file(wide_index, "tokenized", 0).read_bytes()  # infini-gram sorts these bytes
        rng = np.random.default_rng(2)
        pos = rng.integers(0, n, size=300)
        other = rng.integers(0, n, size=300)
        ranks = rng.integers(0, n - 1, size=100)
        adj_a, adj_b = shard.sa_tokens(ranks), shard.sa_tokens(ranks + 1)
        last = np.full(20, n - 1)
        pos = np.concatenate([pos, adj_a, adj_b, pos[:20], last])
        other = np.concatenate([other, adj_b, adj_a, pos[:20], rng.integers(0, n, size=20)])

        def oracle(p: int, q: int) -> int:
            a, b = data[2 * p :], data[2 * q :]
            return 0 if a.startswith(b) else (-1 if a < b else 1)

        want = [oracle(p, q) for p, q in zip(pos.tolist(), other.tolist(), strict=True)]
        got = shard.compare_suffixes(pos, other).tolist()
        assert got == want
        assert set(got[300:400]) == {-1} and set(got[400:500]) == {1}  # the table's order, both ways
        assert set(got[500:520]) == {0}  # a suffix against itself


def _table_entries(path: Path, width: int) -> list[int]:
    raw = path.read_bytes()
    return [int.from_bytes(raw[i : i + width], "little") for i in range(0, len(raw), width)]


def _write_entries(path: Path, entries: list[int], width: int) -> None:
    path.write_bytes(b"".join(e.to_bytes(width, "little") for e in entries))


def test_verify_finds_unaligned_and_misordered_entries(wide_index: Path, tmp_path: Path) -> None:
    import shutil

    assert verify_index(wide_index, full=True) == []
    table = shard_file(wide_index, "table", 0)
    entries = _table_entries(table, 3)
    for name, change in (("unaligned", lambda e: e.__setitem__(10, e[10] + 1)),
                         ("swapped", lambda e: e.__setitem__(slice(10, 12), [e[11], e[10]]))):
        copy = tmp_path / name
        shutil.copytree(wide_index, copy)
        broken = list(entries)
        change(broken)
        _write_entries(shard_file(copy, "table", 0), broken, 3)
        faults = verify_index(copy, full=True)
        assert any("table.0" in f for f in faults), faults
        if name == "unaligned":
            assert any("not at token boundaries" in f for f in faults), faults
        else:
            assert any("ranks 10 and 11 are out of order" in f for f in faults), faults


def test_verify_finds_a_suffix_placed_after_its_own_extension(wide_index: Path, tmp_path: Path) -> None:
    """The one-token suffix at the end of the file sorts just before a longer suffix it begins;
    swapped, the longer one comes first: out of order although one is a prefix of the other
    (the comparison must see the shorter one end, not read on)."""
    import shutil

    with Index.open(wide_index) as index:
        shard = index.shards[0]
        n = shard.n_tokens
        sa = shard.sa_tokens(np.arange(n, dtype=np.int64))
    data = shard_file(wide_index, "tokenized", 0).read_bytes()
    r = int(np.flatnonzero(sa == n - 1)[0])
    assert r + 1 < n and data[2 * int(sa[r + 1]) :].startswith(data[2 * (n - 1) :])  # a prefix of the next
    copy = tmp_path / "prefix"
    shutil.copytree(wide_index, copy)
    entries = _table_entries(shard_file(copy, "table", 0), 3)
    entries[r], entries[r + 1] = entries[r + 1], entries[r]
    _write_entries(shard_file(copy, "table", 0), entries, 3)
    faults = verify_index(copy, full=True)
    assert any(f"ranks {r} and {r + 1} are out of order" in f for f in faults), faults
