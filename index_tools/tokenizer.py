"""Text <-> token ids for an index: HF `tokenizers` files, raw bytes, or a BPE trained on the corpus.

The index stores its tokenizer so that a query is always tokenized exactly as the corpus was.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .errors import TokenizerError

#: Markers that BPE / SentencePiece vocabularies put at the start of a token that follows a space.
SPACE_MARKERS = ("Ġ", "▁", " ", "Ċ", "\n", "\t")


class Tokenizer:
    """Common interface: ids as numpy arrays, char offsets for highlighting."""

    name: str
    vocab_size: int

    def encode(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self.encode(t) for t in texts]

    def encode_with_offsets(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Ids and an (n, 2) array of [start, end) character offsets into `text`."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        raise NotImplementedError

    def word_start_mask(self) -> np.ndarray:
        """Boolean per token id: does this token begin a word?"""
        raise NotImplementedError

    def fingerprint(self) -> str:
        raise NotImplementedError


class ByteTokenizer(Tokenizer):
    """One token per UTF-8 byte (u8 index); 0xFF never occurs in UTF-8, so it is free as separator."""

    name = "bytes"
    vocab_size = 255  # byte values 0..254; 0xFF is the separator and never occurs in UTF-8

    def encode(self, text: str) -> np.ndarray:
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

    def word_start_mask(self) -> np.ndarray:
        mask = np.zeros(256, dtype=bool)
        for b in range(128):
            mask[b] = not chr(b).isalnum()
        # Leading bytes of multi-byte chars begin a word only if the char is not a letter/digit;
        # we cannot know which char from one byte, so treat them as word starts (they cannot be
        # continuation bytes, which never begin anything).
        mask[0xC0:0xF8] = True
        return mask

    def fingerprint(self) -> str:
        return "bytes"


class HFTokenizer(Tokenizer):
    """A HuggingFace `tokenizer.json`, encoded without special tokens (as infini-gram does)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as _HF

        self.path = Path(path)
        try:
            self._tok = _HF.from_file(str(self.path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad files
            raise TokenizerError(f"{self.path}: cannot load tokenizer ({str(exc).splitlines()[0]})") from None
        self.name = self.path.name
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self._mask: np.ndarray | None = None

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.int64)

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

    def word_start_mask(self) -> np.ndarray:
        if self._mask is None:
            mask = np.zeros(self.vocab_size, dtype=bool)
            for token, idx in self._tok.get_vocab(with_added_tokens=True).items():
                if idx < self.vocab_size:
                    mask[idx] = _begins_word(token)
            self._mask = mask
        return self._mask

    def fingerprint(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]


def _begins_word(token: str) -> bool:
    if not token:
        return True
    if token.startswith(SPACE_MARKERS) or token.startswith("<0x"):
        return True
    ch = token[0]
    cat = unicodedata.category(ch)
    return not (cat.startswith("L") or cat.startswith("N"))


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
