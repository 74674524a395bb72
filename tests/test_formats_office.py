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


# --- DOCX ------------------------------------------------------------------------------


def test_docx_notes_comments_headers_footers_are_parts_not_body(tmp_path: Path) -> None:
    body = (
        og.p("Chapter", "Heading1")
        + og.p(" after the claim.", inner='<w:r><w:t>A claim</w:t></w:r><w:r><w:footnoteReference w:id="2"/></w:r>')
        + og.p(" closes.", inner='<w:r><w:t>A second</w:t></w:r><w:r><w:footnoteReference w:id="1"/></w:r>'
               '<w:r><w:endnoteReference w:id="1"/></w:r>')
        + og.p("Reviewed text")
    )
    path = og.docx(
        tmp_path / "notes.docx",
        body,
        footnotes=og.separator_notes("footnote") + og.note("footnote", 1, "Second note.") + og.note("footnote", 2, "First note."),
        endnotes=og.separator_notes("endnote") + og.note("endnote", 1, "An endnote."),
        comments='<w:comment w:id="0" w:author="Grace Hopper" w:initials="GH">' + og.p("Please cite this.") + "</w:comment>",
        headers={"rIdH1": og.p("Annual Report 2024"), "rIdH2": og.p("Annual Report 2024")},
        footers={"rIdF1": og.p("Confidential")},
    )
    out = run(path, markdown=True)
    assert out.text == ["Chapter\nA claim after the claim.\nA second closes.\nReviewed text"]
    assert out.extra["parts"] == [
        {"page": 0, "kind": "headers", "text": "Annual Report 2024"},  # two sections, one header
        {"page": 0, "kind": "footers", "text": "Confidential"},
        {"page": 0, "kind": "footnotes", "text": "First note.", "label": "1"},
        {"page": 0, "kind": "footnotes", "text": "Second note.", "label": "2"},
        {"page": 0, "kind": "endnotes", "text": "An endnote.", "label": "e1"},
        {"page": 0, "kind": "comments", "text": "Please cite this.", "author": "Grace Hopper"},
    ]
    md = out.extra["markdown"]
    assert md.startswith("**Header**\n\nAnnual Report 2024\n\n# Chapter\n\nA claim[^1] after the claim.")
    assert "A second[^2][^e1] closes." in md
    assert md.index("[^1]: First note.") < md.index("[^2]: Second note.") < md.index("[^e1]: An endnote.")
    assert "> **Grace Hopper**: Please cite this." in md


def test_docx_text_boxes_stay_apart_from_the_next_text(tmp_path: Path) -> None:
    box = (
        '<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor><wp:docPr id="1" name="Text Box 1"/>'
        '<a:graphic><a:graphicData><wps:wsp><wps:txbx><w:txbxContent>'
        + og.p("Workers' Compensation Act")
        + "</w:txbxContent></wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing></mc:Choice>"
        '<mc:Fallback><w:pict><v:textbox xmlns:v="urn:schemas-microsoft-com:vml"><w:txbxContent>'
        + og.p("Workers' Compensation Act")
        + "</w:txbxContent></v:textbox></w:pict></mc:Fallback></mc:AlternateContent></w:r>"
    )
    body = og.p("On October 5, 1990, the law passed.", inner=box) + og.p("Next", inner='<w:r><w:t>text box</w:t></w:r>' + box)
    out = run(og.docx(tmp_path / "box.docx", body))
    assert out.text == [
        "Workers' Compensation Act\nOn October 5, 1990, the law passed.\ntext boxNext\nWorkers' Compensation Act"
    ]


def test_docx_equations_as_latex(tmp_path: Path) -> None:
    frac = (
        "<m:oMath><m:r><m:t>x</m:t></m:r><m:r><m:t>=</m:t></m:r><m:f><m:num><m:r><m:t>−b±</m:t></m:r>"
        "<m:rad><m:radPr><m:degHide m:val=\"1\"/></m:radPr><m:deg/><m:e><m:sSup><m:e><m:r><m:t>b</m:t></m:r></m:e>"
        "<m:sup><m:r><m:t>2</m:t></m:r></m:sup></m:sSup><m:r><m:t>−4ac</m:t></m:r></m:e></m:rad></m:num>"
        "<m:den><m:r><m:t>2a</m:t></m:r></m:den></m:f></m:oMath>"
    )
    angle = (
        "<m:oMath><m:r><m:t>θ=</m:t></m:r><m:func><m:fName><m:r><m:t>cos</m:t></m:r></m:fName>"
        "<m:e><m:r><m:t>α</m:t></m:r></m:e></m:func><m:nary><m:naryPr><m:chr m:val=\"∑\"/></m:naryPr>"
        "<m:sub><m:r><m:t>i=1</m:t></m:r></m:sub><m:sup><m:r><m:t>n</m:t></m:r></m:sup><m:e>"
        "<m:sSub><m:e><m:r><m:t>x</m:t></m:r></m:e><m:sub><m:r><m:t>i</m:t></m:r></m:sub></m:sSub></m:e></m:nary></m:oMath>"
    )
    body = og.p(", we solve.", inner=f"<w:r><w:t xml:space=\"preserve\">For </w:t></w:r>{frac}") + og.p(
        ".", inner=f"<w:r><w:t xml:space=\"preserve\">The angle is </w:t></w:r>{angle}"
    )
    out = run(og.docx(tmp_path / "math.docx", body))
    assert out.text == [
        "For $x=\\frac{-b\\pm \\sqrt{b^2-4ac}}{2a}$, we solve.\n"
        "The angle is $\\theta =\\cos{\\alpha }\\sum_{i=1}^n x_i$."
    ]


