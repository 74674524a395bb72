"""A document's pages as Markdown: headings, paragraphs and pipe tables.

- **Headings** are lines whose font size is well above the body size (the size most
  characters of the document have): the largest heading size gives ``#``, the next
  ``##``, every smaller one ``###``. Sizes come from PDFium per character
  (``FPDFText_GetFontSize``), sampled on each line; without sizes (the pypdf fallback)
  there are no headings.
- **Paragraphs** join wrapped lines; a paragraph ends at a heading, at a blank line,
  and after a line that ends a sentence well before the usual line width. A hyphen at
  a line's end before a lower-case letter is removed.
- **Tables** (``outcome.extra["tables"]``: ``{"page": i, "bbox": ..., "rows": [[cell]]}``,
  ``i`` counted from 0 in the document) become pipe tables where they stand in their
  page's text (at the first line that held their characters, read by position: the
  prose before a table comes before it, the prose after it after; a table whose place
  is not known, without positions or in layout order, closes its page), and their
  text leaves the prose: by position when the page was read by PDFium (every
  character whose box's centre lies in a table's bbox is cut out of the page's lines,
  :func:`outside_tables`; a line left with nothing is dropped), so a row glued to
  another or to prose in one text line ("17 Apples3 1.20Pears"), a line holding parts
  of several rows, or a row whose cells' words run together is never repeated as
  prose, and the prose beside a table stays. Without positions (OCR, the pypdf
  fallback) a line is left out when all its words (letter and digit runs) are the
  page's tables' words. No tables: nothing of the kind is rendered.
- Running headers and footers (see :mod:`docmill.processors.pdf.layout`) are left out.
"""

from __future__ import annotations

import ctypes
import re
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from docmill.model.tables import entry_cells, filled_rows, rows_of
from docmill.processors.pdf.geometry import Box, Frame
from docmill.processors.pdf.geometry import _bare as bare  # per-character C calls
from docmill.processors.pdf.layout import (
    Edges,
    Rect,
    bands_text,
    page_edges,
    reading_order_bands,
    running_lines,
)

_HEADING_RATIO = 1.15  # a line this much larger than the body text is a heading
_MAX_HEADING_CHARS = 120
_HEADING_SHARE = 0.1  # at most this share of the document's characters
_SENTENCE_END = (".", "!", "?", ":", ";")
_WORD = re.compile(r"[^\W\d_]+|\d+")  # letter runs and digit runs: "Apples3" is two
_EDGE = 1.0  # points: a character this close outside a table's bbox is the table's
_PLACE = "\x00table "  # a line of its own where the page's table N stands (then N)


@dataclass(slots=True)
class PageLines:
    """One page's lines in reading order, with a font size per line when known."""

    page: int  # counted from 0 in the document
    lines: list[str]
    sizes: list[float | None] = field(default_factory=list)
    chars_by_size: Counter[float] = field(default_factory=Counter)
    skip: set[str] = field(default_factory=set)  # running headers/footers (stripped text)
    cut: bool = False  # the lines are the text outside the page's tables (by position)


