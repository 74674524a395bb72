"""Tests for the test-PDF generator tests/pdfgen.py."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pypdf
import pypdfium2 as pdfium
import pytest

from pdfgen import make_pdf, make_table_pdf, ruled_table, write_pdf

PAGES = [
    "Hello, world.",
    "first line\nsecond line\nthird (with parens) and \\ backslash",
    "unbalanced ) and ( and \\( escaped-looking",
    "",
    "Latin-1: café naïve façade €",
]


def _pdfium_texts(data: bytes) -> list[str]:
    doc = pdfium.PdfDocument(data)
    try:
        texts = []
        for page in doc:
            textpage = page.get_textpage()
            texts.append(textpage.get_text_range().replace("\r\n", "\n"))
            textpage.close()
            page.close()
        return texts
    finally:
        doc.close()


def test_roundtrip_pypdfium2() -> None:
    assert _pdfium_texts(make_pdf(PAGES)) == PAGES


def test_roundtrip_pypdf_strict() -> None:
    reader = pypdf.PdfReader(io.BytesIO(make_pdf(PAGES)), strict=True)
    assert [page.extract_text() for page in reader.pages] == PAGES


def test_structure() -> None:
    data = make_pdf(["a", "b"])
    assert data.startswith(b"%PDF-1.4\n")
    assert data.endswith(b"%%EOF\n")
    assert b"/Count 2" in data
    # startxref points at the xref table, and each xref entry at its "N 0 obj"
    xref_at = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    assert data[xref_at:].startswith(b"xref\n0 8\n")
    entries = data[xref_at:].split(b"\n")[3:10]
    for number, entry in enumerate(entries, start=1):
        offset = int(entry[:10])
        assert data[offset:].startswith(b"%d 0 obj\n" % number)


def test_parentheses_and_backslashes_are_escaped() -> None:
    data = make_pdf(["a (b) c \\ d"])
    assert b"(a \\(b\\) c \\\\ d) Tj" in data


def test_unencodable_characters_become_question_marks() -> None:
    assert _pdfium_texts(make_pdf(["漢字 ok"])) == ["?? ok"]


def test_zero_pages_is_valid_for_pypdf() -> None:
    reader = pypdf.PdfReader(io.BytesIO(make_pdf([])), strict=True)
    assert len(reader.pages) == 0


def test_write_pdf(tmp_path: Path) -> None:
    path = write_pdf(tmp_path / "nested" / "dir" / "doc.pdf", ["page one", "page two"])
    assert path == tmp_path / "nested" / "dir" / "doc.pdf"
    assert _pdfium_texts(path.read_bytes()) == ["page one", "page two"]
    assert write_pdf(str(tmp_path / "flat.pdf"), ["x"]).read_bytes() == make_pdf(["x"])


@pytest.mark.parametrize("count", [20_000])
def test_generation_is_fast(count: int) -> None:
    start = time.perf_counter()
    for i in range(count):
        make_pdf([f"document {i}\nsome text on a second line"])
    assert time.perf_counter() - start < 3.0


def test_ruled_table_draws_a_table_docmill_finds(tmp_path: Path) -> None:
    from docmill.processors.tables.extract import tables_in_pdf

    rows = [["Region", "Units"], ["North", "120"], ["South", "95"]]
    grid = ruled_table(rows, left=100, top=700, col_width=80, row_height=20)
    (table,) = tables_in_pdf(str(write_pdf(tmp_path / "t.pdf", ["a heading"], [grid])))
    assert table.kind == "ruled" and table.page == 0 and table.rows == rows
    assert table.bbox == pytest.approx((100, 92, 260, 152))  # top-left origin: 792 - 700 = 92


def test_a_ruled_table_page_is_found_by_the_table_detector(tmp_path: Path) -> None:
    from docmill.processors.tables.extract import tables_in_pdf

    rows = [["Item", "Qty", "Price"], ["Apples", "3", "1.20"], ["Pears", "12", "0.85"]]
    path = tmp_path / "table.pdf"
    path.write_bytes(make_table_pdf(rows, "Order 17"))
    assert pypdf.PdfReader(path, strict=True).pages[0].extract_text().startswith("Order 17")
    (table,) = tables_in_pdf(str(path))
    assert table.kind == "ruled" and table.rows == rows
