"""The ``gdrive://`` URL forms: what a SOURCE names, and how a document is named.

A SOURCE is one of:

* ``gdrive://FOLDER_ID`` — a folder by its id (the last part of its web address,
  ``https://drive.google.com/drive/folders/FOLDER_ID``), in My Drive, a shared drive or
  shared with the account; ``gdrive://FILE_ID`` names one file the same way;
* ``gdrive://FOLDER_ID/sub/folder`` — a folder below it, by the names Drive shows;
* ``gdrive://root/path/to/folder`` — My Drive by path (``root`` is Drive's own alias);
* ``gdrive://shared/DRIVE_NAME/path/to/folder`` — a shared drive by its name, and a
  folder in it by path (``gdrive://shared/DRIVE_NAME`` is the whole drive).

Names are written as Drive shows them; a ``/`` inside one is written ``／`` (U+FF0F, as
rclone does), here and in document URLs.

A **document** is named ``SOURCE/<folders below it>/<file id>/<name>``: a child of its
SOURCE's URL (globs, deliveries and people read the folder path in it) that still holds
the file's id, so ``stat`` and ``read`` need no listing and no path lookup in a later
run, and two files of the same name in one folder (Drive allows it) stay two documents.
The id is always the second-to-last segment. A Google-native file's name gets its
export's extension (``Budget 2024`` → ``Budget 2024.xlsx``), so ``*.pdf``-style globs
and the spool's file name say what the bytes are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from docmill.sources.urls import RemoteUrl, UrlError

SHARED = "shared"
MY_DRIVE = "root"
_ID = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class SourceLocation:
    """Where a SOURCE starts: a file or folder id, or a shared drive by name; then
    folder names below it."""

    root_id: str = ""  # a file or folder id ("root": My Drive)
    shared_drive: str = ""  # a shared drive's name (when ``root_id`` is empty)
    path: tuple[str, ...] = ()

    def __str__(self) -> str:
        head = f"shared drive {self.shared_drive!r}" if self.shared_drive else self.root_id
        return "/".join([head, *self.path])


def drive_name(name: str) -> str:
    """A path segment back to the name Drive shows (``／`` was a ``/``)."""
    return name.replace("\uff0f", "/")


def path_name(name: str) -> str:
    """A Drive name as one URL path segment (a ``/`` in it becomes ``／``)."""
    cleaned = name.replace("/", "\uff0f").strip()
    return cleaned or "untitled"


def parse_source(url: RemoteUrl) -> SourceLocation:
    """What a ``gdrive://`` SOURCE names (see the module docstring); UrlError if none."""
    parts = tuple(drive_name(p) for p in url.path.split("/") if p)
    if url.netloc == SHARED:
        if not parts:
            raise UrlError(
                "gdrive://shared/ needs a shared drive's name: gdrive://shared/DRIVE_NAME/path"
            )
        return SourceLocation(shared_drive=parts[0], path=parts[1:])
    if not url.netloc or not _ID.match(url.netloc):
        raise UrlError(
            f"{url}: expected gdrive://FOLDER_ID[/path], gdrive://root/path (My Drive) or "
            "gdrive://shared/DRIVE_NAME[/path]"
        )
    return SourceLocation(root_id=url.netloc, path=parts)


def document_id(url: str) -> str:
    """The file id in a document URL (its second-to-last segment)."""
    segments = url.split("://", 1)[-1].rstrip("/").split("/")
    if len(segments) < 3 or not _ID.match(segments[-2]):
        raise UrlError(f"{url} is not a gdrive:// document URL (…/FILE_ID/NAME)")
    return segments[-2]


def with_extension(name: str, ext: str) -> str:
    """``name`` ending with ``ext`` (added unless it is there already)."""
    return name if name.lower().endswith(ext) else name + ext
