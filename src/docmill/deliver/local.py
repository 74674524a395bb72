"""A local folder as a destination: a temporary name beside the target, fsync, rename.

The temporary name is ``.<name>.<tag>.docmill-tmp`` in the target's folder (same file
system, so the rename is atomic; ``tag`` is the item's, so two items never share one);
a crash leaves at most that file, which the item's retry truncates and reuses.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from docmill.deliver.destinations import DestinationContext
from docmill.deliver.errors import DeliveryCategory, DeliveryFailed
from docmill.settings.deliveries import TemplateError, check_key

CHUNK = 1 << 20


class LocalFolder:
    """One folder (see the module docstring)."""

    def __init__(self, context: DestinationContext) -> None:
        self.root = Path(os.path.abspath(context.root))
        self._secrets = context.secrets

    def _path(self, key: str) -> Path:
        try:
            check_key(key)
        except TemplateError as exc:
            raise DeliveryFailed(DeliveryCategory.NOT_ALLOWED, str(exc)) from None
        return self.root / key

    def _failed(self, exc: OSError, what: str) -> DeliveryFailed:
        category = DeliveryCategory.IO
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            category = DeliveryCategory.DENIED
        return DeliveryFailed(category, self._secrets.scrub(f"{what}: {exc.strerror or exc}"))

    def put(self, key: str, chunks: Iterator[bytes], size: int, sha256: str | None, tag: str) -> None:
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{tag or 'put'}.docmill-tmp")
        digest = hashlib.sha256()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                out.flush()
                os.fsync(out.fileno())
            if sha256 is not None and digest.hexdigest() != sha256:
                tmp.unlink(missing_ok=True)
                raise DeliveryFailed(
                    DeliveryCategory.CHANGED,
                    f"{key}: the source's bytes are no longer those of its record "
                    "(it changed after it was processed; the next run processes it again)",
                )
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._failed(exc, f"writing {key}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def holds(self, key: str, size: int, sha256: str | None) -> bool:
        path = self._path(key)
        try:
            if not path.is_file() or (size >= 0 and path.stat().st_size != size):
                return False
            if sha256 is None:
                return True
            with open(path, "rb") as handle:
                return hashlib.file_digest(handle, "sha256").hexdigest() == sha256
        except OSError as exc:
            raise self._failed(exc, f"reading {key}") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._failed(exc, f"removing {key}") from None

    def close(self) -> None:
        pass


def _fsync_dir(folder: Path) -> None:
    """The rename itself survives a power cut once the folder is synced."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
