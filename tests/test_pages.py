"""A document's page as an image (``service/pages.py``) and how long uploads are kept
(``service/retention.py``), against a real server on loopback: pages are drawn by the
extract service's real worker processes, keys and tiers are real."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from docmill.processors.pdf.page_images import VIEW_MAX_PIXELS
from docmill.service.app import create_app
from docmill.service.jobs import JobLedger, new_job_id
from docmill.service.keys import KeyStore
from docmill.service.retention import ORPHAN_AFTER_S, SWEEP_GRACE_S, retry_refusal, sweep
from docmill.settings import load_settings
from pdfgen import ruled_table, write_pdf
from service_kit import server_in_thread, wait_job

ROWS = [["Region", "Units", "Revenue"], ["North", "120", "4,310"], ["South", "95", "3,020"], ["East", "143", "5,115"]]
BROKEN = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> broken"


def table_pdf(path: Path, heading: str = "Sales by region") -> Path:
    """Three pages: ``heading`` and one ruled table, two ruled tables, prose."""
    return write_pdf(path, [heading, "Two tables", "Only prose on this page."], [
        ruled_table(ROWS),
        ruled_table(ROWS, top=700) + ruled_table(ROWS[:3], left=120, top=380, col_width=90),
    ])


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def metric(client: httpx.Client, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.split()[-1])
    return 0.0


@dataclass
class Served:
    base: str
    data: Path
    roots: Path  # service.allowed_roots
    key: str
    other_key: str
    job_id: str
    docs: dict[str, int]  # source name -> document id

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=120, headers={"Authorization": f"Bearer {key or self.key}"})

    def page(self, name: str, n: int, **params: Any) -> httpx.Response:
        with self.client() as c:
            return c.get(f"/v1/jobs/{self.job_id}/documents/{self.docs[name]}/pages/{n}.png", params=params)


def _settings(data: Path, *sets: tuple[str, str]) -> Any:
    return load_settings(env={}, overrides={
        "service.data_dir": str(data), "service.job_workers": "1", "service.extract_workers": "1",
        "run.workers": "1", "service.auth": "keys", **dict(sets),
    })


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("pages")
    data = tmp / "data"
    roots = tmp / "roots"
    roots.mkdir()
    with KeyStore.open(data) as keys:
        _, key = keys.create("pro", "pages")
        _, other = keys.create("pro", "someone else")
    files = {
        "tables.pdf": table_pdf(tmp / "tables.pdf").read_bytes(),
        "huge.pdf": write_pdf(tmp / "huge.pdf", ["a poster"], page_size=(30_000, 30_000)).read_bytes(),
        "broken.pdf": BROKEN,
        "notes.txt": b"plain words\n",
    }
    settings = _settings(data, ("service.allowed_roots", json.dumps([str(roots)])))
    with server_in_thread(create_app(settings)) as base:
        with httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {key}"}) as c:
            r = c.post("/v1/jobs", files=[("files", (n, b)) for n, b in files.items()],
                       data={"settings": json.dumps({"extract.tables": True})})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            wait_job(c, job_id, ("done",))
            items = c.get(f"/v1/jobs/{job_id}/documents").json()["items"]
        yield Served(base, data, roots, key, other, job_id, {d["source"]: d["id"] for d in items})


def test_a_page_is_drawn_once_in_a_worker_then_cached(served: Served) -> None:
    with served.client() as c:
        record = c.get(f"/v1/jobs/{served.job_id}/documents/{served.docs['tables.pdf']}").json()
        rendered = metric(c, 'docmill_page_images_total{source="rendered"}')
    assert [t["page"] for t in record["tables"]] == [0, 1, 1]
    first = served.page("tables.pdf", 1)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/png" and first.headers["x-page-cache"] == "miss"
    # the page's size in points, the frame of the tables' bbox; the image at the dpi asked
    assert (first.headers["x-page-width-pt"], first.headers["x-page-height-pt"]) == ("612.0", "792.0")
    assert first.headers["x-page-count"] == "3" and first.headers["x-page-dpi"] == "100"
    assert png_size(first.content) == (850, 1100)  # 612 x 792 pt at 100 dpi
    # it counts as a request of the key's tier, like every /v1 route
    assert int(first.headers["ratelimit-limit"]) > 0 and "ratelimit-remaining" in first.headers
    cached = list((served.data / "jobs" / served.job_id / "pages" / str(served.docs["tables.pdf"])).glob("*-1-100.png"))
    assert len(cached) == 1 and cached[0].read_bytes() == first.content
    stamp = cached[0].stat().st_mtime_ns
    # the second answer comes from the job's folder: not drawn again
    again = served.page("tables.pdf", 1)
    assert again.status_code == 200 and again.headers["x-page-cache"] == "hit"
    assert again.content == first.content and again.headers["x-page-width-pt"] == "612.0"
    assert cached[0].stat().st_mtime_ns == stamp
    with served.client() as c:
        assert metric(c, 'docmill_page_images_total{source="rendered"}') == rendered + 1
        assert metric(c, 'docmill_page_images_total{source="cached"}') >= 1
    # another resolution is another image
    sharp = served.page("tables.pdf", 1, dpi=200)
    assert sharp.headers["x-page-cache"] == "miss" and png_size(sharp.content) == (1700, 2200)


def test_a_huge_page_is_drawn_under_the_pixel_cap(served: Served) -> None:
    r = served.page("huge.pdf", 0, dpi=200)
    assert r.status_code == 200, r.text
    assert r.headers["x-page-width-pt"] == "30000.0"
    width, height = png_size(r.content)
    assert width * height <= VIEW_MAX_PIXELS and width == height > 1000
    assert int(r.headers["x-page-dpi"]) < 200


def test_page_answers_that_are_not_an_image(served: Served) -> None:
    path = f"/v1/jobs/{served.job_id}/documents/{served.docs['tables.pdf']}/pages"
    with served.client(served.other_key) as c:  # another key's job does not exist for it
        r = c.get(f"{path}/0.png")
        assert r.status_code == 404 and r.json()["error"]["code"] == "job_not_found"
    with served.client() as c:
        r = c.get(f"{path}/3.png")
        assert r.status_code == 404 and r.json()["error"]["code"] == "page_not_found"
        assert r.json()["error"]["details"] == {"pages": 3}
        assert c.get(f"{path}/-1.png").status_code == 422
        r = c.get(f"{path}/0.png", params={"dpi": 9000})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_dpi"
        r = c.get(f"/v1/jobs/{served.job_id}/documents/999/pages/0.png")
        assert r.status_code == 404 and r.json()["error"]["code"] == "document_not_found"
        assert c.get("/v1/jobs/nope/documents/1/pages/0.png").json()["error"]["code"] == "job_not_found"
    r = served.page("notes.txt", 0)
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_a_pdf"
    # a PDF PDFium cannot open costs a worker's try, not the service: a clear 422, and the
    # next page is drawn as before
    r = served.page("broken.pdf", 0)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "render_failed" and r.json()["error"]["details"]["category"] == "corrupt"
    assert served.page("tables.pdf", 0).status_code == 200


def test_a_folder_job_page_and_its_changed_or_missing_file(served: Served) -> None:
    folder = served.roots / "reports"
    folder.mkdir()
    pdf = table_pdf(folder / "q3.pdf")
    with served.client() as c:
        job_id = c.post("/v1/jobs", json={"source": str(folder), "settings": {"extract.tables": True}}).json()["id"]
        job = wait_job(c, job_id, ("done",))
        assert job["can_retry"] is True  # a folder's files are the caller's: never gone here
        (doc,) = c.get(f"/v1/jobs/{job_id}/documents").json()["items"]
        url = f"/v1/jobs/{job_id}/documents/{doc['id']}/pages"
        assert c.get(f"{url}/0.png").headers["x-page-cache"] == "miss"
        # a page not drawn yet, from a file that changed since the run
        pdf.write_bytes(pdf.read_bytes() + b"\n% appended\n")
        r = c.get(f"{url}/2.png")
        assert r.status_code == 409 and r.json()["error"]["code"] == "source_changed"
        pdf.unlink()
        r = c.get(f"{url}/2.png")
        assert r.status_code == 410 and r.json()["error"]["code"] == "source_gone"
        # what was drawn from the file the job read is still there
        assert c.get(f"{url}/0.png").headers["x-page-cache"] == "hit"


def test_uploads_kept_zero_hours_are_gone_when_the_job_ends(tmp_path: Path) -> None:
    """``service.upload_retention_h = 0``: the old behaviour; retry and the page view
    both say so, and the job's JSON said it before anyone asked."""
    data = tmp_path / "data"
    with KeyStore.open(data) as keys:
        _, key = keys.create("pro", "t")
    settings = _settings(data, ("service.upload_retention_h", "0"))
    with server_in_thread(create_app(settings)) as base, httpx.Client(
        base_url=base, timeout=120, headers={"Authorization": f"Bearer {key}"}
    ) as c:
        job_id = c.post("/v1/jobs", files=[("files", ("t.pdf", table_pdf(tmp_path / "t.pdf").read_bytes()))]).json()["id"]
        job = wait_job(c, job_id, ("done",))
        assert job["source"] == "1 uploaded file"
        assert job["can_retry"] is False and job["retry_refused"]["code"] == "sources_gone"
        assert not (data / "uploads" / job_id).exists()
        r = c.post(f"/v1/jobs/{job_id}/retry")
        assert r.status_code == 409 and r.json()["error"] == {"code": "sources_gone", "message": job["retry_refused"]["message"]}
        (doc,) = c.get(f"/v1/jobs/{job_id}/documents").json()["items"]
        r = c.get(f"/v1/jobs/{job_id}/documents/{doc['id']}/pages/0.png")
        assert r.status_code == 410 and r.json()["error"]["code"] == "source_gone"


