"""The HTTP service against a real server on loopback (no mocks of docmill's parts)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request

from docmill.service.app import create_app
from docmill.service.deps import Caller
from docmill.service.errors import ApiError
from docmill.settings import load_settings
from engine_kit import HOSTILE, REAL
from pdfgen import write_pdf
from service_kit import free_port, kill_group, server_in_thread, start_server, wait_job

PDFS = REAL / "pdfplumber" / "examples" / "pdfs"
SMALL = PDFS / "background-checks.pdf"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[httpx.Client]:
    port = free_port()
    proc = start_server(tmp_path / "data", port, "service.extract_max_mb=1")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield client
    finally:
        kill_group(proc)


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert set(body) <= {"code", "message", "details"} and body["message"]
    return body


def test_extract_a_real_pdf_and_the_basics(server: httpx.Client) -> None:
    r = server.post("/v1/extract", files={"file": ("report.pdf", SMALL.read_bytes())})
    assert r.status_code == 200, r.text
    record = r.json()
    assert record["status"] == "done" and record["mime"] == "application/pdf"
    assert record["pages"] == 1 and "Alabama" in record["text"][0]
    assert record["source"] == "report.pdf"
    assert server.get("/healthz").json() == {"status": "ok"}
    assert server.get("/readyz").json()["status"] == "ready"
    assert "/v1/jobs/{job_id}/documents" in server.get("/openapi.json").json()["paths"]
    metrics = server.get("/metrics").text
    assert 'docmill_documents_total{path="extract",status="done"} 1.0' in metrics
    assert "docmill_request_seconds_bucket" in metrics and "docmill_queue_depth" in metrics
    # every error is one envelope: 404, 405, validation
    assert _error(server.get("/nowhere"), 404)["code"] == "not_found"
    assert _error(server.get("/v1/jobs/nope"), 404)["code"] == "job_not_found"
    assert _error(server.delete("/v1/jobs"), 405)["code"] == "method_not_allowed"
    assert _error(server.post("/v1/extract"), 422)["details"][0]["loc"] == ["body", "file"]


def test_hostile_uploads(server: httpx.Client, tmp_path: Path) -> None:
    # over service.extract_max_mb (1 MB here)
    big = b"%PDF-1.4\n" + b"0" * (2 * 1024 * 1024)
    assert _error(server.post("/v1/extract", files={"file": ("big.pdf", big)}), 413)["code"] == "file_too_large"
    # a text file named .pdf is read as what it is
    r = server.post("/v1/extract", files={"file": ("fake.pdf", b"just some words\nand more\n")})
    assert r.status_code == 200 and r.json()["mime"] == "text/plain"
    assert "just some words" in r.json()["text"][0]
    # a hostile PDF is a failed record, not a 500
    hostile = HOSTILE / "generated" / "xref_prev_loop.pdf"
    if hostile.is_file():
        r = server.post("/v1/extract", files={"file": ("x.pdf", hostile.read_bytes())})
        assert r.status_code == 200, r.text
        assert r.json()["status"] in ("failed", "done")
        if r.json()["status"] == "failed":
            assert r.json()["error"]["category"]
    enc = HOSTILE / "generated" / "encrypted_empty_user_aes256.pdf"
    if enc.is_file():
        r = server.post("/v1/extract", files={"file": ("e.pdf", enc.read_bytes())})
        assert r.status_code == 200 and r.json()["status"] in ("failed", "done")
    # path traversal and absolute names in a job upload stay inside the job's upload folder
    files = [
        ("files", ("../../../etc/passwd.pdf", SMALL.read_bytes())),
        ("files", ("/abs/olute.pdf", SMALL.read_bytes())),
        ("files", ("..\\..\\win.pdf", SMALL.read_bytes())),
        ("files", ("same.pdf", SMALL.read_bytes())),
        ("files", ("same.pdf", SMALL.read_bytes())),
    ]
    job = server.post("/v1/jobs", files=files).json()
    wait_job(server, job["id"], ("done",))
    names = sorted(d["source"] for d in server.get(f"/v1/jobs/{job['id']}/documents").json()["items"])
    assert names == ["olute.pdf", "passwd.pdf", "same-1.pdf", "same.pdf", "win.pdf"]
    data = tmp_path / "data"
    assert (data / "uploads" / job["id"]).is_dir()  # kept service.upload_retention_h after the job
    assert not (tmp_path / "etc").exists() and not (data.parent / "passwd.pdf").exists()
    # sources outside allowed roots and URLs are refused
    assert _error(server.post("/v1/jobs", json={"source": "/etc"}), 403)["code"] == "source_not_allowed"
    assert _error(server.post("/v1/jobs", json={"source": "http://127.0.0.1/x.pdf"}), 403)
    # a setting off the per-job allow-list is a 422 that names it
    refused = _error(server.post("/v1/jobs", json={"source": str(PDFS), "settings": {"llm.spec": "x"}}), 422)
    assert refused["code"] == "setting_not_allowed" and refused["details"]["setting"] == "llm.spec"


def test_a_job_runs_to_done_pages_and_exports(server: httpx.Client) -> None:
    pdfs = sorted(PDFS.glob("*.pdf"))[:6]
    files = [("files", (p.name, p.read_bytes())) for p in pdfs]
    r = server.post("/v1/jobs", files=files, data={"settings": json.dumps({"extract.max_pages": 2})})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.json()["settings"] == {"extract.max_pages": 2}
    job = wait_job(server, job_id, ("done", "failed"))
    assert job["status"] == "done" and job["counts"]["done"] + job["counts"]["failed"] == len(pdfs)
    assert job["total"] == len(pdfs) and job["pages"] >= 1 and job["eta_s"] == 0.0
    assert [j["id"] for j in server.get("/v1/jobs").json()["items"]] == [job_id]
    # keyset pages of 2
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = server.get(f"/v1/jobs/{job_id}/documents", params=params).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == len(pdfs)
    q = pdfs[0].name[:8]
    hits = server.get(f"/v1/jobs/{job_id}/documents", params={"q": q}).json()["items"]
    assert hits and all(q in d["source"] for d in hits)
    assert server.get(f"/v1/jobs/{job_id}/documents", params={"status": "skipped"}).json()["items"] == []
    doc = server.get(f"/v1/jobs/{job_id}/documents/{seen[0]}").json()
    assert doc["id"] == seen[0] and isinstance(doc["text"], list) and "cost_usd" in doc
    assert _error(server.get(f"/v1/jobs/{job_id}/documents/999999"), 404)["code"] == "document_not_found"
    # export streams every record once
    with server.stream("GET", f"/v1/jobs/{job_id}/export", params={"format": "jsonl"}) as resp:
        assert resp.status_code == 200
        lines = [json.loads(line) for line in resp.iter_lines() if line.strip()]
    assert sorted(rec["id"] for rec in lines) == sorted(seen)
    csv_text = server.get(f"/v1/jobs/{job_id}/export", params={"format": "csv"}).text
    assert csv_text.count("\n") >= len(pdfs)
    assert server.get(f"/v1/jobs/{job_id}/export", params={"format": "parquet"}).content[:4] == b"PAR1"
    # events end with the job's status
    events = server.get(f"/v1/jobs/{job_id}/events").text
    assert "event: progress" in events and 'event: end\ndata: {"status": "done"}' in events
    # its uploads are kept service.upload_retention_h, so it could be retried (the refusal
    # once they are gone: tests/test_pages.py)
    assert job["can_retry"] is True and job["retry_refused"] is None
    assert _error(server.post(f"/v1/jobs/{job_id}/cancel"), 409)["code"] == "job_finished"


def _slow_pdfs(folder: Path, n: int) -> list[Path]:
    """Distinct one-page PDFs; with extract.ocr=always each costs a Tesseract read of 12
    lines (a one-line page is read in a blink now that blank margins are cut before OCR)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"Document number {{i}} of the batch, line {k}: the quick brown fox" for k in range(12)]
    return [write_pdf(folder / f"doc-{i:03d}.pdf", ["\n".join(lines).format(i=i)]) for i in range(n)]


