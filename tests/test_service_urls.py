"""URL sources and DNS rebinding: the download connects to the address that passed the
check, never to what a second resolution answers (real HTTP and TLS servers on loopback,
a resolver injected into the check)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from docmill.service.errors import ApiError
from docmill.service.uploads import CheckedUrl, check_url, download, is_public
from service_kit import free_port

HOST = "rebind.docmill.test"  # resolvable by the injected resolver only
PUBLIC = "127.0.0.1"  # plays the public address the check passes
INTERNAL = "127.0.0.2"  # plays the internal address DNS answers afterwards


@dataclass
class Site:
    """A loopback HTTP(S) server that records what it was asked (path, Host, TLS name)."""

    body: bytes
    status: int = 200
    location: str | None = None
    seen: list[tuple[str, str]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            site.seen.append((self.path, self.headers.get("Host", "")))
            self.send_response(site.status)
            if site.location:
                self.send_header("Location", site.location)
            self.send_header("Content-Length", str(len(site.body)))
            self.end_headers()
            self.wfile.write(site.body)

        def log_message(self, *_args: object) -> None:
            return None

    return Handler


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[ThreadingHTTPServer] = []

    def start(address: str, port: int, site: Site, tls: ssl.SSLContext | None = None) -> Site:
        try:
            server = ThreadingHTTPServer((address, port), _handler(site))
        except OSError as exc:
            pytest.skip(f"cannot listen on {address}:{port}: {exc}")
        if tls is not None:
            def sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
                site.server_names.append(name)

            tls.sni_callback = sni  # type: ignore[assignment]
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return site

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class Rebinding:
    """A resolver whose first answer is ``first`` and every later one ``then``."""

    def __init__(self, first: str, then: str) -> None:
        self.first, self.then = first, then
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return [self.first if len(self.calls) == 1 else self.then]


def _only_public(address: str) -> bool:
    return address == PUBLIC


def _fetch(url: str, hosts: tuple[str, ...], resolver: Rebinding, dest: Path,
           verify: ssl.SSLContext | bool = True) -> Path:
    async def go() -> Path:
        checked = await check_url(url, hosts, resolve=resolver, address_ok=_only_public)
        assert checked.addresses == (PUBLIC,)
        # the host now resolves to the internal address: the download must not ask again
        assert await resolver(HOST, 0) == [INTERNAL]
        return await download(checked, dest, 1 << 20, verify=verify)

    return asyncio.run(go())


def test_the_download_connects_to_the_checked_address(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    public = serve(PUBLIC, port, Site(b"%PDF-1.4 public"))
    internal = serve(INTERNAL, port, Site(b"INTERNAL SECRET"))
    resolver = Rebinding(PUBLIC, INTERNAL)
    url = f"http://{HOST}:{port}/files/doc.pdf?x=1"
    path = _fetch(url, (HOST,), resolver, tmp_path)
    assert path.name == "doc.pdf" and path.read_bytes() == b"%PDF-1.4 public"
    assert public.seen == [("/files/doc.pdf?x=1", f"{HOST}:{port}")]  # the URL's Host
    assert internal.seen == []
    assert len(resolver.calls) == 2  # the check's, and the test's own second one
    # what a download that resolved the host again would have fetched
    assert httpx.get(f"http://{INTERNAL}:{port}/").content == b"INTERNAL SECRET"


def test_redirects_are_not_followed(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    internal = serve(INTERNAL, port, Site(b"INTERNAL SECRET"))
    serve(PUBLIC, port, Site(b"", status=302, location=f"http://{INTERNAL}:{port}/"))
    with pytest.raises(ApiError) as caught:
        _fetch(f"http://{HOST}:{port}/doc.pdf", (HOST,), Rebinding(PUBLIC, INTERNAL), tmp_path)
    assert caught.value.code == "source_unreachable" and "302" in caught.value.message
    assert internal.seen == [] and list(tmp_path.iterdir()) == []


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tls_files(tmp_path: Path) -> Path:
    """A test CA and a server certificate for HOST signed by it."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path / "tls"
    d.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=docmill test CA", cwd=d)
    _openssl("req", *ec, "-keyout", "site.key", "-out", "site.csr", "-subj", f"/CN={HOST}", cwd=d)
    (d / "ext.cnf").write_text(f"subjectAltName=DNS:{HOST}\n")
    _openssl("x509", "-req", "-in", "site.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "site.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d


def test_https_sends_the_host_as_tls_name_and_verifies_it(serve, tls_files: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(tls_files / "site.pem", tls_files / "site.key")
    client_tls = ssl.create_default_context(cafile=str(tls_files / "ca.pem"))
    port = free_port()
    site = serve(PUBLIC, port, Site(b"%PDF-1.4 over tls"), server_tls)
    dest = tmp_path / "in"
    dest.mkdir()
    path = _fetch(f"https://{HOST}:{port}/doc.pdf", (HOST,), Rebinding(PUBLIC, INTERNAL), dest,
                  client_tls)
    assert path.read_bytes() == b"%PDF-1.4 over tls"
    assert site.server_names == [HOST] and site.seen == [("/doc.pdf", f"{HOST}:{port}")]
    # the certificate is checked against the host, not the address connected to: another
    # name on the same address fails verification
    other = "other.docmill.test"

    async def wrong_name() -> None:
        checked = await check_url(f"https://{other}:{port}/doc.pdf", (other,),
                                  resolve=Rebinding(PUBLIC, INTERNAL), address_ok=_only_public)
        await download(checked, dest, 1 << 20, verify=client_tls)

    with pytest.raises(ApiError) as caught:
        asyncio.run(wrong_name())
    assert caught.value.code == "source_unreachable"
    assert site.server_names[-1] == other and len(site.seen) == 1


def test_check_url_resolves_once_and_refuses_any_internal_address() -> None:
    class Fixed:
        def __init__(self, answer: list[str]) -> None:
            self.answer = answer
            self.calls = 0

        async def __call__(self, host: str, port: int) -> list[str]:
            self.calls += 1
            return self.answer

    mixed = Fixed(["93.184.216.34", "10.1.2.3", "93.184.216.34"])
    with pytest.raises(ApiError) as caught:
        asyncio.run(check_url("https://docs.example.com/a.pdf", ("docs.example.com",), resolve=mixed))
    assert caught.value.status == 403 and caught.value.details == {"addresses": ["10.1.2.3"]}
    public = Fixed(["93.184.216.34", "93.184.216.34", "2606:2800:220:1::1"])
    checked = asyncio.run(check_url("https://DOCS.example.com/a.pdf", ("docs.example.com",), resolve=public))
    assert checked == CheckedUrl("https://DOCS.example.com/a.pdf", ("93.184.216.34", "2606:2800:220:1::1"))
    assert public.calls == mixed.calls == 1
    assert not is_public("not an address") and not is_public("::ffff:127.0.0.1")
