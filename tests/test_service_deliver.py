"""The service's jobs from store URLs with the operator's deliveries: a real `docmill serve`
on loopback against moto's S3 server. A job reads only below service.allowed_sources and
delivers only to service.allowed_deliveries, named; anything else is 403 naming it, and a
destination slipped into a job's settings never receives a byte."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine_kit import docmill_cmd
from remote_kit import MotoS3, s3_env
from service_kit import free_port, kill_group, wait_job, wait_ready

pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is in the dev lock: run scripts/setup dev")
pytest.importorskip("moto", reason="moto[server] is in the dev lock: run scripts/setup dev")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    server = MotoS3()
    try:
        server.bucket("acme-in")
        server.bucket("acme-inbox")
        server.bucket("acme-out")
        for i in range(3):
            server.put("acme-in", f"inbox/2024/note-{i}.txt", f"Invoice {i}\nTotal {i}0.00 EUR\n".encode())
        server.put("acme-in", "inbox/letter.txt", b"Dear customer,\nthank you.\n")
        server.put("acme-inbox", "secret/x.txt", b"not yours\n")
        yield server
    finally:
        server.stop()


@pytest.fixture
def served(moto: MotoS3, tmp_path: Path) -> Iterator[tuple[httpx.Client, Path]]:
    archive = tmp_path / "archive"
    cfg = tmp_path / "server.toml"
    cfg.write_text(f"""
[service]
data_dir = "{tmp_path / 'data'}"
auth = "none"
extract_workers = 1
allowed_sources = ["s3://acme-in/inbox/"]

[run]
workers = 1

[service.allowed_deliveries.archive]
kind = "files"
to = "{archive}/{{reldir}}/{{stem}}-{{sha256:8}}.{{ext}}"

[service.allowed_deliveries.parts]
kind = "records"
to = "s3://acme-out/jobs/"
""", encoding="utf-8")
    port = free_port()
    log = open(tmp_path / "server.log", "a")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        docmill_cmd("serve", "--config", str(cfg), "--port", str(port)),
        stdout=log, stderr=subprocess.STDOUT, env=s3_env(moto.endpoint), start_new_session=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield client, archive
    finally:
        kill_group(proc)  # type: ignore[arg-type]
        log.close()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == code, body
    return body


def test_a_job_reads_and_delivers_only_where_the_operator_allowed(
    served: tuple[httpx.Client, Path], tmp_path: Path, moto: MotoS3
) -> None:
    client, archive = served
    elsewhere = tmp_path / "smuggled"
    # sources outside the allow-list
    for source in ("s3://acme-out/jobs/", "s3://acme-inbox/secret/", "s3://acme-in/", "sftp://acme-in/inbox/"):
        body = refused(client.post("/v1/jobs", json={"source": source}), 403, "source_not_allowed")
        assert source in body["message"] or "allowed" in body["message"]
    refused(client.post("/v1/jobs", json={"source": "s3://acme-in/inbox/../x/"}), 422, "invalid_source")
    refused(client.post("/v1/jobs", json={"source": "s3://k:pw@acme-in/inbox/"}), 422, "invalid_source")
    # deliveries the server does not offer, by name or as a table
    body = refused(client.post("/v1/jobs", json={"source": "s3://acme-in/inbox/", "deliveries": ["hook"]}),
                   403, "delivery_not_allowed")
    assert "'hook'" in body["message"] and body["details"]["allowed"] == ["archive", "parts"]
    refused(client.post("/v1/jobs", json={"source": "s3://acme-in/inbox/", "deliveries": [
        {"name": "archive", "kind": "files", "to": str(elsewhere)}]}), 403, "delivery_not_allowed")
    # a destination smuggled through the job's settings
    smuggled = [
        {"deliver": [{"name": "x", "kind": "files", "to": f"{elsewhere}/{{name}}"}]},
        {"deliver.to": str(elsewhere)},
        {"service.allowed_deliveries": {"archive": {"kind": "files", "to": str(elsewhere)}}},
        {"service.allowed_sources": ["s3://acme-inbox/"]},
    ]
    for settings in smuggled:
        body = refused(client.post("/v1/jobs", json={"source": "s3://acme-in/inbox/", "settings": settings,
                                                     "deliveries": ["archive"]}), 403, "delivery_not_allowed")
        assert body["details"]["setting"] == next(iter(settings))
    form = {"settings": json.dumps(smuggled[0]), "deliveries": json.dumps(["archive"])}
    refused(client.post("/v1/jobs", files=[("files", ("a.txt", b"hello\n"))], data=form), 403, "delivery_not_allowed")
    form = {"deliveries": json.dumps(["nowhere"])}
    refused(client.post("/v1/jobs", files=[("files", ("a.txt", b"hello\n"))], data=form), 403, "delivery_not_allowed")
    assert client.get("/v1/jobs").json()["items"] == []  # nothing was created
    assert not elsewhere.exists()

    # an allowed source with the operator's deliveries, end to end
    created = client.post("/v1/jobs", json={"source": "s3://acme-in/inbox/", "deliveries": ["archive", "parts"]})
    assert created.status_code == 202, created.text
    job = wait_job(client, created.json()["id"], ("done", "failed"))
    assert job["status"] == "done", job
    assert job["counts"]["done"] == 4 and job["source"] == "s3://acme-in/inbox/"
    assert job["deliveries"]["archive"] == {"kind": "files", "done": 4, "pending": 0, "failed": 0, "failures": {}}
    assert job["deliveries"]["parts"]["done"] == 4
    names = sorted(d["source"] for d in client.get(f"/v1/jobs/{job['id']}/documents").json()["items"])
    assert names == ["2024/note-0.txt", "2024/note-1.txt", "2024/note-2.txt", "letter.txt"]
    filed = sorted(str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file())
    assert [f.rsplit("-", 1)[0] for f in filed] == ["2024/note-0", "2024/note-1", "2024/note-2", "letter"]
    assert (archive / filed[-1]).read_bytes() == b"Dear customer,\nthank you.\n"
    parts = moto.client.list_objects_v2(Bucket="acme-out", Prefix="jobs/").get("Contents", [])
    lines = [
        json.loads(line)
        for item in parts
        for line in moto.client.get_object(Bucket="acme-out", Key=item["Key"])["Body"].read().splitlines()
    ]
    assert sorted(r["source"] for r in lines) == [f"s3://acme-in/inbox/2024/note-{i}.txt" for i in range(3)] + [
        "s3://acme-in/inbox/letter.txt"
    ]
    # an upload job may name a delivery too
    form = {"deliveries": json.dumps(["archive"])}
    upload = client.post("/v1/jobs", files=[("files", ("memo.txt", b"memo\n"))], data=form)
    assert upload.status_code == 202, upload.text
    assert wait_job(client, upload.json()["id"], ("done", "failed"))["deliveries"]["archive"]["done"] == 1
    assert any(p.name.startswith("memo-") for p in archive.iterdir())
