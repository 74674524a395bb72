"""Isolation and durability: hostile files, limits enforced from outside, crashes, resume."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from engine_kit import HOSTILE, assert_exactly_once, corpus_file, read_parts, run_cli, status
from pdfgen import write_pdf

GENERATED = HOSTILE / "generated"
Start = Callable[..., subprocess.Popen[str]]


def _sources(folder: Path) -> set[str]:
    return {str(p.absolute()) for p in folder.rglob("*") if p.is_file()}


def _one(tmp_path: Path, name: str) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    os.symlink(corpus_file(GENERATED / name), src / name)
    return src


@pytest.mark.slow
@pytest.mark.corpus_wide
def test_every_hostile_file_ends_terminal_with_a_category(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "run", str(HOSTILE), "--out", str(out), "--workers", "2", "--quiet",
        "--set", "run.timeout_s=15", "--set", "run.memory_mb=1024", "--set", "run.max_attempts=2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = {str(p.absolute()) for p in HOSTILE.rglob("*") if p.is_file()}
    records = assert_exactly_once(out, expected)
    for r in records:
        assert r["status"] in ("done", "failed", "skipped"), r["source"]
        if r["status"] != "done":
            assert r["error"]["category"] and r["error"]["message"], r["source"]
    by_name = {Path(r["source"]).name: r for r in records}
    assert by_name["normal_control.pdf"]["status"] == "done"
    assert by_name["normal_control.pdf"]["pages"] == 20
    assert by_name["encrypted_unknown_password.pdf"]["error"]["category"] == "encrypted"
    assert by_name["encrypted_empty_user_rc4.pdf"]["status"] == "done"
    assert by_name["encrypted_empty_user_rc4.pdf"]["metadata"]["encrypted"] is True
    assert by_name["zero_bytes.pdf"]["error"]["category"] == "empty"
    # a PNG named .pdf is an image: detected from its bytes and read by OCR
    assert by_name["png_as_pdf.pdf"]["mime"] == "image/png"
    assert by_name["png_as_pdf.pdf"]["status"] in ("done", "failed")
    assert by_name["png_as_pdf.pdf"]["error"] is None or by_name["png_as_pdf.pdf"]["error"]["stage"] == "ocr"
    assert by_name["html_as_pdf.pdf"]["mime"] == "text/html"
    assert by_name["pages_100k.pdf"]["pages"] == 100_000
    assert by_name["bomb_flate_4gib.pdf"]["error"]["category"] == "memory"
    data = status(out)
    assert data["counts"]["pending"] == 0 and data["counts"]["running"] == 0


def test_hanging_document_is_killed_at_its_timeout_and_the_run_goes_on(tmp_path: Path) -> None:
    src = _one(tmp_path, "pages_100k.pdf")  # 100,000 pages unsplit: far more than 2 s of work
    write_pdf(src / "fine.pdf", ["after the hang"])
    out = tmp_path / "out"
    result = run_cli(
        "run", str(src), "--out", str(out), "--workers", "1", "--quiet",
        "--set", "run.timeout_s=2", "--set", "run.split_pages=1000000",
        "--set", "run.max_attempts=2",
    )
    assert result.returncode == 0, result.stderr
    records = {Path(r["source"]).name: r for r in read_parts(out)}
    hung = records["pages_100k.pdf"]
    assert hung["status"] == "failed"
    assert hung["error"]["category"] == "timeout"
    assert hung["error"]["stage"] == "extract"  # the stage it was killed in
    assert hung["attempts"] == 2  # tried again once, then quarantined
    assert records["fine.pdf"]["status"] == "done"  # the replaced worker carried on


def test_memory_hungry_document_is_killed_at_its_cap(tmp_path: Path) -> None:
    src = _one(tmp_path, "bomb_flate_4gib.pdf")
    write_pdf(src / "fine.pdf", ["still processed"])
    out = tmp_path / "out"
    result = run_cli(
        "run", str(src), "--out", str(out), "--workers", "1", "--quiet",
        "--set", "run.memory_mb=400", "--set", "run.max_attempts=1",
    )
    assert result.returncode == 0, result.stderr
    records = {Path(r["source"]).name: r for r in read_parts(out)}
    bomb = records["bomb_flate_4gib.pdf"]
    assert bomb["status"] == "failed"
    assert bomb["error"]["category"] == "memory"
    assert "run.memory_mb=400" in bomb["error"]["message"]
    assert records["fine.pdf"]["status"] == "done"


def _workers_of(driver: psutil.Process) -> list[psutil.Process]:
    """Worker processes are forked by the forkserver, the driver's child."""
    return [w for server in driver.children() for w in server.children()]


def test_a_worker_killed_by_a_signal_is_a_crash_and_the_document_is_retried(
    tmp_path: Path, start: Start
) -> None:
    src = _one(tmp_path, "pages_100k.pdf")
    out = tmp_path / "out"
    proc = start(
        "run", str(src), "--out", str(out), "--workers", "1", "--quiet",
        "--set", "run.timeout_s=60", "--set", "run.split_pages=1000000",
        "--set", "run.max_attempts=2",
    )
    driver = psutil.Process(proc.pid)
    killed = False
    deadline = time.monotonic() + 60
    while not killed and time.monotonic() < deadline:
        busy = [w for w in _workers_of(driver) if w.cpu_percent(interval=0.2) > 20]
        for worker in busy:
            worker.send_signal(signal.SIGSEGV)
            killed = True
    assert killed, "no busy worker found"
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "retrying document 1 after crash" in stderr
    (record,) = read_parts(out)
    assert record["attempts"] == 2  # the crash counted as one try, the second succeeded
    assert record["status"] == "done" and record["pages"] == 100_000


