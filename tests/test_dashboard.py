"""The web dashboard in a real browser (Debian's Chromium driven by Playwright) against a
real `docmill serve` on loopback. Screenshots go to test-artifacts/dashboard/."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from docmill.model import DocState, ErrorInfo, FailureCategory, ProcessOutcome, SourceFile
from docmill.service.app import create_app
from docmill.service.dashboard import STATIC_TYPES
from docmill.service.jobrunner import job_progress
from docmill.service.jobs import JobLedger, new_job_id
from docmill.service.keys import KeyStore
from docmill.settings import load_settings
from docmill.state import Store, StoreError
from docmill.state.browse import LedgerReader
from engine_kit import REAL, ROOT
from pdfgen import write_pdf
from service_kit import free_port, kill_group, server_in_thread, start_server, wait_job
from test_pages import table_pdf

try:
    from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright
except ImportError:  # pragma: no cover - the dev extra is not installed
    sync_playwright = None

CHROMIUM = Path("/usr/bin/chromium")
PDFS = REAL / "pdfplumber" / "examples" / "pdfs"
SHOTS = ROOT / "test-artifacts" / "dashboard"
STATIC = ROOT / "src" / "docmill" / "service" / "dashboard"
HOSTILE_TEXT = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'

browser_needed = pytest.mark.skipif(
    sync_playwright is None or not CHROMIUM.is_file(),
    reason="needs the playwright package and Debian's chromium at /usr/bin/chromium",
)
# for the tests on generated documents only: no corpus needed
chromium_needed = pytest.mark.skipif(
    sync_playwright is None or not CHROMIUM.is_file(),
    reason="needs the playwright package and Debian's chromium at /usr/bin/chromium",
)


# --- no browser: the files and their headers ---------------------------------------------


def test_static_files_are_strict() -> None:
    html = (STATIC / "index.html").read_text()
    js = "\n".join(p.read_text() for p in sorted(STATIC.glob("*.js")))
    assert {p.name for p in STATIC.iterdir()} == {"index.html", *STATIC_TYPES}
    # no inline script or style, no handler attributes: the CSP allows none
    assert not re.search(r"<script(?![^>]*\ssrc=)", html)
    assert not re.search(r"\son[a-z]+=", html) and "style=" not in html
    # the page never parses markup: DOM built with createElement and text nodes only
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink
    assert "Authorization" in js and "new EventSource" not in js


def test_dashboard_routes_and_headers(tmp_path: Path) -> None:
    settings = load_settings(env={}, overrides={
        "service.data_dir": str(tmp_path / "d"), "service.job_workers": "0", "service.extract_workers": "1",
        "service.auth": "none",
    })
    with server_in_thread(create_app(settings)) as base:
        index = httpx.get(base + "/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        csp = index.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
        assert index.headers["x-content-type-options"] == "nosniff"
        js = httpx.get(base + "/static/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "content-security-policy" in js.headers
        for name in STATIC_TYPES:
            r = httpx.get(f"{base}/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"] == STATIC_TYPES[name], name
        for bad in ("/static/index.html", "/static/..%2Fdashboard.py", "/static/nope.js"):
            r = httpx.get(base + bad)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", bad
        # the files are public; the API behind them is not part of the dashboard
        assert "/" not in httpx.get(base + "/openapi.json").json()["paths"]


def test_a_ledger_being_created_reads_as_not_started(tmp_path: Path) -> None:
    """A job page opened while its run creates the ledger (file there, no tables yet)
    answered 500 once; the reader now says "not ready", which the routes treat as
    "not started"."""
    sqlite3.connect(tmp_path / "docmill.db").close()  # what a run has made before its migrations
    with pytest.raises(StoreError, match="not ready"):
        LedgerReader.open(tmp_path)
    settings = load_settings(env={}, overrides={
        "service.data_dir": str(tmp_path / "d"), "service.job_workers": "0", "service.extract_workers": "1",
        "service.auth": "none",
    })
    with server_in_thread(create_app(settings)) as base, httpx.Client(base_url=base) as client:
        job_id = client.post("/v1/jobs", files=[("files", ("a.txt", b"words"))]).json()["id"]
        job_dir = tmp_path / "d" / "jobs" / job_id
        job_dir.mkdir(parents=True)
        sqlite3.connect(job_dir / "docmill.db").close()
        r = client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200 and r.json()["counts"] == {}
        assert client.get(f"/v1/jobs/{job_id}/documents").json()["items"] == []


# --- the browser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    assert sync_playwright is not None
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield b
    b.close()


class Watched:
    """A page with every console error, page error and /v1 request it made."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[tuple[str, str]] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("request", lambda req: self.requests.append((req.url, req.headers.get("authorization", ""))))

    def unexpected_errors(self, *statuses: int) -> list[str]:
        """Errors, less Chromium's own line for an answer with one of ``statuses``."""
        allowed = tuple(f"status of {s} " for s in statuses)
        return [e for e in self.errors if not any(a in e for a in allowed)]

    def api_calls(self) -> list[tuple[str, str]]:
        return [(u, a) for u, a in self.requests if "/v1/" in u]


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    w = Watched(page)
    yield w
    print("browser errors:", w.errors)  # shown when the test fails
    context.close()


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("roots")


