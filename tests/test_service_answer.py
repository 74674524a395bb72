"""``POST /v1/extract``'s answer: the worker's sealed JSON spliced in as it is, never
decoded, copied and encoded again in the serve process; the same record as before.

``answer_before`` is the answer as it was built until then (``dataclasses.asdict`` of
the opened outcome, then FastAPI's pydantic JSON encoding): each outcome here, from a
real extraction (a corpus table page with tables and Markdown on, a generated page, a
page range) or made as the pool makes failures, must give the same object both ways.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from docmill.model import DocState, FailureCategory, PageRange, ProcessOutcome
from docmill.model.records import PLAIN_MAX
from docmill.processors import Task
from docmill.processors.pipeline import process_task
from docmill.service.app import create_app
from docmill.service.extract import ExtractService
from docmill.service.views import outcome_json
from docmill.settings import load_settings
from engine_kit import REAL
from pdfgen import make_pdf, make_table_pdf
from service_kit import server_in_thread

TABLE_PAGE = REAL / "pdfplumber" / "examples" / "pdfs" / "background-checks.pdf"
ROWS = [["Item", "Qty", "Price"], ["Apples", "3", "1.20"], ["Pears", "12", "0.85"]]
TABLES_AND_MARKDOWN = {"extract.tables": True, "output.markdown": True}
ANSWER = TypeAdapter(dict[str, Any])


def answer_before(outcome: ProcessOutcome, name: str) -> dict[str, Any]:
    """The answer as the route built it before: ``asdict`` of the opened outcome, the
    transient fields dropped, the content's extra keys merged, then FastAPI's encoding
    of a ``dict[str, Any]`` (pydantic, JSON mode: NaN and Infinity become null)."""
    data = dataclasses.asdict(outcome.opened())
    for key in ("content", "images", "plain"):
        data.pop(key, None)
    data["status"] = str(outcome.status)
    data["error"] = outcome.error.to_dict() if outcome.error else None
    extra = data.pop("extra", {}) or {}
    for transient in ("needs_split", "label", "cost_usd", "tokens_in", "tokens_out"):
        data.pop(transient, None)
    if data.get("page_range") is None:
        data.pop("page_range", None)
    data["timings"] = {"parse_s": round(data.pop("parse_s", 0.0), 4)}
    encoded: dict[str, Any] = ANSWER.dump_python({"source": name, **data, **extra}, mode="json")
    return encoded


def to_dict_before(outcome: ProcessOutcome) -> dict[str, Any]:
    """``ProcessOutcome.to_dict`` as it was (``dataclasses.asdict``)."""
    data = dataclasses.asdict(outcome.opened())
    for key in ("content", "images", "plain"):
        data.pop(key, None)
    data["status"] = str(outcome.status)
    data["error"] = outcome.error.to_dict() if outcome.error else None
    return data


def strict(body: bytes) -> Any:
    """``body`` parsed as JSON proper (NaN and Infinity are not JSON)."""

    def refuse(token: str) -> None:
        raise AssertionError(f"not JSON: {token}")

    return json.loads(body, parse_constant=refuse)


def through_the_pool(outcome: ProcessOutcome) -> ProcessOutcome:
    """Sealed in the worker, across the pipe, as the driver gets it."""
    outcome.seal()
    return ProcessOutcome.from_wire(pickle.loads(pickle.dumps(outcome.to_wire(), pickle.HIGHEST_PROTOCOL)))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> ExtractService:
    """Builds the options a request's settings run with (its pool is never started)."""
    data = tmp_path_factory.mktemp("svc")
    return ExtractService(load_settings(overrides={"service.data_dir": str(data)}))


def extracted(service: ExtractService, path: Path, settings: dict[str, Any],
              page_range: PageRange | None = None) -> ProcessOutcome:
    options = service.options(settings, 20)
    return through_the_pool(process_task(Task(1, 0, str(path), page_range, 10 << 20, options)))


def test_a_corpus_table_page_answers_as_before(service: ExtractService) -> None:
    outcome = extracted(service, TABLE_PAGE, TABLES_AND_MARKDOWN)
    assert outcome.content is not None and outcome.content_utf8() is None  # over PLAIN_MAX
    answer = strict(outcome_json(outcome, "checks.pdf"))
    before = answer_before(outcome, "checks.pdf")
    assert answer == before
    # what the comparison covers: the record's fields, every table with its cells, Markdown
    assert set(answer) >= {"source", "status", "mime", "pages", "text", "metadata", "error",
                           "timings", "tables", "text_source", "markdown"}
    assert answer["source"] == "checks.pdf" and answer["status"] == "done" and answer["pages"] == 1
    assert "page_range" not in answer and answer["error"] is None
    (table,) = answer["tables"]
    assert len(table["rows"]) >= 15 and len(table["cells"]) > 300  # 60 rows of 25 cells
    assert table["cells"] == before["tables"][0]["cells"] and table["bbox"] == before["tables"][0]["bbox"]
    assert "|" in answer["markdown"] and answer["markdown"] == before["markdown"]
    assert answer["timings"] == {"parse_s": round(outcome.parse_s, 4)}


