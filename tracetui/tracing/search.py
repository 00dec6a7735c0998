"""`tracetui search`: documents containing a text, with the match in context."""

from __future__ import annotations

from typing import Any

import numpy as np

from index_tools.engine import IndexSet

from .pipeline import window_text


def search_documents(indexes: IndexSet, text: str, limit: int = 10, context: int = 40) -> dict[str, Any]:
    """Occurrence counts per index and up to `limit` distinct documents (in suffix-array order)."""
    counts = []
    documents: list[dict[str, Any]] = []
    for index in indexes:
        ids = index.encode(text)
        ranges = index.find(ids) if len(ids) else [(0, 0)] * len(index.shards)
        counts.append({"index": index.name, "count": int(sum(hi - lo for lo, hi in ranges))})
        seen: set[int] = set()
        for shard, (lo, hi) in enumerate(ranges):
            rank = lo
            while rank < hi and len(documents) < limit:
                hit = index.hit(shard, rank)
                rank += 1
                gid = index.global_doc_id(shard, hit.doc)
                if gid in seen:
                    continue
                seen.add(gid)
                text, (start, end) = window_text(index, hit, len(ids), context)
                documents.append({
                    "index": index.name, "doc_id": gid, "shard": shard,
                    "metadata": index.metadata(shard, hit.doc), "snippet": text, "match": [start, end],
                })
    return {"counts": counts, "documents": documents, "tokens": [np.asarray(i.encode(text)).tolist() for i in indexes][:1]}
