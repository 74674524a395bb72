"""Extractors by content type. Built-ins register exactly as a plugin would.

An extractor is a function ``(path, request) -> ProcessOutcome``; the registry maps a
MIME type to one, and says which types are known when asked for one that is not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from docmill.model import PageRange, ProcessOutcome

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
    markdown: bool = False  # render the document as Markdown (record key "markdown")


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
    from docmill.processors.pdf_text import extract_pdf  # lazy: the parser loads here

    return extract_pdf(path, request)


def _image_ocr(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.images import extract_image  # lazy, like the PDF parser

    return extract_image(path, request)


def builtin_extractors() -> Mapping[str, Extractor]:
    """MIME type -> extractor, for the types docmill processes."""
    return MappingProxyType(
        {
            "application/pdf": _pdf_text,
            "image/png": _image_ocr,
            "image/jpeg": _image_ocr,
            "image/tiff": _image_ocr,
        }
    )


def known_kinds() -> list[str]:
    return sorted(builtin_extractors())
