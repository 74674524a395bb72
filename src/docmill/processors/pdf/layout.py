"""Page layout from PDFium's text rectangles: two-column reading order, running headers
and footers.

Everything here works on the *text rectangles* PDFium computes for a text page
(``FPDFText_CountRects``: one per run of characters on a line, tens per page), never on
single characters, so it stays cheap next to ``get_text_bounded`` itself.

- **Columns.** A page is read as two columns when a vertical gutter (a strip in the
  middle third that no column-sized rectangle crosses) has enough text lines on both
  sides that are as wide as their column. Rectangles wider than a column (titles,
  abstracts, figures' captions across the page) split the page into bands read top to
  bottom; inside a band the left column is read before the right one. Tables seldom
  pass the test: their cells are narrow next to the space beside the gutter.
- **Headers and footers.** The top-most and bottom-most line of each page, with digits
  masked (page numbers change), is a running header (footer) when the same text
  comes back at about the same height on at least half of the pages, and on two at
  least. Such lines are *marked*, not removed: ``metadata["headers"]`` and
  ``metadata["footers"]`` list ``{"page": i, "text": line}`` (``i`` counted from 0 in
  the document, as ``pages_without_text``); the page text keeps them.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

Rect = tuple[float, float, float, float]  # left, bottom, right, top (PDF points)

_MIN_COLUMN_LINES = 6  # text lines each side of a gutter before a page is two columns
_MIN_GUTTER = 6.0  # points
_DIGITS = re.compile(r"\d+")
_EDGE_TOLERANCE = 6.0  # points: a running header sits at the same height on each page


@dataclass(frozen=True, slots=True)
class Edges:
    """The top-most and bottom-most line of one page, with their heights."""

    top: str
    top_y: float
    bottom: str
    bottom_y: float


def _rects(textpage: Any) -> list[Rect]:
    """The page's text rectangles (raw calls with reused out-parameters: the wrapper's
    ``get_rect`` allocates four doubles per call)."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    raw = textpage.raw
    count = pdfium_c.FPDFText_CountRects(raw, 0, -1)
    left, top, right, bottom = (ctypes.c_double() for _ in range(4))
    refs = ctypes.byref(left), ctypes.byref(top), ctypes.byref(right), ctypes.byref(bottom)
    get = pdfium_c.FPDFText_GetRect
    out = []
    for index in range(count):
        if get(raw, index, *refs) and right.value > left.value and top.value > bottom.value:
            out.append((left.value, bottom.value, right.value, top.value))
    return out


