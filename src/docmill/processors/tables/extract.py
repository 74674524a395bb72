"""Tables on a PDF page, from PDFium's characters and vector graphics (no ML, no raster).

Two detectors, tried in this order on every page:

* **ruled** (the idea of camelot's *lattice*): the page's axis-aligned path segments
  (lines, rectangle edges, thin filled bars) are merged into horizontal and vertical
  rulings; rulings that cross form a grid; each connected grid with at least two rulings
  each way is a table whose rows and columns are the distinct ruling positions. A cell
  whose inner ruling is missing spans: its text is put in the **top-left grid cell of the
  span and the other cells of the span are left empty** (as tabula does).
* **unruled** (the idea of camelot's *stream*): characters outside ruled tables are
  grouped into chunks (split at gaps wider than half the line height) and text lines;
  runs of at least three lines with two or more chunks form a block; the block's columns
  are the x-intervals its chunks cover (whitespace columns separate them). Each text line
  is a row; a chunk spanning columns goes to the first column it covers.

Coordinates are **PDF points with a top-left origin**: ``bbox = [x0, y0, x1, y1]``,
``x`` to the right and ``y`` downwards from the top of the page's crop box.
``header_rows`` is a guess: the leading rows with no numeric cell above rows that have
some (at most 5), else 1 when the first row is complete, else 0.

Everything here is pure: functions of a page's characters and segments.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from docmill.model import ProcessOutcome
from docmill.model.tables import cells_of, table_entry
from docmill.processors.pdf.geometry import (
    Box,
    Char,
    page_chars,
    page_frame,
    page_segments,
)
from docmill.processors.registry import ExtractRequest

SNAP = 2.0  # rulings this close (points) are the same ruling
MIN_RULING = 4.0
MAX_CELLS = 40_000  # larger grids are drawings, not tables  # shorter segments are glyph parts or dots, not rulings

@dataclass(slots=True)
class Table:
    """One table: 0-based page index, bbox (top-left origin, points), cell strings."""

    page: int
    bbox: Box
    rows: list[list[str]]
    header_rows: int = 0
    kind: str = "ruled"  # "ruled" | "unruled"

    def to_dict(self) -> dict[str, Any]:
        """The record's table entry (:mod:`docmill.model.tables`)."""
        return table_entry(
            self.page, cells_of(self.rows), bbox=self.bbox, header_rows=self.header_rows
        )


@dataclass(slots=True)
class _Ruling:
    pos: float  # y of a horizontal ruling, x of a vertical one
    start: float
    end: float
    group: int = field(default=-1)


# ---------------------------------------------------------------- ruled tables


def _merge_rulings(segs: Iterable[tuple[float, float, float]]) -> list[_Ruling]:
    """(pos, start, end) segments -> rulings: same position within SNAP, overlapping or
    touching spans joined. Thin filled bars give two close segments: one ruling."""
    rulings: list[_Ruling] = []
    for pos, start, end in sorted(segs):
        for r in reversed(rulings[-8:]):
            if abs(r.pos - pos) <= SNAP and start <= r.end + SNAP and end >= r.start - SNAP:
                r.start, r.end = min(r.start, start), max(r.end, end)
                break
        else:
            rulings.append(_Ruling(pos, start, end))
    return [r for r in rulings if r.end - r.start >= MIN_RULING]


def _cluster(values: Iterable[float], tol: float = SNAP) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if out and v - out[-1] <= tol:
            continue
        out.append(v)
    return out


