"""PDF text layer: pypdfium2 first (fast, BSD/Apache), pypdf when PDFium rejects the file.

Why pypdfium2: on shared/corpus/real it extracts ~330 pages/s on one core with ~35 MB
peak RSS, never hung on the hostile corpus (FINDINGS.md), and its licence is
permissive; PyMuPDF is as fast but AGPL and costs ~1.2 CPU-s per fresh process.
pypdf (BSD, pure Python) opens some damaged files PDFium refuses (broken xref tables),
so it is the fallback; both run inside a worker the engine can kill.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from docmill.model import DocState, FailureCategory, PageRange, ProcessOutcome
from docmill.processors.pdf.geometry import page_frame
from docmill.processors.pdf.reading_order import page_text as ordered_page_text
from docmill.processors.pdf.scanned import ocr_pdf
from docmill.processors.registry import ExtractRequest
from docmill.processors.tables.extract import PageTables

if TYPE_CHECKING:
    from docmill.processors.pdf.markdown import MarkdownPass

PDF = "application/pdf"
_PASSWORD_CODES = {4, 5}  # FPDF_ERR_PASSWORD, FPDF_ERR_SECURITY
_META_KEYS = {
    "Title": "title",
    "Author": "author",
    "Subject": "subject",
    "Keywords": "keywords",
    "Creator": "creator",
    "Producer": "producer",
    "CreationDate": "created",
    "ModDate": "modified",
}
_META_KEYS_C = tuple((key, f"{key}\x00".encode("ascii")) for key in _META_KEYS)


def pdf_date(value: str) -> str | None:
    """``D:20160719010507+02'00'`` -> ``2016-07-19T01:05:07+02:00`` (None if unparseable).

    The digits are read by position (year, then pairs down to seconds, as many as there
    are) and checked by ``datetime`` itself: ``strptime`` cost ~25 us a date here."""
    text = value.strip()
    if text.startswith("D:"):
        text = text[2:]
    digits = "".join(ch for ch in text[:14] if ch.isdigit())
    if len(digits) not in (4, 6, 8, 10, 12, 14):
        return None
    fields = [int(digits[:4])] + [int(digits[i : i + 2]) for i in range(4, len(digits), 2)]
    year, month, day, hour, minute, second = fields + [1, 1, 0, 0, 0][len(fields) - 1 :]
    try:  # month and day default to 1, the time to 0
        stamp = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    out = stamp.isoformat()
    zone = text[14:].replace("'", "")
    if zone[:1] == "Z":
        out += "Z"
    elif zone[:1] in "+-" and len(zone) >= 5 and zone[1:5].isdigit():
        out += f"{zone[0]}{zone[1:3]}:{zone[3:5]}"
    return out


def normalise_newlines(text: str) -> str:
    """PDFium ends lines with CRLF and writes a hyphen that breaks a word at a line end
    as ``\x02``; records use ``\n`` and ``-``."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\x02", "-") if "\x02" in text else text


def layer_text(doc: Any, index: int) -> str | None:
    """The text layer of page ``index`` as PDFium orders it (what
    ``page.get_textpage().get_text_bounded()`` returns), or None if the page or its
    text cannot be loaded. It calls PDFium directly: pypdfium2's page and text-page
    objects (their finalizers and parent links) cost 5-10 % of a text-only worker's CPU
    (measured in-process and with py-spy). PDFium builds the text once, not twice as
    pypdfium2 does (once for its length, once to copy it)."""
    import pypdfium2.raw as pdfium_c

    page = pdfium_c.FPDF_LoadPage(doc, index)
    if not page:
        return None
    try:
        textpage = pdfium_c.FPDFText_LoadPage(page)
        if not textpage:
            return None
        try:
            box = pdfium_c.FS_RECTF()
            if not pdfium_c.FPDF_GetPageBoundingBox(page, box):
                return None
            area = (box.left, box.top, box.right, box.bottom)
            return bounded_text(textpage, area, 2 * pdfium_c.FPDFText_CountChars(textpage) + 64)
        finally:
            pdfium_c.FPDFText_ClosePage(textpage)
    finally:
        pdfium_c.FPDF_ClosePage(page)


