"""Lazy enumeration of source files.

A SOURCE is a file, a folder (walked recursively, filtered by include/exclude globs
relative to the folder) or ``@list.txt`` (one path a line, relative paths resolved
against the list's folder). Paths are yielded one at a time: a list of a million
files never sits in memory.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence

from docmill.model import SourceFile
from docmill.settings import SourceSettings


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


def _stat_file(path: str, absolute: bool = False) -> SourceFile | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return SourceFile(path if absolute else os.path.abspath(path), st.st_size, st.st_mtime_ns)


def _walk(root: str, options: SourceSettings) -> Iterator[SourceFile]:
    """Depth-first, sorted, streaming walk (``os.scandir``; one folder listed at a time).

    The walk starts from the absolute, normalised ``root``, so every entry's path is
    absolute and normalised as it comes, and its path relative to ``root`` is a slice.
    """
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
                if entry.is_dir(follow_symlinks=options.follow_symlinks):
                    subdirs.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=True):  # a link to a file is that file
                    continue
            except OSError:
                continue
            rel = entry.path[prefix:].replace(os.sep, "/")
            if options.include and not _matches(rel, options.include):
                continue
            if options.exclude and _matches(rel, options.exclude):
                continue
            found = _stat_file(entry.path, absolute=True)
            if found is not None:
                yield found
        stack.extend(reversed(subdirs))


def _from_list(list_path: str, options: SourceSettings) -> Iterator[SourceFile]:
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
                yield from _walk(path, options)
            else:
                found = _stat_file(path)
                if found is not None:
                    yield found


def check_sources(sources: Sequence[str]) -> None:
    """Fail early, with what to do next, when a SOURCE names nothing."""
    if not sources:
        raise SourceError("no SOURCE given: name files, folders or @list.txt")
    for source in sources:
        path = source[1:] if source.startswith("@") else source
        if not os.path.exists(path):
            raise SourceError(f"source not found: {path} (check the path, or use @list.txt)")


def iter_sources(sources: Sequence[str], options: SourceSettings) -> Iterator[SourceFile]:
    """Yield every file named by ``sources``, lazily, in a stable order."""
    for source in sources:
        if source.startswith("@"):
            yield from _from_list(source[1:], options)
        elif os.path.isdir(source):
            yield from _walk(source, options)
        else:
            found = _stat_file(source)
            if found is not None:
                yield found
