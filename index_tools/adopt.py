"""Adopt an index built by infini-gram's own builder: check it, then write our manifest into it."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import IndexFormatError
from .format import (
    MANIFEST_NAME,
    SHARD_KINDS,
    TOKENIZER_NAME,
    WIDTH_BY_NAME,
    Manifest,
    ShardInfo,
    pointer_width,
    record_files,
    shard_file,
    write_manifest,
)
from .tokenizer import HFTokenizer, load_tokenizer


def adopt_index(directory: str | Path, tokenizer: str, token_width: str = "u16", eos_id: int | None = None) -> Manifest:
    """Write a manifest describing the infini-gram shards found in `directory`; verify before keeping it."""
    from .verify import verify_index

    d = Path(directory)
    width = WIDTH_BY_NAME[token_width]
    shards: list[ShardInfo] = []
    n = 0
    while shard_file(d, "tokenized", n).exists():
        tb = shard_file(d, "tokenized", n).stat().st_size
        if not shard_file(d, "offset", n).exists() or not shard_file(d, "table", n).exists():
            raise IndexFormatError(f"{d}: shard {n} lacks offset.{n} or table.{n}")
        docs = shard_file(d, "offset", n).stat().st_size // 8
        table = shard_file(d, "table", n).stat().st_size
        shards.append(ShardInfo(documents=docs, tokens=tb // width, tokenized_bytes=tb, table_bytes=table,
                                pointer_width=pointer_width(tb)))
        n += 1
    if not shards:
        raise IndexFormatError(f"{d}: no tokenized.0 file: not an infini-gram index")
    tok = load_tokenizer(tokenizer)
    name = "bytes"
    if isinstance(tok, HFTokenizer):  # a tokenizer file: the index keeps its own copy
        shutil.copyfile(tok.path, d / TOKENIZER_NAME)
        name = TOKENIZER_NAME
    manifest = Manifest(token_width=width, tokenizer=name, shards=shards, vocab_size=tok.vocab_size,
                        eos_id=eos_id, source="infini-gram", build={"adopted": True})
    write_manifest(d, manifest)
    faults = verify_index(d)
    if faults:
        (d / MANIFEST_NAME).unlink(missing_ok=True)
        raise IndexFormatError(f"{d}: not adopted: {faults[0]}")
    # record sizes and digests of the verified files: later changes are caught (open / verify)
    names = [shard_file(d, kind, i).name for i in range(len(shards)) for kind in SHARD_KINDS
             if shard_file(d, kind, i).exists()]
    manifest.files = record_files(d, names + ([TOKENIZER_NAME] if name != "bytes" else []), 2)
    write_manifest(d, manifest)
    return manifest