@dataclass(frozen=True)
class Live:
    """A real server with API keys on, and one real key of it."""

    base: str
    key: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60, headers={"Authorization": f"Bearer {self.key}"})


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, roots: Path) -> Iterator[Live]:
    """One server for the browser tests: one job at a time, one document at a time."""
    data = tmp_path_factory.mktemp("svc") / "data"
    data.mkdir()
    with KeyStore.open(data) as keys:
        _, key = keys.create("unlimited", "dashboard tests")
    port = free_port()
    proc = start_server(data, port, "service.auth=keys", "run.window=1", f"service.allowed_roots={roots}")
    try:
        yield Live(f"http://127.0.0.1:{port}", key)
    finally:
        kill_group(proc)


def sign_in(w: Watched, base: str, key: str = "dm_test_key") -> None:
    w.page.goto(base + "/")
    expect(w.page.locator("#signin")).to_be_visible()
    w.page.fill("#api-key", key)
    w.page.click("#signin button[type=submit]")
    expect(w.page.locator("#jobs")).to_be_visible()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def stat(page: Page, name: str) -> int:
    return int(page.locator(f"#stat-{name}").inner_text().replace(",", ""))


def job_id_from_hash(page: Page) -> str:
    page.wait_for_function("() => /^#\\/jobs\\/[0-9a-f]{32}$/.test(location.hash)")
    return str(page.evaluate("location.hash")).split("/")[-1]


def doc_ids(page: Page) -> list[int]:
    return [int(x) for x in page.locator("#docs-body tr[data-doc]").evaluate_all("rs => rs.map(r => r.dataset.doc)")]


@browser_needed
def test_sign_in_upload_progress_and_a_document(service: Live, watched: Watched) -> None:
    page = watched.page
    page.goto(service.base + "/")
    page.wait_for_function("() => location.hash === '#/signin'")
    shot(page, "01-sign-in")
    sign_in(watched, service.base, service.key)
    pdfs = [PDFS / n for n in ("background-checks.pdf", "ca-warn-report.pdf", "san-jose-pd-firearm-sample.pdf")]
    page.set_input_files("#job-files", [str(p) for p in pdfs])
    page.check("#opt-tables")
    page.fill("#opt-max-pages", "2")
    shot(page, "02-new-job")
    page.click("#job-submit")
    job_id = job_id_from_hash(page)
    expect(page.locator("#job-status")).to_have_text(re.compile("done"), timeout=180_000)
    expect(page.locator("#live")).to_have_text("finished")
    with service.client() as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["settings"] == {"extract.tables": True, "extract.max_pages": 2}
    assert stat(page, "total") == 3 == job["total"]
    assert stat(page, "done") == job["counts"]["done"] and stat(page, "failed") == job["counts"]["failed"]
    assert stat(page, "pages") == job["pages"] > 0
    assert page.locator("#stat-docs-per-min").inner_text() != "–"
    expect(page.locator("#stat-eta")).to_have_text("done")
    expect(page.locator("#app .card p .wrap").first).to_have_text("3 uploaded files")
    assert page.locator("#stat-cost").inner_text() == "$0.0000"
    expect(page.locator("#docs-body tr[data-doc]")).to_have_count(3)
    shot(page, "03-job-done")
    # export: fetched with the key, handed to the browser as a download
    with page.expect_download() as download:
        page.click("button:text('JSONL')")
    lines = Path(download.value.path()).read_text().splitlines()
    assert sorted(Path(json.loads(line)["source"]).name for line in lines) == sorted(p.name for p in pdfs)
    # the jobs list shows it
    page.click(".crumbs a[href='#/jobs']")
    expect(page.locator(f"#jobs-body tr[data-job='{job_id}']")).to_contain_text("done")
    page.go_back()
    # a document page: text per page, tables as HTML tables, label, cost
    page.click("#docs-body a:text('background-checks.pdf')")
    expect(page.locator("#doc-source")).to_have_text("background-checks.pdf")
    expect(page.locator(".page-text").first).to_contain_text("Alabama")
    with service.client() as client:
        doc_id = int(str(page.evaluate("location.hash")).split("/")[-1])
        record = client.get(f"/v1/jobs/{job_id}/documents/{doc_id}").json()
    expect(page.locator("#pages section.page")).to_have_count(len(record["text"]))
    tables = record.get("tables") or []
    expect(page.locator("#doc-tables table")).to_have_count(len(tables))
    if tables:
        cell = next(c for row in tables[0]["rows"] for c in row if c.strip())
        expect(page.locator("#doc-tables table").first).to_contain_text(cell.strip().split("\n")[0])
    expect(page.locator("#doc-status")).to_have_text("done")
    expect(page.locator("#doc-cost")).to_have_text("$0.0000")
    shot(page, "04-document")
    # the key went in a header on every call, never in a URL
    calls = watched.api_calls()
    assert calls and all(auth == f"Bearer {service.key}" for _, auth in calls)
    assert not any(service.key in url for url, _ in watched.requests)
    assert watched.unexpected_errors() == []


