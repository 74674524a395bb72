"""The service's job (API and dashboard) shows the LLM stage's limits per model: a real
`docmill serve` whose jobs classify and extract against the LLM simulator on loopback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from docmill.testkit.llm_sim import SimConfig, serve_in_thread
from service_kit import free_port, kill_group, start_server, wait_job
from test_dashboard import Watched, browser, browser_needed, playwright, shot, sign_in, watched  # noqa: F401
from test_llm_stage import make_docs, write_spec

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the dev extra is not installed (browser_needed skips)
    expect = None


@browser_needed
def test_a_job_shows_each_models_limits_where_they_came_from_and_in_flight(
    watched: Watched,  # noqa: F811
    tmp_path: Path,
) -> None:
    rpm, tpm = 600, 200_000
    config = SimConfig(rpm=rpm, tpm=tpm, limit_scope="key", ratelimit_headers=True,
                       latency_min_s=0.2, latency_max_s=0.5, seed=4)  # fmt: skip
    make_docs(tmp_path / "in", 6)
    files = [("files", (p.name, p.read_bytes())) for p in sorted((tmp_path / "in").iterdir())]
    data = tmp_path / "data"
    data.mkdir()
    with serve_in_thread(config) as sim:
        spec = write_spec(tmp_path, sim.base_url)
        port = free_port()
        proc = start_server(data, port, f"llm.spec={spec}")
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=60) as client:
                job_id = client.post("/v1/jobs", files=files).json()["id"]
                job = wait_job(client, job_id, ("done", "failed"))
            assert job["status"] == "done", job
            assert sim.stats()["chat_requests"] == 6 + 2  # a classification each, 2 invoices
            limits = job["llm_limits"]
            assert limits["live"] is False and limits["updated_at"] > 0
            models: dict[str, Any] = {m["model"]: m for m in limits["models"]}
            assert set(models) == {"sim-small", "sim-large"}
            for m in models.values():
                assert (m["rpm"], m["rpm_source"], m["tpm"], m["tpm_source"]) == (rpm, "headers", tpm, "headers")
                assert m["scope"] == "key" and m["in_flight"] == 0 and m["breaker"] == "closed"
            page = watched.page
            sign_in(watched, base)  # local mode: any key
            page.goto(f"{base}/#/jobs/{job_id}")
            expect(page.locator("#llm-limits-card")).to_be_visible()
            expect(page.locator("#llm-limits-body tr")).to_have_count(2)
            expect(page.locator("#llm-limits-body tr").first).to_have_text(
                re.compile(r"sim-large\s*600 \(headers\)\s*200,000 \(headers\)\s*key\s*0 of \d+\s*0\s*closed")
            )
            expect(page.locator("#llm-limits-note")).to_contain_text("As the last run left them")
            shot(page, "13-job-llm-limits")
            assert watched.unexpected_errors() == []
        finally:
            kill_group(proc)
