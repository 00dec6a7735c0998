"""Near-verbatim spans (issue 21, section 3): two exact spans of a reply that one document holds
together, with one word between them changed, added or dropped.

A passage copied with one word changed loses every exact n-gram through that word, and an exact
tracer shows it as two unrelated highlights. Here the exact spans already found are the evidence:

* the *sides* are exact spans without the tokens of whitespace alone at their edges: a byte
  tokenizer's span may end with the space the next span starts with, and neither side owns it;
* a *pair* is two sides, the right one starting at or after the left one's end, with at most
  one word between them in the reply (the *gap*: at most `max_gap` tokens whose text holds at
  most one run of word characters, word characters as `index_tools.words` defines them), each
  side holding a word character (a span of spaces or punctuation alone is no evidence of a
  passage);
* a pair is *near-verbatim in a document* where an occurrence of the left side is followed,
  after a document gap of at most one word (same rule), by an occurrence of the right side, both
  occurrences whole words at both edges (in the tracer's whole-word mode), and the document gap's
  tokens differ from the reply gap's: a substitution (both gaps hold more than whitespace, or
  neither does: a changed space), an insertion (only the reply's gap does) or a deletion (only
  the document's). Equal gaps are not a difference: two exact spans cut apart by a
  delimiter are not near-verbatim.

Cost: only the occurrences of the rarer side of each pair are looked at, at most `cap` of them
(drawn with a fixed seed, as the tracer samples its documents), all of a trace's pairs in one
batched occurrence search and one `windows` call: a served index answers a trace's near-verbatim
spans in two round trips. The other side is then looked for in each window with numpy, so no
document is read beyond the window and nothing reaches past the `IndexLike` contract.

The exact spans are never changed: a near-verbatim span points at its two exact spans (their
indexes in the caller's list) and carries its own character ranges in the reply and in the
document's window text, so a screen can draw it under the exact highlights, the differing word
marked on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from index_tools.contract import IndexLike
from index_tools.engine import Occurrence
from index_tools.words import is_word_char

from .occurrences import char_range, occurrence_runs, sample_runs

KINDS = ("substitution", "insertion", "deletion")
#: tokens on each side of a position that the word-boundary rule may read (`WordBoundaries.boundaries`)
_RULE_REACH = 4


@dataclass(frozen=True)
class NearParams:
    """The constants of near-verbatim spans, named."""

    #: occurrences of a pair's rarer side looked at (fixed seed): the cost per pair is bounded,
    #: and a pair whose rarer side occurs more often than this is reported as `capped`
    cap: int = 32
    #: tokens of one differing word, at most (each side): bounds the windows read; the byte
    #: tokenizer spends one token per byte of a word
    max_gap: int = 16
    #: tokens of document shown around the near-verbatim region in a hit's window text
    context: int = 40
    seed: int = 42
    #: occurrences must be whole words at both edges (the tracer's default rule); False follows
    #: the published substring mode
    whole_words: bool = True


@dataclass
class NearHit:
    """One document holding a pair together with one differing word. Character ranges are into
    `window` (the document's text around the region, decoded as a reader sees it); `doc_tokens`
    are token offsets in the document (left start, left end = gap start, right start, right
    end), None where the index does not tell where its windows sit (the infini-gram API)."""

    doc_id: str  # "<index>:<global doc id>", as `Document.id`
    index: str
    shard: int
    doc: int  # global document id
    metadata: dict[str, Any]
    kind: str  # one of KINDS
    window: str
    left: tuple[int, int]
    diff: tuple[int, int]  # the document's differing word (empty for an insertion: where it would be)
    right: tuple[int, int]
    diff_text: str
    doc_tokens: tuple[int, int, int, int] | None = None


@dataclass
class NearSpan:
    """Two exact spans of the reply found together, one word apart, in at least one document.
    Character ranges are into the reply text."""

    index: str
    left: int  # index of the left exact span in the caller's span list (`TraceResult.spans`)
    right: int
    start: int  # the whole region, left start to right end
    end: int
    diff: tuple[int, int]  # the reply's differing word (empty for a deletion: where the word was dropped)
    diff_text: str
    token_start: int
    token_end: int
    diff_tokens: tuple[int, int]
    counts: tuple[int, int]  # occurrences of the two sides (as the caller counted them)
    side: str  # "left" or "right": whose occurrences were looked at (the rarer)
    checked: int  # occurrences looked at
    capped: bool  # the rarer side occurs more often than `checked`
    hits: list[NearHit] = field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        return sorted({h.kind for h in self.hits}, key=KINDS.index)


@dataclass
class Pair:
    """A candidate: two exact spans of one text with at most one word between them."""

    left: int  # indexes into the caller's span list
    right: int
    l1: int  # reply tokens: left [l1, r1), gap [r1, l2), right [l2, r2)
    r1: int
    l2: int
    r2: int
    left_ids: np.ndarray
    gap_ids: np.ndarray
    right_ids: np.ndarray
    start: int  # reply characters
    end: int
    diff: tuple[int, int]
    diff_text: str
    counts: tuple[int, int] | None = None


@dataclass
class Found:
    """What the documents said of one pair."""

    hits: list[NearHit]
    side: str
    checked: int
    capped: bool
    counts: tuple[int, int]


def word_runs(text: str) -> int:
    """Maximal runs of word characters in `text`: a "word" of the rule is one such run, with the
    spaces and punctuation around it."""
    runs, inside = 0, False
    for ch in text:
        w = is_word_char(ch)
        runs += w and not inside
        inside = w
    return runs


def _space_tokens(text: str, offsets: np.ndarray) -> np.ndarray:
    """Per token of a text: does it stand for whitespace alone (by its characters in the text)?"""
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    uniq, inv = np.unique(cps, return_inverse=True)
    spaces = np.array([chr(int(c)).isspace() for c in uniq], dtype=bool)[inv] if len(cps) else np.zeros(0, bool)
    other = np.concatenate([[0], np.cumsum(~spaces)])
    a = np.clip(offsets[:, 0], 0, len(cps))
    b = np.clip(offsets[:, 1], 0, len(cps))
    return (b > a) & (other[b] == other[a])


def _has_word(text: str) -> bool:
    return any(is_word_char(ch) for ch in text)


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    """A character range without the whitespace at its edges (a word-start token carries its
    space); an all-space range collapses to its start (where a missing word is marked)."""
    if not text[a:b].strip():
        return a, a
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def candidate_pairs(text: str, ids: np.ndarray, offsets: np.ndarray, spans: Sequence[tuple[int, int]],
                    params: NearParams, min_total: int = 1) -> list[Pair]:
    """Every pair of `spans` (token ranges [l, r) of `text`, in position order) whose right span
    starts within one word after the left one ends; both sides hold a word character and
    together at least `min_total` tokens. Pure: no index is asked."""
    ids = np.asarray(ids, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(spans) < 2:
        return []
    space = _space_tokens(text, offsets)
    sides = []
    for l, r in spans:
        while l < r and space[l]:
            l += 1
        while r > l and space[r - 1]:
            r -= 1
        sides.append((l, r))
    ls = np.array([s[0] for s in sides], dtype=np.int64)
    chars = [char_range(text, offsets, l, r) if r > l else (0, 0) for l, r in sides]
    worded = [r > l and _has_word(text[a:b]) for (l, r), (a, b) in zip(sides, chars, strict=True)]
    order = np.argsort(ls, kind="stable")
    sorted_l = ls[order]
    out: list[Pair] = []
    for i, (l1, r1) in enumerate(sides):
        if not worded[i]:
            continue
        lo = int(np.searchsorted(sorted_l, r1, side="left"))
        hi = int(np.searchsorted(sorted_l, r1 + params.max_gap, side="right"))
        for j in order[lo:hi].tolist():
            l2, r2 = sides[j]
            if j == i or not worded[j] or (r1 - l1) + (r2 - l2) < min_total:
                continue
            if l2 > r1:
                g0, g1 = int(offsets[r1][0]), int(offsets[l2 - 1][1])
                diff = _trim(text, g0, max(g0, g1))
                if word_runs(text[g0:g1]) > 1:
                    continue
            else:
                diff = (chars[i][1], chars[i][1])
            out.append(Pair(i, j, l1, r1, l2, r2, ids[l1:r1], ids[r1:l2], ids[l2:r2],
                            chars[i][0], chars[j][1], diff, text[diff[0]:diff[1]]))
    return out


def find_near(index: IndexLike, pairs: list[Pair], params: NearParams) -> list[Found]:
    """Look every pair up in `index`: its rarer side's occurrences (at most `cap`), their windows
    in one `windows` call, the other side searched for in each. Pairs without `counts` are
    counted first (one batched count, capped: only which side is rarer matters)."""
    if not pairs:
        return []
    missing = [p for p in pairs if p.counts is None]
    if missing:
        seqs = [s for p in missing for s in (p.left_ids, p.right_ids)]
        got = (index.count_words_many(seqs, cap=params.cap) if params.whole_words else index.count_many(seqs)).tolist()
        for k, p in enumerate(missing):
            p.counts = (int(got[2 * k]), int(got[2 * k + 1]))
    # the rarer side of each pair, its occurrence runs in one batched search
    side = [0 if p.counts is not None and p.counts[0] <= p.counts[1] else 1 for p in pairs]
    keys: dict[bytes, np.ndarray] = {}
    for p, s in zip(pairs, side, strict=True):
        x = p.left_ids if s == 0 else p.right_ids
        keys.setdefault(x.tobytes(), x)
    runs = occurrence_runs(index, list(keys.values()), params.whole_words)
    samples: dict[bytes, list[tuple[int, int]]] = {}
    totals: dict[bytes, int] = {}
    for key, r in zip(keys, runs, strict=True):
        samples[key] = sample_runs(r, params.cap, params.seed)
        totals[key] = sum(b - a for _, a, b in r)
    # one context for all: enough for the other side and a gap on the far side, the rule's reach
    # past it, and what is shown around the region
    need = max(params.max_gap + len(p.right_ids if s == 0 else p.left_ids) + _RULE_REACH
               for p, s in zip(pairs, side, strict=True))
    ctx = max(params.context, need)
    wanted: dict[tuple[int, int, int], int] = {}
    for key, picks in samples.items():
        m = len(keys[key])
        for shard, rank in picks:
            wanted.setdefault((shard, rank, m), len(wanted))
    looked = index.windows(list(wanted), (ctx,)) if wanted else []
    bounds: dict[int, np.ndarray] = {}  # word boundaries per window, computed when first needed
    out = []
    for p, s in zip(pairs, side, strict=True):
        x = p.left_ids if s == 0 else p.right_ids
        key = x.tobytes()
        hits: list[NearHit] = []
        for shard, rank in samples[key]:
            w = wanted[(shard, rank, len(x))]
            hits += _check(index, p, s, looked[w], w, bounds, params)
        hits.sort(key=lambda h: (h.doc, h.doc_tokens or (0, 0, 0, 0), h.left))
        assert p.counts is not None
        out.append(Found(hits, "left" if s == 0 else "right", len(samples[key]),
                         totals[key] > len(samples[key]), p.counts))
    return out


def _check(index: IndexLike, p: Pair, side: int, occ: Occurrence, w: int, bounds: dict[int, np.ndarray],
           params: NearParams) -> list[NearHit]:
    """The hits of pair `p` around one occurrence of its side `side`: the other side within one
    word of it in the window, whole words, with a gap that differs from the reply's."""
    win = occ.windows[0]
    tokens = np.asarray(win.tokens, dtype=np.int64)
    ms, me = win.match_start, win.match_end
    n = len(tokens)
    if side == 0:  # the right side after the left one's occurrence, a gap of 0..max_gap tokens
        other = p.right_ids
        seg_start = me
        seg = tokens[me : min(n, me + params.max_gap + len(other))]
    else:  # the left side before the right one's occurrence
        other = p.left_ids
        seg_start = max(0, ms - params.max_gap - len(other))
        seg = tokens[seg_start:ms]
    if len(seg) < len(other) or not len(other):
        return []
    at = np.flatnonzero((sliding_window_view(seg, len(other)) == other).all(axis=1)) + seg_start
    found: list[NearHit] = []
    for a in at.tolist():
        p0, p1, q0, q1 = (ms, me, a, a + len(other)) if side == 0 else (a, a + len(other), ms, me)
        if np.array_equal(tokens[p1:q0], p.gap_ids):
            continue  # no difference: the document holds the reply's own text here
        # the rule reads a few tokens past an edge: one the window cut there cannot be decided
        if (win.truncated_right and q1 + _RULE_REACH > n) or (win.truncated_left and p0 < _RULE_REACH):
            continue
        if params.whole_words:
            if w not in bounds:
                bounds[w] = index.tokenizer.word_boundaries().boundaries(tokens)
            bnd = bounds[w]
            if not (bnd[p0] and bnd[p1] and bnd[q0] and bnd[q1]):
                continue
        hit = _hit(index, p, occ, tokens, (p0, p1, q0, q1), params)
        if hit is not None:
            found.append(hit)
    return found


def _hit(index: IndexLike, p: Pair, occ: Occurrence, tokens: np.ndarray, marks: tuple[int, int, int, int],
         params: NearParams) -> NearHit | None:
    """The hit's window text and ranges, or None when the document's gap is more than one word."""
    tok = index.tokenizer
    p0, p1, q0, q1 = marks
    lo, hi = max(0, p0 - params.context), min(len(tokens), q1 + params.context)
    part = tokens[lo:hi]
    a, b = tok.whole_characters(part, p0 - lo, q1 - lo)  # no character cut at the edges
    part = part[a:b]
    base = lo + a
    text, left = tok.decode_span(part, p0 - base, p1 - base)
    _, gap = tok.decode_span(part, p1 - base, q0 - base)
    _, right = tok.decode_span(part, q0 - base, q1 - base)
    if word_runs(text[gap[0]:gap[1]]) > 1:
        return None
    diff = _trim(text, *gap) if q0 > p1 else (_trim(text, *left)[1],) * 2
    mine, theirs = bool(p.diff_text), diff[1] > diff[0]  # a gap of whitespace alone is no word
    kind = "insertion" if mine and not theirs else "deletion" if theirs and not mine else "substitution"
    win = occ.windows[0]
    doc_tokens = None
    if win.doc_start >= 0 and occ.hit.doc_start >= 0:
        off = win.doc_start - occ.hit.doc_start
        doc_tokens = (p0 + off, p1 + off, q0 + off, q1 + off)
    return NearHit(f"{index.name}:{occ.doc_id}", index.name, occ.hit.shard, occ.doc_id, occ.metadata, kind, text,
                   _trim(text, *left), (diff[0], diff[1]), _trim(text, *right), text[diff[0]:diff[1]], doc_tokens)


def near_spans(index: IndexLike, text: str, ids: np.ndarray, offsets: np.ndarray,
               spans: Sequence[tuple[int, int]], counts: Sequence[int] | None, params: NearParams,
               numbers: Sequence[int] | None = None) -> list[NearSpan]:
    """The near-verbatim spans of one text against one index, from its exact spans (token ranges
    in position order, with their counts when known). `numbers` renumbers the spans as the
    caller's list holds them (a trace lists every index's spans in one list)."""
    pairs = candidate_pairs(text, ids, offsets, spans, params)
    if counts is not None:
        for p in pairs:
            p.counts = (int(counts[p.left]), int(counts[p.right]))
    num = numbers if numbers is not None else range(len(spans))
    out = []
    for p, f in zip(pairs, find_near(index, pairs, params), strict=True):
        if not f.hits:
            continue
        out.append(NearSpan(index.name, num[p.left], num[p.right], p.start, p.end, p.diff, p.diff_text, p.l1, p.r2,
                            (p.r1, p.l2), f.counts, f.side, f.checked, f.capped, f.hits))
    return out


def summary_lines(spans: list[NearSpan], text: str, limit: int = 60) -> list[str]:
    """One line per near-verbatim span for a plain terminal: the region, the reply's word and the
    first document's (the caller makes them inert: both come from untrusted text)."""
    lines = [f"\n{len(spans)} near-verbatim span{'s' if len(spans) != 1 else ''}"]
    for n in spans:
        h = n.hits[0]
        region = " ".join(text[n.start:n.end].split())
        region = region if len(region) <= limit else region[: limit - 1] + "…"
        lines.append(f"- {region!r}: {n.diff_text or '(nothing)'!r} -> {h.diff_text or '(nothing)'!r} "
                     f"({h.kind}) in {h.doc_id}" + (f" and {len(n.hits) - 1} more" if len(n.hits) > 1 else "")
                     + (f" ({n.checked} of more occurrences checked)" if n.capped else ""))
    return lines


def near_to_json(spans: list[NearSpan]) -> list[dict[str, Any]]:
    out = []
    for s in spans:
        d = asdict(s)
        d["kinds"] = s.kinds
        out.append(d)
    return out


def _quad(value: Any) -> tuple[int, int, int, int] | None:
    """A saved `doc_tokens` (four token positions), or None."""
    if value is None:
        return None
    a, b, c, d = (int(v) for v in value)
    return a, b, c, d


def near_from_json(data: list[dict[str, Any]]) -> list[NearSpan]:
    """The inverse of `near_to_json` (a saved trace); KeyError/TypeError/ValueError otherwise."""
    out = []
    for d in data:
        hits = [NearHit(str(h["doc_id"]), str(h["index"]), int(h["shard"]), int(h["doc"]), dict(h["metadata"]),
                        str(h["kind"]), str(h["window"]), _pair(h["left"]), _pair(h["diff"]), _pair(h["right"]),
                        str(h["diff_text"]),
                        _quad(h.get("doc_tokens")))
                for h in d["hits"]]
        out.append(NearSpan(str(d["index"]), int(d["left"]), int(d["right"]), int(d["start"]), int(d["end"]),
                            _pair(d["diff"]), str(d["diff_text"]), int(d["token_start"]), int(d["token_end"]),
                            _pair(d["diff_tokens"]), _pair(d["counts"]), str(d["side"]), int(d["checked"]),
                            bool(d["capped"]), hits))
    return out


def _pair(v: Any) -> tuple[int, int]:
    a, b = v
    return int(a), int(b)


__all__ = ["NearParams", "NearSpan", "NearHit", "Pair", "Found", "candidate_pairs", "find_near", "near_spans",
           "near_to_json", "near_from_json", "summary_lines", "word_runs", "KINDS"]
