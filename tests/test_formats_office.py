"""DOCX, XLSX and PPTX as a careful reader sees them: the parts that are not the body
(footnotes, endnotes, comments, headers and footers, speaker notes, alt text, charts,
hidden sheets) read and marked, cell values as Excel shows them, tables with spans,
equations, text boxes, Strict Open XML. Every file is written here (officegen)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import officegen as og
from docmill.model import DocState, ProcessOutcome
from docmill.processors import ExtractOptions, Task, process_task
from docmill.processors.formats.numfmt import format_number


def run(path: Path, **options: Any) -> ProcessOutcome:
    out = process_task(Task(1, 1, str(path), None, 1 << 30, ExtractOptions(**options)))
    assert out.status is DocState.DONE, out.error
    return out


def kinds(out: ProcessOutcome, kind: str) -> list[dict[str, Any]]:
    return [p for p in out.extra.get("parts", []) if p["kind"] == kind]


# --- XLSX ------------------------------------------------------------------------------

STYLES = (
    '<numFmts count="3"><numFmt numFmtId="164" formatCode="#,##0.00"/>'
    '<numFmt numFmtId="165" formatCode="0.0%"/><numFmt numFmtId="166" formatCode="d mmm yyyy"/></numFmts>'
    '<cellXfs count="6"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/>'
    '<xf numFmtId="165"/><xf numFmtId="166"/><xf numFmtId="20"/></cellXfs>'
)


@pytest.mark.parametrize(
    ("value", "code", "shown"),
    [
        (19.989999999999998, "General", "19.99"),
        (2.5000000000000001e-2, "General", "0.025"),
        (43363, "yyyy-mm-dd", "2018-09-20"),
        (43363.75, "m/d/yy h:mm AM/PM", "9/20/18 6:00 PM"),
        (1234567.891, "#,##0.00", "1,234,567.89"),
        (-1234.5, "#,##0.00;[Red](#,##0.00)", "(1,234.50)"),
        (0.1234, "0.0%", "12.3%"),
        (12345.678, "0.00E+00", "1.23E+04"),
        (1.25, "# ?/?", "1 1/4"),
        (1234.5, "[$€-407] #,##0.00", "€ 1,234.50"),
        (1.5, "[h]:mm:ss", "36:00:00"),
        (0, '#,##0;-#,##0;"-"', "-"),
        (1500000, '#,##0,"K"', "1,500K"),
    ],
)
def test_number_formats(value: float, code: str, shown: str) -> None:
    assert format_number(value, code) == shown


def test_xlsx_values_as_shown_with_raw_values_beside(tmp_path: Path) -> None:
    rows = (
        '<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1"><v>19.989999999999998</v></c>'
        '<c r="C1"><v>2.5000000000000001E-2</v></c></row>'
        '<row r="2"><c r="A2" s="1"><v>43363</v></c><c r="B2" s="2"><v>1234567.891</v></c>'
        '<c r="C2" s="3"><v>0.1234</v></c><c r="D2" s="4"><v>43363</v></c><c r="E2" s="5"><v>0.75</v></c></row>'
        "</sheetData>"
    )
    book = og.xlsx(
        tmp_path / "values.xlsx",
        [("Data", "", rows)],
        shared=['<si><r><t>課</t></r><r><t>長</t></r><rPh sb="0" eb="1"><t>カ</t></rPh><phoneticPr fontId="1"/></si>'],
        styles=STYLES,
    )
    out = run(book)
    table = out.extra["tables"][0]
    assert table["rows"] == [
        ["課長", "19.99", "0.025", "", ""],
        ["2018-09-20", "1,234,567.89", "12.3%", "20 Sep 2018", "18:00"],
    ]
    by_place = {(c["row"], c["col"]): c for c in table["cells"]}
    assert by_place[(0, 1)]["value"] == 19.989999999999998
    assert by_place[(1, 0)] == {
        "row": 1, "col": 0, "rowspan": 1, "colspan": 1, "text": "2018-09-20",
        "value": 43363, "date": "2018-09-20T00:00:00",
    }
    assert out.text == ["課長\t19.99\t0.025\n2018-09-20\t1,234,567.89\t12.3%\t20 Sep 2018\t18:00"]


def test_xlsx_phonetic_runs_never_leak(tmp_path: Path) -> None:
    shared = [
        '<si><t>課</t><rPh sb="0" eb="1"><t>きく</t></rPh><phoneticPr fontId="1"/></si>',
        '<si><r><t>毛</t></r><rPh sb="0" eb="1"><t>こ</t></rPh><rPh sb="1" eb="2"><t>カケ</t></rPh></si>',
    ]
    rows = (
        '<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
        '<c r="C1" t="inlineStr"><is><t>漢</t><rPh sb="0" eb="1"><t>かん</t></rPh></is></c></row></sheetData>'
    )
    out = run(og.xlsx(tmp_path / "ph.xlsx", [("S", "", rows)], shared=shared))
    assert out.text == ["課\t毛\t漢"]


def test_xlsx_merged_cells_hidden_sheets_comments_and_charts(tmp_path: Path) -> None:
    visible = (
        '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Region</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>Sales</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>North</t></is></c><c r="B2"><v>10</v></c></row>'
        '<row r="3"><c r="B3"><v>12</v></c></row></sheetData>'
        '<mergeCells count="1"><mergeCell ref="A2:A3"/></mergeCells><drawing r:id="rIdD"/>'
    )
    hidden = '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>secret rate</t></is></c></row></sheetData>'
    comments = (
        f'<?xml version="1.0"?><comments xmlns="{og.SML}"><authors><author>Ada</author></authors>'
        '<commentList><comment ref="B2" authorId="0"><text><r><t>Check this figure</t></r></text></comment>'
        "</commentList></comments>"
    )
    drawing = (
        '<?xml version="1.0"?><xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"'
        f' xmlns:a="{og.DML}" xmlns:c="{og.CHART}" xmlns:r="{og.OD}"><xdr:twoCellAnchor><xdr:graphicFrame>'
        '<a:graphic><a:graphicData><c:chart r:id="rIdC"/></a:graphicData></a:graphic>'
        "</xdr:graphicFrame></xdr:twoCellAnchor></xdr:wsDr>"
    )
    book = og.xlsx(
        tmp_path / "merged.xlsx",
        [("Sales", "", visible), ("Rates", "hidden", hidden)],
        sheet_rels={1: {"rIdN": ("comments", "../comments1.xml"), "rIdD": ("drawing", "../drawings/drawing1.xml")}},
        extra_parts={
            "xl/comments1.xml": comments,
            "xl/drawings/drawing1.xml": drawing,
            "xl/drawings/_rels/drawing1.xml.rels": og.rels({"rIdC": ("chart", "../charts/chart1.xml")}),
            "xl/charts/chart1.xml": og.chart_xml("Sales by region", ["North", "South"], {"2024": [10, 12]}),
        },
    )
    out = run(book, markdown=True)
    first, second = out.extra["tables"]
    assert first["rows"] == [["Region", "Sales"], ["North", "10"], ["", "12"]]
    assert {"row": 1, "col": 0, "rowspan": 2, "colspan": 1, "text": "North"} in first["cells"]
    assert "hidden" not in first and second["hidden"] is True and second["name"] == "Rates"
    assert out.metadata["hidden_sheets"] == ["Rates"]
    assert out.text[1] == "secret rate"  # read, and marked
    assert kinds(out, "comments") == [
        {"page": 0, "kind": "comments", "text": "Check this figure", "author": "Ada", "ref": "B2"}
    ]
    (chart,) = kinds(out, "charts")
    assert chart["page"] == 0
    assert chart["text"] == "Sales by region\nUnits sold\nCategory\t2024\nNorth\t10\nSouth\t12"
    md = out.extra["markdown"]
    assert "## Rates (hidden)" in md and "> **Ada** (B2): Check this figure" in md
    assert "| North | 10 |" in md


def test_xlsx_strict_open_xml(tmp_path: Path) -> None:
    rows = '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Test</t></is></c><c r="B1"><v>2</v></c></row></sheetData>'
    out = run(og.xlsx(tmp_path / "strict.xlsx", [("S", "", rows)], strict=True))
    assert out.pages == 1 and out.text == ["Test\t2"]
