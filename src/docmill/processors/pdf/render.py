"""A PDF page drawn as a grey image (PGM), for OCR and for page images.

PDFium draws the page (its crop box, turned by ``/Rotate``) into a bitmap at a given
resolution, lowered for huge pages so one bitmap stays under a pixel cap; the bitmap
becomes a binary PGM (or PPM) written here, which Tesseract reads on stdin and
:mod:`docmill.processors.pdf.page_images` turns into PNG.
"""

from __future__ import annotations

from typing import Any

DPI = 300  # render PDF pages at this resolution for OCR
MAX_PIXELS = 40_000_000  # larger pages are rendered at a lower resolution (~A2 at 300 dpi)


def pnm_bytes(
    buffer: bytes | memoryview, width: int, height: int, stride: int, channels: int
) -> bytes:
    """A binary PGM (1 channel, grey) or PPM (3 or 4 channels, PDFium's BGR/BGRx order)
    from a raw bitmap whose rows are ``stride`` bytes apart."""
    if channels not in (1, 3, 4):
        raise ValueError(f"unsupported bitmap: {channels} channels")
    row = width * channels
    raw = bytes(buffer)
    if stride != row:
        raw = b"".join(raw[y * stride : y * stride + row] for y in range(height))
    if len(raw) != row * height:
        raise ValueError(f"bitmap buffer holds {len(raw)} bytes, expected {row * height}")
    if channels == 1:
        return b"P5\n%d %d\n255\n" % (width, height) + raw
    rgb = bytearray(width * height * 3)
    rgb[0::3] = raw[2::channels]
    rgb[1::3] = raw[1::channels]
    rgb[2::3] = raw[0::channels]
    return b"P6\n%d %d\n255\n" % (width, height) + bytes(rgb)


def render_scale(width_pt: float, height_pt: float, dpi: int = DPI, max_pixels: int = MAX_PIXELS) -> float:
    """PDFium's render scale for ``dpi``, lowered so the bitmap stays under ``max_pixels``."""
    scale = dpi / 72
    pixels = max(width_pt * scale, 1.0) * max(height_pt * scale, 1.0)
    if pixels > max_pixels:
        scale *= (max_pixels / pixels) ** 0.5
    return scale


def render_page(page: Any, dpi: int = DPI, max_pixels: int = MAX_PIXELS) -> tuple[bytes, int]:
    """A PDFium page as a grey PGM, and the resolution it was rendered at."""
    width, height = page.get_size()
    scale = render_scale(width, height, dpi, max_pixels)
    bitmap = page.render(scale=scale, grayscale=True, may_draw_forms=True)
    try:
        image = pnm_bytes(
            bitmap.buffer, bitmap.width, bitmap.height, bitmap.stride, bitmap.n_channels
        )
    finally:
        bitmap.close()
    return image, max(round(scale * 72), 1)