def bounded_text(textpage: Any, area: tuple[float, float, float, float], size: int) -> str:
    """The text of ``textpage`` inside ``area`` (left, top, right, bottom), read into a
    buffer of ``size`` UTF-16 units: one pass when the text and its NUL fit, else again
    into a buffer four times larger, until they do."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    size = max(size, 1)
    while True:
        buffer = (ctypes.c_ushort * size)()
        got = pdfium_c.FPDFText_GetBoundedText(textpage, *area, buffer, size)
        if got < size:  # it all fitted, with the NUL PDFium adds when there is room
            break
        size *= 4
    if got > 0 and buffer[got - 1] == 0:
        got -= 1
    return ctypes.string_at(buffer, 2 * got).decode("utf-16-le", "ignore") if got > 0 else ""


def pdfium_metadata(doc: Any) -> dict[str, str]:
    """The document information dictionary's values for ``_META_KEYS`` ("" when absent),
    what ``PdfDocument.get_metadata_dict`` returns, from PDFium directly: one call for
    an absent key instead of two and a buffer (most keys are absent). Malformed UTF-16
    (a lone surrogate) is replaced by U+FFFD where pypdfium2 would raise."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    out: dict[str, str] = {}
    for key, encoded in _META_KEYS_C:
        size = pdfium_c.FPDF_GetMetaText(doc, encoded, None, 0)  # bytes, with the UTF-16 NUL
        if size <= 2:
            out[key] = ""
            continue
        buffer = ctypes.create_string_buffer(size)
        pdfium_c.FPDF_GetMetaText(doc, encoded, buffer, size)
        out[key] = buffer.raw[: size - 2].decode("utf-16-le", "replace")
    return out


