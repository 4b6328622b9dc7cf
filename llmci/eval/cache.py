"""The eval cache: generations by (target identity, prompt, generation parameters), scores by
(metric configuration, test case). One SQLite file, so a crash never leaves it half-written
and parallel runs of llmci share it safely.

Only successes are cached: an error is retried on the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from llmci.config import GenerationConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def generation_key(target_identity: str, prompt: str, params: GenerationConfig) -> str:
    """The key of one generation: the runner and the pytest fixture `llmci_target` share these entries."""
    return cache_key("generation", target_identity, prompt, params.model_dump())


class EvalCache:
    """Reads go to SQLite; writes are buffered and committed in one transaction per `flush`."""

    def __init__(self, path: Path | None) -> None:
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[str, str, str]] = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def get(self, table: str, key: str) -> dict[str, Any] | None:
        if self._db is None:
            return None
        row = self._db.execute(f"SELECT value FROM {table} WHERE key = ?", (key,)).fetchone()  # noqa: S608 - fixed names
        return json.loads(row[0]) if row else None

    def put(self, table: str, key: str, value: dict[str, Any]) -> None:
        if self._db is not None:
            self._pending.append((table, key, json.dumps(value)))

    def flush(self) -> None:
        if self._db is None or not self._pending:
            return
        with self._db:
            for table in ("generations", "scores"):
                rows = [(key, value) for t, key, value in self._pending if t == table]
                self._db.executemany(f"INSERT OR REPLACE INTO {table} (key, value) VALUES (?, ?)", rows)  # noqa: S608
        self._pending.clear()

    def close(self) -> None:
        if self._db is not None:
            self.flush()
            self._db.close()
            self._db = None
