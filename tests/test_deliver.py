"""[[deliver]] against real servers on loopback: moto's S3 server (records and files to a
bucket, behind a proxy that can hold uploads), local folders, and the test kit's webhook
receiver (failures, slowness, 429 with Retry-After on a schedule), through the real CLI;
kill -9 at chosen moments, then a rerun: each destination holds each item once."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from docmill.testkit.webhook import HookConfig, HookHandle, serve_in_thread
from engine_kit import REAL, corpus_file, docmill_cmd, read_parts
from remote_kit import MotoS3, S3Proxy, grep_tree, run_docmill, s3_env

pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is in the dev lock: run scripts/setup dev")
pytest.importorskip("moto", reason="moto[server] is in the dev lock: run scripts/setup dev")

TOKEN = "hook-token-8c1f0e7d5b2a9466"  # given to docmill only by reference


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    server = MotoS3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(moto: MotoS3) -> Iterator[S3Proxy]:
    front = S3Proxy(moto.port)
    try:
        yield front
    finally:
        front.stop()


@pytest.fixture
def hook() -> Iterator[HookHandle]:
    with serve_in_thread(HookConfig(token=TOKEN)) as handle:
        yield handle


_buckets = iter(range(1, 10_000))


def new_bucket(moto: MotoS3) -> str:
    name = f"deliver-{next(_buckets)}"
    moto.bucket(name)
    return name


def objects(moto: MotoS3, bucket: str, prefix: str = "") -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        page = moto.client.list_objects_v2(**kwargs)
        for item in page.get("Contents", []):
            out[item["Key"]] = moto.client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        token = page.get("NextContinuationToken")
        if not token:
            return out


def folder_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def corpus(folder: Path, pdfs: int = 3, texts: int = 4) -> dict[str, bytes]:
    """A few real PDFs, text files in a sub-folder, and an encrypted PDF (failed)."""
    folder.mkdir(parents=True)
    out: dict[str, bytes] = {}
    for path in sorted(p for p in REAL.rglob("*.pdf") if p.stat().st_size < 200_000)[:pdfs]:
        data = corpus_file(path).read_bytes()
        (folder / path.name).write_bytes(data)
        out[path.name] = data
    (folder / "notes").mkdir()
    for i in range(texts):
        data = f"Invoice {i}\nTotal {10 + i}.00 EUR\n".encode()
        (folder / "notes" / f"note-{i}.txt").write_bytes(data)
        out[f"notes/note-{i}.txt"] = data
    locked = Path(__file__).resolve().parents[1] / "samples" / "sample-files" / "libreoffice-writer-password.pdf"
    (folder / "locked.pdf").write_bytes(locked.read_bytes())
    out["locked.pdf"] = locked.read_bytes()
    return out


def config(path: Path, tables: str) -> Path:
    path.write_text(tables, encoding="utf-8")
    return path


def status(env: dict[str, str], out: Path) -> dict[str, Any]:
    result = run_docmill(env, "status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def ledger(out: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(out / "docmill.db", timeout=10) as conn:
        return list(conn.execute(sql))


def records_by_source(out: Path) -> dict[str, dict[str, Any]]:
    return {r["source"]: r for r in read_parts(out)}


# --- records and files to a bucket and a folder --------------------------------------------


def test_records_and_files_to_a_bucket_and_a_local_folder(moto: MotoS3, tmp_path: Path) -> None:
    src = tmp_path / "in"
    files = corpus(src)
    bucket = new_bucket(moto)
    filed = tmp_path / "filed"
    cfg = config(tmp_path / "docmill.toml", f"""
[output]
part_max_records = 3
part_max_seconds = 600

[[deliver]]
name = "parts"
kind = "records"
to = "s3://{bucket}/records/"

[[deliver]]
name = "archive"
kind = "files"
to = "s3://{bucket}/archive/{{status}}/{{date:%Y}}/{{relpath}}"
statuses = ["done", "failed"]

