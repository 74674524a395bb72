"""XLSX cell values as Excel shows them: strings, booleans, errors, and numbers through
their cell style's number format (``numfmt``).

A cell is read as (type ``t``, style ``s``, stored text ``v``): a shared string by its
index, a boolean as TRUE/FALSE, an error or a formula's string as its text, a Strict
ISO date (``t="d"``) without a midnight time, a number through its style's format code
(``General`` keeps 15 significant digits) with its stored ``value`` beside it, and an
ISO ``date`` for a date format. A shown value is a plain ``str`` when there is no
number behind it, else a :class:`NumberCell`. Phonetic guides (``rPh``) are never read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from docmill.model import FailureCategory
from docmill.processors.formats.numfmt import BUILTIN, format_number, is_date_format, to_datetime
from docmill.processors.formats.package import FormatError

S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_T, _R = f"{S}t", f"{S}r"
_CACHED_NUMBERS = 65_536  # shown numbers remembered per workbook before the cache restarts


class NumberCell:
    """A number as shown (``text``), its stored ``value`` and, for a date, ``date``."""

    __slots__ = ("date", "text", "value")

    def __init__(self, text: str, value: float, date: str | None = None) -> None:
        self.text, self.value, self.date = text, value, date


Shown = str | NumberCell


def string_item(si: ET.Element) -> str:
    """A shared or inline string: its ``t`` text, or its rich-text runs'; never the
    phonetic guide (``rPh``) that Japanese workbooks carry beside the text."""
    out: list[str] = []
    for child in si:
        if child.tag == _T:
            out.append(child.text or "")
        elif child.tag == _R:
            out.extend(t.text or "" for t in child.iter(_T))
    return "".join(out)


class Styles:
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


class CellValues:
    """The shown value of a cell of one workbook (its shared strings, styles, epoch).

    Numbers are formatted once per (stored text, style): a sheet repeats values, and a
    format code is looked up once per style."""

    def __init__(self, shared: list[str], styles: Styles, date1904: bool) -> None:
        self.shared, self.styles, self.date1904 = shared, styles, date1904
        self._formats: dict[str | None, tuple[str, bool]] = {}
        self._numbers: dict[tuple[str, str | None], Shown] = {}

    def shown(self, kind: str, style: str | None, raw: str, ref: str = "?") -> Shown:
        """The value of a cell of type ``kind`` (its ``t``, "n" when absent; never
        ``inlineStr``, whose text is the caller's), style ``style`` (its ``s``) and
        stored text ``raw`` (its ``v``); ``ref`` names it in an error."""
        if kind == "s":
            try:
                return self.shared[int(raw)]
            except (ValueError, IndexError):
                raise FormatError(
                    FailureCategory.CORRUPT,
                    f"cell {ref} names shared string {raw!r}, which does not exist",
                ) from None
        if kind == "b":
            return "TRUE" if raw.strip() == "1" else "FALSE"
        if kind == "d":  # an ISO 8601 date (Strict workbooks)
            return raw.replace("T00:00:00", "").rstrip("Z")
        if kind == "str" or kind == "e" or not raw:
            return raw
        known = self._numbers.get((raw, style))
        if known is not None:
            return known
        try:
            number = float(raw)
        except ValueError:
            return raw
        found = self._formats.get(style)
        if found is None:
            code = self.styles.code(style)
            found = self._formats[style] = (code, is_date_format(code))
        code, is_date = found
        stored: float = int(number) if number.is_integer() and abs(number) < 1e15 else number
        text = format_number(number, code, self.date1904).strip()
        if is_date:
            moment = to_datetime(number, self.date1904)
            shown = NumberCell(text, stored, moment.isoformat() if moment is not None else None)
        else:
            shown = NumberCell(text, stored)
        if len(self._numbers) >= _CACHED_NUMBERS:
            self._numbers.clear()
        self._numbers[(raw, style)] = shown
        return shown
