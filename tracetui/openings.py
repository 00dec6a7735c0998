"""The demo openings of continue mode (`assets/openings.toml`, shipped inside the package)."""

from __future__ import annotations

import tomllib
from pathlib import Path

PATH = Path(__file__).resolve().parent / "data" / "openings.toml"


def load_openings(path: Path = PATH) -> list[str]:
    """Opening texts in file order; none if the file is missing or unreadable (the app still runs)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return []
    return [o["text"] for o in data.get("opening", []) if isinstance(o, dict) and isinstance(o.get("text"), str)]
