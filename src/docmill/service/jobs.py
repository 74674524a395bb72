"""The service ledger: jobs in ``{data_dir}/service.db`` (SQLite, WAL, named migrations).

A job is a docmill run over its sources into ``{data_dir}/jobs/{id}/``; the run's own
ledger there holds its documents. This table holds who owns the job, where it stands
(``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled`` | ``stopped_budget``),
its settings overrides, the LLM spec it names with its budget, a cache of its counts, the cancel flag, and which runner holds it with its
heartbeat. Any number of processes (the server, ``docmill worker``) share the file;
each claim is one ``BEGIN IMMEDIATE`` transaction, so a job is claimed once.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docmill.state.migrations import apply_migrations

DB_NAME = "service.db"


def open_service_db(
    data_dir: str | Path, migrations: tuple[tuple[str, str], ...]
) -> sqlite3.Connection:
    """The service's database in ``data_dir`` (made if missing): one connection for any
    thread (callers serialise it), WAL, ``migrations`` applied."""
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(root / DB_NAME, isolation_level=None, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    apply_migrations(conn, migrations)
    return conn
STALE_AFTER_S = 15.0  # a running job whose heartbeat is older is taken over
# stopped_budget: the LLM budget in force stopped it; its undone documents stay pending
# and a resume (a higher budget) queues it again (a retry, which keeps the budget, is
# refused: retention.retry_refusal)
TERMINAL = ("done", "failed", "cancelled", "stopped_budget")

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_jobs",
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued',
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            source_kind TEXT NOT NULL,
            sources TEXT NOT NULL,
            description TEXT NOT NULL,
            overrides TEXT NOT NULL DEFAULT '{}',
            counts TEXT NOT NULL DEFAULT '{}',
            cancel INTEGER NOT NULL DEFAULT 0,
            worker TEXT,
            heartbeat REAL,
            runs INTEGER NOT NULL DEFAULT 0,
            error TEXT
        );
        CREATE INDEX jobs_owner ON jobs(owner, created_at);
        CREATE INDEX jobs_status ON jobs(status, created_at)
        """,
    ),
    (
        # the deliveries a job asked for, by name (service.allowed_deliveries)
        "0002_job_deliveries",
        "ALTER TABLE jobs ADD COLUMN deliveries TEXT NOT NULL DEFAULT '[]'",
    ),
    (
        # the published LLM spec a job runs (service.llm_specs), the budget it asked for
        # (NULL: the server's llm.budget_usd) and the one its last run got (clamped to
        # what was left of its key's monthly limit)
        "0003_job_llm",
        """
        ALTER TABLE jobs ADD COLUMN llm_spec TEXT;
        ALTER TABLE jobs ADD COLUMN budget_usd REAL;
        ALTER TABLE jobs ADD COLUMN budget_in_force REAL
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    owner: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    source_kind: str  # upload | path | url | store (a URL on service.allowed_sources)
    sources: list[str]
    description: str
    overrides: dict[str, Any]
    counts: dict[str, Any]
    cancel: bool
    worker: str | None
    heartbeat: float | None
    runs: int
    error: str | None
    deliveries: list[str] = field(default_factory=list)  # names in service.allowed_deliveries
    llm_spec: str | None = None  # a name in service.llm_specs
    budget_usd: float | None = None  # what the job asked for (None: the server's llm.budget_usd)
    budget_in_force: float | None = None  # llm.budget_usd of its last run (clamped to the key's)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


_COLUMNS = (
    "id, owner, status, created_at, started_at, finished_at, source_kind, sources, "
    "description, overrides, counts, cancel, worker, heartbeat, runs, error, deliveries, "
    "llm_spec, budget_usd, budget_in_force"
)


_RUNNING_BUDGETS = (
    "SELECT id, budget_in_force FROM jobs WHERE owner=? AND status='running' AND id<>? "
    "AND budget_in_force IS NOT NULL"
)


def _job(r: tuple[Any, ...]) -> Job:
    return Job(
        id=r[0], owner=r[1], status=r[2], created_at=r[3], started_at=r[4], finished_at=r[5],
        source_kind=r[6], sources=json.loads(r[7]), description=r[8],
        overrides=json.loads(r[9]), counts=json.loads(r[10]), cancel=bool(r[11]),
        worker=r[12], heartbeat=r[13], runs=r[14], error=r[15], deliveries=json.loads(r[16]),
        llm_spec=r[17], budget_usd=r[18], budget_in_force=r[19],
    )


def new_job_id() -> str:
    return uuid.uuid4().hex


def runner_identity() -> str:
    """``host:pid:thread`` of the calling runner thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _runner_is_dead(worker: str | None) -> bool:
    """A runner on this host whose process is gone (checked at once, no heartbeat wait)."""
    if not worker:
        return True
    host, _, rest = worker.partition(":")
    if host != socket.gethostname():
        return False
    try:
        pid = int(rest.split(":", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class JobLedger:
    """Typed access to ``service.db``; one connection, serialised by a lock (thread-safe)."""

    def __init__(self, conn: sqlite3.Connection, data_dir: Path) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.data_dir = data_dir

    @classmethod
    def open(cls, data_dir: str | Path) -> JobLedger:
        return cls(open_service_db(data_dir, MIGRATIONS), Path(data_dir))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def job_dir(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    def upload_dir(self, job_id: str) -> Path:
        return self.data_dir / "uploads" / job_id

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _one(self, sql: str, params: tuple[Any, ...]) -> Job | None:
        with self._lock:
            r = self._conn.execute(f"SELECT {_COLUMNS} FROM jobs {sql}", params).fetchone()
        return _job(r) if r else None

    def ping(self) -> bool:
        try:
            with self._lock:
                self._conn.execute("SELECT 1 FROM jobs LIMIT 1").fetchall()
        except sqlite3.Error:
            return False
        return True

    # --- the API's side ---------------------------------------------------------------

    def create(
        self,
        job_id: str,
        owner: str,
        source_kind: str,
        sources: list[str],
        description: str,
        overrides: dict[str, Any],
        deliveries: list[str] | None = None,
        llm_spec: str | None = None,
        budget_usd: float | None = None,
    ) -> Job:
        with self._tx() as c:
            c.execute(
                "INSERT INTO jobs (id, owner, created_at, source_kind, sources, description, "
                "overrides, deliveries, llm_spec, budget_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, owner, time.time(), source_kind, json.dumps(sources), description,
                 json.dumps(overrides), json.dumps(deliveries or []), llm_spec, budget_usd),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str, owner: str | None = None) -> Job | None:
        """The job, or None when it does not exist or belongs to another owner."""
        job = self._one("WHERE id=?", (job_id,))
        if job is None or (owner is not None and job.owner != owner):
            return None
        return job

    def list(self, owner: str, limit: int = 100, before: float | None = None) -> list[Job]:
        sql = f"SELECT {_COLUMNS} FROM jobs WHERE owner=?"
        params: list[Any] = [owner]
        if before is not None:
            sql += " AND created_at<?"
            params.append(before)
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            return [_job(r) for r in self._conn.execute(sql, params)]

    def queue_depth(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()[0])

    def request_cancel(self, job_id: str) -> Job | None:
        """A queued job is cancelled at once; a running one is asked to stop."""
        now = time.time()
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET status='cancelled', cancel=1, finished_at=? "
                "WHERE id=? AND status='queued'",
                (now, job_id),
            )
            c.execute("UPDATE jobs SET cancel=1 WHERE id=? AND status='running'", (job_id,))
        return self.get(job_id)

    def requeue(self, job_id: str, budget_usd: float | None = None) -> bool:
        """A finished job back to the queue (retry; ``budget_usd``: with a new LLM
        budget, a resume); False when it is not finished."""
        marks = ",".join("?" * len(TERMINAL))
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET status='queued', cancel=0, finished_at=NULL, error=NULL, "
                "worker=NULL, heartbeat=NULL, budget_usd=COALESCE(?, budget_usd) "
                f"WHERE id=? AND status IN ({marks})",
                (budget_usd, job_id, *TERMINAL),
            )
            return cur.rowcount == 1

    def running_budgets(self, owner: str, besides: str) -> dict[str, float]:
        """The budgets in force of ``owner``'s running jobs other than ``besides``, by id."""
        with self._lock:
            rows = self._conn.execute(_RUNNING_BUDGETS, (owner, besides)).fetchall()
        return {job_id: float(b) for job_id, b in rows}

    def settle_budget(
        self, job_id: str, worker: str, owner: str,
        decide: Callable[[dict[str, float], sqlite3.Connection], float],
    ) -> float:
        """The ``llm.budget_usd`` a job's run gets, decided and recorded in one write
        transaction: ``decide`` sees the budgets in force of the owner's other running
        jobs (by id) and reads what else it needs through the transaction's connection;
        no other runner, in any process, decides in between (SQLite's write lock), so two
        jobs never both count the same rest of a key's month."""
        with self._tx() as c:
            rows = c.execute(_RUNNING_BUDGETS, (owner, job_id)).fetchall()
            budget = decide({other: float(b) for other, b in rows}, c)
            c.execute(
                "UPDATE jobs SET budget_in_force=? WHERE id=? AND worker=?", (budget, job_id, worker)
            )
        return budget

    # --- the runners' side -------------------------------------------------------------

    def claim(self, worker: str, now: float | None = None) -> Job | None:
        """Take the oldest queued job (first re-queueing jobs whose runner died)."""
        now = time.time() if now is None else now
        with self._tx() as c:
            for job_id, holder, beat in c.execute(
                "SELECT id, worker, heartbeat FROM jobs WHERE status='running'"
            ).fetchall():
                if (beat or 0) < now - STALE_AFTER_S or _runner_is_dead(holder):
                    c.execute(
                        "UPDATE jobs SET status='queued', worker=NULL WHERE id=?", (job_id,)
                    )
            row = c.execute(
                "SELECT id FROM jobs WHERE status='queued' ORDER BY created_at LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE jobs SET status='running', worker=?, heartbeat=?, runs=runs+1, "
                "started_at=COALESCE(started_at, ?) WHERE id=?",
                (worker, now, now, row[0]),
            )
        return self.get(row[0])

    def beat(self, job_id: str, worker: str, counts: dict[str, Any] | None = None) -> bool:
        """Heartbeat (and counts cache); returns the cancel flag. A runner that lost the
        job (taken over) is told to stop as well."""
        with self._tx() as c:
            if counts is None:
                c.execute(
                    "UPDATE jobs SET heartbeat=? WHERE id=? AND worker=?",
                    (time.time(), job_id, worker),
                )
            else:
                c.execute(
                    "UPDATE jobs SET heartbeat=?, counts=? WHERE id=? AND worker=?",
                    (time.time(), json.dumps(counts), job_id, worker),
                )
            r = c.execute("SELECT cancel, worker FROM jobs WHERE id=?", (job_id,)).fetchone()
        return r is None or bool(r[0]) or r[1] != worker

    def finish(
        self, job_id: str, worker: str, status: str, counts: dict[str, Any], error: str | None = None
    ) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET status=?, counts=?, error=?, finished_at=?, worker=NULL, "
                "heartbeat=NULL WHERE id=? AND worker=?",
                (status, json.dumps(counts), error, time.time(), job_id, worker),
            )

    def release(self, job_id: str, worker: str) -> None:
        """A runner shutting down gives its job back to the queue (it resumes later)."""
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET status='queued', worker=NULL, heartbeat=NULL "
                "WHERE id=? AND worker=? AND status='running'",
                (job_id, worker),
            )
