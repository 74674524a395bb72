"""A table's structure from one region of the page: its columns, rows and cells.

Given the region a detector found (:mod:`~docmill.processors.tables.detect`) with the
rules that lie in it, the grid is built the same way for ruled and unruled tables:

* **columns**: every vertical rule in the region is a column edge; between two, a
  whitespace edge is added where the text leaves a vertical strip empty in every line
  of the band (a ruled band: no line may cross it and at least three lines must have
  text on both sides, except heading lines over an edge that parts the sub-headings
  (columns parted by whitespace inside a ruled column group); an unruled region: a few lines, spanning headings, may cross it;
  two such edges with no text between them, where one heading ends and the next
  starts, are one; a column that only heading lines have text in, whose heading reaches
  on over its whitespace edge into a column with body text, is part of that column);
* **rows**: every horizontal rule is a row edge; the lines between two rules are one row
  (a cell of several lines, a spanning heading apart) unless they stand half a line
  apart or hold two numbers or more (rules drawn every five rows, a rule under the
  heading only), and the lines of an unruled region are rows of their own; then a line
  that continues the cell above (it lacks the row's anchor column, sits closer than the
  rows do, and starts in lower case or misses the first column; a column whose text it
  does not reach, only the whitespace beside it, it does not fill) joins its row, and
  heading lines stacked over each other join into one heading row;
* **cells**: two neighbouring grid positions are one cell where a vertical rule drawn
  through most rows is missing, or where text crosses the edge between them and covers
  the text on both sides (a heading spanning columns; a heading wider than its column
  that only reaches into the whitespace beside it belongs to the column it covers
  most, and a spanning heading that reaches on into a column whose text it does not
  cover keeps those characters: no word is cut at an edge; a heading narrower than two
  columns but centred over the whitespace edge between them spans both, and so does a
  group heading set beside that edge (or over it by a little) over sub-headings under
  both columns, or, in a line of group headings, one inside the middle column of three
  it is centred over; a
  heading centred over three columns or more, covering neither outer one's text, spans
  them all); across a missing horizontal rule, when one of them is empty (a label
  spanning rows). Rows and columns in which no text starts (filler) are dropped, spans shrink
  with them, and a column holding only heading text beside one holding only body text
  become one (a heading set off to the side of its figures).

Pure: functions of the region's characters and rules.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from docmill.model.tables import Cell
from docmill.processors.pdf.geometry import Box, Char
from docmill.processors.tables.text import (
    SPACE_GAP,
    WORD_GAP,
    Chunk,
    Line,
    cell_text,
    group_lines,
    inside,
    is_numeric,
    line_text,
    page_lines,
)

__all__ = ["Grid", "build", "is_numeric", "region_lines"]

Rule = tuple[float, float, float]  # position (y of a horizontal, x of a vertical), start, end
SNAP = 2.0
MAX_CELLS = 40_000


@dataclass(slots=True)
class Grid:
    """A table's structure: row and column edges, and its cells (full cover)."""

    bbox: Box
    cells: list[Cell]
    nrows: int
    ncols: int
    header_rows: int
    columns: list[float]  # column edges (x), for joining tables across pages
    ruled: bool = False


def _cluster(values: Sequence[float], tol: float = SNAP) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if out and v - out[-1] <= tol:
            continue
        out.append(v)
    return out


def _covers(rules: Sequence[Rule], pos: float, at: float, tol: float = SNAP) -> bool:
    """Whether a rule lies at ``pos`` (within tol) and covers ``at`` along its length."""
    return any(abs(r[0] - pos) <= tol and r[1] - tol <= at <= r[2] + tol for r in rules)


def _covered(rules: Sequence[Rule], pos: float, points: Sequence[float], tol: float = SNAP) -> list[bool]:
    """:func:`_covers` at each of ``points``: the rules at ``pos`` are picked once."""
    near = [r for r in rules if abs(r[0] - pos) <= tol]
    return [any(r[1] - tol <= at <= r[2] + tol for r in near) for at in points]


def _index(edges: Sequence[float], v: float) -> int:
    return min(max(bisect_right(edges, v) - 1, 0), len(edges) - 2)


def _ordered(values: Sequence[float]) -> bool:
    """Whether the values are finite and never decrease (what bisection needs)."""
    return bool(values) and all(a <= b for a, b in itertools.pairwise(values)) and (
        -math.inf < values[0] and values[-1] < math.inf
    )


def _columns_near(cols: Sequence[float], x0: float, x1: float, ordered: bool) -> range:
    """The columns ``k`` that can overlap [x0, x1] by more than nothing: where the edges
    are in order, the others end at or before x0 or start at or after x1 (an overlap of
    0 or less); otherwise every column."""
    if not ordered:
        return range(len(cols) - 1)
    return range(max(bisect_right(cols, x0) - 1, 0), min(bisect_left(cols, x1), len(cols) - 1))


def _edges_between(cols: Sequence[float], a: float, b: float, ordered: bool) -> range:
    """The inner edges ``e`` (1 .. len-2) that can lie strictly between a and b: where
    the edges are in order, the others are at or below a or at or above b."""
    if not ordered:
        return range(1, len(cols) - 1)
    return range(max(bisect_right(cols, a), 1), min(bisect_left(cols, b), len(cols) - 1))


# ---------------------------------------------------------------- columns


def _gaps(
    lines: Sequence[Line], lo: float, hi: float, min_gap: float, crossing: int, support: int
) -> list[float]:
    """Whitespace column edges inside [lo, hi]: x-strips at least ``min_gap`` wide that at
    most ``crossing`` lines cross, with text on both sides in at least ``support`` lines."""
    starts: list[tuple[float, int]] = []
    ends: list[tuple[float, int]] = []
    # per line with text in [lo, hi]: the end of its first chunk and the start of its
    # last (a line has a chunk that ends left of x exactly when its first one does)
    first_end: list[float] = []
    last_start: list[float] = []
    for ln in lines:
        line_end: float | None = None
        line_start: float | None = None
        for c in ln.chunks:
            a = lo if lo > c.x0 else c.x0  # max(c.x0, lo) and min(c.x1, hi), as they compare
            b = hi if hi < c.x1 else c.x1
            if b > a:
                starts.append((a, 1))
                ends.append((b, -1))
                if line_end is None or b < line_end:
                    line_end = b
                if line_start is None or a > line_start:
                    line_start = a
        if line_end is not None and line_start is not None:
            first_end.append(line_end)
            last_start.append(line_start)
    if not starts:
        return []
    # chunks of one line never overlap: the chunks over x count the lines over x
    events = sorted(starts + ends)
    candidates: list[tuple[float, float]] = []
    depth, start = 0, lo
    for pos, step in events:
        new = depth + step
        if depth <= crossing < new:  # the strip ends
            candidates.append((start, pos))
        elif new <= crossing < depth:  # a strip starts
            start = pos
        depth = new
    candidates.append((start, hi))
    out: list[float] = []
    for a, b in candidates:
        if b - a < min_gap or a <= lo + 0.5 or b >= hi - 0.5:
            continue
        left, right = a + 0.5, b - 0.5
        both = sum(1 for e, s in zip(first_end, last_start, strict=True) if e <= left and s >= right)
        if both >= support:
            out.append((a + b) / 2)
    return out


