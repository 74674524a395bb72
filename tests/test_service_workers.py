"""`docmill serve --workers N`: N uvicorn worker processes on one port over one ledger."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import psutil

from docmill.service.keys import KeyStore
from engine_kit import REAL, docmill_cmd, env
from service_kit import free_port, kill_group, wait_job, wait_ready

SMALL = REAL / "pdfplumber" / "examples" / "pdfs" / "background-checks.pdf"


def _spawned_workers(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    children = psutil.Process(proc.pid).children()
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def _extract_processes(worker: psutil.Process) -> int:
    """The pool's processes are forked by the worker's forkserver: its children."""
    servers = [c for c in worker.children() if "forkserver" in " ".join(c.cmdline())]
    return sum(len(f.children()) for f in servers)


def test_serve_with_two_workers(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    with KeyStore.open(data) as keys:  # each worker must authenticate, as one process does
        _, key = keys.create("unlimited", "workers")
    auth = {"Authorization": f"Bearer {key}"}
    args = ["serve", "--workers", "2", "--port", str(port), "--set", f"service.data_dir={data}",
            "--set", "run.workers=2"]
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(docmill_cmd(*args), stdout=log, stderr=subprocess.STDOUT, text=True,
                            env=env(), start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        # readyz came from one worker; each starts its extract pool in its own time
        deadline = time.monotonic() + 60
        workers = _spawned_workers(proc)
        while time.monotonic() < deadline and not (
            len(workers) == 2 and all(_extract_processes(w) for w in workers)
        ):
            time.sleep(0.2)
            workers = _spawned_workers(proc)
        assert len(workers) == 2, [c.cmdline() for c in psutil.Process(proc.pid).children()]
        # extract_workers=0 splits the 2 usable cores: one extract process per HTTP worker
        assert [_extract_processes(w) for w in workers] == [1, 1]
        assert httpx.get(f"{base}/v1/jobs", timeout=60).status_code == 401
        with httpx.Client(base_url=base, timeout=60, headers=auth) as client:
            for _ in range(4):
                r = client.post("/v1/extract", files={"file": ("one.pdf", SMALL.read_bytes())})
                assert r.status_code == 200 and r.json()["status"] == "done", r.text
            job_id = client.post("/v1/jobs", files=[("files", ("a.pdf", SMALL.read_bytes()))]).json()["id"]
            assert wait_job(client, job_id, ("done", "failed"))["status"] == "done"
        # every request, on a new connection each, sees the job: whichever worker answers
        for _ in range(10):
            assert httpx.get(f"{base}/v1/jobs/{job_id}", headers=auth, timeout=60).json()["status"] == "done"
    finally:
        kill_group(proc)
        log.close()


def test_serve_refuses_zero_workers() -> None:
    result = subprocess.run(docmill_cmd("serve", "--workers", "0"), capture_output=True, text=True,
                            env=env(), timeout=60, check=False)
    assert result.returncode == 2 and "--workers must be at least 1" in result.stderr
