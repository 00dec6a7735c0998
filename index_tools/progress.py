"""Progress of one long phase (a build's shards/tokenize/sort, a Ray build, an overlap run) on stderr.

One display for every long-running command, drawn by `rich.progress` (a well-kept library that
already comes with Textual) instead of hand-written carriage-return lines:

* on a terminal, a live line redrawn a few times a second: with a known total a bar, done/total,
  the rate and the ETA; with an unknown total the running count, the rate and the elapsed time
  (what has been done is always shown: never a spinner alone);
* anywhere else (a pipe, a file, CI), nothing while it runs and one plain summary line when the
  phase ends, starting with the phase name: logs stay one line per phase and free of escape codes.

Usage::

    with Progress("overlap", None, "items", stream=sys.stderr) as bar:
        for item in items:
            ...
            bar.update(1)

`Progress(phase, total, unit)` with `total=None` when the amount of work is not known in
advance; `also=` names a second counter shown next to the first (a Ray build counts shards and
tokens: `update(1, also=tokens)`), whose rate is then the one shown, as it is the meaningful one.

rich is imported only when a live display is drawn, so importing this module (the builder imports
it) costs nothing at the start of a query command, and a non-terminal run never imports rich.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

#: how often the live display redraws, and how often `update` hands its count to it: a
#: per-document `update` stays a float addition and a clock read
_REFRESH_PER_SECOND = 5
_PUSH_SECONDS = 0.1


class Progress:
    """One phase's progress: a live rich line on a terminal, one summary line elsewhere.

    `enabled=False` shows nothing at all (`--quiet`, or a caller that shows progress its own way)
    but still times the phase: `close()` returns the seconds it took either way.
    """

    def __init__(self, phase: str, total: float | None, unit: str, enabled: bool = True, *,
                 stream: TextIO | None = None, also: str | None = None) -> None:
        self.phase, self.total, self.unit, self.also_unit = phase, total, unit, also
        self.enabled = enabled
        # resolved now, not at import: a test's captured stderr or a redirected one is honoured
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.tty = enabled and _isatty(self.stream)
        self.done = 0.0
        self.also = 0.0
        self.start = time.perf_counter()
        self._pushed = self.start
        self._closed = False
        self._live: RichProgress | None = None
        self._task: TaskID | None = None
        if self.tty:
            self._live, self._task = _start_live(self)

    def update(self, n: float = 1, also: float = 0) -> None:
        """Count `n` more units done (and `also` more of the second counter)."""
        self.done += n
        self.also += also
        if self._live is not None and self._task is not None:
            now = time.perf_counter()
            if now - self._pushed >= _PUSH_SECONDS:
                self._pushed = now
                self._live.update(self._task, completed=self.done, also=self.also)

    def close(self) -> float:
        """End the phase: the final state drawn (terminal) or the summary line written. Seconds
        the phase took; a second call changes nothing."""
        elapsed = time.perf_counter() - self.start
        if self._closed:
            return elapsed
        self._closed = True
        if self._live is not None and self._task is not None:
            self._live.update(self._task, completed=self.done, also=self.also)
            self._live.stop()
            self._live = None
        elif self.enabled:
            self.stream.write(self.summary(elapsed) + "\n")
            self.stream.flush()
        return elapsed

    def summary(self, elapsed: float | None = None) -> str:
        """The one-line account of the phase: name, count (of the total), rate, seconds."""
        if elapsed is None:
            elapsed = time.perf_counter() - self.start
        text = f"{self.phase:<10} {_count(self.done, self.total, self.unit)}"
        if self.also_unit is not None:
            text += f"  {_fmt(self.also)} {self.also_unit}"
        return f"{text}  {_rate(self, elapsed)}  {elapsed:6.1f}s"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or minimal stream: not a terminal
        return False


def _count(done: float, total: float | None, unit: str) -> str:
    return f"{_fmt(done)}/{_fmt(total)} {unit}" if total else f"{_fmt(done)} {unit}"


def _rate(p: Progress, elapsed: float | None = None) -> str:
    """Average rate since the phase began, of the second counter when there is one."""
    if elapsed is None:
        elapsed = time.perf_counter() - p.start
    n, unit = (p.also, p.also_unit) if p.also_unit is not None else (p.done, p.unit)
    return f"{_fmt(n / max(elapsed, 1e-9))} {unit}/s"


def _start_live(p: Progress) -> tuple[RichProgress, TaskID]:
    """The rich display for `p`, started. Columns follow what is known: the bar, the share and
    the ETA only with a total (rich would draw an empty pulsing bar without one)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Column,
        ProgressColumn,
        Task,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    class Count(ProgressColumn):
        """done/total (or done) in the phase's unit, with k/M/G like the summary line."""

        def render(self, task: Task) -> Text:
            text = _count(task.completed, p.total, p.unit)
            if p.also_unit is not None:
                text += f"  {_fmt(float(task.fields.get('also', 0.0)))} {p.also_unit}"
            return Text(text, style="progress.download")

    class Rate(ProgressColumn):
        """The average rate since the start (rich's own speed column speaks bytes only)."""

        def render(self, task: Task) -> Text:
            return Text(_rate(p, task.elapsed or 0.0), style="progress.data.speed")

    class Elapsed(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.elapsed or 0.0:5.1f}s", style="progress.elapsed")

    # The figures never wrap (a wrapped line redraws as two); the bar takes whatever width is
    # left, so the line fits any terminal and a wide one gets a long bar.
    def fixed() -> Column:
        return Column(no_wrap=True)

    columns: list[Any] = [TextColumn(f"{p.phase:<10}", table_column=fixed())]
    if p.total:
        columns += [BarColumn(bar_width=None), TaskProgressColumn(table_column=fixed()), Count(fixed()),
                    Rate(fixed()), TextColumn("ETA", table_column=fixed()),
                    TimeRemainingColumn(compact=True, table_column=fixed()), Elapsed(fixed())]
    else:
        columns += [Count(fixed()), Rate(fixed()), Elapsed(fixed())]
    console = Console(file=p.stream, force_terminal=True, highlight=False)
    # no redirection of sys.stdout/sys.stderr into the display: a command's stdout (JSON, a
    # report) must stay where the user sent it, not land on the terminal the bar is drawn on
    live = RichProgress(*columns, console=console, refresh_per_second=_REFRESH_PER_SECOND,
                        get_time=time.perf_counter, redirect_stdout=False, redirect_stderr=False,
                        expand=bool(p.total))
    task = live.add_task(p.phase, total=p.total, also=0.0)
    live.start()
    return live, task


def _fmt(x: float) -> str:
    for unit in ("", "k", "M", "G", "T"):
        if abs(x) < 1000:
            return f"{x:.0f}{unit}" if unit == "" else f"{x:.1f}{unit}"
        x /= 1000
    return f"{x:.1f}P"
