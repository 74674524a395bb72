"""Type detection from content, never from the file name."""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from typing import BinaryIO

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
# an Office document saved with a password: an OLE compound file holding EncryptionInfo
# and EncryptedPackage (MS-OFFCRYPTO), whatever kind it was before it was encrypted
OFFICE_ENCRYPTED = "application/x-ooxml-encrypted"
CFB = "application/x-ole-storage"  # any other OLE compound file (.doc, .xls, .msg...)

_HEAD = 8192
_MARKUP_HEAD = 1 << 18  # a head that opens with markup is read this far to decide
_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# elements an HTML document or fragment may open with (the WHATWG MIME sniffing
# patterns, and the common block and head elements besides)
_HTML_OPENERS = frozenset(
    b"""!doctype html head body script iframe h1 h2 h3 h4 h5 h6 div font table a style
    title b br p meta link section article header footer main nav span ul ol li dl form
    img center noscript aside figure blockquote pre hr i em strong small tr td th tbody
    thead svg button input label select textarea base""".split()
)
_HEAD_OPENERS = frozenset({b"script", b"style", b"meta", b"link", b"title", b"base", b"noscript"})
_DOCUMENT = re.compile(rb"<(?:html|head|body)[\s/>]|<!doctype\s+html")
_TAG_NAME = re.compile(rb"<(!doctype\s+html|[a-z][a-z0-9]*)(?=[\s/>])")
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
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
    if head.startswith(_CFB_MAGIC):
        return CFB  # sniff() looks inside for an encrypted Office package
    decoded = _unicode_head(head)
    if decoded is not None:  # a UTF-16/32 byte-order mark: text, or markup in it
        return HTML if _is_html(decoded.encode("utf-8", "replace")) else TEXT
    if _is_html(head):
        return HTML
    if b"\x00" in head:
        return BINARY
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return BINARY
    return TEXT


def _unicode_head(head: bytes) -> str | None:
    """The head decoded by the UTF-16 or UTF-32 byte-order mark it starts with."""
    for bom, name in _BOMS[1:]:
        if head.startswith(bom):
            cut = len(head) - (len(head) - len(bom)) % (4 if "32" in name else 2)
            return head[len(bom) : cut].decode(name, errors="replace")
    return None


def _is_html(head: bytes) -> bool:
    """Whether ``head`` opens (past a BOM, an XML declaration, comments and white
    space) with an HTML element: a document, or a fragment such as ``<div>``."""
    rest = _markup_start(head)
    if rest.startswith(b"<!--"):  # a comment longer than the head
        return True
    found = _TAG_NAME.match(rest)
    if found is None or found.group(1).split()[0] not in _HTML_OPENERS:
        return False
    if found.group(1) in _HEAD_OPENERS:
        # a page may open with a script or a style (tens of KB, before <html>); a text
        # that merely starts with a <script> snippet is no page: it needs a document
        return _DOCUMENT.search(rest) is not None
    return True


def _markup_start(head: bytes) -> bytes:
    """The head, lower-cased, past a BOM, an XML declaration and comments."""
    _blank = b" \t\r\n"
    rest = head.lstrip(b"\xef\xbb\xbf" + _blank).lower()
    if rest.startswith(b"<?xml") and b"?>" in rest:
        rest = rest[rest.index(b"?>") + 2 :].lstrip(_blank)
    while rest.startswith(b"<!--") and b"-->" in rest:
        rest = rest[rest.index(b"-->") + 3 :].lstrip(_blank)
    return rest


def cfb_names(handle: BinaryIO, max_entries: int = 4096) -> set[str]:
    """The stream and storage names in an OLE compound file's directory (MS-CFB),
    read from its header, FAT and directory sectors only; empty when it is damaged."""
    try:
        header = handle.read(512)
        if len(header) < 512 or not header.startswith(_CFB_MAGIC):
            return set()
        shift = struct.unpack_from("<H", header, 0x1E)[0]
        if shift not in (9, 12):
            return set()
        size = 1 << shift
        n_fat, first_dir, _, _, _, _, first_difat, n_difat = struct.unpack_from(
            "<8I", header, 0x2C
        )

        def sector(number: int) -> bytes:
            handle.seek((number + 1) * size)
            return handle.read(size)

        fat_sectors = [n for n in struct.unpack_from("<109I", header, 0x4C) if n < 0xFFFFFFFA]
        nxt, hops = first_difat, 0
        while nxt < 0xFFFFFFFA and hops < min(n_difat, 1024):
            data = sector(nxt)
            entries = struct.unpack(f"<{size // 4}I", data) if len(data) == size else ()
            fat_sectors += [n for n in entries[:-1] if n < 0xFFFFFFFA]
            nxt = entries[-1] if entries else 0xFFFFFFFE
            hops += 1
        fat: list[int] = []
        for number in fat_sectors[: max(n_fat, 1)]:
            data = sector(number)
            if len(data) == size:
                fat.extend(struct.unpack(f"<{size // 4}I", data))
        names: set[str] = set()
        current, seen = first_dir, set()
        while current < 0xFFFFFFFA and current not in seen and len(names) < max_entries:
            seen.add(current)
            data = sector(current)
            for at in range(0, len(data) - 127, 128):
                length = struct.unpack_from("<H", data, at + 64)[0]
                if 2 <= length <= 64 and data[at + 66] in (1, 2, 5):
                    names.add(data[at : at + length - 2].decode("utf-16-le", "replace"))
            current = fat[current] if current < len(fat) else 0xFFFFFFFE
        return names
    except (OSError, struct.error):
        return set()


def sniff(path: str) -> str:
    """The MIME type of the file at ``path`` (OSError propagates)."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
        if len(head) == _HEAD and head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            head += handle.read(_MARKUP_HEAD - _HEAD)  # a long preamble before the element
    mime = sniff_bytes(head)
    if mime == CFB:
        with open(path, "rb") as handle:
            names = cfb_names(handle)
        return OFFICE_ENCRYPTED if {"EncryptionInfo", "EncryptedPackage"} <= names else CFB
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
    (past a member whose size is only given after its data, by the next header's
    signature)."""
    names: list[str] = []
    pos = 0
    while len(names) < limit and data.startswith(b"PK\x03\x04", pos) and pos + 30 <= len(data):
        (flags,) = struct.unpack_from("<H", data, pos + 6)
        (size,) = struct.unpack_from("<I", data, pos + 18)
        name_len, extra_len = struct.unpack_from("<HH", data, pos + 26)
        names.append(data[pos + 30 : pos + 30 + name_len].decode("utf-8", "replace"))
        start = pos + 30 + name_len + extra_len
        if flags & 0x8:
            found = data.find(b"PK\x03\x04", start)
            if found < 0:
                break
            pos = found
        else:
            pos = start + size
    return names


def _damaged_zip_kind(path: str) -> str:
    """An unreadable zip (truncated, say) that starts like an Office package is reported
    as one, so it fails ``corrupt`` in its extractor rather than being skipped."""
    with open(path, "rb") as handle:
        names = _local_names(handle.read(_DAMAGED_HEAD))
    office = "[Content_Types].xml" in names or "_rels/.rels" in names
    for kind, main in _MAIN_FOLDERS:
        folder = main.split("/")[0] + "/"
        if main in names or (office and any(name.startswith(folder) for name in names)):
            return kind
    return OOXML if office else ZIP


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
