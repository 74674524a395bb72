"""Per-request settings: the allow-list and the tier maxima (the pure policy), and a real
`docmill serve` with API keys answering `POST /v1/extract` with tables and refusing what
a key may not ask for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from docmill.model import PageRange
from docmill.service.overrides import (
    EXTRACT_KEYS,
    JOB_KEYS,
    Maxima,
    SettingRefused,
    extract_choice,
    job_overrides,
    parse_pages,
    settings_object,
)
from docmill.service.tiers import BUILTIN, Tier, load_tiers
from docmill.settings import Settings, SettingsError, load_settings
from engine_kit import run_cli
from pdfgen import make_pdf, make_table_pdf
from service_kit import free_port, kill_group, start_server, wait_job

ROWS = [["Item", "Qty", "Price"], ["Apples", "3", "1.20"], ["Pears", "12", "0.85"], ["Plums", "7", "2.05"]]


def _base(**more: str) -> Settings:
    return load_settings(env={}, overrides={"run.workers": "2", **more})


def _refused(call: Any, *args: Any) -> SettingRefused:
    with pytest.raises(SettingRefused) as caught:
        call(*args)
    return caught.value


# --- the pure policy ---------------------------------------------------------------------


def test_only_the_allow_list_may_be_set() -> None:
    base = _base()
    local = Maxima.of(None, base)
    within = {
        "extract.tables": True, "extract.ocr": "never", "extract.ocr_languages": "eng+deu",
        "extract.reading_order": "layout", "extract.max_pages": 3, "output.markdown": True,
        "output.format": "parquet", "run.timeout_s": 60, "run.memory_mb": 1024, "run.workers": 1,
        "run.split_pages": 50,
    }
    assert set(within) == set(JOB_KEYS)
    assert job_overrides(within, local, base) == {**within, "run.timeout_s": 60.0}
    for key, value in [
        ("llm.spec", "/etc/passwd"), ("llm.budget_usd", 1e9), ("sources.include", ["**"]),
        ("service.data_dir", "/"), ("run.window", 1), ("run.max_attempts", 100),
        ("run.recycle_after", 1), ("extract.fallback_max_mb", 1e6), ("output.part_max_records", 1),
        ("pages", "1-3"), ("no.such", 1),
    ]:
        refused = _refused(job_overrides, {"extract.tables": True, key: value}, local, base)
        assert refused.code == "setting_not_allowed" and refused.details is not None
        assert refused.details["setting"] == key and key in refused.message
        assert refused.details["allowed"] == list(JOB_KEYS)
    # an extract takes what shapes one document's answer, not how the shared pool runs
    for key in ("run.timeout_s", "run.workers", "run.memory_mb", "output.format", "extract.max_pages"):
        refused = _refused(extract_choice, {key: 1}, local, base)
        assert refused.code == "setting_not_allowed" and refused.setting == key
    assert set(EXTRACT_KEYS) - set(JOB_KEYS) == {"pages"}


def test_values_over_the_tier_are_refused_naming_the_maximum() -> None:
    base = _base()
    free = Maxima.of(BUILTIN["free"], base)
    assert free == Maxima("free", 30.0, 1024, 1, 50, False)
    cases: list[tuple[str, Any, Any]] = [
        ("run.timeout_s", 1_000_000_000, 30.0),  # the attack: the per-document timeout off
        ("run.timeout_s", 30.5, 30.0),
        ("run.memory_mb", 4096, 1024),
        ("run.workers", 2, 1),
        ("run.workers", 0, 1),  # 0 is every core
        ("extract.max_pages", 51, 50),
        ("extract.max_pages", 0, 50),  # 0 is every page
    ]
    for key, value, maximum in cases:
        refused = _refused(job_overrides, {key: value}, free, base)
        assert refused.code == "setting_over_limit", (key, value)
        assert refused.details == {"setting": key, "maximum": maximum, "tier": "free"}
        assert key in refused.message and "free" in refused.message
    for ocr in ("auto", "always"):
        refused = _refused(job_overrides, {"extract.ocr": ocr}, free, base)
        assert refused.details == {"setting": "extract.ocr", "allowed": ["never"], "tier": "free"}
    assert job_overrides({"run.timeout_s": 30, "run.workers": 1}, free, base)["run.timeout_s"] == 30.0
    # NaN and infinity (Python's JSON reads both) are never within a maximum
    for text in ('{"run.timeout_s": NaN}', '{"run.timeout_s": Infinity}', '{"run.memory_mb": 1e400}'):
        refused = _refused(job_overrides, settings_object(text), free, base)
        assert refused.code in ("invalid_settings", "setting_over_limit"), text
    assert _refused(job_overrides, {"run.timeout_s": "nan"}, Maxima.of(None, base), base).code == "invalid_settings"


def test_bad_values_and_bad_objects_are_invalid_settings() -> None:
    base = _base()
    local = Maxima.of(None, base)
    for key, value in [
        ("run.timeout_s", "soon"), ("run.timeout_s", -1), ("extract.tables", "perhaps"),
        ("extract.ocr", "sometimes"), ("output.format", "xml"), ("extract.ocr_languages", "eng+../x"),
        ("extract.ocr_languages", "eng+deu+fra+ita+spa"), ("run.split_pages", 1), ("run.workers", None),
    ]:
        refused = _refused(job_overrides, {key: value}, local, base)
        assert refused.code == "invalid_settings" and refused.setting == key, (key, value)
    for raw in ("[1, 2]", "{not json", '"text"', 7, ["a"], "[" * 100_000, b"\xff{}"):
        refused = _refused(settings_object, raw)
        assert refused.code == "invalid_settings" and refused.details is None
    assert settings_object(None) == settings_object("") == {}
    assert settings_object('{"extract.tables": "true"}') == {"extract.tables": "true"}
    assert job_overrides({"extract.tables": "true", "run.timeout_s": "60"}, local, base) == {
        "extract.tables": True, "run.timeout_s": 60.0,
    }


def test_server_values_over_the_tier_are_lowered_not_refused() -> None:
    base = _base()  # run.timeout_s 120, memory 2048, 2 workers, every page, OCR auto
    assert job_overrides({}, Maxima.of(BUILTIN["free"], base), base) == {
        "run.timeout_s": 30.0, "run.memory_mb": 1024, "run.workers": 1, "extract.max_pages": 50,
        "extract.ocr": "never",
    }
    assert job_overrides({"extract.max_pages": 5}, Maxima.of(BUILTIN["pro"], base), base) == {
        "extract.max_pages": 5,
    }
    assert job_overrides({}, Maxima.of(BUILTIN["pro"], base), base) == {"extract.max_pages": 1000}
    # local mode: the server's own settings are the maxima, so nothing is lowered ...
    local = Maxima.of(None, base)
    assert local == Maxima("local", 120.0, 2048, 2, 0, True)
    assert job_overrides({}, local, base) == {}
    # ... and nothing above them is accepted
    refused = _refused(job_overrides, {"run.timeout_s": 1_000_000_000}, local, base)
    assert refused.details == {"setting": "run.timeout_s", "maximum": 120.0, "tier": "local"}
    assert _refused(job_overrides, {"run.workers": 3}, local, base).details == {
        "setting": "run.workers", "maximum": 2, "tier": "local",
    }
    never = _base(**{"extract.ocr": "never"})
    assert _refused(job_overrides, {"extract.ocr": "auto"}, Maxima.of(None, never), never).code == (
        "setting_over_limit"
    )
    # a tier's 0 is the server's setting, never unbounded
    assert Maxima.of(BUILTIN["unlimited"], base) == Maxima("unlimited", 120.0, 2048, 2, 0, True)
    assert Maxima.of(BUILTIN["enterprise"], base) == Maxima("enterprise", 600.0, 4096, 2, 0, True)


def test_an_extract_choice_its_pages_and_its_cap() -> None:
    base = _base(**{"service.extract_max_pages": "20"})
    local, free = Maxima.of(None, base), Maxima.of(BUILTIN["free"], base)
    plain = extract_choice({}, local, base)
    assert (plain.overrides, plain.page_range, plain.max_pages) == ({}, None, 20)
    tables = extract_choice({"extract.tables": True, "output.markdown": "yes", "pages": "2-4"}, local, base)
    assert tables.overrides == {"extract.tables": True, "output.markdown": True}
    assert tables.page_range == PageRange(1, 4) and tables.max_pages == 4
    assert extract_choice({}, free, base).overrides == {"extract.ocr": "never"}  # free: no OCR
    tiny = Maxima.of(Tier("tiny", max_pages=3), base)
    assert extract_choice({}, tiny, base).max_pages == 3
    refused = _refused(extract_choice, {"pages": "1-4"}, tiny, base)
    assert refused.code == "setting_over_limit" and refused.details == {"setting": "pages", "maximum": 3}
    assert parse_pages("3", 20) == PageRange(2, 3) and parse_pages(3, 20) == PageRange(2, 3)
    assert parse_pages(" 5 - 24 ", 20) == PageRange(4, 24) and parse_pages("1-100", 0) == PageRange(0, 100)
    assert _refused(parse_pages, "1-21", 20).details == {"setting": "pages", "maximum": 20}
    for nonsense in ("0", "3-1", "a", "1-", "-1", "1,3", "", True, 1.5, None, [1, 2], "1-2-3", "0-0"):
        refused = _refused(parse_pages, nonsense, 20)
        assert refused.code == "invalid_settings" and refused.setting == "pages", nonsense


def test_tiers_file_sets_the_maxima(tmp_path: Path) -> None:
    f = tmp_path / "tiers.toml"
    f.write_text(
        '[tiers.pro]\nmax_timeout_s = 300\nocr = false\n\n'
        '[tiers.mini]\nbase = "free"\nmax_pages = 5\n\n[tiers.bare]\nall = 3\n'
    )
    tiers = load_tiers(str(f))
    assert tiers["pro"].max_timeout_s == 300.0 and not tiers["pro"].ocr
    assert tiers["pro"].max_workers == BUILTIN["pro"].max_workers and tiers["pro"].extract == BUILTIN["pro"].extract
    assert tiers["mini"].max_pages == 5 and tiers["mini"].max_timeout_s == 30.0 and not tiers["mini"].ocr
    bare = Maxima.of(tiers["bare"], _base())
    assert bare == Maxima("bare", 120.0, 2048, 2, 0, True)  # a new tier: the server's settings
    for bad, message in [
        ("[tiers.x]\nocr = \"no\"\n", "ocr must be true or false"),
        ("[tiers.x]\nocr = 1\n", "ocr must be true or false"),
        ("[tiers.x]\nmax_workers = -1\n", "max_workers must be a number >= 0"),
        ("[tiers.x]\nmax_timeout_s = true\n", "max_timeout_s must be a number >= 0"),
        ("[tiers.x]\nmax_cpu = 2\n", "unknown keys"),
    ]:
        f.write_text(bad)
        with pytest.raises(SettingsError, match=message):
            load_tiers(str(f))


def test_an_extract_service_builds_each_options_once(tmp_path: Path) -> None:
    from docmill.service.extract import ExtractService

    service = ExtractService(_base(**{"service.extract_max_pages": "20", "extract.ocr": "never"}))
    plain = service.options({}, 20)
    assert plain.max_pages == 20 and not plain.tables and plain.split_pages > 10**6
    with_tables = service.options({"extract.tables": True, "output.markdown": True}, 4)
    assert with_tables.tables and with_tables.markdown and with_tables.max_pages == 4
    assert with_tables.ocr == "never"  # the rest stays the server's
    assert service.options({"output.markdown": True, "extract.tables": True}, 4) is with_tables
    assert service.options({}, 20) is plain


# --- a real server with keys ---------------------------------------------------------------

TIERS = """
[tiers.tight]
max_timeout_s = 20
max_memory_mb = 512
max_workers = 1
max_pages = 2
ocr = false
"""


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert set(body) <= {"code", "message", "details"} and body["message"]
    return body


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `docmill serve` with API keys; one key of tier `pro` and one of `tight`."""
    data = tmp_path / "data"
    data.mkdir()
    tiers = tmp_path / "tiers.toml"
    tiers.write_text(TIERS)
    keys: dict[str, str] = {}
    for tier in ("pro", "tight"):
        made = run_cli("keys", "create", "--tier", tier, "--json", "--set", f"service.data_dir={data}",
                       "--set", f"service.tiers_file={tiers}", timeout=120)
        assert made.returncode == 0, made.stderr
        keys[tier] = json.loads(made.stdout)["key"]
    port = free_port()
    proc = start_server(data, port, "service.auth=keys", f"service.tiers_file={tiers}")
    try:
        yield f"http://127.0.0.1:{port}", keys
    finally:
        kill_group(proc)


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120)


