"""A page's characters as text lines and chunks: what table detection and structure read.

A *line* is the characters whose vertical middles overlap (a baseline band), left to
right. A line is cut into *chunks* wherever the gap between two characters is wider
than :data:`CHUNK_GAP` line heights: the text of one cell, or of one column of prose.
Every value is in PDF points with a top-left origin. Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from docmill.processors.pdf.geometry import Box, Char

CHUNK_GAP = 0.6  # a gap wider than this many line heights separates two chunks
WORD_GAP = 0.2  # a gap wider than this many line heights is a space between words
SPACE_GAP = 0.1  # where the layer has a space: a gap wider than this is one (a tight font)


@dataclass(slots=True)
class Chunk:
    x0: float
    y0: float
    x1: float
    y1: float
    chars: list[Char]
    text: str = ""
    words: int = 0
    numeric: bool = False  # is_numeric(text)


@dataclass(slots=True)
class Line:
    x0: float
    y0: float
    x1: float
    y1: float
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def height(self) -> float:
        return max(self.y1 - self.y0, 1.0)

    @property
    def middle(self) -> float:
        return (self.y0 + self.y1) / 2


def group_lines(chars: Iterable[Char]) -> list[list[Char]]:
    """Characters grouped into text lines (vertical overlap of their middles), each
    sorted left to right; lines in top-to-bottom order."""
    out = _bands(chars)
    by_x = _BY_X0
    for line in out:
        line.sort(key=by_x)
    return out


def _bands(chars: Iterable[Char]) -> list[list[Char]]:
    """:func:`group_lines` without the final left-to-right sort: the lines' characters
    in the order of their middles."""
    items = chars if isinstance(chars, list) else list(chars)
    keys = [c.y0 + c.y1 for c in items]
    out: list[list[Char]] = []
    current: list[Char] = []
    top = bottom = 0.0
    # sorting the positions by key is the stable sort of the characters by key
    for i in sorted(range(len(items)), key=keys.__getitem__):
        ch = items[i]
        mid = keys[i] / 2
        if out and top <= mid <= bottom:
            current.append(ch)
            y1 = ch.y1
            reach = y1  # min(y1, mid + 0.3 height), as min() compares
            far = mid + (y1 - ch.y0) * 0.3
            if far < reach:
                reach = far
            if reach > bottom:
                bottom = reach
        else:
            current = [ch]
            out.append(current)
            h = ch.y1 - ch.y0
            if h < 1.0:
                h = 1.0
            top, bottom = mid - h * 0.35, mid + h * 0.35
    return _attach_small(out)


_BY_X0 = attrgetter("x0")
_Y0 = attrgetter("y0")
_Y1 = attrgetter("y1")


def _attach_small(lines: list[list[Char]]) -> list[list[Char]]:
    """Superscripts and subscripts (a line of much smaller characters overlapping a line
    beside it) join that line: a footnote mark is part of its cell, not a row."""
    if len(lines) < 2:
        return lines

    def size(line: list[Char]) -> float:  # the median glyph's height (spaces aside)
        hs = sorted([c.y1 - c.y0 for c in line if c.text != " "] or [c.y1 - c.y0 for c in line])
        return hs[len(hs) // 2]

    sizes = [size(ln) for ln in lines]
    tops = [min(map(_Y0, ln)) for ln in lines]
    bottoms = [max(map(_Y1, ln)) for ln in lines]
    merged = [False] * len(lines)
    for i in range(len(lines)):
        for j in (i - 1, i + 1):
            if not 0 <= j < len(lines) or merged[j] or sizes[i] >= 0.8 * sizes[j]:
                continue
            if tops[i] < bottoms[j] and bottoms[i] > tops[j]:  # overlapping lines
                lines[j].extend(lines[i])
                merged[i] = True
                break
    return [ln for ln, m in zip(lines, merged, strict=True) if not m]


_SPACES = re.compile(r" {2,}")


def line_text(chars: Sequence[Char]) -> str:
    """The characters of one line, a space where the gap is wider than a word space
    (:data:`WORD_GAP`), or where the layer has one and the gap is wider than
    :data:`SPACE_GAP` (words of a tight font; a layer's space over no gap, a stray one
    between overprinted or split glyphs, parts no word); PDFium's ``\\x02`` (a hyphen
    that broke a word) becomes ``-``."""
    parts: list[str] = []
    append = parts.append
    prev_h = prev_x1 = 0.0
    first = True
    spaced = False  # the layer has a space since the last glyph
    for ch in chars:
        text = ch.text
        if text == " ":
            spaced = not first
            continue
        h_ch = ch.y1 - ch.y0
        if first:
            first = False
        else:
            h = h_ch  # max(h_ch, prev_h, 1.0), as max() compares
            if prev_h > h:
                h = prev_h
            if h < 1.0:
                h = 1.0
            gap = ch.x0 - prev_x1
            if gap > WORD_GAP * h or (spaced and gap > SPACE_GAP * h):
                append(" ")
            spaced = False
        append(text)
        prev_h, prev_x1 = h_ch, ch.x1
    return _finish(parts)


def _finish(parts: list[str]) -> str:
    """The text of :func:`line_text`'s parts: hyphens, no double spaces, stripped."""
    joined = "".join(parts)
    if "\x02" in joined:
        joined = joined.replace("\x02", "-")
    if "  " in joined:
        joined = _SPACES.sub(" ", joined)
    return joined.strip()


