"""Page text in reading order, from PDFium's characters and their boxes.

PDFium's own text (``get_text_bounded``) follows the content stream: a table drawn row
by row comes out row by row, but a page whose producer wrote its text in another order
(labels after values, columns interleaved) comes out in that order. This module orders
the text by its geometry instead, the way a reader takes it in (and the way poppler's
``pdftotext`` builds words, lines, blocks and their order):

0. **Glyphs.** Each character's direction comes from its text matrix: text set
   sideways (running up or down the page) is laid out in its own upright frame.
   Glyphs drawn again over themselves (fake bold, shadows) are read once.
1. **Fragments.** Characters are grouped into text lines by baseline (as poppler
   groups them: sub- and superscripts join their line, a tall loose box does not pull
   in the next line) and each line is cut where the gap between two glyphs is wider
   than ``COLUMN_GAP`` times the line height: what is left of such a gap is another
   column's text, or another table cell. Words break at PDFium's spaces where the
   glyphs leave a gap, and at gaps wider than ``WORD_GAP``; right-to-left runs
   (Arabic, Hebrew) are put in logical order.
2. **Blocks.** Fragments stack into blocks top to bottom: a fragment continues the
   block whose last fragment lies just above it (baselines at most ``LINE_SPACING``
   line heights apart), overlaps it horizontally and has about the same height. A
   paragraph is one block; a table column is one block.
3. **Order.** Blocks are ordered by recursive XY-cut: the blocks are split at every
   horizontal band of whitespace that crosses all of them (read top to bottom); a group
   with no such band is split at vertical whitespace (read left to right: columns); a
   group with neither is ordered by Breuel's two rules (above and overlapping; left of
   with nothing in between), sorted topologically, as poppler orders its blocks.

Each block's lines are written one per line; a line that ends in a hyphen PDFium marks
as breaking a word (``\\x02``) is joined to the next line of its block without it.
Everything here is pure: a function of the page's characters.
"""

from __future__ import annotations

import ctypes
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from docmill.processors.pdf.geometry import MAX_CHARS, Char, Frame

BASELINE_DELTA = 0.45  # baselines this many glyph heights apart are one text line
COLUMN_GAP = 1.0  # a gap this many line heights wide separates two fragments of a line
LINE_SPACING = 1.45  # max baseline distance, in line heights, between lines of a block
WORD_GAP = 0.15  # a gap this many line heights wide is a word break, space or not
SPACE_GAP = 0.02  # PDFium's space counts where the glyphs leave at least this gap
TALL = 2.0  # a glyph this many times taller than its line's is a loose math box
OVERPRINT = 0.3  # a glyph this close (widths) to the same glyph is drawn over it
MAX_TOPOLOGICAL = 600  # more blocks than this are read top to bottom (quadratic cost)
PROSE_LINES = 3  # a block of this many lines is prose (columns of it read column-first)
MAX_DEPTH = 64  # XY-cut recursion bound (each level removes at least one cut)


@dataclass(slots=True)
class Glyph(Char):
    """A character with its baseline: the y of its origin in its own upright frame
    (the displayed page's for upright text; see ``ordered_text`` for turned text)."""

    base: float = 0.0


def _baseline(ch: Char) -> float:
    return ch.base if isinstance(ch, Glyph) else ch.y1


def text_lines(chars: Sequence[Char]) -> list[list[Char]]:
    """Characters grouped into text lines by baseline, as poppler groups them: a
    glyph whose baseline lies within ``BASELINE_DELTA`` of its height (or the line's
    tallest glyph's) of the line's baseline joins that line (sub- and superscripts too);
    a taller glyph, not ``TALL`` times taller (a math font's loose box), moves the line's
    baseline to its own: a superscript read first does not keep its line's text off its
    line. A glyph whose baseline lies further below the line's than its own height is
    on another line however large the line's glyphs are (small print under a headline).
    Each line sorted by x. A
    space (no box of its own) goes with the glyph before it."""
    solid = [(i, ch) for i, ch in enumerate(chars) if ch.text != " "]
    solid.sort(key=lambda item: _baseline(item[1]))
    line_of = [-1] * len(chars)
    out: list[list[Char]] = []
    base = size = 0.0
    for i, ch in solid:
        b = _baseline(ch)
        h = max(ch.y1 - ch.y0, 1.0)
        taller = size < h < TALL * size  # the line's text after its superscripts
        gap = b - base
        if not out or gap > BASELINE_DELTA * (h if taller else size) or gap > h:
            out.append([])
            base, size = b, h
        elif taller:
            base, size = b, h
        out[-1].append(ch)
        line_of[i] = len(out) - 1
    prev = -1
    for i, ch in enumerate(chars):
        if ch.text == " ":
            if prev >= 0:
                out[prev].append(ch)
        else:
            prev = line_of[i]
    for line in out:
        line.sort(key=lambda c: c.x0)
    return out


