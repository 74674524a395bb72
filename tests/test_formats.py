"""Formats beyond PDF: EPUB, DOCX, XLSX, PPTX, HTML, plain text; detected by content.

The samples in tests/data are written by tests/data/make_samples.py; hostile variants
(truncated zips, a DTD entity bomb, a zip bomb part, DRM) are built here on tmp_path.
"""

from __future__ import annotations

import gc
import importlib.util
import io
import os
import random
import shutil
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from docmill.model import DocState, ProcessOutcome
from docmill.processors import ExtractOptions, Task, process_task
from docmill.processors.formats import package
from docmill.sources import filetype as ft
from docmill.sources.filetype import sniff
from engine_kit import assert_exactly_once, run_cli

DATA = Path(__file__).resolve().parent / "data"
SAMPLES = {
    "sample.epub": ft.EPUB,
    "sample.docx": ft.DOCX,
    "sample.xlsx": ft.XLSX,
    "sample.pptx": ft.PPTX,
    "sample.html": ft.HTML,
    "sample.txt": ft.TEXT,
}
BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">
<w:body><w:p><w:r><w:t>&lol3;</w:t></w:r></w:p></w:body></w:document>"""


def make_samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", DATA / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(path: Path, **options: Any) -> ProcessOutcome:
    return process_task(Task(1, 1, str(path), None, 1 << 30, ExtractOptions(**options)))


def rewrite(src: Path, dest: Path, replace: dict[str, bytes | str]) -> Path:
    """A copy of zip ``src`` with some members' contents replaced (order and names kept)."""
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            data = replace.get(info.filename, old.read(info))
            new.writestr(info, data)
    return dest


