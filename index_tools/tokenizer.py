"""Text <-> token ids for an index: HF `tokenizers` files, raw bytes, or a BPE trained on the corpus.

The index stores its tokenizer so that a query is always tokenized exactly as the corpus was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TokenizerError
from .words import BEGINS, CONTINUES, WordBoundaries, classify_bytes

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class Tokenizer:
    """Common interface: ids as numpy arrays, char offsets for highlighting."""

    name: str
    vocab_size: int

    def encode_ids(self, text: str) -> list[int]:
        """The ids of `text` as a plain list: what `encode` wraps, and what a one-shot query
        (`tracetui count --substring`) uses without numpy (see `tracetui.lazy_imports`)."""
        raise NotImplementedError

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.encode_ids(text), dtype=np.int64)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self.encode(t) for t in texts]

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Ids and an (n, 2) array of [start, end) character offsets into `text`."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        raise NotImplementedError

    def decode_span(self, ids: Sequence[int] | np.ndarray, start: int, end: int) -> tuple[str, tuple[int, int]]:
        """`ids` decoded as one piece, and the character range in that text of tokens [start, end).

        Decoding pieces separately and concatenating them is wrong with decoders that are not
        piecewise: Llama-2's SentencePiece pipeline strips one leading space from what it decodes
        (so "on" + " the mat" + " today" came out "onthe mattoday"), and a byte-level token
        boundary can fall inside a UTF-8 character. Here the whole is decoded once, and a
        boundary's offset is the length of the decoded tokens before it, as far as that agrees
        with the whole. A boundary inside a character is first moved to the character's start
        (for `start`) or end (for `end`), from the tokens' bytes: the range covers every
        character any of whose bytes come from the tokens, and what is decoded before a boundary
        is always whole characters (a partial one would read U+FFFD, and Llama-2's ByteFallback
        turns the whole run of byte pieces around it into U+FFFD). Three decodes, as many as
        decoding the three pieces."""
        ids = np.asarray(ids, dtype=np.int64)
        n = len(ids)
        start, end = max(0, min(start, n)), max(0, min(end, n))
        text = self.decode(ids)
        at_char = self._at_character(ids)
        while start > 0 and not at_char[start]:
            start -= 1
        while end < n and not at_char[end]:
            end += 1
        a = _agreeing(text, self.decode(ids[:start])) if start > 0 else 0
        if end <= start:
            return text, (a, a)
        b = len(text) if end >= n else _agreeing(text, self.decode(ids[:end]))
        return text, (a, max(a, b))

    @cached_property
    def _token_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Every token's bytes laid end to end (uint8) and the vocabulary + 1 offsets of the
        tokens in it: what `_bytes_of` gathers from."""
        return _laid_end_to_end(self.token_bytes())

    def _bytes_of(self, ids: np.ndarray) -> tuple[bytes, np.ndarray]:
        """The bytes `ids` stand for and the byte offset of each of the n + 1 token boundaries:
        one gather from `_token_table` (ids outside the vocabulary stand for no bytes)."""
        blob, offs = self._token_table
        ids = np.asarray(ids, dtype=np.int64)
        ok = (ids >= 0) & (ids < len(offs) - 1)
        safe = np.where(ok, ids, 0)
        starts = offs[safe]
        sizes = np.where(ok, offs[safe + 1] - starts, 0)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        at = np.repeat(starts - bounds[:-1], sizes) + np.arange(int(bounds[-1]), dtype=np.int64)
        return blob[at].tobytes(), bounds

    def _at_character(self, ids: np.ndarray) -> np.ndarray:
        """Per token boundary 0..n of `ids`: does a character begin there (or the text end)?"""
        data, offsets = self._bytes_of(ids)
        return (np.frombuffer(data + b"\0", dtype=np.uint8)[offsets] & 0xC0) != 0x80

    def token_bytes(self) -> list[bytes]:
        """The bytes each token id stands for (b"" for special tokens)."""
        raise NotImplementedError

    def token_text(self, token: int) -> str:
        """One token as a reader should see it alone, its leading space included: the text of its
        bytes (decoding it alone would drop the space with decoders that strip one, as
        Llama-2's; a piece of a character shows as U+FFFD). Special tokens decode as themselves."""
        table = self.token_bytes()
        data = table[token] if 0 <= token < len(table) else b""
        return data.decode("utf-8", errors="replace") if data else self.decode([token])

    def whole_characters(self, ids: Sequence[int] | np.ndarray, start: int, end: int) -> tuple[int, int]:
        """The tokens [lo, hi) of `ids` to decode so that the text neither begins nor ends inside
        a character: a window cut from a document may begin with the last bytes of a character
        and end with the first bytes of one, which decode to U+FFFD (and with Llama-2's
        ByteFallback, to one U+FFFD per byte of the whole run of byte pieces around them). Only
        tokens that lie wholly in such a cut character are dropped, never one of [start, end)."""
        ids = np.asarray(ids, dtype=np.int64)
        data, offsets = self._bytes_of(ids)
        lo, hi = 0, len(ids)
        cont = 0  # continuation bytes the text begins with
        while cont < min(len(data), 4) and data[cont] & 0xC0 == 0x80:
            cont += 1
        if cont:  # the tokens that end by then
            lo = min(int(np.searchsorted(offsets[1:], cont, side="right")), start)
        for k in range(1, min(4, len(data)) + 1):
            lead = data[-k]
            if lead & 0xC0 != 0x80:
                need = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
                if need > k:  # the last character is incomplete: the tokens that begin in it go
                    hi = max(int(np.searchsorted(offsets[:-1], len(data) - k, side="left")), end, lo)
                break
        return lo, hi

    def word_boundaries(self) -> WordBoundaries:
        """Word-start classes of every token, from what it decodes to (see `index_tools.words`)."""
        raise NotImplementedError

    def word_start_mask(self) -> np.ndarray:
        """Boolean per token id: may this token begin a word? (token level, for `bow_ids` files)"""
        return self.word_boundaries().static_mask

    def fingerprint(self) -> str:
        raise NotImplementedError


