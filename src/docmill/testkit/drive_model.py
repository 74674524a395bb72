"""What the Drive simulator serves: files, folders, shared drives and who may ask.

:class:`DriveData` holds the tree (thread-safe: the server's loop and a test's thread
both use it) and answers what the API would: a ``q`` query evaluated
(:func:`parse_query`: ``'ID' in parents``, ``trashed``, ``mimeType``, ``name`` with
``=``/``!=``/``contains``, ``and``/``or``/``not``, parentheses), a ``fields`` mask
applied (:func:`parse_fields`, :func:`project`), a Google-native file exported (Docs,
Slides and Drawings as PDF, Sheets as XLSX or CSV), a service-account JWT checked
against the account's public key (:meth:`DriveData.exchange_jwt`), refresh tokens and
plain bearer tokens. IDs are deterministic for a seed, shaped like Google's.

The write side, as the API's ``files.create`` and ``files.update`` change the tree:
:meth:`DriveData.create` (a folder, or a file with its bytes, ``appProperties``),
:meth:`DriveData.modify` (new bytes, a name, ``appProperties`` merged, ``trashed``,
``addParents``/``removeParents`` with Drive's one-parent rule) and resumable upload
sessions (:class:`UploadSession`: bytes persisted so far, the metadata they complete).
``q`` reads ``appProperties has { key='K' and value='V' }`` (and ``properties``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import string
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from docmill.testkit.labelled import make_pdf

FOLDER = "application/vnd.google-apps.folder"
DOC = "application/vnd.google-apps.document"
SHEET = "application/vnd.google-apps.spreadsheet"
SLIDES = "application/vnd.google-apps.presentation"
DRAWING = "application/vnd.google-apps.drawing"
FORM = "application/vnd.google-apps.form"
SHORTCUT = "application/vnd.google-apps.shortcut"
PDF = "application/pdf"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv"
TEXT = "text/plain"
NATIVE_KINDS = {"document": DOC, "spreadsheet": SHEET, "presentation": SLIDES, "drawing": DRAWING,
                "form": FORM}
EXPORT_FORMATS = {  # what each native type exports to (a subset of Google's list)
    DOC: (PDF, TEXT), SHEET: (XLSX, CSV, PDF), SLIDES: (PDF, TEXT), DRAWING: (PDF,),
}
_ID_CHARS = string.ascii_letters + string.digits + "-_"


class QueryError(ValueError):
    """A ``q`` or ``fields`` the API would answer 400 ``invalid``."""


class WriteError(ValueError):
    """A write the API refuses: (status, reason, message) as Google's error body says."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass
class Item:
    """A file, folder or shared drive's top folder."""

    id: str
    name: str
    mime: str
    parent: str  # "" for My Drive's root and a shared drive's top folder
    drive_id: str = ""  # "" = My Drive
    content: bytes = b""  # a binary file's bytes
    pages: tuple[str, ...] = ()  # a native file: pages (Docs, Slides) or tab-separated rows (Sheets)
    version: int = 1
    modified: float = field(default_factory=time.time)
    trashed: bool = False
    md5: str = ""
    created: float = 0.0  # set by DriveData: strictly increasing, so "the oldest" is one item
    app_properties: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def native(self) -> bool:
        return self.mime.startswith("application/vnd.google-apps.")

    def resource(self) -> dict[str, Any]:
        """The full ``files`` resource, as the API's ``fields=*`` would give it."""
        out: dict[str, Any] = {
            "kind": "drive#file", "id": self.id, "name": self.name, "mimeType": self.mime,
            "trashed": self.trashed, "version": str(self.version),
            "modifiedTime": _stamp(self.modified), "createdTime": _stamp(self.created or self.modified),
        }
        if self.parent:
            out["parents"] = [self.parent]
        if self.drive_id:
            out["driveId"] = self.drive_id
        if self.app_properties:
            out["appProperties"] = dict(self.app_properties)
        if self.properties:
            out["properties"] = dict(self.properties)
        if not self.native:
            out["size"] = str(len(self.content))
            out["md5Checksum"] = self.md5
            out["sha256Checksum"] = hashlib.sha256(self.content).hexdigest()
        elif self.mime != FOLDER:
            out["size"] = str(sum(len(p) for p in self.pages))  # the editor's storage, not an export
        return out