def line_sizes(textpage: Any) -> tuple[dict[str, float], Counter[float]]:
    """(stripped line text -> its font size, characters per font size) of one page."""
    import pypdfium2.raw as pdfium_c

    count = textpage.count_chars()
    if count <= 0:
        return {}, Counter()
    text: str = textpage.get_text_range(0, count)
    if len(text) != count:  # the text no longer maps onto character indexes
        return {}, Counter()
    raw = textpage.raw
    size_of = pdfium_c.FPDFText_GetFontSize
    sizes: dict[str, float] = {}
    chars: Counter[float] = Counter()
    start = 0
    for line in text.split("\n"):
        stop = start + len(line)
        body = line.strip()
        if body:
            # sample a few characters: a heading has one size all along
            picks = {start + len(line) - len(line.lstrip()), (start + stop) // 2, stop - 2}
            got = [round(size_of(raw, i), 1) for i in picks if start <= i < stop]
            size = max(got) if got else 0.0
            if size > 0:
                sizes[body] = max(size, sizes.get(body, 0.0))
                chars[size] += len(body)
        start = stop + 1
    return sizes, chars


def page_lines(page: int, text: str, sizes: dict[str, float] | None = None) -> PageLines:
    lines = text.split("\n")
    known = sizes or {}
    return PageLines(page, lines, [known.get(line.strip()) for line in lines])


def _heading_levels(pages: list[PageLines], chars: Counter[float], body: float) -> dict[float, int]:
    """Heading size -> level: sizes well above the body's that few characters have
    (a size running through whole paragraphs is body text too)."""
    total = sum(chars.values()) or 1
    big = sorted(
        {
            s
            for p in pages
            for s, line in zip(p.sizes, p.lines, strict=False)
            if s
            and s >= body * _HEADING_RATIO
            and chars[s] <= _HEADING_SHARE * total
            and 0 < len(line.strip()) <= _MAX_HEADING_CHARS
        },
        reverse=True,
    )
    return {size: min(rank + 1, 3) for rank, size in enumerate(big)}


def _cell(value: Any) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text.replace("|", "\\|")


def markdown_table(table: dict[str, Any]) -> str:
    """A record's table entry as a pipe table. Pipe tables have one header row: several
    header rows (``header_rows``) become one, each column's headings joined (a heading
    spanning columns named in each of them: ``Population 2010 | Population 2020``); in
    the body a spanning cell's text stands in its first row and column only."""
    cells = entry_cells(table)
    if not cells:
        return ""
    body = rows_of(cells)
    header = max(0, min(int(table.get("header_rows") or 0), len(body) - 1))
    if header <= 1:
        return pipe_table(body)
    filled = filled_rows(cells)
    names: list[str] = []
    for col in range(len(body[0])):
        parts: list[str] = []
        for row in filled[:header]:
            text = " ".join(str(row[col]).split())
            if text and (not parts or parts[-1] != text):
                parts.append(text)
        names.append(" ".join(parts))
    return pipe_table([names, *body[header:]])


def pipe_table(rows: list[list[Any]]) -> str:
    """Rows as a Markdown pipe table, the first row as its header."""
    rows = [list(r) for r in rows if r]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    cells = [[_cell(c) for c in r] + [""] * (width - len(r)) for r in rows]
    out = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * width]
    out += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(out)


def _paragraphs(lines: Iterable[tuple[str, int]], typical: int) -> list[str]:
    """Blocks of Markdown from (line, heading level or 0)."""
    blocks: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(" ".join(para))
            para.clear()

    for line, level in lines:
        text = " ".join(line.split())
        if not text:
            flush()
            continue
        if "\x02" in text[:-1]:
            text = text[:-1].replace("\x02", "-") + text[-1]
        if level:
            flush()
            blocks.append("#" * level + " " + text)
            continue
        # a break after PDFium's hyphen mark (\x02), or after "-" before a lower-case letter
        if para and (para[-1].endswith("\x02") or (para[-1].endswith("-") and text[:1].islower())):
            para[-1] = para[-1][:-1] + text
        else:
            para.append(text)
        if text.endswith(_SENTENCE_END) and len(text) < 0.7 * typical:
            flush()
    flush()
    return blocks


