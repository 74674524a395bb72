"""One worksheet part as a table entry (``model.tables``): its cells placed by their
reference, merged ranges as spans.

Two readers give the same cells (``tests/test_formats_xlsx.py`` holds them to it):

- ``_scan``, for the shape nearly every writer uses (``<row r="1"><c r="A1" s="1"
  t="s"><f>…</f><v>0</v></c>…</row>``): one regular expression reads the content of
  ``sheetData`` in C, 64 KB at a time, and the loop over its matches does the least
  per cell (the column from a cache of letters, the type and style from a cache of
  attribute strings, strings straight from the shared table, numbers through
  ``CellValues``). The expression only matches well-formed markup; the rules it cannot
  see (references, ``]]>``, control characters, prefixes, attributes named twice) are
  checked once per part or once per distinct attribute string. Around ``sheetData``,
  expat checks the rest of the part without a tree (a hyperlinks list as writers put
  it is checked by a strict pattern instead), ElementTree reads its head (is
  ``sheetData`` the root's child, in SpreadsheetML's namespace?) and, when there are
  any, its merged ranges. So a part ``_scan`` reads is one ElementTree would read.
- ``_tree``, ElementTree over the whole part, for anything else: a comment, CDATA or a
  processing instruction in the sheet data, a prefixed element, rich inline strings,
  an extension list in a cell, rows out of order, a part in another encoding, and a
  broken part or a shared string that does not exist (for the error it names).

On the largest sheet of ``bench/formats_corpus.py`` (240,000 cells, 27 MB of XML)
``_scan`` takes 0.39 s where ``_tree`` takes 1.36 s, at a fifth of its peak memory (71
against 352 MiB). Either way the cyclic garbage collector is paused while a sheet is
read (an eighth of the time of a large sheet otherwise; see ``_cycles_uncollected``).

Cells are placed by their reference (``C7``), so a gap stays an empty cell; a cell
without one follows the cell before it in its row. Rows that hold no cell are left out
(unless a merged cell spans them). A table's ``cells`` list every grid position
(``model.tables``), a merged cell once with its span, and carry a number's stored
``value`` (and ``date``, ISO 8601, for a date).
"""

from __future__ import annotations

import gc
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from docmill.model.tables import Cell, table_entry
from docmill.processors.formats.package import FormatError, parse_xml, well_formed
from docmill.processors.formats.xlsx_values import CellValues, NumberCell, S, Shown, string_item

_MAX_COLUMNS = 16384  # XFD, the last column Excel has
_MAX_SPAN_ROWS = 10_000  # a merge is never stretched past this many rows of the table
_CHUNK = 1 << 16  # characters of sheet data matched at a time (cache-sized)

Grid = dict[int, dict[int, Shown]]  # row -> column -> shown value (never "")
Merge = tuple[int, int, int, int]  # first row, first column, last row, last column


@dataclass(slots=True)
class Rows:
    """A sheet's values: the rows that hold one, in order, each a list of texts as far
    as its last value (``texts``), each row's own (zero-based) number in the sheet
    (``row_numbers``), and the numbers behind texts by (index in ``texts``, column)."""

    texts: list[list[str]] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)
    numbers: dict[tuple[int, int], NumberCell] = field(default_factory=dict)

    def grid(self) -> Grid:
        out: Grid = {}
        for i, (number, line) in enumerate(zip(self.row_numbers, self.texts, strict=True)):
            out[number] = {
                col: self.numbers.get((i, col), text) for col, text in enumerate(line) if text
            }
        return out

    @classmethod
    def of(cls, grid: Grid) -> Rows:
        rows = cls()
        for number in sorted(grid):
            cells = grid[number]
            line = [""] * (max(cells) + 1)
            for col, cell in cells.items():
                if isinstance(cell, NumberCell):
                    line[col] = cell.text
                    rows.numbers[(len(rows.texts), col)] = cell
                else:
                    line[col] = cell
            rows.texts.append(line)
            rows.row_numbers.append(number)
        return rows


