"""``run.executor = ray`` against a real two-node Ray cluster on loopback.

One cluster for the module (``ray start --head`` with 1 CPU and a second node joined
with ``ray start --address``, 1 CPU, 100 MB object stores, no dashboard, usage stats
off; ``tests/ray_kit.py``), stopped at its end by the pids of its own processes. The
driver is the real CLI in its own process, as a user runs it. What a local run promises
holds on the cluster: the same records, the same limits and failure categories, nothing
lost or written twice when a node or the driver is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from engine_kit import (
    CARRIED_CORPUS,
    HOSTILE,
    assert_exactly_once,
    corpus_file,
    docmill_cmd,
    env,
    read_parts,
    run_cli,
    status,
)
from pdfgen import write_pdf
from ray_kit import RayCluster, RayNode, ray_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ray_available(), reason="Ray is not installed (scripts/setup dev)"),
]

GENERATED = HOSTILE / "generated"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    started = RayCluster.start((1, 1))
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def two_nodes(cluster: RayCluster) -> RayCluster:
    """The cluster with a live second node (a test before may have killed one)."""
    for node in [n for n in cluster.nodes if not n.head]:
        if not cluster.workers_alive(node):
            cluster.kill_node(node)
    while len(cluster.nodes) < 2:
        cluster.add_node(1)
    return cluster


def _env() -> dict[str, str]:
    return {**env(), "RAY_USAGE_STATS_ENABLED": "0"}


def _ray_args(cluster: RayCluster, *args: str) -> list[str]:
    return [*args, "--executor", "ray", "--set", f"run.ray_address={cluster.address}"]


def run_ray(cluster: RayCluster, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        docmill_cmd(*_ray_args(cluster, *args)), capture_output=True, text=True,
        timeout=timeout, env=_env(), check=False,
    )


def start_ray(cluster: RayCluster, *args: str, log: Path) -> subprocess.Popen[str]:
    """The CLI in its own process group, its output into ``log`` (never a full pipe)."""
    with open(log, "w") as handle:
        return subprocess.Popen(
            docmill_cmd(*_ray_args(cluster, *args)), stdout=handle, stderr=subprocess.STDOUT,
            text=True, env=_env(), start_new_session=True,
        )


def _kill_group(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)


def _carried_corpus(dest: Path) -> Path:
    """The carried real corpus (tests/data/corpus/real), xz files expanded, copied (not
    linked: a confined run reads only inside its folder)."""
    root = CARRIED_CORPUS / "real"
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root)
        if path.suffix == ".xz":
            path, rel = corpus_file(path.with_suffix("")), rel.with_suffix("")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return dest


def _generated(folder: Path, n: int, pages: int = 2) -> Path:
    for i in range(n):
        write_pdf(folder / f"doc-{i:05d}.pdf", [f"document {i} page {p + 1}" for p in range(pages)])
    return folder


def _sources(folder: Path) -> set[str]:
    return {str(p.absolute()) for p in folder.rglob("*") if p.is_file()}


def _essence(records: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """What must not depend on where a document ran."""
    return {
        r["source"]: (
            r["status"], r["mime"], r["pages"], r["sha256"], r.get("text"),
            (r["error"] or {}).get("category"), r.get("metadata"),
        )
        for r in records
    }


def _finished(out: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{out / 'docmill.db'}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute(
                "SELECT COUNT(*) FROM documents WHERE state IN ('done','failed','skipped')"
            ).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _batches_running(cluster: RayCluster, node: RayNode | None = None) -> dict[int, psutil.Process]:
    """The docmill worker processes busy on a batch (by pid), each with the Ray worker
    that runs the batch: a Ray worker's forkserver forks one for a batch and kills it at
    the batch's end."""
    found: dict[int, psutil.Process] = {}
    for proc in cluster.processes(node):
        try:
            if "forkserver" not in " ".join(proc.cmdline()):
                continue
            ray_worker = proc.parent()
            for child in proc.children():
                if ray_worker is not None:
                    found[child.pid] = ray_worker
        except psutil.Error:
            continue
    return found


