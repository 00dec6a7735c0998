"""Run every benchmark, one after another, each in its own process, into ONE results file.

Each script writes its figures as JSON (`--json-out`); this driver merges them into
`benchmarks/results/all.json` with the commit, the date, the Python / numpy / infini-gram
versions and the machine load (`uptime`) before and after each benchmark. The README's benchmark
tables are generated from that file by `benchmarks/readme_tables.py`.

    python benchmarks/run_all.py                    # the README's sizes (10M and 100M tokens)
    python benchmarks/run_all.py --quick            # small sizes: a smoke test of the whole chain
    python benchmarks/run_all.py --only trace,ngram # some of them, merged into the existing file

`--only` keeps the other benchmarks' entries of the existing file; each entry records its own
commit and date, and readme_tables.py says when they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common as C  # noqa: E402

# name -> (script, full arguments, quick arguments); in the order they run
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "index": ("bench_index.py", ["--sizes", "10M,100M"], ["--sizes", "1M", "--counts", "50", "--seqs", "2"]),
    "trace": ("bench_trace.py", ["--sizes", "10M,100M"], ["--sizes", "1M", "--responses", "2"]),
    "ngram": ("bench_ngram.py", ["--sizes", "100M"], ["--sizes", "1M", "--queries", "5"]),
    "overlap": ("bench_overlap.py", ["--sizes", "100M"], ["--sizes", "1M", "--items", "60"]),
    "word_rule": ("bench_word_rule.py", ["--size", "100M"],
                  ["--size", "1M", "--rounds", "1", "--replies", "4", "--queries", "20", "--frequent", "10"]),
    "serve": ("bench_serve.py", ["--sizes", "100M"], ["--sizes", "1M", "--responses", "2"]),
    "serve_load": ("bench_serve_load.py", ["--tokens", "100M"],
                   ["--tokens", "1M", "--seconds", "5", "--clients", "8", "--replies", "2"]),
    "ray": ("bench_ray.py", ["--size", "100M"], ["--size", "1M"]),
    "scale": ("bench_scale.py", ["--sizes", "10M,100M"], ["--sizes", "1M", "--counts", "50", "--seqs", "2", "--traces", "1"]),
    "app": ("bench_app.py", ["--runs", "2"], ["--runs", "1", "--tokens", "48"]),
    "startup": ("bench_startup.py", ["--size", "10M"], ["--size", "1M", "--rounds", "2"]),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test of the chain (a few minutes)")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHES)}")
    p.add_argument("--out", type=Path, default=HERE / "results" / "all.json")
    p.add_argument("--workdir", type=Path, default=C.default_workdir(), help="corpus cache (shared by all scripts)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME:ARGS",
                   help="more arguments for one benchmark, e.g. 'word_rule:--rounds 1' (recorded in the results)")
    p.add_argument("--rev", default=None,
                   help="run the code of this commit (index_tools, tracetui, benchmarks extracted with git archive), "
                        "not the working tree, which other work may be changing")
    p.add_argument("--no-start-after", default=None, metavar="HH:MM",
                   help="UTC time after which no further benchmark is started (they are recorded as skipped)")
    p.add_argument("--note", default="", help="a note kept in the results meta (e.g. what was reduced and why)")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHES)}")
    extra: dict[str, list[str]] = {}
    for e in args.extra:
        name, _, rest = e.partition(":")
        extra.setdefault(name, []).extend(rest.split())
    workdir = C.check_workdir(args.workdir)
    bench_dir, env = HERE, dict(os.environ, PYTHONUNBUFFERED="1")
    if args.rev:
        sha = subprocess.run(["git", "-C", str(C.ROOT), "rev-parse", args.rev], capture_output=True, text=True,
                             check=True).stdout.strip()
        tree = workdir / f"src-{sha[:12]}"
        if not (tree / C.READY).exists():
            tree.mkdir(parents=True, exist_ok=True)
            arch = subprocess.run(["git", "-C", str(C.ROOT), "archive", sha, "index_tools", "tracetui", "benchmarks"],
                                  capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(tree)], input=arch.stdout, check=True)
            (tree / C.READY).write_text(sha)
        bench_dir = tree / "benchmarks"
        env.update(PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", GIT_DIR=str(C.ROOT / ".git"),
                   TRACETUI_BENCH_COMMIT=sha)
        print(f"running the code of {sha[:12]} from {tree}", flush=True)

    merged: dict = {"meta": {}, "benchmarks": {}}
    if args.only and args.out.exists():
        merged = json.loads(args.out.read_text(encoding="utf-8"))
    os.environ.update({k: v for k, v in env.items() if k == "TRACETUI_BENCH_COMMIT"})
    run_meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **C.git_commit(), "rev": args.rev,
                "versions": C.versions(),
                "machine": C.machine(), "quick": args.quick, "only": names if args.only else None, "note": args.note,
                "command": " ".join(["run_all.py", *(argv if argv is not None else sys.argv[1:])]),
                "uptime_before": C.uptime(), "load_before": C.loadavg()}
    merged["meta"] = run_meta if not args.only else {**merged.get("meta", {}), "last_only_run": run_meta}
    if not args.only:
        merged["benchmarks"] = {}
    t_all = time.perf_counter()
    failed, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="bench-json-") as tmp:
        for name in names:
            if args.no_start_after and time.strftime("%H:%M", time.gmtime()) > args.no_start_after:
                skipped.append(name)
                print(f"\n=== {name}: skipped (past {args.no_start_after} UTC)", flush=True)
                continue
            script, full, quick = BENCHES[name]
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(bench_dir / script), *(quick if args.quick else full), *extra.get(name, [])]
            if name in ("index", "trace", "ngram", "overlap", "word_rule", "serve", "serve_load", "ray"):
                cmd += ["--workdir", str(workdir)]
            if name == "word_rule":  # its own extracted trees, not the default /tmp ones other work may use
                cmd += ["--old-tree", str(workdir / "wr-old-src"), "--new-tree", str(workdir / "wr-new-src")]
                if args.rev:
                    cmd += ["--new", env["TRACETUI_BENCH_COMMIT"]]
            entry: dict = {"command": " ".join(["python", f"benchmarks/{script}", *cmd[2:]]),
                           "uptime_before": C.uptime(), "load_before": C.loadavg(),
                           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            cmd += ["--json-out", str(out)]
            print(f"\n=== {name}: {entry['command']}  (load {entry['load_before']})", flush=True)
            t = time.perf_counter()
            rc = subprocess.run(cmd, cwd=bench_dir.parent, env=env).returncode
            entry.update(rc=rc, seconds=round(time.perf_counter() - t, 1), uptime_after=C.uptime(), load_after=C.loadavg())
            if out.exists():
                entry["data"] = json.loads(out.read_text(encoding="utf-8"))
            else:
                entry["data"] = None
            if rc != 0 or entry["data"] is None:
                failed.append(name)
            merged["benchmarks"][name] = entry
            print(f"=== {name}: rc {rc}, {entry['seconds']} s (load {entry['load_after']})", flush=True)
            write(args.out, merged)  # after each benchmark: a partial run keeps what it measured
    if not args.only:
        merged["meta"].update(seconds=round(time.perf_counter() - t_all, 1), failed=failed, skipped=skipped,
                              uptime_after=C.uptime(), load_after=C.loadavg())
    write(args.out, merged)
    print(f"\nall: {len(names)} benchmarks in {time.perf_counter() - t_all:.0f} s -> {args.out}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
