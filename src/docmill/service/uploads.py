"""What a job may read: uploaded files (sanitised names; ``service/multipart.py`` streams
them in under their caps), folders under
``service.allowed_roots``, URLs on ``service.allowed_hosts`` that resolve to public
addresses only, downloaded from the very addresses that were checked (the host is
resolved once), and store URLs (``s3://``, ``sftp://``, ``gdrive://``…) at or below one
of ``service.allowed_sources`` (:func:`check_store_url`). Every refusal is an
:class:`ApiError`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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


def check_store_url(source: str, allowed_sources: tuple[str, ...]) -> str:
    """A store URL a job may read: no secret in it, no empty, ``.`` or ``..`` folder, and
    at or below one of ``allowed_sources`` (same scheme and store, the path below the
    allowed one on a ``/`` boundary: ``s3://acme-in/`` allows ``s3://acme-in/2024/`` and
    never ``s3://acme-inbox/``). 403 ``source_not_allowed`` naming it otherwise."""
    from docmill.sources.urls import UrlError, parse

    try:
        wanted = parse(source)
    except UrlError as exc:
        raise ApiError(422, "invalid_source", str(exc)) from None
    segments = wanted.path.split("/")
    if any(s in ("", ".", "..") for s in segments[:-1]) or segments[-1] in (".", ".."):
        raise ApiError(422, "invalid_source", f"{source}: an empty, '.' or '..' folder in the path")
    if not allowed_sources:
        raise ApiError(403, "source_not_allowed", "this server reads no store URLs (no service.allowed_sources)")
    for allowed in allowed_sources:
        try:
            root = parse(allowed)
        except UrlError:
            continue
        if (root.scheme, root.netloc.lower()) != (wanted.scheme, wanted.netloc.lower()):
            continue
        base = root.path.rstrip("/")
        if not base or wanted.path.rstrip("/") == base or wanted.path.startswith(base + "/"):
            return source
    raise ApiError(403, "source_not_allowed", f"{source} is not at or below an allowed source",
                   {"source": source})


def is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # not an address at all: not one to connect to
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
        or ip.is_reserved or ip.is_unspecified
    )


# (host, port) -> the addresses it resolves to, in the resolver's order
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """The system resolver (``getaddrinfo``), off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class CheckedUrl:
    """A URL source that passed :func:`check_url`, with the addresses its host had then:
    :func:`download` connects to those only and never resolves the host again, so a DNS
    answer that changes after the check (rebinding) cannot lead it to another address."""

    url: str
    addresses: tuple[str, ...]


async def check_url(
    url: str,
    allowed_hosts: tuple[str, ...],
    *,
    resolve: Resolver = system_resolve,
    address_ok: Callable[[str], bool] = is_public,
) -> CheckedUrl:
    """The URL's host is allowed and every address it resolves to (once, by ``resolve``)
    passes ``address_ok`` (public addresses only)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ApiError(422, "invalid_source", "a URL source must be http(s)://host/...")
    if host not in {h.lower() for h in allowed_hosts}:
        raise ApiError(403, "source_not_allowed", f"host {host} is not in service.allowed_hosts")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ApiError(422, "invalid_source", "the URL's port is not a number") from None
    try:
        resolved = await resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise ApiError(422, "source_unreachable", f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(resolved))
    internal = sorted(a for a in addresses if not address_ok(a))
    if internal or not addresses:
        raise ApiError(
            403, "source_not_allowed", f"{host} resolves to an internal address",
            {"addresses": internal},
        )
    return CheckedUrl(url, tuple(addresses))


async def download(
    source: CheckedUrl, dest_dir: Path, max_bytes: int, *, verify: ssl.SSLContext | bool = True
) -> Path:
    """Fetch ``source`` into ``dest_dir`` from the addresses it was checked with, in turn
    until one connects: the request goes to that address with the URL's ``Host`` header
    and, for https, the host as TLS server name (``sni_hostname``), so the certificate is
    still verified for the host. No redirects (one could lead inside), no proxies from the
    environment (a proxy would resolve the host again)."""
    url = source.url
    target = httpx.URL(url)
    name = safe_name(PurePosixPath(target.path).name or "download")
    dest = unique_path(dest_dir, name)
    headers = {"Host": target.netloc.decode("ascii")}
    https = target.scheme == "https"
    extensions = {"sni_hostname": target.raw_host.decode("ascii")} if https else {}
    size = 0
    try:
        async with httpx.AsyncClient(
            follow_redirects=False, timeout=30.0, trust_env=False, verify=verify
        ) as client:
            response = await _connect(client, target, source.addresses, headers, extensions)
            try:
                status = response.status_code
                if status != 200:
                    raise ApiError(422, "source_unreachable", f"{url} answered {status}")
                with open(dest, "xb") as handle:
                    async for chunk in response.aiter_bytes(CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise ApiError(
                                413, "file_too_large", f"{url} is over {max_bytes:,} bytes"
                            )
                        handle.write(chunk)
            finally:
                await response.aclose()
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise ApiError(422, "source_unreachable", f"cannot fetch {url}: {exc}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


async def _connect(
    client: httpx.AsyncClient,
    target: httpx.URL,
    addresses: tuple[str, ...],
    headers: dict[str, str],
    extensions: dict[str, str],
) -> httpx.Response:
    """The streamed response of the first of ``addresses`` that accepts a connection."""
    failure: httpx.HTTPError | None = None
    for address in addresses:
        request = client.build_request(
            "GET", target.copy_with(host=address), headers=headers, extensions=extensions
        )
        try:
            return await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            failure = exc
    raise failure or httpx.ConnectError("no address to connect to")
