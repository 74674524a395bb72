"""XLSX worksheets read two ways, one result: the scanner for the shape writers use
(``xlsx_sheet._scan``) against ElementTree over the whole part (``_tree``), on sheets
in that shape, beside it, and broken. Every file is written here (officegen)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import officegen as og
from docmill.processors import ExtractOptions, Task, process_task
from docmill.processors.formats import xlsx_sheet

X14AC = "http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac"
ROOT = f'<worksheet xmlns="{og.SML}" xmlns:r="{og.OD}" xmlns:mc="{og.MC}" mc:Ignorable="x14ac" xmlns:x14ac="{X14AC}">'
SHARED = ["<si><t>Name</t></si>", "<si><t>Score</t></si>", "<si><r><t>Ri</t></r><r><t>ch</t></r></si>"]
STYLES = (
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="0.0%"/></numFmts>'
    '<cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/><xf numFmtId="4"/></cellXfs>'
)


def sheet(data: str, tail: str = "", root: str = ROOT, head: str = "") -> str:
    return f'{og.XML}{root}<dimension ref="A1"/>{head}<sheetData>{data}</sheetData>{tail}</worksheet>'


def book(tmp_path: Path, part: str | bytes, name: str = "b.xlsx", **parts: str | bytes) -> Path:
    return og.xlsx(
        tmp_path / name,
        [("S", "", "<sheetData/>")],
        shared=SHARED,
        styles=STYLES,
        extra_parts={"xl/worksheets/sheet1.xml": part, **parts},
    )


def record(path: Path) -> dict[str, Any]:
    out = process_task(Task(1, 1, str(path), None, 1 << 30, ExtractOptions(markdown=True)))
    return {
        "status": out.status,
        "error": out.error.to_dict() if out.error else None,
        "text": out.text,
        "extra": out.extra,
    }


def both_ways(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], bool]:
    """The record of ``path`` as extracted, whether the scanner read its sheet, and
    (asserted) the same record with the scanner switched off."""
    scanned: list[bool] = []
    scan = xlsx_sheet._scan

    def spy(*args: Any) -> Any:
        found = scan(*args)
        scanned.append(found is not None)
        return found

    with monkeypatch.context() as patch:
        patch.setattr(xlsx_sheet, "_scan", spy)
        fast = record(path)
    with monkeypatch.context() as patch:
        patch.setattr(xlsx_sheet, "_scan", lambda *args: None)
        slow = record(path)
    assert fast == slow
    return fast, all(scanned) and bool(scanned)


ROWS = (
    '<row r="1" spans="1:4" x14ac:dyDescent="0.2"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
    '<c r="C1" s="1" t="s"><v>2</v></c></row>'
    '<row r="2" spans="1:4" x14ac:dyDescent="0.2"><c r="A2" t="str"><f>CONCATENATE("a", "b")</f><v>ab</v></c>'
    '<c r="B2" s="2"><v>0.1234</v></c><c r="C2" s="1"><v>43363</v></c><c r="D2" s="3"/></row>'
    '<row r="4"><c r="A4" t="str"><f t="shared" ref="A4:A5" si="0">UPPER("x")</f><v>X</v></c>'
    '<c r="B4" t="b"><v>1</v></c><c r="C4" t="e"><v>#DIV/0!</v></c><c r="D4"><v>19.989999999999998</v></c></row>'
    '<row r="5"><c r="A5" t="str"><f t="shared" si="0"/><v>Y</v></c><c r="E5" t="inlineStr"><is><t>in line</t></is></c></row>'
    '<row r="6"/>'
)


def test_the_common_shape_is_scanned_and_reads_as_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    links = '<hyperlinks><hyperlink ref="A1" r:id="rId1" display="x"/><hyperlink ref="B1" location="S!A1" /></hyperlinks>'
    out, scanned = both_ways(book(tmp_path, sheet(ROWS, links + '<pageMargins left="0.7"/>')), monkeypatch)
    assert scanned
    table = out["extra"]["tables"][0]
    assert table["rows"] == [
        ["Name", "Score", "Rich", "", ""],
        ["ab", "12.3%", "2018-09-20", "", ""],
        ["X", "TRUE", "#DIV/0!", "19.99", ""],
        ["Y", "", "", "", "in line"],
    ]
    by_place = {(c["row"], c["col"]): c for c in table["cells"]}
    assert by_place[(1, 2)]["date"] == "2018-09-20T00:00:00" and by_place[(1, 1)]["value"] == 0.1234
    assert out["text"][0].splitlines()[3] == "Y\t\t\t\tin line"


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("pretty-printed", '\n  <row r="1">\n    <c r="A1" t="s">\n      <v>0</v>\n    </c>\n  </row>\n'),
        ("no r, r not first", '<row><c t="s"><v>0</v></c><c t="s" r="C1"><v>1</v></c><c><v>7</v></c></row><row><c r="b2"><v>2</v></c></row>'),
        ("past XFD and row 0", '<row r="0"><c r="XFE1"><v>1</v></c><c r="A1"><v>3</v></c></row>'),
        ("references and line ends", '<row r="1"><c r="A1" t="str"><v>a &amp; b &lt;c&gt; &#10;&#x263A;</v></c>'
         '<c r="B1" t="str"><v>one\r\ntwo\rthree</v></c><c r="C1" t="inlineStr"><is><t xml:space="preserve"> x &amp; y </t></is></c></row>'),
        ("a cell again, and left of one", '<row r="1"><c r="B1"><v>1</v></c><c r="B1" t="str"><v>b</v></c><c r="A1"><v>2</v></c>'
         '<c r="C1"><v>5</v></c><c r="C1" t="str"><v></v></c></row>'),
        ("a number over a string", '<row r="1"><c r="A1" t="str"><v>s</v></c><c r="A1" s="2"><v>0.5</v></c></row>'),
        ("empty values", '<row r="1"><c r="A1"/><c r="B1"><v/></c><c r="C1" t="str"><v></v></c></row><row r="2"></row>'),
        ("merged cells", '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1"><v>1</v></c></row><row r="2"><c r="B2"><v>2</v></c></row>'),
    ],
)
def test_shapes_the_scanner_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str, data: str) -> None:
    tail = '<mergeCells count="1"><mergeCell ref="A1:A2"/></mergeCells>' if label == "merged cells" else ""
    out, scanned = both_ways(book(tmp_path, sheet(data, tail)), monkeypatch)
    assert scanned, label
    assert bool(out["extra"]["tables"][0]["rows"]) is (label != "empty values"), label


@pytest.mark.parametrize(
    ("label", "part"),
    [
        ("rows out of order", sheet('<row r="3"><c r="A3"><v>3</v></c></row><row r="2"><c r="A2"><v>2</v></c></row>')),
        ("a row twice", sheet('<row r="2"><c r="A2"><v>1</v></c></row><row r="2"><c r="B2"><v>2</v></c></row>')),
        ("rich inline string", sheet('<row r="1"><c r="A1" t="inlineStr"><is><r><t>a</t></r><r><t>b</t></r></is></c></row>')),
        ("a comment", sheet('<row r="1"><!-- note --><c r="A1"><v>1</v></c></row>')),
        ("CDATA", sheet('<row r="1"><c r="A1" t="str"><v><![CDATA[a<b]]></v></c></row>')),
        ("prefixed", f'{og.XML}<x:worksheet xmlns:x="{og.SML}"><x:sheetData><x:row r="1"><x:c r="A1"><x:v>1</x:v></x:c></x:row></x:sheetData></x:worksheet>'),
        ("another default namespace", f'{og.XML}<worksheet xmlns="urn:other"><sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData></worksheet>'),
        ("UTF-16", sheet('<row r="1"><c r="A1" t="str"><v>é</v></c></row>').replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")),
        ("Latin-1", sheet('<row r="1"><c r="A1" t="str"><v>é</v></c></row>').replace('encoding="UTF-8"', 'encoding="ISO-8859-1"').encode("latin-1")),
        ("extension list in a cell", sheet('<row r="1"><c r="A1"><v>1</v><extLst><ext uri="u"/></extLst></c></row>')),
    ],
)
def test_other_shapes_are_read_by_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str, part: str | bytes) -> None:
    out, scanned = both_ways(book(tmp_path, part), monkeypatch)
    assert not scanned, label
    assert out["status"].value == "done", label


@pytest.mark.parametrize(
    ("label", "part"),
    [
        ("control character", sheet('<row r="1"><c r="A1" t="str"><v>a\x01b</v></c></row>')),
        ("undeclared prefix", sheet('<row r="1" y:h="1"><c r="A1"><v>1</v></c></row>')),
        ("attribute twice", sheet('<row r="1"><c r="A1" s="1" s="2"><v>1</v></c></row>')),
        ("r twice", sheet('<row r="1"><c r="A1" t="n" r="B1"><v>1</v></c></row>')),
        ("bare ampersand", sheet('<row r="1"><c r="A1" t="str"><v>a & b</v></c></row>')),
        ("reference to no character", sheet('<row r="1"><c r="A1" t="str"><f>&#0;</f><v>1</v></c></row>')),
        ("]]> in text", sheet('<row r="1"><c r="A1" t="str"><v>a]]>b</v></c></row>')),
        ("mismatched tag", sheet('<row r="1"><c r="A1"><v>1</c></v></row>')),
        ("unclosed row", sheet('<row r="1"><c r="A1"><v>1</v></c>')),
        ("shared string that does not exist", sheet('<row r="1"><c r="A1" t="s"><v>9</v></c></row>')),
        ("a DTD", sheet('<row r="1"><c r="A1"><v>1</v></c></row>').replace("<worksheet", '<!DOCTYPE w [<!ENTITY e "x">]><worksheet', 1)),
        ("broken after the sheet data", sheet('<row r="1"><c r="A1"><v>1</v></c></row>', "<pageMargins>")),
        ("link with an unbound prefix", sheet('<row r="1"><c r="A1"><v>1</v></c></row>', '<hyperlinks><hyperlink ref="A1" r:id="rId1"/></hyperlinks>', root=f'<worksheet xmlns="{og.SML}">')),
    ],
)
def test_broken_sheets_fail_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, label: str, part: str) -> None:
    out, _ = both_ways(book(tmp_path, part), monkeypatch)
    assert out["status"].value == "failed" and out["error"]["category"] == "corrupt", label


def test_garbage_collection_runs_again_after_a_sheet(tmp_path: Path) -> None:
    good = book(tmp_path, sheet(ROWS), "good.xlsx")
    bad = book(tmp_path, sheet('<row r="1"><c r="A1" t="s"><v>9</v></c></row>'), "bad.xlsx")
    for path in (good, bad):
        record(path)
        assert gc.isenabled()
    gc.disable()
    try:
        record(good)
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()


def test_a_sheets_hyperlink_relationships_are_never_parsed(tmp_path: Path) -> None:
    """Like any part docmill does not read, relationships of kinds it never looks at
    (a sheet's hyperlinks) fail nothing when damaged; the ones it reads still do."""
    links = og.rels({"rId1": ("hyperlink", "http://example.com/?a=1")}).replace("</Relationships>", "<Relationship")
    path = book(tmp_path, sheet(ROWS), **{"xl/worksheets/_rels/sheet1.xml.rels": links})
    assert record(path)["status"].value == "done"
    comments = og.rels({"rId1": ("comments", "../comments1.xml")}).replace("</Relationships>", "<Relationship")
    path = book(tmp_path, sheet(ROWS), "c.xlsx", **{"xl/worksheets/_rels/sheet1.xml.rels": comments})
    assert record(path)["error"]["category"] == "corrupt"


def test_numbers_are_formatted_once_per_value_and_style(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from docmill.processors.formats import xlsx_values

    calls: list[tuple[float, str]] = []
    real: Callable[..., str] = xlsx_values.format_number

    def counted(value: float, code: str, date1904: bool = False) -> str:
        calls.append((value, code))
        return real(value, code, date1904)

    monkeypatch.setattr(xlsx_values, "format_number", counted)
    rows = "".join(f'<row r="{i}"><c r="A{i}" s="2"><v>0.5</v></c><c r="B{i}" s="3"><v>0.5</v></c></row>' for i in range(1, 50))
    out = record(book(tmp_path, sheet(rows)))
    assert out["extra"]["tables"][0]["rows"][48] == ["50.0%", "0.50"]
    assert sorted(calls) == [(0.5, "#,##0.00"), (0.5, "0.0%")]


def test_a_sheet_without_merges_is_the_entry_table_entry_makes() -> None:
    from docmill.model.tables import Cell, table_entry
    from docmill.processors.formats.xlsx_values import NumberCell

    grid: xlsx_sheet.Grid = {
        0: {0: "a", 3: NumberCell("1.5", 1.5)},
        4: {1: NumberCell("2020-01-02", 43832, "2020-01-02T00:00:00")},
        7: {2: "c"},
    }
    made = xlsx_sheet._table(xlsx_sheet.Rows.of(grid), [], 3)
    order = sorted(grid)
    cells = [
        Cell(order.index(r), col, 1, 1, value.text if isinstance(value, NumberCell) else value)
        for r, cols in grid.items()
        for col, value in cols.items()
    ]
    expected = table_entry(3, cells, nrows=3, ncols=4)
    expected["cells"][3] |= {"value": 1.5}
    expected["cells"][5] |= {"value": 43832, "date": "2020-01-02T00:00:00"}
    assert made == expected
    assert list(made) == list(expected) and [list(c) for c in made["cells"]] == [list(c) for c in expected["cells"]]
