"""A PDF page's characters and straight path segments, in the page as displayed.

Coordinates are **PDF points with a top-left origin**: ``(x0, y0, x1, y1)``, ``x`` to
the right and ``y`` downwards from the top of the page's crop box, turned by
``/Rotate``: the frame of a table's ``bbox`` and of layout-order text. Read straight
from PDFium's C API (``pypdfium2.raw``), bounded per page.
"""

from __future__ import annotations

import ctypes
import struct
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

    handle = getattr(textpage, "_as_parameter_", textpage)  # what ctypes would pass
    count = min(pdfium_c.FPDFText_CountChars(handle), MAX_CHARS)
    if count <= 0:
        return []
    rect = (ctypes.c_float * 4)()  # FS_RECTF: left, top, right, bottom
    rect_ref = ctypes.byref(rect)
    read_rect = _FOUR_FLOATS.unpack_from
    get_box = _bare(pdfium_c.FPDFText_GetLooseCharBox)
    get_uni = _bare(pdfium_c.FPDFText_GetUnicode)
    transform = frame.box
    upright = frame.rotation == 0
    left, top = frame.left, frame.top
    skip = _NOT_CHARS
    out: list[Char] = []
    append = out.append
    for i in range(count):
        code = get_uni(handle, i)
        if code in skip or 0xD800 <= code <= 0xDFFF:
            continue
        if code == 32 or not get_box(handle, i, rect_ref):
            if code == 32 and out and out[-1].text != " ":  # placed at the glyph before
                last = out[-1]
                append(Char(" ", last.x1, last.y0, last.x1, last.y1))
            continue
        r_left, r_top, r_right, r_bottom = read_rect(rect)
        if upright:  # the common case, inlined: no rotation, only the crop box origin
            x0, x1 = r_left - left, r_right - left
            y0, y1 = top - r_top, top - r_bottom
            if x0 > x1:
                x0, x1 = x1, x0
            if y0 > y1:
                y0, y1 = y1, y0
        else:
            x0, y0, x1, y1 = transform(r_left, r_top, r_right, r_bottom)
        if x1 - x0 > 500 or y1 - y0 > 500:
            continue
        append(Char(chr(code), x0, y0, x1, y1))
    return out


_NOT_CHARS = frozenset((0, 10, 13, 0xFFFE, 0xFFFF))  # no glyph: line breaks, markers
_FOUR_FLOATS = struct.Struct("4f")


def _bare(fn: Any) -> Any:
    """A pypdfium2 C function without its declared argument types, for loops that call
    it once per character or path segment: ctypes then skips converting each argument
    (that costs more than the call). The caller passes only what needs no conversion:
    pointers as returned by PDFium, ``byref`` values and ints that fit a C ``int``."""
    bare = type(fn)(ctypes.cast(fn, ctypes.c_void_p).value)
    bare.restype = fn.restype
    return bare


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
    """Axis-aligned straight path segments as (x0, y0, x1, y1), top-left origin: the
    rules of :func:`page_paths`."""
    return page_paths(page, frame).rules


@dataclass(slots=True)
class Paths:
    """A page's vector graphics as tables read them (see :func:`page_paths`)."""

    rules: list[Box]
    fills: list[Box]
    drawings: list[Box]  # boxes of curved or slanted subpaths: plots, diagrams, logos


FILL_MIN = 2.5  # a filled rectangle thinner than this (points) is a rule, not an area


