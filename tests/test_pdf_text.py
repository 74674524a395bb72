"""The PDF text processor on real files: PDFium first, pypdf for small damaged files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docmill.model import DocState, ErrorInfo, FailureCategory, ProcessOutcome
from docmill.processors import ExtractOptions, Task, process_task
from docmill.processors.pdf.text import (
    bounded_text,
    layer_text,
    open_pdfium,
    pdf_date,
    pdfium_metadata,
)
from engine_kit import HOSTILE, REAL, corpus_file

# PDFium rejects both; pypdf rebuilds the first (793 bytes) and fails on the second
RESCUABLE = HOSTILE / "real" / "qpdf__bad34.pdf"
LARGE_DAMAGED = REAL / "sample-files" / "017-unreadable-meta-data" / "unreadablemetadata.pdf"


def _run(path: Path, fallback_max_bytes: int = 1 << 20) -> ProcessOutcome:
    options = ExtractOptions(fallback_max_bytes=fallback_max_bytes)
    task = Task(1, 1, str(corpus_file(path)), None, 2**30, options)
    return process_task(task)


def _error(outcome: ProcessOutcome) -> ErrorInfo:
    assert outcome.status is DocState.FAILED and outcome.error is not None
    return outcome.error


def test_a_small_damaged_pdf_is_rescued_by_the_fallback_parser() -> None:
    outcome = _run(RESCUABLE)
    assert outcome.status is DocState.DONE, outcome.error
    assert outcome.metadata["parser"] == "pypdf"
    assert outcome.pages == len(outcome.text) >= 1


def test_the_fallback_can_be_turned_off() -> None:
    error = _error(_run(RESCUABLE, fallback_max_bytes=0))
    assert error.category is FailureCategory.CORRUPT
    assert "PDFium" in error.message
    assert "extract.fallback_max_mb = 0" in error.message


def test_a_damaged_pdf_over_the_fallback_size_fails_saying_how_to_try_it() -> None:
    error = _error(_run(LARGE_DAMAGED))
    assert error.category is FailureCategory.CORRUPT
    assert "was not tried" in error.message
    assert "extract.fallback_max_mb (1 MB)" in error.message
    # raised above its size, the fallback does run (and here fails on its own terms)
    tried = _error(_run(LARGE_DAMAGED, fallback_max_bytes=8 << 20))
    assert tried.category is FailureCategory.CORRUPT
    assert "pypdf:" in tried.message


def test_pdfium_line_end_hyphens_and_crlf_become_plain_text() -> None:
    from docmill.processors.pdf.text import normalise_newlines

    assert normalise_newlines("dig\x02\r\nnissim\rnext") == "dig-\nnissim\nnext"
    found = [
        page
        for path in sorted(REAL.rglob("*.pdf"))[:80]
        for page in _run(path).opened().text
    ]
    assert found and not any("\x02" in page or "\r" in page for page in found)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("D:20160719010507+02'00'", "2016-07-19T01:05:07+02:00"),
        ("D:20160719010507Z", "2016-07-19T01:05:07Z"),
        ("D:20160719010507-0800", "2016-07-19T01:05:07-08:00"),
        ("D:2016", "2016-01-01T00:00:00"),
        ("D:201607", "2016-07-01T00:00:00"),
        ("  D:201607191230 ", "2016-07-19T12:30:00"),
        ("D:20161301", None),  # month 13
        ("D:20160230", None),  # 30 February
        ("D:20160719240000", None),  # hour 24
        ("D:20167", None),  # an odd number of digits
        ("D:201", None),
        ("Tuesday", None),
    ],
)
def test_pdf_dates_become_iso_8601_or_none(value: str, expected: str | None) -> None:
    assert pdf_date(value) == expected


def _corpus_documents() -> Iterator[tuple[Path, Any]]:
    """(path, open pypdfium2 document) for every corpus PDF PDFium opens; each closed
    when the next is asked for."""
    import pypdfium2 as pdfium

    for path in sorted(REAL.rglob("*.pdf")):
        try:
            doc = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError:
            continue
        try:
            yield path, doc
        finally:
            doc.close()


@pytest.mark.corpus_wide
def test_metadata_read_from_pdfium_directly_matches_pypdfium2s_reader() -> None:
    seen_values = 0
    for path, doc in _corpus_documents():
        expected = doc.get_metadata_dict(skip_empty=False)
        assert pdfium_metadata(doc) == expected, path
        seen_values += sum(1 for value in expected.values() if value)
    assert seen_values > 100  # the corpus has real titles, producers and dates


@pytest.mark.corpus_wide
def test_page_text_read_in_one_pass_matches_pypdfium2s_bounded_text() -> None:
    pages = chars = 0
    for path, doc in _corpus_documents():
        for index in range(min(len(doc), 8)):
            page = doc[index]
            textpage = page.get_textpage()
            expected = textpage.get_text_bounded()
            assert layer_text(doc, index) == expected, (path, index)
            if index == 0:  # a buffer too small at first: read again, larger
                left, bottom, right, top = page.get_bbox()
                area = (left, top, right, bottom)
                assert bounded_text(textpage, area, 1) == expected, path
            pages += 1
            chars += len(expected)
            textpage.close()
            page.close()
    assert pages > 300 and chars > 500_000


def test_a_pdf_pdfium_cannot_open_gives_its_error_code() -> None:
    locked = HOSTILE / "real" / "pdfbox__encryption_PasswordSample-128bit.pdf"
    raw, code = open_pdfium(str(locked))
    assert raw is None and code == 4  # FPDF_ERR_PASSWORD
    raw, code = open_pdfium(str(HOSTILE.parent / "no such file.pdf"))
    assert raw is None and code == 2  # FPDF_ERR_FILE
    raw, code = open_pdfium(str(REAL / "pdfplumber" / "examples" / "pdfs" / "background-checks.pdf"))
    assert raw is not None and code == 0
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(raw)
    assert len(doc) >= 1
    doc.close()
