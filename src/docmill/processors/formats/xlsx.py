"""XLSX (SpreadsheetML): every sheet a table and a text entry, in workbook order.

Cells are placed by their reference (``C7``), so a gap stays an empty cell; rows that
hold no cell are left out (unless a merged cell spans them). Values are shown as a
person sees them in Excel: numbers and dates through the cell's number format
(``numfmt``; ``General`` keeps 15 significant digits), shared and inline strings
without their phonetic (furigana) runs, booleans as TRUE/FALSE, errors as their code,
a formula as its cached value. A table's ``cells`` follow ``model.tables`` (every grid
position in one cell, a merged cell once with its span; ``row`` and ``col`` index
``rows``), and carry a number's stored ``value`` (and ``date``, ISO 8601, for a date).
Hidden sheets are read and marked (``hidden`` on the table, ``metadata.hidden_sheets``);
cell comments (with their author) and charts go to ``parts``.

This module reads the workbook (sheets, shared strings, styles, comments, charts);
``xlsx_sheet`` reads one worksheet part into its table, ``xlsx_values`` shows one
cell's value.
"""

from __future__ import annotations

import time
from typing import Any

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.processors.formats.charts import DRAWING_REL, chart_ids, charts_of
from docmill.processors.formats.markdown_blocks import part, pipe_table, with_parts
from docmill.processors.formats.package import R_ID, FormatError, Package, open_package
from docmill.processors.formats.xlsx_sheet import sheet_table
from docmill.processors.formats.xlsx_values import CellValues, S, Styles, string_item
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import XLSX

_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_SHARED_STRINGS = _REL + "sharedStrings"
_STYLES = _REL + "styles"
_COMMENTS = _REL + "comments"


def _shared_strings(pkg: Package, rels: dict[str, tuple[str, str]]) -> list[str]:
    part_name = next(
        (target for kind, target in rels.values() if kind == _SHARED_STRINGS),
        "xl/sharedStrings.xml",
    )
    root = pkg.optional_xml(part_name)
    return [string_item(si) for si in root.iter(f"{S}si")] if root is not None else []


def _comments(pkg: Package, target: str, page: int) -> list[dict[str, Any]]:
    root = pkg.optional_xml(target)
    if root is None:
        return []
    authors = [a.text or "" for a in root.iter(f"{S}author")]
    out = []
    for comment in root.iter(f"{S}comment"):
        body = comment.find(f"{S}text")
        text = string_item(body).strip() if body is not None else ""
        try:
            author = authors[int(comment.get("authorId", ""))]
        except (ValueError, IndexError):
            author = ""
        if text:
            out.append(part(page, "comments", text, author=author, ref=comment.get("ref")))
    return out


def _sheet_parts(pkg: Package, target: str, page: int) -> list[dict[str, Any]]:
    """A sheet's comments and charts."""
    found: list[dict[str, Any]] = []
    rels = pkg.relationships(target, (_COMMENTS, DRAWING_REL))
    for kind, part_name in rels.values():
        if kind == _COMMENTS:
            found.extend(_comments(pkg, part_name, page))
    for kind, drawing in rels.values():
        if kind != DRAWING_REL or not pkg.has(drawing):
            continue
        try:
            tree = pkg.xml(drawing)
        except FormatError:
            continue
        for chart in charts_of(pkg, drawing, pkg.relationships(drawing), chart_ids(tree)):
            found.append(part(page, "charts", chart.text(), markdown=chart.markdown()))
    return found


def extract_xlsx(path: str, request: ExtractRequest) -> ProcessOutcome:
    """Each sheet's cells as a table (``page`` = sheet index) and as tab-separated text."""
    started = time.perf_counter()
    try:
        with open_package(path) as pkg:
            workbook_part = pkg.main_part("xl/workbook.xml")
            workbook = pkg.xml(workbook_part)
            rels = pkg.relationships(workbook_part)
            shared = _shared_strings(pkg, rels)
            styles_part = next((t for k, t in rels.values() if k == _STYLES), "xl/styles.xml")
            pr = workbook.find(f"{S}workbookPr")
            date1904 = pr is not None and pr.get("date1904", "").lower() in ("1", "true")
            values = CellValues(shared, Styles(pkg.optional_xml(styles_part)), date1904)
            meta = pkg.core_properties()
            sheets = [
                (s.get("name", ""), s.get(R_ID, ""), s.get("state", "visible"))
                for s in workbook.iter(f"{S}sheet")
            ]
            limit = min(len(sheets), request.max_pages) if request.max_pages else len(sheets)
            text: list[str] = []
            tables: list[dict[str, Any]] = []
            parts: list[dict[str, Any]] = []
            for index, (name, rel_id, state) in enumerate(sheets[:limit]):
                target = rels.get(rel_id, ("", ""))[1]
                if not pkg.has(target):
                    raise FormatError(
                        FailureCategory.CORRUPT,
                        f"sheet {name!r} has no part ({rel_id} -> {target!r})",
                    )
                table = sheet_table(pkg.read(target), target, values, index)
                table["name"] = name
                rows = table["rows"]
                if state != "visible":
                    table["hidden"] = True
                tables.append(table)
                text.append("\n".join("\t".join(row).rstrip("\t") for row in rows))
                parts.extend(_sheet_parts(pkg, target, index))
    except FormatError as exc:
        return exc.outcome()
    if not sheets:
        return ProcessOutcome.failure(FailureCategory.EMPTY, "the workbook has no sheets")
    meta["sheet_names"] = [name for name, _, _ in sheets]
    meta["hidden_sheets"] = [name for name, _, state in sheets if state != "visible"]
    extra: dict[str, Any] = {"tables": tables}
    if parts:
        extra["parts"] = [{k: v for k, v in p.items() if k != "markdown"} for p in parts]
    if request.options.markdown:
        pages = []
        for table in tables:
            hidden = " (hidden)" if table.get("hidden") else ""
            body = pipe_table(table["rows"]) if table["rows"] else ""
            pages.append(f"## {table['name']}{hidden}\n\n{body}".strip())
        extra["markdown"] = with_parts(pages, [_md_part(p) for p in parts])
    return ProcessOutcome(
        status=DocState.DONE,
        mime=XLSX,
        pages=len(sheets),
        text=text,
        metadata=meta,
        parse_s=time.perf_counter() - started,
        extra=extra,
    )


def _md_part(entry: dict[str, Any]) -> dict[str, Any]:
    """A part as Markdown shows it (a chart as its table)."""
    if "markdown" in entry:
        return {**entry, "text": entry["markdown"]}
    return entry