def _heading_like(c: Chunk) -> bool:
    """Words, not a figure: mostly letters."""
    letters = sum(1 for ch in c.text if ch.isalpha())
    return not c.numeric and letters >= 0.6 * len(c.text.replace(" ", ""))


def _without_empty_columns(cols: list[float], rule_x: Sequence[float], lines: Sequence[Line]) -> list[float]:
    """Two whitespace edges with no chunk's middle between them, words (a heading)
    ending over the first and words starting over the second, are one: the strip between two columns,
    parted where headings wider than their figures reach into it (one heading's start
    meets the end of the heading beside it), makes no column of its own. The edge goes
    to the middle of the two."""
    if len(cols) < 4:
        return cols
    chunks = [c for ln in lines for c in ln.chunks]
    middles = sorted((c.x0 + c.x1) / 2 for c in chunks)
    out = [cols[0]]
    i, last = 1, len(cols) - 1
    while i < last:
        a = cols[i]
        if i + 1 < last and a not in rule_x and cols[i + 1] not in rule_x:
            b = cols[i + 1]
            if (
                bisect_right(middles, a) == bisect_left(middles, b)  # no chunk's middle in [a, b]
                and any(c.x0 < a < c.x1 <= b and _heading_like(c) for c in chunks)  # one ends there
                and any(a <= c.x0 < b < c.x1 and _heading_like(c) for c in chunks)  # one starts there
            ):
                out.append((a + b) / 2)
                i += 2
                continue
        out.append(a)
        i += 1
    out.append(cols[last])
    return out


def _first_body_line(lines: Sequence[Line]) -> int | None:
    """The index of the first line with a figure beside other text (the body's first
    row; a year is a heading's figure), None when there is none."""
    for i, ln in enumerate(lines):
        if len(ln.chunks) >= 2 and any(c.numeric and not _year(c.text) for c in ln.chunks):
            return i
    return None


def _year(text: str) -> bool:
    """A year as a heading sets it: 1800-2099, alone."""
    return len(text) == 4 and text.isdigit() and 1800 <= int(text) <= 2099


def _without_heading_columns(cols: list[float], rule_x: Sequence[float], lines: Sequence[Line]) -> list[float]:
    """A column between whitespace edges that only heading lines (above the body's first
    row) have text in, where a heading of it reaches on over one of its whitespace edges
    over the body text of the column beyond, is part of that column: the edge goes. A sub-heading
    wider than its right-aligned figures, under a group heading centred beside it, left
    a strip crossed by one line on each side of the group heading (two edges, a filler
    column of heading text between them)."""
    if len(cols) < 4:
        return cols
    first_body = _first_body_line(lines)
    if first_body is None or not 0 < first_body <= 6 or len(lines) - first_body < 2:
        return cols
    text_edge = [x not in rule_x for x in cols]
    text_edge[0] = text_edge[-1] = False
    changed = True
    while changed and len(cols) >= 4:
        changed = False
        ncols = len(cols) - 1
        body = [False] * ncols
        body_ext: list[tuple[float, float] | None] = [None] * ncols  # the body's text by middle
        head: list[list[Chunk]] = [[] for _ in range(ncols)]
        for i, ln in enumerate(lines):
            for c in ln.chunks:
                if i >= first_body:
                    m = _index(cols, (c.x0 + c.x1) / 2)
                    ext = body_ext[m]
                    body_ext[m] = (c.x0, c.x1) if ext is None else (min(ext[0], c.x0), max(ext[1], c.x1))
                for k in range(ncols):
                    if min(c.x1, cols[k + 1]) - max(c.x0, cols[k]) > 0.5:
                        if i >= first_body:
                            body[k] = True
                        else:
                            head[k].append(c)
        for k in range(ncols):
            if body[k] or not head[k]:
                continue
            for e, side in ((k, k - 1), (k + 1, k + 1)):  # its left edge, its right edge
                ext = body_ext[side] if 0 <= side < ncols else None
                if ext is None or not (text_edge[e] and body[side]):
                    continue
                if any(  # a heading over the edge and over the body's text beyond it
                    c.x0 + 1 < cols[e] < c.x1 - 1 and min(c.x1, ext[1]) > max(c.x0, ext[0]) and _heading_like(c)
                    for c in head[k]
                ):
                    del cols[e], text_edge[e]
                    changed = True
                    break
            if changed:
                break
    return cols


# ---------------------------------------------------------------- rows


def _cut_at_rules(line: Line, vrules: Sequence[Rule]) -> Line:
    """The line with every chunk cut where a vertical rule runs through it (text of two
    ruled cells set close together is never one chunk)."""
    middle = line.middle
    at = sorted(r[0] for r in vrules if r[1] - SNAP <= middle <= r[2] + SNAP)
    if not at:
        return line
    chunks: list[Chunk] = []
    for c in line.chunks:
        inner = at[bisect_right(at, c.x0) : bisect_left(at, c.x1)]  # c.x0 < x < c.x1, sorted
        if not inner:
            chunks.append(c)
            continue
        parts: list[list[Char]] = [[] for _ in range(len(inner) + 1)]
        for ch in c.chars:
            parts[bisect_right(inner, (ch.x0 + ch.x1) / 2)].append(ch)
        for part in parts:
            if part and any(not ch.text.isspace() for ch in part):
                piece = Chunk(
                    min(ch.x0 for ch in part), min(ch.y0 for ch in part),
                    max(ch.x1 for ch in part), max(ch.y1 for ch in part), part,
                )
                piece.text = line_text(part)
                piece.words = len(piece.text.split())
                piece.numeric = is_numeric(piece.text)
                chunks.append(piece)
    return Line(line.x0, line.y0, line.x1, line.y1, chunks)


