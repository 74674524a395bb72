"""A page's blank margins, cut off before Tesseract reads it, and its TSV put back in place.

Tesseract's thresholding and layout analysis pass over every pixel it is given: a
300 dpi page costs ~0.3 CPU-s before it holds any text. Here the box holding every pixel
darker than :data:`PAPER` is found, widened by :data:`MARGIN_IN` (Tesseract rejects
blobs touching the image's edge), and where it leaves at most :data:`MAX_KEPT` of the
page only that box is read; the boxes of the TSV are then moved back into the page's
pixels, so the caller and the mendings (``leaders``, ``rules``, ``sideways``) see the
whole page as before. A page with no ink at all is not read: its TSV is the page row
alone.

Pure functions over a binary PGM (as :func:`docmill.processors.pdf.render.pnm_bytes`
writes it) and TSV text; anything else is read whole.
"""

from __future__ import annotations

from docmill.processors.ocr.leaders import Grey, parse_pgm

PAPER = 224  # grey at or above this is paper (a scan's grey paper stays uncut: no harm)
MARGIN_IN = 0.1  # paper kept around the ink (inches)
# a page is cut only where that leaves at most this share of its pixels: Tesseract's
# layout analysis changes with the image it is given, and on a page whose ink fills
# most of it the few pixels saved do not pay for that (one of the 60 bench pages, a
# table of dot leaders cut to 80 % of its pixels, lost 242 characters)
MAX_KEPT = 0.7
_INK = bytes(ord("1") if v < PAPER else ord("0") for v in range(256))

Box = tuple[int, int, int, int]  # left, top, right (exclusive), bottom (exclusive)


def ink_box(grey: Grey, margin: int) -> Box | None:
    """The box of ``grey``'s ink widened by ``margin`` pixels (clipped to the image);
    None when no pixel is ink."""
    width, height = grey.width, grey.height
    ink = grey.pixels[: width * height].translate(_INK)
    first = ink.find(b"1")
    if first < 0:
        return None
    top, bottom = first // width, ink.rfind(b"1") // width + 1
    left, right = width, 0
    for row in range(top * width, bottom * width, width):
        start = ink.find(b"1", row, row + min(left, width))  # only what could move `left`
        if start >= 0:
            left = start - row
        end = ink.rfind(b"1", row + max(right, 1) - 1, row + width)
        if end >= 0:
            right = max(right, end - row + 1)
    return (
        max(left - margin, 0), max(top - margin, 0),
        min(right + margin, width), min(bottom + margin, height),
    )  # fmt: skip


def crop_pgm(grey: Grey, box: Box) -> bytes:
    """The binary PGM of ``box`` of ``grey``."""
    left, top, right, bottom = box
    w = grey.width
    rows = b"".join(grey.pixels[y * w + left : y * w + right] for y in range(top, bottom))
    return b"P5\n%d %d\n255\n" % (right - left, bottom - top) + rows


def page_row(width: int, height: int) -> str:
    """The TSV's level-1 row of a ``width`` x ``height`` page."""
    return f"1\t1\t0\t0\t0\t0\t0\t0\t{width}\t{height}\t-1\t"


def shift_tsv(tsv: str, left: int, top: int, width: int, height: int) -> str:
    """``tsv`` of a cut-out whose top left corner is (``left``, ``top``) of a ``width`` x
    ``height`` page, its boxes moved into the page (its page row: the whole page)."""
    rows = tsv.split("\n")
    for n, row in enumerate(rows):
        cells = row.split("\t")
        if len(cells) < 12 or not cells[0].isdigit():
            continue  # the header, the last empty line
        if cells[0] == "1":
            rows[n] = page_row(width, height)
            continue
        try:
            cells[6], cells[7] = str(int(cells[6]) + left), str(int(cells[7]) + top)
        except ValueError:
            continue
        rows[n] = "\t".join(cells)
    return "\n".join(rows)


def content(image: bytes, dpi: int) -> tuple[Grey, Box | None] | None:
    """(the page, the box to read: None when it holds no ink) for a binary PGM whose
    ink leaves margins worth cutting; None to read ``image`` whole (not a PGM, or its
    ink spread over more than :data:`MAX_KEPT` of it)."""
    grey = parse_pgm(image)
    if grey is None:
        return None
    box = ink_box(grey, max(round(MARGIN_IN * dpi), 2))
    if box is None:
        return grey, None
    kept = (box[2] - box[0]) * (box[3] - box[1])
    if kept > MAX_KEPT * grey.width * grey.height:
        return None
    return grey, box