def test_cancel_stops_a_running_job(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "data").mkdir()
    proc = start_server(tmp_path / "data", port, "run.window=1")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            pdfs = _slow_pdfs(tmp_path / "src", 40)
            files = [("files", (p.name, p.read_bytes())) for p in pdfs]
            settings = json.dumps({"extract.ocr": "always"})
            job_id = client.post("/v1/jobs", files=files, data={"settings": settings}).json()["id"]
            wait_job(client, job_id, ("running",))
            r = client.post(f"/v1/jobs/{job_id}/cancel")
            assert r.status_code == 202 and r.json()["cancel_requested"]
            job = wait_job(client, job_id, ("cancelled", "done"))
            assert job["status"] == "cancelled"
            assert job["counts"]["pending"] > 0
            # a queued job is cancelled at once
    finally:
        kill_group(proc)


def test_owner_isolation(tmp_path: Path) -> None:
    async def by_header(request: Request) -> Caller:
        key = request.headers.get("x-test-key")
        if not key:
            raise ApiError(401, "unauthorized", "no key")
        return Caller(key)

    settings = load_settings(
        env={},
        overrides={"service.data_dir": str(tmp_path / "d"), "service.job_workers": "0",
                   "service.extract_workers": "1"},
    )
    with server_in_thread(create_app(settings, authenticate=by_header)) as base:
        a = httpx.Client(base_url=base, headers={"x-test-key": "alice"}, timeout=60)
        b = httpx.Client(base_url=base, headers={"x-test-key": "bob"}, timeout=60)
        assert _error(httpx.get(base + "/v1/jobs"), 401)["code"] == "unauthorized"
        job_id = a.post("/v1/jobs", files=[("files", ("a.pdf", SMALL.read_bytes()))]).json()["id"]
        assert [j["id"] for j in a.get("/v1/jobs").json()["items"]] == [job_id]
        assert b.get("/v1/jobs").json()["items"] == []
        for method, path in [
            ("GET", f"/v1/jobs/{job_id}"), ("GET", f"/v1/jobs/{job_id}/documents"),
            ("GET", f"/v1/jobs/{job_id}/documents/1"), ("GET", f"/v1/jobs/{job_id}/export"),
            ("GET", f"/v1/jobs/{job_id}/events"), ("POST", f"/v1/jobs/{job_id}/cancel"),
            ("POST", f"/v1/jobs/{job_id}/retry"),
        ]:
            assert _error(b.request(method, path), 404)["code"] == "job_not_found", path
        # no runner in this app (job_workers=0): the job waits, and cancel ends it at once
        assert a.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        assert a.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        a.close()
        b.close()


