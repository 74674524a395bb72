"""The LLM stage's spend, committed answer by answer (the ``llm_calls`` rows of the ledger).

The stage runs on its own thread; :class:`SpendWriter` holds its own connection to the
ledger (WAL: the run's connection keeps writing meanwhile) and commits each billed answer
in one transaction: a ``llm_calls`` row and the document's ``cost_usd`` / ``tokens_in`` /
``tokens_out``. The stage calls it before it uses the answer (caches it, moves the document
on), so a ``kill -9`` loses at most the answers of requests still in flight, and the next
run's budget starts from what the provider billed. :func:`llm_attempts` reads a document's
rows back: a record's ``llm.attempts`` and ``llm.cost_usd`` (the total over all its runs).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from docmill.model.llm import LlmAttempt


class SpendWriter:
    """Commits billed answers to the ledger at ``path``, from any one thread at a time."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def add(self, doc_id: int, call: LlmAttempt) -> None:
        """Commit ``call`` (durable against a process kill when this returns)."""
        with self._lock:
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path, isolation_level=None, timeout=30.0, check_same_thread=False
                )
                self._conn.execute("PRAGMA synchronous=NORMAL")
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute(
                    "INSERT INTO llm_calls (doc_id, at, role, model, tokens_in, tokens_out, "
                    "cost_usd, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (doc_id, time.time(), call.role, call.model, call.tokens_in,
                     call.tokens_out, call.cost_usd, call.outcome),
                )
                c.execute(
                    "UPDATE documents SET cost_usd=cost_usd+?, tokens_in=tokens_in+?, "
                    "tokens_out=tokens_out+? WHERE id=?",
                    (call.cost_usd, call.tokens_in, call.tokens_out, doc_id),
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def llm_attempts(conn: sqlite3.Connection, doc_id: int) -> list[LlmAttempt]:
    """A document's billed answers, oldest first (every run of the folder)."""
    rows = conn.execute(
        "SELECT role, model, tokens_in, tokens_out, cost_usd, outcome FROM llm_calls "
        "WHERE doc_id=? ORDER BY id",
        (doc_id,),
    ).fetchall()
    return [LlmAttempt(r[0], r[1], int(r[2]), int(r[3]), float(r[4]), r[5]) for r in rows]
