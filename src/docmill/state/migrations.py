"""Named, transactional schema migrations for the ledger.

Each migration runs once, inside one transaction together with the row that records
it, so a crash never leaves a half-applied schema.
"""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "0001_initial",
        """
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL UNIQUE,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT,
            prev_sha256 TEXT,
            mime TEXT,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            quarantined INTEGER NOT NULL DEFAULT 0,
            error_category TEXT,
            error_message TEXT,
            error_stage TEXT,
            pages INTEGER,
            duplicate_of INTEGER,
            started_at REAL,
            finished_at REAL,
            parse_s REAL,
            total_s REAL,
            result BLOB,
            part INTEGER
        );
        CREATE INDEX documents_state ON documents(state, id);
        CREATE INDEX documents_sha ON documents(sha256);
        CREATE INDEX documents_part ON documents(part);
        CREATE INDEX documents_unwritten ON documents(id) WHERE part IS NULL
            AND state IN ('done', 'failed', 'skipped');
        CREATE TABLE parts (
            part INTEGER PRIMARY KEY,
            state TEXT NOT NULL,
            records INTEGER NOT NULL,
            format TEXT NOT NULL
        );
        CREATE TABLE chunks (
            doc_id INTEGER NOT NULL,
            start INTEGER NOT NULL,
            stop INTEGER NOT NULL,
            result BLOB NOT NULL,
            PRIMARY KEY (doc_id, start)
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            started_at REAL NOT NULL,
            finished_at REAL,
            status TEXT NOT NULL,
            sources TEXT NOT NULL,
            settings TEXT NOT NULL,
            docs_finished INTEGER NOT NULL DEFAULT 0,
            pages_finished INTEGER NOT NULL DEFAULT 0
        );
        """,
    ),
    (
        "0002_llm",
        """
        ALTER TABLE documents ADD COLUMN label TEXT;
        ALTER TABLE documents ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
        ALTER TABLE documents ADD COLUMN tokens_in INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE documents ADD COLUMN tokens_out INTEGER NOT NULL DEFAULT 0
        """,
    ),
    (
        # the service pages a job's documents by label in id order (keyset pagination)
        "0003_documents_label",
        "CREATE INDEX documents_label ON documents(label, id)",
    ),
    (
        # remote sources: the store's change token (ETag, version id...; NULL: a local file)
        "0004_remote_version",
        "ALTER TABLE documents ADD COLUMN version TEXT",
    ),
    (
        # [[deliver]]: a state per delivery and item (a document; a part for `records`),
        # for the version of the record (documents.finished_at) or part (parts.written_at)
        # it delivers; the ledger's own id for webhook idempotency keys
        "0005_deliveries",
        """
        CREATE TABLE deliveries (
            name TEXT NOT NULL,
            item INTEGER NOT NULL,
            op TEXT NOT NULL DEFAULT 'put',
            version REAL NOT NULL,
            generation INTEGER NOT NULL DEFAULT 1,
            state TEXT NOT NULL DEFAULT 'pending',
            target TEXT,
            previous TEXT,
            batch INTEGER,
            attempts INTEGER NOT NULL DEFAULT 0,
            error_category TEXT,
            error_message TEXT,
            updated_at REAL,
            PRIMARY KEY (name, item)
        ) WITHOUT ROWID;
        CREATE INDEX deliveries_state ON deliveries(name, state, item);
        CREATE INDEX deliveries_target ON deliveries(name, target);
        ALTER TABLE parts ADD COLUMN written_at REAL NOT NULL DEFAULT 0;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('ledger_id', lower(hex(randomblob(6))))
        """,
    ),
    (
        # the LLM stage: one row per billed answer, committed as it arrives (before the
        # stage uses it), so a kill -9 loses at most the requests in flight; the document's
        # cost_usd / tokens columns are raised in the same transaction
        "0006_llm_calls",
        """
        CREATE TABLE llm_calls (
            id INTEGER PRIMARY KEY,
            doc_id INTEGER NOT NULL,
            at REAL NOT NULL,
            role TEXT NOT NULL,
            model TEXT NOT NULL,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            outcome TEXT NOT NULL
        );
        CREATE INDEX llm_calls_doc ON llm_calls(doc_id, id)
        """,
    ),
    (
        # `docmill status` on an unfinished run: what it finished since it started
        # (state, finished_at) and the pages done, read from this index alone (covering);
        # the LLM spend and tokens from a partial index holding only the rows with any
        # (store.LAST_RUN_SQL, DONE_PAGES_SQL, LLM_SPEND_SQL). Without them each was a
        # pass over the rows and their result blobs (~0.1 CPU-s each at 200k documents)
        "0007_status_indexes",
        """
        CREATE INDEX documents_finished ON documents(state, finished_at, pages);
        CREATE INDEX documents_spend ON documents(cost_usd, tokens_in, tokens_out)
            WHERE cost_usd > 0 OR tokens_in > 0 OR tokens_out > 0
        """,
    ),
)


def apply_migrations(
    conn: sqlite3.Connection, migrations: tuple[tuple[str, str], ...] = MIGRATIONS
) -> list[str]:
    """Apply the migrations not yet applied (the ledger's by default); return their names."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    applied: list[str] = []
    for name, sql in migrations:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # another process may have applied it since we looked: check under the lock
            if conn.execute("SELECT 1 FROM migrations WHERE name=?", (name,)).fetchone():
                conn.execute("ROLLBACK")
                continue
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO migrations VALUES (?, ?)", (name, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
