"""Type detection that a real pile of files needs, and HTML and EPUB read as a careful
reader does: long preambles, byte-order marks, fragments, encrypted and damaged Office
files, inline SVG, alt text, image-only spine items. Every file is made here."""

from __future__ import annotations

import codecs
import time
from pathlib import Path
from typing import Any

import officegen as og
from docmill.model import DocState, ProcessOutcome
from docmill.processors import ExtractOptions, Task, process_task
from docmill.sources import filetype as ft
from docmill.sources.filetype import sniff


def run(path: Path, **options: Any) -> ProcessOutcome:
    return process_task(Task(1, 1, str(path), None, 1 << 30, ExtractOptions(**options)))


# --- detection -------------------------------------------------------------------------


def test_html_that_opens_with_a_long_script_is_html(tmp_path: Path) -> None:
    script = "<script>\n" + "var s = '\u00e9\u00e8';\n" * 4000 + "</script>\n"  # ~60 KB
    page = tmp_path / "page"
    page.write_bytes(
        (script + "<html><body><p>After the script</p></body></html>").encode("cp1252")
    )
    assert sniff(str(page)) == ft.HTML
    out = run(page)
    assert out.status is DocState.DONE and out.text == ["After the script"]


def test_utf16_html_and_text_with_a_bom(tmp_path: Path) -> None:
    page = tmp_path / "page"
    page.write_bytes(
        codecs.BOM_UTF16_LE + "<!DOCTYPE html><html><body><p>Grüße</p></body></html>".encode("utf-16-le")
    )
    assert sniff(str(page)) == ft.HTML
    assert run(page).text == ["Grüße"]
    notes = tmp_path / "notes"
    notes.write_bytes(codecs.BOM_UTF16_BE + "plain words, ä".encode("utf-16-be"))
    assert sniff(str(notes)) == ft.TEXT
    assert run(notes).text == ["plain words, ä"]


def test_an_html_fragment_is_html_not_text(tmp_path: Path) -> None:
    fragment = tmp_path / "fragment"
    fragment.write_text(
        '<div class="post"><style>.post { color: red }</style><p>Only this</p></div>'
    )
    assert sniff(str(fragment)) == ft.HTML
    assert run(fragment).text == ["Only this"]
    # text that merely mentions a tag later on is still text
    prose = tmp_path / "prose"
    prose.write_text("Use <div> for blocks.\n")
    assert sniff(str(prose)) == ft.TEXT


def test_password_protected_office_files_are_encrypted(tmp_path: Path) -> None:
    locked = og.cfb(
        tmp_path / "locked.docx",
        {"EncryptionInfo": b"\x04\x00\x04\x00" + b"\x00" * 200, "EncryptedPackage": b"\x01" * 3000},
    )
    assert sniff(str(locked)) == ft.OFFICE_ENCRYPTED
    out = run(locked)
    assert out.status is DocState.FAILED
    assert out.error is not None and out.error.category == "encrypted"
    assert "password" in out.error.message
    # any other compound file (an old .doc) is skipped as a type docmill does not read
    legacy = og.cfb(tmp_path / "old.doc", {"WordDocument": b"\x00" * 600})
    assert sniff(str(legacy)) == ft.CFB
    skipped = run(legacy)
    assert skipped.status is DocState.SKIPPED
    assert skipped.error is not None and skipped.error.category == "unsupported"


