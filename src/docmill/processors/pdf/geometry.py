"""A PDF page's characters and straight path segments, in the page as displayed.

Coordinates are **PDF points with a top-left origin**: ``(x0, y0, x1, y1)``, ``x`` to
the right and ``y`` downwards from the top of the page's crop box, turned by
``/Rotate``: the frame of a table's ``bbox`` and of layout-order text. Read straight
from PDFium's C API (``pypdfium2.raw``), bounded per page.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

MAX_CHARS = 100_000  # characters read per page (a hostile page cannot cost more)
MAX_SEGMENTS = 50_000  # path segments read per page

Box = tuple[float, float, float, float]  # x0, y0 (top), x1, y1 (bottom)


@dataclass(slots=True)
class Char:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float



def page_chars(textpage: Any, frame: Frame) -> list[Char]:
    """The page's characters with their loose boxes (font ascent to descent, advance
    width) in the page's displayed, top-left-origin frame."""
    import pypdfium2.raw as pdfium_c

    count = min(pdfium_c.FPDFText_CountChars(textpage), MAX_CHARS)
    if count <= 0:
        return []
    rect = pdfium_c.FS_RECTF()
    get_box = pdfium_c.FPDFText_GetLooseCharBox
    get_uni = pdfium_c.FPDFText_GetUnicode
    transform = frame.box
    upright = frame.rotation == 0
    left, top = frame.left, frame.top
    out: list[Char] = []
    append = out.append
    for i in range(count):
        code = get_uni(textpage, i)
        if code in (0, 10, 13, 0xFFFE, 0xFFFF) or 0xD800 <= code <= 0xDFFF:
            continue
        if code == 32 or not get_box(textpage, i, rect):
            if code == 32 and out and out[-1].text != " ":  # placed at the glyph before
                last = out[-1]
                append(Char(" ", last.x1, last.y0, last.x1, last.y1))
            continue
        if upright:  # the common case, inlined: no rotation, only the crop box origin
            x0, x1 = rect.left - left, rect.right - left
            y0, y1 = top - rect.top, top - rect.bottom
            if x0 > x1:
                x0, x1 = x1, x0
            if y0 > y1:
                y0, y1 = y1, y0
        else:
            x0, y0, x1, y1 = transform(rect.left, rect.top, rect.right, rect.bottom)
        if x1 - x0 > 500 or y1 - y0 > 500:
            continue
        append(Char(chr(code), x0, y0, x1, y1))
    return out


@dataclass(frozen=True, slots=True)
class Frame:
    """PDF user space -> the displayed page, top-left origin (crop box and /Rotate)."""

    left: float
    bottom: float
    right: float
    top: float
    rotation: int = 0  # clockwise degrees, as /Rotate

    def point(self, x: float, y: float) -> tuple[float, float]:
        u, v = x - self.left, self.top - y  # unrotated, top-left origin
        width, height = self.right - self.left, self.top - self.bottom
        if self.rotation == 90:
            return height - v, u
        if self.rotation == 180:
            return width - u, height - v
        if self.rotation == 270:
            return v, width - u
        return u, v

    def box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        ax, ay = self.point(x0, y0)
        bx, by = self.point(x1, y1)
        return (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))


def page_segments(page: Any, frame: Frame) -> list[Box]:
    """Axis-aligned straight path segments as (x0, y0, x1, y1), top-left origin; form
    XObjects are descended into with their matrices."""
    import pypdfium2.raw as pdfium_c

    out: list[Box] = []
    budget = [MAX_SEGMENTS]
    fx, fy = ctypes.c_float(), ctypes.c_float()
    matrix = pdfium_c.FS_MATRIX()

    def visit(count: int, get: Any, parent: Any, base: tuple[float, ...], depth: int) -> None:
        for i in range(count):
            if budget[0] <= 0:
                return
            obj = get(parent, i)
            if not obj:
                continue
            kind = pdfium_c.FPDFPageObj_GetType(obj)
            if kind not in (pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_FORM):
                continue
            if not pdfium_c.FPDFPageObj_GetMatrix(obj, matrix):
                continue
            m = _compose((matrix.a, matrix.b, matrix.c, matrix.d, matrix.e, matrix.f), base)
            if kind == pdfium_c.FPDF_PAGEOBJ_FORM:
                if depth < 8:
                    n = pdfium_c.FPDFFormObj_CountObjects(obj)
                    visit(n, pdfium_c.FPDFFormObj_GetObject, obj, m, depth + 1)
                continue
            n = pdfium_c.FPDFPath_CountSegments(obj)
            budget[0] -= max(n, 0)
            start: tuple[float, float] | None = None
            prev: tuple[float, float] | None = None
            for s in range(max(n, 0)):
                seg = pdfium_c.FPDFPath_GetPathSegment(obj, s)
                if not seg or not pdfium_c.FPDFPathSegment_GetPoint(seg, fx, fy):
                    continue
                a, b, c, d, e, f = m
                px, py = frame.point(
                    a * fx.value + c * fy.value + e, b * fx.value + d * fy.value + f
                )
                stype = pdfium_c.FPDFPathSegment_GetType(seg)
                if stype == pdfium_c.FPDF_SEGMENT_MOVETO or prev is None:
                    start = prev = (px, py)
                    continue
                if stype == pdfium_c.FPDF_SEGMENT_LINETO:
                    _add_segment(out, prev, (px, py))
                prev = (px, py)
                if pdfium_c.FPDFPathSegment_GetClose(seg) and start is not None:
                    _add_segment(out, prev, start)
                    prev = start

    count = pdfium_c.FPDFPage_CountObjects(page)
    visit(count, pdfium_c.FPDFPage_GetObject, page, (1.0, 0.0, 0.0, 1.0, 0.0, 0.0), 0)
    return out


def _compose(inner: tuple[float, ...], outer: tuple[float, ...]) -> tuple[float, ...]:
    """The matrix that applies ``inner`` then ``outer`` (PDF row-vector convention)."""
    a, b, c, d, e, f = inner
    A, B, C, D, E, F = outer
    return (
        a * A + b * C,
        a * B + b * D,
        c * A + d * C,
        c * B + d * D,
        e * A + f * C + E,
        e * B + f * D + F,
    )


def _add_segment(out: list[Box], p: tuple[float, float], q: tuple[float, float]) -> None:
    x0, x1 = sorted((p[0], q[0]))
    y0, y1 = sorted((p[1], q[1]))
    if (x1 - x0 <= 1.0) != (y1 - y0 <= 1.0):  # axis-aligned, not a point
        out.append((x0, y0, x1, y1))



def page_frame(page: Any) -> Frame:
    left, bottom, right, top = page.get_cropbox()
    rotation = page.get_rotation() % 360
    return Frame(float(left), float(bottom), float(right), float(top), rotation)

