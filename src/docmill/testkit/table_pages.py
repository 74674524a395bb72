"""Generated PDF pages with tables, and pages without any, with their exact ground truth.

A development set for table detection and structure that cannot be overfitted to a few
real files: every document is drawn here from a seed, so the truth is known to the
cell. Tables come ruled (a full grid), with rules above and below the header only
(``booktabs``), with an outer frame, on zebra bands (filled rows, no lines), with a
filled header, with no lines at all, or with vertical rules between column groups only
(``group_rules*``, :func:`draw_table` alone, not in :func:`generate`); with spanning and
two-level headers, cells of two lines, right-aligned numbers, row-group labels; alone,
between paragraphs, in one column of a two-column page, two on a page, continued on the
next page, on a page turned by ``/Rotate`` 90 (or 270: :class:`Page`), set sideways
without it. Pages that must yield no table: prose in one or two columns,
bulleted and numbered lists, a table of contents with dot leaders, a form, a bar chart.

The truth is docmill's own table shape (:mod:`docmill.model.tables`): per table the
page, the bbox in the displayed page's points from the top left (the frame docmill's
``bbox`` uses), the cells with their spans, ``header_rows`` and ``continued_from``.

Pure Python, no dependency: the PDF is written here (Helvetica, Helvetica-Bold and
Times-Roman, three of the standard fonts every reader has, with their widths in the
file so that every reader places the glyphs alike). ``write_set(folder, seed, count)``
writes ``NAME.pdf`` and ``NAME.json`` per document.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docmill.model.tables import Cell, complete_cells, rows_of

Box = tuple[float, float, float, float]

# Advance widths (1/1000 em) of the printable ASCII characters 32-126, from Adobe's
# Core 14 AFM metrics (Helvetica, Helvetica-Bold, Times-Roman); written into each font's
# /Widths so that every reader measures the glyphs alike.
_HELVETICA = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722,
    722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722,
    667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556,
    556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500,
    500, 334, 260, 334, 584,
]
_HELVETICA_BOLD = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722,
    722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722,
    667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611,
    611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556,
    500, 389, 280, 389, 584,
]
_TIMES = [
    250, 333, 408, 500, 500, 833, 778, 180, 333, 333, 500, 564, 250, 333, 250, 278, 500, 500,
    500, 500, 500, 500, 500, 500, 500, 500, 278, 278, 564, 564, 564, 444, 921, 722, 667, 667,
    722, 611, 556, 722, 722, 333, 389, 722, 611, 889, 722, 722, 556, 722, 667, 556, 611, 722,
    722, 944, 722, 722, 611, 333, 278, 333, 469, 500, 333, 444, 500, 444, 500, 444, 333, 500,
    500, 278, 278, 500, 278, 778, 500, 500, 500, 500, 333, 389, 278, 500, 500, 722, 500, 500,
    444, 480, 200, 480, 541,
]
FONTS = {  # resource name -> (base font, widths, ascent, descent) in 1/1000 em
    "F1": ("Helvetica", _HELVETICA, 718, -207),
    "F2": ("Helvetica-Bold", _HELVETICA_BOLD, 718, -207),
    "F3": ("Times-Roman", _TIMES, 683, -217),
}
REGULAR, BOLD, SERIF = "F1", "F2", "F3"


def text_width(text: str, font: str = REGULAR, size: float = 9.0) -> float:
    widths = FONTS[font][1]
    return sum(widths[ord(ch) - 32] if 32 <= ord(ch) <= 126 else 500 for ch in text) * size / 1000


# ------------------------------------------------------------------------ drawing


class Page:
    """One page drawn in the displayed page's frame (points, top-left origin); with
    ``rotate`` 90 (or 270) the page is stored portrait and shown landscape turned
    clockwise (counter-clockwise), as scanned reports set wide tables."""

    def __init__(
        self, width: float = 612, height: float = 792, rotate: int = 0, sideways: bool = False
    ) -> None:
        self.width, self.height, self.rotate = width, height, rotate
        # sideways: drawn as a page turned by /Rotate 90 (270) would be, but without
        # /Rotate: a portrait page showing its content turned a quarter, read bottom to
        # top (top to bottom)
        self.sideways = sideways
        self.ops: list[bytes] = []

    def shown(self, box: Box) -> Box:
        """A box of this drawing frame in the page as a viewer shows it."""
        if not self.sideways:
            return box
        x0, y0, x1, y1 = box  # portrait page of height self.width: x = y', y = W - x'
        if self.rotate == 270:  # x = H - y', y = x'
            return (self.height - y1, x0, self.height - y0, x1)
        return (y0, self.width - x1, y1, self.width - x0)

    def _user(self, x: float, y: float) -> tuple[float, float]:
        if self.rotate == 90:  # displayed (x, y) <- user space (y, x) on a portrait page
            return y, x
        if self.rotate == 270:  # displayed (x, y) <- user space (H - y, W - x)
            return self.height - y, self.width - x
        return x, self.height - y

    def text(
        self, x: float, top: float, text: str, font: str = REGULAR, size: float = 9.0, word_space: float = 0.0
    ) -> Box:
        """``text`` with its line box's top-left corner at ``(x, top)``; returns its box.
        ``word_space``: points added to each space (``Tw``; below 0, a tight setting)."""
        ascent, descent = FONTS[font][2] / 1000, FONTS[font][3] / 1000
        base = top + ascent * size
        ux, uy = self._user(x, base)
        body = _escape(text.encode("cp1252", "replace"))
        matrix = {90: b"0 1 -1 0", 270: b"0 -1 1 0"}.get(self.rotate, b"1 0 0 1")
        spacing = b" %.2f Tw" % word_space if word_space else b""
        self.ops.append(
            b"BT /%s %.2f Tf%s %s %.2f %.2f Tm (%s) Tj ET"
            % (font.encode(), size, spacing, matrix, ux, uy, body)
        )
        width = text_width(text, font, size) + word_space * text.count(" ")
        return (x, top, x + width, base - descent * size)

    def line(self, x0: float, y0: float, x1: float, y1: float, width: float = 0.5) -> None:
        a, b = self._user(x0, y0)
        c, d = self._user(x1, y1)
        self.ops.append(b"%.2f w %.2f %.2f m %.2f %.2f l S" % (width, a, b, c, d))

    def fill(self, x0: float, y0: float, x1: float, y1: float, grey: float = 0.85) -> None:
        a, b = self._user(x0, y0)
        c, d = self._user(x1, y1)
        x, y = min(a, c), min(b, d)
        self.ops.append(
            b"q %.2f g %.2f %.2f %.2f %.2f re f Q" % (grey, x, y, abs(c - a), abs(d - b))
        )

    def rect(self, x0: float, y0: float, x1: float, y1: float, width: float = 0.5) -> None:
        for a, b, c, d in ((x0, y0, x1, y0), (x1, y0, x1, y1), (x1, y1, x0, y1), (x0, y1, x0, y0)):
            self.line(a, b, c, d, width)

    def content(self) -> bytes:
        return b"\n".join(self.ops) + b"\n"


def _escape(data: bytes) -> bytes:
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def pdf_bytes(pages: Sequence[Page]) -> bytes:
    """A PDF 1.4 file of ``pages`` (the three fonts shared, widths included)."""
    n = len(pages)
    objects: list[bytes] = []
    font_ids = {}
    for name, (base, widths, _ascent, _descent) in FONTS.items():
        widths_obj = b"[" + b" ".join(b"%d" % w for w in widths) + b"]"
        objects.append(
            b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding"
            b" /FirstChar 32 /LastChar 126 /Widths %s >>" % (base.encode(), widths_obj)
        )
        font_ids[name] = len(objects) + 2  # objects 1 and 2 are the catalog and pages
    fonts = b" ".join(b"/%s %d 0 R" % (k.encode(), v) for k, v in font_ids.items())
    first_page = 3 + len(FONTS)
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(n))
    head = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
    ]
    body: list[bytes] = []
    for i, page in enumerate(pages):
        stream = page.content()
        w, h = (page.height, page.width) if page.rotate in (90, 270) else (page.width, page.height)
        rotate = b" /Rotate %d" % page.rotate if page.rotate and not page.sideways else b""
        body.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f]%s" % (w, h, rotate)
            + b" /Resources << /Font << " + fonts + b" >> >> /Contents %d 0 R >>"
            % (first_page + 2 * i + 1)
        )
        body.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
    everything = head + objects + body
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(everything, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(everything) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(everything) + 1,
        xref,
    )
    return bytes(out)


# -------------------------------------------------------------------- the truth


@dataclass(slots=True)
class TruthTable:
    page: int
    bbox: Box
    cells: list[Cell]
    header_rows: int = 0
    continued_from: int | None = None
    style: str = ""
    columns: list[float] = field(default_factory=list)  # column edges as drawn (x)
    gap: float = 0.0  # whitespace between columns as drawn

    def to_dict(self) -> dict[str, Any]:
        full = complete_cells(self.cells)
        out: dict[str, Any] = {
            "page": self.page,
            "bbox": [round(v, 2) for v in self.bbox],
            "rows": rows_of(full),
            "cells": [c.to_dict() for c in full],
            "header_rows": self.header_rows,
            "style": self.style,
        }
        if self.continued_from is not None:
            out["continued_from"] = self.continued_from
        return out


@dataclass(slots=True)
class Document:
    name: str
    pages: list[Page]
    tables: list[TruthTable] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # what each page shows

    def pdf(self) -> bytes:
        return pdf_bytes(self.pages)

    def truth(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pages": len(self.pages),
            "kinds": self.kinds,
            "tables": [t.to_dict() for t in self.tables],
        }


# ------------------------------------------------------------------ vocabulary

_WORDS = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "on", "as", "with", "by", "was", "at", "from", "this", "are", "be", "which", "or", "an", "have", "it", "not", "were", "has", "been", "their", "more", "also", "its", "these", "other", "all", "will", "can", "than", "into", "some", "only", "report", "data", "survey", "results", "period", "year", "annual", "public", "sector", "services", "regional", "budget", "growth", "rate", "measures", "households", "population", "market", "energy", "water", "health", "education", "national", "local", "council", "authority", "programme", "analysis", "estimates", "figures", "increase", "decrease", "compared", "previous", "change", "total", "average", "level", "share", "policy", "funding", "development", "statistics", "quarter", "during", "between", "under", "over", "while", "however", "therefore"]
_PLACES = ["North East", "North West", "Yorkshire", "East Midlands", "West Midlands", "East", "London", "South East", "South West", "Wales", "Scotland", "Northern Ireland", "Alberta", "Ontario", "Quebec", "Manitoba", "Bavaria", "Saxony", "Hesse", "Brittany", "Normandy", "Lombardy", "Tuscany", "Andalusia", "Catalonia", "Galicia", "Zeeland", "Utrecht", "Flanders", "Wallonia", "Tyrol", "Carinthia", "Uusimaa", "Lapland", "Kerala", "Assam", "Punjab", "Goa"]
_ITEMS = ["Wheat", "Barley", "Maize", "Oats", "Rye", "Potatoes", "Sugar beet", "Rapeseed", "Field beans", "Peas", "Apples", "Pears", "Cattle", "Sheep", "Pigs", "Poultry", "Milk", "Eggs", "Wool", "Timber", "Coal", "Natural gas", "Crude oil", "Electricity", "Cement", "Steel", "Copper", "Aluminium", "Paper", "Textiles", "Pharmaceuticals", "Vehicles", "Machinery", "Software", "Tourism", "Transport", "Retail", "Construction", "Insurance", "Banking"]
_MEASURES = ["Total", "Revenue", "Expenditure", "Population", "Households", "Employment", "Output", "Exports", "Imports", "Change", "Share", "Rate", "Index", "Count", "Value", "Volume", "Capacity", "Demand", "Supply", "Balance"]
_UNITS = ["", "", "(%)", "(EUR m)", "(kg/year)", "(000s)", "(t)", "(GWh)", "($)", "(per 1,000)"]
_GROUPS = ["Urban", "Rural", "Public", "Private", "Male", "Female", "Domestic", "Foreign"]


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _number(rng: random.Random, kind: str) -> str:
    if kind == "int":
        return f"{rng.randint(0, 2_000_000):,}"
    if kind == "small":
        return str(rng.randint(0, 999))
    if kind == "dec":
        return f"{rng.uniform(0, 999):.1f}"
    if kind == "pct":
        return f"{rng.uniform(0, 100):.1f}%"
    if kind == "neg":
        v = rng.uniform(-500, 500)
        return f"({abs(v):,.1f})" if v < 0 else f"{v:,.1f}"
    if kind == "money":
        return f"${rng.uniform(10, 99_999):,.2f}"
    return "-"


# ------------------------------------------------------------------- tables


@dataclass(slots=True)
class TableSpec:
    """What to draw: header rows as cells (with spans), body rows of strings ("\\n"
    makes a cell of several lines), per column "l" or "r", a style."""

    header: list[Cell]
    header_rows: int
    body: list[list[str]]
    align: list[str]
    style: str  # grid | booktabs | frame | zebra | header_fill | plain | group_rules[_open|_rows]
    size: float = 8.5
    group_rows: set[int] = field(default_factory=set)  # body rows holding one label only


def random_table(rng: random.Random, ncols: int, nrows: int, *, two_level: bool = False,
                 multiline: bool = False, groups: bool = False, style: str = "grid") -> TableSpec:
    label = rng.choice(["Region", "Item", "Category", "Sector", "Area", "Product"])
    kinds = [rng.choice(["int", "dec", "pct", "neg", "small", "money"]) for _ in range(ncols - 1)]
    names = [f"{rng.choice(_MEASURES)} {rng.choice(_UNITS)}".strip() for _ in range(ncols - 1)]
    header: list[Cell] = []
    header_rows = 1
    if two_level and ncols >= 4:
        header_rows = 2
        header.append(Cell(0, 0, 2, 1, label))
        col = 1
        while col < ncols:
            span = min(rng.choice([2, 2, 3]), ncols - col)
            if span == 1:
                header.append(Cell(0, col, 2, 1, names[col - 1]))
            else:
                header.append(Cell(0, col, 1, span, rng.choice(_MEASURES) + " " + rng.choice(_UNITS)))
                years = rng.sample(range(2005, 2024), span)
                sub = [str(y) for y in sorted(years)] if rng.random() < 0.6 else rng.sample(_GROUPS, span)
                for k in range(span):
                    header.append(Cell(1, col + k, 1, 1, sub[k]))
            col += span
        header = [Cell(c.row, c.col, c.rowspan, c.colspan, " ".join(c.text.split())) for c in header]
    else:
        header.append(Cell(0, 0, 1, 1, label))
        header += [Cell(0, k + 1, 1, 1, names[k]) for k in range(ncols - 1)]
    pool = rng.choice([_PLACES, _ITEMS])
    labels = rng.sample(pool, min(nrows, len(pool)))
    while len(labels) < nrows:
        labels.append(f"{rng.choice(pool)} {len(labels)}")
    body: list[list[str]] = []
    group_rows: set[int] = set()
    for r in range(nrows):
        if groups and r > 0 and r % rng.choice([4, 5]) == 0:
            group_rows.add(len(body))
            body.append([rng.choice(_GROUPS) + " " + rng.choice(["areas", "sector", "total"])] + [""] * (ncols - 1))
        first = labels[r]
        if multiline and rng.random() < 0.25:
            first = f"{first}\n{rng.choice(['and others', 'excluding ' + rng.choice(_WORDS), 'all types'])}"
        body.append([first] + [_number(rng, kinds[k]) for k in range(ncols - 1)])
    if rng.random() < 0.3:
        body.append(["Total"] + [_number(rng, kinds[k]) for k in range(ncols - 1)])
    align = ["l"] + ["r"] * (ncols - 1)
    return TableSpec(header, header_rows, body, align, style, rng.choice([7.5, 8.0, 8.5, 9.0]), group_rows)


def draw_table(page: Page, spec: TableSpec, x: float, top: float, page_index: int,
               max_width: float | None = None, like: TruthTable | None = None) -> TruthTable:
    """Draws ``spec`` with its top-left corner at ``(x, top)``; returns the truth.
    ``like``: use that table's column edges (a continuation on the next page)."""
    size = spec.size
    pad_x, pad_y = 4.0, 2.5 if spec.style != "plain" else 1.5
    leading = size * 1.2
    ncols = len(spec.align)
    nrows = spec.header_rows + len(spec.body)
    cells: list[Cell] = list(spec.header)
    for r, row in enumerate(spec.body):
        rr = spec.header_rows + r
        if r in spec.group_rows:
            cells.append(Cell(rr, 0, 1, 1, row[0]))
            continue
        cells += [Cell(rr, k, 1, 1, text) for k, text in enumerate(row)]
    fonts = {id(c): (BOLD if c.row < spec.header_rows or c.row - spec.header_rows in spec.group_rows else REGULAR) for c in cells}
    # column widths: the widest single-column cell; spanning cells widen their last column
    widths = [0.0] * ncols
    for c in cells:
        if c.colspan == 1:
            w = max(text_width(line, fonts[id(c)], size) for line in c.text.split("\n"))
            widths[c.col] = max(widths[c.col], w + 2 * pad_x)
    gap = 0.0 if spec.style in ("grid", "frame") else size * 1.6  # whitespace between columns
    for c in cells:
        if c.colspan > 1:
            w = max(text_width(line, fonts[id(c)], size) for line in c.text.split("\n")) + 2 * pad_x
            have = sum(widths[c.col : c.col + c.colspan]) + gap * (c.colspan - 1)
            if w > have:
                widths[c.col + c.colspan - 1] += w - have
    if max_width is not None:
        total = sum(widths) + gap * (ncols - 1)
        if total > max_width:  # squeeze the gaps first
            gap = max(size * 0.8, gap - (total - max_width) / max(ncols - 1, 1))
    lines_in = [1] * nrows
    for c in cells:
        if c.rowspan == 1:
            lines_in[c.row] = max(lines_in[c.row], c.text.count("\n") + 1)
    heights = [n * leading + 2 * pad_y for n in lines_in]
    xs = [x]
    for k, w in enumerate(widths):
        xs.append(xs[-1] + w + (gap if k < ncols - 1 else 0.0))
    if like is not None:
        xs, gap = list(like.columns), like.gap
    ys = [top]
    for h in heights:
        ys.append(ys[-1] + h)
    right, bottom = xs[-1], ys[-1]
    header_bottom = ys[spec.header_rows]
    # backgrounds first, text over them
    if spec.style == "zebra":
        for r in range(spec.header_rows, nrows):
            if (r - spec.header_rows) % 2 == 0:
                page.fill(x, ys[r], right, ys[r + 1], 0.88)
        page.fill(x, top, right, header_bottom, 0.75)
    if spec.style == "header_fill":
        page.fill(x, top, right, header_bottom, 0.8)
    ink: list[Box] = []
    for c in cells:
        x0 = xs[c.col]
        x1 = xs[c.col + c.colspan] - (gap if c.col + c.colspan < ncols else 0.0)
        y0 = ys[c.row]
        font = fonts[id(c)]
        for i, line in enumerate(c.text.split("\n")):
            w = text_width(line, font, size)
            if c.row < spec.header_rows and c.colspan > 1:
                tx = (x0 + x1 - w) / 2
            elif spec.align[c.col] == "r" and c.colspan == 1:
                tx = x1 - pad_x - w
            else:
                tx = x0 + pad_x
            if line:
                ink.append(page.text(tx, y0 + pad_y + i * leading, line, font, size))
    # rules
    if spec.style == "grid":
        for r in range(nrows + 1):
            for k in range(ncols):  # a horizontal rule segment per column, missing inside spans
                if 0 < r < nrows and any(
                    c.row < r < c.row + c.rowspan and c.col <= k < c.col + c.colspan for c in cells
                ):
                    continue
                page.line(xs[k], ys[r], xs[k + 1], ys[r])
        for k in range(ncols + 1):
            for r in range(nrows):
                if 0 < k < ncols and any(
                    c.col < k < c.col + c.colspan and c.row <= r < c.row + c.rowspan for c in cells
                ):
                    continue
                page.line(xs[k], ys[r], xs[k], ys[r + 1])
    elif spec.style in ("booktabs", "header_fill"):
        page.line(x, top, right, top, 0.8)
        page.line(x, header_bottom, right, header_bottom, 0.5)
        page.line(x, bottom, right, bottom, 0.8)
        if spec.header_rows == 2 and spec.style == "booktabs":
            for c in spec.header:
                if c.row == 0 and c.colspan > 1:  # a short rule under a spanning heading
                    page.line(xs[c.col] + 2, ys[1], xs[c.col + c.colspan] - gap - 2, ys[1], 0.4)
    elif spec.style == "frame":
        page.rect(x, top, right, bottom, 0.7)
        page.line(x, header_bottom, right, header_bottom, 0.5)
    elif spec.style.startswith("group_rules"):
        # statistical tables: vertical rules between column groups (where a first-row
        # heading starts) only, the columns inside a group parted by whitespace;
        # group_rules: a frame and a short rule under each group heading; _open: rules
        # above, under the headings and below only; _rows: a frame and a rule under each row
        if spec.style == "group_rules_open":
            for yy in (top, header_bottom, bottom):
                page.line(x, yy, right, yy, 0.6)
        else:
            page.rect(x, top, right, bottom, 0.7)
            page.line(x, header_bottom, right, header_bottom, 0.5)
        starts = sorted({c.col for c in spec.header if c.row == 0 and c.col > 0})
        for k in starts:
            page.line(xs[k] - gap / 2, top, xs[k] - gap / 2, bottom, 0.5)
        if spec.style == "group_rules":
            for c in spec.header:
                if c.row == 0 and c.colspan > 1 and c.rowspan == 1:
                    page.line(xs[c.col] - gap / 2, ys[1], xs[c.col + c.colspan] - gap / 2, ys[1], 0.4)
        if spec.style == "group_rules_rows":
            for r in range(spec.header_rows + 1, nrows):
                page.line(x, ys[r], right, ys[r], 0.3)
    if spec.style == "plain":
        bbox = (min(b[0] for b in ink), min(b[1] for b in ink), max(b[2] for b in ink), max(b[3] for b in ink))
    else:
        bbox = (x, top, right, bottom)
    return TruthTable(page_index, bbox, cells, spec.header_rows, style=spec.style, columns=xs, gap=gap)


