"""Export a conversation, with every span, its counts and documents, to Markdown and JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .conversation import Conversation

LABEL = {"user": "You", "assistant": "Model", "text": "Traced text"}


def export_conversation(conversation: Conversation, directory: Path) -> Path:
    """Write tracetui-<time>.json and .md into `directory`; returns the common base path."""
    data = conversation.to_json()
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / f"tracetui-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while base.with_suffix(".json").exists():  # two exports in one second keep both
        n += 1
        base = directory / f"tracetui-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    base.with_suffix(".json").write_text(json.dumps(data, ensure_ascii=True, indent=2), encoding="utf-8")
    md = [f"# tracetui conversation ({data['mode']} mode)\n"]
    for t in data["turns"]:
        md.append(f"## {LABEL.get(t['role'], t['role'])}\n\n{t['text']}\n")
        _spans(md, t["trace"])
        if t.get("reasoning"):  # apart from the answer: a quoted section of its own, with its own spans
            quoted = "\n".join(f"> {line}" if line else ">" for line in t["reasoning"].split("\n"))
            md.append(f"### Reasoning\n\n{quoted}\n")
            _spans(md, t.get("reasoning_trace"))
    base.with_suffix(".md").write_text("\n".join(md), encoding="utf-8")
    return base


def _spans(md: list[str], trace: dict[str, Any] | None) -> None:
    if trace:
        for s in trace["spans"]:
            md.append(f"- `{s['text']}` — {s['level']}, occurs {s['count']}×, in {', '.join(s['documents'])}")
        md.append("")
