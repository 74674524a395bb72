"""The destination seam: where a delivery's bytes land, chosen by the root's URL scheme.

A destination serves one *root*: a local folder, or ``scheme://netloc/prefix/``. Keys are
relative to it (``2024/03/invoice-7.pdf``, ``part-000001.jsonl``), checked by
:func:`~docmill.settings.deliveries.check_key` (no empty, ``.`` or ``..`` segment), so a
key never leaves its root. A destination provides (:class:`Destination`):

* ``put(key, chunks, size, sha256, tag)``: store the bytes under ``key`` **atomically**:
  whole or not at all (a local folder writes a temporary name, fsyncs and renames; S3's
  PutObject and a completed multipart upload are whole). When ``sha256`` is given and the
  bytes do not match it, nothing is left under ``key`` and :class:`DeliveryFailed`
  (``changed``) is raised. ``tag`` is unique per item, for temporary names;
* ``holds(key, size, sha256)``: whether ``key`` already holds exactly these bytes (a
  retry after a crash between a copy and its ledger commit copies nothing again);
* ``delete(key)``: remove it (nothing there is fine);
* ``close()``.

Two more, optional, for a store that is also a SOURCE's (``files`` with ``mode =
"move"``; Drive has both):

* ``move_here(url, version, key, sha256, tag) -> bool``: move the source object ``url``
  (processed at change token ``version``) to ``key`` inside the store, without reading
  it (False: ``url`` is not in this store; the delivery copies and removes instead);
  safe to repeat, and ``changed`` when the object is no longer at ``version``;
* ``remove_source(url, version)``: remove a moved source named by its document URL
  (a store whose documents are not named by key: Drive names them by file id), unless
  it changed since ``version``; without it ``delete(key)`` removes the URL's path.

Each method is one attempt: a retryable failure raises
:class:`~docmill.sources.throttle.TransientError` (the delivery's retrier tries the item
again), a final one :class:`~docmill.deliver.errors.DeliveryFailed` with its category;
foreign errors are translated inside the destination, in one place, with messages
passed through ``context.secrets.scrub``.

A destination registers by scheme as the built-ins do: :data:`BUILTIN_DESTINATIONS`
maps ``"s3"`` to ``"docmill.deliver.s3:S3Destination"`` and ``"gdrive"`` to
``"docmill.deliver.gdrive:DriveDestination"``; a plugin declares the same form as an
entry point, ``[project.entry-points."docmill.destinations"] box =
"pkg.box:BoxDestination"`` (a built-in keeps its scheme). An unknown scheme is refused
at the run's start with the list of the known ones; a factory may offer
``check_root(store: RemoteUrl)`` (raising ``UrlError``), called then, before any request.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from docmill.settings import SettingsError, SourceSettings
from docmill.sources.backend import Secrets
from docmill.sources.urls import RemoteUrl, UrlError, is_remote, parse

__all__ = [
    "BUILTIN_DESTINATIONS",
    "Destination",
    "DestinationContext",
    "check_destination",
    "open_destination",
]

ENTRY_POINT_GROUP = "docmill.destinations"
LOCAL = "file"  # a root without a scheme (or file://) is a local folder

BUILTIN_DESTINATIONS: Mapping[str, str] = MappingProxyType(
    {
        LOCAL: "docmill.deliver.local:LocalFolder",
        "s3": "docmill.deliver.s3:S3Destination",
        "s3a": "docmill.deliver.s3:S3Destination",
        "gdrive": "docmill.deliver.gdrive:DriveDestination",
    }
)
_EXTRAS = {"s3": "s3", "s3a": "s3", "gdrive": "gdrive"}  # scheme -> the extra installing it


class Destination(Protocol):
    """What every destination provides (see the module docstring)."""

    def put(self, key: str, chunks: Iterator[bytes], size: int, sha256: str | None, tag: str) -> None: ...

    def holds(self, key: str, size: int, sha256: str | None) -> bool: ...

    def delete(self, key: str) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DestinationContext:
    """What a destination factory is given."""

    root: str  # as configured, ending in "/": a local folder or scheme://netloc/prefix/
    store: RemoteUrl | None  # the root parsed (None: a local folder)
    timeout_s: float  # per request
    secrets: Secrets  # values never to show
    options: SourceSettings = field(default_factory=SourceSettings)  # the run's store settings


DestinationFactory = Callable[[DestinationContext], Destination]


def _table() -> dict[str, str]:
    from importlib.metadata import entry_points

    table = {ep.name.lower(): ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    table.update(BUILTIN_DESTINATIONS)
    return table


def _scheme(root: str) -> str:
    if root.startswith("file://"):
        return LOCAL
    return parse(root).scheme if is_remote(root) else LOCAL


def _target(root: str, table: Mapping[str, str | DestinationFactory]) -> str | DestinationFactory:
    scheme = _scheme(root)
    if scheme not in table:
        known = ", ".join(f"{s}://" for s in sorted(table) if s != LOCAL)
        raise SettingsError(
            f"no destination for {scheme}:// ({root}); known: a local folder, {known}"
        )
    return table[scheme]


def check_destination(root: str, table: Mapping[str, str | DestinationFactory] | None = None) -> None:
    """A root a delivery can write to: its scheme has a destination that imports, and a
    URL holds no secret. Raises :class:`SettingsError` saying what to do (no request)."""
    try:
        if is_remote(root):
            parse(root)  # refuses a password or a credential in the URL
    except UrlError as exc:
        raise SettingsError(f"destination {root}: {exc}") from None
    target = _target(root, _table() if table is None else table)
    if isinstance(target, str):
        try:
            target = _load(target)
        except ImportError as exc:
            extra = _EXTRAS.get(_scheme(root))
            hint = f"; pip install 'docmill[{extra}]'" if extra else ""
            raise SettingsError(f"destination {root}: a package is missing ({exc}){hint}") from None
    check = getattr(target, "check_root", None)
    if check is not None and is_remote(root):
        try:
            check(parse(root))
        except UrlError as exc:
            raise SettingsError(f"destination {root}: {exc}") from None


def _load(target: str) -> DestinationFactory:
    module, _, attr = target.partition(":")
    factory: DestinationFactory = getattr(importlib.import_module(module), attr)
    return factory


def open_destination(
    root: str, *, secrets: Secrets, timeout_s: float, options: SourceSettings | None = None,
    table: Mapping[str, str | DestinationFactory] | None = None,
) -> Destination:
    """The destination serving ``root`` (checked first with :func:`check_destination`);
    ``options``: the run's ``sources`` settings (a store's endpoints and credentials)."""
    root = root if root.endswith("/") else root + "/"
    if root.startswith("file://"):
        root = root[len("file://") :]
    target = _target(root, _table() if table is None else table)
    factory = _load(target) if isinstance(target, str) else target
    store = parse(root) if is_remote(root) else None
    return factory(DestinationContext(root, store, timeout_s, secrets, options or SourceSettings()))