[[deliver]]
name = "by-type"
kind = "files"
to = "{filed}/{{ext}}/{{stem}}-{{sha256:8}}.{{ext}}"
""")
    env = s3_env(moto.endpoint)
    out = tmp_path / "out"
    result = run_docmill(env, "run", str(src), "--out", str(out), "--config", str(cfg), "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "deliveries: parts (records to s3://" in result.stderr
    # the bucket's records/ mirrors DIR/records: the same part files, byte for byte
    local_parts = folder_files(out / "records")
    assert len(local_parts) == 3  # 8 records, 3 a part
    assert {f"records/{k}": v for k, v in local_parts.items()} == objects(moto, bucket, "records/")
    # every original filed once, by status and the year of its modification time
    records = records_by_source(out)
    assert len(records) == len(files)
    year = time.gmtime((src / "locked.pdf").stat().st_mtime).tm_year
    expected = {
        f"archive/{records[str(src / rel)]['status']}/{year}/{rel}": data for rel, data in files.items()
    }
    assert objects(moto, bucket, "archive/") == expected
    assert f"archive/failed/{year}/locked.pdf" in expected
    # done documents only (the default) to the local folder, named by content
    want = {
        f"{rel.rsplit('.', 1)[1]}/{Path(rel).stem}-{hashlib.sha256(data).hexdigest()[:8]}.{rel.rsplit('.', 1)[1]}": data
        for rel, data in files.items() if rel != "locked.pdf"
    }
    assert folder_files(filed) == want
    assert not list(filed.rglob("*.docmill-tmp"))
    data = status(env, out)["deliveries"]
    assert data["parts"]["done"] == len(files) and data["parts"]["parts"]["done"] == 3
    assert (data["archive"]["done"], data["archive"]["pending"], data["archive"]["failed"]) == (8, 0, 0)
    assert (data["by-type"]["done"], data["by-type"]["pending"]) == (7, 0)
    # a second run delivers nothing again
    again = run_docmill(env, "run", str(src), "--out", str(out), "--config", str(cfg))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "delivered" not in again.stderr
    assert objects(moto, bucket, "archive/") == expected


def test_a_changed_document_is_delivered_again_and_its_old_file_removed(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text("first version\n")
    (src / "b.txt").write_text("b stays\n")
    filed, parts = tmp_path / "filed", tmp_path / "parts"
    cfg = config(tmp_path / "docmill.toml", f"""
[[deliver]]
name = "archive"
kind = "files"
to = "{filed}/{{sha256:12}}-{{name}}"

[[deliver]]
name = "parts"
kind = "records"
to = "{parts}"
""")
    out = tmp_path / "out"
    env = s3_env("http://127.0.0.1:9")  # no store is used
    assert run_docmill(env, "run", str(src), "--out", str(out), "--config", str(cfg)).returncode == 0
    first = folder_files(filed)
    assert sorted(v for v in first.values()) == [b"b stays\n", b"first version\n"]
    (src / "a.txt").write_text("second version, longer\n")
    result = run_docmill(env, "run", str(src), "--out", str(out), "--config", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    now = folder_files(filed)
    assert sorted(now.values()) == [b"b stays\n", b"second version, longer\n"]  # the old one removed
    # the destination's parts hold each source's current record once (a part rewritten)
    lines = [json.loads(x) for p in sorted(parts.glob("part-*.jsonl")) for x in p.read_text().splitlines()]
    assert sorted(r["source"] for r in lines) == [str(src / "a.txt"), str(src / "b.txt")]
    assert folder_files(parts) == folder_files(out / "records")


def test_move_removes_each_source_once_its_copy_is_in_place(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        (src / f"n{i}.txt").write_text(f"note {i}\n")
    filed = tmp_path / "filed"
    cfg = config(tmp_path / "docmill.toml", f"""