# ----------------------------------------------------------------- page content


def paragraph(page: Page, rng: random.Random, x: float, top: float, width: float,
              lines: int, size: float = 10.0, font: str = SERIF, justify: bool = True) -> float:
    """Prose of ``lines`` lines in a column; returns the y below it."""
    leading = size * 1.3
    y = top
    pending = rng.choice(_WORDS).capitalize()
    for n in range(lines):
        line: list[str] = []
        while not line or text_width(" ".join([*line, pending]), font, size) <= width:
            line.append(pending)
            pending = rng.choice(_WORDS)
        last = n == lines - 1
        if last:
            line[-1] += "."
        if justify and not last and len(line) > 1:
            free = width - text_width(" ".join(line), font, size)
            space = text_width(" ", font, size) + free / (len(line) - 1)
            cx = x
            for word in line:
                page.text(cx, y, word, font, size)
                cx += text_width(word, font, size) + space
        else:
            page.text(x, y, " ".join(line), font, size)
        y += leading
    return y + leading * 0.6


def heading(page: Page, x: float, top: float, text: str, size: float = 13.0) -> float:
    page.text(x, top, text, BOLD, size)
    return top + size * 1.8


def caption(page: Page, rng: random.Random, x: float, top: float, number: int) -> float:
    text = f"Table {number}. {rng.choice(_MEASURES)} by {rng.choice(['region', 'sector', 'year', 'item'])}"
    page.text(x, top, text, BOLD, 9.5)
    return top + 16


