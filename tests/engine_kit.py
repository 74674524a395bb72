"""Helpers for the engine tests: run the real CLI, read the part files, build corpora."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
REAL = CORPUS / "real"
HOSTILE = CORPUS / "hostile"


def docmill_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "docmill", *args]


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    out["PYTHONPATH"] = str(ROOT / "src")
    return out


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        docmill_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env(), check=False
    )


def start_cli(*args: str) -> subprocess.Popen[str]:
    """Start the CLI in its own process group (``stop_all`` ends it, workers included)."""
    return subprocess.Popen(
        docmill_cmd(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
        start_new_session=True,
    )


def read_parts(out: Path) -> list[dict[str, Any]]:
    """Every record in the final part files (JSON Lines)."""
    records: list[dict[str, Any]] = []
    for part in sorted((out / "records").glob("part-*.jsonl")):
        with open(part, encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    return records


def assert_exactly_once(out: Path, expected_sources: set[str]) -> list[dict[str, Any]]:
    records = read_parts(out)
    counts = Counter(r["source"] for r in records)
    dupes = {s: n for s, n in counts.items() if n > 1}
    assert not dupes, f"sources written more than once: {list(dupes.items())[:5]}"
    missing = expected_sources - set(counts)
    assert not missing, f"{len(missing)} sources have no record, e.g. {sorted(missing)[:3]}"
    extra = set(counts) - expected_sources
    assert not extra, f"unexpected records: {sorted(extra)[:3]}"
    leftovers = list((out / "records").glob("*.tmp"))
    assert not leftovers, f"temporary part files left behind: {leftovers}"
    return records


def status(out: Path) -> dict[str, Any]:
    result = run_cli("status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def stop_all(proc: subprocess.Popen[str]) -> None:
    """Kill a started CLI and its workers if it is still running (test clean-up)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
