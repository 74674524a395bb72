"""Remote sources against real servers on loopback: moto's S3 server (behind a counting,
fault-injecting proxy) and Debian's OpenSSH server, through the real CLI."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_kit import REAL, assert_exactly_once, corpus_file, read_parts
from remote_kit import (
    Faults,
    MotoS3,
    S3Proxy,
    grep_tree,
    run_docmill,
    run_docmill_maxrss,
    s3_env,
    sftp_env,
    start_sshd,
)

pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is in the dev lock: run scripts/setup dev")
pytest.importorskip("moto", reason="moto[server] is in the dev lock: run scripts/setup dev")


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


_buckets = iter(range(1, 10_000))


def new_bucket(moto: MotoS3) -> str:
    name = f"docs-{next(_buckets)}"
    moto.bucket(name)
    return name


def pdfs(n: int) -> list[Path]:
    found = sorted(p for p in REAL.rglob("*.pdf") if p.stat().st_size < 400_000)[:n]
    assert len(found) == n
    return [corpus_file(p) for p in found]


def upload_pdfs(moto: MotoS3, bucket: str, prefix: str, n: int) -> dict[str, bytes]:
    out = {}
    for i, path in enumerate(pdfs(n)):
        key = f"{prefix}{i:02d}-{path.name}"
        data = path.read_bytes()
        moto.put(bucket, key, data)
        out[key] = data
    return out


def ledger_rows(out: Path) -> list[tuple[str, str, str | None, str | None]]:
    with sqlite3.connect(out / "docmill.db") as conn:
        return list(conn.execute("SELECT source, state, sha256, version FROM documents ORDER BY id"))


def test_s3_prefix_is_listed_downloaded_and_named_by_url(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    bucket = new_bucket(moto)
    keys = upload_pdfs(moto, bucket, "inbox/2024/", 6)
    moto.put(bucket, "inbox/notes.txt", b"Invoice 42\nTotal 10.00 EUR\n")
    moto.put(bucket, "inbox/skip/me.pdf", b"%PDF-1.4 not listed")
    moto.put(bucket, "inbox-old/other.pdf", b"%PDF-1.4 another prefix")
    out = tmp_path / "out"
    result = run_docmill(
        s3_env(proxy.endpoint), "run", f"s3://{bucket}/inbox", "--out", str(out),
        "--workers", "2", "--set", 'sources.exclude=["skip/**"]',
        # as the service runs every job: the workers read the spool, inside the roots
        "--set", "sources.confine_to_root=true",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {f"s3://{bucket}/{k}" for k in keys} | {f"s3://{bucket}/inbox/notes.txt"}
    records = assert_exactly_once(out, expected)
    assert {r["status"] for r in records} <= {"done", "failed"}
    text = next(r for r in records if r["source"].endswith("notes.txt"))
    assert text["status"] == "done" and "Invoice 42" in json.dumps(text)
    # sha256 computed on the downloaded bytes; the ETag kept as the change token
    import hashlib

    by_source = {r["source"]: r for r in records}
    for key, data in keys.items():
        assert by_source[f"s3://{bucket}/{key}"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert all(version for _s, _st, _sha, version in ledger_rows(out))
    # every request went to AWS_ENDPOINT_URL (the proxy), each object was fetched once
    assert proxy.counts["list"] >= 1
    assert sorted(proxy.gets) == sorted([*keys, "inbox/notes.txt"])
    assert set(proxy.gets.values()) == {1}
    # the spool is empty once every document is committed
    assert list((out / "spool").iterdir()) == []
    assert re.search(rf"s3://{bucket}: \d+ requests, 7 downloaded", result.stderr)


def test_s3_unchanged_objects_are_not_downloaded_and_changed_ones_are_processed_again(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    bucket = new_bucket(moto)
    for i in range(5):
        moto.put(bucket, f"p/doc{i}.txt", f"document {i} version 1\n".encode())
    out = tmp_path / "out"
    env = s3_env(proxy.endpoint)
    args = ("run", f"s3://{bucket}/p/", "--out", str(out), "--workers", "1")
    first = run_docmill(env, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sum(proxy.gets.values()) == 5
    before = {r["source"]: r for r in read_parts(out)}

    proxy.gets.clear()
    second = run_docmill(env, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert sum(proxy.gets.values()) == 0, proxy.gets  # unchanged: listed, never downloaded
    assert {r["source"]: r for r in read_parts(out)} == before

    moto.put(bucket, "p/doc1.txt", b"document 1 version 2, longer\n")  # changed
    moto.put(bucket, "p/doc3.txt", b"document 3 version 1\n")  # re-uploaded, same bytes
    moto.put(bucket, "p/doc5.txt", b"document 5 version 1\n")  # new
    proxy.gets.clear()
    third = run_docmill(env, *args)
    assert third.returncode == 0, third.stderr[-3000:]
    # doc3's ETag is its MD5: the same bytes are the same version, not downloaded again
    assert dict(proxy.gets) == {"p/doc1.txt": 1, "p/doc5.txt": 1}
    after = {r["source"]: r for r in assert_exactly_once(
        out, {f"s3://{bucket}/p/doc{i}.txt" for i in range(6)}
    )}
    changed = after[f"s3://{bucket}/p/doc1.txt"]
    assert changed["sha256"] != before[f"s3://{bucket}/p/doc1.txt"]["sha256"]
    assert "version 2" in json.dumps(changed)
    for i in (0, 2, 3, 4):
        assert after[f"s3://{bucket}/p/doc{i}.txt"] == before[f"s3://{bucket}/p/doc{i}.txt"]


def test_s3_throttling_and_dropped_connections_are_retried_without_losing_a_file(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    bucket = new_bucket(moto)
    keys = upload_pdfs(moto, bucket, "", 8)
    for i in range(12):
        moto.put(bucket, f"t/{i:02d}.txt", f"text {i}\n".encode() * 2000)
    # every 3rd request of a kind: 503 SlowDown; every 4th: 429 (Retry-After 0.05 s);
    # every 5th GET: half its body, then the connection is closed
    proxy.faults = Faults(slowdown_every=3, too_many_every=4, drop_every=5, retry_after="0.05")
    out = tmp_path / "out"
    result = run_docmill(
        s3_env(proxy.endpoint), "run", f"s3://{bucket}", "--out", str(out), "--workers", "2",
        "--set", "sources.requests_per_s=50", "--set", "sources.retries=10",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {f"s3://{bucket}/{k}" for k in keys} | {
        f"s3://{bucket}/t/{i:02d}.txt" for i in range(12)
    }
    records = assert_exactly_once(out, expected)
    assert not [r for r in records if r["status"] == "failed" and r["error"]["category"] == "io"]
    assert proxy.counts["injected/503"] > 0
    assert proxy.counts["injected/429"] > 0
    assert proxy.counts["injected/drop"] > 0
    for key in keys:  # a dropped download resumed: the bytes are whole
        rec = next(r for r in records if r["source"] == f"s3://{bucket}/{key}")
        import hashlib

        assert rec["sha256"] == hashlib.sha256(keys[key]).hexdigest()
    line = next(x for x in result.stderr.splitlines() if f"s3://{bucket}:" in x)
    assert "retried:" in line and "503" in line and "429" in line and "connection" in line


def test_the_spool_is_bounded_and_an_object_larger_than_it_is_not_downloaded(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    bucket = new_bucket(moto)
    for i in range(20):
        moto.put(bucket, f"s/{i:02d}.txt", (f"spooled text {i} " * 6000).encode())  # ~100 KB
    moto.put(bucket, "s/huge.txt", b"x" * 400_000)
    out = tmp_path / "out"
    result = run_docmill(
        s3_env(proxy.endpoint), "run", f"s3://{bucket}/s", "--out", str(out), "--workers", "2",
        "--set", "sources.spool_mb=0.3", "--set", "sources.downloads=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = {r["source"]: r for r in read_parts(out)}
    assert len(records) == 21
    huge = records[f"s3://{bucket}/s/huge.txt"]
    assert huge["status"] == "failed" and huge["error"]["category"] == "too_large"
    assert "sources.spool_mb" in huge["error"]["message"]
    assert "s/huge.txt" not in proxy.gets
    assert sum(r["status"] == "done" for r in records.values()) == 20
    peak = re.search(r"spool: at most ([\d.]+) MB held at once \(sources.spool_mb ([\d.]+)\)",
                     result.stderr)
    assert peak, result.stderr[-2000:]
    assert 0 < float(peak.group(1)) <= float(peak.group(2)) == 0.3
    assert list((out / "spool").iterdir()) == []


def test_a_secret_given_by_reference_appears_nowhere(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    secret = "s3cr3t-Vv9Qz7-by-reference-only"
    token = "session-token-Xk28Lm-by-reference"
    bucket = new_bucket(moto)
    upload_pdfs(moto, bucket, "", 3)
    moto.put(bucket, "broken.pdf", b"%PDF-1.7\n" + b"garbage " * 100)
    env = s3_env(proxy.endpoint, secret=secret, AWS_SESSION_TOKEN=token)
    out = tmp_path / "out"
    outputs = []
    for args in (
        ("run", f"s3://{bucket}", "--out", str(out), "--workers", "1"),
        ("status", str(out)),
        ("status", str(out), "--json"),
        ("export", str(out), "--format", "jsonl"),
        # failures: a missing bucket, a password in the URL
        ("run", "s3://no-such-bucket-here/x/", "--out", str(tmp_path / "o2")),
        ("run", f"sftp://user:{secret}@127.0.0.1/x", "--out", str(tmp_path / "o3")),
    ):
        done = run_docmill(env, *args)
        outputs.append(done.stdout + done.stderr)
    assert "does not exist" in outputs[4]
    assert "password in the URL" in outputs[5]
    assert outputs[5].count(secret) == 0
    for text in outputs:
        assert secret not in text and token not in text
    for folder in (out, tmp_path / "o2", tmp_path / "o3"):
        if folder.exists():
            assert grep_tree(folder, secret.encode()) == []
            assert grep_tree(folder, token.encode()) == []


def test_unknown_scheme_lists_the_known_ones_and_missing_extras_say_which(
    tmp_path: Path,
) -> None:
    env = s3_env("http://127.0.0.1:9")
    result = run_docmill(env, "run", "nosuchstore://x/y", "--out", str(tmp_path / "o"))
    assert result.returncode == 1
    assert "unknown source scheme nosuchstore://" in result.stderr
    assert "s3" in result.stderr and "sftp" in result.stderr and "gs" in result.stderr


def test_sftp_source_through_fsspec_with_key_auth_from_ssh_config(tmp_path: Path) -> None:
    pytest.importorskip("sshfs", reason="the sftp extra (sshfs) is in the dev lock")
    with start_sshd(tmp_path / "sshd") as sshd:
        docs = tmp_path / "remote docs"
        (docs / "sub").mkdir(parents=True)
        sources = pdfs(3)
        for path in sources:
            (docs / "sub" / path.name).write_bytes(path.read_bytes())
        (docs / "readme.txt").write_text("Quarterly report, page one\n")
        (docs / "ignored.bin").write_bytes(b"\0" * 10)
        env = sftp_env(sshd.home)
        url = f"sftp://{sshd.alias}{docs}"
        out = tmp_path / "out"
        args = ("run", url, "--out", str(out), "--workers", "2",
                "--set", 'sources.include=["**/*.pdf", "**/*.txt"]')
        result = run_docmill(env, *args)
        assert result.returncode == 0, result.stderr[-3000:]
        expected = {f"{url}/sub/{p.name}" for p in sources} | {f"{url}/readme.txt"}
        records = assert_exactly_once(out, expected)
        assert all(r["status"] == "done" for r in records), records
        assert re.search(rf"sftp://{sshd.alias}: \d+ requests, 4 downloaded", result.stderr)
        # unchanged (size and mtime): listed again, nothing downloaded
        again = run_docmill(env, *args)
        assert again.returncode == 0, again.stderr[-3000:]
        assert re.search(rf"sftp://{sshd.alias}: \d+ requests, 0 downloaded", again.stderr)
        # a host whose key is not in known_hosts is refused, as ssh refuses it
        (sshd.home / ".ssh" / "known_hosts").write_text("")
        refused = run_docmill(env, "run", url, "--out", str(tmp_path / "o2"))
        assert refused.returncode == 1
        assert "cannot list" in refused.stderr


@pytest.mark.slow
def test_listing_20000_objects_keeps_driver_memory_flat(moto: MotoS3, tmp_path: Path) -> None:
    """Driver peak RSS listing (and processing) 20,000 objects <= 1.2 x at 1,000."""
    bucket = new_bucket(moto)
    moto.put_many(bucket, ((f"small/{i:05d}.txt", b"note %d\n" % i) for i in range(1_000)))
    moto.put_many(bucket, ((f"large/{i:05d}.txt", b"note %d\n" % i) for i in range(20_000)))
    env = s3_env(moto.endpoint)
    peaks = {}
    for name in ("small", "large"):
        rc, peaks[name] = run_docmill_maxrss(
            env, "run", f"s3://{bucket}/{name}/", "--out", str(tmp_path / name), "--quiet",
            "--workers", "2", "--set", "sources.requests_per_s=0",
        )
        assert rc == 0
    with sqlite3.connect(tmp_path / "large" / "docmill.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM documents WHERE state='done'").fetchone() == (20_000,)
    ratio = peaks["large"] / peaks["small"]
    print(f"driver peak RSS: 1,000 objects {peaks['small'] / 2**20:.1f} MB, "
          f"20,000 objects {peaks['large'] / 2**20:.1f} MB, ratio {ratio:.2f}")
    assert ratio <= 1.2


def test_a_run_killed_mid_download_resumes_with_every_object_exactly_once(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import time

    from engine_kit import docmill_cmd

    bucket = new_bucket(moto)
    for i in range(40):
        moto.put(bucket, f"k/{i:02d}.txt", (f"kill test {i} " * 5000).encode())  # ~70 KB
    out = tmp_path / "out"
    env = s3_env(proxy.endpoint)
    args = ("run", f"s3://{bucket}/k", "--out", str(out), "--workers", "2",
            "--set", "sources.spool_mb=0.3", "--set", "sources.requests_per_s=10")
    proc = subprocess.Popen(docmill_cmd(*args), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        done = 0
        while done < 5 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            if (out / "docmill.db").exists():
                try:
                    with sqlite3.connect(out / "docmill.db", timeout=5) as conn:
                        done = conn.execute(
                            "SELECT COUNT(*) FROM documents WHERE state='done'"
                        ).fetchone()[0]
                except sqlite3.Error:
                    pass
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    gets_before = sum(proxy.gets.values())
    again = run_docmill(env, *args[:-2], "--set", "sources.requests_per_s=0")
    assert again.returncode == 0, again.stderr[-3000:]
    records = assert_exactly_once(out, {f"s3://{bucket}/k/{i:02d}.txt" for i in range(40)})
    assert all(r["status"] == "done" for r in records)
    assert list((out / "spool").iterdir()) == []
    # what was committed before the kill is not downloaded again
    assert sum(proxy.gets.values()) - gets_before <= 40 - done


def test_an_https_url_is_one_file_read_through_fsspec(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp", reason="fsspec's http needs aiohttp (docmill[http])")
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    site = tmp_path / "site"
    site.mkdir()
    pdf = pdfs(1)[0]
    (site / "report.pdf").write_bytes(pdf.read_bytes())
    (site / "other.pdf").write_bytes(pdf.read_bytes())

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/report.pdf"
        out = tmp_path / "out"
        result = run_docmill(s3_env("http://127.0.0.1:9"), "run", url, "--out", str(out))
        assert result.returncode == 0, result.stderr[-3000:]
        records = assert_exactly_once(out, {url})  # the page's folder is never crawled
        assert records[0]["status"] == "done" and records[0]["pages"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_source_naming_one_key_is_that_object_and_stat_reads_its_version(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from docmill.settings import SourceSettings
    from docmill.sources.backend import Backends

    bucket = new_bucket(moto)
    data = pdfs(1)[0].read_bytes()
    moto.put(bucket, "one/report.pdf", data)
    moto.put(bucket, "one/report.pdf.bak", b"not this one")
    out = tmp_path / "out"
    result = run_docmill(s3_env(proxy.endpoint), "run", f"s3://{bucket}/one/report.pdf",
                         "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = assert_exactly_once(out, {f"s3://{bucket}/one/report.pdf"})
    assert record["status"] == "done" and record["size"] == len(data)
    assert proxy.counts["head"] == 1 and proxy.counts["list"] == 0

    for name, value in s3_env(proxy.endpoint).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    backend, _retrier = Backends(SourceSettings()).for_url(f"s3://{bucket}/")
    found = backend.stat(f"s3://{bucket}/one/report.pdf")
    assert found is not None and found.size == len(data)
    assert found.version == hashlib.md5(data).hexdigest()  # a single-part upload's ETag
    assert backend.stat(f"s3://{bucket}/one/missing.pdf") is None
    backend.close()


def test_credentials_by_profile_as_the_aws_cli_finds_them(
    moto: MotoS3, proxy: S3Proxy, tmp_path: Path
) -> None:
    secret = "profile-secret-Qm47-in-a-file"
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[ops]\naws_access_key_id = AKIAPROFILEOPS000001\naws_secret_access_key = {secret}\n"
    )
    bucket = new_bucket(moto)
    moto.put(bucket, "p/a.txt", b"filed by profile\n")
    env = s3_env(proxy.endpoint, AWS_SHARED_CREDENTIALS_FILE=str(credentials), AWS_PROFILE="ops")
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    out = tmp_path / "out"
    result = run_docmill(env, "run", f"s3://{bucket}/p/", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = assert_exactly_once(out, {f"s3://{bucket}/p/a.txt"})
    assert record["status"] == "done"
    wrong = run_docmill({**env, "AWS_PROFILE": "nobody"}, "run", f"s3://{bucket}/p/",
                        "--out", str(tmp_path / "o2"))
    assert wrong.returncode == 1 and "nobody" in wrong.stderr
    for text in (result.stderr, result.stdout, wrong.stderr):
        assert secret not in text
    assert grep_tree(out, secret.encode()) == []
