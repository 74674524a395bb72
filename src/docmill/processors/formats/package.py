"""Zip-based documents opened with care: decompressed sizes capped, DTDs refused.

A zip bomb is stopped while it inflates (a part past ``MAX_PART_BYTES``, or all parts
together past ``MAX_TOTAL_BYTES``, fail ``too_large``); an XML part that declares a DTD
fails ``corrupt`` before any entity is read, so no billion-laughs expansion and no
external entity ever happens. Everything is opened with ``with``: nothing stays open
after an extractor returns, however it ends.
"""

from __future__ import annotations

import errno
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote
from xml.parsers import expat

from docmill.model import FailureCategory, ProcessOutcome

MAX_PART_BYTES = 64 << 20  # one part, decompressed
MAX_TOTAL_BYTES = 256 << 20  # every part read from one document, decompressed
MAX_MEMBERS = 100_000
_CHUNK = 1 << 20

REL = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
OFFICE_DOCUMENT = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
)
R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_DC = "{http://purl.org/dc/elements/1.1/}"
_DCTERMS = "{http://purl.org/dc/terms/}"
_CP = "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}"
_CORE = {
    f"{_DC}title": "title",
    f"{_DC}creator": "author",
    f"{_DC}subject": "subject",
    f"{_CP}keywords": "keywords",
    f"{_DC}description": "description",
    f"{_DC}language": "language",
    f"{_CP}lastModifiedBy": "last_modified_by",
    f"{_DCTERMS}created": "created",
    f"{_DCTERMS}modified": "modified",
}


class FormatError(Exception):
    """A document this extractor cannot read; becomes a failure outcome, never escapes."""

    def __init__(self, category: FailureCategory, message: str) -> None:
        super().__init__(message)
        self.category = category

    def outcome(self) -> ProcessOutcome:
        return ProcessOutcome.failure(self.category, str(self)[:500])


class _NoDtdBuilder(ET.TreeBuilder):
    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise FormatError(
            FailureCategory.CORRUPT, "declares a DTD (refused: entities are never expanded)"
        )


# Strict Open XML (ISO/IEC 29500 Strict) names the same elements in other namespaces:
# http://purl.oclc.org/ooxml/wordprocessingml/main is the transitional
# http://schemas.openxmlformats.org/wordprocessingml/2006/main, and so on for every
# vocabulary and relationship type; they are read as the transitional ones.
_STRICT = re.compile(rb"http://purl\.oclc\.org/ooxml/([A-Za-z]+)/")


def transitional(data: bytes) -> bytes:
    """``data`` with Strict Open XML namespaces and relationship types rewritten to the
    transitional ones (a no-op, and no copy, for a transitional part)."""
    if b"purl.oclc.org/ooxml/" not in data:
        return data
    return _STRICT.sub(rb"http://schemas.openxmlformats.org/\1/2006/", data)


def parse_xml(data: bytes, name: str = "XML") -> ET.Element:
    """The element tree of ``data``; a DTD or malformed XML fails ``corrupt``."""
    data = transitional(data)
    parser = ET.XMLParser(target=_NoDtdBuilder())
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except FormatError as exc:
        raise FormatError(exc.category, f"{name} {exc}") from None
    except ET.ParseError as exc:
        raise FormatError(
            FailureCategory.CORRUPT, f"{name} is not well-formed XML ({exc})"
        ) from None
    return root


class _Dtd(Exception):
    pass


def _refuse_dtd(*_: object) -> None:
    raise _Dtd


def well_formed(data: bytes, name: str = "XML") -> None:
    """Fail like :func:`parse_xml` when ``data`` is not well-formed XML or declares a DTD,
    without building a tree: expat alone, in C, for a part that is checked and not read."""
    data = transitional(data)
    parser = expat.ParserCreate(namespace_separator="}")  # as ElementTree's: prefixes bound
    parser.StartDoctypeDeclHandler = _refuse_dtd
    try:
        parser.Parse(data, True)
    except (expat.ExpatError, _Dtd):
        parse_xml(data, name)  # the error a tree would have given


def local(tag: str) -> str:
    """``{namespace}name`` -> ``name``."""
    return tag.rpartition("}")[2]


def resolve(base_part: str, target: str) -> str:
    """A relationship target, relative to the part that names it, as a zip member name."""
    target = unquote(target.split("#", 1)[0])
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    return posixpath.normpath(posixpath.join(posixpath.dirname(base_part), target))


