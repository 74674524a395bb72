"""Page images for models that read them (``llm.input = "images"``).

Rendered in the worker, like every other use of PDFium, so a hostile page can only cost
its worker; they travel to the driver with the outcome and are never stored.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from docmill.processors.ocr import render_page

MAX_IMAGE_BYTES = 4 << 20  # an image document bigger than this is not sent as it is


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


def file_image(path: str, mime: str) -> list[tuple[str, bytes]]:
    """An image document as it is, when providers read its type and it is not too big."""
    if mime not in ("image/png", "image/jpeg"):
        return []
    with open(path, "rb") as handle:
        data = handle.read(MAX_IMAGE_BYTES + 1)
    return [(mime, data)] if len(data) <= MAX_IMAGE_BYTES else []