def _stamp(epoch: float) -> str:
    """RFC 3339 with milliseconds, as Drive writes times."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- q ----------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|(!=|<=|>=|=|<|>|\(|\)|\{|\})|([A-Za-z_][A-Za-z0-9_.]*))")
Predicate = Callable[[Item], bool]


def _tokens(q: str) -> list[tuple[str, str]]:
    out, at = [], 0
    while at < len(q):
        if q[at:].strip() == "":
            break
        found = _TOKEN.match(q, at)
        if found is None or found.end() == at:
            raise QueryError(f"cannot read q at {at}")
        at = found.end()
        if found.group(1) is not None:
            out.append(("str", re.sub(r"\\(.)", r"\1", found.group(1)[1:-1])))
        elif found.group(2) is not None:
            out.append(("op", found.group(2)))
        else:
            out.append(("word", found.group(3)))
    return out


def parse_query(q: str) -> tuple[Predicate, set[str] | None]:
    """(the predicate, the parent ids the query is confined to, if every match must have
    one of them: the listing's fast path)."""
    tokens = _tokens(q)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise QueryError("q ends too early")
        pos += 1
        return tokens[pos - 1]

    def value() -> Any:
        kind, text = take()
        if kind == "str":
            return text
        if kind == "word" and text in ("true", "false"):
            return text == "true"
        raise QueryError(f"expected a value, got {text!r}")

    def has(field_name: str) -> tuple[Predicate, set[str] | None]:
        """``appProperties has { key='K' and value='V' }`` (Drive's only form)."""
        if take() != ("word", "has") or take() != ("op", "{"):
            raise QueryError(f"expected {field_name} has {{ key='…' and value='…' }}")
        wanted: dict[str, str] = {}
        for i, part in enumerate(("key", "value")):
            if i and take() != ("word", "and"):
                raise QueryError("expected and between key and value")
            if take() != ("word", part) or take() != ("op", "="):
                raise QueryError(f"expected {part} = '…'")
            kind, text = take()
            if kind != "str":
                raise QueryError(f"expected a quoted {part}")
            wanted[part] = text
        if take() != ("op", "}"):
            raise QueryError("missing }")
        key, val = wanted["key"], wanted["value"]
        if field_name == "appProperties":
            return (lambda item: item.app_properties.get(key) == val), None
        return (lambda item: item.properties.get(key) == val), None

    def term() -> tuple[Predicate, set[str] | None]:
        kind, text = take()
        if (kind, text) == ("op", "("):
            found = expr()
            if take() != ("op", ")"):
                raise QueryError("missing )")
            return found
        if (kind, text) == ("word", "not"):
            inner, _ = term()
            return (lambda item: not inner(item)), None
        if kind == "str":
            if take() != ("word", "in") or take() != ("word", "parents"):
                raise QueryError("expected 'ID' in parents")
            parent = text
            return (lambda item: item.parent == parent), {parent}
        if kind == "word" and text in ("appProperties", "properties"):
            return has(text)
        if kind != "word" or text not in ("name", "mimeType", "trashed", "fullText"):
            raise QueryError(f"unknown field {text!r}")
        op = take()
        wanted = value()
        get: Callable[[Item], Any] = {
            "name": lambda i: i.name, "mimeType": lambda i: i.mime,
            "trashed": lambda i: i.trashed, "fullText": lambda i: " ".join((i.name, *i.pages)),
        }[text]
        if op == ("op", "="):
            return (lambda item: get(item) == wanted), None
        if op == ("op", "!="):
            return (lambda item: get(item) != wanted), None
        if op == ("word", "contains") and isinstance(wanted, str):
            if text == "name":  # Drive matches a name's prefix only
                return (lambda item: item.name.lower().startswith(wanted.lower())), None
            return (lambda item: wanted.lower() in str(get(item)).lower()), None
        raise QueryError(f"unsupported operator {op[1]!r} for {text}")

    def conj() -> tuple[Predicate, set[str] | None]:
        parts = [term()]
        while peek() == ("word", "and"):
            take()
            parts.append(term())
        preds = [p for p, _ in parts]
        confined = [c for _, c in parts if c is not None]
        parents = set.intersection(*confined) if confined else None
        return (lambda item: all(p(item) for p in preds)), parents

    def expr() -> tuple[Predicate, set[str] | None]:
        parts = [conj()]
        while peek() == ("word", "or"):
            take()
            parts.append(conj())
        preds = [p for p, _ in parts]
        confined = [c for _, c in parts]
        parents = None if any(c is None for c in confined) else set().union(*confined)  # type: ignore[arg-type]
        return (lambda item: any(p(item) for p in preds)), parents

    if not tokens:
        return (lambda item: True), None
    found = expr()
    if pos != len(tokens):
        raise QueryError(f"unexpected {tokens[pos][1]!r}")
    return found


# --- fields ---------------------------------------------------------------------------

Mask = dict[str, Any]  # name -> None (whole) or a nested mask


def parse_fields(text: str) -> Mask | None:
    """``nextPageToken,files(id,name)`` as a nested mask; None for ``*``."""
    text = text.replace(" ", "")
    if text in ("", "*"):
        return None
    mask: Mask = {}
    at = 0

    def read(until: str) -> Mask:
        nonlocal at
        out: Mask = {}
        while at < len(text) and text[at] != until:
            start = at
            while at < len(text) and text[at] not in ",()":
                at += 1
            name = text[start:at]
            if not name:
                raise QueryError("empty field name")
            if at < len(text) and text[at] == "(":
                at += 1
                out[name] = read(")")
                if at >= len(text) or text[at] != ")":
                    raise QueryError("missing ) in fields")
                at += 1
            else:
                out[name] = None
            if at < len(text) and text[at] == ",":
                at += 1
        return out

    mask = read("\0")
    return mask


def project(value: Any, mask: Mask | None) -> Any:
    """``value`` keeping only what ``mask`` names (lists are projected item by item)."""
    if mask is None:
        return value
    if isinstance(value, list):
        return [project(v, mask) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for name, sub in mask.items():
        if name == "*":
            out.update(value)
        elif name in value:
            out[name] = project(value[name], sub)
    return out


# --- exports -----------------------------------------------------------------------------


def make_xlsx(rows: Sequence[Sequence[str]], sheet: str = "Sheet1") -> bytes:
    """A minimal valid XLSX: one sheet of inline-string cells."""

    def col(i: int) -> str:
        name = ""
        i += 1
        while i:
            i, r = divmod(i - 1, 26)
            name = chr(65 + r) + name
        return name

    cells = "".join(
        f'<row r="{r + 1}">'
        + "".join(
            f'<c r="{col(c)}{r + 1}" t="inlineStr"><is><t xml:space="preserve">{escape(v)}</t></is></c>'
            for c, v in enumerate(row)
        )
        + "</row>"
        for r, row in enumerate(rows)
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>"
        ),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}">'
            f'<sheets><sheet name="{escape(sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{main}"><sheetData>{cells}</sheetData></worksheet>'
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return out.getvalue()


def export(item: Item, mime: str) -> bytes:
    """``item`` (native) in the format ``mime``."""
    if item.mime == SHEET:
        rows = [line.split("\t") for line in item.pages]
        if mime == XLSX:
            return make_xlsx(rows, item.name[:31] or "Sheet1")
        if mime == CSV:
            return "".join(",".join(r) + "\r\n" for r in rows).encode()
        return make_pdf(["\n".join(item.pages) or " "])
    if mime == TEXT:
        return "\n\n".join(item.pages).encode("utf-8")
    return make_pdf(list(item.pages) or [" "])


# --- credentials -----------------------------------------------------------------------


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _merged(current: dict[str, str], changes: dict[str, Any] | None) -> dict[str, str]:
    """``appProperties`` after an update: keys set, a key given None removed."""
    out = dict(current)
    for key, value in (changes or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[str(key)] = str(value)
    return out


@dataclass
class UploadSession:
    """A resumable upload: the bytes persisted so far, and what they complete."""

    id: str  # the session URI's upload_id
    user: str
    metadata: dict[str, Any]  # name, mimeType, parents, appProperties of the file to be
    file_id: str  # "" a new file; else the file whose bytes it replaces
    total: int  # the length announced (-1: told with the last chunk)
    params: dict[str, str]  # the request's query (fields, supportsAllDrives)
    data: bytearray = field(default_factory=bytearray)
    done: str = ""  # the file's id once its last byte arrived


@dataclass
class Grant:
    """An access token the token endpoint issued (or one registered as is)."""

    principal: str
    expires_at: float  # time.monotonic(); inf: never


class DriveData:
    """The simulated account's files and its credentials (see the module docstring)."""

    def __init__(self, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self._rng = random.Random(seed)
        self.items: dict[str, Item] = {}
        self.children: dict[str, list[str]] = {}
        self.drives: dict[str, str] = {}  # shared drive id -> name
        self.my_drive = self._new_id()
        self.items[self.my_drive] = Item(self.my_drive, "My Drive", FOLDER, "")
        self.service_accounts: dict[str, tuple[str, Any]] = {}  # email -> (key id, public key)
        self.oauth_users: dict[str, tuple[str, str, str]] = {}  # refresh token -> (client id, secret, who)
        self.grants: dict[str, Grant] = {}
        self.sessions: dict[str, UploadSession] = {}  # resumable uploads by upload_id
        self._last_created = 0.0

    # --- ids and the tree ---------------------------------------------------------------

    def _new_id(self, prefix: str = "1", length: int = 33) -> str:
        return prefix + "".join(self._rng.choice(_ID_CHARS) for _ in range(length - len(prefix)))

    def _add(self, item: Item) -> str:
        with self.lock:
            self._last_created = item.created = max(time.time(), self._last_created + 0.001)
            self.items[item.id] = item
            self.children.setdefault(item.parent, []).append(item.id)
        return item.id

    def _parent(self, parent: str) -> tuple[str, str]:
        """(parent id, its drive id); ``parent`` "" or "root" is My Drive's root."""
        if parent in ("", "root"):
            return self.my_drive, ""
        found = self.items.get(parent)
        if found is None or found.mime != FOLDER:
            raise KeyError(f"no folder {parent}")
        return found.id, found.drive_id

    def add_shared_drive(self, name: str) -> str:
        """A shared drive; its id is also the id of its top folder."""
        with self.lock:
            drive = self._new_id("0A", 19)
            self.drives[drive] = name
            self.items[drive] = Item(drive, name, FOLDER, "", drive_id=drive)
        return drive

    def add_folder(self, name: str, parent: str = "root") -> str:
        with self.lock:
            pid, drive = self._parent(parent)
            return self._add(Item(self._new_id(), name, FOLDER, pid, drive_id=drive))

    def add_file(self, name: str, content: bytes, parent: str = "root",
                 mime: str = "application/octet-stream") -> str:
        with self.lock:
            pid, drive = self._parent(parent)
            item = Item(self._new_id(), name, mime, pid, drive_id=drive, content=content,
                        md5=hashlib.md5(content, usedforsecurity=False).hexdigest())
            return self._add(item)

    def add_native(self, name: str, kind: str, pages: Iterable[str], parent: str = "root") -> str:
        """A Google-native file (``kind``: document, spreadsheet — pages are tab-separated
        rows —, presentation, drawing, form)."""
        with self.lock:
            pid, drive = self._parent(parent)
            return self._add(Item(self._new_id(), name, NATIVE_KINDS[kind], pid, drive_id=drive,
                                  pages=tuple(pages)))

    def add_shortcut(self, name: str, target: str, parent: str = "root") -> str:
        with self.lock:
            pid, drive = self._parent(parent)
            return self._add(Item(self._new_id(), name, SHORTCUT, pid, drive_id=drive,
                                  pages=(target,)))

    def update(self, file_id: str, *, content: bytes | None = None,
               pages: Iterable[str] | None = None, name: str | None = None) -> None:
        """A change, as an edit or an upload of a new version makes it."""
        with self.lock:
            item = self.items[file_id]
            if content is not None:
                item.content = content
                item.md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
            if pages is not None:
                item.pages = tuple(pages)
            if name is not None:
                item.name = name
            item.version += 1
            item.modified = max(time.time(), item.modified + 0.001)

    # --- the API's writes -----------------------------------------------------------

    def create(self, name: str, mime: str, parent: str, *, content: bytes | None = None,
               app_properties: dict[str, str] | None = None,
               properties: dict[str, str] | None = None) -> Item:
        """``files.create``: a folder (``mime`` FOLDER) or a file with ``content`` in the
        folder ``parent`` ("root": My Drive). Raises WriteError as the API would."""
        with self.lock:
            try:
                pid, drive = self._parent(parent)
            except KeyError:
                raise WriteError(404, "notFound", f"File not found: {parent}.") from None
            data = b"" if content is None or mime == FOLDER else content
            item = Item(self._new_id(), name, mime, pid, drive_id=drive, content=data,
                        md5="" if mime == FOLDER else hashlib.md5(data, usedforsecurity=False).hexdigest(),
                        app_properties=_merged({}, app_properties),
                        properties=_merged({}, properties))
            self._add(item)
            return item

    def modify(self, file_id: str, *, content: bytes | None = None, name: str | None = None,
               app_properties: dict[str, Any] | None = None, trashed: bool | None = None,
               add_parents: Sequence[str] = (), remove_parents: Sequence[str] = ()) -> Item:
        """``files.update``: new bytes, a new name, ``appProperties`` merged (a key set
        to None is removed), trashed or not, and a move (``addParents`` /
        ``removeParents``: an item keeps exactly one parent, as Drive now enforces)."""
        with self.lock:
            item = self.items.get(file_id)
            if item is None:
                raise WriteError(404, "notFound", f"File not found: {file_id}.")
            parents = {item.parent} - set(remove_parents)
            new_parent = ""
            for wanted in add_parents:
                try:
                    pid, drive = self._parent(wanted)
                except KeyError:
                    raise WriteError(404, "notFound", f"File not found: {wanted}.") from None
                parents.add(pid)
                new_parent = pid
            if len(parents) > 1:
                raise WriteError(403, "cannotAddParent", "Increasing the number of parents is "
                                 "not allowed. A file can only have one parent.")
            if not parents:
                raise WriteError(403, "cannotRemoveParent", "A file must keep a parent.")
            if new_parent and new_parent != item.parent:
                self.children[item.parent].remove(item.id)
                self.children.setdefault(new_parent, []).append(item.id)
                item.parent, item.drive_id = new_parent, drive
            if content is not None and item.mime != FOLDER and not item.native:
                item.content = content
                item.md5 = hashlib.md5(content, usedforsecurity=False).hexdigest()
            if name is not None:
                item.name = name
            if app_properties is not None:
                item.app_properties = _merged(item.app_properties, app_properties)
            if trashed is not None:
                item.trashed = trashed
            item.version += 1
            item.modified = max(time.time(), item.modified + 0.001)
            return item

    def start_session(self, user: str, metadata: dict[str, Any], file_id: str, total: int,
                      params: dict[str, str]) -> UploadSession:
        """A resumable upload (``uploadType=resumable``): nothing exists until its last
        byte arrives."""
        with self.lock:
            session = UploadSession(self._new_id("AJ", 40), user, metadata, file_id, total, params)
            self.sessions[session.id] = session
            return session

    def walk(self, folder_id: str) -> list[tuple[str, Item]]:
        """Every item below ``folder_id`` that is not trashed, as (path below it, item);
        a folder's path ends in ``/``. Two items of one name are two entries."""
        out: list[tuple[str, Item]] = []
        with self.lock:
            stack = [(self.my_drive if folder_id == "root" else folder_id, "")]
            while stack:
                parent, path = stack.pop()
                for child in self.children.get(parent, ()):
                    item = self.items[child]
                    if item.trashed:
                        continue
                    if item.mime == FOLDER:
                        out.append((f"{path}{item.name}/", item))
                        stack.append((item.id, f"{path}{item.name}/"))
                    else:
                        out.append((path + item.name, item))
        return sorted(out, key=lambda pair: (pair[0], pair[1].created))

    def trash(self, file_id: str) -> None:
        with self.lock:
            self.items[file_id].trashed = True
            self.items[file_id].version += 1

    def get(self, file_id: str) -> Item | None:
        with self.lock:
            return self.items.get(self.my_drive if file_id == "root" else file_id)

    def matching(self, q: str, *, shared: bool, drive_id: str = "") -> list[Item]:
        """Items a query matches, in a stable order (``shared``: include shared drives'
        items; ``drive_id``: only that drive's). Raises QueryError."""
        predicate, parents = parse_query(q)
        with self.lock:
            if parents is not None:
                ids = [i for p in sorted(parents) for i in self.children.get(p, ())]
            else:
                ids = list(self.items)
            found = []
            for file_id in ids:
                item = self.items[file_id]
                if file_id == self.my_drive or file_id in self.drives:
                    continue
                if item.drive_id and not shared:
                    continue
                if drive_id and item.drive_id != drive_id:
                    continue
                if predicate(item):
                    found.append(item)
            return found

    # --- credentials ----------------------------------------------------------------------

    def add_service_account(self, email: str, token_uri: str) -> dict[str, Any]:
        """A new service account whose key the token endpoint will accept: the key file's
        JSON, as the Cloud console gives it (a fresh RSA key)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        key_id = self._new_id("", 40).lower()
        with self.lock:
            self.service_accounts[email] = (key_id, key.public_key())
        return {
            "type": "service_account", "project_id": "docmill-sim", "private_key_id": key_id,
            "private_key": pem, "client_email": email, "client_id": str(self._rng.getrandbits(64)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": token_uri,
        }

    def add_authorized_user(self, who: str = "user@example.com") -> dict[str, str]:
        """An OAuth client and a refresh token: the authorized-user file's JSON."""
        info = {
            "type": "authorized_user",
            "client_id": f"{self._rng.getrandbits(40)}-sim.apps.googleusercontent.com",
            "client_secret": "GOCSPX-" + self._new_id("", 28),
            "refresh_token": "1//" + self._new_id("", 60),
        }
        with self.lock:
            self.oauth_users[info["refresh_token"]] = (info["client_id"], info["client_secret"], who)
        return info

    def add_access_token(self, principal: str = "user@example.com") -> str:
        """A bearer token accepted as is (as ``gcloud auth print-access-token`` gives)."""
        token = "ya29.sim-static-" + self._new_id("", 48)
        with self.lock:
            self.grants[token] = Grant(principal, float("inf"))
        return token

    def issue(self, principal: str, ttl_s: float) -> tuple[str, float]:
        token = "ya29.sim-" + self._new_id("", 64)
        with self.lock:
            self.grants[token] = Grant(principal, time.monotonic() + ttl_s)
        return token, ttl_s

    def exchange_jwt(self, assertion: str, token_url: str, now_epoch: float) -> str:
        """The service account a signed assertion proves (else ValueError saying why, as
        the endpoint's ``error_description``)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head64, claims64, sig64 = assertion.split(".")
            header = json.loads(_b64url_decode(head64))
            claims = json.loads(_b64url_decode(claims64))
            signature = _b64url_decode(sig64)
        except ValueError:
            raise ValueError("Invalid JWT: not a JSON Web Token.") from None
        if header.get("alg") != "RS256":
            raise ValueError("Invalid JWT: alg must be RS256.")
        with self.lock:
            account = self.service_accounts.get(str(claims.get("iss")))
        if account is None:
            raise ValueError("Invalid grant: account not found")
        key_id, public = account
        if header.get("kid") not in (None, key_id):
            raise ValueError("Invalid JWT Signature.")
        try:
            public.verify(signature, f"{head64}.{claims64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ValueError("Invalid JWT Signature.") from None
        if claims.get("aud") != token_url:
            raise ValueError("Invalid JWT: aud must be the token endpoint.")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or exp < iat:
            raise ValueError("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                             "reasonable timeframe. Check your iat and exp values in the JWT claim.")
        if exp < now_epoch - 30 or iat > now_epoch + 300:
            raise ValueError("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                             "reasonable timeframe. Check your iat and exp values in the JWT claim.")
        scope = str(claims.get("scope", ""))
        if "auth/drive" not in scope:
            raise ValueError("Invalid OAuth scope or ID token audience provided.")
        return str(claims.get("sub") or claims["iss"])

    def exchange_refresh(self, client_id: str, client_secret: str, refresh_token: str) -> str:
        with self.lock:
            user = self.oauth_users.get(refresh_token)
        if user is None:
            raise ValueError("Token has been expired or revoked.")
        if (client_id, client_secret) != user[:2]:
            raise ValueError("Unauthorized")
        return user[2]

    def principal(self, bearer: str) -> str | None:
        """Who a bearer token stands for (None: unknown or expired)."""
        with self.lock:
            grant = self.grants.get(bearer)
        if grant is None or grant.expires_at <= time.monotonic():
            return None
        return grant.principal
