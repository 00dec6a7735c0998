"""Index build on Ray (2 workers) vs the local builder (2 workers), in one run, same corpus.

The corpus is _common.py's synthetic Zipf corpus (cached), handed to both builders as what a
user would have: pre-tokenized .u16 files (8 runs of whole documents, end-of-text id 0, which the
corpus never uses otherwise) with the corpus tokenizer. Three builds, 2 shards each:

  local      `tracetui index build ... --shards 2 --workers 2` (one reader streams the documents
             round-robin into the shards, then 2 processes sort them);
  local/files  the same sharding as the Ray build (shard = a run of whole input files), each
             shard tokenized and sorted by one of 2 processes;
  ray        `tracetui index build ... --shards 2 --ray` on a local Ray runtime with 2 CPUs (the
             same shard jobs as Ray tasks); its start-up is timed apart.

The Ray and local/files indexes are compared byte for byte (every file, manifest included).

    python benchmarks/bench_ray.py               # 100M tokens
    python benchmarks/bench_ray.py --size 10M    # a quicker run
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from index_tools.builder import BuildOptions, build_index  # noqa: E402

EOS = C.UNK_ID  # never drawn by the corpus generator
PARTS = 8


def ensure_inputs(c: C.Corpus, workdir: Path, parts: int = PARTS) -> list[Path]:
    """The corpus as `parts` .u16 files of whole documents, each document followed by EOS (cached)."""
    d = workdir / f"u16-{C.size_label(c.n_tokens)}-s{c.seed}"
    files = [d / f"part-{k:02d}.u16" for k in range(parts)]
    if (d / C.READY).exists():
        return files
    d.mkdir(parents=True, exist_ok=True)
    tokens = c.tokens()
    starts = (c.offsets() // 2).astype(np.int64)  # token index of each document's separator
    ends = np.append(starts[1:], len(tokens))
    cuts = np.searchsorted(starts, np.linspace(0, len(tokens), parts + 1)[1:-1])
    doc_bounds = [0, *cuts.tolist(), len(starts)]
    for k in range(parts):
        a, b = doc_bounds[k], doc_bounds[k + 1]
        # a document's ids are tokens[start+1:end]; the separator becomes a trailing EOS
        body = np.array(tokens[starts[a] : ends[b - 1]], dtype="<u2")
        body = np.append(body[1:], np.uint16(C.SEP))
        body[body == C.SEP] = EOS
        body.tofile(files[k])
    (d / C.READY).write_text(json.dumps({"parts": parts, "documents": len(starts)}))
    return files


def options(c: C.Corpus, **kw: object) -> BuildOptions:
    return BuildOptions(tokenizer=str(c.tokenizer), eos_id=EOS, shards=2, workers=2, progress=False, **kw)  # type: ignore[arg-type]


def timed_build(files: list[Path], out: Path, opts: BuildOptions) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    build_index(files, out, opts)
    return time.perf_counter() - t


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(C.files_equal(a / n, b / n) for n in names)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="100M", help="corpus size in tokens (default 100M)")
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", action="store_true", help="keep the three indexes")
    C.add_json_out(p)
    args = p.parse_args(argv)
    out_json = C.JsonOut("ray", args.json_out)
    workdir = C.check_workdir(args.workdir)
    n = C.parse_size(args.size)
    try:
        import ray
    except ImportError:
        sys.exit('bench_ray needs Ray: pip install -e ".[cluster]"')
    from index_tools.ray_build import build_index_ray

    c = C.ensure_corpus(workdir, n, args.seed)
    files = ensure_inputs(c, workdir)
    print(f"bench_ray: {C.size_label(n)} tokens in {len(files)} .u16 files; 2 shards; Ray {ray.__version__}; "
          f"{__import__('os').cpu_count()} CPUs; workdir {workdir}")

    out = {name: workdir / f"build-{name}-{C.size_label(n)}" for name in ("local", "files", "ray")}
    t_local = timed_build(files, out["local"], options(c))
    t_files = timed_build(files, out["files"], options(c, shard_by="files"))

    shutil.rmtree(out["ray"], ignore_errors=True)
    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    t_start = time.perf_counter() - t
    try:
        t = time.perf_counter()
        manifest = build_index_ray(files, out["ray"], options(c))
        t_ray = time.perf_counter() - t
    finally:
        ray.shutdown()
    identical = same_files(out["files"], out["ray"])
    tokens = manifest.tokens

    def rate(sec: float) -> str:
        return f"{tokens / sec / 1e6:.2f}M tok/s"

    C.print_table(f"index build, {C.size_label(n)} tokens, 2 shards, 2 workers (ratio = build / local build)",
                  ["build", "time", "throughput", "ratio"], [
                      ["local (round-robin shards, 2 sort processes)", C.fmt_s(t_local), rate(t_local), "1.00x"],
                      ["local, file shards (the Ray build's sharding)", C.fmt_s(t_files), rate(t_files),
                       C.ratio(t_files, t_local)],
                      ["Ray, 2 workers (local runtime)", C.fmt_s(t_ray), rate(t_ray), C.ratio(t_ray, t_local)],
                      ["Ray, incl. runtime start", C.fmt_s(t_ray + t_start), rate(t_ray + t_start),
                       C.ratio(t_ray + t_start, t_local)],
                      ["Ray index == local file-sharded index, every file", "yes" if identical else "NO", "", ""],
                  ])
    out_json.write(args, {"n": n, "tokens": tokens, "files": len(files), "shards": 2, "workers": 2, "local": t_local,
                          "local_files": t_files, "ray": t_ray, "ray_start": t_start, "identical": identical,
                          "ray_version": ray.__version__})
    if not args.keep:
        for d in out.values():
            shutil.rmtree(d, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
