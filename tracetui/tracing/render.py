"""Plain-terminal rendering of a trace for `tracetui trace` (untrusted text made inert)."""

from __future__ import annotations

from ..sanitize import inert
from .pipeline import TraceResult
from .ranking import LEVELS, highest_level

# background colours by level: three strengths of one hue (blue), as in the reference.
LEVEL_SGR = {"high": "48;5;33;38;5;231", "medium": "48;5;69;38;5;231", "low": "48;5;153;38;5;16"}
MARK = {"high": ("[[", "]]"), "medium": ("[", "]"), "low": ("{", "}")}


def _span_level(result: TraceResult, hl_spans: list[int]) -> str:
    return highest_level([result.spans[i].level for i in hl_spans])


def render_trace_text(result: TraceResult, color: bool) -> str:
    out: list[str] = []
    text = result.text
    pos = 0
    body: list[str] = []
    for h in result.highlights:
        level = _span_level(result, h.spans)
        body.append(inert(text[pos : h.start]))
        piece = inert(text[h.start : h.end])
        if color:
            body.append(f"\x1b[{LEVEL_SGR[level]}m{piece}\x1b[0m")
        else:
            a, b = MARK[level]
            body.append(f"{a}{piece}{b}")
        pos = h.end
    body.append(inert(text[pos:]))
    out.append("".join(body).rstrip("\n") + "\n")
    t = result.timings_ms
    out.append(f"\n{len(result.spans)} spans · {len(result.documents)} documents · {t.get('total', 0):.0f} ms\n")
    for level in LEVELS:
        docs = [d for d in result.documents if d.level == level]
        if not docs:
            continue
        out.append(f"\n== {level} relevance ({len(docs)}) ==\n")
        for d in docs:
            out.append(f"- [{inert(d.index)}] {inert(d.source)}  score {d.score:.2f}  spans {d.spans}\n")
            first = d.hits[0]
            s, e = first.snippet_match
            snip = first.snippet
            mid = inert(snip[s:e])
            mid = f"\x1b[7m{mid}\x1b[0m" if color else f"»{mid}«"
            out.append("    " + (inert(snip[:s]) + mid + inert(snip[e:])).replace("\n", " ") + "\n")
    return "".join(out)