def _finished(out: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{out / 'docmill.db'}?mode=ro", uri=True, timeout=1)
        try:
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM documents WHERE state IN ('done','failed','skipped')"
                ).fetchone()[0]
            )
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _corpus(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        write_pdf(folder / f"doc-{i:05d}.pdf", [f"document {i} page 1", f"document {i} page 2"])
    return folder


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_exactly_once(tmp_path: Path, start: Start) -> None:
    n = 3000
    src = _corpus(tmp_path / "in", n)
    out = tmp_path / "out"
    rng = random.Random(int(os.environ.get("DOCMILL_TEST_SEED", "7")))
    args = (
        "run", str(src), "--out", str(out), "--workers", "2", "--quiet",
        "--set", "output.part_max_records=13", "--set", "output.part_max_seconds=0.05",
    )
    targets = sorted(rng.sample(range(50, n - 300), 4))
    kills = 0
    for target in targets:
        proc = start(*args)
        while proc.poll() is None and _finished(out) < target:
            time.sleep(rng.uniform(0.0, 0.02))
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its forkserver and workers
        proc.wait(timeout=30)
        kills += 1
        records = read_parts(out)
        assert len(records) == len({r["source"] for r in records})  # never twice, even now
        assert status(out)["last_run"]["status"] == "crashed"
    assert kills >= 3
    final = run_cli(*args)
    assert final.returncode == 0, final.stderr
    records = assert_exactly_once(out, _sources(src))
    assert all(r["status"] == "done" for r in records)
    assert all(r["text"][0].startswith("document") for r in records)
    conn = sqlite3.connect(out / "docmill.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_ctrl_c_drains_and_a_second_run_completes(tmp_path: Path, start: Start) -> None:
    # tiny documents go by the hundred per commit (one every 0.2 s): enough of them that
    # the drain still leaves some pending when this process, on a loaded machine, sees
    # the first commit late (400 were all done once before the signal landed)
    n = 2000
    src = _corpus(tmp_path / "in", n)
    out = tmp_path / "out"
    proc = start("run", str(src), "--out", str(out), "--workers", "1", "--quiet")
    db = out / "docmill.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until documents are being committed
        if db.exists() and _finished(out) >= 5:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "resume" in stderr
    counts = status(out)["counts"]
    assert counts["running"] == 0
    assert 0 < counts["done"] < n and counts["pending"] > 0
    final = run_cli("run", "--out", str(out), "--quiet")  # no SOURCE: the last run's sources
    assert final.returncode == 0, final.stderr
    records = assert_exactly_once(out, _sources(src))
    assert len(records) == n


@pytest.mark.slow
def test_20000_documents_with_flat_driver_memory(tmp_path: Path, start: Start) -> None:
    src = _corpus(tmp_path / "in", 20_000)
    out = tmp_path / "out"
    proc = start("run", str(src), "--out", str(out), "--workers", "2", "--quiet")
    driver = psutil.Process(proc.pid)
    samples: list[tuple[int, int]] = []  # (documents finished, driver RSS)
    db = out / "docmill.db"

    def sample() -> None:
        while proc.poll() is None:
            try:
                rss = driver.memory_info().rss
                done = _finished(out) if db.exists() else 0
            except (psutil.Error, sqlite3.Error):
                continue
            samples.append((done, rss))
            time.sleep(0.25)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    proc.communicate(timeout=900)
    thread.join(timeout=5)
    assert proc.returncode == 0
    assert status(out)["counts"]["done"] == 20_000
    early = [rss for done, rss in samples if 2_000 <= done <= 5_000]
    late = [rss for done, rss in samples if done >= 15_000]
    assert early and late, f"too few samples: {len(samples)}"
    baseline = max(early)
    assert max(late) <= baseline * 1.2 + 10 * 2**20, (
        f"driver RSS grew from {baseline / 2**20:.1f} MB to {max(late) / 2**20:.1f} MB"
    )


def test_a_second_run_on_the_same_folder_is_refused_while_one_is_running(tmp_path: Path, start: Start) -> None:
    src = _corpus(tmp_path / "in", 1500)  # long enough to still run when the second starts
    out = tmp_path / "out"
    first = start("run", str(src), "--out", str(out), "--workers", "1", "--quiet")
    deadline = time.monotonic() + 60
    while _finished(out) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    # the first run's driver (which holds the ledger's lock) is paused while the second
    # starts: on a loaded machine the second's start-up outlasted the whole first run
    assert first.poll() is None, "the first run ended before the second could start"
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = run_cli("run", str(src), "--out", str(out), "--quiet")
    finally:
        os.kill(first.pid, signal.SIGCONT)
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert second.returncode == 1
    assert "another docmill run" in second.stderr and str(first.pid) in second.stderr
    assert_exactly_once(out, _sources(src))