def sheet_table(data: bytes, name: str, values: CellValues, page: int) -> dict[str, Any]:
    """The worksheet part ``data`` (named ``name`` in errors) as a table entry."""
    with _cycles_uncollected():
        found = _scan(data, name, values)
        if found is None:
            root = parse_xml(data, name)
            found = Rows.of(_tree(root, values)), _merges(root)
        return _table(*found, page)


@contextmanager
def _cycles_uncollected() -> Iterator[None]:
    """The cyclic garbage collector paused while a sheet is read: a sheet's cells are
    hundreds of thousands of new objects without a cycle among them, and every
    collection meanwhile walks them all (an eighth of the time of a large sheet). It
    runs again as before when the sheet is read, however that ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- the common shape ------------------------------------------------------------------

_W = "[ \t\r\n]"
_NAME = "[A-Za-z_][A-Za-z0-9_.-]*(?::[A-Za-z_][A-Za-z0-9_.-]*)?"
_ATTR = f"{_W}+{_NAME}{_W}*={_W}*(?:\"[^\"<&]*\"|'[^'<&]*')"
# Possessive (``*+``, ``?+``): the shape never needs a second try, and sre then keeps
# no state for one (a fifth fewer instructions).
_TOKENS = re.compile(
    # a cell: the letters of its r (when r comes first), its other attributes (with a
    # closing "/" when it is empty), its formula's attributes (likewise), the text of its
    # v, the text of its inline string's one t
    rf'<(c)(?: r="([A-Za-z]{{1,3}})[0-9]*+")?+([^>]*+)'
    rf"(?:(?<=/)>|>{_W}*+(?:<f([^>]*+)(?:(?<=/)>|>[^<]*+</f>){_W}*+)?+"
    rf"(?:<v>([^<]*+)</v>{_W}*+|<v{_W}*+/>{_W}*+)?+"
    rf'(?:<is>{_W}*+<t(?: xml:space="preserve")?+>([^<]*+)</t>{_W}*+</is>{_W}*+)?+</c>)'
    # a row: its r, its other attributes (with a closing "/" when it is empty)
    rf'|<(r)ow(?: r="([0-9]++)")?+([^>]*+)>'
    r"|<(/)row>"
    r"|([^ \t\r\n])"  # anything else: not this shape
)
_ATTRS = re.compile(f"(?:{_ATTR})*{_W}*/?")
_HYPERLINKS = re.compile(
    "(?:[ \t\r\n]*+<hyperlink"
    + "".join(f'(?: {name}="[^"<&]*+")?+' for name in ("ref", "r:id", "location", "tooltip", "display"))
    + " ?/>)*+[ \t\r\n]*+"
)
_KNOWN_ATTRIBUTES = 65_536  # distinct attribute strings remembered per sheet
_ONE_ATTR = re.compile(rf"{_W}+({_NAME}){_W}*={_W}*(?:\"([^\"]*)\"|'([^']*)')")
_ROOT = re.compile(rf"<({_NAME})((?:{_ATTR})*){_W}*>")
_PREFIX = re.compile(rf"{_W}xmlns:([A-Za-z_][A-Za-z0-9_.-]*){_W}*=")
_ENCODING = re.compile(rb"<\?xml[^>]*?encoding[ \t\r\n]*=[ \t\r\n]*[\"']([A-Za-z0-9._-]+)")
_BAD_AMP = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)")
_REFERENCE = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+));")
_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 13))
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL)


def _scan(data: bytes, name: str, values: CellValues) -> tuple[Rows, list[Merge]] | None:
    """The grid and merges of a worksheet in the common shape; None when it is not."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data.translate(None, _NOT_CONTROL):
        return None
    declared = _ENCODING.match(data, 3 if data[:3] == b"\xef\xbb\xbf" else 0)
    if declared and declared.group(1).lower() != b"utf-8":
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    start = text.find("<sheetData>")
    stop = text.rfind("</sheetData>")
    head = text[:start]
    if start < 0 or stop < start or "<!" in head or head.find("<?", 1) >= 0:
        return None
    if not text.isascii() and ("\ufffe" in text or "\uffff" in text):
        return None
    start += 11
    references = text.find("&", start, stop) >= 0
    if references and not _references_ok(text, start, stop):
        return None
    if text.find("]", start, stop) >= 0 and text.find("]]>", start, stop) >= 0:
        return None
    root_tag = _ROOT.match(head, max(head.find("<", 1 if head.startswith("<?") else 0), 0))
    if root_tag is None:
        return None
    prefixes = {"xml", *_PREFIX.findall(root_tag.group(2))}
    tail = _without_hyperlinks(text[stop + 12 :], prefixes)
    if "sheetData" in tail:
        return None
    # the part without its sheet data: checked by expat alone (a tree of its thousands
    # of hyperlinks would be costly, and is never read), made a tree only for merged
    # cells; and its head as a tree, to see that sheetData is the root's child in
    # SpreadsheetML's namespace (so that the rows and cells in it are)
    outside = (head + "<sheetData/>" + tail).encode()
    try:
        well_formed(outside, name)
        skeleton = parse_xml((head + f"<sheetData/></{root_tag.group(1)}>").encode(), name)
        merged = "mergeCell" in head or "mergeCell" in tail
        merges = _merges(parse_xml(outside, name)) if merged else []
    except FormatError:
        return None  # _tree reads the whole part again and says what is wrong
    if skeleton.find(f"{S}sheetData") is None:
        return None
    returns = text.find("\r", start, stop) >= 0
    rows = _scan_rows(text, start, stop, values, prefixes, references, returns)
    return None if rows is None else (rows, merges)


