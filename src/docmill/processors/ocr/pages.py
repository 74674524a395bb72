"""OCR of a document's pages, whatever draws them: the loop that opens Tesseract once,
reads each page that needs it, and keeps a page's text when Tesseract fails on it.

When Tesseract (or a language) is missing, nothing fails: pages keep the text they have
and ``metadata["ocr_unavailable"]`` says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from docmill.processors.ocr.tesseract import OcrFailed, OcrUnavailable, Tesseract, open_tesseract

LAYER, OCR = "layer", "ocr"  # values of a record's text_source, one per page


def ocr_pages(
    read: Callable[[int, Tesseract], str],
    wanted: list[int],
    text: list[str],
    languages: str,
    on_stage: Callable[[str], None],
    meta: dict[str, Any],
    first_page: int = 0,
) -> list[str]:
    """OCR pages ``wanted`` (indexes into ``text``) with ``read(index, tesseract)``,
    replacing their text; returns the text_source of every page.

    A page Tesseract fails on keeps its text and is listed in ``meta["ocr_errors"]``;
    without Tesseract every page keeps its text and ``meta["ocr_unavailable"]`` says why.
    """
    sources = [LAYER] * len(text)
    if not wanted:
        return sources
    try:
        tesseract = open_tesseract(languages)
    except OcrUnavailable as exc:
        meta["ocr_unavailable"] = str(exc)
        return sources
    on_stage("ocr")
    errors: list[dict[str, Any]] = []
    for index in wanted:
        try:
            text[index] = read(index, tesseract)
        except OcrFailed as exc:
            errors.append({"page": first_page + index, "error": str(exc)})
            continue
        sources[index] = OCR
    if errors:
        meta["ocr_errors"] = errors
    return sources