def _extract(client: httpx.Client, pdf: bytes, settings: Any = None) -> httpx.Response:
    data = {} if settings is None else {"settings": settings if isinstance(settings, str) else json.dumps(settings)}
    return client.post("/v1/extract", files={"file": ("order.pdf", pdf)}, data=data)


def test_extract_answers_tables_when_asked(keyed: tuple[str, dict[str, str]]) -> None:
    base, keys = keyed
    pdf = make_table_pdf(ROWS, "Order 17")
    with _client(base, keys["pro"]) as pro:
        plain = _extract(pro, pdf)
        assert plain.status_code == 200, plain.text
        assert plain.json()["status"] == "done" and "Apples" in plain.json()["text"][0]
        assert "tables" not in plain.json() and "markdown" not in plain.json()
        r = _extract(pro, pdf, {"extract.tables": True})
        assert r.status_code == 200, r.text
        (table,) = r.json()["tables"]
        assert table["page"] == 0 and table["rows"] == ROWS and table["header_rows"] == 1
        assert "markdown" not in r.json()
        both = _extract(pro, pdf, {"extract.tables": "true", "output.markdown": True, "pages": "1"}).json()
        assert both["tables"][0]["rows"] == ROWS
        assert "| Item | Qty | Price |" in both["markdown"] and "| Pears | 12 | 0.85 |" in both["markdown"]
        assert "page_range" not in both  # the range is the whole document
        # a page range: only those pages are read, the count is the document's
        three = make_pdf(["first page", "second page", "third page"])
        ranged = _extract(pro, three, {"pages": "2-3"}).json()
        assert ranged["pages"] == 3 and [t.strip() for t in ranged["text"]] == ["second page", "third page"]
        assert ranged["page_range"] == {"start": 1, "stop": 3}
        assert _error(_extract(pro, three, {"pages": "4"}), 422)["details"] == {"setting": "pages", "pages": 3}
        assert _error(_extract(pro, pdf, {"pages": "2-1"}), 422)["details"]["setting"] == "pages"
        # refused settings name themselves
        for settings, setting in [
            ({"llm.spec": "/etc/passwd"}, "llm.spec"), ({"run.timeout_s": 5}, "run.timeout_s"),
            ({"sources.include": ["**"]}, "sources.include"),
        ]:
            body = _error(_extract(pro, pdf, settings), 422)
            assert body["code"] == "setting_not_allowed" and body["details"]["setting"] == setting
        assert _error(_extract(pro, pdf, "{not json"), 422)["code"] == "invalid_settings"
        assert _error(_extract(pro, pdf, {"extract.tables": "maybe"}), 422)["details"] == {
            "setting": "extract.tables",
        }
        spec = httpx.get(base + "/openapi.json").json()
        operation = spec["paths"]["/v1/extract"]["post"]
        assert "extract.tables" in operation["description"] and "tables" in operation["description"]
        form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
        if "$ref" in form:
            form = spec["components"]["schemas"][form["$ref"].rsplit("/", 1)[1]]
        assert form["required"] == ["file"]
        assert "settings" in form["properties"] and "JSON object" in form["properties"]["settings"]["description"]
        assert "run.timeout_s" in spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"][
            "multipart/form-data"]["schema"]["properties"]["settings"]["description"]


