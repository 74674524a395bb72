"""DOCX (WordprocessingML): the body in order, and the parts around it, read and marked.

``text`` holds the body: paragraphs and table rows (cells tab-separated) where they
stand; a text box's paragraphs on lines of their own (before the paragraph that holds
it when nothing precedes it there, after it otherwise), never run into the next
words; an equation as inline LaTeX (``$\\frac{a}{b}$``, ``omml``). ``parts`` holds
what is not the body, once each: ``footnotes`` and ``endnotes`` (``label``: their
number in reference order), ``comments`` (``author``), ``headers`` and ``footers`` (the
distinct ones of every section), ``alt_text`` (images' descriptions), ``charts``.
``tables`` gives each table's ``rows`` and its ``cells`` with spans (``gridSpan``,
``vMerge``). Markdown (when asked) renders headings from the paragraph styles, list
items, pipe tables, ``[^n]`` footnote marks with the notes at the end.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from docmill.model import DocState, ProcessOutcome
from docmill.model.tables import Cell, table_entry
from docmill.processors.formats.charts import charts_of
from docmill.processors.formats.markdown_blocks import part, pipe_table, with_parts
from docmill.processors.formats.omml import math_text
from docmill.processors.formats.package import R_ID, FormatError, Package, open_package
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import DOCX

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_FALLBACK, _CHOICE = f"{_MC}Fallback", f"{_MC}Choice"
_M = "{http://schemas.openxmlformats.org/officeDocument/2006/math}"
_WP = "{http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing}"
_V = "{urn:schemas-microsoft-com:vml}"
_O = "{urn:schemas-microsoft-com:office:office}"
_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_P, _TBL, _TR, _TC, _SDT = f"{W}p", f"{W}tbl", f"{W}tr", f"{W}tc", f"{W}sdt"
_TEXT, _TAB, _BREAKS = f"{W}t", f"{W}tab", (f"{W}br", f"{W}cr")
_WRAPPERS = frozenset({_SDT, f"{W}sdtContent", f"{W}customXml"})
_SKIPPED = frozenset(
    {
        _FALLBACK, f"{W}del", f"{W}moveFrom", f"{W}delText", f"{W}instrText", f"{W}rPr",
        f"{W}pPr", f"{W}sectPr", f"{W}tblPr", f"{W}trPr", f"{W}tcPr", f"{W}sdtPr",
    }
)
_MATH = (f"{_M}oMath", f"{_M}oMathPara")
_TXBX = f"{W}txbxContent"
_NOTE_REFS = {f"{W}footnoteReference": "footnotes", f"{W}endnoteReference": "endnotes"}
_OFF = ("0", "false", "off")


@dataclass
class _Reading:
    """What reading one story (the body, a note, a header) collects besides its lines."""

    markdown: bool
    headings: dict[str, int]  # style id -> heading level
    tables: list[dict[str, Any]] = field(default_factory=list)
    alts: list[str] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)  # relationship ids
    notes: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"footnotes": {}, "endnotes": {}}
    )  # kind -> note id -> number in reference order


@dataclass
class _Block:
    text: str
    md: str


def _style_headings(styles: ET.Element | None) -> dict[str, int]:
    """Paragraph style id -> heading level (Title 1, "heading N" N), from styles.xml."""
    out: dict[str, int] = {}
    for style in styles.iter(f"{W}style") if styles is not None else ():
        style_id = style.get(f"{W}styleId", "")
        name_el = style.find(f"{W}name")
        name = (name_el.get(f"{W}val", "") if name_el is not None else "").lower()
        if name == "title":
            out[style_id] = 1
        elif name.startswith("heading ") and name[8:].isdigit():
            out[style_id] = min(int(name[8:]), 6)
    return out


def _heading_level(p: ET.Element, reading: _Reading) -> int:
    style = p.find(f"{W}pPr/{W}pStyle")
    style_id = style.get(f"{W}val", "") if style is not None else ""
    if style_id in reading.headings:
        return reading.headings[style_id]
    if style_id.lower() == "title":
        return 1
    if style_id.lower().startswith("heading") and style_id[7:].isdigit():
        return min(int(style_id[7:]), 6)
    return 0


class _Inline:
    """A paragraph's runs: text, its Markdown, and the text boxes it holds."""

    def __init__(self, reading: _Reading) -> None:
        self.reading = reading
        self.text: list[str] = []
        self.md: list[str] = []
        self.before: list[_Block] = []  # text boxes met before any text
        self.after: list[_Block] = []

    def add(self, text: str, md: str | None = None) -> None:
        self.text.append(text)
        if self.reading.markdown:
            self.md.append(text if md is None else md)

    def walk(self, element: ET.Element) -> None:
        for child in element:
            tag = child.tag
            if tag in _SKIPPED:
                continue
            if tag == _TEXT:
                self.add(child.text or "")
            elif tag == _TAB:
                self.add("\t")
            elif tag in _BREAKS:
                self.add("\n")
            elif tag in _MATH:
                self.add(math_text(child))
            elif tag == _TXBX:
                boxes = _blocks(child, self.reading)
                (self.after if "".join(self.text).strip() else self.before).extend(boxes)
            elif tag in _NOTE_REFS:
                numbers = self.reading.notes[_NOTE_REFS[tag]]
                note_id = child.get(f"{W}id", "")
                number = numbers.setdefault(note_id, len(numbers) + 1)
                prefix = "" if tag == f"{W}footnoteReference" else "e"
                self.add("", f"[^{prefix}{number}]")
            elif tag == f"{_WP}docPr":
                alt = " ".join((child.get("descr") or child.get("title") or "").split())
                if alt:
                    self.reading.alts.append(alt)
                    self.add("", f"![{alt.replace(']', ' ')}]()")
            elif tag in (f"{_V}shape", f"{_V}rect", f"{_V}imagedata"):
                alt = " ".join((child.get("alt") or child.get(f"{_O}title") or "").split())
                if alt:
                    self.reading.alts.append(alt)
                self.walk(child)
            elif tag == f"{_C}chart":
                rel_id = child.get(R_ID, "")
                if rel_id:
                    self.reading.charts.append(rel_id)
            elif tag == f"{W}sym":
                code = child.get(f"{W}char", "")
                try:
                    self.add(chr(int(code, 16) & 0xFFFF if int(code, 16) >= 0xF000 else int(code, 16)))
                except ValueError:
                    pass
            elif tag == f"{W}noBreakHyphen":
                self.add("-")
            elif len(child):
                self.walk(child)  # runs, hyperlinks, insertions, fields, Choice...


