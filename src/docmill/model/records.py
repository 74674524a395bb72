"""Document states, failure categories and the values a worker returns.

A failure on one document is data (an :class:`ErrorInfo` in its outcome), never an
exception that ends the run.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from docmill.model.content import (
    decode_content,
    encode_content_plain,
    splice,
    splice_utf8,
)

# a sealed content's JSON up to this size travels uncompressed too (most documents'; a
# larger one is decompressed where needed: its CPU is small next to its extraction's)
PLAIN_MAX = 32 * 1024


class DocState(enum.StrEnum):
    """Where a document is in its life: pending -> running -> done | failed | skipped."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


TERMINAL_STATES = frozenset({DocState.DONE, DocState.FAILED, DocState.SKIPPED})


class FailureCategory(enum.StrEnum):
    """Why a document failed (or was skipped). Stable strings: users filter on them."""

    TIMEOUT = "timeout"  # killed at its wall-clock limit
    MEMORY = "memory"  # killed at its memory cap, or MemoryError inside the worker
    CRASH = "crash"  # the worker died (signal or abnormal exit)
    ENCRYPTED = "encrypted"  # needs a password we do not have
    CORRUPT = "corrupt"  # the parser rejected the file's structure
    EMPTY = "empty"  # zero bytes, or no pages
    TOO_LARGE = "too_large"  # over a configured size or page limit
    UNSUPPORTED = "unsupported"  # a type docmill does not process (skipped)
    IO = "io"  # unreadable or vanished file
    NOT_ALLOWED = "not_allowed"  # outside its source's folder (sources.confine_to_root): unread
    INVALID_OUTPUT = "invalid_output"  # an LLM answer that does not match its schema
    LLM = "llm"  # the LLM provider refused the request (a 4xx other than 429)
    ERROR = "error"  # any other exception in a processor

    @property
    def retryable(self) -> bool:
        """Failures that may not recur on another try (the rest are deterministic)."""
        return self in (FailureCategory.TIMEOUT, FailureCategory.MEMORY, FailureCategory.CRASH)


_STATES: dict[str, DocState] = {s.value: s for s in DocState}
_CATEGORIES: dict[str, FailureCategory] = {c.value: c for c in FailureCategory}


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A per-document failure: category, a human message, and the stage that failed."""

    category: FailureCategory
    message: str
    stage: str = "extract"

    def to_dict(self) -> dict[str, str]:
        return {"category": str(self.category), "message": self.message, "stage": self.stage}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorInfo:
        return cls(FailureCategory(data["category"]), str(data["message"]), str(data["stage"]))


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file found by enumeration: a local path, or a remote object's URL with the change
    token its store's listing gave (``version``: ETag, version id...; None for a local
    file, whose change is told by size and mtime)."""

    source: str
    size: int
    mtime_ns: int
    version: str | None = None


@dataclass(frozen=True, slots=True)
class PageRange:
    """A half-open range of zero-based page indexes ``[start, stop)``."""

    start: int
    stop: int

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