[[deliver]]
name = "inbox"
kind = "files"
to = "{filed}/{{processed:%Y-%m-%d}}/"
mode = "move"
""")
    out = tmp_path / "out"
    result = run_docmill(s3_env("http://127.0.0.1:9"), "run", str(src), "--out", str(out), "--config", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(src.iterdir()) == []
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert folder_files(filed) == {f"{day}/n{i}.txt": f"note {i}\n".encode() for i in range(5)}


def test_a_destination_outside_its_root_and_a_conflict_fail_deliveries_not_documents(
    tmp_path: Path,
) -> None:
    src = tmp_path / "in"
    (src / "x").mkdir(parents=True)
    (src / "y").mkdir()
    (src / "x" / "same.txt").write_text("one\n")
    (src / "y" / "same.txt").write_text("two\n")
    filed = tmp_path / "filed"
    cfg = config(tmp_path / "docmill.toml", f"""
[[deliver]]
name = "flat"
kind = "files"
to = "{filed}/{{name}}"
""")
    out = tmp_path / "out"
    env = s3_env("http://127.0.0.1:9")
    result = run_docmill(env, "run", str(src), "--out", str(out), "--config", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    assert {r["status"] for r in read_parts(out)} == {"done"}  # documents are unaffected
    assert list(folder_files(filed).values()) == [b"one\n"]
    flat = status(env, out)["deliveries"]["flat"]
    assert (flat["done"], flat["failed"], flat["failures"]) == (1, 1, {"conflict": 1})
    assert "goes there already" in flat["examples"][0]["message"]


# --- the webhook --------------------------------------------------------------------------


def hook_config(path: Path, url: str, variable: str = "HOOK_TOKEN", **more: Any) -> Path:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in more.items())
    return config(path, f"""
[output]
part_max_records = 4

