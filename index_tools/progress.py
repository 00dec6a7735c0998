"""A small progress line per build phase on stderr: done/total, throughput and ETA."""

from __future__ import annotations

import sys
import time


class Progress:
    """Redraws at most a few times a second on a TTY; prints one summary line otherwise."""

    def __init__(self, phase: str, total: float | None, unit: str, enabled: bool = True) -> None:
        self.phase, self.total, self.unit = phase, total, unit
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.done = 0.0
        self.start = time.perf_counter()
        self._last = 0.0

    def update(self, n: float) -> None:
        self.done += n
        now = time.perf_counter()
        if self.tty and now - self._last > 0.2:
            self._last = now
            sys.stderr.write("\r" + self._line(now) + "\x1b[K")
            sys.stderr.flush()

    def _line(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.phase:<10} {_fmt(self.done)} {self.unit}"
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 24)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            text = f"{self.phase:<10} [{bar:<24}] {frac:6.1%} {_fmt(self.done)}/{_fmt(self.total)} {self.unit} ETA {eta:5.1f}s"
        return f"{text}  {_fmt(rate)} {self.unit}/s  {elapsed:6.1f}s"

    def close(self) -> float:
        elapsed = time.perf_counter() - self.start
        if self.enabled:
            end = "\r" if self.tty else ""
            sys.stderr.write(end + self._line(time.perf_counter()) + ("\x1b[K" if self.tty else "") + "\n")
            sys.stderr.flush()
        return elapsed


def _fmt(x: float) -> str:
    for unit in ("", "k", "M", "G", "T"):
        if abs(x) < 1000:
            return f"{x:.0f}{unit}" if unit == "" else f"{x:.1f}{unit}"
        x /= 1000
    return f"{x:.1f}P"
