"""Real images for the OCR tests, made from real corpus pages: PDFium renders a page,
and small writers here encode it as PNG, multi-page TIFF (Deflate) or an image-only
("scanned") PDF. No imaging library: the formats are written by hand.

``tests/data/make_images.py`` uses these to (re)write the committed images.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from engine_kit import REAL

SAMPLES = REAL / "sample-files"
# pages with a clean text layer, and words each one must be recognised by
LOREM = (SAMPLES / "002-trivial-libre-office-writer" / "002-trivial-libre-office-writer.pdf", 0)
HELLO = (SAMPLES / "004-pdflatex-4-pages" / "pdflatex-4-pages.pdf", 0)
ZEN = (SAMPLES / "011-google-doc-document" / "google-doc-document.pdf", 0)
WORDS = {LOREM: ("Lorem", "ipsum", "dolor"), HELLO: ("Hello", "meaning"), ZEN: ("Beautiful", "ugly")}


def render_grey(pdf: Path, index: int, dpi: int) -> tuple[bytes, int, int]:
    """(8-bit grey pixels, width, height) of one PDF page."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    try:
        page = doc[index]
        bitmap = page.render(scale=dpi / 72, grayscale=True)
        width, height, stride = bitmap.width, bitmap.height, bitmap.stride
        raw = bytes(bitmap.buffer)
        bitmap.close()
        page.close()
    finally:
        doc.close()
    rows = b"".join(raw[y * stride : y * stride + width] for y in range(height))
    return rows, width, height


def png_bytes(grey: bytes, width: int, height: int, dpi: int) -> bytes:
    """An 8-bit greyscale PNG with its resolution (pHYs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    scanlines = b"".join(b"\x00" + grey[y * width : (y + 1) * width] for y in range(height))
    per_metre = round(dpi / 0.0254)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1))
        + chunk(b"IDAT", zlib.compress(scanlines, 9))
        + chunk(b"IEND", b"")
    )


def tiff_bytes(frames: list[tuple[bytes, int, int]], dpi: int) -> bytes:
    """A little-endian multi-page TIFF: one 8-bit grey, Deflate-compressed strip a frame."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    previous_link = 4  # where the offset of the next directory goes
    packed_frames: dict[int, bytes] = {}  # a frame repeated is compressed once
    for grey, width, height in frames:
        data = packed_frames.setdefault(id(grey), b"") or zlib.compress(grey, 9)
        packed_frames[id(grey)] = data
        data_at = len(out)
        out += data + (b"\x00" if len(data) % 2 else b"")
        res_at = len(out)
        out += struct.pack("<II", dpi, 1)
        entries = [
            (256, 4, 1, width),  # ImageWidth
            (257, 4, 1, height),  # ImageLength
            (258, 3, 1, 8),  # BitsPerSample
            (259, 3, 1, 8),  # Compression: Deflate
            (262, 3, 1, 1),  # Photometric: min is black
            (273, 4, 1, data_at),  # StripOffsets
            (277, 3, 1, 1),  # SamplesPerPixel
            (278, 4, 1, height),  # RowsPerStrip
            (279, 4, 1, len(data)),  # StripByteCounts
            (282, 5, 1, res_at),  # XResolution
            (283, 5, 1, res_at),  # YResolution
            (296, 3, 1, 2),  # ResolutionUnit: inch
        ]
        ifd_at = len(out)
        struct.pack_into("<I", out, previous_link, ifd_at)
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, kind, count) + packed
        previous_link = len(out)
        out += b"\x00\x00\x00\x00"
    return bytes(out)


def scanned_pdf(pdf: Path, index: int, dest: Path, dpi: int = 200) -> Path:
    """An image-only PDF: page ``index`` of ``pdf`` rendered and placed as a picture on a
    page of the same size, with no text layer (what a scanner produces)."""
    import pypdfium2 as pdfium

    source = pdfium.PdfDocument(str(pdf))
    try:
        page = source[index]
        width, height = page.get_size()
        bitmap = page.render(scale=dpi / 72, grayscale=True)
        page.close()
        out = pdfium.PdfDocument.new()
        new_page = out.new_page(width, height)
        image = pdfium.PdfImage.new(out)
        image.set_bitmap(bitmap)
        image.set_matrix(pdfium.PdfMatrix().scale(width, height))
        new_page.insert_obj(image)
        new_page.gen_content()
        dest.parent.mkdir(parents=True, exist_ok=True)
        out.save(str(dest))
        new_page.close()
        out.close()
        bitmap.close()
    finally:
        source.close()
    return dest


def write_test_images(folder: Path, dpi: int = 150) -> list[Path]:
    """``page.png`` (ZEN) and ``two-pages.tif`` (LOREM then HELLO) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / "page.png"
    png.write_bytes(png_bytes(*render_grey(*ZEN, dpi), dpi))
    tif = folder / "two-pages.tif"
    tif.write_bytes(tiff_bytes([render_grey(*LOREM, dpi), render_grey(*HELLO, dpi)], dpi))
    return [png, tif]
