"""When Python's garbage collector may run while the app draws.

A full collection scans ~100k objects (mostly Textual's render caches) and blocked the event loop
for 70-200 ms while replies streamed (bench_app.py --profile). Objects alive after startup are
frozen out of every later scan, and while a reply streams only young generations are collected;
one full collection runs when it ends (the app schedules it).
"""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    gc.collect()
    gc.freeze()


def streaming(on: bool) -> None:
    """While a reply streams, the oldest generation is (practically) never collected."""
    gc.set_threshold(700, 10, 1_000_000 if on else 10)


def unfreeze() -> None:
    """What the app froze becomes collectable again once it is gone."""
    gc.unfreeze()
