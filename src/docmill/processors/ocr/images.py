"""Images as documents: PNG, JPEG and TIFF (one page per TIFF frame), read by OCR.

An image has no text layer, so ``extract.ocr`` ``auto`` and ``always`` both OCR every
page, and ``never`` leaves every page empty. Tesseract reads the file itself (one
``tessedit_page_number`` per TIFF frame), so no imaging library is needed; frames are
counted here by walking the TIFF's directory chain.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from docmill.model import DocState, FailureCategory, PageRange, ProcessOutcome
from docmill.processors.ocr.pages import LAYER, ocr_pages
from docmill.processors.ocr.tesseract import Tesseract
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import JPEG, PNG, TIFF, sniff

IMAGE_TYPES = (PNG, JPEG, TIFF)
MAX_FRAMES = 1_000_000  # a directory chain longer than this is treated as corrupt
MAX_IMAGE_BYTES = 4 << 20  # an image document bigger than this is not sent to the LLM as it is


class BadImage(ValueError):
    """The image's structure cannot be read (truncated, cyclic TIFF directories)."""


def tiff_frames(head: bytes, read_at: Any) -> int:
    """Frames of a classic TIFF: the length of its IFD chain. ``head`` is the file's first
    8 bytes; ``read_at(offset, size)`` returns bytes of the file."""
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None or len(head) < 8:
        raise BadImage("not a TIFF header")
    (offset,) = struct.unpack(order + "I", head[4:8])
    seen: set[int] = set()
    while offset:
        if offset in seen:
            raise BadImage("the TIFF's directory chain loops")
        if len(seen) >= MAX_FRAMES:
            raise BadImage(f"the TIFF has over {MAX_FRAMES:,} frames")
        seen.add(offset)
        raw = read_at(offset, 2)
        if len(raw) < 2:
            raise BadImage(f"the TIFF is truncated (directory at {offset})")
        (entries,) = struct.unpack(order + "H", raw)
        raw = read_at(offset + 2 + 12 * entries, 4)
        if len(raw) < 4:
            raise BadImage(f"the TIFF is truncated (directory at {offset})")
        (offset,) = struct.unpack(order + "I", raw)
    return len(seen)


def count_frames(path: str, mime: str) -> int:
    """Pages of an image: TIFF frames, else 1."""
    if mime != TIFF:
        return 1
    with open(path, "rb") as handle:

        def read_at(offset: int, size: int) -> bytes:
            handle.seek(offset)
            return handle.read(size)

        return tiff_frames(handle.read(8), read_at)


def extract_image(path: str, request: ExtractRequest) -> ProcessOutcome:
    """OCR text of each frame in the requested window, frame count and metadata."""
    started = time.perf_counter()
    mime = sniff(path)
    try:
        pages = count_frames(path, mime)
    except BadImage as exc:
        return ProcessOutcome.failure(FailureCategory.CORRUPT, f"not a readable image ({exc})")
    if pages == 0:
        return ProcessOutcome.failure(FailureCategory.EMPTY, "the TIFF has no frames")
    wanted = min(pages, request.max_pages) if request.max_pages else pages
    if request.page_range is None and wanted > request.split_pages:
        return ProcessOutcome(status=DocState.RUNNING, mime=mime, pages=pages, needs_split=True)
    rng = (
        PageRange(0, wanted)
        if request.page_range is None
        else PageRange(min(request.page_range.start, wanted), min(request.page_range.stop, wanted))
    )
    text = [""] * len(rng)
    meta: dict[str, Any] = {"parser": "tesseract", "image_type": mime.removeprefix("image/")}

    def read(index: int, tesseract: Tesseract) -> str:
        return tesseract.read_file(path, rng.start + index if mime == TIFF else None)

    if request.options.ocr == "never":
        sources = [LAYER] * len(text)
    else:
        todo = list(range(len(text)))
        sources = ocr_pages(
            read, todo, text, request.options.ocr_languages, request.on_stage, meta, rng.start
        )
    errors = meta.get("ocr_errors") or []
    if text and len(errors) == len(text):  # Tesseract read none of it: not a usable image
        message = f"tesseract could not read the image: {errors[0]['error']}"
        return ProcessOutcome.failure(FailureCategory.CORRUPT, message[:500], "ocr")
    meta["pages_without_text"] = [rng.start + i for i, t in enumerate(text) if not t.strip()]
    return ProcessOutcome(
        status=DocState.DONE,
        mime=mime,
        pages=pages,
        text=text,
        metadata=meta,
        parse_s=time.perf_counter() - started,
        page_range=rng if rng.start or rng.stop < pages else None,
        extra={"text_source": sources},
        images=_images_for_llm(path, mime, request),
    )


def file_image(path: str, mime: str) -> list[tuple[str, bytes]]:
    """An image document as it is, when providers read its type and it is not too big."""
    if mime not in ("image/png", "image/jpeg"):
        return []
    with open(path, "rb") as handle:
        data = handle.read(MAX_IMAGE_BYTES + 1)
    return [(mime, data)] if len(data) <= MAX_IMAGE_BYTES else []


def _images_for_llm(path: str, mime: str, request: ExtractRequest) -> list[tuple[str, bytes]]:
    if not request.options.image_pages:
        return []
    return file_image(path, mime)
