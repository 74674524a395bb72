"""The Drive simulator for the gdrive:// tests: a tree builder that remembers each
file's expected document URL, credentials written as a user would keep them, and the
environment a run reads its settings from."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docmill.testkit.drive_sim import SimHandle
from docmill.testkit.labelled import make_pdf
from engine_kit import ROOT

EXT = {"document": ".pdf", "spreadsheet": ".xlsx", "presentation": ".pdf", "drawing": ".pdf"}


@dataclass
class Tree:
    """Files added under one SOURCE, with the URL docmill names each one by."""

    sim: SimHandle
    source: str  # the SOURCE URL
    top: str  # the id of the folder the SOURCE names
    urls: dict[str, str] = field(default_factory=dict)  # file id -> expected document URL
    data: dict[str, bytes] = field(default_factory=dict)  # binary file id -> bytes

    def folder(self, name: str, parent: str | None = None) -> str:
        return self.sim.data.add_folder(name, parent or self.top)

    def _url(self, file_id: str, name: str, path: str) -> str:
        folders = f"{path}/" if path else ""
        return f"{self.source}/{folders}{file_id}/{name}"

    def file(self, name: str, content: bytes, parent: str | None = None, path: str = "",
             mime: str = "application/octet-stream") -> str:
        file_id = self.sim.data.add_file(name, content, parent or self.top, mime)
        self.urls[file_id] = self._url(file_id, name, path)
        self.data[file_id] = content
        return file_id

    def pdf(self, name: str, text: str, parent: str | None = None, path: str = "") -> str:
        return self.file(name, make_pdf([text]), parent, path, "application/pdf")

    def native(self, name: str, kind: str, pages: list[str], parent: str | None = None,
               path: str = "") -> str:
        file_id = self.sim.data.add_native(name, kind, pages, parent or self.top)
        if kind in EXT:  # named with its export's extension, unless it ends with it
            ext = EXT[kind]
            shown = name if name.lower().endswith(ext) else name + ext
            self.urls[file_id] = self._url(file_id, shown, path)
        return file_id

    @property
    def expected(self) -> set[str]:
        return set(self.urls.values())


def write_key(folder: Path, info: dict[str, Any], name: str = "key.json") -> Path:
    """A credentials file as a user keeps it (mode 600)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(info, indent=2))
    path.chmod(0o600)
    return path


def drive_env(sim: SimHandle, credentials: Path | None = None, **more: str) -> dict[str, str]:
    """The environment of a run against ``sim``: its URLs and the credentials by reference
    as settings variables; no DOCMILL_* or Google variables of the machine's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOCMILL_", "GOOGLE_", "AWS_"))}
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        DOCMILL_SOURCES__GDRIVE_API_URL=sim.api_url,
        DOCMILL_SOURCES__GDRIVE_TOKEN_URL=sim.token_url,
    )
    if credentials is not None:
        env["DOCMILL_SOURCES__GDRIVE_CREDENTIALS"] = str(credentials)
    env.update(more)
    return env
