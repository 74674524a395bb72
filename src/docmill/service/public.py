"""What a key sees of the server's paths: nothing.

A job's ledger stores each document's absolute server path. Every output a key can read
(documents, records, exports in every format, events, a job's source and error, and so
the dashboard) names a document here, in one place:

* an uploaded (or downloaded) file by its name inside the job's upload folder;
* a folder job's file by its path relative to the allowed root (``service.allowed_roots``)
  it came from, "/"-separated;
* a store job's object (``service.allowed_sources``) by its path below the job's URL.

:func:`public_source` is that mapping, a pure function of the folder a job's names are
relative to (:attr:`PublicNames.bases`) and the stored path; a path not under it (never
expected) is named by its file name alone. Free text that may quote a server path (a
failure message, a job's error) has the same folders replaced, and the service's data
folder shown as ``<data_dir>``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from docmill.model import ErrorInfo, Record
from docmill.service.jobs import Job

DATA_DIR_MARK = "<data_dir>"


def _prefix(folder: str) -> str:
    return folder if folder.endswith("/") else folder + "/"


def public_source(bases: Iterable[str], stored: str) -> str:
    """``stored`` (a server path) as its owner sees it: its path below the first of
    ``bases`` that holds it, else its file name alone."""
    for base in bases:
        prefix = _prefix(base)
        if stored.startswith(prefix) and len(stored) > len(prefix):
            return stored[len(prefix):]
    return os.path.basename(stored.rstrip("/")) or "."


@dataclass(frozen=True, slots=True)
class PublicNames:
    """How one job's documents and messages are named to its owner."""

    # the folder names are relative to: as the job's sources store it first, then resolved
    bases: tuple[str, ...]
    hidden: tuple[tuple[str, str], ...]  # (server path, shown instead), longest first

    @property
    def skip(self) -> int:
        """Characters of a stored source before its public name (for searching names)."""
        return len(_prefix(self.bases[0])) if self.bases else 0

    def source(self, stored: str) -> str:
        return public_source(self.bases, stored)

    def text(self, text: str) -> str:
        """``text`` with every server path this job knows of replaced."""
        for path, shown in self.hidden:
            if path in text:
                text = text.replace(path, shown)
        return text

    def error(self, error: ErrorInfo | None) -> ErrorInfo | None:
        if error is None:
            return None
        message = self.text(error.message)
        return error if message == error.message else replace(error, message=message)

    def record(self, record: Record) -> Record:
        """``record`` with its source and error message public (content untouched)."""
        return replace(record, source=self.source(record.source), error=self.error(record.error))

    def folder(self, stored: str) -> str:
        """A folder job's folder: relative to its allowed root, ``.`` for the root itself."""
        for base in self.bases:
            if stored.rstrip("/") == base.rstrip("/"):
                return "."
        return self.source(stored)


def _variants(path: str | Path) -> list[str]:
    """``path`` as given (absolute) and resolved, without a trailing slash."""
    out = [os.path.abspath(path), os.path.realpath(path)]
    return [p.rstrip("/") or "/" for p in dict.fromkeys(out)]


def allowed_root_of(folder: str, allowed_roots: Iterable[str]) -> str | None:
    """The first allowed root (resolved) that holds ``folder``, as ``check_root`` chose it."""
    for root in allowed_roots:
        real = os.path.realpath(root)
        if folder == real or folder.startswith(_prefix(real)):
            return real
    return None


def names_for(
    job: Job, upload_dir: Path, data_dir: Path, allowed_roots: Iterable[str]
) -> PublicNames:
    """The public names of ``job``: relative to its upload folder, or for a folder job
    (``path``) to the allowed root its folder is under (its own folder when no allowed
    root holds it any more)."""
    if job.source_kind == "path" and job.sources:
        folder = job.sources[0]
        base = allowed_root_of(folder, allowed_roots) or folder
        bases = _variants(base)
    elif job.source_kind == "store" and job.sources:  # a store URL: names below it
        bases = [job.sources[0].rstrip("/")]
    else:
        bases = _variants(upload_dir)
    hidden: dict[str, str] = {}
    for base in bases if job.source_kind != "store" else ():  # a URL is no server path
        if base != "/":
            hidden[_prefix(base)] = ""
            hidden[base] = "."
    for path in _variants(data_dir):
        if path != "/":
            hidden.setdefault(path, DATA_DIR_MARK)
    ordered = tuple(sorted(hidden.items(), key=lambda item: len(item[0]), reverse=True))
    return PublicNames(tuple(bases), ordered)
