"""The SQLite ledger: migrations, upserts, hashing, claiming, results, retry, records."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docmill.model import (
    DocState,
    ErrorInfo,
    FailureCategory,
    PageRange,
    ProcessOutcome,
    SourceFile,
)
from docmill.state import Store, StoreError
from docmill.state.migrations import MIGRATIONS, apply_migrations
from docmill.state.store import DB_NAME


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "out")
    try:
        yield s
    finally:
        s.close()


def make_file(folder: Path, name: str, data: bytes) -> SourceFile:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    return SourceFile(str(path), st.st_size, st.st_mtime_ns)


def restat(f: SourceFile) -> SourceFile:
    st = os.stat(f.source)
    return SourceFile(f.source, st.st_size, st.st_mtime_ns)


def sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def query(store: Store, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Read the ledger file through a connection of our own (as another process would)."""
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def ids_by_source(store: Store) -> dict[str, int]:
    return {str(src): int(str(i)) for i, src in query(store, "SELECT id, source FROM documents")}


def add_and_hash(store: Store, files: list[SourceFile]) -> list[int]:
    """Upsert, hash what needs it, return the ids in the order of ``files``."""
    store.upsert_sources(files)
    rows = store.unhashed(10_000)
    failed: list[int] = []
    store.set_hashes([(i, sha(src), "") for i, src in rows], failed)
    assert failed == []
    by_source = ids_by_source(store)
    return [by_source[f.source] for f in files]


def state_of(store: Store, doc_id: int) -> str:
    return str(query(store, "SELECT state FROM documents WHERE id=?", doc_id)[0][0])


def done(text: list[str], **metadata: object) -> ProcessOutcome:
    return ProcessOutcome(
        status=DocState.DONE,
        mime="application/pdf",
        pages=len(text),
        text=text,
        metadata=dict(metadata),
        parse_s=0.01,
    )


def finish(store: Store, doc_id: int, outcome: ProcessOutcome) -> None:
    """Claim-free completion of one document (as the runner does after dispatch)."""
    store.complete(doc_id, outcome)


# --- migrations and opening ----------------------------------------------------------