def note(page: Page, rng: random.Random, x: float, top: float) -> float:
    page.text(x, top, "Source: " + _sentence(rng, 6), REGULAR, 7.0)
    return top + 14


# ---------------------------------------------------------------- the documents

MARGIN = 64.0


def _doc_single(rng: random.Random, name: str, style: str) -> Document:
    page = Page()
    y = heading(page, MARGIN, 60, _sentence(rng, 4)[:-1])
    y = paragraph(page, rng, MARGIN, y, 612 - 2 * MARGIN, rng.randint(2, 6))
    y = caption(page, rng, MARGIN, y, 1)
    spec = random_table(
        rng, rng.randint(3, 7), rng.randint(5, 14), two_level=rng.random() < 0.4,
        multiline=rng.random() < 0.4, groups=rng.random() < 0.3, style=style,
    )
    table = draw_table(page, spec, MARGIN, y, 0, 612 - 2 * MARGIN)
    y = note(page, rng, MARGIN, table.bbox[3] + 6)
    if y < 600:
        paragraph(page, rng, MARGIN, y + 8, 612 - 2 * MARGIN, rng.randint(2, 5))
    return Document(name, [page], [table], [f"table:{style}"])


def _doc_two_tables(rng: random.Random, name: str) -> Document:
    page = Page()
    y = heading(page, MARGIN, 60, _sentence(rng, 3)[:-1])
    tables = []
    for n in (1, 2):
        y = caption(page, rng, MARGIN, y, n)
        style = rng.choice(["grid", "booktabs", "plain", "zebra", "frame"])
        spec = random_table(rng, rng.randint(3, 6), rng.randint(4, 8), style=style)
        table = draw_table(page, spec, MARGIN, y, 0, 612 - 2 * MARGIN)
        tables.append(table)
        y = paragraph(page, rng, MARGIN, table.bbox[3] + 14, 612 - 2 * MARGIN, rng.randint(2, 3))
    return Document(name, [page], tables, ["table:two"])


