"""Lazy enumeration of source files.

A SOURCE is a file, a folder (walked recursively, filtered by include/exclude globs
relative to the folder), ``@list.txt`` (one path a line, relative paths resolved
against the list's folder) or a URL (``s3://bucket/prefix``, ``sftp://host/folder``...:
listed page by page by its store's backend, :mod:`docmill.sources.backend`, with the
same globs relative to the URL). Paths are yielded one at a time: a list of a million
files never sits in memory.

With ``sources.confine_to_root`` every file must resolve inside its SOURCE's root
(:mod:`docmill.sources.confine`): a symlink (or a list entry, or a file SOURCE) that
leads out is yielded without being followed (size 0), so the run records it ``failed``
(``not_allowed``) when it tries to open it, and a linked folder that leads out is never
walked. Only symlinks are resolved during a walk: one that descends through real
folders from inside a root cannot leave it.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from docmill.model import SourceFile
from docmill.settings import SourceSettings
from docmill.sources.confine import Roots
from docmill.sources.urls import UrlError, is_remote

if TYPE_CHECKING:
    from docmill.sources.backend import Backends


class SourceError(ValueError):
    """A SOURCE argument that names nothing usable (a run-level usage error)."""


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        if fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(name, pattern):
            return True
        # "**/" also matches zero folders: "**/*.pdf" matches "a.pdf"
        if pattern.startswith("**/") and fnmatch.fnmatchcase(rel, pattern[3:]):
            return True
    return False


def _selected(rel: str, options: SourceSettings) -> bool:
    """``rel`` passes the include and exclude globs."""
    if options.include and not _matches(rel, options.include):
        return False
    return not (options.exclude and _matches(rel, options.exclude))


def _stat_file(path: str, absolute: bool = False) -> SourceFile | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return SourceFile(path if absolute else os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _refused(path: str) -> SourceFile | None:
    """A path that leads outside the roots, listed without following it (its target's
    size is none of the run's business): opening it later fails ``not_allowed``."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return SourceFile(os.path.abspath(path), 0, st.st_mtime_ns)


def _checked_file(path: str, roots: Roots | None) -> SourceFile | None:
    """A file named directly (a SOURCE, a list entry), checked against ``roots``."""
    if roots is not None and roots.escapes(path):
        return _refused(path)
    return _stat_file(path)


def _walk(root: str, options: SourceSettings, roots: Roots | None = None) -> Iterator[SourceFile]:
    """Depth-first, sorted, streaming walk (``os.scandir``; one folder listed at a time).

    The walk starts from the absolute, normalised ``root``, so every entry's path is
    absolute and normalised as it comes, and its path relative to ``root`` is a slice.
    With ``roots`` (confinement) a symlink is resolved before it is followed; one that
    leads out is yielded unfollowed, whatever it points to.
    """
    if roots is not None and roots.escapes(root):
        found = _refused(root)
        if found is not None:
            yield found
        return
    root = os.path.abspath(root)
    prefix = len(root) if root.endswith(os.sep) else len(root) + 1
    stack = [root]
    seen: set[tuple[int, int]] = set()
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:  # symlink loops
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs: list[str] = []
        for entry in entries:
            try:
                if roots is not None and entry.is_symlink() and roots.escapes(entry.path):
                    rel = entry.path[prefix:].replace(os.sep, "/")
                    if _selected(rel, options):
                        found = _refused(entry.path)
                        if found is not None:
                            yield found
                    continue
                if entry.is_dir(follow_symlinks=options.follow_symlinks):
                    subdirs.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=True):  # a link to a file is that file
                    continue
            except OSError:
                continue
            rel = entry.path[prefix:].replace(os.sep, "/")
            if not _selected(rel, options):
                continue
            found = _stat_file(entry.path, absolute=True)
            if found is not None:
                yield found
        stack.extend(reversed(subdirs))


def _from_list(
    list_path: str, options: SourceSettings, roots: Roots | None
) -> Iterator[SourceFile]:
    base = os.path.dirname(os.path.abspath(list_path))
    try:
        handle = open(list_path, encoding="utf-8")  # noqa: SIM115 - streamed line by line
    except OSError as exc:
        raise SourceError(f"cannot read source list {list_path}: {exc.strerror}") from None
    with handle:
        for line in handle:
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            path = entry if os.path.isabs(entry) else os.path.join(base, entry)
            if os.path.isdir(path):
                yield from _walk(path, options, roots)
            else:
                found = _checked_file(path, roots)
                if found is not None:
                    yield found


def local_sources(sources: Sequence[str]) -> list[str]:
    """The SOURCEs that are paths or ``@list.txt`` (not URLs)."""
    return [s for s in sources if not is_remote(s)]


def check_sources(sources: Sequence[str], backends: Backends | None = None) -> None:
    """Fail early, with what to do next, when a SOURCE names nothing (a path that does
    not exist; a URL with an unknown scheme, a secret in it, or whose backend is not
    installed). URLs are checked without any request."""
    if not sources:
        raise SourceError("no SOURCE given: name files, folders, @list.txt or URLs")
    for source in sources:
        if is_remote(source):
            if backends is None:
                from docmill.sources.backend import Backends

                backends = Backends.load(SourceSettings())
            try:
                backends.check(source)
            except UrlError as exc:
                raise SourceError(str(exc)) from None
            continue
        path = source[1:] if source.startswith("@") else source
        if not os.path.exists(path):
            raise SourceError(f"source not found: {path} (check the path, or use @list.txt)")


def _remote(source: str, options: SourceSettings, backends: Backends) -> Iterator[SourceFile]:
    """A URL SOURCE's objects, page by page from its store."""
    from docmill.sources.backend import BackendError
    from docmill.sources.throttle import TransientError
    from docmill.sources.urls import parse

    try:
        url = parse(source)
        backend, _retrier = backends.for_url(source)
        for obj in backend.list(url, lambda rel: _selected(rel, options)):
            yield SourceFile(obj.url, obj.size, obj.mtime_ns, obj.version)
    except (BackendError, TransientError, UrlError) as exc:
        raise SourceError(f"cannot list {source}: {exc}") from None


def iter_sources(
    sources: Sequence[str], options: SourceSettings, backends: Backends | None = None
) -> Iterator[SourceFile]:
    """Yield every file named by ``sources``, lazily, in a stable order (a URL SOURCE
    needs ``backends``)."""
    local = local_sources(sources)
    roots = Roots.of_sources(local) if options.confine_to_root and local else None
    for source in sources:
        if is_remote(source):
            if backends is None:
                raise SourceError(f"{source}: remote sources are read by `docmill run`")
            yield from _remote(source, options, backends)
        elif source.startswith("@"):
            yield from _from_list(source[1:], options, roots)
        elif os.path.isdir(source):
            yield from _walk(source, options, roots)
        else:
            found = _checked_file(source, roots)
            if found is not None:
                yield found
