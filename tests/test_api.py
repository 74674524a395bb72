"""The library's other direction: ``docmill.extract`` (one document, one typed record, in a
supervised worker) and ``docmill.results`` (a folder's records, read-only, even while a
run writes it)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import docmill
from docmill.model import DocState, ProcessOutcome, Record, SourceFile
from docmill.state import Store, StoreError
from engine_kit import HOSTILE, REAL, corpus_file, docmill_cmd, env
from remote_kit import MotoS3, s3_env

PDF = REAL / "pdfplumber" / "examples" / "pdfs" / "background-checks.pdf"


def test_the_public_surface_has_extract_and_results() -> None:
    assert {"extract", "results", "Record"} <= set(docmill.__all__)
    assert docmill.Record is Record and callable(docmill.extract) and callable(docmill.results)


def test_extract_a_path_into_a_typed_record() -> None:
    record = docmill.extract(PDF)
    assert isinstance(record, Record)
    assert record.status is DocState.DONE and record.mime == "application/pdf" and record.pages == 1
    assert "Alabama" in record.text[0]
    assert record.source == os.path.abspath(PDF) and record.size == PDF.stat().st_size
    assert record.sha256 == hashlib.sha256(PDF.read_bytes()).hexdigest()
    assert record.error is None and record.label is None and record.fields == {}
    assert record.to_dict()["text"] == record.text  # the same shape as a part file's line


def test_extract_bytes_with_settings_in_process_or_not() -> None:
    settings = docmill.load_settings(env={}, overrides={"output.markdown": "true"})
    for isolated in (True, False):
        record = docmill.extract(PDF.read_bytes(), settings, isolated=isolated, name="report.pdf")
        assert record.source == "report.pdf" and record.status is DocState.DONE
        assert "Alabama" in record.text[0] and "Alabama" in record.decoded()["markdown"]
    memo = docmill.extract(b"Invoice 42\nTotal 10.00 EUR\n")
    assert memo.source == "<bytes>" and memo.text == ["Invoice 42\nTotal 10.00 EUR\n"]
    assert "markdown" not in docmill.extract(PDF).decoded()  # the defaults: no Markdown


def test_hostile_documents_are_failed_records_never_exceptions() -> None:
    settings = docmill.load_settings(env={}, overrides={"run.memory_mb": "400"})
    bomb = docmill.extract(corpus_file(HOSTILE / "generated" / "bomb_flate_4gib.pdf"), settings)
    assert bomb.status is DocState.FAILED and bomb.error is not None
    assert bomb.error.category == "memory" and "run.memory_mb=400" in bomb.error.message
    broken = docmill.extract(b"%PDF-1.7\n1 0 obj << /Type /Catalog", name="broken.pdf")
    assert broken.status is DocState.FAILED and broken.error is not None
    assert broken.error.category == "corrupt"
    gone = docmill.extract("/nonexistent/folder/x.pdf")
    assert gone.status is DocState.FAILED and gone.error is not None and gone.error.category == "io"


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    server = MotoS3()
    try:
        for key, value in s3_env(server.endpoint).items():
            if key.startswith("AWS_"):
                monkeypatch.setenv(key, value)
        yield server
    finally:
        server.stop()


def test_extract_a_url_downloads_it_as_a_run_would(moto: MotoS3) -> None:
    moto.bucket("api-in")
    moto.put("api-in", "docs/report.pdf", PDF.read_bytes())
    record = docmill.extract("s3://api-in/docs/report.pdf")
    assert record.status is DocState.DONE and record.source == "s3://api-in/docs/report.pdf"
    assert record.sha256 == hashlib.sha256(PDF.read_bytes()).hexdigest() and record.pages == 1
    missing = docmill.extract("s3://api-in/docs/none.pdf")
    assert missing.status is DocState.FAILED and missing.error is not None
    assert missing.error.stage == "download"


def test_results_of_a_running_folder_and_its_filters(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    n = 600
    for i in range(n):
        (src / f"note-{i:04d}.txt").write_text(f"note {i}\n")
    (src / "empty.txt").write_bytes(b"")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        docmill_cmd("run", str(src), "--out", str(out), "--workers", "1", "--quiet",
                    "--set", "output.part_max_records=5"),
        env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        seen: list[Record] = []
        deadline = time.monotonic() + 120
        while not seen and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            if (out / "docmill.db").exists():
                try:
                    seen = list(docmill.results(out))
                except StoreError:  # the run is creating its ledger
                    seen = []
        assert proc.poll() is None, "the run ended before its folder was read"
        assert seen and all(isinstance(r, Record) for r in seen)
        assert all(r.status in ("done", "failed", "skipped") for r in seen)
        assert [r.id for r in seen] == sorted(r.id for r in seen)
        assert len(seen) < n + 1  # a running folder: what is committed so far
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0
    every = list(docmill.results(out))
    assert len(every) == n + 1
    failed = list(docmill.results(out, status="failed"))
    assert [Path(r.source).name for r in failed] == ["empty.txt"]
    assert len(list(docmill.results(out, status="done"))) == n
    with pytest.raises(ValueError, match="status must be one of"):
        list(docmill.results(out, status="pending"))


def test_results_filters_by_label(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        store.upsert_sources(SourceFile(f"/x/{i}.txt", 1, 0) for i in range(3))
        assert store.claim_pending(10, time.time()) == []  # no hashes yet: nothing to claim
        store.set_hashes([(i, f"{i:064d}", "") for i in (1, 2, 3)], [])
        rows = store.claim_pending(10, time.time())
        outcomes = []
        for row, label in zip(rows, ("invoice", "letter", "invoice"), strict=True):
            outcome = ProcessOutcome(DocState.DONE, mime="text/plain", pages=1, text=["x"],
                                     extra={"class": {"label": label}})
            outcome.label = label
            outcome.seal()
            outcomes.append((row.id, outcome, False, time.time(), 0.0))
        store.complete_many(outcomes)
    finally:
        store.close()
    invoices = list(docmill.results(tmp_path, label="invoice"))
    assert [r.id for r in invoices] == [1, 3] and {r.label for r in invoices} == {"invoice"}
    assert list(docmill.results(tmp_path, label="receipt")) == []
    with pytest.raises(StoreError, match="no docmill ledger"):
        list(docmill.results(tmp_path / "nowhere"))
