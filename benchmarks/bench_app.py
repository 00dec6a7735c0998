"""App benchmark: generation speed with live tracing on vs off, and key-press latency while streaming.

Runs the real app headless (Textual's run_test) with the real embedded model (Gemma 3 270M,
llama.cpp) and the default index (Python standard library, ~10M byte tokens), side by side:

    python benchmarks/bench_app.py [--tokens 160] [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from textual import events

from index_tools.engine import IndexSet
from tracetui.app.app import TraceApp
from tracetui.defaults import default_index_dir, default_model_path
from tracetui.model import LlamaBackend, ModelSettings

PROMPT = "Write a Python function that reads a file and returns its lines"


async def one_run(backend: LlamaBackend, indexes: IndexSet | None, settings: ModelSettings,
                  probe_keys: bool) -> tuple[float, int, list[float], str]:
    app = TraceApp(indexes, backend, settings=settings, intro="bench")
    latencies: list[float] = []
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.click("#prompt")
        await pilot.press(*PROMPT)
        t0 = time.perf_counter()
        await pilot.press("enter")
        await pilot.pause()
        # key-press to screen: post the key event, then wait for the first frame written to the
        # terminal after the key's effect (focus moved); pilot.press can't be used while the model
        # runs, because it waits for the whole process to go idle.
        frames: list[float] = []
        display = app._display

        def timed_display(screen, renderable):  # type: ignore[no-untyped-def]
            frames.append(time.perf_counter())
            return display(screen, renderable)

        app._display = timed_display  # type: ignore[method-assign]
        keys = [("ctrl+o", "docs"), ("ctrl+l", "prompt")]
        k = 0
        while app.generating:
            if probe_keys:
                key, target = keys[k % 2]
                a = time.perf_counter()
                app.post_message(events.Key(key, None))
                while app.focused is None or app.focused.id != target:
                    await asyncio.sleep(0.0005)
                seen = len(frames)
                while len(frames) == seen and app.generating:
                    await asyncio.sleep(0.0005)
                if len(frames) > seen:
                    latencies.append((frames[seen] - a) * 1000)
                k += 1
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - t0
        await app.workers.wait_for_complete()
        await pilot.pause()
        reply = app.messages[-1].text
        status = app.last_status
    n_tokens = len(backend.llm.tokenize(reply.encode("utf-8"), add_bos=False))
    return elapsed, n_tokens, latencies, status


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=160)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    # no stop strings: every run generates exactly --tokens tokens, so the speeds compare
    settings = ModelSettings(max_tokens=args.tokens, temperature=0.0, seed=42, n_ctx=2048, stop=[])
    backend = LlamaBackend(default_model_path(), settings)
    indexes = IndexSet.open([default_index_dir(progress=False)])
    print(f"model {backend.name}, index {indexes.indexes[0].name} ({indexes.indexes[0].manifest.tokens:,} tokens), "
          f"max_tokens {args.tokens}, threads {settings.threads}")
    await one_run(backend, None, settings, False)  # warm-up (model pages, caches)
    rows = {"tracing off": [], "tracing on": []}
    lat: list[float] = []
    status = ""
    for _ in range(args.runs):
        for name, ix in (("tracing off", None), ("tracing on", indexes)):
            el, n, _, st = await one_run(backend, ix, settings, False)
            rows[name].append(n / el)
            if ix is not None:
                status = st
    for _ in range(args.runs):
        _, _, l, _ = await one_run(backend, indexes, settings, True)
        lat += l
    off = statistics.median(rows["tracing off"])
    on = statistics.median(rows["tracing on"])
    print(f"{'':14}{'tokens/s (median of ' + str(args.runs) + ')':>28}")
    print(f"{'tracing off':14}{off:28.1f}")
    print(f"{'tracing on':14}{on:28.1f}")
    print(f"tracing cost: {100 * (off - on) / off:.1f}% of generation speed (target < 10%)")
    print(f"last trace status: {status}")
    if lat:
        lat.sort()
        print(f"key-press to screen while streaming: median {statistics.median(lat):.1f} ms, "
              f"p95 {lat[round(0.95 * (len(lat) - 1))]:.1f} ms over {len(lat)} presses (target median < 50 ms)")


if __name__ == "__main__":
    asyncio.run(main())