@dataclass(slots=True)
class _Fragment:
    x0: float
    y0: float
    x1: float
    y1: float
    text: str

    @property
    def height(self) -> float:
        return max(self.y1 - self.y0, 1.0)


@dataclass(slots=True)
class _Block:
    x0: float
    y0: float
    x1: float
    y1: float
    lines: list[_Fragment] = field(default_factory=list)

    def add(self, frag: _Fragment) -> None:
        self.lines.append(frag)
        self.x0, self.x1 = min(self.x0, frag.x0), max(self.x1, frag.x1)
        self.y0, self.y1 = min(self.y0, frag.y0), max(self.y1, frag.y1)


def _fragment_text(chars: Sequence[Char]) -> str:
    """The glyphs of one fragment as words: a word break where PDFium wrote a space
    and the glyphs leave a gap, or where the gap is wide enough without one."""
    parts: list[str] = []
    prev: Char | None = None
    spaced = False
    for ch in chars:
        if ch.text == " ":
            spaced = True
            continue
        if prev is not None:
            h = max(ch.y1 - ch.y0, prev.y1 - prev.y0, 1.0)
            gap = ch.x0 - prev.x1
            if gap > WORD_GAP * h or (spaced and gap > SPACE_GAP * h):
                parts.append(" ")
        parts.append(ch.text)
        prev, spaced = ch, False
    return logical(parts)


_MIRROR = str.maketrans("()[]{}<>", ")(][}{><")


def _strong(glyph: str) -> str:
    """'R' for right-to-left letters, 'L' for left-to-right ones and digits, '' else."""
    kind = unicodedata.bidirectional(glyph[0])
    if kind in ("R", "AL"):
        return "R"
    return "L" if kind in ("L", "EN", "AN") else ""


def _runs(kinds: Sequence[str], kind: str) -> list[tuple[int, int]]:
    """Spans from a ``kind`` glyph to the last one before the next glyph of the other
    strong kind."""
    spans: list[tuple[int, int]] = []
    start = last = -1
    for i, strong in enumerate(kinds):
        if strong == kind:
            if start < 0:
                start = i
            last = i
        elif strong and start >= 0:
            spans.append((start, last + 1))
            start = -1
    if start >= 0:
        spans.append((start, last + 1))
    return spans


def logical(glyphs: list[str]) -> str:
    """The text of a line's glyphs, left to right as they are seen, in the order it is
    read: runs of right-to-left script (Arabic, Hebrew) reversed, and a line mostly in
    such a script read from its right end, its left-to-right runs (Latin, numbers) kept
    as seen."""
    text = "".join(glyphs)
    if text.isascii():
        return text
    kinds = [_strong(g) for g in glyphs]
    rtl = kinds.count("R")
    if not rtl:
        return text
    flip = "R"
    if rtl > kinds.count("L"):  # read from the right end, brackets turned
        glyphs = [g.translate(_MIRROR) for g in reversed(glyphs)]
        kinds, flip = kinds[::-1], "L"
    for start, stop in _runs(kinds, flip):
        glyphs[start:stop] = [g.translate(_MIRROR) for g in reversed(glyphs[start:stop])]
    return "".join(glyphs)


def _overprints(ch: Char, kept: Sequence[Char]) -> bool:
    width = max(ch.x1 - ch.x0, 0.5)
    height = max(ch.y1 - ch.y0, 0.5)
    for prev in reversed(kept[-8:]):
        if prev.x0 < ch.x0 - width:
            return False
        if (
            prev.text == ch.text
            and abs(prev.x0 - ch.x0) < OVERPRINT * width
            and abs(prev.y0 - ch.y0) < OVERPRINT * height
        ):
            return True
    return False


def without_overprints(line: Sequence[Char]) -> list[Char]:
    """``line`` (sorted by x) without the glyphs drawn again over themselves (fake
    bold, shadowed or repeated text): a glyph is dropped where the same character
    already lies, shifted by less than ``OVERPRINT`` of its size, as poppler drops
    them."""
    kept: list[Char] = []
    for ch in line:
        if ch.text == " " or not _overprints(ch, kept):
            kept.append(ch)
    return kept


