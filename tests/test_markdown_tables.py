"""Markdown of pages with tables: a table's text is in its pipe table only, never again
as prose, and the page's prose is all there (generated pages of every kind, real pages)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

import docmill
from docmill.model import DocState, ProcessOutcome
from docmill.processors import ExtractOptions, process_task
from docmill.processors.pdf.geometry import page_frame
from docmill.processors.pdf.markdown import PageLines, render
from docmill.processors.pipeline import Task
from docmill.settings import load_settings
from docmill.testkit.table_pages import Document, generate
from engine_kit import REAL

TABULA = REAL / "tabula-java" / "src" / "test" / "resources" / "technology" / "tabula"
_TOKEN = re.compile(r"[^\W\d_]+|\d+")
_SPACE = re.compile(r"\s+")


def _extract(path: Path, **options: Any) -> ProcessOutcome:
    opts = ExtractOptions(tables=True, markdown=True, **options)
    outcome = process_task(Task(1, 1, str(path), None, 1 << 40, opts))
    assert outcome.status == DocState.DONE, outcome.error
    return outcome


def _prose(markdown: str) -> str:
    return "\n".join(line for line in markdown.split("\n") if not line.startswith("|"))


def _repeated_rows(outcome: ProcessOutcome) -> list[str]:
    """Table rows (two filled cells or more) whose text, white space removed, stands in
    the Markdown's prose, white space removed."""
    prose = _SPACE.sub("", _prose(outcome.extra["markdown"]))
    out = []
    for table in outcome.extra["tables"]:
        for row in table["rows"]:
            filled = [str(c) for c in row if str(c).strip()]
            if len(filled) >= 2 and _SPACE.sub("", "".join(filled)) in prose:
                out.append(" ".join(filled))
    return out


def _words(text: str) -> Counter[str]:
    return Counter(w.casefold() for w in _TOKEN.findall(text))


def _text_outside(pdf: Path, index: int, boxes: list[list[float]]) -> str:
    """The page's characters whose centre lies outside ``boxes`` (the truth's bboxes)."""
    doc = pdfium.PdfDocument(str(pdf))
    try:
        page = doc[index]
        textpage = page.get_textpage()
        frame = page_frame(page)
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count)
        out = []
        for i, ch in enumerate(text):
            if not ch.isspace():
                left, bottom, right, top = textpage.get_charbox(i, loose=True)
                x0, y0, x1, y1 = frame.box(left, top, right, bottom)
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                if any(b[0] - 2 <= cx <= b[2] + 2 and b[1] - 2 <= cy <= b[3] + 2 for b in boxes):
                    ch = " "
            out.append(ch)
        textpage.close()
        page.close()
        return "".join(out)
    finally:
        doc.close()


def _documents(tmp_path: Path, seeds: tuple[int, ...]) -> list[tuple[Document, Path]]:
    out = []
    for seed in seeds:
        for doc in generate(seed, 16):  # one document of each kind a seed
            if not doc.tables:
                continue
            path = tmp_path / f"{doc.name}.pdf"
            path.write_bytes(doc.pdf())
            out.append((doc, path))
    return out


@pytest.mark.parametrize("order", ["pdfium", "layout"])
def test_no_table_row_comes_back_as_prose(tmp_path: Path, order: str) -> None:
    # rotated and sideways pages: PDFium's text runs a table's rows together in one
    # line ("1,009,142Northern Ireland 522.8 ..."), which used to keep all of it as prose
    repeated = {}
    for doc, path in _documents(tmp_path, (0, 1, 2)):
        outcome = _extract(path, reading_order=order)
        assert outcome.extra["tables"], doc.name
        rows = _repeated_rows(outcome)
        if rows:
            repeated[doc.name] = rows[:2]
    assert repeated == {}


