"""Property-based fuzzing of the HTTP API: schemathesis against the live OpenAPI of a real
`docmill serve` on loopback. Every operation, valid and invalid inputs (positive and
negative modes), derandomized; no answer may be a 5xx, and every error uses the one
JSON envelope. Cases that name a job are sent twice: as generated, and with the id of
a real finished job, so the routes behind the ownership check get fuzzed too.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from docmill.service.keys import KeyStore
from engine_kit import REAL
from service_kit import free_port, kill_group, start_server, wait_job

SMALL = REAL / "pdfplumber" / "examples" / "pdfs" / "background-checks.pdf"

EXAMPLES = 80  # per operation and mode; ~12 operations, twice for those with a job id


class Live:
    def __init__(self, base: str, job_id: str, doc_id: int, log: Path, allowed: Path, key: str) -> None:
        self.base, self.job_id, self.doc_id, self.log, self.allowed = base, job_id, doc_id, log, allowed
        self.headers = {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("fuzz")
    data, allowed = root / "data", root / "allowed"
    data.mkdir()
    allowed.mkdir()
    (allowed / "one.pdf").write_bytes(SMALL.read_bytes())
    with KeyStore.open(data) as keys:  # the production mode: API keys, tier limits
        _, key = keys.create("unlimited", "fuzz")
    port = free_port()
    proc: subprocess.Popen[str] = start_server(
        data, port, "service.auth=keys", f"service.allowed_roots={json.dumps([str(allowed)])}", "service.extract_max_mb=1",
        "service.max_upload_mb=1", "service.max_files=20",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
            job_id = client.post("/v1/jobs", json={"source": str(allowed)}).json()["id"]
            wait_job(client, job_id, ("done", "failed"))
            doc_id = client.get(f"/v1/jobs/{job_id}/documents").json()["items"][0]["id"]
        yield Live(base, job_id, doc_id, root / f"server-{port}.log", allowed, key)
    finally:
        kill_group(proc)


def _check(case: Any, live: Live, response: Any) -> None:
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}\n"
        f"server log: {live.log}"
    )
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"]["code"], str) and body["error"]["message"], body
        assert set(body["error"]) <= {"code", "message", "details"}, body


def _fuzz(live: Live, strategy: Any) -> None:
    @given(strategy)
    @settings(
        max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
        suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        _check(case, live, case.call(base_url=live.base, headers=live.headers, timeout=60))

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_5xx_and_one_error_envelope(live: Live, mode: GenerationMode) -> None:
    api = schemathesis.openapi.from_url(live.base + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 12
    failures: list[str] = []
    for op in operations:
        variants: list[dict[str, Any] | None] = [None]
        names = {p.name for p in op.path_parameters}
        if "job_id" in names:
            fixed: dict[str, Any] = {"job_id": live.job_id}
            if "doc_id" in names:
                fixed["doc_id"] = live.doc_id
            variants.append(fixed)
        for fixed_params in variants:
            strategy = op.as_strategy(generation_mode=mode, path_parameters=fixed_params)
            try:
                _fuzz(live, strategy)
            except Unsatisfiable:  # nothing to negate (no parameters, or free strings only)
                assert mode is GenerationMode.NEGATIVE, op.label
            except Exception as exc:  # collect every operation's failure, then report them all
                failures.append(f"{op.label} {fixed_params or ''}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_what_fuzzing_found(live: Live) -> None:
    """Regressions: inputs schemathesis found that once answered 500."""
    with httpx.Client(base_url=live.base, timeout=60, headers=live.headers) as client:
        for name in ("a\x00b", "x" * 5000, "x/" * 3000):
            source = f"{live.allowed}/{name}"
            r = client.post("/v1/jobs", json={"source": source})
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_source", r.text