def _column_extents(lines: Sequence[Line], cols: Sequence[float]) -> list[tuple[float, float] | None]:
    """The x-extent of the text each column holds in chunks that stay inside it."""
    out: list[tuple[float, float] | None] = [None] * (len(cols) - 1)
    last = len(cols) - 2
    for ln in lines:
        for c in ln.chunks:
            x0, x1 = c.x0, c.x1
            k = bisect_right(cols, (x0 + x1) / 2) - 1  # _index, inlined
            k = 0 if k < 0 else last if k > last else k
            if cols[k] - 1 <= x0 and x1 <= cols[k + 1] + 1:
                prev = out[k]
                out[k] = (x0, x1) if prev is None else (min(prev[0], x0), max(prev[1], x1))
    return out


def _column_bands(lines: Sequence[Line], edges: Sequence[float]) -> list[list[Line]]:
    """For each band between two neighbouring edges, the lines with a chunk whose middle
    lies in it (a point of slack either side), in order."""
    pairs = list(itertools.pairwise(edges))
    if not _ordered(edges):
        return [[ln for ln in lines if any(a - 1 <= (c.x0 + c.x1) / 2 <= b + 1 for c in ln.chunks)] for a, b in pairs]
    # the bands' lower bounds and upper bounds never decrease: a middle lies in the bands
    # from the first whose upper bound reaches it to the last whose lower bound does
    lows = [a - 1 for a, _ in pairs]
    highs = [b + 1 for _, b in pairs]
    bands: list[list[Line]] = [[] for _ in pairs]
    for ln in lines:
        for c in ln.chunks:
            m = (c.x0 + c.x1) / 2
            if m != m:
                continue  # NaN lies in no band
            for j in range(bisect_left(highs, m), bisect_right(lows, m)):
                band = bands[j]
                if not band or band[-1] is not ln:
                    band.append(ln)
    return bands


def _most_covered(c: Chunk, cols: Sequence[float], ordered: bool) -> int:
    """The first column the chunk overlaps most. Where the edges are in order, the
    columns away from the chunk overlap it by 0 or less, so when a column near it
    overlaps it by more, the first of the most is among those near it."""

    def overlap(k: int) -> float:
        return min(c.x1, cols[k + 1]) - max(c.x0, cols[k])

    near = _columns_near(cols, c.x0, c.x1, ordered)
    if len(near):
        k = max(near, key=overlap)
        if overlap(k) > 0:
            return k
    return max(range(len(cols) - 1), key=overlap)


def _covers_both(c: Chunk, left: tuple[float, float] | None, right: tuple[float, float] | None) -> bool:
    """Whether a chunk over an edge covers a good part of the text on both sides."""
    for ext in (left, right):
        if ext is None:
            continue  # an empty column beside a spanning cell: nothing to cover
        width = max(ext[1] - ext[0], 1.0)
        if min(c.x1, ext[1]) - max(c.x0, ext[0]) < 0.25 * width:
            return False
    return True


def _centred(c: Chunk, cols: Sequence[float], e: int, extents: Sequence[tuple[float, float] | None]) -> bool:
    """Whether words over one edge are a heading centred over the two columns beside it
    (narrower than them, so it covers neither's text): a quarter of it or more on each
    side, its middle within a tenth of their text's width of their text's middle."""
    left, right = extents[e - 1], extents[e]
    if left is None or right is None or c.numeric:
        return False
    width = c.x1 - c.x0
    edge = cols[e]
    if edge - c.x0 < 0.25 * width or c.x1 - edge < 0.25 * width:
        return False
    span = right[1] - left[0]
    return abs((c.x0 + c.x1) / 2 - (left[0] + right[1]) / 2) <= 0.1 * span


def _centred_wide(
    c: Chunk, line: Line, cols: Sequence[float], extents: Sequence[tuple[float, float] | None], ordered: bool,
) -> tuple[int, int] | None:
    """The first and last edge of the three columns or more a heading is centred over:
    words (not a figure) over the columns they overlap, their middle within a twentieth
    of those columns' text width of the middle of their text, over less than half of
    either outer column's text, their line holding no other words with their middle
    over those columns (a group heading narrower than its columns: 'Revenue (kg/year)'
    over 2013, 2015 and 2023; not headings set close together, read as one chunk)."""
    if c.numeric or not _heading_like(c):
        return None
    near = [k for k in _columns_near(cols, c.x0, c.x1, ordered) if min(c.x1, cols[k + 1]) - max(c.x0, cols[k]) > 0.5]
    if len(near) < 3:
        return None
    left, right = extents[near[0]], extents[near[-1]]
    if left is None or right is None or right[1] <= left[0]:
        return None
    if abs((c.x0 + c.x1) / 2 - (left[0] + right[1]) / 2) > 0.05 * (right[1] - left[0]):
        return None
    for ext in (left, right):  # words over half an outer column's text are its own
        if min(c.x1, ext[1]) - max(c.x0, ext[0]) >= 0.5 * max(ext[1] - ext[0], 1.0):
            return None
    lo, hi = cols[near[0]], cols[near[-1] + 1]
    if any(d is not c and lo <= (d.x0 + d.x1) / 2 <= hi for d in line.chunks):
        return None  # the line heads those columns itself
    return near[0] + 1, near[-1]


