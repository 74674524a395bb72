"""The Drive simulator's write side: ``files.create``, ``files.update`` and uploads
(:class:`DriveWrites`, mixed into the simulator), and their wire forms, read as the
API reads them: the metadata of a create or update (one parent, ``appProperties`` of at
most 124 bytes a key and value); a ``multipart/related`` body (JSON, then the media); a
resumable upload's ``Content-Range`` (``bytes A-B/T``, ``bytes */T`` for a status
query, ``*`` while the length is unknown). A chunk of a resumable upload other than the
last is a multiple of :data:`UPLOAD_GRANULE` (256 KiB), as Google requires."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from docmill.testkit.drive_http import (
    DEFAULT_FILE_FIELDS,
    Request,
    Response,
    SimStats,
    error_response,
)
from docmill.testkit.drive_model import (
    FOLDER,
    DriveData,
    Item,
    UploadSession,
    WriteError,
    parse_fields,
    project,
)

if TYPE_CHECKING:
    from docmill.testkit.drive_sim import DriveSimConfig

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


class DriveWrites:
    """The simulator's write endpoints (a mixin of ``DriveSimulator``, whose state it
    uses: ``data``, ``config``, the counters, the release event of held uploads)."""

    data: DriveData
    config: DriveSimConfig
    _stats: SimStats
    _released: asyncio.Event | None
    _chunk_n: int

    @property
    def base_url(self) -> str:  # pragma: no cover - the simulator's own
        raise NotImplementedError

    def _resource(self, item: Item, params: Mapping[str, str]) -> Response:
        resource = item.resource()
        mask = parse_fields(params.get("fields", ""))
        if mask is None and "fields" not in params:
            resource = {k: resource[k] for k in DEFAULT_FILE_FIELDS}
        return Response(200, project(resource, mask))

    def _file(self, file_id: str, params: Mapping[str, str]) -> Item:
        """The item a write names: in a shared drive only with ``supportsAllDrives``."""
        item = self.data.get(file_id)
        if item is None or (item.drive_id and params.get("supportsAllDrives", "").lower() != "true"):
            raise WriteError(404, "notFound", f"File not found: {file_id}.")
        return item

    def _folder(self, folder_id: str, params: Mapping[str, str]) -> Item:
        item = self._file(folder_id, params)
        if item.mime != FOLDER:
            raise WriteError(403, "parentNotAFolder", f"The parent {folder_id} is not a folder.")
        return item

    async def _hold(self, moment: str) -> bool:
        """Wait here while ``hold_uploads`` is ``moment``, until released (True: it was
        held; a request held ``before`` is then dropped)."""
        if self.config.hold_uploads != moment or self._released is None or self._released.is_set():
            return False
        self._stats.held[moment] += 1
        await self._released.wait()
        return True

    def _new_file(self, meta: dict[str, Any], content: bytes | None, params: Mapping[str, str],
                  how: str) -> Item:
        parent = (meta.get("parents") or ["root"])[0]
        if parent != "root":
            self._folder(str(parent), params)
        mime = str(meta.get("mimeType") or "application/octet-stream")
        item = self.data.create(str(meta.get("name") or "Untitled"), mime, str(parent),
                                content=content, app_properties=meta.get("appProperties"),
                                properties=meta.get("properties"))
        self._stats.created["folder" if mime == FOLDER else how] += 1
        return item

    def _replace(self, file_id: str, meta: dict[str, Any], content: bytes,
                 params: Mapping[str, str]) -> Item:
        item = self._file(file_id, params)
        if item.mime == FOLDER or item.native:
            raise WriteError(403, "fileNotUploadable", "Only files with binary content take new bytes.")
        self._stats.replaced += 1
        return self.data.modify(file_id, content=content, name=meta.get("name"),
                                app_properties=meta.get("appProperties"))

    async def _write_metadata(self, request: Request, rest: list[str]) -> Response:
        """``files.create`` without media (a folder) and ``files.update`` of metadata."""
        params = request.query
        if request.method == "POST" and rest == ["files"]:
            self._stats.by_kind["create"] += 1
            return self._resource(self._new_file(file_metadata(request.body), None, params, "empty"), params)
        if request.method != "PATCH" or len(rest) != 2 or rest[0] != "files":
            return error_response(405, "methodNotAllowed", f"{request.method} {'/'.join(rest)} is not simulated.")
        self._stats.by_kind["update"] += 1
        meta = file_metadata(request.body)
        item = self._file(rest[1], params)
        add = [p for p in params.get("addParents", "").split(",") if p]
        remove = [p for p in params.get("removeParents", "").split(",") if p]
        for parent in add:
            self._folder(parent, params)
        trashed = meta.get("trashed")
        if trashed is not None and not isinstance(trashed, bool):
            raise WriteError(400, "invalid", "Invalid value for trashed")
        if add and await self._hold("before"):
            return Response(0, abort=True)
        changed = self.data.modify(item.id, name=meta.get("name"), app_properties=meta.get("appProperties"),
                                   trashed=trashed, add_parents=add, remove_parents=remove)
        if add:
            self._stats.moved += 1
            await self._hold("after")
        return self._resource(changed, params)

    async def _upload(self, request: Request, user: str, rest: str) -> Response:
        """``/upload/drive/v3/files[/ID]``: a multipart upload, a resumable session's
        start, or one of its chunks (``upload_id``)."""
        params = request.query
        if "upload_id" in params:
            return await self._chunk(request, params)
        file_id = rest.strip("/")
        if request.method != ("PATCH" if file_id else "POST"):
            return error_response(405, "methodNotAllowed", f"{request.method} is not simulated here.")
        kind = params.get("uploadType", "")
        if kind == "multipart":
            self._stats.by_kind["upload"] += 1
            meta, content = parse_multipart(request.headers.get("content-type", ""), request.body)
            if await self._hold("before"):
                return Response(0, abort=True)
            if file_id:
                item = self._replace(file_id, meta, content, params)
            else:
                item = self._new_file(meta, content, params, "multipart")
            await self._hold("after")
            return self._resource(item, params)
        if kind != "resumable":
            return error_response(400, "invalid", f"Invalid value for uploadType: {kind!r}",
                          locationType="parameter", location="uploadType")
        self._stats.by_kind["session"] += 1
        meta = file_metadata(request.body)
        if file_id:
            self._file(file_id, params)
        elif (meta.get("parents") or ["root"])[0] != "root":
            self._folder(str(meta["parents"][0]), params)
        try:
            total = int(request.headers.get("x-upload-content-length", "") or -1)
        except ValueError:
            raise WriteError(400, "badRequest", "Invalid X-Upload-Content-Length") from None
        kept: dict[str, str] = {k: params[k] for k in ("fields", "supportsAllDrives") if k in params}
        session = self.data.start_session(user, meta, file_id, total, kept)
        self._stats.sessions += 1
        where = f"/{file_id}" if file_id else ""
        location = f"{self.base_url}/upload/drive/v3/files{where}?uploadType=resumable&upload_id={session.id}"
        return Response(200, body=b"", headers={"Location": location})

    async def _chunk(self, request: Request, params: Mapping[str, str]) -> Response:
        session = self.data.sessions.get(params.get("upload_id", ""))
        if session is None:
            return error_response(404, "notFound", "The upload session was not found or has expired.")
        if request.method == "DELETE":
            self.data.sessions.pop(session.id, None)
            return error_response(499, "clientClosedRequest", "Client Closed Request")
        if request.method != "PUT":
            return error_response(405, "methodNotAllowed", f"{request.method} to an upload session")
        self._stats.by_kind["chunk"] += 1
        if session.done:  # its last chunk arrived already (that answer may have been lost)
            done = self.data.get(session.done)
            assert done is not None
            return self._resource(done, session.params)
        first, last, total = parse_content_range(request.headers.get("content-range", ""))
        if total is not None:
            if session.total >= 0 and total != session.total:
                raise WriteError(400, "badRequest", "The total length differs from the one given before.")
            session.total = total
        have = len(session.data)
        if first is None or last is None:  # "bytes */T": what arrived?
            self._stats.status_queries += 1
            return self._incomplete(session)
        data = request.body
        if len(data) != last - first + 1:
            raise WriteError(400, "badRequest", "The body's length does not match Content-Range.")
        if first > have:
            raise WriteError(400, "badRequest", f"Invalid request. The chunk starts at {first}, "
                             f"past the {have} bytes received so far.")
        if session.total >= 0 and last + 1 > session.total:
            raise WriteError(400, "badRequest", "The chunk ends past the total length.")
        final = session.total >= 0 and last + 1 == session.total
        if not final and len(data) % UPLOAD_GRANULE:
            raise WriteError(400, "badRequest", "Invalid request. The number of bytes uploaded is "
                             f"required to be a multiple of {UPLOAD_GRANULE}, except for the final "
                             "request.")
        self._stats.chunks += 1
        self._chunk_n += 1
        new = data[have - first :]
        every = self.config.drop_upload_every
        if every and self._chunk_n % every == 0:
            session.data += new[: len(new) // 2 // UPLOAD_GRANULE * UPLOAD_GRANULE]
            self._stats.dropped_uploads += 1
            return Response(0, abort=True)
        if not final:
            session.data += new
            await self._hold("chunk")
            return self._incomplete(session)
        if await self._hold("before"):
            return Response(0, abort=True)
        content = bytes(session.data + new)
        if session.file_id:
            item = self._replace(session.file_id, session.metadata, content, session.params)
        else:
            item = self._new_file(session.metadata, content, session.params, "resumable")
        session.done, session.data = item.id, bytearray()
        await self._hold("after")
        return self._resource(item, session.params)

    def _incomplete(self, session: UploadSession) -> Response:
        """308 Resume Incomplete, with the bytes persisted so far (none: no Range)."""
        headers = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        return Response(308, body=b"", headers=headers)
