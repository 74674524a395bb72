"""A ``files`` destination's template values for one document (pure).

``relpath`` is the document's path below the SOURCE it came from: the longest SOURCE
folder (or URL prefix, or ``@list.txt``'s folder) that holds it; a document named by a
SOURCE of its own is its name alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from docmill.settings.deliveries import Template
from docmill.sources.urls import is_remote
from docmill.state.deliveries import DeliveryDoc


def source_prefixes(sources: Sequence[str]) -> list[str]:
    """The prefixes a document's relpath is cut from, longest first: a folder's absolute
    path, a URL (as a prefix), a list's folder; each ending in ``/``."""
    out: list[str] = []
    for source in sources:
        if is_remote(source):
            base = source
        elif source.startswith("@"):
            base = os.path.dirname(os.path.abspath(source[1:]))
        elif os.path.isdir(source):
            base = os.path.abspath(source)
        else:
            continue  # a file SOURCE: its relpath is its name
        out.append(base if base.endswith("/") else base + "/")
    return sorted(set(out), key=len, reverse=True)


def relpath(source: str, prefixes: Sequence[str]) -> str:
    for prefix in prefixes:
        if source.startswith(prefix) and len(source) > len(prefix):
            return source[len(prefix) :]
    return source.rstrip("/").rsplit("/", 1)[-1]


def template_values(template: Template, doc: DeliveryDoc, prefixes: Sequence[str]) -> dict[str, Any]:
    """Every field ``template`` uses, for ``doc`` (its content decoded only when a
    field needs it)."""
    record = doc.record
    rel = relpath(record.source, prefixes)
    name = rel.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    values: dict[str, Any] = {
        "name": name,
        "stem": stem,
        "ext": ext.lower(),
        "relpath": rel,
        "reldir": rel.rpartition("/")[0],
        "id": str(record.id),
        "status": str(record.status),
        "error.category": str(record.error.category) if record.error else None,
        "class.label": doc.label,
        "sha256": record.sha256,
        "date": datetime.fromtimestamp(doc.mtime_ns / 1e9, UTC),
        "processed": datetime.fromtimestamp(doc.finished_at, UTC),
    }
    wanted = [f for f in template.fields if f.startswith("fields.")]
    if wanted:
        found = record.decoded().get("fields") or {}
        for key in wanted:
            value = found.get(key[len("fields.") :]) if isinstance(found, dict) else None
            values[key] = None if isinstance(value, dict | list) else value
    return values