def _beside(
    lines: Sequence[Line], cols: Sequence[float], text_col: Sequence[bool],
    extents: Sequence[tuple[float, float] | None], ordered: bool,
) -> dict[int, tuple[int, int]]:
    """Group headings set wholly beside a whitespace edge (``id(chunk)`` -> the first
    and last edge it spans; one edge here, two where :func:`_over_three` says so):
    words in a heading line (above the body's first row, over another heading line)
    that cross no edge (or one by less than a quarter of their width, covering neither
    side's text) and stand no further from a text edge than their own width, where
    the next line has words (sub-headings) under the columns on both sides of the edge,
    reaching out past the heading on both sides, and the heading's middle is within a
    tenth of their width (with the two columns' text) of their middle, nearer to it than to the middle of the
    sub-headings of its own column; the heading's line holds nothing else over the
    other column, and no word of the next line is centred under it (a heading stacked
    over its own next line: 'American' over 'Indian/Alaskan'). 'Gas' centred over
    a narrow and a wide column sits all in the wide one."""
    first_body = _first_body_line(lines)
    out: dict[int, tuple[int, int]] = {}
    if not first_body or first_body > 6 or len(cols) < 3:
        return out
    last = len(cols) - 2
    for i, ln in enumerate(lines[: first_body - 1]):  # a heading line over another
        below = [(d, _index(cols, (d.x0 + d.x1) / 2)) for d in lines[i + 1].chunks]
        narrow: list[Chunk] = []  # words inside one column, for _over_three below
        for c in ln.chunks:
            over = [e for e in _edges_between(cols, c.x0 + 1, c.x1 - 1, ordered) if c.x0 + 1 < cols[e] < c.x1 - 1]
            if not _heading_like(c) or len(over) > 1 or any(
                _centred_edge(c, cols[e]) or _covers_both(c, extents[e - 1], extents[e]) for e in over
            ):
                continue  # a figure, or words well over an edge (_covers_both, _centred)
            if not over:
                narrow.append(c)
            mid, width = (c.x0 + c.x1) / 2, c.x1 - c.x0
            if any(abs((d.x0 + d.x1) / 2 - mid) <= 0.2 * max(width, d.x1 - d.x0) for d, _ in below):
                continue  # stacked over its own next line
            k = _index(cols, mid)
            for e, other in ((k, k - 1), (k + 1, k + 1)):
                if not (0 <= other <= last and 0 < e <= last and text_col[e]):
                    continue
                if min(abs(c.x0 - cols[e]), abs(c.x1 - cols[e])) > width:
                    continue
                own = [d for d, j in below if j == k]
                subs = own + [d for d, j in below if j == other]
                if not own or len(subs) == len(own):
                    continue
                lo, hi = min(d.x0 for d in subs), max(d.x1 for d in subs)
                for ext in (extents[k], extents[other]):  # and the columns' own text
                    if ext is not None:
                        lo, hi = min(lo, ext[0]), max(hi, ext[1])
                own_mid = (min(d.x0 for d in own) + max(d.x1 for d in own)) / 2
                off = abs(mid - (lo + hi) / 2)
                if not (lo < c.x0 and hi > c.x1) or off > 0.1 * (hi - lo) or off >= abs(mid - own_mid):
                    continue
                if any(
                    d is not c and min(d.x1, cols[other + 1]) - max(d.x0, cols[other]) > 0.5 for d in ln.chunks
                ):
                    continue
                out[id(c)] = (e, e)
                break
        group_line = any(  # a word of the line spans an edge: a line of group headings
            id(d) in out or any(
                d.x0 + 1 < cols[e] < d.x1 - 1 and _centred_edge(d, cols[e])
                for e in _edges_between(cols, d.x0 + 1, d.x1 - 1, ordered)
            )
            for d in ln.chunks
        )
        if group_line:
            under: dict[int, tuple[float, float]] = {}  # per column, the heading words under it
            for h in lines[i + 1 : first_body]:
                for d in h.chunks:
                    j = _index(cols, (d.x0 + d.x1) / 2)
                    ext = under.get(j)
                    under[j] = (d.x0, d.x1) if ext is None else (min(ext[0], d.x0), max(ext[1], d.x1))
            for c in narrow:
                three = None if id(c) in out else _over_three(c, ln, cols, text_col, extents, under)
                if three is not None:
                    out[id(c)] = three
    return out


def _one_strip(lines: Sequence[Line], f: float, g: float) -> bool:
    """No chunk of ``lines`` lies between ``f`` and ``g``: one whitespace strip."""
    lo, hi = (f, g) if f < g else (g, f)
    return not any(c.x0 < hi and c.x1 > lo for ln in lines for c in ln.chunks)


def _sub_headings_parted(
    heads: Sequence[Line], body: Sequence[Line], g: float, lo: float, hi: float
) -> float | None:
    """A whitespace edge at ``g`` of a ruled band, found in its body lines only (a
    group heading above narrows or crosses it): kept when a heading line (the
    sub-headings) has words on both sides of the body's empty strip around it and none
    over the whole strip; the edge moves to the middle of what both leave empty."""
    s0, s1 = lo, hi  # the body's empty strip around g
    for ln in body:
        for c in ln.chunks:
            if c.x1 <= g and c.x1 > s0:
                s0 = c.x1
            elif c.x0 >= g and c.x0 < s1:
                s1 = c.x0
    for ln in heads:
        inside = [c for c in ln.chunks if c.x1 > lo and c.x0 < hi]
        left = [c.x1 for c in inside if (c.x0 + c.x1) / 2 < g]
        right = [c.x0 for c in inside if (c.x0 + c.x1) / 2 >= g]
        if not left or not right:
            continue
        a, b = max(max(left), s0), min(min(right), s1)
        if b > a:
            return (a + b) / 2
    return None


def _ruled_groups(
    heading: Sequence[Line], cols: Sequence[float], text_col: Sequence[bool], h: float
) -> dict[int, tuple[int, int]]:
    """Group headings of a ruled table whose groups hold columns parted by whitespace
    only (``id(chunk)`` -> the first and last whitespace edge it spans): the only words
    of a heading line between two rule edges (or the table's sides) with whitespace
    edges between them, centred between those rules (within a sixth of their distance),
    over a heading line with words under two of those columns or more (sub-headings),
    span every column between them, whether or not they reach over an edge; words
    inside one column nearer its middle than the group's (by a line height) are that
    column's heading."""
    bounds = [e for e in range(len(cols)) if e == 0 or e == len(cols) - 1 or not text_col[e]]
    out: dict[int, tuple[int, int]] = {}
    for i, ln in enumerate(heading[:-1]):
        below = heading[i + 1]
        for lo, hi in itertools.pairwise(bounds):
            if hi - lo < 2:
                continue
            a, b = cols[lo], cols[hi]
            inside = [c for c in ln.chunks if a - 1 <= c.x0 and c.x1 <= b + 1]
            if len(inside) != 1 or any(c.x0 < b and c.x1 > a for c in ln.chunks if c is not inside[0]):
                continue
            c = inside[0]
            subs = {bisect_right(cols, (d.x0 + d.x1) / 2) - 1 for d in below.chunks if a < (d.x0 + d.x1) / 2 < b}
            mid = (c.x0 + c.x1) / 2
            k = bisect_right(cols, mid) - 1
            in_one = cols[k] <= c.x0 and c.x1 <= cols[k + 1]
            if in_one and abs(mid - (a + b) / 2) > abs(mid - (cols[k] + cols[k + 1]) / 2) + h:
                continue  # centred over its own column, not the group (a heading's first line)
            if len(subs) >= 2 and abs(mid - (a + b) / 2) <= (b - a) / 6:
                out[id(c)] = (lo + 1, hi - 1)
    return out


