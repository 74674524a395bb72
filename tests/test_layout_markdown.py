"""Reading order, running headers/footers and Markdown, on real corpus files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from docmill.model import DocState, ProcessOutcome
from docmill.processors import ExtractOptions, process_task
from docmill.processors.pdf.layout import find_gutter, reading_order_text
from docmill.processors.pdf.markdown import PageLines, pipe_table, render
from docmill.processors.pipeline import Task
from engine_kit import REAL
from test_cli import docmill_cli

MULTICOLUMN = REAL / "sample-files" / "026-latex-multicolumn" / "multicolumn.pdf"
QUARTERLY = REAL / "pdfplumber" / "tests" / "pdfs" / "issue-67-example.pdf"  # running header
TABLE_PDF = (
    REAL / "tabula-java" / "src" / "test" / "resources" / "technology" / "tabula" / "us-020.pdf"
)


def extract(path: Path, **options: object) -> ProcessOutcome:
    outcome = process_task(Task(1, 1, str(path), None, 1 << 40, ExtractOptions(**options)))  # type: ignore[arg-type]
    assert outcome.status == DocState.DONE, outcome.error
    return outcome


def test_two_column_page_reads_column_by_column() -> None:
    doc = pdfium.PdfDocument(str(MULTICOLUMN))
    try:
        page = doc[0]
        textpage = page.get_textpage()
        width, height = page.get_size()
        text = reading_order_text(textpage, width, height)
        textpage.close()
        page.close()
    finally:
        doc.close()
    assert text is not None  # a gutter was found
    flat = " ".join(text.split())
    # title, then the whole left column (its first and last lines), then the right one
    order = [
        "Two-Column Document with Lorem Ipsum",
        "Lorem ipsum dolor sit amet",
        "Vivamus viverra fermentum felis. Donec nonummy",  # left column, last line
        "pellentesque ante. Phasellus adipiscing semper elit.",  # right column, first line
    ]
    at = [flat.index(anchor) for anchor in order]
    assert at == sorted(at)
    # the page text (PDFium's own order) reads the same way on this file
    page_text = " ".join(extract(MULTICOLUMN).text[0].split())
    at = [page_text.index(anchor) for anchor in order]
    assert at == sorted(at)


def test_single_column_and_table_pages_have_no_gutter() -> None:
    doc = pdfium.PdfDocument(str(QUARTERLY))
    try:
        page = doc[0]
        textpage = page.get_textpage()
        assert reading_order_text(textpage, *page.get_size()) is None
        textpage.close()
        page.close()
    finally:
        doc.close()
    narrow_cells = [
        (x, y, x + 30.0, y + 10.0) for x in (50.0, 150.0, 350.0, 450.0) for y in range(0, 200, 12)
    ]
    assert find_gutter(narrow_cells, 50.0, 480.0) is None  # table cells, not columns


def test_running_headers_and_footers_are_marked() -> None:
    outcome = extract(QUARTERLY, markdown=True)
    headers = outcome.metadata["headers"]
    footers = outcome.metadata["footers"]
    pages = len(outcome.text)
    assert pages > 4
    assert len(headers) >= pages // 2
    assert {h["text"] for h in headers} == {"东北电气发展股份有限公司 2018 年第一季度报告全文"}
    assert len(footers) >= pages // 2  # the page numbers
    assert all(f["text"].isdigit() for f in footers)
    # marked, not removed: the page text keeps them; the Markdown leaves them out
    assert headers[0]["text"] in outcome.text[headers[0]["page"]]
    assert outcome.extra["markdown"].count(headers[0]["text"]) < len(headers)


def test_markdown_of_a_real_pdf_has_headings_and_paragraphs() -> None:
    outcome = extract(MULTICOLUMN, markdown=True)
    markdown = outcome.extra["markdown"]
    assert markdown.startswith("# Two-Column Document with Lorem Ipsum\n")
    blocks = markdown.split("\n\n")
    paragraphs = [b for b in blocks if not b.startswith("#")]
    # wrapped lines are joined: paragraphs are long single lines
    assert any(len(p) > 400 and "\n" not in p for p in paragraphs)
    assert "This is a sample document with two columns filled with Lorem Ipsum text." in blocks


def test_markdown_is_off_by_default() -> None:
    outcome = extract(MULTICOLUMN)
    assert "markdown" not in outcome.extra
    assert "headers" not in outcome.metadata


def test_pipe_table_when_tables_are_given() -> None:
    outcome = extract(TABLE_PDF, markdown=False)
    lines = outcome.text[0].split("\n")
    pages = [PageLines(0, lines, [None] * len(lines))]
    rows = [["Name", "Value"], ["a|b", "1"], ["c"]]
    markdown = render(pages, [{"page": 0, "bbox": [0, 0, 10, 10], "rows": rows}])
    table = pipe_table(rows)
    assert table == "| Name | Value |\n|---|---|\n| a\\|b | 1 |\n| c |  |"
    assert markdown.rstrip().endswith(table)
    assert render(pages, None).count("|---|") == 0  # no tables: none rendered


def test_cli_run_with_markdown_gives_records_with_markdown(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(MULTICOLUMN, source / "multicolumn.pdf")
    out = tmp_path / "out"
    proc = docmill_cli(
        "run", str(source), "--out", str(out), "--workers", "1", "--quiet",
        "--set", "output.markdown=true", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    records = [
        json.loads(line)
        for part in sorted((out / "records").glob("part-*.jsonl"))
        for line in part.read_text().splitlines()
    ]
    assert len(records) == 1
    assert records[0]["markdown"].startswith("# Two-Column Document with Lorem Ipsum")
    assert records[0]["metadata"]["footers"]


@pytest.mark.parametrize("path", [MULTICOLUMN, QUARTERLY])
def test_markdown_does_not_change_page_text(path: Path) -> None:
    assert extract(path, markdown=True).text == extract(path).text
