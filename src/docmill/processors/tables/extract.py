"""Tables on a PDF page, from PDFium's characters and vector graphics (no ML, no raster).

The page is read once (:mod:`docmill.processors.pdf.geometry`: characters, rule
segments, filled areas), its rules merged (:mod:`.rulings`), its tables found
(:mod:`.detect`: ruled grids, then text that lines up in columns) and each one's cells
built (:mod:`.structure`: rows, columns, spans, no filler). A table that runs on from
the end of one page to the top of the next with the same columns is marked
``continued_from`` (:class:`PageTables`).

Coordinates are **PDF points with a top-left origin**: ``bbox = [x0, y0, x1, y1]``,
``x`` to the right and ``y`` downwards from the top of the page's crop box, turned by
``/Rotate``. ``header_rows`` is a guess: the leading rows above the first row with a
number (at most 5), else 1 when the first row is complete.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from docmill.model import ProcessOutcome
from docmill.model.tables import Cell, complete_cells, rows_of, table_entry
from docmill.processors.pdf.geometry import Box, Char, page_chars, page_frame, page_paths
from docmill.processors.registry import ExtractRequest
from docmill.processors.tables import sideways
from docmill.processors.tables.detect import find_grids
from docmill.processors.tables.rulings import rulings
from docmill.processors.tables.text import group_lines


@dataclass(slots=True)
class Table:
    """One table: 0-based page index, bbox (top-left origin, points), its cells."""

    page: int
    bbox: Box
    cells: list[Cell]
    header_rows: int = 0
    kind: str = "ruled"  # "ruled" | "unruled"
    columns: list[float] = field(default_factory=list)  # column edges (x), left to right
    continued_from: int | None = None

    @property
    def rows(self) -> list[list[str]]:
        """The plain grid: a cell's text at its first position, "" elsewhere."""
        return rows_of(self.cells)

    def to_dict(self) -> dict[str, Any]:
        """The record's table entry (:mod:`docmill.model.tables`)."""
        return table_entry(
            self.page, self.cells, bbox=self.bbox, header_rows=self.header_rows,
            continued_from=self.continued_from,
        )


def find_tables(page: Any, textpage: Any, page_index: int) -> list[Table]:
    """Tables on one pypdfium2 page, top to bottom."""
    return read_page(page, textpage, page_index)[0]


def read_page(page: Any, textpage: Any, page_index: int) -> tuple[list[Table], Extent]:
    """The page's tables, and where its text lines are (for joining continued tables)."""
    frame = page_frame(page)
    width, height = frame.right - frame.left, frame.top - frame.bottom
    if frame.rotation in (90, 270):
        width, height = height, width
    chars = page_chars(textpage, frame)
    if not chars:
        return [], Extent(page_index, height, [])
    paths = page_paths(page, frame)
    tables = tables_of(chars, paths.rules, page_index, width, height, paths.drawings)
    lines = (
        [(min(c.y0 for c in ln), max(c.y1 for c in ln)) for ln in group_lines(chars) if ln]
        if tables
        else []  # only a page with tables can end or continue one
    )
    return tables, Extent(page_index, height, lines)


def tables_of(
    chars: list[Char], segments: list[Box], page_index: int, width: float, height: float = 0.0,
    drawings: Sequence[Box] = (),
) -> list[Table]:
    """The tables of one page's characters and rule segments (pure). Text set sideways
    (a table turned a quarter on an upright page) is read in its own upright frame when
    it makes up a good part of the page."""
    if height <= 0:
        height = max([c.y1 for c in chars] + [s[3] for s in segments]) + 1.0
    size = (width, height)
    out: list[Table] = []
    for turn, group in sideways.by_direction(chars).items():
        if turn == 0:
            grids = find_grids(group, rulings(segments), width, drawings)
            out += [_table(g, page_index, g.bbox) for g in grids]
            continue
        turned = [sideways.turn_char(c, turn, size) for c in group]
        lines = [sideways.turn_box(s, turn, size) for s in segments]
        marks = [sideways.turn_box(d, turn, size) for d in drawings]
        for g in find_grids(turned, rulings(lines), size[1], marks):
            out.append(_table(g, page_index, sideways.unturn_box(g.bbox, turn, size), turn))
    out.sort(key=lambda t: (t.bbox[1], t.bbox[0]))
    return out