@dataclass(slots=True)
class ProcessOutcome:
    """What processing one document (or one page range of it) produced."""

    status: DocState
    mime: str | None = None
    pages: int | None = None  # pages in the document (not only in the range)
    text: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    error: ErrorInfo | None = None
    parse_s: float = 0.0
    needs_split: bool = False  # the document is over the split threshold: send ranges
    page_range: PageRange | None = None
    # more content keys beyond text and metadata: "tables", "text_source", "markdown"...
    extra: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None  # text, metadata and extra, encoded (see seal)
    # page images for the LLM stage (llm.input = "images"): (MIME type, bytes); passed to
    # the driver with the outcome, never sealed or stored
    images: list[tuple[str, bytes]] = field(default_factory=list)
    # the LLM stage's label and spend, kept in ledger columns for status and the budget
    label: str | None = None
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    # (content, its JSON) as seal() made them, for a small content: the driver writes the
    # JSON to the part files without decompressing it. Only while ``content`` is still
    # that object (see content_utf8): whoever replaces the content makes it stale.
    plain: tuple[bytes, bytes] | None = field(default=None, compare=False, repr=False)

    def seal(self) -> None:
        """Encode text, metadata and extra into ``content`` and drop text and extra
        (done once, in the worker, so the driver passes the bytes on as they are)."""
        if self.content is None and (self.text or self.metadata or self.extra):
            content, plain = encode_content_plain(self.text, self.metadata, **self.extra)
            self.content = content
            self.plain = (content, plain) if len(plain) <= PLAIN_MAX else None
            self.text = []
            self.extra = {}

    def content_utf8(self) -> bytes | None:
        """The JSON that ``content`` compresses, when known without decompressing it."""
        plain = self.plain
        return plain[1] if plain is not None and plain[0] is self.content else None

    def opened(self) -> ProcessOutcome:
        """A copy with ``text`` and ``metadata`` decoded from ``content``."""
        if self.content is None:
            return self
        data = decode_content(self.content)
        text, metadata = data.pop("text"), data.pop("metadata")
        return replace(self, text=text, metadata=metadata, extra=data, content=None, plain=None)

    def to_dict(self) -> dict[str, Any]:
        """Every stored field as plain values (images are transient: never stored). The
        content's nested values are shared, not deep-copied (``dataclasses.asdict`` spent
        ~13 ms copying one page's tables); only the outer containers are new."""
        o = self.opened()
        rng = o.page_range
        return {
            "status": str(self.status),
            "mime": o.mime,
            "pages": o.pages,
            "text": list(o.text),
            "metadata": dict(o.metadata),
            "error": self.error.to_dict() if self.error else None,
            "parse_s": o.parse_s,
            "needs_split": o.needs_split,
            "page_range": {"start": rng.start, "stop": rng.stop} if rng is not None else None,
            "extra": dict(o.extra),
            "label": o.label,
            "cost_usd": o.cost_usd,
            "tokens_in": o.tokens_in,
            "tokens_out": o.tokens_out,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessOutcome:
        """The outcome :meth:`to_dict` wrote, every field (a key missing from an older
        chunk takes its default)."""
        error = data.get("error")
        prange = data.get("page_range")
        return cls(
            status=DocState(data["status"]),
            mime=data.get("mime"),
            pages=data.get("pages"),
            text=list(data.get("text") or []),
            metadata=dict(data.get("metadata") or {}),
            extra=dict(data.get("extra") or {}),
            error=ErrorInfo.from_dict(error) if error else None,
            parse_s=float(data.get("parse_s") or 0.0),
            needs_split=bool(data.get("needs_split")),
            page_range=PageRange(**prange) if prange else None,
            label=data.get("label"),
            cost_usd=float(data.get("cost_usd") or 0.0),
            tokens_in=int(data.get("tokens_in") or 0),
            tokens_out=int(data.get("tokens_out") or 0),
        )

    def to_wire(self) -> tuple[Any, ...]:
        """Every field as plain values (strings for the enums, tuples for the small value
        objects): what a worker sends, far cheaper to pickle and unpickle than the
        dataclass with its enums. :meth:`from_wire` gives back an equal outcome."""
        err = self.error
        rng = self.page_range
        return (
            self.status.value,
            self.mime,
            self.pages,
            self.text,
            self.metadata,
            (err.category.value, err.message, err.stage) if err is not None else None,
            self.parse_s,
            self.needs_split,
            (rng.start, rng.stop) if rng is not None else None,
            self.extra,
            self.content,
            self.images,
            self.label,
            self.cost_usd,
            self.tokens_in,
            self.tokens_out,
            self.content_utf8(),
        )

    @classmethod
    def from_wire(cls, wire: tuple[Any, ...]) -> ProcessOutcome:
        """The outcome that :meth:`to_wire` flattened (an exception for anything else)."""
        (status, mime, pages, text, metadata, err, parse_s, needs_split, rng, extra,
         content, images, label, cost_usd, tokens_in, tokens_out, plain) = wire
        return cls(
            _STATES[status],
            mime,
            pages,
            text,
            metadata,
            ErrorInfo(_CATEGORIES[err[0]], err[1], err[2]) if err is not None else None,
            parse_s,
            needs_split,
            PageRange(rng[0], rng[1]) if rng is not None else None,
            extra,
            content,
            images,
            label,
            cost_usd,
            tokens_in,
            tokens_out,
            (content, plain) if plain is not None and content is not None else None,
        )

    @classmethod
    def failure(cls, category: FailureCategory, message: str, stage: str = "extract") -> ProcessOutcome:
        status = DocState.SKIPPED if category is FailureCategory.UNSUPPORTED else DocState.FAILED
        return cls(status=status, error=ErrorInfo(category, message, stage))


@dataclass(frozen=True, slots=True)
class Record:
    """One output record per source document, as written to the part files.

    ``content`` is the encoded text, metadata and other processor output
    (:mod:`docmill.model.content`); ``text`` and ``metadata`` decode it on access.
    """

    id: int
    source: str
    sha256: str | None
    size: int
    mime: str | None
    status: DocState
    error: ErrorInfo | None
    pages: int | None
    content: bytes | None
    timings: dict[str, float]
    attempts: int
    duplicate_of: int | None

    def decoded(self) -> dict[str, Any]:
        """The content as a dict (at least ``text`` and ``metadata``)."""
        return decode_content(self.content)

    @property
    def text(self) -> list[str]:
        return list(self.decoded()["text"])

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self.decoded()["metadata"])

    @property
    def label(self) -> str | None:
        """The LLM stage's label (``class.label``), None without one (decodes the content)."""
        found = self.decoded().get("class")
        return found.get("label") if isinstance(found, dict) else None

    @property
    def fields(self) -> dict[str, Any]:
        """The fields the LLM stage extracted ({} without them; decodes the content)."""
        found = self.decoded().get("fields")
        return dict(found) if isinstance(found, dict) else {}

    def _head(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "sha256": self.sha256,
            "size": self.size,
            "mime": self.mime,
            "status": str(self.status),
            "error": self.error.to_dict() if self.error else None,
            "pages": self.pages,
            "timings": self.timings,
            "attempts": self.attempts,
            "duplicate_of": self.duplicate_of,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self._head(), **self.decoded()}

    def json_line(self) -> str:
        """The record as one line of JSON, its content spliced in undecoded."""
        return splice(self._head(), self.content)

    def json_line_utf8(self, plain: bytes | None = None) -> bytes:
        """:meth:`json_line` encoded as UTF-8 (what a JSON Lines part file holds);
        ``plain``: the content's JSON when the caller has it (not decompressed again)."""
        return splice_utf8(self._head(), self.content, plain)
