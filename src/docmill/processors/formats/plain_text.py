"""Plain text: decoded as UTF-8, else as the encoding a BOM names, else cp1252 / latin-1."""

from __future__ import annotations

import codecs
import time

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import TEXT

MAX_BYTES = 64 << 20

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM it starts with
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_text(data: bytes) -> tuple[str, str]:
    """(text, encoding name). Never fails: latin-1 maps every byte."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(name, errors="replace"), name
    for name in ("utf-8", "cp1252"):
        try:
            return data.decode(name), name
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def extract_text(path: str, request: ExtractRequest) -> ProcessOutcome:
    """The whole file as one text entry, line ends normalised to ``\\n``."""
    started = time.perf_counter()
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        return ProcessOutcome.failure(
            FailureCategory.TOO_LARGE, f"plain text over {MAX_BYTES:,} bytes is not processed"
        )
    text, encoding = decode_text(data)
    return ProcessOutcome(
        status=DocState.DONE,
        mime=TEXT,
        pages=1,
        text=[text.replace("\r\n", "\n").replace("\r", "\n")],
        metadata={"encoding": encoding},
        parse_s=time.perf_counter() - started,
    )