def cell_text(chars: Sequence[Char], known: str | None = None) -> str:
    """The text of a cell: its lines top to bottom, joined by line breaks. ``known`` is
    ``line_text(chars)`` where the caller has it already (a chunk's text)."""
    if not chars:
        return ""
    lo = hi = (chars[0].y0 + chars[0].y1) / 2
    tallest = chars[0].y1 - chars[0].y0
    in_order = True  # left to right already: sorting them changes nothing
    x = chars[0].x0
    for c in chars:  # min and max of the middles, max of the heights, as min()/max() compare
        mid = (c.y0 + c.y1) / 2
        if mid < lo:
            lo = mid
        if mid > hi:
            hi = mid
        height = c.y1 - c.y0
        if height > tallest:
            tallest = height
        if not x <= c.x0:
            in_order = False
        x = c.x0
    if hi - lo <= 0.35 * tallest:  # one line
        if in_order:
            return known if known is not None else line_text(chars)
        return line_text(sorted(chars, key=_BY_X0))
    return "\n".join(t for t in (line_text(line) for line in group_lines(chars)) if t)


def chunk_line(chars: Sequence[Char]) -> Line:
    """One text line (its characters sorted by x) cut into chunks. Each chunk's text is
    :func:`line_text` of its characters, read as they join it (a chunk takes characters
    only while it is the last)."""
    chunks: list[Chunk] = []
    last: Chunk | None = None
    parts: list[str] = []  # line_text of the last chunk so far, and its last character's
    prev_h = prev_x1 = 0.0
    spaced = False  # line_text's: the layer has a space since the chunk's last glyph
    for ch in chars:
        text = ch.text
        h = ch.y1 - ch.y0
        if text == " ":
            if last is not None:
                last.chars.append(ch)
                spaced = True
            continue
        if text.isspace():
            if last is None:
                continue
            last.chars.append(ch)
        elif last is not None and ch.x0 - last.x1 <= CHUNK_GAP * (
            h if h > (lh := last.y1 - last.y0) else lh if lh > 1.0 else 1.0
        ):
            if ch.x1 > last.x1:
                last.x1 = ch.x1
            if ch.y0 < last.y0:
                last.y0 = ch.y0
            if ch.y1 > last.y1:
                last.y1 = ch.y1
            last.chars.append(ch)
        else:
            if last is not None:
                _set_text(last, parts)
            last = Chunk(ch.x0, ch.y0, ch.x1, ch.y1, [ch])
            chunks.append(last)
            parts = [text]
            prev_h, prev_x1, spaced = h, ch.x1, False
            continue
        # one step of line_text over the last chunk's characters
        gap_h = h  # max(h, prev_h, 1.0), as max() compares
        if prev_h > gap_h:
            gap_h = prev_h
        if gap_h < 1.0:
            gap_h = 1.0
        gap = ch.x0 - prev_x1
        if gap > WORD_GAP * gap_h or (spaced and gap > SPACE_GAP * gap_h):
            parts.append(" ")
        spaced = False
        parts.append(text)
        prev_h, prev_x1 = h, ch.x1
    if last is not None:
        _set_text(last, parts)
    kept = [c for c in chunks if c.text]
    if not kept:
        return Line(0, 0, 0, 0, [])
    first = kept[0]
    x0, y0, x1, y1 = first.x0, first.y0, first.x1, first.y1
    for c in kept:  # min()/max() over the chunks, as they compare
        if c.x0 < x0:
            x0 = c.x0
        if c.y0 < y0:
            y0 = c.y0
        if c.x1 > x1:
            x1 = c.x1
        if c.y1 > y1:
            y1 = c.y1
    return Line(x0, y0, x1, y1, kept)


def _set_text(chunk: Chunk, parts: list[str]) -> None:
    text = chunk.text = _finish(parts)
    if text:
        chunk.words = text.count(" ") + 1
        chunk.numeric = is_numeric(text)


_NUMERIC = re.compile(r"^[\s$€£¥%()+\-−–.,:/\d*x×]+$")
_DIGIT = re.compile(r"\d")


def is_numeric(text: str) -> bool:
    """Whether the text is a figure: digits among currency, sign and separator marks.
    (Of the marks allowed, only ``\\d``'s decimal digits are ``str.isdigit``.)"""
    return bool(text) and bool(_NUMERIC.match(text)) and _DIGIT.search(text) is not None


def page_lines(chars: Iterable[Char]) -> list[Line]:
    """The text lines of ``chars``, top to bottom, each cut into chunks."""
    lines = [chunk_line(line) for line in group_lines(chars)]
    return [ln for ln in lines if ln.chunks]


def box_of(boxes: Iterable[Box]) -> Box:
    items = list(boxes)
    return (
        min(b[0] for b in items), min(b[1] for b in items),
        max(b[2] for b in items), max(b[3] for b in items),
    )


def inside(ch: Char, box: Box, pad: float = 1.0) -> bool:
    cx, cy = (ch.x0 + ch.x1) / 2, (ch.y0 + ch.y1) / 2
    return box[0] - pad <= cx <= box[2] + pad and box[1] - pad <= cy <= box[3] + pad