def test_small_answers_ranges_and_failures_as_before(service: ExtractService, tmp_path: Path) -> None:
    small = tmp_path / "order.pdf"
    small.write_bytes(make_table_pdf(ROWS, "Order 17"))
    three = tmp_path / "three.pdf"
    three.write_bytes(make_pdf(["first page", "second page", "third page"]))
    unsealed = ProcessOutcome(DocState.DONE, "text/plain", 1, ["é ü 漢字 \"quoted\""], {"k": [1, 2.5]},
                              extra={"text_source": ["text"], "tables": []})
    outcomes = {
        "small": extracted(service, small, TABLES_AND_MARKDOWN),
        "plain": extracted(service, small, {}),
        "range": extracted(service, three, {}, PageRange(1, 3)),
        "timeout": through_the_pool(ProcessOutcome.failure(FailureCategory.TIMEOUT, "over 30 s", "tables")),
        "skipped": ProcessOutcome.failure(FailureCategory.UNSUPPORTED, "a .zip"),
        "unsealed": unsealed,
        "empty": ProcessOutcome(DocState.DONE, "application/pdf", 0),
    }
    assert outcomes["small"].content_utf8() is not None  # under PLAIN_MAX: sent uncompressed too
    assert len(outcomes["small"].content_utf8() or b"") <= PLAIN_MAX
    for name, outcome in outcomes.items():
        assert strict(outcome_json(outcome, f"{name}.pdf")) == answer_before(outcome, f"{name}.pdf"), name
    assert strict(outcome_json(outcomes["small"], "o.pdf"))["tables"][0]["rows"] == ROWS
    ranged = strict(outcome_json(outcomes["range"], "r.pdf"))
    assert ranged["page_range"] == {"start": 1, "stop": 3} and ranged["pages"] == 3
    assert strict(outcome_json(outcomes["timeout"], "t.pdf"))["error"]["category"] == "timeout"


def test_not_a_number_is_null_as_before() -> None:
    """NaN and Infinity are not JSON: the content may hold them (Python's encoder writes
    them), the answer says null as pydantic did; the same words in text stay words."""
    outcome = through_the_pool(ProcessOutcome(
        DocState.DONE, "application/pdf", 1, ["NaN and Infinity are words here"],
        {"ratio": float("nan")}, extra={"tables": [{"bbox": [float("inf"), -float("inf"), 1.5]}]},
    ))
    assert b"NaN" in (outcome.content_utf8() or b"")
    answer = strict(outcome_json(outcome, "n.pdf"))
    assert answer == answer_before(outcome, "n.pdf")
    assert answer["metadata"] == {"ratio": None} and answer["tables"][0]["bbox"] == [None, None, 1.5]
    assert answer["text"] == ["NaN and Infinity are words here"]


def test_to_dict_is_what_asdict_gave(service: ExtractService, tmp_path: Path) -> None:
    three = tmp_path / "three.pdf"
    three.write_bytes(make_pdf(["first page", "second page", "third page"]))
    sealed = extracted(service, TABLE_PAGE, TABLES_AND_MARKDOWN)
    for outcome in (
        sealed, extracted(service, three, {}, PageRange(0, 2)),
        ProcessOutcome.failure(FailureCategory.CRASH, "signal 9"),
        ProcessOutcome(DocState.DONE, "text/plain", 1, ["a"], {"m": 1}, extra={"x": [1]}, label="invoice",
                       cost_usd=0.25, tokens_in=10, tokens_out=3, needs_split=True),
    ):
        data = outcome.to_dict()
        assert data == to_dict_before(outcome)
        assert list(data) == list(to_dict_before(outcome))  # the same keys in the same order
    # a copy: changing the dict leaves the outcome as it was
    plain = ProcessOutcome(DocState.DONE, "text/plain", 1, ["a"], {"m": 1}, extra={"x": [1]})
    data = plain.to_dict()
    data["text"].append("b")
    data["metadata"]["n"] = 2
    data["extra"]["y"] = 1
    assert plain.text == ["a"] and plain.metadata == {"m": 1} and plain.extra == {"x": [1]}


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[str]:
    settings = load_settings(overrides={
        "service.data_dir": str(tmp_path / "data"), "service.job_workers": "0",
        "service.extract_workers": "1", "service.auth": "none",
    })
    with server_in_thread(create_app(settings)) as base:
        yield base


def test_the_http_answer_is_the_record_as_before(local_server: str, service: ExtractService) -> None:
    """Through a real server: the same record the old answer held for the same page
    (extracted here in process: every field but the timing)."""
    settings = json.dumps(TABLES_AND_MARKDOWN)
    with httpx.Client(base_url=local_server, timeout=120) as client:
        r = client.post("/v1/extract", files={"file": ("checks.pdf", TABLE_PAGE.read_bytes())},
                        data={"settings": settings})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    answer = strict(r.content)
    before = answer_before(extracted(service, TABLE_PAGE, TABLES_AND_MARKDOWN), "checks.pdf")
    assert isinstance(answer["timings"].pop("parse_s"), float) and answer.pop("timings") == {}
    before.pop("timings")
    assert answer == before
    assert answer["tables"][0]["cells"] and answer["markdown"]
