"""LLM jobs through the HTTP API (issue 16): specs the operator publishes, estimates before
spending, budgets per job and per key a month. A real `docmill serve` with API keys on
loopback, its jobs classifying and extracting against the LLM simulator; the provider's
key lives only in the server's environment and is checked absent from every answer, the
server's log and the exports."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from docmill.testkit.llm_sim import SimConfig, serve_in_thread
from engine_kit import run_cli
from pdfgen import write_pdf
from service_kit import free_port, kill_group, start_server, wait_job
from test_dashboard import Watched, browser, browser_needed, playwright, shot, sign_in, watched  # noqa: F401
from test_llm_stage import INVOICE_SCHEMA, billed_usd, make_docs, write_spec

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the dev extra is not installed (browser_needed skips)
    expect = None

PROVIDER_KEY = "sk-sim-0d5e1c9a7b3f4e21a8c6d0f9b2e7a415"  # only in the server's environment
KEY_ENV = "SIM_PROVIDER_KEY"


def write_tiers(folder: Path) -> Path:
    path = folder / "tiers.toml"
    path.write_text(
        '[tiers.team]\nbase = "pro"\nllm_specs = ["invoices"]\nmonthly_budget_usd = 50\n', encoding="utf-8"
    )
    return path


class Api:
    """An httpx client that keeps every answer's text (for the key-leak check)."""

    def __init__(self, base: str, key: str, seen: list[str]) -> None:
        self.client = httpx.Client(base_url=base, timeout=120, headers={"Authorization": f"Bearer {key}"})
        self.seen = seen

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        answer = self.client.request(method, url, **kwargs)
        self.seen.append(answer.text)
        return answer

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def wait(self, job_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
        job = wait_job(self.client, job_id, statuses)
        self.seen.append(json.dumps(job))
        return job


def create_key(data: Path, tiers: Path, tier: str, *extra: str) -> str:
    result = run_cli(
        "keys", "create", "--tier", tier, "--json", *extra,
        "--set", f"service.data_dir={data}", "--set", f"service.tiers_file={tiers}",
    )
    assert result.returncode == 0, result.stderr
    key: str = json.loads(result.stdout)["key"]
    return key


def assert_nowhere_under(folder: Path, secret: str) -> None:
    """Not one file the service wrote (ledgers, WAL, parts, caches, uploads) holds it."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert len(files) > 5
    for path in files:
        assert secret.encode() not in path.read_bytes(), path


def uploads(folder: Path) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (p.name, p.read_bytes())) for p in sorted(folder.iterdir())]


@pytest.fixture
def provider_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, PROVIDER_KEY)  # the server inherits it (engine_kit.env)
    return PROVIDER_KEY


def _server(tmp_path: Path, base_url: str) -> tuple[Path, Path, list[str]]:
    spec = write_spec(tmp_path, base_url, api_key_env=KEY_ENV, name="invoices.toml")
    tiers = write_tiers(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    sets = ["service.auth=keys", f"service.tiers_file={tiers}",
            "service.llm_specs=" + json.dumps({"invoices": str(spec)})]
    return data, tiers, sets


def test_published_specs_estimates_and_a_job_without_the_provider_key_anywhere(
    tmp_path: Path, provider_key: str
) -> None:
    make_docs(tmp_path / "in", 12)  # 4 invoices (a schema), 4 receipts, 4 letters
    seen: list[str] = []
    with serve_in_thread(SimConfig(latency_min_s=0.01, latency_max_s=0.05, seed=3)) as sim:
        data, tiers, sets = _server(tmp_path, sim.base_url)
        team = create_key(data, tiers, "team")
        free = create_key(data, tiers, "free")
        port = free_port()
        proc = start_server(data, port, *sets)
        try:
            base = f"http://127.0.0.1:{port}"
            api, cheap = Api(base, team, seen), Api(base, free, seen)

            # what the key may use: labels, fields, models, prices; nothing of the provider
            specs = api.get("/v1/specs").json()["items"]
            assert [s["name"] for s in specs] == ["invoices"]
            spec = specs[0]
            assert [lb["name"] for lb in spec["labels"]] == ["invoice", "receipt", "other"]
            fields = {f["name"]: f for f in spec["labels"][0]["fields"]}
            assert set(fields) == {"invoice_number", "total", "vendor"} and fields["total"]["required"]
            assert spec["models"] == {"classify": "sim-small", "extract": "sim-large"}
            assert spec["prices_usd_per_million_tokens"]["sim-large"] == {"input": 10.0, "output": 30.0}
            text = json.dumps(spec)
            assert sim.base_url not in text and KEY_ENV not in text and "api_key" not in text
            assert cheap.get("/v1/specs").json() == {"items": []}

            # the free tier may not use it; an unknown name; a spec or budget through settings
            refused = cheap.post("/v1/jobs", files=uploads(tmp_path / "in"), data={"spec": "invoices"})
            assert refused.status_code == 403 and refused.json()["error"]["code"] == "spec_not_allowed"
            unknown = api.post("/v1/jobs", files=uploads(tmp_path / "in"), data={"spec": "payroll"})
            assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_spec"
            assert unknown.json()["error"]["details"]["allowed"] == ["invoices"]
            for key, value in (("llm.spec", str(tmp_path / "invoices.toml")), ("llm.budget_usd", 1e6),
                               ("llm.rpm", 10_000)):
                body = {"settings": json.dumps({key: value}), "spec": "invoices"}
                sneaked = api.post("/v1/jobs", files=uploads(tmp_path / "in"), data=body)
                assert sneaked.status_code == 422, sneaked.text
                assert sneaked.json()["error"]["code"] == "setting_not_allowed"
            assert api.get("/v1/jobs").json()["items"] == []
            assert list((data / "uploads").iterdir()) == []  # refused uploads are not kept

            # the estimate: nothing sent, no job made, the same through /v1/estimates
            dry = api.post("/v1/jobs", files=uploads(tmp_path / "in"),
                           data={"spec": "invoices", "dry_run": "true", "budget_usd": "5"})
            assert dry.status_code == 200, dry.text
            est = dry.json()
            assert est["dry_run"] is True and est["spec"] == "invoices"
            assert est["documents"] == est["sampled"] == 12
            assert est["classify_calls"] == 12 and est["extract_calls"] == 4
            assert 0 < est["cost_low"] <= est["cost_expected"] <= est["cost_high"]
            assert est["budget_usd"] == 5 and est["budget_suffices"] is True
            assert est["monthly_budget_usd"] == 50 and est["monthly_budget_source"] == "tier"
            again = api.post("/v1/estimates", files=uploads(tmp_path / "in"), data={"spec": "invoices"})
            assert again.status_code == 200
            assert {k: again.json()[k] for k in ("cost_low", "cost_expected", "cost_high")} == {
                k: est[k] for k in ("cost_low", "cost_expected", "cost_high")
            }
            assert httpx.get(sim.base_url.removesuffix("/v1") + "/_sim/stats").json()["chat_requests"] == 0
            assert sim.stats()["chat_requests"] == 0
            assert api.get("/v1/jobs").json()["items"] == []
            assert list((data / "uploads").iterdir()) == []

            # the job: run with the server's spec; the estimate's range holds what is billed
            created = api.post("/v1/jobs", files=uploads(tmp_path / "in"),
                               data={"spec": "invoices", "budget_usd": "5"})
            assert created.status_code == 202, created.text
            job = api.wait(created.json()["id"], ("done", "failed", "stopped_budget"))
            assert job["status"] == "done", job
            stats = sim.stats()
            assert stats["chat_requests"] == 12 + 4
            billed = billed_usd(stats)
            assert est["cost_low"] <= billed <= est["cost_high"], (est, billed)
            llm = job["llm"]
            assert llm["spec"] == "invoices" and llm["budget_usd"] == 5 and llm["budget_in_force_usd"] == 5
            assert llm["cost_usd"] == pytest.approx(billed, rel=1e-3)
            assert llm["cost_per_document_usd"] == pytest.approx(billed / 12, rel=1e-3)
            assert llm["labels"] == {"invoice": 4, "other": 4, "receipt": 4}
            assert llm["tokens"]["in"] > 0 and llm["stopped_at_budget"] is False
            assert llm["calls"] == stats["chat_requests"] == 16
            assert "llm.spec" not in job["settings"]  # the server's file is never shown

            docs = api.get(f"/v1/jobs/{job['id']}/documents", params={"label": "invoice"}).json()["items"]
            assert len(docs) == 4
            record = api.get(f"/v1/jobs/{job['id']}/documents/{docs[0]['id']}").json()
            assert record["class"]["label"] == "invoice" and record["fields"]["invoice_number"].startswith("INV-")
            usage = api.get("/v1/usage").json()
            assert usage["spent_usd"] == pytest.approx(billed, rel=1e-3)
            assert usage["monthly_budget_usd"] == 50 and usage["left_usd"] == pytest.approx(50 - billed, rel=1e-6)
            assert [j["id"] for j in usage["jobs"]] == [job["id"]]
            assert cheap.get("/v1/usage").json()["spent_usd"] == 0
            for fmt in ("jsonl", "csv"):
                exported = api.get(f"/v1/jobs/{job['id']}/export", params={"format": fmt})
                assert exported.status_code == 200 and "INV-" in exported.text
            # the invoices' fields, a column each
            invoices = api.get(f"/v1/jobs/{job['id']}/export",
                               params={"format": "csv", "label": "invoice", "fields": "true"})
            assert invoices.status_code == 200, invoices.text
            rows = list(csv.DictReader(io.StringIO(invoices.text)))
            assert list(rows[0]) == ["id", "source", "status", "label", "confidence", "decided_by",
                                     "invoice_number", "total", "vendor"]
            assert sorted(r["source"] for r in rows) == ["doc-000.pdf", "doc-003.pdf", "doc-006.pdf", "doc-009.pdf"]
            by_source = {r["source"]: r for r in rows}
            assert by_source["doc-003.pdf"]["invoice_number"] == "INV-1003"
            assert float(by_source["doc-003.pdf"]["total"]) == 103.5
            table = pq.read_table(io.BytesIO(api.client.get(
                f"/v1/jobs/{job['id']}/export", params={"format": "parquet", "label": "invoice", "fields": "true"}
            ).content))
            assert table.num_rows == 4 and str(table.schema.field("total").type) == "double"
            assert sorted(table.column("total").to_pylist()) == [100.5, 103.5, 106.5, 109.5]
            no_fields = api.get(f"/v1/jobs/{job['id']}/export",
                                params={"format": "csv", "label": "receipt", "fields": "true"})
            assert no_fields.status_code == 422 and no_fields.json()["error"]["code"] == "no_fields"
            api.get("/openapi.json")

            # the spec's files broken on the server: the job fails naming the spec, not where it is
            (tmp_path / "invoice.schema.json").rename(tmp_path / "moved.json")
            broken = api.post("/v1/jobs", files=uploads(tmp_path / "in"), data={"spec": "invoices"}).json()
            failed = api.wait(broken["id"], ("done", "failed", "stopped_budget"))
            assert failed["status"] == "failed" and "<spec invoices>/invoice.schema.json" in failed["error"]
            assert str(tmp_path) not in failed["error"]
        finally:
            kill_group(proc)
    log = (tmp_path / f"server-{port}.log").read_text(encoding="utf-8")
    assert "job " in log  # the server did log its jobs
    for text in (*seen, log):
        assert provider_key not in text
    assert len(seen) >= 15
    assert_nowhere_under(data, provider_key)


def test_a_job_stops_at_its_budget_resumes_and_the_keys_month_caps_the_next(
    tmp_path: Path, provider_key: str
) -> None:
    make_docs(tmp_path / "in", 30)  # 10 invoices
    seen: list[str] = []
    with serve_in_thread(SimConfig(latency_min_s=0.01, latency_max_s=0.05, seed=5)) as sim:
        data, tiers, sets = _server(tmp_path, sim.base_url)
        port = free_port()
        proc = start_server(data, port, *sets)
        try:
            base = f"http://127.0.0.1:{port}"
            probe = Api(base, create_key(data, tiers, "team"), seen)
            est = probe.post("/v1/estimates", files=uploads(tmp_path / "in"), data={"spec": "invoices"}).json()
            expected, high = est["cost_expected"], est["cost_high"]
            key = create_key(data, tiers, "team", "--monthly-budget-usd", str(round(3 * high, 6)))
            api = Api(base, key, seen)
            assert api.get("/v1/usage").json()["monthly_budget_source"] == "key"

            half = round(expected / 2, 6)
            first = api.post("/v1/jobs", files=uploads(tmp_path / "in"),
                             data={"spec": "invoices", "budget_usd": str(half)}).json()
            job = api.wait(first["id"], ("done", "failed", "stopped_budget"))
            assert job["status"] == "stopped_budget", job
            assert job["llm"]["stopped_at_budget"] is True and "resume" in job["error"]
            spent = job["llm"]["cost_usd"]
            ratio_at_stop = spent / half
            assert 0.9 <= ratio_at_stop <= 1.0, (spent, half)  # the stage's planned budget
            assert job["counts"]["pending"] > 0
            assert billed_usd(sim.stats()) == pytest.approx(spent, rel=1e-3)

            # resume with more: it finishes, and nothing is asked of the provider twice
            resumed = api.post(f"/v1/jobs/{job['id']}/resume", json={"budget_usd": round(2 * high, 6)})
            assert resumed.status_code == 202, resumed.text
            job = api.wait(job["id"], ("done", "failed", "stopped_budget"))
            assert job["status"] == "done", job
            assert job["llm"]["budget_in_force_usd"] == round(2 * high, 6)
            assert sim.stats()["chat_requests"] == 30 + 10  # each classified once, invoices extracted once
            first_total = job["llm"]["cost_usd"]
            assert first_total == pytest.approx(billed_usd(sim.stats()), rel=1e-3)
            assert est["cost_low"] <= first_total <= high

            # the operator lowers the key's month to what it spent and half a run more: a
            # second job gets what is left, whatever it asks for
            monthly = round(first_total + expected / 2, 6)
            lowered = run_cli("keys", "budget", key.split("_")[1], str(monthly),
                              "--set", f"service.data_dir={data}", "--set", f"service.tiers_file={tiers}")
            assert lowered.returncode == 0, lowered.stderr
            left = monthly - first_total
            assert api.get("/v1/usage").json()["left_usd"] == pytest.approx(left, rel=1e-4)
            second = api.post("/v1/jobs", files=uploads(tmp_path / "in"),
                              data={"spec": "invoices", "budget_usd": "100"}).json()
            job2 = api.wait(second["id"], ("done", "failed", "stopped_budget"))
            assert job2["status"] == "stopped_budget", (est, left, job2["llm"])
            assert job2["llm"]["budget_usd"] == 100
            assert job2["llm"]["budget_in_force_usd"] == pytest.approx(left, rel=1e-4)
            assert 0.9 * left <= job2["llm"]["cost_usd"] <= left + 1e-9
            usage = api.get("/v1/usage").json()
            assert usage["spent_usd"] <= monthly + 1e-9
            assert usage["spent_usd"] == pytest.approx(billed_usd(sim.stats()), rel=1e-3)
            assert {j["id"] for j in usage["jobs"]} == {job["id"], job2["id"]}
            # the month spent: a resume with more is clamped to nothing, so it is refused
            if usage["left_usd"] == 0:
                refused = api.post(f"/v1/jobs/{job2['id']}/resume", json={"budget_usd": 100})
                assert refused.status_code == 409 and refused.json()["error"]["code"] == "monthly_budget_spent"
            # the other key's month is its own
            assert probe.get("/v1/usage").json()["spent_usd"] == 0
            print(f"first job stopped at {ratio_at_stop:.1%} of its budget ({half:.6f} USD); "
                  f"the second at {job2['llm']['cost_usd'] / left:.1%} of the month's rest ({left:.6f} USD)")
        finally:
            kill_group(proc)
    log = (tmp_path / f"server-{port}.log").read_text(encoding="utf-8")
    for text in (*seen, log):
        assert provider_key not in text


def test_a_job_stopped_at_its_budget_is_resumed_never_retried_and_not_into_a_tiny_month(
    tmp_path: Path, provider_key: str
) -> None:
    """A retry would keep the budget that stopped the job (it stops again at once): refused,
    pointing to resume, and the job's JSON says so (can_retry). A resume whose run would
    get less than one document's cost beyond the job's spend is refused saying what is
    left: a budget barely over the spend (422), a key with a tiny rest of its month (409);
    nothing is sent to the provider for either. With room, the resume finishes the job."""
    make_docs(tmp_path / "in", 30)
    seen: list[str] = []
    with serve_in_thread(SimConfig(latency_min_s=0.01, latency_max_s=0.05, seed=5)) as sim:
        data, tiers, sets = _server(tmp_path, sim.base_url)
        port = free_port()
        proc = start_server(data, port, *sets)
        try:
            base = f"http://127.0.0.1:{port}"
            key = create_key(data, tiers, "team")
            api = Api(base, key, seen)
            est = api.post("/v1/estimates", files=uploads(tmp_path / "in"), data={"spec": "invoices"}).json()
            half = round(est["cost_expected"] / 2, 6)
            created = api.post("/v1/jobs", files=uploads(tmp_path / "in"),
                               data={"spec": "invoices", "budget_usd": str(half)}).json()
            job = api.wait(created["id"], ("done", "failed", "stopped_budget"))
            assert job["status"] == "stopped_budget", job
            assert job["can_retry"] is False and job["retry_refused"]["code"] == "stopped_budget"
            requests = sim.stats()["chat_requests"]

            retried = api.post(f"/v1/jobs/{job['id']}/retry")
            assert retried.status_code == 409, retried.text
            error = retried.json()["error"]
            assert error["code"] == "stopped_budget"
            assert f"/v1/jobs/{job['id']}/resume" in error["message"] and "budget_usd" in error["message"]
            assert error["message"] == job["retry_refused"]["message"]

            spent = job["llm"]["cost_usd"]
            per_doc = job["llm"]["cost_per_document_usd"]
            assert spent > 0 and per_doc > 0
            barely = api.post(f"/v1/jobs/{job['id']}/resume", json={"budget_usd": round(spent + per_doc / 4, 6)})
            assert barely.status_code == 422, barely.text
            error = barely.json()["error"]
            assert error["code"] == "budget_too_low"
            assert error["details"]["least_budget_usd"] >= spent + 0.99 * per_doc

            # the key's month lowered to what it spent and a quarter of a document
            usage = api.get("/v1/usage").json()
            monthly = round(usage["spent_usd"] + per_doc / 4, 6)
            lowered = run_cli("keys", "budget", key.split("_")[1], str(monthly),
                              "--set", f"service.data_dir={data}", "--set", f"service.tiers_file={tiers}")
            assert lowered.returncode == 0, lowered.stderr
            tiny = api.post(f"/v1/jobs/{job['id']}/resume", json={"budget_usd": 100})
            assert tiny.status_code == 409, tiny.text
            error = tiny.json()["error"]
            assert error["code"] == "monthly_budget_low"
            left = error["details"]["left_usd"]
            assert left == pytest.approx(monthly - usage["spent_usd"], abs=2e-6)
            assert f"{left:.6g} USD left" in error["message"] and "keys budget" in error["message"]
            assert error["details"]["per_document_usd"] == pytest.approx(per_doc, rel=1e-3)
            assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "stopped_budget"
            assert sim.stats()["chat_requests"] == requests  # nothing asked of the provider

            # a job that spent nothing (its budget fits no request): a document's cost
            # comes from the estimate, and a resume barely over nothing is refused too
            raised = run_cli("keys", "budget", key.split("_")[1], "50",
                             "--set", f"service.data_dir={data}", "--set", f"service.tiers_file={tiers}")
            assert raised.returncode == 0, raised.stderr
            starved = api.post("/v1/jobs", files=uploads(tmp_path / "in"),
                               data={"spec": "invoices", "budget_usd": "0.000001"}).json()
            starved = api.wait(starved["id"], ("done", "failed", "stopped_budget"))
            assert starved["status"] == "stopped_budget" and starved["llm"]["cost_usd"] == 0, starved
            assert sim.stats()["chat_requests"] == requests
            refused = api.post(f"/v1/jobs/{starved['id']}/resume", json={"budget_usd": 0.000002})
            assert refused.status_code == 422, refused.text
            estimated = refused.json()["error"]["details"]["per_document_usd"]
            assert est["cost_low"] / 30 <= estimated <= est["cost_high"] / 30, (estimated, est)

            # room again: the resume is accepted and the job finishes
            raised = run_cli("keys", "budget", key.split("_")[1], "50",
                             "--set", f"service.data_dir={data}", "--set", f"service.tiers_file={tiers}")
            assert raised.returncode == 0, raised.stderr
            resumed = api.post(f"/v1/jobs/{job['id']}/resume", json={"budget_usd": round(4 * est["cost_high"], 6)})
            assert resumed.status_code == 202, resumed.text
            job = api.wait(job["id"], ("done", "failed", "stopped_budget"))
            assert job["status"] == "done", job
            assert job["can_retry"] is True
        finally:
            kill_group(proc)
    log = (tmp_path / f"server-{port}.log").read_text(encoding="utf-8")
    for text in (*seen, log):
        assert provider_key not in text


@pytest.mark.usefixtures("provider_key")
def test_documents_filtered_by_whether_their_fields_fit_the_schema(tmp_path: Path) -> None:
    """fields=valid: done with a label that has fields; fields=invalid: the answer never
    fit (a letter about an invoice has no invoice number of the schema's pattern)."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_pdf(folder / "a-invoice.pdf", ["INVOICE from Acme\nInvoice number: INV-1001\nVendor: Acme GmbH\nTotal: 10.50 EUR"])
    write_pdf(folder / "b-receipt.pdf", ["RECEIPT 7\nThank you for your payment\nPaid: 20 EUR"])
    write_pdf(folder / "c-letter.pdf", ["Dear customer,\nthe invoice you asked about follows by post."])
    with serve_in_thread(SimConfig(latency_min_s=0.01, latency_max_s=0.03, seed=2)) as sim:
        data, tiers, sets = _server(tmp_path, sim.base_url)
        properties = {**INVOICE_SCHEMA["properties"], "invoice_number": {"type": "string", "pattern": "^INV-[0-9]+$"}}  # type: ignore[dict-item]
        strict = {**INVOICE_SCHEMA, "properties": properties}
        (tmp_path / "invoice.schema.json").write_text(json.dumps(strict), encoding="utf-8")
        key = create_key(data, tiers, "team")
        port = free_port()
        proc = start_server(data, port, *sets)
        try:
            api = Api(f"http://127.0.0.1:{port}", key, [])
            job_id = api.post("/v1/jobs", files=uploads(folder), data={"spec": "invoices"}).json()["id"]
            job = api.wait(job_id, ("done", "failed", "stopped_budget"))
            assert job["status"] == "done" and job["failures"] == {"invalid_output": 1}, job

            def names(**params: str) -> list[str]:
                page = api.get(f"/v1/jobs/{job_id}/documents", params=params)
                assert page.status_code == 200, page.text
                return [d["source"] for d in page.json()["items"]]

            assert names(fields="valid") == ["a-invoice.pdf"]
            assert names(fields="invalid") == ["c-letter.pdf"]
            assert names(fields="invalid", status="done") == []
            assert names(label="invoice") == ["a-invoice.pdf", "c-letter.pdf"]
            assert api.get(f"/v1/jobs/{job_id}/documents", params={"fields": "maybe"}).status_code == 422
        finally:
            kill_group(proc)


def test_two_jobs_of_one_key_running_at_once_share_its_month(tmp_path: Path, provider_key: str) -> None:
    """Two runners start a key's jobs together: each run's budget is decided in one
    write transaction, so the two never both count the same rest of the month."""
    make_docs(tmp_path / "in", 30)
    # answers take 1-1.5 s: each job runs for seconds, so the second starts while the first runs
    with serve_in_thread(SimConfig(latency_min_s=1.0, latency_max_s=1.5, seed=9)) as sim:
        data, tiers, sets = _server(tmp_path, sim.base_url)
        port = free_port()
        proc = start_server(data, port, *sets, "service.job_workers=2", "llm.max_output_tokens=64")
        try:
            base = f"http://127.0.0.1:{port}"
            probe = Api(base, create_key(data, tiers, "team"), [])
            est = probe.post("/v1/estimates", files=uploads(tmp_path / "in"), data={"spec": "invoices"}).json()
            monthly = round(est["cost_expected"], 6)  # less than the two jobs need together
            api = Api(base, create_key(data, tiers, "team", "--monthly-budget-usd", str(monthly)), [])
            ids = [api.post("/v1/jobs", files=uploads(tmp_path / "in"),
                            data={"spec": "invoices", "budget_usd": "100"}).json()["id"] for _ in range(2)]
            jobs = [api.wait(job_id, ("done", "failed", "stopped_budget")) for job_id in ids]
            in_force = [j["llm"]["budget_in_force_usd"] for j in jobs]
            first, second = sorted(jobs, key=lambda j: j["started_at"])
            assert second["started_at"] < first["finished_at"]  # they ran at once
            assert sum(in_force) <= monthly + 1e-6, in_force
            assert any(j["status"] == "stopped_budget" for j in jobs)
            usage = api.get("/v1/usage").json()
            assert 0 < usage["spent_usd"] <= monthly + 1e-9
            assert usage["spent_usd"] == pytest.approx(billed_usd(sim.stats()), rel=1e-3)
            started = sorted(j["started_at"] for j in jobs)
            print(f"budgets in force {in_force} of a month of {monthly}; started {started[1] - started[0]:.2f} s apart")
        finally:
            kill_group(proc)


def test_against_a_provider_like_simulator_the_estimate_holds_what_is_billed(
    tmp_path: Path, provider_key: str
) -> None:
    """Issue 15's provider (90 requests a minute per key, 5xx, hung requests, malformed
    answers; latencies shortened, a hung request given up after 3 s): the dry run sends
    nothing, the run's retries and repairs are billed and the estimate's range holds them."""
    make_docs(tmp_path / "in", 30)
    config = SimConfig.provider_like(latency_min_s=0.05, latency_max_s=0.3, latency_tail_rate=0.0, seed=11)
    seen: list[str] = []
    with serve_in_thread(config) as sim:
        data, tiers, sets = _server(tmp_path, sim.base_url)
        key = create_key(data, tiers, "team")
        port = free_port()
        proc = start_server(data, port, *sets, "llm.timeout_s=3")
        try:
            api = Api(f"http://127.0.0.1:{port}", key, seen)
            dry = api.post("/v1/jobs", files=uploads(tmp_path / "in"), data={"spec": "invoices", "dry_run": "true"})
            assert dry.status_code == 200, dry.text
            est = dry.json()
            assert httpx.get(sim.base_url.removesuffix("/v1") + "/_sim/stats").json()["chat_requests"] == 0
            job_id = api.post("/v1/jobs", files=uploads(tmp_path / "in"), data={"spec": "invoices"}).json()["id"]
            job = api.wait(job_id, ("done", "failed", "stopped_budget"))
            assert job["status"] == "done", job
            stats = sim.stats()
            billed = billed_usd(stats)
            assert est["cost_low"] <= billed <= est["cost_high"], (est, billed, stats)
            assert job["llm"]["cost_usd"] == pytest.approx(billed, rel=1e-3)
            assert api.get("/v1/usage").json()["spent_usd"] == pytest.approx(billed, rel=1e-3)
            api.get(f"/v1/jobs/{job_id}/export", params={"format": "jsonl"})
            print(f"provider-like: {stats['chat_requests']} requests ({stats['server_errors']} 5xx, "
                  f"{stats['timeouts']} hung, {stats['invalid_json']} malformed) for 30 documents; billed "
                  f"{billed:.6f} USD, estimate {est['cost_low']:.6f} / {est['cost_expected']:.6f} / {est['cost_high']:.6f}")
        finally:
            kill_group(proc)
    log = (tmp_path / f"server-{port}.log").read_text(encoding="utf-8")
    for text in (*seen, log):
        assert provider_key not in text


@browser_needed
def test_the_job_page_shows_cost_against_budget_and_labels_and_resumes_at_a_higher_budget(
    watched: Watched,  # noqa: F811
    tmp_path: Path,
    provider_key: str,
) -> None:
    make_docs(tmp_path / "in", 50)  # 17 invoices, 17 receipts, 16 letters
    # answers take 0.2-0.4 s, two at a time: the resumed run lasts seconds, long enough
    # to watch its cost and labels move on the page
    with serve_in_thread(SimConfig(latency_min_s=0.2, latency_max_s=0.4, seed=7)) as sim:
        data, tiers, sets = _server(tmp_path, sim.base_url)
        key = create_key(data, tiers, "team")
        port = free_port()
        proc = start_server(data, port, *sets, "llm.max_output_tokens=64", "llm.max_concurrency=2")
        try:
            base = f"http://127.0.0.1:{port}"
            api = Api(base, key, [])
            est = api.post("/v1/estimates", files=uploads(tmp_path / "in"), data={"spec": "invoices"}).json()
            budget = round(est["cost_expected"] / 4, 4)  # a quarter: most of the work after the resume

            # sign in, upload, choose the spec, see the estimate, set a budget, start
            page = watched.page
            sign_in(watched, base, key)
            expect(page.locator("#llm-options")).to_be_visible()
            page.set_input_files("#job-files", sorted(str(p) for p in (tmp_path / "in").iterdir()))
            page.select_option("#opt-spec", "invoices")
            page.click("#job-estimate-go")
            expect(page.locator("#job-estimate")).to_contain_text("50 documents: about 50 classify and 17 extract calls")
            expect(page.locator("#job-estimate")).to_contain_text(f"cost ${est['cost_expected']:.4f}")
            assert sim.stats()["chat_requests"] == 0
            shot(page, "13b-llm-estimate")
            page.fill("#opt-budget", str(budget))
            page.click("#job-submit")
            page.wait_for_function("() => /^#\\/jobs\\/[0-9a-f]{32}$/.test(location.hash)")
            job_id = str(page.evaluate("location.hash")).split("/")[-1]
            job = api.wait(job_id, ("done", "failed", "stopped_budget"))
            assert job["status"] == "stopped_budget", job
            assert job["llm"]["budget_usd"] == budget

            expect(page.locator("#llm-card")).to_be_visible()
            expect(page.locator("#job-status")).to_contain_text("stopped_budget")
            expect(page.locator("#llm-spec")).to_have_text("invoices")
            expect(page.locator("#llm-spent")).to_contain_text(f"of ${budget:.4f}")
            spent = job["llm"]["cost_usd"]
            assert float(page.locator("#llm-budget-bar").get_attribute("value") or 0) == pytest.approx(spent, rel=1e-3)
            labelled = sum(job["llm"]["labels"].values())
            assert 0 < labelled < 50
            expect(page.locator("#llm-labels-body tr")).to_have_count(len(job["llm"]["labels"]))
            expect(page.locator("#llm-resume")).to_be_visible()
            shot(page, "14-llm-stopped-at-budget")

            page.fill("#llm-new-budget", str(round(3 * est["cost_high"], 4)))
            page.click("#llm-resume-go")
            watched_spend: list[str] = []  # what the card showed while the run went on
            deadline = time.monotonic() + 120
            while "done" not in page.locator("#job-status").inner_text() and time.monotonic() < deadline:
                shown = page.locator("#llm-spent").inner_text()
                if not watched_spend or watched_spend[-1] != shown:
                    watched_spend.append(shown)
                page.wait_for_timeout(100)
            expect(page.locator("#job-status")).to_contain_text("done")
            assert len(watched_spend) >= 3, watched_spend  # it moved while the job ran
            print("the LLM card while the resumed run went on:", watched_spend)
            expect(page.locator("#llm-resume")).to_be_hidden()
            expect(page.locator("#llm-labels-body tr")).to_have_count(3)
            expect(page.locator("#llm-calls")).to_have_text(str(50 + 17))
            page.select_option("#f-fields", "valid")  # the documents whose fields fit
            expect(page.locator("#docs-body tr[data-doc]")).to_have_count(17)
            page.select_option("#f-fields", "")
            for label, n in (("invoice", 17), ("receipt", 17), ("other", 16)):
                expect(page.locator(f'#llm-labels-body tr[data-label="{label}"] td.num')).to_have_text(str(n))
            expect(page.locator('button[data-export="invoice"]')).to_be_visible()
            expect(page.locator('button[data-export="receipt"]')).to_have_count(0)  # no fields
            with page.expect_download() as download:
                page.click('button[data-export="invoice"]')
            saved = tmp_path / "invoice-fields.csv"
            download.value.save_as(saved)
            assert download.value.suggested_filename == f"{job_id}-invoice-fields.csv"
            rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
            assert len(rows) == 17 and all(r["invoice_number"].startswith("INV-") for r in rows)
            assert provider_key not in saved.read_text(encoding="utf-8")
            shot(page, "15-llm-resumed-and-done")
            assert sim.stats()["chat_requests"] == 50 + 17  # nobody paid for twice

            # a document: its class, who decided, its fields and its cost
            first = api.get(f"/v1/jobs/{job_id}/documents", params={"label": "invoice", "limit": 1}).json()["items"][0]
            page.goto(f"{base}/#/jobs/{job_id}/documents/{first['id']}")
            expect(page.locator("#doc-label")).to_have_text("invoice")
            expect(page.locator("#doc-decided-by")).to_have_text("the LLM")
            expect(page.locator("#doc-fields")).to_contain_text("INV-")
            expect(page.locator("#doc-cost")).not_to_have_text("$0.0000")
            shot(page, "16-llm-document")
            assert provider_key not in page.content()
            assert watched.unexpected_errors() == []
        finally:
            kill_group(proc)