def ruled_tables(segments: Sequence[Box], chars: Sequence[Char], page: int) -> list[Table]:
    """Tables framed by rulings: connected grids of crossing horizontal and vertical
    rulings, at least two each way."""
    hsegs = [((s[1] + s[3]) / 2, s[0], s[2]) for s in segments if s[3] - s[1] <= 1.0]
    vsegs = [((s[0] + s[2]) / 2, s[1], s[3]) for s in segments if s[2] - s[0] <= 1.0]
    hs, vs = _merge_rulings(hsegs), _merge_rulings(vsegs)
    if len(hs) < 2 or len(vs) < 2:
        return []
    # union-find over rulings that cross (with SNAP tolerance)
    parent = list(range(len(hs) + len(vs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, h in enumerate(hs):
        for j, v in enumerate(vs):
            if (
                v.start - SNAP <= h.pos <= v.end + SNAP
                and h.start - SNAP <= v.pos <= h.end + SNAP
            ):
                parent[find(i)] = find(len(hs) + j)
    groups: dict[int, tuple[list[_Ruling], list[_Ruling]]] = {}
    for i, h in enumerate(hs):
        groups.setdefault(find(i), ([], []))[0].append(h)
    for j, v in enumerate(vs):
        groups.setdefault(find(len(hs) + j), ([], []))[1].append(v)
    tables: list[Table] = []
    for gh, gv in groups.values():
        table = _grid_table(gh, gv, chars, page)
        if table is not None:
            tables.append(table)
    tables.sort(key=lambda t: (t.bbox[1], t.bbox[0]))
    return tables


def _grid_table(
    hs: list[_Ruling], vs: list[_Ruling], chars: Sequence[Char], page: int
) -> Table | None:
    ys = _cluster(h.pos for h in hs)
    xs = _cluster(v.pos for v in vs)
    if len(ys) < 2 or len(xs) < 2:
        return None
    x0, x1 = min(xs[0], min(h.start for h in hs)), max(xs[-1], max(h.end for h in hs))
    y0, y1 = min(ys[0], min(v.start for v in vs)), max(ys[-1], max(v.end for v in vs))
    if x1 - x0 < 10 or y1 - y0 < 6:
        return None
    # an outer frame may be missing: the grid runs from the extreme ruling ends
    if x0 < xs[0] - SNAP:
        xs.insert(0, x0)
    if x1 > xs[-1] + SNAP:
        xs.append(x1)
    if y0 < ys[0] - SNAP:
        ys.insert(0, y0)
    if y1 > ys[-1] + SNAP:
        ys.append(y1)
    nrows, ncols = len(ys) - 1, len(xs) - 1
    if nrows * ncols > MAX_CELLS:
        return None
    v_at = _by_edge(vs, xs)
    h_at = _by_edge(hs, ys)

    def has_v(c: int, ya: float, yb: float) -> bool:
        mid = (ya + yb) / 2
        return any(v.start - SNAP <= mid <= v.end + SNAP for v in v_at[c])

    def has_h(r: int, xa: float, xb: float) -> bool:
        mid = (xa + xb) / 2
        return any(h.start - SNAP <= mid <= h.end + SNAP for h in h_at[r])

    # owner[r][c]: the top-left grid cell of the merged cell (r, c) belongs to
    owner = [[(r, c) for c in range(ncols)] for r in range(nrows)]
    for r in range(nrows):
        for c in range(ncols):
            if c > 0 and not has_v(c, ys[r], ys[r + 1]):
                owner[r][c] = owner[r][c - 1]
            if r > 0 and not has_h(r, xs[c], xs[c + 1]):
                above = owner[r - 1][c]
                if owner[r][c] == (r, c) or above[1] <= owner[r][c][1]:
                    owner[r][c] = above
    buckets: dict[tuple[int, int], list[Char]] = {}
    for ch in chars:
        cx, cy = (ch.x0 + ch.x1) / 2, (ch.y0 + ch.y1) / 2
        if not (xs[0] <= cx <= xs[-1] and ys[0] <= cy <= ys[-1]):
            continue
        c = _index(xs, cx)
        r = _index(ys, cy)
        buckets.setdefault(owner[r][c], []).append(ch)
    if not buckets:
        return None
    rows = [["" for _ in range(ncols)] for _ in range(nrows)]
    for (r, c), cell in buckets.items():
        rows[r][c] = _cell_text(cell)
    rows, _keep = _drop_empty(rows)
    if not rows or (len(rows) < 2 and len(rows[0]) < 2):
        return None
    return Table(page, (xs[0], ys[0], xs[-1], ys[-1]), rows, _header_guess(rows), "ruled")


def _by_edge(rulings: Sequence[_Ruling], edges: Sequence[float]) -> list[list[_Ruling]]:
    """For each grid edge, the rulings lying on it."""
    out: list[list[_Ruling]] = [[] for _ in edges]
    for r in rulings:
        i = _index([*edges, edges[-1]], r.pos)
        for j in (i, i + 1):
            if j < len(edges) and abs(edges[j] - r.pos) <= SNAP:
                out[j].append(r)
    return out


def _index(edges: Sequence[float], v: float) -> int:
    """The grid interval ``v`` falls in: the last ``i <= len(edges) - 2`` with
    ``edges[i] <= v`` (0 when none is)."""
    return min(max(bisect_right(edges, v) - 1, 0), len(edges) - 2)


def _drop_empty(rows: list[list[str]]) -> tuple[list[list[str]], list[int]]:
    """Rows and columns with no text at all are left out (grid lines of decoration)."""
    rows = [row for row in rows if any(row)]
    if not rows:
        return [], []
    keep = [c for c in range(len(rows[0])) if any(row[c] for row in rows)]
    return [[row[c] for c in keep] for row in rows], keep


def _cell_text(chars: Sequence[Char]) -> str:
    lines = _lines(chars)
    return "\n".join(_line_text(line) for line in lines).strip()


def _lines(chars: Sequence[Char]) -> list[list[Char]]:
    """Characters grouped into text lines (vertical overlap), each sorted by x."""
    out: list[list[Char]] = []
    bands: list[list[float]] = []
    for ch in sorted(chars, key=lambda c: (c.y0 + c.y1) / 2):
        mid = (ch.y0 + ch.y1) / 2
        if bands and bands[-1][0] <= mid <= bands[-1][1]:
            out[-1].append(ch)
            bands[-1][1] = max(bands[-1][1], min(ch.y1, mid + (ch.y1 - ch.y0) * 0.3))
        else:
            out.append([ch])
            h = max(ch.y1 - ch.y0, 1.0)
            bands.append([mid - h * 0.35, mid + h * 0.35])
    for line in out:
        line.sort(key=lambda c: c.x0)
    return out


def _line_text(line: Sequence[Char]) -> str:
    parts: list[str] = []
    prev: Char | None = None
    for ch in line:
        if prev is not None and ch.text != " " and prev.text != " ":
            h = max(ch.y1 - ch.y0, prev.y1 - prev.y0, 1.0)
            if ch.x0 - prev.x1 > 0.6 * h:
                parts.append(" ")
        parts.append(ch.text)
        prev = ch
    # PDFium's "\x02" is a hyphen that broke a word at a line end
    return re.sub(r" {2,}", " ", "".join(parts).replace("\x02", "-")).strip()


# ---------------------------------------------------------------- unruled tables


@dataclass(slots=True)
class _Chunk:
    x0: float
    y0: float
    x1: float
    y1: float
    chars: list[Char]


def _chunks(line: Sequence[Char]) -> list[_Chunk]:
    """A text line split where the gap between glyphs is over half the line height."""
    out: list[_Chunk] = []
    for ch in line:
        if ch.text.isspace():
            if out:
                out[-1].chars.append(ch)
            continue
        h = max(ch.y1 - ch.y0, 1.0)
        if out and ch.x0 - out[-1].x1 <= 0.6 * max(h, out[-1].y1 - out[-1].y0):
            c = out[-1]
            c.x1, c.y0, c.y1 = max(c.x1, ch.x1), min(c.y0, ch.y0), max(c.y1, ch.y1)
            c.chars.append(ch)
        else:
            out.append(_Chunk(ch.x0, ch.y0, ch.x1, ch.y1, [ch]))
    return out


def unruled_tables(chars: Sequence[Char], page: int, exclude: Sequence[Box] = ()) -> list[Table]:
    """Whitespace-aligned tables among ``chars`` outside the ``exclude`` boxes."""
    free = [
        ch
        for ch in chars
        if not any(
            b[0] - 1 <= (ch.x0 + ch.x1) / 2 <= b[2] + 1 and b[1] - 1 <= (ch.y0 + ch.y1) / 2 <= b[3] + 1
            for b in exclude
        )
    ]
    lines = [c for c in (_chunks(line) for line in _lines(free)) if c]
    if len(lines) < 3:
        return []
    heights = sorted(min(ch.y1 - ch.y0 for ch in ln[0].chars) for ln in lines)
    line_h = max(heights[len(heights) // 2], 1.0)
    blocks: list[list[list[_Chunk]]] = []
    current: list[list[_Chunk]] = []
    for ln in lines:
        multi = len(ln) >= 2
        gap_ok = bool(current) and ln[0].y0 - max(c.y1 for c in current[-1]) <= 1.6 * line_h
        if multi and current and gap_ok:
            current.append(ln)
        elif multi:
            if current:
                blocks.append(current)
            current = [ln]
        elif current and gap_ok and _fits_inside(ln[0], current):
            current.append(ln)  # a wrapped cell or a note inside the table
        else:
            if current:
                blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    tables: list[Table] = []
    for block in blocks:
        while block and len(block[-1]) < 2:
            block.pop()  # trailing single-chunk lines belong after the table
        table = _block_table(block, page)
        if table is not None:
            tables.append(table)
    return tables


def _fits_inside(chunk: _Chunk, block: list[list[_Chunk]]) -> bool:
    left = min(ln[0].x0 for ln in block)
    right = max(ln[-1].x1 for ln in block)
    return chunk.x1 - chunk.x0 < 0.5 * (right - left) and chunk.x0 >= left - 5


def _block_table(block: list[list[_Chunk]], page: int) -> Table | None:
    multi = [ln for ln in block if len(ln) >= 2]
    if len(multi) < 3:
        return None
    counts = Counter(len(ln) for ln in multi)
    mode = max(counts, key=lambda k: (counts[k], k))
    columns = _column_spans([c for ln in multi for c in ln])
    if len(columns) < mode:
        columns = _column_spans([c for ln in multi if len(ln) >= mode for c in ln])
    if len(columns) < 2:
        return None
    texts = [_line_text(c.chars) for ln in block for c in ln]
    if sum(len(t) for t in texts) / len(texts) > 40:
        return None  # prose in columns, not a table
    rows: list[list[str]] = []
    for ln in block:
        row = [""] * len(columns)
        for chunk in ln:
            col = _column_of(chunk, columns)
            text = _line_text(chunk.chars)
            row[col] = f"{row[col]} {text}".strip() if row[col] else text
        rows.append(row)
    rows, _keep = _drop_empty(rows)
    if len(rows) < 3 or len(rows[0]) < 2:
        return None
    filled = sum(1 for row in rows for cell in row if cell)
    if filled < 0.4 * len(rows) * len(rows[0]):
        return None  # mostly empty: scattered text, not a grid
    x0 = min(c.x0 for ln in block for c in ln)
    x1 = max(c.x1 for ln in block for c in ln)
    y0 = min(c.y0 for c in block[0])
    y1 = max(c.y1 for c in block[-1])
    return Table(page, (x0, y0, x1, y1), rows, _header_guess(rows), "unruled")


def _column_spans(chunks: Sequence[_Chunk]) -> list[tuple[float, float]]:
    """Union of the chunks' x-intervals: each interval is a column."""
    spans: list[list[float]] = []
    for c in sorted(chunks, key=lambda c: c.x0):
        if spans and c.x0 <= spans[-1][1] + 1.0:
            spans[-1][1] = max(spans[-1][1], c.x1)
        else:
            spans.append([c.x0, c.x1])
    return [(a, b) for a, b in spans]


def _column_of(chunk: _Chunk, columns: Sequence[tuple[float, float]]) -> int:
    best, best_overlap = 0, -1e9
    for i, (a, b) in enumerate(columns):
        overlap = min(b, chunk.x1) - max(a, chunk.x0)
        if overlap > best_overlap + 0.5:
            best, best_overlap = i, overlap
    return best


# ---------------------------------------------------------------- header guess

_NUMERIC = re.compile(r"^[\s$€£¥%()+\-−–.,:/\d*]+$")


def _is_numeric(cell: str) -> bool:
    return bool(cell) and any(ch.isdigit() for ch in cell) and bool(_NUMERIC.match(cell))


def _header_guess(rows: Sequence[Sequence[str]]) -> int:
    numeric_rows = [any(_is_numeric(c) for c in row) for row in rows]
    if any(numeric_rows):
        lead = 0
        while lead < len(rows) and not numeric_rows[lead]:
            lead += 1
        if 0 < lead <= 5 and lead < len(rows):
            return lead
        return 0
    return 1 if len(rows) > 1 and all(rows[0]) else 0


# ---------------------------------------------------------------- entry points


def find_tables(page: Any, textpage: Any, page_index: int) -> list[Table]:
    """Tables on one pypdfium2 page (ruled first, then unruled text outside them)."""
    frame = page_frame(page)
    chars = page_chars(textpage, frame)
    if not chars:
        return []
    ruled = ruled_tables(page_segments(page, frame), chars, page_index)
    unruled = unruled_tables(chars, page_index, [t.bbox for t in ruled])
    return sorted(ruled + unruled, key=lambda t: (t.bbox[1], t.bbox[0]))


def tables_in_pdf(path: str, pages: Iterable[int] | None = None) -> list[Table]:
    """Every table of a PDF file (or of the given 0-based pages): for tools and benches."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(path)
    try:
        out: list[Table] = []
        for index in pages if pages is not None else range(len(doc)):
            page = doc[index]
            try:
                textpage = page.get_textpage()
                try:
                    out.extend(find_tables(page, textpage, index))
                finally:
                    textpage.close()
            finally:
                page.close()
        return out
    finally:
        doc.close()


class PageTables:
    """Collects the tables of an extraction's pages when ``request.options.tables`` is
    on (the stage is reported as ``tables`` once); a page whose table step raises keeps
    its text and is listed in ``metadata["table_errors"]``."""

    def __init__(self, request: ExtractRequest) -> None:
        self.on = bool(request.options.tables)
        self._report = request.on_stage
        self._started = False
        self.tables: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def add(self, page: Any, textpage: Any, index: int) -> None:
        if not self.on:
            return
        if not self._started:
            self._started = True
            self._report("tables")
        try:
            self.tables.extend(t.to_dict() for t in find_tables(page, textpage, index))
        except MemoryError:
            raise
        except Exception as exc:  # one page's tables must not cost the document
            self.errors.append({"page": index, "error": f"{type(exc).__name__}: {exc}"[:300]})

    def into(self, outcome: ProcessOutcome) -> ProcessOutcome:
        if self.on:
            outcome.extra["tables"] = self.tables
            outcome.metadata["table_errors"] = self.errors
        return outcome
