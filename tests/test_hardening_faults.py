"""Fault injection on `tracetui index build`: SIGKILL at random points, and a full disk.

* 20 SIGKILLs delivered at seeded random moments spread over a clean build's duration (from the
  moment the output directory appears to the moment the manifest does). After every kill the
  directory must not open as an index; a rerun of the same command must then complete, `verify`
  must find nothing, and every shard file must be byte-identical to a clean build's. Some kills
  hit a rerun (resume of a resume).
* Disk full, simulated with RLIMIT_FSIZE in the child (SIGXFSZ ignored, so writes fail with
  EFBIG) at limits that fail in the tokenize phase and in the sort phase, and with a real 2 MB
  tmpfs (ENOSPC; mounted in a user namespace, unprivileged; skipped, saying why, where the kernel
  allows neither that nor a mount). Expected: non-zero exit, exactly
  one stderr line starting "tracetui: error:", no traceback, no manifest, no `.partial` files
  left, and (rlimit variant) a rerun without the limit resumes to a byte-identical index.
"""

from __future__ import annotations

import hashlib
import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index_tools.builder import SHARD_KINDS
from index_tools.engine import Index
from index_tools.errors import IndexFormatError
from index_tools.format import MANIFEST_NAME, TMP_SUFFIX
from index_tools.verify import verify_index
from tracetui.cli import main

SHARDS = 3
KILLS = 20
CORPUS_BYTES = 3_000_000


def _corpus(path: Path) -> Path:
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    total = 0
    with open(path, "w", encoding="utf-8") as fh:
        i = 0
        while total < CORPUS_BYTES:
            text = " ".join(rng.choice(words) for _ in range(rng.randint(20, 400)))
            fh.write(json.dumps({"text": text, "id": i, "url": f"https://example.org/{i}"}) + "\n")
            total += len(text) + 1
            i += 1
    return path


def _cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tracetui.cli", "index", "build", str(src), "-o", str(out),
            "--tokenizer", "bytes", "--shards", str(SHARDS), "-q"]


def _index_files(directory: Path) -> dict[str, str]:
    """sha256 of every shard file (the manifest holds source mtimes, so it is compared by shard list)."""
    out = {}
    for kind in SHARD_KINDS:
        for n in range(SHARDS):
            p = directory / f"{kind}.{n}"
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _shard_list(directory: Path) -> list[dict]:
    return json.loads((directory / MANIFEST_NAME).read_text())["shards"]


def _phase(directory: Path) -> str:
    """Where a killed build stopped, judged from what it left."""
    if not directory.exists():
        return "startup"
    names = {p.name for p in directory.iterdir()}
    if MANIFEST_NAME in names:
        return "complete"
    if not all(f"tokenized.{n}" in names for n in range(SHARDS)):
        return "tokenize" if names else "startup"
    if not all(f"table.{n}" in names for n in range(SHARDS)):
        return "sort"
    return "manifest"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _corpus(tmp_path_factory.mktemp("faults") / "corpus.jsonl")


