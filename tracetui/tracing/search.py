"""`tracetui search`: documents containing a text, with the match in context."""

from __future__ import annotations

from typing import Any

import numpy as np

from index_tools.opening import IndexSet

from .pipeline import decode_window


def search_documents(indexes: IndexSet, text: str, limit: int = 10, context: int = 40,
                     whole_words: bool = True) -> dict[str, Any]:
    """Occurrence counts per index and up to `limit` distinct documents (in suffix-array order).

    With `whole_words` (the default) only occurrences that are whole words on both sides count
    and are shown ("Hi" is not found inside "History"); without, every substring occurrence."""
    counts = []
    documents: list[dict[str, Any]] = []
    for index in indexes:
        ids = index.encode(text)
        if not len(ids):
            counts.append({"index": index.name, "count": 0})
            continue
        if whole_words:
            chunks = index.word_occurrences(ids)
        else:
            chunks = ((n, np.arange(lo, hi)) for n, (lo, hi) in enumerate(index.find(ids)) if hi > lo)
        total = 0
        seen: set[int] = set()
        for shard, ranks in chunks:  # streamed: memory does not grow with the occurrences
            total += len(ranks)
            if len(documents) >= limit:
                continue
            # the candidates of this chunk in one `windows` call (one round trip when served)
            found = index.windows([(shard, r, len(ids)) for r in ranks[: 4 * limit].tolist()], (context,))
            for occ in found:
                if len(documents) >= limit:
                    break
                if occ.doc_id in seen:
                    continue
                seen.add(occ.doc_id)
                snippet, (start, end) = decode_window(index, occ.windows[0])
                documents.append({
                    "index": index.name, "doc_id": occ.doc_id, "shard": shard,
                    "metadata": occ.metadata, "snippet": snippet, "match": [start, end],
                })
        counts.append({"index": index.name, "count": total})
    return {"counts": counts, "documents": documents, "whole_words": whole_words,
            "tokens": [np.asarray(i.encode(text)).tolist() for i in indexes][:1]}