def _table(grid: Any, page_index: int, bbox: Box, turn: int = 0) -> Table:
    columns = grid.columns if turn == 0 else []  # a turned table is not joined across pages
    return Table(
        page_index, bbox, complete_cells(grid.cells), grid.header_rows,
        "ruled" if grid.ruled else "unruled", columns,
    )


def tables_in_pdf(path: str, pages: Iterable[int] | None = None) -> list[Table]:
    """Every table of a PDF file (or of the given 0-based pages): for tools and benches.
    Tables continued across the pages read are marked as the engine marks them."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(path)
    try:
        joiner = Continuations()
        out: list[Table] = []
        for index in pages if pages is not None else range(len(doc)):
            page = doc[index]
            try:
                textpage = page.get_textpage()
                try:
                    found, extent = read_page(page, textpage, index)
                    joiner.page(found, extent)
                    out.extend(found)
                finally:
                    textpage.close()
            finally:
                page.close()
        return out
    finally:
        doc.close()


# ---------------------------------------------------------------- continued tables


@dataclass(slots=True)
class Extent:
    """What of a page a continued table must be near: the page's height and the
    vertical extents of its text lines."""

    page: int
    height: float
    lines: list[tuple[float, float]]  # (y0, y1) of each text line, top to bottom


class Continuations:
    """Marks a page's first table ``continued_from`` the page before when that page's
    last table ends its text (at most :data:`SLACK` lines below it), this table starts
    the page's text (at most that many above it) and both have the same columns (edges
    within 3 % of the width, or a repeated heading row)."""

    SLACK = 3

    def __init__(self) -> None:
        self._last: Table | None = None
        self._ends_page = False

    def page(self, tables: list[Table], extent: Extent) -> None:
        if tables and self._last is not None and self._ends_page:
            first = tables[0]
            above = sum(1 for a, b in extent.lines if b <= first.bbox[1] + 1)
            if above <= self.SLACK and first.page == self._last.page + 1 and same_columns(self._last, first):
                first.continued_from = self._last.page
        if tables:
            last = tables[-1]
            below = sum(1 for a, b in extent.lines if a >= last.bbox[3] - 1)
            self._last, self._ends_page = last, below <= self.SLACK
        else:
            self._last, self._ends_page = None, False


def same_columns(before: Table, after: Table) -> bool:
    a, b = before.columns, after.columns
    if len(a) != len(b) or len(a) < 3:
        return False
    width = max(a[-1] - a[0], b[-1] - b[0], 1.0)
    if all(abs(x - y) <= 0.03 * width for x, y in zip(a, b, strict=True)):
        return True
    head = before.header_rows
    return head > 0 and before.rows[:head] == after.rows[:head]


class PageTables:
    """Collects the tables of an extraction's pages when ``request.options.tables`` is
    on (the stage is reported as ``tables`` once); a page whose table step raises keeps
    its text and is listed in ``metadata["table_errors"]``. A table continued from the
    page before is marked ``continued_from`` (pages of one task only: a split document's
    ranges are not joined)."""

    def __init__(self, request: ExtractRequest) -> None:
        self.on = bool(request.options.tables)
        self._report = request.on_stage
        self._started = False
        self._joiner = Continuations()
        self.tables: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def add(self, page: Any, textpage: Any, index: int) -> None:
        if not self.on:
            return
        if not self._started:
            self._started = True
            self._report("tables")
        try:
            with _collector_paused():
                found, extent = read_page(page, textpage, index)
            self._joiner.page(found, extent)
            self.tables.extend(t.to_dict() for t in found)
        except MemoryError:
            raise
        except Exception as exc:  # one page's tables must not cost the document
            self.errors.append({"page": index, "error": f"{type(exc).__name__}: {exc}"[:300]})

    def boxes(self, index: int) -> list[Box]:
        """The bboxes of the tables found so far on page ``index`` (for the Markdown,
        which leaves their text out of the prose)."""
        out: list[Box] = []
        for table in reversed(self.tables):  # the page's tables are the last ones added
            if table.get("page") != index:
                break
            bbox = table.get("bbox")
            if bbox and len(bbox) == 4:
                out.append((float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])))
        return out[::-1]

    def into(self, outcome: ProcessOutcome) -> ProcessOutcome:
        if self.on:
            outcome.extra["tables"] = self.tables
            outcome.metadata["table_errors"] = self.errors
        return outcome


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a page's tables are read: that
    makes tens of thousands of objects (characters, chunks, cells) that live until it
    ends and form no cycles, and the collections their number sets off cost ~7 % of
    the stage on a dense page. Resumed (when it was on) however the page ends."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
