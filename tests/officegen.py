"""Small Office, EPUB and OLE files written with the standard library, for the format
tests: each function writes one file as Word, Excel, PowerPoint or an EPUB reader
expects it, with only the parts a test needs.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

STAMP = (2024, 1, 2, 3, 4, 6)
XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
PR = "http://schemas.openxmlformats.org/package/2006/relationships"
OD = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
SML = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
PML = "http://schemas.openxmlformats.org/presentationml/2006/main"
DML = "http://schemas.openxmlformats.org/drawingml/2006/main"
CHART = "http://schemas.openxmlformats.org/drawingml/2006/chart"
M = "http://schemas.openxmlformats.org/officeDocument/2006/math"
WP = "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"
WPS = "http://schemas.microsoft.com/office/word/2010/wordprocessingShape"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
DOC_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
PPTX_MAIN = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"


def write_zip(path: Path, parts: dict[str, str | bytes], stored: tuple[str, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            info = zipfile.ZipInfo(name, STAMP)
            info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def content_types(main: str, main_type: str) -> str:
    return (
        f'{XML}<Types xmlns="{CT}">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/{main}" ContentType="{main_type}"/></Types>'
    )


def rels(targets: dict[str, tuple[str, str]], od: str = OD) -> str:
    """Relationships: id -> (type's last word, target)."""
    items = "".join(
        f'<Relationship Id="{rid}" Type="{od}/{kind}" Target="{target}"/>'
        for rid, (kind, target) in targets.items()
    )
    return f'{XML}<Relationships xmlns="{PR}">{items}</Relationships>'


# --- DOCX ------------------------------------------------------------------------------


def p(text: str, style: str | None = None, inner: str = "") -> str:
    """A paragraph: ``inner`` runs (or markup) before the plain run of ``text``."""
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    run = f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>' if text else ""
    return f"<w:p>{props}{inner}{run}</w:p>"


def docx(
    path: Path,
    body: str,
    *,
    footnotes: str = "",
    endnotes: str = "",
    comments: str = "",
    headers: dict[str, str] | None = None,
    footers: dict[str, str] | None = None,
    extra_parts: dict[str, str | bytes] | None = None,
    extra_rels: dict[str, tuple[str, str]] | None = None,
    strict: bool = False,
) -> Path:
    """A DOCX of ``body`` (paragraph markup); footnotes etc. are the inner markup of
    their parts; headers and footers map a relationship id to a part's paragraphs."""
    ns = (
        f'xmlns:w="{W}" xmlns:r="{OD}" xmlns:m="{M}" xmlns:wp="{WP}" xmlns:a="{DML}"'
        f' xmlns:c="{CHART}" xmlns:wps="{WPS}" xmlns:mc="{MC}"'
    )
    targets: dict[str, tuple[str, str]] = dict(extra_rels or {})
    parts: dict[str, str | bytes] = {}
    sect = ""
    for kind, found in (("header", headers or {}), ("footer", footers or {})):
        for number, (rid, inner) in enumerate(found.items(), 1):
            name = f"{kind}{number}.xml"
            targets[rid] = (kind, name)
            parts[f"word/{name}"] = f'{XML}<w:{kind[:3]} {ns}>{inner}</w:{kind[:3]}>'
            sect += f'<w:{kind}Reference w:type="default" r:id="{rid}"/>'
    for kind, inner in (("footnotes", footnotes), ("endnotes", endnotes), ("comments", comments)):
        if inner:
            targets[f"rId{kind}"] = (kind, f"{kind}.xml")
            parts[f"word/{kind}.xml"] = f"{XML}<w:{kind} {ns}>{inner}</w:{kind}>"
    document = f"{XML}<w:document {ns}><w:body>{body}<w:sectPr>{sect}</w:sectPr></w:body></w:document>"
    all_parts: dict[str, str | bytes] = {
        "[Content_Types].xml": content_types("word/document.xml", DOC_MAIN),
        "_rels/.rels": rels({"rId1": ("officeDocument", "word/document.xml")}),
        "word/document.xml": document,
        "word/_rels/document.xml.rels": rels(targets),
        **parts,
        **(extra_parts or {}),
    }
    if strict:
        all_parts = {name: _strict(data) for name, data in all_parts.items()}
    return write_zip(path, all_parts)


def _strict(data: str | bytes) -> str | bytes:
    if isinstance(data, bytes):
        return data
    for vocabulary in ("wordprocessingml", "spreadsheetml", "presentationml", "drawingml"):
        data = data.replace(
            f"http://schemas.openxmlformats.org/{vocabulary}/2006/",
            f"http://purl.oclc.org/ooxml/{vocabulary}/",
        )
    return data.replace(
        "http://schemas.openxmlformats.org/officeDocument/2006/",
        "http://purl.oclc.org/ooxml/officeDocument/",
    )


def note(kind: str, note_id: int, text: str) -> str:
    """A footnote or endnote (``kind`` "footnote" / "endnote")."""
    return f'<w:{kind} w:id="{note_id}">{p(text)}</w:{kind}>'


def separator_notes(kind: str) -> str:
    return (
        f'<w:{kind} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{kind}>'
        f'<w:{kind} w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p></w:{kind}>'
    )


def chart_xml(title: str, categories: list[str], series: dict[str, list[float]]) -> str:
    cats = "".join(f'<c:pt idx="{i}"><c:v>{c}</c:v></c:pt>' for i, c in enumerate(categories))
    sers = ""
    for index, (name, values) in enumerate(series.items()):
        vals = "".join(f'<c:pt idx="{i}"><c:v>{v}</c:v></c:pt>' for i, v in enumerate(values))
        sers += (
            f'<c:ser><c:idx val="{index}"/><c:tx><c:strRef><c:f>S!$B$1</c:f><c:strCache><c:ptCount val="1"/>'
            f'<c:pt idx="0"><c:v>{name}</c:v></c:pt></c:strCache></c:strRef></c:tx>'
            f'<c:cat><c:strRef><c:f>S!$A$2</c:f><c:strCache><c:ptCount val="{len(categories)}"/>{cats}</c:strCache></c:strRef></c:cat>'
            f'<c:val><c:numRef><c:f>S!$B$2</c:f><c:numCache><c:formatCode>General</c:formatCode><c:ptCount val="{len(values)}"/>{vals}</c:numCache></c:numRef></c:val></c:ser>'
        )
    return (
        f'{XML}<c:chartSpace xmlns:c="{CHART}" xmlns:a="{DML}" xmlns:r="{OD}"><c:chart>'
        f"<c:title><c:tx><c:rich><a:bodyPr/><a:p><a:r><a:t>{title}</a:t></a:r></a:p></c:rich></c:tx></c:title>"
        f"<c:plotArea><c:barChart>{sers}</c:barChart>"
        '<c:valAx><c:title><c:tx><c:rich><a:p><a:r><a:t>Units sold</a:t></a:r></a:p></c:rich></c:tx></c:title></c:valAx>'
        "</c:plotArea></c:chart></c:chartSpace>"
    )


# --- XLSX ------------------------------------------------------------------------------


def xlsx(
    path: Path,
    sheets: list[tuple[str, str, str]],
    *,
    shared: list[str] | None = None,
    styles: str = "",
    workbook_pr: str = "",
    sheet_rels: dict[int, dict[str, tuple[str, str]]] | None = None,
    extra_parts: dict[str, str | bytes] | None = None,
    strict: bool = False,
) -> Path:
    """A workbook of (name, state, worksheet inner markup) sheets; ``shared`` holds the
    ``<si>`` items' markup."""
    entries = "".join(
        f'<sheet name="{name}" sheetId="{i}" ' + (f'state="{state}" ' if state else "") + f'r:id="rId{i}"/>'
        for i, (name, state, _) in enumerate(sheets, 1)
    )
    targets = {f"rId{i}": ("worksheet", f"worksheets/sheet{i}.xml") for i in range(1, len(sheets) + 1)}
    parts: dict[str, str | bytes] = {}
    if shared is not None:
        targets["rIdS"] = ("sharedStrings", "sharedStrings.xml")
        parts["xl/sharedStrings.xml"] = f'{XML}<sst xmlns="{SML}">{"".join(shared)}</sst>'
    if styles:
        targets["rIdT"] = ("styles", "styles.xml")
        parts["xl/styles.xml"] = f'{XML}<styleSheet xmlns="{SML}">{styles}</styleSheet>'
    for i, (_, _, inner) in enumerate(sheets, 1):
        parts[f"xl/worksheets/sheet{i}.xml"] = (
            f'{XML}<worksheet xmlns="{SML}" xmlns:r="{OD}">{inner}</worksheet>'
        )
        if sheet_rels and i in sheet_rels:
            parts[f"xl/worksheets/_rels/sheet{i}.xml.rels"] = rels(sheet_rels[i])
    all_parts: dict[str, str | bytes] = {
        "[Content_Types].xml": content_types("xl/workbook.xml", XLSX_MAIN),
        "_rels/.rels": rels({"rId1": ("officeDocument", "xl/workbook.xml")}),
        "xl/workbook.xml": (
            f'{XML}<workbook xmlns="{SML}" xmlns:r="{OD}">{workbook_pr}<sheets>{entries}</sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": rels(targets),
        **parts,
        **(extra_parts or {}),
    }
    if strict:
        all_parts = {name: _strict(data) for name, data in all_parts.items()}
    return write_zip(path, all_parts)


# --- PPTX ------------------------------------------------------------------------------


def shape(text: str, placeholder: str | None = None, shape_id: int = 2) -> str:
    ph = f'<p:ph type="{placeholder}"/>' if placeholder else ""
    paras = "".join(f"<a:p><a:r><a:t>{line}</a:t></a:r></a:p>" for line in text.split("\n"))
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="{shape_id}" name="s"/><p:cNvSpPr/><p:nvPr>{ph}</p:nvPr></p:nvSpPr>'
        f"<p:spPr/><p:txBody><a:bodyPr/>{paras}</p:txBody></p:sp>"
    )


def slide(*shapes: str, root: str = "sld", attrs: str = "") -> str:
    return (
        f'{XML}<p:{root} xmlns:p="{PML}" xmlns:a="{DML}" xmlns:r="{OD}" xmlns:c="{CHART}"{attrs}>'
        "<p:cSld><p:spTree>"
        '<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>'
        f"{''.join(shapes)}</p:spTree></p:cSld></p:{root}>"
    )


def pptx(
    path: Path,
    slides: list[str],
    *,
    slide_rels: dict[int, dict[str, tuple[str, str]]] | None = None,
    extra_parts: dict[str, str | bytes] | None = None,
    presentation_rels: dict[str, tuple[str, str]] | None = None,
) -> Path:
    ids = "".join(f'<p:sldId id="{255 + i}" r:id="rId{i}"/>' for i in range(1, len(slides) + 1))
    targets = {f"rId{i}": ("slide", f"slides/slide{i}.xml") for i in range(1, len(slides) + 1)}
    targets.update(presentation_rels or {})
    parts: dict[str, str | bytes] = {}
    for i, markup in enumerate(slides, 1):
        parts[f"ppt/slides/slide{i}.xml"] = markup
        if slide_rels and i in slide_rels:
            parts[f"ppt/slides/_rels/slide{i}.xml.rels"] = rels(slide_rels[i])
    return write_zip(
        path,
        {
            "[Content_Types].xml": content_types("ppt/presentation.xml", PPTX_MAIN),
            "_rels/.rels": rels({"rId1": ("officeDocument", "ppt/presentation.xml")}),
            "ppt/presentation.xml": (
                f'{XML}<p:presentation xmlns:p="{PML}" xmlns:r="{OD}"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>'
            ),
            "ppt/_rels/presentation.xml.rels": rels(targets),
            **parts,
            **(extra_parts or {}),
        },
    )


# --- EPUB ------------------------------------------------------------------------------


def epub(path: Path, items: list[tuple[str, str, bytes | str]]) -> Path:
    """A book whose spine lists ``items`` (href, media type, content) in order."""
    manifest = "".join(
        f'<item id="i{n}" href="{href}" media-type="{kind}"/>' for n, (href, kind, _) in enumerate(items)
    )
    spine = "".join(f'<itemref idref="i{n}"/>' for n in range(len(items)))
    opf = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">x</dc:identifier>'
        f"<dc:title>Book</dc:title></metadata><manifest>{manifest}</manifest><spine>{spine}</spine></package>"
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
            **{f"OEBPS/{href}": data for href, _, data in items},
        },
        stored=("mimetype",),
    )


