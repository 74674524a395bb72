"""PPTX (PresentationML): one text entry per slide, in presentation order, title first.

A slide's text is its title placeholder's, then every other shape's paragraphs in
the order the slide lists them (groups and tables included). Speaker notes are not read.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.processors.formats.package import R_ID, FormatError, open_package
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import PPTX

P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_TITLES = ("title", "ctrTitle")


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


def _is_title(shape: ET.Element) -> bool:
    placeholder = shape.find(f"{P}nvSpPr/{P}nvPr/{P}ph")
    return placeholder is not None and placeholder.get("type") in _TITLES


def _shapes(tree: ET.Element) -> list[ET.Element]:
    """Leaf shapes in drawing order, through groups, skipping compatibility fallbacks."""
    out: list[ET.Element] = []
    for child in tree:
        if child.tag == _FALLBACK:
            continue
        if child.tag in (f"{P}sp", f"{P}graphicFrame", f"{P}cxnSp"):
            out.append(child)
        else:
            out.extend(_shapes(child))  # grpSp, AlternateContent/Choice
    return out


def slide_text(slide: ET.Element) -> tuple[str, str | None]:
    """(the slide's text, title first; its title or None)."""
    tree = slide.find(f"{P}cSld/{P}spTree")
    shapes = _shapes(tree) if tree is not None else []
    titles = [line for s in shapes if _is_title(s) for line in _paragraphs(s)]
    body = [line for s in shapes if not _is_title(s) for line in _paragraphs(s)]
    return "\n".join(titles + body), " ".join(titles) or None


def extract_pptx(path: str, request: ExtractRequest) -> ProcessOutcome:
    """Each slide's text; ``docProps/core.xml`` and the slide titles in metadata."""
    started = time.perf_counter()
    try:
        with open_package(path) as pkg:
            main = pkg.main_part("ppt/presentation.xml")
            presentation = pkg.xml(main)
            rels = pkg.relationships(main)
            meta = pkg.core_properties()
            slide_ids = [s.get(R_ID, "") for s in presentation.iter(f"{P}sldId")]
            limit = min(len(slide_ids), request.max_pages) if request.max_pages else len(slide_ids)
            text: list[str] = []
            titles: list[str | None] = []
            for rel_id in slide_ids[:limit]:
                target = rels.get(rel_id, ("", ""))[1]
                if not pkg.has(target):
                    raise FormatError(
                        FailureCategory.CORRUPT, f"slide {rel_id} has no part ({target!r})"
                    )
                slide, title = slide_text(pkg.xml(target))
                text.append(slide)
                titles.append(title)
    except FormatError as exc:
        return exc.outcome()
    if not slide_ids:
        return ProcessOutcome.failure(FailureCategory.EMPTY, "the presentation has no slides")
    meta["slide_titles"] = titles
    return ProcessOutcome(
        status=DocState.DONE,
        mime=PPTX,
        pages=len(slide_ids),
        text=text,
        metadata=meta,
        parse_s=time.perf_counter() - started,
    )
