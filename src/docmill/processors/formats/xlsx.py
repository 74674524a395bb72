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
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Any

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.model.tables import Cell, table_entry
from docmill.processors.formats.charts import DRAWING_REL, chart_ids, charts_of
from docmill.processors.formats.markdown_blocks import part, pipe_table, with_parts
from docmill.processors.formats.numfmt import BUILTIN, format_number, is_date_format, to_datetime
from docmill.processors.formats.package import R_ID, FormatError, Package, open_package
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import XLSX

S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_SHARED_STRINGS = _REL + "sharedStrings"
_STYLES = _REL + "styles"
_COMMENTS = _REL + "comments"
_MAX_COLUMNS = 16384  # XFD, the last column Excel has
_MAX_SPAN_ROWS = 10_000  # a merge is never stretched past this many rows of the table


def _string_item(si: ET.Element) -> str:
    """A shared or inline string: its ``t`` text, or its rich-text runs'; never the
    phonetic guide (``rPh``) that Japanese workbooks carry beside the text."""
    out: list[str] = []
    for child in si:
        if child.tag == f"{S}t":
            out.append(child.text or "")
        elif child.tag == f"{S}r":
            out.extend(t.text or "" for t in child.iter(f"{S}t"))
    return "".join(out)


def _ref(ref: str) -> tuple[int | None, int | None]:
    """``"BC12"`` -> (11, 54): zero-based row and column (None where absent)."""
    col = 0
    letters = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            col = col * 26 + ord(ch) - 64
        elif "a" <= ch <= "z":
            col = col * 26 + ord(ch) - 96
        else:
            break
        letters += 1
    digits = ref[letters:]
    row = int(digits) - 1 if digits.isdigit() and int(digits) > 0 else None
    return row, (col - 1 if 0 < col <= _MAX_COLUMNS else None)


class _Styles:
    """Number format code per cell style index (``cellXfs``)."""

    def __init__(self, root: ET.Element | None) -> None:
        custom: dict[int, str] = {}
        self.codes: list[str] = []
        if root is None:
            return
        for fmt in root.iter(f"{S}numFmt"):
            try:
                custom[int(fmt.get("numFmtId", ""))] = fmt.get("formatCode", "")
            except ValueError:
                continue
        xfs = root.find(f"{S}cellXfs")
        for xf in xfs if xfs is not None else ():
            try:
                fmt_id = int(xf.get("numFmtId", "0"))
            except ValueError:
                fmt_id = 0
            self.codes.append(custom.get(fmt_id) or BUILTIN.get(fmt_id, "General"))

    def code(self, style: str | None) -> str:
        if not style:
            return self.codes[0] if self.codes else "General"
        try:
            return self.codes[int(style)]
        except (ValueError, IndexError):
            return "General"


class _Cell:
    __slots__ = ("date", "text", "value")

    def __init__(self, text: str, value: float | None = None, date: str | None = None) -> None:
        self.text, self.value, self.date = text, value, date


def _value(c: ET.Element, shared: list[str], styles: _Styles, date1904: bool) -> _Cell:
    kind = c.get("t", "n")
    if kind == "inlineStr":
        inline = c.find(f"{S}is")
        return _Cell(_string_item(inline) if inline is not None else "")
    raw = c.findtext(f"{S}v") or ""
    if kind == "s":
        try:
            return _Cell(shared[int(raw)])
        except (ValueError, IndexError):
            raise FormatError(
                FailureCategory.CORRUPT,
                f"cell {c.get('r', '?')} names shared string {raw!r}, which does not exist",
            ) from None
    if kind == "b":
        return _Cell("TRUE" if raw.strip() == "1" else "FALSE")
    if kind == "d":  # an ISO 8601 date (Strict workbooks)
        return _Cell(raw.replace("T00:00:00", "").rstrip("Z"), None, raw)
    if kind in ("str", "e") or not raw:
        return _Cell(raw)
    try:
        number = float(raw)
    except ValueError:
        return _Cell(raw)
    code = styles.code(c.get("s"))
    stored: float = int(number) if number.is_integer() and abs(number) < 1e15 else number
    if is_date_format(code):
        moment = to_datetime(number, date1904)
        iso = moment.isoformat() if moment is not None else None
        return _Cell(format_number(number, code, date1904).strip(), stored, iso)
    return _Cell(format_number(number, code, date1904).strip(), stored)


