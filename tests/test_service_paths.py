"""No server paths out, allowed roots stay allowed: a real `docmill serve` on loopback,
real jobs on generated PDFs, every output a key can read scanned for server paths."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from docmill.model import DocState, ErrorInfo, FailureCategory, Record
from docmill.service.jobs import Job
from docmill.service.public import DATA_DIR_MARK, names_for, public_source
from pdfgen import write_pdf
from service_kit import free_port, kill_group, start_server, wait_job

MARKER = "MARKER-5d81e2-never-exported"


@dataclass(frozen=True)
class Live:
    client: httpx.Client
    top: Path  # holds the data folder, the allowed root and a folder outside it
    data: Path
    allowed: Path
    outside: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    top = tmp_path_factory.mktemp("paths")
    data, allowed, outside = top / "data", top / "allowed", top / "outside"
    for folder in (data, allowed, outside / "dir"):
        folder.mkdir(parents=True)
    (outside / "secret.txt").write_text(MARKER + "\n")
    write_pdf(outside / "dir" / "c.pdf", [MARKER])
    port = free_port()
    proc = start_server(
        data, port, f"service.allowed_roots={json.dumps([str(allowed)])}",
        "sources.follow_symlinks=true",
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield Live(client, top, data, allowed, outside)
    finally:
        kill_group(proc)


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def assert_no_server_path(value: Any, live: Live, where: str) -> None:
    hidden = {str(live.top), os.path.realpath(live.top), str(live.data), str(live.allowed)}
    for text in strings(value):
        assert not text.startswith("/"), f"{where}: an absolute path: {text!r}"
        assert not any(h in text for h in hidden), f"{where}: a server path in {text!r}"
        assert MARKER not in text, f"{where}: the file outside the root was read: {text!r}"


def assert_no_server_bytes(raw: bytes, live: Live, where: str) -> None:
    for h in {str(live.top), os.path.realpath(live.top), MARKER}:
        assert h.encode() not in raw, f"{where}: {h!r} in the raw bytes"


def exports(live: Live, job_id: str) -> dict[str, list[dict[str, Any]]]:
    """The job's records in every export format (each also scanned as raw bytes)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for fmt in ("jsonl", "csv", "parquet"):
        r = live.client.get(f"/v1/jobs/{job_id}/export", params={"format": fmt})
        assert r.status_code == 200, r.text
        assert_no_server_bytes(r.content, live, f"{fmt} export")
        if fmt == "jsonl":
            out[fmt] = [json.loads(line) for line in r.text.splitlines() if line.strip()]
        elif fmt == "csv":
            import csv

            out[fmt] = list(csv.DictReader(io.StringIO(r.text)))
        else:
            out[fmt] = pq.read_table(io.BytesIO(r.content)).to_pylist()
    return out


def every_output(live: Live, job_id: str) -> dict[str, Any]:
    """What a key can read of a job: its views, documents, records, exports, events."""
    c = live.client
    docs = c.get(f"/v1/jobs/{job_id}/documents", params={"limit": 1000}).json()["items"]
    return {
        "job": c.get(f"/v1/jobs/{job_id}").json(),
        "jobs": c.get("/v1/jobs").json(),
        "documents": docs,
        "records": [c.get(f"/v1/jobs/{job_id}/documents/{d['id']}").json() for d in docs],
        "exports": exports(live, job_id),
        "events": c.get(f"/v1/jobs/{job_id}/events").text,
    }


def test_upload_and_folder_jobs_name_files_without_server_paths(live: Live) -> None:
    c = live.client
    sub = live.allowed / "sub"
    write_pdf(sub / "x.pdf", ["the x document"])
    write_pdf(sub / "deeper" / "y.pdf", ["the y document"])
    (sub / "broken.pdf").write_bytes(b"%PDF-1.4\nnot a pdf at all\n")
    pdf = write_pdf(live.top / "a.pdf", ["the a document"]).read_bytes()
    files = [("files", ("a.pdf", pdf)), ("files", ("b.pdf", pdf + b"\n% b")),
             ("files", ("c.pdf", b"%PDF-1.7 truncated"))]
    upload = c.post("/v1/jobs", files=files)
    folder = c.post("/v1/jobs", json={"source": str(sub)})
    assert upload.status_code == folder.status_code == 202, (upload.text, folder.text)
    assert folder.json()["source"] == "sub"
    names = {upload.json()["id"]: {"a.pdf", "b.pdf", "c.pdf"},
             folder.json()["id"]: {"sub/x.pdf", "sub/deeper/y.pdf", "sub/broken.pdf"}}
    for job_id, expected in names.items():
        job = wait_job(c, job_id, ("done", "failed"))
        assert job["status"] == "done", job
        seen = every_output(live, job_id)
        assert_no_server_path(seen, live, job_id)
        assert {d["source"] for d in seen["documents"]} == expected
        assert {r["source"] for r in seen["records"]} == expected
        for fmt, records in seen["exports"].items():
            assert {r["source"] for r in records} == expected, fmt
        failed = [r for r in seen["records"] if r["status"] == "failed"]
        assert len(failed) == 1 and failed[0]["error"]["category"] == "corrupt", failed
    # searching documents looks at the names the caller sees, never the server folder
    folder_id = folder.json()["id"]
    hits = c.get(f"/v1/jobs/{folder_id}/documents", params={"q": "deeper"}).json()["items"]
    assert [d["source"] for d in hits] == ["sub/deeper/y.pdf"]
    for probe in (str(live.allowed), str(live.top), f"{live.allowed}/sub", "/tmp"):
        found = c.get(f"/v1/jobs/{folder_id}/documents", params={"q": probe}).json()["items"]
        assert found == [], probe


