"""The answer cache: one SQLite file (WAL, one table) mapping a call's identity to its answer.

A call is identified by the sha256 of the canonical JSON of
``[content_sha256, prompt, model, params]`` (:func:`cache_key`), so a rerun over the same
documents with the same prompt, model and parameters is answered without a provider
call. One process writes (the driver); other processes may read the file concurrently
thanks to WAL. A cache object holds one connection and is not shared between threads.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

SCHEMA_VERSION: Final = 1

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS answers (
    key    TEXT PRIMARY KEY,   -- cache_key(): 64 hex digits
    answer TEXT NOT NULL,      -- the answer, JSON
    usage  TEXT NOT NULL       -- token usage as billed, JSON object
) WITHOUT ROWID
"""


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept, NaN refused: one text per value."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def cache_key(content_sha256: str, prompt: str, model: str, params: Mapping[str, Any]) -> str:
    """The sha256 (hex) identifying one call; ``params`` are the sampling parameters
    (temperature, max_tokens, schema, …) and must be JSON-serialisable."""
    ident = canonical_json([content_sha256, prompt, model, dict(params)])
    return hashlib.sha256(ident.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    answer: Any
    usage: Mapping[str, Any]


class AnswerCache:
    """``get``/``put`` answers by :func:`cache_key`. Use as a context manager or ``close()``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: answer cache schema {version} is newer than this "
                    f"docmill's ({SCHEMA_VERSION})"
                )
            if version < SCHEMA_VERSION:
                with self._conn:
                    self._conn.execute("BEGIN IMMEDIATE")
                    self._conn.execute(_SCHEMA)
                    self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            self._conn.close()
            raise

    def get(self, key: str) -> CachedAnswer | None:
        row = self._conn.execute(
            "SELECT answer, usage FROM answers WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return CachedAnswer(json.loads(row[0]), json.loads(row[1]))

    def put(self, key: str, answer: Any, usage: Mapping[str, Any]) -> None:
        """Store (or replace) an answer; committed when this returns."""
        self._conn.execute(
            "INSERT OR REPLACE INTO answers (key, answer, usage) VALUES (?, ?, ?)",
            (key, canonical_json(answer), canonical_json(dict(usage))),
        )

    def __len__(self) -> int:
        count: int = self._conn.execute("SELECT count(*) FROM answers").fetchone()[0]
        return count

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
