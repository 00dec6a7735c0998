"""Start-up cost of a fresh process, side by side in one run (issue 18, "Instant start").

Alternates, `--rounds` times each, in fresh processes:

- `tracetui count --substring --index IDX TEXT` against a minimal script over infini-gram's
  engine that does the same work (load the tokenizer, encode TEXT, open the engine, count its
  occurrences, print): like for like, and both counts must agree (goal: within 1.5x);
- `tracetui count` of the same TEXT as whole words (the default), which infini-gram has no
  counterpart of: its word-boundary rule is numpy over the maps, so it pays numpy's import;
- `tracetui trace --index IDX REPLY` of a 500-token reply (goal: under 0.5 s wall).

Wall time per command, median and min, with the ratio. The index is the 10M-token corpus of
`_common.py` (built on first use); the first round of each warms the OS page cache and the user
cache (token tables, sanitiser ranges), so it is reported apart.

    python benchmarks/bench_startup.py [--size 10M] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

MINIMAL = """
import sys
from tokenizers import Tokenizer
from infini_gram.engine import InfiniGramEngine
tok = Tokenizer.from_file(sys.argv[2])
ids = tok.encode(sys.argv[3], add_special_tokens=False).ids
e = InfiniGramEngine(index_dir=sys.argv[1], eos_token_id=0, vocab_size=65535, token_dtype="u16",
                     ds_prefetch_depth=0, sa_prefetch_depth=0, od_prefetch_depth=0)
print(e.count(input_ids=ids)["count"])
"""


# Every command runs with Python's bytecode cache on, as on a user's machine: infini-gram's modules
# come compiled from its wheel, an editable install's are compiled once into __pycache__; with
# PYTHONDONTWRITEBYTECODE set (some sandboxes and CI images), ours would be compiled again in every
# process (about 70 ms here), which measures the environment, not the start-up.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> float:
    a = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - a


def main() -> int:
    sys.path.insert(0, str(HERE))
    import _common as C

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="10M")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--workdir", type=Path, default=C.default_workdir())
    C.add_json_out(p)
    args = p.parse_args()
    out = C.JsonOut("startup", args.json_out)
    args.workdir = C.check_workdir(args.workdir)
    c = C.ensure_corpus(args.workdir, C.parse_size(args.size), 0)
    index = C.ensure_our_index(c)  # the benchmark corpus and our index of it, built on first use
    tok = c.tokenizer
    corpus_ids = np.memmap(index / "tokenized.0", dtype="<u2", mode="r")
    # the query and the reply in the tokenizer's own input form (`decode` of _common: the
    # vocabulary strings, which its WordLevel model encodes back to the same ids), taken from
    # the corpus, so the counts are not zero and the trace has spans to find
    window = np.asarray(corpus_ids[1000:2000])
    window = window[window != 0xFFFF]  # no document separators
    text = C.decode(c, window[1:4])
    reply_ids = window[:500]
    with tempfile.TemporaryDirectory() as d:
        reply = Path(d) / "reply.txt"
        reply.write_text(C.decode(c, reply_ids), encoding="utf-8")
        script = Path(d) / "minimal.py"
        script.write_text(MINIMAL, encoding="utf-8")
        exe = str(Path(sys.executable).with_name("tracetui"))
        cmds = {
            "tracetui count --substring": [exe, "count", "--substring", "--index", str(index), text],
            "minimal infini-gram count": [sys.executable, str(script), str(index), str(tok), text],
            "tracetui count (whole words)": [exe, "count", "--index", str(index), text],
            "tracetui trace (500 tokens)": [exe, "trace", "--index", str(index), str(reply)],
            # floors: an empty interpreter, and numpy's import alone (the engine is numpy over
            # maps wherever a query needs more than one scalar search; the minimal script's
            # engine is C++ and imports no numpy)
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import numpy'": [sys.executable, "-c", "import numpy"],
        }
        # like for like: the substring count is what infini-gram's count is; both must say so
        said = {k: subprocess.run(cmds[k], check=True, capture_output=True, text=True, env=ENV).stdout.split()[0]
                for k in ("tracetui count --substring", "minimal infini-gram count", "tracetui count (whole words)")}
        if said["tracetui count --substring"] != said["minimal infini-gram count"]:
            sys.exit(f"the two counts differ: {said}")
        print(f"query {text!r}: {said['minimal infini-gram count']} occurrences (both engines), "
              f"{said['tracetui count (whole words)']} as whole words")
        first = {k: timed(v) for k, v in cmds.items()}
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for _ in range(args.rounds):
            for k, v in cmds.items():
                times[k].append(timed(v))
    res = {k: {"median_s": float(np.median(v)), "min_s": float(np.min(v)), "first_s": first[k]}
           for k, v in times.items()}
    ratio = res["tracetui count --substring"]["median_s"] / res["minimal infini-gram count"]["median_s"]
    whole = res["tracetui count (whole words)"]["median_s"] / res["minimal infini-gram count"]["median_s"]
    print(f"start-up, fresh processes, {args.size} tokens, {args.rounds} rounds alternating (first round apart)")
    for k, r in res.items():
        print(f"  {k:30s} median {r['median_s'] * 1000:7.1f} ms  min {r['min_s'] * 1000:7.1f} ms  "
              f"(first {r['first_s'] * 1000:.0f} ms)")
    print(f"  tracetui count --substring / minimal infini-gram script: {ratio:.2f}x (goal <= 1.5x)")
    print(f"  tracetui count (whole words, numpy) / minimal infini-gram script: {whole:.2f}x")
    floor = res["python -c 'import numpy'"]["median_s"] / res["minimal infini-gram count"]["median_s"]
    print(f"  numpy's import alone / minimal infini-gram script: {floor:.2f}x")
    out.write(args, res, ratio=ratio, whole_words_ratio=whole, numpy_floor_ratio=floor, counts=said)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
