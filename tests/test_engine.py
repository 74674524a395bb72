"""The batch engine end to end, through the real CLI, on real and generated PDFs."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from engine_kit import REAL, assert_exactly_once, read_parts, run_cli, status
from pdfgen import write_pdf


def _sources(folder: Path) -> set[str]:
    return {str(p.absolute()) for p in folder.rglob("*") if p.is_file()}


def test_real_corpus_every_document_terminal_with_text(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(REAL / "pdfplumber", src)
    out = tmp_path / "out"
    result = run_cli("run", str(src), "--out", str(out), "--workers", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    records = assert_exactly_once(out, _sources(src))
    by_status = {r["status"] for r in records}
    assert by_status <= {"done", "failed", "skipped"}
    done = [r for r in records if r["status"] == "done" and r["mime"] == "application/pdf"]
    assert len(done) > 20
    license_txt = [r for r in records if Path(r["source"]).name == "LICENSE.txt"]
    assert [(r["status"], r["mime"]) for r in license_txt] == [("done", "text/plain")]
    for r in done:
        assert r["pages"] == len(r["text"]) or r["metadata"].get("split_ranges")
        assert set(r["metadata"]) >= {"title", "author", "producer", "created", "encrypted"}
        assert r["error"] is None
        assert len(r["sha256"]) == 64
    assert sum(len("".join(r["text"])) for r in done) > 10_000
    for r in records:
        if r["status"] != "done":
            assert r["error"]["category"] and r["error"]["message"]
    data = status(out)
    assert data["counts"]["pending"] == 0 and data["counts"]["running"] == 0
    assert data["documents"] == len(records)
    exported = run_cli("export", str(out), "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    from_ledger = {r["id"]: r for r in map(json.loads, exported.stdout.splitlines())}
    assert {r["id"]: r for r in records} == from_ledger  # parts hold what the ledger holds


def test_rerun_processes_nothing_new(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        write_pdf(src / f"d{i}.pdf", [f"document {i}"])
    out = tmp_path / "out"
    assert run_cli("run", str(src), "--out", str(out), "--quiet").returncode == 0
    first = {r["source"]: r["attempts"] for r in read_parts(out)}
    assert run_cli("run", str(src), "--out", str(out), "--quiet").returncode == 0
    again = assert_exactly_once(out, _sources(src))
    assert {r["source"]: r["attempts"] for r in again} == first
    assert status(out)["last_run"]["documents"] == 0


def test_identical_content_at_two_paths_is_processed_once(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    write_pdf(src / "a" / "invoice.pdf", ["Invoice 42", "page two"])
    shutil.copy(src / "a" / "invoice.pdf", src / "b" / "copy-of-invoice.pdf")
    write_pdf(src / "other.pdf", ["something else"])
    out = tmp_path / "out"
    assert run_cli("run", str(src), "--out", str(out), "--quiet").returncode == 0
    records = {Path(r["source"]).name: r for r in assert_exactly_once(out, _sources(src))}
    first, second = records["invoice.pdf"], records["copy-of-invoice.pdf"]
    assert first["sha256"] == second["sha256"]
    processed, reported = (first, second) if second["duplicate_of"] else (second, first)
    assert processed["duplicate_of"] is None
    assert reported["duplicate_of"] == processed["id"]
    assert reported["text"] == processed["text"] and "Invoice 42" in processed["text"][0]
    assert reported["status"] == "done" and reported["pages"] == 2
    assert records["other.pdf"]["duplicate_of"] is None


def test_changed_file_is_processed_again_and_touched_file_is_not(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_pdf(src / "changes.pdf", ["version one"])
    write_pdf(src / "touched.pdf", ["stays the same"])
    out = tmp_path / "out"
    assert run_cli("run", str(src), "--out", str(out), "--quiet").returncode == 0
    write_pdf(src / "changes.pdf", ["version two, longer"])
    st = (src / "touched.pdf").stat()
    os.utime(src / "touched.pdf", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert run_cli("run", str(src), "--out", str(out), "--quiet").returncode == 0
    records = {Path(r["source"]).name: r for r in assert_exactly_once(out, _sources(src))}
    assert "version two" in records["changes.pdf"]["text"][0]
    assert status(out)["last_run"]["documents"] == 1  # only the changed file was processed


def test_large_document_is_split_and_merged_in_order(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    pages = [f"page number {i}" for i in range(1, 24)]
    write_pdf(src / "book.pdf", pages)
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run_cli("run", str(src), "--out", str(whole), "--quiet").returncode == 0
    assert (
        run_cli(
            "run", str(src), "--out", str(split), "--quiet", "--set", "run.split_pages=5"
        ).returncode
        == 0
    )
    (w,) = read_parts(whole)
    (s,) = read_parts(split)
    assert s["status"] == "done" and s["pages"] == 23
    assert s["text"] == w["text"]
    assert [t.strip() for t in s["text"]] == pages
    assert s["metadata"]["split_ranges"] == 5
    assert "split_ranges" not in w["metadata"]


def test_max_pages_extracts_only_the_first_pages(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_pdf(src / "long.pdf", [f"p{i}" for i in range(10)])
    out = tmp_path / "out"
    result = run_cli("run", str(src), "--out", str(out), "--quiet", "--set", "extract.max_pages=3")
    assert result.returncode == 0
    (r,) = read_parts(out)
    assert r["pages"] == 10
    assert [t.strip() for t in r["text"]] == ["p0", "p1", "p2"]


def test_types_are_detected_from_content(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    pdf = write_pdf(src / "real.pdf", ["hello"])
    shutil.copy(pdf, src / "no-extension")
    (src / "notes.pdf").write_text("just some text named .pdf\n")
    (src / "empty.pdf").write_bytes(b"")
    with zipfile.ZipFile(src / "bundle.pdf", "w") as bundle:  # a zip of no known format
        bundle.writestr("readme.md", "hello")
    out = tmp_path / "out"
    assert run_cli("run", str(src), "--out", str(out), "--quiet").returncode == 0
    records = {Path(r["source"]).name: r for r in assert_exactly_once(out, _sources(src))}
    assert records["no-extension"]["status"] == "done"
    assert records["notes.pdf"]["status"] == "done"  # plain text, whatever the name says
    assert records["notes.pdf"]["mime"] == "text/plain"
    assert records["notes.pdf"]["text"] == ["just some text named .pdf\n"]
    assert records["bundle.pdf"]["status"] == "skipped"
    assert records["bundle.pdf"]["error"]["category"] == "unsupported"
    assert "application/zip" in records["bundle.pdf"]["error"]["message"]
    assert records["empty.pdf"]["status"] == "failed"
    assert records["empty.pdf"]["error"]["category"] == "empty"


def test_list_source_and_include_exclude(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "keep").mkdir(parents=True)
    (src / "drop").mkdir()
    write_pdf(src / "keep" / "a.pdf", ["a"])
    write_pdf(src / "drop" / "b.pdf", ["b"])
    write_pdf(src / "c.pdf", ["c"])
    (src / "keep" / "ignored.txt").write_text("x")
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my files\n{src / 'c.pdf'}\n\nin/keep\n")
    out = tmp_path / "out"
    result = run_cli(
        "run", f"@{listing}", "--out", str(out), "--quiet", "--set", 'sources.include=**/*.pdf'
    )
    assert result.returncode == 0, result.stderr
    names = sorted(Path(r["source"]).name for r in read_parts(out))
    assert names == ["a.pdf", "c.pdf"]
    out2 = tmp_path / "out2"
    result = run_cli(
        "run", str(src), "--out", str(out2), "--quiet", "--set", "sources.exclude=drop/*,*.txt"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(Path(r["source"]).name for r in read_parts(out2)) == ["a.pdf", "c.pdf"]


@pytest.mark.parametrize("fmt", ["parquet"])
def test_parquet_parts(tmp_path: Path, fmt: str) -> None:
    import pyarrow.parquet as pq

    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        write_pdf(src / f"{i}.pdf", [f"doc {i}", "second"])
    out = tmp_path / "out"
    result = run_cli("run", str(src), "--out", str(out), "--quiet", "--set", f"output.format={fmt}")
    assert result.returncode == 0, result.stderr
    parts = sorted((out / "records").glob("part-*.parquet"))
    assert parts
    rows = [row for p in parts for row in pq.read_table(p).to_pylist()]
    assert sorted(Path(r["source"]).name for r in rows) == ["0.pdf", "1.pdf", "2.pdf"]
    assert all(r["status"] == "done" and len(r["text"]) == 2 for r in rows)


def test_logs_never_contain_document_text_and_mask_personal_data(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    secret = "CONFIDENTIAL-PAYLOAD-7731"
    write_pdf(src / "letter.pdf", [f"{secret} write to jane.roe@example.com"])
    (src / "mail-john.doe@example.com.pdf").write_bytes(b"")  # PII in a failing file name
    out = tmp_path / "out"
    result = run_cli("run", str(src), "--out", str(out), "--set", "run.progress_interval_s=0.1")
    assert result.returncode == 0, result.stderr
    logs = result.stdout + result.stderr
    assert "docs 2/2" in logs  # progress was logged (not a terminal)
    assert secret not in logs and "jane.roe" not in logs
    assert "john.doe@example.com" not in logs
    assert "[EMAIL]" in logs  # the failing file's name was reported, masked
    (letter,) = [r for r in read_parts(out) if r["source"].endswith("letter.pdf")]
    assert secret in letter["text"][0]  # the record keeps the text; only logs are clean
