"""The PDF text processor on real files: PDFium first, pypdf for small damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest

from docmill.model import DocState, ErrorInfo, FailureCategory, ProcessOutcome
from docmill.processors import ExtractOptions, Task, process_task
from engine_kit import HOSTILE, REAL

# PDFium rejects both; pypdf rebuilds the first (793 bytes) and fails on the second
RESCUABLE = HOSTILE / "real" / "qpdf__bad34.pdf"
LARGE_DAMAGED = REAL / "sample-files" / "017-unreadable-meta-data" / "unreadablemetadata.pdf"


def _run(path: Path, fallback_max_bytes: int = 1 << 20) -> ProcessOutcome:
    if not path.exists():
        pytest.skip(f"corpus file missing: {path}")
    task = Task(1, 1, str(path), None, 2**30, ExtractOptions(fallback_max_bytes=fallback_max_bytes))
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
    from docmill.processors.pdf_text import normalise_newlines

    assert normalise_newlines("dig\x02\r\nnissim\rnext") == "dig-\nnissim\nnext"
    found = [
        page
        for path in sorted(REAL.rglob("*.pdf"))[:80]
        for page in _run(path).opened().text
    ]
    assert found and not any("\x02" in page or "\r" in page for page in found)