def test_the_sweep_keeps_uploads_for_the_retention_then_removes_them(tmp_path: Path) -> None:
    ledger = JobLedger.open(tmp_path)
    job_id = new_job_id()
    ledger.create(job_id, "k", "upload", [str(ledger.upload_dir(job_id))], "1 uploaded file", {})
    (ledger.upload_dir(job_id)).mkdir(parents=True)
    (ledger.upload_dir(job_id) / "a.pdf").write_bytes(b"%PDF")
    (ledger.job_dir(job_id) / "pages" / "1").mkdir(parents=True)
    running = ledger.claim("test:1:1")
    assert running is not None
    busy = retry_refusal(running, ledger, 24, time.time())
    assert busy is not None and busy.code == "job_active"
    ledger.finish(job_id, "test:1:1", "done", {})
    job = ledger.get(job_id)
    assert job is not None and job.finished_at is not None
    ended, day = job.finished_at, 24 * 3600.0
    # within the retention: kept, and retry is possible
    assert retry_refusal(job, ledger, 24, ended + day - 1) is None
    assert sweep(ledger, 24, ended + day - 1) == 0 and ledger.upload_dir(job_id).is_dir()
    # past it: refused at once, by time alone, while the files wait for the grace period
    refusal = retry_refusal(job, ledger, 24, ended + day)
    assert refusal is not None and (refusal.status, refusal.code) == (409, "sources_gone")
    assert sweep(ledger, 24, ended + day + 1) == 0 and ledger.upload_dir(job_id).is_dir()
    # then the uploads and the pages drawn from them go; so does an old folder no job
    # owns (a create that failed), but not a new one (a create in flight)
    later = ended + day + SWEEP_GRACE_S + 1
    orphan, fresh = ledger.data_dir / "uploads" / "old-orphan", ledger.data_dir / "uploads" / "in-flight"
    for folder, age in ((orphan, ORPHAN_AFTER_S + 1), (fresh, 10)):
        folder.mkdir()
        os.utime(folder, (later - age, later - age))
    assert sweep(ledger, 24, later) == 2
    assert not ledger.upload_dir(job_id).exists() and not (ledger.job_dir(job_id) / "pages").exists()
    assert not orphan.exists() and fresh.is_dir()
    ledger.close()


