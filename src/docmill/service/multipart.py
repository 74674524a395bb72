"""A multipart body streamed straight into files, each counted as it arrives.

Starlette's form parser spools every file part whole (to memory, then to a temporary
file) before a route sees any of it, so a file's size cap could only be checked after
the bytes were on disk. Here each file part is written into the job's folder as it
streams in and refused the moment it passes ``max_file_bytes``: nothing past a cap is
written or held. Plain fields are kept in memory up to ``max_field_bytes`` each.

Disk work (the folder, each file's creation, its writes) happens in the thread pool, in
one call per ``FLUSH_BYTES`` that arrived: a one-page upload to ``POST /v1/extract``
costs one hop at its end, where a write per chunk and the folder and file made on the
event loop cost three or four, measurable CPU a request on a busy service.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from docmill.service.errors import ApiError
from docmill.service.uploads import safe_name, unique_path

FILE_FIELDS = ("files", "file")
FLUSH_BYTES = 256 * 1024  # file bytes held in memory before a write in the thread pool


@dataclass(frozen=True, slots=True)
class SavedFile:
    name: str  # the sanitised file name it was saved under
    path: Path
    size: int


@dataclass(slots=True)
class Form:
    files: list[SavedFile] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    name: str = ""
    file_name: str | None = None
    path: Path | None = None
    handle: IO[bytes] | None = None
    size: int = 0
    data: bytearray = field(default_factory=bytearray)


def _decode(raw: bytes, charset: str) -> str:
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1")


def _open_exclusive(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return os.fdopen(fd, "wb")


class _Reader:
    """The parser's callbacks: they only record what to do; ``read_form`` does it."""

    def __init__(
        self, folder: Path, charset: str, max_file_bytes: int, max_files: int,
        max_fields: int, max_field_bytes: int,
    ) -> None:
        self.folder = folder
        self.folder_made = False
        self.charset = charset
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.max_fields = max_fields
        self.max_field_bytes = max_field_bytes
        self.part = _Part()
        self.header_name = b""
        self.header_value = b""
        self.form = Form()
        self.opened: list[_Part] = []
        self.writes: list[tuple[_Part, bytes]] = []
        self.buffered = 0  # bytes in ``writes``
        self.finished: list[_Part] = []

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers.append((self.header_name.lower(), self.header_value))
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        disposition = next((v for k, v in self.part.headers if k == b"content-disposition"), b"")
        _kind, options = parse_options_header(disposition)
        if b"name" not in options:
            raise ApiError(422, "invalid_multipart", "a form part has no name")
        self.part.name = _decode(options[b"name"], self.charset)
        if b"filename" in options:
            if self.part.name not in FILE_FIELDS:
                raise ApiError(422, "unexpected_file", f"files go in the field 'files', not {self.part.name!r}")
            if len(self.form.files) + len(self.opened) >= self.max_files:
                raise ApiError(413, "too_many_files", f"at most {self.max_files} files",
                               {"limit": self.max_files})
            self.part.file_name = safe_name(_decode(options[b"filename"], self.charset))
            self.opened.append(self.part)  # created on disk by the next flush
        elif len(self.form.fields) >= self.max_fields:
            raise ApiError(413, "too_many_fields", f"at most {self.max_fields} form fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        size = end - start
        if part.file_name is None:
            if len(part.data) + size > self.max_field_bytes:
                raise ApiError(413, "field_too_large", f"the form field {part.name!r} is over "
                               f"{self.max_field_bytes:,} bytes", {"limit_bytes": self.max_field_bytes})
            part.data += data[start:end]
            return
        part.size += size
        if part.size > self.max_file_bytes:
            raise ApiError(413, "file_too_large", f"{part.file_name} is over the limit of "
                           f"{self.max_file_bytes:,} bytes", {"limit_bytes": self.max_file_bytes})
        self.writes.append((part, data[start:end]))
        self.buffered += size

    def on_part_end(self) -> None:
        part = self.part
        if part.file_name is None:
            self.form.fields[part.name] = _decode(bytes(part.data), self.charset)
        else:
            self.finished.append(part)

    def _create(self, part: _Part) -> IO[bytes]:
        """``part``'s file, made on its first write (or at its end when empty)."""
        if part.handle is None:
            assert part.file_name is not None
            if not self.folder_made:
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                self.folder_made = True
            part.path = unique_path(self.folder, part.file_name)
            part.handle = _open_exclusive(part.path)
        return part.handle

    def flush(self) -> None:
        """Write what arrived since the last flush (in a worker thread: disk I/O blocks)."""
        for part, data in self.writes:
            self._create(part).write(data)
        self.writes.clear()
        self.buffered = 0
        for part in self.finished:
            self._create(part).close()
            assert part.path is not None and part.file_name is not None
            part.handle = None
            self.opened.remove(part)
            self.form.files.append(SavedFile(part.file_name, part.path, part.size))
        self.finished.clear()

    def discard(self) -> None:
        """After a refusal: every file this request wrote is removed."""
        for part in self.opened:
            if part.handle is not None:
                part.handle.close()
        for path in [p.path for p in self.opened] + [f.path for f in self.form.files]:
            if path is not None:
                path.unlink(missing_ok=True)


async def read_form(
    request: Request,
    folder: Path,
    *,
    max_file_bytes: int,
    max_files: int,
    max_fields: int = 20,
    max_field_bytes: int = 64 * 1024,
) -> Form:
    """Stream ``request``'s multipart body: files (fields ``files`` or ``file``) into
    ``folder`` under sanitised, unique names, plain fields into memory. Every refusal is
    an :class:`ApiError` (413 past a cap, 422 for a malformed body), after which nothing
    this request wrote is left in ``folder``."""
    content_type = request.headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(422, "invalid_multipart", "send multipart/form-data with a boundary")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    reader = _Reader(folder, charset, max_file_bytes, max_files, max_fields, max_field_bytes)
    callbacks = {name: getattr(reader, name) for name in (
        "on_part_begin", "on_header_field", "on_header_value", "on_header_end",
        "on_headers_finished", "on_part_data", "on_part_end",
    )}
    parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if reader.buffered >= FLUSH_BYTES:
                await run_in_threadpool(reader.flush)
        parser.finalize()
        await run_in_threadpool(reader.flush)
        if reader.opened:
            raise ApiError(422, "invalid_multipart", "the body ended inside a file")
    except FormParserError:
        await run_in_threadpool(reader.discard)
        raise ApiError(422, "invalid_multipart", "the multipart body is malformed") from None
    except BaseException:
        await run_in_threadpool(reader.discard)
        raise
    return reader.form