def _paragraph(p: ET.Element, reading: _Reading) -> list[_Block]:
    inline = _Inline(reading)
    inline.walk(p)
    text = "".join(inline.text)
    md = "".join(inline.md).strip() if reading.markdown else ""
    if md:
        level = _heading_level(p, reading)
        if level:
            md = "#" * level + " " + " ".join(md.split())
        elif p.find(f"{W}pPr/{W}numPr") is not None:
            depth = p.find(f"{W}pPr/{W}numPr/{W}ilvl")
            indent = "  " * int(depth.get(f"{W}val", "0") if depth is not None else "0")
            md = f"{indent}- {md}"
    return [*inline.before, _Block(text, md), *inline.after]


def _children(parent: ET.Element, tag: str) -> Iterator[ET.Element]:
    """``parent``'s children with ``tag``, looking through content-control wrappers but
    never into a nested table."""
    for child in parent:
        if child.tag == tag:
            yield child
        elif child.tag in _WRAPPERS:
            yield from _children(child, tag)


def _span(tc: ET.Element) -> int:
    span = tc.find(f"{W}tcPr/{W}gridSpan")
    try:
        return max(1, min(int(span.get(f"{W}val", "1")), 1000)) if span is not None else 1
    except ValueError:
        return 1


def _vmerge(tc: ET.Element) -> str | None:
    """"restart", "continue" or None (not vertically merged)."""
    merge = tc.find(f"{W}tcPr/{W}vMerge")
    if merge is None:
        return None
    return "restart" if merge.get(f"{W}val") == "restart" else "continue"