def _doc_two_columns(rng: random.Random, name: str) -> Document:
    page = Page()
    col_w = (612 - 2 * MARGIN - 24) / 2
    left, right = MARGIN, MARGIN + col_w + 24
    y = heading(page, MARGIN, 56, _sentence(rng, 4)[:-1])
    paragraph(page, rng, left, y, col_w, rng.randint(28, 40), size=9.5)
    y2 = paragraph(page, rng, right, y, col_w, rng.randint(6, 12), size=9.5)
    y2 = caption(page, rng, right, y2, 1)
    style = rng.choice(["booktabs", "plain", "grid", "zebra"])
    spec = random_table(rng, rng.randint(2, 3), rng.randint(5, 10), style=style)
    spec.size = 8.0
    table = draw_table(page, spec, right, y2, 0, col_w)
    paragraph(page, rng, right, table.bbox[3] + 12, col_w, rng.randint(4, 10), size=9.5)
    return Document(name, [page], [table], [f"table:two-column:{style}"])


def _doc_continued(rng: random.Random, name: str) -> Document:
    style = rng.choice(["grid", "booktabs", "zebra", "plain", "frame"])
    spec = random_table(rng, rng.randint(3, 6), 60, style=style)
    spec.size = 9.0
    first, second = Page(), Page()
    y = heading(first, MARGIN, 60, _sentence(rng, 4)[:-1])
    y = paragraph(first, rng, MARGIN, y, 612 - 2 * MARGIN, rng.randint(3, 8))
    y = caption(first, rng, MARGIN, y, 1)
    row_h = spec.size * 1.2 + 5
    fits = max(3, int((740 - y) / row_h) - spec.header_rows - 1)
    body1, body2 = spec.body[:fits], spec.body[fits : fits + rng.randint(5, 20)]
    t1 = draw_table(first, TableSpec(spec.header, spec.header_rows, body1, spec.align, style, spec.size),
                    MARGIN, y, 0, 612 - 2 * MARGIN)
    repeat = rng.random() < 0.6
    header = spec.header if repeat else []
    spec2 = TableSpec(header, spec.header_rows if repeat else 0, body2, spec.align, style, spec.size)
    t2 = draw_table(second, spec2, MARGIN, 60, 1, 612 - 2 * MARGIN, like=t1)
    t2.continued_from = 0
    paragraph(second, rng, MARGIN, t2.bbox[3] + 18, 612 - 2 * MARGIN, rng.randint(3, 8))
    first.text(MARGIN, 760, "Continued on next page", REGULAR, 7)
    return Document(name, [first, second], [t1, t2], [f"table:continued:{style}"] * 2)


