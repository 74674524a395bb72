"""The service under attack: each test sends what an attacker sent to a real `docmill serve`
on loopback and measures the server's side (bytes its process wrote, its resident memory,
what it answered and logged).

The bodies are pushed through a raw socket the way an attacker does it: bytes keep going
until the server answers or closes, so what the server chose to read is what counts.
"""

from __future__ import annotations

import re
import secrets
import select
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from engine_kit import run_cli
from pdfgen import make_pdf
from service_kit import free_port, kill_group, start_server

MB = 1024 * 1024
ATTACK_MB = 300
_BLOCK = b"\x00" * MB  # one reused megabyte: the client holds no 300 MB either


def _key(data: Path, tier: str, *sets: str) -> str:
    extra = [a for s in sets for a in ("--set", s)]
    made = run_cli("keys", "create", "--tier", tier, "--json", "--set", f"service.data_dir={data}", *extra)
    assert made.returncode == 0, made.stderr
    import json

    key: str = json.loads(made.stdout)["key"]
    return key


def _push(port: int, head: list[str], body: Iterator[bytes], timeout_s: float = 120.0) -> tuple[int, int, bytes]:
    """Send ``head`` then ``body`` until the server answers or closes the connection.
    Returns (status, body bytes the socket accepted, what the server sent)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    sock.setblocking(False)
    sent, pending, answer = 0, b"", b""
    deadline = time.monotonic() + timeout_s
    chunks = iter(body)
    try:
        while time.monotonic() < deadline:
            want_write = pending or chunks is not None
            readable, writable, _ = select.select([sock], [sock] if want_write else [], [], 1.0)
            if readable:
                try:
                    got = sock.recv(65536)
                except ConnectionResetError:
                    got = b""
                if not got:
                    break
                answer += got
                if b"\r\n\r\n" in answer and _complete(answer):
                    break
                continue
            if writable:
                if not pending:
                    nxt = next(chunks, None)
                    if nxt is None:
                        chunks = None  # type: ignore[assignment]
                        continue
                    pending = nxt
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pending = b""
                    chunks = None  # type: ignore[assignment]
                    continue
                sent += n
                pending = pending[n:]
    finally:
        sock.close()
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return (int(match.group(1)) if match else 0), sent, answer


def _complete(answer: bytes) -> bool:
    head, _, rest = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    return length is None or len(rest) >= int(length.group(1))


def _multipart(field: str, name: str, megabytes: int, boundary: str = "attackboundary") -> tuple[int, Iterator[bytes]]:
    start = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
             "Content-Type: application/pdf\r\n\r\n").encode()
    end = f"\r\n--{boundary}--\r\n".encode()

    def gen() -> Iterator[bytes]:
        yield start
        for _ in range(megabytes):
            yield _BLOCK
        yield end

    return len(start) + megabytes * MB + len(end), gen()


def _chunked(parts: Iterator[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def _written(pid: int) -> int:
    """Bytes the process handed to write(2) and friends (``wchar``): files, pipes, logs."""
    return int(psutil.Process(pid).io_counters().write_chars)


def _left_behind(data: Path) -> list[Path]:
    """Files in the data folder other than the service's own ledger."""
    return [p for p in data.rglob("*") if p.is_file() and not p.name.startswith("service.db")]


@pytest.fixture
def keyed_server(tmp_path: Path) -> Iterator[tuple[int, Path, psutil.Process]]:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    proc = start_server(
        data, port, "service.auth=keys", "service.extract_max_mb=5", "service.max_upload_mb=5",
        "service.job_workers=0",
    )
    try:
        yield port, data, psutil.Process(proc.pid)
    finally:
        kill_group(proc)


def test_a_keyless_300_mb_upload_is_refused_before_its_body_is_read(
    keyed_server: tuple[int, Path, psutil.Process],
) -> None:
    port, data, server = keyed_server
    for path in ("/v1/extract", "/v1/jobs"):
        before = _written(server.pid)
        length, body = _multipart("file" if path == "/v1/extract" else "files", "big.pdf", ATTACK_MB)
        head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}",
                "Content-Type: multipart/form-data; boundary=attackboundary"]
        status, sent, answer = _push(port, head, body)
        written = _written(server.pid) - before
        assert status == 401, answer[:300]
        assert b"missing_api_key" in answer and b"connection: close" in answer.lower()
        assert written < 1 * MB, written  # the 314 MB went nowhere
        assert sent < ATTACK_MB * MB  # the server closed the connection instead of draining it
    assert _left_behind(data) == []


@pytest.mark.parametrize("path", ["/v1/extract", "/v1/jobs"])
def test_a_chunked_300_mb_upload_with_a_key_stops_at_the_cap(
    keyed_server: tuple[int, Path, psutil.Process], path: str
) -> None:
    port, data, server = keyed_server
    key = _key(data, "pro")
    before = _written(server.pid)
    _length, body = _multipart("file" if path == "/v1/extract" else "files", "big.pdf", ATTACK_MB)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}",
            "Transfer-Encoding: chunked", "Content-Type: multipart/form-data; boundary=attackboundary"]
    status, sent, answer = _push(port, head, _chunked(body))
    written = _written(server.pid) - before
    assert status == 413, answer[:300]
    assert b"file_too_large" in answer
    # the file is written as it streams in, up to its 5 MB cap and not a byte further ...
    assert written <= 5 * MB + 1 * MB, written
    assert sent < 100 * MB
    # ... and removed with the refusal
    assert _left_behind(data) == []


def _rss_sampler(proc: psutil.Process, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], proc.memory_info().rss)
        except psutil.Error:
            return
        time.sleep(0.01)