def _table(tbl: ET.Element, reading: _Reading) -> list[_Block]:
    rows: list[list[str]] = []
    cells: list[dict[str, Any]] = []
    open_cells: dict[int, dict[str, Any]] = {}  # grid column -> the cell a vMerge continues
    for r, tr in enumerate(_children(tbl, _TR)):
        row: list[str] = []
        before = tr.find(f"{W}trPr/{W}gridBefore")
        if before is not None and before.get(f"{W}val", "0").isdigit():
            row.extend([""] * min(int(before.get(f"{W}val", "0")), 1000))
        for tc in _children(tr, _TC):
            col, span, merge = len(row), _span(tc), _vmerge(tc)
            if merge == "continue" and col in open_cells:
                open_cells[col]["rowspan"] += 1
                row.extend([""] * span)
                continue
            text = "\n".join(b.text for b in _blocks(tc, reading)).strip()
            cell = {"row": r, "col": col, "rowspan": 1, "colspan": span, "text": text}
            cells.append(cell)
            if merge == "restart":
                open_cells[col] = cell
            else:
                open_cells.pop(col, None)
            row.append(text)
            row.extend([""] * (span - 1))  # a merged cell keeps the columns in line
        rows.append(row)
    header = tbl.find(f"{W}tr/{W}trPr/{W}tblHeader")
    is_header = header is not None and header.get(f"{W}val", "true").lower() not in _OFF
    header_rows = 1 if is_header and rows else 0
    entry = _entry(cells, len(rows), header_rows)
    rows = entry["rows"]
    reading.tables.append(entry)
    lines = ["\t".join(cell.replace("\n", " ") for cell in row) for row in rows]
    md = pipe_table(rows, header_rows) if reading.markdown and rows else ""
    return [_Block("\n".join(lines), md)] if lines else []


def _entry(cells: list[dict[str, Any]], nrows: int, header_rows: int) -> dict[str, Any]:
    """A table entry (``model.tables``) from cells; spans that overlap (a damaged
    table) are dropped rather than lose the table."""
    found = [Cell(c["row"], c["col"], c["rowspan"], c["colspan"], c["text"]) for c in cells]
    try:
        return table_entry(0, found, header_rows=header_rows, nrows=nrows)
    except ValueError:
        plain = [Cell(c.row, c.col, 1, 1, c.text) for c in found]
        return table_entry(0, plain, header_rows=header_rows, nrows=nrows)


def _blocks(container: ET.Element, reading: _Reading) -> list[_Block]:
    """Paragraph and table blocks of a body, a cell, a note or a text box, in order."""
    out: list[_Block] = []
    for child in container:
        tag = child.tag
        if tag == _P:
            out.extend(_paragraph(child, reading))
        elif tag == _TBL:
            out.extend(_table(child, reading))
        elif tag in _MATH:  # a display equation between paragraphs
            latex = math_text(child)
            out.append(_Block(latex, f"$${latex.strip('$')}$$"))
        elif tag not in _SKIPPED and len(child):
            out.extend(_blocks(child, reading))  # sdt, sdtContent, customXml, ins...
    return out


def _story(container: ET.Element, reading: _Reading) -> tuple[str, str]:
    blocks = _blocks(container, reading)
    text = "\n".join(b.text for b in blocks).strip()
    md = "\n\n".join(b.md for b in blocks if b.md) if reading.markdown else ""
    return text, md


def _notes(pkg: Package, target: str, kind: str, reading: _Reading) -> list[dict[str, Any]]:
    root = pkg.optional_xml(target)
    if root is None:
        return []
    numbers = reading.notes[kind]
    found: list[tuple[int, str, str]] = []
    for note in root:
        if note.tag not in (f"{W}footnote", f"{W}endnote"):
            continue
        if note.get(f"{W}type", "normal") != "normal":
            continue  # separators and continuation notices
        note_id = note.get(f"{W}id", "")
        text, _ = _story(note, reading)
        if text:
            number = numbers.get(note_id)
            order = number if number is not None else len(numbers) + 1 + len(found)
            found.append((order, f"{'e' if kind == 'endnotes' else ''}{order}", text))
    found.sort(key=lambda item: item[0])
    return [part(0, kind, text, label=label) for _, label, text in found]


