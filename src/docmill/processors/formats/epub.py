"""EPUB 2 and 3: the text of each spine item (chapter) in reading order, OPF metadata.

``pages`` counts chapters. A chapter listed in ``META-INF/encryption.xml`` (DRM) fails
the book ``encrypted``; obfuscated fonts, listed there too, do not matter. A spine item
that is not markup (an image, say: a comic's pages) is never decoded as text: its
chapter stays empty and ``metadata["skipped_chapters"]`` says which and why. Images'
alt text (a comic's dialogue, often) is kept in ``parts`` (kind ``alt_text``), text
set in inline SVG is read.
"""

from __future__ import annotations

import posixpath
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.processors.formats.html_text import read_markup
from docmill.processors.formats.markdown_blocks import part, with_parts
from docmill.processors.formats.package import FormatError, Package, open_package
from docmill.processors.registry import ExtractRequest
from docmill.sources.filetype import EPUB

_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}rootfile"
OPF = "{http://www.idpf.org/2007/opf}"
DC = "{http://purl.org/dc/elements/1.1/}"
_CIPHER = "{http://www.w3.org/2001/04/xmlenc#}CipherReference"
_FIRST = {"title": "title", "language": "language", "publisher": "publisher", "date": "date"}


def _package_path(pkg: Package) -> str:
    container = pkg.xml("META-INF/container.xml")
    for rootfile in container.iter(_CONTAINER):
        path = unquote(rootfile.get("full-path", "")).lstrip("/")
        if path and pkg.has(path):
            return path
    raise FormatError(
        FailureCategory.CORRUPT, "META-INF/container.xml names no package document that exists"
    )


def _metadata(opf: ET.Element) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "title": None,
        "author": None,
        "language": None,
        "publisher": None,
        "date": None,
        "identifier": None,
    }
    block = opf.find(f"{OPF}metadata")
    if block is None:
        return meta
    values: dict[str, list[str]] = {}
    identifiers: dict[str, str] = {}
    for el in block:
        if not el.tag.startswith(DC):
            continue
        value = " ".join("".join(el.itertext()).split())
        if not value:
            continue
        name = el.tag[len(DC) :]
        values.setdefault(name, []).append(value)
        if name == "identifier":
            identifiers[el.get("id", "")] = value
    for name, key in _FIRST.items():
        if values.get(name):
            meta[key] = values[name][0]
    if values.get("creator"):
        meta["author"] = "; ".join(values["creator"])
    unique = opf.get("unique-identifier", "")
    meta["identifier"] = identifiers.get(unique) or next(iter(values.get("identifier", [])), None)
    return meta


def _spine(opf: ET.Element, base: str) -> list[tuple[str, str]]:
    """(zip member, declared media type) of each spine item, in reading order."""
    manifest = {
        item.get("id", ""): (
            posixpath.normpath(posixpath.join(base, unquote(item.get("href", "").split("#")[0]))),
            item.get("media-type", "").strip().lower(),
        )
        for item in opf.iter(f"{OPF}item")
    }
    spine = opf.find(f"{OPF}spine")
    refs = spine.iter(f"{OPF}itemref") if spine is not None else iter(())
    return [manifest[ref.get("idref", "")] for ref in refs if ref.get("idref", "") in manifest]


_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"II*\x00", b"MM\x00*")


def _not_markup(media_type: str, data: bytes) -> str | None:
    """Why a spine item is not read as text (None: it is markup)."""
    if media_type.startswith("image/") and media_type != "image/svg+xml":
        return f"an image ({media_type}): not read as text"
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<"))
    if data.startswith(_IMAGE_MAGIC) or (b"\x00" in data[:1024] and not utf16):
        kind = media_type or "no media type"
        return f"binary content ({kind}): not read as text"
    return None


def _encrypted(pkg: Package) -> set[str]:
    root = pkg.optional_xml("META-INF/encryption.xml")
    refs = root.iter(_CIPHER) if root is not None else iter(())
    return {posixpath.normpath(unquote(ref.get("URI", "")).lstrip("/")) for ref in refs}


def extract_epub(path: str, request: ExtractRequest) -> ProcessOutcome:
    """One text entry per chapter (spine item); title, author, language... in metadata;
    alt text in ``parts``; Markdown when asked for."""
    started = time.perf_counter()
    markdown = request.options.markdown
    try:
        with open_package(path) as pkg:
            opf_path = _package_path(pkg)
            opf = pkg.xml(opf_path)
            meta = _metadata(opf)
            chapters = _spine(opf, posixpath.dirname(opf_path))
            locked = _encrypted(pkg).intersection(member for member, _ in chapters)
            if locked:
                raise FormatError(
                    FailureCategory.ENCRYPTED,
                    f"the book is encrypted (DRM): {len(locked)} chapter(s) listed in META-INF/encryption.xml",
                )
            limit = min(len(chapters), request.max_pages) if request.max_pages else len(chapters)
            text: list[str] = []
            pages_md: list[str] = []
            parts: list[dict[str, Any]] = []
            missing: list[str] = []
            skipped: list[dict[str, Any]] = []
            for index, (member, media_type) in enumerate(chapters[:limit]):
                text.append("")
                pages_md.append("")
                if not pkg.has(member):
                    missing.append(member)  # one missing chapter must not cost the others
                    continue
                if media_type.startswith("image/") and media_type != "image/svg+xml":
                    reason: str | None = f"an image ({media_type}): not read as text"
                    data = b""
                else:
                    data = pkg.read(member)
                    reason = _not_markup(media_type, data)
                if reason:
                    skipped.append({"chapter": index, "item": member, "reason": reason})
                    continue
                reader = read_markup(data, markdown)
                text[index] = reader.text()
                parts.extend(part(index, "alt_text", alt) for alt in reader.alts)
                if markdown:
                    pages_md[index] = reader.markdown_text()
    except FormatError as exc:
        return exc.outcome()
    if not chapters:
        return ProcessOutcome.failure(FailureCategory.EMPTY, "the book's spine lists no chapters")
    meta["missing_chapters"] = missing
    meta["skipped_chapters"] = skipped
    extra: dict[str, Any] = {"parts": parts} if parts else {}
    if markdown:
        extra["markdown"] = with_parts(pages_md, parts)
    return ProcessOutcome(
        status=DocState.DONE,
        mime=EPUB,
        pages=len(chapters),
        text=text,
        metadata=meta,
        parse_s=time.perf_counter() - started,
        extra=extra,
    )
