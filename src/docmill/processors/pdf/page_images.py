"""PDF page images: for models that read them (``llm.input = "images"``), and for the
service's page view (``ExtractOptions.render_only``: a task that only draws its pages).

Rendered in the worker, like every other use of PDFium, so a hostile page can only cost
its worker; they travel to the driver with the outcome and are never stored here (the
service caches the page view's images itself).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from docmill.model import DocState, FailureCategory, PageRange, ProcessOutcome
from docmill.processors.pdf.render import render_page
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import PDF

# the page view's bitmap cap: a 30,000 x 30,000 pt page is drawn at a lower resolution
# (US Letter at 200 dpi is 3.7 million pixels), so one grey bitmap stays under 4 MB
VIEW_MAX_PIXELS = 4_000_000


def png_from_pgm(pgm: bytes) -> bytes:
    """A grey 8-bit PNG from a binary PGM (``P5``), with the standard library only."""
    parts = pgm.split(b"\n", 3)
    if len(parts) != 4 or parts[0] != b"P5" or parts[2] != b"255":
        raise ValueError("not a binary 8-bit PGM")
    width, height = (int(v) for v in parts[1].split())
    raw = parts[3]
    if len(raw) != width * height:
        raise ValueError("PGM data does not match its size")
    rows = b"".join(b"\x00" + raw[y * width : (y + 1) * width] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 6))
        + chunk(b"IEND", b"")
    )


def pdf_page_images(doc: Any, start: int, count: int, dpi: int) -> list[tuple[str, bytes]]:
    """(MIME type, bytes) of up to ``count`` pages from ``start``, as grey PNGs."""
    images: list[tuple[str, bytes]] = []
    for index in range(start, min(start + count, len(doc))):
        page = doc[index]
        try:
            pgm, _dpi = render_page(page, dpi)
        finally:
            page.close()
        images.append(("image/png", png_from_pgm(pgm)))
    return images


def render_pages(path: str, mime: str, request: ExtractRequest) -> ProcessOutcome:
    """The pages of ``request.page_range`` (default: the first) as grey PNGs at
    ``options.image_dpi`` (lower for pages over :data:`VIEW_MAX_PIXELS`), with each
    page's displayed size in points (crop box, turned by ``/Rotate``: the frame of a
    table's ``bbox``) in ``metadata["page_sizes"]``. ``pages`` is the document's page
    count; a range past the end draws nothing."""
    if mime != PDF:
        refused = ProcessOutcome.failure(
            FailureCategory.UNSUPPORTED, f"page images are drawn for PDFs only, not {mime}", "render"
        )
        refused.mime = mime
        return refused
    import pypdfium2 as pdfium

    rng = request.page_range or PageRange(0, 1)
    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        category = FailureCategory.ENCRYPTED if "password" in str(exc).lower() else FailureCategory.CORRUPT
        return ProcessOutcome.failure(category, f"PDFium cannot open the file: {exc}", "render")
    try:
        pages = len(doc)
        outcome = ProcessOutcome(DocState.DONE, mime=mime, pages=pages, page_range=rng)
        sizes: list[dict[str, Any]] = []
        for index in range(rng.start, min(rng.stop, pages)):
            page = doc[index]
            try:
                width, height = page.get_size()
                pgm, dpi = render_page(page, request.options.image_dpi, VIEW_MAX_PIXELS)
            finally:
                page.close()
            outcome.images.append(("image/png", png_from_pgm(pgm)))
            sizes.append({"page": index, "width": round(width, 2), "height": round(height, 2), "dpi": dpi})
        outcome.metadata["page_sizes"] = sizes
        return outcome
    finally:
        doc.close()
