"""Where a page's tables are: ruled grids, and text that lines up in columns.

**Ruled.** Each grid of crossing rulings (:func:`~docmill.processors.tables.rulings.grids`)
with at least two long rules each way (over half the grid, a line's pieces of 10 pt or
more counted together, as where rows span the columns: a plot's axis with its short
ticks, a dashed grid line, is none) is built as a table, smallest first; a grid around tables already found
is built from what is left in it. A grid whose text gives no two columns and two rows
(a framed paragraph, a form's field boxes) is no table.

**Unruled.** The other text lines are cut into chunks at wide gaps. A chunk of prose
has many words (:func:`prose`); a line of justified prose cut into evenly spaced
one-word chunks is prose too (:func:`justified`), also where it runs beside a table on
the same baselines (:func:`justified_runs`: a column of justified prose in a two-column
page); a *row line* has at least two chunks that are not prose. A block starts at a row line and takes the lines below it that
fall within its columns, passing over lines of another column of the page (a table
beside prose in a two-column page), while they stay close (2.2 line heights, twice the
block's own gaps, more across a rule); it stops at prose across its columns, a caption
("Table 3 ..."), a row whose gaps fall where the block has text. A row line's cells
just beyond the block's columns widen them. Short lines after the last row are notes
(left out) unless they are its cells' wrapped text closed by a rule under them. The
block grows upwards over heading lines within its columns (not over prose, nor past a
rule across its columns: its top border, with the title above it), and takes the rules
just above and below it. Where its rules leave a strip no rule crosses (two tables drawn
side by side) it is cut there, if every piece still reads as a table. A block over
drawings or around a plot's axes (a horizontal and a vertical rule meeting inside it
where one of them ends, or crossing with tick marks; not two rules that cross and run
on, as a column rule across a header's rule) is none. Each block is
built (:mod:`~docmill.processors.tables.structure`) and kept only when it reads as a
table, not as text set in columns:

- at least two *short* columns (their cells have three words or fewer, most of them,
  a cell of lines that each hold as many words counting one line's; a column of list
  markers only is none): prose in two columns, a list (marker and
  sentence), two lists side by side, a transcript's line numbers beside its text, a
  glossary have one at most;
- not a table of contents: dot leaders, or titles beside a last column of page
  numbers that only grow;
- not a form: most first cells end with a colon; not a list: two columns, the first
  of list markers (a cell of markers set tight, one per line, is markers too);
- cells filled: at least 40 % of the grid holds text, and three rows (a row whose
  cells each hold the same number of lines counting that many).

Pure functions of the page's characters, rules and drawings.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from docmill.processors.pdf.geometry import Box, Char
from docmill.processors.tables.rulings import SNAP, Rule, Rulings, grids, within
from docmill.processors.tables.structure import Grid, build, is_numeric
from docmill.processors.tables.text import Chunk, Line, box_of, inside, page_lines

_CAPTION = re.compile(
    r"^(table|tab\.|tabelle|tableau|tabla|tabella|exhibit|figure|fig\.|chart|graph)\s*[\dIVXivx]",
    re.IGNORECASE,
)
_MARKER = re.compile(r"^(\(?\d{1,3}[.)]|\(?[a-zA-Z][.)]|[•·‣◦▪■□●○\-–—*])$")
_LEADER = re.compile(r"(\.\s*){4,}|…{2,}")


def prose(chunk: Chunk, width: float) -> bool:
    """Whether a chunk reads as running text: many words, or wide with several."""
    return chunk.words >= 10 or (chunk.words >= 6 and chunk.x1 - chunk.x0 >= 0.3 * width)


def find_grids(
    chars: Sequence[Char], rules: Rulings, page_width: float, drawings: Sequence[Box] = ()
) -> list[Grid]:
    """Every table of a page: ruled grids first, then text in columns outside them. An
    unruled region over a drawing (a plot with its tick labels) is no table."""
    found: list[Grid] = []
    taken: list[Box] = []
    for box, gh, gv in sorted(grids(rules), key=lambda g: (g[0][2] - g[0][0]) * (g[0][3] - g[0][1])):
        if not _framed(box, gh, gv):
            continue  # a plot's axes and ticks, short marks: no ruled table
        inner = [b for b in taken if _contains(box, b)]
        free = [c for c in chars if not any(inside(c, b) for b in inner)] if inner else chars
        grid = build(box, free, gh, gv, ruled=True)
        if grid is None or not _table_like(grid, page_width, ruled=True):
            continue
        found.append(grid)
        taken.append(box)
    free = _outside(chars, taken, 1.0)
    for whole in unruled_regions(free, rules.h, page_width):
        if _over_drawing(whole, drawings) or _axes(whole, rules):
            continue
        pieces = split_by_rules(whole, rules.h)
        grids_of = [_unruled(region, free, rules, page_width) for region in pieces]
        if len(pieces) > 1 and not all(grids_of):
            grids_of = [_unruled(whole, free, rules, page_width)]  # the cut made no tables
        found += [g for g in grids_of if g is not None]
    found.sort(key=lambda g: (g.bbox[1], g.bbox[0]))
    return found


def _outside(chars: Sequence[Char], boxes: Sequence[Box], pad: float) -> list[Char]:
    """The characters :func:`inside` none of the boxes (``pad`` around each)."""
    if not boxes:
        return list(chars)
    bounds = [(b[0] - pad, b[2] + pad, b[1] - pad, b[3] + pad) for b in boxes]
    out: list[Char] = []
    for c in chars:
        cx, cy = (c.x0 + c.x1) / 2, (c.y0 + c.y1) / 2
        for left, right, top, bottom in bounds:
            if left <= cx <= right and top <= cy <= bottom:
                break
        else:
            out.append(c)
    return out


def _unruled(region: Box, chars: Sequence[Char], rules: Rulings, page_width: float) -> Grid | None:
    hr = within(rules.h, region[1], region[3], region[0], region[2])
    grid = build(region, chars, hr, [], ruled=False)
    return grid if grid is not None and _table_like(grid, page_width, ruled=False) else None


def _over_drawing(region: Box, drawings: Sequence[Box]) -> bool:
    """Whether curves or slanted lines fill a good part of the region (a chart)."""
    area = max((region[2] - region[0]) * (region[3] - region[1]), 1.0)
    covered = 0.0
    for d in drawings:
        w = min(d[2], region[2]) - max(d[0], region[0])
        h = min(d[3], region[3]) - max(d[1], region[1])
        if w > 0 and h > 0:
            covered += w * h
    return covered >= 0.2 * area


def _framed(box: Box, hs: Sequence[Rule], vs: Sequence[Rule]) -> bool:
    """Whether at least two rules each way run over half the grid (a table's frame or
    its lines), not a long axis with short ticks. A rule broken where a row spans its
    columns counts by its pieces of 10 pt or more on one line (not a dashed line's)."""
    width, height = box[2] - box[0], box[3] - box[1]
    return _long(hs, 0.5 * width) >= 2 and _long(vs, 0.5 * height) >= 2


def _long(rules: Sequence[Rule], length: float) -> int:
    """How many lines (rules at one position, within SNAP) have pieces of 10 pt or more
    that together run at least ``length``."""
    runs: list[tuple[float, float]] = []  # (position, length so far), by position
    for at, a, b in sorted(rules):
        if b - a < min(10.0, length):
            continue
        if runs and at - runs[-1][0] <= SNAP:
            runs[-1] = (runs[-1][0], runs[-1][1] + b - a)
        else:
            runs.append((at, b - a))
    return sum(1 for _, total in runs if total >= length)


def _axes(region: Box, rules: Rulings) -> bool:
    """Whether a horizontal and a vertical rule meet well inside the region as a plot's
    axes do, with their tick labels around them: one ending where it meets the other (an
    L at the origin, a T), or crossing it with tick marks along either. Two rules that
    cross and run on past each other with no ticks (a header's underline crossed by the
    rule between two columns) are a table's."""
    x0, y0, x1, y1 = region
    mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    for y, a, b in rules.h:
        if not y0 + my < y < y1 - my:
            continue
        for x, c, d in rules.v:
            if not (x0 + mx < x < x1 - mx and a - 2 <= x <= b + 2 and c - 2 <= y <= d + 2):
                continue
            if _ends_at(x, a, b) or _ends_at(y, c, d):
                return True
            if _ticks((y, a, b), rules.v) + _ticks((x, c, d), rules.h) >= 2:
                return True
    return False


def _ends_at(at: float, start: float, end: float) -> bool:
    """Whether a rule from ``start`` to ``end`` ends at ``at`` (within a few points, or a
    twentieth of its length: an axis may run a little past the origin)."""
    reach = max(4.0, 0.05 * (end - start))
    return min(abs(at - start), abs(end - at)) <= reach


def _ticks(axis: Rule, across: Sequence[Rule]) -> int:
    """Short rules across ``axis`` (at most 8 pt long and a tenth of it): its tick marks."""
    at, start, end = axis
    short = min(8.0, 0.1 * (end - start))
    return sum(1 for pos, lo, hi in across if hi - lo <= short and start - 2 <= pos <= end + 2 and lo - 2 <= at <= hi + 2)


def _contains(outer: Box, inner: Box) -> bool:
    return outer[0] - 2 <= inner[0] and inner[2] <= outer[2] + 2 and outer[1] - 2 <= inner[1] and inner[3] <= outer[3] + 2


# ---------------------------------------------------------------- unruled regions


def unruled_regions(chars: Sequence[Char], hrules: Sequence[Rule], page_width: float) -> list[Box]:
    """Regions of text that lines up in columns (see the module docstring). Lines are
    taken within the block's columns only: the lines of a column of prose beside a
    table interleave with its rows and are passed over."""
    lines = page_lines(chars)
    if len(lines) < 2:
        return []
    heights = sorted(ln.height for ln in lines)
    h = heights[len(heights) // 2]
    width = page_width

    def cells(ln: Line) -> list[Chunk]:
        return _cell_chunks(ln.chunks, width)

    used: set[int] = set()
    regions: list[Box] = []
    for i, ln in enumerate(lines):
        if i in used or len(cells(ln)) < 2:
            continue
        lo, hi = min(c.x0 for c in cells(ln)), max(c.x1 for c in cells(ln))
        block = [i]
        gaps: list[float] = []
        whites = _whites(cells(ln))  # the whitespace between the block's cells so far
        for j in range(i + 1, len(lines)):
            mine = _within(lines[j], lo, hi)
            if not mine:
                continue  # a line of another column of the page
            gap = min(c.y0 for c in mine) - lines[block[-1]].y1
            allowed = max(2.2 * h, 2.0 * sorted(gaps)[len(gaps) // 2]) if gaps else 2.2 * h
            gaps.append(gap)
            if _rule_between(hrules, lines[block[-1]].y1, min(c.y0 for c in mine), lo, hi):
                allowed *= 1.6  # a rule between sections of one table
            if gap > allowed:
                break
            if _prose_line(mine, lo, hi, width) or (len(mine) == 1 and _CAPTION.match(mine[0].text)):
                break  # prose, or the caption of the next table
            if len(mine) >= 2:  # a row: its cells just beyond the columns so far widen them
                near = [c for c in cells(lines[j]) if c.x1 > lo - 8 * h and c.x0 < hi + 8 * h]
                mine_whites = _whites(near)
                if whites and not any(a < d and c < b for a, b in whites for c, d in mine_whites):
                    break  # its gaps fall where the table has text: not one of its rows
                whites += mine_whites
                lo, hi = min(lo, *(c.x0 for c in near)), max(hi, *(c.x1 for c in near))
            block.append(j)
        popped: list[int] = []
        while block and len(_within(lines[block[-1]], lo, hi)) < 2:
            popped.insert(0, block.pop())  # trailing short lines (notes) belong after the table
        if popped and _wrapped(lines, block, popped, lo, hi, h) and _closed_below(
            lines[popped[-1]], lo, hi, h, hrules
        ):
            block += popped  # the wrapped text of the last row, a rule under it closing the table
        if sum(1 for k in block if len(_within(lines[k], lo, hi)) >= 2) < 2:
            continue
        region = _region(lines, block, lo, hi, width, h, hrules, used)
        used.update(block)
        if region is not None:
            regions.append(region)
    return regions


def _wrapped(
    lines: Sequence[Line], block: Sequence[int], popped: Sequence[int], lo: float, hi: float, h: float
) -> bool:
    """Whether lines after a row are its cells' wrapped text: each tight below the one
    before, starting where a cell of the row starts (not at the table's left edge)."""
    if not block:
        return False
    row = _within(lines[block[-1]], lo, hi)
    starts = [c.x0 for c in row[1:]]  # a note starts at the left edge: column 0 does not count
    prev = lines[block[-1]]
    for k in popped:
        mine = _within(lines[k], lo, hi)
        if mine[0].y0 - prev.y1 > 0.5 * h or not any(abs(mine[0].x0 - x) <= 2 for x in starts):
            return False
        prev = lines[k]
    return True


def _closed_below(line: Line, lo: float, hi: float, h: float, hrules: Sequence[Rule]) -> bool:
    return any(
        line.y1 <= y <= line.y1 + 1.5 * h and a <= lo + 0.2 * (hi - lo) and b >= hi - 0.2 * (hi - lo)
        for y, a, b in hrules
    )


def split_by_rules(region: Box, hrules: Sequence[Rule]) -> list[Box]:
    """Tables set side by side: the region cut where no horizontal rule crosses while
    rules run on both sides (each table draws its own)."""
    x0, y0, x1, y1 = region
    inside = [r for r in hrules if y0 - 2 <= r[0] <= y1 + 2 and r[2] > x0 + 2 and r[1] < x1 - 2]
    if len(inside) < 4:
        return [region]
    spans = sorted((max(r[1], x0), min(r[2], x1)) for r in inside)
    cuts: list[float] = []
    end = spans[0][1]
    for a, b in spans[1:]:
        if a > end + 5:  # a strip no rule crosses
            cuts.append((end + a) / 2)
        end = max(end, b)
    if not cuts:
        return [region]
    edges = [x0, *cuts, x1]
    return [(a, y0, b, y1) for a, b in itertools.pairwise(edges)]


def _whites(chunks: Sequence[Chunk]) -> list[tuple[float, float]]:
    """The whitespace between a line's chunks, as x-intervals."""
    ordered = sorted(chunks, key=lambda c: c.x0)
    return [(a.x1, b.x0) for a, b in itertools.pairwise(ordered) if b.x0 > a.x1]


def _rule_between(
    hrules: Sequence[Rule], top: float, bottom: float, lo: float, hi: float, slack: float = 0.2
) -> bool:
    """Whether a rule between ``top`` and ``bottom`` runs across [lo, hi], short of each
    end by at most ``slack`` of its width."""
    span = hi - lo
    return any(top <= y <= bottom and a <= lo + slack * span and b >= hi - slack * span for y, a, b in hrules)


def justified(chunks: Sequence[Chunk]) -> bool:
    """A line of justified prose whose stretched spaces cut it into one-word chunks:
    four or more words, evenly spaced."""
    if len(chunks) < 4:
        return False
    words = sum(1 for c in chunks if c.words == 1 and not c.numeric)
    if words < 0.8 * len(chunks):
        return False
    gaps = [b.x0 - a.x1 for a, b in itertools.pairwise(sorted(chunks, key=lambda c: c.x0))]
    return min(gaps) > 0 and max(gaps) <= 1.3 * min(gaps)


def justified_runs(chunks: Sequence[Chunk]) -> list[Chunk]:
    """The chunks of a line that belong to a line of justified prose cut into one-word
    chunks (:func:`justified`) running beside other text: four or more chunks, evenly
    spaced, half of them or more starting in lower case (words of a sentence, not a row
    of headings), set off from the rest of the line by gaps more than twice as wide as
    theirs (a column of justified prose beside a table, on the same baseline as its
    rows). A whole line can be one run."""
    if len(chunks) < 4:
        return []
    ordered = sorted(chunks, key=lambda c: c.x0)
    gaps = [b.x0 - a.x1 for a, b in itertools.pairwise(ordered)]
    out: list[Chunk] = []
    start = 0
    while start + 3 < len(ordered):
        end = start  # the run is ordered[start .. end], its gaps gaps[start .. end - 1]
        lo = hi = gaps[start]
        while end + 1 < len(ordered) and end < len(gaps):
            g = gaps[end]
            new_lo, new_hi = min(lo, g), max(hi, g)
            if new_lo <= 0 or new_hi > 1.3 * new_lo:
                break
            lo, hi, end = new_lo, new_hi, end + 1
        run = ordered[start : end + 1]
        apart = (start == 0 or gaps[start - 1] > 2 * hi) and (end == len(gaps) or gaps[end] > 2 * hi)
        lower = sum(1 for c in run if c.text[:1].islower())  # words of prose, not headings
        if len(run) >= 4 and apart and 2 * lower >= len(run) and justified(run):
            out += run
            start = end + 1
        else:
            start += 1
    return out


def _cell_chunks(chunks: Sequence[Chunk], width: float) -> list[Chunk]:
    """A line's chunks that can be a table's cells: neither prose nor words of a
    justified line of prose (:func:`justified_runs`)."""
    if justified(chunks):
        return []
    running = justified_runs(chunks)
    if running:
        skip = {id(c) for c in running}
        return [c for c in chunks if id(c) not in skip and not prose(c, width)]
    return [c for c in chunks if not prose(c, width)]


def _prose_line(mine: Sequence[Chunk], lo: float, hi: float, width: float) -> bool:
    """Prose across the block's columns (not a long label in one of them)."""
    if justified(mine):
        return True
    if not mine or not all(prose(c, width) for c in mine):
        return False
    return len(mine) >= 2 or mine[0].x1 - mine[0].x0 >= 0.6 * (hi - lo)


def _within(line: Line, lo: float, hi: float) -> list[Chunk]:
    return [c for c in line.chunks if c.x1 > lo - 5 and c.x0 < hi + 5]


def _region(
    lines: Sequence[Line], block: list[int], lo: float, hi: float, width: float, h: float,
    hrules: Sequence[Rule], used: set[int],
) -> Box | None:
    # heading lines above: within the columns, short, close; lines of other columns skipped
    members = list(block)
    k = block[0] - 1
    while k >= 0 and k not in used:
        mine = _within(lines[k], lo, hi)
        if not mine:
            k -= 1
            continue
        if lines[members[0]].y0 - max(c.y1 for c in mine) > 1.6 * h:
            break
        if any(prose(c, width) for c in mine) or justified_runs(mine) or _CAPTION.match(mine[0].text):
            break
        if min(c.x0 for c in mine) < lo - 0.1 * (hi - lo) or max(c.x1 for c in mine) > hi + 0.1 * (hi - lo):
            break  # wider than the table: a title or text, not a heading
        if _rule_between(hrules, max(c.y1 for c in mine), lines[members[0]].y0 + 0.25 * h, lo, hi, 0.1):
            break  # a rule across the table above its top line: its top border
        members.insert(0, k)
        k -= 1
    chunks = [c for k in members for c in _within(lines[k], lo, hi)]
    box = box_of((c.x0, c.y0, c.x1, c.y1) for c in chunks)
    # rules just above and below that span the block belong to it
    span = box[2] - box[0]
    for y, a, b in hrules:
        if a <= box[0] + 0.1 * span and b >= box[2] - 0.1 * span:
            if box[1] - 1.5 * h <= y < box[1]:
                box = (min(box[0], a), y, max(box[2], b), box[3])
            elif box[3] < y <= box[3] + 1.5 * h:
                box = (min(box[0], a), box[1], max(box[2], b), y)
    return box


# ---------------------------------------------------------------- is it a table?


def _columns(grid: Grid) -> list[list[str]]:
    cols: list[list[str]] = [[] for _ in range(grid.ncols)]
    for c in grid.cells:
        if c.text and c.colspan == 1:
            cols[c.col].append(c.text)
    return cols


def _markers(text: str) -> bool:
    """Whether every line of a cell is a list marker ('•', '2.', 'b)'): the markers of a
    list's items, one cell holding those of items set tight."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return bool(lines) and all(_MARKER.match(ln) for ln in lines)


def _rows_read(grid: Grid) -> int:
    """The grid's rows, a row whose filled cells (two or more) each hold the same number
    of lines counting that many: rows set tight enough to be read as one ('Chose 1' over
    'Chose 2' beside 'Truc 1' over 'Truc 2')."""
    texts: dict[int, list[str]] = {}
    for c in grid.cells:
        if c.text:
            texts.setdefault(c.row, []).append(c.text)
    rows = grid.nrows
    for cells in texts.values():
        counts = {len([ln for ln in t.splitlines() if ln.strip()]) for t in cells}
        if len(cells) >= 2 and len(counts) == 1:
            rows += counts.pop() - 1
    return rows


def _words(text: str) -> int:
    """A cell's words; a cell of lines that each hold as many words (rows set in one
    cell: 'Chose 1' over 'Chose 2') counts those of one line."""
    per_line = {len(line.split()) for line in text.splitlines() if line.strip()}
    if len(per_line) == 1:
        return per_line.pop()
    return len(text.split())


def _table_like(grid: Grid, width: float, ruled: bool) -> bool:
    cols = _columns(grid)
    filled = sum(1 for c in grid.cells if c.text)
    if filled < 4:
        return False
    if ruled:
        return True
    if filled < 0.4 * grid.nrows * grid.ncols or _rows_read(grid) < 3:
        return False
    short = 0
    for texts in cols:
        if not texts or all(_markers(t) for t in texts):
            continue  # list markers: the items' column beside them says whether it is a list
        words = sorted(_words(t) for t in texts)
        if words[len(words) // 2] <= 3:
            short += 1
    if short < 2:
        return False  # prose in columns, a list, a glossary
    first = [t for t in cols[0]]
    if first and sum(t.rstrip().endswith(":") for t in first) >= 0.5 * len(first):
        return False  # a form's labels
    if grid.ncols == 2 and first and all(_markers(t) for t in first):
        return False  # a list's markers
    return not _contents([t.strip() for t in cols[-1]], grid)


def _contents(last: list[str], grid: Grid) -> bool:
    """A table of contents: dot leaders, or titles beside a last column of page numbers
    that only grow."""
    leaders = sum(1 for c in grid.cells if c.text and _LEADER.search(c.text))
    if leaders >= 0.3 * grid.nrows:
        return True
    if grid.ncols > 3:
        return False
    titles = [c.text for c in grid.cells if c.text and c.col == grid.ncols - 2 and c.colspan == 1]
    if sum(1 for t in titles if is_numeric(t)) > 0.3 * max(len(titles), 1):
        return False  # numbers beside the last column: data, not titles
    numbers = [int(t) for t in last if t.isdigit() and len(t) <= 4]
    if len(numbers) < 4 or len(numbers) < 0.7 * len(last):
        return False
    if not all(is_numeric(t) for t in last):
        return False
    return all(b >= a for a, b in itertools.pairwise(numbers)) and len(set(numbers)) > 2