def test_docx_alt_text_charts_and_merged_table_cells(tmp_path: Path) -> None:
    picture = (
        '<w:r><w:drawing><wp:inline><wp:docPr id="3" name="Picture 3" descr="A map of the river delta"/>'
        "</wp:inline></w:drawing></w:r>"
    )
    chart = (
        '<w:r><w:drawing><wp:inline><wp:docPr id="4" name="Chart 4"/><a:graphic><a:graphicData>'
        '<c:chart r:id="rIdC"/></a:graphicData></a:graphic></wp:inline></w:drawing></w:r>'
    )
    table = (
        "<w:tbl>"
        '<w:tr><w:tc><w:tcPr><w:gridSpan w:val="2"/></w:tcPr>' + og.p("Both") + "</w:tc><w:tc>" + og.p("C") + "</w:tc></w:tr>"
        '<w:tr><w:tc><w:tcPr><w:vMerge w:val="restart"/></w:tcPr>' + og.p("Tall") + "</w:tc><w:tc>" + og.p("b2") + "</w:tc><w:tc>" + og.p("c2") + "</w:tc></w:tr>"
        '<w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc><w:tc>' + og.p("b3") + "</w:tc><w:tc>" + og.p("c3") + "</w:tc></w:tr>"
        "</w:tbl>"
    )
    path = og.docx(
        tmp_path / "rich.docx",
        og.p("Figure:", inner=picture) + og.p("", inner=chart) + table,
        extra_rels={"rIdC": ("chart", "charts/chart1.xml")},
        extra_parts={"word/charts/chart1.xml": og.chart_xml("Rainfall", ["Jan", "Feb"], {"mm": [80.5, 61]})},
    )
    out = run(path, markdown=True)
    assert kinds(out, "alt_text") == [{"page": 0, "kind": "alt_text", "text": "A map of the river delta"}]
    assert kinds(out, "charts")[0]["text"] == "Rainfall\nUnits sold\nCategory\tmm\nJan\t80.5\nFeb\t61"
    (tbl,) = out.extra["tables"]
    assert tbl["rows"] == [["Both", "", "C"], ["Tall", "b2", "c2"], ["", "b3", "c3"]]
    assert tbl["cells"][:3] == [
        {"row": 0, "col": 0, "rowspan": 1, "colspan": 2, "text": "Both"},
        {"row": 0, "col": 2, "rowspan": 1, "colspan": 1, "text": "C"},
        {"row": 1, "col": 0, "rowspan": 2, "colspan": 1, "text": "Tall"},
    ]
    assert out.text[0].startswith("Figure:\n\nBoth\t\tC\n")  # the chart's paragraph is empty
    md = out.extra["markdown"]
    assert "![A map of the river delta]()" in md and "| Jan | 80.5 |" in md


def test_docx_strict_open_xml(tmp_path: Path) -> None:
    out = run(og.docx(tmp_path / "strict.docx", og.p("Test"), strict=True))
    assert out.text == ["Test"]


# --- PPTX ------------------------------------------------------------------------------


