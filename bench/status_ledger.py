#!/usr/bin/env python3
"""``docmill status`` on a large ledger whose last run has not finished.

Builds a ledger of ``--docs`` documents (default 200,000) through ``Store.open`` (every
migration applied), its rows written by bulk SQL: most finished by an earlier run, a
share finished by the run still going (``runs.finished_at`` NULL), the rest pending;
each finished row carries a result blob of ``--blob-kb`` incompressible KB (a record's
sealed content), some a label and an LLM spend. Then, in one run, it measures the CPU
seconds of ``status_data`` (what ``docmill status`` reads), of a whole
``docmill status --json`` process and of ``LedgerReader.totals`` (what a service job's
runner reads every second), first as the ledger is (migration
``0007_status_indexes`` applied), then with that migration's indexes dropped (the
ledger as it was before it), then with them back: the ratio is the figure. The query
plans of both are printed. What the indexes cost a run is measured too: the CPU seconds
of the ledger writes (claims of 256 and their commits) of ``--write-docs`` documents
with and without them, alternating rounds, medians. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from corpus import add_output_args, ensure_venv, run_benchmark, table, tool

NEW_INDEXES = ("documents_finished", "documents_spend")


def build(out: Path, docs: int, blob_kb: float, seed: int) -> dict[str, Any]:
    from docmill.state import Store

    Store.open(out).close()  # the schema, through every migration
    rng = random.Random(seed)
    blob = max(1, int(blob_kb * 1024))
    conn = sqlite3.connect(out / "docmill.db", isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    now = time.time()
    run_start = now - 600.0
    earlier = int(docs * 0.75)
    current = int(docs * 0.15)
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO runs (started_at, finished_at, status, sources, settings, docs_finished, "
        "pages_finished) VALUES (?, ?, 'finished', '[]', '{}', ?, ?)",
        (now - 86400.0, now - 3600.0, earlier, earlier * 3),
    )
    conn.execute(
        "INSERT INTO runs (started_at, status, sources, settings) VALUES (?, 'running', '[]', '{}')",
        (run_start,),
    )
    labels = ("invoice", "receipt", "letter", "tax_notice", "other")
    categories = ("corrupt", "encrypted", "timeout", "empty")
    rows = []
    for i in range(1, docs + 1):
        if i <= earlier + current:
            finished = (
                now - 86400.0 + i / earlier * 80_000.0 if i <= earlier
                else run_start + (i - earlier) / current * 590.0
            )
            failed = rng.random() < 0.03
            state = "failed" if failed else ("skipped" if rng.random() < 0.01 else "done")
            label = labels[i % 5] if state == "done" and i % 3 == 0 else None
            cost = 0.0012 if label else 0.0
            rows.append((
                i, f"/data/in/{i // 1000:04d}/doc-{i:07d}.pdf", 20_000 + i % 5000, i, f"{i:064x}",
                "application/pdf", state, 1, categories[i % 4] if failed else None,
                "cannot parse" if failed else None, "extract" if failed else None,
                rng.randint(1, 12) if state == "done" else None, finished - 1.0, finished,
                0.05, 0.06, os.urandom(blob) if state != "failed" else None, 1 + i // 1000,
                label, cost, 900 if label else 0, 60 if label else 0,
            ))
        else:
            rows.append((
                i, f"/data/in/{i // 1000:04d}/doc-{i:07d}.pdf", 20_000, i, f"{i:064x}", None,
                "pending", 0, None, None, None, None, None, None, None, None, None, None,
                None, 0.0, 0, 0,
            ))
        if len(rows) == 5000:
            _insert(conn, rows)
            rows = []
    _insert(conn, rows)
    conn.execute("COMMIT")
    conn.close()
    return {"docs": docs, "earlier": earlier, "current": current, "pending": docs - earlier - current}


def _insert(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.executemany(
        "INSERT INTO documents (id, source, size, mtime_ns, sha256, mime, state, attempts, "
        "error_category, error_message, error_stage, pages, started_at, finished_at, parse_s, "
        "total_s, result, part, label, cost_usd, tokens_in, tokens_out) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def status_cpu(out: Path, repeats: int) -> tuple[float, dict[str, Any]]:
    """Median CPU seconds of ``status_data`` in this process (its ledger reads)."""
    from docmill.cli.main import status_data

    times: list[float] = []
    data: dict[str, Any] = {}
    for _ in range(repeats):
        t0 = time.process_time()
        data = status_data(str(out))
        times.append(time.process_time() - t0)
    return statistics.median(times), data


def totals_cpu(out: Path, repeats: int) -> float:
    """Median CPU seconds of ``LedgerReader.totals`` (a service job's runner reads it
    every second, with its heartbeat)."""
    from docmill.state.browse import LedgerReader

    times: list[float] = []
    with LedgerReader.open(out) as reader:
        for _ in range(repeats):
            t0 = time.process_time()
            reader.totals()
            times.append(time.process_time() - t0)
    return statistics.median(times)


def cli_cpu(out: Path, repeats: int) -> float:
    """Median CPU seconds (user + system) of a whole ``docmill status --json`` process."""
    times: list[float] = []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([tool("docmill"), "status", str(out), "--json"], check=True,
                       stdout=subprocess.DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times)


def plans(out: Path) -> list[str]:
    from docmill.state.store import DONE_PAGES_SQL, LAST_RUN_SQL, LLM_SPEND_SQL

    conn = sqlite3.connect(out / "docmill.db")
    try:
        return [
            " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, (0.0,) * sql.count("?")))
            for sql in (LAST_RUN_SQL, DONE_PAGES_SQL, LLM_SPEND_SQL)
        ]
    finally:
        conn.close()


def write_cpu(folder: Path, docs: int, without: bool) -> float:
    """CPU seconds the run's ledger writes of ``docs`` documents take (claims of 256 and
    their commits, as the runner batches them), with 0007's indexes or without."""
    from docmill.model import DocState, ProcessOutcome, SourceFile
    from docmill.state import Store

    store = Store.open(folder)
    try:
        if without:
            conn = sqlite3.connect(folder / "docmill.db", isolation_level=None)
            for name in NEW_INDEXES:
                conn.execute(f"DROP INDEX {name}")
            conn.close()
        store.upsert_sources([SourceFile(f"/data/w/{i}.pdf", 100, i) for i in range(docs)])
        store.set_hashes([(i, f"{i:064x}", "") for i, _src in store.unhashed(docs)], [])
        outcome = ProcessOutcome(status=DocState.DONE, mime="application/pdf", pages=3,
                                 text=["a" * 2000], metadata={})
        outcome.seal()
        t0 = time.process_time()
        while rows := store.claim_pending(256):
            now = time.time()
            store.complete_many([(r.id, outcome, False, now, 0.1) for r in rows])
        return time.process_time() - t0
    finally:
        store.close()


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from docmill.state.migrations import MIGRATIONS

    out = work / "out"
    t0 = time.perf_counter()
    shape = build(out, args.docs, args.blob_kb, args.seed)
    build_s = time.perf_counter() - t0
    db_mb = (out / "docmill.db").stat().st_size / 1e6
    sql = dict(MIGRATIONS)["0007_status_indexes"]
    fig: dict[str, Any] = {**shape, "blob_kb": args.blob_kb, "db_mb": round(db_mb, 1),
                           "build_s": round(build_s, 1)}
    status_data_cpu = {}
    cli = {}
    totals = {}
    plan = {}
    for phase in ("with", "without", "with again"):
        conn = sqlite3.connect(out / "docmill.db", isolation_level=None)
        if phase == "without":
            for name in NEW_INDEXES:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
        elif phase == "with again":
            t1 = time.process_time()
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)
            fig["create_index_cpu_s"] = round(time.process_time() - t1, 3)
        conn.close()
        status_cpu(out, 1)  # warm the page cache
        cpu, data = status_cpu(out, args.repeats)
        status_data_cpu[phase] = round(cpu, 4)
        cli[phase] = round(cli_cpu(out, args.repeats), 4)
        totals[phase] = round(totals_cpu(out, args.repeats), 4)
        plan[phase] = plans(out)
        fig["last_run"] = data["last_run"]
    fig["status_data_cpu_s"] = status_data_cpu
    fig["cli_cpu_s"] = cli
    fig["service_totals_cpu_s"] = totals
    fig["plans"] = plan
    fig["ratio_status_data"] = round(status_data_cpu["without"] / max(status_data_cpu["with"], 1e-6), 1)
    fig["ratio_cli"] = round(cli["without"] / max(cli["with"], 1e-6), 1)
    # what the indexes cost a run: its claims and commits, alternating, medians
    writes: dict[str, list[float]] = {"with": [], "without": []}
    for round_no in range(args.write_rounds):
        for phase in ("with", "without"):
            folder = work / f"writes-{round_no}-{phase}"
            writes[phase].append(write_cpu(folder, args.write_docs, phase == "without"))
    fig["write_docs"] = args.write_docs
    fig["write_cpu_s"] = {k: round(statistics.median(v), 4) for k, v in writes.items()}
    extra = fig["write_cpu_s"]["with"] - fig["write_cpu_s"]["without"]
    fig["write_us_per_doc"] = round(extra / args.write_docs * 1e6, 2)
    return fig