@pytest.fixture(scope="module")
def clean(corpus: Path) -> tuple[Path, dict[str, str], list[dict], tuple[float, float]]:
    """A clean build, timed: (directory, file hashes, shard list, (t_dir_appears, t_manifest_appears))."""
    out = corpus.parent / "clean"
    # one untimed build first: a fresh process's first run fills the user cache (sanitiser ranges,
    # token tables), so the timed build is as fast as the killed ones that follow
    subprocess.run(_cmd(corpus, corpus.parent / "warm-up"), capture_output=True, timeout=120, check=True)
    shutil.rmtree(corpus.parent / "warm-up")
    t0 = time.perf_counter()
    proc = subprocess.Popen(_cmd(corpus, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t_dir = t_manifest = None
    while proc.poll() is None:
        now = time.perf_counter() - t0
        if t_dir is None and out.exists():
            t_dir = now
        if t_manifest is None and (out / MANIFEST_NAME).exists():
            t_manifest = now
        time.sleep(0.001)
    end = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    proc.stderr.close()  # type: ignore[union-attr]
    assert verify_index(out) == []
    t_dir = t_dir if t_dir is not None else 0.0
    t_manifest = t_manifest if t_manifest is not None else end
    return out, _index_files(out), _shard_list(out), (t_dir, t_manifest)


def _assert_not_an_index(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(IndexFormatError):
        Index.open(directory)
    code = main(["count", "--index", str(directory), "the"])
    _, err = capsys.readouterr()
    assert code != 0 and err.startswith("tracetui: error:") and "Traceback" not in err


def _assert_same_as_clean(out: Path, clean: tuple) -> None:
    _, hashes, shards, _ = clean
    assert verify_index(out) == []
    assert _index_files(out) == hashes
    assert _shard_list(out) == shards
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(TMP_SUFFIX) or p.name == "build-state.json"]
    assert not leftovers, leftovers


def test_sigkill_at_random_points_then_resume(corpus: Path, clean: tuple, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    t_dir, t_manifest = clean[3]
    lo, hi = max(0.0, t_dir - 0.05), t_manifest + 0.02
    rng = random.Random(20240611)
    phases: dict[str, int] = {}
    kills = 0
    round_ = 0
    while kills < KILLS:
        assert round_ < 3 * KILLS, f"only {kills} kills landed in {round_} rounds"
        out = tmp_path / f"run{round_}"
        round_ += 1
        # one or two kills before letting the build finish: the second one hits a resumed build
        for _ in range(2 if rng.random() < 0.3 and kills < KILLS - 1 else 1):
            proc = subprocess.Popen(_cmd(corpus, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(lo, hi))
            if proc.poll() is not None:  # finished before the kill: not a kill
                assert proc.returncode == 0
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            phase = _phase(out)
            phases[phase] = phases.get(phase, 0) + 1
            if phase == "complete":
                # killed after the manifest's atomic rename: the index is whole already
                assert verify_index(out) == []
                break
            if out.exists():
                _assert_not_an_index(out, capsys)
        done = subprocess.run(_cmd(corpus, out), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        _assert_same_as_clean(out, clean)
        shutil.rmtree(out)
    print(f"\nSIGKILL: {kills} kills in {round_} builds; phase at kill: {phases}; "
          f"kill window {lo:.3f}-{hi:.3f}s of a {t_manifest:.3f}s build")
    assert kills == KILLS
    assert phases.get("tokenize", 0) + phases.get("sort", 0) + phases.get("manifest", 0) >= 3, phases


# -- disk full --------------------------------------------------------------------------------
def _limit(nbytes: int):  # type: ignore[no-untyped-def]
    def pre() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return pre


def _assert_clean_failure(proc: subprocess.CompletedProcess, out: Path) -> None:
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("tracetui: error:"), lines[0]
    assert str(out) in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (out / MANIFEST_NAME).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(TMP_SUFFIX)], sorted(p.name for p in out.iterdir())


@pytest.mark.parametrize("limit,phase", [(64 << 10, "tokenize"), (1_500_000, "sort")])
def test_disk_full_rlimit_fsize(corpus: Path, clean: tuple, tmp_path: Path, limit: int, phase: str) -> None:
    out = tmp_path / "idx"
    proc = subprocess.run(_cmd(corpus, out), preexec_fn=_limit(limit), capture_output=True, text=True, timeout=120)
    _assert_clean_failure(proc, out)
    assert "File too large" in proc.stderr
    assert _phase(out) == phase
    # space freed: the same command resumes and produces the same index
    done = subprocess.run(_cmd(corpus, out), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _assert_same_as_clean(out, clean)


#: Run in a child: mount a 2 MB tmpfs at argv[1], run the build (argv[4:]) into argv[2] there,
#: write what it left to argv[3] (outside the mount), unmount. Exit 77: mounting is not permitted.
_ON_TMPFS = r"""
import json, os, subprocess, sys
mnt, out, result, *cmd = sys.argv[1:]
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], capture_output=True).returncode:
    sys.exit(77)
try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    st = os.statvfs(mnt)
    with open(result, "w") as fh:
        json.dump({"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
                   "names": sorted(os.listdir(out)) if os.path.isdir(out) else [],
                   "size": st.f_blocks * st.f_frsize, "free": st.f_bavail * st.f_frsize}, fh)
finally:
    subprocess.run(["umount", mnt], capture_output=True)
"""


def _build_on_tmpfs(corpus: Path, tmp_path: Path) -> tuple[Path, dict] | None:
    """The build run on a fresh 2 MB tmpfs: in a private mount namespace of a user namespace
    (unprivileged, where the kernel allows user namespaces), else mounted directly (root); None
    where neither is permitted."""
    mnt, result = tmp_path / "small", tmp_path / "result.json"
    mnt.mkdir()
    out = mnt / "idx"
    for prefix in (["unshare", "--user", "--map-root-user", "--mount"], []):
        try:
            r = subprocess.run([*prefix, sys.executable, "-c", _ON_TMPFS, str(mnt), str(out), str(result),
                                *_cmd(corpus, out)], capture_output=True, text=True, timeout=180)
        except FileNotFoundError:  # no unshare
            continue
        if r.returncode == 77 or (prefix and r.returncode == 1 and r.stderr.startswith("unshare:")):
            continue  # mounting (or the namespace) refused
        assert r.returncode == 0 and result.exists(), r.stderr
        return out, json.loads(result.read_text())
    return None


def test_disk_full_tmpfs(corpus: Path, tmp_path: Path) -> None:
    """A real ENOSPC on a 2 MB tmpfs: one clean line, no manifest, no `.partial` files left."""
    run = _build_on_tmpfs(corpus, tmp_path)
    if run is None:
        pytest.skip("cannot mount a tmpfs here (neither `unshare --user --mount` nor `mount` is permitted); "
                    "test_disk_full_rlimit_fsize covers a full disk")
    out, got = run
    assert got["size"] == 2 << 20  # the build really wrote to the small filesystem
    assert got["returncode"] != 0 and got["stdout"] == ""
    lines = [line for line in got["stderr"].splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tracetui: error:"), got["stderr"]
    assert str(out) in lines[0] and "No space left on device" in lines[0]
    assert "Traceback" not in got["stderr"]
    assert got["names"] and MANIFEST_NAME not in got["names"]
    assert not [n for n in got["names"] if n.endswith(TMP_SUFFIX)], got["names"]
    # what is left is resumable state, not garbage: the filesystem is not full any more
    assert got["free"] > 0


def test_rerun_with_other_free_memory_finds_the_same_index(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The budget defaults to a share of free memory: it enters the build's fingerprint only
    through the plan it makes, so a rerun while other processes hold memory does not rebuild."""
    from index_tools.builder import BuildOptions, _fingerprint

    src = tmp_path / "c.txt"
    src.write_text("some text " * 1000, encoding="utf-8")
    opts = BuildOptions(tokenizer="bytes")
    assert _fingerprint([src], opts, 1 << 30) == _fingerprint([src], opts, 3 << 30)  # one shard either way
    assert _fingerprint([src], opts, 1 << 30) != _fingerprint([src], opts, 2000)  # another plan: 5 shards