def _doc_sideways(rng: random.Random, name: str) -> Document:
    """A wide table set sideways on a portrait page (no /Rotate): read bottom to top."""
    page = Page(792, 612, rotate=90, sideways=True)
    y = heading(page, MARGIN, 50, _sentence(rng, 4)[:-1])
    style = rng.choice(["grid", "booktabs", "plain", "zebra"])
    spec = random_table(rng, rng.randint(5, 8), rng.randint(6, 12), two_level=rng.random() < 0.4, style=style)
    table = draw_table(page, spec, MARGIN, y + 6, 0, 792 - 2 * MARGIN)
    table.bbox = page.shown(table.bbox)
    return Document(name, [page], [table], [f"table:sideways:{style}"])


def _doc_rotated(rng: random.Random, name: str) -> Document:
    page = Page(792, 612, rotate=90)
    y = heading(page, MARGIN, 50, _sentence(rng, 4)[:-1])
    style = rng.choice(["grid", "booktabs", "zebra", "plain"])
    spec = random_table(rng, rng.randint(6, 9), rng.randint(6, 14), two_level=rng.random() < 0.5, style=style)
    table = draw_table(page, spec, MARGIN, y + 6, 0, 792 - 2 * MARGIN)
    return Document(name, [page], [table], [f"table:rotated:{style}"])


