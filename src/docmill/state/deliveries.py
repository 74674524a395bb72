"""The ledger's side of ``[[deliver]]``: a state per delivery and item (table
``deliveries``, migration ``0005_deliveries``).

An item is a document (``files``, ``webhook``) or a part file (``records``). Its row holds
the *version* it delivers: the record's ``documents.finished_at`` or the part's
``parts.written_at``, both set in the transaction that commits them. So enqueueing is a
query, and a crash at any moment loses nothing:

* a document is enqueued once its record is in a part (``enqueue_documents``, by the
  part index, and for every part at a run's start); a new version (the document was
  processed again) puts its row back to ``pending``, with ``generation`` + 1 and the
  place it was delivered to kept in ``previous`` (a ``files`` delivery removes it);
* a part is enqueued when it is written or rewritten, and deleted where it was
  delivered when the ledger forgets it (``reconcile_parts``);
* a result is written only for the version it was made for (``finish``): one for an
  older version changes nothing.

Before anything leaves, what makes a retry land on the same place is written here: a
``files`` row's ``target`` (its rendered destination), a ``webhook`` row's ``batch``
(its members fix the batch's idempotency key). The runner's thread is the only writer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from docmill.model import Record
from docmill.state.store import _RECORD_SQL, _record

Transaction = Callable[[], AbstractContextManager[sqlite3.Connection]]

DELIVERY_STATES = ("pending", "done", "failed")


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """A row to deliver: what, which version, and where it was planned to go."""

    name: str
    item: int
    op: str  # put | delete (records: a part the ledger no longer has)
    version: float
    generation: int
    target: str | None
    previous: str | None
    batch: int | None


@dataclass(frozen=True, slots=True)
class DeliveryDoc:
    """What a ``files`` or ``webhook`` delivery reads of a document."""

    record: Record
    mtime_ns: int
    remote_version: str | None  # a remote object's change token (None: a local file)
    finished_at: float
    label: str | None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """A delivery thread's answer for some items (a webhook batch: all of its members)."""

    name: str
    items: tuple[tuple[int, float], ...]  # (item, the version it delivered)
    state: str  # done | failed | pending (the run stopped before it was tried)
    category: str | None = None
    message: str | None = None


_PENDING_COLUMNS = "name, item, op, version, generation, target, previous, batch"


def _pending(r: tuple[Any, ...]) -> PendingDelivery:
    return PendingDelivery(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])


def _chunks(ids: Sequence[int], size: int = 500) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