def render(pages: list[PageLines], tables: list[dict[str, Any]] | None = None) -> str:
    """The document as Markdown (pages separated by a blank line)."""
    chars: Counter[float] = Counter()
    for p in pages:
        chars.update(p.chars_by_size)
    body = chars.most_common(1)[0][0] if chars else 0.0
    levels = _heading_levels(pages, chars, body) if body else {}
    by_page: dict[int, list[dict[str, Any]]] = {}
    for table in tables or []:
        if isinstance(table, dict) and isinstance(table.get("page"), int):
            by_page.setdefault(table["page"], []).append(table)
    lengths = sorted(len(line.strip()) for p in pages for line in p.lines if line.strip())
    typical = lengths[int(len(lengths) * 0.8)] if lengths else 80
    blocks: list[str] = []
    for p in pages:
        here = by_page.get(p.page, [])
        table_words = {
            w.casefold()
            for t in here
            for r in t.get("rows") or []
            for c in r or []
            for w in _WORD.findall(str(c or ""))
        }
        kept: list[tuple[str, int]] = []
        placed: set[int] = set()
        for line, size in zip(p.lines, p.sizes or [None] * len(p.lines), strict=False):
            if line.startswith(_PLACE):  # the table stands here: the prose before it first
                n = int(line[len(_PLACE) :])
                if 0 <= n < len(here) and n not in placed:
                    blocks += _paragraphs(kept, typical)
                    kept = []
                    placed.add(n)
                    block = markdown_table(here[n])
                    if block:
                        blocks.append(block)
                continue
            stripped = line.strip()
            if " ".join(stripped.split()) in p.skip:
                continue
            if not p.cut and table_words:  # no positions: by the tables' words
                words = {w.casefold() for w in _WORD.findall(stripped)}
                if words and words <= table_words:
                    continue
            kept.append((line, levels.get(size, 0) if size else 0))
        blocks += _paragraphs(kept, typical)
        rest = (markdown_table(tb) for n, tb in enumerate(here) if n not in placed)  # place unknown
        blocks += [t for t in rest if t]
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def outside_tables(
    textpage: Any,
    frame: Frame,
    tables: Sequence[Box],
    text: str,
    bands: Sequence[Rect] | None = None,
) -> str | None:
    """``text``, the page's text as the Markdown reads it (PDFium's order; with
    ``bands``, each band's text in turn, as
    :func:`~docmill.processors.pdf.layout.reading_order_text` reads them), without the
    characters that lie in ``tables`` (bboxes in the displayed page's frame): a
    character is the table's when the centre of its loose box lies in one (``_EDGE``
    points of slack), whatever line or word PDFium put it in. A line that loses
    characters keeps the rest (its pieces joined by a space) or, left with none, is
    dropped; every other line stays as it was. The text's characters are matched to
    PDFium's character indexes in order (:func:`_flags`); None when PDFium's text does
    not map onto its characters. The first line that holds a table's characters is
    preceded by a line ``_PLACE`` + the table's index in ``tables``: where
    :func:`render` puts it."""
    import pypdfium2.raw as pdfium_c

    count = textpage.count_chars()
    if count <= 0:
        return text
    chars: str = textpage.get_text_range(0, count)
    if len(chars) != count:
        return None
    handle = getattr(textpage, "_as_parameter_", textpage)
    rect = (ctypes.c_float * 4)()  # FS_RECTF: left, top, right, bottom
    rect_ref = ctypes.byref(rect)
    read_rect = _FOUR_FLOATS.unpack_from
    get_box = bare(pdfium_c.FPDFText_GetLooseCharBox)
    boxes = [(b[0] - _EDGE, b[1] - _EDGE, b[2] + _EDGE, b[3] + _EDGE) for b in tables]
    upright, point, left0, top0 = frame.rotation == 0, frame.point, frame.left, frame.top
    solid = _Solid([], [], [], [])
    keep, cuts, xs, ys = solid.chars.append, solid.cut.append, solid.x.append, solid.y.append
    for i, ch in enumerate(chars):
        if ch.isspace() or not get_box(handle, i, rect_ref):
            continue
        left, top, right, bottom = read_rect(rect)
        ux, uy = (left + right) / 2, (top + bottom) / 2
        cx, cy = (ux - left0, top0 - uy) if upright else point(ux, uy)  # displayed page
        cut = -1
        for n, b in enumerate(boxes):
            if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]:
                cut = n
                break
        keep(ch)
        cuts(cut)
        xs(ux)
        ys(uy)
    placed: set[int] = set()
    if bands is None:
        return _cut_lines(text, solid, placed)
    parts = []
    for left, bottom, right, top in bands:
        mine = [
            k
            for k, (x, y) in enumerate(zip(solid.x, solid.y, strict=True))
            if left <= x <= right and bottom <= y <= top
        ]
        shown = textpage.get_text_bounded(left=left, bottom=bottom, right=right, top=top)
        part = _Solid([solid.chars[k] for k in mine], [solid.cut[k] for k in mine], [], [])
        parts.append(_cut_lines(shown.replace("\r\n", "\n").replace("\r", "\n"), part, placed))
    return "\n".join(p.strip("\n") for p in parts if p.strip())


@dataclass(slots=True)
class _Solid:
    """A page's characters but white space, in PDFium's index order: each one, the
    index of the table it lies in (-1: none), its centre (PDF points)."""

    chars: list[str]
    cut: list[int]
    x: list[float]
    y: list[float]


def layout_outside_tables(textpage: Any, frame: Frame, tables: Sequence[Box]) -> str:
    """The page's text in layout order (:mod:`~docmill.processors.pdf.reading_order`)
    read from its characters outside ``tables`` (the centre of the loose box, as
    :func:`outside_tables` decides; a space goes with the glyph before it)."""
    from docmill.processors.pdf.reading_order import ordered_text, page_glyphs

    chars, turns = page_glyphs(textpage, frame)
    boxes = [(b[0] - _EDGE, b[1] - _EDGE, b[2] + _EDGE, b[3] + _EDGE) for b in tables]
    kept: list[Any] = []
    kept_turns: list[int] = []
    cut = False
    for ch, turn in zip(chars, turns, strict=True):
        if ch.text != " ":
            cx, cy = (ch.x0 + ch.x1) / 2, (ch.y0 + ch.y1) / 2
            cut = any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in boxes)
        if not cut:
            kept.append(ch)
            kept_turns.append(turn)
    return ordered_text(kept, kept_turns)


_SAME = str.maketrans({"\x02": "-", "\ufffe": "-", "\u00ad": "-"})  # PDFium's hyphen marks
_FOUR_FLOATS = struct.Struct("4f")
_RESYNC = 6  # characters that must match where the matching picks up again
_NOT_SPACE = re.compile(r"\S")
_SPACE = re.compile(r"\s+")


