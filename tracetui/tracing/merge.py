"""Display of spans (OLMoTrace section 5): overlapping spans merge into one highlight."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Highlight:
    start: int
    end: int
    spans: list[int] = field(default_factory=list)  # indexes into the trace's span list


def merge_spans(ranges: list[tuple[int, int]]) -> list[Highlight]:
    """Merge character ranges that overlap (touching ranges stay separate); keep the members."""
    order = sorted(range(len(ranges)), key=lambda i: (ranges[i][0], ranges[i][1]))
    out: list[Highlight] = []
    for i in order:
        s, e = ranges[i]
        if e <= s:
            continue
        if out and s < out[-1].end:
            out[-1].end = max(out[-1].end, e)
            out[-1].spans.append(i)
        else:
            out.append(Highlight(s, e, [i]))
    return out