[[deliver]]
name = "hook"
kind = "webhook"
to = "{url}"
token = {{ "$env" = "{variable}" }}
headers = {{ "X-Team" = "ops" }}
{extra}""")


def keys_by_document(received: list[tuple[str | None, str, dict[str, Any]]]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = defaultdict(set)
    for _request_key, key, record in received:
        found[record["id"]].add(key)
    return found


def test_webhook_survives_failures_slowness_and_429_with_retry_after(
    hook: HookHandle, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    files = corpus(src, pdfs=2, texts=9)
    hook.reconfigure(fail_every=4, too_many_every=5, retry_after="1", slow_every=3, slow_s=0.3)
    cfg = hook_config(tmp_path / "docmill.toml", hook.url, batch=2, retries=8, threads=2, timeout_s=5)
    env = s3_env("http://127.0.0.1:9", HOOK_TOKEN=TOKEN)
    out = tmp_path / "out"
    result = run_docmill(env, "run", str(src), "--out", str(out), "--config", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    statuses = [r.status for r in hook.requests()]
    assert 500 in statuses and 429 in statuses and 200 in statuses
    # each request refused (500, 429) was sent again with its key, and taken
    refused = {r.key for r in hook.requests() if r.status != 200}
    assert refused and refused <= {r.key for r in hook.requests() if r.status == 200}
    accepted = keys_by_document(hook.accepted())
    assert set(accepted) == {r["id"] for r in read_parts(out)} and len(accepted) == len(files)
    # a record seen twice (a retry) always came with its one key
    assert all(len(keys) == 1 for keys in keys_by_document(hook.arrived()).values())
    # requests are batches of up to 2 records, each request with its Idempotency-Key
    for req in hook.requests():
        assert req.headers["Idempotency-Key"] == req.body["idempotency_key"]
        assert 1 <= len(req.body["items"]) <= 2 and req.headers["X-Team"] == "ops"
        assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    # the full record, as the part files hold it
    one = hook.accepted()[0][2]
    assert one == records_by_source(out)[one["source"]]
    hook_counts = status(env, out)["deliveries"]["hook"]
    assert (hook_counts["done"], hook_counts["failed"]) == (len(files), 0)


def test_a_secret_given_by_reference_appears_in_no_log_record_error_or_ledger(
    hook: HookHandle, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    corpus(src, pdfs=1, texts=2)
    # a careless receiver: refuses with 500 and echoes the request's headers, the token too
    hook.reconfigure(fail_every=1, echo_errors=True)
    # a variable whose name does not look like a credential's: only the reference tells
    cfg = hook_config(tmp_path / "docmill.toml", hook.url, "HOOK_BEARER", retries=2, breaker=100)
    env = s3_env("http://127.0.0.1:9", HOOK_BEARER=TOKEN)
    out = tmp_path / "out"
    result = run_docmill(env, "run", str(src), "--out", str(out), "--config", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]  # deliveries fail, the run does not
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in hook.requests())
    assert "[secret]" in result.stderr  # the echoed token was scrubbed from the message
    data = status(env, out)
    hook_counts = data["deliveries"]["hook"]
    assert hook_counts["failed"] == 4 and hook_counts["failures"] == {"unavailable": 4}
    assert "500" in hook_counts["examples"][0]["message"]
    shown = run_docmill(env, "status", str(out))
    for text in (result.stdout, result.stderr, shown.stdout, shown.stderr, json.dumps(data)):
        assert TOKEN not in text
    assert grep_tree(out, TOKEN.encode()) == []  # ledger (and its WAL), records, everything
    # fixed receiver: retry --delivery, run again, delivered once each
    hook.reconfigure(fail_every=0)
    retried = run_docmill(env, "retry", str(out), "--delivery", "hook")
    assert "4 failed deliveries of hook are pending again" in retried.stdout
    again = run_docmill(env, "run", "--out", str(out), "--config", str(cfg))
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(keys_by_document(hook.accepted())) == 4
    assert status(env, out)["deliveries"]["hook"]["done"] == 4


def test_a_missing_token_variable_ends_the_run_naming_it(hook: HookHandle, tmp_path: Path) -> None:
    src = tmp_path / "in"
    corpus(src, pdfs=0, texts=1)
    cfg = hook_config(tmp_path / "docmill.toml", hook.url)
    result = run_docmill(s3_env("http://127.0.0.1:9"), "run", str(src), "--out", str(tmp_path / "out"),
                         "--config", str(cfg))
    assert result.returncode == 1
    assert "deliver hook.token: refers to environment variable HOOK_TOKEN, which is not set" in result.stderr


# --- kill -9 at chosen moments, then a rerun ---------------------------------------------------


def start_docmill(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(docmill_cmd(*args), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"docmill ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def delivered_rows(out: Path, name: str) -> int:
    try:
        return int(ledger(out, f"SELECT COUNT(*) FROM deliveries WHERE name='{name}' AND state='done'")[0][0])
    except sqlite3.Error:
        return 0


def test_webhook_killed_before_sending_in_flight_and_after_commits_repeats_only_with_the_same_key(
    hook: HookHandle, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    files = corpus(src, pdfs=0, texts=16)
    cfg = hook_config(tmp_path / "docmill.toml", hook.url, threads=2)
    env = s3_env("http://127.0.0.1:9", HOOK_TOKEN=TOKEN)
    out = tmp_path / "out"
    args = ("run", str(src), "--out", str(out), "--config", str(cfg))
    # two answered and committed; the next two received and held (the record is at the
    # receiver, docmill has no answer); the rest queued or not yet fed
    hook.hold(3)
    proc = start_docmill(env, *args)
    try:
        wait_for(lambda: len(hook.requests()) >= 4 and delivered_rows(out, "hook") >= 2, proc,
                 "two deliveries committed and two held")
    finally:
        kill(proc)
    assert delivered_rows(out, "hook") == 2
    held = [r for r in hook.requests() if r.status == 0]
    assert len(held) == 2
    hook.release()  # the receiver answers them now: it has seen them, docmill never knew
    result = run_docmill(env, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    arrived = keys_by_document(hook.arrived())
    assert len(arrived) == len(files) and all(len(keys) == 1 for keys in arrived.values())
    sent = [r.key for r in hook.requests()]
    assert [sent.count(r.key) for r in held] == [2, 2]  # sent again, with the same key
    assert len(sent) == len(files) + 2  # everything else once
    assert len(keys_by_document(hook.accepted())) == len(files)
    assert status(env, out)["deliveries"]["hook"]["done"] == len(files)


@pytest.mark.parametrize("moment", ["before", "after"])
def test_files_and_records_to_a_bucket_killed_around_an_upload_end_up_there_once(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path, moment: str
) -> None:
    src = tmp_path / "in"
    files = corpus(src, pdfs=2, texts=6)
    bucket = new_bucket(moto)
    cfg = config(tmp_path / "docmill.toml", f"""