class Package:
    """The parts of one open zip, read under the size caps."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self._archive = archive
        self._names = set(archive.namelist())
        self._read = 0

    def has(self, name: str) -> bool:
        return name in self._names

    def read(self, name: str) -> bytes:
        """The decompressed bytes of part ``name`` (``corrupt`` if it is missing)."""
        if name not in self._names:
            raise FormatError(FailureCategory.CORRUPT, f"the part {name} is missing")
        info = self._archive.getinfo(name)
        if info.flag_bits & 0x1:
            raise FormatError(FailureCategory.ENCRYPTED, f"the part {name} is encrypted")
        limit = min(MAX_PART_BYTES, MAX_TOTAL_BYTES - self._read)
        if info.file_size > limit:
            raise _too_large(name, info.file_size)
        chunks: list[bytes] = []
        size = 0
        with self._archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                if size > limit:  # the header lied about the size: stop inflating now
                    raise _too_large(name, size)
                chunks.append(chunk)
        self._read += size
        return b"".join(chunks)

    def xml(self, name: str) -> ET.Element:
        return parse_xml(self.read(name), name)

    def optional_xml(self, name: str) -> ET.Element | None:
        return self.xml(name) if name in self._names else None

    def relationships(
        self, part: str, types: tuple[str, ...] = ()
    ) -> dict[str, tuple[str, str]]:
        """Relationship id -> (type, member name) for ``part`` ('' for the package).

        With ``types``, only the relationships a caller will look at may be returned:
        a part that names none of them (a sheet's tens of thousands of hyperlinks) is
        left unread, like any part docmill does not read (it is not parsed, so damage
        in it fails nothing)."""
        folder, base = posixpath.split(part)
        name = posixpath.join(folder, "_rels", f"{base}.rels")
        if name not in self._names:
            return {}
        data = transitional(self.read(name))
        spelled = data.find(b"&") < 0 or b"&#" not in data  # no character reference
        if types and spelled and not any(t.encode() in data for t in types):
            return {}
        rels = parse_xml(data, name)
        out: dict[str, tuple[str, str]] = {}
        for rel in rels.iter(REL):
            if rel.get("TargetMode") == "External":
                continue
            out[rel.get("Id", "")] = (rel.get("Type", ""), resolve(part, rel.get("Target", "")))
        return out

    def main_part(self, default: str) -> str:
        """The package's main document (its officeDocument relationship)."""
        for rel_type, target in self.relationships("").values():
            if rel_type == OFFICE_DOCUMENT and self.has(target):
                return target
        return default

    def core_properties(self) -> dict[str, Any]:
        """Title, author, dates... from ``docProps/core.xml`` (None where absent)."""
        meta: dict[str, Any] = dict.fromkeys(_CORE.values())
        root = self.optional_xml("docProps/core.xml")
        for child in root if root is not None else ():
            key = _CORE.get(child.tag)
            value = "".join(child.itertext()).strip()
            if key and value:
                meta[key] = value
        return meta


def _too_large(name: str, size: int) -> FormatError:
    return FormatError(
        FailureCategory.TOO_LARGE,
        f"the part {name} decompresses to {size:,} bytes or more (caps: {MAX_PART_BYTES:,} a part,"
        f" {MAX_TOTAL_BYTES:,} a document): refused as a possible zip bomb",
    )


@contextmanager
def open_package(path: str) -> Iterator[Package]:
    """The zip at ``path`` as a :class:`Package`; zip-level damage fails ``corrupt``."""
    try:
        archive = zipfile.ZipFile(path)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ValueError,
        EOFError,
        NotImplementedError,
    ) as exc:
        raise FormatError(FailureCategory.CORRUPT, f"not a readable zip ({exc})") from None
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: a seek to an offset the directory made up
            raise
        raise FormatError(FailureCategory.CORRUPT, f"not a readable zip ({exc})") from None
    with archive:
        if len(archive.infolist()) > MAX_MEMBERS:
            raise FormatError(FailureCategory.TOO_LARGE, f"over {MAX_MEMBERS:,} zip members")
        try:
            yield Package(archive)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
            raise FormatError(FailureCategory.CORRUPT, f"damaged zip data ({exc})") from None
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            raise FormatError(FailureCategory.CORRUPT, f"damaged zip data ({exc})") from None
        except NotImplementedError as exc:  # an unsupported compression method
            raise FormatError(FailureCategory.UNSUPPORTED, f"zip: {exc}") from None
        except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required"
            raise FormatError(FailureCategory.ENCRYPTED, f"zip: {exc}") from None
