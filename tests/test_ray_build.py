"""The Ray build (`tracetui index build --ray`): byte-identical to the local build of the same
sharding, resumable, one-line failures, killed workers retried; and the suffix sort's paths.

Ray runs for real: a local runtime with 2 CPUs, started once for the module.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index_tools import suffix_sort
from index_tools.builder import BuildOptions, build_index, plan_file_shards
from index_tools.format import MANIFEST_NAME
from index_tools.ray_build import RayBuildError, build_index_ray

try:
    import ray
except ImportError:  # the tests of the sort paths, the plan and the error messages run anyway
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="needs ray (the cluster extra, in the test extra)")

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
         "sigma tau upsilon phi chi psi omega the of and to in is was for on with").split()


def _write_corpus(root: Path, files: int = 5, docs: int = 120, seed: int = 0) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        with open(root / f"part-{k}.jsonl", "w", encoding="utf-8") as fh:
            for i in range(docs + 20 * k):
                text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 80)))
                fh.write(json.dumps({"text": text, "n": i}) + "\n")
    return root


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def ray_runtime():  # type: ignore[no-untyped-def]
    assert ray is not None  # every test using it is marked needs_ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_corpus(tmp_path_factory.mktemp("ray") / "corpus")


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local build of the same sharding (3 shards of whole files), trained BPE, u16 tokens."""
    out = tmp_path_factory.mktemp("ref") / "index"
    build_index([corpus], out, BuildOptions(shards=3, shard_by="files", vocab_size=400, progress=False))
    return out


