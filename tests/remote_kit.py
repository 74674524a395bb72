"""Real stores on loopback for the remote-source tests.

* :class:`MotoS3`: moto's standalone S3 server (``ThreadedMotoServer``) on a free port,
  with a client for the test's own uploads (objects go in through moto's S3 API, or in
  bulk straight into its in-process backend).
* :class:`S3Proxy`: a small reverse proxy in front of it that counts requests by kind
  (list, head, get) and object, and injects faults on a schedule: 503 SlowDown, 429,
  and connections dropped halfway through a body.
* :class:`Sshd`: Debian's OpenSSH server on a free port, key auth only, with a
  temporary host key and an authorized key made here, running as the test user; the
  client side is an ``~/.ssh/config`` in a temporary HOME (so docmill finds the key,
  port and known host as ``ssh`` would).
"""

from __future__ import annotations

import http.client
import logging
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from engine_kit import ROOT, docmill_cmd

REGION = "us-east-1"
FAKE_KEY_ID = "AKIAFAKEFAKEFAKE0001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- S3 ---------------------------------------------------------------------------------


class MotoS3:
    """moto's S3 server in a thread of the test process."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        import boto3

        self.client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key="moto-does-not-check",
        )

    def bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def put_many(self, bucket: str, items: Iterator[tuple[str, bytes]]) -> int:
        """Objects straight into moto's in-process backend (no HTTP: 20,000 in seconds)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        n = 0
        for key, data in items:
            backend.put_object(bucket, key, data)
            n += 1
        return n

    def delete(self, bucket: str, key: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=key)

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Faults:
    """What the proxy does to the requests it forwards, by their number (from 1) among
    requests of the same kind: ``slowdown`` / ``too_many`` answer 503 SlowDown / 429
    (with ``Retry-After: retry_after``) for every n-th; ``drop_every`` sends half of
    every n-th GET's body and closes the connection."""

    slowdown_every: int = 0
    too_many_every: int = 0
    drop_every: int = 0
    # every n-th GET is answered whole, as kept alive, and its connection then closed
    # without a word (a keep-alive connection the server dropped while it was idle)
    close_after_every: int = 0
    # the numbers of the GETs sent half and closed (as drop_every, for chosen ones)
    drop_at: tuple[int, ...] = ()
    # Range headers left out of what is forwarded: the store answers 200 and the whole
    # object, as a server that does not support ranges does
    ignore_range: bool = False
    retry_after: str | None = None
    # PUTs (uploads) wait for S3Proxy.release(): "before" they reach the store, or "after"
    # (the object is stored, its answer held), so a test can kill the uploader there
    hold_puts: str = ""


