"""Write the sample documents in tests/data: one small, valid file per format.

    python tests/data/make_samples.py [FOLDER]   (default: this file's folder)

The zip-based formats are built with zipfile from minimal XML parts, as Word, Excel,
PowerPoint and EPUB readers expect them; members carry a fixed date so the same
script writes the same parts.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAMP = (2024, 1, 2, 3, 4, 6)

CT = "http://schemas.openxmlformats.org/package/2006/content-types"
PR = "http://schemas.openxmlformats.org/package/2006/relationships"
OD = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
SML = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
PML = "http://schemas.openxmlformats.org/presentationml/2006/main"
DML = "http://schemas.openxmlformats.org/drawingml/2006/main"
XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def write_zip(path: Path, parts: dict[str, str | bytes], stored: tuple[str, ...] = ()) -> Path:
    """A zip of ``parts`` in the order given; names in ``stored`` are not compressed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name, STAMP)
            info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def core_xml(title: str, creator: str) -> str:
    return (
        f'{XML}<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:title>{title}</dc:title><dc:creator>{creator}</dc:creator>"
        "<dc:subject>docmill test data</dc:subject><cp:keywords>sample, formats</cp:keywords>"
        "<dc:language>en-GB</dc:language>"
        '<dcterms:created xsi:type="dcterms:W3CDTF">2024-01-02T03:04:05Z</dcterms:created>'
        '<dcterms:modified xsi:type="dcterms:W3CDTF">2024-01-03T00:00:00Z</dcterms:modified>'
        "</cp:coreProperties>"
    )


def content_types(overrides: dict[str, str]) -> str:
    items = "".join(
        f'<Override PartName="/{name}" ContentType="{kind}"/>' for name, kind in overrides.items()
    )
    return (
        f'{XML}<Types xmlns="{CT}">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'{items}<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        "</Types>"
    )


def rels(targets: dict[str, tuple[str, str]]) -> str:
    """Relationships: id -> (type, target)."""
    items = "".join(
        f'<Relationship Id="{rid}" Type="{kind}" Target="{target}"/>'
        for rid, (kind, target) in targets.items()
    )
    return f'{XML}<Relationships xmlns="{PR}">{items}</Relationships>'


def package_rels(main: str) -> str:
    return rels(
        {
            "rId1": (f"{OD}/officeDocument", main),
            "rId2": (
                "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties",
                "docProps/core.xml",
            ),
        }
    )


# --- DOCX ------------------------------------------------------------------------------


def _p(text: str, style: str | None = None) -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f'<w:p>{props}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def _tc(text: str) -> str:
    return f"<w:tc>{_p(text)}</w:tc>"


def docx(path: Path) -> Path:
    table = (
        "<w:tbl><w:tblPr/>"
        "<w:tr><w:trPr><w:tblHeader/></w:trPr>" + _tc("Fruit") + _tc("Count") + "</w:tr>"
        "<w:tr>" + _tc("Apple") + _tc("3") + "</w:tr>"
        "<w:tr>" + _tc("Pear") + _tc("5") + "</w:tr>"
        "</w:tbl>"
    )
    body = (
        _p("Quarterly Report", "Heading1")
        + _p("The first paragraph of the report.")
        + "<w:p><w:r><w:t>Bold </w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>and plain</w:t></w:r>"
        "<w:r><w:tab/><w:t>after a tab.</w:t></w:r></w:p>"
        + table
        + _p("Closing words after the table.")
        + '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr>'
    )
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    return write_zip(
        path,
        {
            "[Content_Types].xml": content_types({"word/document.xml": main}),
            "_rels/.rels": package_rels("word/document.xml"),
            "word/document.xml": f'{XML}<w:document xmlns:w="{W}" xmlns:r="{OD}"><w:body>{body}</w:body></w:document>',
            "word/_rels/document.xml.rels": rels({}),
            "docProps/core.xml": core_xml("Quarterly Report", "Ada Lovelace"),
        },
    )


# --- XLSX ------------------------------------------------------------------------------


def xlsx(path: Path) -> Path:
    shared = ["Name", "Score", "Ada", "Grace"]
    sst = "".join(f"<si><t>{s}</t></si>" for s in shared)
    sheet1 = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
        '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2"><v>42</v></c></row>'
        '<row r="3"><c r="A3" t="s"><v>3</v></c><c r="B3"><v>3.5</v></c>'
        '<c r="D3" t="inlineStr"><is><t>inline note</t></is></c></row>'
    )
    sheet2 = '<row r="2"><c r="B2" t="b"><v>1</v></c><c r="C2" t="str"><f>1+1</f><v>2</v></c></row>'
    worksheet = (
        f'{XML}<worksheet xmlns="{SML}" xmlns:r="{OD}"><sheetData>{{}}</sheetData></worksheet>'
    )
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
    return write_zip(
        path,
        {
            "[Content_Types].xml": content_types(
                {
                    "xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                    "xl/worksheets/sheet1.xml": sheet_type,
                    "xl/worksheets/sheet2.xml": sheet_type,
                    "xl/sharedStrings.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml",
                }
            ),
            "_rels/.rels": package_rels("xl/workbook.xml"),
            "xl/workbook.xml": (
                f'{XML}<workbook xmlns="{SML}" xmlns:r="{OD}"><sheets>'
                '<sheet name="Scores" sheetId="1" r:id="rId1"/><sheet name="Flags" sheetId="2" r:id="rId2"/>'
                "</sheets></workbook>"
            ),
            "xl/_rels/workbook.xml.rels": rels(
                {
                    "rId1": (f"{OD}/worksheet", "worksheets/sheet1.xml"),
                    "rId2": (f"{OD}/worksheet", "worksheets/sheet2.xml"),
                    "rId3": (f"{OD}/sharedStrings", "sharedStrings.xml"),
                }
            ),
            "xl/worksheets/sheet1.xml": worksheet.format(sheet1),
            "xl/worksheets/sheet2.xml": worksheet.format(sheet2),
            "xl/sharedStrings.xml": f'{XML}<sst xmlns="{SML}" count="{len(shared)}" uniqueCount="{len(shared)}">{sst}</sst>',
            "docProps/core.xml": core_xml("Scores", "Grace Hopper"),
        },
    )


