"""The wire format of a served index: what `tracetui serve` (the server) and
`remote.RemoteIndex` (the client) both speak, defined once. Arrays travel as base64 of
little-endian int64 (`pack` / `unpack`): a 500-token reply's longest-prefix answer is 5 KB, not a
JSON list of thousands of numbers. `unpack` and `unpack_seqs` refuse anything that is not one
(a ValueError: a 400 on the server, a one-line `RemoteIndexError` on the client)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from .engine import Hit, Window

API_VERSION = 1
TOKEN_ENV = "TRACETUI_TOKEN"  # the bearer token a server requires and a client sends (`--token`)


def pack(arr: np.ndarray | list[int]) -> str:
    """An integer array as base64 of its little-endian int64 bytes."""
    return base64.b64encode(np.ascontiguousarray(arr, dtype="<i8").tobytes()).decode("ascii")


def unpack(text: Any, what: str = "array") -> np.ndarray:
    """The inverse of `pack`; ValueError on anything that is not one."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected a base64 string of little-endian int64")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise ValueError(f"{what}: not valid base64") from None
    if len(raw) % 8:
        raise ValueError(f"{what}: {len(raw)} bytes is not a whole number of int64")
    return np.frombuffer(raw, dtype="<i8").astype(np.int64)


def pack_seqs(seqs: list[np.ndarray]) -> dict[str, str]:
    """Many token sequences as one concatenated array and their lengths."""
    lens = [len(s) for s in seqs]
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if seqs else np.zeros(0, dtype=np.int64)
    return {"ids": pack(flat), "lengths": pack(lens)}


def unpack_seqs(data: dict[str, Any]) -> list[np.ndarray]:
    flat, lens = unpack(data.get("ids"), "ids"), unpack(data.get("lengths"), "lengths")
    if np.any(lens < 0) or int(lens.sum()) != len(flat):
        raise ValueError("lengths do not add up to the ids given")
    return np.split(flat, np.cumsum(lens)[:-1]) if len(lens) else []


def window_to_json(w: Window) -> dict[str, Any]:
    return {"tokens": pack(w.tokens), "match": [w.match_start, w.match_end], "doc_start": w.doc_start,
            "truncated": [w.truncated_left, w.truncated_right]}


def window_from_json(d: dict[str, Any]) -> Window:
    return Window(unpack(d["tokens"], "window"), int(d["match"][0]), int(d["match"][1]), int(d["doc_start"]),
                  bool(d["truncated"][0]), bool(d["truncated"][1]))


def hit_to_json(h: Hit) -> list[int]:
    return [h.shard, h.rank, h.pointer, h.doc, h.doc_start, h.doc_end, h.token]


__all__ = ["API_VERSION", "TOKEN_ENV", "pack", "unpack", "pack_seqs", "unpack_seqs", "window_to_json",
           "window_from_json", "hit_to_json"]
