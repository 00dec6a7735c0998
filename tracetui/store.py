"""Conversations persisted in SQLite (user data directory): list, reopen, delete.

Each message is stored with its trace as JSON, which records the fingerprints of the indexes it
was computed on and the trace parameters. On reopen a saved trace is reused when the same indexes
(same fingerprints) are open and the tracer runs with the same parameters, and recomputed
otherwise (`restore_traces`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from index_tools.opening import IndexSet

from .conversation import Conversation
from .tracing.pipeline import TraceParams, TraceResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    trace TEXT,
    PRIMARY KEY (conversation, position)
);
"""
#: columns added after the first release (added to older databases on open)
EXTRA_COLUMNS = {"mode": "TEXT NOT NULL DEFAULT 'chat'", "prompt_chars": "INTEGER NOT NULL DEFAULT 0",
                 "reasoning": "TEXT NOT NULL DEFAULT ''", "reasoning_trace": "TEXT"}


@dataclass
class ConversationInfo:
    id: int
    title: str
    updated: float
    messages: int


class ConversationStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.executescript(SCHEMA)
        have = {row[1] for row in self.db.execute("PRAGMA table_info(messages)")}
        with self.db:
            for name, decl in EXTRA_COLUMNS.items():
                if name not in have:
                    self.db.execute(f"ALTER TABLE messages ADD COLUMN {name} {decl}")
            if "system" not in {row[1] for row in self.db.execute("PRAGMA table_info(conversations)")}:
                self.db.execute("ALTER TABLE conversations ADD COLUMN system TEXT")  # the conversation's own

    def create(self, title: str) -> int:
        now = time.time()
        with self.db:
            cur = self.db.execute("INSERT INTO conversations (title, created, updated) VALUES (?, ?, ?)",
                                  (title[:200], now, now))
        return int(cur.lastrowid or 0)

    def save(self, conversation: Conversation) -> None:
        """Write every message of a conversation that has a row (`stored_id`)."""
        cid = conversation.stored_id
        if cid is None:
            return
        rows = [(cid, i, m.role, m.text, json.dumps(m.trace.to_json()) if m.trace else None, m.mode, m.prompt_chars,
                 m.reasoning, json.dumps(m.reasoning_trace.to_json()) if m.reasoning_trace else None)
                for i, m in enumerate(conversation.messages) if m.done]
        with self.db:
            self.db.execute("DELETE FROM messages WHERE conversation = ?", (cid,))
            self.db.executemany(
                "INSERT INTO messages (conversation, position, role, text, trace, mode, prompt_chars, reasoning, "
                "reasoning_trace) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self.db.execute("UPDATE conversations SET updated = ?, system = ? WHERE id = ?",
                            (time.time(), conversation.system, cid))

    def list(self) -> list[ConversationInfo]:
        rows = self.db.execute(
            "SELECT c.id, c.title, c.updated, COUNT(m.position) FROM conversations c "
            "LEFT JOIN messages m ON m.conversation = c.id GROUP BY c.id ORDER BY c.updated DESC"
        ).fetchall()
        return [ConversationInfo(int(a), str(b), float(c), int(d)) for a, b, c, d in rows]

    def load(self, conversation: int) -> Conversation:
        """The saved conversation; stored traces are kept as JSON in `Message.extra["trace"]`
        until `restore_traces` decides whether they still hold."""
        rows = self.db.execute(
            "SELECT role, text, trace, mode, prompt_chars, reasoning, reasoning_trace FROM messages "
            "WHERE conversation = ? ORDER BY position", (conversation,)).fetchall()
        modes = [row[3] for row in rows]
        conv = Conversation(mode=modes[-1] if modes else "chat", stored_id=conversation)
        row = self.db.execute("SELECT system FROM conversations WHERE id = ?", (conversation,)).fetchone()
        conv.system = row[0] if row else None
        for role, text, trace, mode, prompt_chars, reasoning, reasoning_trace in rows:
            msg = conv.add_loaded(role, text, mode=mode, prompt_chars=int(prompt_chars), reasoning=reasoning or "")
            for key, saved in (("trace", trace), ("reasoning_trace", reasoning_trace)):
                if saved:
                    try:
                        msg.extra[key] = json.loads(saved)
                    except json.JSONDecodeError:
                        pass  # a damaged row: traced again
        return conv

    def delete(self, conversation: int) -> None:
        with self.db:
            self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation,))


def restore_traces(conversation: Conversation, indexes: IndexSet | None, params: TraceParams | None = None) -> int:
    """Attach each saved trace that a trace made now would equal: the same indexes (names and
    fingerprints), the same trace parameters (`params`, the tracer's; default `TraceParams()`;
    every field, as saved: a record missing one is traced again), the same text and prompt. The
    others stay None, to be traced again. Returns how many were reused."""
    if indexes is None:
        return 0
    current = {ix.name: ix.fingerprint for ix in indexes}
    # as `TraceResult.to_json` writes them (tuples become lists)
    wanted = json.loads(json.dumps(asdict(params or TraceParams())))
    reused = 0
    for msg in conversation.messages:
        for key, text in (("trace", msg.text), ("reasoning_trace", msg.reasoning)):
            data: Any = msg.extra.pop(key, None)
            if not isinstance(data, dict) or data.get("indexes") != current or data.get("text") != text:
                continue
            if data.get("params") != wanted or data.get("prompt") != _prompt_of(conversation, msg):
                continue
            try:
                setattr(msg, key, TraceResult.from_json(data))
                reused += key == "trace"  # a reasoning trace is never traced again by itself
            except (KeyError, TypeError, ValueError):
                setattr(msg, key, None)
    return reused


def _prompt_of(conversation: Conversation, msg: Any) -> str:
    """The prompt the app traces a reply with (ranking uses it): none in continue mode."""
    return "" if msg.prompt_chars else conversation.prompt_for(msg)