def zip_bomb_docx(dest: Path) -> Path:
    """A DOCX whose document part inflates past the per-part cap (the file stays ~100 KB)."""
    size = package.MAX_PART_BYTES + (1 << 20)
    with (
        zipfile.ZipFile(DATA / "sample.docx") as old,
        zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as new,
    ):
        for info in old.infolist():
            if info.filename != "word/document.xml":
                new.writestr(info, old.read(info))
        with new.open("word/document.xml", "w") as member:
            chunk = b" " * (1 << 20)
            for _ in range(size // len(chunk)):
                member.write(chunk)
    return dest


def hostile(folder: Path) -> dict[str, str]:
    """Broken files in ``folder``: name -> the failure category each must end with."""
    folder.mkdir(parents=True, exist_ok=True)
    docx, epub = (DATA / "sample.docx").read_bytes(), (DATA / "sample.epub").read_bytes()
    (folder / "truncated.docx").write_bytes(docx[: len(docx) // 2])
    (folder / "truncated.epub").write_bytes(epub[: len(epub) // 2])
    rewrite(DATA / "sample.docx", folder / "entity_bomb.docx", {"word/document.xml": BOMB})
    rewrite(DATA / "sample.epub", folder / "entity_bomb.epub", {"OEBPS/content.opf": BOMB})
    zip_bomb_docx(folder / "zip_bomb.docx")
    drm = '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData><enc:CipherReference URI="OEBPS/text/ch1.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>'
    make_samples().write_zip(
        folder / "drm.epub",
        {**_members(DATA / "sample.epub"), "META-INF/encryption.xml": drm},
        stored=("mimetype",),
    )
    return {
        "truncated.docx": "corrupt",  # no central directory: seen as a zip, unreadable
        "truncated.epub": "corrupt",
        "entity_bomb.docx": "corrupt",
        "entity_bomb.epub": "corrupt",
        "zip_bomb.docx": "too_large",
        "drm.epub": "encrypted",
    }


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


# --- the samples -----------------------------------------------------------------------


def test_samples_are_what_the_script_writes(tmp_path: Path) -> None:
    written = make_samples().write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(SAMPLES)
    for path in written:
        committed = DATA / path.name
        if zipfile.is_zipfile(path):
            assert _members(path) == _members(committed), path.name
        else:
            assert path.read_bytes() == committed.read_bytes(), path.name


@pytest.mark.parametrize(("name", "mime"), SAMPLES.items())
def test_each_sample_is_detected_from_content_not_name(
    tmp_path: Path, name: str, mime: str
) -> None:
    assert sniff(str(DATA / name)) == mime
    disguised = shutil.copy(DATA / name, tmp_path / "document.pdf")
    assert sniff(str(disguised)) == mime


def _office(tmp_path: Path, parts: dict[str, str]) -> str:
    path = tmp_path / "file.bin"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    return sniff(str(path))


def test_office_kind_from_declared_main_part_then_folders(tmp_path: Path) -> None:
    declared = '<Types><Override PartName="/x/main.xml" ContentType="application/vnd.ms-excel.sheet.macroEnabled.main+xml"/></Types>'
    assert _office(tmp_path, {"[Content_Types].xml": declared, "x/main.xml": "<w/>"}) == ft.XLSX
    assert (
        _office(tmp_path, {"[Content_Types].xml": "<Types/>", "ppt/presentation.xml": "<p/>"})
        == ft.PPTX
    )
    # an Office package of another kind (Visio, say) is neither: not processed
    assert (
        _office(tmp_path, {"[Content_Types].xml": "<Types/>", "visio/document.xml": "<v/>"})
        == ft.OOXML
    )
    assert _office(tmp_path, {"word/document.xml": "<w/>"}) == ft.ZIP  # no [Content_Types].xml


def test_sniff_html_after_an_xml_declaration_and_comments() -> None:
    head = b'<?xml version="1.0"?>\n<!-- made by hand -->\n<!DOCTYPE html><html></html>'
    assert ft.sniff_bytes(head) == ft.HTML


def test_epub_chapters_in_spine_order_with_metadata() -> None:
    out = run(DATA / "sample.epub")
    assert out.status is DocState.DONE and out.mime == ft.EPUB
    assert out.pages == 2
    # the spine says ch1 then ch2 (the manifest lists them the other way); the nav is no chapter
    assert out.text == [
        "Chapter One\nIt was a dark\u00a0and stormy night.".replace("\u00a0", " "),
        "Chapter Two\nThe end & after.",
    ]
    assert out.metadata["title"] == "A Small Book"
    assert out.metadata["author"] == "Mary Shelley; Percy Shelley"
    assert out.metadata["language"] == "en"
    assert out.metadata["publisher"] == "docmill press"
    assert out.metadata["date"] == "2024-01-02"
    assert (
        out.metadata["identifier"] == "urn:uuid:2f1c3c2e-0d5f-4c5e-9d0b-000000000001"
    )  # the unique one


def test_docx_paragraphs_headings_and_tables() -> None:
    out = run(DATA / "sample.docx")
    assert out.status is DocState.DONE and out.mime == ft.DOCX
    assert out.pages == 1 and len(out.text) == 1
    assert out.text[0].split("\n") == [
        "Quarterly Report",
        "The first paragraph of the report.",
        "Bold and plain\tafter a tab.",
        "Fruit\tCount",
        "Apple\t3",
        "Pear\t5",
        "Closing words after the table.",
    ]
    assert out.extra["tables"] == [
        {
            "page": 0,
            "bbox": None,
            "rows": [["Fruit", "Count"], ["Apple", "3"], ["Pear", "5"]],
            "header_rows": 1,
            "cells": [
                {"row": r, "col": c, "rowspan": 1, "colspan": 1, "text": text}
                for r, row in enumerate([["Fruit", "Count"], ["Apple", "3"], ["Pear", "5"]])
                for c, text in enumerate(row)
            ],
        }
    ]
    meta = out.metadata
    assert (meta["title"], meta["author"], meta["language"]) == (
        "Quarterly Report",
        "Ada Lovelace",
        "en-GB",
    )
    assert meta["created"] == "2024-01-02T03:04:05Z" and meta["keywords"] == "sample, formats"


def test_xlsx_sheets_as_tables_and_text() -> None:
    out = run(DATA / "sample.xlsx")
    assert out.status is DocState.DONE and out.mime == ft.XLSX
    assert out.pages == 2
    assert out.metadata["sheet_names"] == ["Scores", "Flags"]
    assert out.metadata["author"] == "Grace Hopper"
    first, second = out.extra["tables"]
    assert first == {
        "page": 0,
        "bbox": None,
        "rows": [
            ["Name", "Score", "", ""],
            ["Ada", "42", "", ""],
            ["Grace", "3.5", "", "inline note"],
        ],
        "header_rows": 0,
        "name": "Scores",
        "cells": [
            {"row": r, "col": c, "rowspan": 1, "colspan": 1, "text": text}
            | ({"value": {(1, 1): 42, (2, 1): 3.5}[(r, c)]} if (r, c) in ((1, 1), (2, 1)) else {})
            for r, row in enumerate([["Name", "Score", "", ""], ["Ada", "42", "", ""], ["Grace", "3.5", "", "inline note"]])
            for c, text in enumerate(row)
        ],
    }
    assert second["page"] == 1 and second["rows"] == [["", "TRUE", "2"]]  # bool, cached formula
    assert out.text == ["Name\tScore\nAda\t42\nGrace\t3.5\t\tinline note", "\tTRUE\t2"]


def test_pptx_slides_in_presentation_order_title_first() -> None:
    out = run(DATA / "sample.pptx")
    assert out.status is DocState.DONE and out.mime == ft.PPTX
    assert out.pages == 2
    assert out.text == ["Welcome\nOpening body text", "Agenda\nSecond slide body"]
    assert out.metadata["slide_titles"] == ["Welcome", "Agenda"]
    assert out.metadata["title"] == "Sample Deck"


def test_html_visible_text_and_title() -> None:
    out = run(DATA / "sample.html")
    assert out.status is DocState.DONE and out.mime == ft.HTML
    assert out.text == ["Hello, web\nVisible text & more.\none\ntwo"]
    assert out.metadata["title"] == "Sample Page"


def test_html_declared_charset_is_used(tmp_path: Path) -> None:
    page = tmp_path / "page"
    page.write_bytes(
        b'<html><head><meta charset="windows-1252"><title>Caf\xe9</title></head><body>na\xefve</body></html>'
    )
    out = run(page)
    assert out.status is DocState.DONE
    assert out.metadata["title"] == "Café" and out.text == ["naïve"]


def test_plain_text_decoded_with_a_fallback(tmp_path: Path) -> None:
    assert run(DATA / "sample.txt").text == ["Plain notes.\nSecond line: Grüße, café.\n"]
    mixed = tmp_path / "notes"
    mixed.write_bytes(b"a" * 9000 + b"\r\ncaf\xe9\r\n")  # UTF-8 for the sniffer's 8 KB, not after
    out = run(mixed)
    assert out.status is DocState.DONE and out.mime == ft.TEXT
    assert out.text == ["a" * 9000 + "\ncafé\n"] and out.metadata["encoding"] == "cp1252"


def test_max_pages_limits_chapters_slides_and_sheets_not_the_count() -> None:
    for name in ("sample.epub", "sample.pptx", "sample.xlsx"):
        out = run(DATA / name, max_pages=1)
        assert out.status is DocState.DONE, name
        assert len(out.text) == 1 and out.pages == 2, name


# --- hostile files ---------------------------------------------------------------------


def test_hostile_files_fail_with_a_category(tmp_path: Path) -> None:
    for name, category in hostile(tmp_path).items():
        out = run(tmp_path / name)
        assert out.status is DocState.FAILED, name
        assert out.error is not None and out.error.category == category, (name, out.error)
    bomb = run(tmp_path / "entity_bomb.docx")
    assert bomb.error is not None and "DTD" in bomb.error.message
    zipped = run(tmp_path / "zip_bomb.docx")
    assert zipped.error is not None and "word/document.xml" in zipped.error.message


def test_a_zip_of_no_known_format_is_skipped(tmp_path: Path) -> None:
    plain = tmp_path / "bundle.epub"
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("readme.md", "hello")
    out = run(plain)
    assert out.status is DocState.SKIPPED and out.mime == ft.ZIP
    assert out.error is not None and out.error.category == "unsupported"
    assert "EPUB" in out.error.message and "DOCX" in out.error.message  # says what is processed


def test_missing_parts_fail_corrupt(tmp_path: Path) -> None:
    members = _members(DATA / "sample.pptx")
    del members["ppt/slides/slide1.xml"]
    make_samples().write_zip(tmp_path / "deck", members)
    out = run(tmp_path / "deck")
    assert out.error is not None and out.error.category == "corrupt"
    assert "slide" in out.error.message


def test_no_file_descriptor_leak_over_10000_epubs() -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    run(DATA / "sample.epub")  # lazy imports happen once, before counting
    before = open_fds()
    gc.disable()  # a file left open in a reference cycle would stay open until collected
    try:
        for _ in range(10_000):  # the figure: a library's worth of EPUBs
            assert run(DATA / "sample.epub").status is DocState.DONE
        assert open_fds() <= before
    finally:
        gc.enable()


def test_no_file_descriptor_leak_when_failing(tmp_path: Path) -> None:
    hostile(tmp_path)
    names = ["truncated.epub", "entity_bomb.epub", "drm.epub", "entity_bomb.docx"]
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(200):
        for name in names:
            assert run(tmp_path / name).status is DocState.FAILED
    assert len(os.listdir("/proc/self/fd")) <= before


# --- end to end ------------------------------------------------------------------------


def test_every_format_through_the_cli(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in SAMPLES:
        shutil.copy(DATA / name, src / name.replace("sample.", "doc-"))  # the name says nothing
    expected_failures = hostile(src / "broken")
    with zipfile.ZipFile(src / "bundle.zip", "w") as z:
        z.writestr("readme.md", io.BytesIO(b"hello").getvalue())
    out = tmp_path / "out"
    result = run_cli("run", str(src), "--out", str(out), "--workers", "2", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    records = assert_exactly_once(out, {str(p.absolute()) for p in src.rglob("*") if p.is_file()})
    by_name = {Path(r["source"]).name: r for r in records}
    for name, mime in SAMPLES.items():
        r = by_name[name.replace("sample.", "doc-")]
        assert r["status"] == "done", (name, r["error"])
        assert r["mime"] == mime and r["error"] is None
        assert r["pages"] == len(r["text"]) and "".join(r["text"]).strip()
    assert by_name["doc-docx"]["tables"][0]["rows"][1] == ["Apple", "3"]
    assert [t["page"] for t in by_name["doc-xlsx"]["tables"]] == [0, 1]
    assert by_name["doc-epub"]["metadata"]["author"] == "Mary Shelley; Percy Shelley"
    assert by_name["doc-pptx"]["text"][0].startswith("Welcome")
    for name, category in expected_failures.items():
        assert by_name[name]["status"] == "failed", name
        assert by_name[name]["error"]["category"] == category, name
    assert by_name["bundle.zip"]["status"] == "skipped"
    assert by_name["bundle.zip"]["error"]["category"] == "unsupported"


@pytest.mark.parametrize("name", ["sample.docx", "sample.xlsx", "sample.pptx", "sample.epub"])
def test_damaged_zips_fail_as_data_never_as_a_bare_error(tmp_path: Path, name: str) -> None:
    """Seeded truncations and byte flips: every outcome is done, or fails/skips with a
    category other than the catch-all ``error`` (a parser exception nobody mapped)."""
    rng = random.Random(name)
    data = (DATA / name).read_bytes()
    target = tmp_path / "damaged"
    for _ in range(150):
        damaged = bytearray(data[: rng.randrange(1, len(data))] if rng.random() < 0.3 else data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        target.write_bytes(damaged)
        out = run(target)
        assert out.status in (DocState.DONE, DocState.FAILED, DocState.SKIPPED)
        assert out.error is None or out.error.category != "error", out.error


def test_epub_with_a_compressed_mimetype_member_is_still_an_epub(tmp_path: Path) -> None:
    members = _members(DATA / "sample.epub")
    loose = make_samples().write_zip(tmp_path / "book", members)  # every member deflated
    assert ft.sniff_bytes(loose.read_bytes()[:100]) == ft.ZIP  # the first bytes cannot tell
    out = run(loose)
    assert out.status is DocState.DONE and out.mime == ft.EPUB and out.pages == 2
