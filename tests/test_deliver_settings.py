"""[[deliver]] tables: parsing at load (unknown template fields refused), rendering that
never leaves the destination, secrets only by reference; the webhook's pure parts."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from docmill.deliver.values import relpath, source_prefixes
from docmill.deliver.webhook import (
    batch_key,
    record_key,
    resolve_headers,
    retry_after,
    secret_values,
)
from docmill.settings import Settings, SettingsError, load_settings, with_overrides
from docmill.settings.deliveries import (
    TEMPLATE_FIELDS,
    SecretRef,
    TemplateError,
    check_key,
    parse_delivery,
    parse_template,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DOCMILL_"):
            monkeypatch.delenv(name)


def load(tmp_path: Path, text: str) -> Settings:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(text, encoding="utf-8")
    return load_settings(cfg, env={})


def test_three_kinds_load_from_toml_with_their_origin(tmp_path: Path) -> None:
    settings = load(tmp_path, """
[[deliver]]
name = "parts"
kind = "records"
to = "s3://acme-out/records/"

[[deliver]]
name = "archive"
kind = "files"
to = "s3://archive/{class.label}/{date:%Y/%m}/{name}"
mode = "move"

[[deliver]]
name = "hook"
kind = "webhook"
to = "https://hooks.example.com/docmill"
token = { "$env" = "HOOK_TOKEN" }
headers = { "X-Team" = "ops", "X-Api-Key" = { "$env" = "HOOK_KEY" } }
batch = 10
requests_per_s = 5
""")
    parts, archive, hook = settings.deliver
    assert (parts.kind, parts.to) == ("records", "s3://acme-out/records/")
    assert archive.mode == "move" and archive.template.root == "s3://archive/"
    assert archive.template.fields == ("class.label", "date", "name")
    assert archive.delivered_statuses == ("done",)
    assert hook.token == SecretRef("HOOK_TOKEN") and hook.batch == 10
    assert hook.delivered_statuses == ("done", "failed", "skipped")
    assert dict(hook.headers) == {"X-Team": "ops", "X-Api-Key": SecretRef("HOOK_KEY")}
    assert settings.origin("deliver").startswith("file:")
    # stored with the run as references, never values; read back the same
    data = settings.to_dict()["deliver"]
    assert data[2]["token"] == {"$env": "HOOK_TOKEN"}
    assert json.loads(json.dumps(data)) == data
    assert [parse_delivery(d, "x") for d in data] == list(settings.deliver)


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("/srv/{nmae}", "unknown template field {nmae}; known: {name}"),
        ("/srv/{name!r}", "conversions are not supported"),
        ("/srv/{name:>10}", "only date, processed and sha256 take a format"),
        ("/srv/{sha256:99}", "the prefix is 1 to 64 hex digits"),
        ("/srv/{date:{name}}", "nested fields are not supported"),
        ("{name}", "needs a folder before its first field"),
        ("s3://{name}", "needs a folder before its first field"),
        ("/srv/{fields.a/b}", "a field name is letters"),
        ("/srv/{name", "expected '}'"),
    ],
)
def test_a_bad_template_is_refused_at_load(tmp_path: Path, to: str, message: str) -> None:
    with pytest.raises(SettingsError, match="deliver") as info:
        load(tmp_path, f'[[deliver]]\nname = "a"\nkind = "files"\nto = "{to}"\n')
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('kind = "ftp"\nto = "/x"', "is not one of records, files, webhook"),
        ('kind = "records"\nto = "/x/{name}"', "without fields"),
        ('kind = "webhook"\nto = "/x"', "http:// or https://"),
        ('kind = "records"\nto = "/x"\nmode = "move"', "only for kind files"),
        ('kind = "files"\nto = "/x"\nbatch = 3', "only for kind webhook"),
        ('kind = "webhook"\nto = "https://h/x"\ntoken = "plain-secret"', "must be a reference"),
        ('kind = "webhook"\nto = "https://h/x"\nheaders = { Authorization = "Bearer x" }', "must be a reference"),
        ('kind = "webhook"\nto = "https://h/x"\nheaders = { "X-Api-Key" = "k" }', "must be a reference"),
        ('kind = "webhook"\nto = "https://h/x"\nbatch = 0', "must be >= 1"),
        ('kind = "files"\nto = "/x"\nstatuses = ["lost"]', "a list of done, failed, skipped"),
        ('kind = "files"\nto = "/x"\nwhere = "y"', "unknown keys ['where']"),
        ('kind = "files"', "a destination is required"),
    ],
)
def test_a_bad_table_names_what_is_wrong(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load(tmp_path, f'[[deliver]]\nname = "d"\n{table}\n')
    assert message in str(info.value)


def test_names_are_unique_and_plain(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="two deliveries are named 'a'"):
        load(tmp_path, '[[deliver]]\nname = "a"\nkind = "records"\nto = "/x"\n' * 2)
    with pytest.raises(SettingsError, match="letters, digits"):
        load(tmp_path, '[[deliver]]\nname = "a b"\nkind = "records"\nto = "/x"\n')


def test_deliveries_come_from_the_file_or_as_json_overrides(tmp_path: Path) -> None:
    table = [{"name": "hook", "kind": "webhook", "to": "http://127.0.0.1:9/h"}]
    settings = load_settings(env={}, overrides={"deliver": json.dumps(table)})
    assert settings.deliver[0].name == "hook" and settings.origin("deliver") == "flag"
    again = with_overrides(settings, {"deliver": []}, origin="job")
    assert again.deliver == () and settings.deliver  # a new object; the old one unchanged
    with pytest.raises(SettingsError, match=r"unknown setting 'deliver\.x'"):
        load_settings(env={"DOCMILL_DELIVER__X": "1"})


def test_the_service_allow_list_is_a_table_of_named_deliveries(tmp_path: Path) -> None:
    settings = load(tmp_path, """
