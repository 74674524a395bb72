"""PPTX (PresentationML): one text entry per slide, in the presentation's order.

A slide's text is its title placeholder's, then every other shape's paragraphs in the
order the slide lists them (groups included); a table is a row a line, cells
tab-separated, and goes to ``tables`` (``page`` = slide index, ``rows``, ``cells`` with
``gridSpan``/``rowSpan`` spans, a header row when the table says ``firstRow``). What
is not the slide's body goes to ``parts``: the speaker ``notes`` (the notes page's body
placeholder), ``comments`` with their author (classic and modern comments),
``charts`` (title, axes, data table), ``alt_text`` (pictures' descriptions). Hidden
slides are read and listed in ``metadata.hidden_slides``.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.model.tables import Cell, cells_of, table_entry
from docmill.processors.formats.charts import charts_of
from docmill.processors.formats.markdown_blocks import part, pipe_table, with_parts
from docmill.processors.formats.package import R_ID, FormatError, Package, open_package
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import PPTX

P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_TITLES = ("title", "ctrTitle")
_NOT_NOTES = ("sldImg", "sldNum", "hdr", "ftr", "dt")
_OFF = ("0", "false")


@dataclass
class _Slide:
    titles: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    alts: list[str] = field(default_factory=list)


def _paragraphs(shape: ET.Element) -> list[str]:
    lines: list[str] = []
    for para in shape.iter(f"{A}p"):
        parts = []
        for el in para.iter():
            if el.tag == f"{A}t":
                parts.append(el.text or "")
            elif el.tag == f"{A}br":
                parts.append("\n")
        line = "".join(parts).strip()
        if line:
            lines.append(line)
    return lines


def _placeholder(shape: ET.Element) -> str | None:
    for nv in shape:
        if nv.tag.startswith(P) and nv.tag.endswith("Pr") and nv.tag.startswith(f"{P}nv"):
            ph = nv.find(f"{P}nvPr/{P}ph")
            if ph is not None:
                return ph.get("type", "body")
    return None


def _is_title(shape: ET.Element) -> bool:
    return _placeholder(shape) in _TITLES


def _shapes(tree: ET.Element) -> list[ET.Element]:
    """Leaf shapes in drawing order, through groups, skipping compatibility fallbacks."""
    out: list[ET.Element] = []
    for child in tree:
        if child.tag == _FALLBACK:
            continue
        if child.tag in (f"{P}sp", f"{P}graphicFrame", f"{P}cxnSp", f"{P}pic"):
            out.append(child)
        else:
            out.extend(_shapes(child))  # grpSp, AlternateContent/Choice
    return out


def _table(tbl: ET.Element, page: int) -> dict[str, Any]:
    rows: list[list[str]] = []
    cells: list[dict[str, Any]] = []
    for r, tr in enumerate(tbl.iter(f"{A}tr")):
        row: list[str] = []
        for tc in tr.findall(f"{A}tc"):
            text = " ".join(" ".join(_paragraphs(tc)).split()) if len(tc) else ""
            covered = tc.get("hMerge", "0") not in _OFF or tc.get("vMerge", "0") not in _OFF
            if covered:
                row.append("")
                continue
            row.append(text)
            try:
                colspan = max(1, int(tc.get("gridSpan", "1")))
                rowspan = max(1, int(tc.get("rowSpan", "1")))
            except ValueError:
                colspan = rowspan = 1
            cells.append(
                {"row": r, "col": len(row) - 1, "rowspan": rowspan, "colspan": colspan, "text": text}
            )
        rows.append(row)
    pr = tbl.find(f"{A}tblPr")
    header = 1 if pr is not None and pr.get("firstRow", "0") not in _OFF and rows else 0
    found = [Cell(c["row"], c["col"], c["rowspan"], c["colspan"], c["text"]) for c in cells]
    try:
        return table_entry(page, found, header_rows=header, nrows=len(rows))
    except ValueError:  # spans that overlap: the plain grid
        return table_entry(page, cells_of(rows), header_rows=header)


def _read_slide(slide: ET.Element, page: int, markdown: bool) -> _Slide:
    out = _Slide()
    tree = slide.find(f"{P}cSld/{P}spTree")
    for shape in _shapes(tree) if tree is not None else []:
        if shape.tag == f"{P}pic":
            pr = shape.find(f"{P}nvPicPr/{P}cNvPr")
            alt = " ".join((pr.get("descr") or pr.get("title") or "").split()) if pr is not None else ""
            if alt:
                out.alts.append(alt)
            continue
        if shape.tag == f"{P}graphicFrame":
            tbl = shape.find(f".//{A}tbl")
            if tbl is not None:
                table = _table(tbl, page)
                out.tables.append(table)
                out.body.extend("\t".join(row) for row in table["rows"])
                if markdown and table["rows"]:
                    out.md.append(pipe_table(table["rows"], table["header_rows"]))
                continue
            out.charts.extend(c.get(R_ID, "") for c in shape.iter(f"{_C}chart") if c.get(R_ID))
            continue
        lines = _paragraphs(shape)
        if _is_title(shape):
            out.titles.extend(lines)
        else:
            out.body.extend(lines)
            if markdown and lines:
                out.md.append("\n".join(lines))
    return out


def slide_text(slide: ET.Element) -> tuple[str, str | None]:
    """(the slide's text, title first; its title or None)."""
    read = _read_slide(slide, 0, False)
    return "\n".join(read.titles + read.body), " ".join(read.titles) or None


def _notes(pkg: Package, target: str) -> str:
    root = pkg.xml(target)
    tree = root.find(f"{P}cSld/{P}spTree")
    lines: list[str] = []
    for shape in _shapes(tree) if tree is not None else []:
        if _placeholder(shape) in _NOT_NOTES or shape.tag != f"{P}sp":
            continue
        lines.extend(_paragraphs(shape))
    return "\n".join(lines)


def _authors(pkg: Package, rels: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Comment author id -> name, from classic (commentAuthors) and modern (authors)."""
    out: dict[str, str] = {}
    for kind, target in rels.values():
        if not (kind.endswith("/commentAuthors") or kind.endswith("/authors")) or not pkg.has(target):
            continue
        for el in pkg.xml(target).iter():
            name = el.get("name")
            if name is not None and el.get("id") is not None:
                out[el.get("id", "")] = name
    return out


def _comments(pkg: Package, target: str, authors: dict[str, str], page: int) -> list[dict[str, Any]]:
    out = []
    for el in pkg.xml(target).iter():
        if el.tag.rpartition("}")[2] != "cm":
            continue
        texts = [t.text or "" for t in el.iter() if t.tag in (f"{A}t", f"{P}text")]
        text = " ".join(" ".join(texts).split())
        if text:
            out.append(part(page, "comments", text, author=authors.get(el.get("authorId", ""))))
    return out


def extract_pptx(path: str, request: ExtractRequest) -> ProcessOutcome:
    """Each slide's text; tables; notes, comments, charts and alt text in ``parts``;
    ``docProps/core.xml`` and the slide titles in metadata; Markdown when asked."""
    started = time.perf_counter()
    markdown = request.options.markdown
    try:
        with open_package(path) as pkg:
            main = pkg.main_part("ppt/presentation.xml")
            presentation = pkg.xml(main)
            rels = pkg.relationships(main)
            meta = pkg.core_properties()
            authors = _authors(pkg, rels)
            slide_ids = [s.get(R_ID, "") for s in presentation.iter(f"{P}sldId")]
            limit = min(len(slide_ids), request.max_pages) if request.max_pages else len(slide_ids)
            text: list[str] = []
            titles: list[str | None] = []
            tables: list[dict[str, Any]] = []
            parts: list[dict[str, Any]] = []
            md_parts: list[dict[str, Any]] = []
            pages_md: list[str] = []
            hidden: list[int] = []
            for index, rel_id in enumerate(slide_ids[:limit]):
                target = rels.get(rel_id, ("", ""))[1]
                if not pkg.has(target):
                    raise FormatError(
                        FailureCategory.CORRUPT, f"slide {rel_id} has no part ({target!r})"
                    )
                root = pkg.xml(target)
                if root.get("show", "1") in _OFF:
                    hidden.append(index)
                read = _read_slide(root, index, markdown)
                text.append("\n".join(read.titles + read.body))
                titles.append(" ".join(read.titles) or None)
                tables.extend(read.tables)
                slide_rels = pkg.relationships(target)
                found: list[dict[str, Any]] = []
                for kind, rel_target in slide_rels.values():
                    if kind == _REL + "notesSlide" and pkg.has(rel_target):
                        notes = _notes(pkg, rel_target)
                        if notes:
                            found.append(part(index, "notes", notes))
                    elif kind.endswith("/comments") and pkg.has(rel_target):
                        found.extend(_comments(pkg, rel_target, authors, index))
                charts = charts_of(pkg, target, slide_rels, read.charts)
                found += [part(index, "alt_text", alt) for alt in read.alts]
                parts += found + [part(index, "charts", c.text()) for c in charts]
                if markdown:
                    title = " ".join(read.titles)
                    head = [f"## {title}"] if title else [f"## Slide {index + 1}"]
                    pages_md.append("\n\n".join(head + read.md))
                    md_parts += found + [part(index, "charts", c.markdown()) for c in charts]
    except FormatError as exc:
        return exc.outcome()
    if not slide_ids:
        return ProcessOutcome.failure(FailureCategory.EMPTY, "the presentation has no slides")
    meta["slide_titles"] = titles
    meta["hidden_slides"] = hidden
    extra: dict[str, Any] = {}
    if tables:
        extra["tables"] = tables
    if parts:
        extra["parts"] = parts
    if markdown:
        extra["markdown"] = with_parts(pages_md, md_parts)
    return ProcessOutcome(
        status=DocState.DONE,
        mime=PPTX,
        pages=len(slide_ids),
        text=text,
        metadata=meta,
        parse_s=time.perf_counter() - started,
        extra=extra,
    )
