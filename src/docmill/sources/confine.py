"""Confinement (``sources.confine_to_root``): a file is read only where it resolves
inside one of the run's roots.

A run's roots are the real paths (symlinks resolved) of its SOURCE arguments: a folder
is its own root, a file's root is its folder, ``@list.txt``'s root is the list's folder.

Three places ask, each for its own reason:

* enumeration (:mod:`docmill.sources.discover`) asks :meth:`Roots.escapes` of symlinks
  only: a walk that goes down through real folders from inside a root cannot leave it,
  so a plain entry costs nothing more. A link that leads out is listed (unstatted, size
  0) so that its document ends ``failed`` (``not_allowed``) instead of vanishing, and a
  linked folder that leads out is never walked.
* the hashing threads and the worker open every file with :meth:`Roots.open` right before
  reading it. A file swapped for a symlink after enumeration (time of check to time of
  use) is caught there: the path is resolved again, checked, then opened one component
  at a time from ``/`` with ``O_NOFOLLOW``, so a folder or the file replaced by a symlink
  between that check and the open makes the open fail instead of following the link.
  What is read is the open descriptor (:func:`fd_path`), never the name again.

Hard links cannot be told from the file they link to; a root must not hold hard links
an attacker made to files outside it (they need write access to the root and the same
file system, and the file's own permissions still apply).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class NotAllowed(Exception):
    """A file that leaves the run's roots, or is not a regular file: it is not read.

    The message says why without naming where a link leads."""


def root_of(source: str) -> str:
    """The real path of a SOURCE argument's root: a folder itself, a file's folder,
    ``@list.txt``'s folder."""
    if source.startswith("@"):
        return os.path.realpath(os.path.dirname(os.path.abspath(source[1:])))
    path = os.path.abspath(source)
    if os.path.isdir(path):
        return os.path.realpath(path)
    return os.path.realpath(os.path.dirname(path))


@dataclass(frozen=True, slots=True)
class Roots:
    """The real paths a confined run's files must resolve inside."""

    real: tuple[str, ...]

    @classmethod
    def of_sources(cls, sources: Iterable[str]) -> Roots:
        return cls(tuple(dict.fromkeys(root_of(s) for s in sources)))

    def contains(self, real_path: str) -> bool:
        """``real_path`` (already resolved) is one of the roots or inside one."""
        for root in self.real:
            prefix = root if root.endswith(os.sep) else root + os.sep
            if real_path == root or real_path.startswith(prefix):
                return True
        return False

    def escapes(self, path: str) -> bool:
        """``path``, symlinks and ``..`` resolved, is outside every root."""
        return not self.contains(os.path.realpath(path))

    def open(self, path: str) -> tuple[int, str]:
        """A read-only descriptor of the regular file ``path`` resolves to, inside a root,
        and that real path.

        Raises :class:`NotAllowed` when it resolves outside, when a component turned into
        a symlink after it was resolved, or when it is not a regular file; ``OSError`` when
        it cannot be opened (vanished, no permission). The caller closes the descriptor.
        """
        real = os.path.realpath(path)
        if not self.contains(real):
            raise NotAllowed(
                "the file leads outside the source's folder (a symlink or ..): not read"
            )
        names = [n for n in real.split(os.sep) if n]
        if not names:
            raise NotAllowed("not a regular file: not read")
        folder = os.open(os.sep, _DIR_FLAGS)
        try:
            for name in names[:-1]:
                inner = os.open(name, _DIR_FLAGS, dir_fd=folder)
                os.close(folder)
                folder = inner
            fd = os.open(names[-1], _FILE_FLAGS, dir_fd=folder)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise NotAllowed(
                    "the path changed while it was opened (a folder or the file became a"
                    " symlink): not read"
                ) from None
            raise
        finally:
            os.close(folder)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotAllowed("not a regular file: not read")
        except BaseException:
            os.close(fd)
            raise
        return fd, real


def fd_path(fd: int, fallback: str) -> str:
    """A path that opens the very file behind ``fd`` (this process's ``/proc`` entry, also
    usable by a child such as Tesseract); ``fallback`` where there is no ``/proc``."""
    path = f"/proc/{os.getpid()}/fd/{fd}"
    return path if os.path.exists(path) else fallback