[service]
allowed_sources = ["s3://acme-in/"]

[service.allowed_deliveries.archive]
kind = "files"
to = "/srv/archive/{class.label}/{name}"
""")
    (archive,) = settings.service.allowed_deliveries
    assert archive.name == "archive" and archive.kind == "files"
    assert settings.service.allowed_sources == ("s3://acme-in/",)
    data = settings.to_dict()["service"]["allowed_deliveries"]
    assert data["archive"]["to"] == "/srv/archive/{class.label}/{name}"


def test_every_template_field_and_delivery_key_is_documented() -> None:
    text = (REPO / "README.md").read_text() + (REPO / "docs" / "ARCHITECTURE.md").read_text()
    missing = [f for f in TEMPLATE_FIELDS if "{" + f.split(".NAME")[0] not in text]
    assert missing == []
    from docmill.settings.deliveries import DELIVERY_KEYS

    assert [k for k in DELIVERY_KEYS if f"`{k}`" not in text] == []


# --- rendering ---------------------------------------------------------------------------

WHEN = datetime(2024, 3, 5, 14, 0, tzinfo=UTC)


def test_render_fills_fields_and_keeps_values_to_one_folder() -> None:
    template = parse_template("s3://archive/{class.label}/{date:%Y/%m}/{stem}-{sha256:8}.{ext}", "t")
    key = template.render({
        "class.label": "in/voice", "date": WHEN, "stem": "a..b", "sha256": "0123456789abcdef", "ext": "pdf",
    })
    assert key == "in_voice/2024/03/a..b-01234567.pdf"
    assert template.render({"class.label": None, "date": WHEN, "stem": "x", "sha256": None, "ext": ""}) == (
        "unlabelled/2024/03/x-none."
    )


@pytest.mark.parametrize("value", ["..", ".", "", "/", "\x00", "a/../../etc"])
def test_a_value_never_leaves_the_destination(value: str) -> None:
    template = parse_template("/srv/{fields.vendor}/{name}", "t")
    key = template.render({"fields.vendor": value, "name": "x.pdf"})
    check_key(key)  # whatever the value, one folder below the root
    assert key.count("/") == 1 and ".." not in key.split("/")


def test_a_relpath_that_climbs_is_refused() -> None:
    template = parse_template("/srv/out/", "t")  # a folder alone: {relpath} below it
    assert template.fields == ("relpath",)
    assert template.render({"relpath": "2024/a.pdf"}) == "2024/a.pdf"
    for bad in ("../etc/passwd", "a//b", "./a"):
        with pytest.raises(TemplateError):
            template.render({"relpath": bad})


def test_relpath_is_below_the_longest_source(tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    prefixes = source_prefixes([str(tmp_path / "in"), str(tmp_path / "in" / "sub"), "s3://b/pre", str(tmp_path / "f.pdf")])
    assert relpath(str(tmp_path / "in" / "sub" / "x" / "a.pdf"), prefixes) == "x/a.pdf"
    assert relpath(str(tmp_path / "in" / "b.pdf"), prefixes) == "b.pdf"
    assert relpath("s3://b/pre/2024/c.pdf", prefixes) == "2024/c.pdf"
    assert relpath(str(tmp_path / "f.pdf"), prefixes) == "f.pdf"


# --- the webhook's pure parts ----------------------------------------------------------------


def test_idempotency_keys_are_derived_from_id_sha_and_generation() -> None:
    one = record_key("abc", 7, "f" * 64, 1)
    assert one == "abc-7-ffffffffffffffff-1"
    assert record_key("abc", 7, "f" * 64, 2) != one  # processed again: new news
    assert batch_key("abc", [one]) == one
    batch = batch_key("abc", [one, "abc-8-00-1"])
    assert batch == batch_key("abc", ["abc-8-00-1", one]) and batch.startswith("abc-batch-")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("3", 0.0) == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480.0) == 10.0
    assert retry_after("soon", 0.0) is None and retry_after(None, 0.0) is None


def test_header_references_resolve_from_the_environment_or_name_the_variable() -> None:
    spec = parse_delivery(
        {"name": "h", "kind": "webhook", "to": "https://h/x", "token": {"$env": "T"},
         "headers": {"X-Team": "ops"}}, "t",
    )
    assert resolve_headers(spec, {"T": "s3cret"}) == {"X-Team": "ops", "Authorization": "Bearer s3cret"}
    assert secret_values(spec, {"T": "s3cret"}) == {"s3cret", "Bearer s3cret"}  # never shown
    with pytest.raises(SettingsError, match="environment variable T, which is not set") as info:
        resolve_headers(spec, {})
    assert "s3cret" not in str(info.value)


# --- the webhook against the test kit's receiver, its waits recorded (no sleeping) -------------


def _hook_work(n: int) -> list[object]:
    from docmill.deliver.work import HookWork
    from docmill.model import DocState, Record
    from docmill.state.deliveries import DeliveryDoc

    works: list[object] = []
    for i in range(1, n + 1):
        record = Record(i, f"/in/{i}.txt", "ab" * 32, 3, "text/plain", DocState.DONE, None, 1, None,
                        {"parse_s": 0.0, "total_s": 0.0}, 1, None)
        key = record_key("L", i, record.sha256, 1)
        works.append(HookWork(key, ((i, float(i), key, DeliveryDoc(record, 0, None, 1.0, None)),)))
    return works


def _sender(url: str, sleeps: list[float], rate: float = 0.0, retries: int = 3, timeout_s: float = 5.0) -> object:
    import threading

    from docmill.deliver.webhook import WebhookDelivery
    from docmill.sources.backend import Secrets
    from docmill.sources.throttle import Backoff, Retrier

    spec = parse_delivery({"name": "hook", "kind": "webhook", "to": url, "timeout_s": timeout_s}, "t")
    now = [100.0]

    def sleep(seconds: float) -> None:  # the clock moves by what was slept, nothing else
        sleeps.append(seconds)
        now[0] += seconds

    retrier = Retrier(rate, retries, Backoff(base_s=0.2, cap_s=20.0), clock=lambda: now[0],
                      sleep=sleep, rand=lambda: 0.5)
    return WebhookDelivery(spec, {}, retrier, Secrets(frozenset()), threading.Event())


def test_a_429_waits_its_retry_after_then_goes_with_the_same_key() -> None:
    from docmill.testkit.webhook import HookConfig, serve_in_thread

    with serve_in_thread(HookConfig(too_many_every=1, retry_after="7")) as hook:
        sleeps: list[float] = []
        sender = _sender(hook.url, sleeps)
        (work,) = _hook_work(1)
        result = sender.deliver(work)
        assert result.state == "failed" and result.category == "rate_limited"
        assert sleeps == [7.0, 7.0]  # never sooner than Retry-After (3 tries, 2 waits)
        keys = [r.key for r in hook.requests()]
        assert keys == [work.key] * 3 and [r.status for r in hook.requests()] == [429] * 3


def test_the_rate_limit_spaces_requests_and_a_slow_answer_times_out() -> None:
    from docmill.testkit.webhook import HookConfig, serve_in_thread

    with serve_in_thread(HookConfig()) as hook:
        sleeps: list[float] = []
        sender = _sender(hook.url, sleeps, rate=2.0)
        results = [sender.deliver(w) for w in _hook_work(6)]
        assert {r.state for r in results} == {"done"}
        # a bucket of 2 a second (a burst of 2): the 3rd to 6th each wait 0.5 s their turn
        assert sleeps == [0.5, 0.5, 0.5, 0.5]
    with serve_in_thread(HookConfig(slow_every=1, slow_s=1.0)) as hook:
        sleeps = []
        sender = _sender(hook.url, sleeps, retries=2, timeout_s=0.2)
        result = sender.deliver(_hook_work(1)[0])
        assert (result.state, result.category) == ("failed", "timeout")
        assert "no answer within 0.2 s" in result.message


def test_serve_hands_deliveries_to_its_worker_processes(tmp_path: Path) -> None:
    """`docmill serve --workers N` passes the settings as flat JSON: the tables survive."""
    from docmill.service.server import _flat
    settings = load(tmp_path, """
