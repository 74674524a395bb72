"""Shared fixtures."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from engine_kit import start_cli, stop_all


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