def _clean_meta(raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name in _META_KEYS.items():
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            out[name] = None
        elif name in ("created", "modified"):
            out[name] = pdf_date(value) or value.strip()
        else:
            out[name] = value.strip().replace("\x00", "")
    return out


def _window(pages: int, request: ExtractRequest) -> PageRange:
    limit = min(pages, request.max_pages) if request.max_pages else pages
    if request.page_range is None:
        return PageRange(0, limit)
    return PageRange(min(request.page_range.start, limit), min(request.page_range.stop, limit))


def _finish(
    pages: int,
    text: list[str],
    meta: dict[str, Any],
    rng: PageRange,
    started: float,
    text_source: list[str] | None = None,
) -> ProcessOutcome:
    meta["pages_without_text"] = [rng.start + i for i, t in enumerate(text) if not t.strip()]
    return ProcessOutcome(
        status=DocState.DONE,
        mime=PDF,
        pages=pages,
        text=text,
        metadata=meta,
        parse_s=time.perf_counter() - started,
        page_range=rng if rng.start or rng.stop < pages else None,
        extra={"text_source": text_source or ["layer"] * len(text)},
    )


def _markdown_pass(request: ExtractRequest, rng: PageRange) -> MarkdownPass | None:
    """Layout analysis and Markdown, only when Markdown is asked for: the plain text
    path stays PDFium's own order (see docmill.processors.pdf.layout for why)."""
    if not request.options.markdown:
        return None
    from docmill.processors.pdf.markdown import MarkdownPass

    return MarkdownPass(rng.start, layout=request.options.reading_order == "layout")


def _with_markdown(
    outcome: ProcessOutcome, structure: MarkdownPass | None, request: ExtractRequest
) -> ProcessOutcome:
    """Running headers/footers into the metadata, the Markdown into ``extra``; runs
    last, so that tables found by an earlier stage are in ``outcome.extra``."""
    if structure is not None and outcome.status == DocState.DONE:
        request.on_stage("markdown")
        structure.finish(outcome.metadata, outcome.extra)
    return outcome


def _split_or_none(pages: int, request: ExtractRequest) -> ProcessOutcome | None:
    if pages == 0:
        return ProcessOutcome.failure(FailureCategory.EMPTY, "the PDF has no pages")
    wanted = min(pages, request.max_pages) if request.max_pages else pages
    if request.page_range is None and wanted > request.split_pages:
        return ProcessOutcome(status=DocState.RUNNING, mime=PDF, pages=pages, needs_split=True)
    return None


def open_pdfium(path: str) -> tuple[Any, int]:
    """(PDFium document handle, 0), or (None, PDFium's error code): what
    ``PdfDocument(path)`` opens, without its path resolving and checks (~80 us a file;
    the worker was given a file it has just looked at)."""
    import pypdfium2.raw as pdfium_c

    name = path.encode("utf-8", "surrogateescape") + b"\x00"
    raw = pdfium_c.FPDF_LoadDocument(name, None)
    if raw and pdfium_c.FPDF_GetPageCount(raw) >= 1:
        return raw, 0
    code = int(pdfium_c.FPDF_GetLastError())
    if raw:
        pdfium_c.FPDF_CloseDocument(raw)
    return None, code


def extract_pdf(path: str, request: ExtractRequest) -> ProcessOutcome:
    """Text of each page in the requested window, page count and metadata."""
    import pypdfium2 as pdfium
    import pypdfium2.internal as pdfium_i
    import pypdfium2.raw as pdfium_c

    started = time.perf_counter()
    raw, code = open_pdfium(path)
    if raw is None:
        if code in _PASSWORD_CODES:
            return ProcessOutcome.failure(
                FailureCategory.ENCRYPTED,
                "the PDF is encrypted and needs a password (no password was given)",
            )
        why = pdfium_i.ErrorToStr.get(code)
        first_error = f"PDFium: Failed to load document (PDFium: {why})."
        return _fallback(path, request, started, first_error)
    doc = pdfium.PdfDocument(raw)  # owns the handle from here: closed below
    try:
        pages = len(doc)
        early = _split_or_none(pages, request)
        if early is not None:
            return early
        meta = _clean_meta(pdfium_metadata(doc))
        meta["parser"] = "pdfium"
        meta["encrypted"] = pdfium_c.FPDF_GetSecurityHandlerRevision(doc) != -1
        version = doc.get_version()
        meta["pdf_version"] = f"{version // 10}.{version % 10}" if version else None
        rng = _window(pages, request)
        text: list[str] = []
        unreadable: list[int] = []
        tables = PageTables(request)
        by_layout = request.options.reading_order == "layout"
        structure = _markdown_pass(request, rng)
        plain = not (by_layout or tables.on or structure is not None)
        for index in range(rng.start, rng.stop):
            if plain:  # text only (the common case): no page objects are needed
                layer = layer_text(doc, index)
                if layer is None:
                    unreadable.append(index)  # one broken page must not cost the others
                text.append("" if layer is None else normalise_newlines(layer))
                continue
            try:
                page = doc[index]
            except pdfium.PdfiumError:
                unreadable.append(index)  # one broken page must not cost the others
                text.append("")
                if structure is not None:
                    structure.add_text("")
                continue
            try:
                textpage = page.get_textpage()
                try:
                    if by_layout:
                        text.append(ordered_page_text(page, textpage))
                    else:
                        text.append(normalise_newlines(textpage.get_text_bounded()))
                    tables.add(page, textpage, index)
                    if structure is not None:
                        width, height = page.get_size()
                        boxes = tables.boxes(index)
                        frame = page_frame(page) if boxes else None
                        structure.add_page(textpage, width, height, text[-1], boxes, frame)
                finally:
                    textpage.close()
            finally:
                page.close()
        if unreadable and len(unreadable) == len(text):
            return _fallback(path, request, started, "PDFium: no page could be loaded")
        meta["unreadable_pages"] = unreadable
        sources = ocr_pdf(doc, rng.start, text, unreadable, request, meta)
        done = tables.into(_finish(pages, text, meta, rng, started, sources))
        if request.options.image_pages and rng.start == 0:
            from docmill.processors.pdf.page_images import pdf_page_images

            request.on_stage("render")
            done.images = pdf_page_images(doc, 0, request.options.image_pages, request.options.image_dpi)
        return _with_markdown(done, structure, request)  # after tables: it renders them
    finally:
        doc.close()


def _fallback(
    path: str, request: ExtractRequest, started: float, first_error: str
) -> ProcessOutcome:
    """pypdf, on files small enough: it rescues small damaged files (broken xref tables)
    but, in pure Python, spends ~100 ms per MB failing on large damaged ones."""
    size = os.path.getsize(path)
    if size > request.fallback_max_bytes:
        why = (
            "the fallback parser is off (extract.fallback_max_mb = 0)"
            if request.fallback_max_bytes <= 0
            else f"the fallback parser was not tried: {size / 2**20:.1f} MB is over"
            f" extract.fallback_max_mb ({request.fallback_max_bytes / 2**20:g} MB)"
        )
        return ProcessOutcome.failure(FailureCategory.CORRUPT, f"not a readable PDF ({first_error}; {why})")
    return _extract_with_pypdf(path, request, started, first_error)


def _extract_with_pypdf(
    path: str, request: ExtractRequest, started: float, first_error: str
) -> ProcessOutcome:
    """The fallback parser, for files PDFium cannot open."""
    import pypdf
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.CRITICAL)
    try:
        reader = pypdf.PdfReader(path, strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                return ProcessOutcome.failure(
                    FailureCategory.ENCRYPTED, "the PDF is encrypted and cannot be opened"
                )
        pages = len(reader.pages)
        early = _split_or_none(pages, request)
        if early is not None:
            return early
        raw = {k.lstrip("/"): str(v) for k, v in (reader.metadata or {}).items()}
        meta = _clean_meta(raw)
        meta["encrypted"] = bool(reader.is_encrypted)
        meta["pdf_version"] = reader.pdf_header.removeprefix("%PDF-") or None
        meta["parser"] = "pypdf"
        meta["unreadable_pages"] = []
        rng = _window(pages, request)
        text = [
            normalise_newlines(reader.pages[i].extract_text() or "")
            for i in range(rng.start, rng.stop)
        ]
        structure = _markdown_pass(request, rng)
        if structure is not None:
            for page_text in text:
                structure.add_text(page_text)
        return _with_markdown(_finish(pages, text, meta, rng, started), structure, request)
    except FileNotDecryptedError:
        return ProcessOutcome.failure(FailureCategory.ENCRYPTED, "the PDF is encrypted")
    except MemoryError:
        raise
    except (PdfReadError, RecursionError, Exception) as exc:  # the file already failed PDFium
        message = f"not a readable PDF ({first_error}; pypdf: {type(exc).__name__}: {exc})"
        return ProcessOutcome.failure(FailureCategory.CORRUPT, message[:500])