def page_paths(page: Any, frame: Frame) -> Paths:
    """The page's vector graphics as rules, fills and drawings, top-left origin; form
    XObjects are descended into with their matrices.

    *Rules* are axis-aligned straight segments of stroked paths and the edges of filled
    rectangles thinner than :data:`FILL_MIN` (a line drawn as a thin bar). *Fills* are
    filled, unstroked axis-aligned rectangles larger than that: cell shading, zebra
    bands, chart bars; their edges are no rules. *Drawings* are the boxes of subpaths
    with a curve or a slanted line (a plot's lines, a diagram). Paths painted white (or
    not painted) are left out: they draw nothing a reader sees."""
    import pypdfium2.raw as pdfium_c

    rules: list[Box] = []
    fills: list[Box] = []
    drawings: list[Box] = []
    budget = [MAX_SEGMENTS]
    # the C functions called per object and per segment, without argument conversion
    # (see _bare): every output argument is passed by reference
    get_type = _bare(pdfium_c.FPDFPageObj_GetType)
    get_matrix = _bare(pdfium_c.FPDFPageObj_GetMatrix)
    draw_mode = _bare(pdfium_c.FPDFPath_GetDrawMode)
    stroke_colour = _bare(pdfium_c.FPDFPageObj_GetStrokeColor)
    fill_colour = _bare(pdfium_c.FPDFPageObj_GetFillColor)
    count_segments = _bare(pdfium_c.FPDFPath_CountSegments)
    get_segment = _bare(pdfium_c.FPDFPath_GetPathSegment)
    get_point = _bare(pdfium_c.FPDFPathSegment_GetPoint)
    segment_type = _bare(pdfium_c.FPDFPathSegment_GetType)
    segment_closes = _bare(pdfium_c.FPDFPathSegment_GetClose)
    path_kind, form_kind = pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_FORM
    moveto, lineto = pdfium_c.FPDF_SEGMENT_MOVETO, pdfium_c.FPDF_SEGMENT_LINETO
    fx, fy = ctypes.c_float(), ctypes.c_float()
    fx_ref, fy_ref = ctypes.byref(fx), ctypes.byref(fy)
    matrix = pdfium_c.FS_MATRIX()
    matrix_ref = ctypes.byref(matrix)
    fill_mode, stroke = ctypes.c_int(), ctypes.c_int()
    modes = (ctypes.byref(fill_mode), ctypes.byref(stroke))
    r, g, b, a = ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()
    rgba = (ctypes.byref(r), ctypes.byref(g), ctypes.byref(b), ctypes.byref(a))
    upright = frame.rotation == 0
    left, top = frame.left, frame.top

    def visible(get_colour: Any, obj: Any) -> bool:
        if not get_colour(obj, *rgba):
            return True
        return a.value > 0 and min(r.value, g.value, b.value) < 245

    def visit(count: int, get: Any, parent: Any, base: tuple[float, ...], depth: int) -> None:
        for i in range(count):
            if budget[0] <= 0:
                return
            obj = get(parent, i)
            if not obj:
                continue
            kind = get_type(obj)
            if kind not in (path_kind, form_kind):
                continue
            if not get_matrix(obj, matrix_ref):
                continue
            m = _compose((matrix.a, matrix.b, matrix.c, matrix.d, matrix.e, matrix.f), base)
            if kind == form_kind:
                if depth < 8:
                    n = pdfium_c.FPDFFormObj_CountObjects(obj)
                    visit(n, pdfium_c.FPDFFormObj_GetObject, obj, m, depth + 1)
                continue
            if not draw_mode(obj, *modes):
                fill_mode.value, stroke.value = 0, 1
            stroked = bool(stroke.value) and visible(stroke_colour, obj)
            filled = fill_mode.value != 0 and visible(fill_colour, obj)
            if not (stroked or filled):
                continue
            n = count_segments(obj)
            budget[0] -= max(n, 0)
            # one subpath at a time: a path may hold many rectangles (a table's rules)
            subpaths: list[tuple[list[Box], list[tuple[float, float]], bool]] = []
            start: tuple[float, float] | None = None
            prev: tuple[float, float] | None = None
            a_, b_, c_, d_, e_, f_ = m
            for s in range(max(n, 0)):
                seg = get_segment(obj, s)
                if not seg or not get_point(seg, fx_ref, fy_ref):
                    continue
                x, y = fx.value, fy.value
                if upright:  # frame.point, inlined for the common case
                    px, py = a_ * x + c_ * y + e_ - left, top - (b_ * x + d_ * y + f_)
                else:
                    px, py = frame.point(a_ * x + c_ * y + e_, b_ * x + d_ * y + f_)
                stype = segment_type(seg)
                if stype == moveto or prev is None or not subpaths:
                    subpaths.append(([], [(px, py)], True))
                    start = prev = (px, py)
                    continue
                segments, points, straight = subpaths[-1]
                points.append((px, py))
                if stype == lineto:
                    straight &= _add_segment(segments, prev, (px, py))
                else:
                    straight = False
                prev = (px, py)
                if segment_closes(seg) and start is not None:
                    straight &= _add_segment(segments, prev, start)
                    prev = start
                subpaths[-1] = (segments, points, straight)
            for segments, points, straight in subpaths:
                if not straight and points:
                    xs, ys = [p[0] for p in points], [p[1] for p in points]
                    drawings.append((min(xs), min(ys), max(xs), max(ys)))
                if filled and not stroked and straight and len(points) >= 3:
                    xs, ys = [p[0] for p in points], [p[1] for p in points]
                    box = (min(xs), min(ys), max(xs), max(ys))
                    if box[2] - box[0] > FILL_MIN and box[3] - box[1] > FILL_MIN:
                        fills.append(box)  # an area, not a line
                        continue
                rules.extend(segments)

    handle = getattr(page, "_as_parameter_", page)  # what ctypes would pass
    count = pdfium_c.FPDFPage_CountObjects(handle)
    visit(count, _bare(pdfium_c.FPDFPage_GetObject), handle, (1.0, 0.0, 0.0, 1.0, 0.0, 0.0), 0)
    return Paths(rules, fills, drawings)


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


def _add_segment(out: list[Box], p: tuple[float, float], q: tuple[float, float]) -> bool:
    """Adds the segment ``pq`` when it is axis-aligned; False when it is slanted."""
    x0, x1 = (q[0], p[0]) if q[0] < p[0] else (p[0], q[0])  # sorted((p[0], q[0]))
    y0, y1 = (q[1], p[1]) if q[1] < p[1] else (p[1], q[1])
    if (x1 - x0 <= 1.0) != (y1 - y0 <= 1.0):  # axis-aligned, not a point
        out.append((x0, y0, x1, y1))
        return True
    return x1 - x0 <= 1.0 and y1 - y0 <= 1.0  # a point is not slanted



def page_frame(page: Any) -> Frame:
    left, bottom, right, top = page.get_cropbox()
    rotation = page.get_rotation() % 360
    return Frame(float(left), float(bottom), float(right), float(top), rotation)