def _slow_pdfs(folder: Path, n: int) -> list[Path]:
    """Distinct one-page PDFs; with OCR "always" each costs a Tesseract read of 20 lines
    (a page of one line is read in a blink now that blank margins are cut before OCR, and
    the job would end before it could be cancelled)."""
    return [
        write_pdf(
            folder / f"scan-{i:03d}.pdf",
            ["\n".join(f"Scanned page number {i}, line {k}: the quick brown fox {k * 37}" for k in range(20))],
        )
        for i in range(n)
    ]


@browser_needed
def test_live_progress_cancel_and_resume(service: Live, watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    sign_in(watched, service.base, service.key)
    page.set_input_files("#job-files", [str(p) for p in _slow_pdfs(tmp_path / "slow", 40)])
    page.select_option("#opt-ocr", "always")
    page.click("#job-submit")
    job_id = job_id_from_hash(page)
    page.evaluate("window.__samePage = true")
    # the counts move by themselves (the event stream), without reloading the page
    page.wait_for_function("() => Number(document.querySelector('#stat-done').textContent) >= 1", timeout=120_000)
    first = stat(page, "done")
    page.wait_for_function(
        f"() => Number(document.querySelector('#stat-done').textContent) > {first}", timeout=120_000
    )
    assert page.evaluate("window.__samePage") is True
    expect(page.locator("#job-status")).to_contain_text("running")
    expect(page.locator("#live")).to_have_text("● live")
    assert page.locator("#stat-eta").inner_text() != ""
    shot(page, "05-job-running")
    page.click("#cancel")
    expect(page.locator("#job-message")).to_contain_text("Cancel requested")
    expect(page.locator("#job-status")).to_have_text(re.compile("cancelled"), timeout=120_000)
    assert stat(page, "pending") > 0 and stat(page, "done") < 40
    expect(page.locator("#cancel")).to_be_disabled()
    with service.client() as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["counts"]["pending"] == stat(page, "pending")
    expect(page.locator("#stat-eta")).to_have_text("cancelled")
    shot(page, "06-job-cancelled")
    # its uploads are kept (service.upload_retention_h): the job resumes where it stopped
    assert job["can_retry"] is True
    expect(page.locator("#retry")).to_be_enabled()
    expect(page.locator("#retry")).to_have_attribute("title", re.compile("cancelled job resumes"))
    stopped_at = stat(page, "done")
    page.click("#retry")
    expect(page.locator("#job-message")).to_contain_text("Queued again")
    expect(page.locator("#retry")).to_be_disabled()
    expect(page.locator("#retry")).to_have_attribute("title", re.compile(r"job_active"))
    page.wait_for_function(
        f"() => Number(document.querySelector('#stat-done').textContent) > {stopped_at}", timeout=120_000
    )
    page.click("#cancel")
    expect(page.locator("#job-status")).to_have_text(re.compile("cancelled"), timeout=120_000)
    assert stat(page, "done") + stat(page, "pending") + stat(page, "failed") == 40
    assert watched.unexpected_errors() == []


@browser_needed
def test_a_folder_job_failures_and_retry(service: Live, watched: Watched, roots: Path) -> None:
    page = watched.page
    folder = roots / "mixed"
    folder.mkdir()
    for name in ("background-checks.pdf", "ag-energy-round-up-2017-02-24.pdf"):
        shutil.copy(PDFS / name, folder / name)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> broken")
    sign_in(watched, service.base, service.key)
    page.fill("#job-source", str(folder))
    page.click("#job-submit")
    job_id = job_id_from_hash(page)
    expect(page.locator("#job-status")).to_have_text(re.compile("done"), timeout=180_000)
    with service.client() as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["counts"]["failed"] == 1 == stat(page, "failed")
    ((category, n),) = job["failures"].items()
    expect(page.locator("#failures-body tr")).to_have_count(1)
    expect(page.locator("#failures-body tr")).to_have_text(re.compile(f"{category}\\s*{n}"))
    # the failed filter shows only the broken file; its page shows the error
    page.select_option("#f-status", "failed")
    expect(page.locator("#docs-body tr[data-doc]")).to_have_count(1)
    expect(page.locator("#docs-body")).to_contain_text("broken.pdf")
    shot(page, "07-job-failures")
    page.click("#docs-body a:text('broken.pdf')")
    expect(page.locator("#doc-error")).to_contain_text(category)
    expect(page.locator("#doc-status")).to_have_text("failed")
    page.go_back()
    # retry: queued again, runs a second time, ends done again with the same failure
    expect(page.locator("#retry")).to_be_enabled()
    page.click("#retry")
    expect(page.locator("#job-message")).to_contain_text("Queued again")
    with service.client() as client:
        job = wait_job(client, job_id, ("done",), timeout=180)
    assert job["runs"] == 2
    expect(page.locator("#job-status")).to_have_text(re.compile("done"), timeout=60_000)
    expect(page.locator("#job-times")).to_contain_text("runs 2")
    assert watched.unexpected_errors() == []


@browser_needed
def test_document_text_with_markup_renders_as_text(service: Live, watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    txt = tmp_path / "hostile.txt"
    txt.write_text(HOSTILE_TEXT + "\nsecond line\n")
    html = tmp_path / "escaped.html"
    html.write_text("<html><body><p>&lt;img src=x onerror=&quot;window.__pwned=3&quot;&gt; visible</p></body></html>")
    sign_in(watched, service.base, service.key)
    page.set_input_files("#job-files", [str(txt), str(html)])
    page.click("#job-submit")
    expect(page.locator("#job-status")).to_have_text(re.compile("done"), timeout=120_000)
    page.click("#docs-body a:text('hostile.txt')")
    expect(page.locator(".page-text").first).to_contain_text(HOSTILE_TEXT)
    assert page.locator("img[src='x']").count() == 0 and page.locator("#app script").count() == 0
    assert page.evaluate("window.__pwned") is None
    shot(page, "08-hostile-text")
    page.go_back()
    page.click("#docs-body a:text('escaped.html')")
    expect(page.locator(".page-text").first).to_contain_text('<img src=x onerror="window.__pwned=3"> visible')
    assert page.locator("img[src='x']").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert watched.unexpected_errors() == []


# --- the page view ----------------------------------------------------------------------


def _page_geometry(page: Page) -> dict[str, Any]:
    """The page image's box on screen, the overlay's viewBox, and each table box on screen."""
    return dict(page.evaluate("""() => {
      const box = (el) => { const r = el.getBoundingClientRect(); return { x: r.x, y: r.y, width: r.width, height: r.height }; };
      return {
        image: box(document.querySelector('#page-image')),
        overlay: box(document.querySelector('#page-boxes')),
        view: document.querySelector('#page-boxes').getAttribute('viewBox').split(' ').map(Number),
        boxes: [...document.querySelectorAll('#page-boxes g.box')].map((g) =>
          ({ table: Number(g.dataset.table), ...box(g.querySelector('rect')) })),
      };
    }"""))


def _boxes_lie_over_their_tables(geometry: dict[str, Any], tables: list[dict[str, Any]], page_no: int) -> None:
    image = geometry["image"]
    _, _, width_pt, height_pt = geometry["view"]
    assert (width_pt, height_pt) == (612, 792)
    assert geometry["overlay"] == pytest.approx(image, abs=0.5)  # the overlay is the image's box
    on_page = [i for i, t in enumerate(tables) if t["page"] == page_no]
    assert sorted(b["table"] for b in geometry["boxes"]) == on_page
    sx, sy = image["width"] / width_pt, image["height"] / height_pt
    for box in geometry["boxes"]:
        x0, y0, x1, y1 = tables[box["table"]]["bbox"]
        assert box["x"] == pytest.approx(image["x"] + x0 * sx, abs=1.5)
        assert box["y"] == pytest.approx(image["y"] + y0 * sy, abs=1.5)
        assert box["width"] == pytest.approx((x1 - x0) * sx, abs=1.5)
        assert box["height"] == pytest.approx((y1 - y0) * sy, abs=1.5)
        assert image["x"] <= box["x"] and box["x"] + box["width"] <= image["x"] + image["width"]
        assert image["y"] <= box["y"] and box["y"] + box["height"] <= image["y"] + image["height"]


@chromium_needed
def test_a_table_page_shows_its_boxes_over_the_page_image(service: Live, watched: Watched, tmp_path: Path) -> None:
    page = watched.page
    pdf = table_pdf(tmp_path / "sales.pdf", heading=f"Sales by region {HOSTILE_TEXT}")
    sign_in(watched, service.base, service.key)
    page.set_input_files("#job-files", [str(pdf)])
    page.check("#opt-tables")
    page.click("#job-submit")
    job_id = job_id_from_hash(page)
    expect(page.locator("#job-status")).to_have_text(re.compile("done"), timeout=120_000)
    expect(page.locator("#stat-eta")).to_have_text("done")
    expect(page.locator("#app .card p .wrap").first).to_have_text("1 uploaded file")
    expect(page.locator("#retry")).to_be_enabled()  # its upload is kept: a retry is possible
    page.click("#docs-body a:text('sales.pdf')")
    with service.client() as client:
        doc_id = int(str(page.evaluate("location.hash")).split("/")[-1])
        record = client.get(f"/v1/jobs/{job_id}/documents/{doc_id}").json()
    tables = record["tables"]
    assert [t["page"] for t in tables] == [0, 1, 1]
    # it opens on the first page with a table: the image, one box over that table, the text
    sheet = page.locator("#page-sheet[data-state=ready]")
    expect(sheet).to_have_attribute("data-page", "0")
    expect(page.locator("#page-at")).to_have_text("page 1 of 3")
    expect(page.locator("#page-boxes g.box")).to_have_count(1)
    _boxes_lie_over_their_tables(_page_geometry(page), tables, 0)
    expect(page.locator("#page-caption")).to_have_text("1 table found on this page")
    # the page's text beside it, as text: the document's markup never runs
    expect(page.locator("#page-view-text")).to_contain_text(HOSTILE_TEXT)
    assert page.locator("img[src='x']").count() == 0 and page.locator("#app script").count() == 0
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#page-prev")).to_be_disabled()
    page.locator("#page-view").screenshot(path=str(SHOTS / "11-page-view-one-table.png"))
    # the next page: two tables, two boxes
    page.click("#page-next")
    expect(page.locator("#page-sheet[data-state=ready][data-page='1']")).to_have_count(1)
    expect(page.locator("#page-boxes g.box")).to_have_count(2)
    _boxes_lie_over_their_tables(_page_geometry(page), tables, 1)
    expect(page.locator("#page-view-text")).to_contain_text("Two tables")
    shot(page, "12-page-view-two-tables")
    # the last page: prose, no box, no next page
    page.click("#page-next")
    expect(page.locator("#page-sheet[data-state=ready][data-page='2']")).to_have_count(1)
    expect(page.locator("#page-boxes g.box")).to_have_count(0)
    expect(page.locator("#page-caption")).to_have_text("No table found on this page.")
    expect(page.locator("#page-next")).to_be_disabled()
    # a table in the tables list shows its page
    page.click("#doc-tables figure:nth-of-type(2) button[data-show-page]")
    expect(page.locator("#page-sheet[data-state=ready][data-page='1']")).to_have_count(1)
    expect(page.locator("#page-boxes g.box")).to_have_count(2)
    assert page.evaluate("window.__pwned") is None
    calls = watched.api_calls()
    assert any("/pages/1.png" in url for url, _ in calls)
    assert all(auth == f"Bearer {service.key}" for _, auth in calls)
    assert watched.unexpected_errors() == []


@chromium_needed
def test_uploads_gone_disable_retry_and_say_so_on_the_page_view(watched: Watched, tmp_path: Path) -> None:
    """``service.upload_retention_h = 0``: uploads go as the job ends; the dashboard says so
    before anyone clicks (the job's can_retry), and the page view shows the 410."""
    settings = load_settings(env={}, overrides={
        "service.data_dir": str(tmp_path / "d"), "service.job_workers": "1", "service.extract_workers": "1",
        "run.workers": "1", "service.auth": "none", "service.upload_retention_h": "0",
    })
    page = watched.page
    with server_in_thread(create_app(settings)) as base:
        sign_in(watched, base)
        page.set_input_files("#job-files", [str(table_pdf(tmp_path / "gone.pdf"))])
        page.click("#job-submit")
        expect(page.locator("#job-status")).to_have_text(re.compile("done"), timeout=120_000)
        expect(page.locator("#retry")).to_be_disabled()
        expect(page.locator("#retry")).to_have_attribute("title", re.compile(r"are gone now.*\(sources_gone\)"))
        expect(page.locator("#stat-eta")).to_have_text("done")
        shot(page, "13-retry-disabled")
        page.click("#docs-body a:text('gone.pdf')")
        expect(page.locator("#page-sheet")).to_have_attribute("data-state", "failed")
        expect(page.locator("#page-sheet")).to_be_hidden()
        expect(page.locator("#page-message")).to_contain_text("(410 source_gone)")
        expect(page.locator("#page-view-text")).to_contain_text("Sales by region")  # the text is in the record
        page.locator("#page-view").screenshot(path=str(SHOTS / "14-page-view-source-gone.png"))
    assert watched.unexpected_errors(410) == []


@chromium_needed
def test_a_retry_as_the_last_stream_ends_follows_the_new_run(service: Live, watched: Watched) -> None:
    """The flake in the folder-job retry test, made certain: Retry clicked while the
    page still reads the event stream of the run that ended (its last snapshot taken
    before the job was queued again). The page followed only that stream, so it never
    saw the second run: status and "runs" stayed as they were. The stream is held in
    the browser and handed over, unchanged, after the click."""
    page = watched.page
    with service.client() as client:
        job_id = client.post("/v1/jobs", files=[("files", ("note.txt", b"a note\n"))]).json()["id"]
        wait_job(client, job_id, ("done",))
    sign_in(watched, service.base, service.key)
    held: list[Route] = []

    def hold(route: Route) -> None:  # the first stream is held; later ones go through
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/v1/jobs/*/events", hold)
    page.evaluate(f"location.hash = '#/jobs/{job_id}'")
    expect(page.locator("#retry")).to_be_enabled()
    while not held:  # the page asked for the stream (the handler runs as Playwright waits)
        page.wait_for_timeout(20)
    ended_run = held[0].fetch()  # the real server's answer: the finished run, then "end"
    assert b"event: end" in ended_run.body()
    page.click("#retry")
    expect(page.locator("#job-message")).to_contain_text("Queued again")
    held[0].fulfill(response=ended_run)
    expect(page.locator("#job-times")).to_contain_text("runs 2", timeout=60_000)
    expect(page.locator("#job-status")).to_have_text(re.compile("done"))
    expect(page.locator("#live")).to_have_text("finished")
    assert watched.unexpected_errors() == []


# --- 100,000 documents -------------------------------------------------------------------

N_DOCS = 100_000
HOSTILE_ID = 7


def _big_job(data: Path) -> str:
    """A finished job whose ledger holds 100,000 documents, written through docmill's own
    ledger API (a real run over 100,000 files would take too long on a test machine)."""
    ledger = JobLedger.open(data)
    job_id = new_job_id()
    ledger.create(job_id, "local", "path", ["/batch"], "/batch (100,000 generated rows)", {})
    assert ledger.claim("test:1:1") is not None
    store = Store.open(ledger.job_dir(job_id))

    def source(i: int) -> str:
        return f'/batch/<img src=x onerror="window.__pwned=1">-{i}.txt' if i == HOSTILE_ID else f"/batch/doc-{i:06d}.txt"

    store.upsert_sources(SourceFile(source(i), 10, 0) for i in range(1, N_DOCS + 1))

    def outcomes() -> Iterator[tuple[int, ProcessOutcome, bool, float, float]]:
        now = time.time()
        for i in range(1, N_DOCS + 1):
            if i % 10 == 0:
                o = ProcessOutcome(DocState.FAILED, mime="text/plain",
                                   error=ErrorInfo(FailureCategory.CORRUPT, "truncated", "extract"))
            else:
                label = "<b>bold</b>" if i == HOSTILE_ID else ("invoice" if i % 2 else "letter")
                o = ProcessOutcome(DocState.DONE, mime="text/plain", pages=1, label=label,
                                   text=[f"document {i}"] if i <= 200 else [])
            yield i, o, False, now, 0.01

    store.complete_many(outcomes())
    store.close()
    ledger.finish(job_id, "test:1:1", "done", job_progress(ledger, job_id))
    ledger.close()
    return job_id


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("big") / "data"
    data.mkdir()
    job_id = _big_job(data)
    port = free_port()
    proc = start_server(data, port, "service.job_workers=0")
    try:
        yield f"http://127.0.0.1:{port}", job_id
    finally:
        kill_group(proc)


@browser_needed
def test_paging_a_job_of_100000_documents(big: tuple[str, str], watched: Watched) -> None:
    base, job_id = big
    page = watched.page
    sign_in(watched, base)
    page.goto(f"{base}/#/jobs/{job_id}")
    expect(page.locator("#stat-total")).to_have_text("100,000")
    expect(page.locator("#stat-failed")).to_have_text("10,000")
    expect(page.locator("#failures-body tr")).to_have_text(re.compile(r"corrupt\s*10,000"))
    expect(page.locator("#docs-body tr[data-doc]")).to_have_count(100)
    assert doc_ids(page) == list(range(1, 101))
    expect(page.locator("#prev")).to_be_disabled()
    # the hostile source name and label are shown as text
    row = page.locator(f"#docs-body tr[data-doc='{HOSTILE_ID}']")
    expect(row).to_contain_text('<img src=x onerror="window.__pwned=1">')
    expect(row).to_contain_text("<b>bold</b>")
    assert page.locator("#docs img").count() == 0 and page.evaluate("window.__pwned") is None
    # forward three pages, back one
    for _ in range(3):
        before = doc_ids(page)[0]
        page.click("#next")
        page.wait_for_function(f"() => document.querySelector('#docs-body tr[data-doc]')?.dataset.doc != '{before}'")
    assert doc_ids(page) == list(range(301, 401))
    expect(page.locator("#page-info")).to_contain_text("page 4")
    page.click("#prev")
    page.wait_for_function("() => document.querySelector('#docs-body tr[data-doc]')?.dataset.doc == '201'")
    assert doc_ids(page) == list(range(201, 301))
    # a bigger page, then a filter (back to the first page of the filter)
    page.select_option("#f-limit", "1000")
    expect(page.locator("#docs-body tr[data-doc]")).to_have_count(1000)
    assert doc_ids(page) == list(range(1, 1001))
    page.select_option("#f-status", "failed")
    page.wait_for_function("() => document.querySelector('#docs-body tr[data-doc]')?.dataset.doc == '10'")
    assert doc_ids(page) == list(range(10, 10_001, 10))
    page.click("#next")
    page.wait_for_function("() => document.querySelector('#docs-body tr[data-doc]')?.dataset.doc == '10010'")
    assert doc_ids(page) == list(range(10_010, 20_001, 10))
    # a later page of the whole ledger, by name
    page.select_option("#f-status", "")
    page.fill("#f-q", "doc-09999")
    page.click("#doc-filters button[type=submit]")
    page.wait_for_function("() => document.querySelector('#docs-body tr[data-doc]')?.dataset.doc == '99990'")
    assert doc_ids(page) == list(range(99_990, 100_000))
    expect(page.locator("#next")).to_be_disabled()
    shot(page, "09-100k-documents")
    # by label, across a page boundary
    page.fill("#f-q", "")
    page.fill("#f-label", "letter")
    page.click("#doc-filters button[type=submit]")
    page.wait_for_function("() => document.querySelector('#docs-body tr[data-doc]')?.dataset.doc == '2'")
    letters = [i for i in range(1, N_DOCS + 1) if i % 2 == 0 and i % 10 and i != HOSTILE_ID]
    assert doc_ids(page) == letters[:1000]
    page.click("#next")
    page.wait_for_function(f"() => document.querySelector('#docs-body tr[data-doc]')?.dataset.doc == '{letters[1000]}'")
    assert doc_ids(page) == letters[1000:2000]
    page.click(f"#docs-body tr[data-doc='{letters[1000]}'] td:nth-child(2) a")
    # named relative to the job's folder, never by the server's path (service/public.py)
    expect(page.locator("#doc-source")).to_have_text(f"doc-{letters[1000]:06d}.txt")
    expect(page.locator("#doc-label")).to_have_text("letter")
    assert watched.unexpected_errors() == []


# --- keys --------------------------------------------------------------------------------


@browser_needed
def test_a_refused_key_returns_to_sign_in(watched: Watched, tmp_path: Path) -> None:
    data = tmp_path / "d"
    settings = load_settings(env={}, overrides={
        "service.data_dir": str(data), "service.job_workers": "0", "service.extract_workers": "1",
        "service.auth": "keys",
    })
    page = watched.page
    with server_in_thread(create_app(settings)) as base, KeyStore.open(data) as keys:
        first, good = keys.create("pro", "first")
        _, second = keys.create("pro", "second")
        page.goto(base + "/#/jobs")
        page.fill("#api-key", "dm_000000000000_" + "0" * 48)
        page.click("#signin button[type=submit]")
        expect(page.locator("#signin-message")).to_contain_text("refused this key: the API key is not valid")
        assert page.evaluate("location.hash") == "#/signin"
        assert page.evaluate("sessionStorage.getItem('docmill.apiKey')") is None
        page.fill("#api-key", good)
        page.click("#signin button[type=submit]")
        expect(page.locator("#jobs-empty")).to_be_visible()
        # the key is revoked while signed in: the next call returns to sign-in, saying why
        keys.revoke(first.id)
        page.evaluate("location.hash = '#/jobs/0123456789abcdef0123456789abcdef'")
        page.wait_for_function("() => location.hash === '#/signin'")
        expect(page.locator("#signin-message")).to_contain_text("refused the API key")
        shot(page, "10-key-refused")
        page.fill("#api-key", second)
        page.click("#signin button[type=submit]")
        # back where it was: an unknown job, said plainly
        expect(page.locator("#app p.error")).to_have_text("no job 0123456789abcdef0123456789abcdef (404 job_not_found)")
        page.click("#signout")
        expect(page.locator("#signin")).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('docmill.apiKey')") is None
        expect(page.locator("#signout")).to_be_hidden()
    assert not any(good in url or second in url for url, _ in watched.requests)
    assert watched.unexpected_errors(401, 404) == []


@browser_needed
def test_a_job_with_deliveries_shows_them_in_a_panel(watched: Watched, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    archive = tmp_path / "archive"
    offered = {"archive": {"kind": "files", "to": f"{archive}/{{name}}"}}
    port = free_port()
    proc = start_server(data, port, f"service.allowed_deliveries={json.dumps(offered)}")
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as client:
            form = {"deliveries": json.dumps(["archive"])}
            job_id = client.post("/v1/jobs", files=[("files", ("memo.txt", b"memo\n"))], data=form).json()["id"]
            job = wait_job(client, job_id, ("done",))
            plain = client.post("/v1/jobs", files=[("files", ("other.txt", b"other\n"))]).json()["id"]
            wait_job(client, plain, ("done",))
        assert job["deliveries"]["archive"]["done"] == 1 and (archive / "memo.txt").read_bytes() == b"memo\n"
        page = watched.page
        sign_in(watched, base)  # local mode: any key
        page.goto(f"{base}/#/jobs/{job_id}")
        expect(page.locator("#deliveries-card")).to_be_visible()
        expect(page.locator("#deliveries-body tr")).to_have_count(1)
        expect(page.locator("#deliveries-body tr")).to_have_text(re.compile(r"archive\s*files\s*1\s*0\s*0"))
        shot(page, "12-job-deliveries")
        page.goto(f"{base}/#/jobs/{plain}")  # a job without deliveries has no panel
        expect(page.locator("#job-status")).to_have_text(re.compile("done"))
        expect(page.locator("#deliveries-card")).to_be_hidden()
        assert watched.unexpected_errors() == []
    finally:
        kill_group(proc)
