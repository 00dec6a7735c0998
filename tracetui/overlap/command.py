"""`tracetui overlap`: run a report over benchmark files, streaming, and print it as a table, JSON
or Markdown. Ctrl+C stops it and prints what is done (exit 130)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from index_tools.contract import IndexLike
from index_tools.progress import Progress

from ..sanitize import inert
from .items import Item, benchmark_names, read_items
from .report import (
    VERDICTS,
    BenchmarkSummary,
    OverlapParams,
    TopItems,
    markdown,
    run_overlap,
)

SCHEMA = "tracetui.overlap/1"
KEEP_FOR_APP = 500  # items of highest score kept for the Overlap screen


class OverlapOutcome:
    """What a run leaves: summaries per benchmark, the items of highest score, whether it was stopped."""

    def __init__(self) -> None:
        self.summaries: dict[str, BenchmarkSummary] = {}
        self.top = TopItems(KEEP_FOR_APP)
        self.interrupted = False
        self.seconds = 0.0

    @property
    def items(self) -> int:
        return sum(s.items for s in self.summaries.values())


def _items(files: list[str], fields: list[str] | None, normalize: bool) -> Iterator[Item]:
    for f, name in zip(files, benchmark_names(files), strict=True):
        yield from read_items(f, fields, normalize, benchmark=name)


def run(indexes: list[IndexLike], files: list[str], fields: list[str] | None, params: OverlapParams,
        json_out: TextIO | None = None, progress: TextIO | None = None) -> OverlapOutcome:
    """Stream every item through the report; with `json_out`, write the JSON document as it goes
    (valid JSON even when interrupted); with `progress`, the running count of items and their
    rate on that stream (`index_tools.progress`, the display every long command shares; the
    number of items is not known before the files are read)."""
    outcome = OverlapOutcome()
    bar = Progress("overlap", None, "items", progress is not None, stream=progress)
    first = True
    if json_out is not None:
        head = {"schema": SCHEMA, "indexes": [ix.name for ix in indexes], "params": vars(params)}
        json_out.write(json.dumps(head, ensure_ascii=True)[:-1] + ', "items": [\n')
    try:
        for r in run_overlap(indexes, _items(files, fields, params.normalize_space), params):
            outcome.summaries.setdefault(r.benchmark, BenchmarkSummary(r.benchmark)).add(r)
            outcome.top.add(r)
            if json_out is not None:
                json_out.write(("" if first else ",\n") + json.dumps(r.to_json(), ensure_ascii=True))
                first = False
            bar.update(1)
    except KeyboardInterrupt:
        outcome.interrupted = True
    outcome.seconds = bar.close()  # the phase's own timing, shown or not
    if json_out is not None:
        tail = {"benchmarks": [s.to_json() for s in outcome.summaries.values()],
                "interrupted": outcome.interrupted, "seconds": round(outcome.seconds, 3)}
        json_out.write("\n], " + json.dumps(tail, ensure_ascii=True)[1:] + "\n")
        json_out.flush()
    return outcome


def print_table(outcome: OverlapOutcome, out: TextIO, top: int = 10) -> None:
    """A summary per benchmark and the items of highest score; corpus and item text made inert."""
    if not outcome.summaries:
        out.write("no items: the files hold no non-empty item\n")
        return
    w = max([9] + [len(inert(b)) for b in outcome.summaries])
    out.write(f"{'benchmark':<{w}}  {'items':>7}  " + "  ".join(f"{v:>14}" for v in VERDICTS)
              + f"  {'coverage':>8}  {'near-verbatim':>13}  coverage histogram\n")
    for s in outcome.summaries.values():
        hist = "".join(" ▁▂▃▄▅▆▇█"[min(8, round(8 * c / max(1, max(s.coverage_histogram))))]
                       for c in s.coverage_histogram)
        j = s.to_json()
        out.write(f"{inert(s.benchmark):<{w}}  {s.items:>7,}  "
                  + "  ".join(f"{s.verdicts[v]:>6,} ({s.share(v):>5.1%})" for v in VERDICTS)
                  + f"  {j['mean_coverage']:>8.1%}  {j['mean_near_coverage']:>13.1%}  [{hist}]\n")
    items = [r for r in outcome.top.sorted() if r.verdict != "clean"][:top]
    if items:
        out.write("\nhighest scores:\n")
        for r in items:
            text = " ".join(r.longest_text.split())
            text = text if len(text) <= 60 else text[:59] + "…"
            where = ", ".join(f"{w.index}:{w.doc}" for w in r.where)
            out.write(f"  {r.verdict:<12} {r.score:>6.1%}  {inert(r.benchmark)}:{r.line} ({inert(r.id)})  "
                      f"n-grams {r.ngrams_found}/{r.ngrams}  near-verbatim {r.near_coverage:.0%}  longest {r.longest_tokens} tok {inert(repr(text))}"
                      f"  in {inert(where)}\n")
    if outcome.interrupted:
        out.write(f"interrupted after {outcome.items:,} items: the figures above cover those\n")


def cmd_overlap(args: Any, indexes: list[IndexLike]) -> int:
    params = OverlapParams(n=args.n, min_span=args.min_span, suspicious=args.suspicious,
                           contaminated=args.contaminated, docs=args.docs, normalize_space=args.normalize_space)
    outcome = run(indexes, args.items, args.field, params, json_out=sys.stdout if args.json else None,
                  progress=sys.stderr if not args.json and sys.stderr.isatty() else None)
    if args.markdown:
        Path(args.markdown).write_text(markdown(list(outcome.summaries.values()), outcome.top.sorted()[:50], params,
                                                [ix.name for ix in indexes], outcome.interrupted), encoding="utf-8")
    if not args.json:
        print_table(outcome, sys.stdout)
        if args.markdown:
            print(f"report written to {inert(str(args.markdown))}")
    if args.open and not outcome.interrupted:
        from ..app.screens.overlap import run_overlap_app

        run_overlap_app(indexes, outcome.top.sorted(), params)
    return 130 if outcome.interrupted else 0