def test_a_folder_job_page_is_drawn_only_inside_its_root(served: Served, tmp_path: Path) -> None:
    """The page view reads what the job's run could read, no more: a link that leads
    outside was refused by the run and is refused here (403), and a file swapped for such a
    link after the run is not drawn through it (the worker opens it inside the root)."""
    outside = table_pdf(tmp_path / "secret.pdf")  # another folder's PDF, not the caller's
    folder = served.roots / "linked"
    folder.mkdir()
    (folder / "escape.pdf").symlink_to(outside)
    inside = table_pdf(folder / "fine.pdf")
    with served.client() as c:
        job_id = c.post("/v1/jobs", json={"source": str(folder)}).json()["id"]
        wait_job(c, job_id, ("done",))
        items = c.get(f"/v1/jobs/{job_id}/documents").json()["items"]
        docs = {d["source"].rsplit("/", 1)[-1]: d for d in items}
        assert docs["escape.pdf"]["status"] == "failed"
        url = f"/v1/jobs/{job_id}/documents"
        r = c.get(f"{url}/{docs['escape.pdf']['id']}/pages/0.png")
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_allowed"
        # the run read fine.pdf; now it becomes a link to the outside PDF, of the same size
        size = inside.stat().st_size
        inside.unlink()
        padded = tmp_path / "padded.pdf"
        padded.write_bytes(outside.read_bytes()[:size].ljust(size, b" "))
        (folder / "fine.pdf").symlink_to(padded)
        r = c.get(f"{url}/{docs['fine.pdf']['id']}/pages/0.png")
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"]["category"] == "not_allowed"