@dataclass(slots=True)
class _Line:
    glyphs: list[Char]  # sorted by x, spaces included
    base: float
    height: float
    gaps: list[tuple[int, float, float]]  # column-wide gaps: (index in glyphs, x0, x1)

    def spans(self) -> list[tuple[float, float]]:
        """The x ranges of the line's text between its column-wide gaps."""
        solid = [c for c in self.glyphs if c.text != " "]
        edges = [solid[0].x0] + [v for _, a, b in self.gaps for v in (a, b)] + [solid[-1].x1]
        return list(zip(edges[::2], edges[1::2], strict=True))


def _line(glyphs: list[Char]) -> _Line | None:
    solid = [c for c in glyphs if c.text != " "]
    if not solid:
        return None
    height = max(sorted(c.y1 - c.y0 for c in solid)[len(solid) // 2], 1.0)
    gaps: list[tuple[int, float, float]] = []
    prev: Char | None = None
    for i, ch in enumerate(glyphs):
        if ch.text == " ":
            continue
        if prev is not None and ch.x0 - prev.x1 > COLUMN_GAP * height:
            gaps.append((i, prev.x1, ch.x0))
        prev = ch
    return _Line(glyphs, _baseline(solid[0]), height, gaps)


def _bridged(gap: tuple[int, float, float], near: Sequence[_Line], line: _Line) -> bool:
    """Whether text of a neighbouring line runs across ``gap``: then it is a wide
    space of justified prose, not a gutter between columns or table cells."""
    for other in near:
        if abs(other.base - line.base) > LINE_SPACING * max(line.height, other.height):
            continue
        if any(x0 < gap[1] and x1 > gap[2] for x0, x1 in other.spans()):
            return True
    return False


def fragments(chars: Sequence[Char]) -> list[_Fragment]:
    """Text lines cut at column-wide gaps (where no text of the line just above or
    below runs across the gap), top to bottom then left to right."""
    lines = [
        line
        for line in (_line(without_overprints(g)) for g in text_lines(chars))
        if line is not None
    ]
    out: list[_Fragment] = []
    for k, line in enumerate(lines):
        near = lines[max(k - 2, 0) : k] + lines[k + 1 : k + 3]
        cuts = [gap[0] for gap in line.gaps if not _bridged(gap, near, line)]
        start = 0
        for stop in [*cuts, len(line.glyphs)]:
            piece = line.glyphs[start:stop]
            start = stop
            solid = [c for c in piece if c.text != " "]
            if not solid:
                continue
            text = _fragment_text(piece)
            if text:
                out.append(
                    _Fragment(
                        min(c.x0 for c in solid),
                        min(c.y0 for c in solid),
                        max(c.x1 for c in solid),
                        max(c.y1 for c in solid),
                        text,
                    )
                )
    return out


def blocks(frags: Sequence[_Fragment]) -> list[_Block]:
    """Fragments stacked into blocks (paragraphs, table columns)."""
    out: list[_Block] = []
    open_blocks: list[_Block] = []
    for frag in sorted(frags, key=lambda f: (f.y1, f.x0)):
        best: _Block | None = None
        for block in open_blocks:
            last = block.lines[-1]
            h = max(last.height, frag.height)
            if frag.y1 - last.y1 > LINE_SPACING * h or frag.y1 - last.y1 < 0.5 * h:
                continue  # too far below, or on the same line
            if min(last.x1, frag.x1) - max(last.x0, frag.x0) <= 0:
                continue  # no horizontal overlap
            if not 0.7 <= frag.height / last.height <= 1.45:
                continue
            if best is None or last.y1 > best.lines[-1].y1:
                best = block
        if best is None:
            best = _Block(frag.x0, frag.y0, frag.x1, frag.y1)
            out.append(best)
            open_blocks.append(best)
        best.add(frag)
        limit = frag.y1 - 3 * frag.height
        open_blocks = [b for b in open_blocks if b.lines[-1].y1 >= limit]
    return out


def _cuts(spans: list[tuple[float, float, int]]) -> list[list[int]]:
    """Groups of indices separated by gaps in the union of the spans."""
    groups: list[list[int]] = []
    end = float("-inf")
    for start, stop, index in sorted(spans):
        if groups and start < end:
            groups[-1].append(index)
        else:
            groups.append([index])
        end = max(end, stop)
    return groups


def xy_order(items: Sequence[_Block], depth: int = 0) -> list[_Block]:
    """Recursive XY-cut: horizontal whitespace bands first, then vertical ones."""
    if len(items) <= 1 or depth >= MAX_DEPTH:
        return sorted(items, key=lambda b: (b.y0, b.x0))
    cols = _cuts([(b.x0, b.x1, i) for i, b in enumerate(items)])
    if len(cols) > 1 and all(any(len(items[i].lines) >= PROSE_LINES for i in g) for g in cols):
        # columns of prose: read each column down before the next, even where their
        # paragraph breaks line up across the page
        return [b for g in cols for b in xy_order([items[i] for i in g], depth + 1)]
    rows = _cuts([(b.y0 + 0.1, b.y1 - 0.1, i) for i, b in enumerate(items)])
    if len(rows) > 1:
        return [b for g in rows for b in xy_order([items[i] for i in g], depth + 1)]
    if len(cols) > 1:
        return [b for g in cols for b in xy_order([items[i] for i in g], depth + 1)]
    return topological_order(items)


def topological_order(items: Sequence[_Block]) -> list[_Block]:
    """Blocks in reading order by the two rules of Breuel's "High Performance Document
    Layout Analysis" (2003), as poppler's pdftotext orders its blocks:

    1. a comes before b when their x ranges overlap and a is higher;
    2. a comes before b when a lies entirely left of b and no block c lies between
       them (below b and above a, overlapping both: c would end a's column first).

    The relation is sorted topologically, depth first, visiting blocks top to bottom."""
    start = sorted(items, key=lambda b: (b.y0, b.x0))
    n = len(start)
    if n <= 1 or n > MAX_TOPOLOGICAL:
        return start
    after = [0] * n  # after[i]: bits of the blocks i precedes by rule 1
    before = [0] * n  # before[i]: bits of the blocks that precede i by rule 1
    for i, a in enumerate(start):
        for j, b in enumerate(start):
            if i != j and a.x0 <= b.x1 and b.x0 <= a.x1 and a.y0 < b.y0:
                after[i] |= 1 << j
                before[j] |= 1 << i
    preds = [
        [
            i
            for i, a in enumerate(start)
            if i != j and (before[j] >> i & 1 or (a.x1 <= b.x0 and not after[j] & before[i]))
        ]
        for j, b in enumerate(start)
    ]
    out: list[_Block] = []
    seen = [False] * n
    for root in range(n):
        if seen[root]:
            continue
        seen[root] = True
        stack = [(root, iter(preds[root]))]
        while stack:
            node, pending = stack[-1]
            for k in pending:
                if not seen[k]:
                    seen[k] = True
                    stack.append((k, iter(preds[k])))
                    break
            else:
                stack.pop()
                out.append(start[node])
    return out


def block_text(block: _Block) -> str:
    out: list[str] = []
    for frag in block.lines:
        text = frag.text
        if out and out[-1].endswith("\x02"):
            out[-1] = out[-1][:-1] + text
        else:
            out.append(text)
    return "\n".join(out).replace("\x02", "-")


def _turn(x: float, y: float, turns: int) -> tuple[float, float]:
    """(x, y) turned ``turns`` quarter turns: the frame in which text that runs down
    the page (one turn), right to left upside down (two) or up the page (three) reads
    left to right, lines top to bottom."""
    for _ in range(turns % 4):
        x, y = y, -x
    return x, y


def _turn_box(x0: float, y0: float, x1: float, y1: float, turns: int) -> tuple[float, ...]:
    ax, ay = _turn(x0, y0, turns)
    bx, by = _turn(x1, y1, turns)
    return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)


def ordered_text(chars: Sequence[Char], turns: Sequence[int] | None = None) -> str:
    """The text of ``chars`` in reading order: blocks separated by blank lines.

    ``turns[i]`` is the direction of ``chars[i]`` in quarter turns clockwise (0:
    upright; 1: running down the page; 3: running up it). Each direction's lines and
    blocks are built in its own upright frame; all blocks are then ordered together in
    the frame of the direction most characters have (a page set sideways reads as a
    person would read it turned)."""
    if not turns or not any(turns):
        return "\n\n".join(block_text(b) for b in xy_order(blocks(fragments(chars))))
    groups: dict[int, list[Char]] = {}
    for ch, turn in zip(chars, turns, strict=True):
        group = groups.setdefault(turn % 4, [])
        if ch.text == " ":  # at the end of the glyph before, in its own frame
            if group:
                last = group[-1]
                group.append(Char(" ", last.x1, last.y0, last.x1, last.y1))
            continue
        x0, y0, x1, y1 = _turn_box(ch.x0, ch.y0, ch.x1, ch.y1, turn)
        group.append(Glyph(ch.text, x0, y0, x1, y1, ch.base if isinstance(ch, Glyph) else y1))
    primary = max(groups, key=lambda t: (len(groups[t]), -t))
    placed: list[_Block] = []
    for turn, group in groups.items():
        for block in blocks(fragments(group)):
            x0, y0, x1, y1 = _turn_box(block.x0, block.y0, block.x1, block.y1, primary - turn)
            placed.append(_Block(x0, y0, x1, y1, block.lines))
    return "\n\n".join(block_text(b) for b in xy_order(placed))


def page_glyphs(textpage: Any, frame: Frame) -> tuple[list[Char], list[int]]:
    """The page's characters (loose boxes, displayed top-left-origin frame, as
    ``tables.page_chars`` reads them) and each one's direction in quarter turns
    clockwise, from its text matrix (where the glyph's top points)."""
    import pypdfium2.raw as pdfium_c

    count = min(pdfium_c.FPDFText_CountChars(textpage), MAX_CHARS)
    chars: list[Char] = []
    turns: list[int] = []
    if count <= 0:
        return chars, turns
    rect = pdfium_c.FS_RECTF()
    matrix = pdfium_c.FS_MATRIX()
    px, py = ctypes.c_double(), ctypes.c_double()
    get_origin = pdfium_c.FPDFText_GetCharOrigin
    get_box = pdfium_c.FPDFText_GetLooseCharBox
    get_uni = pdfium_c.FPDFText_GetUnicode
    get_matrix = pdfium_c.FPDFText_GetMatrix
    ox, oy = frame.point(0.0, 0.0)
    upright = frame.rotation == 0
    left, top = frame.left, frame.top
    byref = ctypes.byref
    for i in range(count):
        code = get_uni(textpage, i)
        if code in (0, 10, 13, 0xFFFE, 0xFFFF) or 0xD800 <= code <= 0xDFFF:
            continue
        if code == 32 or not get_box(textpage, i, rect):
            if code == 32 and chars and chars[-1].text != " ":  # placed at the glyph before
                last = chars[-1]
                chars.append(Char(" ", last.x1, last.y0, last.x1, last.y1))
                turns.append(turns[-1])
            continue
        if upright:  # the common case, inlined: only the crop box origin
            x0, x1 = rect.left - left, rect.right - left
            y0, y1 = top - rect.top, top - rect.bottom
            if x0 > x1:
                x0, x1 = x1, x0
            if y0 > y1:
                y0, y1 = y1, y0
        else:
            x0, y0, x1, y1 = frame.box(rect.left, rect.top, rect.right, rect.bottom)
        if x1 - x0 > 500 or y1 - y0 > 500:
            continue
        if chars and (chars[-1].x0, chars[-1].y0, chars[-1].x1, chars[-1].y1) == (x0, y0, x1, y1):
            chars[-1].text += chr(code)  # one glyph, several characters (a ligature)
            continue
        turn = 0
        if get_matrix(textpage, i, matrix):
            # where the glyph's top points on the displayed page, as poppler decides a
            # word's rotation (the baseline's direction would take mirrored text,
            # a < 0 < d, for upside down); a glyph upside down whose baseline still
            # runs to the right (mirrored top to bottom, a > 0 > d) reads left to
            # right, as upright text, as poppler reads it
            if upright:
                ux, uy, bx = matrix.c, -matrix.d, matrix.a
            else:
                ux, uy = frame.point(matrix.c, matrix.d)
                ux, uy = ux - ox, uy - oy
                bx = frame.point(matrix.a, matrix.b)[0] - ox
            if abs(ux) > abs(uy):
                turn = 1 if ux > 0 else 3
            elif uy > 0 and bx <= 0:
                turn = 2
        if not get_origin(textpage, i, byref(px), byref(py)):
            base = _turn_box(x0, y0, x1, y1, turn)[3]
        elif upright and not turn:
            base = top - py.value
        else:
            base = _turn(*frame.point(px.value, py.value), turn)[1]
        chars.append(Glyph(chr(code), x0, y0, x1, y1, base))
        turns.append(turn)
    return chars, turns


def page_text(page: Any, textpage: Any) -> str:
    """The reading-order text of one pypdfium2 page."""
    left, bottom, right, top = page.get_cropbox()
    frame = Frame(float(left), float(bottom), float(right), float(top), page.get_rotation() % 360)
    return ordered_text(*page_glyphs(textpage, frame))