def test_a_truncated_office_zip_is_corrupt_even_with_data_descriptors(tmp_path: Path) -> None:
    """Writers that stream (Java's, LibreOffice's) put each size after the member's
    data and may write [Content_Types].xml last: a truncated copy is still a DOCX."""
    import zipfile

    full = tmp_path / "full.docx"
    with zipfile.ZipFile(full, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("word/document.xml", "w") as member:  # streamed: a data descriptor
            member.write(b"<w:document/>" + bytes(range(256)) * 400)
        with z.open("word/styles.xml", "w") as member:
            member.write(b"<w:styles/>" * 2000)
        z.writestr("[Content_Types].xml", "<Types/>")
    data = full.read_bytes()
    cut = tmp_path / "cut.docx"
    cut.write_bytes(data[: len(data) * 2 // 3])
    assert sniff(str(cut)) == ft.DOCX
    out = run(cut)
    assert out.status is DocState.FAILED
    assert out.error is not None and out.error.category == "corrupt"


# --- HTML ------------------------------------------------------------------------------


def test_html_alt_text_is_a_part_and_markdown_has_tables(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>T</title></head><body><h2>Prices</h2>"
        '<img src="a.png" alt="A red bicycle"><table><tr><th>Item</th><th>Price</th></tr>'
        "<tr><td>Bell</td><td>4 | 5</td></tr></table><ul><li>one</li><li>two</li></ul></body></html>"
    )
    out = run(page, markdown=True)
    assert out.text == ["Prices\nItem\tPrice\nBell\t4 | 5\none\ntwo"]
    assert out.extra["parts"] == [{"page": 0, "kind": "alt_text", "text": "A red bicycle"}]
    md = out.extra["markdown"]
    assert "## Prices" in md
    assert "| Item | Price |\n|---|---|\n| Bell | 4 \\| 5 |" in md
    assert "- one\n- two" in md and "![A red bicycle]()" in md


# --- EPUB ------------------------------------------------------------------------------


def test_epub_inline_svg_text_and_alt_text(tmp_path: Path) -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><title>frame</title>'
        '<text x="1" y="2">Where are we going?</text><text x="1" y="5"><tspan>Home</tspan>, now.</text></svg>'
    )
    book = og.epub(
        tmp_path / "book.epub",
        [
            ("c1.xhtml", "application/xhtml+xml", og.xhtml(f"<div>{svg}</div>")),
            ("c2.xhtml", "application/xhtml+xml", og.xhtml('<p><img src="p.jpg" alt="— Run!"/></p>')),
        ],
    )
    out = run(book, markdown=True)
    assert out.status is DocState.DONE
    assert out.text == ["Where are we going?\nHome, now.", ""]
    assert out.extra["parts"] == [{"page": 1, "kind": "alt_text", "text": "— Run!"}]
    assert "![— Run!]()" in out.extra["markdown"]


def test_epub_image_spine_items_are_never_decoded_as_text(tmp_path: Path) -> None:
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 40
    book = og.epub(
        tmp_path / "comic.epub",
        [
            ("p1.jpg", "image/jpeg", jpeg),
            ("c1.xhtml", "application/xhtml+xml", og.xhtml("<p>Words</p>")),
            ("p2.xhtml", "application/xhtml+xml", jpeg),  # declared markup, holds an image
        ],
    )
    out = run(book)
    assert out.status is DocState.DONE
    assert out.text == ["", "Words", ""]
    skipped = out.metadata["skipped_chapters"]
    assert [(s["chapter"], s["item"]) for s in skipped] == [(0, "OEBPS/p1.jpg"), (2, "OEBPS/p2.xhtml")]
    assert "image" in skipped[0]["reason"] and "binary" in skipped[1]["reason"]


def test_epub_chapters_that_are_not_well_formed_xml_are_still_read(tmp_path: Path) -> None:
    book = og.epub(
        tmp_path / "loose.epub",
        [
            ("a.html", "application/xhtml+xml", "<html><body><p>Tag soup<br>&eacute;t&eacute;</body>"),
            ("b.xhtml", "application/xhtml+xml", og.xhtml("<p>caf&eacute;&nbsp;noir</p>")),
            (
                "c.xhtml",
                "application/xhtml+xml",
                '<?xml version="1.0"?><!DOCTYPE html [<!ENTITY x "&#38;#38;">]>'
                '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>&x;</p></body></html>',
            ),
        ],
    )
    out = run(book)
    assert out.text[0] == "Tag soup\nété"
    assert out.text[1] == "café noir"
    assert out.status is DocState.DONE  # the entity declaration is never expanded by expat


def test_epub_reading_is_fast(tmp_path: Path) -> None:
    """Well-formed chapters go through expat: a 4 MB book reads in well under a second
    (html.parser alone took about three times as long)."""
    chapter = og.xhtml("".join(f"<p>Paragraph {i} of a long chapter, with <em>some</em> words.</p>" for i in range(8000)))
    book = og.epub(tmp_path / "long.epub", [(f"c{i}.xhtml", "application/xhtml+xml", chapter) for i in range(8)])
    started = time.perf_counter()
    out = run(book)
    elapsed = time.perf_counter() - started
    assert out.status is DocState.DONE and len(out.text) == 8
    assert out.text[0].startswith("Paragraph 0 of a long chapter, with some words.")
    assert elapsed < 3.0, elapsed


def test_text_that_starts_with_a_script_snippet_stays_text(tmp_path: Path) -> None:
    """A note quoting markup is no page: an opening <script> counts as HTML only when
    a document (<html>, <head>, <body>, a doctype) follows in the head."""
    note = tmp_path / "hostile.txt"
    note.write_text('<script>window.x=1</script><img src=x onerror="y()">\nsecond line\n')
    assert sniff(str(note)) == ft.TEXT
