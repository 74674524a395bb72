"""The real ``docmill`` command line, run in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import docmill
from docmill.state import Store
from engine_kit import CORPUS
from pdfgen import write_pdf

REPO = Path(__file__).resolve().parents[1]
ENCRYPTED_PDF = CORPUS / "real" / "camelot" / "tests" / "files" / "health_protected.pdf"
GIF_BYTES = b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00;"


def docmill_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    env["PYTHONPATH"] = str(REPO / "src")
    return subprocess.run(
        [sys.executable, "-m", "docmill", *args],
        cwd=cwd,  # a folder without docmill.toml
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def status_json(out: Path, cwd: Path) -> dict[str, Any]:
    proc = docmill_cli("status", str(out), "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


# --- usage and run-level errors ------------------------------------------------------


def test_version(tmp_path: Path) -> None:
    proc = docmill_cli("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"docmill {docmill.__version__}"


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = docmill_cli(cwd=tmp_path)
    assert proc.returncode == 2
    assert "usage: docmill" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ("--frobnicate",),
        ("run", str(Path("x")), "--out", "o", "--frobnicate"),
        ("run", "somewhere"),  # --out is required
        ("export", "o", "--format", "xml"),
        ("nonsense-command",),
        ("run", "x", "--out", "o", "--workers", "many"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = docmill_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "usage:" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_run_with_a_missing_source_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    proc = docmill_cli("run", str(missing), "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert proc.returncode == 1
    assert str(missing) in proc.stderr
    assert "docmill: error:" in proc.stderr


def test_unknown_setting_lists_known_keys(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    proc = docmill_cli("run", "src", "--out", "out", "--set", "nonsense=1", "--quiet", cwd=tmp_path)
    assert proc.returncode == 1
    assert "nonsense" in proc.stderr
    for key in ("run.workers", "sources.include", "extract.max_pages", "output.format"):
        assert key in proc.stderr
    assert not (tmp_path / "out").exists()


def test_bad_setting_value_is_a_run_level_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    proc = docmill_cli(
        "run", "src", "--out", "out", "--set", "run.timeout_s=-1", "--quiet", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "run.timeout_s" in proc.stderr


def test_set_without_equals_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    proc = docmill_cli("run", "src", "--out", "out", "--set", "run.workers", cwd=tmp_path)
    assert proc.returncode == 2
    assert "KEY=VALUE" in proc.stderr


def test_bad_config_file_value_is_reported(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "docmill.toml").write_text('[output]\nformat = "xml"\n')
    proc = docmill_cli("run", "src", "--out", "out", "--quiet", cwd=tmp_path)
    assert proc.returncode == 1
    assert "output.format" in proc.stderr


@pytest.mark.parametrize("command", ["status", "retry", "export"])
def test_commands_on_a_folder_without_ledger_say_to_run_first(tmp_path: Path, command: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [command, str(empty)]
    if command == "export":
        args += ["--format", "jsonl"]
    proc = docmill_cli(*args, cwd=tmp_path)
    assert proc.returncode == 1
    assert "docmill run" in proc.stderr
    assert list(empty.iterdir()) == []  # looking created nothing


def test_resume_without_sources_and_without_ledger_fails(tmp_path: Path) -> None:
    proc = docmill_cli("run", "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert proc.returncode == 1
    assert "docmill run" in proc.stderr


# --- a real run ----------------------------------------------------------------------

PDF_PAGES = {
    "alpha.pdf": ["Alpha report, page one.", "Alpha page two\nwith a second line."],
    "bravo.pdf": ["Bravo single page."],
    "nested/charlie.pdf": ["Charlie one", "Charlie two", "Charlie three"],
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("cli-run")
    src = base / "src"
    for rel, pages in PDF_PAGES.items():
        write_pdf(src / rel, pages)
    with zipfile.ZipFile(src / "bundle.zip", "w") as bundle:  # a zip of no known format
        bundle.writestr("readme.md", "a plain zip is not processed\n")
    (src / "picture.pdf").write_bytes(GIF_BYTES)  # named .pdf, really a GIF
    out = base / "out"
    proc = docmill_cli("run", str(src), "--out", str(out), "--workers", "1", "--quiet", cwd=base)
    assert proc.returncode == 0, proc.stderr
    return {"base": base, "src": src, "out": out}


def test_run_status_json(finished_run: dict[str, Path]) -> None:
    data = status_json(finished_run["out"], finished_run["base"])
    assert data["documents"] == 5
    assert data["counts"] == {"pending": 0, "running": 0, "done": 3, "failed": 0, "skipped": 2}
    assert data["pages"] == sum(len(p) for p in PDF_PAGES.values())
    assert data["failures"] == []
    run = data["last_run"]
    assert run["status"] == "completed"
    assert run["documents"] == 5
    assert run["pages"] == 6


def test_run_status_text(finished_run: dict[str, Path]) -> None:
    proc = docmill_cli("status", str(finished_run["out"]), cwd=finished_run["base"])
    assert proc.returncode == 0
    assert "5 documents, 6 pages done" in proc.stdout
    assert "done 3  failed 0  skipped 2  pending 0  running 0" in proc.stdout
    assert "last run: completed" in proc.stdout


def test_rerun_of_a_finished_folder_does_nothing_new(
    finished_run: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(finished_run["out"], out)  # leave the shared run as it is
    proc = docmill_cli(
        "run",
        str(finished_run["src"]),
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    data = status_json(out, tmp_path)
    assert data["counts"]["done"] == 3
    assert data["documents"] == 5
    assert data["last_run"]["status"] == "completed"
    assert data["last_run"]["documents"] == 0


def test_export_csv(finished_run: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "f.csv"
    proc = docmill_cli(
        "export",
        str(finished_run["out"]),
        "--format",
        "csv",
        "-o",
        str(dest),
        cwd=finished_run["base"],
    )
    assert proc.returncode == 0, proc.stderr
    assert "5 records written" in proc.stderr
    with open(dest, encoding="utf-8", newline="") as handle:
        rows = {
            Path(r["source"]).relative_to(finished_run["src"]).as_posix(): r
            for r in csv.DictReader(handle)
        }
    assert set(rows) == {*PDF_PAGES, "bundle.zip", "picture.pdf"}
    for rel, pages in PDF_PAGES.items():
        row = rows[rel]
        assert row["status"] == "done"
        assert row["pages"] == str(len(pages))
        assert [t.strip() for t in row["text"].split("\f")] == pages
    picture = rows["picture.pdf"]
    assert picture["status"] == "skipped"
    assert picture["mime"] == "image/gif"
    assert picture["error_category"] == "unsupported"
    assert rows["bundle.zip"]["mime"] == "application/zip"
    assert rows["bundle.zip"]["status"] == "skipped"


def test_export_parquet(finished_run: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "f.parquet"
    proc = docmill_cli(
        "export",
        str(finished_run["out"]),
        "--format",
        "parquet",
        "-o",
        str(dest),
        cwd=finished_run["base"],
    )
    assert proc.returncode == 0, proc.stderr
    rows = pq.read_table(dest).to_pylist()
    assert len(rows) == 5
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    by_name = {Path(r["source"]).name: r for r in rows}
    assert [t.strip() for t in by_name["charlie.pdf"]["text"]] == PDF_PAGES["nested/charlie.pdf"]
    assert by_name["picture.pdf"]["text"] == []


def test_export_jsonl_to_stdout(finished_run: dict[str, Path]) -> None:
    proc = docmill_cli(
        "export", str(finished_run["out"]), "--format", "jsonl", cwd=finished_run["base"]
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 5
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    for r in records:
        assert os.path.isabs(r["source"])
        assert set(r) - {"text_source"} == {
            "id",
            "source",
            "sha256",
            "size",
            "mime",
            "status",
            "error",
            "pages",
            "metadata",
            "text",
            "timings",
            "attempts",
            "duplicate_of",
        }
    alpha = next(r for r in records if r["source"].endswith("alpha.pdf"))
    assert [t.strip() for t in alpha["text"]] == PDF_PAGES["alpha.pdf"]
    assert alpha["text_source"] == ["layer"] * len(PDF_PAGES["alpha.pdf"])
    assert alpha["error"] is None
    assert alpha["sha256"] is not None and len(alpha["sha256"]) == 64


def test_export_parquet_without_output_is_a_usage_error(finished_run: dict[str, Path]) -> None:
    proc = docmill_cli(
        "export", str(finished_run["out"]), "--format", "parquet", cwd=finished_run["base"]
    )
    assert proc.returncode == 2
    assert "-o" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_into_a_missing_folder_is_a_run_level_error(
    finished_run: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    dest = tmp_path / "no" / "such" / f"x.{fmt}"
    proc = docmill_cli(
        "export", str(finished_run["out"]), "--format", fmt, "-o", str(dest), cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "cannot write the export" in proc.stderr
    assert not dest.parent.exists()


def test_run_with_out_being_a_file_is_a_run_level_error(tmp_path: Path) -> None:
    write_pdf(tmp_path / "src" / "a.pdf", ["x"])
    (tmp_path / "out").write_text("a file, not a folder")
    proc = docmill_cli("run", "src", "--out", "out", "--workers", "1", "--quiet", cwd=tmp_path)
    assert proc.returncode == 1
    assert "docmill: error:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_second_run_on_a_busy_folder_is_refused_with_the_right_advice(tmp_path: Path) -> None:
    write_pdf(tmp_path / "src" / "a.pdf", ["x"])
    holder = Store.open(tmp_path / "out")
    try:
        holder.lock_for_run()  # this process is "the other run"
        proc = docmill_cli("run", "src", "--out", "out", "--workers", "1", "--quiet", cwd=tmp_path)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert f"another docmill run (pid {os.getpid()})" in proc.stderr
    # the folder is fine: advice about permissions and free space would mislead
    assert "permissions" not in proc.stderr
    assert "free space" not in proc.stderr


# --- retry and resume ----------------------------------------------------------------


def test_retry_then_resume_without_sources(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ENCRYPTED_PDF, src / "protected.pdf")
    write_pdf(src / "fine.pdf", ["a readable page"])
    out = tmp_path / "out"
    proc = docmill_cli(
        "run", str(src), "--out", str(out), "--workers", "1", "--quiet", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr  # a failed document is not a failed run
    data = status_json(out, tmp_path)
    assert data["counts"]["failed"] == 1
    assert data["counts"]["done"] == 1
    assert [f["category"] for f in data["failures"]] == ["encrypted"]
    assert data["failures"][0]["count"] == 1
    assert data["failures"][0]["examples"][0]["source"] == str(src / "protected.pdf")

    proc = docmill_cli("retry", str(out), "--category", "corrupt", cwd=tmp_path)
    assert proc.returncode == 0
    assert status_json(out, tmp_path)["counts"]["failed"] == 1  # other categories untouched

    proc = docmill_cli("retry", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("1 failed documents are pending again")
    data = status_json(out, tmp_path)
    assert data["counts"]["pending"] == 1
    assert data["counts"]["failed"] == 0
    assert data["counts"]["done"] == 1

    proc = docmill_cli("run", "--out", str(out), "--workers", "1", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = status_json(out, tmp_path)
    assert data["counts"] == {"pending": 0, "running": 0, "done": 1, "failed": 1, "skipped": 0}
    assert [f["category"] for f in data["failures"]] == ["encrypted"]
    assert data["last_run"]["documents"] == 1

    proc = docmill_cli("export", str(out), "--format", "jsonl", cwd=tmp_path)
    records = {Path(r["source"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    assert records["protected.pdf"]["status"] == "failed"
    assert records["protected.pdf"]["error"]["category"] == "encrypted"
    assert records["protected.pdf"]["attempts"] == 1
    assert records["fine.pdf"]["status"] == "done"


# --- personal data in file names -----------------------------------------------------

PII_NAMES = (
    "jane.doe@example.com 123-45-6789 +1 415 555 0100.pdf",
    "Rechnung Tel 020 7946 1001 +49 70 478229 DE89 3704 0044 0532 0130 00.pdf",
)
PII_PARTS = (
    "jane.doe@example.com", "123-45-6789", "415 555 0100", "7946 1001", "70 478229",
    "3704 0044 0532 0130",
)  # fmt: skip


def test_status_and_summary_mask_pii_in_failure_examples(tmp_path: Path) -> None:
    """A failed file whose name holds an e-mail address, an SSN, phone numbers and an
    IBAN: the run summary's "e.g. PATH" and `docmill status` (text and JSON) mask them;
    the records keep the real path."""
    src = tmp_path / "src"
    src.mkdir()
    for name in PII_NAMES:
        (src / name).write_bytes(b"%PDF-1.4\nthis is not a PDF body\n%%EOF\n")
    out = tmp_path / "out"
    run = docmill_cli("run", str(src), "--out", str(out), "--workers", "1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "top failures" in run.stderr
    text = docmill_cli("status", str(out), cwd=tmp_path)
    as_json = docmill_cli("status", str(out), "--json", cwd=tmp_path)
    assert text.returncode == 0 and as_json.returncode == 0
    assert json.loads(as_json.stdout)["counts"]["failed"] == 2
    assert "e.g. " in text.stdout
    for shown in (run.stdout + run.stderr, text.stdout, as_json.stdout):
        for part in PII_PARTS:
            assert part not in shown, (part, shown)
    for token in ("[EMAIL]", "[SSN]", "[PHONE]", "[IBAN]"):
        assert token in text.stdout, (token, text.stdout)
    exported = docmill_cli("export", str(out), "--format", "jsonl", cwd=tmp_path)
    sources = {Path(r["source"]).name for r in map(json.loads, exported.stdout.splitlines())}
    assert sources == set(PII_NAMES)