@needs_ray
def test_ray_build_is_byte_identical_to_local(ray_runtime, corpus: Path, reference: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "ray"
    manifest = build_index_ray([corpus], out, BuildOptions(shards=3, vocab_size=400, progress=False))
    assert len(manifest.shards) == 3 and manifest.token_width == 2
    _same_files(reference, out)
    # and a rerun of a finished build returns the same index without touching it
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    build_index_ray([corpus], out, BuildOptions(shards=3, vocab_size=400, progress=False))
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


@needs_ray
def test_interrupted_build_resumes_on_ray_keeping_finished_shards(ray_runtime, corpus: Path, reference: Path,  # type: ignore[no-untyped-def]
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "resume"
    opts = BuildOptions(shards=3, shard_by="files", vocab_size=400, progress=False)

    def first_job_then_ctrl_c(jobs):  # type: ignore[no-untyped-def]
        from index_tools.builder import run_shard_job

        run_shard_job(jobs[0])
        raise KeyboardInterrupt  # as Ctrl+C after the first shard

    with pytest.raises(KeyboardInterrupt):
        build_index([corpus], out, opts, run_jobs=first_job_then_ctrl_c)
    assert not (out / MANIFEST_NAME).exists()
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.endswith(".0")}
    assert sorted(kept) == sorted(f"{k}.0" for k in ("tokenized", "table", "offset", "metadata", "metaoff", "unigram"))
    build_index_ray([corpus], out, BuildOptions(shards=3, vocab_size=400, progress=False))
    assert {n: (out / n).stat().st_mtime_ns for n in kept} == kept  # shard 0 was not redone
    _same_files(reference, out)


@needs_ray
def test_failing_shard_is_one_line_naming_shard_and_cause(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "bad", files=3, docs=30)
    with open(corpus / "part-2.jsonl", "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    p = subprocess.run([sys.executable, "-m", "tracetui.cli", "index", "build", str(corpus), "-o", str(tmp_path / "out"),
                        "--tokenizer", "bytes", "--shards", "3", "-q", "--ray"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode != 0
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert "Traceback" not in p.stderr
    error = [line for line in lines if "shard " in line]
    assert len(error) == 1, p.stderr
    assert error[0].startswith("tracetui: error: shard ") and "part-2.jsonl:71: invalid JSON" in error[0], error[0]
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()


def test_without_ray_says_what_to_install(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "c", files=1, docs=5)
    code = ("import sys; sys.modules['ray'] = None; from tracetui.cli import main; "
            f"sys.exit(main(['index', 'build', {str(corpus)!r}, '-o', {str(tmp_path / 'o')!r}, '--ray']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert 'pip install -e ".[cluster]"' in p.stderr


def _kill_first_shard_task(killed: list[int], timeout: float = 30.0) -> threading.Thread:
    """A thread that SIGKILLs the first Ray worker seen running a shard task (by its process title)."""

    def run() -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
            for line in out.splitlines():
                pid, _, args = line.strip().partition(" ")
                if args.startswith("ray::shard_task"):
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    return
            time.sleep(0.01)

    t = threading.Thread(target=run)
    t.start()
    return t


@needs_ray
def test_killed_worker_is_retried_and_the_shard_is_whole(ray_runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL the first worker seen running a shard task: Ray reruns the task, and the index is
    the same as the local build's (the killed attempt left only `.partial` files, overwritten)."""
    corpus = _write_corpus(tmp_path / "big", files=2, docs=6000, seed=3)
    ref = tmp_path / "ref"
    build_index([corpus], ref, BuildOptions(tokenizer="bytes", shards=2, shard_by="files", progress=False))
    killed: list[int] = []
    t = _kill_first_shard_task(killed)
    out = tmp_path / "ray"
    build_index_ray([corpus], out, BuildOptions(tokenizer="bytes", shards=2, progress=False))
    t.join()
    assert killed, "no shard task was seen running"
    _same_files(ref, out)


@needs_ray
def test_killed_worker_without_retries_is_one_line(ray_runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    corpus = _write_corpus(tmp_path / "big", files=2, docs=6000, seed=4)
    killed: list[int] = []
    t = _kill_first_shard_task(killed)
    with pytest.raises(RayBuildError) as err:
        build_index_ray([corpus], tmp_path / "out", BuildOptions(tokenizer="bytes", shards=2, progress=False),
                        max_retries=0)
    t.join()
    assert killed
    assert "its worker died (Ray retried it 0 times)" in str(err.value) and str(err.value).startswith("shard ")
    assert not (tmp_path / "out" / MANIFEST_NAME).exists()


def test_plan_splits_whole_files_by_bytes(tmp_path: Path) -> None:
    sizes = [100, 100, 100, 100, 400, 100, 100]
    files = []
    for i, s in enumerate(sizes):
        f = tmp_path / f"f{i}.txt"
        f.write_bytes(b"x" * s)
        files.append(f)
    assert plan_file_shards(files, 2) == [[0, 1, 2, 3], [4, 5, 6]]
    assert plan_file_shards(files[:2], 2) == [[0], [1]]
    assert plan_file_shards(files, 1) == [list(range(7))]
    plan = plan_file_shards(files, 20)
    assert [i for g in plan for i in g] == list(range(7)) and all(plan)


def test_ray_error_class_is_one_line() -> None:
    assert "\n" not in str(RayBuildError("a\nb"))


@pytest.mark.parametrize("width", [1, 2, 4])
def test_suffix_sort_64bit_path_matches_32bit(width: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The >2 GiB path (64-bit entries from divsufsort64, same in-place compaction) writes the same
    table as the 32-bit path; forced here on a small shard by lowering the threshold."""
    rng = np.random.default_rng(width)
    data = rng.integers(0, 4, size=30_000 * width, dtype=np.uint8)  # small alphabet: long repeats
    tok = tmp_path / "tokenized.0"
    data.tofile(tok)
    suffix_sort.sort_shard(tok, tmp_path / "t32", width)
    monkeypatch.setattr(suffix_sort, "INT32_LIMIT", 0)
    suffix_sort.sort_shard(tok, tmp_path / "t64", width)
    assert (tmp_path / "t32").read_bytes() == (tmp_path / "t64").read_bytes()
    # and the order is memcmp order of the token-aligned suffixes
    pw = suffix_sort.pointer_width(len(data))
    entries = np.frombuffer((tmp_path / "t32").read_bytes(), dtype=np.uint8).reshape(-1, pw)
    sa = np.zeros((len(entries), 8), dtype=np.uint8)
    sa[:, :pw] = entries
    sa = sa.view("<u8").ravel()
    raw = data.tobytes()
    picks = sorted(rng.choice(len(sa) - 1, size=200, replace=False).tolist())
    assert all(raw[sa[i]:] < raw[sa[i + 1]:] for i in picks)
    assert np.all(sa % width == 0) and len(np.unique(sa)) == len(data) // width


@needs_ray
def test_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path / "c", files=1, docs=5)
    p = subprocess.run([sys.executable, "-m", "tracetui.cli", "index", "build", str(corpus), "-o", str(tmp_path / "o"),
                        "--tokenizer", "bytes", "--ray", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert p.stderr.strip().splitlines() == [p.stderr.strip()]
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in p.stderr
