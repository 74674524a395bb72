"""Read-only browsing of a ledger while a run may be writing it (WAL readers never block).

Used by the HTTP service: counts, totals, one record, and keyset pages of documents
ordered by id (``id > cursor``), each filter served by an index so that a page stays
fast at a million rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docmill.model import DocState, Record
from docmill.state.migrations import MIGRATIONS
from docmill.state.store import (
    _RECORD_SQL,
    DB_NAME,
    DONE_PAGES_SQL,
    LLM_SPEND_SQL,
    StoreError,
    _record,
    read_llm_limits,
)


@dataclass(frozen=True, slots=True)
class DocumentSummary:
    """One row of a documents page."""

    id: int
    source: str
    status: str
    mime: str | None
    pages: int | None
    label: str | None
    error_category: str | None
    cost_usd: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "status": self.status,
            "mime": self.mime,
            "pages": self.pages,
            "label": self.label,
            "error_category": self.error_category,
            "cost_usd": self.cost_usd,
        }


def page_query(
    *, status: str | None, label: str | None, q: str | None, after: int, limit: int,
    skip: int = 0, category: str | None = None, labels: Sequence[str] | None = None,
) -> tuple[str, list[Any]]:
    """The SQL (and parameters) of one documents page; exposed for query-plan tests.

    ``q`` is looked for in the source after its first ``skip`` characters (the service
    searches the name its caller sees, never the server folder above it). ``category``:
    a failure category; ``labels``: any of these labels (checked row by row along the
    other filters' index, never through the label index: several label ranges would
    need a sort), so give it with ``status``."""
    where = ["id > ?"]
    params: list[Any] = [after]
    if status:
        where.append("state = ?")
        params.append(status)
    if label:
        where.append("label = ?")
        params.append(label)
    if category:
        where.append("error_category = ?")
        params.append(category)
    if labels is not None:
        where.append(f"+label IN ({','.join('?' * len(labels))})" if labels else "0")
        params += list(labels)
    if q and skip:
        where.append("instr(substr(source, ?), ?) > 0")
        params += [skip + 1, q]
    elif q:
        where.append("instr(source, ?) > 0")
        params.append(q)
    sql = (
        "SELECT id, source, state, mime, pages, label, error_category, cost_usd FROM documents "
        f"WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
    )
    params.append(limit)
    return sql, params


class LedgerReader:
    """A read-only connection to ``DIR/docmill.db``; cheap to open, one per request."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @classmethod
    def open(cls, out_dir: str | Path) -> LedgerReader:
        path = Path(out_dir) / DB_NAME
        if not path.is_file():
            raise StoreError(f"no docmill ledger at {path}")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the ledger {path}: {exc}") from exc
        try:
            # a run that is creating or upgrading the file has not applied every migration
            # yet (each commits on its own): read it only once all of this code's are there
            applied = {row[0] for row in conn.execute("SELECT name FROM migrations")}
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"the ledger {path} is not ready: {exc}") from exc
        missing = [name for name, _sql in MIGRATIONS if name not in applied]
        if missing:
            conn.close()
            raise StoreError(f"the ledger {path} is not ready: migration {missing[0]} not applied yet")
        return cls(conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in DocState}
        for state, n in self._conn.execute("SELECT state, COUNT(*) FROM documents GROUP BY state"):
            out[state] = n
        return out

    def llm_limits(self) -> dict[str, Any] | None:
        """The LLM stage's limits per model as its run last wrote them (None: never)."""
        return read_llm_limits(self._conn)

    def totals(self) -> dict[str, Any]:
        """Pages of done documents, LLM spend and tokens (from covering indexes, never a
        scan of the rows), failures by category."""
        (pages,) = self._conn.execute(DONE_PAGES_SQL).fetchone()
        cost, tin, tout = self._conn.execute(LLM_SPEND_SQL).fetchone()
        failures = dict(
            self._conn.execute(
                "SELECT error_category, COUNT(*) FROM documents WHERE state='failed' "
                "GROUP BY error_category"
            ).fetchall()
        )
        return {
            "pages": int(pages),
            "cost_usd": float(cost),
            "tokens_in": int(tin),
            "tokens_out": int(tout),
            "failures": failures,
        }

    def llm_calls(self) -> int:
        """Billed LLM answers over every run (``llm_calls`` rows: never deleted, so the
        highest id is their count, read without a scan); 0 before any, or in a ledger
        from before the table."""
        try:
            row = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM llm_calls").fetchone()
        except sqlite3.Error:
            return 0
        return int(row[0])

    def labels(self) -> dict[str, int]:
        """Documents per label the LLM stage (or its local classifier) gave, most first."""
        return dict(
            self._conn.execute(
                "SELECT label, COUNT(*) FROM documents WHERE label IS NOT NULL GROUP BY label "
                "ORDER BY COUNT(*) DESC, label"
            ).fetchall()
        )

    def page(
        self, *, status: str | None, label: str | None, q: str | None, after: int, limit: int,
        skip: int = 0, category: str | None = None, labels: Sequence[str] | None = None,
    ) -> list[DocumentSummary]:
        sql, params = page_query(
            status=status, label=label, q=q, after=after, limit=limit, skip=skip,
            category=category, labels=labels,
        )
        return [
            DocumentSummary(r[0], r[1], r[2], r[3], r[4], r[5], r[6], float(r[7] or 0.0))
            for r in self._conn.execute(sql, params)
        ]

    def deliveries(self) -> dict[str, dict[str, Any]]:
        """Per ``[[deliver]]`` table of the last run: documents pending, done, failed and
        failures by category (``state/deliveries.py``); {} without deliveries."""
        from docmill.state.deliveries import delivery_counts

        try:
            return delivery_counts(self._conn)
        except sqlite3.Error:  # a ledger from before deliveries (no table yet)
            return {}

    def plan(self, sql: str, params: list[Any]) -> str:
        """SQLite's query plan for ``sql``, one step a line."""
        return "\n".join(r[3] for r in self._conn.execute("EXPLAIN QUERY PLAN " + sql, params))

    def record(self, doc_id: int) -> Record | None:
        r = self._conn.execute(_RECORD_SQL + " WHERE id=?", (doc_id,)).fetchone()
        return _record(r) if r else None

    def spend(self, doc_id: int) -> tuple[str | None, float, int, int]:
        """A document's label, cost and tokens (in, out)."""
        r = self._conn.execute(
            "SELECT label, cost_usd, tokens_in, tokens_out FROM documents WHERE id=?", (doc_id,)
        ).fetchone()
        return (r[0], float(r[1] or 0.0), int(r[2] or 0), int(r[3] or 0)) if r else (None, 0.0, 0, 0)

    def iter_records(
        self, *, batch: int = 200, status: str | None = None, label: str | None = None
    ) -> Iterator[Record]:
        """Terminal documents' records by id, in batches (memory stays flat); only those
        with ``status`` and ``label`` when given."""
        last = 0
        where = "state IN ('done', 'failed', 'skipped')" if status is None else "state=?"
        extra: list[Any] = [] if status is None else [status]
        if label is not None:
            where += " AND label=?"
            extra.append(label)
        while True:
            rows = self._conn.execute(
                _RECORD_SQL + f" WHERE {where} AND id>? ORDER BY id LIMIT ?",
                (*extra, last, batch),
            ).fetchall()
            if not rows:
                return
            yield from (_record(r) for r in rows)
            last = rows[-1][0]


RESULT_STATUSES = ("done", "failed", "skipped")


def results(
    out_dir: str | Path, *, status: str | None = None, label: str | None = None
) -> Iterator[Record]:
    """The typed records of an output folder, finished or still running, by id: what
    ``docmill run`` (or ``docmill.run``) committed so far, read-only (a run writing the
    folder is never blocked). ``status``: only ``done``, ``failed`` or ``skipped``;
    ``label``: only documents the LLM stage gave that label.

    Raises :class:`~docmill.state.StoreError` when ``out_dir`` holds no ledger yet."""
    if status is not None and status not in RESULT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(RESULT_STATUSES)}, got {status!r}")
    reader = LedgerReader.open(out_dir)
    try:
        yield from reader.iter_records(status=status, label=label)
    finally:
        reader.close()