def test_a_symlink_out_of_an_allowed_root_is_refused_never_read(live: Live) -> None:
    """The attack: a folder job on an allowed root holding a link to a file outside it
    (and a linked folder outside it, with sources.follow_symlinks on the server)."""
    c = live.client
    job_root = live.allowed / "attack"
    write_pdf(job_root / "fine.pdf", ["an ordinary document"])
    os.symlink(live.outside / "secret.txt", job_root / "passwd.txt")
    os.symlink(live.outside / "dir", job_root / "linked")
    os.symlink("fine.pdf", job_root / "alias.pdf")  # stays inside: allowed
    r = c.post("/v1/jobs", json={"source": str(job_root)})
    assert r.status_code == 202, r.text
    job = wait_job(c, r.json()["id"], ("done", "failed"))
    assert job["status"] == "done" and job["failures"] == {"not_allowed": 2}, job
    records = {rec["source"]: rec for rec in exports(live, job["id"])["jsonl"]}
    assert sorted(records) == ["attack/alias.pdf", "attack/fine.pdf", "attack/linked", "attack/passwd.txt"]
    for name in ("attack/passwd.txt", "attack/linked"):
        assert records[name]["status"] == "failed", records[name]
        assert records[name]["error"]["category"] == "not_allowed"
        assert records[name]["size"] == 0
    assert records["attack/alias.pdf"]["status"] == "done"
    assert records["attack/fine.pdf"]["text"] == ["an ordinary document"]
    assert_no_server_path(every_output(live, job["id"]), live, "attack job")
    # naming the link directly is refused before any job exists (as before)
    direct = c.post("/v1/jobs", json={"source": str(job_root / "passwd.txt")})
    assert direct.status_code == 403 and direct.json()["error"]["code"] == "source_not_allowed"


# --- the mapping itself (pure) ----------------------------------------------------------


def _job(kind: str, sources: list[str], description: str, error: str | None = None) -> Job:
    return Job("j1", "local", "failed", 0.0, 0.0, 1.0, kind, sources, description, {}, {},
               False, None, None, 1, error)


def test_public_source() -> None:
    assert public_source(["/srv/root"], "/srv/root/sub/a.pdf") == "sub/a.pdf"
    assert public_source(["/srv/root/"], "/srv/root/a.pdf") == "a.pdf"
    assert public_source(["/elsewhere", "/srv/root"], "/srv/root/a.pdf") == "a.pdf"
    # not under its folder (never expected): the file name alone, never the path
    assert public_source(["/srv/root"], "/srv/rootkit/x/a.pdf") == "a.pdf"
    assert public_source(["/srv/root"], "/srv/root") == "root"


def test_names_for_jobs_scrub_messages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    allowed = tmp_path / "allowed"
    (allowed / "sub").mkdir(parents=True)
    upload_dir = data / "uploads" / "j1"
    upload = names_for(_job("upload", [str(upload_dir)], "2 uploaded files"), upload_dir, data, ())
    stored = f"{upload_dir}/report.pdf"
    record = Record(1, stored, None, 3, None, DocState.FAILED,
                    ErrorInfo(FailureCategory.IO, f"cannot open {stored} (in {data}/tmp)", "read"),
                    None, None, {}, 1, None)
    public = upload.record(record)
    assert public.source == "report.pdf"
    assert public.error == ErrorInfo(FailureCategory.IO, f"cannot open report.pdf (in {DATA_DIR_MARK}/tmp)", "read")
    path_job = _job("path", [str(allowed / "sub")], str(allowed / "sub"), f"no ledger at {data}/jobs/j1")
    names = names_for(path_job, data / "uploads" / "j1", data, [str(tmp_path / "other"), str(allowed)])
    assert names.source(f"{allowed}/sub/a.pdf") == "sub/a.pdf"
    assert names.folder(str(allowed / "sub")) == "sub"
    assert names.folder(str(allowed)) == "."
    assert names.text(f"{allowed}/sub/a.pdf is bad") == "sub/a.pdf is bad"
    assert names.text(path_job.error or "") == f"no ledger at {DATA_DIR_MARK}/jobs/j1"
    # the allowed root list changed since: names relative to the job's own folder
    moved = names_for(path_job, data / "uploads" / "j1", data, [])
    assert moved.source(f"{allowed}/sub/deeper/a.pdf") == "deeper/a.pdf"