[[deliver]]
name = "hook"
kind = "webhook"
to = "https://h/x"
token = { "$env" = "T" }

[service.allowed_deliveries.archive]
kind = "files"
to = "/srv/{name}"
""")
    back = with_overrides(Settings(), json.loads(json.dumps(_flat(settings))), "serve")
    assert back.deliver == settings.deliver
    assert back.service.allowed_deliveries == settings.service.allowed_deliveries


def test_a_summary_body_leaves_the_content_out_and_keys_every_record() -> None:
    from docmill.deliver.webhook import body_of
    from docmill.deliver.work import HookWork
    from docmill.model import DocState, Record
    from docmill.model.content import encode_content
    from docmill.state.deliveries import DeliveryDoc

    content = encode_content(["page one"], {"title": "T"}, markdown="# T", **{"class": {"label": "invoice"}})
    docs = []
    for i in (1, 2):
        record = Record(i, f"/in/{i}.pdf", "cd" * 32, 9, "application/pdf", DocState.DONE, None, 1,
                        content, {"parse_s": 0.0, "total_s": 0.0}, 1, None)
        docs.append((i, 1.0, record_key("L", i, record.sha256, 1), DeliveryDoc(record, 0, None, 1.0, "invoice")))
    work = HookWork(batch_key("L", [d[2] for d in docs]), tuple(docs))
    for content_kind, has_text in (("full", True), ("summary", False)):
        spec = parse_delivery({"name": "h", "kind": "webhook", "to": "https://h/x", "content": content_kind,
                               "batch": 2}, "t")
        body = json.loads(body_of(spec, work))
        assert body["delivery"] == "h" and body["idempotency_key"] == work.key
        assert [item["idempotency_key"] for item in body["items"]] == ["L-1-cdcdcdcdcdcdcdcd-1", "L-2-cdcdcdcdcdcdcdcd-1"]
        record = body["items"][0]["record"]
        assert record["class"] == {"label": "invoice"} and record["source"] == "/in/1.pdf"
        assert ("text" in record, "markdown" in record, "metadata" in record) == (has_text,) * 3
