"""Type detection from content, never from the file name."""

from __future__ import annotations

import struct
import zipfile
import zlib

PDF = "application/pdf"
EPUB = "application/epub+zip"
OOXML = "application/vnd.openxmlformats-officedocument"  # an Office package of another kind
DOCX = f"{OOXML}.wordprocessingml.document"
XLSX = f"{OOXML}.spreadsheetml.sheet"
PPTX = f"{OOXML}.presentationml.presentation"
ZIP = "application/zip"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
GIF = "image/gif"
HTML = "text/html"
TEXT = "text/plain"
EMPTY = "application/x-empty"
BINARY = "application/octet-stream"

_HEAD = 8192
_CONTENT_TYPES_MAX = 1 << 20
_DAMAGED_HEAD = 1 << 16
# the main part's content type in [Content_Types].xml (documents, templates, macro-enabled)
_MAIN_TYPES = (
    (
        DOCX,
        (
            b"wordprocessingml.document.main+xml",
            b"wordprocessingml.template.main+xml",
            b"ms-word.document.macroEnabled.main+xml",
            b"ms-word.template.macroEnabledTemplate.main+xml",
        ),
    ),
    (
        XLSX,
        (
            b"spreadsheetml.sheet.main+xml",
            b"spreadsheetml.template.main+xml",
            b"ms-excel.sheet.macroEnabled.main+xml",
            b"ms-excel.template.macroEnabled.main+xml",
        ),
    ),
    (
        PPTX,
        (
            b"presentationml.presentation.main+xml",
            b"presentationml.slideshow.main+xml",
            b"presentationml.template.main+xml",
            b"ms-powerpoint.presentation.macroEnabled.main+xml",
            b"ms-powerpoint.slideshow.macroEnabled.main+xml",
            b"ms-powerpoint.template.macroEnabled.main+xml",
        ),
    ),
)
_MAIN_FOLDERS = (
    (DOCX, "word/document.xml"),
    (XLSX, "xl/workbook.xml"),
    (PPTX, "ppt/presentation.xml"),
)


def sniff_bytes(head: bytes) -> str:
    """The MIME type of a file from its first bytes."""
    if not head:
        return EMPTY
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head.startswith(b"PK\x03\x04"):
        if head[30:58] == b"mimetypeapplication/epub+zip":
            return EPUB
        return ZIP
    if _markup_start(head).startswith((b"<!doctype html", b"<html")):
        return HTML
    if b"\x00" in head:
        return BINARY
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return BINARY
    return TEXT


def _markup_start(head: bytes) -> bytes:
    """The head, lower-cased, past a BOM, an XML declaration and comments."""
    _blank = b" \t\r\n"
    rest = head.lstrip(b"\xef\xbb\xbf" + _blank).lower()
    if rest.startswith(b"<?xml") and b"?>" in rest:
        rest = rest[rest.index(b"?>") + 2 :].lstrip(_blank)
    while rest.startswith(b"<!--") and b"-->" in rest:
        rest = rest[rest.index(b"-->") + 3 :].lstrip(_blank)
    return rest


def sniff(path: str) -> str:
    """The MIME type of the file at ``path`` (OSError propagates)."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
    mime = sniff_bytes(head)
    if mime == ZIP:
        try:
            with zipfile.ZipFile(path) as archive:
                return _zip_kind(archive)
        except OSError:
            return ZIP
        except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, RuntimeError, NotImplementedError):
            return _damaged_zip_kind(path)  # no central directory: what the parts say
    return mime


def _local_names(data: bytes, limit: int = 64) -> list[str]:
    """Member names from the local file headers at the start of a zip, read in order
    (up to a member whose size is only given after its data)."""
    names: list[str] = []
    pos = 0
    while len(names) < limit and data.startswith(b"PK\x03\x04", pos) and pos + 30 <= len(data):
        (flags,) = struct.unpack_from("<H", data, pos + 6)
        (size,) = struct.unpack_from("<I", data, pos + 18)
        name_len, extra_len = struct.unpack_from("<HH", data, pos + 26)
        names.append(data[pos + 30 : pos + 30 + name_len].decode("utf-8", "replace"))
        if flags & 0x8:
            break
        pos += 30 + name_len + extra_len + size
    return names


def _damaged_zip_kind(path: str) -> str:
    """An unreadable zip (truncated, say) that starts like an Office package is reported
    as one, so it fails ``corrupt`` in its extractor rather than being skipped."""
    with open(path, "rb") as handle:
        names = _local_names(handle.read(_DAMAGED_HEAD))
    if "[Content_Types].xml" not in names:
        return ZIP
    for kind, main in _MAIN_FOLDERS:
        folder = main.split("/")[0] + "/"
        if any(name.startswith(folder) for name in names):
            return kind
    return OOXML


def _zip_kind(archive: zipfile.ZipFile) -> str:
    """DOCX, XLSX or PPTX from an Office package's declared main part (else its main
    part's name), OOXML for another Office package; EPUB for a book whose ``mimetype``
    member is not stored first (readers accept it); ZIP for any other zip."""
    names = set(archive.namelist())
    if "[Content_Types].xml" not in names:
        if "mimetype" in names and "META-INF/container.xml" in names:
            with archive.open("mimetype") as handle:
                if handle.read(64).strip() == b"application/epub+zip":
                    return EPUB
        return ZIP
    with archive.open("[Content_Types].xml") as handle:
        declared = handle.read(_CONTENT_TYPES_MAX)
    for kind, markers in _MAIN_TYPES:
        if any(marker in declared for marker in markers):
            return kind
    for kind, main in _MAIN_FOLDERS:
        if main in names:
            return kind
    return OOXML