def test_open_creates_the_folder_the_ledger_and_records_migrations(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    store = Store.open(out)
    store.close()
    db = out / DB_NAME
    assert db.is_file()
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY name")]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert names == [name for name, _sql in MIGRATIONS]
    assert {"documents", "parts", "chunks", "runs", "migrations"} <= tables


def test_reopening_applies_no_migration_again(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    try:
        before = conn.execute("SELECT name, applied_at FROM migrations").fetchall()
        assert apply_migrations(conn) == []
    finally:
        conn.close()
    Store.open(tmp_path, create=False).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        after = conn.execute("SELECT name, applied_at FROM migrations").fetchall()
    finally:
        conn.close()
    assert after == before
    assert len(after) == len(MIGRATIONS)


def test_ledger_is_in_wal_mode(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_migration_racing_another_opener_does_not_fail(tmp_path: Path) -> None:
    """Two processes opening a fresh folder at once (``run`` and ``status``, say).

    The other connection applies the migrations after this one has read the
    ``migrations`` table but before it takes the write lock.
    """
    db = tmp_path / DB_NAME
    mine = sqlite3.connect(db, isolation_level=None, timeout=5)
    other = sqlite3.connect(db, isolation_level=None, timeout=5)
    raced: list[list[str]] = []

    def on_statement(sql: str) -> None:
        if sql.startswith("BEGIN IMMEDIATE") and not raced:
            raced.append(apply_migrations(other))

    mine.set_trace_callback(on_statement)
    try:
        applied = apply_migrations(mine)
    finally:
        mine.set_trace_callback(None)
        mine.close()
        other.close()
    assert raced == [[name for name, _sql in MIGRATIONS]]
    assert applied == []
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)
    finally:
        conn.close()


def _open_fresh(folder: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        Store.open(folder).close()
        results.put("ok")
    except StoreError as exc:
        results.put(str(exc))


def test_concurrent_opens_of_a_fresh_folder_all_succeed(tmp_path: Path) -> None:
    """``docmill run`` and ``docmill status`` (or a second run) starting together."""
    ctx = mp.get_context("fork")
    errors: list[str] = []
    for round_no in range(40):
        folder = tmp_path / f"out{round_no}"
        barrier, results = ctx.Barrier(6), ctx.Queue()
        procs = [
            ctx.Process(target=_open_fresh, args=(str(folder), barrier, results)) for _ in range(6)
        ]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
        errors += [o for o in outcomes if o != "ok"]
    assert errors == [], f"{len(errors)} of 240 opens failed, e.g. {errors[0]}"


def test_open_without_create_on_a_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "never-ran"
    with pytest.raises(StoreError) as info:
        Store.open(missing, create=False)
    message = str(info.value)
    assert str(missing / DB_NAME) in message
    assert "docmill run" in message
    assert not missing.exists()  # looking does not create anything


def test_open_without_create_on_an_empty_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no docmill ledger"):
        Store.open(tmp_path, create=False)
    assert not (tmp_path / DB_NAME).exists()


def test_store_in_a_read_only_folder_raises_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running with privileges that ignore folder permissions (root)")
        with pytest.raises(StoreError, match="cannot open the ledger"):
            Store.open(folder)
    finally:
        folder.chmod(0o755)


def test_store_under_a_regular_file_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot open the ledger"):
        Store.open(blocker / "out")


def test_a_file_that_is_not_a_database_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the ledger"):
        Store.open(tmp_path, create=False)


# --- enumeration and hashing ---------------------------------------------------------


def test_upsert_new_unchanged_and_changed_sources(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src"
    a = make_file(src, "a.pdf", b"aaa")
    b = make_file(src, "b.pdf", b"bbb")
    assert store.upsert_sources([a, b]) == (2, 0)
    assert store.upsert_sources([a, b]) == (0, 0)
    assert store.counts()["pending"] == 2

    bigger = SourceFile(a.source, a.size + 1, a.mtime_ns)
    touched = SourceFile(b.source, b.size, b.mtime_ns + 1_000_000)
    assert store.upsert_sources([bigger, touched]) == (0, 2)
    assert store.upsert_sources([bigger, touched]) == (0, 0)


def test_new_and_changed_sources_need_hashing_and_unhashed_respects_limit(
    store: Store, tmp_path: Path
) -> None:
    files = [make_file(tmp_path, f"{i}.pdf", bytes([i])) for i in range(5)]
    store.upsert_sources(files)
    rows = store.unhashed(3)
    assert [src for _i, src in rows] == [f.source for f in files[:3]]
    store.set_hashes([(i, sha(src), "") for i, src in store.unhashed(10)], [])
    assert store.unhashed(10) == []
    changed = SourceFile(files[2].source, files[2].size, files[2].mtime_ns + 5)
    store.upsert_sources([changed])
    assert [src for _i, src in store.unhashed(10)] == [files[2].source]


def test_changed_content_requeues_a_finished_document_and_marks_its_part_stale(
    store: Store, tmp_path: Path
) -> None:
    f = make_file(tmp_path, "doc.pdf", b"version one")
    (doc,) = add_and_hash(store, [f])
    assert [r.id for r in store.claim_pending(5)] == [doc]
    finish(store, doc, done(["old text"]))
    store.commit_part(1, [doc], "jsonl")
    assert store.part_numbers() == {1: "final"}

    Path(f.source).write_bytes(b"version two, longer")
    assert store.upsert_sources([restat(f)]) == (0, 1)
    ((hid, path),) = store.unhashed(10)
    requeued = store.set_hashes([(hid, sha(path), "")], [])

    assert requeued == 1
    assert state_of(store, doc) == "pending"
    assert store.part_numbers() == {1: "stale"}
    assert list(store.iter_part_records(1)) == []
    rec = store.record(doc)
    assert rec is not None
    assert rec.text == []
    assert rec.attempts == 0
    assert rec.sha256 == sha(f.source)
    assert [r.id for r in store.claim_pending(5)] == [doc]


def test_same_content_after_touch_stays_done(store: Store, tmp_path: Path) -> None:
    f = make_file(tmp_path, "doc.pdf", b"same bytes")
    (doc,) = add_and_hash(store, [f])
    store.claim_pending(5)
    finish(store, doc, done(["kept"]))
    store.commit_part(1, [doc], "jsonl")

    os.utime(f.source, ns=(f.mtime_ns + 10**9, f.mtime_ns + 10**9))
    assert store.upsert_sources([restat(f)]) == (0, 1)
    ((hid, path),) = store.unhashed(10)
    assert store.set_hashes([(hid, sha(path), "")], []) == 0

    assert state_of(store, doc) == "done"
    assert store.part_numbers() == {1: "final"}
    rec = store.record(doc)
    assert rec is not None
    assert rec.text == ["kept"]
    assert rec.sha256 == sha(f.source)
    assert store.unhashed(10) == []
    assert store.claim_pending(5) == []


def test_unreadable_file_fails_with_io_at_hashing(store: Store, tmp_path: Path) -> None:
    f = make_file(tmp_path, "gone.pdf", b"x")
    store.upsert_sources([f])
    ((doc, _path),) = store.unhashed(10)
    failed: list[int] = []
    store.set_hashes([(doc, None, "cannot read the file: gone")], failed)
    assert failed == [doc]
    rec = store.record(doc)
    assert rec is not None
    assert rec.status is DocState.FAILED
    assert rec.error == ErrorInfo(FailureCategory.IO, "cannot read the file: gone", "read")
    assert rec.sha256 is None
    assert store.unhashed(10) == []  # not hashed again and again
    assert store.claim_pending(5) == []


# --- claiming, recovery --------------------------------------------------------------


def test_claim_pending_marks_running_in_id_order_and_respects_limit(
    store: Store, tmp_path: Path
) -> None:
    ids = add_and_hash(store, [make_file(tmp_path, f"{i}.pdf", bytes([i])) for i in range(5)])
    first = store.claim_pending(2)
    assert [r.id for r in first] == ids[:2]
    assert all(r.sha256 for r in first)
    assert all(state_of(store, i) == "running" for i in ids[:2])
    assert store.counts()["running"] == 2
    assert [r.id for r in store.claim_pending(2)] == ids[2:4]
    assert [r.id for r in store.claim_pending(10)] == [ids[4]]
    assert store.claim_pending(10) == []
    assert store.claim_pending(0) == []
    assert store.pending_count() == 0


def test_unhashed_pending_documents_are_not_claimed(store: Store, tmp_path: Path) -> None:
    store.upsert_sources([make_file(tmp_path, "a.pdf", b"a")])
    assert store.claim_pending(5) == []
    assert store.pending_count() == 1


def test_recover_interrupted_moves_running_back_to_pending(store: Store, tmp_path: Path) -> None:
    ids = add_and_hash(store, [make_file(tmp_path, f"{i}.pdf", bytes([i])) for i in range(3)])
    store.claim_pending(2)
    assert store.recover_interrupted() == 2
    assert store.counts()["running"] == 0
    assert store.pending_count() == 3
    assert store.recover_interrupted() == 0
    assert [r.id for r in store.claim_pending(5)] == ids


def test_release_running_puts_documents_back_without_counting_an_attempt(
    store: Store, tmp_path: Path
) -> None:
    ids = add_and_hash(store, [make_file(tmp_path, f"{i}.pdf", bytes([i])) for i in range(2)])
    store.claim_pending(2)
    store.release_running([ids[0]])
    assert state_of(store, ids[0]) == "pending"
    assert state_of(store, ids[1]) == "running"
    assert store.attempts(ids[0]) == 0


# --- results -------------------------------------------------------------------------


def test_complete_and_record_round_trip(store: Store, tmp_path: Path) -> None:
    f = make_file(tmp_path, "doc.pdf", b"pdf bytes")
    (doc,) = add_and_hash(store, [f])
    store.claim_pending(1)
    text = ["page one\nline two", "", "página tres — ünïcode ✓"]
    metadata = {"title": "T", "nested": {"a": [1, 2]}, "encrypted": False}
    finish(store, doc, done(text, **metadata))

    rec = store.record(doc)
    assert rec is not None
    assert rec.id == doc
    assert rec.source == f.source
    assert rec.size == f.size
    assert rec.sha256 == sha(f.source)
    assert rec.mime == "application/pdf"
    assert rec.status is DocState.DONE
    assert rec.error is None
    assert rec.pages == 3
    assert rec.text == text
    assert rec.metadata == metadata
    assert rec.attempts == 1
    assert rec.duplicate_of is None
    assert set(rec.timings) == {"parse_s", "total_s"}
    assert rec.timings["total_s"] >= 0
    assert store.counts()["done"] == 1
    assert store.total_pages() == 3


def test_failed_outcome_round_trips_its_error(store: Store, tmp_path: Path) -> None:
    (doc,) = add_and_hash(store, [make_file(tmp_path, "enc.pdf", b"enc")])
    store.claim_pending(1)
    store.complete(doc, ProcessOutcome.failure(FailureCategory.ENCRYPTED, "needs a password"))
    rec = store.record(doc)
    assert rec is not None
    assert rec.status is DocState.FAILED
    assert rec.error == ErrorInfo(FailureCategory.ENCRYPTED, "needs a password", "extract")
    assert rec.text == []
    assert rec.metadata == {}
    assert rec.to_dict()["error"] == {
        "category": "encrypted",
        "message": "needs a password",
        "stage": "extract",
    }


def test_complete_many_commits_each_outcome_and_drops_only_merged_chunks(
    store: Store, tmp_path: Path
) -> None:
    a, b, c = add_and_hash(store, [make_file(tmp_path, f"{n}.pdf", n.encode()) for n in "abc"])
    store.claim_pending(3)
    for doc in (a, b):
        store.save_chunk(doc, 0, 2, done(["p1", "p2"]))
    merged = done(["p1", "p2"], split_ranges=1)
    failed = ProcessOutcome.failure(FailureCategory.CRASH, "killed by SIGKILL", "extract")
    store.complete_many(
        [(a, merged, False, 1000.0, 1.5), (c, failed, True, 1001.0, 2.5)]
    )
    assert store.chunk_starts(a) == set() and store.chunk_starts(b) == {0}
    rec_a, rec_c = store.record(a), store.record(c)
    assert rec_a is not None and rec_c is not None
    assert rec_a.status is DocState.DONE and rec_a.text == ["p1", "p2"]
    assert rec_a.metadata == {"split_ranges": 1} and rec_a.timings["total_s"] == 1.5
    assert rec_c.status is DocState.FAILED
    assert rec_c.error == ErrorInfo(FailureCategory.CRASH, "killed by SIGKILL", "extract")
    assert query(store, "SELECT id, quarantined, attempts, finished_at FROM documents "
                 "WHERE id IN (?, ?) ORDER BY id", a, c) == [(a, 0, 1, 1000.0), (c, 1, 1, 1001.0)]
    assert state_of(store, b) == "running"


def test_a_chunk_keeps_every_field_to_dict_writes(store: Store, tmp_path: Path) -> None:
    """A split document's range is stored as to_dict's JSON and read back with from_dict:
    the label and the LLM spend (ledger columns) come back with the rest."""
    (doc,) = add_and_hash(store, [make_file(tmp_path, "big.pdf", b"big")])
    store.claim_pending(1)
    chunk = ProcessOutcome(
        status=DocState.DONE,
        mime="application/pdf",
        pages=900,
        text=["p1", "p2"],
        metadata={"title": "T"},
        error=ErrorInfo(FailureCategory.ERROR, "one page failed", "tables"),
        parse_s=0.25,
        page_range=PageRange(500, 502),
        extra={"tables": [{"page": 0}]},
        label="invoice",
        cost_usd=0.0125,
        tokens_in=1234,
        tokens_out=56,
    )
    store.save_chunk(doc, 500, 502, chunk)
    (back,) = store.iter_chunks(doc)
    assert back.to_dict() == chunk.to_dict()
    assert (back.label, back.cost_usd, back.tokens_in, back.tokens_out) == (
        "invoice", 0.0125, 1234, 56
    )
    assert ProcessOutcome.from_dict(chunk.to_dict()) == chunk


def test_record_of_unknown_id_is_none(store: Store) -> None:
    assert store.record(12345) is None


def test_count_attempt_keeps_the_document_running_and_counts(store: Store, tmp_path: Path) -> None:
    (doc,) = add_and_hash(store, [make_file(tmp_path, "slow.pdf", b"slow")])
    store.claim_pending(1)
    store.count_attempt(doc, ErrorInfo(FailureCategory.TIMEOUT, "killed after 1s"))
    assert store.attempts(doc) == 1
    assert state_of(store, doc) == "running"
    store.complete(doc, ProcessOutcome.failure(FailureCategory.TIMEOUT, "again"), quarantined=True)
    assert store.attempts(doc) == 2


def test_copy_outcome_gives_the_duplicate_the_twins_payload(store: Store, tmp_path: Path) -> None:
    a = make_file(tmp_path, "a.pdf", b"identical")
    b = make_file(tmp_path, "copy/b.pdf", b"identical")
    first, second = add_and_hash(store, [a, b])
    store.claim_pending(2)
    finish(store, first, done(["shared text", "p2"], title="Same"))

    twin = store.settled_twins([sha(b.source)]).get(sha(b.source))
    assert twin is not None
    assert twin.id == first
    store.copy_outcome(second, first)

    original = store.record(first)
    dup = store.record(second)
    assert original is not None
    assert dup is not None
    assert dup.duplicate_of == first
    assert dup.source == b.source
    assert dup.sha256 == original.sha256
    assert dup.status is DocState.DONE
    assert dup.text == original.text == ["shared text", "p2"]
    assert dup.metadata == {"title": "Same"}
    assert dup.pages == 2
    assert dup.mime == "application/pdf"
    assert original.duplicate_of is None
    # a duplicate is never offered as a twin itself
    c = make_file(tmp_path, "again/c.pdf", b"identical")
    add_and_hash(store, [c])
    twin_again = store.settled_twins([sha(c.source)]).get(sha(c.source))
    assert twin_again is not None
    assert twin_again.id == first


def test_copy_outcome_of_a_failed_twin_copies_the_error(store: Store, tmp_path: Path) -> None:
    a, b = (make_file(tmp_path, n, b"same encrypted bytes") for n in ("a.pdf", "b.pdf"))
    first, second = add_and_hash(store, [a, b])
    store.claim_pending(2)
    store.complete(first, ProcessOutcome.failure(FailureCategory.ENCRYPTED, "password"))
    store.copy_outcome(second, first)
    dup = store.record(second)
    assert dup is not None
    assert dup.status is DocState.FAILED
    assert dup.error == ErrorInfo(FailureCategory.ENCRYPTED, "password", "extract")
    assert dup.duplicate_of == first


def test_retryable_failure_not_yet_quarantined_is_no_twin(store: Store, tmp_path: Path) -> None:
    a, b = (make_file(tmp_path, n, b"same slow bytes") for n in ("a.pdf", "b.pdf"))
    first, _second = add_and_hash(store, [a, b])
    store.claim_pending(2)
    store.complete(first, ProcessOutcome.failure(FailureCategory.TIMEOUT, "killed"))
    assert store.settled_twins([sha(a.source)]) == {}
    store.complete(
        first, ProcessOutcome.failure(FailureCategory.TIMEOUT, "killed"), quarantined=True
    )
    twin = store.settled_twins([sha(a.source)]).get(sha(a.source))
    assert twin is not None
    assert twin.id == first


def test_settled_twins_answers_a_whole_batch_as_it_answers_one_content(
    store: Store, tmp_path: Path
) -> None:
    names = ("a", "b", "c", "d", "e", "f")
    files = [make_file(tmp_path, f"{n}.pdf", f"content {n}".encode()) for n in names]
    files += [make_file(tmp_path, f"copy/{n}.pdf", f"content {n}".encode()) for n in names]
    ids = add_and_hash(store, files)
    originals, copies = ids[:6], ids[6:]
    store.claim_pending(12)
    finish(store, originals[0], done(["a"]))
    store.complete(originals[1], ProcessOutcome.failure(FailureCategory.ENCRYPTED, "pw"))
    store.complete(originals[2], ProcessOutcome.failure(FailureCategory.TIMEOUT, "killed"))
    store.complete(
        originals[3], ProcessOutcome.failure(FailureCategory.CRASH, "SIGSEGV"), quarantined=True
    )
    # originals[4] is still running; e's copy settles first and is a twin
    finish(store, copies[4], done(["e"]))
    store.copy_outcome(copies[0], originals[0])  # a duplicate: never a twin itself
    shas = [sha(f.source) for f in files[:6]]
    twins = store.settled_twins(shas + shas + ["0" * 64])
    assert {k: v.id for k, v in twins.items()} == {
        shas[0]: originals[0],
        shas[1]: originals[1],
        shas[3]: originals[3],
        shas[4]: copies[4],
    }
    for i, digest in enumerate(shas):  # the same answers, one at a time
        one = store.settled_twins([digest]).get(digest)
        assert (one.id if one else None) == (twins[digest].id if digest in twins else None), i
    assert store.settled_twins([]) == {}
    many = [f"{i:064x}" for i in range(1200)] + [shas[0]]  # more than one query's worth
    assert [t.id for t in store.settled_twins(many).values()] == [originals[0]]


def test_duplicate_does_not_point_at_an_original_whose_content_changed(
    store: Store, tmp_path: Path
) -> None:
    """``duplicate_of`` claims identical content; it must stay true after a re-hash."""
    a = make_file(tmp_path, "a.pdf", b"identical")
    b = make_file(tmp_path, "b.pdf", b"identical")
    first, second = add_and_hash(store, [a, b])
    store.claim_pending(2)
    finish(store, first, done(["shared"]))
    store.copy_outcome(second, first)

    Path(a.source).write_bytes(b"the original was edited")
    store.upsert_sources([restat(a)])
    store.set_hashes([(i, sha(src), "") for i, src in store.unhashed(10)], [])

    for rec in store.iter_records():
        if rec.duplicate_of is not None:
            original = store.record(rec.duplicate_of)
            assert original is not None
            assert original.sha256 == rec.sha256, (
                f"record {rec.id} says duplicate_of={rec.duplicate_of}, "
                "but that document's content changed"
            )


# --- retry and reporting -------------------------------------------------------------


def _failures(store: Store, tmp_path: Path, spec: list[tuple[str, FailureCategory]]) -> list[int]:
    files = [make_file(tmp_path, name, name.encode()) for name, _c in spec]
    ids = add_and_hash(store, files)
    store.claim_pending(len(ids))
    for doc, (name, category) in zip(ids, spec, strict=True):
        store.complete(doc, ProcessOutcome.failure(category, f"{name} failed"))
    return ids


def test_retry_failed_by_category_then_all(store: Store, tmp_path: Path) -> None:
    enc1, enc2, bad = _failures(
        store,
        tmp_path,
        [
            ("e1.pdf", FailureCategory.ENCRYPTED),
            ("e2.pdf", FailureCategory.ENCRYPTED),
            ("c.pdf", FailureCategory.CORRUPT),
        ],
    )
    (ok,) = add_and_hash(store, [make_file(tmp_path, "ok.pdf", b"fine")])
    store.claim_pending(1)
    finish(store, ok, done(["fine"]))
    store.commit_part(1, [enc1, enc2, bad, ok], "jsonl")

    assert store.retry_failed("encrypted") == 2
    assert state_of(store, enc1) == state_of(store, enc2) == "pending"
    assert state_of(store, bad) == "failed"
    assert state_of(store, ok) == "done"
    rec = store.record(enc1)
    assert rec is not None
    assert rec.error is None
    assert rec.attempts == 0
    assert store.part_numbers() == {1: "stale"}
    assert [r.id for r in store.iter_part_records(1)] == [bad, ok]

    assert store.retry_failed("timeout") == 0
    assert store.retry_failed() == 1
    assert store.counts() == {"pending": 3, "running": 0, "done": 1, "failed": 0, "skipped": 0}
    assert [r.id for r in store.claim_pending(10)] == [enc1, enc2, bad]


def test_failure_summary_orders_by_count_then_category(store: Store, tmp_path: Path) -> None:
    _failures(
        store,
        tmp_path,
        [
            ("t2.pdf", FailureCategory.TIMEOUT),
            ("c1.pdf", FailureCategory.CORRUPT),
            ("e2.pdf", FailureCategory.ENCRYPTED),
            ("c2.pdf", FailureCategory.CORRUPT),
            ("e1.pdf", FailureCategory.ENCRYPTED),
            ("c3.pdf", FailureCategory.CORRUPT),
            ("t1.pdf", FailureCategory.TIMEOUT),
            ("m.pdf", FailureCategory.MEMORY),
        ],
    )
    summary = store.failure_summary()
    assert [(cat, n) for cat, n, _ex in summary] == [
        ("corrupt", 3),
        ("encrypted", 2),
        ("timeout", 2),
        ("memory", 1),
    ]
    examples = {cat: ex for cat, _n, ex in summary}
    assert examples["encrypted"] == str(tmp_path / "e1.pdf")
    assert examples["timeout"] == str(tmp_path / "t1.pdf")
    assert store.failure_summary(limit=2) == summary[:2]
    assert store.failure_examples("corrupt", 2) == [
        (str(tmp_path / "c1.pdf"), "c1.pdf failed"),
        (str(tmp_path / "c2.pdf"), "c2.pdf failed"),
    ]


def test_skipped_documents_are_not_failures(store: Store, tmp_path: Path) -> None:
    (doc,) = add_and_hash(store, [make_file(tmp_path, "pic.png", b"\x89PNG")])
    store.claim_pending(1)
    store.complete(doc, ProcessOutcome.failure(FailureCategory.UNSUPPORTED, "image/png"))
    assert state_of(store, doc) == "skipped"
    assert store.failure_summary() == []
    assert store.retry_failed() == 0


# --- records in batches, parts, runs -------------------------------------------------


def test_iter_records_returns_every_terminal_record_in_id_order_across_batches(
    store: Store, tmp_path: Path
) -> None:
    n = 523
    files = [SourceFile(str(tmp_path / f"f{i:04d}.pdf"), i, i) for i in range(n)]
    store.upsert_sources(files)
    store.set_hashes([(i, f"{i:064x}", "") for i, _src in store.unhashed(n)], [])
    rows = store.claim_pending(n)
    assert len(rows) == n
    store.complete_many(
        (r.id, done([f"text {r.id}"]), False, 1000.0 + r.id, 0.5) for r in rows if r.id != 7
    )
    expected = [r.id for r in rows if r.id != 7]  # 7 is still running: no record yet

    for batch in (200, 7, 1000):
        got = list(store.iter_records(batch=batch))
        assert [r.id for r in got] == expected
        assert all(r.text == [f"text {r.id}"] for r in got)
        assert all(r.timings["total_s"] == 0.5 for r in got)

    store.commit_part(1, expected[:500], "jsonl")
    assert [r.id for r in store.iter_records(unwritten_only=True)] == expected[500:]
    assert [r.id for r in store.iter_part_records(1)] == expected[:500]
    assert store.next_part_number() == 2


def test_parts_drop_and_mark(store: Store, tmp_path: Path) -> None:
    ids = add_and_hash(store, [make_file(tmp_path, f"{i}.pdf", bytes([i])) for i in range(3)])
    store.claim_pending(3)
    for doc in ids:
        finish(store, doc, done(["x"]))
    store.commit_part(1, ids[:2], "jsonl")
    store.commit_part(2, ids[2:], "parquet")
    assert store.part_numbers() == {1: "final", 2: "final"}
    store.drop_part(2)
    assert store.part_numbers() == {1: "final"}
    assert [r.id for r in store.iter_records(unwritten_only=True)] == ids[2:]
    store.mark_part(1, 0)
    assert store.part_numbers() == {}


def test_runs_remember_their_sources_and_status(store: Store) -> None:
    assert store.last_run() is None
    assert store.last_run_sources() == []
    first = store.start_run(["/data/a", "@list.txt"], {"run": {"workers": 1}})
    store.finish_run(first, "completed", 3, 10)
    second = store.start_run(["/data/b"], {})
    assert second > first
    assert store.last_run_sources() == ["/data/b"]
    last = store.last_run()
    assert last is not None
    assert last["id"] == second
    assert last["status"] == "running"
    assert last["finished_at"] is None


def test_one_run_lock_per_folder(tmp_path: Path) -> None:
    first = Store.open(tmp_path)
    second = Store.open(tmp_path)
    try:
        first.lock_for_run()
        with pytest.raises(StoreError, match=f"pid {os.getpid()}"):
            second.lock_for_run()
        first.close()
        second.lock_for_run()  # released when its holder closes
    finally:
        first.close()
        second.close()


def test_a_failed_transaction_leaves_nothing_behind(store: Store, tmp_path: Path) -> None:
    f = make_file(tmp_path, "a.pdf", b"a")

    class Boom(Exception):
        pass

    def files_then_boom() -> Iterator[SourceFile]:
        yield f
        raise Boom

    with pytest.raises(Boom):
        store.upsert_sources(files_then_boom())
    assert store.counts()["pending"] == 0
    assert store.upsert_sources([f]) == (1, 0)


def test_second_connection_sees_committed_state(store: Store, tmp_path: Path) -> None:
    ids = add_and_hash(store, [make_file(tmp_path, "a.pdf", b"a")])
    store.claim_pending(1)
    finish(store, ids[0], done(["visible"]))
    reader = Store.open(store.path.parent, create=False)
    try:
        rec = reader.record(ids[0])
        assert rec is not None
        assert rec.text == ["visible"]
        assert reader.counts()["done"] == 1
    finally:
        reader.close()


def test_a_reader_waits_for_every_migration(tmp_path: Path) -> None:
    """A ledger whose run is still applying migrations (each commits on its own) is not
    ready to read: a reader that opened it between two saw a table without its newer
    columns (`no such column`)."""
    import sqlite3

    from docmill.state.browse import LedgerReader
    from docmill.state.migrations import MIGRATIONS, apply_migrations

    tmp_path.mkdir(exist_ok=True)
    conn = sqlite3.connect(tmp_path / "docmill.db", isolation_level=None)
    apply_migrations(conn, MIGRATIONS[:1])  # the first table only, as mid-upgrade
    with pytest.raises(StoreError, match="not ready"):
        LedgerReader.open(tmp_path)
    apply_migrations(conn)
    conn.close()
    with LedgerReader.open(tmp_path) as reader:
        assert reader.counts()["pending"] == 0


# --- the queries of `docmill status` ---------------------------------------------------


def _plan(conn: sqlite3.Connection, sql: str) -> str:
    return " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, (0.0,) * sql.count("?")))


def test_status_queries_read_indexes_not_the_documents_table(tmp_path: Path) -> None:
    """`docmill status` (and the service's totals) while a run is unfinished: what that
    run finished, the pages done and the LLM spend come from covering indexes
    (migration 0007), never from a scan of `documents` and its result blobs."""
    from docmill.state.store import DONE_PAGES_SQL, LAST_RUN_SQL, LLM_SPEND_SQL

    Store.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        plans = {sql: _plan(conn, sql) for sql in (LAST_RUN_SQL, DONE_PAGES_SQL, LLM_SPEND_SQL)}
    finally:
        conn.close()
    for sql, plan in plans.items():
        assert "USING COVERING INDEX" in plan, (sql, plan)
    assert "documents_finished (state=? AND finished_at>?)" in plans[LAST_RUN_SQL]
    assert "documents_finished (state=?)" in plans[DONE_PAGES_SQL]
    assert "documents_spend" in plans[LLM_SPEND_SQL]


def test_status_figures_from_the_indexes_match_the_rows(store: Store, tmp_path: Path) -> None:
    """The indexed queries give what the rows say: an unfinished run's documents and
    pages (only those finished since it started), pages done, spend and tokens."""
    ids = add_and_hash(store, [make_file(tmp_path, f"{n}.pdf", n.encode()) for n in "abcde"])
    store.claim_pending(5)
    a, b, c, d, _e = ids
    store.complete_many([(a, done(["1", "2", "3"]), False, 100.0, 1.0)])
    run_id = store.start_run(["src"], {})
    started = query(store, "SELECT started_at FROM runs WHERE id=?", run_id)[0][0]
    assert isinstance(started, float)
    failed = ProcessOutcome.failure(FailureCategory.CORRUPT, "bad xref")
    store.complete_many([
        (b, done(["x", "y"]), False, started + 1, 1.0),
        (c, failed, False, started + 2, 1.0),
    ])
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("UPDATE documents SET cost_usd=0.5, tokens_in=100, tokens_out=7 WHERE id=?", (b,))
    conn.execute("UPDATE documents SET tokens_in=40 WHERE id=?", (d,))  # a free model
    conn.close()
    last = store.last_run()
    assert last is not None and last["finished_at"] is None
    assert (last["docs_finished"], last["pages_finished"], last["last_at"]) == (2, 2, started + 2)
    assert store.total_pages() == 5
    totals = store.llm_totals()
    assert (totals["cost_usd"], totals["tokens_in"], totals["tokens_out"]) == (0.5, 140, 7)


def test_an_older_ledger_gets_the_status_indexes_and_is_read_only_then(tmp_path: Path) -> None:
    """A ledger made before migration 0007 (0001-0006 applied) is not read by a reader
    until a run or `docmill status` has applied it; opening it applies it once."""
    from docmill.state.browse import LedgerReader

    conn = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    names = [name for name, _sql in MIGRATIONS]
    assert names.index("0007_status_indexes") == len(names) - 1
    apply_migrations(conn, MIGRATIONS[:-1])
    conn.close()
    with pytest.raises(StoreError, match="0007_status_indexes not applied"):
        LedgerReader.open(tmp_path)
    Store.open(tmp_path, create=False).close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        conn.close()
    assert {"documents_finished", "documents_spend"} <= indexes
    with LedgerReader.open(tmp_path) as reader:
        assert reader.totals()["pages"] == 0
