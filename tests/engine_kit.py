"""Helpers for the engine tests: run the real CLI, read the part files, build corpora."""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The test corpus: the full one at ../shared/corpus when it is there, else the small
# subset the repository carries (tests/data/corpus/README.md says what is in it).
SHARED_CORPUS = ROOT.parent / "shared" / "corpus"
CARRIED_CORPUS = ROOT / "tests" / "data" / "corpus"
FULL_CORPUS = SHARED_CORPUS.is_dir()
CORPUS = SHARED_CORPUS if FULL_CORPUS else CARRIED_CORPUS
REAL = CORPUS / "real"
HOSTILE = CORPUS / "hostile"
CORPUS_WIDE_SKIP = (
    "corpus-wide test: put the docmill test corpus at ../shared/corpus"
    " (see tests/data/corpus/README.md)"
)
UNPACKED = Path(tempfile.gettempdir()) / f"docmill-tests-{os.getuid()}" / "corpus"


def corpus_file(path: Path) -> Path:
    """``path`` (a file under ``CORPUS``) ready to read. The carried subset keeps its few
    large files xz-compressed as ``NAME.xz``: such a file is expanded once into a cache
    outside the checkout (``UNPACKED``, keyed by the packed file's sha256), under its own
    name, and that copy is returned."""
    if path.exists():
        return path
    packed = path.with_name(path.name + ".xz")
    if not packed.is_file():
        raise FileNotFoundError(
            f"corpus file missing: {path} (neither it nor {packed.name} is there;"
            " tests/data/make_corpus.py lists the files the tests need)"
        )
    with open(packed, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    dest = UNPACKED / digest[:16] / path.name
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
        with lzma.open(packed, "rb") as src, open(partial, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(partial, dest)  # whole or not at all, also when tests race for it
    return dest


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