@pytest.mark.parametrize("chunked", [False, True])
def test_four_300_mb_json_bodies_at_once_cost_no_memory(
    keyed_server: tuple[int, Path, psutil.Process], chunked: bool
) -> None:
    port, data, server = keyed_server
    key = _key(data, "pro")
    base = server.memory_info().rss
    peak = [base]
    stop = threading.Event()
    sampler = threading.Thread(target=_rss_sampler, args=(server, stop, peak), daemon=True)
    sampler.start()
    results: list[tuple[int, int, bytes]] = []

    def attack() -> None:
        def body() -> Iterator[bytes]:
            yield b'{"source": "'
            for _ in range(ATTACK_MB):
                yield b"a" * MB
            yield b'"}'

        head = ["POST /v1/jobs HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {key}",
                "Content-Type: application/json"]
        if chunked:
            results.append(_push(port, [*head, "Transfer-Encoding: chunked"], _chunked(body())))
        else:
            results.append(_push(port, [*head, f"Content-Length: {ATTACK_MB * MB + 14}"], body()))

    threads = [threading.Thread(target=attack) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    stop.set()
    sampler.join()
    assert [r[0] for r in results] == [413] * 4, [r[2][:200] for r in results]
    assert all(b"body_too_large" in r[2] and b"service.max_json_kb" in r[2] for r in results)
    growth = peak[0] - base
    assert growth < 50 * MB, growth / MB
    # and the server still answers
    ok = httpx.get(f"http://127.0.0.1:{port}/v1/jobs", headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200


def test_guessing_keys_is_braked_per_address_and_logged_as_counts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    proc = start_server(data, port, "service.auth=keys", "service.job_workers=0",
                        "service.auth_fail_limit=20")
    log_path = tmp_path / f"server-{port}.log"
    try:
        key = _key(data, "pro")
        key_id = key.split("_")[1]
        base = f"http://127.0.0.1:{port}"
        statuses: Counter[int] = Counter()
        with httpx.Client(base_url=base, timeout=30) as client:
            for i in range(2000):
                wrong = f"dm_{secrets.token_hex(6)}_{secrets.token_hex(24)}" if i % 4 else "nonsense"
                r = client.get("/v1/jobs", headers={"Authorization": f"Bearer {wrong}"})
                statuses[r.status_code] += 1
                if r.status_code == 429:
                    assert int(r.headers["Retry-After"]) >= 1
                    assert r.json()["error"]["code"] == "too_many_failed_attempts"
            for _ in range(300):  # the real key id with a wrong secret
                r = client.get("/v1/jobs", headers={"Authorization": f"Bearer dm_{key_id}_{secrets.token_hex(24)}"})
                statuses[r.status_code] += 1
            # the brake holds the address whatever it sends, the right key too
            assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 429
        assert statuses[401] == 20 and statuses[429] == 2280, statuses
        # another address is not braked
        other = httpx.Client(base_url=base, timeout=30,
                             transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        assert other.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        other.close()
        proc.send_signal(signal.SIGTERM)  # a graceful stop writes the last summary line
        proc.wait(timeout=60)
    finally:
        kill_group(proc)
    log = log_path.read_text()
    assert not re.search(r'" (401|429)\b', log), "an access line a refused request"
    summaries = [line for line in log.splitlines() if "authentication failed" in line]
    assert len(summaries) == 1, summaries
    assert "2301 times" in summaries[0] and "2281 answered 429" in summaries[0]
    assert "127.0.0.1 x2301" in summaries[0]
    assert len(log.splitlines()) < 40  # a handful of lines, not one an attempt
    assert key.split("_")[2] not in log


def test_the_brake_is_shared_through_redis(tmp_path: Path, redis_url: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    ports = [free_port(), free_port()]
    procs = [start_server(data, p, "service.auth=keys", "service.job_workers=0",
                          "service.auth_fail_limit=6", f"service.redis_url={redis_url}") for p in ports]
    try:
        answers = []
        for i in range(10):  # alternate instances: six failures in all, then the brake
            r = httpx.get(f"http://127.0.0.1:{ports[i % 2]}/v1/jobs",
                          headers={"Authorization": "Bearer dm_000000000000_" + "0" * 48})
            answers.append(r.status_code)
        assert answers == [401] * 6 + [429] * 4
    finally:
        for proc in procs:
            kill_group(proc)


@pytest.mark.slow
def test_the_free_tier_admits_its_figure_in_60_s(tmp_path: Path) -> None:
    """Hammered for 60 s by four clients, a free key gets its advertised 10 extracts
    (`RateLimit-Policy: 10;w=60`), within 5 %: the burst is part of the 10."""
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    proc = start_server(data, port, "service.auth=keys", "service.job_workers=0")
    try:
        key = _key(data, "free")
        pdf = make_pdf(["a one-page document"])
        admitted: list[float] = []
        policy: set[str] = set()
        start = time.monotonic()
        stop_at = start + 60.0

        def hammer() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                              headers={"Authorization": f"Bearer {key}"}) as client:
                while time.monotonic() < stop_at:
                    sent_at = time.monotonic()
                    r = client.post("/v1/extract", files={"file": ("a.pdf", pdf)})
                    if "RateLimit-Policy" in r.headers:
                        policy.add(r.headers["RateLimit-Policy"])
                    if r.status_code == 200:
                        admitted.append(sent_at)
                    else:
                        assert r.status_code == 429, r.text

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        kill_group(proc)
    assert "10;w=60" in policy
    assert 9.5 <= len(admitted) <= 10.5, len(admitted)