def test_pptx_notes_comments_charts_tables_and_alt_text(tmp_path: Path) -> None:
    table = (
        '<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="4" name="T"/><p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr>'
        '<a:graphic><a:graphicData><a:tbl><a:tblPr firstRow="1"/>'
        '<a:tr><a:tc gridSpan="2"><a:txBody><a:p><a:r><a:t>Quarter</a:t></a:r></a:p></a:txBody></a:tc><a:tc hMerge="1"/></a:tr>'
        "<a:tr><a:tc><a:txBody><a:p><a:r><a:t>Q1</a:t></a:r></a:p></a:txBody></a:tc>"
        "<a:tc><a:txBody><a:p><a:r><a:t>12</a:t></a:r></a:p></a:txBody></a:tc></a:tr>"
        "</a:tbl></a:graphicData></a:graphic></p:graphicFrame>"
    )
    chart = (
        '<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="5" name="C"/><p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr>'
        '<a:graphic><a:graphicData><c:chart r:id="rIdC"/></a:graphicData></a:graphic></p:graphicFrame>'
    )
    picture = (
        '<p:pic><p:nvPicPr><p:cNvPr id="6" name="Picture 6" descr="Team photo at the launch"/><p:cNvPicPr/><p:nvPr/></p:nvPicPr></p:pic>'
    )
    notes = og.slide(
        og.shape("", "sldImg"), og.shape("Remember to thank the sponsors.\nThen the demo.", "body"), og.shape("2", "sldNum"),
        root="notes",
    )
    comments = (
        '<?xml version="1.0"?><p:cmLst xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">'
        '<p:cm authorId="0" idx="1"><p:pos x="0" y="0"/><p:text>Numbers need a source</p:text></p:cm></p:cmLst>'
    )
    authors = (
        '<?xml version="1.0"?><p:cmAuthorLst xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main">'
        '<p:cmAuthor id="0" name="Ada Lovelace" initials="AL" lastIdx="1" clrIdx="0"/></p:cmAuthorLst>'
    )
    path = og.pptx(
        tmp_path / "deck.pptx",
        [
            og.slide(og.shape("Opening", "ctrTitle")),
            og.slide(og.shape("Results", "title"), table, chart, picture, attrs=' show="0"'),
        ],
        slide_rels={
            2: {
                "rIdN": ("notesSlide", "../notesSlides/notesSlide2.xml"),
                "rIdM": ("comments", "../comments/comment1.xml"),
                "rIdC": ("chart", "../charts/chart1.xml"),
            }
        },
        presentation_rels={"rIdA": ("commentAuthors", "commentAuthors.xml")},
        extra_parts={
            "ppt/notesSlides/notesSlide2.xml": notes,
            "ppt/comments/comment1.xml": comments,
            "ppt/commentAuthors.xml": authors,
            "ppt/charts/chart1.xml": og.chart_xml("Revenue", ["Q1", "Q2"], {"EUR": [1.5, 2.25]}),
        },
    )
    out = run(path, markdown=True)
    assert out.text == ["Opening", "Results\nQuarter\t\nQ1\t12"]
    assert out.metadata["hidden_slides"] == [1]
    (table_out,) = out.extra["tables"]
    assert table_out["page"] == 1 and table_out["header_rows"] == 1
    assert table_out["rows"] == [["Quarter", ""], ["Q1", "12"]]
    assert table_out["cells"][0] == {"row": 0, "col": 0, "rowspan": 1, "colspan": 2, "text": "Quarter"}
    assert kinds(out, "notes") == [
        {"page": 1, "kind": "notes", "text": "Remember to thank the sponsors.\nThen the demo."}
    ]
    assert kinds(out, "comments") == [
        {"page": 1, "kind": "comments", "text": "Numbers need a source", "author": "Ada Lovelace"}
    ]
    assert kinds(out, "alt_text")[0]["text"] == "Team photo at the launch"
    assert kinds(out, "charts")[0]["text"] == "Revenue\nUnits sold\nCategory\tEUR\nQ1\t1.5\nQ2\t2.25"
    md = out.extra["markdown"]
    slide2 = md.split("\n\n---\n\n")[1]
    assert slide2.index("## Results") < slide2.index("| Quarter |") < slide2.index("**Notes**")
    assert "Remember to thank the sponsors." in slide2 and "| Q2 | 2.25 |" in slide2


def test_chart_multi_level_categories() -> None:
    """Grouped category axes (``c:multiLvlStrRef``, what python-pptx writes for
    hierarchical categories): each category's label, then its groups'."""
    import xml.etree.ElementTree as ET

    from docmill.processors.formats.charts import read_chart

    def lvl(points: dict[int, str]) -> str:
        return "<c:lvl>" + "".join(f'<c:pt idx="{i}"><c:v>{v}</c:v></c:pt>' for i, v in points.items()) + "</c:lvl>"

    cat = (
        "<c:cat><c:multiLvlStrRef><c:f>S!$A$2:$B$4</c:f><c:multiLvlStrCache><c:ptCount val=\"3\"/>"
        + lvl({0: "SF", 1: "LA", 2: "London"}) + lvl({0: "US", 2: "UK"})
        + "</c:multiLvlStrCache></c:multiLvlStrRef></c:cat>"
    )
    chart = ET.fromstring(
        f'<c:chartSpace xmlns:c="{og.CHART}"><c:chart><c:plotArea><c:barChart><c:ser>'
        '<c:tx><c:v>Sales</c:v></c:tx>' + cat +
        '<c:val><c:numLit><c:formatCode>General</c:formatCode><c:pt idx="0"><c:v>4.0</c:v></c:pt>'
        '<c:pt idx="1"><c:v>2.5</c:v></c:pt><c:pt idx="2"><c:v>3</c:v></c:pt></c:numLit></c:val>'
        "</c:ser></c:barChart></c:plotArea></c:chart></c:chartSpace>"
    )
    assert read_chart(chart).rows == [
        ["Category", "Sales"], ["SF / US", "4"], ["LA", "2.5"], ["London / UK", "3"]
    ]
