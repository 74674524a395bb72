"""Tiny dependency-free generator of valid PDF 1.4 files with extractable text (for tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

_FONT_SIZE = 12
_LEADING = 14
_TOP = 760
_ESCAPES = {ord("\\"): "\\\\", ord("("): "\\(", ord(")"): "\\)", ord("\r"): "\\r"}


def _escape(line: str) -> bytes:
    """PDF literal string body in WinAnsi (cp1252); unencodable characters become '?'."""
    return line.translate(_ESCAPES).encode("cp1252", errors="replace")


def _content(text: str) -> bytes:
    lines = text.split("\n")
    body = b" Tj T* ".join(b"(" + _escape(line) + b")" for line in lines)
    head = b"BT /F1 %d Tf %d TL 72 %d Td " % (_FONT_SIZE, _LEADING, _TOP)
    return head + body + b" Tj ET\n"


def ruled_table(
    rows: list[list[str]], *, left: float = 72, top: float = 600, col_width: float = 110,
    row_height: float = 20, size: int = 10,
) -> bytes:
    """Content-stream operators that draw ``rows`` as a ruled table: a line around every
    cell and each cell's text inside it. ``(left, top)`` is the table's top-left corner in
    PDF user space (origin bottom-left); pass the result to ``make_pdf(graphics=...)``."""
    cols = max(len(r) for r in rows)
    right, bottom = left + cols * col_width, top - len(rows) * row_height
    ops = [b"0.8 w"]
    ops += [b"%g %g m %g %g l S" % (left, top - i * row_height, right, top - i * row_height) for i in range(len(rows) + 1)]
    ops += [b"%g %g m %g %g l S" % (left + j * col_width, top, left + j * col_width, bottom) for j in range(cols + 1)]
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            x, y = left + j * col_width + 4, top - (i + 1) * row_height + 6
            ops.append(b"BT /F1 %d Tf %g %g Td (" % (size, x, y) + _escape(cell) + b") Tj ET")
    return b"\n".join(ops) + b"\n"


def make_pdf(
    pages: list[str], graphics: Sequence[bytes] = (), page_size: tuple[float, float] = (612, 792)
) -> bytes:
    """Return a PDF with one page per string; lines split on "\\n" (Helvetica, US Letter
    unless ``page_size`` says otherwise, in points). ``graphics[i]``, when given, is more
    content-stream operators for page ``i`` (such as :func:`ruled_table`'s), drawn after
    its text.

    ``make_pdf([])`` gives a structurally valid zero-page PDF (pdfium refuses to open it).
    """
    n = len(pages)
    kids = b" ".join(b"%d 0 R" % (4 + 2 * i) for i in range(n))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, text in enumerate(pages):
        stream = _content(text) + (graphics[i] if i < len(graphics) else b"")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g]" % page_size
            + b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
    return _serialise(objects)


def _serialise(objects: list[bytes]) -> bytes:
    """The file: header, objects numbered from 1 (the first is the catalog), xref, trailer."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: list[int] = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return bytes(out)


def write_pdf(
    path: str | Path, pages: list[str], graphics: Sequence[bytes] = (),
    page_size: tuple[float, float] = (612, 792),
) -> Path:
    """Write ``make_pdf(pages, graphics, page_size)`` to ``path`` (parents created) and
    return the path."""
    target = Path(path)
    data = make_pdf(pages, graphics, page_size)
    try:
        target.write_bytes(data)
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return target


def make_table_pdf(rows: list[list[str]], title: str = "", *, col_width: int = 120, row_height: int = 24) -> bytes:
    """A one-page PDF holding ``rows`` as a ruled table: every cell boxed by stroked
    lines (one horizontal ruling per row edge, one vertical per column edge), its text
    inside; ``title`` is a line of prose above the table. Helvetica 10 pt, US Letter."""
    n_cols = max((len(r) for r in rows), default=0)
    left, top = 72, 700
    right, bottom = left + n_cols * col_width, top - len(rows) * row_height
    ops: list[bytes] = [b"0.8 w"]
    for i in range(len(rows) + 1):
        y = top - i * row_height
        ops.append(b"%d %d m %d %d l S" % (left, y, right, y))
    for j in range(n_cols + 1):
        x = left + j * col_width
        ops.append(b"%d %d m %d %d l S" % (x, top, x, bottom))
    if title:
        ops.append(b"BT /F1 12 Tf 72 730 Td (" + _escape(title) + b") Tj ET")
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            x, y = left + j * col_width + 6, top - (i + 1) * row_height + 8
            ops.append(b"BT /F1 10 Tf %d %d Td (" % (x, y) + _escape(cell) + b") Tj ET")
    stream = b"\n".join(ops) + b"\n"
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
        b" /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream",
    ]
    return _serialise(objects)