def _a_batch_starting(
    cluster: RayCluster, node: RayNode | None, seen: set[int]
) -> tuple[int, psutil.Process] | None:
    """(docmill worker pid, Ray worker) of a batch that started since ``seen`` was
    taken: most of its documents are not answered yet."""
    for child, ray_worker in _batches_running(cluster, node).items():
        if child not in seen:
            return child, ray_worker
    return None


# --- the same records -----------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[Any, ...]]]:
    """The carried corpus and what a local run with 2 workers makes of it."""
    src = _carried_corpus(tmp_path_factory.mktemp("corpus") / "in")
    out = src.parent / "local"
    result = run_cli("run", str(src), "--out", str(out), "--workers", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    return src, _essence(assert_exactly_once(out, _sources(src)))


def test_the_corpus_on_the_cluster_gives_the_records_of_a_local_run(
    two_nodes: RayCluster, corpus: tuple[Path, dict[str, tuple[Any, ...]]], tmp_path: Path
) -> None:
    src, local = corpus
    out = tmp_path / "ray"
    result = run_ray(two_nodes, "run", str(src), "--out", str(out),
                     "--set", "run.progress_interval_s=0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    records = assert_exactly_once(out, _sources(src))
    assert _essence(records) == local  # the same text, pages, metadata, failures
    assert sum(1 for r in records if r["status"] == "done") > 30
    assert "| nodes 2 | workers 2 |" in result.stderr  # the progress line
    assert status(out)["counts"]["running"] == 0


def test_through_ray_client_the_records_are_the_same(
    two_nodes: RayCluster, corpus: tuple[Path, dict[str, tuple[Any, ...]]], tmp_path: Path
) -> None:
    """``run.ray_address = ray://host:port``: Ray Client cannot stream a task's results,
    so each batch answers at its end; the records do not change."""
    src, local = corpus
    out = tmp_path / "ray"
    result = subprocess.run(
        docmill_cmd("run", str(src), "--out", str(out), "--quiet", "--executor", "ray",
                    "--set", f"run.ray_address={two_nodes.client_address}"),
        capture_output=True, text=True, timeout=600, env=_env(), check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _essence(assert_exactly_once(out, _sources(src))) == local


def test_shipped_bytes_give_the_same_records_in_a_confined_run(
    two_nodes: RayCluster, corpus: tuple[Path, dict[str, tuple[Any, ...]]], tmp_path: Path
) -> None:
    """``run.ray_files = ship``: the driver reads each file (inside its root) and the
    workers get the bytes through the object store."""
    src, local = corpus
    out = tmp_path / "ray"
    result = run_ray(
        two_nodes, "run", str(src), "--out", str(out), "--quiet",
        "--set", "run.ray_files=ship", "--set", "run.ray_ship_mb=4",
        "--set", "sources.confine_to_root=true",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _essence(assert_exactly_once(out, _sources(src))) == local


def test_a_buckets_documents_are_read_from_the_drivers_spool_by_the_workers(
    two_nodes: RayCluster, tmp_path: Path
) -> None:
    """Remote sources are downloaded by the driver into DIR/spool; on this machine the
    Ray workers read those files (inside the roots, as every service job runs)."""
    pytest.importorskip("moto", reason="moto[server] is in the dev lock: run scripts/setup dev")
    from remote_kit import MotoS3, s3_env

    moto = MotoS3()
    try:
        moto.bucket("scans")
        pdfs = sorted(p for p in (CARRIED_CORPUS / "real").rglob("*.pdf")
                      if p.stat().st_size < 200_000)[:5]
        for path in pdfs:
            moto.put("scans", f"in/{path.name}", path.read_bytes())
        moto.put("scans", "in/notes.txt", b"Invoice 42\nTotal 10.00 EUR\n")
        out = tmp_path / "out"
        result = subprocess.run(
            docmill_cmd(*_ray_args(
                two_nodes, "run", "s3://scans/in", "--out", str(out), "--quiet",
                "--set", "sources.confine_to_root=true",
            )),
            capture_output=True, text=True, timeout=600, check=False,
            env={**s3_env(moto.endpoint), "RAY_USAGE_STATS_ENABLED": "0"},
        )
    finally:
        moto.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {f"s3://scans/in/{p.name}" for p in pdfs} | {"s3://scans/in/notes.txt"}
    records = {r["source"]: r for r in assert_exactly_once(out, expected)}
    assert records["s3://scans/in/notes.txt"]["text"] == ["Invoice 42\nTotal 10.00 EUR\n"]
    assert sum(1 for r in records.values() if r["status"] == "done") >= 4
    assert list((out / "spool").iterdir()) == []  # each file deleted as it was committed


# --- the same limits and categories ----------------------------------------------------


def _one(tmp_path: Path, name: str) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    os.symlink(corpus_file(GENERATED / name), src / name)
    return src


def test_a_hanging_document_is_cancelled_at_its_timeout(two_nodes: RayCluster, tmp_path: Path) -> None:
    src = _one(tmp_path, "pages_100k.pdf")  # 100,000 pages unsplit: far more than 2 s
    write_pdf(src / "fine.pdf", ["after the hang"])
    out = tmp_path / "out"
    result = run_ray(
        two_nodes, "run", str(src), "--out", str(out), "--quiet",
        "--set", "run.timeout_s=2", "--set", "run.split_pages=1000000",
        "--set", "run.max_attempts=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = {Path(r["source"]).name: r for r in read_parts(out)}
    hung = records["pages_100k.pdf"]
    assert hung["status"] == "failed"
    assert hung["error"]["category"] == "timeout"
    assert hung["error"]["stage"] == "extract"  # the stage it was killed in, on its node
    assert "run.timeout_s=2" in hung["error"]["message"]
    assert hung["attempts"] == 2  # tried again once (alone), then quarantined
    assert records["fine.pdf"]["status"] == "done"


def test_a_memory_hungry_document_ends_memory(two_nodes: RayCluster, tmp_path: Path) -> None:
    src = _one(tmp_path, "bomb_flate_4gib.pdf")
    write_pdf(src / "fine.pdf", ["still processed"])
    out = tmp_path / "out"
    result = run_ray(
        two_nodes, "run", str(src), "--out", str(out), "--quiet",
        "--set", "run.memory_mb=400", "--set", "run.max_attempts=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = {Path(r["source"]).name: r for r in read_parts(out)}
    bomb = records["bomb_flate_4gib.pdf"]
    assert bomb["status"] == "failed"
    assert bomb["error"]["category"] == "memory"
    assert "run.memory_mb=400" in bomb["error"]["message"]  # the worker's cap, not Ray's
    assert records["fine.pdf"]["status"] == "done"


# --- crashes ----------------------------------------------------------------------------


def test_killing_a_nodes_raylet_loses_nothing_and_duplicates_nothing(
    two_nodes: RayCluster, tmp_path: Path
) -> None:
    n = 5000
    src = _generated(tmp_path / "in", n, pages=20)  # batches of ~2 s: 100s of files
    out = tmp_path / "out"
    log = tmp_path / "run.log"
    proc = start_ray(
        two_nodes, "run", str(src), "--out", str(out), "--set", "run.progress_interval_s=0.5",
        "--set", "output.part_max_records=50", log=log,
    )
    try:
        second = two_nodes.nodes[1]
        _wait_for(lambda: _finished(out) >= 300 or proc.poll() is not None, 240, "progress")
        # a batch on the second node whose docmill worker has been busy a while (a
        # process that comes and goes under a forkserver is passed over)
        busy = _a_busy_batch(two_nodes, set(_batches_running(two_nodes, second)), proc, second)
        assert busy is not None and proc.poll() is None, _ended_early(proc, log, "the node")
        two_nodes.kill_raylet(second)  # kill -9, mid-batch
        proc.wait(timeout=600)
    finally:
        _kill_group(proc)
    stderr = log.read_text()
    assert proc.returncode == 0, stderr[-3000:]
    records = assert_exactly_once(out, _sources(src))  # every source once in the parts
    assert all(r["status"] == "done" for r in records)
    assert all(r["text"][0].startswith("document") for r in records)
    # a document the dying node was on may have been charged a try: never more
    assert all(r["attempts"] <= 2 for r in records)
    assert status(out)["counts"] == {
        "done": n, "failed": 0, "skipped": 0, "pending": 0, "running": 0,
    }


def test_a_ray_worker_killed_mid_batch_charges_only_its_current_document(
    two_nodes: RayCluster, tmp_path: Path
) -> None:
    src = _generated(tmp_path / "in", 3000, pages=20)  # batches of a second: 100s of files
    out = tmp_path / "out"
    log = tmp_path / "run.log"
    proc = start_ray(two_nodes, "run", str(src), "--out", str(out), "--quiet", log=log)
    try:
        _wait_for(lambda: _finished(out) >= 300 or proc.poll() is not None, 240, "progress")
        # a batch whose docmill worker has been busy a while: the driver has heard it
        # start (it polls every 50 ms), and it is no process that comes and goes
        victim = _a_busy_batch(two_nodes, set(_batches_running(two_nodes)), proc)
        assert victim is not None, _ended_early(proc, log, "a worker")
        victim.kill()  # kill -9 of the Ray worker (its docmill worker dies with it)
        proc.wait(timeout=600)
    finally:
        _kill_group(proc)
    stderr = log.read_text()
    assert proc.returncode == 0, stderr[-3000:]
    records = assert_exactly_once(out, _sources(src))
    assert all(r["status"] == "done" for r in records)
    # the batch's current document: one try counted (crash), then done; every other
    # document of that batch went back uncounted
    retried = [r for r in records if r["attempts"] > 1]
    assert [r["attempts"] for r in retried] == [2], retried
    assert "after crash" in stderr
    assert status(out)["counts"]["done"] == 3000


def _ended_early(proc: subprocess.Popen[str], log: Path, what: str, done: str = "killed") -> str:
    """The message for a run that ended before ``what`` could be ``done``: its exit
    status and the end of its log."""
    proc.poll()
    return (f"the run ended (exit {proc.returncode}) before {what} could be {done}:\n"
            f"{log.read_text(errors='replace')[-3000:]}")


def _a_busy_batch(cluster: RayCluster, seen: set[int], proc: subprocess.Popen[str],
                  node: RayNode | None = None) -> psutil.Process | None:
    """The Ray worker of a batch that started since ``seen`` was taken and whose docmill
    worker has been busy a while (so the driver has heard the batch start; a process
    that comes and goes under a forkserver, or a warm-up's idle worker, is passed over);
    None once the run has ended. ``node``: on that node only."""
    deadline = time.monotonic() + 60
    while proc.poll() is None:
        assert time.monotonic() < deadline, "timed out waiting for a busy batch"
        found = _a_batch_starting(cluster, node, seen)
        if found is None:
            time.sleep(0.02)
            continue
        pid, ray_worker = found
        seen.add(pid)
        try:
            busy = psutil.Process(pid)
            until = time.monotonic() + 5
            while time.monotonic() < until and busy.is_running():
                if sum(busy.cpu_times()[:2]) >= 0.3:
                    return ray_worker
                time.sleep(0.02)
        except psutil.Error:
            continue
    return None


def _stop_a_batch(cluster: RayCluster, src: Path, out: Path, log: Path, timeout_s: float
                  ) -> tuple[int, str, float]:
    """One run in which the Ray worker of a busy batch is stopped (SIGSTOP) until the
    run ends: (exit status, its log, seconds from the stop to the end)."""
    proc = start_ray(
        cluster, "run", str(src), "--out", str(out), "--quiet",
        "--set", f"run.timeout_s={timeout_s}", log=log,
    )
    stopped: psutil.Process | None = None
    try:
        _wait_for(lambda: _finished(out) >= 100 or proc.poll() is not None, 240, "progress")
        stopped = _a_busy_batch(cluster, set(_batches_running(cluster)), proc)
        assert stopped is not None, _ended_early(proc, log, "a worker", "stopped")
        stopped.suspend()  # SIGSTOP
        suspended_at = time.monotonic()
        proc.wait(timeout=600)
        ended_after = time.monotonic() - suspended_at
    finally:
        if stopped is not None:
            try:
                stopped.resume()
            except psutil.Error:
                pass
        _kill_group(proc)
    return proc.returncode, log.read_text(), ended_after


def test_a_silent_batch_is_cancelled_by_the_drivers_watchdog(
    two_nodes: RayCluster, tmp_path: Path
) -> None:
    """A Ray worker that stops answering (SIGSTOP: neither its documents' answers nor
    its own death reach the driver) is cancelled with force past run.timeout_s + the
    watchdog's grace; its current document ends that try as a timeout and is tried
    again alone.

    The Ray worker is stopped as soon as a docmill worker appears under it; if its batch
    was already answered (a quiet machine), the run ends sooner than the watchdog could
    fire, which shows that nothing was held: then the run is made again (3 runs at most)."""
    from docmill.executors.ray import GRACE_S

    src = _generated(tmp_path / "in", 4000, pages=20)
    timeout_s = 2.0
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"
        status, stderr, ended_after = _stop_a_batch(
            two_nodes, src, out, tmp_path / f"run{attempt}.log", timeout_s
        )
        assert status == 0, stderr[-3000:]
        silent = "a Ray task has sent nothing for" in stderr
        if not silent and ended_after < timeout_s + GRACE_S:
            continue  # the stopped worker held no batch: nothing to cancel, run again
        assert silent, stderr[-3000:]
        assert "after timeout" in stderr  # charged one try, then done
        records = assert_exactly_once(out, _sources(src))
        assert all(r["status"] == "done" for r in records)
        assert [r["attempts"] for r in records if r["attempts"] > 1] == [2]
        return
    pytest.fail("in 3 runs the stopped Ray worker never held a batch")


def test_kill_9_of_the_driver_then_a_rerun_resumes(two_nodes: RayCluster, tmp_path: Path) -> None:
    src = _generated(tmp_path / "in", 3000, pages=20)
    out = tmp_path / "out"
    args = ("run", str(src), "--out", str(out), "--quiet", "--set", "output.part_max_records=37")
    proc = start_ray(two_nodes, *args, log=tmp_path / "run.log")
    try:
        _wait_for(lambda: _finished(out) >= 150 or proc.poll() is not None, 240, "progress")
        assert proc.poll() is None, _ended_early(proc, tmp_path / "run.log", "the driver")
        os.killpg(proc.pid, signal.SIGKILL)  # the driver: its tasks die with its Ray job
        proc.wait(timeout=60)
    finally:
        _kill_group(proc)
    records = read_parts(out)
    assert len(records) == len({r["source"] for r in records})  # never twice, even now
    assert status(out)["last_run"]["status"] == "crashed"
    final = run_ray(two_nodes, *args)
    assert final.returncode == 0, final.stderr[-3000:]
    records = assert_exactly_once(out, _sources(src))
    assert all(r["status"] == "done" for r in records)
    conn = sqlite3.connect(out / "docmill.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# --- the service --------------------------------------------------------------------------


def test_docmill_worker_runs_a_jobs_documents_on_the_cluster(
    two_nodes: RayCluster, tmp_path: Path
) -> None:
    from docmill.service.jobs import JobLedger, new_job_id

    src = _generated(tmp_path / "in", 40)
    data = tmp_path / "service"
    ledger = JobLedger.open(data)
    job = ledger.create(new_job_id(), "local", "path", [str(src)], "on the cluster", {})
    log = tmp_path / "worker.log"
    worker = start_ray(
        two_nodes, "worker", "--set", f"service.data_dir={data}",
        "--set", f"service.allowed_roots=[{json.dumps(str(tmp_path))}]", log=log,
    )
    try:
        def finished() -> bool:
            current = ledger.get(job.id)
            return (current is not None and current.terminal) or worker.poll() is not None

        _wait_for(finished, 240, "the job")
    finally:
        _kill_group(worker)
    stderr = log.read_text()
    current = ledger.get(job.id)
    assert current is not None and current.status == "done", (current, stderr[-3000:])
    records = assert_exactly_once(ledger.job_dir(job.id), _sources(src))
    assert all(r["status"] == "done" for r in records)
    assert "ray: 2 nodes" in stderr or "ray: 3 nodes" in stderr  # the executor's line