def _without_hyperlinks(tail: str, prefixes: set[str]) -> str:
    """``tail`` without the content of its ``hyperlinks`` when that content is
    well-formed as writers put it (each link an empty element, its attributes in the
    schema's order, no reference in a value): then expat need not check it (a sheet can
    hold a link a row), and it is never read."""
    start = tail.find("<hyperlinks>")
    stop = tail.rfind("</hyperlinks>")
    if start < 0 or stop < start or not _HYPERLINKS.fullmatch(tail, start + 12, stop):
        return tail
    if "r" not in prefixes and tail.find("r:id=", start, stop) >= 0:
        return tail  # an unbound prefix: expat says so
    rest = tail[: start + 12] + tail[stop:]
    return tail if "<!" in rest else rest  # a comment could hold the links' tags


def _scan_rows(
    body: str,
    start: int,
    stop: int,
    values: CellValues,
    prefixes: set[str],
    references: bool,
    returns: bool,
) -> Rows | None:
    """The rows of ``body[start:stop]``, the content of ``sheetData``; None where it
    leaves the common shape, or where its rows are out of order (``_tree`` sorts them)."""
    rows = Rows()
    texts, row_numbers, found = rows.texts, rows.row_numbers, rows.numbers
    raw_text = references or returns
    columns: dict[str, int | None] = {}
    known: dict[str, Attributes] = {"": (_SHOWN, "n", None, None)}  # attribute strings read
    shared, shown = values.shared, values.shown
    line: list[str] | None = None  # the open row's texts
    row_index = next_row = following = 0
    at = start
    while at < stop:
        cut = body.find("</row>", at + _CHUNK, stop)
        cut = stop if cut < 0 else cut + 6
        tokens = _TOKENS.findall(body, at, cut)
        at = cut
        for c, letters, attrs, formula, v, t, r, row_r, more, close, _other in tokens:
            if c:
                try:
                    how, kind, style, ref = known[attrs]
                except KeyError:
                    parsed = _attributes(attrs, prefixes, known)
                    if parsed is None:
                        return None
                    how, kind, style, ref = parsed
                if formula and formula not in known and _attributes(formula, prefixes, known) is None:
                    return None
                if letters and ref is None:
                    try:
                        col = columns[letters]
                    except KeyError:
                        col = columns[letters] = _ref(letters)[1]
                elif letters:
                    return None  # r twice
                elif ref:
                    col = _ref(ref)[1]
                else:
                    col = following
                if col is None or line is None:
                    if line is None:
                        return None  # a cell outside a row
                    continue
                following = col + 1
                if raw_text:
                    v, t = _text(v, references, returns), _text(t, references, returns)
                if how == _SHARED:
                    try:
                        text = shared[int(v)]
                    except (ValueError, IndexError):
                        return None  # _tree names the cell
                elif how == _STRING:
                    text = v
                elif how == _INLINE:
                    text = t
                else:
                    try:
                        value = shown(kind, style, v)
                    except FormatError:
                        return None
                    if isinstance(value, NumberCell):
                        if value.text:
                            if col == len(line):
                                line.append(value.text)
                            else:
                                _place(line, col, value.text, found, len(texts))
                            found[(len(texts), col)] = value
                        continue
                    text = value
                if text:
                    if col == len(line):
                        line.append(text)
                    else:
                        _place(line, col, text, found, len(texts))
            elif r:
                try:
                    ref = known[more][3]
                except KeyError:
                    parsed = _attributes(more, prefixes, known)
                    if parsed is None:
                        return None
                    ref = parsed[3]
                if line is not None or (row_r and ref is not None):
                    return None  # inside a row, or r twice
                row_index = int(row_r) - 1 if row_r else _row_number(ref, next_row)
                next_row = row_index + 1
                following = 0
                line = None if more.endswith("/") else []
            elif close and line is not None:
                if line:
                    if row_numbers and row_index <= row_numbers[-1]:
                        return None
                    texts.append(line)
                    row_numbers.append(row_index)
                line = None
            else:
                return None
    return None if line is not None else rows