def _band_text(textpage: Any, left: float, bottom: float, right: float, top: float) -> str:
    text: str = textpage.get_text_bounded(left=left, bottom=bottom, right=right, top=top)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def find_gutter(rects: list[Rect], page_left: float, page_right: float) -> float | None:
    """The x of a two-column page's gutter, or None when the page is not two columns."""
    width = page_right - page_left
    if width <= 0 or len(rects) < 2 * _MIN_COLUMN_LINES:
        return None
    lo, hi = page_left + width / 3, page_left + 2 * width / 3
    narrow = [r for r in rects if r[2] - r[0] < 0.55 * width]
    # how many narrow rectangles cover each x (1 pt) of the middle third; a few short
    # centred lines (an author, a date) may cross the gutter and become cuts
    steps = [0] * (int(hi - lo) + 2)
    for left, _b, right, _t in narrow:
        start, stop = max(0, int(left - lo)), min(len(steps) - 1, int(right - lo) + 1)
        if start < stop:
            steps[start] += 1
            steps[stop] -= 1
    cover = list(accumulate(steps[:-1]))
    allowed = max(3, len(narrow) // 10)
    best: tuple[int, int] | None = None
    run_start = None
    for x, count in enumerate([*cover, allowed + 1]):
        if count <= allowed and run_start is None:
            run_start = x
        elif count > allowed and run_start is not None:
            if best is None or x - run_start > best[1] - best[0]:
                best = (run_start, x)
            run_start = None
    if best is None or best[1] - best[0] < _MIN_GUTTER:
        return None
    gutter = lo + (best[0] + best[1]) / 2
    left_side = [r for r in narrow if r[2] <= gutter]
    right_side = [r for r in narrow if r[0] >= gutter]
    if len(left_side) < _MIN_COLUMN_LINES or len(right_side) < _MIN_COLUMN_LINES:
        return None
    # text columns: their lines are about as wide as the column (table cells are not)
    for side, span in ((left_side, gutter - page_left), (right_side, page_right - gutter)):
        widths = sorted(r[2] - r[0] for r in side)
        column = max(r[2] for r in side) - min(r[0] for r in side)
        if widths[len(widths) // 2] < 0.6 * column or column < 0.25 * span:
            return None
    return gutter


def reading_order_text(textpage: Any, page_width: float, page_height: float) -> str | None:
    """The page's text read column by column when it has two columns; None otherwise
    (the caller keeps PDFium's own order)."""
    bands = reading_order_bands(textpage, page_width, page_height)
    return None if bands is None else bands_text(textpage, bands)


def bands_text(textpage: Any, bands: list[Rect]) -> str:
    """The text of ``bands`` (see :func:`reading_order_bands`), one after the other."""
    parts = [_band_text(textpage, *band) for band in bands]
    return "\n".join(p.strip("\n") for p in parts if p.strip())


def reading_order_bands(textpage: Any, page_width: float, page_height: float) -> list[Rect] | None:
    """The rectangles (left, bottom, right, top; PDF points) a two-column page is read
    in, in order: each band across the gutter, and between two such bands the left
    column then the right one; None when the page is not two columns."""
    rects = _rects(textpage)
    if not rects:
        return None
    page_left = min(r[0] for r in rects)
    page_right = max(r[2] for r in rects)
    gutter = find_gutter(rects, page_left, page_right)
    if gutter is None:
        return None
    # bands: spans of rectangles crossing the gutter cut the page, top to bottom
    spanners = sorted(
        ((r[1], r[3]) for r in rects if r[0] < gutter - 1 and r[2] > gutter + 1),
        key=lambda span: -span[1],
    )
    merged: list[list[float]] = []
    for bottom, top in spanners:
        if merged and top >= merged[-1][0] - 1:
            merged[-1][0] = min(merged[-1][0], bottom)
        else:
            merged.append([bottom, top])
    bands: list[Rect] = []
    ceiling = page_height + 1
    x0, x1 = -1.0, page_width + 1
    for bottom, top in [*merged, [-1.0, -1.0]]:
        if ceiling > top:  # the two columns between the last cut and this one
            bands.append((x0, top, gutter, ceiling))
            bands.append((gutter, top, x1, ceiling))
        if bottom >= 0:
            bands.append((x0, bottom, x1, top))
        ceiling = bottom
    return bands


def page_edges(textpage: Any, page_width: float) -> Edges | None:
    """The first and last line of a page (by height), for header and footer detection."""
    rects = _rects(textpage)
    if not rects:
        return None
    high = max(rects, key=lambda r: r[3])
    low = min(rects, key=lambda r: r[1])
    top = _band_text(
        textpage, -1, high[1] + 0.5 * (high[3] - high[1]) - 0.1, page_width + 1, high[3] + 1
    )
    bottom = _band_text(
        textpage, -1, low[1] - 1, page_width + 1, low[1] + 0.5 * (low[3] - low[1]) + 0.1
    )
    return Edges(" ".join(top.split()), high[3], " ".join(bottom.split()), low[1])


def _key(text: str) -> str:
    return _DIGITS.sub("#", text.casefold())


def running_lines(
    edges: list[Edges | None], first_page: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(headers, footers): the top/bottom lines that repeat across the pages."""
    pages = sum(e is not None for e in edges)
    needed = max(2, (pages + 1) // 2)

    def repeated(texts: list[tuple[int, str, float]]) -> list[dict[str, Any]]:
        counts = Counter((_key(t), round(y / _EDGE_TOLERANCE)) for _i, t, y in texts if t)
        return [
            {"page": first_page + i, "text": t}
            for i, t, y in texts
            if t and counts[(_key(t), round(y / _EDGE_TOLERANCE))] >= needed
        ]

    if pages < 2:
        return [], []
    tops = [(i, e.top, e.top_y) for i, e in enumerate(edges) if e is not None]
    bottoms = [(i, e.bottom, e.bottom_y) for i, e in enumerate(edges) if e is not None]
    return repeated(tops), repeated(bottoms)
