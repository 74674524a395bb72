"""``read_form``: a multipart body streamed into files, its disk work done in the thread
pool once per ``FLUSH_BYTES`` (the folder and each file made there, not on the event
loop); every byte kept, names unique, a refusal leaving nothing behind."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.types import Message

from docmill.service.errors import ApiError
from docmill.service.multipart import FLUSH_BYTES, Form, read_form

BOUNDARY = "testboundary42"
CHUNK = 64 * 1024


def _body(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def _read(body: bytes, folder: Path, **caps: int) -> Form:
    chunks = [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)]

    async def receive() -> Message:
        data = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": data, "more_body": bool(chunks)}

    scope = {
        "type": "http", "method": "POST", "path": "/v1/jobs",
        "headers": [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())],
    }
    limits = {"max_file_bytes": 10 << 20, "max_files": 10, **caps}
    return asyncio.run(read_form(Request(scope, receive), folder, **limits))


def test_every_byte_lands_in_its_file_names_unique_folder_private(tmp_path: Path) -> None:
    big = os.urandom(3 * FLUSH_BYTES + 12345)  # several flushes, a write across chunks
    folder = tmp_path / "tmp" / "req"  # not there yet: made with the first file
    form = _read(_body([
        ("settings", None, b'{"extract.tables": true}'),
        ("files", "big.pdf", big),
        ("files", "empty.pdf", b""),
        ("files", "same.pdf", b"one"),
        ("files", "same.pdf", b"two"),
        ("files", "../../etc/passwd", b"name only"),
    ]), folder)
    assert form.fields == {"settings": '{"extract.tables": true}'}
    assert [(f.name, f.size) for f in form.files] == [
        ("big.pdf", len(big)), ("empty.pdf", 0), ("same.pdf", 3), ("same.pdf", 3), ("passwd", 9),
    ]
    assert [f.path.name for f in form.files] == ["big.pdf", "empty.pdf", "same.pdf", "same-1.pdf", "passwd"]
    assert [f.path.read_bytes() for f in form.files] == [big, b"", b"one", b"two", b"name only"]
    assert all(f.path.parent == folder for f in form.files)
    assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0


def test_fields_alone_make_no_folder(tmp_path: Path) -> None:
    folder = tmp_path / "tmp" / "req"
    form = _read(_body([("settings", None, b"{}")]), folder)
    assert form.files == [] and form.fields == {"settings": "{}"}
    assert not folder.exists()


@pytest.mark.parametrize("size", [FLUSH_BYTES // 2, 3 * FLUSH_BYTES])
def test_a_file_over_its_cap_leaves_nothing(tmp_path: Path, size: int) -> None:
    """Refused at the byte that passes the cap, whether or not some of it was written."""
    folder = tmp_path / "req"
    body = _body([("files", "ok.pdf", b"fine"), ("files", "big.pdf", b"x" * (size + 1))])
    with pytest.raises(ApiError) as refused:
        _read(body, folder, max_file_bytes=size)
    assert refused.value.status == 413 and refused.value.code == "file_too_large"
    assert not folder.exists() or list(folder.iterdir()) == []