def report(fig: dict[str, Any]) -> str:
    rows = [
        ("ledger", f"{fig['docs']:,} documents ({fig['earlier']:,} earlier run, {fig['current']:,} "
                   f"this unfinished run, {fig['pending']:,} pending), {fig['db_mb']} MB"),
        ("status_data CPU-s, without 0007", f"{fig['status_data_cpu_s']['without']}"),
        ("status_data CPU-s, with 0007", f"{fig['status_data_cpu_s']['with']} "
                                         f"(again: {fig['status_data_cpu_s']['with again']})"),
        ("docmill status CPU-s, without / with", f"{fig['cli_cpu_s']['without']} / {fig['cli_cpu_s']['with']}"),
        ("service job totals CPU-s, without / with",
         f"{fig['service_totals_cpu_s']['without']} / {fig['service_totals_cpu_s']['with']}"),
        ("ratio without / with", f"status_data {fig['ratio_status_data']}x, process {fig['ratio_cli']}x"),
        ("creating the indexes (migration)", f"{fig['create_index_cpu_s']} CPU-s"),
        (f"a run's ledger writes, {fig['write_docs']:,} documents",
         f"{fig['write_cpu_s']['with']} CPU-s with, {fig['write_cpu_s']['without']} without: "
         f"{fig['write_us_per_doc']} us a document more"),
    ]
    lines = [table(rows)]
    for phase in ("without", "with"):
        lines.append(f"  plans {phase}: " + " | ".join(fig["plans"][phase]))
    return "\n".join(lines)


def main() -> int:
    ensure_venv()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=int, default=200_000)
    p.add_argument("--blob-kb", type=float, default=1.5, help="result blob per finished row")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--write-docs", type=int, default=20_000, help="documents claimed and committed")
    p.add_argument("--write-rounds", type=int, default=3)
    add_output_args(p, "status_ledger")
    args = p.parse_args()
    return run_benchmark("status_ledger", args, measure, report)


if __name__ == "__main__":
    sys.exit(main())
