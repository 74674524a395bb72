"""What a job may read: uploaded files (sanitised names; ``service/multipart.py`` streams
them in under their caps), folders under
``service.allowed_roots``, and URLs on ``service.allowed_hosts`` that resolve to public
addresses only. Every refusal is an :class:`ApiError`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx

from docmill.service.errors import ApiError

MB = 1024 * 1024
CHUNK = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_NAME = 120


def safe_name(raw: str | None) -> str:
    """A file name that is only a name: the last path component of ``raw`` (``/`` or ``\\``),
    control and unusual characters replaced, no leading dots, at most 120 characters."""
    base = re.split(r"[/\\]", raw or "")[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    if len(base) > MAX_NAME:
        stem, dot, suffix = base.rpartition(".")
        if dot and 0 < len(suffix) <= 10:
            base = stem[: MAX_NAME - len(suffix) - 1] + "." + suffix
        else:
            base = base[:MAX_NAME]
    return base or "file"


def unique_path(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name-1``, ``name-2`` ... before the suffix when it exists."""
    path = folder / name
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    n = 0
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


def check_root(source: str, allowed_roots: tuple[str, ...]) -> Path:
    """``source`` resolved (symlinks followed) and under one of the allowed roots."""
    if not allowed_roots:
        raise ApiError(403, "source_not_allowed", "this server takes uploads only (no service.allowed_roots)")
    try:
        path = Path(os.path.realpath(source))
        for root in allowed_roots:
            if path.is_relative_to(os.path.realpath(root)):
                if not path.exists():
                    raise ApiError(422, "source_missing", f"{source} does not exist")
                return path
    except (ValueError, OSError) as exc:  # a NUL byte, a name too long for the file system
        raise ApiError(422, "invalid_source", f"not a usable path: {exc}") from None
    raise ApiError(403, "source_not_allowed", f"{source} is not under an allowed root")


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified
    )


async def check_url(url: str, allowed_hosts: tuple[str, ...]) -> str:
    """The URL's host is allowed and every address it resolves to is public."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ApiError(422, "invalid_source", "a URL source must be http(s)://host/...")
    if host not in {h.lower() for h in allowed_hosts}:
        raise ApiError(403, "source_not_allowed", f"host {host} is not in service.allowed_hosts")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as exc:
        raise ApiError(422, "source_unreachable", f"cannot resolve {host}: {exc}") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    internal = [a for a in addresses if not is_public(a)]
    if internal or not addresses:
        raise ApiError(
            403, "source_not_allowed", f"{host} resolves to an internal address",
            {"addresses": internal},
        )
    return url


async def download(url: str, dest_dir: Path, max_bytes: int) -> Path:
    """Fetch ``url`` into ``dest_dir`` (no redirects: a redirect could lead inside)."""
    name = safe_name(PurePosixPath(urlsplit(url).path).name or "download")
    dest = unique_path(dest_dir, name)
    size = 0
    try:
        async with (
            httpx.AsyncClient(follow_redirects=False, timeout=30.0) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise ApiError(422, "source_unreachable", f"{url} answered {response.status_code}")
            with open(dest, "xb") as handle:
                async for chunk in response.aiter_bytes(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ApiError(413, "file_too_large", f"{url} is over {max_bytes:,} bytes")
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise ApiError(422, "source_unreachable", f"cannot fetch {url}: {exc}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest
