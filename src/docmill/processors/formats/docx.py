"""DOCX (WordprocessingML): body paragraphs in order, tables as rows of cells.

Headings are paragraphs like any other. Each table is also written into the text,
a row a line, cells tab-separated, where it stands; ``extra["tables"]`` holds its
cells. Headers, footers, footnotes and comments are not read.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from docmill.model import DocState, ProcessOutcome
from docmill.processors.formats.package import FormatError, open_package
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import DOCX

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_P, _TBL, _TR, _TC, _SDT = f"{W}p", f"{W}tbl", f"{W}tr", f"{W}tc", f"{W}sdt"
_TEXT, _TAB, _BREAKS = f"{W}t", f"{W}tab", (f"{W}br", f"{W}cr")
_WRAPPERS = frozenset({_SDT, f"{W}sdtContent", f"{W}customXml"})
_OFF = ("0", "false", "off")


def _walk(element: ET.Element) -> list[str]:
    """Text of ``element``'s runs in order, skipping compatibility fallbacks (which repeat
    the text of the choice before them)."""
    out: list[str] = []
    for child in element:
        tag = child.tag
        if tag == _FALLBACK:
            continue
        if tag == _TEXT:
            out.append(child.text or "")
        elif tag == _TAB:
            out.append("\t")
        elif tag in _BREAKS:
            out.append("\n")
        elif tag == _P:
            if out:
                out.append("\n")
            out.extend(_walk(child))
        else:
            out.extend(_walk(child))
    return out


def _paragraph(p: ET.Element) -> str:
    return "".join(_walk(p))


def _cell(tc: ET.Element) -> str:
    return "\n".join(_block_lines(tc, [])).strip()


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


def _table(tbl: ET.Element, tables: list[dict[str, Any]]) -> list[str]:
    rows: list[list[str]] = []
    for tr in _children(tbl, _TR):
        row: list[str] = []
        for tc in _children(tr, _TC):
            row.append(_cell(tc))
            row.extend([""] * (_span(tc) - 1))  # a merged cell keeps the columns in line
        rows.append(row)
    header = tbl.find(f"{W}tr/{W}trPr/{W}tblHeader")
    is_header = header is not None and header.get(f"{W}val", "true").lower() not in _OFF
    tables.append(
        {"page": 0, "bbox": None, "rows": rows, "header_rows": 1 if is_header and rows else 0}
    )
    return ["\t".join(cell.replace("\n", " ") for cell in row) for row in rows]


def _block_lines(container: ET.Element, tables: list[dict[str, Any]]) -> list[str]:
    """Paragraph and table lines of a body, a cell or a content control, in order."""
    lines: list[str] = []
    for child in container:
        if child.tag == _P:
            lines.append(_paragraph(child))
        elif child.tag == _TBL:
            lines.extend(_table(child, tables))
        elif child.tag != _FALLBACK and len(child):
            lines.extend(_block_lines(child, tables))  # sdt, sdtContent, customXml, ins...
    return lines


def extract_docx(path: str, request: ExtractRequest) -> ProcessOutcome:
    """The document's text as one entry, its tables, and ``docProps/core.xml``."""
    started = time.perf_counter()
    try:
        with open_package(path) as pkg:
            document = pkg.xml(pkg.main_part("word/document.xml"))
            meta = pkg.core_properties()
    except FormatError as exc:
        return exc.outcome()
    body = document.find(f"{W}body")
    tables: list[dict[str, Any]] = []
    lines = _block_lines(body, tables) if body is not None else []
    meta["tables"] = len(tables)
    return ProcessOutcome(
        status=DocState.DONE,
        mime=DOCX,
        pages=1,
        text=["\n".join(lines)],
        metadata=meta,
        parse_s=time.perf_counter() - started,
        extra={"tables": tables},
    )