def xhtml(body: str, title: str = "Chapter") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html>\n'
        f'<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f"<head><title>{title}</title></head><body>{body}</body></html>"
    )


# --- OLE compound files ----------------------------------------------------------------


def cfb(path: Path, streams: dict[str, bytes]) -> Path:
    """A version-3 compound file (512-byte sectors) holding ``streams`` at its root, each
    in regular sectors (no mini stream: enough for a reader of the directory)."""
    size = 512
    sectors: list[bytes] = []
    starts: dict[str, tuple[int, int]] = {}
    chains: list[tuple[int, int]] = []  # (first sector, count)
    for name, data in streams.items():
        data = data + b"\0" * (-len(data) % size or (size if not data else 0))
        first = len(sectors)
        sectors += [data[i : i + size] for i in range(0, len(data), size)]
        starts[name] = (first, len(streams[name]))
        chains.append((first, len(data) // size))
    entries = [_dir_entry("Root Entry", 5, 0xFFFFFFFE, 0, child=1 if streams else 0xFFFFFFFF)]
    names = list(streams)
    for index, name in enumerate(names):
        first, length = starts[name]
        right = index + 2 if index + 1 < len(names) else 0xFFFFFFFF
        entries.append(_dir_entry(name, 2, first, length, right=right))
    directory = b"".join(entries)
    directory += b"\0" * (-len(directory) % size)
    dir_first = len(sectors)
    sectors += [directory[i : i + size] for i in range(0, len(directory), size)]
    chains.append((dir_first, len(directory) // size))
    fat_first = len(sectors)
    fat = [0xFFFFFFFF] * (size // 4)
    for first, count in chains:
        for k in range(count):
            fat[first + k] = first + k + 1 if k + 1 < count else 0xFFFFFFFE
    fat[fat_first] = 0xFFFFFFFD
    sectors.append(struct.pack(f"<{size // 4}I", *fat))
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9)
    struct.pack_into("<H", header, 0x20, 6)
    struct.pack_into("<8I", header, 0x2C, 1, dir_first, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE, 0)
    difat = [fat_first] + [0xFFFFFFFF] * 108
    struct.pack_into("<109I", header, 0x4C, *difat)
    path.write_bytes(bytes(header) + b"".join(sectors))
    return path


def _dir_entry(
    name: str, kind: int, start: int, size: int, child: int = 0xFFFFFFFF, right: int = 0xFFFFFFFF
) -> bytes:
    raw = (name + "\0").encode("utf-16-le")
    entry = bytearray(128)
    entry[: len(raw)] = raw
    struct.pack_into("<HBB", entry, 64, len(raw), kind, 1)
    struct.pack_into("<III", entry, 68, 0xFFFFFFFF, right, child)
    struct.pack_into("<II", entry, 116, start, size)
    return bytes(entry)