# --- PPTX ------------------------------------------------------------------------------


def _shape(text: str, placeholder: str | None) -> str:
    ph = f'<p:ph type="{placeholder}"/>' if placeholder else ""
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="2" name="s"/><p:cNvSpPr/><p:nvPr>{ph}</p:nvPr></p:nvSpPr>'
        f"<p:spPr/><p:txBody><a:bodyPr/><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp>"
    )


def _slide(*shapes: str) -> str:
    return (
        f'{XML}<p:sld xmlns:p="{PML}" xmlns:a="{DML}" xmlns:r="{OD}"><p:cSld><p:spTree>'
        '<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>'
        f"{''.join(shapes)}</p:spTree></p:cSld></p:sld>"
    )


def pptx(path: Path) -> Path:
    slide_type = "application/vnd.openxmlformats-officedocument.presentationml.slide+xml"
    # the body shape comes first in the tree: the title must still lead the slide's text
    return write_zip(
        path,
        {
            "[Content_Types].xml": content_types(
                {
                    "ppt/presentation.xml": "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
                    "ppt/slides/slide1.xml": slide_type,
                    "ppt/slides/slide2.xml": slide_type,
                }
            ),
            "_rels/.rels": package_rels("ppt/presentation.xml"),
            "ppt/presentation.xml": (
                f'{XML}<p:presentation xmlns:p="{PML}" xmlns:r="{OD}"><p:sldIdLst>'
                '<p:sldId id="256" r:id="rId7"/><p:sldId id="257" r:id="rId3"/>'
                "</p:sldIdLst></p:presentation>"
            ),
            "ppt/_rels/presentation.xml.rels": rels(
                {
                    "rId3": (f"{OD}/slide", "slides/slide1.xml"),
                    "rId7": (f"{OD}/slide", "slides/slide2.xml"),
                }
            ),
            # slide2.xml is shown first: the presentation's list decides, not the names
            "ppt/slides/slide2.xml": _slide(
                _shape("Opening body text", None), _shape("Welcome", "ctrTitle")
            ),
            "ppt/slides/slide1.xml": _slide(
                _shape("Agenda", "title"), _shape("Second slide body", "body")
            ),
            "docProps/core.xml": core_xml("Sample Deck", "Alan Turing"),
        },
    )


# --- EPUB ------------------------------------------------------------------------------


def _chapter(title: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" "http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n'
        f'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>{title}</title>'
        "<style>p { margin: 0 }</style></head>"
        f"<body><h1>{title}</h1>{body}</body></html>"
    )


def epub(path: Path) -> Path:
    opf = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="bookid">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:identifier id="isbn">urn:isbn:0000000000</dc:identifier>'
        '<dc:identifier id="bookid">urn:uuid:2f1c3c2e-0d5f-4c5e-9d0b-000000000001</dc:identifier>'
        "<dc:title>A Small Book</dc:title><dc:creator>Mary Shelley</dc:creator>"
        "<dc:creator>Percy Shelley</dc:creator><dc:language>en</dc:language>"
        "<dc:publisher>docmill press</dc:publisher><dc:date>2024-01-02</dc:date>"
        "</metadata><manifest>"
        '<item id="c2" href="text/ch2.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="c1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        '</manifest><spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>'
    )
    return write_zip(
        path,
        {
            "mimetype": "application/epub+zip",
            "META-INF/container.xml": (
                '<?xml version="1.0"?>\n<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
                '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                "</rootfiles></container>"
            ),
            "OEBPS/content.opf": opf,
            "OEBPS/nav.xhtml": _chapter("Contents", "<nav><ol><li>One</li><li>Two</li></ol></nav>"),
            "OEBPS/text/ch1.xhtml": _chapter(
                "Chapter One",
                "<p>It was a dark&nbsp;and stormy night.</p><script>var hidden = 1;</script>",
            ),
            "OEBPS/text/ch2.xhtml": _chapter("Chapter Two", "<p>The end &amp; after.</p>"),
        },
        stored=("mimetype",),
    )


# --- HTML and text ---------------------------------------------------------------------

HTML_SAMPLE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sample Page</title>
<style>body { color: red }</style><script>document.write("hidden")</script></head>
<body><h1>Hello, web</h1><p>Visible <b>text</b> &amp; more.</p>
<ul><li>one</li><li>two</li></ul></body></html>
"""

TEXT_SAMPLE = "Plain notes.\nSecond line: Grüße, café.\n"


def write_all(folder: Path = HERE) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sample.html").write_text(HTML_SAMPLE, encoding="utf-8")
    (folder / "sample.txt").write_text(TEXT_SAMPLE, encoding="utf-8")
    return [
        docx(folder / "sample.docx"),
        xlsx(folder / "sample.xlsx"),
        pptx(folder / "sample.pptx"),
        epub(folder / "sample.epub"),
        folder / "sample.html",
        folder / "sample.txt",
    ]


if __name__ == "__main__":
    for written in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(written)
