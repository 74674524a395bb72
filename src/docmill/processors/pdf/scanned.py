"""Pages of a PDF without a usable text layer, read by OCR (``extract.ocr``).

Which pages need it is decided from the layer's text (:func:`usable_text`); those pages
are drawn by PDFium (:mod:`docmill.processors.pdf.render`) and read by Tesseract
(:mod:`docmill.processors.ocr.pages`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from docmill.processors.ocr.pages import LAYER, ocr_pages
from docmill.processors.ocr.tesseract import Tesseract
from docmill.processors.pdf.render import render_page
from docmill.processors.registry import ExtractRequest

_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")


def usable_text(text: str) -> bool:
    """Whether a page's text layer is worth keeping instead of OCR.

    Not usable: empty or whitespace; or garbage from a broken font encoding, i.e. more
    than a third of the visible characters are replacement, private-use, control or
    unassigned code points, or fewer than a fifth are letters or digits (dense
    numeric tables in shared/corpus/real go down to ~38%).
    """
    visible = "".join(text.split())  # split() drops exactly what isspace() matches
    if not visible:
        return False
    if visible.isascii():  # common; counted in C (ASCII L/N: [A-Za-z0-9], Cc: \x00-\x1f, \x7f)
        bad = len(visible) - len(_ASCII_CONTROL.sub("", visible))
        alnum = len(visible) - len(_ASCII_ALNUM.sub("", visible))
        return bad * 3 <= len(visible) and alnum * 5 >= len(visible)
    bad = alnum = 0
    for ch in visible:
        category = unicodedata.category(ch)
        if ch == "\ufffd" or category in ("Co", "Cc", "Cs", "Cn"):
            bad += 1
        elif category[0] in "LN":
            alnum += 1
    return bad * 3 <= len(visible) and alnum * 5 >= len(visible)



def ocr_pdf(
    doc: Any,
    start: int,
    text: list[str],
    skip: list[int],
    request: ExtractRequest,
    meta: dict[str, Any],
) -> list[str]:
    """OCR the pages of an open PDFium document that need it under ``extract.ocr``
    (``auto``: no usable text layer; ``always``; ``never``). ``text[i]`` is page
    ``start + i``; ``skip`` lists pages PDFium could not load. Returns text_source."""
    options = request.options
    if options.ocr == "never":
        return [LAYER] * len(text)
    wanted = [
        i
        for i, page_text in enumerate(text)
        if start + i not in skip and (options.ocr == "always" or not usable_text(page_text))
    ]

    def read(index: int, tesseract: Tesseract) -> str:
        page = doc[start + index]
        try:
            image, dpi = render_page(page)
        finally:
            page.close()
        return tesseract.read_pnm(image, dpi)

    return ocr_pages(read, wanted, text, options.ocr_languages, request.on_stage, meta, start)

