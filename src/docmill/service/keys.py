"""API keys, stored hashed in ``{service.data_dir}/service.db`` (table ``api_keys``).

A key reads ``dm_<id>_<secret>``: ``id`` (12 hex digits) finds the row, the 192-bit
random ``secret`` is checked against its stored SHA-256 in constant time. The
plaintext is returned once by :meth:`KeyStore.create` and never stored or logged;
a slow hash (scrypt) buys nothing for a secret this long and would cost every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docmill.service.jobs import open_service_db

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "keys_0001_api_keys",
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            tier TEXT NOT NULL,
            secret_sha256 TEXT NOT NULL,
            created_at REAL NOT NULL,
            revoked_at REAL
        )
        """,
    ),
    (
        # what the key may spend on LLM calls a calendar month (NULL: its tier's limit)
        "keys_0002_monthly_budget",
        "ALTER TABLE api_keys ADD COLUMN monthly_budget_usd REAL",
    ),
)

PREFIX = "dm_"
_KEY = re.compile(r"^dm_([0-9a-f]{12})_([0-9a-f]{48})$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    tier: str
    created_at: float
    revoked_at: float | None
    monthly_budget_usd: float | None = None  # None: the tier's monthly LLM limit

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "tier": self.tier,
                "created_at": self.created_at, "revoked_at": self.revoked_at,
                "monthly_budget_usd": self.monthly_budget_usd}


def _digest(key_id: str, secret: str) -> str:
    return hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()


def parse_key(presented: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, else None."""
    m = _KEY.match(presented.strip())
    return (m.group(1), m.group(2)) if m else None


class KeyStore:
    """The ``api_keys`` table; one connection serialised by a lock (thread-safe)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: str | Path) -> KeyStore:
        return cls(open_service_db(data_dir, MIGRATIONS))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def create(
        self, tier: str, name: str = "", monthly_budget_usd: float | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its plaintext (shown once; only its hash is kept);
        ``monthly_budget_usd``: its own monthly LLM limit (None: its tier's)."""
        key_id = secrets.token_hex(6)
        secret = secrets.token_hex(24)
        now = time.time()
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_keys (id, name, tier, secret_sha256, created_at, monthly_budget_usd) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, tier, _digest(key_id, secret), now, monthly_budget_usd),
            )
        key = ApiKey(key_id, name, tier, now, None, monthly_budget_usd)
        return key, f"{PREFIX}{key_id}_{secret}"

    def _row(self, key_id: str) -> tuple[Any, ...] | None:
        with self._lock:
            row: tuple[Any, ...] | None = self._conn.execute(
                "SELECT id, name, tier, created_at, revoked_at, monthly_budget_usd, secret_sha256 "
                "FROM api_keys WHERE id=?",
                (key_id,),
            ).fetchone()
        return row

    def get(self, key_id: str) -> ApiKey | None:
        row = self._row(key_id)
        return ApiKey(*row[:6]) if row else None

    def verify(self, presented: str) -> ApiKey | None:
        """The key ``presented`` names when its secret matches (revoked keys included:
        the caller decides what a revoked key gets); None otherwise."""
        parsed = parse_key(presented)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = self._row(key_id)
        expected = row[6] if row else _digest("0" * 12, "0" * 48)  # same work when unknown
        if not hmac.compare_digest(expected, _digest(key_id, secret)) or row is None:
            return None
        return ApiKey(*row[:6])

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke (idempotent); None when there is no such key."""
        with self._lock:
            self._conn.execute(
                "UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        return self.get(key_id)

    def set_monthly_budget(self, key_id: str, monthly_budget_usd: float | None) -> ApiKey | None:
        """Change a key's own monthly LLM limit (None: its tier's from now on); None when
        there is no such key. A job's run reads the limit as it starts."""
        with self._lock:
            self._conn.execute(
                "UPDATE api_keys SET monthly_budget_usd=? WHERE id=?", (monthly_budget_usd, key_id)
            )
        return self.get(key_id)

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, name, tier, created_at, revoked_at, monthly_budget_usd FROM api_keys "
                "ORDER BY created_at"
            ).fetchall()
        return [ApiKey(*r) for r in rows]