# negatives ----------------------------------------------------------------------


def _doc_prose(rng: random.Random, name: str) -> Document:
    page = Page()
    y = heading(page, MARGIN, 60, _sentence(rng, 5)[:-1])
    if rng.random() < 0.5:
        while y < 680:
            y = paragraph(page, rng, MARGIN, y, 612 - 2 * MARGIN, rng.randint(4, 9), justify=rng.random() < 0.7)
    else:
        col_w = (612 - 2 * MARGIN - 24) / 2
        for x in (MARGIN, MARGIN + col_w + 24):
            yy = y
            while yy < 680:
                yy = paragraph(page, rng, x, yy, col_w, rng.randint(5, 10), size=9.5)
    page.text(300, 760, str(rng.randint(2, 99)), REGULAR, 8)
    return Document(name, [page], [], ["none:prose"])


def _doc_list(rng: random.Random, name: str) -> Document:
    page = Page()
    y = heading(page, MARGIN, 60, _sentence(rng, 3)[:-1])
    y = paragraph(page, rng, MARGIN, y, 612 - 2 * MARGIN, 3)
    numbered = rng.random() < 0.5
    for i in range(rng.randint(8, 16)):
        marker = f"{i + 1}." if numbered else "-"
        page.text(MARGIN + 10, y, marker, REGULAR, 10)
        lines = rng.randint(1, 2)
        for _k in range(lines):
            page.text(MARGIN + 30, y, " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 12))), SERIF, 10)
            y += 13
        y += 3
    return Document(name, [page], [], ["none:list"])


def _doc_toc(rng: random.Random, name: str) -> Document:
    page = Page()
    y = heading(page, MARGIN, 60, "Contents", 16)
    number = 1
    for chapter in range(rng.randint(4, 7)):
        title = f"{chapter + 1} " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 5))).title()
        for level, text in [(0, title)] + [
            (1, f"{chapter + 1}.{s + 1} " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 6))))
            for s in range(rng.randint(1, 4))
        ]:
            x = MARGIN + 18 * level
            font = BOLD if level == 0 else REGULAR
            page.text(x, y, text, font, 10)
            end = x + text_width(text, font, 10) + 4
            num = str(number)
            nx = 612 - MARGIN - text_width(num, REGULAR, 10)
            dots = ""
            while end + text_width(dots + " .", REGULAR, 10) < nx - 6:
                dots += " ."
            page.text(end, y, dots, REGULAR, 10)
            page.text(nx, y, num, REGULAR, 10)
            number += rng.randint(1, 6)
            y += 15
        y += 5
    return Document(name, [page], [], ["none:toc"])


