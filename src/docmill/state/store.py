"""The ledger: a row per source document in ``DIR/docmill.db`` (SQLite, WAL).

One process (the run's driver) writes; readers (``status``, ``export``) may open it at
any time. Results are stored compressed beside their row, so the part files under
``DIR/records`` can always be rebuilt from here: the ledger is the source of truth.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docmill.model import (
    DocState,
    ErrorInfo,
    FailureCategory,
    ProcessOutcome,
    Record,
    SourceFile,
)
from docmill.model.content import encode_content
from docmill.state.migrations import apply_migrations

if TYPE_CHECKING:
    from docmill.model.llm import LlmAttempt
    from docmill.state.deliveries import DeliveryLedger

DB_NAME = "docmill.db"
LLM_LIMITS_KEY = "llm_limits"  # meta: the LLM stage's limits per model, as last written
LOCK_NAME = "docmill.lock"
INIT_LOCK_NAME = "docmill.init.lock"


class StoreError(RuntimeError):
    """The ledger cannot be opened or written (a run-level error)."""


class StoreBusyError(StoreError):
    """Another run holds the output folder."""


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One document's row, without its result payload."""

    id: int
    source: str
    size: int
    sha256: str | None
    mime: str | None
    state: DocState
    attempts: int
    pages: int | None
    error: ErrorInfo | None
    duplicate_of: int | None


# the queries of `docmill status` (and the service's totals) that sum over many rows,
# each read from a covering index of migration 0007, never from the rows and their
# result blobs: what an unfinished run finished since it started (``?``), pages done,
# the LLM spend (a row without any is in no index and adds nothing)
LAST_RUN_SQL = (
    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN state='done' THEN pages END), 0), "
    "MAX(finished_at) FROM documents WHERE state IN ('done', 'failed', 'skipped') "
    "AND finished_at >= ?"
)
DONE_PAGES_SQL = "SELECT COALESCE(SUM(pages), 0) FROM documents WHERE state='done'"
LLM_SPEND_SQL = (
    "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(tokens_in), 0), "
    "COALESCE(SUM(tokens_out), 0) FROM documents "
    "WHERE cost_usd > 0 OR tokens_in > 0 OR tokens_out > 0"
)

_ROW_COLUMNS = (
    "id, source, size, sha256, mime, state, attempts, pages, "
    "error_category, error_message, error_stage, duplicate_of"
)
# a finished document whose outcome others with the same content may copy: processed
# itself (not a duplicate), and not a failure that a retry could still change
_SETTLED_ORIGINAL = (
    "state IN ('done', 'failed', 'skipped') AND duplicate_of IS NULL "
    "AND (state<>'failed' OR quarantined=1 OR error_category NOT IN "
    "('timeout', 'memory', 'crash'))"
)


def _row(r: tuple[Any, ...]) -> LedgerRow:
    error = ErrorInfo(FailureCategory(r[8]), r[9] or "", r[10] or "") if r[8] else None
    return LedgerRow(r[0], r[1], r[2], r[3], r[4], DocState(r[5]), r[6], r[7], error, r[11])