class DeliveryLedger:
    """Typed access to ``deliveries`` through the run's :class:`~docmill.state.Store`
    connection (the one writer)."""

    def __init__(self, conn: sqlite3.Connection, transaction: Transaction) -> None:
        self._conn = conn
        self._transaction = transaction

    def ledger_id(self) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key='ledger_id'").fetchone()
        return str(row[0])

    # --- enqueueing ---------------------------------------------------------------------

    def enqueue_documents(self, name: str, statuses: Sequence[str], from_part: int = 0) -> int:
        """Rows for the documents in parts numbered ``from_part`` and up whose state is in
        ``statuses``: new ones pending, and those whose record changed pending again."""
        marks = ",".join("?" * len(statuses))
        with self._transaction() as c:
            cur = c.execute(
                "INSERT INTO deliveries (name, item, version, state, updated_at) "
                "SELECT ?, id, finished_at, 'pending', ? FROM documents "
                f"WHERE part >= ? AND state IN ({marks}) AND finished_at IS NOT NULL "
                "ON CONFLICT(name, item) DO UPDATE SET version=excluded.version, op='put', "
                "generation=deliveries.generation+1, state='pending', "
                "previous=CASE WHEN deliveries.state='done' AND deliveries.target IS NOT NULL "
                "THEN deliveries.target ELSE deliveries.previous END, target=NULL, batch=NULL, "
                "attempts=0, error_category=NULL, error_message=NULL, "
                "updated_at=excluded.updated_at WHERE deliveries.version<>excluded.version",
                (name, time.time(), from_part, *statuses),
            )
            return cur.rowcount

    def reconcile_parts(self, name: str) -> int:
        """``records``: every final part whose written version is not delivered yet is
        pending (a put); a delivered part the ledger no longer has is pending (a delete)."""
        now = time.time()
        with self._transaction() as c:
            put = c.execute(
                "INSERT INTO deliveries (name, item, version, state, updated_at) "
                "SELECT ?, part, written_at, 'pending', ? FROM parts WHERE state='final' "
                "ON CONFLICT(name, item) DO UPDATE SET version=excluded.version, op='put', "
                "generation=deliveries.generation+1, state='pending', attempts=0, "
                "error_category=NULL, error_message=NULL, updated_at=excluded.updated_at "
                "WHERE deliveries.version<>excluded.version OR deliveries.op<>'put'",
                (name, now),
            ).rowcount
            gone = c.execute(
                "UPDATE deliveries SET op='delete', version=-1, state='pending', attempts=0, "
                "error_category=NULL, error_message=NULL, updated_at=? WHERE name=? "
                "AND op='put' AND item NOT IN (SELECT part FROM parts)",
                (now, name),
            ).rowcount
        return put + gone

    # --- feeding ------------------------------------------------------------------------

    def pending(self, name: str, after: int, limit: int) -> list[PendingDelivery]:
        """Pending rows of ``name`` with an item above ``after``, in item order."""
        return [
            _pending(r)
            for r in self._conn.execute(
                f"SELECT {_PENDING_COLUMNS} FROM deliveries WHERE name=? AND state='pending' "
                "AND item>? ORDER BY item LIMIT ?",
                (name, after, limit),
            )
        ]

    def has_pending(self, name: str) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM deliveries WHERE name=? AND state='pending' LIMIT 1", (name,)
        ).fetchone()
        return row is not None

    def batch(self, name: str, batch: int) -> list[PendingDelivery]:
        """The pending members of a webhook batch planned earlier."""
        return [
            _pending(r)
            for r in self._conn.execute(
                f"SELECT {_PENDING_COLUMNS} FROM deliveries WHERE name=? AND batch=? "
                "AND state='pending' ORDER BY item",
                (name, batch),
            )
        ]

    def documents(self, ids: Sequence[int]) -> dict[int, DeliveryDoc]:
        """The records (and source times, labels) of these documents, by id."""
        out: dict[int, DeliveryDoc] = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            sql = _RECORD_SQL.replace(
                " FROM documents", ", mtime_ns, version, finished_at, label FROM documents"
            )
            for r in self._conn.execute(sql + f" WHERE id IN ({marks})", chunk):
                out[r[0]] = DeliveryDoc(_record(r[:15]), int(r[15] or 0), r[16], float(r[17] or 0.0), r[18])
        return out

    def part_formats(self, parts: Sequence[int]) -> dict[int, str]:
        """The format of each of these parts the ledger has (a forgotten one is absent)."""
        out: dict[int, str] = {}
        for chunk in _chunks(list(parts)):
            marks = ",".join("?" * len(chunk))
            out.update(self._conn.execute(f"SELECT part, format FROM parts WHERE part IN ({marks})", chunk).fetchall())
        return out

    def fail(self, name: str, items: Iterable[tuple[int, float]], category: str, message: str) -> None:
        """Items that cannot be delivered, found before any was sent (a destination
        outside its root, a conflict)."""
        self.finish([DeliveryResult(name, tuple(items), "failed", category, message)])

    def holder(self, name: str, target: str, item: int) -> tuple[int, str | None] | None:
        """Another item of ``name`` planned for ``target`` (a different document that
        would land on the same place), with its content's sha256."""
        row = self._conn.execute(
            "SELECT d.item, doc.sha256 FROM deliveries d JOIN documents doc ON doc.id=d.item "
            "WHERE d.name=? AND d.target=? AND d.item<>? AND d.state<>'failed' LIMIT 1",
            (name, target, item),
        ).fetchone()
        return (int(row[0]), row[1]) if row else None

    def plan(self, name: str, targets: Iterable[tuple[int, float, str]] = (),
             batches: Iterable[tuple[int, float, int]] = ()) -> None:
        """Write where items go (``target``) and which batch they travel in, before any
        of them is sent: a retry after a crash lands on the same place with the same key."""
        with self._transaction() as c:
            c.executemany(
                "UPDATE deliveries SET target=? WHERE name=? AND item=? AND version=?",
                [(target, name, item, version) for item, version, target in targets],
            )
            c.executemany(
                "UPDATE deliveries SET batch=? WHERE name=? AND item=? AND version=?",
                [(batch, name, item, version) for item, version, batch in batches],
            )

    # --- results ------------------------------------------------------------------------

    def finish(self, results: Iterable[DeliveryResult]) -> None:
        """Record delivery threads' answers (one transaction); an answer for a version
        that is no longer the row's is dropped (the newer one is still pending)."""
        now = time.time()
        rows: list[tuple[Any, ...]] = []
        for res in results:
            if res.state == "pending":
                continue
            for item, version in res.items:
                rows.append((res.state, res.category, res.message, now, res.state, res.name, item, version))
        if not rows:
            return
        with self._transaction() as c:
            c.executemany(
                "UPDATE deliveries SET state=?, attempts=attempts+1, error_category=?, "
                "error_message=?, updated_at=?, previous=CASE WHEN ?='done' THEN NULL "
                "ELSE previous END WHERE name=? AND item=? AND version=?",
                rows,
            )

    def retry(self, name: str | None = None) -> int:
        """Failed deliveries (of one delivery, or all) back to pending."""
        with self._transaction() as c:
            cur = c.execute(
                "UPDATE deliveries SET state='pending', attempts=0, error_category=NULL, "
                "error_message=NULL, updated_at=? WHERE state='failed'"
                + (" AND name=?" if name else ""),
                (time.time(), name) if name else (time.time(),),
            )
            return cur.rowcount


