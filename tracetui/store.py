"""Conversations persisted in SQLite (user data directory): list, reopen, delete.

Each message is stored with the trace JSON it had when saved (for export and audit); on
reopen the app traces the replies again against the indexes open now, which is fast and shows
what the current corpus says.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def create(self, title: str) -> int:
        now = time.time()
        with self.db:
            cur = self.db.execute("INSERT INTO conversations (title, created, updated) VALUES (?, ?, ?)",
                                  (title[:200], now, now))
        return int(cur.lastrowid or 0)

    def save_messages(self, conversation: int, messages: list[tuple[str, str, dict[str, Any] | None]]) -> None:
        with self.db:
            self.db.execute("DELETE FROM messages WHERE conversation = ?", (conversation,))
            self.db.executemany(
                "INSERT INTO messages (conversation, position, role, text, trace) VALUES (?, ?, ?, ?, ?)",
                [(conversation, i, r, t, json.dumps(tr) if tr else None) for i, (r, t, tr) in enumerate(messages)],
            )
            self.db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), conversation))

    def list(self) -> list[ConversationInfo]:
        rows = self.db.execute(
            "SELECT c.id, c.title, c.updated, COUNT(m.position) FROM conversations c "
            "LEFT JOIN messages m ON m.conversation = c.id GROUP BY c.id ORDER BY c.updated DESC"
        ).fetchall()
        return [ConversationInfo(int(a), str(b), float(c), int(d)) for a, b, c, d in rows]

    def load(self, conversation: int) -> list[tuple[str, str, dict[str, Any] | None]]:
        rows = self.db.execute(
            "SELECT role, text, trace FROM messages WHERE conversation = ? ORDER BY position", (conversation,)
        ).fetchall()
        return [(r, t, json.loads(tr) if tr else None) for r, t, tr in rows]

    def delete(self, conversation: int) -> None:
        with self.db:
            self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation,))