def _centred_edge(c: Chunk, edge: float) -> bool:
    """Whether a quarter of the words' width or more lies on each side of the edge."""
    width = c.x1 - c.x0
    return edge - c.x0 >= 0.25 * width and c.x1 - edge >= 0.25 * width


def _over_three(
    c: Chunk, line: Line, cols: Sequence[float], text_col: Sequence[bool],
    extents: Sequence[tuple[float, float] | None], under: dict[int, tuple[float, float]],
) -> tuple[int, int] | None:
    """The edges on both sides of the column holding a group heading narrower than it,
    in a line of group headings, centred over that column and the two beside it (their
    text and the heading words under them, within a twentieth of that width), the
    heading lines below holding words under all
    three and its own line nothing over its two neighbours (good_energy's 'Economy 7'
    over 'Unit Rate Day', 'Unit Rate Night' and 'Standing Charge'); else None."""
    k = _index(cols, (c.x0 + c.x1) / 2)
    if not 0 < k < len(cols) - 2 or not (text_col[k] and text_col[k + 1]):
        return None
    if not {k - 1, k, k + 1} <= under.keys():
        return None
    lo, hi = under[k - 1][0], under[k + 1][1]  # the words under the outer columns and their text
    left, right = extents[k - 1], extents[k + 1]
    lo = lo if left is None else min(lo, left[0])
    hi = hi if right is None else max(hi, right[1])
    if hi <= lo or abs((c.x0 + c.x1) / 2 - (lo + hi) / 2) > 0.05 * (hi - lo):
        return None
    lo, hi = cols[k - 1], cols[k + 2]
    if any(d is not c and min(d.x1, hi) - max(d.x0, lo) > 0.5 for d in line.chunks):
        return None
    return k, k + 1


def _columns_of(line: Line, cols: Sequence[float], ordered: bool = False) -> set[int]:
    """The columns the line's chunks overlap by more than half a point (``ordered``:
    the edges never decrease, so only the columns near a chunk are looked at)."""
    out: set[int] = set()
    last = len(cols) - 1
    for c in line.chunks:
        x0, x1 = c.x0, c.x1
        if ordered:  # _columns_near, inlined
            first, stop = bisect_right(cols, x0) - 1, bisect_left(cols, x1)
            near = range(first if first > 0 else 0, stop if stop < last else last)
        else:
            near = range(last)
        for k in near:
            if min(x1, cols[k + 1]) - max(x0, cols[k]) > 0.5:
                out.add(k)
    return out


def _spans_columns(
    line: Line, cols: Sequence[float], extents: Sequence[tuple[float, float] | None] = (),
    ordered: bool = False, beside: dict[int, tuple[int, int]] | None = None, text_edge: Sequence[bool] = (),
) -> bool:
    """Whether a chunk of the line spans a column edge (a spanning heading): it reaches
    over the edge and, where the columns' text extents are known, covers both sides or
    is centred over it (:func:`_centred`, a whitespace edge of ``text_edge``), or over
    three columns (:func:`_centred_wide`);
    or it is a group heading centred beside an edge (``beside``)."""
    for c in line.chunks:
        if (beside and id(c) in beside) or (extents and _centred_wide(c, line, cols, extents, ordered)):
            return True
        over = [e for e in _edges_between(cols, c.x0 + 1, c.x1 - 1, ordered) if c.x0 + 1 < cols[e] < c.x1 - 1]
        if any(not extents or _covers_both(c, extents[e - 1], extents[e]) for e in over):
            return True
        if text_edge and len(over) == 1 and text_edge[over[0]] and _centred(c, cols, over[0], extents):
            return True  # a narrow heading centred over a whitespace edge (as the cells join it)
    return False


def _line_rows(
    lines: list[Line], cols: Sequence[float], pitch: float, heading: bool,
    extents: Sequence[tuple[float, float] | None] = (), ordered: bool = False,
    beside: dict[int, tuple[int, int]] | None = None, text_edge: Sequence[bool] = (),
) -> list[list[Line]]:
    """Lines grouped into rows: heading lines stacked over each other (above the first
    line with numbers, when ``heading``) become one row, and a line that continues the
    cell above joins its row."""
    if not lines:
        return []
    filled = [_columns_of(ln, cols, ordered) for ln in lines]
    ncols = len(cols) - 1
    first_body = 0
    if heading:
        numeric = [
            any(c.numeric for c in ln.chunks) and len(f) >= max(2, 0.5 * ncols)
            for ln, f in zip(lines, filled, strict=True)
        ]
        first_body = min(next((i for i, v in enumerate(numeric) if v), 1), 6)
    # the anchor: the column (not the first) most often filled in the body
    counts = [sum(1 for f in filled[first_body:] if k in f) for k in range(ncols)]
    anchor = max(range(1, ncols), key=lambda k: counts[k]) if ncols > 1 else 0
    rows: list[list[Line]] = []
    row_cols: list[set[int]] = []
    for i, ln in enumerate(lines):
        if not rows:
            rows.append([ln])
            row_cols.append(set(filled[i]))
            continue
        gap = ln.y0 - rows[-1][-1].y1
        tight = gap <= 0.5 * pitch
        if i < first_body:  # a heading: stacked heading lines are one row
            if tight and not _spans_columns(rows[-1][-1], cols, extents, ordered, beside, text_edge) and not _spans_columns(
                ln, cols, extents, ordered, beside, text_edge
            ):
                rows[-1].append(ln)
                row_cols[-1] |= filled[i]
                continue
        elif tight and anchor in row_cols[-1] and anchor not in (reach := _reaches(ln, cols, extents, filled[i])) and (
            reach <= row_cols[-1]
        ):
            head = ln.chunks[0].text[:1]
            if head.islower() or head in "(&" or 0 not in filled[i]:
                rows[-1].append(ln)
                continue
        rows.append([ln])
        row_cols.append(set(filled[i]))
    return rows