# --- reading (status, the service): any connection, read-only is enough ----------------


def last_deliveries(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The ``[[deliver]]`` tables of the last run (as its settings recorded them)."""
    row = conn.execute("SELECT settings FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return []
    try:
        found = json.loads(row[0]).get("deliver") or []
    except (ValueError, AttributeError):
        return []
    return [d for d in found if isinstance(d, dict) and "name" in d and "kind" in d]


def delivery_counts(
    conn: sqlite3.Connection, specs: Sequence[dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Per delivery: documents ``pending``, ``done``, ``failed`` (a ``records`` delivery
    counts the documents of its parts, and ``parts`` beside), and failures by category.

    ``pending`` includes what is not enqueued yet (a finished record not yet in a part,
    or in a part not yet delivered). ``specs``: the last run's tables by default."""
    specs = last_deliveries(conn) if specs is None else specs
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        name, kind = str(spec["name"]), str(spec["kind"])
        counts = dict.fromkeys(DELIVERY_STATES, 0)
        if kind == "records":
            for state, n in conn.execute(
                "SELECT COALESCE(d.state, 'pending'), COUNT(*) FROM documents doc "
                "LEFT JOIN deliveries d ON d.name=? AND d.item=doc.part AND d.op='put' "
                "WHERE doc.state IN ('done', 'failed', 'skipped') GROUP BY 1",
                (name,),
            ):
                counts[state] = counts.get(state, 0) + n
            parts = dict.fromkeys(DELIVERY_STATES, 0)
            for state, n in conn.execute(
                "SELECT state, COUNT(*) FROM deliveries WHERE name=? AND op='put' GROUP BY state",
                (name,),
            ):
                parts[state] = n
            entry: dict[str, Any] = {"kind": kind, **counts, "parts": parts}
        else:
            statuses = spec.get("statuses") or (["done"] if kind == "files" else ["done", "failed", "skipped"])
            marks = ",".join("?" * len(statuses))
            for state, n in conn.execute(
                "SELECT CASE WHEN d.state IS NULL OR d.version<>doc.finished_at THEN 'pending' "
                "ELSE d.state END, COUNT(*) FROM documents doc LEFT JOIN deliveries d "
                f"ON d.name=? AND d.item=doc.id WHERE doc.state IN ({marks}) GROUP BY 1",
                (name, *statuses),
            ):
                counts[state] = counts.get(state, 0) + n
            entry = {"kind": kind, **counts}
        entry["failures"] = dict(
            conn.execute(
                "SELECT error_category, COUNT(*) FROM deliveries WHERE name=? AND state='failed' "
                "GROUP BY error_category ORDER BY COUNT(*) DESC",
                (name,),
            ).fetchall()
        )
        out[name] = entry
    return out


def delivery_failures(conn: sqlite3.Connection, name: str, limit: int = 3) -> list[tuple[int, str, str]]:
    """Examples of a delivery's failures: (item, category, message)."""
    return [
        (int(r[0]), str(r[1]), str(r[2] or ""))
        for r in conn.execute(
            "SELECT item, error_category, error_message FROM deliveries WHERE name=? "
            "AND state='failed' ORDER BY item LIMIT ?",
            (name, limit),
        )
    ]
