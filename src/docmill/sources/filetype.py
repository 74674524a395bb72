"""Type detection from content, never from the file name."""

from __future__ import annotations

import zipfile

PDF = "application/pdf"
EPUB = "application/epub+zip"
OOXML = "application/vnd.openxmlformats-officedocument"
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
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<!doctype html", b"<html")):
        return HTML
    if b"\x00" in head:
        return BINARY
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return BINARY
    return TEXT


def sniff(path: str) -> str:
    """The MIME type of the file at ``path`` (OSError propagates)."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
    mime = sniff_bytes(head)
    if mime == ZIP:
        try:
            with zipfile.ZipFile(path) as archive:
                if "[Content_Types].xml" in archive.namelist():
                    return OOXML
        except (zipfile.BadZipFile, OSError, ValueError):
            return ZIP
    return mime