[output]
part_max_records = 4

[[deliver]]
name = "parts"
kind = "records"
to = "s3://{bucket}/records/"
threads = 1

[[deliver]]
name = "archive"
kind = "files"
to = "s3://{bucket}/archive/{{relpath}}"
statuses = ["done", "failed"]
threads = 1
""")
    env = s3_env(proxy.endpoint)
    out = tmp_path / "out"
    args = ("run", str(src), "--out", str(out), "--config", str(cfg), "--workers", "1")
    proxy.faults.hold_puts = moment  # before: no object yet; after: stored, unanswered
    proc = start_docmill(env, *args)
    try:
        wait_for(lambda: proxy.counts[f"held/{moment}"] >= 2, proc, "two uploads held")
    finally:
        kill(proc)
    stored = objects(moto, bucket)
    assert len(stored) == (2 if moment == "after" else 0)  # a part and a file, unanswered
    assert delivered_rows(out, "archive") + delivered_rows(out, "parts") == 0
    proxy.faults.hold_puts = ""  # uploads go through now; those held "before" stay held
    if moment == "after":
        proxy.release()
    puts_before = sum(proxy.puts.values())
    result = run_docmill(env, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    archive = objects(moto, bucket, "archive/")
    assert archive == {f"archive/{rel}": data for rel, data in files.items()}
    assert {k[len("records/"):]: v for k, v in objects(moto, bucket, "records/").items()} == folder_files(out / "records")
    # a file that landed before the kill is not uploaded again (its sha256 is there); a
    # part is (a part's name is fixed, its newest bytes are the right ones)
    again = sum(proxy.puts.values()) - puts_before
    landed = 1 if moment == "after" else 0
    assert again == len(archive) - landed + len(folder_files(out / "records"))
    counts = status(env, out)["deliveries"]
    assert counts["archive"]["done"] == len(files) and counts["parts"]["done"] == len(files)


def test_kill_9_at_random_moments_then_a_rerun_files_each_document_once(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    n = 240
    for i in range(n):
        (src / f"doc-{i:04d}.txt").write_text(f"document {i}\n" * 20)
    filed, parts = tmp_path / "filed", tmp_path / "parts"
    cfg = config(tmp_path / "docmill.toml", f"""
[output]
part_max_records = 7
part_max_seconds = 0.05

[[deliver]]
name = "archive"
kind = "files"
to = "{filed}/{{stem}}/{{name}}"
threads = 2

[[deliver]]
name = "parts"
kind = "records"
to = "{parts}"
""")
    env = s3_env("http://127.0.0.1:9")
    out = tmp_path / "out"
    args = ("run", str(src), "--out", str(out), "--config", str(cfg), "--workers", "2")
    rng = random.Random(int(os.environ.get("DOCMILL_TEST_SEED", "11")))
    kills = 0
    for target in sorted(rng.sample(range(10, n - 60), 3)):
        proc = start_docmill(env, *args)
        try:
            deadline = time.monotonic() + 120
            while proc.poll() is None and delivered_rows(out, "archive") < target and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.0, 0.02))
        finally:
            if proc.poll() is None:
                kills += 1
            kill(proc)
    assert kills >= 2
    result = run_docmill(env, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    got = folder_files(filed)
    assert got == {f"doc-{i:04d}/doc-{i:04d}.txt": (f"document {i}\n" * 20).encode() for i in range(n)}
    assert not list(filed.rglob("*.docmill-tmp")) and not list(parts.glob("*.docmill-tmp"))
    assert folder_files(parts) == folder_files(out / "records")
    lines = [json.loads(x) for p in sorted(parts.glob("part-*.jsonl")) for x in p.read_text().splitlines()]
    assert len(lines) == n and len({r["source"] for r in lines}) == n
