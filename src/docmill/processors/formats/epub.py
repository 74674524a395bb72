"""EPUB 2 and 3: the text of each spine item (chapter) in reading order, OPF metadata.

``pages`` counts chapters. A chapter listed in ``META-INF/encryption.xml`` (DRM) fails
the book ``encrypted``; obfuscated fonts, listed there too, do not matter.
"""

from __future__ import annotations

import posixpath
import time
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import unquote

from docmill.model import DocState, FailureCategory, ProcessOutcome
from docmill.processors.formats.html_text import decode_markup, visible_text
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


def _spine(opf: ET.Element, base: str) -> list[str]:
    """The zip member of each spine item, in reading order."""
    manifest = {
        item.get("id", ""): posixpath.normpath(
            posixpath.join(base, unquote(item.get("href", "").split("#")[0]))
        )
        for item in opf.iter(f"{OPF}item")
    }
    spine = opf.find(f"{OPF}spine")
    refs = spine.iter(f"{OPF}itemref") if spine is not None else iter(())
    return [manifest[ref.get("idref", "")] for ref in refs if ref.get("idref", "") in manifest]


def _encrypted(pkg: Package) -> set[str]:
    root = pkg.optional_xml("META-INF/encryption.xml")
    refs = root.iter(_CIPHER) if root is not None else iter(())
    return {posixpath.normpath(unquote(ref.get("URI", "")).lstrip("/")) for ref in refs}


def extract_epub(path: str, request: ExtractRequest) -> ProcessOutcome:
    """One text entry per chapter (spine item); title, author, language... in metadata."""
    started = time.perf_counter()
    try:
        with open_package(path) as pkg:
            opf_path = _package_path(pkg)
            opf = pkg.xml(opf_path)
            meta = _metadata(opf)
            chapters = _spine(opf, posixpath.dirname(opf_path))
            locked = _encrypted(pkg).intersection(chapters)
            if locked:
                raise FormatError(
                    FailureCategory.ENCRYPTED,
                    f"the book is encrypted (DRM): {len(locked)} chapter(s) listed in META-INF/encryption.xml",
                )
            limit = min(len(chapters), request.max_pages) if request.max_pages else len(chapters)
            text: list[str] = []
            missing: list[str] = []
            for member in chapters[:limit]:
                if not pkg.has(member):
                    missing.append(member)  # one missing chapter must not cost the others
                    text.append("")
                    continue
                text.append(visible_text(decode_markup(pkg.read(member))[0])[0])
    except FormatError as exc:
        return exc.outcome()
    if not chapters:
        return ProcessOutcome.failure(FailureCategory.EMPTY, "the book's spine lists no chapters")
    meta["missing_chapters"] = missing
    return ProcessOutcome(
        status=DocState.DONE,
        mime=EPUB,
        pages=len(chapters),
        text=text,
        metadata=meta,
        parse_s=time.perf_counter() - started,
    )
