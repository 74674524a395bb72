"""XLSX (SpreadsheetML): every sheet a table and a text entry, in workbook order.

Cells are placed by their reference (``C7``), so a gap stays an empty cell; rows that
hold no cell are left out. Values are shown as stored: shared and inline strings,
numbers as written (a date is its serial number: styles are not applied), booleans as
TRUE/FALSE, errors as their code, a formula as its cached value.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.processors.formats.package import R_ID, FormatError, Package, open_package
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import XLSX

S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_SHARED_STRINGS = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"
)
_MAX_COLUMNS = 16384  # XFD, the last column Excel has


def _string_item(si: ET.Element) -> str:
    """A shared or inline string: its ``t`` text, or its rich-text runs' (no phonetics)."""
    direct = si.find(f"{S}t")
    if direct is not None:
        return direct.text or ""
    return "".join(t.text or "" for r in si.iter(f"{S}r") for t in r.iter(f"{S}t"))


def _column(ref: str) -> int | None:
    """``"BC12"`` -> 54 (zero-based column index)."""
    index = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            index = index * 26 + ord(ch) - 64
        elif "a" <= ch <= "z":
            index = index * 26 + ord(ch) - 96
        else:
            break
    return index - 1 if 0 < index <= _MAX_COLUMNS else None


def _value(c: ET.Element, shared: list[str]) -> str:
    kind = c.get("t", "n")
    if kind == "inlineStr":
        inline = c.find(f"{S}is")
        return _string_item(inline) if inline is not None else ""
    raw = c.findtext(f"{S}v") or ""
    if kind == "s":
        try:
            return shared[int(raw)]
        except (ValueError, IndexError):
            raise FormatError(
                FailureCategory.CORRUPT,
                f"cell {c.get('r', '?')} names shared string {raw!r}, which does not exist",
            ) from None
    if kind == "b":
        return "TRUE" if raw.strip() == "1" else "FALSE"
    return raw


def _rows(sheet: ET.Element, shared: list[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in sheet.iter(f"{S}row"):
        cells: dict[int, str] = {}
        following = 0
        for c in row.iter(f"{S}c"):
            col = _column(c.get("r", "")) if c.get("r") else following
            if col is None:
                continue
            following = col + 1
            value = _value(c, shared)
            if value != "":
                cells[col] = value
        if cells:
            out = [""] * (max(cells) + 1)
            for col, value in cells.items():
                out[col] = value
            rows.append(out)
    width = max((len(r) for r in rows), default=0)
    return [r + [""] * (width - len(r)) for r in rows]


def _shared_strings(pkg: Package, rels: dict[str, tuple[str, str]]) -> list[str]:
    part = next(
        (target for kind, target in rels.values() if kind == _SHARED_STRINGS),
        "xl/sharedStrings.xml",
    )
    root = pkg.optional_xml(part)
    return [_string_item(si) for si in root.iter(f"{S}si")] if root is not None else []


def extract_xlsx(path: str, request: ExtractRequest) -> ProcessOutcome:
    """Each sheet's cells as a table (``page`` = sheet index) and as tab-separated text."""
    started = time.perf_counter()
    try:
        with open_package(path) as pkg:
            workbook_part = pkg.main_part("xl/workbook.xml")
            workbook = pkg.xml(workbook_part)
            rels = pkg.relationships(workbook_part)
            shared = _shared_strings(pkg, rels)
            meta = pkg.core_properties()
            sheets = [(s.get("name", ""), s.get(R_ID, "")) for s in workbook.iter(f"{S}sheet")]
            limit = min(len(sheets), request.max_pages) if request.max_pages else len(sheets)
            text: list[str] = []
            tables: list[dict[str, Any]] = []
            for index, (name, rel_id) in enumerate(sheets[:limit]):
                target = rels.get(rel_id, ("", ""))[1]
                if not pkg.has(target):
                    raise FormatError(
                        FailureCategory.CORRUPT,
                        f"sheet {name!r} has no part ({rel_id} -> {target!r})",
                    )
                rows = _rows(pkg.xml(target), shared)
                tables.append({"page": index, "bbox": None, "rows": rows, "header_rows": 0})
                text.append("\n".join("\t".join(row).rstrip("\t") for row in rows))
    except FormatError as exc:
        return exc.outcome()
    if not sheets:
        return ProcessOutcome.failure(FailureCategory.EMPTY, "the workbook has no sheets")
    meta["sheet_names"] = [name for name, _ in sheets]
    return ProcessOutcome(
        status=DocState.DONE,
        mime=XLSX,
        pages=len(sheets),
        text=text,
        metadata=meta,
        parse_s=time.perf_counter() - started,
        extra={"tables": tables},
    )