def _doc_form(rng: random.Random, name: str) -> Document:
    page = Page()
    y = heading(page, MARGIN, 60, "Application form", 15)
    fields = ["Surname", "First name", "Date of birth", "Address", "Postcode", "Telephone",
              "E-mail", "Account number", "Signature", "Date"]
    for label in fields:
        page.text(MARGIN, y + 3, label, REGULAR, 10)
        page.rect(MARGIN + 120, y, 612 - MARGIN, y + 18, 0.6)
        y += 28
    y += 10
    page.text(MARGIN, y, "Tick where applicable:", BOLD, 10)
    y += 18
    for opt in rng.sample(["Employed", "Self-employed", "Student", "Retired", "Other"], 4):
        page.rect(MARGIN, y, MARGIN + 9, y + 9, 0.6)
        page.text(MARGIN + 16, y, opt, REGULAR, 10)
        y += 16
    return Document(name, [page], [], ["none:form"])


def _doc_chart(rng: random.Random, name: str) -> Document:
    page = Page()
    y = heading(page, MARGIN, 60, f"Figure 1. {rng.choice(_MEASURES)} by year")
    x0, y0, x1, y1 = MARGIN + 40, y + 10, 612 - MARGIN, y + 300
    page.line(x0, y0, x0, y1, 0.8)
    page.line(x0, y1, x1, y1, 0.8)
    top = rng.choice([100, 250, 500, 1000])
    for i in range(6):  # gridlines and tick labels
        yy = y1 - (y1 - y0) * i / 5
        page.line(x0, yy, x1, yy, 0.3)
        label = str(top * i // 5)
        page.text(x0 - 6 - text_width(label, REGULAR, 8), yy - 4, label, REGULAR, 8)
    years = list(range(2010, 2010 + rng.randint(6, 11)))
    step = (x1 - x0) / len(years)
    for i, year in enumerate(years):
        h = (y1 - y0) * rng.uniform(0.1, 0.95)
        page.fill(x0 + i * step + step * 0.2, y1 - h, x0 + i * step + step * 0.8, y1, 0.5)
        page.text(x0 + i * step + step * 0.2, y1 + 4, str(year), REGULAR, 8)
    paragraph(page, rng, MARGIN, y1 + 40, 612 - 2 * MARGIN, rng.randint(4, 8))
    return Document(name, [page], [], ["none:chart"])


def generate(seed: int = 0, count: int = 60) -> list[Document]:
    """``count`` documents from ``seed``: about two in three hold tables, the rest must
    yield none."""
    rng = random.Random(seed)
    makers = [
        ("grid", lambda r, n: _doc_single(r, n, "grid")),
        ("booktabs", lambda r, n: _doc_single(r, n, "booktabs")),
        ("plain", lambda r, n: _doc_single(r, n, "plain")),
        ("zebra", lambda r, n: _doc_single(r, n, "zebra")),
        ("frame", lambda r, n: _doc_single(r, n, "frame")),
        ("header_fill", lambda r, n: _doc_single(r, n, "header_fill")),
        ("two_tables", _doc_two_tables),
        ("two_columns", _doc_two_columns),
        ("continued", _doc_continued),
        ("rotated", _doc_rotated),
        ("sideways", _doc_sideways),
        ("prose", _doc_prose),
        ("list", _doc_list),
        ("toc", _doc_toc),
        ("form", _doc_form),
        ("chart", _doc_chart),
    ]
    docs = []
    for i in range(count):
        kind, make = makers[i % len(makers)]
        docs.append(make(random.Random(rng.getrandbits(32)), f"s{seed}-{i:03d}-{kind}"))
    return docs


def write_set(folder: str | Path, seed: int = 0, count: int = 60) -> list[Path]:
    """Writes each generated document as ``NAME.pdf`` with its truth ``NAME.json``;
    returns the PDF paths."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for doc in generate(seed, count):
        pdf = target / f"{doc.name}.pdf"
        pdf.write_bytes(doc.pdf())
        (target / f"{doc.name}.json").write_text(json.dumps(doc.truth(), indent=1), encoding="utf-8")
        out.append(pdf)
    return out
