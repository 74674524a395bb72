"""The generated table pages (docmill.testkit.table_pages): valid PDFs whose truth is
where the text is."""

from __future__ import annotations

import pypdfium2 as pdfium

from docmill.processors.pdf.geometry import page_chars, page_frame
from docmill.testkit.table_pages import generate


def _chars(pdf: bytes, index: int) -> list[tuple[str, float, float]]:
    doc = pdfium.PdfDocument(pdf)
    try:
        page = doc[index]
        textpage = page.get_textpage()
        chars = page_chars(textpage, page_frame(page))
        textpage.close()
        page.close()
    finally:
        doc.close()
    return [(c.text, (c.x0 + c.x1) / 2, (c.y0 + c.y1) / 2) for c in chars if c.text.strip()]


def test_a_seed_gives_the_same_documents() -> None:
    first = [(d.name, d.pdf()) for d in generate(3, 15)]
    assert first == [(d.name, d.pdf()) for d in generate(3, 15)]
    assert first != [(d.name, d.pdf()) for d in generate(4, 15)]


def test_every_cell_lies_in_its_tables_box_and_negatives_hold_none() -> None:
    docs = generate(0, 16)  # one document of each kind
    kinds = {k.split(":")[0] + ":" + k.split(":")[1] for d in docs for k in d.kinds}
    assert {"none:prose", "none:list", "none:toc", "none:form", "none:chart"} <= kinds
    for doc in docs:
        pdf = doc.pdf()
        truth = doc.truth()
        if all(k.startswith("none") for k in doc.kinds):
            assert truth["tables"] == []
            continue
        assert truth["tables"], doc.name
        for table in truth["tables"]:
            x0, y0, x1, y1 = table["bbox"]
            inside = "".join(
                ch for ch, x, y in _chars(pdf, table["page"]) if x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1
            )
            for cell in table["cells"]:
                for word in cell["text"].split():
                    assert word in inside, (doc.name, word)


def test_a_continued_table_and_a_turned_page() -> None:
    docs = {d.name.split("-", 2)[2]: d for d in generate(0, 16)}
    continued = docs["continued"].truth()
    assert continued["pages"] == 2
    assert [t.get("continued_from") for t in continued["tables"]] == [None, 0]
    rotated = docs["rotated"]
    doc = pdfium.PdfDocument(rotated.pdf())
    assert doc[0].get_rotation() == 90
    width, height = doc[0].get_size()
    assert width > height  # shown landscape
    (table,) = rotated.truth()["tables"]
    assert table["bbox"][2] <= width and table["bbox"][3] <= height