class Store:
    """Typed access to the ledger. Not thread-safe: one writer thread per store."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock_fd: int | None = None

    @classmethod
    def open(cls, out_dir: str | Path, *, create: bool = True) -> Store:
        out = Path(out_dir)
        path = out / DB_NAME
        if not create and not path.exists():
            raise StoreError(f"no docmill ledger at {path}: run `docmill run SOURCE --out {out}` first")
        try:
            out.mkdir(parents=True, exist_ok=True)
            # Switching a new file to WAL and migrating it must not race another opener:
            # SQLite answers "database is locked" at once there, ignoring its busy timeout.
            init_fd = os.open(out / INIT_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(init_fd, fcntl.LOCK_EX)
                conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                apply_migrations(conn)
            finally:
                os.close(init_fd)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"cannot open the ledger {path}: {exc} "
                "(check the output folder's permissions and free space)"
            ) from exc
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def run_in_progress(self) -> bool:
        """Whether a run holds this folder now (its lock), whatever the ledger says."""
        try:
            fd = os.open(self.path.with_name(LOCK_NAME), os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def lock_for_run(self) -> None:
        """Hold ``DIR/docmill.lock`` for this process: one run (one writer) per folder."""
        path = self.path.with_name(LOCK_NAME)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise StoreBusyError(
                f"another docmill run (pid {holder}) is using {self.path.parent}; wait for it "
                "to finish, or stop it (Ctrl-C) and run again to resume"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        self._lock_fd = fd

    @property
    def deliveries(self) -> DeliveryLedger:
        """The ``[[deliver]]`` rows of this ledger (``state/deliveries.py``)."""
        from docmill.state.deliveries import DeliveryLedger

        return DeliveryLedger(self._conn, self.transaction)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; every change inside it commits or none does."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(
                f"ledger {self.path} is not writable: {exc} "
                "(check the output folder's permissions and free space)"
            ) from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot commit to the ledger {self.path}: {exc} "
                    "(check the output folder's permissions and free space)"
                ) from exc

    # --- runs -------------------------------------------------------------------------

    def start_run(self, sources: list[str], settings: dict[str, Any]) -> int:
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (started_at, status, sources, settings) VALUES (?, 'running', ?, ?)",
                (time.time(), json.dumps(sources), json.dumps(settings)),
            )
            return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, docs: int, pages: int) -> None:
        with self.transaction() as c:
            c.execute(
                "UPDATE runs SET finished_at=?, status=?, docs_finished=?, pages_finished=? "
                "WHERE id=?",
                (time.time(), status, docs, pages, run_id),
            )

    def last_run_sources(self) -> list[str]:
        row = self._conn.execute("SELECT sources FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return list(json.loads(row[0])) if row else []

    def last_run(self) -> dict[str, Any] | None:
        """The last run; one that has not finished (running, or killed) counts what it
        finished from the documents (terminal since it started), ``last_at`` the last."""
        row = self._conn.execute(
            "SELECT id, started_at, finished_at, status, docs_finished, pages_finished "
            "FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        keys = ("id", "started_at", "finished_at", "status", "docs_finished", "pages_finished")
        run = dict(zip(keys, row, strict=True))
        run["last_at"] = run["finished_at"]
        if run["finished_at"] is None:
            docs, pages, last = self._conn.execute(LAST_RUN_SQL, (run["started_at"],)).fetchone()
            run.update(docs_finished=int(docs), pages_finished=int(pages), last_at=last)
        return run

    # --- recovery ---------------------------------------------------------------------

    def recover_interrupted(self) -> int:
        """Documents left ``running`` by a crash go back to ``pending``."""
        with self.transaction() as c:
            c.execute("UPDATE runs SET status='crashed' WHERE status='running'")
            cur = c.execute(
                "UPDATE documents SET state='pending', started_at=NULL WHERE state='running'"
            )
            return cur.rowcount

    # --- enumeration and hashing ------------------------------------------------------

    def upsert_sources(self, files: Iterable[SourceFile]) -> tuple[int, int]:
        """Add new sources as pending; note changed ones for re-hashing (a local file by
        its size and mtime, a remote object by its size and the store's change token).

        Returns (new, changed).
        """
        new = changed = 0
        with self.transaction() as c:
            for f in files:
                row = c.execute(
                    "SELECT id, size, mtime_ns, version FROM documents WHERE source=?",
                    (f.source,),
                ).fetchone()
                if row is None:
                    c.execute(
                        "INSERT INTO documents (source, size, mtime_ns, version) "
                        "VALUES (?, ?, ?, ?)",
                        (f.source, f.size, f.mtime_ns, f.version),
                    )
                    new += 1
                elif (
                    (row[1], row[3]) != (f.size, f.version)
                    if f.version is not None
                    else (row[1], row[2]) != (f.size, f.mtime_ns)
                ):
                    c.execute(
                        "UPDATE documents SET size=?, mtime_ns=?, version=?, "
                        "prev_sha256=COALESCE(sha256, prev_sha256), sha256=NULL WHERE id=?",
                        (f.size, f.mtime_ns, f.version, row[0]),
                    )
                    changed += 1
        return new, changed

    def unhashed(self, limit: int) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in self.unhashed_rows(limit)]

    def unhashed_rows(self, limit: int) -> list[tuple[int, str, int, str | None]]:
        """(id, source, size, version) of rows that need hashing (remote: downloading)."""
        return list(
            self._conn.execute(
                "SELECT id, source, size, version FROM documents WHERE sha256 IS NULL "
                "AND state IN ('pending', 'done', 'failed', 'skipped') ORDER BY id LIMIT ?",
                (limit,),
            )
        )

    def remote_pending(self) -> bool:
        """Whether a remote document (one with a change token) waits to be downloaded or
        processed: a run whose SOURCEs are all local still needs its store then."""
        row = self._conn.execute(
            "SELECT 1 FROM documents WHERE version IS NOT NULL AND (state='pending' "
            "OR sha256 IS NULL) LIMIT 1"
        ).fetchone()
        return row is not None

    def pending_among(self, doc_ids: list[int]) -> set[int]:
        """Which of ``doc_ids`` are pending (a re-downloaded document whose content did
        not change is not: its spool file is not needed)."""
        out: set[int] = set()
        for i in range(0, len(doc_ids), 500):
            chunk = doc_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(
                r[0]
                for r in self._conn.execute(
                    f"SELECT id FROM documents WHERE state='pending' AND id IN ({marks})", chunk
                )
            )
        return out

    def respool(self, spooled: dict[int, int]) -> set[int]:
        """At a run's start: a remote document is claimable only while its downloaded file
        is in the spool. ``spooled`` holds the files a previous run left (doc id -> bytes);
        those of pending, downloaded documents of that size are kept (returned), and every
        other pending remote document is downloaded again (its hash is forgotten)."""
        keep: set[int] = set()
        ids = list(spooled)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            keep.update(
                r[0]
                for r in self._conn.execute(
                    f"SELECT id, size FROM documents WHERE id IN ({marks}) AND state='pending' "
                    "AND version IS NOT NULL AND sha256 IS NOT NULL AND sha256<>'-'",
                    chunk,
                )
                if spooled[r[0]] == r[1]
            )
        with self.transaction() as c:
            c.execute("CREATE TEMP TABLE IF NOT EXISTS spool_keep (id INTEGER PRIMARY KEY)")
            c.execute("DELETE FROM spool_keep")
            c.executemany("INSERT INTO spool_keep VALUES (?)", [(i,) for i in keep])
            c.execute(
                "UPDATE documents SET sha256=NULL WHERE state='pending' AND version IS NOT NULL "
                "AND sha256 IS NOT NULL AND id NOT IN (SELECT id FROM spool_keep)"
            )
            c.execute("DELETE FROM spool_keep")
        return keep

    def set_hashes(
        self, hashes: Iterable[tuple[int, str | None, str | ErrorInfo]], failed: list[int]
    ) -> int:
        """Record content hashes: (id, sha256 or None, error). Returns documents re-queued.

        The ids of documents that failed because they cannot be read are added to ``failed``.

        A document whose content changed since it finished goes back to ``pending``; one
        whose file cannot be read ends ``failed``: with the error given as an
        :class:`ErrorInfo` (``not_allowed``...), or ``io`` with the message given as text.
        """
        requeued = 0
        hashes = list(hashes)
        with self.transaction() as c:
            # only a row re-hashed after a size/mtime change has a previous hash to compare
            previous: dict[int, tuple[str, str]] = {}
            ids = [doc_id for doc_id, sha, _ in hashes if sha is not None]
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                previous.update(
                    (r[0], (r[1], r[2]))
                    for r in c.execute(
                        f"SELECT id, state, prev_sha256 FROM documents WHERE id IN ({marks}) "
                        "AND prev_sha256 IS NOT NULL",
                        chunk,
                    )
                )
            for doc_id, sha, error in hashes:
                if sha is None:
                    if not isinstance(error, ErrorInfo):
                        error = ErrorInfo(FailureCategory.IO, error, "read")
                    self._reset(c, doc_id)
                    self._finish_failed(c, doc_id, error, sha="-")
                    failed.append(doc_id)
                    continue
                state, prev = previous.get(doc_id, ("pending", sha))
                if state != "pending" and prev != sha:
                    self._reset(c, doc_id)
                    requeued += 1
            c.executemany(
                "UPDATE documents SET sha256=?, prev_sha256=NULL WHERE id=?",
                [(sha, doc_id) for doc_id, sha, _ in hashes if sha is not None],
            )
        return requeued

    def _reset(self, c: sqlite3.Connection, doc_id: int) -> None:
        """Back to pending; the part holding its old record is rewritten without it.

        Its duplicates keep their (copied) result but no longer point at it: their
        records are written again, standing alone.
        """
        c.execute(
            "UPDATE parts SET state='stale' WHERE part IN (SELECT part FROM documents "
            "WHERE id=? OR duplicate_of=?)",
            (doc_id, doc_id),
        )
        c.execute(
            "UPDATE documents SET duplicate_of=NULL, part=NULL WHERE duplicate_of=?", (doc_id,)
        )
        c.execute(
            "UPDATE documents SET state='pending', attempts=0, quarantined=0, error_category=NULL,"
            " error_message=NULL, error_stage=NULL, pages=NULL, duplicate_of=NULL, result=NULL,"
            " part=NULL, started_at=NULL, finished_at=NULL, parse_s=NULL, total_s=NULL "
            "WHERE id=?",
            (doc_id,),
        )
        c.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))

    # --- dispatch and results ---------------------------------------------------------

    def claim_pending(self, limit: int, now: float | None = None) -> list[LedgerRow]:
        """Take up to ``limit`` hashed pending documents and mark them ``running``."""
        if limit <= 0:
            return []
        rows = [
            _row(r)
            for r in self._conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM documents WHERE state='pending' "
                "AND sha256 IS NOT NULL ORDER BY id LIMIT ?",
                (limit,),
            )
        ]
        if rows:
            now = time.time() if now is None else now
            with self.transaction() as c:
                c.executemany(
                    "UPDATE documents SET state='running', started_at=? WHERE id=?",
                    [(now, r.id) for r in rows],
                )
        return rows

    def pending_count(self) -> int:
        row = self._conn.execute("SELECT COUNT(*) FROM documents WHERE state='pending'").fetchone()
        return int(row[0])

    def settled_twins(self, shas: Iterable[str]) -> dict[str, LedgerRow]:
        """By sha256, the finished document with that content that a document with the
        same content may copy (the one actually processed; the lowest id): for a whole
        claimed batch, one query for every 500 contents. Rows still pending or running
        are never twins."""
        wanted = sorted(set(shas))
        twins: dict[str, LedgerRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            # by the sha256 index: with a few dozen values SQLite's planner would
            # rather walk the state index, every finished row (measured: 2.7 ms
            # against 0.13 ms for 32 values on 3,648 rows)
            for r in self._conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM documents INDEXED BY documents_sha "
                f"WHERE sha256 IN ({marks}) AND {_SETTLED_ORIGINAL}",
                chunk,
            ):
                row = _row(r)
                key = row.sha256 or ""
                if key not in twins or row.id < twins[key].id:
                    twins[key] = row
        return twins

    def complete(self, doc_id: int, outcome: ProcessOutcome, *, quarantined: bool = False) -> None:
        """Commit a terminal outcome (done, failed or skipped) with its payload."""
        with self.transaction() as c:
            row = c.execute("SELECT started_at FROM documents WHERE id=?", (doc_id,)).fetchone()
            now = time.time()
            started = row[0] if row and row[0] is not None else now
            self._complete(c, [(doc_id, outcome, quarantined, now, now - started)])

    def complete_many(
        self, items: Iterable[tuple[int, ProcessOutcome, bool, float, float]]
    ) -> None:
        """Commit outcomes: (id, outcome, quarantined, finished_at, total_s) each."""
        with self.transaction() as c:
            self._complete(c, items)

    def _complete(
        self,
        c: sqlite3.Connection,
        items: Iterable[tuple[int, ProcessOutcome, bool, float, float]],
    ) -> None:
        """One prepared statement for every outcome, then the chunks that are done with."""
        merged: list[tuple[int]] = []  # documents whose page ranges are no longer needed

        def values() -> Iterator[tuple[object, ...]]:
            for doc_id, o, quarantined, finished_at, total_s in items:
                payload = o.content
                if payload is None and (o.text or o.metadata or o.extra):
                    payload = encode_content(o.text, o.metadata, **o.extra)
                err = o.error
                if o.page_range is not None or o.metadata.get("split_ranges"):
                    merged.append((doc_id,))
                yield (
                    str(o.status),
                    o.mime,
                    o.pages,
                    str(err.category) if err else None,
                    err.message if err else None,
                    err.stage if err else None,
                    int(quarantined),
                    finished_at,
                    o.parse_s,
                    total_s,
                    payload,
                    o.label,
                    o.cost_usd,
                    o.tokens_in,
                    o.tokens_out,
                    doc_id,
                )

        c.executemany(
            "UPDATE documents SET state=?, mime=?, pages=?, error_category=?, error_message=?, "
            "error_stage=?, quarantined=?, attempts=attempts+1, finished_at=?, parse_s=?, "
            "total_s=?, result=?, part=NULL, duplicate_of=NULL, label=?, "
            "cost_usd=cost_usd+?, tokens_in=tokens_in+?, tokens_out=tokens_out+? WHERE id=?",
            values(),
        )
        if merged:
            c.executemany("DELETE FROM chunks WHERE doc_id=?", merged)

    def _finish_failed(
        self, c: sqlite3.Connection, doc_id: int, error: ErrorInfo, sha: str | None = None
    ) -> None:
        c.execute(
            "UPDATE documents SET state='failed', error_category=?, error_message=?, "
            "error_stage=?, finished_at=?, sha256=COALESCE(?, sha256), prev_sha256=NULL, "
            "part=NULL WHERE id=?",
            (str(error.category), error.message, error.stage, time.time(), sha, doc_id),
        )

    def copy_outcome(self, doc_id: int, twin_id: int) -> None:
        """Report a duplicate: the twin's outcome and payload, with ``duplicate_of``."""
        with self.transaction() as c:
            c.execute(
                "UPDATE documents SET (state, mime, pages, error_category, error_message, "
                "error_stage, quarantined, parse_s, result, label) = (SELECT state, mime, pages, "
                "error_category, error_message, error_stage, quarantined, 0.0, result, label "
                "FROM documents WHERE id=?), duplicate_of=?, finished_at=?, total_s=0.0, "
                "part=NULL WHERE id=?",
                (twin_id, twin_id, time.time(), doc_id),
            )

    def add_spend(self, doc_id: int, cost_usd: float, tokens_in: int, tokens_out: int) -> None:
        """Money spent on a document whose LLM work did not finish (it stays pending)."""
        with self.transaction() as c:
            c.execute(
                "UPDATE documents SET cost_usd=cost_usd+?, tokens_in=tokens_in+?, "
                "tokens_out=tokens_out+? WHERE id=?",
                (cost_usd, tokens_in, tokens_out, doc_id),
            )

    def llm_attempts(self, doc_id: int) -> list[LlmAttempt]:
        """A document's billed LLM answers over every run (``state/llm_calls.py``)."""
        from docmill.state.llm_calls import llm_attempts

        return llm_attempts(self._conn, doc_id)

    def llm_totals(self) -> dict[str, object]:
        """Spend and tokens so far, and documents per label."""
        cost, tin, tout = self._conn.execute(LLM_SPEND_SQL).fetchone()
        labels = dict(
            self._conn.execute(
                "SELECT label, COUNT(*) FROM documents WHERE label IS NOT NULL GROUP BY label "
                "ORDER BY COUNT(*) DESC, label"
            ).fetchall()
        )
        return {"cost_usd": float(cost), "tokens_in": int(tin), "tokens_out": int(tout), "labels": labels}

    def save_llm_limits(self, models: list[dict[str, Any]]) -> None:
        """The LLM stage's view per model now (limits, their source, in flight), for
        ``docmill status`` and the service in other processes (:func:`read_llm_limits`)."""
        value = json.dumps({"updated_at": time.time(), "models": models})
        with self.transaction() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (LLM_LIMITS_KEY, value),
            )

    def llm_limits(self) -> dict[str, Any] | None:
        return read_llm_limits(self._conn)

    def count_attempt(self, doc_id: int, error: ErrorInfo) -> None:
        """A retryable failure that will be tried again: count it, keep its error."""
        with self.transaction() as c:
            c.execute(
                "UPDATE documents SET attempts=attempts+1, error_category=?, error_message=?, "
                "error_stage=? WHERE id=?",
                (str(error.category), error.message, error.stage, doc_id),
            )

    def attempts(self, doc_id: int) -> int:
        row = self._conn.execute("SELECT attempts FROM documents WHERE id=?", (doc_id,)).fetchone()
        return int(row[0]) if row else 0

    def release_running(self, doc_ids: Iterable[int]) -> None:
        """Documents interrupted in flight go back to pending, their attempt not counted."""
        with self.transaction() as c:
            c.executemany(
                "UPDATE documents SET state='pending', started_at=NULL WHERE id=? "
                "AND state='running'",
                [(i,) for i in doc_ids],
            )

    # --- chunks of split documents ----------------------------------------------------

    def save_chunk(self, doc_id: int, start: int, stop: int, outcome: ProcessOutcome) -> None:
        blob = zlib.compress(json.dumps(outcome.to_dict()).encode("utf-8"), 3)
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)", (doc_id, start, stop, blob)
            )

    def chunk_starts(self, doc_id: int) -> set[int]:
        return {
            r[0] for r in self._conn.execute("SELECT start FROM chunks WHERE doc_id=?", (doc_id,))
        }

    def iter_chunks(self, doc_id: int) -> Iterator[ProcessOutcome]:
        for (blob,) in self._conn.execute(
            "SELECT result FROM chunks WHERE doc_id=? ORDER BY start", (doc_id,)
        ):
            yield ProcessOutcome.from_dict(json.loads(zlib.decompress(blob)))

    # --- records and part files -------------------------------------------------------

    def record(self, doc_id: int) -> Record | None:
        r = self._conn.execute(_RECORD_SQL + " WHERE id=?", (doc_id,)).fetchone()
        return _record(r) if r else None

    def records(self, doc_ids: list[int]) -> list[Record]:
        """The records of these documents, in id order (one query per 500 ids)."""
        out: list[Record] = []
        for i in range(0, len(doc_ids), 500):
            chunk = doc_ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out.extend(
                _record(r)
                for r in self._conn.execute(_RECORD_SQL + f" WHERE id IN ({marks})", chunk)
            )
        out.sort(key=lambda r: r.id)
        return out

    def iter_records(self, *, batch: int = 200, unwritten_only: bool = False) -> Iterator[Record]:
        """Terminal documents' records by id, fetched in batches (memory stays flat)."""
        last = 0
        cond = "part IS NULL AND " if unwritten_only else ""
        while True:
            rows = self._conn.execute(
                _RECORD_SQL + f" WHERE {cond}state IN ('done', 'failed', 'skipped') AND id>? "
                "ORDER BY id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            for r in rows:
                yield _record(r)
            last = rows[-1][0]

    def iter_part_records(self, part: int) -> Iterator[Record]:
        for r in self._conn.execute(_RECORD_SQL + " WHERE part=? ORDER BY id", (part,)):
            yield _record(r)

    def next_part_number(self) -> int:
        row = self._conn.execute("SELECT COALESCE(MAX(part), 0) FROM parts").fetchone()
        return int(row[0]) + 1

    def commit_part(self, part: int, doc_ids: list[int], fmt: str) -> None:
        """A part file is complete on disk: its documents are now written."""
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO parts (part, state, records, format, written_at) "
                "VALUES (?, 'final', ?, ?, ?)",
                (part, len(doc_ids), fmt, time.time()),
            )
            c.executemany("UPDATE documents SET part=? WHERE id=?", [(part, i) for i in doc_ids])

    def part_numbers(self) -> dict[int, str]:
        return {r[0]: r[1] for r in self._conn.execute("SELECT part, state FROM parts")}

    def drop_part(self, part: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE documents SET part=NULL WHERE part=?", (part,))
            c.execute("DELETE FROM parts WHERE part=?", (part,))

    def mark_part(self, part: int, records: int) -> None:
        with self.transaction() as c:
            if records:
                c.execute(
                    "UPDATE parts SET state='final', records=?, "
                    "written_at=MAX(?, written_at + 0.000001) WHERE part=?",
                    (records, time.time(), part),
                )
            else:
                c.execute("DELETE FROM parts WHERE part=?", (part,))

    # --- reporting and retry ----------------------------------------------------------

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in DocState}
        for state, n in self._conn.execute("SELECT state, COUNT(*) FROM documents GROUP BY state"):
            out[state] = n
        return out

    def total_pages(self) -> int:
        row = self._conn.execute(DONE_PAGES_SQL).fetchone()
        return int(row[0])

    def failure_summary(self, limit: int = 5) -> list[tuple[str, int, str]]:
        """Top failure categories: (category, count, an example source)."""
        return [
            (r[0], r[1], r[2])
            for r in self._conn.execute(
                "SELECT error_category, COUNT(*), MIN(source) FROM documents "
                "WHERE state='failed' GROUP BY error_category ORDER BY COUNT(*) DESC, "
                "error_category LIMIT ?",
                (limit,),
            )
        ]

    def delivery_counts(self) -> dict[str, dict[str, Any]]:
        """Per ``[[deliver]]`` table of the last run: documents pending, done and failed,
        failures by category and a few examples (``state/deliveries.py``)."""
        from docmill.state.deliveries import delivery_counts, delivery_failures

        counts = delivery_counts(self._conn)
        for name, entry in counts.items():
            entry["examples"] = [
                {"item": item, "category": category, "message": message}
                for item, category, message in delivery_failures(self._conn, name, 2)
            ]
        return counts

    def failure_examples(self, category: str, limit: int = 3) -> list[tuple[str, str]]:
        return [
            (r[0], r[1] or "")
            for r in self._conn.execute(
                "SELECT source, error_message FROM documents WHERE state='failed' AND "
                "error_category=? ORDER BY id LIMIT ?",
                (category, limit),
            )
        ]

    def retry_failed(self, category: str | None = None) -> int:
        """Failed documents (of one category, or all) back to pending."""
        with self.transaction() as c:
            ids = [
                r[0]
                for r in c.execute(
                    "SELECT id FROM documents WHERE state='failed'"
                    + (" AND error_category=?" if category else ""),
                    (category,) if category else (),
                )
            ]
            for doc_id in ids:
                self._reset(c, doc_id)
            # a file that could not be read (or was refused) has no content hash ("-"):
            # hashed again, never taken as a twin of another unread file
            c.executemany(
                "UPDATE documents SET sha256=NULL WHERE id=? AND sha256='-'", [(i,) for i in ids]
            )
        return len(ids)