def _reaches(
    line: Line, cols: Sequence[float], extents: Sequence[tuple[float, float] | None], filled: set[int]
) -> set[int]:
    """The columns of ``filled`` whose text the line reaches: its words overlap the
    column's text or have their middle in it, not only its whitespace (a wrapped label
    wider than the label column, reaching over the edge beside it)."""
    if not extents:
        return filled
    out: set[int] = set()
    for k in filled:
        ext = extents[k]
        for c in line.chunks:
            if (ext is not None and min(c.x1, ext[1]) - max(c.x0, ext[0]) > 0.5) or (
                cols[k] <= (c.x0 + c.x1) / 2 < cols[k + 1]
            ):
                out.add(k)
                break
    return out


def _rows_of_band(lines: Sequence[Line], cols: Sequence[float], ordered: bool) -> bool:
    """Whether the lines between two rules are rows of their own (rules drawn every few
    rows): at least two of them, and half of them, hold two numbers or more; or at least
    three, and half of them, each hold a number and fill three columns or more (a lab
    report's result rows: one figure beside a name, a method, a unit and a range)."""
    numeric = sum(1 for ln in lines if sum(c.numeric for c in ln.chunks) >= 2)
    if numeric >= 2 and numeric >= 0.5 * len(lines):
        return True
    if len(lines) < 3 or len(cols) < 4:
        return False
    full = sum(
        1 for ln in lines if any(c.numeric for c in ln.chunks) and len(_columns_of(ln, cols, ordered)) >= 3
    )
    return full >= 3 and full >= 0.5 * len(lines)


