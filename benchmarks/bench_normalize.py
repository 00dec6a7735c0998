"""Build time and disk per token of normalized indexes against the verbatim build, in one run
(issue 21, section 1).

The corpus is the default index's (the Python standard library's sources and its pydoc topics:
real, wrapped and indented text); each build uses the bytes tokenizer and one worker, built
`--rounds` times in turn (verbatim, space, words), best time kept. Disk is split into the suffix
array files (tokenized + table + offset) and what the original text costs a normalized index
(its metadata, where each document's original text is kept).

    python benchmarks/bench_normalize.py [--rounds 2] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def main() -> int:
    from index_tools.builder import BuildOptions, build_index
    from index_tools.format import read_manifest
    from tracetui.defaults import default_corpus_files

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args()
    files = default_corpus_files()
    size = sum(f.stat().st_size for f in files)
    modes: list[str | None] = [None, "space", "words"]
    best: dict[str, float] = {}
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.rounds):
            for mode in modes:
                name = mode or "verbatim"
                target = Path(d) / name
                shutil.rmtree(target, ignore_errors=True)
                a = time.perf_counter()
                build_index(files, target, BuildOptions(tokenizer="bytes", progress=False, normalize=mode))
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - a)
                m = read_manifest(target)
                assert m is not None
                sizes = {f.name: f.stat().st_size for f in target.iterdir() if f.is_file()}
                sa = sum(v for k, v in sizes.items() if k.split(".")[0] in ("tokenized", "table", "offset"))
                meta = sum(v for k, v in sizes.items() if k.split(".")[0] in ("metadata", "metaoff"))
                out[name] = {"tokens": m.tokens, "documents": m.documents, "sa_bytes": sa, "metadata_bytes": meta,
                             "total_bytes": sum(sizes.values())}
    base = out["verbatim"]
    print(f"normalized builds, {len(files)} files, {size / 1e6:.1f} MB of text, bytes tokenizer, best of {args.rounds}")
    print(f"  {'build':10s} {'tokens':>12s} {'time s':>8s} {'x':>6s} {'B/token (SA)':>13s} {'metadata MB':>12s} "
          f"{'total MB':>9s} {'total x':>8s}")
    for name, r in out.items():
        r["seconds"] = round(best[name], 3)
        print(f"  {name:10s} {r['tokens']:>12,} {best[name]:8.2f} {best[name] / best['verbatim']:6.2f} "
              f"{r['sa_bytes'] / r['tokens']:13.2f} {r['metadata_bytes'] / 1e6:12.1f} {r['total_bytes'] / 1e6:9.1f} "
              f"{r['total_bytes'] / base['total_bytes']:8.2f}")
    if args.json_out:
        args.json_out.write_text(json.dumps({"corpus_bytes": size, "builds": out}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
