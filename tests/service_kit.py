"""Helpers for the service tests: a real `docmill serve` subprocess, or uvicorn in a thread."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from engine_kit import docmill_cmd, env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{base} never became ready")


def start_server(data_dir: Path, port: int, *sets: str) -> subprocess.Popen[str]:
    args = ["serve", "--port", str(port), "--set", f"service.data_dir={data_dir}"]
    # local mode unless a test asks for keys (--set service.auth=keys: later sets win)
    for s in ("service.extract_workers=1", "run.workers=1", "service.auth=none", *sets):
        args += ["--set", s]
    log = open(data_dir.parent / f"server-{port}.log", "a")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        docmill_cmd(*args), stdout=log, stderr=subprocess.STDOUT, text=True, env=env(),
        start_new_session=True,
    )
    wait_ready(f"http://127.0.0.1:{port}")
    return proc


def kill_group(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


@contextmanager
def server_in_thread(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def wait_job(client: httpx.Client, job_id: str, statuses: tuple[str, ...], timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """A real redis-server on loopback, no persistence; returns once it answers PING."""
    import shutil

    import pytest
    import redis

    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if client.ping():
                    return proc
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise AssertionError("redis-server never answered") from None
                time.sleep(0.1)
    finally:
        client.close()