def _comments(pkg: Package, target: str, reading: _Reading) -> list[dict[str, Any]]:
    root = pkg.optional_xml(target)
    out = []
    for comment in root.iter(f"{W}comment") if root is not None else ():
        text, _ = _story(comment, reading)
        if text:
            out.append(part(0, "comments", text, author=comment.get(f"{W}author")))
    return out


def _headers_footers(
    pkg: Package, body: ET.Element, rels: dict[str, tuple[str, str]], reading: _Reading
) -> list[dict[str, Any]]:
    """The distinct headers and footers of every section, in the order the sections
    name them (once each, never per page)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    refs = [
        (ref.get(R_ID, ""), kind)
        for ref in body.iter()
        for kind in ("header", "footer")
        if ref.tag == f"{W}{kind}Reference"
    ]
    for rel_id, kind in sorted(refs, key=lambda item: item[1] == "footer"):
        target = rels.get(rel_id, ("", ""))[1]
        if not target or not pkg.has(target):
            continue
        text, _ = _story(pkg.xml(target), reading)
        if text and (kind, text) not in seen:
            seen.add((kind, text))
            out.append(part(0, f"{kind}s", text))
    return out


def extract_docx(path: str, request: ExtractRequest) -> ProcessOutcome:
    """The body as one text entry; notes, comments, headers, footers, alt text and
    charts in ``parts``; tables; ``docProps/core.xml``; Markdown when asked."""
    started = time.perf_counter()
    markdown = request.options.markdown
    try:
        with open_package(path) as pkg:
            main = pkg.main_part("word/document.xml")
            document = pkg.xml(main)
            meta = pkg.core_properties()
            rels = pkg.relationships(main)
            by_type = {kind.rsplit("/", 1)[-1]: target for kind, target in rels.values()}
            styles = pkg.optional_xml(by_type["styles"]) if markdown and "styles" in by_type else None
            reading = _Reading(markdown, _style_headings(styles))
            body = document.find(f"{W}body")
            text, body_md = _story(body, reading) if body is not None else ("", "")
            body_reading = (list(reading.alts), list(reading.charts), list(reading.tables))
            parts: list[dict[str, Any]] = []
            if body is not None:
                parts += _headers_footers(pkg, body, rels, reading)
            for kind in ("footnotes", "endnotes"):
                if kind in by_type:
                    parts += _notes(pkg, by_type[kind], kind, reading)
            if "comments" in by_type:
                parts += _comments(pkg, by_type["comments"], reading)
            alts, chart_rels, tables = body_reading
            parts += [part(0, "alt_text", alt) for alt in alts]
            charts = charts_of(pkg, main, rels, chart_rels)
            parts += [part(0, "charts", chart.text()) for chart in charts]
    except FormatError as exc:
        return exc.outcome()
    meta["tables"] = len(tables)
    extra: dict[str, Any] = {"tables": tables}
    if parts:
        extra["parts"] = parts
    if markdown:
        md_parts = [
            {**p, "text": charts[i].markdown()} if p["kind"] == "charts" else p
            for i, p in zip(_chart_index(parts), parts, strict=True)
        ]
        extra["markdown"] = with_parts([body_md], md_parts)
    return ProcessOutcome(
        status=DocState.DONE,
        mime=DOCX,
        pages=1,
        text=[text],
        metadata=meta,
        parse_s=time.perf_counter() - started,
        extra=extra,
    )


def _chart_index(parts: list[dict[str, Any]]) -> list[int]:
    """For each part, its index among the charts (0 for the others)."""
    out, seen = [], 0
    for entry in parts:
        out.append(seen)
        seen += entry["kind"] == "charts"
    return out
