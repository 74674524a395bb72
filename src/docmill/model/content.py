"""A document's extracted content, encoded once, in the worker, and kept encoded.

The content is the part of a record that processors produce: ``text`` (one string per
page), ``metadata`` and whatever later processors add. It is one JSON object,
zlib-compressed, from the worker that made it, through the ledger, into the part files:
the driver never decodes or re-encodes it on the way. A JSON Lines record is the
record's own fields spliced with the content's JSON text (:func:`splice`).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

EMPTY_JSON = '{"text": [], "metadata": {}}'
_EMPTY_UTF8 = EMPTY_JSON.encode("utf-8")


def encode_content(text: list[str], metadata: dict[str, Any], **more: Any) -> bytes:
    """``{"text": ..., "metadata": ..., **more}`` as compressed UTF-8 JSON."""
    return encode_content_plain(text, metadata, **more)[0]


def encode_content_plain(
    text: list[str], metadata: dict[str, Any], **more: Any
) -> tuple[bytes, bytes]:
    """:func:`encode_content`, and the UTF-8 JSON it compressed."""
    data = {"text": text, "metadata": metadata, **more}
    plain = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return zlib.compress(plain, 1), plain


def content_json(blob: bytes | None) -> str:
    """The content's JSON text (an object with at least ``text`` and ``metadata``)."""
    return zlib.decompress(blob).decode("utf-8") if blob else EMPTY_JSON


def content_json_utf8(blob: bytes | None) -> bytes:
    """:func:`content_json` as UTF-8 bytes (never decoded to text)."""
    return zlib.decompress(blob) if blob else _EMPTY_UTF8


def decode_content(blob: bytes | None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(content_json(blob))
    data["text"] = list(data.get("text") or [])
    data["metadata"] = dict(data.get("metadata") or {})
    return data


def splice(head: dict[str, Any], blob: bytes | None) -> str:
    """One JSON object: ``head``'s keys, then the content's keys (no re-encoding)."""
    body = content_json(blob)
    start = json.dumps(head, ensure_ascii=False)
    if body == "{}":
        return start
    return start[:-1] + ", " + body[1:] if len(start) > 2 else body


def splice_utf8(head: dict[str, Any], blob: bytes | None, plain: bytes | None = None) -> bytes:
    """:func:`splice` as UTF-8 bytes, the content's never decoded to text on the way.

    ``plain``, when given, is ``blob`` decompressed (the caller knows it: it is not
    decompressed again)."""
    body = plain if plain is not None and blob else zlib.decompress(blob) if blob else _EMPTY_UTF8
    start = json.dumps(head, ensure_ascii=False).encode("utf-8")
    if body == b"{}":
        return start
    return start[:-1] + b", " + body[1:] if len(start) > 2 else body