def _merges(sheet: ET.Element) -> list[tuple[int, int, int, int]]:
    """Merged ranges as (first row, first column, last row, last column)."""
    out = []
    for merge in sheet.iter(f"{S}mergeCell"):
        first, _, last = merge.get("ref", "").partition(":")
        r0, c0 = _ref(first)
        r1, c1 = _ref(last or first)
        if None not in (r0, c0, r1, c1):
            assert r0 is not None and c0 is not None and r1 is not None and c1 is not None
            out.append((min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1)))
    return out


def _sheet_table(
    sheet: ET.Element, shared: list[str], styles: _Styles, date1904: bool, page: int
) -> dict[str, Any]:
    """A worksheet as a table entry (``model.tables``: every grid position in one cell,
    a merged cell once with its span), numbers' stored values beside their text."""
    grid: dict[int, dict[int, _Cell]] = {}
    next_row = 0
    for row in sheet.iter(f"{S}row"):
        try:
            row_index = int(row.get("r", "")) - 1
        except ValueError:
            row_index = next_row
        next_row = row_index + 1
        following = 0
        for c in row.iter(f"{S}c"):
            col = _ref(c.get("r", ""))[1] if c.get("r") else following
            if col is None:
                continue
            following = col + 1
            cell = _value(c, shared, styles, date1904)
            if cell.text != "":
                grid.setdefault(row_index, {})[col] = cell
    merges = [m for m in _merges(sheet) if m[0] in grid and m[1] in grid[m[0]]]
    kept = set(grid)
    for r0, _, r1, _ in merges:
        kept.update(range(r0, min(r1, r0 + _MAX_SPAN_ROWS) + 1))
    order = sorted(kept)
    position = {r: i for i, r in enumerate(order)}
    width = max((max(cols) + 1 for cols in grid.values()), default=0)
    spans = {(r0, c0): (r1, c1) for r0, c0, r1, c1 in merges}
    cells: list[Cell] = []
    values: dict[tuple[int, int], _Cell] = {}
    covered: set[tuple[int, int]] = set()
    for r in order:
        for col, cell in sorted(grid.get(r, {}).items()):
            if (position[r], col) in covered:
                continue  # a value hidden under another cell's merge
            r1, c1 = spans.get((r, col), (r, col))
            rowspan = sum(1 for x in range(r, min(r1, r + _MAX_SPAN_ROWS) + 1) if x in position)
            colspan = min(c1, width - 1) - col + 1
            for dr in range(rowspan):
                for dc in range(colspan):
                    covered.add((position[r] + dr, col + dc))
            cells.append(Cell(position[r], col, rowspan, colspan, cell.text))
            values[(position[r], col)] = cell
    try:
        entry = table_entry(page, cells, nrows=len(order), ncols=width)
    except ValueError:  # overlapping merges: the plain grid
        entry = table_entry(page, [Cell(c.row, c.col, 1, 1, c.text) for c in cells])
    for out in entry["cells"]:
        found = values.get((out["row"], out["col"]))
        if found is not None and found.value is not None:
            out["value"] = found.value
            if found.date is not None:
                out["date"] = found.date
    return entry


def _shared_strings(pkg: Package, rels: dict[str, tuple[str, str]]) -> list[str]:
    part_name = next(
        (target for kind, target in rels.values() if kind == _SHARED_STRINGS),
        "xl/sharedStrings.xml",
    )
    root = pkg.optional_xml(part_name)
    return [_string_item(si) for si in root.iter(f"{S}si")] if root is not None else []


def _comments(pkg: Package, target: str, page: int) -> list[dict[str, Any]]:
    root = pkg.optional_xml(target)
    if root is None:
        return []
    authors = [a.text or "" for a in root.iter(f"{S}author")]
    out = []
    for comment in root.iter(f"{S}comment"):
        body = comment.find(f"{S}text")
        text = _string_item(body).strip() if body is not None else ""
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
    rels = pkg.relationships(target)
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
            styles = _Styles(pkg.optional_xml(styles_part))
            pr = workbook.find(f"{S}workbookPr")
            date1904 = pr is not None and pr.get("date1904", "").lower() in ("1", "true")
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
                table = _sheet_table(pkg.xml(target), shared, styles, date1904, index)
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