class ByteTokenizer(Tokenizer):
    """One token per UTF-8 byte (u8 index); 0xFF never occurs in UTF-8, so it is free as separator."""

    name = "bytes"
    vocab_size = 255  # byte values 0..254; 0xFF is the separator and never occurs in UTF-8
    _words: WordBoundaries | None = None

    def encode_ids(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode(self, text: str) -> np.ndarray:
        # the builder encodes whole corpora through here: the bytes as an array in one step,
        # not an int object per byte (what `encode_ids` gives a one-shot query)
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        data = text.encode("utf-8")
        ids = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        # char index of every byte: continuation bytes belong to the char they continue.
        is_start = (ids & 0xC0) != 0x80
        char_of_byte = np.cumsum(is_start) - 1
        starts = char_of_byte
        ends = char_of_byte + 1
        return ids, np.stack([starts, ends], axis=1).astype(np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return bytes(np.asarray(ids, dtype=np.uint8).tobytes()).decode("utf-8", errors="replace")

    def token_bytes(self) -> list[bytes]:
        return [bytes([b]) for b in range(self.vocab_size)]

    def word_boundaries(self) -> WordBoundaries:
        # ASCII bytes by their character; a lead byte is unsure (the character it opens decides)
        if self._words is None:
            data = [bytes([b]) for b in range(self.vocab_size)]
            self._words = WordBoundaries(np.array([classify_bytes(b) for b in data]), data)
        return self._words

    def fingerprint(self) -> str:
        return "bytes"


class HFTokenizer(Tokenizer):
    """A HuggingFace `tokenizer.json`, encoded without special tokens (as infini-gram does)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as _HF

        self.path = Path(path)
        try:  # the file is read once: parsed, and hashed for the fingerprint (the tables' cache key)
            data = self.path.read_bytes()
            self._tok = _HF.from_str(data.decode("utf-8"))
        except OSError as exc:
            raise TokenizerError(f"{self.path}: cannot load tokenizer ({exc.strerror or exc})") from None
        except Exception as exc:  # tokenizers raises a bare Exception on bad files; not UTF-8 either
            raise TokenizerError(f"{self.path}: cannot load tokenizer ({str(exc).splitlines()[0]})") from None
        self.name = self.path.name
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self._words: WordBoundaries | None = None
        self._fingerprint = hashlib.sha256(data).hexdigest()[:16]
        self._blob: tuple[bytes, np.ndarray] | None = None  # token bytes as cached, not yet cut
        self._bytes: list[bytes] | None = None

    def encode_ids(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        encs = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encs]

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        enc = self._tok.encode(text, add_special_tokens=False)
        ids = np.asarray(enc.ids, dtype=np.int64)
        offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        return ids, offs

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    @cached_property
    def _token_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The cached blob as it is (not cut into a bytes object per token)."""
        if self._bytes is None and self._blob is None:
            self._tables()
        if self._blob is not None:
            blob, offs = self._blob
            return np.frombuffer(blob or b"\0", dtype=np.uint8)[: int(offs[-1])], np.asarray(offs, dtype=np.int64)
        return _laid_end_to_end(self.token_bytes())

    def token_bytes(self) -> list[bytes]:
        if self._bytes is None and self._blob is None:
            self._tables()
        if self._bytes is None and self._blob is not None:
            blob, offs = self._blob
            o = offs.tolist()
            self._bytes = [blob[o[i] : o[i + 1]] for i in range(self.vocab_size)]
        assert self._bytes is not None
        return self._bytes

    def _build_tables(self) -> tuple[list[bytes], np.ndarray]:
        """The bytes each token stands for and its word class, from the vocabulary (a Python
        walk over every token: what `_tables` caches)."""
        spec = self._spec
        family = _family(spec)
        special = {t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
        prefix = (spec.get("model") or {}).get("continuing_subword_prefix") or "##"
        to_byte = _byte_level_decoder() if family == "byte-level" else {}
        table = [b""] * self.vocab_size
        classes = np.full(self.vocab_size, BEGINS, dtype=np.int8)
        for token, idx in self._tok.get_vocab(with_added_tokens=True).items():
            if idx >= self.vocab_size or idx in special:
                continue  # special tokens stand alone: they begin a word, decode to nothing
            if family == "wordpiece":  # no spaces kept: a token without "##" begins a word
                cont = token.startswith(prefix)
                classes[idx] = CONTINUES if cont else BEGINS
                table[idx] = (token[len(prefix):] if cont else token).encode("utf-8")
            else:
                table[idx] = _token_bytes(token, family, to_byte)
                classes[idx] = classify_bytes(table[idx])
        return table, classes

    def _tables(self) -> None:
        """Token bytes and word-boundary tables: from the user's cache (keyed by the tokenizer
        file's digest), else built and cached (atomically). A fresh process then starts in
        milliseconds instead of walking the vocabulary."""
        path = _tables_cache(self.fingerprint())
        if path is not None and path.exists():
            try:
                with np.load(path, allow_pickle=False) as z:
                    blob, offs = z["blob"].tobytes(), z["offsets"]
                    words = WordBoundaries.from_arrays({k: z[k] for k in WordBoundaries.ARRAYS})
                if len(offs) == self.vocab_size + 1 and len(words.classes) == self.vocab_size:
                    self._blob = (blob, offs)  # the bytes table is cut from it on first need
                    self._words = words
                    return
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass  # damaged or foreign: rebuilt below
        table, classes = self._build_tables()
        self._bytes, self._words = table, WordBoundaries(classes, table)
        if path is not None:
            blob, offs = _laid_end_to_end(table)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
            try:
                arrays: dict[str, Any] = {"blob": blob, "offsets": offs, **self._words.to_arrays()}
                np.savez(tmp, **arrays)
                os.replace(tmp, path)
            except OSError:
                tmp.unlink(missing_ok=True)

    @cached_property
    def _spec(self) -> dict:
        return json.loads(self._tok.to_str())

    @property
    def family(self) -> str:
        """"byte-level", "wordpiece" or "sentencepiece" (also any plain-text vocabulary)."""
        return _family(self._spec)

    def word_boundaries(self) -> WordBoundaries:
        if self._words is None:
            self._tables()
        assert self._words is not None
        return self._words

    def fingerprint(self) -> str:
        return self._fingerprint


#: bump when the tables `HFTokenizer._tables` caches change meaning
_TABLES_VERSION = 1


def _laid_end_to_end(table: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Token bytes laid end to end (uint8) and the len(table) + 1 offsets of the tokens in it."""
    offs = np.concatenate([[0], np.cumsum([len(b) for b in table])]).astype(np.int64)
    return np.frombuffer(b"".join(table) or b"\0", dtype=np.uint8)[: int(offs[-1])], offs


def _tables_cache(fingerprint: str) -> Path | None:
    """Where a tokenizer's token tables are cached (None: no writable cache directory)."""
    try:
        from platformdirs import user_cache_dir

        d = Path(user_cache_dir("tracetui")) / "token-tables"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{fingerprint}-v{_TABLES_VERSION}.npz"
    except OSError:
        return None


def _agreeing(whole: str, part: str) -> int:
    """Length of the longest common prefix of two strings (C-speed comparisons: `part` is usually
    a prefix of `whole`, or differs only in its last few characters)."""
    if whole.startswith(part):
        return len(part)
    for k in range(1, min(4, len(part)) + 1):  # a partial character at the end: one U+FFFD per byte
        if whole.startswith(part[: len(part) - k]):
            lo, hi = len(part) - k, len(part) - k + 1
            break
    else:
        lo, hi = 0, len(part)
    while hi - lo > 1:  # whole[:lo] == part[:lo], whole[:hi] != part[:hi]
        mid = (lo + hi) // 2
        if whole.startswith(part[:mid]):
            lo = mid
        else:
            hi = mid
    return lo


def _family(spec: dict) -> str:
    """Which vocabulary convention a tokenizer.json follows, from its model and (pre-)decoders."""
    if (spec.get("model") or {}).get("type") == "WordPiece":
        return "wordpiece"

    def has_byte_level(node: object) -> bool:
        if isinstance(node, dict):
            return node.get("type") == "ByteLevel" or any(has_byte_level(v) for v in node.values())
        if isinstance(node, list):
            return any(has_byte_level(v) for v in node)
        return False

    if has_byte_level(spec.get("pre_tokenizer")) or has_byte_level(spec.get("decoder")):
        return "byte-level"
    return "sentencepiece"


def _byte_level_decoder() -> dict[str, int]:
    """Stand-in character -> byte of byte-level BPE (GPT-2's convention): the printable bytes of
    Latin-1 stand for themselves, the 68 others (controls, space, NBSP, soft hyphen) are given the
    characters from U+0100 upwards in byte order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    out = {chr(b): b for b in printable}
    seen = set(printable)
    extra = 0
    for b in range(256):
        if b not in seen:
            out[chr(0x100 + extra)] = b
            extra += 1
    return out


def _token_bytes(token: str, family: str, to_byte: dict[str, int]) -> bytes:
    """The bytes a vocabulary entry stands for."""
    if family == "byte-level":
        if all(ch in to_byte for ch in token):
            return bytes(to_byte[ch] for ch in token)
        return token.encode("utf-8")  # an added token stored as plain text
    m = _BYTE_PIECE.fullmatch(token)
    if m:
        return bytes([int(m.group(1), 16)])
    return token.replace("▁", " ").encode("utf-8")


def load_tokenizer(spec: str | Path) -> Tokenizer:
    """`bytes` or a path to a `tokenizer.json`."""
    if str(spec) == "bytes":
        return ByteTokenizer()
    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.exists():
        raise TokenizerError(f"{path}: tokenizer file not found")
    return HFTokenizer(path)


def train_bpe(texts: Iterable[str], out_path: Path, vocab_size: int = 32000) -> HFTokenizer:
    """Train a byte-level BPE on a sample of the corpus; the vocabulary stays below 65,535."""
    from tokenizers import Tokenizer as _HF
    from tokenizers import decoders, models, pre_tokenizers, trainers

    vocab_size = min(vocab_size, 65000)
    tok = _HF(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    tok.train_from_iterator(texts, trainer=trainer)
    out_path.write_text(tok.to_str(), encoding="utf-8")
    return HFTokenizer(out_path)


def write_word_start_ids(tokenizer: Tokenizer, path: Path) -> None:
    """Write the word-start ids one per line: the `bow_ids_path` file infini-gram's attribute reads."""
    ids = np.flatnonzero(tokenizer.word_start_mask())
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")


def describe(tokenizer: Tokenizer) -> dict[str, object]:
    return {"name": tokenizer.name, "vocab_size": tokenizer.vocab_size}


__all__ = [
    "Tokenizer",
    "ByteTokenizer",
    "HFTokenizer",
    "load_tokenizer",
    "train_bpe",
    "write_word_start_ids",
    "describe",
]