def _place(line: list[str], col: int, text: str, found: dict[tuple[int, int], NumberCell], row: int) -> None:
    """``text`` at ``col`` of an open row that does not end just before it: past its end
    (blanks between), or over a cell before (the last one stays, as in a tree)."""
    if col > len(line):
        line.extend([""] * (col - len(line)))
        line.append(text)
    else:
        line[col] = text
        found.pop((row, col), None)


# how a cell's value is read, from its t: a shared string, a string, an inline string,
# or the rest (numbers, booleans, errors, dates: CellValues.shown)
_SHARED, _STRING, _INLINE, _SHOWN = range(4)
_HOW = {"s": _SHARED, "str": _STRING, "inlineStr": _INLINE}
Attributes = tuple[int, str, str | None, str | None]  # how, t ("n" when absent), s, r


def _attributes(attrs: str, prefixes: set[str], known: dict[str, Attributes]) -> Attributes | None:
    """(how, t, s, r) of an element's attribute string (which may end in the "/" of an
    empty element), or None when ElementTree would read it otherwise or refuse it: not
    attribute syntax, a name twice, a namespace declaration, an undeclared prefix, a
    value with a tab or line break. Remembered in ``known``."""
    if not _ATTRS.fullmatch(attrs):
        return None
    names: dict[str, str] = {}
    for name, double, single in _ONE_ATTR.findall(attrs):
        value = double or single
        prefix, colon, _ = name.partition(":")
        if (
            name in names
            or name.startswith("xmlns")
            or (colon and prefix not in prefixes)
            or "\t" in value
            or "\n" in value
            or "\r" in value
        ):
            return None
        names[name] = value
    kind = names.get("t", "n")
    parsed = (_HOW.get(kind, _SHOWN), kind, names.get("s"), names.get("r"))
    if len(known) < _KNOWN_ATTRIBUTES:
        known[attrs] = parsed
    return parsed


def _row_number(r: str | None, next_row: int) -> int:
    try:
        return int(r or "") - 1
    except ValueError:
        return next_row


def _references_ok(text: str, start: int, stop: int) -> bool:
    """Whether every ``&`` of ``text[start:stop]`` starts a reference XML knows without
    a DTD, to a character XML allows."""
    if _BAD_AMP.search(text, start, stop):
        return False
    for found in _REFERENCE.finditer(text, start, stop):
        named, decimal, hexadecimal = found.groups()
        if not named and not _xml_char(int(decimal, 10) if decimal else int(hexadecimal, 16)):
            return False
    return True


def _xml_char(code: int) -> bool:
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _text(raw: str, references: bool, returns: bool) -> str:
    """Element text as an XML parser gives it: line ends as ``\\n``, then references
    resolved."""
    if returns and "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    if references and "&" in raw:
        raw = _REFERENCE.sub(_resolve, raw)
    return raw