def _flags(text: str, solid: _Solid) -> list[int]:
    """For each character of ``text``: the index of the table it is in (-1: none). Its non-space characters are
    matched to PDFium's (``solid``, in index order) one after the other; where they
    differ (text outside the page's box, a glyph PDFium spells two ways) the matching
    picks up again at the next place where ``_RESYNC`` characters agree (after, else
    before: text read in another order), and the characters not matched are kept
    (prose)."""
    seq = "".join(solid.chars).translate(_SAME)
    cut = solid.cut
    flags = [-1] * len(text)
    at = [m.start() for m in _NOT_SPACE.finditer(text)]
    mine = _SPACE.sub("", text).translate(_SAME)
    if mine == seq:  # the common case: the same characters in the same order
        for i, gone in zip(at, cut, strict=True):
            flags[i] = gone
        return flags
    j = 0
    for k, i in enumerate(at):
        if j < len(seq) and seq[j] == mine[k]:
            flags[i] = cut[j]
            j += 1
            continue
        window = mine[k : k + _RESYNC]
        found = seq.find(window, j)
        if found < 0:  # text read in another order (``extract.reading_order = layout``)
            found = seq.find(window)
        if found >= 0 and len(mine) - k >= _RESYNC:
            j = found
            flags[i] = cut[j]
            j += 1
    return flags


def _cut_lines(text: str, solid: _Solid, placed: set[int]) -> str:
    """``text`` without its table characters (see :func:`outside_tables`), a place line
    before the first line of each table not yet ``placed``."""
    if all(n < 0 for n in solid.cut):
        return text
    flags = _flags(text, solid)
    lines = []
    start = 0
    for line in text.split("\n"):
        stop = start + len(line)
        cut = flags[start:stop]
        start = stop + 1
        if any(n >= 0 for n in cut):
            for n in dict.fromkeys(n for n in cut if n >= 0 and n not in placed):  # in order
                lines.append(f"{_PLACE}{n}")
                placed.add(n)
            pieces: list[str] = []
            piece: list[str] = []
            for ch, gone in zip(line, cut, strict=True):
                if gone >= 0:
                    if piece:
                        pieces.append("".join(piece).strip())
                        piece = []
                else:
                    piece.append(ch)
            pieces.append("".join(piece).strip())
            line = " ".join(p for p in pieces if p)
            if not line:
                continue
        lines.append(line)
    return "\n".join(lines)


class MarkdownPass:
    """Collects what Markdown needs while the extractor walks the pages (the text
    pages are only open then): reading order, running lines, font sizes, and the text
    outside the page's tables. ``finish`` marks the running headers/footers in the
    metadata and renders the Markdown."""

    def __init__(self, first_page: int, layout: bool = False) -> None:
        self.first_page = first_page
        self.layout = layout  # the page text is in layout order (extract.reading_order)
        self.pages: list[PageLines] = []
        self.edges: list[Edges | None] = []

    def add_page(
        self,
        textpage: Any,
        width: float,
        height: float,
        text: str,
        tables: Sequence[Box] = (),
        frame: Frame | None = None,
    ) -> None:
        """One page read by PDFium; ``text`` is its page text (PDFium's order);
        ``tables``: the bboxes of the tables found on it, in ``frame``."""
        bands = reading_order_bands(textpage, width, height)
        ordered = bands_text(textpage, bands) if bands is not None else None
        sizes, chars = line_sizes(textpage)
        shown = ordered or text
        outside = None
        if tables and frame is not None:
            if self.layout and ordered is None:
                outside = layout_outside_tables(textpage, frame, tables)
            else:
                outside = outside_tables(textpage, frame, tables, shown, bands)
        shown = outside if outside is not None else shown
        lines = page_lines(self.first_page + len(self.pages), shown, sizes)
        lines.cut = outside is not None
        lines.chars_by_size = chars
        self.pages.append(lines)
        self.edges.append(page_edges(textpage, width))

    def add_text(self, text: str) -> None:
        """One page with no text page (unreadable, or from the fallback parser)."""
        self.pages.append(page_lines(self.first_page + len(self.pages), text))
        self.edges.append(None)

    def finish(self, metadata: dict[str, Any], extra: dict[str, Any]) -> None:
        headers, footers = running_lines(self.edges, self.first_page)
        metadata["headers"], metadata["footers"] = headers, footers
        for mark in (*headers, *footers):
            self.pages[mark["page"] - self.first_page].skip.add(mark["text"])
        extra["markdown"] = render(self.pages, extra.get("tables"))
