"""Tables: detection on real corpus PDFs with known content, the per-page error
boundary, the record key through a real run, CSV export through the CLI, hostile files."""

from __future__ import annotations

import csv
from pathlib import Path

from docmill.model import DocState
from docmill.processors.pdf.text import extract_pdf
from docmill.processors.registry import ExtractOptions, ExtractRequest
from docmill.processors.tables.extract import tables_in_pdf
from engine_kit import CORPUS, corpus_file
from test_cli import docmill_cli, status_json

TABULA = CORPUS / "real" / "tabula-java" / "src" / "test" / "resources" / "technology" / "tabula"
HOSTILE = CORPUS / "hostile" / "generated"


def test_ruled_table_with_spanning_cells() -> None:
    tables = tables_in_pdf(str(TABULA / "spanning_cells.pdf"), [0])
    first = tables[0]
    assert first.kind == "ruled"
    assert first.page == 0
    x0, y0, x1, y1 = first.bbox
    assert 110 < x0 < 130 and 140 < y0 < 155 and 470 < x1 < 480 and 410 < y1 < 420  # top-left origin
    # a cell spanning the whole first row: text in its first grid cell, the rest empty
    assert first.rows[0] == ["Improved operation scenario", "", "", "", "", ""]
    assert first.rows[1] == ["Volume servers in:", "2007", "2008", "2009", "2010", "2011"]
    assert first.rows[2] == ["Server closets", "1,505", "1,580", "1,643", "1,673", "1,689"]
    assert first.header_rows >= 1  # a guess: the years row is numeric


def test_ruled_table_on_a_rotated_page() -> None:
    (table,) = tables_in_pdf(str(TABULA / "schools.pdf"), [0])
    assert table.rows[0][:3] == ["Last Name", "First Name", "Address"]
    assert table.rows[1][:4] == ["Lidstad", "Dick & Peg", "62 Mississippi River Blvd N", "Saint Paul"]
    assert table.bbox[2] > 700  # landscape as displayed


def test_unruled_table_from_whitespace_columns() -> None:
    (table,) = tables_in_pdf(str(TABULA / "MultiColumn.pdf"), [0])
    assert table.kind == "unruled"
    assert table.rows[0] == ["1", "100", "200", "25", "124", "224"]
    assert table.rows[1] == ["2", "101", "201", "26", "125", "225"]
    assert len(table.rows) >= 24


def test_prose_page_has_no_tables() -> None:
    assert tables_in_pdf(str(HOSTILE / "normal_control.pdf"), [0]) == []


def _request(tables: bool, stages: list[str]) -> ExtractRequest:
    return ExtractRequest(None, ExtractOptions(tables=tables), on_stage=stages.append)


def test_extract_pdf_puts_tables_in_extra_and_reports_the_stage() -> None:
    stages: list[str] = []
    outcome = extract_pdf(str(TABULA / "spanning_cells.pdf"), _request(True, stages))
    assert outcome.status is DocState.DONE
    assert stages == ["tables"]
    tables = outcome.extra["tables"]
    assert {t["page"] for t in tables} == {0}
    assert set(tables[0]) == {"page", "bbox", "rows", "cells", "header_rows"}
    assert outcome.metadata["table_errors"] == []
    assert "Server closets" in outcome.text[0]


def test_tables_off_adds_nothing() -> None:
    stages: list[str] = []
    outcome = extract_pdf(str(TABULA / "spanning_cells.pdf"), _request(False, stages))
    assert stages == [] and "tables" not in outcome.extra and "table_errors" not in outcome.metadata


def test_cli_run_with_tables_and_export_table_csvs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("spanning_cells.pdf", "MultiColumn.pdf"):
        (src / name).write_bytes((TABULA / name).read_bytes())
    out = tmp_path / "out"
    proc = docmill_cli(
        "run", str(src), "--out", str(out), "--workers", "1", "--quiet",
        "--set", "extract.tables=true", cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    tdir = tmp_path / "tables"
    proc = docmill_cli("export", str(out), "--tables-dir", str(tdir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in tdir.iterdir())
    assert len(names) == 3, names  # two on spanning_cells page 1, one on MultiColumn
    assert all(n.endswith(".csv") and "-p1-t" in n for n in names)
    rows = [
        list(csv.reader(p.open(encoding="utf-8", newline=""))) for p in sorted(tdir.iterdir())
    ]
    assert ["Server closets", "1,505", "1,580", "1,643", "1,673", "1,689"] in [
        r for table in rows for r in table
    ]
    assert ["1", "100", "200", "25", "124", "224"] in [r for table in rows for r in table]


def test_export_without_format_or_tables_dir_is_a_usage_error(tmp_path: Path) -> None:
    proc = docmill_cli("export", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "--tables-dir" in proc.stderr


def test_hostile_files_with_tables_on_end_terminal(tmp_path: Path) -> None:
    names = [
        "vector_grid_200k_segments.pdf", "dense_text_1m_chars.pdf", "xobject_self_recursive.pdf",
        "deep_array_in_content.pdf", "truncated_half.pdf", "normal_control.pdf",
    ]
    src = tmp_path / "src"
    src.mkdir()
    for name in names:
        (src / name).write_bytes(corpus_file(HOSTILE / name).read_bytes())
    out = tmp_path / "out"
    proc = docmill_cli(
        "run", str(src), "--out", str(out), "--workers", "1", "--quiet",
        "--set", "extract.tables=true", "--set", "run.timeout_s=60", cwd=tmp_path, timeout=300,
    )
    assert proc.returncode in (0, 3), proc.stderr  # 3: some documents failed, as data
    status = status_json(out, tmp_path)
    assert status["counts"].get("pending", 0) == 0 and status["counts"].get("running", 0) == 0
    assert sum(status["counts"].values()) == len(names)