def _loose(lines: Sequence[Line], h: float) -> bool:
    """Whether lines stand apart like rows (half a line height or more between them), not
    like the wrapped lines of one cell."""
    gaps = sorted(b.y0 - a.y1 for a, b in itertools.pairwise(lines))
    return bool(gaps) and gaps[len(gaps) // 2] >= 0.5 * h


def _band_rows(
    lines: list[Line], cols: Sequence[float], extents: Sequence[tuple[float, float] | None] = (),
    ordered: bool = False, beside: dict[int, tuple[int, int]] | None = None, text_edge: Sequence[bool] = (),
) -> list[list[Line]]:
    """The lines between two rules as one row, but a line with a heading spanning
    columns is a row of its own (a group heading over its sub-headings)."""
    rows: list[list[Line]] = []
    for ln in lines:
        if rows and not _spans_columns(ln, cols, extents, ordered, beside, text_edge) and not _spans_columns(
            rows[-1][-1], cols, extents, ordered, beside, text_edge
        ):
            rows[-1].append(ln)
        else:
            rows.append([ln])
    return rows


# ---------------------------------------------------------------- the grid


def build(
    region: Box,
    chars: Sequence[Char],
    hrules: Sequence[Rule] = (),
    vrules: Sequence[Rule] = (),
    ruled: bool = False,
) -> Grid | None:
    """The table in ``region``; None when it has no two rows and two columns of text."""
    x0, y0, x1, y1 = region
    left, right, top, bottom = x0 - 0.5, x1 + 0.5, y0 - 0.5, y1 + 0.5  # inside(c, region, 0.5)
    mine = [
        c for c in chars
        if left <= (c.x0 + c.x1) / 2 <= right and top <= (c.y0 + c.y1) / 2 <= bottom
        and (not c.text.isspace() or c.text == " ")
    ]
    # of the layer's spaces, only those that part words a gap alone would not stay
    last = len(mine) - 1
    loose = [
        i for i, c in enumerate(mine)
        if c.text == " " and not (0 < i < last and _tight_space(mine[i - 1], c, mine[i + 1]))
    ]
    if loose:
        gone = set(loose)
        mine = [c for i, c in enumerate(mine) if i not in gone]
    if not mine:
        return None
    lines = page_lines(mine)
    if not lines:
        return None
    heights = sorted(ln.height for ln in lines)
    h = heights[len(heights) // 2]
    # column edges: rules, then whitespace inside each band between them
    vr = [r for r in vrules if x0 + SNAP < r[0] < x1 - SNAP and min(r[2], y1) - max(r[1], y0) >= 0.8 * h]
    if vr:
        lines = [_cut_at_rules(ln, vr) for ln in lines]
    rule_x = _cluster([r[0] for r in vr])
    col_edges = [x0, *rule_x, x1]
    cols: list[float] = []
    # a ruled band's heading lines (above the body's first row) may cross: a group
    # heading over sub-columns parted by whitespace only, between rules that part groups
    first_body = _first_body_line(lines) if ruled and rule_x else None
    heading_ids = {id(ln) for ln in lines[:first_body]} if first_body else set()
    for (a, b), band in zip(itertools.pairwise(col_edges), _column_bands(lines, col_edges), strict=True):
        cols.append(a)
        if ruled and rule_x:  # a ruled band: no body line may cross a column edge
            if heading_ids:
                body = [ln for ln in band if id(ln) not in heading_ids]
                heads = [ln for ln in band if id(ln) in heading_ids]
                found = _gaps(band, a, b, 0.5 * h, 0, max(3, len(band) // 3))
                # a ruled group: its rules drawn down through the body (a table's sides may
                # stay open), not a rule under the headings only over an unruled body
                body_ys = [ln.middle for ln in body]
                walled = all(
                    e in (x0, x1) or sum(_covered(vr, e, body_ys)) >= 0.6 * len(body_ys) for e in (a, b)
                )
                for gap in _gaps(body, a, b, 0.5 * h, 0, max(3, len(band) // 3)) if walled else ():
                    if not any(_one_strip(body, f, gap) for f in found):
                        edge = _sub_headings_parted(heads, body, gap, a, b)
                        if edge is not None:
                            found.append(edge)
                cols += sorted(found)
            else:
                cols += _gaps(band, a, b, 0.5 * h, 0, max(3, len(band) // 3))
        else:
            crossing = max(1, len(band) // 8)
            cols += _gaps(band, a, b, 0.5 * h, crossing, max(2, len(band) // 3))
    cols.append(x1)
    cols = _without_empty_columns(cols, rule_x, lines)
    cols = _without_heading_columns(cols, rule_x, lines)
    text_col = [x not in rule_x for x in cols]  # edges found in the text
    # row edges: rules, then lines
    hr = [r for r in hrules if y0 + SNAP < r[0] < y1 - SNAP and min(r[2], x1) - max(r[1], x0) >= 0.5 * h]
    rule_y = _cluster([r[0] for r in hr])
    row_edges = [y0, *rule_y, y1]
    pitches = sorted(b.middle - a.middle for a, b in itertools.pairwise(lines) if b.middle - a.middle > 0.3 * h)
    pitch = pitches[len(pitches) // 2] if pitches else 2 * h
    extents = _column_extents(lines, cols)
    ordered = _ordered(cols)
    middles = [ln.middle for ln in lines]
    beside = _beside(lines, cols, text_col, extents, ordered)
    if first_body:
        beside = {**beside, **_ruled_groups(lines[:first_body], cols, text_col, h)}
    rows_y: list[float] = [y0]
    row_kind: list[str] = ["rule"]  # the kind of each row edge after the first
    for n, (a, b) in enumerate(itertools.pairwise(row_edges)):
        band_lines = [ln for ln, m in zip(lines, middles, strict=True) if a <= m <= b]
        if rule_y and not _rows_of_band(band_lines, cols, ordered) and not _loose(band_lines, h):
            groups = _band_rows(band_lines, cols, extents, ordered, beside, text_col)
        else:
            groups = _line_rows(
                band_lines, cols, pitch, heading=n == 0, extents=extents, ordered=ordered, beside=beside,
                text_edge=text_col,
            )
        for g, nxt in itertools.pairwise(groups):
            rows_y.append((g[-1].y1 + nxt[0].y0) / 2)
            row_kind.append("text")
        rows_y.append(b)
        row_kind.append("rule")
    nrows, ncols = len(rows_y) - 1, len(cols) - 1
    if nrows < 1 or ncols < 1 or nrows * ncols > MAX_CELLS:
        return None
    # text per position, and which column edges a row's chunks cross. A chunk over a
    # column edge spans the columns on both sides only where it covers the text of both
    # (a heading centred over its columns); a heading wider than its column that only
    # reaches into the whitespace beside it belongs to the column it covers most.
    pos_chars: dict[tuple[int, int], list[Char]] = {}
    sources: dict[tuple[int, int], list[Chunk]] = {}  # the chunks with characters there
    crossed: set[tuple[int, int]] = set()  # (row, edge index) with text over the edge
    last_col = ncols - 1
    at: list[Char] = []
    for ln, middle in zip(lines, middles, strict=True):
        r = _index(rows_y, middle)
        for c in ln.chunks:
            a, b = c.x0 + 1, c.x1 - 1
            over = [e for e in _edges_between(cols, a, b, ordered) if a < cols[e] < b]
            k_lo, k_hi = 0, last_col  # the columns the chunk's characters may take
            if not over and beside and id(c) in beside:  # a group heading beside an edge
                e0, e1 = beside[id(c)]
                crossed.update((r, e) for e in range(e0, e1 + 1))
                k_lo, k_hi = e0 - 1, e1
            elif over:
                spans = [e for e in over if _covers_both(c, extents[e - 1], extents[e])]
                if not spans and len(over) == 1 and text_col[over[0]] and _centred(c, cols, over[0], extents):
                    spans = over
                wide = _centred_wide(c, ln, cols, extents, ordered)
                if wide and wide[1] - wide[0] + 1 > len(spans) and all(text_col[e] for e in range(wide[0], wide[1] + 1)):
                    spans = list(range(wide[0], wide[1] + 1))
                if not spans and beside and id(c) in beside:  # over an edge by a little only
                    spans = list(range(beside[id(c)][0], beside[id(c)][1] + 1))
                if not spans:
                    k = _most_covered(c, cols, ordered)
                    pos_chars.setdefault((r, k), []).extend(c.chars)
                    sources.setdefault((r, k), []).append(c)
                    continue
                # the chunk spans the columns from its first spanned edge to its last;
                # what reaches beyond them stays in its cell (no word cut at an edge)
                crossed.update((r, e) for e in range(spans[0], spans[-1] + 1))
                k_lo, k_hi = spans[0] - 1, spans[-1]
            k_at = -1
            lo_k, hi_k = 1.0, 0.0  # a column's [left, right): a middle in it is in that column
            for ch in c.chars:
                m = (ch.x0 + ch.x1) / 2
                if lo_k <= m < hi_k:
                    k = k_at
                else:
                    k = bisect_right(cols, m) - 1  # _index, inlined
                    k = 0 if k < 0 else last_col if k > last_col else k
                    if ordered:
                        lo_k, hi_k = cols[k], cols[k + 1]
                    k = k_lo if k < k_lo else k_hi if k > k_hi else k
                if k != k_at:
                    k_at, at = k, pos_chars.setdefault((r, k), [])
                    src = sources.setdefault((r, k), [])
                    if not src or src[-1] is not c:
                        src.append(c)
                at.append(ch)
    parent = list(range(nrows * ncols))
    joined = [False]

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)
        joined[0] = True

    # a rule edge drawn through most rows parts every row it is drawn in; where it is
    # missing, the cells beside it are one (a spanning cell, its text wherever it sits)
    mids = [(rows_y[r] + rows_y[r + 1]) / 2 for r in range(nrows)]
    drawn = [None if text_col[e] else _covered(vr, cols[e], mids) for e in range(ncols)]  # per row
    strong = [d is not None and sum(d) >= 0.4 * nrows for d in drawn]
    for r in range(nrows):
        for e in range(1, ncols):
            d = drawn[e]
            if not (d is not None and d[r]) and (strong[e] or (r, e) in crossed):
                union(r * ncols + e - 1, r * ncols + e)
    # across a missing horizontal rule, a ruled table's cells are one when one is empty
    for e in range(1, nrows) if ruled else ():
        if row_kind[e] != "rule":
            continue
        across = _covered(hr, rows_y[e], [(cols[k] + cols[k + 1]) / 2 for k in range(ncols)])
        for k in range(ncols):
            if across[k]:
                continue
            above, below = (e - 1, k) in pos_chars, (e, k) in pos_chars
            if not (above and below):
                union((e - 1) * ncols + k, e * ncols + k)

    def text_at(pos: tuple[int, int]) -> str:
        """The text of one position (its chunk's own where it holds one whole chunk)."""
        chars = pos_chars.get(pos)
        if not chars:
            return ""
        src = sources[pos]
        whole = len(src) == 1 and len(chars) == len(src[0].chars)  # the chunk's characters, in order
        return cell_text(chars, src[0].text if whole else None)

    if not joined[0]:  # no spans: a cell at each position
        cells = [Cell(r, k, 1, 1, text_at((r, k))) for r in range(nrows) for k in range(ncols)]
    else:
        cells = _cells(nrows, ncols, find, pos_chars, text_at)
    cells, nrows, ncols, kept_cols = _drop_filler(cells, nrows, ncols)
    if nrows < 2 or ncols < 2:
        return None
    edges = [cols[k] for k in kept_cols] + [x1]
    head = _header_rows(cells, nrows)
    joined_cells, ncols, edges = _join_heading_columns(cells, nrows, ncols, edges, head)
    if joined_cells is not cells:  # columns joined: the heading rows are read again
        cells, head = joined_cells, _header_rows(joined_cells, nrows)
    if ncols < 2:
        return None
    return Grid(region, cells, nrows, ncols, head, edges, ruled)


def _tight_space(before: Char, space: Char, after: Char) -> bool:
    """Whether the layer's space between two glyphs (its neighbours in the layer's order)
    parts words that a gap alone would not: the gap between them is wider than
    :data:`~docmill.processors.tables.text.SPACE_GAP` line heights but no wider than a
    word gap (a tight font). Only such spaces are read into a table's lines: the others
    change no text (:func:`~docmill.processors.tables.text.line_text`), and a space
    beside a turned glyph (no height) stands on no line."""
    if before.text.isspace() or after.text.isspace() or space.y1 <= space.y0:
        return False
    h = max(before.y1 - before.y0, after.y1 - after.y0, 1.0)
    gap = after.x0 - before.x1
    return SPACE_GAP * h < gap <= WORD_GAP * h


def _cells(
    nrows: int, ncols: int, find: Callable[[int], int], pos_chars: dict[tuple[int, int], list[Char]],
    text_at: Callable[[tuple[int, int]], str],
) -> list[Cell]:
    """The grid's cells: each group of joined positions one cell with its span when it
    is a rectangle, else a cell at each of its positions; in the order of their first
    position, row by row."""
    components: dict[int, list[tuple[int, int]]] = {}
    for r in range(nrows):
        for k in range(ncols):
            components.setdefault(find(r * ncols + k), []).append((r, k))
    cells: list[Cell] = []
    for members in components.values():
        if len(members) == 1:
            r, k = members[0]
            cells.append(Cell(r, k, 1, 1, text_at((r, k))))
            continue
        rs = [m[0] for m in members]
        ks = [m[1] for m in members]
        r0, r1, k0, k1 = min(rs), max(rs), min(ks), max(ks)
        if len(members) != (r1 - r0 + 1) * (k1 - k0 + 1):  # not a rectangle: no span
            for r, k in members:
                cells.append(Cell(r, k, 1, 1, text_at((r, k))))
            continue
        text = cell_text([c for m in members for c in pos_chars.get(m, [])])
        cells.append(Cell(r0, k0, r1 - r0 + 1, k1 - k0 + 1, text))
    return cells


def _join_heading_columns(
    cells: list[Cell], nrows: int, ncols: int, edges: list[float], head: int
) -> tuple[list[Cell], int, list[float]]:
    """A column holding only heading text beside one holding only body text are one
    column: a heading set off to the side of its numbers (centred over right-aligned
    figures) must not make a column of its own and leave a filler beside it."""
    if head < 1 or ncols < 3:
        return cells, ncols, edges
    rows_in: list[set[int]] = [set() for _ in range(ncols)]
    spanning = [False] * ncols
    for c in cells:
        if c.colspan > 1 or c.rowspan > 1:
            for k in range(c.col, c.col + c.colspan):
                spanning[k] = True
        if c.text:
            rows_in[c.col].add(c.row)
    k = 0
    while k < ncols - 1:
        a, b = rows_in[k], rows_in[k + 1]
        head_only = lambda rows: bool(rows) and max(rows) < head  # noqa: E731
        body_only = lambda rows: bool(rows) and min(rows) >= head  # noqa: E731
        if not (spanning[k] or spanning[k + 1]) and (
            (head_only(a) and body_only(b)) or (body_only(a) and head_only(b))
        ):
            merged: list[Cell] = []
            right = {c.row: c for c in cells if c.col == k + 1}
            for c in cells:
                if c.col == k + 1:
                    continue
                if c.col == k:
                    other = right.get(c.row)
                    text = c.text or (other.text if other else "")
                    merged.append(Cell(c.row, c.col, 1, 1, text))
                    continue
                merged.append(Cell(c.row, c.col - 1 if c.col > k else c.col, c.rowspan, c.colspan, c.text))
            cells = merged
            rows_in[k] = a | b
            del rows_in[k + 1], spanning[k + 1], edges[k + 1]
            ncols -= 1
            continue
        k += 1
    return cells, ncols, edges


def _drop_filler(cells: list[Cell], nrows: int, ncols: int) -> tuple[list[Cell], int, int, list[int]]:
    """Rows and columns in which no cell with text starts (filler: a gap the text left,
    a rule drawn twice) are dropped; spans shrink with them. Each kept position stays in
    exactly one cell, so the cells still cover the grid once."""
    keep_r = sorted({c.row for c in cells if c.text})
    keep_c = sorted({c.col for c in cells if c.text})
    if len(keep_r) == nrows and len(keep_c) == ncols:
        return cells, nrows, ncols, list(range(ncols))
    new_r = {r: i for i, r in enumerate(keep_r)}
    new_c = {k: i for i, k in enumerate(keep_c)}
    out: list[Cell] = []
    for c in cells:
        rows = [new_r[r] for r in range(c.row, c.row + c.rowspan) if r in new_r]
        cols = [new_c[k] for k in range(c.col, c.col + c.colspan) if k in new_c]
        if rows and cols:
            out.append(Cell(rows[0], cols[0], len(rows), len(cols), c.text))
    return out, len(keep_r), len(keep_c), keep_c


def _header_rows(cells: Sequence[Cell], nrows: int) -> int:
    """The leading rows above the first row with a number (at most 5), else 1 when the
    first row is complete and there are others."""
    numeric = [False] * nrows
    first_full = True
    for c in cells:
        if is_numeric(c.text):
            numeric[c.row] = True
        if c.row == 0 and not c.text:
            first_full = False
    if any(numeric):
        lead = 0
        while lead < nrows and not numeric[lead]:
            lead += 1
        return lead if 0 < lead <= 5 and lead < nrows else 0
    return 1 if nrows > 1 and first_full else 0


def region_lines(chars: Sequence[Char], region: Box) -> list[list[Char]]:
    """The text lines inside a region (for tests and detectors)."""
    return group_lines(c for c in chars if inside(c, region))