def test_a_key_gets_no_more_than_its_tier(keyed: tuple[str, dict[str, str]]) -> None:
    base, keys = keyed
    pdf = make_table_pdf(ROWS)
    with _client(base, keys["tight"]) as tight, _client(base, keys["pro"]) as pro:
        # over the tier: 422 naming the setting and the maximum, jobs (both bodies) and extracts
        files = [("files", ("a.pdf", pdf))]
        for settings, setting, maximum in [
            ({"run.timeout_s": 1_000_000_000}, "run.timeout_s", 20.0),
            ({"run.memory_mb": 513}, "run.memory_mb", 512),
            ({"run.workers": 2}, "run.workers", 1),
            ({"extract.max_pages": 3}, "extract.max_pages", 2),
        ]:
            body = _error(tight.post("/v1/jobs", files=files, data={"settings": json.dumps(settings)}), 422)
            assert body["code"] == "setting_over_limit"
            assert body["details"] == {"setting": setting, "maximum": maximum, "tier": "tight"}
            body = _error(tight.post("/v1/jobs", json={"source": "/nowhere", "settings": settings}), 422)
            assert body["details"]["setting"] == setting and body["details"]["maximum"] == maximum
        body = _error(tight.post("/v1/jobs", json={"source": "/x", "settings": {"llm.budget_usd": 1e6}}), 422)
        assert body["code"] == "setting_not_allowed" and body["details"]["setting"] == "llm.budget_usd"
        body = _error(_extract(tight, pdf, {"extract.ocr": "always"}), 422)
        assert body["details"] == {"setting": "extract.ocr", "allowed": ["never"], "tier": "tight"}
        body = _error(_extract(tight, make_pdf(["1", "2", "3"]), {"pages": "1-3"}), 422)
        assert body["details"] == {"setting": "pages", "maximum": 2}
        too_long = _error(_extract(tight, make_pdf(["1", "2", "3"])), 413)
        assert too_long["details"] == {"pages": 3, "limit": 2}
        assert _extract(pro, make_pdf(["1", "2", "3"])).status_code == 200  # pro reads 3 pages
        # what a key leaves alone is lowered to its tier, and the job says so (the server
        # runs one worker: within the tier, so run.workers stays the server's)
        created = tight.post("/v1/jobs", files=files, data={"settings": json.dumps({"extract.tables": True})})
        assert created.status_code == 202, created.text
        assert created.json()["settings"] == {
            "extract.tables": True, "run.timeout_s": 20.0, "run.memory_mb": 512,
            "extract.max_pages": 2, "extract.ocr": "never",
        }
        job = wait_job(tight, created.json()["id"], ("done", "failed"))
        assert job["status"] == "done" and job["counts"]["done"] == 1
        (doc,) = tight.get(f"/v1/jobs/{job['id']}/documents").json()["items"]
        record = tight.get(f"/v1/jobs/{job['id']}/documents/{doc['id']}").json()
        assert record["tables"][0]["rows"] == ROWS


def test_local_mode_has_the_server_settings_as_maxima(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    proc = start_server(data, port, "run.timeout_s=90", "service.job_workers=0")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            files = [("files", ("a.pdf", make_pdf(["x"])))]
            attack = {"settings": json.dumps({"run.timeout_s": 1_000_000_000})}
            body = _error(client.post("/v1/jobs", files=files, data=attack), 422)
            assert body["code"] == "setting_over_limit"
            assert body["details"] == {"setting": "run.timeout_s", "maximum": 90.0, "tier": "local"}
            ok = client.post("/v1/jobs", files=files, data={"settings": json.dumps({"run.timeout_s": 30})})
            assert ok.status_code == 202 and ok.json()["settings"] == {"run.timeout_s": 30.0}
            assert client.post("/v1/jobs", files=files).json()["settings"] == {}
            r = _extract(client, make_table_pdf(ROWS), {"extract.tables": True})
            assert r.status_code == 200 and r.json()["tables"][0]["rows"] == ROWS
    finally:
        kill_group(proc)
