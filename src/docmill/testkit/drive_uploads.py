"""The wire forms of Drive's uploads, as the simulator reads them (pure): the metadata
of a create or update, checked as the API checks it (one parent, ``appProperties`` of
at most 124 bytes a key and value); a ``multipart/related`` body (JSON, then the
media); a resumable upload's ``Content-Range`` (``bytes A-B/T``, ``bytes */T`` for a
status query, ``*`` while the length is unknown). A chunk of a resumable upload other
than the last is a multiple of :data:`UPLOAD_GRANULE` (256 KiB), as Google requires."""

from __future__ import annotations

import json
import re
from typing import Any

from docmill.testkit.drive_model import WriteError

UPLOAD_GRANULE = 256 * 1024  # a resumable upload's chunks (but the last) are multiples of this
PROPERTY_MAX = 124  # bytes of key + value of one appProperty


def file_metadata(body: bytes) -> dict[str, Any]:
    """The JSON metadata of a create or update (name, mimeType, parents, appProperties),
    checked as the API checks it (WriteError otherwise)."""
    if not body.strip():
        return {}
    try:
        meta = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WriteError(400, "parseError", "Parse Error") from None
    if not isinstance(meta, dict):
        raise WriteError(400, "parseError", "Parse Error")
    parents = meta.get("parents")
    if parents is not None and (not isinstance(parents, list) or len(parents) > 1):
        raise WriteError(403, "cannotAddParent", "Increasing the number of parents is not "
                         "allowed. A file can only have one parent.")
    for name in ("appProperties", "properties"):
        props = meta.get(name)
        if props is None:
            continue
        if not isinstance(props, dict):
            raise WriteError(400, "invalid", f"Invalid value for {name}")
        for key, value in props.items():
            if len(str(key).encode()) + len(str(value if value is not None else "").encode()) > PROPERTY_MAX:
                raise WriteError(400, "invalid", "The size of the property (key + value) "
                                 f"exceeds the limit of {PROPERTY_MAX} bytes: {key}")
    return meta


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """``uploadType=multipart``: (the metadata, the media) of a ``multipart/related``
    body of two parts, JSON first; the media part's ``Content-Type`` is the file's
    ``mimeType`` when the metadata gives none."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/related") or found is None:
        raise WriteError(400, "badContent", "Media type 'multipart/related' with a boundary "
                         f"is required, got {content_type[:60]!r}")
    delimiter = b"--" + found.group(1).encode("latin-1")
    pieces = body.split(delimiter)
    # preamble, the JSON part, the media part, "--" closing
    if len(pieces) < 4 or not pieces[-1].startswith(b"--"):
        raise WriteError(400, "badContent", "Malformed multipart body.")
    parts: list[tuple[str, bytes]] = []
    for piece in pieces[1:-1]:
        head, sep, content = piece.partition(b"\r\n\r\n")
        if not sep or not content.endswith(b"\r\n"):
            raise WriteError(400, "badContent", "Malformed multipart body.")
        typed = re.search(rb"(?im)^content-type:\s*([^\r\n;]+)", head)
        parts.append((typed.group(1).decode("latin-1").strip() if typed else "", content[:-2]))
    if len(parts) != 2:
        raise WriteError(400, "badContent", "A multipart upload has the metadata and the media.")
    meta = file_metadata(parts[0][1])
    if parts[1][0] and not meta.get("mimeType"):
        meta["mimeType"] = parts[1][0]
    return meta, parts[1][1]


def parse_content_range(header: str) -> tuple[int | None, int | None, int | None]:
    """(first, last, total) of ``bytes A-B/T``; ``bytes */T`` (a status query) has no
    first and last; ``*`` for T is None."""
    found = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", header.strip())
    if found is None:
        raise WriteError(400, "badRequest", "Failed to parse Content-Range header.")
    first = int(found.group(1)) if found.group(1) is not None else None
    last = int(found.group(2)) if found.group(2) is not None else None
    total = None if found.group(3) == "*" else int(found.group(3))
    if first is not None and last is not None and last < first:
        raise WriteError(400, "badRequest", "Failed to parse Content-Range header.")
    return first, last, total