def test_the_prose_around_tables_is_all_in_the_markdown(tmp_path: Path) -> None:
    for doc, path in _documents(tmp_path, (0, 1)):
        outcome = _extract(path)
        prose = _words(_prose(outcome.extra["markdown"]))
        # a table found wider than drawn takes prose into its cells: that is not lost
        cells = _words(
            " ".join(str(c) for t in outcome.extra["tables"] for r in t["rows"] for c in r)
        )
        truth = doc.truth()
        for index in range(truth["pages"]):
            boxes = [t["bbox"] for t in truth["tables"] if t["page"] == index]
            outside = _words(_text_outside(path, index, boxes))
            missing = outside - prose - cells
            assert not missing, (doc.name, index, dict(missing))
        # the tables are there, as pipe tables
        separators = [ln for ln in outcome.extra["markdown"].split("\n") if ln.startswith("|---|")]
        assert len(separators) == len(outcome.extra["tables"])


def test_real_table_page_keeps_its_title_and_leaves_its_rows_to_the_table() -> None:
    # PDFium's text of this page is the title, then every row on one line; "Elizab2165"
    # (a cell's text running into the next) kept that whole line as prose before
    outcome = _extract(TABULA / "schools.pdf")
    assert _repeated_rows(outcome) == []
    prose = _prose(outcome.extra["markdown"])
    assert "Vote Yes for Strong Schools" in prose
    assert "For the Period Between August 1, 2012 to October 18, 2012" in prose
    assert "Lidstad" not in prose and "Elizab2165" not in prose
    assert "| Lidstad | Dick & Peg |" in outcome.extra["markdown"]


def test_glued_words_of_a_table_line_without_positions() -> None:
    # no character positions (OCR text, the pypdf fallback): the line is left out when
    # its letter runs and digit runs are all the table's ("Apples3" is "Apples", "3")
    lines = ["Orders this week.", "Order 17 Apples3 1.20", "More orders next week."]
    table = {"page": 0, "rows": [["Order", "Item", "Qty", "Price"], ["17", "Apples", "3", "1.20"]]}
    markdown = render([PageLines(0, lines, [None] * len(lines))], [table])
    assert "Apples3" not in markdown
    assert "Orders this week." in markdown and "More orders next week." in markdown
    assert "| 17 | Apples | 3 | 1.20 |" in markdown


def test_extract_with_tables_and_markdown_through_the_api(tmp_path: Path) -> None:
    # its rows come out of PDFium run together: "1,009,142Northern Ireland 522.8 ..."
    doc = [d for d in generate(0, 32) if d.kinds[0].startswith("table:rotated")][1]
    path = tmp_path / "rotated.pdf"
    path.write_bytes(doc.pdf())
    settings = load_settings(env={}, overrides={"extract.tables": True, "output.markdown": True})
    record = docmill.extract(path, settings)
    content = record.decoded()
    outcome = ProcessOutcome(status=DocState.DONE, extra=content)
    assert content["tables"] and _repeated_rows(outcome) == []
    assert content["markdown"].startswith("# ")  # the page's heading, prose, stays


def test_a_pipe_table_stands_where_its_table_is_on_the_page(tmp_path: Path) -> None:
    """Each pipe table comes after the prose above its table and before the prose below
    it, not at the end of its page: generated pages with two tables between paragraphs,
    and a real page whose footnotes follow its table."""
    seen = 0
    for seed in (0, 1):
        for doc in generate(seed, 48):
            if not doc.name.endswith("-two_tables"):
                continue
            path = tmp_path / f"{doc.name}.pdf"
            path.write_bytes(doc.pdf())
            blocks = _extract(path).extra["markdown"].strip().split("\n\n")
            kinds = "".join("T" if b.startswith("|") else "p" for b in blocks)
            # heading, caption: text; table; prose; table; prose
            assert re.fullmatch(r"p+Tp+Tp+", kinds), (doc.name, kinds)
            seen += 1
    assert seen == 6
    google = REAL / "sample-files" / "011-google-doc-document" / "google-doc-document.pdf"
    blocks = _extract(google).extra["markdown"].strip().split("\n\n")
    table = next(i for i, b in enumerate(blocks) if b.startswith("|"))
    assert blocks[0] == "# Example document" and "Readability counts." in blocks[:table]
    assert "2020 estimate" in blocks[-1] and table < len(blocks) - 1  # its footnotes after it
