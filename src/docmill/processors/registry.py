"""Extractors by content type. Built-ins register exactly as a plugin would.

An extractor is a function ``(path, request) -> ProcessOutcome``; the registry maps a
MIME type to one, and says which types are known when asked for one that is not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from docmill.model import PageRange, ProcessOutcome
from docmill.sources import filetype

OCR_MODES = ("auto", "always", "never")


def _no_report(_stage: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    """What to extract, the same for every task of a run (from the ``extract`` and
    ``output`` settings)."""

    max_pages: int = 0  # 0: every page
    split_pages: int = 500  # whole-document requests above this many pages: needs_split
    fallback_max_bytes: int = 1 << 20  # try a fallback parser on files up to this size
    tables: bool = False  # detect tables (record key "tables")
    ocr: str = "auto"  # auto: pages without a usable text layer | always | never
    ocr_languages: str = "eng"  # Tesseract language codes, "+"-joined
    reading_order: str = "pdfium"  # page text order: pdfium (content stream) | layout
    markdown: bool = False  # render the document as Markdown (record key "markdown")
    image_pages: int = 0  # render this many first pages as images for the LLM (0: none)
    image_dpi: int = 100
    # sources.confine_to_root: the run's roots (real paths); a file is opened only where
    # it resolves inside one, right before it is read (empty: not confined)
    confine_roots: tuple[str, ...] = ()
    # only draw the task's pages as PNG images (no text): the service's page view
    render_only: bool = False


@dataclass(frozen=True, slots=True)
class ExtractRequest:
    """What the engine asks of an extractor for one task."""

    page_range: PageRange | None  # None: the whole document (or the first max_pages)
    options: ExtractOptions = ExtractOptions()
    # hears each stage's name as it starts ("tables", "ocr"...): a worker killed from
    # outside then reports the stage it was in
    on_stage: Callable[[str], None] = field(default=_no_report, compare=False)

    @property
    def max_pages(self) -> int:
        return self.options.max_pages

    @property
    def split_pages(self) -> int:
        return self.options.split_pages

    @property
    def fallback_max_bytes(self) -> int:
        return self.options.fallback_max_bytes


Extractor = Callable[[str, ExtractRequest], ProcessOutcome]


def _pdf_text(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.pdf.text import extract_pdf  # lazy: the parser loads here

    return extract_pdf(path, request)


def _epub(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.formats.epub import extract_epub

    return extract_epub(path, request)


def _docx(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.formats.docx import extract_docx

    return extract_docx(path, request)


def _xlsx(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.formats.xlsx import extract_xlsx

    return extract_xlsx(path, request)


def _pptx(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.formats.pptx import extract_pptx

    return extract_pptx(path, request)


def _html(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.formats.html_text import extract_html

    return extract_html(path, request)


def _plain_text(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.formats.plain_text import extract_text

    return extract_text(path, request)


def _image_ocr(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.ocr.images import extract_image  # lazy, like the PDF parser

    return extract_image(path, request)


def _office_encrypted(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.model import FailureCategory

    outcome = ProcessOutcome.failure(
        FailureCategory.ENCRYPTED,
        "a password-protected Office document (an encrypted package: EncryptionInfo and"
        " EncryptedPackage in an OLE compound file): it cannot be read without the password",
    )
    outcome.mime = filetype.OFFICE_ENCRYPTED
    return outcome


# types that are recognised to be refused with a reason (never listed as processed)
_REFUSED: dict[str, Extractor] = {filetype.OFFICE_ENCRYPTED: _office_encrypted}

# MIME type -> (a short name for messages, extractor)
_BUILTINS: dict[str, tuple[str, Extractor]] = {
    filetype.PDF: ("PDF", _pdf_text),
    filetype.EPUB: ("EPUB", _epub),
    filetype.DOCX: ("DOCX", _docx),
    filetype.XLSX: ("XLSX", _xlsx),
    filetype.PPTX: ("PPTX", _pptx),
    filetype.HTML: ("HTML", _html),
    filetype.TEXT: ("plain text", _plain_text),
    filetype.PNG: ("PNG", _image_ocr),
    filetype.JPEG: ("JPEG", _image_ocr),
    filetype.TIFF: ("TIFF", _image_ocr),
}


def builtin_extractors() -> Mapping[str, Extractor]:
    """MIME type -> extractor, for the types docmill processes."""
    return MappingProxyType(
        {**_REFUSED, **{mime: extractor for mime, (_, extractor) in _BUILTINS.items()}}
    )


def supported_names() -> list[str]:
    """Short names of the processed types, for messages ("PDF", "EPUB", ...)."""
    return [name for name, _ in _BUILTINS.values()]


def known_kinds() -> list[str]:
    return sorted(mime for mime, _ in _BUILTINS.items())
