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
  ``i`` counted from 0 in the document) become pipe tables at the end of their page;
  the page's lines made only of the table's words are left out, so the table's text is
  not repeated. No tables: nothing of the kind is rendered.
- Running headers and footers (see :mod:`docmill.processors.pdf.layout`) are left out.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from docmill.model.tables import entry_cells, filled_rows, rows_of
from docmill.processors.pdf.layout import Edges, page_edges, reading_order_text, running_lines

_HEADING_RATIO = 1.15  # a line this much larger than the body text is a heading
_MAX_HEADING_CHARS = 120
_HEADING_SHARE = 0.1  # at most this share of the document's characters
_SENTENCE_END = (".", "!", "?", ":", ";")
_WORD = re.compile(r"\w+")


@dataclass(slots=True)
class PageLines:
    """One page's lines in reading order, with a font size per line when known."""

    page: int  # counted from 0 in the document
    lines: list[str]
    sizes: list[float | None] = field(default_factory=list)
    chars_by_size: Counter[float] = field(default_factory=Counter)
    skip: set[str] = field(default_factory=set)  # running headers/footers (stripped text)


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
        for line, size in zip(p.lines, p.sizes or [None] * len(p.lines), strict=False):
            stripped = line.strip()
            if " ".join(stripped.split()) in p.skip:
                continue
            words = {w.casefold() for w in _WORD.findall(stripped)}
            if table_words and words and words <= table_words:
                continue
            kept.append((line, levels.get(size, 0) if size else 0))
        blocks += _paragraphs(kept, typical)
        blocks += [t for t in (markdown_table(tb) for tb in here) if t]
    return "\n\n".join(blocks) + ("\n" if blocks else "")


class MarkdownPass:
    """Collects what Markdown needs while the extractor walks the pages (the text
    pages are only open then): reading order, running lines, font sizes. ``finish``
    marks the running headers/footers in the metadata and renders the Markdown."""

    def __init__(self, first_page: int) -> None:
        self.first_page = first_page
        self.pages: list[PageLines] = []
        self.edges: list[Edges | None] = []

    def add_page(self, textpage: Any, width: float, height: float, text: str) -> None:
        """One page read by PDFium; ``text`` is its page text (PDFium's order)."""
        ordered = reading_order_text(textpage, width, height)
        sizes, chars = line_sizes(textpage)
        lines = page_lines(self.first_page + len(self.pages), ordered or text, sizes)
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
