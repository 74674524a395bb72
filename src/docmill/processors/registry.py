"""Extractors by content type. Built-ins register exactly as a plugin would.

An extractor is a function ``(path, request) -> ProcessOutcome``; the registry maps a
MIME type to one, and says which types are known when asked for one that is not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from docmill.model import PageRange, ProcessOutcome


@dataclass(frozen=True, slots=True)
class ExtractRequest:
    """What the engine asks of an extractor for one task."""

    page_range: PageRange | None  # None: the whole document (or the first max_pages)
    max_pages: int  # 0: every page
    split_pages: int  # whole-document requests above this many pages answer needs_split
    fallback_max_bytes: int = 1 << 20  # try a fallback parser on files up to this size


Extractor = Callable[[str, ExtractRequest], ProcessOutcome]


def _pdf_text(path: str, request: ExtractRequest) -> ProcessOutcome:
    from docmill.processors.pdf_text import extract_pdf  # lazy: the parser loads here

    return extract_pdf(path, request)


def builtin_extractors() -> Mapping[str, Extractor]:
    """MIME type -> extractor, for the types docmill processes."""
    return MappingProxyType({"application/pdf": _pdf_text})


def known_kinds() -> list[str]:
    return sorted(builtin_extractors())
