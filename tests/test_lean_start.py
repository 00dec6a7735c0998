"""Instant start (issue 18): `tracetui count --substring` on a local index answers without ever
executing numpy, and its answer is the brute-force count over the documents' bytes; numpy,
deferred, still works the moment anything uses it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from .conftest import build_texts_index

TEXTS = ["the cat sat on the mat", "a catalogue of cats", "concatenate: cat, cat; CAT", "dogs only here"]

PROBE = """
import json, sys
from tracetui.cli import main
from tracetui.lazy_imports import numpy_loaded
rc = main(sys.argv[2:])
print(json.dumps({"rc": rc, "numpy": numpy_loaded(), "modules": sorted(m for m in sys.modules if m.startswith("numpy"))}))
"""


def _overlapping(hay: bytes, needle: bytes) -> int:
    return sum(hay.startswith(needle, i) for i in range(len(hay)))


def _run(args: list[str]) -> tuple[dict, dict]:
    out = subprocess.run([sys.executable, "-c", PROBE, "-", *args], capture_output=True, text=True, check=True).stdout
    *answer, probe = out.strip().splitlines()
    return json.loads("\n".join(answer)), json.loads(probe)


def test_substring_count_runs_without_numpy_and_matches_brute_force(tmp_path: Path) -> None:
    build_texts_index(tmp_path, TEXTS, "bytes").close()
    for query in ("cat", "at", " the", "cat, cat", "zebra"):
        answer, probe = _run(["count", "--substring", "--json", "--index", str(tmp_path / "ix"), query])
        want = sum(_overlapping(t.encode(), query.encode()) for t in TEXTS)
        assert answer["results"][0]["count"] == want, query
        assert answer["results"][0]["tokens"] == list(query.encode())
        assert probe == {"rc": 0, "numpy": False, "modules": ["numpy"]}, query  # deferred, never executed


def test_whole_word_count_loads_numpy_when_it_needs_it(tmp_path: Path) -> None:
    build_texts_index(tmp_path, TEXTS, "bytes").close()
    answer, probe = _run(["count", "--json", "--index", str(tmp_path / "ix"), "cat"])
    want = sum(len(re.findall(r"(?<!\w)cat(?!\w)", t)) for t in TEXTS)
    assert want == 3 and answer["results"][0]["count"] == want
    assert probe["rc"] == 0 and probe["numpy"] is True and "numpy._core" in probe["modules"]


def test_deferred_numpy_is_numpy() -> None:
    code = ("from tracetui.lazy_imports import defer_numpy, numpy_loaded\n"
            "defer_numpy()\n"
            "import numpy as np\n"
            "assert not numpy_loaded()\n"
            "from numpy import arange\n"
            "assert numpy_loaded() and int(arange(5).sum()) == 10 and np.int64 is __import__('numpy').int64\n"
            "print('ok')\n")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "ok\n"
