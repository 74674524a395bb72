"""Shared fixtures."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine_kit import start_cli, stop_all
from service_kit import free_port, start_redis


@pytest.fixture
def start() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``docmill ARGS`` in the background; whatever still runs is killed afterwards."""
    started: list[subprocess.Popen[str]] = []

    def launch(*args: str) -> subprocess.Popen[str]:
        proc = start_cli(*args)
        started.append(proc)
        return proc

    yield launch
    for proc in started:
        stop_all(proc)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on loopback for one test (skipped where it is not installed)."""
    port = free_port()
    proc = start_redis(port, tmp_path)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait(timeout=30)