@dataclass
class S3Proxy:
    """A counting, fault-injecting reverse proxy in front of ``upstream`` (host, port)."""

    upstream_port: int
    faults: Faults = field(default_factory=Faults)
    counts: Counter[str] = field(default_factory=Counter)  # list, head, get, injected/...
    gets: Counter[str] = field(default_factory=Counter)  # GETs per object key
    puts: Counter[str] = field(default_factory=Counter)  # PUTs per object key (stored)
    connections: int = 0  # TCP connections accepted
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                with proxy._lock:
                    proxy.connections += 1
                super().setup()

            def _forward(self) -> None:
                proxy.handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """Let held PUTs go (and stop holding later ones)."""
        self.faults.hold_puts = ""
        self._released.set()

    def _kind(self, method: str, target: str) -> tuple[str, str]:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        path = parts.path.lstrip("/")
        if method == "GET" and "list-type" in query:
            return "list", path
        if method == "GET" and "/" in path:
            return "get", path.split("/", 1)[1]
        return method.lower(), path

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        kind, key = self._kind(req.command, req.path)
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        with self._lock:
            self.counts[kind] += 1
            n = self.counts[kind]
            if kind == "get":
                self.gets[key] += 1
        f = self.faults
        hold = f.hold_puts if req.command == "PUT" and "uploadId" not in req.path else ""
        if hold:
            with self._lock:
                self.counts[f"held/{hold}"] += 1
        if hold == "before":
            self._released.wait()
        if kind in ("list", "get", "head"):
            if f.slowdown_every and n % f.slowdown_every == 0:
                return self._error(req, 503, "SlowDown", "Please reduce your request rate.")
            if f.too_many_every and n % f.too_many_every == 1 and n > 1:
                return self._error(req, 429, "TooManyRequests", "Too many requests.")
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            skip = ("connection", "range") if f.ignore_range else ("connection",)
            headers = {k: v for k, v in req.headers.items() if k.lower() not in skip}
            conn.request(req.command, req.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if req.command == "PUT" and resp.status == 200:
            with self._lock:
                self.puts[urlsplit(req.path).path.lstrip("/").split("/", 1)[-1]] += 1
        if hold == "after":
            self._released.wait()
        drop = kind == "get" and len(data) > 1 and (
            (f.drop_every and n % f.drop_every == 0) or n in f.drop_at)
        if drop:
            with self._lock:
                self.counts["injected/drop"] += 1
        req.send_response(resp.status)
        for name, value in resp.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                req.send_header(name, value)
        # a HEAD's Content-Length is the object's, not the (empty) body's
        length = resp.getheader("Content-Length") if req.command == "HEAD" else None
        req.send_header("Content-Length", length or str(len(data)))
        if drop:
            req.send_header("Connection", "close")
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data[: len(data) // 2] if drop else data)
        if kind == "get" and f.close_after_every and n % f.close_after_every == 0 and not drop:
            drop = True  # the whole answer, then the connection closed
            with self._lock:
                self.counts["injected/close"] += 1
        if drop:
            req.wfile.flush()
            req.close_connection = True
            try:
                req.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return None

    def _error(self, req: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        with self._lock:
            self.counts[f"injected/{status}"] += 1
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>x</RequestId></Error>"
        ).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/xml")
        req.send_header("Content-Length", str(len(body)))
        if self.faults.retry_after:
            req.send_header("Retry-After", self.faults.retry_after)
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)


def s3_env(endpoint: str, secret: str = "fake-secret-for-tests", **more: str) -> dict[str, str]:
    """The environment the AWS CLI would use against ``endpoint``: fake credentials, no
    profile or config files of the machine's, no DOCMILL_* settings."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("DOCMILL_", "AWS_"))
    }
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID=FAKE_KEY_ID,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(more)
    return env


def run_docmill(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        docmill_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def run_docmill_maxrss(env: dict[str, str], *args: str, timeout: float = 900) -> tuple[int, int]:
    """``docmill ARGS`` in a subprocess that reports its own peak RSS (the driver's only:
    the workers are other processes): (exit status, peak RSS in bytes)."""
    code = (
        "import resource, sys\n"
        "from docmill.cli.main import main\n"
        "rc = main(sys.argv[1:])\n"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
        env=env, check=False,
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("MAXRSS ")]
    assert line, proc.stderr[-3000:]
    assert resource.getpagesize() > 0
    return proc.returncode, int(line[-1].split()[1]) * 1024


# --- SFTP -------------------------------------------------------------------------------


def sshd_path() -> str | None:
    for candidate in (shutil.which("sshd"), "/usr/sbin/sshd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class Sshd:
    """A running sshd and the client files that reach it (``alias`` in ``home``'s
    ``.ssh/config``)."""

    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    alias: str
    key: Path


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
        capture_output=True,
    )


@contextmanager
def start_sshd(folder: Path) -> Iterator[Sshd]:
    """sshd -D -f CONFIG on a free port, key auth only, as the test user; skipped with a
    message where OpenSSH's server is not installed (scripts/setup installs it)."""
    exe = sshd_path()
    if exe is None or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH's server is not installed (Debian package openssh-server; "
                    "scripts/setup dev installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    host_key, client_key = folder / "host_key", folder / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    authorized = folder / "authorized_keys"
    shutil.copy(client_key.with_suffix(".pub"), authorized)
    authorized.chmod(0o600)
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 64\nMaxSessions 64\n"
    )
    if os.getuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation
    log = open(folder / "sshd.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([exe, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"sshd did not start: {(folder / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        home = folder / "home"
        (home / ".ssh").mkdir(parents=True)
        pub = host_key.with_suffix(".pub").read_text().split()
        (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
        alias = "docmill-sftp-test"
        user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
        (home / ".ssh" / "config").write_text(
            f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
            f"  IdentityFile {client_key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {home / '.ssh' / 'known_hosts'}\n"
        )
        yield Sshd(proc, port, home, alias, client_key)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def sftp_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    env.update(PYTHONPATH=str(ROOT / "src"), HOME=str(home))
    env.pop("SSH_AUTH_SOCK", None)
    return env


def grep_tree(folder: Path, needle: bytes) -> list[str]:
    """Files under ``folder`` whose bytes hold ``needle`` (the SQLite file and its WAL too)."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            found.append(str(path))
    return found


Check = Callable[[], bool]