def _resolve(found: re.Match[str]) -> str:
    named, decimal, hexadecimal = found.groups()
    if named:
        return _NAMED[named]
    return chr(int(decimal, 10) if decimal else int(hexadecimal, 16))


# --- any shape -------------------------------------------------------------------------


def _tree(sheet: ET.Element, values: CellValues) -> Grid:
    grid: Grid = {}
    next_row = 0
    for row in sheet.iter(f"{S}row"):
        row_index = _row_number(row.get("r", ""), next_row)
        next_row = row_index + 1
        following = 0
        for c in row.iter(f"{S}c"):
            col = _ref(c.get("r", ""))[1] if c.get("r") else following
            if col is None:
                continue
            following = col + 1
            kind = c.get("t", "n")
            if kind == "inlineStr":
                inline = c.find(f"{S}is")
                value: Shown = string_item(inline) if inline is not None else ""
            else:
                value = values.shown(kind, c.get("s"), c.findtext(f"{S}v") or "", c.get("r", "?"))
            if value.text if isinstance(value, NumberCell) else value:
                grid.setdefault(row_index, {})[col] = value
    return grid


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


def _merges(sheet: ET.Element) -> list[Merge]:
    """Merged ranges as (first row, first column, last row, last column)."""
    out = []
    for merge in sheet.iter(f"{S}mergeCell"):
        first, _, last = merge.get("ref", "").partition(":")
        r0, c0 = _ref(first)
        r1, c1 = _ref(last or first)
        if r0 is not None and c0 is not None and r1 is not None and c1 is not None:
            out.append((min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1)))
    return out


# --- the table -------------------------------------------------------------------------


def _table(rows: Rows, all_merges: list[Merge], page: int) -> dict[str, Any]:
    """``model.tables``' entry for a sheet: every grid position in one cell, a merged
    cell once with its span, numbers' stored values beside their text."""
    if not all_merges:
        return _plain_table(rows, page)
    grid = rows.grid()
    merges = [m for m in all_merges if m[0] in grid and m[1] in grid[m[0]]]
    if not merges:
        return _plain_table(rows, page)
    kept = set(grid)
    for r0, _, r1, _ in merges:
        kept.update(range(r0, min(r1, r0 + _MAX_SPAN_ROWS) + 1))
    order = sorted(kept)
    position = {r: i for i, r in enumerate(order)}
    width = max((max(cols) + 1 for cols in grid.values()), default=0)
    spans = {(r0, c0): (r1, c1) for r0, c0, r1, c1 in merges}
    cells: list[Cell] = []
    values: dict[tuple[int, int], NumberCell] = {}
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
            if isinstance(cell, NumberCell):
                values[(position[r], col)] = cell
                cells.append(Cell(position[r], col, rowspan, colspan, cell.text))
            else:
                cells.append(Cell(position[r], col, rowspan, colspan, cell))
    try:
        entry = table_entry(page, cells, nrows=len(order), ncols=width)
    except ValueError:  # overlapping merges: the plain grid
        entry = table_entry(page, [Cell(c.row, c.col, 1, 1, c.text) for c in cells])
    for out in entry["cells"]:
        found = values.get((out["row"], out["col"]))
        if found is not None:
            out["value"] = found.value
            if found.date is not None:
                out["date"] = found.date
    return entry


def _plain_table(rows: Rows, page: int) -> dict[str, Any]:
    """What :func:`_table` gives a sheet without merged cells, built straight: the
    entry ``table_entry`` makes, without its search for overlapping cells (there are
    none)."""
    texts = rows.texts
    width = max(map(len, texts), default=0)
    for line in texts:
        if len(line) < width:
            line.extend([""] * (width - len(line)))
    cells = [
        {"row": i, "col": col, "rowspan": 1, "colspan": 1, "text": text}
        for i, line in enumerate(texts)
        for col, text in enumerate(line)
    ]
    for (i, col), number in rows.numbers.items():
        out = cells[i * width + col]
        out["value"] = number.value
        if number.date is not None:
            out["date"] = number.date
    return {"page": page, "bbox": None, "rows": texts, "cells": cells, "header_rows": 0}