@pytest.mark.slow
def test_kill_9_during_a_job_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    pdfs = _slow_pdfs(tmp_path / "src", 24)
    proc = start_server(data, port, "run.window=2")
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        files = [("files", (p.name, p.read_bytes())) for p in pdfs]
        job_id = client.post(
            "/v1/jobs", files=files, data={"settings": json.dumps({"extract.ocr": "always"})}
        ).json()["id"]
        deadline = time.monotonic() + 300
        while client.get(f"/v1/jobs/{job_id}").json()["counts"].get("done", 0) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        kill_group(proc)
        client.close()
        proc = start_server(data, port, "run.window=2")
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
        job = wait_job(client, job_id, ("done", "failed"))
        assert job["status"] == "done" and job["runs"] == 2
        assert job["counts"]["done"] == len(pdfs)
        lines = [json.loads(x) for x in client.get(f"/v1/jobs/{job_id}/export").text.splitlines()]
        assert sorted(Path(r["source"]).name for r in lines) == sorted(p.name for p in pdfs)
        # every part file holds each document exactly once (the parts keep the server's
        # paths; the export names each upload by its file name)
        from collections import Counter

        from engine_kit import read_parts

        parts = read_parts(data / "jobs" / job_id)
        assert Counter(Path(r["source"]).name for r in parts) == Counter(p.name for p in pdfs)
        client.close()
    finally:
        kill_group(proc)
        shutil.rmtree(tmp_path / "src", ignore_errors=True)


@pytest.mark.parametrize(
    "filters",
    [{}, {"status": "done"}, {"label": "invoice"}, {"q": "x"}, {"status": "failed", "q": "a"},
     {"status": "failed", "category": "invalid_output"}, {"status": "done", "labels": ["invoice", "receipt"]}],
)
def test_documents_page_query_uses_an_index(tmp_path: Path, filters: dict[str, Any]) -> None:
    """Keyset pages never sort: each filter walks an index (or the primary key) in id order."""
    from docmill.state import Store
    from docmill.state.browse import LedgerReader, page_query

    Store.open(tmp_path).close()
    sql, params = page_query(
        status=filters.get("status"), label=filters.get("label"), q=filters.get("q"),
        after=10, limit=100, category=filters.get("category"), labels=filters.get("labels"),
    )
    with LedgerReader.open(tmp_path) as reader:
        plan = reader.plan(sql, params)
    assert "TEMP B-TREE" not in plan, plan
    assert "USING INDEX" in plan or "INTEGER PRIMARY KEY" in plan, plan