_RECORD_SQL = (
    "SELECT id, source, sha256, size, mime, state, error_category, error_message, error_stage, "
    "pages, result, parse_s, total_s, attempts, duplicate_of FROM documents"
)


def read_llm_limits(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """``{"updated_at": epoch s, "models": [ModelView.to_dict() ...]}`` as the last run's
    LLM stage wrote it (None: never)."""
    row = conn.execute("SELECT value FROM meta WHERE key=?", (LLM_LIMITS_KEY,)).fetchone()
    if row is None:
        return None
    data: dict[str, Any] = json.loads(row[0])
    return data


def timings(parse_s: float | None, total_s: float | None) -> dict[str, float]:
    """A record's timings, rounded as every record shows them."""
    return {"parse_s": round(parse_s or 0.0, 4), "total_s": round(total_s or 0.0, 4)}


def _record(r: tuple[Any, ...]) -> Record:
    error = ErrorInfo(FailureCategory(r[6]), r[7] or "", r[8] or "") if r[6] else None
    return Record(
        id=r[0],
        source=r[1],
        sha256=r[2] if r[2] != "-" else None,
        size=r[3],
        mime=r[4],
        status=DocState(r[5]),
        error=error,
        pages=r[9],
        content=r[10],
        timings=timings(r[11], r[12]),
        attempts=r[13],
        duplicate_of=r[14],
    )
